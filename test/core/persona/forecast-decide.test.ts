// Predicted values in criteria and decisions: a predicted criterion holds from its buffer before
// the forecast hour; in forecast-only mode the decision says what would be done and when, and
// nothing is applied; in acting mode the host switches ahead of the rise; a forecast never takes
// a host off its persona on its own. Then evaluation reading a forecast from two weeks of
// seasonal history (in-memory stores), once per hour.
import { describe, expect, it } from 'vitest';
import { type CompiledPersona, compilePersona, decide } from '../../../core/persona/evaluate.js';
import { forecastRange } from '../../../core/persona/forecast.js';
import { clearForecasts, hostForecast } from '../../../core/persona/forecast-host.js';
import {
  API_VERSION,
  type CriterionInput,
  type Decision,
  type EvaluationInput,
  type HostPersonaState,
  type MetricSeries,
  Persona,
  type PersonaInput,
} from '../../../core/persona/schema.js';
import {
  compileAll,
  type EvaluationDeps,
  evaluateHost,
  type PersonaSwitchRequest,
} from '../../../core/persona/service.js';
import { seasonalSeries } from './forecast-series.js';

const H = 3_600_000;
const MIN = 60_000;
const START = Date.parse('2026-06-10T09:00:00Z');
const HOST = 'web-1';

function spec(name: string, s: Partial<PersonaInput['spec']> & { criteria?: CriterionInput }): Persona {
  return Persona.parse({
    apiVersion: API_VERSION,
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: {}, parameters: {}, hysteresis: { holdSeconds: 0, coolDownSeconds: 0 }, ...s },
  });
}
const compiled = (
  name: string,
  s: Partial<PersonaInput['spec']> & { criteria?: CriterionInput },
): CompiledPersona => compilePersona(spec(name, s), 1);

const predicted = (
  mode: 'act' | 'report' | undefined,
  extra: Record<string, unknown> = {},
): CriterionInput => ({
  predicted: {
    name: 'cpu.utilization',
    op: '>',
    value: 80,
    withinSeconds: 1,
    bufferSeconds: 600,
    ...(mode === undefined ? {} : { mode }),
    ...extra,
  },
});

/** Hours from START: quiet for three hours, 90 in the fourth. */
const RISE = START + 3 * H;
const hourly = { start: START, values: Float64Array.from([10, 12, 15, 90, 90, 30]) };

/** What evaluation reads at `now`: the forecast above and a latest cpu sample of `latest`. */
function facts(now: number, latest: number | undefined, forecast = hourly): EvaluationInput {
  const series: MetricSeries | undefined =
    latest === undefined ? undefined : { times: [now - MIN], values: [latest], intervalSeconds: 60 };
  return {
    now,
    metric: (name) => (name === 'cpu.utilization' ? series : undefined),
    signal: () => undefined,
    predicted: (name, seconds) =>
      name === 'cpu.utilization' ? forecastRange(forecast, now, seconds) : undefined,
    forecast: (name) => (name === 'cpu.utilization' ? forecast : undefined),
  };
}
const own = (): HostPersonaState => ({ host: HOST, current: null, since: START - 86_400_000 });
const on = (current: string): HostPersonaState => ({
  host: HOST,
  current,
  currentVersion: 1,
  since: START - H,
});

describe('a predicted criterion', () => {
  it('holds from its buffer before the forecast hour, not a second earlier', () => {
    const busy = compiled('busy', { criteria: predicted('act') });
    expect(decide(HOST, [busy], own(), facts(RISE - 601_000, 15)).decision.action).toBe('stay');
    const ahead = decide(HOST, [busy], own(), facts(RISE - 600_000, 15));
    expect(ahead.decision).toMatchObject({ action: 'switch', to: 'busy', mode: 'act' });
    expect(ahead.state).toMatchObject({ current: 'busy', since: RISE - 600_000 });
    const reason = ahead.decision.reasons.find((r) => r.path === '/predicted');
    expect(reason?.values).toMatchObject({
      'cpu.utilization.max': 90,
      'cpu.utilization.latest': 15,
      bufferSeconds: 600,
      risesAt: new Date(RISE).toISOString(),
    });
    expect(reason?.detail).toContain('applied 600 s ahead');
  });

  it('is unknown without a forecast, and false only when the latest sample agrees with the forecast', () => {
    const busy = compiled('busy', { criteria: predicted('act') });
    const none: EvaluationInput = { ...facts(START, 15), predicted: () => undefined };
    expect(busy.criteria?.test(none)).toBe(2);
    expect(busy.criteria?.test(facts(START, 15))).toBe(0);
    expect(busy.criteria?.test(facts(START, 95))).toBe(2); // the forecast says no, the host says yes
    expect(busy.criteria?.test(facts(START, undefined))).toBe(2);
  });
});

