// Service, process and cgroup executors on scripted hosts: the commands they send, what they
// refuse before sending anything, and what they record as unresolved. The shell that stops
// processes runs for real against a process of this test, so a pid at another start time is
// seen to be spared.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../core/delta/changes.js';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { HostStateConflictError } from '../../../core/orchestrator/errors.js';
import { cgroupExecutor, resourceExecutor } from '../../../core/orchestrator/executors/cgroups.js';
import type { ContentSource, ExecutorContext } from '../../../core/orchestrator/executors/executor.js';
import { DEBIAN_EXECUTORS } from '../../../core/orchestrator/executors/index.js';
import {
  LAUNCH_SHELL,
  LIST_PROCESSES,
  launchScript,
  matchingProcesses,
  parseProcessList,
  processAddExecutor,
  processRemoveExecutor,
  stopScript,
} from '../../../core/orchestrator/executors/processes.js';
import {
  serviceAddExecutor,
  serviceRemoveExecutor,
  serviceUpdateExecutor,
} from '../../../core/orchestrator/executors/services.js';
import type { RunResult, Transport } from '../../../core/transport/transport.js';

interface Sent {
  readonly command: string;
  readonly stdin: string | undefined;
}
type Answer = Partial<RunResult> | ((sent: Sent) => Partial<RunResult>);
type Rule = readonly [RegExp, Answer];

/** A transport that answers from scripted output and keeps every command and its standard input. */
function scripted(rules: readonly Rule[]): Transport & { readonly sent: Sent[] } {
  const sent: Sent[] = [];
  const fail = async () => {
    throw new Error('not scripted');
  };
  return {
    target: 'ssh://root@scripted:22',
    sent,
    async run(command, options) {
      const s: Sent = {
        command,
        stdin: options?.stdin === undefined ? undefined : Buffer.from(options.stdin).toString(),
      };
      sent.push(s);
      const rule = rules.find(([pattern]) =>
        pattern.test(s.stdin === undefined ? command : `sh\n${s.stdin}`),
      );
      if (rule === undefined) throw new Error(`nothing scripted for: ${command}`);
      const out = typeof rule[1] === 'function' ? rule[1](s) : rule[1];
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, ...out };
    },
    stream: fail,
    putFile: fail,
    getFile: fail,
    close: async () => {},
  };
}

const ctx = (transport: Transport, contents: Partial<ContentSource> = {}): ExecutorContext => ({
  transport,
  operation: 'op-1',
  seq: 4,
  contents: { read: async () => new Uint8Array(), ...contents },
});

/** A /proc listing line as LIST_PROCESSES prints it. */
const proc = (
  pid: number,
  o: { ppid?: number; uid?: number; comm: string; args: string; state?: string; start?: number },
) =>
  `${o.uid ?? 0}\t${pid} (${o.comm}) ${o.state ?? 'S'} ${o.ppid ?? 1} ${pid} ${pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ${o.start ?? 5000} 1 1\t${o.args}`;

const listing = (...lines: string[]) => ({ stdout: ['self 900', ...lines, ''].join('\n') });

const LIST = /^set -f|^echo "self \$\$"/;
const launches = (t: { sent: Sent[] }) => t.sent.filter((s) => s.command === LAUNCH_SHELL);

const shopStart = {
  command: {
    name: 'shop-api',
    command: '/usr/local/bin/shop-api 100000',
    user: 'shop',
    workingDirectory: '/srv/shop',
  },
  environment: [
    { name: 'APP_MODE', value: 'production', scope: 'shop-api' },
    {
      name: 'DB_PASSWORD',
      secretRef: { provider: 'local' as const, key: 'web/env/shop-api/DB_PASSWORD' },
      sensitive: true,
      scope: 'shop-api',
    },
  ],
};

const addShop = (start: object | null = shopStart): Change =>
  ({
    kind: 'process.add',
    section: 'processes',
    key: 'shop-api',
    from: null,
    to: { name: 'shop-api', command: '/usr/local/bin/shop-api 100000', user: 'shop' },
    disruptive: false,
    ...(start === null ? {} : { start }),
  }) as Change;

const addNginx: Change = {
  kind: 'process.add',
  section: 'processes',
  key: 'nginx',
  from: null,
  to: { name: 'nginx', command: 'nginx: master process nginx', user: 'root', nice: 0, cgroup: '/' },
  disruptive: false,
};

