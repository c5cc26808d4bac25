// The functions that fail abandoned operations, invoked as Lambda invokes them (the event
// EventBridge sends, the schedule's event) on DynamoDB Local; Step Functions mocked. And the
// shared middleware's trace: a handler's SDK calls are subsegments of its invocation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeExecutionCommand, ExecutionDoesNotExist, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import xray from 'aws-xray-sdk-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ABANDONED_CODES, ABANDONED_ENV } from '../../core/operation/abandoned.js';
import type { Operation } from '../../core/operation/schema.js';
import { OPERATIONS_TABLE } from '../../core/storage/definitions.js';
import { lambdaContext } from '../../local/http.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../local/stand-ins.js';

const MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:PersonaClone';
const TABLE = 'operations';
let standIns: StandIns;
let dataDir: string;
const saved = { ...process.env };

/** AWS's example of the event, with this test's names. */
function statusChange(name: string, status: string, error: string | null, cause: string | null) {
  const executionArn = `${MACHINE.replace(':stateMachine:', ':execution:')}:${name}`;
  return {
    version: '0',
    id: '315c1398-40ff-a850-213b-158f73e60175',
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '123456789012',
    time: '2019-02-26T19:42:21Z',
    region: 'us-east-1',
    resources: [executionArn],
    detail: {
      executionArn,
      stateMachineArn: MACHINE,
      name,
      status,
      startDate: 1551225146847,
      stopDate: 1551225151881,
      input: JSON.stringify({ operationId: name }),
      inputDetails: { included: true },
      output: null,
      outputDetails: null,
      error,
      cause,
    },
  };
}

function operation(id: string, createdAt: string): Operation {
  return {
    id,
    kind: 'capture',
    host: 'web-1',
    status: 'RUNNING',
    percent: 0,
    steps: [{ name: 'Capture', status: 'RUNNING', startedAt: createdAt }],
    createdAt,
    updatedAt: createdAt,
    revision: 1,
  };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'persona-abandoned-fn-'));
  standIns = await startStandIns({
    dataDir,
    tables: [{ definition: OPERATIONS_TABLE, name: TABLE }],
    buckets: [],
  });
  Object.assign(process.env, {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: standIns.dynamoEndpoint,
    [OPERATIONS_TABLE.env]: TABLE,
    [ABANDONED_ENV.stateMachines]: MACHINE,
    POWERTOOLS_LOG_LEVEL: 'ERROR',
  });
}, 120_000);

afterAll(async () => {
  process.env = saved;
  await standIns?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the operation-failed function', () => {
  it('fails the operation of an execution that failed outside its own error handling, once', async () => {
    const { main } = await import('../../functions/events/operation-failed/handler.js');
    const { operations } = await import('../../functions/shared/runtime.js');
    const id = `op-${Date.now()}-failed`;
    await operations().start(operation(id, new Date().toISOString()));
    const event = statusChange(id, 'FAILED', 'States.Runtime', 'The JSONPath $.x could not be found');
    const out = await main(event, lambdaContext('operation-failed', 'r1'));
    expect(out.outcome).toBe('failed');
    const op = await operations().get(id);
    expect(op.status).toBe('FAILED');
    expect(op.error?.code).toBe(ABANDONED_CODES.FAILED);
    expect(op.error?.message).toContain('The JSONPath $.x could not be found');
    // EventBridge delivers at least once: again, nothing changes.
    expect((await main(event, lambdaContext('operation-failed', 'r2'))).outcome).toBe('ended-already');
    expect(await operations().get(id)).toEqual(op);
  });

  it('refuses an event that is not a stopped execution, naming the field, and writes nothing', async () => {
    const { main } = await import('../../functions/events/operation-failed/handler.js');
    const { operations } = await import('../../functions/shared/runtime.js');
    const id = `op-${Date.now()}-succeeded`;
    await operations().start(operation(id, new Date().toISOString()));
    const before = await operations().get(id);
    await expect(
      main(statusChange(id, 'SUCCEEDED', null, null), lambdaContext('operation-failed', 'r3')),
    ).rejects.toThrow(/status/);
    expect(await operations().get(id)).toEqual(before);
  });
});

