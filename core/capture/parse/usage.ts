// Usage observations: CPU, memory, disk and network rates over the capture, load average, and
// the data footprint by type.
//
// The rates come from two samples of /proc taken at the start and the end of the script, at
// least one second apart. The capture's own CPU time (the script and everything it ran, which
// /proc/<script pid>/stat accumulates in its cutime and cstime once reaped) is subtracted from
// the busy time, so a small host does not look busy because it was being captured. The
// script's output is held back until after the second sample, so it does not count as network
// traffic either. Disk operations the script itself causes (reading /etc when it is not
// cached) are not subtracted: diskIops is an upper bound.
import type { z } from 'zod';
import type { Usage } from '../../profile/schema.js';
import { lines, partWith, type Section } from '../sections.js';
import { num, type ParseContext } from './context.js';

type UsageInput = z.input<typeof Usage>;

export interface Sample {
  readonly uptime: number;
  /** Clock ticks: all, idle (with iowait), iowait. */
  readonly cpu: { total: number; idle: number; iowait: number } | undefined;
  /** Ticks the capture script and its reaped children used. */
  readonly selfTicks: number | undefined;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Completed reads and writes on whole disks. */
  readonly diskOps: number;
}

// Whole disks, not their partitions or device-mapper devices stacked on them (which would count
// the same operations twice).
const WHOLE_DISK = /^(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|nvme\d+n\d+|mmcblk\d+)$/;

export function readSample(section: Section | undefined): Sample | undefined {
  if (section?.status !== 0) return undefined;
  const uptime = num(section.parts[0]?.text.split(/\s/)[0]);
  if (uptime === undefined) return undefined;

  const cpuLine = partWith(section, 'stat')?.text.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cpuLine;
  const cpu =
    cpuLine.length >= 4
      ? { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, iowait }
      : undefined;

  // /proc/<pid>/stat: fields after the ")" closing the command name start at field 3 (state);
  // utime, stime, cutime, cstime are fields 14 to 17.
  const self = partWith(section, 'self')?.text ?? '';
  const after = self
    .slice(self.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  const times = after.slice(11, 15).map(Number);
  const selfTicks =
    times.length === 4 && times.every(Number.isFinite) ? times.reduce((a, b) => a + b, 0) : undefined;

  let rxBytes = 0;
  let txBytes = 0;
  for (const line of lines(partWith(section, 'net')?.text ?? '')) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m?.[1] || m[1] === 'lo') continue;
    const fields = (m[2] ?? '').split(/\s+/).map(Number);
    rxBytes += fields[0] ?? 0;
    txBytes += fields[8] ?? 0;
  }

  let diskOps = 0;
  for (const line of lines(partWith(section, 'disk')?.text ?? '')) {
    const f = line.trim().split(/\s+/);
    if (!WHOLE_DISK.test(f[2] ?? '')) continue;
    diskOps += Number(f[3] ?? 0) + Number(f[7] ?? 0);
  }
  return { uptime, cpu, selfTicks, rxBytes, txBytes, diskOps };
}

export interface Rates {
  readonly seconds: number;
  readonly cpuUtilization: number | undefined;
  readonly iowait: number | undefined;
  readonly rxBytesPerSecond: number;
  readonly txBytesPerSecond: number;
  readonly diskIops: number;
}

const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));
const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function rates(a: Sample, b: Sample): Rates | undefined {
  const seconds = b.uptime - a.uptime;
  if (!(seconds > 0)) return undefined;
  let cpuUtilization: number | undefined;
  let iowait: number | undefined;
  if (a.cpu && b.cpu && b.cpu.total > a.cpu.total) {
    const total = b.cpu.total - a.cpu.total;
    const busy = total - (b.cpu.idle - a.cpu.idle);
    const self =
      a.selfTicks !== undefined && b.selfTicks !== undefined ? Math.max(0, b.selfTicks - a.selfTicks) : 0;
    cpuUtilization = round(clamp01((busy - self) / total), 4);
    iowait = round(clamp01((b.cpu.iowait - a.cpu.iowait) / total), 4);
  }
  return {
    seconds,
    cpuUtilization,
    iowait,
    rxBytesPerSecond: round(Math.max(0, b.rxBytes - a.rxBytes) / seconds, 1),
    txBytesPerSecond: round(Math.max(0, b.txBytes - a.txBytes) / seconds, 1),
    diskIops: round(Math.max(0, b.diskOps - a.diskOps) / seconds, 1),
  };
}

