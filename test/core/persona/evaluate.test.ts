// decide(): priority order, the default persona, hysteresis, cool-down, manual activations
// (retained or enforced), report mode, the reasons recorded, and that a metric flapping
// around its threshold switches no more than the hold and cool-down allow.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CompiledPersona,
  compilePersona,
  decide,
  manualUntil,
  nextWindowEdge,
} from '../../../core/persona/evaluate.js';
import {
  API_VERSION,
  type CriterionInput,
  type EvaluationInput,
  type HostPersonaState,
  type MetricSeries,
  Persona,
  type PersonaInput,
} from '../../../core/persona/schema.js';

const NOW = Date.parse('2026-06-10T12:00:00Z'); // Wednesday, 14:00 in Paris
const MINUTE = 60_000;
const HOST = 'web-1';

function persona(
  name: string,
  spec: Partial<PersonaInput['spec']> & { criteria?: CriterionInput },
  version = 1,
): CompiledPersona {
  return compilePersona(
    Persona.parse({
      apiVersion: API_VERSION,
      kind: 'Persona',
      metadata: { name },
      spec: { hosts: {}, parameters: {}, hysteresis: { holdSeconds: 0, coolDownSeconds: 0 }, ...spec },
    }),
    version,
  );
}

function facts(
  now: number,
  signals: Record<string, boolean> = {},
  metrics: Record<string, MetricSeries> = {},
): EvaluationInput {
  return {
    now,
    metric: (name) => metrics[name],
    signal: (name) => (name in signals ? { value: signals[name] as boolean, at: now } : undefined),
    predicted: () => undefined,
  };
}
const flag = (name: string): CriterionInput => ({ signal: { name, op: '==', value: true } });
const state = (
  current: string | null,
  since = NOW - 86_400_000,
  extra: Partial<HostPersonaState> = {},
): HostPersonaState => ({
  host: HOST,
  current,
  since,
  ...extra,
});

describe('decide: which persona', () => {
  const base = persona('base', { default: true, priority: 1000 });
  const batch = persona('batch', { priority: 50, criteria: flag('batch') });
  const burst = persona('burst', { priority: 10, criteria: flag('burst') });
  const alpha = persona('alpha', { priority: 50, criteria: flag('alpha') });

  it('takes the first true persona by priority, then by name', () => {
    const all = [base, batch, alpha, burst];
    expect(decide(HOST, all, state('base'), facts(NOW, { batch: true, burst: true })).decision).toMatchObject(
      {
        action: 'switch',
        from: 'base',
        to: 'burst',
      },
    );
    expect(decide(HOST, all, state('base'), facts(NOW, { batch: true, alpha: true })).decision.to).toBe(
      'alpha',
    );
  });

  it('reverts to the default persona when none holds, and to the host’s own parameters without one', () => {
    const reverted = decide(HOST, [base, burst], state('burst'), facts(NOW, { burst: false }));
    expect(reverted.decision).toMatchObject({ action: 'revert', to: 'base' });
    expect(reverted.state).toMatchObject({ current: 'base', currentVersion: 1, since: NOW });
    expect(decide(HOST, [burst], state('burst'), facts(NOW, { burst: false })).decision).toMatchObject({
      action: 'revert',
      to: null,
    });
    expect(decide(HOST, [base, burst], undefined, facts(NOW)).decision).toMatchObject({
      action: 'revert',
      from: null,
      to: 'base',
    });
  });

  it('stays when the choice is the persona the host has', () => {
    const { decision, state: next } = decide(
      HOST,
      [base, burst],
      state('burst', NOW - MINUTE),
      facts(NOW, { burst: true }),
    );
    expect(decision).toMatchObject({ action: 'stay', to: 'burst' });
    expect(next.since).toBe(NOW - MINUTE);
  });

  it('never takes on a persona without criteria, nor one whose criteria are unknown', () => {
    const manualOnly = persona('maintenance', { priority: 1 });
    expect(decide(HOST, [manualOnly, base, burst], state('base'), facts(NOW)).decision.action).toBe('stay');
  });

  it('considers only the personas that select the host', () => {
    const other = persona('other', { priority: 1, hosts: { names: ['db-1'] }, criteria: flag('burst') });
    const labelled = persona('labelled', {
      priority: 2,
      hosts: { labels: { tier: 'web' } },
      criteria: flag('burst'),
    });
    const signals = facts(NOW, { burst: true });
    expect(decide(HOST, [other, burst], state(null), signals).decision.to).toBe('burst');
    expect(
      decide({ name: HOST, labels: { tier: 'db' } }, [labelled, burst], state(null), signals).decision.to,
    ).toBe('burst');
    expect(
      decide({ name: HOST, labels: { tier: 'web' } }, [labelled, burst], state(null), signals).decision.to,
    ).toBe('labelled');
  });

  it('applies a newer version of the persona the host has', () => {
    const v2 = persona('burst', { priority: 10, criteria: flag('burst') }, 2);
    const { decision, state: next } = decide(
      HOST,
      [v2],
      state('burst', NOW - MINUTE, { currentVersion: 1 }),
      facts(NOW, { burst: true }),
    );
    expect(decision).toMatchObject({ action: 'switch', from: 'burst', to: 'burst' });
    expect(next).toMatchObject({ currentVersion: 2, since: NOW - MINUTE });
  });
});

