import { describe, expect, it } from 'vitest';
import { OperationParams } from '../../../core/api/schemas.js';
import { fingerprint, idempotency } from '../../../core/operation/idempotency.js';

const CAPTURE = 'POST /hosts/{host}/capture';

describe('idempotency keys', () => {
  it('gives a retried request the operation id it had the first time', () => {
    const a = idempotency({ route: CAPTURE, host: 'web-1', key: 'nightly-2026-12-01' }, {});
    const b = idempotency({ route: CAPTURE, host: 'web-1', key: 'nightly-2026-12-01' }, {});
    expect(b).toEqual(a);
    expect(a.scopedKey).toBe('POST /hosts/{host}/capture#web-1#nightly-2026-12-01');
    expect(OperationParams.safeParse({ id: a.operationId }).success).toBe(true);
  });

  it('names another operation when the same key is sent to another host or route', () => {
    const ids = new Set(
      [
        { route: CAPTURE, host: 'web-1', key: 'nightly-2026-12-01' },
        { route: CAPTURE, host: 'web-2', key: 'nightly-2026-12-01' },
        { route: 'POST /hosts/{host}/clone', host: 'web-1', key: 'nightly-2026-12-01' },
        { route: CAPTURE, host: 'web-1', key: 'nightly-2026-12-02' },
      ].map((scope) => idempotency(scope, {}).operationId),
    );
    expect(ids.size).toBe(4);
  });

  it('cannot be made to collide by moving the separator between host and key', () => {
    const a = idempotency({ route: CAPTURE, host: 'web-1', key: 'a_b-12345' }, {});
    const b = idempotency({ route: CAPTURE, host: 'web-1a', key: '_b-12345' }, {});
    // Host names and keys cannot contain "#", so the scoped keys differ and so do the ids.
    expect(a.scopedKey).not.toBe(b.scopedKey);
    expect(a.operationId).not.toBe(b.operationId);
  });

  it('fingerprints the request whatever the order of its fields, and tells different requests apart', () => {
    expect(fingerprint({ a: 1, b: { c: [1, 2], d: true } })).toBe(
      fingerprint({ b: { d: true, c: [1, 2] }, a: 1 }),
    );
    expect(fingerprint({ acceptNewHostKey: true })).not.toBe(fingerprint({ acceptNewHostKey: false }));
    expect(fingerprint({ a: [1, 2] })).not.toBe(fingerprint({ a: [2, 1] }));
  });
});
