// Morph end to end in the embedded runtime against a real test host: the recommendation with
// its evidence (GET /hosts/{host}/recommendation over the shipped targets), a live morph through
// POST /hosts/{host}/morph and statemachines/morph.asl.json that restarts the one service whose
// file changed (its pid changes; the other service's does not), and a morph the watch finds
// slower than its baseline, rolled back so that the host's capture diffs empty against what it
// was before the morph.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diff } from '../../core/delta/diff.js';
import { FolderTargetCatalog } from '../../core/morph/catalog.js';
import { captureState } from '../../core/morph/workflow.js';
import type { Operation } from '../../core/operation/schema.js';
import type { Profile } from '../../core/profile/schema.js';
import { useTargetCatalog } from '../../functions/shared/morph-targets.js';
import { morphDeps } from '../../functions/steps/morph/deps.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { ended } from '../support/clone.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { registerAndCapture } from '../support/managed.js';
import { installMorphServices, MORPH_WEB_CONF, pidOf } from './morph-host.js';

let host: TestHost;
let api: TestPersona;
let targets: string;
const NAME = 'e2e-morph';

beforeAll(async () => {
  [host, api] = await Promise.all([createHost({ name: 'e2e-morph' }), startTestPersona()]);
  await installMorphServices(host);
  // Registered and captured through the API, its key sealed as the host's own secret (as
  // `persona capture` does), so that the morph's task reaches it without reading any file.
  await registerAndCapture(api, host, NAME);
  // The shipped targets and two of the test's own, read by the API as the shipped ones are.
  targets = mkdtempSync(join(tmpdir(), 'persona-targets-'));
  cpSync(join(import.meta.dirname, '../../examples/targets'), targets, { recursive: true });
  writeFileSync(join(targets, 'morph-web-tuned.yaml'), tunedTarget);
  writeFileSync(join(targets, 'morph-web-slow.yaml'), slowTarget);
  writeFileSync(join(targets, 'morph-missing.yaml'), target('morph-missing', missingSpec));
  writeFileSync(join(targets, 'morph-refused.yaml'), target('morph-refused', refusedSpec));
}, 600_000);

afterAll(async () => {
  useTargetCatalog(undefined);
  if (targets) rmSync(targets, { recursive: true, force: true });
  await api?.stop();
  await destroyAllHosts();
}, 120_000);

const target = (name: string, spec: string) => `apiVersion: persona/v1
kind: TargetProfile
metadata: { name: ${name} }
spec:
  traits: { web-serving: 0.9, latency-sensitive: 0.9 }
${spec}`;

const tunedTarget = target(
  'morph-web-tuned',
  `  sysctl:
    net.core.somaxconn: "2048"
    net.ipv4.tcp_fin_timeout: "20"
  files:
    - path: /etc/morph-web.conf
      content: "port=8080\\ndelay_ms=0\\nbacklog=2048\\n"
      restarts: [morph-web]
    # Exactly as the host has it: nothing to write, nothing to restart.
    - path: /etc/morph-aux.conf
      content: "port=8081\\ndelay_ms=0\\n"
      restarts: [morph-aux]
  watch:
    periodSeconds: 2
    samples: 5
    probe: { kind: http, port: 8080, path: / }
    tolerance: { latencyPercent: 300, errorRate: 0 }
`,
);

const slowTarget = target(
  'morph-web-slow',
  `  sysctl:
    net.ipv4.tcp_fin_timeout: "25"
    net.ipv4.tcp_keepalive_time: "600"
  files:
    - path: /etc/morph-web.conf
      content: "port=8080\\ndelay_ms=400\\n"
      restarts: [morph-web]
    - path: /etc/morph-extra.conf
      content: "new=1\\n"
      mode: "0600"
  watch:
    periodSeconds: 2
    samples: 5
    probe: { kind: http, port: 8080, path: / }
    tolerance: { latencyPercent: 50, errorRate: 0 }
`,
);

// A service the host does not have: ComputeDelta refuses it before anything changes.
const missingSpec = `  sysctl: { net.ipv4.tcp_fin_timeout: "30" }
  services:
    - { name: nginx, state: running }
`;