describe('decide: hysteresis and cool-down', () => {
  const base = persona('base', { default: true });
  const burst = persona('burst', {
    priority: 10,
    criteria: flag('burst'),
    hysteresis: { holdSeconds: 600, coolDownSeconds: 0 },
  });

  it('stays while the persona’s criteria are unknown, saying which data is missing', () => {
    const { decision, state: next } = decide(HOST, [base, burst], state('burst'), facts(NOW));
    expect(decision.action).toBe('stay');
    expect(decision.summary).toContain('unknown (burst: never posted)');
    expect(next.current).toBe('burst');
  });

  it('leaves only once the criteria have been false for the hold time; true again restarts it', () => {
    const first = decide(HOST, [base, burst], state('burst'), facts(NOW, { burst: false }));
    expect(first.decision.action).toBe('hold');
    expect(first.state.falseSince).toBe(NOW);
    const later = decide(HOST, [base, burst], first.state, facts(NOW + 599_000, { burst: false }));
    expect(later.decision.action).toBe('hold');
    const back = decide(HOST, [base, burst], later.state, facts(NOW + 599_500, { burst: true }));
    expect(back.decision.action).toBe('stay');
    expect(back.state.falseSince).toBeUndefined();
    const again = decide(HOST, [base, burst], back.state, facts(NOW + 600_000, { burst: false }));
    expect(again.decision.action).toBe('hold');
    const gone = decide(HOST, [base, burst], again.state, facts(NOW + 1_200_000, { burst: false }));
    expect(gone.decision).toMatchObject({ action: 'revert', to: 'base' });
  });

  it('is pre-empted at once by a higher-priority persona that becomes true', () => {
    const urgent = persona('urgent', { priority: 1, criteria: flag('urgent') });
    const { decision } = decide(
      HOST,
      [base, burst, urgent],
      state('burst'),
      facts(NOW, { burst: true, urgent: true }),
    );
    expect(decision).toMatchObject({ action: 'switch', to: 'urgent' });
  });

  it('holds off a switch within the cool-down, the larger of the two personas’', () => {
    const slow = persona('slow', {
      priority: 20,
      criteria: flag('slow'),
      hysteresis: { holdSeconds: 0, coolDownSeconds: 900 },
    });
    const quick = persona('quick', {
      priority: 5,
      criteria: flag('quick'),
      hysteresis: { holdSeconds: 0, coolDownSeconds: 60 },
    });
    const since = NOW - 300_000;
    const { decision, state: next } = decide(
      HOST,
      [slow, quick],
      state('slow', since),
      facts(NOW, { slow: true, quick: true }),
    );
    expect(decision.action).toBe('cool-down');
    expect(decision.to).toBe('slow');
    expect(decision.summary).toContain(new Date(since + 900_000).toISOString());
    expect(decision.summary).toContain('criteria call for quick');
    expect(next).toMatchObject({ current: 'slow', since });
    expect(
      decide(HOST, [slow, quick], state('slow', NOW - 900_000), facts(NOW, { slow: true, quick: true }))
        .decision.action,
    ).toBe('switch');
  });

  const flapping = fc.array(fc.double({ min: 70, max: 90, noNaN: true }), { minLength: 30, maxLength: 120 });

  it('property: a metric oscillating around its threshold switches no more than hold and cool-down allow', () => {
    const HOLD = 300;
    const COOL = 600;
    const hot = persona('hot', {
      priority: 10,
      criteria: { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 120 } },
      hysteresis: { holdSeconds: HOLD, coolDownSeconds: COOL },
    });
    const cold = persona('cold', { default: true, hysteresis: { holdSeconds: 0, coolDownSeconds: COOL } });
    let leftHot = 0;
    fc.assert(
      fc.property(flapping, (cpu) => {
        let s: HostPersonaState | undefined;
        const switches: number[] = [];
        const falseAt: number[] = [];
        for (let i = 0; i < cpu.length; i++) {
          const now = NOW + i * MINUTE;
          const series = {
            times: cpu.slice(0, i + 1).map((_, k) => NOW + k * MINUTE),
            values: cpu.slice(0, i + 1),
          };
          const input = facts(now, {}, { 'cpu.utilization': series });
          if (hot.criteria?.test(input) === 0) falseAt.push(now);
          const { decision, state: next } = decide(HOST, [hot, cold], s, input);
          if (decision.action === 'switch' || decision.action === 'revert') {
            if (s !== undefined) switches.push(now);
            if (decision.from === 'hot') {
              leftHot++;
              // Left only after every evaluation of the hold time saw its criteria false.
              for (let t = now - HOLD * 1000; t <= now; t += MINUTE) expect(falseAt).toContain(t);
            }
          }
          s = next;
        }
        for (let k = 1; k < switches.length; k++) {
          expect((switches[k] as number) - (switches[k - 1] as number)).toBeGreaterThanOrEqual(COOL * 1000);
        }
      }),
      { numRuns: 100 },
    );
    expect(leftHot).toBeGreaterThan(0); // the runs did flap
  });
});

