import { describe, expect, it } from 'vitest';
import { describeWorkflowError } from '../../../core/operation/tasks.js';

describe('describeWorkflowError', () => {
  it('says a Task timed out, whether Step Functions or Lambda stopped it', () => {
    expect(describeWorkflowError({ Error: 'States.Timeout' })).toEqual({
      code: 'TIMEOUT',
      message: 'timed out (States.Timeout): the step did not finish within its time limit',
    });
    const lambda = describeWorkflowError({
      Error: 'Sandbox.Timedout',
      Cause: JSON.stringify({
        errorType: 'Sandbox.Timedout',
        errorMessage: 'Task timed out after 840.00 seconds',
      }),
    });
    expect(lambda).toEqual({
      code: 'TIMEOUT',
      message: 'timed out (Sandbox.Timedout): Task timed out after 840.00 seconds',
    });
  });

  it("gives a function's error by its message, not the JSON Lambda wraps it in", () => {
    const cause = JSON.stringify({
      errorType: 'Error',
      errorMessage: 'connect ECONNREFUSED',
      trace: ['at x'],
    });
    expect(describeWorkflowError({ Error: 'Error', Cause: cause })).toEqual({
      code: 'Error',
      message: 'connect ECONNREFUSED',
    });
    expect(describeWorkflowError({})).toEqual({ code: 'INTERNAL', message: 'the workflow failed' });
  });
});
