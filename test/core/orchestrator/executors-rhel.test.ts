// RHEL-family executors on command output recorded from RHEL 9 hosts (there is no RHEL test
// host): rpm packages delivered from the package store and reverted to the exact version kept
// there, rpm's and dnf's failures (a missing package, a failed scriptlet, a held lock, a missing
// dependency, a removal others need), and the Debian executors that run unchanged on RHEL —
// sysctl, systemd services, nftables — next to the ones that differ: chkconfig on sysvinit,
// firewalld, useradd's mail spool. Bad names and versions are refused before any command.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change, Delta } from '../../../core/delta/changes.js';
import { summarize } from '../../../core/delta/changes.js';
import { applyChanges } from '../../../core/orchestrator/apply.js';
import { HostStateConflictError, NoExecutorError } from '../../../core/orchestrator/errors.js';
import { groupExecutor } from '../../../core/orchestrator/executors/accounts.js';
import type { ExecutorContext } from '../../../core/orchestrator/executors/executor.js';
import { fileExecutor } from '../../../core/orchestrator/executors/file.js';
import { DEBIAN_EXECUTORS, rhelExecutors } from '../../../core/orchestrator/executors/index.js';
import { kmodExecutor } from '../../../core/orchestrator/executors/kmod.js';
import { dnsPaths, filePaths, sshKeyPaths, withRelabel } from '../../../core/orchestrator/executors/rhel.js';
import { routeExecutor } from '../../../core/orchestrator/executors/routes.js';
import { nvra, rpmPackageExecutor } from '../../../core/orchestrator/executors/rpm-packages.js';
import { sysctlExecutor } from '../../../core/orchestrator/executors/sysctl.js';
import type { Journal, JournalEntry } from '../../../core/orchestrator/journal.js';
import type { PackageSpec } from '../../../core/resolver/manager.js';
import { PackageStore, type StoredPackage } from '../../../core/resolver/store.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import type { RunOptions, RunResult, Transport } from '../../../core/transport/transport.js';
import { startTestStore, type TestStore } from '../../support/snapshot-store.js';

type Answer = Partial<RunResult> | ((m: RegExpExecArray, command: string) => Partial<RunResult>);

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/**
 * A RHEL 9 host answering as rpm, dnf and the shell do (output recorded from real hosts), with
 * its rpm database held as data: what the delivered files are comes from their hashes, as
 * `rpm -qp` would tell. Every command and file it was sent is kept.
 */
class RhelHost implements Transport {
  readonly target = 'ssh://root@rhel9:22';
  readonly sent: string[] = [];
  readonly files = new Map<string, Uint8Array>();
  readonly installed = new Map<string, PackageSpec[]>();
  /** What each package file is, by its SHA-256. */
  readonly packages = new Map<string, PackageSpec>();
  /** Packages that need another: `rpm -e --test` refuses to erase it. */
  readonly requiredBy = new Map<string, string>();
  hasDnf = true;
  /** Answers instead of a successful install (a scriptlet, a lock, a dependency). */
  installFails: ((specs: PackageSpec[]) => Partial<RunResult> | undefined) | undefined;
  private readonly rules: [RegExp, Answer][];

  constructor(rules: [RegExp, Answer][] = []) {
    this.rules = [
      ...rules,
      [/^rpm --eval '%\{_arch\}'$/, { stdout: 'x86_64\n' }],
      [/^rpm -q --queryformat '.*' -- '([^']+)'$/s, (m) => this.query(m[1] as string)],
      [/^mktemp -d$/, { stdout: '/tmp/tmp.Qm3v9cRzZp\n' }],
      [/^sha256sum -- (.+)$/, (m) => this.sums(m[1] as string)],
      [/^if command -v dnf >\/dev\/null 2>&1; then\n/, (_m, command) => this.install(command)],
      [/^rm -rf -- '\/tmp\/tmp\.Qm3v9cRzZp'$/, {}],
      [/^rm -rf -- '\/var\/lib\/persona\/backup\//, {}],
      [/^rpm -e --test -- '([^']+)'$/, (m) => this.eraseTest(m[1] as string)],
      [/^rpm -e -- '([^']+)'$/, (m) => this.erase(m[1] as string)],
    ];
  }

  setInstalled(name: string, version: string, arch = 'x86_64'): void {
    this.installed.set(name, [{ name, version, arch }]);
  }

  private query(name: string): Partial<RunResult> {
    const here = this.installed.get(name) ?? [];
    if (here.length === 0) return { exitCode: 1, stdout: `package ${name} is not installed\n` };
    return { stdout: here.map((p) => `${p.name}\t${p.version}\t${p.arch}\n`).join('') };
  }

  private sums(args: string): Partial<RunResult> {
    const paths = [...args.matchAll(/'([^']+)'/g)].map((m) => m[1] as string);
    return {
      stdout: paths.map((p) => `${sha256(this.files.get(p) ?? new Uint8Array())}  ${p}\n`).join(''),
    };
  }

  private install(command: string): Partial<RunResult> {
    const tool = this.hasDnf ? /^ {2}dnf install .*$/m : /^ {2}rpm -U .*$/m;
    const line = tool.exec(command)?.[0] ?? '';
    const specs = [...new Set([...line.matchAll(/'(\/tmp\/[^']+\.rpm)'/g)].map((m) => m[1] as string))].map(
      (path) => {
        const spec = this.packages.get(sha256(this.files.get(path) ?? new Uint8Array()));
        if (spec === undefined) throw new Error(`${path} is no package this host knows`);
        return spec;
      },
    );
    const failed = this.installFails?.(specs);
    if (failed !== undefined) return failed;
    for (const spec of specs) this.installed.set(spec.name, [spec]);
    return this.hasDnf
      ? {
          stdout: `Dependencies resolved.\n...\nInstalled:\n  ${specs.map(nvra).join('\n  ')}\n\nComplete!\n`,
        }
      : {};
  }

  private eraseTest(which: string): Partial<RunResult> {
    const name = [...this.installed.values()].flat().find((p) => nvra(p) === which)?.name;
    const needer = name === undefined ? undefined : this.requiredBy.get(name);
    if (needer === undefined) return {};
    return {
      exitCode: 1,
      stderr: `error: Failed dependencies:\n\tlib${name}.so.1()(64bit) is needed by (installed) ${needer}\n`,
    };
  }

  private erase(which: string): Partial<RunResult> {
    for (const [name, list] of this.installed) {
      const left = list.filter((p) => nvra(p) !== which);
      if (left.length === 0) this.installed.delete(name);
      else this.installed.set(name, left);
    }
    return {};
  }

  async run(command: string, _options?: RunOptions): Promise<RunResult> {
    this.sent.push(command);
    for (const [pattern, answer] of this.rules) {
      const m = pattern.exec(command);
      if (m === null) continue;
      const out = typeof answer === 'function' ? answer(m, command) : answer;
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, ...out };
    }
    throw new Error(`no recorded output for: ${command}`);
  }

  async putFile(path: string, content: Uint8Array): Promise<void> {
    this.files.set(path, content);
  }

  async getFile(): Promise<Uint8Array> {
    throw new Error('not recorded');
  }

  async stream(): Promise<never> {
    throw new Error('not recorded');
  }

  async close(): Promise<void> {}
}

