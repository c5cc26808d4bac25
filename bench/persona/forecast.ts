// The forecaster's accuracy and cost per host. Each host is a seeded synthetic history of one
// metric, 16 days at one sample per 5 minutes (4,608 samples): a daily cycle on the host's wall
// clock, quieter weekends, a trend, noise, and for some of them missing hours, an outage or a
// change of daylight saving inside the window. Per host: the accuracy on held-out history (the
// forecast made 48 hours ago scored on the 48 hours since, MAPE, beside the naive
// same-hour-last-week), and the time to make the forecast evaluation reads (14 days of samples
// into 48 hourly values) and the time to measure the accuracy.
//
//   node --import tsx bench/persona/forecast.ts [hosts]        (default 2,000)
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { forecast, forecastAccuracy } from '../../core/persona/forecast.js';
import { type SeasonalOptions, seasonalSeries } from '../../test/core/persona/forecast-series.js';
import { createReport } from '../report.js';

const hosts = Math.max(10, Math.min(100_000, Number(process.argv[2] ?? 2000)));
const { say, table, lines, progress } = createReport();
const H = 3_600_000;
const D = 86_400_000;
const load = loadavg();

// The instants forecast from: a spring change of daylight saving (Paris, 29 March 2026) falls
// inside the histories of the `dst` kind.
const NOW = Date.parse('2026-06-17T06:20:00Z');
const DST_NOW = Date.parse('2026-04-02T06:20:00Z');

interface Kind {
  readonly name: string;
  readonly now: number;
  readonly zone: string;
  make(seed: number): SeasonalOptions;
}

const KINDS: readonly Kind[] = [
  {
    name: 'daily + weekly, trend, noise',
    now: NOW,
    zone: 'UTC',
    make: (seed) => ({
      seed,
      from: NOW - 16 * D,
      to: NOW,
      noise: 4,
      hourlyNoise: 4,
      trendPerDay: 0.5,
      base: 10 + (seed % 30),
      dailyAmplitude: 30 + (seed % 40),
      peakHour: 9 + (seed % 10),
    }),
  },
  {
    name: 'steep trend',
    now: NOW,
    zone: 'UTC',
    make: (seed) => ({ seed, from: NOW - 16 * D, to: NOW, noise: 2, hourlyNoise: 3, trendPerDay: 2 }),
  },
  {
    name: 'missing hours (10%) and a 10 h outage',
    now: NOW,
    zone: 'America/New_York',
    make: (seed) => ({
      seed,
      from: NOW - 16 * D,
      to: NOW,
      zone: 'America/New_York',
      noise: 4,
      hourlyNoise: 4,
      trendPerDay: 0.5,
      dropHours: 0.1,
      gaps: [[NOW - 9 * D, NOW - 9 * D + 10 * H]],
    }),
  },
  {
    name: 'daylight saving change in the history',
    now: DST_NOW,
    zone: 'Europe/Paris',
    make: (seed) => ({
      seed,
      from: DST_NOW - 16 * D,
      to: DST_NOW,
      zone: 'Europe/Paris',
      noise: 3,
      hourlyNoise: 3,
      trendPerDay: 0.3,
    }),
  },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f1 = (n: number) => n.toFixed(1);
const f3 = (n: number) => n.toFixed(3);

say('# Forecaster: accuracy and cost per host');
say();
say(
  `${hosts} hosts, ${KINDS.length} kinds of history, 16 days at a sample per 5 minutes each; node ${process.version}; load average at start ${load.map(f1).join(' ')} (1, 5, 15 min).`,
);
say();

const rows: string[][] = [];
const allForecast: number[] = [];
const allAccuracy: number[] = [];
let wins = 0;
let scored = 0;
for (const kind of KINDS) {
  progress(kind.name);
  const mape: number[] = [];
  const naive: number[] = [];
  const forecastMs: number[] = [];
  const accuracyMs: number[] = [];
  const per = Math.ceil(hosts / KINDS.length);
  // Warm the code paths before timing.
  const warm = seasonalSeries(kind.make(0));
  for (let i = 0; i < 20; i++) forecastAccuracy(warm, kind.now, { timezone: kind.zone });
  for (let i = 0; i < per; i++) {
    const samples = seasonalSeries(kind.make(i + 1));
    let t = performance.now();
    const f = forecast(samples, kind.now, { timezone: kind.zone });
    forecastMs.push(performance.now() - t);
    if (!f.ok) throw new Error(f.detail);
    t = performance.now();
    const a = forecastAccuracy(samples, kind.now, { timezone: kind.zone });
    accuracyMs.push(performance.now() - t);
    if (!a.ok) throw new Error(a.detail);
    mape.push(a.accuracy.mape);
    if (a.accuracy.naiveMape !== null) {
      naive.push(a.accuracy.naiveMape);
      scored++;
      if (a.accuracy.mape < a.accuracy.naiveMape) wins++;
    }
  }
  allForecast.push(...forecastMs);
  allAccuracy.push(...accuracyMs);
  rows.push([
    kind.name,
    String(per),
    f1(mean(mape)),
    f1(mean(naive)),
    `${f1((1 - mean(mape) / mean(naive)) * 100)}%`,
    f3(median(forecastMs)),
    f3(median(accuracyMs)),
  ]);
}
table(
  [
    'history',
    'hosts',
    'MAPE %',
    'naive MAPE %',
    'lower than naive',
    'forecast ms/host (median)',
    'accuracy ms/host (median)',
  ],
  rows,
  [1, 2, 3, 4, 5, 6],
);
say(
  `The forecast beats same-hour-last-week on ${wins} of ${scored} hosts. Cost per host, all kinds: forecast ${f3(median(allForecast))} ms median (${f3(mean(allForecast))} mean), accuracy ${f3(median(allAccuracy))} ms median; one core, so ${Math.round(1000 / mean(allForecast))} hosts forecast per second per core. Evaluation makes a host's forecast at most once an hour; reading its 14 days from the metric store is not counted here.`,
);
say(`Load average at the end ${loadavg().map(f1).join(' ')}.`);

mkdirSync('reports', { recursive: true });
writeFileSync(join('reports', 'persona-forecast-bench.md'), `${lines.join('\n')}\n`);
