// cgroup limits on a real test host whose cpu, memory, pids and blkio controllers are on
// cgroup v1 hierarchies (this machine's, lent to the host: test/hosts/cgroup-v1.ts), through
// the cgroup executor and persona-agent: a Profile's limits land in the v1 files and read back,
// revert and rollback restore the exact prior contents, a group a Change makes goes again, and
// hostile paths and values are refused. The I/O weight goes to whichever weight file this
// machine's kernel gives a group (CFQ's or BFQ's); with neither, every ioWeight is refused.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../../core/delta/changes.js';
import { InvalidInputError } from '../../../core/errors.js';
import { cgroupExecutor } from '../../../core/orchestrator/executors/cgroups.js';
import { agentScript } from '../../../core/persona/agent/install.js';
import type { SshTransport } from '../../../core/transport/ssh.js';
import {
  type IoWeightFile,
  ioWeightFile,
  type LentCgroups,
  lendCgroupV1,
  V1_MOUNTS,
} from '../../hosts/cgroup-v1.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

let host: TestHost;
let transport: SshTransport;
let lent: LentCgroups;
/** The I/O weight file this kernel gives a blkio group, if it gives one. */
let io: IoWeightFile | undefined;
const TAB = '\t';
const AGENT = '/usr/local/lib/persona-agent/persona-agent.sh';

beforeAll(async () => {
  host = await createHost({ name: 'cgroup-v1' });
  transport = sshTransportTo(host);
  lent = await lendCgroupV1(host, 'executor');
  io = ioWeightFile(lent);
  await host.run('mkdir -p /usr/local/lib/persona-agent');
  await transport.putFile(AGENT, Buffer.from(agentScript()), { mode: 0o700 });
}, 300_000);

afterAll(async () => {
  await transport?.close();
  await destroyAllHosts();
  lent?.release();
}, 60_000);

const ctx = () => ({
  transport,
  operation: 'cgroup-v1',
  seq: 0,
  contents: { read: async () => new Uint8Array() },
});

const set = (key: string, to: object, from: object | null = null): Change =>
  ({
    kind: 'cgroup.set',
    section: 'cgroups',
    key,
    from: from === null ? null : { path: key, ...from },
    to: { path: key, ...to },
    disruptive: false,
  }) as Change;

/** A group's v1 limit files as the host reads them, by file. */
async function v1Files(group: string): Promise<Record<string, string>> {
  const files: [keyof typeof V1_MOUNTS, string][] = [
    ['cpu', 'cpu.shares'],
    ['cpu', 'cpu.cfs_quota_us'],
    ['cpu', 'cpu.cfs_period_us'],
    ['memory', 'memory.limit_in_bytes'],
    ['pids', 'pids.max'],
    ...(io === undefined ? [] : [['blkio', io] as [keyof typeof V1_MOUNTS, string]]),
  ];
  const out: Record<string, string> = {};
  for (const [controller, file] of files) {
    const r = await host.exec(`head -n 1 '${V1_MOUNTS[controller]}${group}/${file}'`);
    if (r.exitCode === 0) out[file] = r.stdout.trim();
  }
  return out;
}

/** Writes a group's v1 files from this machine's side, as another tool on the host would. */
function preset(group: string, values: Record<string, string>): void {
  const where: Record<string, keyof LentCgroups['groups']> = {
    'cpu.shares': 'cpu',
    'cpu.cfs_period_us': 'cpu',
    'cpu.cfs_quota_us': 'cpu',
    'memory.limit_in_bytes': 'memory',
    'pids.max': 'pids',
    'blkio.weight': 'blkio',
    'blkio.bfq.weight': 'blkio',
  };
  for (const [file, value] of Object.entries(values)) {
    const dir = join(lent.groups[where[file] as keyof LentCgroups['groups']], group);
    writeFileSync(join(dir, file), `${value}\n`);
  }
}

