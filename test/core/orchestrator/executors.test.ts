// Executors on recorded command output: which commands they send for each init system, what
// they refuse before sending anything, and how environment lines are written.
import { describe, expect, it } from 'vitest';
import type { Change, Delta } from '../../../core/delta/changes.js';
import { summarize } from '../../../core/delta/changes.js';
import { InvalidInputError } from '../../../core/errors.js';
import { applyChanges } from '../../../core/orchestrator/apply.js';
import { NoExecutorError } from '../../../core/orchestrator/errors.js';
import {
  envExecutor,
  environmentFile,
  envLine,
  withVariable,
} from '../../../core/orchestrator/executors/env.js';
import type { ExecutorContext } from '../../../core/orchestrator/executors/executor.js';
import { DEBIAN_EXECUTORS } from '../../../core/orchestrator/executors/index.js';
import { serviceExecutor } from '../../../core/orchestrator/executors/services.js';
import type { Journal } from '../../../core/orchestrator/journal.js';
import type { RunResult, Transport } from '../../../core/transport/transport.js';

type Rule = readonly [RegExp, Partial<RunResult> | (() => Partial<RunResult>)];

/** A transport that answers from recorded output and keeps every command it was sent. */
function recorded(rules: readonly Rule[]): Transport & { readonly sent: string[] } {
  const sent: string[] = [];
  return {
    target: 'ssh://root@recorded:22',
    sent,
    async run(command) {
      sent.push(command);
      const rule = rules.find(([pattern]) => pattern.test(command));
      if (rule === undefined) throw new Error(`no recorded output for: ${command}`);
      const out = typeof rule[1] === 'function' ? rule[1]() : rule[1];
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, ...out };
    },
    stream: async () => {
      throw new Error('not recorded');
    },
    putFile: async () => {
      throw new Error('not recorded');
    },
    getFile: async () => {
      throw new Error('not recorded');
    },
    close: async () => {},
  };
}

const ctx = (transport: Transport): ExecutorContext => ({
  transport,
  operation: 'op-1',
  seq: 0,
  contents: { read: async () => new Uint8Array() },
});

const service = (kind: Change['kind'], from: object, to: object): Change =>
  ({
    kind,
    section: 'services',
    key: 'nginx',
    from: { name: 'nginx', manager: 'systemd', ...from },
    to: { name: 'nginx', manager: 'systemd', ...to },
    disruptive: false,
  }) as Change;

const INIT = /^if \[ -d \/run\/systemd\/system \]/;

describe('serviceExecutor', () => {
  it('starts through systemctl when systemd runs the host, and stops again on revert', async () => {
    let active = false;
    const transport = recorded([
      [INIT, { stdout: 'systemd\n' }],
      [/^systemctl is-active/, () => ({ exitCode: active ? 0 : 3 })],
      [/^systemctl is-enabled/, { exitCode: 1 }],
      [
        /^systemctl '(start|stop)' /,
        () => {
          active = !active;
          return {};
        },
      ],
    ]);
    const change = service(
      'service.start',
      { state: 'stopped', enabled: false },
      { state: 'running', enabled: false },
    );
    const prior = await serviceExecutor.prepare(ctx(transport), change);
    expect(await serviceExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'changed' });
    expect(transport.sent).toContain("systemctl 'start' -- 'nginx'");
    expect(
      await serviceExecutor.apply(ctx(transport), change, { ...(prior as object), running: true }),
    ).toMatchObject({
      status: 'unchanged',
    });
    expect(await serviceExecutor.revert(ctx(transport), change, prior)).toMatchObject({ status: 'changed' });
    expect(transport.sent).toContain("systemctl 'stop' -- 'nginx'");
    expect(active).toBe(false);
  });

  it('enables through update-rc.d and starts through service on a sysvinit host', async () => {
    const transport = recorded([
      [INIT, { stdout: 'sysvinit\n' }],
      [/^service 'nginx' status/, { exitCode: 3 }],
      [/^n='nginx'; for f in \/etc\/rc/, { exitCode: 1 }],
      [/^update-rc\.d 'nginx' 'enable'$/, {}],
      [/^service 'nginx' 'start'$/, {}],
    ]);
    const enable = service(
      'service.enable',
      { state: 'stopped', enabled: false },
      { state: 'stopped', enabled: true },
    );
    const start = service(
      'service.start',
      { state: 'stopped', enabled: true },
      { state: 'running', enabled: true },
    );
    for (const change of [enable, start]) {
      const prior = await serviceExecutor.prepare(ctx(transport), change);
      expect(await serviceExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'changed' });
    }
    expect(transport.sent).toEqual(
      expect.arrayContaining(["update-rc.d 'nginx' 'enable'", "service 'nginx' 'start'"]),
    );
  });

  it('records a host with no init system as unresolved and sends nothing to change it', async () => {
    const transport = recorded([[INIT, { stdout: 'none\n' }]]);
    const change = service(
      'service.start',
      { state: 'stopped', enabled: false },
      { state: 'running', enabled: false },
    );
    const prior = await serviceExecutor.prepare(ctx(transport), change);
    expect(await serviceExecutor.apply(ctx(transport), change, prior)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/no init system/),
    });
    expect(transport.sent.length).toBeGreaterThan(0);
    expect(transport.sent.every((command) => INIT.test(command))).toBe(true);
  });

  it('refuses a service name that a program could read as an option or a second command', async () => {
    const transport = recorded([]);
    for (const name of ['-f', 'a;b', 'x y', '$(id)']) {
      const change = {
        ...service(
          'service.start',
          { state: 'stopped', enabled: false },
          { state: 'running', enabled: false },
        ),
        key: name,
      } as Change;
      await expect(serviceExecutor.prepare(ctx(transport), change)).rejects.toBeInstanceOf(InvalidInputError);
    }
    expect(transport.sent).toEqual([]);
  });
});