describe('decide: manual activations', () => {
  const base = persona('base', { default: true });
  const retain = persona('burst', { priority: 10, criteria: flag('burst') });
  const enforced = persona('guard', { priority: 5, criteria: flag('guard'), override: 'enforced' });

  it('keeps a manual choice in force over the criteria (retain)', () => {
    const manual = { persona: 'base', at: NOW - MINUTE, until: NOW + 3_600_000 };
    const { decision, state: next } = decide(
      HOST,
      [base, retain],
      state('base', NOW - MINUTE, { manual }),
      facts(NOW, { burst: true }),
    );
    expect(decision).toMatchObject({ action: 'manual', from: 'base', to: 'base' });
    expect(decision.summary).toContain('criteria call for burst');
    expect(next.manual).toEqual(manual);
  });

  it('moves the host to the manual choice when it does not have it yet', () => {
    const manual = { persona: 'burst', at: NOW, until: null };
    const { decision, state: next } = decide(
      HOST,
      [base, retain],
      state('base', NOW - MINUTE, { manual }),
      facts(NOW),
    );
    expect(decision).toMatchObject({ action: 'manual', from: 'base', to: 'burst' });
    expect(next).toMatchObject({ current: 'burst', since: NOW, manual });
  });

  it('undoes a manual choice at once when the persona the criteria choose is enforced', () => {
    const manual = { persona: 'base', at: NOW - MINUTE, until: null };
    const s = state('base', NOW - MINUTE, { manual, current: 'base' });
    const { decision, state: next } = decide(HOST, [base, retain, enforced], s, facts(NOW, { guard: true }));
    expect(decision).toMatchObject({ action: 'switch', to: 'guard' });
    expect(decision.summary).toContain('enforced');
    expect(next.manual).toBeUndefined();
  });

  it('drops an expired manual choice and evaluates as usual', () => {
    const manual = { persona: 'base', at: NOW - 7_200_000, until: NOW };
    const { decision, state: next } = decide(
      HOST,
      [base, retain],
      state('base', NOW - 7_200_000, { manual }),
      facts(NOW, { burst: true }),
    );
    expect(decision).toMatchObject({ action: 'switch', to: 'burst' });
    expect(next.manual).toBeUndefined();
    const stayed = decide(HOST, [base, retain], state('base', NOW - 7_200_000, { manual }), facts(NOW));
    expect(stayed.state.manual).toBeUndefined();
  });

  it('keeps a manual activation until the next window edge of the host’s personas', () => {
    const office = persona('office', {
      criteria: {
        schedule: {
          timezone: 'Europe/Paris',
          windows: [{ start: '09:00', end: '18:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'] }],
        },
      },
    });
    const night = persona('night', {
      criteria: {
        all: [flag('x'), { schedule: { timezone: 'UTC', windows: [{ start: '22:00', end: '06:00' }] } }],
      },
    });
    expect(nextWindowEdge([office, night], NOW)).toBe(Date.parse('2026-06-10T16:00:00Z')); // 18:00 in Paris
    expect(manualUntil([office, night], NOW)).toBe(Date.parse('2026-06-10T16:00:00Z'));
    expect(manualUntil([retain], NOW)).toBeNull();
  });
});

