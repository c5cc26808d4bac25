// Idempotency keys of requests that start operations.
//
// A key is claimed once, with the request's fingerprint (method and route as declared, the path
// parameters, the canonical hash of the body), in a record of its own that expires: the same key
// with the same request answers the operation the first request started; with another route,
// host or body it is refused (IdempotencyKeyReusedError, 422) rather than answered with another
// request's operation. The claim is one conditional write, so concurrent retries get one
// operation; the operation id is drawn at the claim and kept in the record, so a key that has
// expired and is sent again names a new operation, not the old one.
//
// Why a fingerprint of our own rather than Powertools Idempotency: Powertools keeps a copy of the
// handler's first response and replays it, but the answer to a retried start is the operation as
// it is now (RUNNING, then SUCCEEDED), which the operations table already holds; it would add a
// table and an INPROGRESS state whose refusals (a concurrent retry) we would have to map again,
// and it validates the payload only as a whole, where the caller needs to be told whether the
// route, the host or the body differs. The record here is one more item in the operations table.
import { createHash, randomUUID } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, IdempotencyKeyReusedError } from '../errors.js';
import { OPERATIONS_TABLE } from '../storage/definitions.js';
import type { Operation } from './schema.js';
import type { OperationStore } from './store.js';

/** How long a key names its request; after that the same key starts a new operation. */
export const IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 60 * 60;

/** What a client may choose as a key: a UUID fits. */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_-]{8,80}$/;

/** The attribute (epoch seconds) DynamoDB's TTL deletes key records by. */
export const EXPIRES_AT = OPERATIONS_TABLE.timeToLiveAttribute;

export interface Idempotency {
  /** `<route>#<host>#<caller digest>#<key>` */
  readonly scopedKey: string;
  /** The id of the operation this request starts or finds. */
  readonly operationId: string;
  /** SHA-256 of the request (canonical JSON), kept to recognise a key reused for another request. */
  readonly requestHash: string;
}