const hostWith = (...lines: string[]) =>
  scripted([
    [/^id -u -- 'shop'$/, { stdout: '1001\n' }],
    [/^id -u -- 'root'$/, { stdout: '0\n' }],
    [LIST, listing(...lines)],
    [/exec "\$ss" --/, { stdout: 'started 4242 77000\nstarted 4243 77001\n' }],
    [/^if \[ -f .*\.started' \]/, { stdout: '' }],
  ]);

describe('the process list', () => {
  it('reads names holding ") " and spaces, and leaves out the shell that listed and its children', () => {
    const list = parseProcessList(
      listing(
        proc(10, { comm: 'odd) name', args: '/bin/odd' }),
        proc(900, { comm: 'sh', args: 'sh' }),
        proc(901, { ppid: 900, comm: 'tr', args: 'tr' }),
      ).stdout,
    );
    expect(list).toEqual([
      {
        pid: 10,
        ppid: 1,
        session: 10,
        uid: 0,
        state: 'S',
        start: '5000',
        comm: 'odd) name',
        args: '/bin/odd',
      },
    ]);
  });

  it('matches an entry by command line or kernel name, of its user only, never by interpreter, zombie or kernel thread', () => {
    const list = parseProcessList(
      listing(
        proc(20, { comm: 'nginx', args: 'nginx: master process /usr/sbin/nginx -g daemon on;' }),
        proc(21, { comm: 'nginx', args: 'nginx: worker process', uid: 33, ppid: 20 }),
        proc(22, { comm: 'nginx', args: 'nginx', state: 'Z' }),
        proc(23, { comm: 'nginx', args: '' }),
        proc(24, { comm: 'sh', args: '/bin/sh /usr/local/bin/app 1 two lines' }),
        proc(25, { comm: 'sh', args: '/bin/sh /usr/local/bin/other' }),
      ).stdout,
    );
    const nginx = { name: 'nginx', command: 'nginx: master process nginx', user: 'root' };
    expect(matchingProcesses(list, nginx, 0).map((p) => p.pid)).toEqual([20]);
    expect(matchingProcesses(list, { name: 'nginx', command: 'x' }, undefined).map((p) => p.pid)).toEqual([
      20, 21,
    ]);
    const app = { name: 'app', command: '/bin/sh /usr/local/bin/app 1 two\nlines' };
    expect(matchingProcesses(list, app, 0).map((p) => p.pid)).toEqual([24]);
  });

  it('is the listing the host shell prints (run here on the control machine)', () => {
    const list = parseProcessList(execFileSync('sh', [], { input: LIST_PROCESSES, encoding: 'utf8' }));
    const me = list.find((p) => p.pid === process.pid);
    expect(me).toMatchObject({
      uid: process.getuid?.(),
      comm: readFileSync('/proc/self/comm', 'utf8').trim(),
    });
    expect(list.some((p) => p.comm === 'tr')).toBe(false);
  });
});

describe('process.add', () => {
  it('leaves a process that runs already (a service started it) and starts nothing', async () => {
    const host = hostWith(proc(20, { comm: 'nginx', args: 'nginx: master process /usr/sbin/nginx' }));
    const prior = await processAddExecutor.prepare(ctx(host), addNginx);
    expect(await processAddExecutor.apply(ctx(host), addNginx, prior)).toEqual({
      status: 'unchanged',
      detail: 'nginx runs already (pid 20)',
    });
    expect(launches(host)).toEqual([]);
  });

  it('records a process with no start command and no service as unresolved', async () => {
    const host = hostWith();
    const change = addShop(null);
    expect(await processAddExecutor.apply(ctx(host), change, null)).toEqual({
      status: 'unresolved',
      detail: 'shop-api: no start command captured and no service starts it',
    });
    expect(launches(host)).toEqual([]);
  });

  it('starts it detached as its user in its folder with exactly its environment, the secret opened in memory and sent on standard input', async () => {
    const host = hostWith();
    const opened: string[] = [];
    const contents = {
      readSealed: async (ref: { key: string }, field: string) => {
        opened.push(`${ref.key} ${field}`);
        return new TextEncoder().encode('s3cret pass');
      },
    };
    const outcome = await processAddExecutor.apply(
      ctx(host, contents as Partial<ContentSource>),
      addShop(),
      null,
    );
    expect(outcome).toEqual({
      status: 'changed',
      detail: 'started shop-api as shop in /srv/shop (pid 4242, 4243)',
    });
    expect(opened).toEqual(['web/env/shop-api/DB_PASSWORD processes shop-api start.environment DB_PASSWORD']);
    const [launch] = launches(host);
    expect(launch?.stdin).toContain("cd -- '/srv/shop' || exit 71");
    expect(launch?.stdin).toContain('set -- --reuid=\'shop\' "--regid=$g" --init-groups');
    expect(launch?.stdin).toContain(
      "(\n  unset PWD OLDPWD PATH\n  export 'APP_MODE=production' 'DB_PASSWORD=s3cret pass'\n  exec \"$ss\" -- \"$sp\" \"$@\" -- '/usr/local/bin/shop-api' '100000' </dev/null >/dev/null 2>&1\n) &",
    );
    expect(launch?.stdin).toContain("'/var/lib/persona/backup/op-1/4.started'");
    // No command line and no outcome holds the secret.
    expect(host.sent.map((s) => s.command).join('\n')).not.toContain('s3cret');
    expect(JSON.stringify(outcome)).not.toContain('s3cret');
  });

  it('fails naming the variable when a secret value cannot be opened, before starting anything', async () => {
    const host = hostWith();
    const attempt = processAddExecutor.apply(ctx(host), addShop(), null);
    await expect(attempt).rejects.toBeInstanceOf(NotFoundError);
    await expect(processAddExecutor.apply(ctx(host), addShop(), null)).rejects.toThrow(
      /environment variable DB_PASSWORD is a secret reference/,
    );
    expect(launches(host)).toEqual([]);
  });

  it('passes every word of a hostile command line as one quoted argument after "--"', async () => {
    const host = hostWith();
    const start = {
      command: { name: 'shop-api', command: '/usr/local/bin/shop-api ;id $(id) `id` -rf a\nb', user: 'root' },
      environment: [{ name: 'X', value: "it's; $(id)\nnext" }],
    };
    await processAddExecutor.apply(ctx(host), addShop(start), null);
    const stdin = launches(host)[0]?.stdin ?? '';
    expect(stdin).toContain(
      "export 'X=it'\\''s; $(id)\nnext'\n  exec \"$ss\" -- \"$sp\" \"$@\" -- '/usr/local/bin/shop-api' ';id' '$(id)' '`id`' '-rf' 'a\nb' </dev/null",
    );
    // What the host's shell makes of those words: exactly them, one argument each.
    const words = stdin.slice(stdin.indexOf("-- '/usr/local"), stdin.indexOf(' </dev/null'));
    const argv = execFileSync('sh', ['-c', `printf '%s\\0' ${words.slice(3)}`], { encoding: 'utf8' });
    expect(argv.split('\0').slice(0, -1)).toEqual([
      '/usr/local/bin/shop-api',
      ';id',
      '$(id)',
      '`id`',
      '-rf',
      'a\nb',
    ]);
  });

  it('refuses an environment name no environment can hold, naming it, before sending anything', async () => {
    const host = hostWith();
    const start = { command: shopStart.command, environment: [{ name: 'A=B', value: '1' }] };
    const error = await processAddExecutor.apply(ctx(host), addShop(start), null).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues[0]?.path).toBe('start.environment[0].name');
    expect(launches(host)).toEqual([]);
  });

  it('refuses a user name that reads as an option', async () => {
    const host = hostWith();
    const change = { ...addShop(), to: { name: 'shop-api', command: 'x', user: '-u0' } } as Change;
    await expect(processAddExecutor.prepare(ctx(host), change)).rejects.toBeInstanceOf(InvalidInputError);
    expect(host.sent).toEqual([]);
  });

  it('records a start command whose credential capture masked as unresolved instead of running it', async () => {
    const host = hostWith();
    const start = {
      command: { name: 'shop-api', command: '/usr/local/bin/shop-api --password=<redacted>' },
      environment: [],
    };
    expect(await processAddExecutor.apply(ctx(host), addShop(start), null)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/masked/),
    });
    expect(launches(host)).toEqual([]);
  });

  it('on revert stops only what it started, never what ran before it', async () => {
    const host = scripted([
      [
        /^if \[ -f '\/var\/lib\/persona\/backup\/op-1\/4\.started' \]/,
        { stdout: '300 7000\n301 7001\n300 7000\n' },
      ],
      [/^sh\n/, { stdout: 'TERM 301 7001\n' }],
    ]);
    const outcome = await processAddExecutor.revert(ctx(host), addShop(), {
      running: [{ pid: 300, start: '7000' }],
    });
    expect(outcome).toEqual({ status: 'changed', detail: 'stopped shop-api (pid 301)' });
    const stop = host.sent.find((s) => s.command === 'sh')?.stdin ?? '';
    expect(stop).toContain("live '301' '7001'\n");
  });
});

