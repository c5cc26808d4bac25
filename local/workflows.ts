// Step Functions on one machine: the very ASL files CDK deploys, executed in-process by
// aws-local-stepfunctions, each Task state bound to the local copy of its function.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { StateMachine } from 'aws-local-stepfunctions';
import { WORKFLOWS, type WorkflowName, type WorkflowStarter } from '../core/operation/workflows.js';
import { lambdaContext } from './http.js';

type StepHandler = (event: unknown, context: Context) => Promise<unknown>;

interface AslState {
  readonly Type: string;
  readonly Resource?: string;
  readonly TimeoutSeconds?: number;
}

/** Lambda's own ceiling: a task function never runs longer. */
const MAX_FUNCTION_MS = 900_000;

/** The definition with its placeholders filled, and which function each Task state runs. */
export function loadWorkflow(
  root: string,
  workflow: WorkflowName,
): { definition: unknown; tasks: Map<string, string>; timeouts: Map<string, number> } {
  const spec = WORKFLOWS[workflow];
  let text = readFileSync(join(root, spec.definition), 'utf8');
  const functionByArn = new Map<string, string>();
  for (const [placeholder, fn] of Object.entries(spec.tasks)) {
    const arn = `arn:aws:lambda:us-east-1:000000000000:function:persona-${fn}`;
    text = text.replaceAll(`\${${placeholder}}`, arn);
    functionByArn.set(arn, fn);
  }
  const definition = JSON.parse(text) as { States: Record<string, AslState> };
  const tasks = new Map<string, string>();
  const timeouts = new Map<string, number>();
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type !== 'Task') continue;
    // The function's time-out as deployed: the state's, within Lambda's ceiling.
    timeouts.set(name, Math.min((state.TimeoutSeconds ?? 60) * 1000, MAX_FUNCTION_MS));
    const fn = functionByArn.get(state.Resource ?? '');
    if (fn === undefined)
      throw new Error(`${spec.definition}: state ${name} names no known function (${state.Resource})`);
    tasks.set(name, fn);
  }
  return { definition, tasks, timeouts };
}

export interface LocalWorkflowOptions {
  readonly root: string;
  /** An execution that ends in failure: the operation record already says why. */
  readonly onFailure?: (workflow: WorkflowName, error: unknown) => void;
}

export function localWorkflows(options: LocalWorkflowOptions): WorkflowStarter & { idle(): Promise<void> } {
  const running = new Set<Promise<unknown>>();
  // Step Functions refuses a second execution of the same name (the operation id); so does this.
  const started = new Set<string>();
  return {
    async start(workflow, input) {
      const name = `${workflow}:${input.operationId}`;
      if (started.has(name)) return;
      started.add(name);
      const { definition, tasks, timeouts } = loadWorkflow(options.root, workflow);
      const handlers: Record<string, (input: unknown) => Promise<never>> = {};
      for (const [state, fn] of tasks) {
        const module = (await import(`../functions/steps/${fn}/handler.ts`)) as { main: StepHandler };
        const timeoutMs = timeouts.get(state);
        handlers[state] = (event) =>
          module.main(event, lambdaContext(fn, randomUUID(), timeoutMs)) as Promise<never>;
      }
      const machine = new StateMachine(definition as ConstructorParameters<typeof StateMachine>[0]);
      const execution = machine.run(input as never, {
        overrides: { taskResourceLocalHandlers: handlers as never },
      });
      // The API answers at once (202); the execution goes on, as Step Functions' would.
      const tracked: Promise<unknown> = execution.result
        .catch((e: unknown) => options.onFailure?.(workflow, e))
        .finally(() => running.delete(tracked));
      running.add(tracked);
    },
    /** Resolves once every execution started so far has ended (for a clean stop). */
    async idle() {
      await Promise.allSettled([...running]);
    },
  };
}
