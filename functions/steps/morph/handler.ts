import { failMorph, MORPH_STEPS, rollbackMorph, runMorphStep } from '../../../core/morph/workflow.js';
import { workflowTask } from '../../shared/workflow-task.js';
import { morphDeps } from './deps.js';

export const { handler, main } = workflowTask({
  steps: MORPH_STEPS,
  deps: morphDeps,
  run: runMorphStep,
  rollback: rollbackMorph,
  fail: failMorph,
  rolledBack: (done) => ({ reverted: done.reverted, failures: done.failures.length }),
});
