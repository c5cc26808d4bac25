// The orchestrator on a real test host over SSH, journaling into DynamoDB Local: a small Delta
// lands and shows on the host, a second apply changes nothing, a failure at the third Change
// leaves the host exactly as it was, and a control side that died mid-apply is undone from the
// journal alone. One host for the whole file.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Change, Delta, summarize } from '../../../core/delta/changes.js';
import { type ApplyDeps, applyChanges, resume, revertOperation } from '../../../core/orchestrator/apply.js';
import type { ContentSource, Executor } from '../../../core/orchestrator/executors/executor.js';
import { DEBIAN_EXECUTORS, type Executors } from '../../../core/orchestrator/executors/index.js';
import { DynamoJournal, type Journal } from '../../../core/orchestrator/journal.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

let dir: string;
let standIns: StandIns;
let host: TestHost;
const opened: { close(): Promise<void> | void }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-orchestrator-'));
  [standIns, host] = await Promise.all([
    startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
      buckets: [],
    }),
    createHost({ name: 'orchestrate' }),
  ]);
}, 600_000);

afterAll(async () => {
  for (const o of opened) await o.close();
  await destroyAllHosts();
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** Everything the control side holds: a fresh set is what a restarted control side has. */
function controlSide(executors: Executors = DEBIAN_EXECUTORS): ApplyDeps & { journal: DynamoJournal } {
  const client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const transport = sshTransportTo(host);
  opened.push(transport, { close: () => ddb.destroy() });
  return { transport, journal: new DynamoJournal(ddb, 'journal'), executors, contents };
}

const CONFIG = Buffer.from('listen = 8080\nname = "persona test"\n');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const blobs = new Map([[`sha256:${sha(CONFIG)}`, CONFIG]]);
const contents: ContentSource = {
  async read(hash) {
    const b = blobs.get(hash);
    if (b === undefined) throw new Error(`no content ${hash}`);
    return b;
  },
};

const TTL = 'net.ipv4.ip_default_ttl';
const FILE = '/etc/persona-app/app.conf';

const CHANGES: Change[] = [
  { kind: 'sysctl.set', section: 'sysctl', key: TTL, from: '64', to: '77', disruptive: false },
  {
    kind: 'file.write',
    section: 'files',
    key: FILE,
    from: null,
    to: {
      path: FILE,
      type: 'file',
      hash: `sha256:${sha(CONFIG)}`,
      size: CONFIG.length,
      mode: '0640',
      owner: 'root',
      group: 'root',
    },
    disruptive: false,
  },
  {
    kind: 'group.add',
    section: 'groups',
    key: 'papp',
    from: null,
    to: { name: 'papp', gid: 2501, members: [] },
    disruptive: false,
  },
  {
    kind: 'user.add',
    section: 'users',
    key: 'papp',
    from: null,
    to: { name: 'papp', uid: 2501, gid: 2501, home: '/srv/papp', shell: '/bin/sh', groups: [] },
    disruptive: false,
  },
  {
    kind: 'env.set',
    section: 'env',
    key: 'APP_MODE',
    from: null,
    to: { name: 'APP_MODE', value: 'production' },
    disruptive: false,
  },
];

const delta = (changes: Change[]): Delta =>
  Delta.parse({ from: { name: 'bare' }, to: { name: 'web' }, changes, summary: summarize(changes) });

/**
 * What the Delta could change, and what could be left behind: accounts, the sysctl live and
 * persisted, the environment file, and every file of /etc and /var/lib with its mode, owner and
 * hash. shadow's own `-` backups (/etc/passwd- ...) are rewritten by any account change and
 * restored by none: they are left out.
 */
async function hostState(): Promise<Record<string, string>> {
  const run = (command: string) => host.run(command);
  return {
    passwd: await run('getent passwd'),
    group: await run('getent group'),
    sysctl: await run(`sysctl -n ${TTL}`),
    environment: await run('cat /etc/environment'),
    files: await run(
      "find /etc /var/lib /srv -xdev ! -name '*-' \\( -type f -printf '%p %m %u %g ' -exec sh -c 'sha256sum < \"$1\"' _ {} \\; \\) -o ! -type f -printf '%p %y %m %u %g\\n' | sort",
    ),
  };
}

describe('applyChanges on a real host', () => {
  it('applies a small Delta so that the host shows it, and a second apply changes nothing', async () => {
    const before = await hostState();
    // The listing sees files with their mode, owner and hash.
    expect(before.files).toMatch(/^\/etc\/environment 644 root root e3b0c442[0-9a-f]{56} {2}-$/m);
    const deps = controlSide();
    const first = await applyChanges(deps, 'apply-1', delta(CHANGES));
    expect(first.status).toBe('applied');
    expect(first.results.map((r) => r.outcome.status)).toEqual([
      'changed',
      'changed',
      'changed',
      'changed',
      'changed',
    ]);

    expect((await host.run(`sysctl -n ${TTL}`)).trim()).toBe('77');
    expect(await host.readFile('/etc/sysctl.d/60-persona.conf')).toBe(`${TTL} = 77\n`);
    expect(await host.readFile(FILE)).toBe(CONFIG.toString());
    expect((await host.run(`stat -c '%a %U %G' ${FILE}`)).trim()).toBe('640 root root');
    expect((await host.run('getent group papp')).trim()).toBe('papp:x:2501:');
    expect((await host.run('getent passwd papp')).trim()).toBe('papp:x:2501:2501::/srv/papp:/bin/sh');
    expect(await host.readFile('/etc/environment')).toBe('APP_MODE=production\n');

    const again = await applyChanges(deps, 'apply-2', delta(CHANGES));
    expect(again.status).toBe('applied');
    expect(again.results.map((r) => r.outcome.status)).toEqual([
      'unchanged',
      'unchanged',
      'unchanged',
      'unchanged',
      'unchanged',
    ]);
    // The same operation asked again (a retried step) reads its journal and does nothing either.
    const retried = await applyChanges(deps, 'apply-1', delta(CHANGES));
    expect(retried.results.every((r) => r.outcome.detail.startsWith('already applied'))).toBe(true);

    // Rolling both back, the second's first: nothing of either is left.
    expect((await revertOperation(deps, 'apply-2')).failures).toEqual([]);
    expect((await host.run(`sysctl -n ${TTL}`)).trim()).toBe('77');
    const rollback = await revertOperation(deps, 'apply-1');
    expect(rollback.failures).toEqual([]);
    expect(rollback.reverted.map((r) => r.kind)).toEqual([
      'env.set',
      'user.add',
      'group.add',
      'file.write',
      'sysctl.set',
    ]);
    expect(await hostState()).toEqual(before);
  });

  it('reverts the applied Changes in reverse when the third fails, leaving the host exactly as it was', async () => {
    const before = await hostState();
    // The third Change lands on the host, then its executor fails (a connection lost after the
    // command ran): the write-ahead journal has it, so it is reverted too.
    const failing = new Map(DEBIAN_EXECUTORS);
    const real = DEBIAN_EXECUTORS.get('group.add') as Executor;
    failing.set('group.add', {
      ...real,
      async apply(ctx, change, prior) {
        await real.apply(ctx, change, prior);
        throw new Error('injected: connection lost after groupadd');
      },
    });
    const deps = controlSide(failing);
    const result = await applyChanges(deps, 'fail-3', delta(CHANGES));
    expect(result.status).toBe('rolled-back');
    if (result.status !== 'rolled-back') return;
    expect(result.failed).toMatchObject({ seq: 2, kind: 'group.add', key: 'papp', error: /injected/ });
    expect(result.results.map((r) => r.kind)).toEqual(['sysctl.set', 'file.write']);
    expect(result.rollback.failures).toEqual([]);
    expect(result.rollback.reverted.map((r) => [r.kind, r.outcome.status])).toEqual([
      ['group.add', 'changed'],
      ['file.write', 'changed'],
      ['sysctl.set', 'changed'],
    ]);
    expect((await host.exec(`test -e ${FILE}`)).exitCode).not.toBe(0);
    expect((await host.exec('getent group papp')).exitCode).toBe(2);
    expect(await hostState()).toEqual(before);
    const entries = await deps.journal.entries('fail-3');
    expect(entries.map((e) => e.state)).toEqual(['reverted', 'reverted', 'reverted']);
  });

  it('reverts from the DynamoDB journal alone after the control side died mid-apply', async () => {
    const before = await hostState();
    let reached: () => void = () => {};
    const dying = new Promise<void>((resolve) => {
      reached = resolve;
    });
    // The third Change runs on the host and then the control side is gone: its apply never
    // returns, and nothing it held in memory is used again.
    const hanging = new Map(DEBIAN_EXECUTORS);
    const real = DEBIAN_EXECUTORS.get('group.add') as Executor;
    hanging.set('group.add', {
      ...real,
      async apply(ctx, change, prior) {
        await real.apply(ctx, change, prior);
        reached();
        return new Promise(() => {});
      },
    });
    void applyChanges(controlSide(hanging), 'crash-1', delta(CHANGES));
    await dying;

    const restarted = controlSide();
    const journaled = await restarted.journal.entries('crash-1');
    expect(journaled.map((e) => [e.change.kind, e.state])).toEqual([
      ['sysctl.set', 'applied'],
      ['file.write', 'applied'],
      ['group.add', 'applying'],
    ]);
    expect((await host.run('getent group papp')).trim()).toBe('papp:x:2501:');
    const rollback = await resume(restarted, 'crash-1');
    expect(rollback.failures).toEqual([]);
    expect(rollback.reverted.map((r) => r.kind)).toEqual(['group.add', 'file.write', 'sysctl.set']);
    expect(await hostState()).toEqual(before);
    // Resuming again finds nothing left to revert.
    expect((await resume(restarted, 'crash-1')).reverted).toEqual([]);
  });

  it('finishes a crashed apply when the same operation is run again, from what the journal read before', async () => {
    const before = await hostState();
    let reached: () => void = () => {};
    const dying = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const hanging = new Map(DEBIAN_EXECUTORS);
    const real = DEBIAN_EXECUTORS.get('file.write') as Executor;
    hanging.set('file.write', {
      ...real,
      async apply(ctx, change, prior) {
        await real.apply(ctx, change, prior);
        reached();
        return new Promise(() => {});
      },
    });
    void applyChanges(controlSide(hanging), 'crash-2', delta(CHANGES));
    await dying;

    const restarted = controlSide();
    const result = await applyChanges(restarted, 'crash-2', delta(CHANGES));
    expect(result.status).toBe('applied');
    expect(result.results.map((r) => r.outcome.status)).toEqual([
      'unchanged',
      'unchanged',
      'changed',
      'changed',
      'changed',
    ]);
    expect((await restarted.journal.entries('crash-2')).every((e) => e.state === 'applied')).toBe(true);
    // The file's entry kept the state from before the crash (no file), so rollback removes it.
    expect((await revertOperation(restarted, 'crash-2')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
  });

  it('refuses content that changed on the way to the host and leaves the file as it was', async () => {
    const before = await hostState();
    const deps = controlSide();
    const inner = deps.transport;
    // A byte flipped between the control side and the file: the host's own hash check sees it.
    const corrupting = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop !== 'run') return Reflect.get(target, prop, receiver);
        return (command: string, options?: { stdin?: Uint8Array | string }) => {
          if (options?.stdin === undefined || typeof options.stdin === 'string' || !command.includes(FILE))
            return target.run(command, options);
          const bytes = Buffer.from(options.stdin);
          bytes[0] = (bytes[0] ?? 0) ^ 0xff;
          return target.run(command, { ...options, stdin: bytes });
        };
      },
    });
    const result = await applyChanges(
      { ...deps, transport: corrupting },
      'corrupt-1',
      delta(CHANGES.slice(0, 2)),
    );
    expect(result).toMatchObject({
      status: 'rolled-back',
      failed: { seq: 1, kind: 'file.write', code: 'TRANSPORT' },
    });
    if (result.status !== 'rolled-back') return;
    expect(result.failed.error).toMatch(/content changed on the way/);
    expect((await host.exec(`test -e ${FILE}`)).exitCode).not.toBe(0);
    expect(await hostState()).toEqual(before);
  });

  it('refuses to write below a symbolic link and leaves the host as it was', async () => {
    await host.run('mkdir -p /srv/outside && ln -s /srv/outside /etc/persona-link');
    const before = await hostState();
    const path = '/etc/persona-link/app.conf';
    const change: Change = {
      kind: 'file.write',
      section: 'files',
      key: path,
      from: null,
      to: { path, type: 'file', hash: `sha256:${sha(CONFIG)}`, mode: '0644' },
      disruptive: false,
    };
    const result = await applyChanges(controlSide(), 'symlink-1', delta([CHANGES[0] as Change, change]));
    expect(result.status).toBe('rolled-back');
    if (result.status !== 'rolled-back') return;
    expect(result.failed.error).toMatch(/symbolic link: refusing to write through it/);
    expect((await host.exec('test -e /srv/outside/app.conf')).exitCode).not.toBe(0);
    expect(await hostState()).toEqual(before);
    await host.run('rm /etc/persona-link && rmdir /srv/outside');
  });

  it('refuses a user name that is not one before it reaches the host', async () => {
    const before = await hostState();
    const name = '$(touch /pwned)';
    const change: Change = {
      kind: 'user.add',
      section: 'users',
      key: name,
      from: null,
      to: { name, uid: 2600, gid: 0, groups: [] },
      disruptive: false,
    };
    const result = await applyChanges(controlSide(), 'hostile-1', delta([CHANGES[0] as Change, change]));
    expect(result).toMatchObject({ status: 'rolled-back', failed: { seq: 1, code: 'INVALID_INPUT' } });
    expect((await host.exec('test -e /pwned')).exitCode).not.toBe(0);
    expect(await hostState()).toEqual(before);
  });
});

