// The forecaster: an hourly forecast of one host metric, 48 hours ahead, from its own history,
// in the spirit of EC2 predictive scaling. The history (at most 14 days, at least 24 hours with
// samples) is averaged into hours; the model is a linear trend plus an hour-of-day profile plus,
// once a week of history shows every hour of the week, each hour of the week's own deviation
// from that profile (shrunk towards it while few weeks back it up). The two are fitted in turn
// (backfitting), a few rounds, on at most 336 hourly points: pure, synchronous, a few hundred
// microseconds per metric.
//
// Hours are real hours, the hour of the week of each is read on the wall clock of the host's
// IANA zone: across a change of daylight saving the daily cycle stays on its local hours (the
// peak at 14:00 stays at 14:00, an hour earlier in UTC), the skipped hour of spring simply has
// no hour of its own, the repeated hour of autumn counts twice towards its label.
//
// Accuracy is measured on the host's own held-out history: the model fitted up to 48 hours ago
// forecasts the last 48 hours (its horizon), its MAPE beside that of the naive forecast (the
// same local hour a week earlier), the baseline EC2's forecasts are judged against.
import { isTimeZone } from './schema.js';

export const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const WEEK_HOURS = 168;

/** The forecaster's limits (CRITERIA.md says them to users). */
export const FORECAST_LIMITS = {
  /** Hours with samples, before the current one, needed to forecast at all. */
  minHistoryHours: 24,
  /** How much history a forecast reads: 14 days, as EC2 predictive scaling. */
  maxHistoryDays: 14,
  /** Hourly values forecast, from the current hour. */
  horizonHours: 48,
  /** A history whose latest sample is older than this forecasts nothing. */
  maxStalenessHours: 24,
  /** Hours of history held out to measure a forecast's accuracy. */
  holdoutHours: 48,
} as const;

export interface ForecastOptions {
  /** IANA zone whose wall clock the hours of the week are read on. */
  readonly timezone?: string;
  /** The metric's name: utilization percentages are kept within 0 to 100. */
  readonly metric?: string;
}

/** An hourly forecast: values[i] is the hour from start + i hours. */
export interface Forecast {
  readonly metric: string;
  readonly timezone: string;
  /** When it was made (epoch ms). */
  readonly at: number;
  /** The start of the hour `at` is in: the first forecast hour. */
  readonly start: number;
  readonly values: Float64Array;
  /** Hours with samples the model was fitted on, and the span they came from. */
  readonly history: { readonly hours: number; readonly from: number; readonly to: number };
  readonly model: {
    readonly seasonality: 'daily' | 'weekly';
    /** Level of the trend at `start`, and its slope per hour. */
    readonly level: number;
    readonly slopePerHour: number;
  };
}

export type NoForecastReason = 'no-samples' | 'insufficient-history' | 'stale';
export type ForecastResult =
  | { readonly ok: true; readonly forecast: Forecast }
  | { readonly ok: false; readonly reason: NoForecastReason; readonly detail: string };

/** A metric's samples, oldest first; times in epoch ms. */
export interface Samples {
  readonly times: ArrayLike<number>;
  readonly values: ArrayLike<number>;
}

// ------------------------------------------------------------------------- wall clock

const formats = new Map<string, Intl.DateTimeFormat>();
const offsetCache = new Map<string, Map<number, number>>();

/** The zone's offset from UTC at `t` in ms, read once per quarter hour of UTC and cached. */
export function zoneOffset(zone: string, t: number): number {
  if (zone === 'UTC') return 0;
  const quarter = Math.floor(t / 900_000);
  let cache = offsetCache.get(zone);
  if (cache === undefined) {
    cache = new Map();
    offsetCache.set(zone, cache);
  }
  const hit = cache.get(quarter);
  if (hit !== undefined) return hit;
  let format = formats.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formats.set(zone, format);
  }
  const at = quarter * 900_000;
  const p: Record<string, number> = {};
  for (const part of format.formatToParts(at)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const local = Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0);
  const offset = local - at;
  if (cache.size > 20_000) cache.clear();
  cache.set(quarter, offset);
  return offset;
}

