// The morph policy store and the morph ledger on DynamoDB Local: policies beside the personas in
// their table without either seeing the other, equal writes that write nothing, documents checked
// against their hash on every read; each host's last morph noted by startMorph, and the
// operations under way found by host among the others.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationDocuments } from '../../../core/clone/documents.js';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { DynamoMorphLedger } from '../../../core/morph/ledger.js';
import { MorphPolicy } from '../../../core/morph/policy.js';
import { CorruptMorphPolicyError, DynamoMorphPolicyStore } from '../../../core/morph/policy-store.js';
import { startMorph } from '../../../core/morph/start.js';
import { TargetProfile } from '../../../core/morph/target.js';
import type { Operation } from '../../../core/operation/schema.js';
import { DynamoOperationStore } from '../../../core/operation/store.js';
import { PersonaStore } from '../../../core/persona/store.js';
import { OPERATIONS_TABLE, PERSONAS_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let policies: DynamoMorphPolicyStore;
let personas: PersonaStore;
let operations: DynamoOperationStore;
let ledger: DynamoMorphLedger;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-morph-policies-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [
      { definition: PERSONAS_TABLE, name: 'personas' },
      { definition: OPERATIONS_TABLE, name: 'operations' },
    ],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  policies = new DynamoMorphPolicyStore(ddb, 'personas');
  personas = new PersonaStore(ddb, 'personas');
  operations = new DynamoOperationStore(ddb, 'operations');
  ledger = new DynamoMorphLedger(ddb, 'operations');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const policy = (name: string, spec: Record<string, unknown> = {}) =>
  MorphPolicy.parse({
    apiVersion: 'persona/v1',
    kind: 'MorphPolicy',
    metadata: { name },
    spec: { target: 'web-server', when: { schedule: { windows: [{}] } }, ...spec },
  });

describe('the morph policy store', () => {
  it('writes, replaces, lists and deletes policies beside personas, which neither list sees', async () => {
    await personas.create({
      apiVersion: 'persona/v1',
      kind: 'Persona',
      metadata: { name: 'web-peak' },
      spec: { hosts: {}, priority: 10, parameters: {} },
    } as never);
    const first = await policies.put(policy('web-a'));
    expect(first).toMatchObject({ created: true, changed: true, record: { name: 'web-a', revision: 1 } });
    const same = await policies.put(policy('web-a'));
    expect(same).toMatchObject({ created: false, changed: false, record: { revision: 1 } });
    const replaced = await policies.put(policy('web-a', { cooldownSeconds: 60 }));
    expect(replaced).toMatchObject({ created: false, changed: true, record: { revision: 2 } });
    await policies.put(policy('db-b', { target: 'database-server' }));

    expect((await policies.list()).items.map((i) => [i.name, i.target])).toEqual([
      ['db-b', 'database-server'],
      ['web-a', 'web-server'],
    ]);
    expect((await policies.loadAll()).map((p) => p.policy.spec.cooldownSeconds)).toEqual([3600, 60]);
    expect((await personas.list()).items.map((p) => p.name)).toEqual(['web-peak']);
    expect((await personas.loadAll()).map((p) => p.persona.metadata.name)).toEqual(['web-peak']);
    // A page at a time, with a cursor of its own listing only.
    const page = await policies.list({ limit: 1 });
    expect(page.items.map((i) => i.name)).toEqual(['db-b']);
    expect((await policies.list({ limit: 1, cursor: page.nextCursor })).items.map((i) => i.name)).toEqual([
      'web-a',
    ]);
    await expect(personas.list({ cursor: page.nextCursor })).rejects.toThrow(InvalidInputError);

    await policies.delete('db-b');
    await expect(policies.get('db-b')).rejects.toThrow(NotFoundError);
    await expect(policies.delete('db-b')).rejects.toThrow(NotFoundError);
  });

  it('refuses a hostile document before writing, and a stored document edited behind its back', async () => {
    await expect(policies.put({ ...policy('evil'), spec: { target: '../x' } } as never)).rejects.toThrow(
      InvalidInputError,
    );
    await expect(policies.get('evil')).rejects.toThrow(NotFoundError);
    await policies.put(policy('tampered'));
    await ddb.send(
      new UpdateCommand({
        TableName: 'personas',
        Key: { name: 'morph-policy#tampered', version: 0 },
        UpdateExpression: 'SET body = :b',
        ExpressionAttributeValues: { ':b': JSON.stringify({ ...policy('tampered'), spec: { target: 'x' } }) },
      }),
    );
    await expect(policies.get('tampered')).rejects.toThrow(CorruptMorphPolicyError);
    await policies.delete('tampered');
  });
});

describe('the morph ledger', () => {
  const documents = { put: async () => 'key' } as unknown as OperationDocuments;
  const target = TargetProfile.parse({
    apiVersion: 'persona/v1',
    kind: 'TargetProfile',
    metadata: { name: 'web-server' },
    spec: { traits: { 'web-serving': 0.9 } },
  });
  const op = (
    id: string,
    host: string,
    kind: Operation['kind'],
    status: Operation['status'],
    at: Date,
  ): Operation => ({
    id,
    kind,
    host,
    status,
    percent: 0,
    steps: [],
    createdAt: at.toISOString(),
    updatedAt: at.toISOString(),
    revision: 0,
  });

  it("notes each host's last morph as startMorph records it, and never lists it as an operation", async () => {
    const at = new Date('2026-12-01T10:00:00Z');
    await startMorph({ operations, documents, ledger, now: () => at }, 'morph-op-0001', {
      host: 'h1',
      target,
      trigger: { kind: 'schedule', policy: 'nightly' },
    });
    expect(await ledger.last('h1')).toEqual({
      host: 'h1',
      operationId: 'morph-op-0001',
      target: 'web-server',
      at: at.getTime(),
      trigger: 'schedule',
      policy: 'nightly',
    });
    // Found again (the same id): nothing noted anew; an older morph never replaces a newer one.
    await startMorph(
      { operations, documents, ledger, now: () => new Date(at.getTime() + 60_000) },
      'morph-op-0001',
      {
        host: 'h1',
        target,
        trigger: { kind: 'manual' },
      },
    );
    await ledger.note({
      host: 'h1',
      operationId: 'older',
      target: 'x',
      at: at.getTime() - 1,
      trigger: 'manual',
    });
    expect((await ledger.last('h1'))?.operationId).toBe('morph-op-0001');
    expect(await ledger.last('h2')).toBeUndefined();
    expect((await operations.list({ limit: 100 })).items.map((o) => o.id)).toEqual(['morph-op-0001']);
  });

  it('finds a morph or persona switch of the host under way among newer operations of others, within the horizon', async () => {
    const t = Date.parse('2026-12-01T12:00:00Z');
    const at = (minutes: number) => new Date(t + minutes * 60_000);
    await operations.start(op('switch-h3-run', 'h3', 'activate', 'RUNNING', at(0)));
    await operations.start(op('capture-h3-run', 'h4', 'capture', 'RUNNING', at(1)));
    await operations.start(op('morph-h4-done', 'h4', 'morph', 'SUCCEEDED', at(1)));
    // Many newer operations of other hosts: the query pages past them.
    for (let i = 0; i < 30; i++)
      await operations.start(op(`other-${i}-op`, `x${i}`, 'morph', 'RUNNING', at(2)));
    expect(await ledger.underWay('h3', t - 3600_000)).toEqual({
      id: 'switch-h3-run',
      kind: 'activate',
      status: 'RUNNING',
    });
    // A capture does not change the host, an ended morph is not under way.
    expect(await ledger.underWay('h4', t - 3600_000)).toBeUndefined();
    // Beyond the horizon it is the sweeper's, not a hold on the host.
    expect(await ledger.underWay('h3', t + 60_000)).toBeUndefined();
  });
});
