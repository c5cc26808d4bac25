import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeTraits, TRAIT_WEIGHTS, type TraitInputs } from '../../../core/capture/traits.js';
import { build, fixture } from './helpers.js';

const inRange = (traits: Record<string, number>) => Object.values(traits).every((v) => v >= 0 && v <= 1);

describe('computeTraits', () => {
  it('has weights that add up to one for every trait, so a trait is in [0, 1] by construction', () => {
    for (const [trait, weights] of Object.entries(TRAIT_WEIGHTS)) {
      const sum = Object.values(weights).reduce((a, b) => a + b, 0);
      expect(sum, trait).toBeCloseTo(1, 10);
    }
  });

  it('gives the same vector for the same capture, every time', () => {
    for (const name of ['debian-12', 'rhel-9', 'alpine-3']) {
      const first = build(fixture(name)).profile.observed?.traitVector;
      const second = build(fixture(name)).profile.observed?.traitVector;
      expect(second).toEqual(first);
      expect(inRange(first?.traits ?? {})).toBe(true);
      expect(Object.keys(first?.traits ?? {})).toEqual(Object.keys(TRAIT_WEIGHTS));
    }
  });

  it('stays within [0, 1] whatever the measurements, however extreme', () => {
    const number = fc.oneof(fc.double({ noNaN: false }), fc.integer(), fc.constant(Number.POSITIVE_INFINITY));
    fc.assert(
      fc.property(
        fc.record({
          packages: fc.array(fc.constantFrom('nginx', 'postgresql', 'cron', 'slurm', 'bash')),
          ports: fc.array(fc.integer({ min: 0, max: 65535 })),
          cpu: number,
          memory: number,
          iops: number,
          rx: number,
          connections: fc.nat(),
          load: number,
          count: fc.integer({ min: 1, max: 512 }),
          iowait: number,
          swap: number,
          nice: fc.integer({ min: -20, max: 19 }),
        }),
        (r) => {
          const inputs: TraitInputs = {
            spec: {
              packages: r.packages.map((name) => ({ name, version: '1', manager: 'apt' })),
              processes: [{ name: 'p', command: 'p', nice: r.nice }],
              resources: { cpu: { count: r.count } },
            },
            listening: r.ports.map((port) => ({ protocol: 'tcp', address: '0.0.0.0', port })),
            usage: {
              network: {
                rxBytesPerSecond: Math.abs(r.rx) || 0,
                txBytesPerSecond: 0,
                connections: r.connections,
              },
              performance: {
                cpuUtilization: r.cpu,
                memoryUtilization: r.memory,
                diskIops: r.iops,
                loadAverage: [r.load, r.load, r.load],
              },
            },
            iowait: r.iowait,
            swapUsed: r.swap,
          };
          const vector = computeTraits(inputs);
          expect(inRange(vector.traits)).toBe(true);
          expect(computeTraits(inputs)).toEqual(vector);
        },
      ),
    );
  });

  it('scores a web server as web-serving and a quiet host without listeners as batch-leaning', () => {
    const web = computeTraits({
      spec: {
        packages: [{ name: 'nginx', version: '1', manager: 'apt' }],
        services: [{ name: 'nginx', state: 'running', enabled: true }],
      },
      listening: [{ protocol: 'tcp', address: '0.0.0.0', port: 443 }],
      usage: undefined,
    });
    expect(web.traits['web-serving']).toBe(1);
    expect(web.traits.batch).toBe(0);
    const quiet = computeTraits({
      spec: {
        packages: [{ name: 'cron', version: '1', manager: 'apt' }],
        processes: [{ name: 'job', command: 'job', nice: 10 }],
      },
      listening: [{ protocol: 'tcp', address: '127.0.0.1', port: 5000 }],
      usage: undefined,
    });
    expect(quiet.traits.batch).toBe(0.7);
    expect(quiet.traits['web-serving']).toBe(0);
  });
});
