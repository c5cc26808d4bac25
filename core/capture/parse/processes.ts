// Processes: the process table (ps), each process's name, cgroups, CPU affinity and I/O
// priority, and from those the Profile's process allocations.
import type { z } from 'zod';
import { ProcessAllocation } from '../../profile/schema.js';
import { redactCommand } from '../secrets.js';
import { lines, partWith } from '../sections.js';
import { int, num, type ParseContext } from './context.js';

type Allocation = z.input<typeof ProcessAllocation>;
export type IoClass = 'realtime' | 'best-effort' | 'idle';

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly user: string;
  /** Undefined for real-time processes, where ps shows "-". */
  readonly nice: number | undefined;
  readonly cpuPercent: number | undefined;
  readonly rssKiB: number | undefined;
  readonly args: string;
  /** The kernel's name for it (/proc/<pid>/comm, at most 15 characters). */
  readonly comm: string;
  /** cgroup path by controller: '' for the unified (v2) hierarchy, else the v1 controller. */
  readonly cgroups: ReadonlyMap<string, string>;
  readonly affinity: readonly number[] | undefined;
  /** The I/O class set explicitly (ionice says "none" when it was never set). */
  readonly ioClass: IoClass | undefined;
  readonly ioPriority: number | undefined;
}

export interface ProcessTable {
  readonly processes: readonly ProcessInfo[];
  /** Whether the table could be read at all. */
  readonly known: boolean;
}

const byPid = (text: string, re: RegExp): Map<number, string[]> => {
  const out = new Map<number, string[]>();
  for (const line of lines(text)) {
    const m = re.exec(line);
    const pid = int(m?.[1]);
    if (pid === undefined || m?.[2] === undefined) continue;
    const list = out.get(pid) ?? [];
    list.push(m[2]);
    out.set(pid, list);
  }
  return out;
};

/** "0-3,8,10-11" → [0, 1, 2, 3, 8, 10, 11]. */
export function cpuList(text: string): number[] | undefined {
  const out: number[] = [];
  for (const piece of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(piece);
    if (!m?.[1]) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let c = from; c <= to && out.length < 4096; c++) out.push(c);
  }
  return out;
}

export function parseIonice(ctx: ParseContext): Map<number, { cls: IoClass | 'none'; priority?: number }> {
  const out = new Map<number, { cls: IoClass | 'none'; priority?: number }>();
  const section = ctx.section('ionice');
  for (const line of lines(section?.text ?? '')) {
    const m = /^(\d+) (none|realtime|best-effort|idle)(?:: prio (\d+))?/.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const priority = int(m[3]);
    out.set(Number(m[1]), {
      cls: m[2] as IoClass | 'none',
      ...(priority === undefined ? {} : { priority }),
    });
  }
  return out;
}

export function parseProcessTable(ctx: ParseContext): ProcessTable {
  const section = ctx.section('processes');
  const ps = partWith(section, 'ps');
  if (!section || !ps) return { processes: [], known: false };

  // The capture's own processes carry its nonce in their environment.
  const self = new Set<number>();
  for (const line of lines(partWith(section, 'self')?.text ?? '')) {
    const pid = int(/^\/proc\/(\d+)\/environ$/.exec(line)?.[1]);
    if (pid !== undefined) self.add(pid);
  }
  const comms = byPid(partWith(section, 'comm')?.text ?? '', /^\/proc\/(\d+)\/comm:(.*)$/);
  const cgroupLines = byPid(partWith(section, 'cgroup')?.text ?? '', /^\/proc\/(\d+)\/cgroup:(.*)$/);
  const affinity = byPid(
    partWith(section, 'affinity')?.text ?? '',
    /^\/proc\/(\d+)\/status:Cpus_allowed_list:\s*(.*)$/,
  );
  const ionice = parseIonice(ctx);
  const busybox = ps.header === 'ps busybox';

  const rows = lines(ps.text)
    .map((line) =>
      busybox
        ? /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s?(.*)$/.exec(line)
        : /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s?(.*)$/.exec(line),
    )
    .filter((m): m is RegExpExecArray => m !== null);
  // The script's children started after it listed itself (ps among them) are the capture's too.
  for (let grew = true; grew; ) {
    grew = false;
    for (const m of rows) {
      if (self.has(Number(m[2])) && !self.has(Number(m[1]))) {
        self.add(Number(m[1]));
        grew = true;
      }
    }
  }

  const processes: ProcessInfo[] = [];
  for (const m of rows) {
    const pid = Number(m[1]);
    const ppid = Number(m[2]);
    const [niText, pcpuText, rssText, args] = busybox
      ? [m[4], undefined, m[5], m[6]]
      : [m[4], m[5], m[6], m[7]];
    // Kernel threads (children of kthreadd), zombies, processes caught exiting and the capture
    // itself are not the host's software. A process with no command line, which ps shows as its
    // name in brackets, is a kernel thread or one whose memory is already gone: a command ending
    // between two captures (an `nproc`, a `grep`) must not read as a process added or removed.
    if (
      pid === 2 ||
      ppid === 2 ||
      self.has(pid) ||
      / <defunct>$/.test(args ?? '') ||
      /^\[[^\]]*\]$/.test(args ?? '')
    )
      continue;
    const cgroups = new Map<string, string>();
    for (const entry of cgroupLines.get(pid) ?? []) {
      const c = /^\d+:([^:]*):(.*)$/.exec(entry);
      if (!c || c[2] === undefined) continue;
      for (const controller of (c[1] ?? '').split(',')) cgroups.set(controller, c[2]);
    }
    const io = ionice.get(pid);
    const nice = niText !== undefined && /^-?\d+$/.test(niText) ? Number(niText) : undefined;
    const cpus = affinity.get(pid)?.[0];
    processes.push({
      pid,
      ppid,
      user: m[3] ?? '',
      nice,
      cpuPercent: num(pcpuText),
      rssKiB: num(rssText?.replace(/k$/i, '')),
      args: args ?? '',
      comm: comms.get(pid)?.[0] ?? (args ?? '').split(/\s/)[0]?.split('/').pop() ?? '',
      cgroups,
      affinity: cpus === undefined ? undefined : cpuList(cpus),
      ioClass: io === undefined || io.cls === 'none' ? undefined : io.cls,
      ioPriority: io?.priority,
    });
  }
  return { processes, known: true };
}

