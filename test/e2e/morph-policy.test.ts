// A morph that starts on its own, in the embedded runtime against a real test host: a morph
// policy written through PUT /morph-policies/{name} whose schedule window is open now, the
// runtime's sampling round (the stack's every-minute schedule, here every two seconds) that
// evaluates it, and the morph it starts running statemachines/morph.asl.json to its end, once;
// then a policy of workload detection that morphs the host toward the target nearest it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderTargetCatalog } from '../../core/morph/catalog.js';
import type { Operation } from '../../core/operation/schema.js';
import { useTargetCatalog } from '../../functions/shared/morph-targets.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { ended } from '../support/clone.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { registerAndCapture } from '../support/managed.js';
import { installMorphServices, MORPH_WEB_CONF } from './morph-host.js';

let host: TestHost;
let api: TestPersona;
let targets: string;
const NAME = 'e2e-morph-policy';

const TARGET = `apiVersion: persona/v1
kind: TargetProfile
metadata: { name: policy-web }
spec:
  traits: { web-serving: 0.9, latency-sensitive: 0.9 }
  sysctl:
    net.core.somaxconn: "1536"
  files:
    - path: /etc/morph-web.conf
      content: "port=8080\\ndelay_ms=0\\nbacklog=1536\\n"
      restarts: [morph-web]
  watch:
    periodSeconds: 2
    samples: 5
    probe: { kind: http, port: 8080, path: / }
    tolerance: { latencyPercent: 300, errorRate: 0 }
`;

const policy = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'persona/v1',
  kind: 'MorphPolicy',
  metadata: { name: 'nightly-web' },
  spec: {
    hosts: { names: [NAME] },
    target: 'policy-web',
    // A window open all day, every day: open now, whenever the test runs.
    when: { schedule: { windows: [{ start: '00:00', end: '24:00' }] } },
    cooldownSeconds: 3600,
    ...extra,
  },
});

beforeAll(async () => {
  [host, api] = await Promise.all([
    createHost({ name: 'e2e-morph-pol' }),
    startTestPersona({ samplingIntervalMs: 2000 }),
  ]);
  await installMorphServices(host);
  await registerAndCapture(api, host, NAME);
  targets = mkdtempSync(join(tmpdir(), 'persona-targets-'));
  writeFileSync(join(targets, 'policy-web.yaml'), TARGET);
  useTargetCatalog(new FolderTargetCatalog(targets));
}, 600_000);

afterAll(async () => {
  useTargetCatalog(undefined);
  if (targets) rmSync(targets, { recursive: true, force: true });
  await api?.stop();
  await destroyAllHosts();
}, 120_000);