describe('forecast-only mode', () => {
  it('records what it would have done and when, in report mode, and applies nothing (the default mode)', () => {
    const busy = compiled('busy', { criteria: predicted(undefined) });
    const result = decide(HOST, [busy], own(), facts(RISE - 300_000, 15));
    expect(result.decision).toMatchObject({ action: 'switch', from: null, to: 'busy', mode: 'report' });
    expect(result.decision.summary).toContain('would switch from its own parameters to busy (forecast only)');
    expect(result.decision.at).toBe(RISE - 300_000);
    const reason = result.decision.reasons.find((r) => r.path === '/predicted');
    expect(reason?.values).toMatchObject({ mode: 'report', risesAt: new Date(RISE).toISOString() });
    // The host keeps its own parameters: the state is what it was.
    expect(result.state).toEqual(own());
  });

  it('switched to acting, the same forecast switches the host before the rise', () => {
    const busy = compiled('busy', { criteria: predicted('act') });
    const result = decide(HOST, [busy], own(), facts(RISE - 300_000, 15));
    expect(result.decision).toMatchObject({ action: 'switch', to: 'busy', mode: 'act' });
    expect(result.state.current).toBe('busy');
  });

  it('never masks what acting decides: a host whose persona stops holding reverts', () => {
    const steady = compiled('steady', {
      priority: 20,
      criteria: { metric: { name: 'cpu.utilization', op: '>', value: 50 } },
    });
    const busy = compiled('busy', { priority: 10, criteria: predicted(undefined) });
    const result = decide(HOST, [busy, steady], on('steady'), facts(RISE - 300_000, 15));
    expect(result.decision).toMatchObject({ action: 'revert', to: null, mode: 'act' });
  });

  it('a persona in report mode with an acting forecast reports too', () => {
    const busy = compiled('busy', { mode: 'report', criteria: predicted('act') });
    const result = decide(HOST, [busy], own(), facts(RISE - 300_000, 15));
    expect(result.decision).toMatchObject({ action: 'switch', mode: 'report' });
    expect(result.state).toEqual(own());
  });
});

describe('never down on a forecast alone', () => {
  const busy = compiled('busy', { criteria: predicted('act') });
  const after = RISE + 3 * H; // the forecast is 30, then nothing

  it('keeps the persona while the forecast says no and the host still says yes', () => {
    const low = { start: after - H, values: Float64Array.from([30, 30, 30]) };
    const result = decide(HOST, [busy], on('busy'), facts(after, 92, low));
    expect(result.decision).toMatchObject({ action: 'stay', to: 'busy' });
    expect(result.state.current).toBe('busy');
    // Once the observation agrees, the host leaves.
    expect(decide(HOST, [busy], on('busy'), facts(after, 20, low)).decision).toMatchObject({
      action: 'revert',
      to: null,
    });
  });

  it('is not taken off its persona by a negated forecast', () => {
    const calm = compiled('calm', { criteria: { not: predicted('act') } });
    // The forecast says 90 is coming: `not predicted` is false, on the forecast alone.
    const result = decide(HOST, [calm], on('calm'), facts(RISE - 300_000, 15));
    expect(result.decision).toMatchObject({ action: 'stay', to: 'calm' });
    expect(result.decision.summary).toContain('false only on a forecast');
  });

  it('is not pre-empted by a persona ranked above that holds only on a forecast', () => {
    const steady = compiled('steady', {
      priority: 20,
      criteria: { metric: { name: 'cpu.utilization', op: '>', value: 10 } },
    });
    const peak = compiled('peak', { priority: 10, criteria: predicted('act') });
    const held = decide(HOST, [peak, steady], on('steady'), facts(RISE - 300_000, 15));
    expect(held.decision).toMatchObject({ action: 'stay', to: 'steady' });
    expect(held.decision.summary).toContain('peak holds only on a forecast');
    // The host's own persona no longer holding, the forecast takes it to peak ahead of the rise.
    const moved = decide(HOST, [peak, steady], on('steady'), facts(RISE - 300_000, 5));
    expect(moved.decision).toMatchObject({ action: 'switch', to: 'peak', mode: 'act' });
  });
});

// ------------------------------------------------------------------------------ evaluation

class States {
  readonly states = new Map<string, HostPersonaState>();
  readonly decisions: Decision[] = [];
  async get(host: string) {
    return this.states.get(host);
  }
  async save(state: HostPersonaState) {
    this.states.set(state.host, state);
  }
  async record(d: Decision) {
    this.decisions.push(d);
  }
  async latest(host: string) {
    return this.decisions.filter((d) => d.host === host).at(-1);
  }
  async hostsWith() {
    return [];
  }
}

