// Agent credentials on DynamoDB Local: only a hash of the secret is stored, a token verifies
// for its own host only, a refusal does not say whether the id exists, and a revocation holds
// from the very next check.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForbiddenError, UnauthorizedError } from '../../../core/errors.js';
import {
  authenticateAgent,
  DynamoAgentCredentials,
  requireOwnHost,
} from '../../../core/persona/agent/credentials.js';
import { AGENTS_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let credentials: DynamoAgentCredentials;
const now = new Date('2026-12-01T12:00:00Z');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-agents-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: AGENTS_TABLE, name: 'agents' }],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
  );
  credentials = new DynamoAgentCredentials(ddb, 'agents');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<string> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UnauthorizedError);
  return (error as Error).message;
}

describe('agent credentials', () => {
  it('issues a token of a public id and a 32-byte secret, and stores only the hash of the secret', async () => {
    const { id, token } = await credentials.issue('web-1', now);
    expect(token).toMatch(/^agt_[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(token.startsWith(`${id}.`)).toBe(true);
    const secret = token.slice(id.length + 1);
    const { Items = [] } = await ddb.send(new ScanCommand({ TableName: 'agents' }));
    const item = Items.find((i) => i.id === id);
    expect(item).toMatchObject({ id, host: 'web-1', createdAt: now.toISOString() });
    expect(item?.secretHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(Items)).not.toContain(secret);
  });

  it('verifies a token as its host and id', async () => {
    const { id, token } = await credentials.issue('web-2', now);
    await expect(credentials.verify(token, now)).resolves.toEqual({ principal: 'agent', host: 'web-2', id });
    await expect(authenticateAgent(credentials, `Bearer ${token}`, now)).resolves.toMatchObject({
      host: 'web-2',
    });
  });

  it('refuses a wrong secret and an unknown id with the same words', async () => {
    const { id, token } = await credentials.issue('web-3', now);
    const wrongSecret = `${id}.${'A'.repeat(43)}`;
    const unknownId = `agt_${'B'.repeat(16)}.${token.slice(id.length + 1)}`;
    const a = await refusal(credentials.verify(wrongSecret, now));
    const b = await refusal(credentials.verify(unknownId, now));
    expect(a).toBe(b);
    await refusal(credentials.verify('not a token', now));
    await refusal(authenticateAgent(credentials, undefined, now));
    await refusal(authenticateAgent(credentials, `Basic ${token}`, now));
    await refusal(authenticateAgent(credentials, `Bearer ${token} extra`, now));
  });

  it('refuses a revoked credential at the next check, and revokes only the host it names', async () => {
    const first = await credentials.issue('db-1', now);
    const second = await credentials.issue('db-1', now);
    const other = await credentials.issue('db-2', now);
    expect(await credentials.revoke('db-1', now, { keep: second.id })).toEqual([first.id]);
    await refusal(credentials.verify(first.token, now));
    await expect(credentials.verify(second.token, now)).resolves.toMatchObject({ host: 'db-1' });
    expect(await credentials.revoke('db-1', now)).toEqual([second.id]);
    await refusal(credentials.verify(second.token, now));
    await expect(credentials.verify(other.token, now)).resolves.toMatchObject({ host: 'db-2' });
    const listed = await credentials.list('db-1');
    expect(listed.map((r) => r.revokedAt)).toEqual([now.toISOString(), now.toISOString()]);
    expect(await credentials.revoke('db-1', now)).toEqual([]);
  });

  it('refuses an agent acting for another host with FORBIDDEN', () => {
    expect(() => requireOwnHost({ host: 'web-1' }, 'web-1', 'host')).not.toThrow();
    expect(() => requireOwnHost({ host: 'web-1' }, 'web-2', 'host')).toThrow(ForbiddenError);
  });
});