const morphsOfHost = async (): Promise<Operation[]> => {
  const res = await api.call('GET', `/operations?kind=morph&host=${NAME}&limit=100`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.items;
};

describe('morph policies', () => {
  it('refuses a hostile policy naming the field, and one whose name is not the path', async () => {
    const hostile = await api.call('PUT', '/morph-policies/nightly-web', {
      body: policy({ target: '../../etc/shadow' }),
    });
    expect(hostile.status).toBe(400);
    expect(hostile.body.issues.map((i: { path: string }) => i.path)).toEqual(['spec.target']);
    const yaml = await api.call('PUT', '/morph-policies/nightly-web', {
      raw: 'apiVersion: persona/v1\nkind: MorphPolicy\nmetadata: { name: nightly-web }\nspec:\n  target: web-server\n  cooldownSeconds: -5\n  when: { schedule: { windows: [{}] } }\n',
      headers: { 'content-type': 'application/yaml' },
    });
    expect(yaml.status).toBe(400);
    expect(yaml.body.issues[0]).toMatchObject({ path: 'spec.cooldownSeconds', line: 6 });
    const missing = await api.call('PUT', '/morph-policies/nightly-web', {
      body: policy({ target: 'no-such-target' }),
    });
    expect(missing.status).toBe(400);
    expect(missing.body.issues.map((i: { path: string }) => i.path)).toEqual(['spec.target']);
    const other = await api.call('PUT', '/morph-policies/another', { body: policy() });
    expect(other.status).toBe(400);
    expect(other.body.issues[0].path).toBe('metadata.name');
    expect((await api.call('GET', '/morph-policies')).body.items).toEqual([]);
    expect((await api.call('GET', '/morph-policies/nightly-web')).status).toBe(404);
  });

  it('starts a morph on its own when the policy holds, runs it to its end, and starts no second one', async () => {
    const before = await host.run(`cat ${MORPH_WEB_CONF}`);
    expect(before).toBe('port=8080\ndelay_ms=0\n');
    expect(await morphsOfHost()).toEqual([]);
    const put = await api.call('PUT', '/morph-policies/nightly-web', { body: policy() });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body).toMatchObject({ name: 'nightly-web', revision: 1, created: true, changed: true });
    const again = await api.call('PUT', '/morph-policies/nightly-web', { body: policy() });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ revision: 1, created: false, changed: false });
    const listed = await api.call('GET', '/morph-policies');
    expect(listed.body.items).toMatchObject([{ name: 'nightly-web', target: 'policy-web' }]);
    const got = await api.call('GET', '/morph-policies/nightly-web');
    expect(got.body.policy.spec).toMatchObject({ target: 'policy-web', cooldownSeconds: 3600 });

    // Nothing asks for the morph: the sampling round finds the window open and starts it.
    let morphs: Operation[] = [];
    for (let i = 0; i < 120 && morphs.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      morphs = await morphsOfHost();
    }
    expect(morphs).toHaveLength(1);
    const op = await ended(api, (morphs[0] as Operation).id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.steps.every((s) => s.status === 'SUCCEEDED')).toBe(true);
    expect(op.parameters).toMatchObject({
      target: 'policy-web',
      trigger: { kind: 'schedule', policy: 'nightly-web', detail: 'policy nightly-web: morph to policy-web' },
    });
    const trigger = op.parameters?.trigger as { reasons?: { path: string; holds: string }[] } | undefined;
    const reasons = trigger?.reasons ?? [];
    expect(reasons.some((r) => r.path.includes('schedule') && r.holds === 'true')).toBe(true);
    expect(await host.run(`cat ${MORPH_WEB_CONF}`)).toBe('port=8080\ndelay_ms=0\nbacklog=1536\n');
    expect((await host.run('sysctl -n net.core.somaxconn')).trim()).toBe('1536');

    // Further rounds are cooling down: still the one morph.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await morphsOfHost()).map((o) => o.id)).toEqual([op.id]);

    expect((await api.call('DELETE', '/morph-policies/nightly-web')).status).toBe(204);
    expect((await api.call('DELETE', '/morph-policies/nightly-web')).status).toBe(404);
    expect((await api.call('GET', '/morph-policies/nightly-web')).status).toBe(404);
  }, 300_000);

  it('starts a morph on workload detection toward the target nearest the host, and not again once it is there', async () => {
    // A target made of the host's own trait vector: nearer than any other, whatever the machine.
    const rec = await api.call('GET', `/hosts/${NAME}/recommendation`);
    expect(rec.status, JSON.stringify(rec.body)).toBe(200);
    const traits = Object.fromEntries(
      Object.entries(rec.body.vector as Record<string, number>).filter(([, v]) => v > 0),
    );
    writeFileSync(
      join(targets, 'policy-detected.yaml'),
      `apiVersion: persona/v1
kind: TargetProfile
metadata: { name: policy-detected }
spec:
  traits: ${JSON.stringify(traits)}
  sysctl:
    net.ipv4.tcp_fin_timeout: "21"
  watch:
    periodSeconds: 2
    samples: 5
    probe: { kind: http, port: 8080, path: / }
    tolerance: { latencyPercent: 300, errorRate: 0 }
`,
    );
    const before = (await morphsOfHost()).map((o) => o.id);
    const put = await api.call('PUT', '/morph-policies/detect-web', {
      body: {
        apiVersion: 'persona/v1',
        kind: 'MorphPolicy',
        metadata: { name: 'detect-web' },
        spec: {
          hosts: { names: [NAME] },
          target: 'recommended',
          detection: { minSimilarity: 0.95, minMargin: 0 },
          cooldownSeconds: 0,
        },
      },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    let fresh: Operation[] = [];
    for (let i = 0; i < 120 && fresh.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      fresh = (await morphsOfHost()).filter((o) => !before.includes(o.id));
    }
    expect(fresh).toHaveLength(1);
    const op = await ended(api, (fresh[0] as Operation).id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.parameters).toMatchObject({
      target: 'policy-detected',
      trigger: { kind: 'detection', policy: 'detect-web' },
    });
    expect((await host.run('sysctl -n net.ipv4.tcp_fin_timeout')).trim()).toBe('21');
    // No cool-down, and the host is where detection wants it: no second morph.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await morphsOfHost()).filter((o) => !before.includes(o.id)).map((o) => o.id)).toEqual([op.id]);
    expect((await api.call('DELETE', '/morph-policies/detect-web')).status).toBe(204);
  }, 300_000);
});
