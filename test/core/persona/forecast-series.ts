// Synthetic seasonal metric history for the forecaster's tests and benchmark: a daily cycle on
// the wall clock of a zone (so that a change of daylight saving moves it in UTC), quieter
// weekends, a linear trend, Gaussian noise and missing stretches, from a seeded generator so
// that every run sees the same series.
import { zoneOffset } from '../../../core/persona/forecast.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;

export interface SeasonalOptions {
  readonly seed: number;
  /** Epoch ms of the first and after the last sample. */
  readonly from: number;
  readonly to: number;
  readonly intervalMs?: number;
  readonly zone?: string;
  readonly base?: number;
  /** Height of the daily peak above the base. */
  readonly dailyAmplitude?: number;
  /** Local hour of the daily peak. */
  readonly peakHour?: number;
  /** The daily peak on Saturdays and Sundays, as a share of a weekday's. */
  readonly weekendFactor?: number;
  /** Added to the base per day since `from`. */
  readonly trendPerDay?: number;
  /** Standard deviation of the Gaussian noise of each sample. */
  readonly noise?: number;
  /** Standard deviation of a Gaussian offset drawn once per hour (what hourly means keep). */
  readonly hourlyNoise?: number;
  /** Stretches [from, to) with no samples (an agent down). */
  readonly gaps?: readonly (readonly [number, number])[];
  /** Share of whole hours dropped at random. */
  readonly dropHours?: number;
}

/** mulberry32: small and seeded. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The noiseless value of the series at `t`. */
export function seasonalValue(o: SeasonalOptions, t: number): number {
  const zone = o.zone ?? 'UTC';
  const local = t + zoneOffset(zone, t);
  const hour = (local % DAY) / HOUR;
  const weekday = (((Math.floor(local / DAY) + 3) % 7) + 7) % 7; // Monday 0
  const peak = o.peakHour ?? 14;
  let d = Math.abs(hour - peak);
  if (d > 12) d = 24 - d;
  const daily = (o.dailyAmplitude ?? 50) * Math.exp(-(d * d) / (2 * 3 * 3));
  const week = weekday >= 5 ? (o.weekendFactor ?? 0.4) : 1;
  return (o.base ?? 20) + (o.trendPerDay ?? 0) * ((t - o.from) / DAY) + daily * week;
}

/** The samples of the series, oldest first. */
export function seasonalSeries(o: SeasonalOptions): { times: Float64Array; values: Float64Array } {
  const random = seeded(o.seed);
  const gauss = () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const step = o.intervalMs ?? 5 * 60_000;
  const times: number[] = [];
  const values: number[] = [];
  let droppedHour = Number.NaN;
  let dropping = false;
  let offset = 0;
  for (let t = o.from; t < o.to; t += step) {
    const hour = Math.floor(t / HOUR);
    if (hour !== droppedHour) {
      droppedHour = hour;
      dropping = random() < (o.dropHours ?? 0);
      offset = gauss() * (o.hourlyNoise ?? 0);
    }
    const noise = gauss() * (o.noise ?? 0);
    if (dropping) continue;
    if (o.gaps?.some(([a, b]) => t >= a && t < b)) continue;
    times.push(t);
    values.push(Math.max(0, seasonalValue(o, t) + offset + noise));
  }
  return { times: Float64Array.from(times), values: Float64Array.from(values) };
}
