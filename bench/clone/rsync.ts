// rsync -a over SSH, as a user would copy one host's files onto another: the trees from a copy
// of the source on the control machine to the target, one connection, the host key checked
// against a pinned file. The files that hold the target's identity (IDENTITY_FILES) are
// excluded, as a clone keeps them the target's: without that, rsync would hand the target the
// source's host keys and hostname.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_FILES } from '../../core/plan/identity.js';
import { type ProcessRun, runProcess } from '../capture/process.js';

export interface RsyncTarget {
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyPath: string;
  readonly knownHosts: string;
}

export interface RsyncRun extends ProcessRun {
  /** From --stats: what rsync says it sent and received, and how much file data moved. */
  readonly sent: number;
  readonly received: number;
  readonly literal: number;
  readonly transferred: number;
  readonly files: number;
}

const statistic = (stdout: string, label: string): number => {
  const m = new RegExp(`^${label}:\\s*([\\d,.]+)`, 'm').exec(stdout);
  return m?.[1] === undefined ? Number.NaN : Number(m[1].replace(/[,.](?=\d{3}\b)/g, ''));
};

/** The exclusions for the trees: the identity files beneath them. */
export function identityExcludes(trees: readonly string[]): string[] {
  return IDENTITY_FILES.map((f) => f.pattern).filter((p) => trees.some((t) => p.startsWith(`${t}/`)));
}

/**
 * `rsync -aR --stats` of `trees` (absolute paths, read from `copy`, the source's files on the
 * control machine) to the same paths on the target.
 */
export async function rsyncTrees(
  copy: string,
  trees: readonly string[],
  target: RsyncTarget,
  dir: string,
): Promise<RsyncRun> {
  const knownHosts = join(dir, 'rsync_known_hosts');
  writeFileSync(knownHosts, target.knownHosts);
  const ssh = [
    'ssh',
    `-i ${target.privateKeyPath}`,
    `-p ${target.port}`,
    `-o UserKnownHostsFile=${knownHosts}`,
    '-o StrictHostKeyChecking=yes',
    '-o BatchMode=yes',
    '-o ControlMaster=no',
  ].join(' ');
  const run = await runProcess(
    'rsync',
    [
      '-aR',
      '--no-implied-dirs',
      '--stats',
      ...identityExcludes(trees).map((p) => `--exclude=${p}`),
      '-e',
      ssh,
      // `.` marks where the path the target sees starts.
      ...trees.map((t) => `${copy}/.${t}`),
      `${target.user}@${target.address}:/`,
    ],
    { timeoutMs: 600_000 },
  );
  if (run.status !== 0) throw new Error(`rsync exited ${run.status}: ${run.stderr.trim().slice(-2000)}`);
  return {
    ...run,
    sent: statistic(run.stdout, 'Total bytes sent'),
    received: statistic(run.stdout, 'Total bytes received'),
    literal: statistic(run.stdout, 'Literal data'),
    transferred: statistic(run.stdout, 'Number of regular files transferred'),
    files: statistic(run.stdout, 'Number of files'),
  };
}
