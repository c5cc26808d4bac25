// Criteria compiled once into plain synchronous closures. `test` is what a fleet's evaluation
// runs for every host and persona, so it allocates nothing (no promise, array, object or Date):
// a metric is read by binary search over its series, a schedule through its compiled form.
// `explain` runs only for the decision taken and says which criteria decided, with the values
// they saw. The language is documented for users in CRITERIA.md.
import { InvalidInputError } from '../errors.js';
import { type CompiledSchedule, compileSchedule } from './schedule.js';
import {
  type Criterion,
  type CriterionReason,
  type EvaluationInput,
  type HourlyForecast,
  MAX_CRITERIA_DEPTH,
  type MetricCriterion,
  type MetricSeries,
  type PredictedCriterion,
  type Schedule,
  type SignalCriterion,
} from './schema.js';

/** Three-valued truth: 0 false, 1 true, 2 unknown (the data to decide is missing). */
export type Tri = 0 | 1 | 2;
export const FALSE: Tri = 0;
export const TRUE: Tri = 1;
export const UNKNOWN: Tri = 2;

const HOLDS = ['false', 'true', 'unknown'] as const;
export const triName = (t: Tri): CriterionReason['holds'] => HOLDS[t];

/**
 * Which forecasts a `predicted` criterion reads: every one (what the persona would do), only
 * those of criteria in `mode: act` (what is done; forecast-only criteria read as if there were no
 * forecast), or none (what the observations alone say).
 */
export const FORECASTS_ALL = 0;
export const FORECASTS_ACTING = 1;
export const FORECASTS_NONE = 2;
export type ForecastReading = typeof FORECASTS_ALL | typeof FORECASTS_ACTING | typeof FORECASTS_NONE;

export interface CompiledCriteria {
  test(input: EvaluationInput, reading?: ForecastReading): Tri;
  /** `label` prefixes every reason's detail (decide() puts the persona's name there). */
  explain(input: EvaluationInput, label?: string, reading?: ForecastReading): CriterionReason[];
  /** Every schedule the criteria name, for the triggers and the next window edge. */
  readonly schedules: readonly Schedule[];
  /** The metric names the criteria read (input.metric), each once. */
  readonly metrics: readonly string[];
  /** The signal names the criteria read (input.signal), each once. */
  readonly signals: readonly string[];
  /** The metric names whose forecasts the criteria read (input.predicted), each once. */
  readonly predicted: readonly string[];
  /** Whether a `predicted` criterion in forecast-only mode (`mode: report`) is among them. */
  readonly forecastOnly: boolean;
  /** The path of the criteria's root: "/all", "/metric". */
  readonly path: string;
  /** The longest metric duration the criteria need, in seconds: how much history to load. */
  readonly maxForSeconds: number;
}

/** Criteria nested deeper than MAX_CRITERIA_DEPTH: refused so that a document cannot exhaust the stack. */
export class CriteriaTooDeepError extends InvalidInputError {
  constructor(
    readonly path: string,
    readonly limit: number = MAX_CRITERIA_DEPTH,
  ) {
    super(`criteria nest deeper than ${limit} levels at ${path}`, [
      { path, message: `criteria may nest at most ${limit} levels` },
    ]);
    this.name = 'CriteriaTooDeepError';
  }
}

/** When a metric reports no interval and has a single sample, it is taken to report once a minute. */
export const DEFAULT_SAMPLE_INTERVAL_SECONDS = 60;
/** A latest sample older than this many intervals is stale; a gap longer than this breaks a duration. */
export const STALE_INTERVALS = 2;
/** The oldest sample of a duration may start this many intervals after the duration's start. */
export const START_TOLERANCE_INTERVALS = 1.1;

type Test = (input: EvaluationInput, reading: ForecastReading) => Tri;

interface Node {
  readonly path: string;
  readonly test: Test;
  /** Appends the reasons of this node and the children that decided it; returns its value. */
  explain(input: EvaluationInput, out: CriterionReason[], reading: ForecastReading): Tri;
}

interface Names {
  readonly schedules: Schedule[];
  readonly metrics: Set<string>;
  readonly signals: Set<string>;
  readonly predicted: Set<string>;
  maxForSeconds: number;
  forecastOnly: boolean;
}

