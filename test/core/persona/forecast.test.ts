// The forecaster on synthetic seasonal series (seeded, so every run sees the same numbers):
// daily and weekly cycles, a trend, noise, missing data and a change of daylight saving, its
// MAPE on held-out history against the naive same-hour-last-week; and what it refuses to
// forecast from.
import { describe, expect, it } from 'vitest';
import {
  FORECAST_LIMITS,
  forecast,
  forecastAccuracy,
  forecastRange,
  hourOfWeek,
  hourStart,
} from '../../../core/persona/forecast.js';
import { type SeasonalOptions, seasonalSeries, seasonalValue } from './forecast-series.js';

const H = 3_600_000;
const D = 86_400_000;
const NOW = Date.parse('2026-06-17T06:20:00Z'); // a Wednesday
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

/** MAPE of the forecaster and of the naive forecast over one series per seed. */
function scores(make: (seed: number) => SeasonalOptions, now: number, timezone?: string) {
  return SEEDS.map((seed) => {
    const o = make(seed);
    const a = forecastAccuracy(seasonalSeries(o), now, { timezone: timezone ?? o.zone ?? 'UTC' });
    if (!a.ok) throw new Error(a.detail);
    return a.accuracy;
  });
}
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('forecast accuracy on held-out history', () => {
  it('beats same-hour-last-week by at least 15% MAPE on daily and weekly cycles with trend and noise', () => {
    const runs = scores(
      (seed) => ({ seed, from: NOW - 16 * D, to: NOW, noise: 4, hourlyNoise: 4, trendPerDay: 0.5 }),
      NOW,
    );
    for (const r of runs) {
      expect(r.hours).toBe(48);
      expect(r.naiveMape).not.toBeNull();
      expect(r.mape).toBeLessThan(r.naiveMape as number);
    }
    expect(mean(runs.map((r) => r.mape))).toBeLessThan(0.85 * mean(runs.map((r) => r.naiveMape as number)));
  });

  it('follows a steep trend that the naive forecast lags by a week', () => {
    const runs = scores(
      (seed) => ({ seed, from: NOW - 16 * D, to: NOW, noise: 2, hourlyNoise: 3, trendPerDay: 2 }),
      NOW,
    );
    expect(mean(runs.map((r) => r.mape))).toBeLessThan(0.4 * mean(runs.map((r) => r.naiveMape as number)));
  });

  it('beats it by at least 15% with a tenth of the hours missing and a 10-hour outage', () => {
    const runs = scores(
      (seed) => ({
        seed,
        from: NOW - 16 * D,
        to: NOW,
        noise: 4,
        hourlyNoise: 4,
        trendPerDay: 0.5,
        dropHours: 0.1,
        gaps: [[NOW - 9 * D, NOW - 9 * D + 10 * H]],
      }),
      NOW,
    );
    for (const r of runs) expect(r.hours).toBeLessThan(48); // missing hours are not scored
    expect(mean(runs.map((r) => r.mape))).toBeLessThan(0.85 * mean(runs.map((r) => r.naiveMape as number)));
  });

  it('keeps the daily cycle on local hours across a change of daylight saving', () => {
    // Paris springs forward on 29 March 2026; the held-out days are after it, the history before.
    const now = Date.parse('2026-03-31T04:20:00Z');
    const make = (seed: number): SeasonalOptions => ({
      seed,
      from: now - 16 * D,
      to: now,
      zone: 'Europe/Paris',
      noise: 3,
      hourlyNoise: 3,
      peakHour: 14.5,
      trendPerDay: 0.3,
    });
    const paris = scores(make, now);
    const utc = scores(make, now, 'UTC');
    const parisMape = mean(paris.map((r) => r.mape));
    expect(parisMape).toBeLessThan(0.85 * mean(paris.map((r) => r.naiveMape as number)));
    // Read in UTC, the hours of the week are an hour off after the change.
    expect(parisMape).toBeLessThan(mean(utc.map((r) => r.mape)) - 2);

    // The forecast's peak is at 14:00 Paris time, which is 12:00 UTC in summer time.
    const f = forecast(seasonalSeries({ ...make(1), noise: 0, hourlyNoise: 0 }), now, {
      timezone: 'Europe/Paris',
    });
    if (!f.ok) throw new Error(f.detail);
    const first = Array.from(f.forecast.values.slice(0, 24));
    const peak = first.indexOf(Math.max(...first));
    expect(new Date(f.forecast.start + peak * H).toISOString()).toBe('2026-03-31T12:00:00.000Z');
  });

  it('forecasts close to the noiseless truth, with weekends quieter than weekdays', () => {
    const o: SeasonalOptions = {
      seed: 9,
      from: NOW - 15 * D,
      to: NOW,
      noise: 2,
      hourlyNoise: 2,
      trendPerDay: 0.5,
    };
    const f = forecast(seasonalSeries(o), NOW);
    if (!f.ok) throw new Error(f.detail);
    expect(f.forecast.model.seasonality).toBe('weekly');
    expect(f.forecast.values).toHaveLength(FORECAST_LIMITS.horizonHours);
    expect(f.forecast.start).toBe(Date.parse('2026-06-17T06:00:00Z'));
    let worst = 0;
    for (let i = 0; i < 48; i++) {
      const t = f.forecast.start + i * H;
      let truth = 0;
      for (let m = 0; m < 60; m += 5) truth += seasonalValue(o, t + m * 60_000) / 12;
      worst = Math.max(worst, Math.abs((f.forecast.values[i] as number) - truth));
    }
    expect(worst).toBeLessThan(8); // the daily peak is 50 above a base of 20
    // From a Friday morning, the horizon covers Friday and Saturday: Saturday's peak is lower.
    const friday = Date.parse('2026-06-19T00:20:00Z');
    const w = forecast(seasonalSeries({ ...o, from: friday - 15 * D, to: friday }), friday);
    if (!w.ok) throw new Error(w.detail);
    const peakOf = (from: number) => Math.max(...Array.from(w.forecast.values.slice(from, from + 24)));
    expect(peakOf(24)).toBeLessThan(0.8 * peakOf(0));
  });
});

