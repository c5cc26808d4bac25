// Operations whose workflow stopped without ending them. A workflow ends its operation itself,
// on success and through its Catch on failure; but an execution can stop where no Catch runs
// (aborted from the console, a States.Runtime error in the definition, an execution time-out,
// a failure inside the failure path itself), and an operation can be recorded whose execution
// never started. Such an operation would stay PENDING or RUNNING forever: this ends it FAILED
// with what Step Functions says, and never touches an operation that has ended.
import { DescribeExecutionCommand, ExecutionDoesNotExist, type SFNClient } from '@aws-sdk/client-sfn';
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { NotFoundError } from '../errors.js';
import { isFinished, type Operation, type OperationStatus } from './schema.js';
import type { OperationStore } from './store.js';
import { describeWorkflowError } from './tasks.js';

/**
 * The variable that gives the sweeper the ARNs of Persona's state machines, comma-separated,
 * and the metric both the rule's function and the sweeper record the operations they end by.
 */
export const ABANDONED_ENV = { stateMachines: 'PERSONA_STATE_MACHINE_ARNS' } as const;
export const ABANDONED_METRIC = 'OperationsAbandoned';

/** The statuses of an execution that stopped without succeeding (EventBridge's "Execution Status Change"). */
export const STOPPED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/** An execution's status as DescribeExecution and the status change events give it. */
export type ExecutionStatus =
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'TIMED_OUT'
  | 'ABORTED'
  | 'PENDING_REDRIVE';

/** One execution of a Persona workflow: its name is the id of the operation it runs. */
export interface Execution {
  readonly name: string;
  readonly executionArn?: string | undefined;
  readonly status: ExecutionStatus;
  /** Step Functions' error name and cause, when it stopped on an error. */
  readonly error?: string | null | undefined;
  readonly cause?: string | null | undefined;
}

/** The codes an abandoned operation's error carries, one per way its workflow left it. */
export const ABANDONED_CODES = {
  FAILED: 'WORKFLOW_FAILED',
  TIMED_OUT: 'WORKFLOW_TIMED_OUT',
  ABORTED: 'WORKFLOW_ABORTED',
  SUCCEEDED: 'WORKFLOW_ENDED',
  NOT_STARTED: 'WORKFLOW_NOT_STARTED',
} as const;

/** Why the operation of a stopped execution failed, in the operation's error shape. */
export function abandonmentError(execution: Execution | undefined): { code: string; message: string } {
  if (execution === undefined)
    return {
      code: ABANDONED_CODES.NOT_STARTED,
      message: "its workflow never started: no execution of Persona's workflows is named after it",
    };
  const arn = execution.executionArn ? ` (${execution.executionArn})` : '';
  switch (execution.status) {
    case 'FAILED': {
      const described = describeWorkflowError({
        Error: execution.error ?? undefined,
        Cause: execution.cause ?? undefined,
      });
      return {
        code: ABANDONED_CODES.FAILED,
        message: `its workflow execution failed outside its own error handling${arn}: ${described.code}: ${described.message}`,
      };
    }
    case 'TIMED_OUT':
      return {
        code: ABANDONED_CODES.TIMED_OUT,
        message: `its workflow execution timed out${arn}${execution.cause ? `: ${execution.cause}` : ''}`,
      };
    case 'ABORTED':
      return {
        code: ABANDONED_CODES.ABORTED,
        message: `its workflow execution was stopped (aborted) outside Persona${arn}${execution.cause ? `: ${execution.cause}` : ''}`,
      };
    default:
      return {
        code: ABANDONED_CODES.SUCCEEDED,
        message: `its workflow execution ended (${execution.status})${arn} without recording the operation's outcome`,
      };
  }
}

export type AbandonedOutcome =
  /** The operation was still open and is now FAILED with the execution's reason. */
  | { readonly operationId: string; readonly outcome: 'failed'; readonly operation: Operation }
  /** The operation had ended already (its workflow ended it): left exactly as it was. */
  | { readonly operationId: string; readonly outcome: 'ended-already'; readonly status: OperationStatus }
  /** No operation has this id: an execution Persona did not start under an operation's name. */
  | { readonly operationId: string; readonly outcome: 'unknown' };

export interface AbandonedDeps {
  readonly operations: Pick<OperationStore, 'get' | 'finish'>;
  readonly now?: () => Date;
}

/**
 * Ends the operation of a stopped execution FAILED with the execution's reason, if it is still
 * PENDING or RUNNING. The store's finish is a write conditional on the revision read, so an
 * outcome the workflow records at the same moment is never overwritten: whichever lands first
 * stands. Delivered twice, the second call finds the operation ended and changes nothing.
 */
export async function failAbandonedOperation(
  deps: AbandonedDeps,
  execution: Execution | { readonly name: string; readonly missing: true },
): Promise<AbandonedOutcome> {
  const operationId = execution.name;
  let op: Operation;
  try {
    op = await deps.operations.get(operationId);
  } catch (e) {
    if (e instanceof NotFoundError) return { operationId, outcome: 'unknown' };
    throw e;
  }
  if (isFinished(op.status)) return { operationId, outcome: 'ended-already', status: op.status };
  const error = abandonmentError('missing' in execution ? undefined : execution);
  const ended = await deps.operations.finish(
    operationId,
    { status: 'FAILED', error },
    deps.now?.() ?? new Date(),
  );
  // finish returns an operation that ended meanwhile as it ended: then ours was not written.
  if (ended.status !== 'FAILED' || ended.error?.code !== error.code || ended.error.message !== error.message)
    return { operationId, outcome: 'ended-already', status: ended.status };
  return { operationId, outcome: 'failed', operation: ended };
}