describe('process.remove', () => {
  it('keeps how each master was started on the host, stops them and everything below them, and starts the masters again on revert', async () => {
    let stopped = false;
    const nul = (...w: string[]) => Buffer.from(`${w.join('\0')}\0`).toString('base64');
    const host = scripted([
      [/^id -u -- 'shop'$/, { stdout: '1001\n' }],
      [
        LIST,
        () =>
          stopped
            ? listing()
            : listing(
                proc(500, {
                  uid: 1001,
                  comm: 'shop-api',
                  args: '/usr/local/bin/shop-api 100000',
                  start: 9000,
                }),
                proc(501, {
                  uid: 1001,
                  ppid: 500,
                  comm: 'shop-api',
                  args: '/usr/local/bin/shop-api worker',
                  start: 9001,
                }),
                proc(502, { uid: 1001, ppid: 501, comm: 'sleep', args: 'sleep 100000', start: 9002 }),
              ),
      ],
      [/^umask 077\n/, { stdout: `1001\n${Buffer.from('/srv/shop').toString('base64')}` }],
      [
        /^sh\n.*live /s,
        () => {
          stopped = true;
          return { stdout: 'TERM 500 9000\nTERM 501 9001\n' };
        },
      ],
      [
        /^if \[ -f '.*\.cmdline' \]/,
        { stdout: `${nul('/usr/local/bin/shop-api', '100000')}\n${nul('A=1', 'odd-name=1', 'B=x y')}` },
      ],
      [/exec "\$ss" --/, { stdout: 'started 600 9100\n' }],
    ]);
    const change = { ...addShop(), kind: 'process.remove', from: addShop().to, to: null } as Change;
    const prior = await processRemoveExecutor.prepare(ctx(host), change);
    expect(prior).toEqual({
      stopped: [
        {
          pid: 500,
          start: '9000',
          uid: 1001,
          gid: 1001,
          cwd: '/srv/shop',
          kept: '/var/lib/persona/backup/op-1/4.500',
        },
      ],
    });
    expect(await processRemoveExecutor.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'stopped shop-api (pid 500, 501)',
    });
    // The workers and what they run go too: a shell stopped alone would leave its child running.
    expect(host.sent.find((s) => s.stdin?.includes('live '))?.stdin).toContain(
      "live '500' '9000' '501' '9001' '502' '9002'\n",
    );
    expect(await processRemoveExecutor.revert(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'started shop-api again (pid 600)',
    });
    expect(launches(host)[0]?.stdin).toContain(
      "export 'A=1' 'B=x y'\n  exec \"$ss\" -- env -- 'odd-name=1' \"$sp\" \"$@\" -- '/usr/local/bin/shop-api' '100000'",
    );
    expect(launches(host)[0]?.stdin).toContain("set -- --reuid='1001' --regid='1001' --init-groups\n");
  });
});

