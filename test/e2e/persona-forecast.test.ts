// A persona that switches ahead of a predicted rise, end to end in the embedded runtime with a
// real test host: 15 days of the host's CPU history written into the metric store with their
// past timestamps (a daily peak that starts again within the next two hours), a persona whose
// predicted criterion reads it. In forecast-only mode evaluation records what it would have done
// and when, GET /hosts/{host}/persona shows it, and nothing on the host changes; written again
// in acting mode, the same evaluation starts the switch and the host has the persona's sysctl
// value before the predicted rise. GET /hosts/{host}/forecast answers the forecast and its
// accuracy on the held-out history.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hourStart } from '../../core/persona/forecast.js';
import { clearForecasts } from '../../core/persona/forecast-host.js';
import type { MetricReport } from '../../core/persona/schema.js';
import { evaluateHost } from '../../core/persona/service.js';
import { personaEvaluation } from '../../functions/shared/evaluation.js';
import { hostPersonas, metricsStore } from '../../functions/shared/runtime.js';
import { seasonalSeries } from '../core/persona/forecast-series.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import type { CliResult } from '../support/cli.js';
import { ended } from '../support/clone.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { captureAndPin } from '../support/managed.js';

const NAME = 'e2e-forecast';
const PERSONA = 'e2e-ahead';
const H = 3_600_000;
const D = 86_400_000;
const TTL = 'net.ipv4.ip_default_ttl';

const exec = promisify(execFile);

/**
 * The `persona` command run from its sources (through tsx), in its own process against the
 * runtime, as test/support/cli.ts runs it: the capture registers the host and seals its key.
 */
async function cliFromSources(...args: string[]): Promise<CliResult> {
  const script = `const { run } = await import('./cli/main.ts'); process.exitCode = await run(${JSON.stringify(args)});`;
  try {
    const { stdout, stderr } = await exec(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        env: { ...process.env, PERSONA_ENDPOINT: api.url, PERSONA_DATA: api.dataDir, NO_COLOR: '1' },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let host: TestHost;
let api: TestPersona;
/** The start of the first hour whose forecast meets the threshold: 30 to 90 minutes from the start. */
let rise: number;

beforeAll(async () => {
  [host, api] = await Promise.all([createHost({ name: NAME }), startTestPersona()]);
  await captureAndPin(api, host, NAME, cliFromSources);

  // The daily peak (on UTC hours, the host has no timezone tag) is centred 1.5 hours into the
  // rise hour: at 75 then, about 63 the hour before, below 60 now.
  const now = Date.now();
  rise = hourStart('UTC', now + 30 * 60_000) + H;
  const peakHour = ((rise % D) / H + 1.5) % 24;
  const history = seasonalSeries({
    seed: 12,
    from: now - 15 * D + H,
    to: now - 60_000,
    intervalMs: 10 * 60_000,
    base: 15,
    dailyAmplitude: 60,
    peakHour,
    weekendFactor: 1,
    noise: 1,
    hourlyNoise: 1.5,
  });
  const reports: MetricReport[] = Array.from(history.times, (t, i) => ({
    host: NAME,
    at: new Date(t).toISOString(),
    intervalSeconds: 600,
    values: { 'cpu.utilization': history.values[i] as number },
  }));
  await metricsStore().putMany(reports);
  clearForecasts();
}, 900_000);

afterAll(async () => {
  await api?.stop();
  await destroyAllHosts();
}, 120_000);

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();

const personaDoc = (mode: 'report' | 'act') => ({
  apiVersion: 'persona/v1',
  kind: 'Persona',
  metadata: { name: PERSONA, description: 'Ahead of the daily peak' },
  spec: {
    hosts: { names: [NAME] },
    parameters: { sysctl: { [TTL]: '77' } },
    criteria: {
      predicted: {
        name: 'cpu.utilization',
        op: '>',
        value: 70,
        withinSeconds: 3600,
        bufferSeconds: 3600,
        mode,
      },
    },
    hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
  },
});

describe('a persona ahead of a predicted rise', () => {
  it('in forecast-only mode reports what it would do and when; in acting mode switches the host before the rise', async () => {
    const ttl = await sysctl(TTL);
    expect(ttl).not.toBe('77');
    const created = await api.call('POST', '/personas', { body: personaDoc('report') });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    // Forecast only: the decision says it would switch, with the hour of the rise; nothing runs.
    const reported = await evaluateHost(personaEvaluation(), NAME, Date.now());
    expect(reported.decision, JSON.stringify(reported)).toMatchObject({
      action: 'switch',
      to: PERSONA,
      mode: 'report',
    });
    expect(reported.operationId).toBeUndefined();
    expect(reported.recorded).toBe(true);
    expect(await sysctl(TTL)).toBe(ttl);
    expect((await hostPersonas().get(NAME))?.current ?? null).toBeNull();
    const view = await api.call('GET', `/hosts/${NAME}/persona`);
    expect(view.status).toBe(200);
    const latest = view.body.history.items[0];
    expect(latest).toMatchObject({ action: 'switch', to: PERSONA, mode: 'report' });
    expect(latest.summary).toContain('forecast only');
    const reason = latest.reasons.find((r: { path: string }) => r.path === '/predicted');
    expect(reason.values).toMatchObject({ mode: 'report', risesAt: new Date(rise).toISOString() });
    expect(Date.parse(latest.at)).toBeLessThan(rise);

    // The forecast and its accuracy, as the API answers them.
    const forecast = await api.call('GET', `/hosts/${NAME}/forecast`);
    expect(forecast.status, JSON.stringify(forecast.body)).toBe(200);
    expect(forecast.body).toMatchObject({ host: NAME, timezone: 'UTC' });
    const [cpu] = forecast.body.metrics;
    expect(cpu.metric).toBe('cpu.utilization');
    expect(cpu.forecast.hours).toHaveLength(48);
    const riseHour = cpu.forecast.hours.find((h: { at: string }) => Date.parse(h.at) === rise);
    expect(riseHour.value).toBeGreaterThan(70);
    expect(cpu.accuracy.hours).toBeGreaterThan(40);
    expect(cpu.accuracy.mape).toBeLessThan(10);
    expect(cpu.accuracy.naiveMape).toEqual(expect.any(Number));
    console.log(
      `forecast accuracy on held-out history: MAPE ${cpu.accuracy.mape}% against the naive ${cpu.accuracy.naiveMape}%`,
    );
    expect((await api.call('GET', '/hosts/nobody/forecast')).status).toBe(404);
    expect((await api.call('GET', `/hosts/${NAME}/forecast?metric=cpu`)).status).toBe(400);

    // Acting: the same forecast switches the host now, ahead of the rise.
    const put = await api.call('PUT', `/personas/${PERSONA}`, {
      body: personaDoc('act'),
      headers: { 'if-match': '"1"' },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const acted = await evaluateHost(personaEvaluation(), NAME, Date.now());
    expect(acted.decision, JSON.stringify(acted)).toMatchObject({
      action: 'switch',
      to: PERSONA,
      mode: 'act',
    });
    expect(acted.operationId).toEqual(expect.any(String));
    const op = await ended(api, acted.operationId as string);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(await sysctl(TTL)).toBe('77');
    expect(await hostPersonas().get(NAME)).toMatchObject({ current: PERSONA, currentVersion: 2 });
    expect(Date.parse(op.updatedAt)).toBeLessThan(rise);
    expect(Date.now()).toBeLessThan(rise);
  }, 600_000);
});