describe('environment files', () => {
  it('writes plain values bare, others in double quotes, and refuses what neither reader agrees on', () => {
    expect(envLine('A', 'production')).toBe('A=production');
    expect(envLine('A', '/usr/bin:/bin')).toBe('A=/usr/bin:/bin');
    expect(envLine('A', 'two words')).toBe('A="two words"');
    for (const value of ['say "hi"', 'a\\b', '$HOME', '`id`', 'line\nbreak'])
      expect(envLine('A', value)).toBeUndefined();
  });

  it('replaces the first definition of a variable in place, drops its repeats, and appends a new one', () => {
    const text = 'PATH=/bin\nexport MODE=dev\nOTHER=1\nMODE=again\n';
    expect(withVariable(text, 'MODE', 'MODE=prod')).toBe('PATH=/bin\nMODE=prod\nOTHER=1\n');
    expect(withVariable(text, 'MODE', undefined)).toBe('PATH=/bin\nOTHER=1\n');
    expect(withVariable('PATH=/bin', 'NEW', 'NEW=1')).toBe('PATH=/bin\nNEW=1\n');
    // A variable whose name starts another's is another variable.
    expect(withVariable('MODEX=1\n', 'MODE', undefined)).toBe('MODEX=1\n');
  });

  it('uses the file a scope names, /etc/environment without one, and none for a process scope', async () => {
    expect(environmentFile({ name: 'A', value: '1' })).toEqual({ path: '/etc/environment' });
    expect(environmentFile({ name: 'A', value: '1', scope: '/etc/default/app' })).toEqual({
      path: '/etc/default/app',
    });
    expect(environmentFile({ name: 'A', value: '1', scope: 'nginx' })).toMatchObject({
      problem: /names a process/,
    });
    expect(environmentFile({ name: 'A', value: '1', scope: '/etc/../shadow' })).toMatchObject({
      problem: /"\."/,
    });
    const transport = recorded([]);
    const change: Change = {
      kind: 'env.set',
      section: 'env',
      key: 'nginx:A',
      from: null,
      to: { name: 'A', value: '1', scope: 'nginx' },
      disruptive: false,
    };
    const prior = await envExecutor.prepare(ctx(transport), change);
    expect(await envExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'unresolved' });
    expect(transport.sent).toEqual([]);
  });
});

describe('applyChanges', () => {
  it('refuses a Delta holding a kind no executor handles before anything reaches the host or the journal', async () => {
    const transport = recorded([]);
    const journal = new Proxy({} as Journal, {
      get() {
        throw new Error('the journal was used');
      },
    });
    const changes: Change[] = [
      {
        kind: 'sysctl.set',
        section: 'sysctl',
        key: 'net.ipv4.ip_forward',
        from: '0',
        to: '1',
        disruptive: false,
      },
      {
        kind: 'package.install',
        section: 'packages',
        key: 'apt:nginx',
        from: null,
        to: { name: 'nginx', version: '1.22.1-9', manager: 'apt' },
        disruptive: false,
      },
    ];
    const delta: Delta = { from: { name: 'a' }, to: { name: 'b' }, changes, summary: summarize(changes) };
    const deps = {
      transport,
      journal,
      executors: DEBIAN_EXECUTORS,
      contents: { read: async () => new Uint8Array() },
    };
    await expect(applyChanges(deps, 'op-1', delta)).rejects.toBeInstanceOf(NoExecutorError);
    expect(transport.sent).toEqual([]);
  });

  it('stops without reverting when the journal holds another Delta for the operation', async () => {
    const transport = recorded([]);
    const other: Change = {
      kind: 'sysctl.set',
      section: 'sysctl',
      key: 'net.ipv4.ip_forward',
      from: '0',
      to: '1',
      disruptive: false,
    };
    const mine: Change = { ...other, to: '0', from: '1' } as Change;
    const journal: Journal = {
      entries: async (operation) => [
        {
          operation,
          seq: 0,
          change: other,
          prior: null,
          state: 'applied',
          updatedAt: '2026-01-01T00:00:00Z',
        },
      ],
      begin: async () => {
        throw new Error('begin must not be called');
      },
      applied: async () => {},
      reverted: async () => {
        throw new Error('nothing may be reverted');
      },
    };
    const delta: Delta = {
      from: { name: 'a' },
      to: { name: 'b' },
      changes: [mine],
      summary: summarize([mine]),
    };
    const deps = {
      transport,
      journal,
      executors: DEBIAN_EXECUTORS,
      contents: { read: async () => new Uint8Array() },
    };
    await expect(applyChanges(deps, 'op-1', delta)).rejects.toThrow(/journaled another change 1/);
    expect(transport.sent).toEqual([]);
  });
});
