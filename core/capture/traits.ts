// The trait vector: how strongly a host is a web server, a database, CPU-bound, and so on,
// each a number in [0, 1]. Morph compares these to pick a target profile.
//
// Each trait is a weighted sum of signals, each signal in [0, 1], with weights that add up to
// 1 — so a trait is in [0, 1] by construction. Signals are either evidence of software (a
// package installed, a process running, a well-known port listening: 0 or 1) or a measurement
// scaled against a reference level (CPU utilisation, IOPS against 500, traffic against
// 100 Mbit/s). The weights are data (TRAIT_WEIGHTS) and go into the Profile with the vector,
// so a reader can see why a host scored what it did. The same inputs always give the same
// vector: no clock, no randomness, values rounded to three decimals.
import type { z } from 'zod';
import type { ProfileSpec, TraitVector, Usage } from '../profile/schema.js';

type SpecInput = z.input<typeof ProfileSpec>;
type UsageInput = z.input<typeof Usage>;
type TraitVectorInput = z.input<typeof TraitVector>;

export const TRAIT_WEIGHTS = {
  'web-serving': { software: 0.35, process: 0.35, port: 0.3 },
  database: { software: 0.25, process: 0.3, port: 0.2, data: 0.25 },
  'cpu-bound': { utilization: 0.6, load: 0.4 },
  'memory-heavy': { utilization: 0.7, swap: 0.3 },
  'io-bound': { iops: 0.5, iowait: 0.5 },
  'network-heavy': { throughput: 0.6, connections: 0.4 },
  'latency-sensitive': { publicListener: 0.4, interactiveServer: 0.4, priority: 0.2 },
  batch: { scheduler: 0.1, software: 0.3, lowPriority: 0.3, noListener: 0.3 },
} as const satisfies Record<string, Record<string, number>>;

export type TraitName = keyof typeof TRAIT_WEIGHTS;

/** Reference levels: a measurement at this level is a full-strength signal. */
export const TRAIT_SCALES = {
  databaseBytes: 10 * 1024 ** 3,
  iops: 500,
  iowait: 0.2,
  bytesPerSecond: 12_500_000,
  connections: 500,
} as const;

const WEB_SOFTWARE =
  /^(nginx(-\w+)?|apache2|httpd|caddy|lighttpd|haproxy|traefik|envoy|tomcat\d*|jetty\d*|php[\d.]*-fpm|php-fpm[\d.]*|gunicorn|uwsgi|puma|unicorn)$/;
const DB_SOFTWARE =
  /^(postgresql(-server|-\d+)?|mysql-server(-[\d.]+)?|mariadb-server(-[\d.]+)?|mongodb(-org)?(-server)?|redis(-server)?|memcached|cassandra|elasticsearch|opensearch|clickhouse-server|influxdb\d?|couchdb|etcd(-server)?)$/;
const DB_PROCESS =
  /^(postgres|mysqld|mariadbd|mongod|redis-server|memcached|clickhouse-serv|influxd|etcd|couchdb)$/;
const CACHE_PROCESS = /^(redis-server|memcached|varnishd)$/;
const SCHEDULER = /^(cron|cronie|anacron|systemd-cron|at)$/;
const BATCH_SOFTWARE = /^(slurm(d|ctld|-wlm)?|spark|hadoop|airflow|celery|sidekiq|nomad|beanstalkd|rq)$/;
const WEB_PORTS = new Set([80, 443, 8000, 8008, 8080, 8443]);
const DB_PORTS = new Set([5432, 3306, 27017, 6379, 11211, 9042, 9200, 8123, 8086, 2379]);
const SSH_PORT = 22;

export interface TraitInputs {
  readonly spec: Pick<SpecInput, 'packages' | 'services' | 'processes' | 'resources'>;
  readonly listening: readonly {
    readonly protocol: string;
    readonly address: string;
    readonly port?: number | undefined;
  }[];
  readonly usage: UsageInput | undefined;
  /** Signals a Profile does not hold: share of CPU time waiting for I/O, share of swap in use. */
  readonly iowait?: number;
  readonly swapUsed?: number;
  /** Stamped on the vector; the capture time, so the vector depends on its inputs only. */
  readonly computedAt?: string;
}

const clamp01 = (x: number | undefined): number =>
  x === undefined || !Number.isFinite(x) ? 0 : Math.min(1, Math.max(0, x));
const flag = (b: boolean): number => (b ? 1 : 0);
const isLoopback = (a: string): boolean => a.startsWith('127.') || a === '::1' || a === 'localhost';