/**
 * Compiles criteria into a synchronous predicate. Throws CriteriaTooDeepError beyond
 * MAX_CRITERIA_DEPTH levels, and InvalidInputError (naming the field) for a criterion that
 * cannot be evaluated. `at` is where the criteria sit in their document, for error paths.
 */
export function compileCriteria(criterion: Criterion, at = 'criteria'): CompiledCriteria {
  const names: Names = {
    schedules: [],
    metrics: new Set(),
    signals: new Set(),
    predicted: new Set(),
    maxForSeconds: 0,
    forecastOnly: false,
  };
  const root = compileNode(criterion, '', at, 1, names);
  return {
    test: (input, reading = FORECASTS_ALL) => root.test(input, reading),
    path: root.path,
    explain(input, label = '', reading = FORECASTS_ALL) {
      const out: CriterionReason[] = [];
      root.explain(input, out, reading);
      if (label !== '') for (const r of out) (r as { detail: string }).detail = label + r.detail;
      return out;
    },
    schedules: Object.freeze(names.schedules),
    metrics: Object.freeze([...names.metrics]),
    signals: Object.freeze([...names.signals]),
    predicted: Object.freeze([...names.predicted]),
    forecastOnly: names.forecastOnly,
    maxForSeconds: names.maxForSeconds,
  };
}

function compileNode(c: Criterion, path: string, field: string, depth: number, names: Names): Node {
  if (depth > MAX_CRITERIA_DEPTH) throw new CriteriaTooDeepError(field);
  if (typeof c !== 'object' || c === null) throw invalid(field, 'expected a criterion object');
  if ('all' in c) return combine('all', c.all, path, field, depth, names);
  if ('any' in c) return combine('any', c.any, path, field, depth, names);
  if ('not' in c) return negate(compileNode(c.not, `${path}/not`, `${field}.not`, depth + 1, names), path);
  if ('metric' in c) return metricNode(c.metric, `${path}/metric`, `${field}.metric`, names);
  if ('signal' in c) return signalNode(c.signal, `${path}/signal`, `${field}.signal`, names);
  if ('predicted' in c) return predictedNode(c.predicted, `${path}/predicted`, `${field}.predicted`, names);
  if ('schedule' in c) return scheduleNode(c.schedule, `${path}/schedule`, names);
  throw invalid(field, 'expected one of all, any, not, schedule, metric, signal, predicted');
}

function invalid(field: string, message: string): InvalidInputError {
  return new InvalidInputError(`${field}: ${message}`, [{ path: field, message }]);
}

// ------------------------------------------------------------------------- all / any / not

