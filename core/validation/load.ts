// A bounded load test in the open model, as wrk2 and vegeta run one: requests start at a fixed
// rate whether or not earlier ones have been answered, and each latency is measured from the
// request's intended start. A closed loop (k6's default, autocannon) waits for answers before
// sending more, so a stalled server is sent less and its stall barely shows in the percentiles
// (coordinated omission); here the stall shows in p99 and the request count stays the same.
import http from 'node:http';
import https from 'node:https';
import { InvalidInputError, type Issue } from '../errors.js';
import { LoadTargetPolicy } from './addresses.js';
import { endpointLabel, type HttpEndpoint, HttpFailure, httpExchange } from './http.js';
import { SAFE_METHODS } from './probes.js';
import {
  type LoadComparison,
  type LoadResult,
  LoadTolerances,
  type LoadTolerances as Tolerances,
} from './report.js';
import { isRequestPath } from './text.js';

export interface LoadRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface LoadOptions {
  /** Requests in turn, round-robin. Default one: GET /. */
  readonly requests?: readonly LoadRequest[];
  readonly ratePerSecond: number;
  /** How long requests are started for. */
  readonly durationMs: number;
  /** No more requests than this are ever sent, whatever the rate and duration. */
  readonly maxRequests: number;
  /** A request unanswered this long after its intended start is an error. Default 5 s. */
  readonly requestTimeoutMs?: number;
  /** The run ends by then, counting what is still unanswered as errors. Default duration + request time-out. */
  readonly maxDurationMs?: number;
  /** Connections kept open to the target; requests beyond them queue, and the queue counts. Default 32. */
  readonly maxConnections?: number;
  /** IP addresses of test hosts that may be load-tested besides loopback. */
  readonly allowedAddresses?: readonly string[];
  readonly allowUnsafeMethods?: boolean;
}

/** Ceilings no caller can raise: a load test is a check, not a stress test. */
export const LOAD_LIMITS = {
  ratePerSecond: 2000,
  durationMs: 5 * 60_000,
  maxRequests: 100_000,
  maxConnections: 256,
} as const;

