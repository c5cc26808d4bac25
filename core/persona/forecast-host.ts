// Forecasts of a host's metrics from its history in the metric store: what evaluation reads for
// `predicted` criteria and GET /hosts/{host}/forecast answers with the forecast's accuracy.
//
// A forecast is hourly, so it is made at most once per host, metric and hour (per process):
// evaluation reads two weeks of history only when the hour's forecast is not made yet, and the
// few minutes its other criteria need otherwise.
import type { CompiledPersona } from './evaluate.js';
import {
  type AccuracyResult,
  FORECAST_LIMITS,
  type ForecastResult,
  forecast,
  forecastAccuracy,
  HOUR_MS,
  hourStart,
} from './forecast.js';
import { isTimeZone, type MetricSeries } from './schema.js';

const DAY_MS = 86_400_000;
/** History a forecast reads: its 14 days and the hour under way. */
export const FORECAST_HISTORY_MS = FORECAST_LIMITS.maxHistoryDays * DAY_MS + HOUR_MS;
/** History the accuracy reads: the forecast's 14 days before the 24 hours held out. */
export const ACCURACY_HISTORY_MS = FORECAST_HISTORY_MS + FORECAST_LIMITS.holdoutHours * HOUR_MS;
/** The host tag that names the zone a host's hours of the week are read in. */
export const TIMEZONE_TAG = 'timezone';

export interface MetricHistory {
  series(host: string, names: readonly string[], sinceMs: number): Promise<Map<string, MetricSeries>>;
}

/**
 * The zone whose wall clock a host's hours of the week are read on: its `timezone` tag, else
 * the zone of the first schedule among its personas' criteria, else UTC. A daily cycle follows
 * the people who make it, and their clock is the one daylight saving moves.
 */
export function forecastZone(
  labels: Readonly<Record<string, string>> | undefined,
  personas: readonly Pick<CompiledPersona, 'criteria'>[],
): string {
  const tagged = labels?.[TIMEZONE_TAG];
  if (tagged !== undefined && isTimeZone(tagged)) return tagged;
  for (const p of personas) for (const s of p.criteria?.schedules ?? []) if (s.timezone) return s.timezone;
  return 'UTC';
}

const cache = new Map<string, { readonly hour: number; readonly result: ForecastResult }>();
const MAX_CACHED = 50_000;
const key = (host: string, metric: string, zone: string) => `${host}\u0000${metric}\u0000${zone}`;

/** The forecasts of the hour made already for these names, and the names still to forecast. */
export function cachedForecasts(
  host: string,
  names: readonly string[],
  zone: string,
  now: number,
): { ready: Map<string, ForecastResult>; missing: string[] } {
  const hour = hourStart(zone, now);
  const ready = new Map<string, ForecastResult>();
  const missing: string[] = [];
  for (const name of names) {
    const hit = cache.get(key(host, name, zone));
    if (hit !== undefined && hit.hour === hour) ready.set(name, hit.result);
    else missing.push(name);
  }
  return { ready, missing };
}

/** Forecasts `names` from their series (as read since now − FORECAST_HISTORY_MS) and keeps them for the hour. */
export function forecastSeries(
  host: string,
  names: readonly string[],
  series: ReadonlyMap<string, MetricSeries>,
  zone: string,
  now: number,
  into: Map<string, ForecastResult>,
): void {
  const hour = hourStart(zone, now);
  for (const name of names) {
    const result = forecast(series.get(name) ?? { times: [], values: [] }, now, {
      timezone: zone,
      metric: name,
    });
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(key(host, name, zone), { hour, result });
    into.set(name, result);
  }
}

/** Forgets every forecast made (tests that write history and forecast again within the hour). */
export function clearForecasts(): void {
  cache.clear();
}

/** What GET /hosts/{host}/forecast answers for one metric. */
export interface MetricForecastView {
  readonly metric: string;
  readonly forecast: {
    readonly at: string;
    readonly hours: readonly { readonly at: string; readonly value: number }[];
    readonly history: { readonly hours: number; readonly from: string; readonly to: string };
    readonly model: {
      readonly seasonality: 'daily' | 'weekly';
      readonly level: number;
      readonly slopePerHour: number;
    };
  } | null;
  /** Why there is no forecast. */
  readonly reason?: string;
  readonly accuracy: {
    readonly from: string;
    readonly to: string;
    readonly hours: number;
    readonly mape: number;
    readonly naiveMape: number | null;
    readonly naiveHours: number;
    /** naiveMape − mape in percentage points: how much better than the naive forecast. */
    readonly betterByPoints: number | null;
  } | null;
  /** Why accuracy could not be measured (less than a day of history before the held-out day). */
  readonly accuracyReason?: string;
}

export interface HostForecastView {
  readonly host: string;
  readonly timezone: string;
  readonly at: string;
  readonly metrics: readonly MetricForecastView[];
}

const iso = (t: number) => new Date(t).toISOString();
const round = (n: number) => Math.round(n * 1000) / 1000;

function view(metric: string, f: ForecastResult, a: AccuracyResult): MetricForecastView {
  return {
    metric,
    forecast: f.ok
      ? {
          at: iso(f.forecast.at),
          hours: Array.from(f.forecast.values, (value, i) => ({
            at: iso(f.forecast.start + i * HOUR_MS),
            value: round(value),
          })),
          history: {
            hours: f.forecast.history.hours,
            from: iso(f.forecast.history.from),
            to: iso(f.forecast.history.to),
          },
          model: {
            seasonality: f.forecast.model.seasonality,
            level: round(f.forecast.model.level),
            slopePerHour: round(f.forecast.model.slopePerHour),
          },
        }
      : null,
    ...(f.ok ? {} : { reason: f.detail }),
    accuracy: a.ok
      ? {
          from: iso(a.accuracy.from),
          to: iso(a.accuracy.to),
          hours: a.accuracy.hours,
          mape: round(a.accuracy.mape),
          naiveMape: a.accuracy.naiveMape === null ? null : round(a.accuracy.naiveMape),
          naiveHours: a.accuracy.naiveHours,
          betterByPoints:
            a.accuracy.naiveMape === null ? null : round(a.accuracy.naiveMape - a.accuracy.mape),
        }
      : null,
    ...(a.ok ? {} : { accuracyReason: a.detail }),
  };
}

/** The metrics a host's forecast answers by default: those its personas' predicted criteria name. */
export function forecastMetrics(personas: readonly CompiledPersona[]): string[] {
  const names = new Set<string>();
  for (const p of personas) for (const n of p.criteria?.predicted ?? []) names.add(n);
  return names.size === 0 ? ['cpu.utilization'] : [...names].sort();
}

/** The forecast of each metric of a host from now, and its accuracy on the host's held-out history. */
export async function hostForecast(
  metrics: MetricHistory,
  host: { readonly name: string; readonly labels?: Readonly<Record<string, string>> },
  personas: readonly CompiledPersona[],
  now: number,
  names: readonly string[] = forecastMetrics(personas),
): Promise<HostForecastView> {
  const zone = forecastZone(host.labels, personas);
  const series = await metrics.series(host.name, names, now - ACCURACY_HISTORY_MS);
  return {
    host: host.name,
    timezone: zone,
    at: iso(now),
    metrics: names.map((name) => {
      const s = series.get(name) ?? { times: [], values: [] };
      return view(
        name,
        forecast(s, now, { timezone: zone, metric: name }),
        forecastAccuracy(s, now, { timezone: zone, metric: name }),
      );
    }),
  };
}
