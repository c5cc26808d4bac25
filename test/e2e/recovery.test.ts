// The embedded runtime stopped while operations ran (their executions live in its process), and
// started again on the same data folder as `npm start` does: a persona switch that had changed
// a real test host and was cut off in Verify is rolled back from its journal (the host's sysctl
// as it was, the operation ROLLED_BACK with WORKFLOW_ABORTED naming the step), and a capture
// whose workflow never started is started and runs to its end.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCapture } from '../../core/capture/operation.js';
import { Persona } from '../../core/persona/schema.js';
import { runSwitchStep, startSwitch } from '../../core/persona/switch.js';
import { personaSwitchDeps } from '../../functions/shared/persona-switch.js';
import { hosts, operations } from '../../functions/shared/runtime.js';
import { type LocalPersona, startLocal } from '../../local/runtime.js';
import { freePort } from '../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { captureAndPin } from '../support/managed.js';

const NAME = 'e2e-recovery';
let dataDir: string;
let host: TestHost;
let first: LocalPersona | undefined;
let second: ChildProcess | undefined;
let secondUrl: string;
let before: string;
let switchId: string;
let captureId: string;
/** What the second runtime printed, shown when it does not get there. */
const output: string[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'persona-recovery-'));
  [host, first] = await Promise.all([createHost({ name: NAME }), startLocal({ dataDir, port: 0 })]);
  const api = { ...first, dataDir };
  await captureAndPin(api, host, NAME);
  const deps = await personaSwitchDeps();
  before = (await host.run('sysctl -n net.core.somaxconn')).trim();

  // A switch as its workflow runs it, cut off in Verify: the host changed, nothing ended it.
  const persona = Persona.parse({
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name: 'recovering' },
    spec: { hosts: { names: [NAME] }, parameters: { sysctl: { 'net.core.somaxconn': '3333' } } },
  });
  switchId = randomUUID();
  await startSwitch(deps, switchId, {
    host: NAME,
    to: { name: 'recovering', version: 1 },
    persona,
    decision: {
      host: NAME,
      at: Date.now(),
      action: 'switch',
      from: null,
      to: 'recovering',
      mode: 'act',
      summary: 'by hand',
      reasons: [],
    },
  });
  for (const step of ['validate', 'baseline', 'plan', 'resize', 'apply'] as const) {
    await deps.operations.step(switchId, step, 'RUNNING', new Date());
    await runSwitchStep(deps, switchId, step);
    await deps.operations.step(switchId, step, 'SUCCEEDED', new Date());
  }
  await deps.operations.step(switchId, 'verify', 'RUNNING', new Date());
  expect((await host.run('sysctl -n net.core.somaxconn')).trim()).toBe('3333');
  // A capture recorded as its request is answered (202), its workflow not started yet.
  captureId = randomUUID();
  await startCapture({ hosts: hosts(), operations: operations() }, NAME, captureId);
  expect((await operations().get(captureId)).status).toBe('PENDING');
  await first.stop();
  first = undefined;

  // `npm start` again, on the same data folder.
  const port = await freePort();
  secondUrl = `http://127.0.0.1:${port}`;
  second = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts'], {
    env: { ...process.env, PERSONA_DATA: dataDir, PERSONA_PORT: String(port), PERSONA_QUIET: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  second.stdout?.on('data', (d) => output.push(String(d)));
  second.stderr?.on('data', (d) => output.push(String(d)));
}, 600_000);

afterAll(async () => {
  await first?.stop();
  if (second && second.exitCode === null) {
    const exited = new Promise((r) => second?.once('exit', r));
    second.kill('SIGTERM');
    await exited;
  }
  await destroyAllHosts();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

async function operation(id: string, until: (op: { status: string }) => boolean): Promise<any> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      const res = await fetch(`${secondUrl}/operations/${id}`);
      if (res.status === 200) {
        const op = (await res.json()) as any;
        if (until(op)) return op;
      }
    } catch {
      // Not answering yet.
    }
    if (Date.now() > deadline) throw new Error(`operation ${id} did not get there:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('the embedded runtime started again after it stopped mid-operation', () => {
  it('rolls back the switch that had changed the host, naming the step it was cut off in', async () => {
    const op = await operation(switchId, (o) => o.status !== 'RUNNING');
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error).toMatchObject({ code: 'WORKFLOW_ABORTED', step: 'verify' });
    expect(op.error.message).toMatch(/embedded runtime stopped while this operation ran/);
    expect((await host.run('sysctl -n net.core.somaxconn')).trim()).toBe(before);
  }, 240_000);

  it('starts the capture whose workflow had not started, and it runs to its end', async () => {
    const op = await operation(captureId, (o) => o.status !== 'PENDING' && o.status !== 'RUNNING');
    expect(op.status).toBe('SUCCEEDED');
  }, 240_000);
});