describe('the stop script, run for real', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child?.exitCode === null) child.kill('SIGKILL');
  });

  const startOf = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19] as string;
  };
  const exited = (c: ChildProcess) => new Promise<void>((resolve) => c.once('exit', () => resolve()));

  it('spares a process whose pid is listed with another start time (a reused pid), and stops the one it names', async () => {
    child = spawn('sleep', ['300'], { stdio: 'ignore' });
    const pid = child.pid as number;
    const start = startOf(pid);
    const spared = execFileSync('sh', [], {
      input: stopScript([{ pid, start: String(Number(start) + 1) }]),
      encoding: 'utf8',
    });
    expect(spared).toBe('');
    expect(child.exitCode).toBeNull();
    expect(startOf(pid)).toBe(start);
    const gone = exited(child);
    const signalled = execFileSync('sh', [], { input: stopScript([{ pid, start }]), encoding: 'utf8' });
    expect(signalled).toBe(`TERM ${pid} ${start}\n`);
    await gone;
  });

  it('refuses what is not a pid and a start time, and pid 1', () => {
    expect(() => stopScript([{ pid: 1, start: '5' }])).toThrow(InvalidInputError);
    expect(() => stopScript([{ pid: 40, start: '5; reboot' }])).toThrow(InvalidInputError);
  });
});

describe('launchScript', () => {
  it('refuses an environment entry that is not NAME=value, which env would run as the program', () => {
    expect(() =>
      launchScript({ argv: ['/bin/true'], env: ['/bin/sh'], cwd: '/', user: 'root' }, '/d', '/d/r'),
    ).toThrow(InvalidInputError);
    expect(() => launchScript({ argv: [], env: [], cwd: '/', user: 'root' }, '/d', '/d/r')).toThrow(
      InvalidInputError,
    );
  });
});

