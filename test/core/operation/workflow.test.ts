// The capture workflow's failure paths, run from its ASL file by aws-local-stepfunctions with
// the real task functions where they matter, against DynamoDB Local: a Task that outlives its
// TimeoutSeconds, and tasks delivered again for an operation that has ended.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StateMachine } from 'aws-local-stepfunctions';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Operation } from '../../../core/operation/schema.js';
import { WORKFLOWS } from '../../../core/operation/workflows.js';
import { operations } from '../../../functions/shared/runtime.js';
import { lambdaContext } from '../../../local/http.js';
import { loadWorkflow } from '../../../local/workflows.js';
import { startTestPersona, type TestPersona } from '../../support/local.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const STEPS = ['connect', 'collect', 'secrets', 'profile', 'snapshot'];

let persona: TestPersona;

beforeAll(async () => {
  persona = await startTestPersona();
});

afterAll(async () => {
  await persona?.stop();
});

afterEach(() => {
  vi.useRealTimers();
});

async function newOperation(): Promise<string> {
  const at = new Date().toISOString();
  const id = randomUUID();
  await operations().start({
    id,
    kind: 'capture',
    host: 'web-1',
    status: 'PENDING',
    percent: 0,
    steps: STEPS.map((name) => ({ name, status: 'PENDING' as const })),
    createdAt: at,
    updatedAt: at,
    revision: 0,
  });
  return id;
}

type Task = (input: unknown) => Promise<unknown>;

async function realTask(fn: string): Promise<Task> {
  const module = (await import(`../../../functions/steps/${fn}/handler.ts`)) as {
    main: (event: unknown, context: ReturnType<typeof lambdaContext>) => Promise<unknown>;
  };
  return (input) => module.main(input, lambdaContext(fn, randomUUID()));
}

/** Runs the capture workflow from its file, each Task state bound by the function it names. */
function runCapture(operationId: string, byFunction: Record<string, Task>) {
  const { definition, tasks } = loadWorkflow(ROOT, 'capture');
  const handlers: Record<string, Task> = {};
  for (const [state, fn] of tasks) {
    const task = byFunction[fn];
    if (!task) throw new Error(`no handler for ${fn}`);
    handlers[state] = task;
  }
  const machine = new StateMachine(definition as ConstructorParameters<typeof StateMachine>[0]);
  return machine.run({ operationId } as never, {
    overrides: { taskResourceLocalHandlers: handlers as never },
  });
}

describe('capture workflow: a Task that times out', () => {
  it('ends the operation FAILED with the step that was running marked failed and the reason', async () => {
    const id = await newOperation();
    let entered!: () => void;
    const inside = new Promise<void>((r) => {
      entered = r;
    });
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let late: Promise<unknown> | undefined;
    // A capture that reached its host and then hung there. The function goes on after Step
    // Functions gave up on it, as a Lambda function does, and then tries to finish the capture.
    const hangingCapture: Task = (input) => {
      late = (async () => {
        await operations().step(id, 'connect', 'SUCCEEDED', new Date());
        await operations().step(id, 'collect', 'RUNNING', new Date());
        entered();
        await released;
        await operations().step(id, 'collect', 'SUCCEEDED', new Date());
        await operations().finish(id, { status: 'SUCCEEDED', result: { late: true } }, new Date());
        return input;
      })();
      return late;
    };
    // The clock runs as usual (DynamoDB calls need it) and is moved on past the Task's timeout.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'], shouldAdvanceTime: true });
    const execution = runCapture(id, {
      capture: hangingCapture,
      'fail-operation': await realTask('fail-operation'),
    });
    await inside;
    const captureState = JSON.parse(readFileSync(WORKFLOWS.capture.definition, 'utf8')).States.Capture;
    await vi.advanceTimersByTimeAsync(captureState.TimeoutSeconds * 1000);
    await expect(execution.result).rejects.toThrow(/The capture failed/);

    const ended = await operations().get(id);
    expect(ended.status).toBe('FAILED');
    expect(ended.error).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/timed out/) });
    expect(ended.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'connect:SUCCEEDED',
      'collect:FAILED',
      'secrets:SKIPPED',
      'profile:SKIPPED',
      'snapshot:SKIPPED',
    ]);
    expect(ended.steps[1]).toMatchObject({
      detail: expect.stringMatching(/timed out \(States\.Timeout\)/),
      endedAt: expect.any(String),
    });

    // The function that outlived its timeout cannot bring the operation back.
    release();
    await late;
    expect(await operations().get(id)).toEqual(ended);
  });

  it('gives every Task a timeout, and the execution none that could stop it before its Catch runs', () => {
    const asl = JSON.parse(readFileSync(WORKFLOWS.capture.definition, 'utf8'));
    for (const [name, state] of Object.entries(asl.States as Record<string, AslState>)) {
      if (state.Type === 'Task') expect(state.TimeoutSeconds, name).toBeGreaterThan(0);
    }
    if (asl.TimeoutSeconds !== undefined) expect(asl.TimeoutSeconds).toBeGreaterThan(longestRunSeconds(asl));
    // The capture function's own timeout (14 minutes, infra/workflows.ts) ends it before Step
    // Functions gives up on it, so that it is not left running after its operation failed.
    expect(asl.States.Capture.TimeoutSeconds).toBeGreaterThan(14 * 60);
  });
});

