// Watching a morph: the same probe sampled before the apply (the baseline) and over the watch
// period after it, compared by median and failure rate. An HTTP probe is curl on the host
// itself against its loopback (no traffic leaves the host; the port and path pass the target's
// grammar and reach curl quoted, after `--`); a load probe reads /proc/loadavg.
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import type { Probe, Watch } from './target.js';

export interface ProbeSample {
  readonly ok: boolean;
  /** Milliseconds for HTTP, the 1-minute load average for load. */
  readonly value: number;
  readonly detail?: string;
}

export interface ProbeSummary {
  readonly probe: Probe;
  readonly samples: readonly ProbeSample[];
  /** The median value of the probes that succeeded; null when none did. */
  readonly median: number | null;
  readonly errorRate: number;
}

// Below these, a change is noise whatever its percentage: 20 ms of a loopback request, half a
// unit of load average.
const NOISE_FLOOR: Readonly<Record<Probe['kind'], number>> = { http: 20, load: 0.5 };

export function probeCommand(probe: Probe): string {
  if (probe.kind === 'load') return 'cat /proc/loadavg';
  const url = `http://127.0.0.1:${probe.port}${probe.path}`;
  return sh`curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' -- ${url}`;
}

export async function sampleOnce(transport: Transport, probe: Probe): Promise<ProbeSample> {
  const r = await transport.run(probeCommand(probe));
  if (probe.kind === 'load') {
    const load = Number.parseFloat(r.stdout.trim().split(/\s+/)[0] ?? '');
    return Number.isFinite(load)
      ? { ok: true, value: load }
      : { ok: false, value: 0, detail: 'no /proc/loadavg' };
  }
  const [code, seconds] = r.stdout.trim().split(/\s+/);
  const ms = Math.round(Number.parseFloat(seconds ?? '') * 100_000) / 100;
  const status = Number.parseInt(code ?? '', 10);
  const ok = r.exitCode === 0 && status >= 200 && status < 400;
  return {
    ok,
    value: Number.isFinite(ms) ? ms : 0,
    ...(ok ? {} : { detail: `curl exit ${r.exitCode}, HTTP ${code ?? '-'}` }),
  };
}

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >>> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export function summarize(probe: Probe, samples: readonly ProbeSample[]): ProbeSummary {
  const ok = samples.filter((s) => s.ok);
  return {
    probe,
    samples,
    median: median(ok.map((s) => s.value)),
    errorRate: samples.length === 0 ? 0 : (samples.length - ok.length) / samples.length,
  };
}

/** `samples` probes spread evenly over `periodMs` (the first at once). */
export async function sample(
  transport: Transport,
  probe: Probe,
  samples: number,
  periodMs: number,
  sleep: (ms: number) => Promise<void>,
): Promise<ProbeSummary> {
  const out: ProbeSample[] = [];
  const gap = samples > 1 ? periodMs / (samples - 1) : 0;
  for (let i = 0; i < samples; i++) {
    if (i > 0 && gap > 0) await sleep(gap);
    out.push(await sampleOnce(transport, probe));
  }
  return summarize(probe, out);
}

export interface WatchVerdict {
  readonly degraded: boolean;
  readonly reasons: readonly string[];
  readonly baseline: { readonly median: number | null; readonly errorRate: number };
  readonly after: { readonly median: number | null; readonly errorRate: number };
  readonly tolerance: Watch['tolerance'];
}

/** Whether the host after the morph is worse than before it, beyond the tolerance. */
export function judge(
  baseline: ProbeSummary,
  after: ProbeSummary,
  tolerance: Watch['tolerance'],
): WatchVerdict {
  const reasons: string[] = [];
  if (after.errorRate > baseline.errorRate + tolerance.errorRate)
    reasons.push(
      `${Math.round(after.errorRate * 100)}% of probes failed, against ${Math.round(baseline.errorRate * 100)}% before (tolerance ${Math.round(tolerance.errorRate * 100)} points)`,
    );
  if (baseline.median !== null && after.median !== null) {
    const limit = Math.max(
      baseline.median * (1 + tolerance.latencyPercent / 100),
      baseline.median + NOISE_FLOOR[after.probe.kind],
    );
    if (after.median > limit)
      reasons.push(
        `median ${after.probe.kind === 'http' ? 'latency' : 'load'} ${after.median} against ${baseline.median} before (limit ${Math.round(limit * 100) / 100}: +${tolerance.latencyPercent}%)`,
      );
  }
  return {
    degraded: reasons.length > 0,
    reasons,
    baseline: { median: baseline.median, errorRate: baseline.errorRate },
    after: { median: after.median, errorRate: after.errorRate },
    tolerance,
  };
}
