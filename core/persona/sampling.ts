// Metrics of hosts without an agent: read over the host's own transport (one command reading
// /proc, no sleep on the host) or, for EC2 instances, from CloudWatch. Rates need two readings,
// so each host's last counters are kept and the next sampling round measures against them, as
// the agent does between its cycles; the first round reports levels (memory, load) only.
import { type CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import { TransportError } from '../transport/errors.js';
import type { Transport } from '../transport/transport.js';
import type { MetricStore } from './metrics.js';
import type { MetricReport } from './schema.js';
import { compileAll, type StoredPersona } from './service.js';

/** One reading of a host's counters: what rates are made from. */
export interface Counters {
  /** Seconds since the host booted: a smaller value than the last reading means a reboot. */
  readonly uptime: number;
  readonly cpuTotal: number;
  readonly cpuIdle: number;
  readonly diskBytes: number;
  readonly diskOps: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly memTotalKb: number;
  readonly memAvailableKb: number;
  readonly load1: number;
}

// Whole-disk devices only (the names /sys/block lists), so partitions are not counted twice;
// loopback interfaces are left out. One line of numbers, whatever the host holds.
const COUNTERS_SCRIPT = [
  'disks=$(ls /sys/block 2>/dev/null | tr "\\n" " ")',
  `awk -v disks=" $disks" '`,
  '  FILENAME == "/proc/uptime" { up = $1 }',
  '  FILENAME == "/proc/stat" && $1 == "cpu" { for (i = 2; i <= 9 && i <= NF; i++) total += $i; idle = $5 + $6 }',
  '  FILENAME == "/proc/diskstats" { if ($3 ~ /^(loop|ram|zram|sr|fd)/) next',
  '    if (index(disks, " " $3 " ") == 0) next; ops += $4 + $8; bytes += ($6 + $10) * 512 }',
  '  FILENAME == "/proc/net/dev" && index($0, ":") { line = $0; sub(/^[ \\t]*/, "", line); split(line, p, ":")',
  '    if (p[1] == "lo") next; split(p[2], f, " "); rx += f[1]; tx += f[9] }',
  '  FILENAME == "/proc/meminfo" && $1 == "MemTotal:" { mt = $2 }',
  '  FILENAME == "/proc/meminfo" && $1 == "MemAvailable:" { ma = $2 }',
  '  FILENAME == "/proc/loadavg" { load = $1 }',
  '  END { printf "%s %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %s\\n", up, total, idle, bytes, ops, rx, tx, mt, ma, load + 0 }',
  "' /proc/uptime /proc/stat /proc/diskstats /proc/net/dev /proc/meminfo /proc/loadavg",
].join('\n');

/** Reads the host's counters in one command. */
export async function readCounters(transport: Transport): Promise<Counters> {
  const result = await transport.run(COUNTERS_SCRIPT, { timeoutMs: 20_000 });
  const fields = result.stdout.trim().split(/\s+/).map(Number);
  if (result.exitCode !== 0 || fields.length !== 10 || fields.some((n) => !Number.isFinite(n))) {
    throw new TransportError(
      `could not read the counters of ${transport.target} (exit ${result.exitCode})`,
      'failed',
      transport.target,
    );
  }
  const [uptime, cpuTotal, cpuIdle, diskBytes, diskOps, rxBytes, txBytes, memTotalKb, memAvailableKb, load1] =
    fields as [number, number, number, number, number, number, number, number, number, number];
  return {
    uptime,
    cpuTotal,
    cpuIdle,
    diskBytes,
    diskOps,
    rxBytes,
    txBytes,
    memTotalKb,
    memAvailableKb,
    load1,
  };
}

/** How old a previous reading may be for a rate over it to mean "now". */
export const MAX_RATE_WINDOW_SECONDS = 900;

/**
 * The report of one reading: levels always, rates against `previous` when it is from the same
 * boot, not older than MAX_RATE_WINDOW_SECONDS, and no counter went backwards.
 */
export function reportFrom(
  host: string,
  at: Date,
  now: Counters,
  previous: Counters | undefined,
  intervalSeconds?: number,
): MetricReport {
  const values: Record<string, number> = {};
  if (now.memTotalKb > 0)
    values['memory.utilization'] = round((100 * (now.memTotalKb - now.memAvailableKb)) / now.memTotalKb);
  values['load.average1'] = now.load1;
  const dt = previous === undefined ? 0 : now.uptime - previous.uptime;
  if (previous !== undefined && dt > 0 && dt <= MAX_RATE_WINDOW_SECONDS) {
    const rate = (a: number, b: number) => (a >= b ? round((a - b) / dt) : undefined);
    const total = now.cpuTotal - previous.cpuTotal;
    const idle = now.cpuIdle - previous.cpuIdle;
    if (total > 0 && idle >= 0) values['cpu.utilization'] = round((100 * (total - idle)) / total);
    const named: [string, number | undefined][] = [
      ['disk.io.bytes_per_second', rate(now.diskBytes, previous.diskBytes)],
      ['disk.io.operations_per_second', rate(now.diskOps, previous.diskOps)],
      ['network.rx.bytes_per_second', rate(now.rxBytes, previous.rxBytes)],
      ['network.tx.bytes_per_second', rate(now.txBytes, previous.txBytes)],
    ];
    for (const [name, value] of named) if (value !== undefined) values[name] = value;
  }
  return {
    host,
    at: at.toISOString(),
    ...(intervalSeconds === undefined ? {} : { intervalSeconds }),
    values,
  };
}

const round = (n: number) => Math.round(n * 100) / 100;

/** The last counters read from each host, kept between sampling rounds. */
export interface CounterMemory {
  get(host: string): Promise<Counters | undefined>;
  put(host: string, counters: Counters): Promise<void>;
}

// CloudWatch's EC2 metrics, per instance, and what each becomes. Memory is not among them:
// it needs the CloudWatch agent, whose metrics are the host's own (a custom namespace).
const EC2_METRICS = [
  { id: 'cpu', metric: 'CPUUtilization', stat: 'Average', name: 'cpu.utilization', perSecond: false },
  { id: 'rx', metric: 'NetworkIn', stat: 'Sum', name: 'network.rx.bytes_per_second', perSecond: true },
  { id: 'tx', metric: 'NetworkOut', stat: 'Sum', name: 'network.tx.bytes_per_second', perSecond: true },
  { id: 'dr', metric: 'EBSReadBytes', stat: 'Sum', name: 'disk.io.bytes_per_second', perSecond: true },
  { id: 'dw', metric: 'EBSWriteBytes', stat: 'Sum', name: 'disk.io.bytes_per_second', perSecond: true },
] as const;

/**
 * The latest complete period of an instance's CloudWatch metrics as a report: one
 * GetMetricData call for all of them. Sums over the period become rates; disk reads and writes
 * add up. No datapoint in the window → no value (the criteria then read it as unknown).
 */
export async function cloudWatchReport(
  cloudwatch: Pick<CloudWatchClient, 'send'>,
  host: string,
  instanceId: string,
  now: Date,
  periodSeconds = 60,
): Promise<MetricReport | undefined> {
  const end = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  const start = new Date(end.getTime() - 5 * periodSeconds * 1000);
  const out = await cloudwatch.send(
    new GetMetricDataCommand({
      StartTime: start,
      EndTime: end,
      ScanBy: 'TimestampDescending',
      MetricDataQueries: EC2_METRICS.map((m) => ({
        Id: m.id,
        ReturnData: true,
        MetricStat: {
          Metric: {
            Namespace: 'AWS/EC2',
            MetricName: m.metric,
            Dimensions: [{ Name: 'InstanceId', Value: instanceId }],
          },
          Period: periodSeconds,
          Stat: m.stat,
        },
      })),
    }),
  );
  const values: Record<string, number> = {};
  let latest = 0;
  for (const result of out.MetricDataResults ?? []) {
    const spec = EC2_METRICS.find((m) => m.id === result.Id);
    const value = result.Values?.[0];
    const at = result.Timestamps?.[0];
    if (spec === undefined || value === undefined || at === undefined || !Number.isFinite(value)) continue;
    latest = Math.max(latest, at.getTime());
    const v = spec.perSecond ? value / periodSeconds : value;
    values[spec.name] = round((values[spec.name] ?? 0) + v);
  }
  if (Object.keys(values).length === 0) return undefined;
  return { host, at: new Date(latest).toISOString(), intervalSeconds: periodSeconds, values };
}

/** What a sampling round reads and writes. */
export interface SamplingDeps {
  readonly personas: { loadAll(): Promise<readonly StoredPersona[]> };
  readonly hosts: Pick<HostRegistry, 'list'>;
  /** Hosts whose agent reports for them: they are not sampled. */
  readonly agents: { liveHosts(): Promise<readonly string[]> };
  readonly metrics: Pick<MetricStore, 'putMany'>;
  readonly memory: CounterMemory;
  /** A transport to the host; the caller of a round closes nothing: each is closed here. */
  transportFor(host: HostRegistration): Promise<Transport>;
  /** Where EC2 instances' metrics are read; without it they are sampled over their transport. */
  readonly cloudwatch?: Pick<CloudWatchClient, 'send'>;
  /** Hosts sampled at once. Default 4. */
  readonly concurrency?: number;
}

export interface SampledHost {
  readonly host: string;
  readonly source: 'transport' | 'cloudwatch';
  readonly values?: number;
  readonly error?: string;
}

/**
 * One round: every registered host that a persona with metric criteria selects and that has no
 * live agent is read (CloudWatch for an EC2 instance where it can be reached, else one command
 * over its transport), and the reports are stored. A host that cannot be read is answered with
 * the reason; the others go on. Returns the hosts sampled, for their evaluation.
 */
export async function sampleAgentless(deps: SamplingDeps, now: Date): Promise<SampledHost[]> {
  const personas = compileAll(await deps.personas.loadAll()).filter(
    (p) => (p.criteria?.metrics.length ?? 0) > 0,
  );
  if (personas.length === 0) return [];
  const live = new Set(await deps.agents.liveHosts());
  const wanted: HostRegistration[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.hosts.list({ limit: 100, cursor });
    for (const { registration } of page.items) {
      if (live.has(registration.name)) continue;
      const ref = { name: registration.name, labels: registration.tags ?? {} };
      if (personas.some((p) => p.selects(ref))) wanted.push(registration);
    }
    cursor = page.nextCursor;
  } while (cursor !== undefined);

  const reports: MetricReport[] = [];
  const sampled: SampledHost[] = [];
  const queue = [...wanted];
  const worker = async () => {
    for (let host = queue.shift(); host !== undefined; host = queue.shift()) {
      const viaCloudWatch =
        deps.cloudwatch !== undefined && host.platform === 'aws' && host.instanceId !== undefined;
      try {
        const report = viaCloudWatch
          ? await cloudWatchReport(
              deps.cloudwatch as CloudWatchClient,
              host.name,
              host.instanceId as string,
              now,
            )
          : await overTransport(deps, host, now);
        if (report !== undefined) reports.push(report);
        sampled.push({
          host: host.name,
          source: viaCloudWatch ? 'cloudwatch' : 'transport',
          values: report === undefined ? 0 : Object.keys(report.values).length,
        });
      } catch (e) {
        sampled.push({
          host: host.name,
          source: viaCloudWatch ? 'cloudwatch' : 'transport',
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency ?? 4) }, worker));
  if (reports.length > 0) await deps.metrics.putMany(reports);
  return sampled;
}

async function overTransport(deps: SamplingDeps, host: HostRegistration, now: Date): Promise<MetricReport> {
  const transport = await deps.transportFor(host);
  try {
    const counters = await readCounters(transport);
    const previous = await deps.memory.get(host.name);
    await deps.memory.put(host.name, counters);
    return reportFrom(host.name, now, counters, previous);
  } finally {
    await transport.close();
  }
}

const COUNTERS_SK = 'counters';

/** The last counters of each host, as an item of HOST_PERSONAS_TABLE (sk "counters"). */
export class DynamoCounterMemory implements CounterMemory {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(host: string): Promise<Counters | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { host, sk: COUNTERS_SK }, ConsistentRead: true }),
    );
    const parsed = StoredCounters.safeParse(out.Item?.counters);
    // Anything else there (an older shape, a damaged item) is as good as no reading: rates wait a round.
    return parsed.success ? parsed.data : undefined;
  }

  async put(host: string, counters: Counters): Promise<void> {
    await this.ddb.send(
      new PutCommand({ TableName: this.tableName, Item: { host, sk: COUNTERS_SK, counters } }),
    );
  }
}

const StoredCounters = z.object({
  uptime: z.number(),
  cpuTotal: z.number(),
  cpuIdle: z.number(),
  diskBytes: z.number(),
  diskOps: z.number(),
  rxBytes: z.number(),
  txBytes: z.number(),
  memTotalKb: z.number(),
  memAvailableKb: z.number(),
  load1: z.number(),
});
