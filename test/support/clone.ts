// What the clone tests do alike: capture the source through the CLI, follow an operation, and
// stop a clone once its target is provisioned and being worked on.
import { expect } from 'vitest';
import type { Operation } from '../../core/operation/schema.js';
import type { TestHost } from '../hosts/harness.js';
import { type CliResult, runPersona } from './cli.js';
import type { TestPersona } from './local.js';

/**
 * `persona capture ssh://root@<host> --key … --name <name> --accept-new-host-key`, with `extra`
 * arguments, as a user runs it through `run`; it must succeed.
 */
export async function captureOverSsh(
  run: (...args: string[]) => Promise<CliResult>,
  host: TestHost,
  name: string,
  ...extra: string[]
): Promise<void> {
  const captured = await run(
    'capture',
    `ssh://root@${host.address}`,
    '--key',
    host.privateKeyPath,
    '--name',
    name,
    '--accept-new-host-key',
    ...extra,
  );
  expect(captured.code, captured.stderr).toBe(0);
}

/** `persona capture` of the web host as `name`, its document root given, its key accepted. */
export async function captureWebSource(api: TestPersona, host: TestHost, name = 'web'): Promise<void> {
  await captureOverSsh((...args) => runPersona(api, ...args), host, name, '--path', '/var/www/persona');
}

export const operationOf = async (api: TestPersona, id: string) =>
  (await api.call('GET', `/operations/${id}`)).body as Operation;

export const lastClone = async (api: TestPersona) =>
  (await api.call('GET', '/operations?kind=clone&limit=1')).body.items[0] as Operation;

const pause = () => new Promise((r) => setTimeout(r, 200));

/** Waits until the clone works on its target (Baseline or Plan started), or has ended. */
export async function untilWorkingOnTarget(api: TestPersona, id: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const op = await operationOf(api, id);
    if (op.steps.some((s) => (s.name === 'baseline' || s.name === 'plan') && s.status !== 'PENDING')) return;
    if (op.status !== 'RUNNING' && op.status !== 'PENDING') return;
    await pause();
  }
}

/** The operation once it has ended (at most three minutes). */
export async function ended(api: TestPersona, id: string): Promise<Operation> {
  let op = await operationOf(api, id);
  for (let i = 0; i < 900 && (op.status === 'RUNNING' || op.status === 'PENDING'); i++) {
    await pause();
    op = await operationOf(api, id);
  }
  return op;
}