/** A UUID-shaped id (version 8: name-based, SHA-256) from the scoped key. */
export function operationIdFor(scopedKey: string): string {
  const b = createHash('sha256').update(scopedKey, 'utf8').digest().subarray(0, 16);
  b[6] = ((b[6] as number) & 0x0f) | 0x80;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** SHA-256 of the value as JSON with object keys sorted, so that key order does not matter. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The store as one request sees it: the operation it starts carries the request's scoped key
 * and fingerprint, and an existing operation found under its id must carry the same scoped key.
 */
export function withIdempotency(store: OperationStore, idem: Idempotency): OperationStore {
  return {
    async start(operation: Operation) {
      const started = await store.start({
        ...operation,
        idempotencyKey: idem.scopedKey,
        requestHash: idem.requestHash,
      });
      if (!started.created && started.operation.idempotencyKey !== idem.scopedKey) {
        throw new ConflictError(`operation ${operation.id} was started by another request`);
      }
      return started;
    },
    get: (id) => store.get(id),
    step: (id, name, status, now, detail) => store.step(id, name, status, now, detail),
    finish: (id, outcome, now) => store.finish(id, outcome, now),
    requestCancel: (id, now) => store.requestCancel(id, now),
    list: (query) => store.list(query),
  };
}

/**
 * Who sent a request, as keys are scoped to it: an IAM principal's ARN, an assumed role's
 * without its session name (a caller whose credentials were refreshed between a request and
 * its retry is the same caller), or one name for every caller where there is no identity (the
 * embedded runtime, unsigned).
 */
export function callerScope(identity: { readonly userArn?: string | null } | null | undefined): string {
  const arn = identity?.userArn ?? '';
  const role = /^(arn:[a-z-]+:sts::\d{12}:assumed-role\/[^/]+)\/.+$/.exec(arn);
  if (role) return role[1] as string;
  return arn === '' ? 'anonymous' : arn;
}

/** A request that carries an Idempotency-Key, as the claim compares it. */
export interface IdempotentRequest {
  /** callerScope of the request's identity: another caller's same key is another key. */
  readonly caller: string;
  /** The method and the route as declared, e.g. `POST /hosts/{host}/capture`. */
  readonly route: string;
  /** The host (for a clone: the source Profile) the operation concerns. */
  readonly host: string;
  /** The path parameters, as validated. */
  readonly params: Readonly<Record<string, unknown>>;
  /** The body as validated (defaults filled), so that `{}` and no body are the same request. */
  readonly body: unknown;
  /** The Idempotency-Key header as sent. */
  readonly key: string;
}

/** A claimed key as it is stored. */
export interface IdempotencyRecord {
  readonly key: string;
  readonly caller: string;
  readonly route: string;
  readonly host: string;
  readonly requestHash: string;
  readonly operationId: string;
  readonly createdAt: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

export interface IdempotencyKeys {
  /**
   * Stores `record` unless its key is held by a record that has not expired; returns the record
   * that holds the key.
   */
  claim(record: IdempotencyRecord, now: Date): Promise<IdempotencyRecord>;
}

/** The request's fingerprint: method and route, path parameters and body, canonically hashed. */
export function requestFingerprint(request: Omit<IdempotentRequest, 'key' | 'host' | 'caller'>): string {
  return fingerprint({
    route: request.route,
    params: request.params,
    body: fingerprint(request.body ?? null),
  });
}

/**
 * Claims the request's key: the first request draws the operation id, a retry of the same
 * request gets it back, and another request with the same key is refused naming what differs.
 */
export async function claimIdempotencyKey(
  keys: IdempotencyKeys,
  request: IdempotentRequest,
  now: Date = new Date(),
  ttlSeconds: number = IDEMPOTENCY_KEY_TTL_SECONDS,
): Promise<Idempotency> {
  const requestHash = requestFingerprint(request);
  const held = await keys.claim(
    {
      key: request.key,
      caller: request.caller,
      route: request.route,
      host: request.host,
      requestHash,
      operationId: randomUUID(),
      createdAt: now.toISOString(),
      expiresAt: Math.floor(now.getTime() / 1000) + ttlSeconds,
    },
    now,
  );
  const route = request.route;
  const differs =
    held.route !== route
      ? 'route'
      : held.host !== request.host
        ? 'host'
        : held.requestHash !== requestHash
          ? 'body'
          : undefined;
  if (differs !== undefined) {
    throw new IdempotencyKeyReusedError(
      `Idempotency-Key ${request.key} was first sent with another ${differs}${differs === 'body' ? '' : ` (${differs === 'route' ? held.route : held.host})`}: send a new key for a new request`,
      differs,
    );
  }
  return {
    scopedKey: `${route}#${request.host}#${callerDigest(request.caller)}#${request.key}`,
    operationId: held.operationId,
    requestHash,
  };
}

/** The caller in an item's key: a digest, so that an ARN's length and characters do not matter. */
const callerDigest = (caller: string) =>
  createHash('sha256').update(caller, 'utf8').digest('base64url').slice(0, 22);

/** Key records as items of the operations table: `id` is `idempotency-key#<caller digest>#<key>`. */
export class DynamoIdempotencyKeys implements IdempotencyKeys {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async claim(record: IdempotencyRecord, now: Date): Promise<IdempotencyRecord> {
    const id = `idempotency-key#${callerDigest(record.caller)}#${record.key}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ddb.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { id, ...record },
            // TTL deletes an expired item days late at worst: one past its time is free to claim.
            ConditionExpression: 'attribute_not_exists(id) OR #e < :now',
            ExpressionAttributeNames: { '#e': EXPIRES_AT },
            ExpressionAttributeValues: { ':now': Math.floor(now.getTime() / 1000) },
          }),
        );
        return record;
      } catch (cause) {
        if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      }
      const out = await this.ddb.send(
        new GetCommand({ TableName: this.tableName, Key: { id }, ConsistentRead: true }),
      );
      // Gone between the write and the read (it expired and TTL removed it): claim again.
      if (out.Item === undefined && attempt < 3) continue;
      if (out.Item === undefined) throw new ConflictError(`Idempotency-Key ${record.key} is being claimed`);
      const { id: _id, ...held } = out.Item;
      return held as IdempotencyRecord;
    }
  }
}
