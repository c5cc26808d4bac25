// cgroup v1 hierarchies for a test host. The test hosts mount no cgroup filesystem; this
// machine's cpu, memory, pids and blkio controllers are on cgroup v1 (its cgroup2 has none of
// them), so a host is lent a group of its own in each, bind-mounted where a v1 host has its
// hierarchies, the way a container sees its cgroups: the host's /proc/self/mounts lists
// "cgroup ... cpu", its root group is the lent one, and what the host writes the kernel checks.
// cpu's hierarchy goes at /sys/fs/cgroup/cpu,cpuacct (as on CentOS 7 and Amazon Linux 2), not
// /sys/fs/cgroup/cpu, so that only a reader of the mount table finds it. The machine's cgroup2
// goes at /sys/fs/cgroup/unified, as on this machine.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestHost } from './harness.js';

const exec = promisify(execFile);

/** The v1 controllers lent, and where each is mounted in the host. */
export const V1_MOUNTS = {
  cpu: '/sys/fs/cgroup/cpu,cpuacct',
  memory: '/sys/fs/cgroup/memory',
  pids: '/sys/fs/cgroup/pids',
  blkio: '/sys/fs/cgroup/blkio',
} as const;
export type V1Controller = keyof typeof V1_MOUNTS;

export interface LentCgroups {
  /** The lent group of each controller as this machine sees it (the host's root group). */
  readonly groups: Readonly<Record<V1Controller, string>>;
  /** Removes the lent groups and everything made in them (call after the host is gone). */
  release(): void;
}

/** Whether this machine has the v1 hierarchies the tests need, mounted where it mounts them. */
export function machineV1Root(controller: V1Controller): string {
  return `/sys/fs/cgroup/${controller}`;
}

/** The v1 I/O weight files, CFQ's and BFQ's: a kernel gives a group one, or neither. */
export const IO_WEIGHT_FILES = ['blkio.weight', 'blkio.bfq.weight'] as const;
export type IoWeightFile = (typeof IO_WEIGHT_FILES)[number];

/**
 * Which I/O weight file this kernel gives the lent blkio group, if any. Only a kernel with CFQ
 * (before 5.0) or BFQ gives one; with none (mq-deadline, kyber), every ioWeight is unresolved,
 * and the tests say which way this machine's kernel went.
 */
export function ioWeightFile(lent: LentCgroups): IoWeightFile | undefined {
  return IO_WEIGHT_FILES.find((file) => existsSync(join(lent.groups.blkio, file)));
}

export async function lendCgroupV1(host: TestHost, label: string): Promise<LentCgroups> {
  const name = `persona-test-${label}-${process.pid}`;
  const groups = Object.fromEntries(
    (Object.keys(V1_MOUNTS) as V1Controller[]).map((c) => [c, join(machineV1Root(c), name)]),
  ) as Record<V1Controller, string>;
  for (const g of Object.values(groups)) mkdirSync(g, { recursive: true });
  // The hierarchies are mounted afresh in the host's mount namespace (its /sys is its own), at
  // a folder outside its root, and the lent group bound into its root from there.
  const scratch = mkdtempSync(join(tmpdir(), 'persona-cgroup-v1-'));
  const sys = join(host.root, 'sys/fs/cgroup');
  const lines = [
    'set -e',
    `mount -t tmpfs -o mode=755 tmpfs ${sys}`,
    `mkdir -p ${sys}/unified`,
    `mount -t cgroup2 cgroup2 ${sys}/unified`,
  ];
  for (const [controller, at] of Object.entries(V1_MOUNTS) as [V1Controller, string][]) {
    lines.push(
      `mkdir -p ${scratch}/${controller} '${join(host.root, at)}'`,
      `mount -t cgroup -o ${controller} cgroup ${scratch}/${controller}`,
      `mount --bind ${scratch}/${controller}/${name} '${join(host.root, at)}'`,
      `umount ${scratch}/${controller}`,
    );
  }
  await exec('nsenter', [`--target=${host.pid}`, '--mount', '--', 'sh', '-c', lines.join('\n')]);
  return {
    groups,
    release() {
      for (const g of Object.values(groups)) removeGroup(g);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** Removes a cgroup folder and the ones below it, deepest first (their files go with them). */
function removeGroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const child = join(dir, entry);
    if (statSync(child).isDirectory()) removeGroup(child);
  }
  try {
    rmdirSync(dir);
  } catch {
    // Still holds a process: it goes with the machine's next clean-up.
  }
}
