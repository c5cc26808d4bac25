// Resources: CPUs, memory, and the cgroup limits that services and slices set.
import type { z } from 'zod';
import { sharesToWeight, V1_IO_WEIGHT, V1_MEMORY_UNLIMITED } from '../../profile/cgroup-v1.js';
import { CgroupLimit, type Resources } from '../../profile/schema.js';
import { lines, partsWith, partWith } from '../sections.js';
import { int, keyValues, type ParseContext } from './context.js';
import type { CgroupLookup } from './processes.js';

type ResourcesInput = z.input<typeof Resources>;
type Limit = z.input<typeof CgroupLimit>;

// Defaults the kernel (or systemd) gives every cgroup; a limit equal to them is no limit.
const DEFAULT_CPU_WEIGHT = 100;
const DEFAULT_IO_WEIGHT = 100;

export interface ParsedResources {
  readonly resources: ResourcesInput;
  readonly cgroups: CgroupLookup;
  readonly onlineCpus: number | undefined;
  /** /proc/meminfo in bytes, by field. */
  readonly meminfo: ReadonlyMap<string, number>;
}

interface Raw {
  quota?: number;
  period?: number;
  cpuMax?: string;
  cpuWeight?: number;
  memoryMax?: number;
  ioWeight?: number;
  pidsMax?: number;
}

/**
 * Each limit file's line of the cgroups section as its cgroup path (relative to its
 * hierarchy), file name and value. A part is one hierarchy: "v2 <mount point>" or
 * "hierarchy <mount point>" (a v1 one), or, from older captures, "v1 /sys/fs/cgroup" with every
 * v1 hierarchy under it, each line's path starting with its hierarchy's folder.
 */
function* limitLines(ctx: ParseContext): Generator<{ path: string; file: string; value: string }> {
  const section = ctx.section('cgroups');
  const parts = [...partsWith(section, 'v2'), ...partsWith(section, 'hierarchy')].map((p) => ({
    text: p.text,
    root: p.header.slice(p.header.indexOf(' ') + 1),
    legacy: false,
  }));
  const legacy = partWith(section, 'v1');
  if (legacy) parts.push({ text: legacy.text, root: '/sys/fs/cgroup', legacy: true });
  for (const part of parts) {
    const prefix = part.root === '/' ? '' : part.root;
    for (const line of lines(part.text)) {
      if (!line.startsWith(`${prefix}/`)) continue;
      const m = /^\/(.*?)([^/:]+):(.*)$/.exec(line.slice(prefix.length));
      if (!m) continue;
      let dir = m[1] ?? '';
      if (part.legacy) dir = dir.slice(dir.indexOf('/') + 1);
      yield { path: `/${dir.replace(/\/$/, '')}`, file: m[2] ?? '', value: (m[3] ?? '').trim() };
    }
  }
}

function readCgroups(ctx: ParseContext): Map<string, Raw> {
  const raw = new Map<string, Raw>();
  for (const { path, file, value } of limitLines(ctx)) {
    const r = raw.get(path) ?? {};
    raw.set(path, r);
    switch (file) {
      case 'cpu.max':
        if (!value.startsWith('max')) r.cpuMax = value;
        break;
      case 'cpu.weight': {
        const w = int(value);
        if (w !== undefined && w !== DEFAULT_CPU_WEIGHT) r.cpuWeight = w;
        break;
      }
      case 'memory.max': {
        const b = int(value);
        if (b !== undefined) r.memoryMax = b;
        break;
      }
      case 'io.weight': {
        const w = int(/^default (\d+)/.exec(value)?.[1] ?? value);
        if (w !== undefined && w !== DEFAULT_IO_WEIGHT) r.ioWeight = w;
        break;
      }
      case 'pids.max': {
        const n = int(value);
        if (n !== undefined) r.pidsMax = n;
        break;
      }
      case 'cpu.cfs_quota_us': {
        const q = Number(value);
        if (Number.isInteger(q) && q > 0) r.quota = q;
        break;
      }
      case 'cpu.cfs_period_us': {
        const period = int(value);
        if (period !== undefined) r.period = period;
        break;
      }
      case 'cpu.shares': {
        // As the weight the cgroup executor writes for it (core/profile/cgroup-v1.ts); shares
        // that read as the default weight are no limit, as cpu.weight 100 is none on v2.
        const s = int(value);
        const w = s === undefined ? undefined : sharesToWeight(s);
        if (w !== undefined && w !== DEFAULT_CPU_WEIGHT) r.cpuWeight = w;
        break;
      }
      case 'memory.limit_in_bytes': {
        const b = int(value);
        if (b !== undefined && b < V1_MEMORY_UNLIMITED) r.memoryMax = b;
        break;
      }
      case 'blkio.weight':
      case 'blkio.bfq.weight': {
        // Each scheduler's own default (CFQ 500, BFQ 100) is no limit.
        const w = int(value);
        if (w !== undefined && w !== V1_IO_WEIGHT[file]?.initial) r.ioWeight = w;
        break;
      }
    }
  }
  for (const r of raw.values()) {
    if (r.quota !== undefined) r.cpuMax = `${r.quota} ${r.period ?? 100000}`;
  }
  // systemd gives every service the same pids.max (DefaultTasksMax, a share of pid_max): a
  // value three or more cgroups share is that default, not a limit someone chose.
  const counts = new Map<number, number>();
  for (const r of raw.values())
    if (r.pidsMax !== undefined) counts.set(r.pidsMax, (counts.get(r.pidsMax) ?? 0) + 1);
  for (const r of raw.values()) {
    if (r.pidsMax !== undefined && (counts.get(r.pidsMax) ?? 0) >= 3) delete r.pidsMax;
  }
  return raw;
}