export interface DataFootprint {
  readonly type: string;
  readonly bytes: number;
  readonly files: number;
}

export function parseDataFootprint(ctx: ParseContext): DataFootprint[] {
  const section = ctx.section('du');
  const byType = new Map<string, { bytes: number; files: number }>();
  const cut: string[] = [];
  const denied: string[] = [];
  for (const line of lines(section?.text ?? '')) {
    const [type, path, files, amount, status] = line.split('\t');
    if (!type || !path || files === undefined || amount === undefined) continue;
    // "k" marks hosts without find -printf: the amount is du's KiB, not bytes.
    const bytes = status === 'k' ? Number(amount) * 1024 : Number(amount);
    if (!Number.isFinite(bytes) || !Number.isFinite(Number(files))) continue;
    if (status === '124') cut.push(path);
    if (status === 'denied') denied.push(path);
    const t = byType.get(type) ?? { bytes: 0, files: 0 };
    t.bytes += bytes;
    t.files += Number(files);
    byType.set(type, t);
  }
  for (const path of cut) {
    ctx.unknown(
      'du',
      `the walk of ${path} was cut short by its time limit: its size and file count are lower bounds`,
    );
  }
  for (const path of denied) {
    ctx.unknown(
      'du',
      `parts of ${path} could not be read: permission denied (capture as root): its size and file count are lower bounds`,
    );
  }
  return [...byType].map(([type, t]) => ({ type, bytes: Math.round(t.bytes), files: t.files }));
}

export interface ParsedUsage {
  readonly usage: UsageInput;
  readonly rates: Rates | undefined;
  readonly load: readonly [number, number, number] | undefined;
}

export function parseUsage(
  ctx: ParseContext,
  inputs: {
    readonly meminfo: ReadonlyMap<string, number>;
    readonly established: number | undefined;
    readonly activeSessions: number | undefined;
  },
): ParsedUsage {
  const start = readSample(ctx.section('sample-start'));
  const end = readSample(ctx.section('sample-end'));
  const r = start && end ? rates(start, end) : undefined;
  if (!start && !end)
    ctx.unknown(
      'usage',
      'not sampled (a capture of state only): CPU, disk and network rates are not measured',
    );
  else if (!r)
    ctx.unknown('usage', 'no usable pair of /proc samples: CPU, disk and network rates are unknown');

  const loadText = ctx.section('loadavg')?.text.trim().split(/\s+/) ?? [];
  const loads = loadText.slice(0, 3).map(Number);
  const load =
    loads.length === 3 && loads.every(Number.isFinite)
      ? ([loads[0], loads[1], loads[2]] as [number, number, number])
      : undefined;

  const total = inputs.meminfo.get('MemTotal');
  const available = inputs.meminfo.get('MemAvailable') ?? inputs.meminfo.get('MemFree');
  const memoryUtilization =
    total !== undefined && available !== undefined && total > 0
      ? round(clamp01(1 - available / total), 4)
      : undefined;

  ctx.unknown(
    'usage',
    "requests per second, error rate and p95 latency need the application's metrics or access logs, which a capture does not read",
  );

  const performance = {
    ...(r?.cpuUtilization === undefined ? {} : { cpuUtilization: r.cpuUtilization }),
    ...(memoryUtilization === undefined ? {} : { memoryUtilization }),
    ...(load === undefined ? {} : { loadAverage: load }),
    ...(r === undefined ? {} : { diskIops: r.diskIops }),
  };
  return {
    usage: {
      ...(inputs.activeSessions === undefined
        ? {}
        : { application: { activeSessions: inputs.activeSessions } }),
      data: parseDataFootprint(ctx),
      ...(r === undefined
        ? {}
        : {
            network: {
              rxBytesPerSecond: r.rxBytesPerSecond,
              txBytesPerSecond: r.txBytesPerSecond,
              ...(inputs.established === undefined ? {} : { connections: inputs.established }),
            },
          }),
      ...(Object.keys(performance).length === 0 ? {} : { performance }),
    },
    rates: r,
    load,
  };
}