export async function runLoad(target: HttpEndpoint, options: LoadOptions): Promise<LoadResult> {
  // Everything is checked before the first socket: a refused target is never connected to.
  new LoadTargetPolicy(options.allowedAddresses).check(target.address, 'target.address');
  const plan = checkOptions(options);

  const agentOptions = { keepAlive: true, maxSockets: plan.maxConnections };
  const agent = target.scheme === 'https' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  // Loaded here: only a load test needs the histogram, and the clone task's other steps never
  // run one.
  const histogram = (await import('./histogram.js')).latencyHistogram();
  const errorReasons: Record<string, number> = {};
  let sent = 0;
  let succeeded = 0;
  let errors = 0;
  let lastAnswer = 0;
  let cutShort = false;

  const interval = 1000 / options.ratePerSecond;
  const start = performance.now();
  const deadline = start + plan.maxDurationMs;
  const inFlight = new Set<Promise<void>>();

  const fire = (index: number, intended: number) => {
    const request = plan.requests[index % plan.requests.length];
    if (!request) return;
    const now = performance.now();
    const byDeadline = deadline - now < plan.requestTimeoutMs - (now - intended);
    const timeoutMs = Math.max(1, Math.min(plan.requestTimeoutMs - (now - intended), deadline - now));
    sent++;
    const done = httpExchange(
      target,
      {
        method: request.method,
        path: request.path,
        ...(request.headers ? { headers: request.headers } : {}),
      },
      { timeoutMs, maxBodyBytes: 0, agent },
    ).then(
      (response) => {
        if (response.status < 400) succeeded++;
        else fail(`status ${response.status}`);
      },
      (error: unknown) => {
        const timedOut = error instanceof HttpFailure && error.kind === 'timeout';
        if (timedOut && byDeadline) cutShort = true;
        fail(
          timedOut && byDeadline
            ? 'abandoned at the time bound'
            : error instanceof HttpFailure
              ? error.reason
              : 'error',
        );
      },
    );
    const settled = done.finally(() => {
      const end = performance.now();
      lastAnswer = Math.max(lastAnswer, end);
      histogram.recordValue(Math.max(1, Math.round((end - intended) * 1000)));
      inFlight.delete(settled);
    });
    inFlight.add(settled);
  };
  const fail = (reason: string) => {
    errors++;
    errorReasons[reason] = (errorReasons[reason] ?? 0) + 1;
  };

  try {
    // Each request is started at its own time; a late timer starts every overdue request at once,
    // and their latencies still count from when they were due.
    let next = 0;
    while (next < plan.planned) {
      const now = performance.now();
      if (now >= deadline) break;
      while (next < plan.planned && start + next * interval <= now) {
        fire(next, start + next * interval);
        next++;
      }
      if (next < plan.planned) await sleep(Math.max(0, start + next * interval - performance.now()));
    }
    while (inFlight.size > 0) await Promise.all([...inFlight]);
  } finally {
    agent.destroy();
  }

  const end = performance.now();
  const max = histogram.totalCount === 0 ? 0 : histogram.maxValue / 1000;
  // A percentile is the top of its bucket (three significant digits); never above the exact maximum.
  const quantile = (q: number) =>
    histogram.totalCount === 0 ? 0 : Math.min(max, histogram.getValueAtPercentile(q) / 1000);
  const result: LoadResult = {
    target: endpointLabel(target),
    ratePerSecond: options.ratePerSecond,
    planned: plan.planned,
    sent,
    succeeded,
    errors,
    errorRate: sent === 0 ? 0 : errors / sent,
    errorReasons,
    latencyMs: {
      p50: quantile(50),
      p95: quantile(95),
      p99: quantile(99),
      max,
      mean: histogram.totalCount === 0 ? 0 : round(histogram.mean / 1000),
    },
    sentPerSecond: round(sent / (plan.planned / options.ratePerSecond)),
    throughputPerSecond: lastAnswer > start ? round(succeeded / ((lastAnswer - start) / 1000)) : 0,
    durationMs: round(end - start),
    cutShort,
  };
  histogram.destroy();
  return result;
}

export interface LoadComparisonOptions extends LoadOptions {
  readonly source: HttpEndpoint;
  readonly candidate: HttpEndpoint;
  readonly tolerances?: Partial<Tolerances>;
}

/** The same load on the source and then on the candidate, never both at once, and the comparison. */
export async function runLoadComparison(options: LoadComparisonOptions): Promise<LoadComparison> {
  const { source, candidate, tolerances, ...load } = options;
  // Both targets are checked before either is sent anything.
  const policy = new LoadTargetPolicy(load.allowedAddresses);
  policy.check(source.address, 'source.address');
  policy.check(candidate.address, 'candidate.address');
  const tolerance = parseTolerances(tolerances);
  const sourceResult = await runLoad(source, load);
  const candidateResult = await runLoad(candidate, load);
  return compareLoad(sourceResult, candidateResult, tolerance);
}