const ctx = (transport: Transport, seq = 0): ExecutorContext => ({
  transport,
  operation: 'op-rhel',
  seq,
  contents: { read: async () => new Uint8Array() },
});

const pkgChange = (
  kind: 'package.install' | 'package.upgrade' | 'package.remove',
  name: string,
  from: string | null,
  to: string | null,
  extra: { arch?: string } = {},
): Change =>
  ({
    kind,
    section: 'packages',
    key: `dnf:${name}`,
    from: from === null ? null : { name, version: from, manager: 'dnf', ...extra },
    to: to === null ? null : { name, version: to, manager: 'dnf', ...extra },
    disruptive: false,
  }) as Change;

/** A journal held in memory: what applyChanges writes, in order, for the rollback to read. */
function memoryJournal(): Journal {
  const entries = new Map<string, JournalEntry>();
  const at = (operation: string, seq: number) => `${operation}/${seq}`;
  const update = (operation: string, seq: number, patch: Partial<JournalEntry>) => {
    const e = entries.get(at(operation, seq));
    if (e === undefined) throw new Error('no entry');
    entries.set(at(operation, seq), { ...e, ...patch });
  };
  return {
    async begin(operation, seq, change, prior) {
      entries.set(at(operation, seq), {
        operation,
        seq,
        change,
        prior: JSON.parse(JSON.stringify(prior)),
        state: 'applying',
        updatedAt: new Date(0).toISOString(),
      });
    },
    async applied(operation, seq, outcome) {
      update(operation, seq, { state: 'applied', outcome });
    },
    async reverted(operation, seq, outcome) {
      update(operation, seq, { state: 'reverted', outcome });
    },
    async entries(operation) {
      return [...entries.values()].filter((e) => e.operation === operation).sort((a, b) => a.seq - b.seq);
    },
  };
}

let stand: TestStore;
let objects: S3ObjectStore;
let prefixes = 0;

beforeAll(async () => {
  stand = await startTestStore();
  objects = new S3ObjectStore(stand.s3, stand.bucket);
});

afterAll(async () => {
  await stand?.stop();
});

/** A package store of its own, holding these versions (their bytes made up), known to `host`. */
async function storeWith(
  host: RhelHost,
  specs: PackageSpec[],
): Promise<{ store: PackageStore; entries: StoredPackage[] }> {
  const store = new PackageStore(objects, `rhel-${prefixes++}/`);
  const entries: StoredPackage[] = [];
  for (const spec of specs) {
    const bytes = Buffer.from(`rpm of ${nvra(spec)}`);
    host.packages.set(sha256(bytes), spec);
    entries.push(await store.put('rpm', spec, bytes, sha256(bytes)));
  }
  return { store, entries };
}

const tree = (version: string): PackageSpec => ({ name: 'tree', version, arch: 'x86_64' });

