// Who applies a host's persona when it has an agent: the switch does, on a decision; the agent is
// assigned only what a completed switch recorded (Record's default item), never the persona
// state evaluation writes before it starts a switch (or a rollback puts back after). On
// DynamoDB Local, with the switch's own defaults store as the writer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assignment,
  assignmentText,
  DynamoRecordedPersonas,
  personaAssignments,
} from '../../../core/persona/agent/assignment.js';
import { EMPTY_DEFAULTS } from '../../../core/persona/parameters.js';
import { API_VERSION, Persona } from '../../../core/persona/schema.js';
import { HostPersonaStore } from '../../../core/persona/state.js';
import { DynamoDefaultsStore } from '../../../core/persona/switch.js';
import { HOST_PERSONAS_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let states: HostPersonaStore;
let defaults: DynamoDefaultsStore;
let recorded: DynamoRecordedPersonas;

const persona = (name: string, ttl: string) =>
  Persona.parse({
    apiVersion: API_VERSION,
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: { names: ['web-1'] }, parameters: { sysctl: { 'net.ipv4.ip_default_ttl': ttl } } },
  });
const versions = new Map([
  ['peak@1', persona('peak', '99')],
  ['burst@1', persona('burst', '120')],
  [
    'office@1',
    Persona.parse({
      apiVersion: API_VERSION,
      kind: 'Persona',
      metadata: { name: 'office' },
      spec: {
        hosts: { names: ['web-4'] },
        parameters: { sysctl: { 'net.core.somaxconn': '4096' } },
        criteria: { schedule: { timezone: 'Europe/Paris', windows: [{ start: '08:00', end: '19:00' }] } },
        override: 'enforced',
      },
    }),
  ],
]);
const store = {
  async getVersion(name: string, version: number) {
    const found = versions.get(`${name}@${version}`);
    if (found === undefined) throw new Error(`no ${name} version ${version}`);
    return { persona: found, version: { version } };
  },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-assignment-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: HOST_PERSONAS_TABLE, name: 'host-personas' }],
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
  states = new HostPersonaStore(ddb, 'host-personas');
  defaults = new DynamoDefaultsStore(ddb, 'host-personas');
  recorded = new DynamoRecordedPersonas(ddb, 'host-personas');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** What the switch's Record step saves: the persona the host now has. */
async function record(host: string, current: { name: string; version: number } | null) {
  const stored = await defaults.get(host);
  await defaults.put(host, { defaults: EMPTY_DEFAULTS, applied: stored.applied, current }, stored.revision);
}

const assignedTo = async (host: string, now?: number) =>
  assignment(host, await personaAssignments(recorded, store).assigned(host, now));

describe('the agent assignment follows what a completed switch recorded', () => {
  it('assigns nothing while evaluation has decided a persona whose switch has not recorded it', async () => {
    // Evaluation writes the state first, then starts the switch.
    await states.save({ host: 'web-1', current: 'peak', currentVersion: 1, since: Date.now() }, undefined);
    expect(await assignedTo('web-1')).toMatchObject({ persona: null, entries: [] });
  });

  it("assigns the persona once Record saved it, with that version's host-local entries", async () => {
    await record('web-1', { name: 'peak', version: 1 });
    expect(await assignedTo('web-1')).toMatchObject({
      persona: 'peak',
      version: 1,
      entries: [{ kind: 'sysctl', key: 'net.ipv4.ip_default_ttl', value: '99' }],
    });
  });

  it('keeps the previous persona while the next switch is in flight, and after it rolled back', async () => {
    const before = await assignedTo('web-1');
    const read = await states.get('web-1');
    await states.save({ host: 'web-1', current: 'burst', currentVersion: 1, since: Date.now() + 1 }, read);
    expect(await assignedTo('web-1')).toEqual(before);
    // The switch rolled back: the state is put back; the assignment never moved.
    const inFlight = await states.get('web-1');
    await states.save({ host: 'web-1', current: 'peak', currentVersion: 1, since: Date.now() + 2 }, inFlight);
    expect(await assignedTo('web-1')).toEqual(before);
  });

  it('assigns nothing once a revert to the default is recorded', async () => {
    await record('web-1', null);
    expect(await assignedTo('web-1')).toMatchObject({ persona: null, version: 0, entries: [] });
  });

  it('refuses a recorded persona that is not a name and version rather than assigning something else', async () => {
    await ddb.send(
      new PutCommand({
        TableName: 'host-personas',
        Item: { host: 'web-2', sk: 'default', current: '{"name":"peak"}', revision: 1 },
      }),
    );
    await expect(recorded.current('web-2')).rejects.toThrow(/web-2 is not a persona name and version/);
    expect(await recorded.current('web-3')).toBeNull();
  });
});

describe("what an agent is told an operator's change is owed", () => {
  it("carries the persona's override and its next window edge, which do not change the revision", async () => {
    await record('web-4', { name: 'office', version: 1 });
    // 2026-12-01 10:00 in Paris (UTC+1): the window ends at 19:00 Paris, 18:00 UTC.
    const morning = await assignedTo('web-4', Date.parse('2026-12-01T09:00:00Z'));
    expect(morning).toMatchObject({
      override: 'enforced',
      retainUntil: Date.parse('2026-12-01T18:00:00Z') / 1000,
    });
    // In the evening the next edge is the next morning's start; the entries are the same.
    const evening = await assignedTo('web-4', Date.parse('2026-12-01T20:00:00Z'));
    expect(evening.retainUntil).toBe(Date.parse('2026-12-02T07:00:00Z') / 1000);
    expect(evening.revision).toBe(morning.revision);
  });

  it('names no edge for a persona without a schedule, and retain when the persona says nothing', async () => {
    await record('web-5', { name: 'peak', version: 1 });
    expect(await assignedTo('web-5')).toMatchObject({ override: 'retain', retainUntil: null });
    expect(await assignedTo('web-6')).toMatchObject({ persona: null, override: 'retain', retainUntil: null });
  });

  it('writes the override line in format 2 only, for the agents that read it', async () => {
    const a = await assignedTo('web-4', Date.parse('2026-12-01T09:00:00Z'));
    const v2 = assignmentText(a).split('\n');
    expect(v2.slice(0, 3)).toEqual([
      'persona-assignment 2',
      `persona\toffice\t1\t${a.revision}`,
      `override\tenforced\t${Date.parse('2026-12-01T18:00:00Z') / 1000}`,
    ]);
    const v1 = assignmentText(a, 1).split('\n');
    expect(v1[0]).toBe('persona-assignment 1');
    expect(v1.some((l) => l.startsWith('override'))).toBe(false);
    expect(v1.slice(2)).toEqual(v2.slice(3));
    const none = await assignedTo('web-6');
    expect(assignmentText(none).split('\n')[2]).toBe('override\tretain\t0');
  });
});
