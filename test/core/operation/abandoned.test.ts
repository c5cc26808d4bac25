// Operations whose workflow stopped without ending them, on DynamoDB Local; Step Functions'
// DescribeExecution (no local stand-in) through aws-sdk-client-mock.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeExecutionCommand, ExecutionDoesNotExist, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ABANDONED_CODES,
  DynamoOpenOperations,
  failAbandonedOperation,
  StepFunctionsExecutions,
  sweepAbandonedOperations,
} from '../../../core/operation/abandoned.js';
import type { Operation } from '../../../core/operation/schema.js';
import { DynamoOperationStore } from '../../../core/operation/store.js';
import { OPERATIONS_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

const ACCOUNT = '123456789012';
const MACHINES = {
  capture: `arn:aws:states:eu-west-1:${ACCOUNT}:stateMachine:PersonaCapture`,
  clone: `arn:aws:states:eu-west-1:${ACCOUNT}:stateMachine:PersonaClone`,
};
const executionArn = (machine: string, id: string) =>
  `${machine.replace(':stateMachine:', ':execution:')}:${id}`;

let standIns: StandIns;
let dataDir: string;
let doc: DynamoDBDocumentClient;
let store: DynamoOperationStore;
let sweepStore: DynamoOperationStore;
let seq = 0;

const MINUTE = 60_000;
const NOW = new Date();
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

function operation(overrides: Partial<Operation> = {}): Operation {
  seq++;
  return {
    id: `op-${seq}-${Math.random().toString(36).slice(2, 8)}`,
    kind: 'clone',
    host: 'web-1',
    status: 'RUNNING',
    percent: 25,
    steps: [
      { name: 'Validate', status: 'SUCCEEDED', startedAt: ago(50 * MINUTE), endedAt: ago(49 * MINUTE) },
      { name: 'Apply', status: 'RUNNING', startedAt: ago(49 * MINUTE) },
      { name: 'Verify', status: 'PENDING' },
    ],
    createdAt: ago(50 * MINUTE),
    updatedAt: ago(49 * MINUTE),
    revision: 3,
    ...overrides,
  };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'persona-abandoned-'));
  standIns = await startStandIns({
    dataDir,
    tables: [
      { definition: OPERATIONS_TABLE, name: 'operations' },
      { definition: OPERATIONS_TABLE, name: 'operations-swept' },
    ],
    buckets: [],
  });
  doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  store = new DynamoOperationStore(doc, 'operations');
  sweepStore = new DynamoOperationStore(doc, 'operations-swept');
}, 120_000);