export function compareLoad(
  source: LoadResult,
  candidate: LoadResult,
  tolerances: Tolerances,
): LoadComparison {
  const reasons: string[] = [];
  const latency = (name: 'p95' | 'p99', relative: number, absoluteMs: number) => {
    const limit = source.latencyMs[name] * (1 + relative) + absoluteMs;
    if (candidate.latencyMs[name] > limit)
      reasons.push(
        `${name} latency ${fmt(candidate.latencyMs[name])} ms exceeds the source's ${fmt(source.latencyMs[name])} ms by more than ${fmt(relative * 100)} % + ${fmt(absoluteMs)} ms (limit ${fmt(limit)} ms)`,
      );
  };
  latency('p95', tolerances.p95Relative, tolerances.p95AbsoluteMs);
  latency('p99', tolerances.p99Relative, tolerances.p99AbsoluteMs);
  if (candidate.errorRate > source.errorRate + tolerances.errorRateIncrease)
    reasons.push(
      `error rate ${pct(candidate.errorRate)} exceeds the source's ${pct(source.errorRate)} by more than ${pct(tolerances.errorRateIncrease)}`,
    );
  if (candidate.throughputPerSecond < source.throughputPerSecond * tolerances.minThroughputRatio)
    reasons.push(
      `throughput ${fmt(candidate.throughputPerSecond)}/s is below ${pct(tolerances.minThroughputRatio)} of the source's ${fmt(source.throughputPerSecond)}/s`,
    );
  if (candidate.cutShort) reasons.push('the candidate run was cut short by the time bound');
  return { passed: reasons.length === 0, source, candidate, tolerances, reasons };
}

interface Plan {
  readonly requests: readonly (LoadRequest & { readonly method: string })[];
  readonly planned: number;
  readonly requestTimeoutMs: number;
  readonly maxDurationMs: number;
  readonly maxConnections: number;
}

function checkOptions(options: LoadOptions): Plan {
  const issues: Issue[] = [];
  const positive = (field: string, value: number | undefined, ceiling: number) => {
    if (value === undefined) return;
    if (!Number.isFinite(value) || value <= 0)
      issues.push({ path: field, message: 'must be a positive number' });
    else if (value > ceiling) issues.push({ path: field, message: `at most ${ceiling}` });
  };
  positive('ratePerSecond', options.ratePerSecond, LOAD_LIMITS.ratePerSecond);
  positive('durationMs', options.durationMs, LOAD_LIMITS.durationMs);
  positive('maxRequests', options.maxRequests, LOAD_LIMITS.maxRequests);
  positive('requestTimeoutMs', options.requestTimeoutMs, LOAD_LIMITS.durationMs);
  positive('maxDurationMs', options.maxDurationMs, LOAD_LIMITS.durationMs + 60_000);
  positive('maxConnections', options.maxConnections, LOAD_LIMITS.maxConnections);
  if (!Number.isInteger(options.maxRequests))
    issues.push({ path: 'maxRequests', message: 'must be an integer' });
  const requests = (options.requests ?? [{ path: '/' }]).map((r, i) => {
    const method = (r.method ?? 'GET').toUpperCase();
    if (!options.allowUnsafeMethods && !(SAFE_METHODS as readonly string[]).includes(method))
      issues.push({
        path: `requests[${i}].method`,
        message: `${method} may change the target; only GET and HEAD unless unsafe methods are allowed`,
      });
    if (!isRequestPath(r.path))
      issues.push({
        path: `requests[${i}].path`,
        message: 'must start with / and hold no spaces or control characters',
      });
    return { ...r, method };
  });
  if (requests.length === 0) issues.push({ path: 'requests', message: 'at least one request' });
  if (issues.length)
    throw new InvalidInputError(
      `load test refused: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  return {
    requests,
    planned: Math.min(options.maxRequests, Math.floor((options.ratePerSecond * options.durationMs) / 1000)),
    requestTimeoutMs,
    maxDurationMs: options.maxDurationMs ?? options.durationMs + requestTimeoutMs,
    maxConnections: options.maxConnections ?? 32,
  };
}

export function parseTolerances(tolerances: Partial<Tolerances> | undefined): Tolerances {
  const parsed = LoadTolerances.safeParse(tolerances ?? {});
  if (!parsed.success)
    throw new InvalidInputError(
      'load tolerances refused',
      parsed.error.issues.map((i) => ({ path: `tolerances.${i.path.join('.')}`, message: i.message })),
    );
  return parsed.data;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const round = (n: number) => Math.round(n * 1000) / 1000;
const fmt = (n: number) => String(Math.round(n * 10) / 10);
const pct = (n: number) => `${fmt(n * 100)} %`;
