// Usage observations: CPU, memory, disk and network rates over the capture, load average, and
// the data footprint by type.
//
// The rates come from two samples of /proc taken at the start and the end of the script: the
// window is the script's whole run (at least a tenth of a second), and the Profile says how long
// it was (usage.window). On a host with persona-agent, the agent's last reading (kept between
// its cycles, at most MAX_AGENT_WINDOW_SECONDS old and from the same boot) starts a longer
// window instead: CPU, network and disk rates then span from that reading to the end of the
// capture, and the SSH connection's own few kilobytes fall inside it (an upper bound, as disk
// operations are). iowait is the script's own window's either way: the agent does not keep it.
// The capture's own CPU time (the script and everything it ran, which
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

/** The agent's reading as persona-agent.sh's sample() writes it, disk operations by its rule. */
export interface AgentSample {
  readonly uptime: number;
  readonly cpuTotal: number;
  readonly cpuIdle: number;
  readonly diskOps: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/** How old the agent's last reading may be to start the window: older means the agent stopped. */
export const MAX_AGENT_WINDOW_SECONDS = 900;

// persona-agent.sh's sample(): the whole-disk names /sys/block lists, less these.
const NOT_AGENT_DISK = /^(loop|ram|zram|sr|fd)/;

/** The agent's last reading, printed in sample-start: "uptime total idle bytes ops rx tx". */
export function readAgentSample(section: Section | undefined): AgentSample | undefined {
  const text = partWith(section, 'agent')?.text.trim();
  if (!text || !/^[0-9. ]+$/.test(text)) return undefined;
  const f = text.split(/ +/).map(Number);
  if (f.length !== 7 || !f.every(Number.isFinite)) return undefined;
  const [uptime, cpuTotal, cpuIdle, , diskOps, rxBytes, txBytes] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { uptime, cpuTotal, cpuIdle, diskOps, rxBytes, txBytes };
}

/** The end reading counted as the agent counts: disks by /sys/block's names. */
function asAgentCounts(end: Section | undefined, blocks: Section | undefined, sample: Sample) {
  const names = new Set(
    lines(partWith(blocks, 'blocks')?.text ?? '')
      .map((l) => l.trim())
      .filter((n) => n !== '' && !NOT_AGENT_DISK.test(n)),
  );
  let diskOps = 0;
  for (const line of lines(partWith(end, 'disk')?.text ?? '')) {
    const f = line.trim().split(/\s+/);
    if (!names.has(f[2] ?? '')) continue;
    diskOps += Number(f[3] ?? 0) + Number(f[7] ?? 0);
  }
  return { ...sample, diskOps };
}

export interface Rates {
  readonly seconds: number;
  /** Whose reading started the window: the capture script's own, or persona-agent's last. */
  readonly source: 'capture' | 'agent';
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
    source: 'capture',
    cpuUtilization,
    iowait,
    rxBytesPerSecond: round(Math.max(0, b.rxBytes - a.rxBytes) / seconds, 1),
    txBytesPerSecond: round(Math.max(0, b.txBytes - a.txBytes) / seconds, 1),
    diskIops: round(Math.max(0, b.diskOps - a.diskOps) / seconds, 1),
  };
}

/**
 * Rates from the agent's last reading to the capture's end, when that window is longer than the
 * capture's own, from the same boot and recent; iowait stays the capture's (the agent has none).
 */
export function agentRates(
  agent: AgentSample,
  end: Sample & { readonly diskOps: number },
  own: Rates | undefined,
): Rates | undefined {
  const seconds = round(end.uptime - agent.uptime, 2);
  if (!(seconds > (own?.seconds ?? 0)) || seconds > MAX_AGENT_WINDOW_SECONDS || !end.cpu) return undefined;
  const total = end.cpu.total - agent.cpuTotal;
  const idle = end.cpu.idle - agent.cpuIdle;
  if (!(total > 0) || idle < 0 || end.rxBytes < agent.rxBytes || end.txBytes < agent.txBytes)
    return undefined;
  // Every tick the script spent (reaped children included) falls inside this window.
  const self = end.selfTicks ?? 0;
  return {
    seconds,
    source: 'agent',
    cpuUtilization: round(clamp01((total - idle - self) / total), 4),
    iowait: own?.iowait,
    rxBytesPerSecond: round((end.rxBytes - agent.rxBytes) / seconds, 1),
    txBytesPerSecond: round((end.txBytes - agent.txBytes) / seconds, 1),
    diskIops: round(Math.max(0, end.diskOps - agent.diskOps) / seconds, 1),
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
  const own = start && end ? rates(start, end) : undefined;
  const agent = readAgentSample(ctx.section('sample-start'));
  const r =
    (agent && end
      ? agentRates(agent, asAgentCounts(ctx.section('sample-end'), ctx.section('sample-start'), end), own)
      : undefined) ?? own;
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
      ...(r === undefined ? {} : { window: { seconds: round(r.seconds, 2), source: r.source } }),
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
