import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { LoadTargetPolicy } from '../../../core/validation/addresses.js';
import { runLoad, runLoadComparison } from '../../../core/validation/load.js';
import { LoadComparison } from '../../../core/validation/report.js';
import { startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(delayMs: (index: number) => number, status: (index: number) => number = () => 200) {
  const s = await startServer((_req, res, index) => {
    setTimeout(() => {
      res.writeHead(status(index), { 'content-type': 'text/plain' });
      res.end('ok');
    }, delayMs(index));
  });
  servers.push(s);
  return s;
}

async function rejection(promise: Promise<unknown>): Promise<InvalidInputError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidInputError);
  return error as InvalidInputError;
}

// Wide tolerances where the test is not about latency: a loaded machine must not fail them.
const lenient = { p95AbsoluteMs: 250, p99AbsoluteMs: 500, minThroughputRatio: 0.5 };

describe('runLoad', () => {
  it('keeps sending at the fixed rate while the server stalls, and the stall shows in p99', async () => {
    const steady = await server(() => 0);
    // From its 10th request the server holds every answer until 500 ms later, as a pause would.
    let stallUntil = 0;
    const stalling = await startServer((_req, res, index) => {
      if (index === 10) stallUntil = Date.now() + 500;
      setTimeout(() => res.end('ok'), Math.max(0, stallUntil - Date.now()));
    });
    servers.push(stalling);
    const options = { ratePerSecond: 50, durationMs: 1000, maxRequests: 1000 };
    const source = await runLoad(steady.endpoint, options);
    const candidate = await runLoad(stalling.endpoint, options);

    // A closed loop would have sent fewer requests to the stalled server; the open model sends all.
    expect(candidate.sent).toBe(50);
    expect(stalling.received()).toBe(50);
    expect(candidate.errors).toBe(0);
    expect(candidate.latencyMs.p99).toBeGreaterThan(source.latencyMs.p99 + 300);
    expect(candidate.latencyMs.max).toBeGreaterThanOrEqual(candidate.latencyMs.p99);
  });

  it('never sends more than maxRequests', async () => {
    const s = await server(() => 0);
    const result = await runLoad(s.endpoint, { ratePerSecond: 200, durationMs: 1000, maxRequests: 7 });
    expect(result).toMatchObject({ planned: 7, sent: 7, succeeded: 7, errors: 0 });
    expect(s.received()).toBe(7);
  });

  it('ends by its time bound against a server that never answers, counting the unanswered as errors', async () => {
    const silent = await startServer(() => {});
    servers.push(silent);
    const started = Date.now();
    const result = await runLoad(silent.endpoint, {
      ratePerSecond: 20,
      durationMs: 500,
      maxRequests: 100,
      requestTimeoutMs: 60_000,
      maxDurationMs: 800,
    });
    // The bound is 800 ms; the margin is for a loaded machine, far below the 60 s time-out.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ sent: 10, succeeded: 0, errors: 10, errorRate: 1, cutShort: true });
    expect(result.errorReasons).toEqual({ 'abandoned at the time bound': 10 });
  });

  it('refuses a non-loopback address before opening any socket', async () => {
    const connect = vi.spyOn(net.Socket.prototype, 'connect');
    for (const address of ['10.1.2.3', '::ffff:10.1.2.3', '192.168.0.1', 'fe80::1']) {
      const error = await rejection(
        runLoad(
          { scheme: 'http', address, port: 80 },
          { ratePerSecond: 1, durationMs: 1000, maxRequests: 1 },
        ),
      );
      expect(error.issues.map((i) => i.path)).toEqual(['target.address']);
      expect(error.message).toContain('no request was sent');
    }
    expect(connect).not.toHaveBeenCalled();
  });

  it('refuses a host name rather than resolving it, even one that names loopback', async () => {
    const error = await rejection(
      runLoad(
        { scheme: 'http', address: 'localhost', port: 80 },
        { ratePerSecond: 1, durationMs: 1000, maxRequests: 1 },
      ),
    );
    expect(error.message).toContain('not an IP address');
  });

  it('refuses the comparison before the source is sent anything when the candidate is not allowed', async () => {
    const s = await server(() => 0);
    const connect = vi.spyOn(net.Socket.prototype, 'connect');
    const error = await rejection(
      runLoadComparison({
        source: s.endpoint,
        candidate: { scheme: 'http', address: '10.1.2.3', port: s.port },
        ratePerSecond: 10,
        durationMs: 200,
        maxRequests: 2,
      }),
    );
    expect(error.issues.map((i) => i.path)).toEqual(['candidate.address']);
    expect(connect).not.toHaveBeenCalled();
    expect(s.received()).toBe(0);
  });

  it('refuses unsafe methods, rates above the ceiling and a non-integer request bound, naming each field', async () => {
    const s = await server(() => 0);
    const error = await rejection(
      runLoad(s.endpoint, {
        ratePerSecond: 1e6,
        durationMs: 1000,
        maxRequests: 2.5,
        requests: [{ method: 'DELETE', path: '/' }],
      }),
    );
    expect(error.issues.map((i) => i.path).sort()).toEqual([
      'maxRequests',
      'ratePerSecond',
      'requests[0].method',
    ]);
    expect(s.received()).toBe(0);
  });
});

