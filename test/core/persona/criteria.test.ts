// The criteria language: three-valued logic, metric durations and statistics with their
// staleness and coverage rules, signals and their age, forecasts, schedules, the reasons
// explain gives, and the refusal of criteria nested too deep.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { CriteriaTooDeepError, compileCriteria, type Tri } from '../../../core/persona/criteria.js';
import {
  Criterion,
  type CriterionInput,
  type EvaluationInput,
  MAX_CRITERIA_DEPTH,
  type MetricSeries,
} from '../../../core/persona/schema.js';

const NOW = Date.parse('2026-06-10T12:00:00Z'); // a Wednesday
const MINUTE = 60_000;

interface Facts {
  readonly now?: number;
  readonly metrics?: Record<string, MetricSeries>;
  readonly signals?: Record<string, { value: number | string | boolean; at: number }>;
  readonly predicted?: Record<string, { max: number; min: number }>;
}
function input(facts: Facts = {}): EvaluationInput {
  return {
    now: facts.now ?? NOW,
    metric: (name) => facts.metrics?.[name],
    signal: (name) => facts.signals?.[name],
    predicted: (name) => facts.predicted?.[name],
  };
}
/** One sample a minute ending `endAgo` ms before NOW, oldest first. */
function everyMinute(values: readonly number[], endAgo = 0): MetricSeries {
  const times = values.map((_, i) => NOW - endAgo - (values.length - 1 - i) * MINUTE);
  return { times: Float64Array.from(times), values: Float64Array.from(values) };
}
const compile = (c: CriterionInput) => compileCriteria(Criterion.parse(c));
const test = (c: CriterionInput, facts: Facts = {}) => compile(c).test(input(facts));

const cpuOver80For5m = { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 300 } } as const;

describe('metric criteria', () => {
  it('reads the latest sample for forSeconds 0, unknown once it is older than two intervals', () => {
    const latest = { metric: { name: 'cpu.utilization', op: '>', value: 80 } } as const;
    expect(test(latest, { metrics: { 'cpu.utilization': everyMinute([10, 95]) } })).toBe(1);
    expect(test(latest, { metrics: { 'cpu.utilization': everyMinute([95, 10]) } })).toBe(0);
    expect(test(latest, { metrics: { 'cpu.utilization': everyMinute([10, 95], 2 * MINUTE) } })).toBe(1);
    expect(test(latest, { metrics: { 'cpu.utilization': everyMinute([10, 95], 2 * MINUTE + 1) } })).toBe(2);
  });

  it('is unknown with no series, an empty one, or samples only after now', () => {
    expect(test(cpuOver80For5m)).toBe(2);
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': { times: [], values: [] } } })).toBe(2);
    const future = { times: [NOW + MINUTE], values: [99] };
    expect(
      test(
        { metric: { name: 'cpu.utilization', op: '>', value: 80 } },
        { metrics: { 'cpu.utilization': future } },
      ),
    ).toBe(2);
  });

  it('holds a duration only when every sample in it meets the threshold', () => {
    const six = [91, 92, 93, 94, 95, 96];
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': everyMinute(six) } })).toBe(1);
    expect(
      test(cpuOver80For5m, { metrics: { 'cpu.utilization': everyMinute([91, 92, 70, 94, 95, 96]) } }),
    ).toBe(0);
    // A dip before the duration's start does not count.
    expect(
      test(cpuOver80For5m, { metrics: { 'cpu.utilization': everyMinute([10, 10, 91, 92, 93, 94, 95, 96]) } }),
    ).toBe(1);
  });

  it('is unknown when the samples do not cover the duration, has a gap, or the latest is stale', () => {
    // Three minutes of samples for a five-minute duration.
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': everyMinute([91, 92, 93]) } })).toBe(2);
    const gap = { times: [NOW - 5 * MINUTE, NOW - 4 * MINUTE, NOW - MINUTE, NOW], values: [91, 92, 93, 94] };
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': { ...gap, intervalSeconds: 60 } } })).toBe(2);
    const stale = everyMinute([91, 92, 93, 94, 95, 96, 97, 98], 3 * MINUTE);
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': stale } })).toBe(2);
  });

  it('is false on one failing sample however much data is missing', () => {
    expect(test(cpuOver80For5m, { metrics: { 'cpu.utilization': everyMinute([91, 20]) } })).toBe(0);
  });

  it('compares the average, max or min of the duration when asked', () => {
    const series = { 'cpu.utilization': everyMinute([70, 90, 90, 90, 70, 80]) }; // average 81.67
    const stat = (statistic: 'average' | 'max' | 'min', op: '>' | '<', value: number) =>
      test(
        { metric: { name: 'cpu.utilization', op, value, forSeconds: 300, statistic } },
        { metrics: series },
      );
    expect(stat('average', '>', 80)).toBe(1);
    expect(stat('average', '>', 82)).toBe(0);
    expect(stat('max', '>', 89)).toBe(1);
    expect(stat('min', '<', 71)).toBe(1);
    expect(stat('min', '<', 70)).toBe(0);
  });

  it('takes a reported interval over the samples’ own spacing', () => {
    const sparse = { times: [NOW - 10 * MINUTE], values: [95] };
    const latest = { metric: { name: 'cpu.utilization', op: '>', value: 80 } } as const;
    expect(test(latest, { metrics: { 'cpu.utilization': sparse } })).toBe(2); // one sample: a minute assumed
    expect(test(latest, { metrics: { 'cpu.utilization': { ...sparse, intervalSeconds: 300 } } })).toBe(1);
  });
});