// --- the sweeper ----------------------------------------------------------------------------

/** Where an operation's execution is looked up: each of Persona's state machines in turn. */
export interface ExecutionLookup {
  /** The operation's execution, or undefined when no workflow has one of that name. */
  find(operationId: string): Promise<Execution | undefined>;
}

/**
 * Step Functions' DescribeExecution over Persona's state machines. An execution's ARN is its
 * state machine's with `execution` for `stateMachine` and the name appended; the operation's
 * kind is not needed to know which machine ran it, so a workflow added later is looked in too.
 */
export class StepFunctionsExecutions implements ExecutionLookup {
  constructor(
    private readonly sfn: Pick<SFNClient, 'send'>,
    private readonly stateMachineArns: readonly string[],
  ) {
    for (const arn of stateMachineArns)
      if (!/^arn:[\w-]+:states:[\w-]+:\d{12}:stateMachine:[\w-]+$/.test(arn))
        throw new Error(`not a state machine ARN: ${arn}`);
  }

  async find(operationId: string): Promise<Execution | undefined> {
    for (const machine of this.stateMachineArns) {
      const executionArn = `${machine.replace(':stateMachine:', ':execution:')}:${operationId}`;
      try {
        const out = await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
        return {
          name: operationId,
          executionArn,
          status: (out.status ?? 'RUNNING') as ExecutionStatus,
          error: out.error,
          cause: out.cause,
        };
      } catch (e) {
        if (e instanceof ExecutionDoesNotExist || (e as { name?: string }).name === 'ExecutionDoesNotExist')
          continue;
        throw e;
      }
    }
    return undefined;
  }
}

/** Operations still PENDING or RUNNING that were created within a window. */
export interface OpenOperations {
  /** Oldest first, created at or after `since` and before `until` (ISO timestamps). */
  createdBetween(since: string, until: string): AsyncIterable<Operation>;
}

/** The operations table's ByCreation index, one page at a time, open operations only. */
export class DynamoOpenOperations implements OpenOperations {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async *createdBetween(since: string, until: string): AsyncIterable<Operation> {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'ByCreation',
          KeyConditionExpression: '#l = :l AND #c BETWEEN :since AND :until',
          FilterExpression: '#s IN (:pending, :running)',
          ExpressionAttributeNames: { '#l': 'listing', '#c': 'createdAt', '#s': 'status' },
          ExpressionAttributeValues: {
            ':l': 'operations',
            ':since': since,
            ':until': until,
            ':pending': 'PENDING',
            ':running': 'RUNNING',
          },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) {
        const { listing: _l, ...op } = item;
        // BETWEEN includes its upper bound; the window ends just before it.
        if ((op as Operation).createdAt < until) yield op as Operation;
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
  }
}

export interface SweepOptions {
  /** An open operation younger than this is left alone: its execution may be starting. */
  readonly staleAfterMs: number;
  /**
   * How far back operations are looked for. Each sweep reads the index over this window, so it
   * bounds the sweep's reads; an operation is in the window for many sweeps after it is stale.
   */
  readonly lookBackMs: number;
}

/** What one sweep found and did. */
export interface SweepReport {
  /** Open operations past the age, looked up. */
  readonly examined: number;
  /** Ended FAILED, each with the code of its reason. */
  readonly failed: readonly { readonly operationId: string; readonly code: string }[];
  /** Their execution is still running (or being redriven): left alone. */
  readonly running: readonly string[];
  /** Looking one up or ending it failed; the others were still swept. */
  readonly errors: readonly { readonly operationId: string; readonly error: unknown }[];
}

export interface SweepDeps extends AbandonedDeps {
  readonly open: OpenOperations;
  readonly executions: ExecutionLookup;
}

/**
 * Finds the operations still PENDING or RUNNING past the age whose execution is not running
 * (it stopped, or never started) and ends them FAILED with the reason. One that fails to be
 * looked up does not stop the others; the report lists it.
 */
export async function sweepAbandonedOperations(deps: SweepDeps, options: SweepOptions): Promise<SweepReport> {
  const now = deps.now?.() ?? new Date();
  const until = new Date(now.getTime() - options.staleAfterMs).toISOString();
  const since = new Date(now.getTime() - options.lookBackMs).toISOString();
  const failed: { operationId: string; code: string }[] = [];
  const running: string[] = [];
  const errors: { operationId: string; error: unknown }[] = [];
  let examined = 0;
  for await (const op of deps.open.createdBetween(since, until)) {
    examined++;
    try {
      const execution = await deps.executions.find(op.id);
      if (execution?.status === 'RUNNING' || execution?.status === 'PENDING_REDRIVE') {
        running.push(op.id);
        continue;
      }
      const outcome = await failAbandonedOperation(
        { operations: deps.operations, now: () => now },
        execution ?? { name: op.id, missing: true },
      );
      if (outcome.outcome === 'failed')
        failed.push({ operationId: op.id, code: outcome.operation.error?.code ?? '' });
    } catch (error) {
      errors.push({ operationId: op.id, error });
    }
  }
  return { examined, failed, running, errors };
}