describe('the launch script, run for real', () => {
  // A program that daemonises as nginx's master does: it starts a copy of itself in a session
  // of its own and exits; the copy keeps running, with children of its own.
  const DAEMON =
    '#!/bin/sh\nif [ "$1" = run ]; then while :; do sleep 1; done; fi\nsetsid "$0" run </dev/null >/dev/null 2>&1 &\nexit 0\n';
  let dir: string | undefined;
  let decoy: ChildProcess | undefined;
  afterEach(() => {
    if (decoy?.pid !== undefined && decoy.exitCode === null) process.kill(-decoy.pid, 'SIGKILL');
    // Whatever a failed assertion left running of the program under test.
    if (dir !== undefined) spawnSync('pkill', ['-KILL', '-f', `${dir}/`]);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  const launch = (program: string, name: string | undefined) => {
    const d = dir as string;
    const script = launchScript(
      {
        argv: [program, '--flag'],
        env: ['PATH=/usr/bin:/bin'],
        cwd: d,
        user: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
        ...(name === undefined ? {} : { name }),
      },
      join(d, 'backup'),
      join(d, 'backup', 'record'),
    );
    return spawnSync('sh', ['-c', LAUNCH_SHELL], { input: script, encoding: 'utf8' });
  };
  const alive = (pid: number) => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
    } catch {
      return false;
    }
  };
  const recordOf = (d: string) =>
    readFileSync(join(d, 'backup', 'record'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => ({ pid: Number(l.split(' ')[0]), start: l.split(' ')[1] as string }));

  it('records a program that daemonises by the session it made, and what it records is what stopping ends', async () => {
    dir = mkdtempSync(join(tmpdir(), 'persona-launch-'));
    const program = join(dir, 'pdaemon');
    writeFileSync(program, DAEMON, { mode: 0o755 });
    // One of the same name that ran before the launch (another instance): never taken for it.
    decoy = spawn(program, ['run'], { detached: true, stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const r = launch(program, 'pdaemon');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const started = r.stdout.split('\n').filter((l) => l.startsWith('started '));
    const pids = started.map((l) => Number(l.split(' ')[1]));
    const record = recordOf(dir);
    const daemon = spawnSync('pgrep', ['-f', '-x', `/bin/sh ${program} run`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l !== '')
      .map(Number)
      .filter((pid) => pid !== decoy?.pid);
    expect(daemon).toHaveLength(1);
    expect(pids).toContain(daemon[0]);
    expect(record.map((p) => p.pid)).toContain(daemon[0]);
    expect(record.map((p) => p.pid)).not.toContain(decoy.pid);

    execFileSync('sh', [], { input: stopScript(record), encoding: 'utf8' });
    expect(alive(daemon[0] as number)).toBe(false);
    expect(alive(decoy.pid as number)).toBe(true);
  });

  it('without the name still fails a program whose process is gone within a second', () => {
    dir = mkdtempSync(join(tmpdir(), 'persona-launch-'));
    const r = launch('/bin/true', undefined);
    expect(r.status).toBe(72);
    expect(r.stderr).toContain('it exited within a second of its start');
  });

  it('fails naming a program the host does not have, before starting anything', () => {
    dir = mkdtempSync(join(tmpdir(), 'persona-launch-'));
    // nginx's master retitles itself: its command line is a title, not a program.
    for (const program of [join(dir, 'absent'), 'nginx:']) {
      const r = launch(program, 'absent');
      expect(r.status).toBe(76);
      expect(r.stderr).toContain(`the host has no program '${program}'`);
      expect(recordOf(dir)).toEqual([]);
    }
  });
});

const initScript = (sha: string | null) =>
  scripted([
    [/^if \[ -d \/run\/systemd\/system \]/, { stdout: 'sysvinit\n' }],
    [/^for f in '\/etc\/init\.d\/nginx'; do/, { stdout: sha === null ? '' : `${sha}  /etc/init.d/nginx\n` }],
  ]);

const serviceChange = (kind: Change['kind'], entry: object): Change =>
  ({
    kind,
    section: 'services',
    key: 'nginx',
    from:
      kind === 'service.add'
        ? null
        : { name: 'nginx', manager: 'sysvinit', state: 'stopped', enabled: false, ...entry },
    to:
      kind === 'service.remove'
        ? null
        : { name: 'nginx', manager: 'sysvinit', state: 'stopped', enabled: false, ...entry },
    disruptive: false,
  }) as Change;

const SHA = 'd856'.padEnd(64, '0');

describe('service.add', () => {
  it('finds the init script a package brought, as the Profile hashed it, and changes nothing', async () => {
    const host = initScript(SHA);
    const change = serviceChange('service.add', { unitHash: `sha256:${SHA}` });
    expect(await serviceAddExecutor.apply(ctx(host), change, null)).toEqual({
      status: 'unchanged',
      detail: 'nginx: /etc/init.d/nginx is on the host, as hashed',
    });
    expect(await serviceAddExecutor.revert(ctx(host), change, null)).toMatchObject({ status: 'unchanged' });
  });

  it('fails naming the unit when it is missing or is another script', async () => {
    const missing = serviceAddExecutor.apply(ctx(initScript(null)), serviceChange('service.add', {}), null);
    await expect(missing).rejects.toBeInstanceOf(HostStateConflictError);
    await expect(
      serviceAddExecutor.apply(ctx(initScript(null)), serviceChange('service.add', {}), null),
    ).rejects.toThrow(/no init script on the host \(\/etc\/init\.d\/nginx\)/);
    await expect(
      serviceAddExecutor.apply(
        ctx(initScript('e'.repeat(64))),
        serviceChange('service.add', { unitHash: `sha256:${SHA}` }),
        null,
      ),
    ).rejects.toThrow(/\/etc\/init\.d\/nginx on the host hashes to sha256:e{64}, not sha256:d856/);
  });

  it('records a systemd unit on a host without systemd, and managers it cannot drive, as unresolved', async () => {
    const host = initScript(SHA);
    expect(
      await serviceAddExecutor.apply(ctx(host), serviceChange('service.add', { manager: 'systemd' }), null),
    ).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/systemd does not run this host/),
    });
    expect(
      await serviceAddExecutor.apply(
        ctx(host),
        serviceChange('service.add', { manager: 'supervisord' }),
        null,
      ),
    ).toMatchObject({ status: 'unresolved', detail: expect.stringMatching(/supervisord/) });
  });
});

describe('service.update and service.remove', () => {
  it('has systemd read a changed unit again, once', async () => {
    let reload = 'yes';
    const host = scripted([
      [/^if \[ -d \/run\/systemd\/system \]/, { stdout: 'systemd\n' }],
      [
        /^for f in '\/etc\/systemd\/system\/nginx\.service'/,
        { stdout: `${SHA}  /lib/systemd/system/nginx.service\n` },
      ],
      [/^systemctl show --property=NeedDaemonReload/, () => ({ stdout: `${reload}\n` })],
      [
        /^systemctl daemon-reload$/,
        () => {
          reload = 'no';
          return {};
        },
      ],
    ]);
    const change = serviceChange('service.update', { manager: 'systemd', unitHash: `sha256:${SHA}` });
    expect(await serviceUpdateExecutor.apply(ctx(host), change, null)).toMatchObject({ status: 'changed' });
    expect(await serviceUpdateExecutor.apply(ctx(host), change, null)).toMatchObject({ status: 'unchanged' });
    expect(host.sent.filter((s) => s.command === 'systemctl daemon-reload')).toHaveLength(1);
  });

  it('stops and disables what still runs from a service that goes, and brings it back on revert', async () => {
    let running = true;
    let enabled = true;
    const host = scripted([
      [/^if \[ -d \/run\/systemd\/system \]/, { stdout: 'sysvinit\n' }],
      [/^service 'nginx' status$/, () => ({ exitCode: running ? 0 : 3 })],
      [/^n='nginx'; for f in/, () => ({ exitCode: enabled ? 0 : 1 })],
      [
        /^service 'nginx' '(start|stop)'$/,
        (s) => {
          running = s.command.includes('start');
          return {};
        },
      ],
      [
        /^update-rc\.d 'nginx' '(enable|disable)'$/,
        (s) => {
          enabled = s.command.includes('enable');
          return {};
        },
      ],
    ]);
    const change = serviceChange('service.remove', { state: 'running', enabled: true });
    const prior = await serviceRemoveExecutor.prepare(ctx(host), change);
    expect(await serviceRemoveExecutor.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'nginx stopped and disabled (sysvinit)',
    });
    expect([running, enabled]).toEqual([false, false]);
    expect(await serviceRemoveExecutor.apply(ctx(host), change, prior)).toMatchObject({
      status: 'unchanged',
    });
    expect(await serviceRemoveExecutor.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect([running, enabled]).toEqual([true, true]);
  });
});

/** A cgroup v2 tree as the executor reads and writes it, answering its scripts. */
function cgroupHost(fs: 'v2' | 'v1' | 'absent' | 'read-only') {
  const dirs = new Set<string>(['/sys/fs/cgroup', '/sys/fs/cgroup/system.slice']);
  const subtree = new Map<string, Set<string>>([
    ['/sys/fs/cgroup', new Set(['cpu'])],
    ['/sys/fs/cgroup/system.slice', new Set()],
  ]);
  const files = new Map<string, string>();
  const quoted = (s: string) => [...s.matchAll(/'([^']*)'/g)].map((m) => m[1] as string);
  const host = scripted([
    [
      /^while read -r dev mp type opts/,
      {
        stdout: {
          v2: 'v2 rw /sys/fs/cgroup cpuset cpu io memory pids \n',
          'read-only': 'v2 ro /sys/fs/cgroup cpuset cpu io memory pids \n',
          // v1 hierarchies, none of them memory's.
          v1: 'v1 rw /sys/fs/cgroup/cpu,cpuacct rw,relatime,cpu,cpuacct\nv1 rw /sys/fs/cgroup/devices rw,devices\n',
          absent: '',
        }[fs],
      },
    ],
    [
      /^: cgroup limits/,
      (s) => {
        const lines: string[] = [];
        const [dirsLine, subtreeLine, filesLine] = s.command.split('\n').slice(-3);
        for (const d of quoted(dirsLine ?? '')) if (dirs.has(d)) lines.push(`dir ${d}`);
        for (const a of quoted(subtreeLine ?? ''))
          if (dirs.has(a)) lines.push(`subtree ${a} ${[...(subtree.get(a) ?? [])].join(' ')} `);
        for (const f of quoted(filesLine ?? '')) {
          const v = files.get(f);
          if (v !== undefined) lines.push(`file ${f} ${v}`);
        }
        return { stdout: `${lines.join('\n')}\n` };
      },
    ],
    [
      /^(mkdir|rmdir|printf)/,
      (s) => {
        for (const line of s.command.split(' &&\n')) {
          const words = quoted(line);
          const [a, b] = line.startsWith('printf') ? words.slice(1) : words;
          if (line.startsWith('mkdir')) {
            dirs.add(a as string);
            subtree.set(a as string, new Set());
            const parent = (a as string).slice(0, (a as string).lastIndexOf('/'));
            for (const [name, { controller }] of Object.entries(FILE_CONTROLLERS))
              if (subtree.get(parent)?.has(controller)) files.set(`${a}/${name}`, INITIAL[name] as string);
          } else if (line.startsWith('rmdir')) {
            dirs.delete(a as string);
            for (const k of [...files.keys()]) if (k.startsWith(`${a}/`)) files.delete(k);
          } else if ((b as string).endsWith('/cgroup.subtree_control')) {
            const dir = (b as string).slice(0, -'/cgroup.subtree_control'.length);
            const [sign, controller] = [(a as string)[0], (a as string).slice(1)];
            if (sign === '+') subtree.get(dir)?.add(controller);
            else subtree.get(dir)?.delete(controller);
            for (const child of dirs)
              for (const [name, c] of Object.entries(FILE_CONTROLLERS))
                if (
                  child.startsWith(`${dir}/`) &&
                  c.controller === controller &&
                  sign === '+' &&
                  !files.has(`${child}/${name}`)
                )
                  files.set(`${child}/${name}`, INITIAL[name] as string);
          } else {
            files.set(b as string, a as string);
          }
        }
        return {};
      },
    ],
    [/^getconf/, { stdout: '2\n2048000\n' }],
  ]);
  return { host, dirs, subtree, files };
}
const FILE_CONTROLLERS: Record<string, { controller: string }> = {
  'cpu.max': { controller: 'cpu' },
  'memory.max': { controller: 'memory' },
  'io.weight': { controller: 'io' },
};
const INITIAL: Record<string, string> = {
  'cpu.max': 'max 100000',
  'memory.max': 'max',
  'io.weight': 'default 100',
};

const setShop = (to: object, from: object | null = null): Change =>
  ({
    kind: 'cgroup.set',
    section: 'cgroups',
    key: '/system.slice/shop.service',
    from: from === null ? null : { path: '/system.slice/shop.service', ...from },
    to: { path: '/system.slice/shop.service', ...to },
    disruptive: false,
  }) as Change;

describe('cgroup.set', () => {
  it('makes the group, enables the controllers it needs, writes the limits, and undoes all of it on revert', async () => {
    const { host, dirs, subtree, files } = cgroupHost('v2');
    const change = setShop({ cpuMax: '50000 100000', memoryMax: 268435456, ioWeight: 50 });
    const prior = await cgroupExecutor.prepare(ctx(host), change);
    expect(await cgroupExecutor.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: '/system.slice/shop.service: cpu.max=50000 100000, memory.max=268435456, io.weight=default 50',
    });
    const group = '/sys/fs/cgroup/system.slice/shop.service';
    expect(files.get(`${group}/cpu.max`)).toBe('50000 100000');
    expect(files.get(`${group}/memory.max`)).toBe('268435456');
    expect(files.get(`${group}/io.weight`)).toBe('default 50');
    expect([...(subtree.get('/sys/fs/cgroup/system.slice') ?? [])].sort()).toEqual(['cpu', 'io', 'memory']);
    expect(await cgroupExecutor.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await cgroupExecutor.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(dirs.has(group)).toBe(false);
    expect([...(subtree.get('/sys/fs/cgroup') ?? [])]).toEqual(['cpu']);
    expect([...(subtree.get('/sys/fs/cgroup/system.slice') ?? [])]).toEqual([]);
    expect(await cgroupExecutor.revert(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('puts a limit the Profile no longer names back to the kernel’s initial value, and the old one on revert', async () => {
    const { host, files } = cgroupHost('v2');
    const group = '/sys/fs/cgroup/system.slice/shop.service';
    await cgroupExecutor.apply(ctx(host), setShop({ memoryMax: 1000 }), null);
    const change = setShop({ cpuMax: 'max 100000' }, { memoryMax: 1000 });
    const prior = await cgroupExecutor.prepare(ctx(host), change);
    expect(await cgroupExecutor.apply(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(files.get(`${group}/memory.max`)).toBe('max');
    await cgroupExecutor.revert(ctx(host), change, prior);
    expect(files.get(`${group}/memory.max`)).toBe('1000');
  });

  it('records a host with no cgroup filesystem, a read-only one or no hierarchy for a limit as unresolved, writing nothing', async () => {
    for (const [fs, reason] of [
      ['absent', /no cgroup filesystem/],
      ['read-only', /read-only/],
      ['v1', /no cgroup hierarchy on the host holds the memory controller/],
    ] as const) {
      const { host } = cgroupHost(fs);
      const change = setShop({ memoryMax: 1000 });
      expect(await cgroupExecutor.apply(ctx(host), change, null)).toMatchObject({
        status: 'unresolved',
        detail: expect.stringMatching(reason),
      });
      expect(host.sent.every((s) => /^(while read|: cgroup limits)/.test(s.command))).toBe(true);
    }
  });

  it('refuses a path that leaves /sys/fs/cgroup or a cpu.max that is not one, before any command', async () => {
    const { host } = cgroupHost('v2');
    for (const change of [
      { ...setShop({}), key: '/system.slice/../../../etc' },
      { ...setShop({}), key: '/-x' },
      { ...setShop({}), key: 'relative' },
      setShop({ cpuMax: '5000\n1000' }),
      setShop({ cpuMax: "max' ; reboot" }),
    ] as Change[]) {
      await expect(cgroupExecutor.prepare(ctx(host), change)).rejects.toBeInstanceOf(InvalidInputError);
    }
    expect(host.sent).toEqual([]);
  });
});

describe('resource.resize', () => {
  it('says unchanged when the host has the size, and unresolved naming the platform when it has not', async () => {
    const { host } = cgroupHost('v2');
    const cpu = (count: number): Change => ({
      kind: 'resource.resize',
      section: 'resources',
      key: 'cpu',
      from: null,
      to: { count },
      disruptive: false,
    });
    expect(await resourceExecutor.apply(ctx(host), cpu(2), null)).toMatchObject({ status: 'unchanged' });
    expect(await resourceExecutor.apply(ctx(host), cpu(8), null)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/2 CPUs, not 8.*instance\.resize/),
    });
  });
});

describe('DEBIAN_EXECUTORS', () => {
  it('has an executor for every service, process, cgroup and application kind', () => {
    for (const kind of [
      'service.add',
      'service.update',
      'service.remove',
      'process.add',
      'process.remove',
      'cgroup.set',
      'cgroup.unset',
      'resource.resize',
      'application.configure',
    ] as const)
      expect(DEBIAN_EXECUTORS.has(kind), kind).toBe(true);
  });
});