describe('metric criteria: shared duration statistics', () => {
  // test() reads a duration's statistics from a slot shared by every criterion on that metric
  // and duration; explain() walks the samples itself. They must agree, whatever the samples.
  const seriesArb = fc
    .array(
      fc.tuple(
        // Mostly a sample a minute (durations covered), sometimes a late one or a gap.
        fc.oneof(
          { weight: 8, arbitrary: fc.constant(60) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }) },
        ),
        fc.integer({ min: 0, max: 10 }),
      ),
      { minLength: 0, maxLength: 25 },
    )
    .chain((steps) =>
      fc
        .record({ end: fc.integer({ min: -90, max: 90 }), interval: fc.option(fc.constantFrom(30, 60)) })
        .map(({ end, interval }) => {
          let t = NOW + end * 1000;
          const times: number[] = [];
          const values: number[] = [];
          for (const [gap, v] of [...steps].reverse()) {
            times.unshift(t);
            values.unshift(v);
            t -= gap * 1000;
          }
          return { times, values, ...(interval === null ? {} : { intervalSeconds: interval }) };
        }),
    );
  const metricArb = fc.record({
    name: fc.constant('cpu.utilization' as const),
    op: fc.constantFrom('>', '>=', '<', '<=', '==', '!=' as const),
    value: fc.integer({ min: 0, max: 10 }),
    forSeconds: fc.constantFrom(0, 60, 300, 900),
    statistic: fc.constantFrom('each', 'average', 'max', 'min' as const),
  });

  it('property: test and explain reach the same verdict, criteria sharing a duration in any order', () => {
    fc.assert(
      fc.property(seriesArb, fc.array(metricArb, { minLength: 1, maxLength: 4 }), (series, criteria) => {
        const facts = { metrics: { 'cpu.utilization': series } };
        const compiled = criteria.map((metric) => compile({ metric }));
        const tests = compiled.map((c) => c.test(input(facts)));
        compiled.forEach((c, i) => {
          expect(c.explain(input(facts))[0]?.holds).toBe(['false', 'true', 'unknown'][tests[i] as Tri]);
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe('signal, predicted and schedule criteria', () => {
  const forecast = { signal: { name: 'lb/forecast', op: '>=', value: 1000, maxAgeSeconds: 600 } } as const;

  it('is unknown for a signal never posted or older than its maximum age', () => {
    expect(test(forecast)).toBe(2);
    expect(test(forecast, { signals: { 'lb/forecast': { value: 1500, at: NOW - 601_000 } } })).toBe(2);
    expect(test(forecast, { signals: { 'lb/forecast': { value: 1500, at: NOW - 600_000 } } })).toBe(1);
    expect(test(forecast, { signals: { 'lb/forecast': { value: 999, at: NOW } } })).toBe(0);
  });

  it('compares strings and booleans, and is unknown for a value of another type', () => {
    const freeze = { signal: { name: 'deploy.freeze', op: '==', value: true } } as const;
    expect(test(freeze, { signals: { 'deploy.freeze': { value: true, at: NOW - 86_400_000 } } })).toBe(1);
    expect(test(freeze, { signals: { 'deploy.freeze': { value: false, at: NOW } } })).toBe(0);
    expect(test(freeze, { signals: { 'deploy.freeze': { value: 'yes', at: NOW } } })).toBe(2);
    const tier = { signal: { name: 'tier', op: '!=', value: 'gold' } } as const;
    expect(test(tier, { signals: { tier: { value: 'silver', at: NOW } } })).toBe(1);
  });

  it('refuses ordering a true/false signal, naming the field', () => {
    let error: unknown;
    try {
      compile({ all: [cpuOver80For5m, { signal: { name: 'deploy.freeze', op: '>', value: true } }] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues[0]?.path).toBe('criteria.all[1].signal.op');
  });

  it('reads a forecast’s highest value for an upper threshold and its lowest for a lower one', () => {
    const peak = { predicted: { name: 'requests.per_second', op: '>', value: 500 } } as const;
    const trough = { predicted: { name: 'requests.per_second', op: '<', value: 50 } } as const;
    const predicted = { 'requests.per_second': { min: 40, max: 600 } };
    expect(test(peak, { predicted })).toBe(1);
    expect(test(trough, { predicted })).toBe(1);
    // A forecast's "no" is unknown until the latest sample agrees: a forecast alone is never false.
    const quiet = { 'requests.per_second': { min: 40, max: 400 } };
    expect(test(peak, { predicted: quiet })).toBe(2);
    expect(test(peak, { predicted: quiet, metrics: { 'requests.per_second': everyMinute([300]) } })).toBe(0);
    expect(test(peak, { predicted: quiet, metrics: { 'requests.per_second': everyMinute([900]) } })).toBe(2);
    expect(test(peak)).toBe(2);
  });

  it('is true inside a schedule’s window and false outside it, never unknown', () => {
    const hours = { schedule: { timezone: 'Europe/Paris', windows: [{ start: '13:00', end: '15:00' }] } };
    expect(test(hours)).toBe(1); // 14:00 in Paris
    expect(test(hours, { now: NOW + 2 * 3_600_000 })).toBe(0);
  });
});

describe('three-valued logic', () => {
  const leaf = (name: string) => ({ signal: { name, op: '==', value: true } }) as const;
  const facts = (t: Tri, f: Tri, u: Tri) => {
    const value = (x: Tri) => (x === 2 ? undefined : { value: x === 1, at: NOW });
    const signals: Record<string, { value: boolean; at: number }> = {};
    for (const [k, x] of Object.entries({ a: t, b: f, c: u })) {
      const v = value(x);
      if (v) signals[k] = v;
    }
    return { signals };
  };
  const abc = facts(1, 0, 2); // a true, b false, c unknown

  it('all is false on any false, else unknown on any unknown, else true', () => {
    expect(test({ all: [leaf('a'), leaf('b'), leaf('c')] }, abc)).toBe(0);
    expect(test({ all: [leaf('a'), leaf('c')] }, abc)).toBe(2);
    expect(test({ all: [leaf('a'), leaf('a')] }, abc)).toBe(1);
  });

  it('any is true on any true, else unknown on any unknown, else false', () => {
    expect(test({ any: [leaf('c'), leaf('b'), leaf('a')] }, abc)).toBe(1);
    expect(test({ any: [leaf('b'), leaf('c')] }, abc)).toBe(2);
    expect(test({ any: [leaf('b'), leaf('b')] }, abc)).toBe(0);
  });

  it('not of unknown is unknown', () => {
    expect(test({ not: leaf('c') }, abc)).toBe(2);
    expect(test({ not: leaf('a') }, abc)).toBe(0);
    expect(test({ not: leaf('b') }, abc)).toBe(1);
  });

  // Random criteria over signals s0..s3, each true, false or never posted.
  const tree: fc.Arbitrary<CriterionInput> = fc
    .letrec<{ node: CriterionInput }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('s0', 's1', 's2', 's3').map((n) => leaf(n) as CriterionInput),
        fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((all) => ({ all })),
        fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((any) => ({ any })),
        tie('node').map((not) => ({ not })),
      ),
    }))
    .node.filter((c) => depth(c) <= MAX_CRITERIA_DEPTH - 2);
  const world = fc.tuple(...[0, 1, 2, 3].map(() => fc.constantFrom<Tri>(0, 1, 2))).map((ts) => {
    const signals: Record<string, { value: boolean; at: number }> = {};
    ts.forEach((t, i) => {
      if (t !== 2) signals[`s${i}`] = { value: t === 1, at: NOW };
    });
    return { signals };
  });

  it('property: not(not(c)) is c', () => {
    fc.assert(
      fc.property(tree, world, (c, w) => {
        expect(test({ not: { not: c } }, w)).toBe(test(c, w));
      }),
    );
  });

  it('property: De Morgan holds for all and any', () => {
    fc.assert(
      fc.property(fc.array(tree, { minLength: 1, maxLength: 4 }), world, (cs, w) => {
        expect(test({ not: { all: cs } }, w)).toBe(test({ any: cs.map((c) => ({ not: c })) }, w));
        expect(test({ not: { any: cs } }, w)).toBe(test({ all: cs.map((c) => ({ not: c })) }, w));
      }),
    );
  });

  it('property: explain reaches the same verdict as test', () => {
    fc.assert(
      fc.property(tree, world, (c, w) => {
        const compiled = compile(c);
        const verdict = compiled.test(input(w));
        expect(compiled.explain(input(w))[0]?.holds).toBe(['false', 'true', 'unknown'][verdict]);
      }),
    );
  });
});

function depth(c: CriterionInput): number {
  if ('all' in c) return 1 + Math.max(...c.all.map(depth));
  if ('any' in c) return 1 + Math.max(...c.any.map(depth));
  if ('not' in c) return 1 + depth(c.not);
  return 1;
}

describe('explain', () => {
  it('names the path of each deciding criterion with the values it saw', () => {
    const c = compile({
      any: [
        { schedule: { timezone: 'UTC', windows: [{ start: '00:00', end: '01:00' }] } },
        { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 300, statistic: 'average' } },
      ],
    });
    const series = everyMinute([90, 91, 92, 93, 94, 95, 96, 88, 92, 94]);
    const reasons = c.explain(input({ metrics: { 'cpu.utilization': series } }));
    expect(reasons.map((r) => [r.path, r.holds])).toEqual([
      ['/any', 'true'],
      ['/any/1/metric', 'true'],
    ]);
    expect(reasons[1]?.values).toMatchObject({
      'cpu.utilization': 93.167,
      threshold: 80,
      forSeconds: 300,
      samples: 6,
    });
    expect(reasons[1]?.detail).toContain('average over 300 s');
  });

  it('says which data is missing when criteria are unknown', () => {
    const c = compile({ all: [cpuOver80For5m, { signal: { name: 'lb/forecast', op: '>', value: 1 } }] });
    const reasons = c.explain(input({ metrics: { 'cpu.utilization': everyMinute([91, 92]) } }));
    expect(reasons[0]).toMatchObject({ path: '/all', holds: 'unknown' });
    expect(reasons.slice(1).map((r) => [r.path, r.detail])).toEqual([
      ['/all/0/metric', 'cpu.utilization every sample over 300 s: samples cover 60 s of 300 s'],
      ['/all/1/signal', 'lb/forecast: never posted'],
    ]);
  });

  it('lists the metrics, signals and schedules the criteria read', () => {
    const schedule = { timezone: 'UTC', windows: [{ start: '09:00', end: '17:00' }] };
    const c = compile({
      all: [
        { schedule },
        cpuOver80For5m,
        { not: { signal: { name: 'deploy.freeze', op: '==', value: true } } },
        cpuOver80For5m,
      ],
    });
    expect(c.metrics).toEqual(['cpu.utilization']);
    expect(c.signals).toEqual(['deploy.freeze']);
    expect(c.schedules).toHaveLength(1);
    expect(c.maxForSeconds).toBe(300);
  });
});

describe('nesting', () => {
  const nest = (levels: number): CriterionInput => {
    let c: CriterionInput = cpuOver80For5m;
    for (let i = 1; i < levels; i++) c = i % 2 ? { not: c } : { all: [c] };
    return c;
  };

  it(`compiles criteria ${MAX_CRITERIA_DEPTH} levels deep`, () => {
    expect(() => compile(nest(MAX_CRITERIA_DEPTH))).not.toThrow();
  });

  it('refuses one level more with CriteriaTooDeepError naming where', () => {
    let error: unknown;
    try {
      compileCriteria(nest(MAX_CRITERIA_DEPTH + 1) as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CriteriaTooDeepError);
    expect(error).toMatchObject({
      name: 'CriteriaTooDeepError',
      code: 'INVALID_INPUT',
      limit: MAX_CRITERIA_DEPTH,
    });
    expect((error as CriteriaTooDeepError).issues[0]?.path).toMatch(/^criteria\.all\[0\]\.not/);
  });

  it('refuses a hundred thousand levels without exhausting the stack', () => {
    expect(() => compileCriteria(nest(100_000) as never)).toThrow(CriteriaTooDeepError);
  });
});
