// Starting a workflow. In AWS it is a Step Functions execution named after the operation (so
// a repeated start is refused by Step Functions itself); the embedded runtime executes the
// same ASL file in-process.
export const WORKFLOWS = {
  capture: {
    definition: 'statemachines/capture.asl.json',
    /** Placeholders in the definition, and the function each one stands for. */
    tasks: { CaptureFunctionArn: 'capture', FailOperationFunctionArn: 'fail-operation' },
  },
} as const;

export type WorkflowName = keyof typeof WORKFLOWS;

export interface WorkflowStarter {
  start(workflow: WorkflowName, input: { readonly operationId: string }): Promise<void>;
}
