// Morph policies speak the personas' criteria language: a schedule, a metric held for a
// duration (resource demand), a forecast (predicted demand), and workload detection.
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { compilePolicy, decideMorph, MorphPolicy } from '../../../core/morph/policy.js';
import type { Recommendation } from '../../../core/morph/similarity.js';
import type { EvaluationInput, MetricSeries } from '../../../core/persona/schema.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');

const policy = (spec: Record<string, unknown>) =>
  MorphPolicy.parse({ apiVersion: 'persona/v1', kind: 'MorphPolicy', metadata: { name: 'p' }, spec });

const input = (
  metrics: Record<string, number> = {},
  predicted: Record<string, number> = {},
): EvaluationInput => ({
  now: NOW,
  metric: (name) =>
    metrics[name] === undefined
      ? undefined
      : ({
          times: [NOW - 1000],
          values: [metrics[name] as number],
          intervalSeconds: 60,
        } satisfies MetricSeries),
  signal: () => undefined,
  predicted: (name) =>
    predicted[name] === undefined
      ? undefined
      : { max: predicted[name] as number, min: predicted[name] as number },
});

const rec = (recommended: string | null, similarity: number, margin: number): Recommendation => ({
  host: 'h',
  profile: { name: 'h' },
  vector: {} as Recommendation['vector'],
  recommended,
  similarity,
  margin,
  evidence: { pulledBy: [], lacking: [] },
  ranked: [],
});

describe('morph policies', () => {
  it('start on resource demand once the metric criterion holds, naming the trigger and why', () => {
    const p = compilePolicy(
      policy({ target: 'web-server', when: { metric: { name: 'cpu.utilization', op: '>', value: 80 } } }),
    );
    expect(decideMorph(p, { input: input({ 'cpu.utilization': 50 }) }).start).toBe(false);
    const d = decideMorph(p, { input: input({ 'cpu.utilization': 93 }) });
    expect(d).toMatchObject({ start: true, target: 'web-server', trigger: 'demand' });
    expect(d.reasons.length).toBeGreaterThan(0);
  });

  it('start on predicted demand, and say so', () => {
    const p = compilePolicy(
      policy({
        target: 'web-server',
        when: { predicted: { name: 'requests.per_second', op: '>', value: 100, mode: 'act' } },
      }),
    );
    expect(decideMorph(p, { input: input({}, { 'requests.per_second': 250 }) })).toMatchObject({
      start: true,
      trigger: 'predicted',
    });
  });

  it('start on workload detection only when the recommendation is alike and ahead enough', () => {
    const p = compilePolicy(
      policy({ target: 'recommended', detection: { minSimilarity: 0.7, minMargin: 0.1 } }),
    );
    expect(decideMorph(p, { input: input(), recommendation: rec('web-server', 0.65, 0.3) }).start).toBe(
      false,
    );
    expect(decideMorph(p, { input: input(), recommendation: rec('web-server', 0.9, 0.05) }).start).toBe(
      false,
    );
    expect(decideMorph(p, { input: input(), recommendation: rec('web-server', 0.9, 0.3) })).toMatchObject({
      start: true,
      target: 'web-server',
      trigger: 'detection',
    });
    // Not again to where it already went.
    expect(
      decideMorph(p, { input: input(), recommendation: rec('web-server', 0.9, 0.3), current: 'web-server' })
        .start,
    ).toBe(false);
  });

  it('keeps its cool-down after a morph', () => {
    const p = compilePolicy(
      policy({
        target: 'web-server',
        cooldownSeconds: 600,
        when: { metric: { name: 'cpu.utilization', op: '>', value: 80 } },
      }),
    );
    const busy = input({ 'cpu.utilization': 95 });
    expect(decideMorph(p, { input: busy, lastMorphAt: NOW - 60_000 }).start).toBe(false);
    expect(decideMorph(p, { input: busy, lastMorphAt: NOW - 601_000 }).start).toBe(true);
  });

  it('refuses a policy with no trigger, and criteria the compiler refuses, naming the field', () => {
    expect(() => policy({ target: 'web-server' })).toThrow();
    expect(() =>
      compilePolicy(
        policy({ target: 'web-server', when: { metric: { name: 'cpu.utilization', op: '>', value: 1 } } }),
      ),
    ).not.toThrow();
    let deep: Record<string, unknown> = { metric: { name: 'cpu.utilization', op: '>', value: 1 } };
    for (let i = 0; i < 40; i++) deep = { not: deep };
    expect(() => compilePolicy(policy({ target: 'web-server', when: deep }))).toThrow(InvalidInputError);
  });
});