const quotaPercent = (cpuMax: string | undefined): number | undefined => {
  const m = /^(\d+) (\d+)$/.exec(cpuMax ?? '');
  if (!m) return undefined;
  const percent = (Number(m[1]) / Number(m[2])) * 100;
  return percent > 0 ? Math.round(percent * 100) / 100 : undefined;
};

export function parseResources(ctx: ParseContext): ParsedResources {
  const cpu = keyValues(ctx.section('cpu')?.text ?? '');
  const onlineCpus = int(cpu.get('online')) || int(cpu.get('nproc')) || undefined;
  const model = cpu.get('model')?.trim();

  const meminfo = new Map<string, number>();
  for (const line of lines(ctx.section('memory')?.text ?? '')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?: kB)?$/.exec(line);
    if (m?.[1] && m[2]) meminfo.set(m[1], Number(m[2]) * (line.endsWith('kB') ? 1024 : 1));
  }
  const memTotal = meminfo.get('MemTotal');
  const swapTotal = meminfo.get('SwapTotal');
  if (memTotal === undefined) ctx.unknown('memory', 'MemTotal not found in /proc/meminfo');

  const raw = readCgroups(ctx);
  const limits: Limit[] = [];
  for (const [path, r] of raw) {
    const limit: Limit = {
      path,
      ...(r.cpuMax === undefined ? {} : { cpuMax: r.cpuMax }),
      ...(r.cpuWeight === undefined ? {} : { cpuWeight: r.cpuWeight }),
      ...(r.memoryMax === undefined ? {} : { memoryMax: r.memoryMax }),
      ...(r.ioWeight === undefined ? {} : { ioWeight: r.ioWeight }),
      ...(r.pidsMax === undefined ? {} : { pidsMax: r.pidsMax }),
    };
    if (Object.keys(limit).length > 1) limits.push(limit);
  }
  const rootQuota = quotaPercent(raw.get('/')?.cpuMax);

  // The limit in force for a cgroup is the tightest one on its way up to the root.
  const cgroups: CgroupLookup = {
    limitsFor(path, controller) {
      if (path === undefined || !path.startsWith('/')) return undefined;
      let best: number | undefined;
      for (let p = path; ; p = p.slice(0, Math.max(1, p.lastIndexOf('/')))) {
        const r = raw.get(p);
        const v = controller === 'cpu' ? quotaPercent(r?.cpuMax) : r?.memoryMax;
        if (v !== undefined && (best === undefined || v < best)) best = v;
        if (p === '/') break;
      }
      return best;
    },
  };

  return {
    resources: {
      ...(onlineCpus === undefined
        ? {}
        : {
            cpu: {
              count: onlineCpus,
              ...(model ? { model } : {}),
              ...(rootQuota === undefined ? {} : { quotaMillicores: Math.round(rootQuota * 10) }),
            },
          }),
      ...(memTotal === undefined
        ? {}
        : { memory: { bytes: memTotal, ...(swapTotal === undefined ? {} : { swapBytes: swapTotal }) } }),
      cgroups: ctx.keep('cgroups', CgroupLimit, limits, (l) => l.path, 'cgroup limit'),
    },
    cgroups,
    onlineCpus,
    meminfo,
  };
}