// A file for an owner the host does not have, after a sysctl key the apply sets first (sysctl
// comes before files in a Delta): ApplyLive fails and the key goes back.
const refusedSpec = `  sysctl: { net.ipv4.tcp_fin_timeout: "33" }
  files:
    - path: /etc/morph-web.conf
      content: "port=8080\\ndelay_ms=0\\n"
      owner: nosuchuser
      restarts: [morph-web]
`;

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();
const operation = async (id: string): Promise<Operation> => ended(api, id);
const capture = async (): Promise<Profile> => {
  const deps = await morphDeps();
  const registration = (await deps.hosts.get(NAME)).registration;
  const transport = await deps.transportFor(registration, { acceptNewHostKey: false });
  try {
    return await captureState(deps, transport, registration);
  } finally {
    await transport.close();
  }
};

describe('morph', () => {
  it('recommends the shipped target nearest the host, with the traits that pulled it there', async () => {
    const res = await api.call('GET', `/hosts/${NAME}/recommendation`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.recommended).toBe('web-server');
    // The host's load and memory are the machine's (a test host is a namespace): only the
    // nearest is certain, not the order of the other two.
    expect(res.body.ranked.map((r: { target: string }) => r.target).sort()).toEqual([
      'analytics-node',
      'database-server',
      'web-server',
    ]);
    expect(res.body.ranked[0].target).toBe('web-server');
    expect(res.body.similarity).toBeGreaterThan(0.5);
    // Two listeners on web ports, reachable from outside: latency-sensitive and web-serving.
    expect(res.body.evidence.pulledBy.map((e: { trait: string }) => e.trait).slice(0, 2)).toEqual([
      'latency-sensitive',
      'web-serving',
    ]);
    expect(res.body.evidence.lacking.map((e: { trait: string }) => e.trait)).toContain('network-heavy');
    console.log(
      `recommendation: ${JSON.stringify(res.body.ranked)}; pulled by ${JSON.stringify(res.body.evidence.pulledBy)}`,
    );
  }, 120_000);

  it('refuses a target that does not exist, naming it, and a hostile body', async () => {
    useTargetCatalog(new FolderTargetCatalog(targets));
    expect(
      (await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: 'no-such-target' } })).status,
    ).toBe(404);
    const bad = await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: '--help' } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('target');
  });

  it('morphs live: only what differs is applied, and only the service whose file changed restarts', async () => {
    useTargetCatalog(new FolderTargetCatalog(targets));
    const webBefore = await pidOf(host, 'morph-web');
    const auxBefore = await pidOf(host, 'morph-aux');
    const before = (await api.call('GET', `/profiles/${NAME}`)).body;
    const res = await api.call('POST', `/hosts/${NAME}/morph`, {
      body: { target: 'morph-web-tuned' },
      headers: { 'idempotency-key': 'morph-tuned-1' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    // The key names that request: sent again it answers the same operation; with another body
    // it is refused rather than answered with this one.
    const resent = await api.call('POST', `/hosts/${NAME}/morph`, {
      body: { target: 'morph-web-tuned' },
      headers: { 'idempotency-key': 'morph-tuned-1' },
    });
    expect(resent.status).toBe(202);
    expect(resent.body.id).toBe(res.body.id);
    const reused = await api.call('POST', `/hosts/${NAME}/morph`, {
      body: { target: 'recommended' },
      headers: { 'idempotency-key': 'morph-tuned-1' },
    });
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const op = await operation(res.body.id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.kind).toBe('morph');
    expect(op.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'profile:SUCCEEDED',
      'target:SUCCEEDED',
      'delta:SUCCEEDED',
      'snapshot:SUCCEEDED',
      'apply:SUCCEEDED',
      'watch:SUCCEEDED',
      'record:SUCCEEDED',
    ]);
    console.log(
      `morph by step (ms): ${op.steps.map((s) => `${s.name} ${s.startedAt && s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : '-'}`).join(', ')}`,
    );
    const plan = (await api.call('GET', `/operations/${op.id}/documents/plan`)).body;
    expect(plan.delta.changes.map((c: { kind: string; key: string }) => `${c.kind} ${c.key}`).sort()).toEqual(
      [
        'file.write /etc/morph-web.conf',
        'sysctl.set net.core.somaxconn',
        'sysctl.set net.ipv4.tcp_fin_timeout',
      ],
    );
    expect(plan.restarts).toEqual([{ service: 'morph-web', because: ['/etc/morph-web.conf'] }]);
    expect(await host.run(`cat ${MORPH_WEB_CONF}`)).toBe('port=8080\ndelay_ms=0\nbacklog=2048\n');
    expect(await sysctl('net.core.somaxconn')).toBe('2048');
    expect(await sysctl('net.ipv4.tcp_fin_timeout')).toBe('20');
    // Restarted because its configuration changed; the other kept its process.
    expect(await pidOf(host, 'morph-web')).not.toBe(webBefore);
    expect(await pidOf(host, 'morph-aux')).toBe(auxBefore);
    // The new Profile version is recorded.
    expect(op.result?.version).toBe(before.version.version + 1);
    const after = (await api.call('GET', `/profiles/${NAME}`)).body;
    expect(after.version.version).toBe(before.version.version + 1);
    expect(after.profile.spec.configuration.sysctl['net.core.somaxconn']).toBe('2048');

    // The same morph again: nothing differs, nothing restarts.
    const webNow = await pidOf(host, 'morph-web');
    const again = await operation(
      (await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: 'morph-web-tuned' } })).body.id,
    );
    expect(again.status, JSON.stringify(again.error)).toBe('SUCCEEDED');
    const planAgain = (await api.call('GET', `/operations/${again.id}/documents/plan`)).body;
    expect(planAgain.delta.changes).toEqual([]);
    expect(await pidOf(host, 'morph-web')).toBe(webNow);
  }, 300_000);

  it('reverts a morph that makes the host slower, so that its capture diffs empty against before', async () => {
    useTargetCatalog(new FolderTargetCatalog(targets));
    const before = await capture();
    const auxBefore = await pidOf(host, 'morph-aux');
    const started = Date.now();
    const res = await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: 'morph-web-slow' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const op = await operation(res.body.id);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    expect(op.error).toMatchObject({ code: 'REGRESSION', step: 'watch' });
    expect(op.error?.message).toMatch(/median latency/);
    const report = (await api.call('GET', `/operations/${op.id}/documents/report`)).body;
    expect(report.verdict.degraded).toBe(true);
    expect(report.verdict.after.median).toBeGreaterThan(300);
    const rollback = (await api.call('GET', `/operations/${op.id}/documents/rollback`)).body;
    expect(rollback).toMatchObject({ failedStep: 'watch', restarted: ['morph-web'], failures: [] });
    console.log(
      `revert: ${Date.parse(rollback.endedAt) - Date.parse(report.judgedAt)} ms from the watch's verdict to the host back (rollback ${Date.parse(rollback.endedAt) - Date.parse(rollback.startedAt)} ms); whole morph ${Date.now() - started} ms`,
    );
    // Back exactly as it was: the file, the sysctl values, no new file, the service serving fast.
    const after = await capture();
    expect(diff(before, after).changes).toEqual([]);
    expect(await host.run(`cat ${MORPH_WEB_CONF}`)).toBe('port=8080\ndelay_ms=0\nbacklog=2048\n');
    expect((await host.exec('test -e /etc/morph-extra.conf')).exitCode).not.toBe(0);
    expect(await sysctl('net.ipv4.tcp_fin_timeout')).toBe('20');
    expect(await pidOf(host, 'morph-aux')).toBe(auxBefore);
  }, 300_000);

  it('ends FAILED before anything changes when the target asks what a morph cannot do, and ROLLED_BACK when the host refuses a change', async () => {
    useTargetCatalog(new FolderTargetCatalog(targets));
    const before = await capture();
    const missing = await operation(
      (await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: 'morph-missing' } })).body.id,
    );
    expect(missing.status).toBe('FAILED');
    expect(missing.error).toMatchObject({ step: 'delta' });
    expect(missing.error?.message).toMatch(/nginx/);
    expect(missing.steps.find((s) => s.name === 'apply')?.status).toBe('SKIPPED');
    expect(await sysctl('net.ipv4.tcp_fin_timeout')).toBe('20');

    const refused = await operation(
      (await api.call('POST', `/hosts/${NAME}/morph`, { body: { target: 'morph-refused' } })).body.id,
    );
    expect(refused.status, JSON.stringify(refused.error)).toBe('ROLLED_BACK');
    expect(refused.error).toMatchObject({ step: 'apply' });
    const plan = (await api.call('GET', `/operations/${refused.id}/documents/plan`)).body;
    expect(plan.delta.changes.map((c: { kind: string }) => c.kind)).toEqual(['sysctl.set', 'file.write']);
    expect(await sysctl('net.ipv4.tcp_fin_timeout')).toBe('20');
    expect(diff(before, await capture()).changes).toEqual([]);
  }, 300_000);
});