/** The process's cgroup for a controller: its v1 hierarchy if it has one, else the unified one. */
export const cgroupOf = (p: ProcessInfo, controller: string): string | undefined =>
  p.cgroups.get(controller) ?? p.cgroups.get('') ?? p.cgroups.get('name=systemd');

/**
 * A stable name for a process: the systemd service it runs in (`nginx` for everything under
 * /system.slice/nginx.service), else its executable. Workers share their master's name.
 */
export function processName(p: ProcessInfo): string {
  const path = cgroupOf(p, '') ?? '';
  const last = path.split('/').pop() ?? '';
  if (last.endsWith('.service')) return last.slice(0, -'.service'.length);
  return p.comm || 'unknown';
}

export interface CgroupLookup {
  /** The CPU quota (percent of one CPU) and memory limit in force for a cgroup path. */
  limitsFor(path: string | undefined, controller: 'cpu' | 'memory'): number | undefined;
}

/**
 * Whether a process is part of what the host runs rather than something passing through: the
 * declared application, anything a service manager runs (a systemd service's cgroup), and
 * daemons (children of init) outside login sessions. A command someone typed, or the grep a
 * monitoring check started, comes and goes between captures; listing it would make every
 * capture of an unchanged host a new Profile version.
 */
export function isLongLived(p: ProcessInfo, declared: readonly string[]): boolean {
  if (declared.some((d) => d.slice(0, 15) === p.comm)) return true;
  const path = cgroupOf(p, '') ?? '';
  if (path.endsWith('.service')) return true;
  if (/\/session-[^/]*\.scope$/.test(path)) return false;
  return p.pid === 1 || p.ppid <= 1;
}

export function processAllocations(
  ctx: ParseContext,
  table: ProcessTable,
  limits: CgroupLookup,
  onlineCpus: number | undefined,
  declared: readonly string[],
): Allocation[] {
  // The oldest process of each name stands for the group: the master, not a worker.
  const first = new Map<string, ProcessInfo>();
  for (const p of [...table.processes].sort((a, b) => a.pid - b.pid)) {
    if (!isLongLived(p, declared)) continue;
    const name = processName(p);
    if (!first.has(name)) first.set(name, p);
  }
  const out: Allocation[] = [];
  for (const [name, p] of first) {
    const command = redactCommand(p.args).trim() || p.comm;
    const cgroup = cgroupOf(p, '');
    const affinity =
      p.affinity !== undefined && onlineCpus !== undefined && p.affinity.length < onlineCpus
        ? p.affinity
        : undefined;
    const cpuQuotaPercent = limits.limitsFor(cgroupOf(p, 'cpu'), 'cpu');
    const memoryLimitBytes = limits.limitsFor(cgroupOf(p, 'memory'), 'memory');
    out.push({
      name,
      command,
      ...(p.user ? { user: p.user } : {}),
      ...(p.nice === undefined ? {} : { nice: p.nice }),
      ...(p.ioClass === undefined ? {} : { ioClass: p.ioClass }),
      ...(affinity === undefined ? {} : { cpuAffinity: [...affinity] }),
      ...(cpuQuotaPercent === undefined ? {} : { cpuQuotaPercent }),
      ...(memoryLimitBytes === undefined ? {} : { memoryLimitBytes }),
      ...(cgroup?.startsWith('/') ? { cgroup } : {}),
    });
  }
  return ctx.keep('processes', ProcessAllocation, out, (a) => a.name, 'process');
}
