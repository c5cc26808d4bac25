import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InvalidInputError } from '../../../core/errors.js';
import { HealthCheck as HealthCheckSchema } from '../../../core/profile/schema.js';
import { LocalTransport } from '../../../core/transport/local.js';
import { ValidationReport } from '../../../core/validation/report.js';
import { validateBehaviour } from '../../../core/validation/validate.js';
import { json, startServer, type TestServer } from './servers.js';

const transport = new LocalTransport();
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function app(version: string): Promise<TestServer> {
  const s = await startServer((req, res) => {
    if (req.url === '/health') return json(res, { ok: true });
    json(res, { version, servedAt: Date.now() + Math.random() });
  });
  servers.push(s);
  return s;
}

const lenient = { p95AbsoluteMs: 250, p99AbsoluteMs: 500, minThroughputRatio: 0.5 };

function options(source: TestServer, candidate: TestServer) {
  return {
    candidateAddress: '127.0.0.1',
    healthChecks: [
      HealthCheckSchema.parse({
        type: 'http',
        name: 'health',
        url: `http://web.example:${candidate.port}/health`,
      }),
      HealthCheckSchema.parse({ type: 'command', name: 'shell', command: 'true' }),
    ],
    probes: { source: source.endpoint, candidate: candidate.endpoint, requests: [{ path: '/' }] },
    load: {
      source: source.endpoint,
      candidate: candidate.endpoint,
      ratePerSecond: 20,
      durationMs: 500,
      maxRequests: 50,
      tolerances: lenient,
    },
  };
}

describe('validateBehaviour', () => {
  it('passes a clone that behaves like its source, with every part in one report the schema accepts', async () => {
    const source = await app('1.4.2');
    const candidate = await app('1.4.2');
    const report = await validateBehaviour({ transport }, options(source, candidate));
    expect(report.reasons).toEqual([]);
    expect(report.verdict).toBe('passed');
    expect(report.healthChecks?.results).toHaveLength(2);
    expect(report.probes?.passed).toBe(true);
    expect(report.load?.candidate.sent).toBe(10);
    expect(ValidationReport.parse(JSON.parse(JSON.stringify(report)))).toEqual(report);
  });

  it('fails a clone that answers differently, saying what differs', async () => {
    const source = await app('1.4.2');
    const candidate = await app('1.5.0');
    const report = await validateBehaviour({ transport }, options(source, candidate));
    expect(report.verdict).toBe('failed');
    expect(report.reasons).toEqual(['GET /: json:$.version differs (source "1.4.2", candidate "1.5.0")']);
  });

  it('fails on a failed health check and names it', async () => {
    const source = await app('1');
    const candidate = await app('1');
    const report = await validateBehaviour(
      { transport },
      {
        candidateAddress: '127.0.0.1',
        healthChecks: [HealthCheckSchema.parse({ type: 'command', name: 'config-test', command: 'exit 2' })],
        probes: { source: source.endpoint, candidate: candidate.endpoint, requests: [{ path: '/' }] },
      },
    );
    expect(report).toMatchObject({
      verdict: 'failed',
      reasons: ['health check config-test failed: exit code 2, expected 0'],
    });
    expect(report.load).toBeUndefined();
  });

  it('calls a validation with nothing to check inconclusive, not passed', async () => {
    const report = await validateBehaviour({ transport }, { candidateAddress: '127.0.0.1' });
    expect(report.verdict).toBe('inconclusive');
    expect(report.reasons).toHaveLength(1);
  });

  it('refuses bad load tolerances before any check reaches either host', async () => {
    const source = await app('1');
    const candidate = await app('1');
    const bad = options(source, candidate);
    const error = await validateBehaviour(
      { transport },
      { ...bad, load: { ...bad.load, tolerances: { p95Relative: -1 } } },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(source.received() + candidate.received()).toBe(0);
  });

  it('has a JSON Schema for the API to publish', () => {
    const schema = z.toJSONSchema(ValidationReport) as {
      $defs: Record<string, { properties: Record<string, unknown> }>;
    };
    expect(Object.keys(schema.$defs)).toEqual(
      expect.arrayContaining(['HealthCheckResult', 'FieldDifference', 'LoadResult', 'LoadTolerances']),
    );
    expect(Object.keys(schema.$defs.ValidationReport?.properties ?? {})).toEqual(
      expect.arrayContaining(['verdict', 'healthChecks', 'probes', 'load', 'reasons']),
    );
  });
});