describe('rpmPackageExecutor', () => {
  it('installs a package from the store on a target with no route out, finds it on a second apply, erases it on revert', async () => {
    const host = new RhelHost();
    const { store, entries } = await storeWith(host, [tree('1.8.0-10.el9')]);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    const change = pkgChange('package.install', 'tree', null, '1.8.0-10.el9');
    const prior = await executor.prepare(ctx(host), change);
    expect(prior).toEqual({ before: { installed: null } });
    expect(await executor.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'tree 1.8.0-10.el9 installed from store',
    });
    const file = `/tmp/tmp.Qm3v9cRzZp/${entries[0]?.sha256}.rpm`;
    expect(host.sent).toContain(
      `if command -v dnf >/dev/null 2>&1; then\n  dnf install -y --disablerepo='*' -- '${file}'\nelse\n  rpm -U --oldpackage -- '${file}'\nfi`,
    );
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-10.el9')]);
    expect(await executor.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await executor.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.sent.at(-1)).toBe("rpm -e -- 'tree-1.8.0-10.el9.x86_64'");
    expect(host.installed.has('tree')).toBe(false);
    expect(await executor.revert(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('keeps the installed version in the store (from the mirror) before an upgrade, and reinstalls exactly it on revert', async () => {
    const host = new RhelHost();
    host.setInstalled('tree', '1.8.0-10.el9');
    const { store } = await storeWith(host, [tree('1.8.0-12.el9')]);
    const oldBytes = Buffer.from('rpm of tree-1.8.0-10.el9.x86_64 from the mirror');
    host.packages.set(sha256(oldBytes), tree('1.8.0-10.el9'));
    const fetched: PackageSpec[] = [];
    const mirror = {
      family: 'rpm' as const,
      available: async () => [],
      fetch: async (spec: PackageSpec) => {
        fetched.push(spec);
        return { bytes: oldBytes, record: { arch: 'x86_64', sha256: sha256(oldBytes) } };
      },
    };
    const executor = rpmPackageExecutor({ store, mirror, targetRepositories: 'offline' });
    const change = pkgChange('package.upgrade', 'tree', '1.8.0-10.el9', '1.8.0-12.el9');
    const prior = await executor.prepare(ctx(host), change);
    expect(fetched).toEqual([tree('1.8.0-10.el9')]);
    expect(prior).toMatchObject({
      kept: { name: 'tree', version: '1.8.0-10.el9', sha256: sha256(oldBytes) },
    });
    expect(await executor.apply(ctx(host), change, prior)).toMatchObject({
      status: 'changed',
      detail: 'tree 1.8.0-12.el9 installed from store (was 1.8.0-10.el9)',
    });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-12.el9')]);
    // The revert reads the kept version back from the store alone: the mirror is not asked.
    const offline = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    expect(await offline.revert(ctx(host), change, JSON.parse(JSON.stringify(prior)))).toEqual({
      status: 'changed',
      detail: 'tree 1.8.0-10.el9 reinstalled',
    });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-10.el9')]);
    // The bytes the store gave back, whatever view of them it hands out.
    expect(new Uint8Array(host.files.get(`/tmp/tmp.Qm3v9cRzZp/${sha256(oldBytes)}.rpm`) ?? [])).toEqual(
      new Uint8Array(oldBytes),
    );
  });

  it('installs with rpm -U --oldpackage where the host has no dnf', async () => {
    const host = new RhelHost();
    host.hasDnf = false;
    host.setInstalled('tree', '1.8.0-12.el9');
    const { store } = await storeWith(host, [tree('1.8.0-10.el9'), tree('1.8.0-12.el9')]);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    // An older version, as a revert or a Profile pinned below the host's asks.
    const change = pkgChange('package.upgrade', 'tree', '1.8.0-12.el9', '1.8.0-10.el9');
    const prior = await executor.prepare(ctx(host), change);
    expect(await executor.apply(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-10.el9')]);
    expect(await executor.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-12.el9')]);
  });

  it('installs from the target’s own repositories the exact NEVRA, its epoch included', async () => {
    const host = new RhelHost([
      [
        /^dnf list --showduplicates --available --quiet -- 'nginx'$/,
        {
          stdout:
            'Available Packages\nnginx.x86_64     1:1.20.1-14.el9_2.1     appstream\nnginx.x86_64     1:1.20.1-16.el9_4.1     appstream\n',
        },
      ],
      [
        /^dnf install -y -q -- 'nginx-1:1\.20\.1-16\.el9_4\.1\.x86_64'$/,
        () => {
          host.setInstalled('nginx', '1:1.20.1-16.el9_4.1');
          return {};
        },
      ],
    ]);
    host.setInstalled('nginx', '1:1.20.1-14.el9_2.1');
    const { store } = await storeWith(host, [
      { name: 'nginx', version: '1:1.20.1-14.el9_2.1', arch: 'x86_64' },
    ]);
    const executor = rpmPackageExecutor({ store });
    const change = pkgChange('package.upgrade', 'nginx', '1:1.20.1-14.el9_2.1', '1:1.20.1-16.el9_4.1');
    const prior = await executor.prepare(ctx(host), change);
    expect(await executor.apply(ctx(host), change, prior)).toMatchObject({
      status: 'changed',
      detail: 'nginx 1:1.20.1-16.el9_4.1 installed from repository (was 1:1.20.1-14.el9_2.1)',
    });
  });

  it('removes exactly the installed NEVRA, and refuses a removal rpm says others need', async () => {
    const host = new RhelHost();
    host.setInstalled('jq', '1.6-15.el9');
    host.setInstalled('oniguruma', '6.9.6-1.el9.5');
    host.requiredBy.set('oniguruma', 'jq-1.6-15.el9.x86_64');
    const { store } = await storeWith(host, [
      { name: 'jq', version: '1.6-15.el9', arch: 'x86_64' },
      { name: 'oniguruma', version: '6.9.6-1.el9.5', arch: 'x86_64' },
    ]);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    const needed = pkgChange('package.remove', 'oniguruma', '6.9.6-1.el9.5', null);
    const prior = await executor.prepare(ctx(host), needed);
    await expect(executor.apply(ctx(host), needed, prior)).rejects.toThrow(
      'removing oniguruma-6.9.6-1.el9.5.x86_64 would break jq-1.6-15.el9.x86_64, which need it: nothing was removed',
    );
    expect(host.sent).not.toContain("rpm -e -- 'oniguruma-6.9.6-1.el9.5.x86_64'");
    const jq = pkgChange('package.remove', 'jq', '1.6-15.el9', null);
    const jqPrior = await executor.prepare(ctx(host), jq);
    expect(await executor.apply(ctx(host), jq, jqPrior)).toMatchObject({ status: 'changed' });
    expect(host.sent).toContain("rpm -e -- 'jq-1.6-15.el9.x86_64'");
    expect(await executor.apply(ctx(host), jq, jqPrior)).toMatchObject({
      status: 'unchanged',
      detail: 'jq is not installed',
    });
    expect(await executor.revert(ctx(host), jq, jqPrior)).toMatchObject({ status: 'changed' });
    expect(host.installed.get('jq')).toEqual([{ name: 'jq', version: '1.6-15.el9', arch: 'x86_64' }]);
  });

  it('a failed %pre scriptlet fails the Change, and the rollback finds the host as it was', async () => {
    const host = new RhelHost();
    host.setInstalled('tree', '1.8.0-10.el9');
    const { store } = await storeWith(host, [tree('1.8.0-10.el9'), tree('1.8.0-12.el9')]);
    host.installFails = () => ({
      exitCode: 1,
      stdout: [
        'Dependencies resolved.',
        'Running transaction',
        '  Preparing        :                                                        1/1',
        '  Running scriptlet: tree-1.8.0-12.el9.x86_64                               1/2',
        'error: %prein(tree-1.8.0-12.el9.x86_64) scriptlet failed, exit status 1',
        '',
        'Error in PREIN scriptlet in rpm package tree',
        'Failed:',
        '  tree-1.8.0-12.el9.x86_64',
        '',
      ].join('\n'),
      stderr: 'Error: Transaction failed\n',
    });
    const changes = [pkgChange('package.upgrade', 'tree', '1.8.0-10.el9', '1.8.0-12.el9')];
    const delta: Delta = { from: { name: 'a' }, to: { name: 'b' }, changes, summary: summarize(changes) };
    const result = await applyChanges(
      {
        transport: host,
        journal: memoryJournal(),
        executors: rhelExecutors({ store, targetRepositories: 'offline' }),
        contents: { read: async () => new Uint8Array() },
      },
      'op-rhel',
      delta,
    );
    expect(result).toMatchObject({
      status: 'rolled-back',
      failed: {
        kind: 'package.upgrade',
        error: expect.stringMatching(/Error in PREIN scriptlet in rpm package tree/),
      },
      rollback: { failures: [], reverted: [{ outcome: { status: 'unchanged' } }] },
    });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-10.el9')]);
  });

  it('a %post scriptlet that failed after rpm installed the package: the rollback erases it', async () => {
    const host = new RhelHost();
    host.hasDnf = false;
    const { store } = await storeWith(host, [tree('1.8.0-10.el9')]);
    host.installFails = (specs) => {
      for (const spec of specs) host.installed.set(spec.name, [spec]);
      return {
        exitCode: 1,
        stderr: 'warning: %post(tree-1.8.0-10.el9.x86_64) scriptlet failed, exit status 1\n',
      };
    };
    const changes = [pkgChange('package.install', 'tree', null, '1.8.0-10.el9')];
    const delta: Delta = { from: { name: 'a' }, to: { name: 'b' }, changes, summary: summarize(changes) };
    const result = await applyChanges(
      {
        transport: host,
        journal: memoryJournal(),
        executors: rhelExecutors({ store, targetRepositories: 'offline' }),
        contents: { read: async () => new Uint8Array() },
      },
      'op-rhel',
      delta,
    );
    expect(result).toMatchObject({
      status: 'rolled-back',
      failed: { error: expect.stringContaining('%post(tree-1.8.0-10.el9.x86_64) scriptlet failed') },
      rollback: { failures: [], reverted: [{ outcome: { status: 'changed' } }] },
    });
    expect(host.installed.has('tree')).toBe(false);
    expect(host.sent).toContain("rpm -e -- 'tree-1.8.0-10.el9.x86_64'");
  });

  it('names a held rpm lock as such, and a missing dependency as dnf says it; nothing is installed', async () => {
    const host = new RhelHost();
    const { store } = await storeWith(host, [{ name: 'jq', version: '1.6-15.el9', arch: 'x86_64' }]);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    const change = pkgChange('package.install', 'jq', null, '1.6-15.el9');
    // rpm's words, and dnf5's.
    for (const stderr of [
      "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Resource temporarily unavailable)\n",
      'Failed to obtain rpm transaction lock. Another transaction is in progress.\n',
    ]) {
      host.installFails = () => ({ exitCode: 1, stderr });
      const locked = await executor.apply(ctx(host), change, {}).catch((e: unknown) => e);
      expect(locked).toBeInstanceOf(HostStateConflictError);
      expect((locked as Error).message).toMatch(
        /^another package transaction holds the rpm database on ssh:\/\/root@rhel9:22: nothing was installed/,
      );
    }
    host.installFails = () => ({
      exitCode: 1,
      stdout: '',
      stderr: [
        'Error: ',
        ' Problem: conflicting requests',
        '  - nothing provides libonig.so.5()(64bit) needed by jq-1.6-15.el9.x86_64 from @commandline',
        "(try to add '--skip-broken' to skip uninstallable packages)",
        '',
      ].join('\n'),
    });
    await expect(executor.apply(ctx(host), change, {})).rejects.toThrow(
      /nothing provides libonig\.so\.5\(\)\(64bit\) needed by jq-1\.6-15\.el9\.x86_64/,
    );
    expect(host.installed.has('jq')).toBe(false);
    // The temporary folder goes either way.
    expect(host.sent.filter((c) => c === "rm -rf -- '/tmp/tmp.Qm3v9cRzZp'")).toHaveLength(3);
  });

  it('says why a package that is in no source cannot be installed, before anything is delivered', async () => {
    const host = new RhelHost();
    const { store } = await storeWith(host, []);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    await expect(
      executor.apply(ctx(host), pkgChange('package.install', 'htop', null, '3.2.1-1.el9'), {}),
    ).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining(
        '"htop" "3.2.1-1.el9" (no version of htop for x86_64 in Persona\'s package store)',
      ),
    });
    expect(host.sent.some((c) => /mktemp|dnf install|rpm -U/.test(c))).toBe(false);
  });

  it('refuses a name installed several times for the arch (an install-only kernel) before changing anything', async () => {
    const host = new RhelHost();
    host.installed.set('kernel', [
      { name: 'kernel', version: '5.14.0-362.8.1.el9_3', arch: 'x86_64' },
      { name: 'kernel', version: '5.14.0-427.13.1.el9_4', arch: 'x86_64' },
    ]);
    const { store } = await storeWith(host, []);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    const change = pkgChange('package.upgrade', 'kernel', '5.14.0-362.8.1.el9_3', '5.14.0-503.11.1.el9_5');
    await expect(executor.prepare(ctx(host), change)).rejects.toThrow(
      /kernel is installed 2 times \(5\.14\.0-362\.8\.1\.el9_3\.x86_64, 5\.14\.0-427\.13\.1\.el9_4\.x86_64\)/,
    );
    expect(host.sent.every((c) => /^rpm (-q|--eval) /.test(c))).toBe(true);
  });

  it('takes the native architecture of a multilib package when the Change names none', async () => {
    const host = new RhelHost();
    host.installed.set('glibc', [
      { name: 'glibc', version: '2.34-100.el9_4.2', arch: 'i686' },
      { name: 'glibc', version: '2.34-100.el9_4.2', arch: 'x86_64' },
    ]);
    const { store } = await storeWith(host, []);
    const executor = rpmPackageExecutor({ store, targetRepositories: 'offline' });
    const change = pkgChange('package.install', 'glibc', null, '2.34-100.el9_4.2');
    const prior = await executor.prepare(ctx(host), change);
    expect(prior).toEqual({
      before: { installed: { name: 'glibc', version: '2.34-100.el9_4.2', arch: 'x86_64' } },
    });
    expect(await executor.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('refuses an upgrade when the installed version can be neither found in the store nor fetched', async () => {
    const host = new RhelHost();
    host.setInstalled('tree', '1.8.0-10.el9');
    const { store } = await storeWith(host, [tree('1.8.0-12.el9')]);
    const mirror = {
      family: 'rpm' as const,
      available: async () => [],
      fetch: async () => {
        throw new Error('tree 1.8.0-10.el9 (x86_64) is in none of the repositories');
      },
    };
    const change = pkgChange('package.upgrade', 'tree', '1.8.0-10.el9', '1.8.0-12.el9');
    await expect(
      rpmPackageExecutor({ store, mirror, targetRepositories: 'offline' }).prepare(ctx(host), change),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringMatching(
        /^tree 1\.8\.0-10\.el9 \(x86_64\), which the host has, could not be kept in .*so a revert could not reinstall it: nothing was changed \(tree 1\.8\.0-10\.el9 \(x86_64\) is in none/,
      ),
    });
    expect(host.installed.get('tree')).toEqual([tree('1.8.0-10.el9')]);
    expect(host.sent.every((c) => /^rpm -q /.test(c))).toBe(true);
  });

  it('refuses a name with a leading dash, an EVR with shell characters and a bad arch before any command', async () => {
    const host = new RhelHost();
    const executor = rpmPackageExecutor({ store: {} as PackageStore, targetRepositories: 'offline' });
    const hostile: [Change, string][] = [
      [pkgChange('package.install', '--nodeps', null, '1.0-1'), 'to.name'],
      [pkgChange('package.install', '-ihv', null, '1.0-1'), 'to.name'],
      [pkgChange('package.install', 'tree', null, '1.0-1;reboot'), 'to.version'],
      [pkgChange('package.install', 'tree', null, '$(id)-1'), 'to.version'],
      [pkgChange('package.install', 'tree', null, "1.0-1' -x '"), 'to.version'],
      [pkgChange('package.remove', 'tree', '1.0-1-2', null), 'from.version'],
      [pkgChange('package.install', 'tree', null, '1.0-1', { arch: 'x86_64 --force' }), 'to.arch'],
    ];
    for (const [change, field] of hostile) {
      for (const step of [executor.prepare(ctx(host), change), executor.apply(ctx(host), change, {})]) {
        await expect(step).rejects.toMatchObject({ code: 'INVALID_INPUT', issues: [{ path: field }] });
      }
    }
    expect(host.sent).toEqual([]);
  });

  it('leaves packages of another manager to their own executor, as unresolved', async () => {
    const host = new RhelHost();
    const executor = rpmPackageExecutor({ store: {} as PackageStore });
    const change: Change = {
      kind: 'package.install',
      section: 'packages',
      key: 'apt:tree',
      from: null,
      to: { name: 'tree', version: '2.1.0-1', manager: 'apt' },
      disruptive: false,
    };
    expect(await executor.apply(ctx(host), change, {})).toMatchObject({ status: 'unresolved' });
    expect(host.sent).toEqual([]);
  });
});

// --- the executors RHEL shares with Debian, and the ones it does not -----------------------------

const INIT = /^if \[ -d \/run\/systemd\/system \]/;

describe('rhelExecutors', () => {
  it('takes the Debian executors where RHEL answers alike, and its own for packages, services, firewall and users', () => {
    const store = {} as PackageStore;
    const rhel = rhelExecutors({ store });
    for (const [kind, executor] of [
      ['sysctl.set', sysctlExecutor],
      ['group.add', groupExecutor],
      ['route.add', routeExecutor],
      ['kmod.load', kmodExecutor],
    ] as const) {
      expect(rhel.get(kind)).toBe(executor);
      expect(DEBIAN_EXECUTORS.get(kind)).toBe(executor);
    }
    for (const kind of [
      'service.start',
      'service.remove',
      'firewall.replace',
      'user.add',
      'file.write',
      'sshkey.authorize',
      'dns.set',
    ] as const)
      expect(rhel.get(kind)).not.toBe(DEBIAN_EXECUTORS.get(kind));
    expect(rhel.get('file.write')?.kinds).toEqual(fileExecutor.kinds);
    expect(rhel.get('package.install')?.kinds).toEqual([
      'package.install',
      'package.upgrade',
      'package.remove',
    ]);
    // Every kind the Debian set handles, RHEL handles too.
    expect([...DEBIAN_EXECUTORS.keys()].filter((k) => !rhel.has(k))).toEqual([]);
  });

  it('refuses a Delta holding a package Change when no package source was given', async () => {
    const host = new RhelHost();
    const changes = [pkgChange('package.install', 'tree', null, '1.8.0-10.el9')];
    const delta: Delta = { from: { name: 'a' }, to: { name: 'b' }, changes, summary: summarize(changes) };
    await expect(
      applyChanges(
        {
          transport: host,
          journal: memoryJournal(),
          executors: rhelExecutors(),
          contents: { read: async () => new Uint8Array() },
        },
        'op-rhel',
        delta,
      ),
    ).rejects.toBeInstanceOf(NoExecutorError);
    expect(host.sent).toEqual([]);
  });

  it('sets a sysctl live and persisted with the Debian executor, on RHEL’s procps-ng answers', async () => {
    let live = '0';
    const persisted = 'net.ipv4.ip_forward = 1\n';
    const host = new RhelHost([
      [/^sysctl -n -- 'net\.ipv4\.ip_forward'$/, () => ({ stdout: `${live}\n` })],
      [
        /^sysctl -q -w -- 'net\.ipv4\.ip_forward=1'$/,
        () => {
          live = '1';
          return {};
        },
      ],
      [
        /^p='\/etc\/sysctl\.d\/60-persona\.conf'\nif \[ -L/,
        { stdout: `file 644 root root ${sha256(persisted)}\n` },
      ],
      [/^cat -- '\/etc\/sysctl\.d\/60-persona\.conf'$/, { stdout: persisted }],
    ]);
    const change: Change = {
      kind: 'sysctl.set',
      section: 'sysctl',
      key: 'net.ipv4.ip_forward',
      from: '0',
      to: '1',
      disruptive: false,
    };
    const executor = rhelExecutors().get('sysctl.set');
    expect(await executor?.apply(ctx(host), change, {})).toEqual({
      status: 'changed',
      detail: 'net.ipv4.ip_forward = 1, live and persisted',
    });
    expect(await executor?.apply(ctx(host), change, {})).toMatchObject({ status: 'unchanged' });
  });

  it('starts a service through systemctl on a systemd RHEL host, as on Debian, and stops it on revert', async () => {
    let active = false;
    const host = new RhelHost([
      [INIT, { stdout: 'systemd\n' }],
      // systemctl on RHEL 9: `inactive` with 3, `disabled` with 1.
      [/^systemctl is-active --quiet -- 'httpd'$/, () => (active ? {} : { exitCode: 3 })],
      [/^systemctl is-enabled --quiet -- 'httpd'$/, { exitCode: 1 }],
      [
        /^systemctl '(start|stop)' -- 'httpd'$/,
        (m) => {
          active = m[1] === 'start';
          return {};
        },
      ],
    ]);
    const change: Change = {
      kind: 'service.start',
      section: 'services',
      key: 'httpd',
      from: { name: 'httpd', manager: 'systemd', state: 'stopped', enabled: false },
      to: { name: 'httpd', manager: 'systemd', state: 'running', enabled: false },
      disruptive: false,
    };
    const executor = rhelExecutors().get('service.start');
    const prior = await executor?.prepare(ctx(host), change);
    expect(await executor?.apply(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.sent).toContain("systemctl 'start' -- 'httpd'");
    expect(await executor?.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.sent.at(-1)).toBe("systemctl 'stop' -- 'httpd'");
    expect(active).toBe(false);
  });

  it('enables a service with chkconfig on a sysvinit RHEL host, and disables it again on revert', async () => {
    let enabled = false;
    const host = new RhelHost([
      [INIT, { stdout: 'sysvinit\n' }],
      [/^command -v chkconfig >\/dev\/null 2>&1$/, {}],
      [/^service 'httpd' status$/, { exitCode: 3, stdout: 'httpd is stopped\n' }],
      [/^n='httpd'; for f in \/etc\/rc\[2345\]\.d/, () => ({ exitCode: enabled ? 0 : 1 })],
      [
        /^chkconfig 'httpd' '(on|off)'$/,
        (m) => {
          enabled = m[1] === 'on';
          return {};
        },
      ],
    ]);
    const change: Change = {
      kind: 'service.enable',
      section: 'services',
      key: 'httpd',
      from: { name: 'httpd', manager: 'sysvinit', state: 'stopped', enabled: false },
      to: { name: 'httpd', manager: 'sysvinit', state: 'stopped', enabled: true },
      disruptive: false,
    };
    const executor = rhelExecutors().get('service.enable');
    const prior = await executor?.prepare(ctx(host), change);
    expect(await executor?.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'chkconfig httpd on (sysvinit)',
    });
    expect(await executor?.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await executor?.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(host.sent.at(-1)).toBe("chkconfig 'httpd' 'off'");
    expect(host.sent.some((c) => c.startsWith('update-rc.d'))).toBe(false);
    // A name chkconfig could read as an option never reaches it.
    await expect(
      executor?.apply(ctx(host), { ...change, key: '--del' } as Change, prior),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(host.sent.some((c) => c.includes('--del'))).toBe(false);
  });

  it('stops and disables a removed sysvinit service with service and chkconfig, and puts both back on revert', async () => {
    let running = true;
    let enabled = true;
    const host = new RhelHost([
      [INIT, { stdout: 'sysvinit\n' }],
      [/^command -v chkconfig >\/dev\/null 2>&1$/, {}],
      [
        /^service 'vsftpd' status$/,
        () => (running ? { stdout: 'vsftpd (pid 812) is running...\n' } : { exitCode: 3 }),
      ],
      [/^n='vsftpd'; for f in \/etc\/rc\[2345\]\.d/, () => ({ exitCode: enabled ? 0 : 1 })],
      [
        /^service 'vsftpd' (start|stop)$/,
        (m) => {
          running = m[1] === 'start';
          return {};
        },
      ],
      [
        /^chkconfig 'vsftpd' (on|off)$/,
        (m) => {
          enabled = m[1] === 'on';
          return {};
        },
      ],
    ]);
    const change = {
      kind: 'service.remove',
      section: 'services',
      key: 'vsftpd',
      from: { name: 'vsftpd', manager: 'sysvinit', state: 'running', enabled: true },
      to: null,
      disruptive: true,
    } as Change;
    const executor = rhelExecutors().get('service.remove');
    const prior = await executor?.prepare(ctx(host), change);
    expect(await executor?.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'vsftpd stopped and disabled (sysvinit, chkconfig)',
    });
    expect([running, enabled]).toEqual([false, false]);
    expect(await executor?.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await executor?.revert(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'vsftpd enabled and started again',
    });
    expect([running, enabled]).toEqual([true, true]);
    expect(host.sent.some((c) => c.startsWith('update-rc.d'))).toBe(false);
  });

  it('records the ruleset unresolved where firewalld runs, and loads nothing', async () => {
    const host = new RhelHost([
      [/^if command -v firewall-cmd >\/dev\/null 2>&1; then firewall-cmd --state/, { stdout: 'running\n' }],
    ]);
    const change: Change = {
      kind: 'firewall.replace',
      section: 'firewall',
      key: 'firewall',
      from: null,
      to: { backend: 'nftables', ruleset: 'table inet filter {\n}\n' },
      disruptive: true,
    } as Change;
    const executor = rhelExecutors().get('firewall.replace');
    const prior = await executor?.prepare(ctx(host), change);
    expect(await executor?.apply(ctx(host), change, prior)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/^firewalld runs on ssh:\/\/root@rhel9:22 and owns its ruleset/),
    });
    expect(await executor?.revert(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(host.sent.some((c) => /nft|iptables/.test(c))).toBe(false);
  });

  it('drives nftables as on Debian where firewalld is stopped', async () => {
    const ruleset =
      'table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n';
    const host = new RhelHost([
      // firewall-cmd --state when firewalld is stopped: `not running`, exit 252.
      [/^if command -v firewall-cmd/, { exitCode: 252, stdout: 'not running\n' }],
      [/^for t in nft iptables-restore iptables-save/, { stdout: 'nft\niptables-restore\niptables-save\n' }],
      [/^nft list ruleset$/, { stdout: ruleset }],
    ]);
    const change = {
      kind: 'firewall.replace',
      section: 'firewall',
      key: 'firewall',
      from: null,
      to: { backend: 'nftables', ruleset },
      disruptive: true,
    } as Change;
    expect(await rhelExecutors().get('firewall.replace')?.apply(ctx(host), change, {})).toEqual({
      status: 'unchanged',
      detail: "the nft ruleset is already the Profile's",
    });
  });

  it('gives what a file Change wrote or put back the label SELinux’s policy names, and only then', async () => {
    let enforcing = true;
    const host = new RhelHost([
      [
        /^if command -v selinuxenabled >\/dev\/null 2>&1 && selinuxenabled && command -v restorecon >\/dev\/null 2>&1; then\n {2}for p in '\/etc\/hosts'; do\n/,
        () => ({ stdout: enforcing ? 'relabelled\n' : '' }),
      ],
    ]);
    const outcomes = ['changed', 'unchanged', 'changed'] as const;
    let call = 0;
    const inner = {
      kinds: fileExecutor.kinds,
      prepare: async () => ({ kept: true }),
      apply: async () => ({
        status: outcomes[call++] ?? 'unchanged',
        detail: 'wrote /etc/hosts (120 bytes, root:root, 0644)',
      }),
      revert: async () => ({ status: 'changed' as const, detail: 'restored /etc/hosts' }),
    };
    const executor = withRelabel(inner, filePaths);
    const change = {
      kind: 'file.write',
      section: 'files',
      key: '/etc/hosts',
      from: null,
      to: {
        path: '/etc/hosts',
        hash: `sha256:${'a'.repeat(64)}`,
        mode: '0644',
        owner: 'root',
        group: 'root',
      },
      disruptive: false,
    } as unknown as Change;
    expect(await executor.apply(ctx(host), change, {})).toEqual({
      status: 'changed',
      detail: 'wrote /etc/hosts (120 bytes, root:root, 0644); SELinux label set by the policy',
    });
    expect(host.sent).toHaveLength(1);
    // Left as it was: its label is not touched.
    expect(await executor.apply(ctx(host), change, {})).toMatchObject({ status: 'unchanged' });
    expect(host.sent).toHaveLength(1);
    expect(await executor.revert(ctx(host), change, {})).toEqual({
      status: 'changed',
      detail: 'restored /etc/hosts; SELinux label set by the policy',
    });
    // Without SELinux the script finds nothing to do and the outcome says nothing of labels.
    enforcing = false;
    expect(await executor.apply(ctx(host), change, {})).toEqual({
      status: 'changed',
      detail: 'wrote /etc/hosts (120 bytes, root:root, 0644)',
    });
    expect(host.sent.at(-1)).toContain('restorecon -- "$p"');
  });

  it('relabels the ~/.ssh and authorized_keys an SSH key Change wrote, found from the user’s passwd entry', async () => {
    const host = new RhelHost([
      [/^getent -- passwd 'deploy'$/, { stdout: 'deploy:x:1600:1600::/home/deploy:/bin/bash\n' }],
      [/^if command -v selinuxenabled/, { stdout: 'relabelled\nrelabelled\n' }],
    ]);
    const inner = {
      kinds: ['sshkey.authorize', 'sshkey.revoke'] as const,
      prepare: async () => null,
      apply: async () => ({ status: 'changed' as const, detail: 'authorized SHA256:x for deploy' }),
      revert: async () => ({ status: 'unchanged' as const, detail: 'as it was' }),
    };
    const change = {
      kind: 'sshkey.authorize',
      section: 'sshKeys',
      key: 'deploy:SHA256:x',
      from: null,
      to: { user: 'deploy', type: 'ssh-ed25519', fingerprint: `SHA256:${'A'.repeat(43)}` },
      disruptive: false,
    } as unknown as Change;
    const executor = withRelabel({ ...inner, kinds: [...inner.kinds] }, sshKeyPaths);
    expect(await executor.apply(ctx(host), change, null)).toMatchObject({
      detail: 'authorized SHA256:x for deploy; SELinux label set by the policy',
    });
    expect(host.sent.at(-1)).toContain(
      "for p in '/home/deploy/.ssh' '/home/deploy/.ssh/authorized_keys'; do",
    );
    expect(await executor.revert(ctx(host), change, null)).toMatchObject({ status: 'unchanged' });
    expect(host.sent).toHaveLength(2);
    // A user name off the grammar is never looked up.
    expect(await sshKeyPaths(ctx(host), { ...change, to: { user: '-x' } } as unknown as Change)).toEqual([]);
    expect(await dnsPaths(ctx(host), { section: 'dns', kind: 'dns.set' } as unknown as Change)).toEqual([
      '/etc/resolv.conf',
    ]);
    expect(host.sent).toHaveLength(2);
  });

  it('adds a user with the Debian useradd command and removes the empty mail spool RHEL’s useradd made', async () => {
    let exists = false;
    let spool = false;
    const host = new RhelHost([
      [
        /^getent -- 'passwd' 'app'$/,
        () => (exists ? { stdout: 'app:x:1500:1500::/srv/app:/sbin/nologin\n' } : { exitCode: 2 }),
      ],
      [/^getent -- 'group' 'app'$/, { exitCode: 2 }],
      // shadow's own backup copies, kept before the Change and put back after its revert.
      [
        /^umask 077 && mkdir -p -- '\/var\/lib\/persona\/backup\/op-rhel\/0\.accounts'/,
        { stdout: 'passwd-\ngroup-\n' },
      ],
      [/^for f in 'passwd-' 'group-'; do .*cp -p -- .*0\.accounts/, {}],
      [/^awk '\$1 == "MAIL_DIR"/, { stdout: '/var/spool/mail\n' }],
      [/^\[ -e '\/var\/spool\/mail\/app' \]/, () => ({ exitCode: spool ? 0 : 1 })],
      [
        /^useradd /,
        () => {
          exists = true;
          spool = true; // CREATE_MAIL_SPOOL=yes in RHEL's /etc/default/useradd
          return {};
        },
      ],
      [
        /^p='\/var\/spool\/mail\/app'; if \[ -f "\$p" \].*= '1500' \]; then rm -f -- "\$p" && echo removed; fi$/,
        () => {
          const was = spool;
          spool = false;
          return { stdout: was ? 'removed\n' : '' };
        },
      ],
      [
        /^userdel -- 'app'$/,
        () => {
          exists = false;
          return {};
        },
      ],
    ]);
    const change: Change = {
      kind: 'user.add',
      section: 'users',
      key: 'app',
      from: null,
      to: { name: 'app', uid: 1500, gid: 1500, home: '/srv/app', shell: '/sbin/nologin', groups: [] },
      disruptive: false,
    } as Change;
    const executor = rhelExecutors().get('user.add');
    const prior = await executor?.prepare(ctx(host), change);
    expect(await executor?.apply(ctx(host), change, prior)).toEqual({
      status: 'changed',
      detail: 'added user app (uid 1500); the empty mail spool useradd made was removed',
    });
    expect(host.sent).toContain(
      "useradd '--uid' '1500' '--gid' '1500' '--no-create-home' '--home-dir' '/srv/app' '--shell' '/sbin/nologin' -- 'app'",
    );
    expect(spool).toBe(false);
    expect(await executor?.apply(ctx(host), change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await executor?.revert(ctx(host), change, prior)).toMatchObject({ status: 'changed' });
    expect(exists).toBe(false);
  });
});
