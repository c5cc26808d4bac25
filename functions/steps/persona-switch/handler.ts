import { failSwitch, rollbackSwitch, runSwitchStep, SWITCH_STEPS } from '../../../core/persona/switch.js';
import { personaSwitchDeps } from '../../shared/persona-switch.js';
import { workflowTask } from '../../shared/workflow-task.js';

export const { handler, main } = workflowTask({
  steps: SWITCH_STEPS,
  deps: personaSwitchDeps,
  run: runSwitchStep,
  rollback: rollbackSwitch,
  fail: failSwitch,
  rolledBack: (done) => ({ reverted: done.reverted, failures: done.failures.length }),
});
