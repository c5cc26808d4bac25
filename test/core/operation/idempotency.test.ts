import { describe, expect, it } from 'vitest';
import { OperationParams } from '../../../core/api/schemas.js';
import { fingerprint, operationIdFor } from '../../../core/operation/idempotency.js';

// Operation ids drawn from a scoped key: what starting a persona switch under an idempotency
// key (evaluation's switch key, a drift restore's) relies on.
describe('operation ids from a scoped key', () => {
  it('gives the same scoped key the same id, a UUID the operation routes accept', () => {
    const a = operationIdFor('persona-switch#web-1#persona-abc');
    expect(operationIdFor('persona-switch#web-1#persona-abc')).toBe(a);
    expect(OperationParams.safeParse({ id: a }).success).toBe(true);
  });

  it('names another operation for another host or key, however the separators fall', () => {
    const ids = new Set(
      [
        'persona-switch#web-1#persona-abc',
        'persona-switch#web-2#persona-abc',
        'persona-switch#web-1#persona-abd',
        'persona-switch#web-1a#persona-bc',
      ].map(operationIdFor),
    );
    expect(ids.size).toBe(4);
  });

  it('fingerprints the request whatever the order of its fields, and tells different requests apart', () => {
    expect(fingerprint({ a: 1, b: { c: [1, 2], d: true } })).toBe(
      fingerprint({ b: { d: true, c: [1, 2] }, a: 1 }),
    );
    expect(fingerprint({ acceptNewHostKey: true })).not.toBe(fingerprint({ acceptNewHostKey: false }));
    expect(fingerprint({ a: [1, 2] })).not.toBe(fingerprint({ a: [2, 1] }));
  });
});