async function makeGroup(group: string): Promise<void> {
  for (const at of Object.values(V1_MOUNTS)) await host.run(`mkdir -p '${at}${group}'`);
}

/** A group's limits as another tool left them: its I/O weight where the kernel has the file. */
const prior = (): Record<string, string> => ({
  'cpu.shares': '1030',
  'cpu.cfs_period_us': '50000',
  'cpu.cfs_quota_us': '30000',
  'memory.limit_in_bytes': '536870912',
  'pids.max': '77',
  ...(io === undefined ? {} : { [io]: '100' }),
});

/** The lowest weight a v1 weight file takes: CFQ's 10, BFQ's 1. */
const ioLow = (file: IoWeightFile): number => (file === 'blkio.weight' ? 10 : 1);

describe('the cgroup executor on a cgroup v1 host', () => {
  it('finds each hierarchy in the mount table, not at /sys/fs/cgroup/<controller>', async () => {
    const mounts = await host.run('grep cgroup /proc/self/mounts');
    expect(mounts).toMatch(/ \/sys\/fs\/cgroup\/cpu,cpuacct cgroup .*\bcpu\b/);
    expect(await host.exec('test -e /sys/fs/cgroup/cpu')).toMatchObject({ exitCode: 1 });
  });

  it('writes cpuWeight, cpuMax, memoryMax, pidsMax and ioWeight (where the kernel has its file) to their v1 files, and revert restores the exact prior values', async () => {
    const group = '/shop.service';
    await makeGroup(group);
    preset(group, prior());
    expect(await v1Files(group)).toEqual(prior());
    const change = set(group, {
      cpuWeight: 300,
      cpuMax: '50000 100000',
      memoryMax: 268435456,
      pidsMax: 64,
      ...(io === undefined ? {} : { ioWeight: 250 }),
    });
    const before = await cgroupExecutor.prepare(ctx(), change);
    const applied = await cgroupExecutor.apply(ctx(), change, before);
    expect(applied).toMatchObject({ status: 'changed' });
    expect(applied.detail).toContain('cpu.weight=300 (cpu.shares)');
    expect(await v1Files(group)).toEqual({
      'cpu.shares': '3072',
      'cpu.cfs_period_us': '100000',
      'cpu.cfs_quota_us': '50000',
      'memory.limit_in_bytes': '268435456',
      'pids.max': '64',
      ...(io === undefined ? {} : { [io]: '250' }),
    });
    // Read back in the Profile's terms, the limits are what was asked: nothing to do again.
    expect(await cgroupExecutor.apply(ctx(), change, before)).toMatchObject({ status: 'unchanged' });
    expect(await cgroupExecutor.revert(ctx(), change, before)).toMatchObject({ status: 'changed' });
    // 1030 shares stand for no whole weight: they come back as they were, not as 1034.
    expect(await v1Files(group)).toEqual(prior());
    expect(await cgroupExecutor.revert(ctx(), change, before)).toMatchObject({ status: 'unchanged' });
  }, 120_000);

  it('writes "max" as the kernel\'s no-limit (-1) and reads its page-rounded huge value back as "max"', async () => {
    const group = '/limited.service';
    await makeGroup(group);
    preset(group, { 'cpu.cfs_quota_us': '20000', 'memory.limit_in_bytes': '134217728', 'pids.max': '9' });
    const change = set(group, { cpuMax: 'max 100000', memoryMax: 'max', pidsMax: 'max' });
    const prior = await cgroupExecutor.prepare(ctx(), change);
    expect(await cgroupExecutor.apply(ctx(), change, prior)).toMatchObject({ status: 'changed' });
    const files = await v1Files(group);
    expect(files['cpu.cfs_quota_us']).toBe('-1');
    expect(BigInt(files['memory.limit_in_bytes'] ?? '0')).toBeGreaterThan(2n ** 62n);
    expect(files['pids.max']).toBe('max');
    expect(await cgroupExecutor.apply(ctx(), change, prior)).toMatchObject({ status: 'unchanged' });
    await cgroupExecutor.revert(ctx(), change, prior);
    expect(await v1Files(group)).toMatchObject({
      'cpu.cfs_quota_us': '20000',
      'memory.limit_in_bytes': '134217728',
      'pids.max': '9',
    });
  }, 120_000);

  it('makes a missing group in each hierarchy it writes and removes it on revert', async () => {
    const change = set('/made.slice/app.service', { cpuWeight: 50, memoryMax: 67108864 });
    const prior = await cgroupExecutor.prepare(ctx(), change);
    expect(await cgroupExecutor.apply(ctx(), change, prior)).toMatchObject({ status: 'changed' });
    const files = await v1Files('/made.slice/app.service');
    expect(files['cpu.shares']).toBe('512');
    expect(files['memory.limit_in_bytes']).toBe('67108864');
    // pids was not asked for: no group is made there.
    expect(await host.exec(`test -d '${V1_MOUNTS.pids}/made.slice'`)).toMatchObject({ exitCode: 1 });
    expect(await cgroupExecutor.revert(ctx(), change, prior)).toMatchObject({ status: 'changed' });
    for (const at of [V1_MOUNTS.cpu, V1_MOUNTS.memory]) {
      expect(await host.exec(`test -e '${at}/made.slice'`)).toMatchObject({ exitCode: 1 });
    }
  }, 120_000);

  it('leaves a Change whose I/O weight blkio cannot hold unresolved, writing none of its limits', async () => {
    const group = '/shop.service';
    const before = await v1Files(group);
    // Past the range of the kernel's weight file; or, with no weight file, any weight at all.
    const change = set(group, { cpuWeight: 700, ioWeight: io === undefined ? 250 : 5000 });
    const outcome = await cgroupExecutor.apply(ctx(), change, await cgroupExecutor.prepare(ctx(), change));
    expect(outcome).toEqual({
      status: 'unresolved',
      detail:
        io === undefined
          ? '/shop.service: ioWeight: the blkio hierarchy has neither blkio.weight nor blkio.bfq.weight (no CFQ or BFQ I/O scheduler)'
          : `/shop.service: ioWeight: ioWeight 5000 is outside ${io}'s range ${ioLow(io)}-1000`,
    });
    expect(await v1Files(group)).toEqual(before);
  }, 60_000);

  it('refuses a path that leaves its hierarchy or starts with a dash, naming the field, before any command', async () => {
    for (const key of ['/shop.service/../../../etc', '/-rf', '/a/./b', 'relative']) {
      const error = await cgroupExecutor.prepare(ctx(), set(key, { pidsMax: 1 })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues[0]?.path).toBe('key');
    }
  });
});