describe('capture workflow: a task delivered again', () => {
  const outcomes = [
    { status: 'SUCCEEDED', result: { profile: { name: 'web-1', version: 3 } } },
    { status: 'FAILED', error: { code: 'TRANSPORT', message: 'the host refused the key' } },
  ] as const;

  for (const outcome of outcomes) {
    it(`succeeds doing nothing when the capture task runs for a ${outcome.status} operation`, async () => {
      const id = await newOperation();
      await operations().finish(id, outcome, new Date());
      const before = await operations().get(id);
      const capture = await realTask('capture');
      expect(await capture({ operationId: id })).toEqual({
        operationId: id,
        status: outcome.status,
        redelivered: true,
      });
      // Through the workflow too: the execution succeeds and records nothing.
      const execution = runCapture(id, { capture, 'fail-operation': await realTask('fail-operation') });
      await expect(execution.result).resolves.toMatchObject({ capture: { redelivered: true } });
      expect(await operations().get(id)).toEqual(before);
    });
  }

  it('leaves a SUCCEEDED operation as it is when the failure path runs for it late', async () => {
    const id = await newOperation();
    await operations().finish(id, { status: 'SUCCEEDED', result: {} }, new Date());
    const before = await operations().get(id);
    const fail = await realTask('fail-operation');
    await fail({ operationId: id, error: { Error: 'States.Timeout' } });
    expect(await operations().get(id)).toEqual(before);
  });
});

describe('operation store transitions', () => {
  it('keeps the first end of an operation: a later finish or step changes nothing', async () => {
    const id = await newOperation();
    await operations().step(id, 'connect', 'RUNNING', new Date());
    const failed = await operations().finish(
      id,
      { status: 'FAILED', error: { code: 'TRANSPORT', message: 'connection reset' } },
      new Date(),
    );
    expect(await operations().finish(id, { status: 'SUCCEEDED', result: {} }, new Date())).toEqual(failed);
    expect(await operations().step(id, 'connect', 'SUCCEEDED', new Date())).toEqual(failed);
    expect(await operations().get(id)).toEqual(failed);
  });

  it('lets exactly one of concurrent finishes win, and tells every caller the outcome that stands', async () => {
    const id = await newOperation();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        operations().finish(
          id,
          i % 2 === 0
            ? { status: 'SUCCEEDED', result: { by: i } }
            : { status: 'FAILED', error: { code: 'INTERNAL', message: `by ${i}` } },
          new Date(),
        ),
      ),
    );
    const stored: Operation = await operations().get(id);
    expect(stored.revision).toBe(1);
    for (const r of results) expect(r).toEqual(stored);
  });

  it('marks the step still running FAILED with the reason when the operation fails, and skips the rest', async () => {
    const id = await newOperation();
    await operations().step(id, 'connect', 'RUNNING', new Date());
    const op = await operations().finish(
      id,
      { status: 'FAILED', error: { code: 'TIMEOUT', message: 'timed out (Sandbox.Timedout)' } },
      new Date(),
    );
    expect(op.steps[0]).toMatchObject({ status: 'FAILED', detail: 'timed out (Sandbox.Timedout)' });
    expect(op.steps.slice(1).every((s) => s.status === 'SKIPPED')).toBe(true);
  });
});

interface AslRetrier {
  readonly MaxAttempts?: number;
  readonly IntervalSeconds?: number;
  readonly BackoffRate?: number;
  readonly MaxDelaySeconds?: number;
}

interface AslState {
  readonly Type: string;
  readonly Next?: string;
  readonly TimeoutSeconds?: number;
  readonly Retry?: readonly AslRetrier[];
  readonly Catch?: readonly { readonly Next: string }[];
}

/**
 * The longest an execution can run when every Task takes its full TimeoutSeconds on every
 * attempt its retriers allow, waits included (States Language defaults: 60 s; 3 attempts, 1 s
 * apart, doubling).
 */
function longestRunSeconds(definition: { StartAt: string; States: Record<string, AslState> }): number {
  const visit = (name: string, path: readonly string[]): number => {
    if (path.includes(name)) throw new Error(`state ${name} is part of a loop`);
    const state = definition.States[name];
    if (state === undefined) throw new Error(`state ${name} is not defined`);
    let own = 0;
    if (state.Type === 'Task') {
      let attempts = 1;
      let waits = 0;
      for (const r of state.Retry ?? []) {
        const max = r.MaxAttempts ?? 3;
        attempts += max;
        for (let i = 0; i < max; i++)
          waits += Math.min(
            (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** i,
            r.MaxDelaySeconds ?? Infinity,
          );
      }
      own = attempts * (state.TimeoutSeconds ?? 60) + waits;
    } else if (!['Pass', 'Succeed', 'Fail'].includes(state.Type)) {
      throw new Error(`state ${name}: ${state.Type} is not measured here`);
    }
    const next = [...(state.Next ? [state.Next] : []), ...(state.Catch ?? []).map((c) => c.Next)];
    return own + Math.max(0, ...next.map((n) => visit(n, [...path, name])));
  };
  return visit(definition.StartAt, []);
}