/** Hour of the week on the zone's clock, Monday 00:00 = 0 to Sunday 23:00 = 167. */
export function hourOfWeek(zone: string, t: number): number {
  const local = t + zoneOffset(zone, t);
  const days = Math.floor(local / DAY_MS);
  const weekday = (((days + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday
  return weekday * 24 + Math.floor((local - days * DAY_MS) / HOUR_MS);
}

/** The start of the hour `t` is in, with hours starting where the zone's clock shows :00. */
export function hourStart(zone: string, t: number): number {
  // Zones an odd half or quarter hour from UTC start their hours off UTC's.
  const phase = ((zoneOffset(zone, t) % HOUR_MS) + HOUR_MS) % HOUR_MS;
  return Math.floor((t + phase) / HOUR_MS) * HOUR_MS - phase;
}

// ------------------------------------------------------------------------- hourly history

interface Hourly {
  /** Hour index relative to the hour `now` is in (negative: the past). */
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly how: Uint8Array;
  readonly n: number;
  readonly latest: number;
  readonly allNonNegative: boolean;
}

/** Hourly means of the samples in the `hours` whole hours before the one starting at `start`. */
function hourly(samples: Samples, zone: string, start: number, hours: number): Hourly {
  const sums = new Float64Array(hours);
  const counts = new Uint32Array(hours);
  const from = start - hours * HOUR_MS;
  const n = Math.min(samples.times.length, samples.values.length);
  let latest = Number.NEGATIVE_INFINITY;
  let allNonNegative = true;
  for (let i = 0; i < n; i++) {
    const t = samples.times[i] as number;
    const v = samples.values[i] as number;
    if (t < from || t >= start || !Number.isFinite(v)) continue;
    const slot = Math.floor((t - from) / HOUR_MS);
    sums[slot] = (sums[slot] as number) + v;
    counts[slot] = (counts[slot] as number) + 1;
    if (t > latest) latest = t;
    if (v < 0) allNonNegative = false;
  }
  let filled = 0;
  for (let s = 0; s < hours; s++) if ((counts[s] as number) > 0) filled++;
  const x = new Float64Array(filled);
  const y = new Float64Array(filled);
  const how = new Uint8Array(filled);
  let j = 0;
  for (let s = 0; s < hours; s++) {
    const c = counts[s] as number;
    if (c === 0) continue;
    x[j] = s - hours;
    y[j] = (sums[s] as number) / c;
    how[j] = hourOfWeek(zone, from + s * HOUR_MS);
    j++;
  }
  return { x, y, how, n: filled, latest, allNonNegative };
}

// --------------------------------------------------------------------------------- the model

interface Model {
  level: number;
  slope: number;
  daily: Float64Array;
  weekly: Float64Array;
  useWeekly: boolean;
}

const ROUNDS = 4;
/** A week's hour seen k times keeps k/(k + SHRINK) of its own deviation from the daily profile. */
const SHRINK = 0.5;

function fit(h: Hourly): Model {
  const { x, y, how, n } = h;
  const daily = new Float64Array(24);
  const weekly = new Float64Array(WEEK_HOURS);
  const dailyCount = new Float64Array(24);
  const weeklyCount = new Float64Array(WEEK_HOURS);
  const seasonal = new Float64Array(n);
  // Every hour of the week needs an hour of history before it has a deviation of its own.
  const span = n === 0 ? 0 : (x[n - 1] as number) - (x[0] as number) + 1;
  const useWeekly = span >= WEEK_HOURS;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i] as number;
  let level = n === 0 ? 0 : mean / n;
  let slope = 0;
  for (let round = 0; round < ROUNDS; round++) {
    daily.fill(0);
    dailyCount.fill(0);
    for (let i = 0; i < n; i++) {
      const d = (how[i] as number) % 24;
      daily[d] = (daily[d] as number) + (y[i] as number) - level - slope * (x[i] as number);
      dailyCount[d] = (dailyCount[d] as number) + 1;
    }
    let centre = 0;
    let seen = 0;
    for (let d = 0; d < 24; d++) {
      if ((dailyCount[d] as number) > 0) {
        daily[d] = (daily[d] as number) / (dailyCount[d] as number);
        centre += daily[d] as number;
        seen++;
      }
    }
    if (seen > 0)
      for (let d = 0; d < 24; d++)
        if ((dailyCount[d] as number) > 0) daily[d] = (daily[d] as number) - centre / seen;
    weekly.fill(0);
    weeklyCount.fill(0);
    if (useWeekly) {
      for (let i = 0; i < n; i++) {
        const k = how[i] as number;
        weekly[k] =
          (weekly[k] as number) +
          (y[i] as number) -
          level -
          slope * (x[i] as number) -
          (daily[k % 24] as number);
        weeklyCount[k] = (weeklyCount[k] as number) + 1;
      }
      for (let k = 0; k < WEEK_HOURS; k++) {
        const c = weeklyCount[k] as number;
        if (c > 0) weekly[k] = ((weekly[k] as number) / c) * (c / (c + SHRINK));
      }
    }
    for (let i = 0; i < n; i++) {
      const k = how[i] as number;
      seasonal[i] = (daily[k % 24] as number) + (weekly[k] as number);
    }
    // Least squares of the deseasonalised hours on time.
    let sx = 0;
    let sy = 0;
    for (let i = 0; i < n; i++) {
      sx += x[i] as number;
      sy += (y[i] as number) - (seasonal[i] as number);
    }
    const mx = sx / n;
    const my = sy / n;
    let sxx = 0;
    let sxy = 0;
    for (let i = 0; i < n; i++) {
      const dx = (x[i] as number) - mx;
      sxx += dx * dx;
      sxy += dx * ((y[i] as number) - (seasonal[i] as number) - my);
    }
    slope = sxx > 0 ? sxy / sxx : 0;
    level = my - slope * mx;
  }
  return { level, slope, daily, weekly, useWeekly };
}

const isPercent = (metric: string) => metric.endsWith('.utilization');

function predictAt(model: Model, x: number, how: number, floor: number, ceiling: number): number {
  const v = model.level + model.slope * x + (model.daily[how % 24] as number) + (model.weekly[how] as number);
  return v < floor ? floor : v > ceiling ? ceiling : v;
}

/**
 * The hourly forecast of `samples` from the hour `now` is in, 48 hours ahead; or why there is
 * none (no samples, fewer than 24 hours with samples, none in the last 24 hours).
 */
export function forecast(samples: Samples, now: number, options: ForecastOptions = {}): ForecastResult {
  const zone = options.timezone ?? 'UTC';
  if (!isTimeZone(zone)) throw new RangeError(`unknown time zone ${zone}`);
  const metric = options.metric ?? 'metric';
  const start = hourStart(zone, now);
  const h = hourly(samples, zone, start, FORECAST_LIMITS.maxHistoryDays * 24);
  if (h.n === 0)
    return { ok: false, reason: 'no-samples', detail: `${metric}: no samples in the last 14 days` };
  if (h.n < FORECAST_LIMITS.minHistoryHours)
    return {
      ok: false,
      reason: 'insufficient-history',
      detail: `${metric}: ${h.n} hours with samples, ${FORECAST_LIMITS.minHistoryHours} needed to forecast`,
    };
  if (now - h.latest > FORECAST_LIMITS.maxStalenessHours * HOUR_MS)
    return {
      ok: false,
      reason: 'stale',
      detail: `${metric}: the latest sample is ${Math.round((now - h.latest) / HOUR_MS)} hours old`,
    };
  const model = fit(h);
  const floor = h.allNonNegative ? 0 : Number.NEGATIVE_INFINITY;
  const ceiling = isPercent(metric) ? 100 : Number.POSITIVE_INFINITY;
  const values = new Float64Array(FORECAST_LIMITS.horizonHours);
  for (let i = 0; i < values.length; i++)
    values[i] = predictAt(model, i, hourOfWeek(zone, start + i * HOUR_MS), floor, ceiling);
  return {
    ok: true,
    forecast: {
      metric,
      timezone: zone,
      at: now,
      start,
      values,
      history: {
        hours: h.n,
        from: start + (h.x[0] as number) * HOUR_MS,
        to: start + ((h.x[h.n - 1] as number) + 1) * HOUR_MS,
      },
      model: {
        seasonality: model.useWeekly ? 'weekly' : 'daily',
        level: model.level,
        slopePerHour: model.slope,
      },
    },
  };
}

/** The highest and lowest forecast values of the hours that [from, from + seconds) overlaps. */
export function forecastRange(
  f: { readonly start: number; readonly values: ArrayLike<number> },
  from: number,
  seconds: number,
): { max: number; min: number } | undefined {
  const first = Math.max(0, Math.floor((from - f.start) / HOUR_MS));
  const last = Math.min(f.values.length - 1, Math.floor((from + seconds * 1000 - 1 - f.start) / HOUR_MS));
  if (first > last) return undefined;
  let max = Number.NEGATIVE_INFINITY;
  let min = Number.POSITIVE_INFINITY;
  for (let i = first; i <= last; i++) {
    const v = f.values[i] as number;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  return { max, min };
}

// ------------------------------------------------------------------------------ accuracy

export interface ForecastAccuracy {
  /** The held-out hours: [from, to). */
  readonly from: number;
  readonly to: number;
  /** Held-out hours with samples (and a non-zero mean) that were scored. */
  readonly hours: number;
  /** Mean absolute percentage error of the forecast, in percent. */
  readonly mape: number;
  /** The same of the naive forecast (the same local hour a week before), when history has it. */
  readonly naiveMape: number | null;
  /** Hours the naive forecast was scored on: those with a sample a week before too. */
  readonly naiveHours: number;
}

export type AccuracyResult =
  | { readonly ok: true; readonly accuracy: ForecastAccuracy }
  | { readonly ok: false; readonly reason: NoForecastReason; readonly detail: string };

/**
 * How well the forecaster does on this history: fitted on what was known 48 hours before `now`,
 * scored against the hourly means of the last 48 hours, beside the naive same-hour-last-week.
 */
export function forecastAccuracy(
  samples: Samples,
  now: number,
  options: ForecastOptions = {},
): AccuracyResult {
  const zone = options.timezone ?? 'UTC';
  const metric = options.metric ?? 'metric';
  const end = hourStart(zone, now);
  const cutoff = end - FORECAST_LIMITS.holdoutHours * HOUR_MS;
  const made = forecast(samples, cutoff, options);
  if (!made.ok)
    return {
      ok: false,
      reason: made.reason,
      detail: `${made.detail} ${FORECAST_LIMITS.holdoutHours} hours ago`,
    };
  const f = made.forecast;
  // Actual hourly means of the held-out hours and of the week before them, by real hour.
  const weekBefore = cutoff - 7 * DAY_MS - 2 * HOUR_MS;
  const hours = Math.round((end - weekBefore) / HOUR_MS);
  const sums = new Float64Array(hours);
  const counts = new Uint32Array(hours);
  const n = Math.min(samples.times.length, samples.values.length);
  for (let i = 0; i < n; i++) {
    const t = samples.times[i] as number;
    const v = samples.values[i] as number;
    if (t < weekBefore || t >= end || !Number.isFinite(v)) continue;
    const slot = Math.floor((t - weekBefore) / HOUR_MS);
    sums[slot] = (sums[slot] as number) + v;
    counts[slot] = (counts[slot] as number) + 1;
  }
  const mean = (t: number): number | undefined => {
    const slot = Math.round((t - weekBefore) / HOUR_MS);
    const c = counts[slot];
    return c === undefined || c === 0 ? undefined : (sums[slot] as number) / c;
  };
  let err = 0;
  let scored = 0;
  let naiveErr = 0;
  let naiveScored = 0;
  for (let i = 0; i < FORECAST_LIMITS.holdoutHours; i++) {
    const t = cutoff + i * HOUR_MS;
    const actual = mean(t);
    if (actual === undefined || actual === 0) continue;
    const e = Math.abs(((f.values[i] as number) - actual) / actual);
    err += e;
    scored++;
    // The same hour of the week a week earlier on the zone's clock: a week of real time, give
    // or take the hour that daylight saving moved the clock by in between.
    const then = t - 7 * DAY_MS + (zoneOffset(zone, t) - zoneOffset(zone, t - 7 * DAY_MS));
    const last = mean(then);
    if (last === undefined) continue;
    naiveErr += Math.abs((last - actual) / actual);
    naiveScored++;
  }
  if (scored === 0)
    return {
      ok: false,
      reason: 'no-samples',
      detail: `${metric}: no samples in the last ${FORECAST_LIMITS.holdoutHours} hours to score`,
    };
  return {
    ok: true,
    accuracy: {
      from: cutoff,
      to: end,
      hours: scored,
      mape: (err / scored) * 100,
      naiveMape: naiveScored === 0 ? null : (naiveErr / naiveScored) * 100,
      naiveHours: naiveScored,
    },
  };
}

/** Naive same-hour-last-week forecast, for benchmarks and tests to compare with. */
export function naiveForecast(samples: Samples, now: number, options: ForecastOptions = {}): Float64Array {
  const zone = options.timezone ?? 'UTC';
  const start = hourStart(zone, now);
  const out = new Float64Array(FORECAST_LIMITS.horizonHours).fill(Number.NaN);
  const from = start - 7 * DAY_MS - 2 * HOUR_MS;
  const sums = new Float64Array(24 * 7 + 4 + FORECAST_LIMITS.horizonHours);
  const counts = new Uint32Array(sums.length);
  const n = Math.min(samples.times.length, samples.values.length);
  for (let i = 0; i < n; i++) {
    const t = samples.times[i] as number;
    if (t < from || t >= now) continue;
    const slot = Math.floor((t - from) / HOUR_MS);
    if (slot >= sums.length) continue;
    sums[slot] = (sums[slot] as number) + (samples.values[i] as number);
    counts[slot] = (counts[slot] as number) + 1;
  }
  for (let i = 0; i < out.length; i++) {
    const t = start + i * HOUR_MS;
    const then = t - 7 * DAY_MS + (zoneOffset(zone, t) - zoneOffset(zone, t - 7 * DAY_MS));
    const slot = Math.round((then - from) / HOUR_MS);
    const c = counts[slot];
    if (c !== undefined && c > 0 && then < hourStart(zone, now)) out[i] = (sums[slot] as number) / c;
  }
  return out;
}