export function computeTraits(inputs: TraitInputs): TraitVectorInput {
  const packages = (inputs.spec.packages ?? []).map((p) => p.name);
  const running = [
    ...(inputs.spec.services ?? []).filter((s) => s.state === 'running').map((s) => s.name),
    ...(inputs.spec.processes ?? []).map((p) => p.command.split(/\s/)[0]?.split('/').pop() ?? ''),
    ...(inputs.spec.processes ?? []).map((p) => p.name),
  ];
  const tcp = inputs.listening.filter((l) => l.protocol === 'tcp' || l.protocol === 'tcp6');
  const ports = new Set(tcp.map((l) => l.port).filter((p): p is number => p !== undefined));
  const publicTcp = tcp.filter((l) => !isLoopback(l.address) && l.port !== SSH_PORT);
  const perf = inputs.usage?.performance;
  const cpuCount = inputs.spec.resources?.cpu?.count;
  const dbBytes = (inputs.usage?.data ?? [])
    .filter((d) => d.type === 'database')
    .reduce((a, d) => a + d.bytes, 0);
  const net = inputs.usage?.network;
  const procs = inputs.spec.processes ?? [];

  const signals: { [T in TraitName]: { [S in keyof (typeof TRAIT_WEIGHTS)[T]]: number } } = {
    'web-serving': {
      software: flag(packages.some((p) => WEB_SOFTWARE.test(p))),
      process: flag(running.some((p) => WEB_SOFTWARE.test(p))),
      port: flag([...ports].some((p) => WEB_PORTS.has(p))),
    },
    database: {
      software: flag(packages.some((p) => DB_SOFTWARE.test(p))),
      process: flag(running.some((p) => DB_PROCESS.test(p))),
      port: flag([...ports].some((p) => DB_PORTS.has(p))),
      data: clamp01(dbBytes / TRAIT_SCALES.databaseBytes),
    },
    'cpu-bound': {
      utilization: clamp01(perf?.cpuUtilization),
      load: clamp01(perf?.loadAverage && cpuCount ? perf.loadAverage[0] / cpuCount : undefined),
    },
    'memory-heavy': {
      utilization: clamp01(perf?.memoryUtilization),
      swap: clamp01(inputs.swapUsed),
    },
    'io-bound': {
      iops: clamp01((perf?.diskIops ?? 0) / TRAIT_SCALES.iops),
      iowait: clamp01((inputs.iowait ?? 0) / TRAIT_SCALES.iowait),
    },
    'network-heavy': {
      throughput: clamp01(
        net ? (net.rxBytesPerSecond + net.txBytesPerSecond) / TRAIT_SCALES.bytesPerSecond : undefined,
      ),
      connections: clamp01((net?.connections ?? 0) / TRAIT_SCALES.connections),
    },
    'latency-sensitive': {
      publicListener: flag(publicTcp.length > 0),
      interactiveServer: flag(
        running.some((p) => WEB_SOFTWARE.test(p) || CACHE_PROCESS.test(p)) ||
          [...ports].some((p) => WEB_PORTS.has(p)),
      ),
      priority: flag(procs.some((p) => (p.nice !== undefined && p.nice < 0) || p.ioClass === 'realtime')),
    },
    batch: {
      scheduler: flag(running.some((p) => SCHEDULER.test(p)) || packages.some((p) => SCHEDULER.test(p))),
      software: flag(
        running.some((p) => BATCH_SOFTWARE.test(p)) || packages.some((p) => BATCH_SOFTWARE.test(p)),
      ),
      lowPriority: flag(procs.some((p) => (p.nice !== undefined && p.nice > 0) || p.ioClass === 'idle')),
      noListener: flag(publicTcp.length === 0),
    },
  };

  const traits: Record<string, number> = {};
  const weights: Record<string, number> = {};
  for (const trait of Object.keys(TRAIT_WEIGHTS) as TraitName[]) {
    const w = TRAIT_WEIGHTS[trait] as Record<string, number>;
    const s = signals[trait] as Record<string, number>;
    let value = 0;
    for (const [signal, weight] of Object.entries(w)) {
      value += weight * clamp01(s[signal]);
      weights[`${trait}.${signal}`] = weight;
    }
    traits[trait] = Math.round(clamp01(value) * 1000) / 1000;
  }
  return { traits, weights, ...(inputs.computedAt === undefined ? {} : { computedAt: inputs.computedAt }) };
}