describe('what the forecaster refuses', () => {
  const series = (hours: number, now = NOW) =>
    seasonalSeries({ seed: 1, from: hourStart('UTC', now) - hours * H, to: now, noise: 1 });

  it('forecasts nothing from fewer than 24 hours with samples, saying so', () => {
    const r = forecast(series(23), NOW);
    expect(r).toMatchObject({ ok: false, reason: 'insufficient-history' });
    expect(!r.ok && r.detail).toContain('23 hours with samples, 24 needed');
    expect(forecast(series(24), NOW).ok).toBe(true);
    expect(forecast({ times: [], values: [] }, NOW)).toMatchObject({ ok: false, reason: 'no-samples' });
  });

  it('counts hours with samples, not the span: 30 hours with 7 missing is too little', () => {
    const s = seasonalSeries({
      seed: 1,
      from: hourStart('UTC', NOW) - 30 * H,
      to: NOW,
      gaps: [[hourStart('UTC', NOW) - 20 * H, hourStart('UTC', NOW) - 13 * H]],
    });
    expect(forecast(s, NOW)).toMatchObject({ ok: false, reason: 'insufficient-history' });
  });

  it('forecasts nothing from a history whose latest sample is more than a day old', () => {
    expect(forecast(series(72, NOW - 25 * H), NOW)).toMatchObject({ ok: false, reason: 'stale' });
  });

  it('uses at most 14 days: history before them changes nothing', () => {
    const recent = seasonalSeries({ seed: 3, from: NOW - 14 * D - 2 * H, to: NOW, noise: 1 });
    const older = seasonalSeries({ seed: 4, from: NOW - 30 * D, to: NOW - 15 * D, base: 500 });
    const both = {
      times: Float64Array.from([...older.times, ...recent.times]),
      values: Float64Array.from([...older.values, ...recent.values]),
    };
    const a = forecast(recent, NOW);
    const b = forecast(both, NOW);
    expect(a.ok && b.ok && Array.from(a.forecast.values)).toEqual(b.ok && Array.from(b.forecast.values));
  });

  it('keeps a utilization within 0 to 100 and a non-negative metric non-negative', () => {
    const steep = seasonalSeries({
      seed: 5,
      from: NOW - 3 * D,
      to: NOW,
      base: 60,
      trendPerDay: 15,
      dailyAmplitude: 20,
    });
    const up = forecast(steep, NOW, { metric: 'cpu.utilization' });
    expect(up.ok && Math.max(...up.forecast.values)).toBe(100);
    const down = seasonalSeries({
      seed: 5,
      from: NOW - 3 * D,
      to: NOW,
      base: 60,
      trendPerDay: -25,
      dailyAmplitude: 5,
    });
    const low = forecast(down, NOW, { metric: 'requests.per_second' });
    expect(low.ok && Math.min(...low.forecast.values)).toBe(0);
  });

  it('refuses an unknown time zone', () => {
    expect(() => forecast(series(30), NOW, { timezone: 'Mars/Olympus' })).toThrow(/Mars\/Olympus/);
  });
});

describe('hours of the week', () => {
  it('reads them on the zone’s clock, with hours starting where the clock shows :00', () => {
    expect(hourOfWeek('UTC', Date.parse('2026-06-15T00:30:00Z'))).toBe(0); // Monday
    expect(hourOfWeek('UTC', Date.parse('2026-06-21T23:59:00Z'))).toBe(167); // Sunday
    expect(hourOfWeek('Europe/Paris', Date.parse('2026-06-14T22:30:00Z'))).toBe(0); // Monday 00:30 in Paris
    // Kolkata is UTC+5:30: its hours start at half past in UTC.
    expect(new Date(hourStart('Asia/Kolkata', Date.parse('2026-06-15T10:10:00Z'))).toISOString()).toBe(
      '2026-06-15T09:30:00.000Z',
    );
  });

  it('answers the range of the hours a span overlaps, and nothing past the horizon', () => {
    const f = { start: 0, values: [1, 5, 3, 9] };
    expect(forecastRange(f, 0, 1)).toEqual({ max: 1, min: 1 });
    expect(forecastRange(f, 30 * 60_000, 3600)).toEqual({ max: 5, min: 1 });
    expect(forecastRange(f, 2 * H, 10 * 3600)).toEqual({ max: 9, min: 3 });
    expect(forecastRange(f, 5 * H, 3600)).toBeUndefined();
  });
});
