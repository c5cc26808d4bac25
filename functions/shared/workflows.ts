// Starting workflows: Step Functions in AWS; the embedded runtime registers its own starter.
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { WorkflowName, WorkflowStarter } from '../../core/operation/workflows.js';
import { getRequiredEnv, traced } from './runtime.js';

let starter: WorkflowStarter | undefined;

/** The embedded runtime executes workflows itself and says so here. */
export function useWorkflowStarter(local: WorkflowStarter): void {
  starter = local;
}

export function workflows(): WorkflowStarter {
  if (starter === undefined) {
    const sfn = traced(new SFNClient({}));
    const arns: Record<WorkflowName, string> = {
      capture: process.env.CAPTURE_STATE_MACHINE_ARN ?? '',
      clone: process.env.CLONE_STATE_MACHINE_ARN ?? '',
      'persona-switch': process.env.PERSONA_SWITCH_STATE_MACHINE_ARN ?? '',
      morph: process.env.MORPH_STATE_MACHINE_ARN ?? '',
    };
    starter = {
      async start(workflow, input) {
        // Each starting function is given the one state machine it starts.
        if (!arns[workflow])
          getRequiredEnv(`${workflow.toUpperCase().replaceAll('-', '_')}_STATE_MACHINE_ARN`);
        try {
          // Named after the operation: Step Functions itself refuses to start it twice.
          await sfn.send(
            new StartExecutionCommand({
              stateMachineArn: arns[workflow],
              name: input.operationId,
              input: JSON.stringify(input),
            }),
          );
        } catch (e) {
          if (!(e instanceof ExecutionAlreadyExists)) throw e;
        }
      },
    };
  }
  return starter;
}
