import { describe, expect, it } from 'vitest';
import { judge, probeCommand, summarize } from '../../../core/morph/watch.js';

const http = { kind: 'http', port: 8080, path: '/' } as const;
const samples = (values: number[], failed = 0) => [
  ...values.map((value) => ({ ok: true, value })),
  ...Array.from({ length: failed }, () => ({ ok: false, value: 0 })),
];

describe('the morph watch', () => {
  const tolerance = { latencyPercent: 50, errorRate: 0 };

  it('passes a host as fast as before, within the tolerance and the noise floor', () => {
    const before = summarize(http, samples([5, 6, 5, 7]));
    expect(judge(before, summarize(http, samples([8, 9, 7, 8])), tolerance).degraded).toBe(false);
  });

  it('fails a median beyond the tolerance, naming both medians', () => {
    const before = summarize(http, samples([50, 52, 48]));
    const v = judge(before, summarize(http, samples([120, 130, 110])), tolerance);
    expect(v.degraded).toBe(true);
    expect(v.reasons[0]).toMatch(/median latency 120 against 50/);
  });

  it('fails probes that fail more often than before', () => {
    const before = summarize(http, samples([5, 5, 5, 5]));
    const v = judge(before, summarize(http, samples([5, 5, 5], 1)), tolerance);
    expect(v.degraded).toBe(true);
    expect(v.reasons[0]).toMatch(/25% of probes failed/);
    expect(
      judge(before, summarize(http, samples([5, 5, 5], 1)), { ...tolerance, errorRate: 0.3 }).degraded,
    ).toBe(false);
  });

  it('probes the host itself through curl, with the URL quoted after --', () => {
    expect(probeCommand(http)).toMatch(/curl .* -- 'http:\/\/127\.0\.0\.1:8080\/'$/);
    expect(probeCommand({ kind: 'load' })).toBe('cat /proc/loadavg');
  });
});