function combine(
  kind: 'all' | 'any',
  list: readonly Criterion[],
  path: string,
  field: string,
  depth: number,
  names: Names,
): Node {
  if (!Array.isArray(list) || list.length === 0)
    throw invalid(`${field}.${kind}`, 'expected at least one criterion');
  const self = `${path}/${kind}`;
  const children = list.map((child, i) =>
    compileNode(child, `${self}/${i}`, `${field}.${kind}[${i}]`, depth + 1, names),
  );
  const inOrder = children.map((child) => child.test);
  // all and any are commutative, unknown included: the cheap children (schedules, signals)
  // are tried first so that they settle the result before metrics are read.
  const tests = list
    .map((child, i) => ({ cost: costOf(child), test: inOrder[i] as Test }))
    .sort((a, b) => a.cost - b.cost)
    .map((t) => t.test);
  const n = tests.length;
  // all is false at its first false child, any true at its first true one; otherwise an
  // unknown child makes the whole unknown.
  const stop: Tri = kind === 'all' ? FALSE : TRUE;
  const rest: Tri = kind === 'all' ? TRUE : FALSE;
  const test: Test = (input, reading) => {
    let result = rest;
    for (let i = 0; i < n; i++) {
      const t = (tests[i] as Test)(input, reading);
      if (t === stop) return stop;
      if (t === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
  return {
    path: self,
    test,
    explain(input, out, reading) {
      const results: Tri[] = new Array(n);
      const counts = [0, 0, 0];
      for (let i = 0; i < n; i++) {
        const r = (inOrder[i] as Test)(input, reading);
        results[i] = r;
        counts[r] = (counts[r] as number) + 1;
      }
      const result: Tri =
        (counts[stop] as number) > 0 ? stop : (counts[UNKNOWN] as number) > 0 ? UNKNOWN : rest;
      out.push({
        path: self,
        holds: triName(result),
        detail: `${kind}: ${counts[TRUE]} of ${n} true, ${counts[FALSE]} false, ${counts[UNKNOWN]} unknown`,
      });
      // The children that decided: those with the outcome's own value (every child when it
      // took all of them to decide).
      children.forEach((child, i) => {
        if (results[i] === result) child.explain(input, out, reading);
      });
      return result;
    },
  };
}

/** A rough cost of evaluating `c`: what reads a series costs more than a clock or a signal. */
function costOf(c: Criterion): number {
  if ('all' in c) return Math.max(...c.all.map(costOf));
  if ('any' in c) return Math.max(...c.any.map(costOf));
  if ('not' in c) return costOf(c.not);
  if ('metric' in c) return (c.metric.forSeconds ?? 0) === 0 ? 2 : 3;
  if ('predicted' in c) return 2;
  return 1;
}

const NEGATION: readonly Tri[] = [TRUE, FALSE, UNKNOWN];

function negate(child: Node, path: string): Node {
  const inner = child.test;
  const self = `${path}/not`;
  return {
    path: self,
    test: (input, reading) => NEGATION[inner(input, reading)] as Tri,
    explain(input, out, reading) {
      const reason: { path: string; holds: CriterionReason['holds']; detail: string } = {
        path: self,
        holds: 'unknown',
        detail: '',
      };
      out.push(reason);
      const r = child.explain(input, out, reading);
      const result = NEGATION[r] as Tri;
      reason.holds = triName(result);
      reason.detail = `not: its criterion is ${triName(r)}`;
      return result;
    },
  };
}

// ------------------------------------------------------------------------------ comparisons

type Op = MetricCriterion['op'];

function compare(op: Op, a: number | string, b: number | string): boolean {
  switch (op) {
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '==':
      return a === b;
    case '!=':
      return a !== b;
  }
}

/** A signal value as a reader sees it: strings quoted. */
const show = (v: unknown) => (typeof v === 'string' ? `"${v}"` : String(v));
const round = (n: number) => Math.round(n * 1000) / 1000;

// ---------------------------------------------------------------------------------- metric

/** The first index in [lo, hi) whose time is >= t. */
function lowerBound(times: ArrayLike<number>, t: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index in [lo, hi) whose time is > t. */
function upperBound(times: ArrayLike<number>, t: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The reporting interval in ms: as reported, else the mean gap of the samples up to `last`. */
function intervalOf(series: MetricSeries, last: number): number {
  if (series.intervalSeconds !== undefined && series.intervalSeconds > 0)
    return series.intervalSeconds * 1000;
  if (last >= 1) {
    const gap = ((series.times[last] as number) - (series.times[0] as number)) / last;
    if (gap > 0) return gap;
  }
  return DEFAULT_SAMPLE_INTERVAL_SECONDS * 1000;
}

type Why = 'ok' | 'no-series' | 'no-samples' | 'stale' | 'short' | 'gap';

/** What explain reports about one metric evaluation; test passes none and allocates nothing. */
interface MetricSeen {
  why: Why;
  samples: number;
  observed: number;
  latestAge: number;
  covered: number;
  interval: number;
}

function evaluateMetric(
  m: MetricCriterion,
  forMs: number,
  input: EvaluationInput,
  seen: MetricSeen | null,
): Tri {
  const series = input.metric(m.name);
  if (series === undefined) {
    if (seen) seen.why = 'no-series';
    return UNKNOWN;
  }
  const times = series.times;
  const values = series.values;
  const now = input.now;
  // Samples after `now` (an evaluation of the past) are not seen.
  const last = upperBound(times, now, 0, Math.min(times.length, values.length)) - 1;
  if (last < 0) {
    if (seen) seen.why = 'no-samples';
    return UNKNOWN;
  }
  const interval = intervalOf(series, last);
  const latestAge = now - (times[last] as number);
  if (seen) {
    seen.latestAge = latestAge;
    seen.interval = interval;
  }
  if (forMs === 0) {
    const v = values[last] as number;
    if (seen) {
      seen.samples = 1;
      seen.observed = v;
    }
    if (latestAge > STALE_INTERVALS * interval) {
      if (seen) seen.why = 'stale';
      return UNKNOWN;
    }
    if (seen) seen.why = 'ok';
    return compare(m.op, v, m.value) ? TRUE : FALSE;
  }
  const from = now - forMs;
  const first = lowerBound(times, from, 0, last + 1);
  if (first > last) {
    if (seen) {
      seen.why = 'short';
      seen.samples = 0;
      seen.covered = 0;
    }
    return UNKNOWN;
  }
  const each = m.statistic === 'each' || m.statistic === undefined;
  let why: Why = 'ok';
  if ((times[first] as number) - from > START_TOLERANCE_INTERVALS * interval) why = 'short';
  if (latestAge > STALE_INTERVALS * interval) why = 'stale';
  let previous = times[first] as number;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = first; i <= last; i++) {
    const t = times[i] as number;
    if (t - previous > STALE_INTERVALS * interval && why === 'ok') why = 'gap';
    previous = t;
    const v = values[i] as number;
    // One sample seen failing the threshold settles `each`, however much data is missing.
    if (each && !compare(m.op, v, m.value)) {
      if (seen) {
        seen.why = 'ok';
        seen.samples = i - first + 1;
        seen.observed = v;
        seen.covered = t - (times[first] as number);
      }
      return FALSE;
    }
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const count = last - first + 1;
  let observed: number;
  if (each) {
    // The sample nearest the threshold: what a reader wants to see of "every sample met it".
    observed =
      m.op === '>' || m.op === '>=' ? min : m.op === '<' || m.op === '<=' ? max : (values[last] as number);
  } else {
    observed = m.statistic === 'average' ? sum / count : m.statistic === 'max' ? max : min;
  }
  if (seen) {
    seen.why = why;
    seen.samples = count;
    seen.observed = observed;
    seen.covered = (times[last] as number) - (times[first] as number);
  }
  if (why !== 'ok') return UNKNOWN;
  return each || compare(m.op, observed, m.value) ? TRUE : FALSE;
}

// The statistics of one metric over one duration, shared by every criterion that reads that
// metric over that duration: the personas of a host ask the same "cpu over the last 5 minutes"
// again and again at one instant, with only the threshold changing. One slot per metric name
// and duration, keyed by the series object and the instant (a series is read as immutable
// while it is evaluated). Filled without allocating; the arrays grow only at compile time.
const slots = new Map<string, number>();
const slotSeries: (MetricSeries | undefined)[] = [];
let slotNow = new Float64Array(16);
let slotWhy = new Uint8Array(16);
let slotCount = new Float64Array(16);
let slotMin = new Float64Array(16);
let slotMax = new Float64Array(16);
let slotSum = new Float64Array(16);
const WHY_OK = 0;
const WHY_UNKNOWN = 1;

function grow<T extends Float64Array | Uint8Array>(a: T, size: number): T {
  if (a.length >= size) return a;
  const bigger = new (a.constructor as new (n: number) => T)(size * 2);
  bigger.set(a);
  return bigger;
}

function slotFor(name: string, forMs: number): number {
  const key = `${name}\u0000${forMs}`;
  let slot = slots.get(key);
  if (slot === undefined) {
    slot = slots.size;
    slots.set(key, slot);
    slotSeries.push(undefined);
    slotNow = grow(slotNow, slot + 1);
    slotWhy = grow(slotWhy, slot + 1);
    slotCount = grow(slotCount, slot + 1);
    slotMin = grow(slotMin, slot + 1);
    slotMax = grow(slotMax, slot + 1);
    slotSum = grow(slotSum, slot + 1);
  }
  return slot;
}

/** Fills `slot` with the statistics of `series` over [now - forMs, now], by the rules of evaluateMetric. */
function fillSlot(slot: number, series: MetricSeries, now: number, forMs: number): void {
  slotSeries[slot] = series;
  slotNow[slot] = now;
  const times = series.times;
  const values = series.values;
  const last = upperBound(times, now, 0, Math.min(times.length, values.length)) - 1;
  const first = last < 0 ? 0 : lowerBound(times, now - forMs, 0, last + 1);
  if (last < 0 || first > last) {
    slotCount[slot] = 0;
    slotWhy[slot] = WHY_UNKNOWN;
    return;
  }
  const interval = intervalOf(series, last);
  let why = WHY_OK;
  if ((times[first] as number) - (now - forMs) > START_TOLERANCE_INTERVALS * interval) why = WHY_UNKNOWN;
  if (now - (times[last] as number) > STALE_INTERVALS * interval) why = WHY_UNKNOWN;
  let previous = times[first] as number;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = first; i <= last; i++) {
    const t = times[i] as number;
    if (t - previous > STALE_INTERVALS * interval) why = WHY_UNKNOWN;
    previous = t;
    const v = values[i] as number;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  slotWhy[slot] = why;
  slotCount[slot] = last - first + 1;
  slotMin[slot] = min;
  slotMax[slot] = max;
  slotSum[slot] = sum;
}

/** The compiled test of a metric criterion with a duration: evaluateMetric's verdict, from a shared slot. */
function durationTest(m: MetricCriterion, forMs: number): Test {
  const slot = slotFor(m.name, forMs);
  const name = m.name;
  const op = m.op;
  const value = m.value;
  const statistic = m.statistic ?? 'each';
  return (input) => {
    const series = input.metric(name);
    if (series === undefined) return UNKNOWN;
    const now = input.now;
    if (slotSeries[slot] !== series || slotNow[slot] !== now) fillSlot(slot, series, now, forMs);
    if (slotCount[slot] === 0) return UNKNOWN;
    const min = slotMin[slot] as number;
    const max = slotMax[slot] as number;
    if (statistic === 'each') {
      // A sample failing the threshold settles `each` however much data is missing: for an
      // ordering, the lowest (or highest) sample is the one that would fail.
      const fails =
        op === '>'
          ? min <= value
          : op === '>='
            ? min < value
            : op === '<'
              ? max >= value
              : op === '<='
                ? max > value
                : min !== value || max !== value;
      if (fails) return FALSE;
      return slotWhy[slot] === WHY_OK ? TRUE : UNKNOWN;
    }
    if (slotWhy[slot] !== WHY_OK) return UNKNOWN;
    const observed =
      statistic === 'average'
        ? (slotSum[slot] as number) / (slotCount[slot] as number)
        : statistic === 'max'
          ? max
          : min;
    return compare(op, observed, value) ? TRUE : FALSE;
  };
}

function metricNode(m: MetricCriterion, path: string, field: string, names: Names): Node {
  if (typeof m?.name !== 'string' || typeof m.value !== 'number')
    throw invalid(field, 'expected name, op and value');
  const forSeconds = m.forSeconds ?? 0;
  const forMs = forSeconds * 1000;
  const statistic = m.statistic ?? 'each';
  names.metrics.add(m.name);
  names.maxForSeconds = Math.max(names.maxForSeconds, forSeconds);
  return {
    path,
    // `!=` over every sample needs each sample, not the duration's statistics.
    test:
      forMs === 0 || (statistic === 'each' && m.op === '!=')
        ? (input) => evaluateMetric(m, forMs, input, null)
        : durationTest(m, forMs),
    explain(input, out) {
      const seen: MetricSeen = {
        why: 'ok',
        samples: 0,
        observed: Number.NaN,
        latestAge: Number.NaN,
        covered: 0,
        interval: 0,
      };
      const result = evaluateMetric(m, forMs, input, seen);
      const what =
        forSeconds === 0
          ? `${m.name} latest`
          : `${m.name} ${statistic === 'each' ? 'every sample' : statistic} over ${forSeconds} s`;
      let detail: string;
      switch (seen.why) {
        case 'no-series':
        case 'no-samples':
          detail = `${m.name}: no samples`;
          break;
        case 'stale':
          detail = `${what}: latest sample ${Math.round(seen.latestAge / 1000)} s old (stale after ${Math.round((STALE_INTERVALS * seen.interval) / 1000)} s)`;
          break;
        case 'short':
          detail = `${what}: samples cover ${Math.round(seen.covered / 1000)} s of ${forSeconds} s`;
          break;
        case 'gap':
          detail = `${what}: a gap of more than ${Math.round((STALE_INTERVALS * seen.interval) / 1000)} s between samples`;
          break;
        default:
          detail = `${what} ${round(seen.observed)} ${result === TRUE ? '' : 'not '}${m.op} ${m.value}`;
      }
      const values = {
        [m.name]: Number.isNaN(seen.observed) ? null : round(seen.observed),
        op: m.op,
        threshold: m.value,
        forSeconds,
        statistic,
        samples: seen.samples,
        latestAgeSeconds: Number.isNaN(seen.latestAge) ? null : round(seen.latestAge / 1000),
      };
      out.push({ path, holds: triName(result), detail, values });
      return result;
    },
  };
}

// ---------------------------------------------------------------------------------- signal

function signalNode(s: SignalCriterion, path: string, field: string, names: Names): Node {
  if (typeof s?.name !== 'string') throw invalid(field, 'expected name, op and value');
  if (typeof s.value === 'boolean' && s.op !== '==' && s.op !== '!=') {
    throw invalid(`${field}.op`, `a true/false signal compares only with == or !=, not ${s.op}`);
  }
  names.signals.add(s.name);
  const maxAgeMs = s.maxAgeSeconds === undefined ? Number.POSITIVE_INFINITY : s.maxAgeSeconds * 1000;
  const kind = typeof s.value;
  const evaluate = (input: EvaluationInput): Tri => {
    const posted = input.signal(s.name);
    if (posted === undefined || input.now - posted.at > maxAgeMs) return UNKNOWN;
    // A value of another type than the criterion's cannot be read by it: unknown, not false.
    if (typeof posted.value !== kind) return UNKNOWN;
    return compare(s.op, posted.value as number | string, s.value as number | string) ? TRUE : FALSE;
  };
  return {
    path,
    test: evaluate,
    explain(input, out) {
      const result = evaluate(input);
      const posted = input.signal(s.name);
      const age = posted === undefined ? null : round((input.now - posted.at) / 1000);
      let detail: string;
      if (posted === undefined) detail = `${s.name}: never posted`;
      else if (input.now - posted.at > maxAgeMs)
        detail = `${s.name}: posted ${age} s ago, older than ${s.maxAgeSeconds} s`;
      else if (typeof posted.value !== kind)
        detail = `${s.name}: ${show(posted.value)} is not a ${kind} like ${show(s.value)}`;
      else
        detail = `${s.name} ${show(posted.value)} ${result === TRUE ? '' : 'not '}${s.op} ${show(s.value)}`;
      out.push({
        path,
        holds: triName(result),
        detail,
        values: { [s.name]: posted?.value ?? null, op: s.op, threshold: s.value, ageSeconds: age },
      });
      return result;
    },
  };
}

// ------------------------------------------------------------------------------- predicted

function predictedMeets(p: PredictedCriterion, max: number, min: number): boolean {
  // The forecast meets the threshold at some point of [now, now + within]: for an upper
  // comparison its highest value must, for a lower one its lowest; == needs the value within
  // the forecast's range, != any value other than it.
  switch (p.op) {
    case '>':
    case '>=':
      return compare(p.op, max, p.value);
    case '<':
    case '<=':
      return compare(p.op, min, p.value);
    case '==':
      return min <= p.value && p.value <= max;
    case '!=':
      return !(min === p.value && max === p.value);
  }
}

/**
 * A `predicted` criterion. Its truth comes from the forecast: the forecast meets the threshold
 * somewhere in [now, now + bufferSeconds + withinSeconds), so the persona is applied
 * `bufferSeconds` before the forecast hour. Its falsity needs the observation too: false only
 * when the forecast does not meet the threshold and the metric's latest sample does not either;
 * a forecast that does not meet it while the latest sample does is unknown. So a forecast can
 * bring a persona on early, and never on its own takes a host off one (unknown never moves a
 * host). Read without its forecast (FORECASTS_NONE, or FORECASTS_ACTING for a forecast-only
 * criterion), it is false when the latest sample does not meet the threshold, else unknown.
 */
function predictedNode(p: PredictedCriterion, path: string, field: string, names: Names): Node {
  if (typeof p?.name !== 'string' || typeof p.value !== 'number')
    throw invalid(field, 'expected name, op and value');
  const within = p.withinSeconds ?? 3600;
  const buffer = p.bufferSeconds ?? 300;
  const lookahead = within + buffer;
  const forecastOnly = (p.mode ?? 'report') === 'report';
  names.predicted.add(p.name);
  if (forecastOnly) names.forecastOnly = true;
  // The observation a forecast's "no" is checked against: the latest sample, as a metric
  // criterion held for 0 s reads it (unknown when stale).
  const latest: MetricCriterion = {
    name: p.name,
    op: p.op,
    value: p.value,
    forSeconds: 0,
    statistic: 'each',
  };
  const reads = (reading: ForecastReading) =>
    reading === FORECASTS_ALL || (reading === FORECASTS_ACTING && !forecastOnly);
  const evaluate = (input: EvaluationInput, reading: ForecastReading): Tri => {
    if (reads(reading)) {
      const forecast = input.predicted(p.name, lookahead);
      if (forecast === undefined) return UNKNOWN;
      if (predictedMeets(p, forecast.max, forecast.min)) return TRUE;
    }
    return evaluateMetric(latest, 0, input, null) === FALSE ? FALSE : UNKNOWN;
  };
  return {
    path,
    test: evaluate,
    explain(input, out, reading) {
      const result = evaluate(input, reading);
      const used = reads(reading);
      const forecast = used ? input.predicted(p.name, lookahead) : undefined;
      const seen: MetricSeen = {
        why: 'ok',
        samples: 0,
        observed: Number.NaN,
        latestAge: Number.NaN,
        covered: 0,
        interval: 0,
      };
      const observed = evaluateMetric(latest, 0, input, seen);
      const hourly = input.forecast?.(p.name);
      const rise =
        hourly !== undefined && 'values' in hourly ? firstMeeting(p, hourly, input.now, lookahead) : -1;
      const risesAt =
        rise < 0 || hourly === undefined || !('values' in hourly) ? null : hourly.start + rise * 3_600_000;
      const mode = forecastOnly ? ' (forecast only)' : '';
      const latestText =
        seen.why === 'ok'
          ? `latest sample ${round(seen.observed)} ${observed === TRUE ? 'meets' : 'does not meet'} it`
          : `no fresh sample`;
      let detail: string;
      if (!used) detail = `${p.name}: its forecast is not read here${mode}; ${latestText}`;
      else if (forecast === undefined)
        detail = `${p.name}: no forecast${hourly !== undefined && 'unavailable' in hourly ? ` (${hourly.unavailable})` : ''}`;
      else if (result === TRUE)
        detail = `${p.name} forecast ${round(forecast.max)} ${p.op} ${p.value}${risesAt === null ? '' : ` in the hour from ${new Date(risesAt).toISOString()}`}, applied ${buffer} s ahead${mode}`;
      else
        detail = `${p.name} forecast ${round(forecast.min)} to ${round(forecast.max)} in the next ${lookahead} s does not meet ${p.op} ${p.value}; ${latestText}`;
      out.push({
        path,
        holds: triName(result),
        detail,
        values: {
          [`${p.name}.min`]: forecast ? round(forecast.min) : null,
          [`${p.name}.max`]: forecast ? round(forecast.max) : null,
          [`${p.name}.latest`]: seen.why === 'ok' ? round(seen.observed) : null,
          op: p.op,
          threshold: p.value,
          withinSeconds: within,
          bufferSeconds: buffer,
          mode: forecastOnly ? 'report' : 'act',
          risesAt: risesAt === null ? null : new Date(risesAt).toISOString(),
        },
      });
      return result;
    },
  };
}

/** The first forecast hour in [now, now + seconds) whose value meets the criterion, or -1. */
function firstMeeting(p: PredictedCriterion, f: HourlyForecast, now: number, seconds: number): number {
  const first = Math.max(0, Math.floor((now - f.start) / 3_600_000));
  const last = Math.min(f.values.length - 1, Math.floor((now + seconds * 1000 - 1 - f.start) / 3_600_000));
  for (let i = first; i <= last; i++) {
    const v = f.values[i] as number;
    if (predictedMeets(p, v, v)) return i;
  }
  return -1;
}

// -------------------------------------------------------------------------------- schedule

function scheduleNode(schedule: Schedule, path: string, names: Names): Node {
  const compiled: CompiledSchedule = compileSchedule(schedule);
  names.schedules.push(schedule);
  return {
    path,
    test: (input) => (compiled.holds(input.now) ? TRUE : FALSE),
    explain(input, out) {
      const window = compiled.holding(input.now);
      const zone = compiled.source.timezone ?? 'UTC';
      const local = compiled.wallClock(input.now);
      const today = compiled.dayOf(input.now);
      const w = window >= 0 ? compiled.source.windows[window] : undefined;
      out.push({
        path,
        holds: window >= 0 ? 'true' : 'false',
        detail: w
          ? `${local} ${zone} is in window ${window} (${w.start ?? '00:00'}-${w.end ?? '24:00'})`
          : compiled.excepted(today)
            ? `${local} ${zone} is an excepted date`
            : `${local} ${zone} is in no window`,
        values: { timezone: zone, local, window: window >= 0 ? window : null },
      });
      return window >= 0 ? TRUE : FALSE;
    },
  };
}