/** Writes an assignment on the host and applies it with the agent. */
async function agentApply(lines: readonly string[]): Promise<{ exitCode: number; report: any }> {
  const text = `${['persona-assignment 1', `persona${TAB}peak${TAB}2${TAB}${Math.random().toString(16).slice(2, 14)}`, ...lines, 'end'].join('\n')}\n`;
  await transport.putFile('/tmp/assignment', Buffer.from(text), { mode: 0o600 });
  const result = await transport.run(`/bin/sh ${AGENT} apply /tmp/assignment`, { timeoutMs: 60_000 });
  return { exitCode: result.exitCode, report: JSON.parse(result.stdout.trim().split('\n').at(-1) ?? 'null') };
}

describe('persona-agent on a cgroup v1 host', () => {
  const group = '/agent.service';

  it('applies cgroup entries that name v2 files to the mapped v1 files, and reads each back', async () => {
    await makeGroup(group);
    preset(group, prior());
    const { exitCode, report } = await agentApply([
      `cgroup${TAB}${group}${TAB}cpu.weight${TAB}200`,
      `cgroup${TAB}${group}${TAB}cpu.max${TAB}25000 100000`,
      `cgroup${TAB}${group}${TAB}memory.max${TAB}134217728`,
      `cgroup${TAB}${group}${TAB}pids.max${TAB}40`,
      ...(io === undefined ? [] : [`cgroup${TAB}${group}${TAB}io.weight${TAB}default 300`]),
    ]);
    expect(exitCode, JSON.stringify(report)).toBe(0);
    expect(report.outcome).toBe('applied');
    expect(report.entries.map((e: { from?: string; status: string }) => `${e.status} ${e.from}`)).toEqual([
      'changed shares 1030',
      'changed 30000 50000',
      'changed 536870912',
      'changed 77',
      ...(io === undefined ? [] : ['changed default 100']),
    ]);
    expect(await v1Files(group)).toEqual({
      'cpu.shares': '2048',
      'cpu.cfs_period_us': '100000',
      'cpu.cfs_quota_us': '25000',
      'memory.limit_in_bytes': '134217728',
      'pids.max': '40',
      ...(io === undefined ? {} : { [io]: '300' }),
    });
  }, 120_000);

  it('rolls the v1 files back to their exact prior contents when a later entry fails', async () => {
    preset(group, prior());
    const { exitCode, report } = await agentApply([
      `cgroup${TAB}${group}${TAB}cpu.weight${TAB}400`,
      `cgroup${TAB}${group}${TAB}cpu.max${TAB}max 100000`,
      `cgroup${TAB}${group}${TAB}memory.max${TAB}max`,
      `cgroup${TAB}${group}${TAB}pids.max${TAB}max`,
      // cgroup v1 has no memory.high: the entry fails, and everything before it goes back.
      `cgroup${TAB}${group}${TAB}memory.high${TAB}1000000`,
    ]);
    expect(exitCode).toBe(1);
    expect(report.outcome).toBe('rolled-back');
    expect(report.entries.map((e: { index: number; status: string }) => `${e.index}:${e.status}`)).toEqual([
      '0:changed',
      '1:changed',
      '2:changed',
      '3:changed',
      '4:failed',
      '3:reverted',
      '2:reverted',
      '1:reverted',
      '0:reverted',
    ]);
    expect(report.entries[4].detail).toBe('memory.high has no cgroup v1 file');
    expect(await v1Files(group)).toEqual(prior());
  }, 120_000);

  it('fails an entry whose value is outside the v1 file’s range, or that has no v1 file, changing nothing', async () => {
    preset(group, prior());
    const { exitCode, report } = await agentApply([
      `cgroup${TAB}${group}${TAB}pids.max${TAB}12`,
      `cgroup${TAB}${group}${TAB}io.weight${TAB}default ${io === undefined ? 300 : 5000}`,
    ]);
    expect(exitCode).toBe(1);
    expect(report.outcome).toBe('rolled-back');
    expect(report.entries[1].status).toBe('failed');
    expect(report.entries[1].detail).toContain(
      io === undefined
        ? 'has neither blkio.weight nor blkio.bfq.weight (no CFQ or BFQ I/O scheduler)'
        : `io.weight 5000 is outside the range ${ioLow(io)}-1000 of ${io}`,
    );
    expect(await v1Files(group)).toEqual(prior());
  }, 120_000);

  it('refuses hostile cgroup entries whole, touching nothing', async () => {
    preset(group, prior());
    const { exitCode, report } = await agentApply([
      `cgroup${TAB}${group}${TAB}pids.max${TAB}12`,
      `cgroup${TAB}/../../etc${TAB}cpu.weight${TAB}100`,
      `cgroup${TAB}/-x${TAB}cpu.weight${TAB}100`,
      `cgroup${TAB}${group}${TAB}cpu.shares${TAB}100`,
      `cgroup${TAB}${group}${TAB}cpu.weight${TAB}100;reboot`,
    ]);
    expect(exitCode).toBe(1);
    expect(report.outcome).toBe('refused');
    expect(report.entries.filter((e: { status: string }) => e.status === 'refused')).toHaveLength(4);
    expect(await v1Files(group)).toEqual(prior());
  }, 60_000);
});
