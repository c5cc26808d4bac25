import { failClone, rollbackClone, runCloneStep } from '../../../core/clone/workflow.js';
import { cloneDeps } from '../../shared/clone.js';
import { workflowTask } from '../../shared/workflow-task.js';

export const { handler, main } = workflowTask({
  // Poll is a step of the workflow that the operation record does not list (it repeats).
  steps: ['validate', 'provision', 'poll', 'baseline', 'plan', 'apply', 'start', 'verify', 'record'],
  deps: cloneDeps,
  run: runCloneStep,
  rollback: rollbackClone,
  fail: failClone,
  rolledBack: (done) => ({ reverted: done.reverted, verified: done.verified }),
});