describe('decide: reasons', () => {
  const base = persona('base', { default: true });
  const burst = persona('burst', { priority: 10, criteria: flag('burst') });
  const batch = persona('batch', { priority: 20, criteria: flag('batch') });

  it('carries its reasons through JSON and spreads, built from the evaluation it was decided on', () => {
    const stayed = decide(HOST, [base, burst, batch], state('base'), facts(NOW, { burst: false }));
    // Another decision in between must not change what the first one says.
    decide(HOST, [base, burst, batch], state('base'), facts(NOW, { burst: true, batch: true }));
    const expected = [
      { path: '/signal', holds: 'false', detail: 'burst: its criteria are false' },
      { path: '/signal', holds: 'unknown', detail: 'batch: its criteria are unknown' },
    ];
    expect(JSON.parse(JSON.stringify(stayed.decision)).reasons).toEqual(expected);
    expect({ ...stayed.decision }.reasons).toEqual(expected);
    expect(stayed.decision.summary).toBe("web-1 stays on base: no persona's criteria hold");
  });
});

describe('decide: report mode and reasons', () => {
  const base = persona('base', { default: true });
  const trial = persona('trial', { priority: 10, criteria: flag('burst'), mode: 'report' });

  it('reports what would be done and leaves the host where it is', () => {
    const s = state('base', NOW - 86_400_000, { currentVersion: 1 });
    const { decision, state: next } = decide(HOST, [base, trial], s, facts(NOW, { burst: true }));
    expect(decision).toMatchObject({ action: 'switch', mode: 'report', from: 'base', to: 'trial' });
    expect(decision.summary).toContain('would switch');
    expect(next).toMatchObject({ current: 'base', since: s.since, currentVersion: 1 });
  });

  it('records which criterion held, by path, with the values it saw', () => {
    const hot = persona('hot', {
      priority: 10,
      criteria: {
        any: [
          { signal: { name: 'lb/scale-out', op: '==', value: true } },
          { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 300, statistic: 'average' } },
        ],
      },
    });
    const values = [88, 90, 91, 92, 93, 95, 91, 92, 90, 93];
    const series = { times: values.map((_, i) => NOW - (9 - i) * 30_000), values, intervalSeconds: 30 };
    const { decision } = decide(
      HOST,
      [base, hot],
      state('base'),
      facts(NOW, {}, { 'cpu.utilization': series }),
    );
    expect(decision.summary).toBe('web-1 switches from base to hot: its criteria hold');
    const metric = decision.reasons.find((r) => r.path === '/any/1/metric');
    expect(metric).toMatchObject({
      holds: 'true',
      values: { 'cpu.utilization': 91.5, threshold: 80, forSeconds: 300, samples: 10 },
    });
    expect(metric?.detail).toMatch(/^hot: /);
    expect(decision.reasons.find((r) => r.path === '/any/0/signal')).toBeUndefined(); // unknown: not what decided
  });
});
