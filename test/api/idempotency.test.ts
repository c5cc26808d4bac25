// Idempotency-Key claims on DynamoDB Local: the records the start functions keep beside the
// operations, compared with each request that carries a key.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyKeyReusedError } from '../../core/errors.js';
import {
  callerScope,
  claimIdempotencyKey,
  DynamoIdempotencyKeys,
  IDEMPOTENCY_KEY_TTL_SECONDS,
  type IdempotentRequest,
} from '../../core/operation/idempotency.js';
import { DynamoOperationStore } from '../../core/operation/store.js';
import { OPERATIONS_TABLE } from '../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let keys: DynamoIdempotencyKeys;
const table = 'operations-idempotency';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-idem-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: OPERATIONS_TABLE, name: table }],
    buckets: [],
  });
  client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  keys = new DynamoIdempotencyKeys(doc, table);
});

afterAll(async () => {
  client?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const OPERATOR = 'arn:aws:sts::123456789012:assumed-role/PlatformOperator';

const capture = (
  key: string,
  host = 'web-1',
  body: unknown = { acceptNewHostKey: false },
  caller = OPERATOR,
): IdempotentRequest => ({
  caller,
  route: 'POST /hosts/{host}/capture',
  host,
  params: { host },
  body,
  key,
});

const keyItemId = (key: string, caller = OPERATOR) =>
  `idempotency-key#${createHash('sha256').update(caller, 'utf8').digest('base64url').slice(0, 22)}#${key}`;

const refusal = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(IdempotencyKeyReusedError);
  return e as IdempotencyKeyReusedError;
};

describe('Idempotency-Key claims', () => {
  it('gives the same request with the same key the operation id of the first, whatever its field order', async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    const first = await claimIdempotencyKey(
      keys,
      capture('same-request-1', 'web-1', { a: 1, b: [1, 2] }),
      now,
    );
    const again = await claimIdempotencyKey(
      keys,
      capture('same-request-1', 'web-1', { b: [1, 2], a: 1 }),
      now,
    );
    expect(again).toEqual(first);
    expect(first.operationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.scopedKey).toMatch(
      /^POST \/hosts\/\{host\}\/capture#web-1#[A-Za-z0-9_-]{22}#same-request-1$/,
    );
  });

  it('refuses the same key for another host, naming it, and leaves the first claim as it was', async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    const first = await claimIdempotencyKey(keys, capture('hostile-host-1', 'web-1'), now);
    const e = await refusal(claimIdempotencyKey(keys, capture('hostile-host-1', 'web-2'), now));
    expect(e.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(e.differs).toBe('host');
    expect(e.message).toMatch(/another host \(web-1\)/);
    const stored = await doc.send(
      new GetCommand({ TableName: table, Key: { id: keyItemId('hostile-host-1') } }),
    );
    expect(stored.Item).toMatchObject({ host: 'web-1', operationId: first.operationId });
    // The first request's retry is still answered with its own operation.
    expect((await claimIdempotencyKey(keys, capture('hostile-host-1', 'web-1'), now)).operationId).toBe(
      first.operationId,
    );
  });

  it('refuses the same key for another route or another body', async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    await claimIdempotencyKey(keys, capture('other-route-1'), now);
    const route = await refusal(
      claimIdempotencyKey(
        keys,
        { ...capture('other-route-1'), route: 'POST /hosts/{host}/morph', body: { target: 'x' } },
        now,
      ),
    );
    expect(route.differs).toBe('route');
    const body = await refusal(
      claimIdempotencyKey(keys, capture('other-route-1', 'web-1', { acceptNewHostKey: true }), now),
    );
    expect(body.differs).toBe('body');
  });

  it('expires a key: its record carries the TTL attribute, and once past it the key names a new operation', async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    const first = await claimIdempotencyKey(keys, capture('expiring-key-1'), now);
    const stored = await doc.send(
      new GetCommand({ TableName: table, Key: { id: keyItemId('expiring-key-1') } }),
    );
    expect(stored.Item?.expiresAt).toBe(Math.floor(now.getTime() / 1000) + IDEMPOTENCY_KEY_TTL_SECONDS);

    const justBefore = new Date(now.getTime() + (IDEMPOTENCY_KEY_TTL_SECONDS - 1) * 1000);
    expect((await claimIdempotencyKey(keys, capture('expiring-key-1'), justBefore)).operationId).toBe(
      first.operationId,
    );
    // Expired but not yet deleted (TTL deletes late): free to claim, for any request.
    const later = new Date(now.getTime() + (IDEMPOTENCY_KEY_TTL_SECONDS + 1) * 1000);
    const reclaimed = await claimIdempotencyKey(keys, capture('expiring-key-1', 'web-9'), later);
    expect(reclaimed.operationId).not.toBe(first.operationId);
  });

  it('gives concurrent first requests with one key one operation', async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    const claims = await Promise.all(
      Array.from({ length: 8 }, () => claimIdempotencyKey(keys, capture('concurrent-key-1'), now)),
    );
    expect(new Set(claims.map((c) => c.operationId)).size).toBe(1);
  });

  it('keeps key records out of the operations: listing them shows none', async () => {
    const ops = new DynamoOperationStore(doc, table);
    await claimIdempotencyKey(keys, capture('not-listed-1'), new Date());
    const page = await ops.list({ limit: 100 });
    expect(page.items.some((o) => String(o.id).startsWith('idempotency-key#'))).toBe(false);
  });

  it("keeps one caller's key from naming another caller's operation, whatever the body", async () => {
    const now = new Date('2026-12-01T10:00:00Z');
    const mine = await claimIdempotencyKey(keys, capture('shared-key-1'), now);
    const theirs = await claimIdempotencyKey(
      keys,
      capture('shared-key-1', 'web-1', { acceptNewHostKey: false }, 'arn:aws:iam::123456789012:user/ci'),
      now,
    );
    expect(theirs.operationId).not.toBe(mine.operationId);
    expect(theirs.scopedKey).not.toBe(mine.scopedKey);
    // Another caller's other body is not a reuse of this caller's key either.
    const other = await claimIdempotencyKey(
      keys,
      capture('shared-key-1', 'web-2', {}, 'arn:aws:iam::123456789012:user/someone'),
      now,
    );
    expect(other.operationId).not.toBe(mine.operationId);
    // The first caller's retry still finds its own.
    expect((await claimIdempotencyKey(keys, capture('shared-key-1'), now)).operationId).toBe(
      mine.operationId,
    );
  });
});

describe('the caller a key belongs to', () => {
  it('is an assumed role without its session, a user as it is, and one name where there is no identity', () => {
    expect(
      callerScope({ userArn: 'arn:aws:sts::123456789012:assumed-role/PlatformOperator/alice-1733011200' }),
    ).toBe(OPERATOR);
    expect(
      callerScope({ userArn: 'arn:aws-us-gov:sts::123456789012:assumed-role/Ops/botocore-session-1' }),
    ).toBe('arn:aws-us-gov:sts::123456789012:assumed-role/Ops');
    expect(callerScope({ userArn: 'arn:aws:iam::123456789012:user/ci' })).toBe(
      'arn:aws:iam::123456789012:user/ci',
    );
    expect(callerScope({})).toBe('anonymous');
    expect(callerScope(undefined)).toBe('anonymous');
  });
});
