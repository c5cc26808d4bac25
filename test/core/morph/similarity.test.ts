import { describe, expect, it } from 'vitest';
import { recommend, similarity } from '../../../core/morph/similarity.js';
import { TargetProfile } from '../../../core/morph/target.js';
import { profile } from '../delta/fixtures.js';

const target = (name: string, traits: Record<string, number>, importance: Record<string, number> = {}) =>
  TargetProfile.parse({
    apiVersion: 'persona/v1',
    kind: 'TargetProfile',
    metadata: { name },
    spec: { traits, importance },
  });

const web = target('web-server', { 'web-serving': 0.9, 'latency-sensitive': 0.9, 'network-heavy': 0.6 });
const db = target('database-server', { database: 0.9, 'io-bound': 0.7, 'memory-heavy': 0.7 });
const batch = target('analytics-node', { batch: 0.8, 'cpu-bound': 0.8 });

const withTraits = (traits: Record<string, number>) =>
  profile({}, { observed: { traitVector: { traits } } } as never);

describe('similarity', () => {
  it('is 1 for a host exactly like the target, and its terms add up to it', () => {
    const s = similarity({ 'web-serving': 0.9, 'latency-sensitive': 0.9, 'network-heavy': 0.6 }, web);
    expect(s.similarity).toBe(1);
    const sum = s.evidence.reduce((a, e) => a + e.contribution, 0);
    expect(Math.abs(sum - s.similarity)).toBeLessThan(0.005);
  });

  it('is 0 for a host with none of the target traits, and for an empty vector', () => {
    expect(similarity({ database: 1 }, web).similarity).toBe(0);
    expect(similarity({}, web).similarity).toBe(0);
  });

  it('weighs traits by the target importance', () => {
    const host = { 'web-serving': 1, 'latency-sensitive': 0 };
    const plain = target('a', { 'web-serving': 1, 'latency-sensitive': 1 });
    const heavy = target('b', { 'web-serving': 1, 'latency-sensitive': 1 }, { 'web-serving': 4 });
    expect(similarity(host, heavy).similarity).toBeGreaterThan(similarity(host, plain).similarity);
  });

  it('orders the evidence by contribution and says what the host lacks', () => {
    const s = similarity({ 'web-serving': 0.3, 'latency-sensitive': 0.8 }, web);
    expect(s.evidence[0]?.trait).toBe('latency-sensitive');
    expect(s.evidence[1]?.trait).toBe('web-serving');
    expect(s.evidence.find((e) => e.trait === 'network-heavy')).toMatchObject({ contribution: 0, gap: 0.6 });
  });
});

describe('recommend', () => {
  it('names the nearest target with the traits that pulled the host there', () => {
    const rec = recommend(
      'h',
      withTraits({ database: 0.95, 'io-bound': 0.5, 'memory-heavy': 0.8 }),
      [web, db, batch],
      3,
    );
    expect(rec.recommended).toBe('database-server');
    expect(rec.profile).toEqual({ name: 'web-1', version: 3 });
    expect(rec.ranked.map((r) => r.target)).toEqual(['database-server', 'analytics-node', 'web-server']);
    // Equally far: the tie goes to the name first in order.
    expect(rec.ranked[1]?.similarity).toBe(rec.ranked[2]?.similarity);
    expect(rec.margin).toBeGreaterThan(0.5);
    expect(rec.evidence.pulledBy.map((e) => e.trait)).toEqual(['database', 'memory-heavy', 'io-bound']);
  });

  it('recommends nothing when no target is at least half alike', () => {
    const rec = recommend('h', withTraits({ 'network-heavy': 0.2, database: 0.2, batch: 0.2 }), [db, batch]);
    expect(rec.recommended).toBeNull();
    expect(rec.ranked).toHaveLength(2);
  });

  it('computes the vector from the spec and listeners when the capture recorded none', () => {
    const host = profile({ packages: [{ name: 'nginx', version: '1.22', manager: 'apt' }] }, {
      observed: { listening: [{ protocol: 'tcp', address: '0.0.0.0', port: 80 }] },
    } as never);
    const rec = recommend('h', host, [web, db, batch]);
    expect(rec.vector['web-serving']).toBeGreaterThan(0.6);
    expect(rec.recommended).toBe('web-server');
  });
});
