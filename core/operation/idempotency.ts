// Idempotency keys of requests that start operations. A key is scoped to the route and the
// host it was sent to, and the operation id is derived from the scoped key: a retried request
// finds the operation it started, and the same key sent elsewhere names another operation.
// The id being the table's key, one conditional write both claims the key and creates the
// operation, so concurrent retries cannot start two.
import { createHash } from 'node:crypto';
import { ConflictError } from '../errors.js';
import type { Operation } from './schema.js';
import type { OperationStore } from './store.js';

export interface IdempotencyScope {
  /** The route as declared, e.g. `POST /hosts/{host}/capture`. */
  readonly route: string;
  readonly host: string;
  /** The Idempotency-Key header as sent. */
  readonly key: string;
}

export interface Idempotency {
  /** `<route>#<host>#<key>` */
  readonly scopedKey: string;
  /** The id of the operation this request starts or finds. */
  readonly operationId: string;
  /** SHA-256 of the request (canonical JSON), kept to recognise a key reused for another request. */
  readonly requestHash: string;
}

export function idempotency(scope: IdempotencyScope, request: unknown): Idempotency {
  const scopedKey = `${scope.route}#${scope.host}#${scope.key}`;
  return { scopedKey, operationId: operationIdFor(scopedKey), requestHash: fingerprint(request) };
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
