// How a failed operation ends, as the clone, the persona switch and the morph end theirs: the
// reason read from what Step Functions caught, FAILED before anything changed, ROLLED_BACK or
// FAILED with ROLLBACK_INCOMPLETE after a rollback, and an ended operation left as it ended.
import { describe, expect, it } from 'vitest';
import { endAfterRollback, failBeforeChange, reasonOf } from '../../../core/operation/endings.js';
import type { Operation, OperationOutcome, StepStatus } from '../../../core/operation/schema.js';

function store(status: Operation['status'] = 'RUNNING') {
  const op = {
    id: 'op-1',
    kind: 'clone',
    status,
    steps: [
      { name: 'validate', status: 'SUCCEEDED' },
      { name: 'apply', status: 'RUNNING' },
    ],
  } as unknown as Operation;
  const steps: [string, StepStatus, string | undefined][] = [];
  const ends: OperationOutcome[] = [];
  return {
    steps,
    ends,
    get: async () => op,
    step: async (_id: string, name: string, s: StepStatus, _now: Date, detail?: string) => {
      steps.push([name, s, detail]);
      return op;
    },
    finish: async (_id: string, outcome: OperationOutcome) => {
      ends.push(outcome);
      return { ...op, status: outcome.status } as Operation;
    },
  };
}

const now = () => new Date('2026-12-01T00:00:00Z');

describe('the reason of a caught error', () => {
  it('takes a domain code as thrown and the message from a Lambda error’s JSON cause', () => {
    expect(
      reasonOf({ Error: 'CONFLICT', Cause: JSON.stringify({ errorMessage: 'the target changed' }) }),
    ).toEqual({ code: 'CONFLICT', message: 'the target changed' });
  });

  it('names a time-out, maps a workflow’s own error names, and falls back to the name or INTERNAL', () => {
    expect(reasonOf({ Error: 'States.Timeout', Cause: '' })).toEqual({ code: 'TIMEOUT', message: 'TIMEOUT' });
    expect(
      reasonOf(
        { Error: 'MorphRegressionError', Cause: 'p99 doubled' },
        { MorphRegressionError: 'REGRESSION' },
      ),
    ).toEqual({
      code: 'REGRESSION',
      message: 'p99 doubled',
    });
    expect(reasonOf({ Error: 'TypeError', Cause: 'not JSON {' })).toEqual({
      code: 'TypeError',
      message: 'not JSON {',
    });
    expect(reasonOf({})).toEqual({ code: 'INTERNAL', message: 'INTERNAL' });
  });
});

describe('ending an operation', () => {
  it('fails before any change: the running step and the operation FAILED, after what must go first', async () => {
    const s = store();
    const order: string[] = [];
    const { ended } = await failBeforeChange(
      s,
      'op-1',
      { Error: 'INVALID_INPUT', Cause: 'no such profile' },
      {
        firstStep: 'validate',
        now,
        before: async () => {
          order.push('before');
        },
      },
    );
    expect(ended).toBe(true);
    expect(order).toEqual(['before']);
    expect(s.steps).toEqual([['apply', 'FAILED', 'no such profile']]);
    expect(s.ends).toEqual([
      { status: 'FAILED', error: { code: 'INVALID_INPUT', message: 'no such profile', step: 'apply' } },
    ]);
  });

  it('leaves an operation that has ended as it ended', async () => {
    const s = store('SUCCEEDED');
    const { ended, operation } = await failBeforeChange(
      s,
      'op-1',
      { Error: 'X' },
      { firstStep: 'validate', now },
    );
    expect(ended).toBe(false);
    expect(operation.status).toBe('SUCCEEDED');
    expect(s.steps).toEqual([]);
    expect(s.ends).toEqual([]);
  });

  it('ends ROLLED_BACK when the rollback put everything back, FAILED ROLLBACK_INCOMPLETE naming what it did not', async () => {
    const clean = store();
    await endAfterRollback(clean, 'op-1', {
      failedStep: 'apply',
      reason: { code: 'CONFLICT', message: 'sysctl failed' },
      reverted: 3,
      problems: [],
      incomplete: 'did not bring the target back',
      now,
    });
    expect(clean.ends).toEqual([
      {
        status: 'ROLLED_BACK',
        error: { code: 'CONFLICT', message: 'sysctl failed', step: 'apply' },
        result: { rollback: 'operations/op-1/rollback.json', reverted: 3 },
      },
    ]);
    const partial = store();
    await endAfterRollback(partial, 'op-1', {
      failedStep: 'apply',
      reason: { code: 'CONFLICT', message: 'sysctl failed' },
      reverted: 2,
      problems: ['a 1', 'b 2', 'c 3', 'd 4', 'e 5', 'f 6'],
      incomplete: 'did not bring the target back',
      now,
    });
    expect(partial.ends[0]).toMatchObject({
      status: 'FAILED',
      error: {
        code: 'ROLLBACK_INCOMPLETE',
        message:
          'apply failed (sysctl failed) and the rollback did not bring the target back: a 1; b 2; c 3; d 4; e 5',
        step: 'apply',
      },
    });
    expect(partial.steps).toEqual([['apply', 'FAILED', 'sysctl failed']]);
  });
});
