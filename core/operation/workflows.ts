// Starting a workflow. In AWS it is a Step Functions execution named after the operation (so
// a repeated start is refused by Step Functions itself); the embedded runtime executes the
// same ASL file in-process.
export const WORKFLOWS = {
  capture: {
    definition: 'statemachines/capture.asl.json',
    /** Placeholders in the definition, and the function each one stands for. */
    tasks: { CaptureFunctionArn: 'capture', FailOperationFunctionArn: 'fail-operation' },
  },
  clone: {
    definition: 'statemachines/clone.asl.json',
    tasks: { CloneFunctionArn: 'clone', FailOperationFunctionArn: 'fail-operation' },
  },
  'persona-switch': {
    definition: 'statemachines/persona-switch.asl.json',
    tasks: { PersonaSwitchFunctionArn: 'persona-switch', FailOperationFunctionArn: 'fail-operation' },
  },
  morph: {
    definition: 'statemachines/morph.asl.json',
    tasks: { MorphFunctionArn: 'morph', FailOperationFunctionArn: 'fail-operation' },
  },
} as const;

export type WorkflowName = keyof typeof WORKFLOWS;

export interface WorkflowStarter {
  /**
   * Starts the workflow for an operation, at most once per operation id however often it is
   * asked (a request retried after a failed start asks again): in AWS the execution is named
   * after the operation.
   */
  start(workflow: WorkflowName, input: { readonly operationId: string }): Promise<void>;
}