describe('LoadTargetPolicy', () => {
  it('allows loopback, ::1 and the addresses the caller names, and nothing else', () => {
    const policy = new LoadTargetPolicy(['10.200.0.2', 'fd00::2']);
    for (const ok of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1', '10.200.0.2', 'fd00:0::2'])
      expect(() => policy.check(ok), ok).not.toThrow();
    for (const refused of ['10.200.0.3', '0.0.0.0', '::', '128.0.0.1', 'fd00::3'])
      expect(() => policy.check(refused), refused).toThrow(InvalidInputError);
    expect(() => new LoadTargetPolicy(['test-host-1'])).toThrow(/allowedAddresses|not an IP address/);
  });
});

describe('runLoadComparison', () => {
  const load = { ratePerSecond: 40, durationMs: 750, maxRequests: 100 };

  it('passes a candidate as fast and as healthy as the source', async () => {
    const source = await server(() => 0);
    const candidate = await server(() => 0);
    const result = await runLoadComparison({
      source: source.endpoint,
      candidate: candidate.endpoint,
      ...load,
      tolerances: lenient,
    });
    expect(result.reasons).toEqual([]);
    expect(result.passed).toBe(true);
    expect(result.candidate.sent).toBe(30);
    expect(() => LoadComparison.parse(result)).not.toThrow();
  });

  it('fails a slow candidate on latency, naming both figures', async () => {
    const source = await server(() => 0);
    const candidate = await server(() => 400);
    const result = await runLoadComparison({
      source: source.endpoint,
      candidate: candidate.endpoint,
      ...load,
      tolerances: { p95Relative: 0.25, p95AbsoluteMs: 100 },
    });
    expect(result.passed).toBe(false);
    expect(result.reasons.join('\n')).toMatch(/^p95 latency [\d.]+ ms exceeds the source's [\d.]+ ms/m);
    expect(result.candidate.latencyMs.p50).toBeGreaterThan(result.source.latencyMs.p50 + 300);
  });

  it('fails a candidate that answers errors beyond the error-rate tolerance', async () => {
    const source = await server(() => 0);
    const candidate = await server(
      () => 0,
      (i) => (i % 3 === 0 ? 503 : 200),
    );
    const result = await runLoadComparison({
      source: source.endpoint,
      candidate: candidate.endpoint,
      ...load,
      tolerances: { ...lenient, errorRateIncrease: 0.05 },
    });
    expect(result.passed).toBe(false);
    expect(result.candidate.errorReasons).toEqual({ 'status 503': 10 });
    expect(result.candidate.errorRate).toBeCloseTo(1 / 3, 5);
    expect(result.reasons).toEqual([expect.stringMatching(/^error rate 33.3 % exceeds the source's 0 %/)]);
  });

  it('refuses a tolerance out of range before any request', async () => {
    const s = await server(() => 0);
    const error = await rejection(
      runLoadComparison({
        source: s.endpoint,
        candidate: s.endpoint,
        ...load,
        tolerances: { errorRateIncrease: 2 },
      }),
    );
    expect(error.issues.map((i) => i.path)).toEqual(['tolerances.errorRateIncrease']);
    expect(s.received()).toBe(0);
  });
});