afterAll(async () => {
  doc?.destroy();
  await standIns?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('failAbandonedOperation', () => {
  it('fails a RUNNING operation whose execution failed outside its own error handling, with the reason, its running step failed', async () => {
    const op = operation();
    await store.start(op);
    const arn = executionArn(MACHINES.clone, op.id);
    const out = await failAbandonedOperation(
      { operations: store, now: () => NOW },
      {
        name: op.id,
        executionArn: arn,
        status: 'FAILED',
        error: 'States.Runtime',
        cause:
          "An error occurred while executing the state 'Record'. The JSONPath '$.result' could not be found.",
      },
    );
    expect(out.outcome).toBe('failed');
    const stored = await store.get(op.id);
    expect(stored.status).toBe('FAILED');
    expect(stored.error?.code).toBe(ABANDONED_CODES.FAILED);
    expect(stored.error?.message).toContain(arn);
    expect(stored.error?.message).toContain("The JSONPath '$.result' could not be found");
    expect(stored.steps.map((s) => s.status)).toEqual(['SUCCEEDED', 'FAILED', 'SKIPPED']);
    expect(stored.steps[1]?.detail).toBe(stored.error?.message);
    expect(stored.revision).toBe(op.revision + 1);
    expect(stored.updatedAt).toBe(NOW.toISOString());
  });

  it('says a timed-out or aborted execution for what it was, and fails a PENDING operation too', async () => {
    const timedOut = operation({
      status: 'PENDING',
      steps: [{ name: 'Capture', status: 'PENDING' }],
      percent: 0,
    });
    const aborted = operation();
    await store.start(timedOut);
    await store.start(aborted);
    await failAbandonedOperation({ operations: store }, { name: timedOut.id, status: 'TIMED_OUT' });
    await failAbandonedOperation(
      { operations: store },
      { name: aborted.id, status: 'ABORTED', cause: 'stopped by an operator' },
    );
    expect((await store.get(timedOut.id)).error?.code).toBe(ABANDONED_CODES.TIMED_OUT);
    const stopped = await store.get(aborted.id);
    expect(stopped.error).toEqual({
      code: ABANDONED_CODES.ABORTED,
      message: 'its workflow execution was stopped (aborted) outside Persona: stopped by an operator',
    });
  });

  it('leaves an operation its workflow ended exactly as it was (the execution failed after its Catch recorded it)', async () => {
    const ended = operation({
      status: 'ROLLED_BACK',
      error: { code: 'VERIFY_FAILED', message: 'probe /health answered 500', step: 'Verify' },
      result: { rolledBack: 4 },
    });
    await store.start(ended);
    const before = await store.get(ended.id);
    const out = await failAbandonedOperation(
      { operations: store },
      { name: ended.id, status: 'FAILED', error: 'RolledBack', cause: 'the clone was rolled back' },
    );
    expect(out).toEqual({ operationId: ended.id, outcome: 'ended-already', status: 'ROLLED_BACK' });
    expect(await store.get(ended.id)).toEqual(before);
  });

  it('changes nothing the second time the same event is delivered', async () => {
    const op = operation();
    await store.start(op);
    const event = { name: op.id, status: 'FAILED' as const, error: 'Lambda.Unknown', cause: 'out of memory' };
    expect((await failAbandonedOperation({ operations: store }, event)).outcome).toBe('failed');
    const first = await store.get(op.id);
    expect((await failAbandonedOperation({ operations: store }, event)).outcome).toBe('ended-already');
    expect(await store.get(op.id)).toEqual(first);
  });

  it('does not overwrite an outcome the workflow records in the same instant: the write is conditional on the revision read', async () => {
    const op = operation();
    await store.start(op);
    // The workflow's last step records SUCCEEDED between this function's read and its write.
    let raced = false;
    const racing = {
      send: async (command: unknown) => {
        if (command instanceof PutCommand && !raced) {
          raced = true;
          await store.finish(op.id, { status: 'SUCCEEDED', result: { profileVersion: 7 } }, new Date());
        }
        return doc.send(command as never);
      },
    } as unknown as DynamoDBDocumentClient;
    const out = await failAbandonedOperation(
      { operations: new DynamoOperationStore(racing, 'operations') },
      { name: op.id, status: 'FAILED', error: 'States.Runtime', cause: 'late' },
    );
    expect(raced).toBe(true);
    expect(out).toEqual({ operationId: op.id, outcome: 'ended-already', status: 'SUCCEEDED' });
    const stored = await store.get(op.id);
    expect(stored.status).toBe('SUCCEEDED');
    expect(stored.result).toEqual({ profileVersion: 7 });
    expect(stored.error).toBeUndefined();
  });

  it('ignores an execution that runs no operation', async () => {
    const out = await failAbandonedOperation(
      { operations: store },
      { name: 'not-an-operation', status: 'FAILED' },
    );
    expect(out).toEqual({ operationId: 'not-an-operation', outcome: 'unknown' });
  });
});

describe('sweepAbandonedOperations', () => {
  const sfn = mockClient(SFNClient);
  const notFound = () => new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} });
  const OPTIONS = { staleAfterMs: 30 * MINUTE, lookBackMs: 7 * 24 * 60 * MINUTE };

  beforeEach(() => {
    sfn.reset();
    sfn.on(DescribeExecutionCommand).rejects(notFound());
  });

  const sweep = () =>
    sweepAbandonedOperations(
      {
        operations: sweepStore,
        open: new DynamoOpenOperations(doc, 'operations-swept'),
        executions: new StepFunctionsExecutions(new SFNClient({ region: 'eu-west-1' }), [
          MACHINES.clone,
          MACHINES.capture,
        ]),
        now: () => NOW,
      },
      OPTIONS,
    );

  it('fails stale operations whose execution stopped or never started, leaves running and young ones, and skips the ended', async () => {
    // A stale lease: RUNNING, its step RUNNING, but its capture execution failed long ago.
    const staleLease = operation({ kind: 'capture' });
    const running = operation({ createdAt: ago(5 * 60 * MINUTE) });
    const neverStarted = operation({
      status: 'PENDING',
      percent: 0,
      steps: [{ name: 'Validate', status: 'PENDING' }],
    });
    const ended = operation({ status: 'SUCCEEDED', percent: 100, result: {} });
    const endedExecution = operation();
    const young = operation({ status: 'PENDING', createdAt: ago(2 * MINUTE) });
    const beyond = operation({ createdAt: ago(8 * 24 * 60 * MINUTE) });
    for (const op of [staleLease, running, neverStarted, ended, endedExecution, young, beyond])
      await sweepStore.start(op);
    sfn
      .on(DescribeExecutionCommand, { executionArn: executionArn(MACHINES.capture, staleLease.id) })
      .resolves({ status: 'FAILED', error: 'States.TaskFailed', cause: 'the task was lost' })
      .on(DescribeExecutionCommand, { executionArn: executionArn(MACHINES.clone, running.id) })
      .resolves({ status: 'RUNNING' })
      .on(DescribeExecutionCommand, { executionArn: executionArn(MACHINES.clone, endedExecution.id) })
      .resolves({ status: 'SUCCEEDED' });
    const youngBefore = await sweepStore.get(young.id);
    const endedBefore = await sweepStore.get(ended.id);
    const beyondBefore = await sweepStore.get(beyond.id);

    const report = await sweep();

    expect(report.errors).toEqual([]);
    expect(report.examined).toBe(4);
    expect(report.running).toEqual([running.id]);
    expect(Object.fromEntries(report.failed.map((f) => [f.operationId, f.code]))).toEqual({
      [staleLease.id]: ABANDONED_CODES.FAILED,
      [neverStarted.id]: ABANDONED_CODES.NOT_STARTED,
      [endedExecution.id]: ABANDONED_CODES.SUCCEEDED,
    });
    const lease = await sweepStore.get(staleLease.id);
    expect(lease.status).toBe('FAILED');
    expect(lease.error?.message).toContain('the task was lost');
    expect(lease.steps.find((s) => s.name === 'Apply')?.status).toBe('FAILED');
    expect((await sweepStore.get(neverStarted.id)).error?.message).toContain('never started');
    expect((await sweepStore.get(running.id)).status).toBe('RUNNING');
    expect(await sweepStore.get(young.id)).toEqual(youngBefore);
    expect(await sweepStore.get(ended.id)).toEqual(endedBefore);
    expect(await sweepStore.get(beyond.id)).toEqual(beyondBefore);
    // Looked up in each workflow until found; the young, the ended and the old never.
    const asked = sfn.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input.executionArn ?? '');
    expect(asked).toContain(executionArn(MACHINES.clone, staleLease.id));
    expect(asked).toContain(executionArn(MACHINES.capture, staleLease.id));
    expect(asked).toContain(executionArn(MACHINES.capture, neverStarted.id));
    expect(asked.filter((a) => a.endsWith(running.id))).toEqual([executionArn(MACHINES.clone, running.id)]);
    for (const op of [young, ended, beyond]) expect(asked.some((a) => a.endsWith(op.id))).toBe(false);

    // The next sweep finds nothing more to do.
    const again = await sweep();
    expect(again.failed).toEqual([]);
    expect(again.running).toEqual([running.id]);
  });

  it('sweeps the others when one cannot be looked up, and reports it', async () => {
    const denied = operation({ createdAt: ago(40 * MINUTE) });
    const lost = operation({ createdAt: ago(41 * MINUTE) });
    await sweepStore.start(denied);
    await sweepStore.start(lost);
    const accessDenied = Object.assign(new Error('not authorized to perform: states:DescribeExecution'), {
      name: 'AccessDeniedException',
    });
    sfn
      .on(DescribeExecutionCommand, { executionArn: executionArn(MACHINES.clone, denied.id) })
      .rejects(accessDenied);

    const report = await sweep();

    expect(report.errors.map((e) => e.operationId)).toEqual([denied.id]);
    expect(String(report.errors[0]?.error)).toContain('not authorized');
    expect(report.failed.map((f) => f.operationId)).toContain(lost.id);
    expect((await sweepStore.get(denied.id)).status).toBe('RUNNING');
    expect((await sweepStore.get(lost.id)).status).toBe('FAILED');
  });
});

describe('StepFunctionsExecutions', () => {
  it('refuses what is not a state machine ARN, naming it', () => {
    expect(
      () => new StepFunctionsExecutions(new SFNClient({}), ['arn:aws:lambda:eu-west-1:1:function:x']),
    ).toThrow('not a state machine ARN: arn:aws:lambda:eu-west-1:1:function:x');
  });
});