function deps(personas: readonly Persona[], history: MetricSeries, tags: Record<string, string> = {}) {
  const reads: number[] = [];
  const switches: PersonaSwitchRequest[] = [];
  const states = new States();
  const d: EvaluationDeps = {
    personas: { loadAll: async () => personas.map((persona) => ({ persona, version: { version: 1 } })) },
    hosts: {
      get: async (name) => ({ registration: { name, tags } }),
      list: async () => ({ items: [] }),
    },
    states,
    metrics: {
      async series(_host, names, since) {
        reads.push(since);
        const n = history.times.length;
        const times: number[] = [];
        const values: number[] = [];
        for (let i = 0; i < n; i++)
          if ((history.times[i] as number) >= since) {
            times.push(history.times[i] as number);
            values.push(history.values[i] as number);
          }
        return new Map(names.includes('cpu.utilization') ? [['cpu.utilization', { times, values }]] : []);
      },
    },
    signals: { forHost: async () => new Map() },
    startSwitch: async (r) => {
      switches.push(r);
      return { operationId: `op-${switches.length}` };
    },
  };
  return { deps: d, reads, switches, states };
}

describe('evaluation with a forecast from the metric history', () => {
  // A daily peak at 14:30 in Paris; the criterion's threshold is first met in the 13:00 hour.
  const now = Date.parse('2026-06-17T09:50:00Z'); // 11:50 in Paris
  const history = seasonalSeries({
    seed: 7,
    from: now - 14 * 86_400_000,
    to: now,
    intervalMs: 60_000,
    zone: 'Europe/Paris',
    peakHour: 14.5,
    weekendFactor: 1,
    noise: 0.5,
  });
  // Persona versions are compiled once per name and version: each test has its own name.
  const ahead = (name: string, mode: 'act' | 'report') =>
    spec(name, { criteria: { predicted: { name: 'cpu.utilization', op: '>', value: 62, mode } } });

  it('switches ahead of the rise in acting mode, reading two weeks of history once per hour', async () => {
    clearForecasts();
    const f = deps([ahead('busy', 'act')], history, { timezone: 'Europe/Paris' });
    const early = await evaluateHost(f.deps, HOST, now);
    expect(early.decision?.action).toBe('stay');
    expect(f.reads[0]).toBeLessThanOrEqual(now - 14 * 86_400_000);
    // 65 minutes before 13:00 in Paris (the hour's forecast meets 62): within 3600 s, buffer 300 s.
    const later = await evaluateHost(f.deps, HOST, now + 6 * MIN);
    expect(later.decision).toMatchObject({ action: 'switch', to: 'busy', mode: 'act' });
    expect(later.operationId).toBe('op-1');
    expect(f.switches).toHaveLength(1);
    // The host's own load is still below the threshold: the switch is ahead of it.
    const latest = history.values[history.values.length - 1] as number;
    expect(latest).toBeLessThan(62);
    // The second evaluation in the same hour read only the last minutes.
    expect(f.reads[1]).toBeGreaterThan(now - H);
  });

  it('in forecast-only mode records the would-be switch and starts nothing', async () => {
    clearForecasts();
    const f = deps([ahead('busy-report', 'report')], history, { timezone: 'Europe/Paris' });
    const result = await evaluateHost(f.deps, HOST, now + 6 * MIN);
    expect(result.decision).toMatchObject({ action: 'switch', to: 'busy-report', mode: 'report' });
    expect(result.recorded).toBe(true);
    expect(f.switches).toEqual([]);
    expect(f.states.decisions[0]?.summary).toContain('forecast only');
    expect(f.states.states.get(HOST)?.current ?? null).toBeNull();
  });

  it('has no forecast from less than a day of history, and says why', async () => {
    clearForecasts();
    const short = seasonalSeries({ seed: 7, from: now - 20 * H, to: now, intervalMs: 60_000 });
    const personas = [ahead('busy-short', 'act')];
    const f = deps(personas, short);
    const result = await evaluateHost(f.deps, HOST, now + 6 * MIN);
    expect(result.decision?.action).toBe('stay');
    expect(result.decision?.reasons).toEqual([expect.objectContaining({ holds: 'unknown' })]);
    expect(f.switches).toEqual([]);
    const view = await hostForecast(
      f.deps.metrics,
      { name: HOST },
      compileAll(personas.map((persona) => ({ persona, version: { version: 1 } }))),
      now,
    );
    expect(view.metrics).toEqual([
      expect.objectContaining({ metric: 'cpu.utilization', forecast: null, accuracy: null }),
    ]);
    expect(view.metrics[0]?.reason).toContain('20 hours with samples, 24 needed to forecast');
  });
});