describe('the operation-sweeper function', () => {
  const sfn = mockClient(SFNClient);
  beforeEach(() => {
    sfn.reset();
  });

  it('fails a stale operation whose execution is gone and records how many it failed', async () => {
    const { main } = await import('../../functions/events/operation-sweeper/handler.js');
    const { operations, metrics } = await import('../../functions/shared/runtime.js');
    const id = `op-${Date.now()}-stale`;
    await operations().start(operation(id, new Date(Date.now() - 45 * 60_000).toISOString()));
    sfn.on(DescribeExecutionCommand).resolves({ status: 'ABORTED', cause: 'stopped from the console' });
    const published = vi.spyOn((metrics as unknown as { console: Console }).console, 'log');
    try {
      const out = await main(
        { source: 'aws.events', 'detail-type': 'Scheduled Event' },
        lambdaContext('sweeper', 's1'),
      );
      expect(out.failed).toContainEqual({ operationId: id, code: ABANDONED_CODES.ABORTED });
      expect(
        sfn.commandCalls(DescribeExecutionCommand, {
          executionArn: `${MACHINE.replace(':stateMachine:', ':execution:')}:${id}`,
        }),
      ).toHaveLength(1);
      const emf = published.mock.calls.map((c) => JSON.parse(String(c[0])));
      expect(emf).toContainEqual(
        expect.objectContaining({ OperationsAbandoned: out.failed.length, service: 'persona' }),
      );
    } finally {
      published.mockRestore();
    }
    expect((await operations().get(id)).status).toBe('FAILED');
  });

  it('fails its invocation, naming the operation, when one could not be looked up, so that its errors alarm', async () => {
    const { main } = await import('../../functions/events/operation-sweeper/handler.js');
    const { operations } = await import('../../functions/shared/runtime.js');
    const id = `op-${Date.now()}-denied`;
    await operations().start(operation(id, new Date(Date.now() - 45 * 60_000).toISOString()));
    sfn
      .on(DescribeExecutionCommand)
      .rejects(new ExecutionDoesNotExist({ message: 'Execution Does Not Exist', $metadata: {} }))
      .on(DescribeExecutionCommand, {
        executionArn: `${MACHINE.replace(':stateMachine:', ':execution:')}:${id}`,
      })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(main({}, lambdaContext('sweeper', 's2'))).rejects.toThrow(
      `${id}: ThrottlingException: Rate exceeded`,
    );
    expect((await operations().get(id)).status).toBe('RUNNING');
  });
});

describe('the shared middleware’s trace', () => {
  it('is off outside Lambda: no client is instrumented', async () => {
    vi.resetModules();
    const { tracer, ddb } = await import('../../functions/shared/runtime.js');
    expect(tracer.isTracingEnabled()).toBe(false);
    expect(ddb().middlewareStack.identify().join(' ')).not.toContain('XRaySDKInstrumentation');
  });

  it('in Lambda, records the handler as a subsegment annotated with its cold start, and each SDK call beneath it', async () => {
    vi.resetModules();
    process.env.AWS_EXECUTION_ENV = 'AWS_Lambda_nodejs22.x';
    process.env.POWERTOOLS_TRACE_ENABLED = 'true';
    process.env._HANDLER = 'index.main';
    process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
    try {
      const { main } = await import('../../functions/events/operation-failed/handler.js');
      const { tracer, operations } = await import('../../functions/shared/runtime.js');
      expect(tracer.isTracingEnabled()).toBe(true);
      const id = `op-${Date.now()}-traced`;
      const segment = new xray.Segment('persona-test');
      // The facade segment Lambda makes for each invocation, stood in for by one of ours.
      await xray.getNamespace().runPromise(async () => {
        xray.setSegment(segment);
        await operations().start(operation(id, new Date().toISOString()));
        await main(statusChange(id, 'TIMED_OUT', null, null), lambdaContext('operation-failed', 't1'));
      });
      const handler = segment.subsegments?.find((s) => s.name === '## index.main');
      expect(handler, 'the handler subsegment').toBeDefined();
      const annotations = (s: unknown) => (s as { annotations?: Record<string, unknown> }).annotations;
      expect(annotations(handler)).toMatchObject({ ColdStart: true, Service: 'persona' });
      const calls = (handler?.subsegments ?? []).map((s) => {
        const aws = (s as unknown as { aws?: { operation?: string } }).aws;
        return `${s.name} ${aws?.operation ?? ''}`;
      });
      // The operation read, then the conditional write that failed it.
      expect(calls).toEqual(expect.arrayContaining(['DynamoDB GetItem', 'DynamoDB PutItem']));
      expect(segment.subsegments?.some((s) => s.name === 'DynamoDB')).toBe(true);
      // The next invocation of the same environment is warm.
      const next = new xray.Segment('persona-test-2');
      await xray.getNamespace().runPromise(async () => {
        xray.setSegment(next);
        await main(statusChange(id, 'TIMED_OUT', null, null), lambdaContext('operation-failed', 't2'));
      });
      expect(annotations(next.subsegments?.find((s) => s.name === '## index.main'))).toMatchObject({
        ColdStart: false,
      });
    } finally {
      delete process.env.AWS_EXECUTION_ENV;
      delete process.env.POWERTOOLS_TRACE_ENABLED;
      delete process.env._HANDLER;
      delete process.env.AWS_LAMBDA_INITIALIZATION_TYPE;
      vi.resetModules();
    }
  });
});