/** A file.write of CONFIG at `path`, mode 0644. */
const configAt = (path: string): Change => ({
  kind: 'file.write',
  section: 'files',
  key: path,
  from: null,
  to: { path, type: 'file', hash: `sha256:${sha(CONFIG)}`, size: CONFIG.length, mode: '0644' },
  disruptive: false,
});

/** The journal's writes, counted: how many round trips an apply made to it. */
function counted(journal: DynamoJournal) {
  const calls: string[] = [];
  const counting: Journal = {
    begin(...a) {
      calls.push('begin');
      return journal.begin(...a);
    },
    applied(...a) {
      calls.push('applied');
      return journal.applied(...a);
    },
    write(op, step) {
      calls.push(`write ${step.applied.length}+${step.begin.length}`);
      return journal.write(op, step);
    },
    reverted: (...a) => journal.reverted(...a),
    entries: (op) => journal.entries(op),
  };
  return { calls, journal: counting };
}

describe('runs of file Changes on a real host', () => {
  const RUN = ['/etc/persona-run/a.conf', '/etc/persona-run/b.conf', '/srv/persona-run/c.conf'];

  it('reads a run of files first and journals it in one write, then marks it applied in one more', async () => {
    const before = await hostState();
    const deps = controlSide();
    const { calls, journal } = counted(deps.journal);
    const result = await applyChanges(
      { ...deps, journal },
      'run-1',
      delta([CHANGES[0] as Change, ...RUN.map(configAt)]),
    );
    expect(result.status).toBe('applied');
    expect(result.results.map((r) => r.outcome.status)).toEqual(['changed', 'changed', 'changed', 'changed']);
    for (const path of RUN) expect(await host.readFile(path)).toBe(CONFIG.toString());
    // The sysctl goes alone (it may change what a file holds); the three files, which cannot
    // change what one another reads, are begun in one write with its applied mark.
    expect(calls).toEqual(['write 0+1', 'write 1+3', 'write 3+0']);
    expect((await deps.journal.entries('run-1')).every((e) => e.state === 'applied')).toBe(true);
    expect((await revertOperation(deps, 'run-1')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
  });

  it('steps over the files the host already holds: one run around them, their outcomes in order', async () => {
    await host.run(
      `mkdir -p /etc/persona-run && echo ${CONFIG.toString('base64')} | base64 -d > /etc/persona-run/held.conf`,
    );
    const before = await hostState();
    const deps = controlSide();
    const { calls, journal } = counted(deps.journal);
    const paths = [RUN[0] as string, '/etc/persona-run/held.conf', RUN[1] as string, RUN[2] as string];
    const result = await applyChanges({ ...deps, journal }, 'run-held', delta(paths.map(configAt)));
    expect(result.status).toBe('applied');
    expect(result.results.map((r) => [r.key, r.outcome.status])).toEqual([
      [RUN[0], 'changed'],
      ['/etc/persona-run/held.conf', 'unchanged'],
      [RUN[1], 'changed'],
      [RUN[2], 'changed'],
    ]);
    // The file already there is neither journaled nor a reason to end the run.
    expect(calls).toEqual(['write 0+3', 'write 3+0']);
    expect((await revertOperation(deps, 'run-held')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
    await host.run('rm /etc/persona-run/held.conf && rmdir /etc/persona-run');
  });

  it('reverts the whole run, the Changes after the failed one too, when one inside it fails', async () => {
    await host.run('mkdir -p /srv/persona-run && printf old > /srv/persona-run/c.conf');
    const before = await hostState();
    const failing = new Map(DEBIAN_EXECUTORS);
    const real = DEBIAN_EXECUTORS.get('file.write') as Executor;
    failing.set('file.write', {
      ...real,
      async apply(ctx, change, prior) {
        const outcome = await real.apply(ctx, change, prior);
        if (change.key === RUN[1]) throw new Error('injected: connection lost after the write');
        return outcome;
      },
    });
    const deps = controlSide(failing);
    const result = await applyChanges(deps, 'run-2', delta(RUN.map(configAt)));
    expect(result).toMatchObject({ status: 'rolled-back', failed: { seq: 1, key: RUN[1] } });
    if (result.status !== 'rolled-back') return;
    expect(result.rollback.failures).toEqual([]);
    // The run went to the host at once, so the third landed too: journaled with the run, it is
    // put back like the others.
    expect(result.rollback.reverted.map((r) => [r.key, r.outcome.status])).toEqual([
      [RUN[2], 'changed'],
      [RUN[1], 'changed'],
      [RUN[0], 'changed'],
    ]);
    expect(await host.readFile('/srv/persona-run/c.conf')).toBe('old');
    expect(await hostState()).toEqual(before);
    await host.run('rm -r /srv/persona-run');
  });

  it('ends the run before a file that cannot be read, which then fails at its own turn', async () => {
    await host.run('mkdir -p /srv/outside && ln -s /srv/outside /etc/persona-link');
    const before = await hostState();
    const deps = controlSide();
    const { calls, journal } = counted(deps.journal);
    const result = await applyChanges(
      { ...deps, journal },
      'run-3',
      delta([configAt(RUN[0] as string), configAt('/etc/persona-link/app.conf'), configAt(RUN[1] as string)]),
    );
    expect(result).toMatchObject({
      status: 'rolled-back',
      failed: { seq: 1, key: '/etc/persona-link/app.conf' },
    });
    if (result.status !== 'rolled-back') return;
    expect(result.failed.error).toMatch(/symbolic link: refusing to write through it/);
    expect(result.results.map((r) => r.key)).toEqual([RUN[0]]);
    // The first ran alone (the second's read failed), and the third was never journaled.
    expect(calls).toEqual(['write 0+1', 'applied']);
    expect((await deps.journal.entries('run-3')).map((e) => e.seq)).toEqual([0]);
    expect((await host.exec('test -e /srv/outside/app.conf')).exitCode).not.toBe(0);
    expect(await hostState()).toEqual(before);
    await host.run('rm /etc/persona-link && rmdir /srv/outside');
  });
});

describe('removals and services on a real host', () => {
  const HASH =
    '$6$persona$0QpLZ3xmZyzjC4/kA1h0b2bV0z5t0wq5rYxv4JwEo2r7G9Xy8Gm3zQv1Yc5cQ8rS2n9l7kP0dT6uW1eA3bC4.';
  const OLD = Buffer.from('old = true\n');
  const INIT = [
    '#!/bin/sh',
    'case "$1" in',
    '  start) sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > /run/pdemo.pid ;;',
    '  stop) [ -f /run/pdemo.pid ] && kill "$(cat /run/pdemo.pid)"; rm -f /run/pdemo.pid ;;',
    '  status) [ -f /run/pdemo.pid ] && kill -0 "$(cat /run/pdemo.pid)" 2>/dev/null ;;',
    'esac',
    '',
  ].join('\n');

  beforeAll(async () => {
    await host.run(
      'groupadd --gid 2700 pold && useradd --uid 2700 --gid 2700 --groups users --no-create-home pold',
    );
    await host.run(`usermod -p '${HASH}' pold`);
    await host.writeFile('/etc/persona-old.conf', OLD.toString(), 0o600);
    await host.writeFile('/etc/environment', 'LANGUAGE=C\nOLD_MODE=legacy\n', 0o644);
    await host.writeFile('/etc/sysctl.d/60-persona.conf', `${TTL} = 64\n`, 0o644);
    await host.writeFile('/etc/init.d/pdemo', INIT, 0o755);
  }, 120_000);

  const removals: Change[] = [
    {
      kind: 'file.delete',
      section: 'files',
      key: '/etc/persona-old.conf',
      from: { path: '/etc/persona-old.conf', type: 'file', hash: `sha256:${sha(OLD)}`, mode: '0600' },
      to: null,
      disruptive: false,
    },
    {
      kind: 'env.unset',
      section: 'env',
      key: 'OLD_MODE',
      from: { name: 'OLD_MODE', value: 'legacy' },
      to: null,
      disruptive: false,
    },
    { kind: 'sysctl.unset', section: 'sysctl', key: TTL, from: '64', to: null, disruptive: false },
    {
      kind: 'user.remove',
      section: 'users',
      key: 'pold',
      from: { name: 'pold', uid: 2700, gid: 2700, groups: ['users'] },
      to: null,
      disruptive: false,
    },
    {
      kind: 'group.remove',
      section: 'groups',
      key: 'pold',
      from: { name: 'pold', gid: 2700, members: [] },
      to: null,
      disruptive: false,
    },
    {
      kind: 'service.start',
      section: 'services',
      key: 'pdemo',
      from: { name: 'pdemo', manager: 'sysvinit', state: 'stopped', enabled: false },
      to: { name: 'pdemo', manager: 'sysvinit', state: 'running', enabled: false },
      disruptive: false,
    },
  ];

  it('removes a file, a variable, a persisted sysctl, a user and a group, starts a service, and reverts all of it exactly', async () => {
    const before = await hostState();
    const shadowBefore = await host.run('getent shadow pold');
    const deps = controlSide();
    const result = await applyChanges(deps, 'remove-1', delta(removals));
    expect(result.status).toBe('applied');
    expect(result.results.map((r) => r.outcome.status)).toEqual(Array(6).fill('changed'));
    expect((await host.exec('test -e /etc/persona-old.conf')).exitCode).not.toBe(0);
    expect(await host.readFile('/etc/environment')).toBe('LANGUAGE=C\n');
    expect((await host.exec('test -e /etc/sysctl.d/60-persona.conf')).exitCode).not.toBe(0);
    expect((await host.exec('getent passwd pold')).exitCode).toBe(2);
    expect((await host.exec('getent group pold')).exitCode).toBe(2);
    expect((await host.exec('service pdemo status')).exitCode).toBe(0);

    const again = await applyChanges(deps, 'remove-2', delta(removals));
    expect(again.results.map((r) => r.outcome.status)).toEqual(Array(6).fill('unchanged'));

    expect((await revertOperation(deps, 'remove-2')).failures).toEqual([]);
    const rollback = await revertOperation(deps, 'remove-1');
    expect(rollback.failures).toEqual([]);
    expect((await host.exec('service pdemo status')).exitCode).not.toBe(0);
    expect(await host.run('getent shadow pold')).toBe(shadowBefore);
    expect(await hostState()).toEqual(before);
  });

  it('adds the members of a new group whose users exist, and takes them away with the group on revert', async () => {
    const before = await hostState();
    const change: Change = {
      kind: 'group.add',
      section: 'groups',
      key: 'pteam',
      from: null,
      to: { name: 'pteam', gid: 2800, members: ['pold', 'pnobody'] },
      disruptive: false,
    };
    const deps = controlSide();
    const result = await applyChanges(deps, 'members-1', delta([change]));
    expect(result.results[0]?.outcome).toMatchObject({
      status: 'changed',
      detail: /pnobody join when their users are added/,
    });
    expect((await host.run('getent group pteam')).trim()).toBe('pteam:x:2800:pold');
    expect((await revertOperation(deps, 'members-1')).failures).toEqual([]);
    expect((await host.run('id -Gn pold')).trim()).toBe('pold users');
    expect(await hostState()).toEqual(before);
  });
});
