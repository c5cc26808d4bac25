// The persona loop as an infra team runs it, end to end in the embedded runtime: a persona file
// applied with the CLI, the agent installed on a real test host and reaching the runtime back
// through the SSH tunnel, the host's application writing its own number for the agent to
// report. The number above its threshold for the criterion's duration switches the host (the
// switch workflow applies sysctl and tc; the agent, assigned what the switch recorded, finds
// nothing to do), `persona hosts persona` says why with the values seen; the number down again
// reverts the host to exactly what it had; a persona version the kernel refuses is rolled back
// with the host kept as it was; a revoked agent's next report is refused and its log says so.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../core/operation/schema.js';
import { AGENT_PATHS } from '../../core/persona/agent/install.js';
import { registeredAgentEndpoints } from '../../functions/shared/runtime.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const NAME = 'e2e-personas';
const METRICS = '/run/persona-agent/metrics';
const TTL = 'net.ipv4.ip_default_ttl';
const SOMAXCONN = 'net.core.somaxconn';

let api: TestPersona;
let host: TestHost;
let ddb: DynamoDBDocumentClient;
const persona = (...args: string[]) => runPersona(api, ...args);

/** Polls until `probe` answers, at most `timeoutMs`; no assertion depends on how long it took. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

// The application's own number: rewritten every 2 s (the agent takes a file written within two
// intervals), by a rename so that the agent never reads half a file.
let queueDepth: number | undefined;
let feeder: NodeJS.Timeout | undefined;
async function feed(): Promise<void> {
  if (queueDepth === undefined) return;
  await host
    .exec(
      `mkdir -p ${METRICS} && printf '%s\\n' ${queueDepth} > /run/persona-agent/queue.tmp && mv -f /run/persona-agent/queue.tmp ${METRICS}/custom.queue_depth`,
    )
    .catch(() => undefined);
}
async function setQueueDepth(value: number): Promise<void> {
  queueDepth = value;
  await feed();
  feeder ??= setInterval(() => void feed(), 2_000);
}

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();
const rootQdisc = async () => (await host.run('tc qdisc show dev eth0 root')).trim();
const hostValues = async () => ({
  ttl: await sysctl(TTL),
  somaxconn: await sysctl(SOMAXCONN),
  qdisc: await rootQdisc(),
});

const personaFile = (
  sysctls: Record<string, string>,
) => `# The host's queue backs up: more connections, less egress.
apiVersion: persona/v1
kind: Persona
metadata:
  name: e2e-busy
  description: Queue backed up
spec:
  hosts:
    names: [${NAME}]
  priority: 10
  parameters:
    sysctl:
${Object.entries(sysctls)
  .map(([k, v]) => `      ${k}: "${v}"`)
  .join('\n')}
    bandwidth:
      - { interface: eth0, egressMbps: 20 }
  criteria:
    metric:
      name: custom.queue_depth
      op: ">"
      value: 100
      forSeconds: 10
  hysteresis:
    holdSeconds: 5
    coolDownSeconds: 10
`;

async function switches(): Promise<Operation[]> {
  const r = await persona('--json', 'operations', 'list', '--kind', 'activate', '--host', NAME);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { items: Operation[] }).items;
}

/** The switch to `to` (null: the default) that ended, once one has, beyond those already seen. */
async function switchEnded(to: string | null, seen: ReadonlySet<string>): Promise<Operation> {
  return until(`a switch of ${NAME} to ${to ?? 'its default'}`, async () =>
    (await switches()).find(
      (op) =>
        !seen.has(op.id) &&
        ((op.parameters?.persona as { name?: string } | null)?.name ?? null) === to &&
        ['SUCCEEDED', 'FAILED', 'ROLLED_BACK'].includes(op.status),
    ),
  );
}

interface DecisionView {
  action: string;
  from: string | null;
  to: string | null;
  mode: string;
  summary: string;
  reasons: { path: string; holds: string; detail: string; values?: Record<string, unknown> }[];
}
async function hostPersona(): Promise<{
  current: string | null;
  currentVersion?: number;
  why?: DecisionView;
  history: { items: DecisionView[] };
}> {
  const r = await persona('--json', 'hosts', 'persona', NAME);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

async function agentReport(): Promise<Record<string, any> | undefined> {
  const { Item } = await ddb.send(
    new GetCommand({ TableName: process.env.HOST_PERSONAS_TABLE, Key: { host: NAME, sk: 'agent' } }),
  );
  return Item;
}

let before: Awaited<ReturnType<typeof hostValues>>;
const seen = new Set<string>();

beforeAll(async () => {
  [api, host] = await Promise.all([startTestPersona(), createHost({ name: NAME })]);
  ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  const file = join(api.dataDir, `${NAME}.host.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: NAME,
      platform: 'baremetal',
      transport: 'ssh',
      address: host.address,
      hostKeyFingerprint: host.hostKeyFingerprint,
    }),
  );
  const added = await persona('hosts', 'add', '-f', file, '--key', host.privateKeyPath);
  expect(added.code, added.stderr).toBe(0);
  const captured = await persona('hosts', 'capture', NAME);
  expect(captured.code, captured.stderr).toBe(0);
  before = await hostValues();
}, 600_000);

afterAll(async () => {
  clearInterval(feeder);
  ddb?.destroy();
  await api?.stop();
  await destroyAllHosts();
}, 120_000);

describe('personas end to end: a metric switches a host and it reverts on its own', () => {
  it('takes the persona file and the agent as a user types them', async () => {
    const path = join(api.dataDir, 'busy.yaml');
    writeFileSync(path, personaFile({ [TTL]: '99', [SOMAXCONN]: '2048' }));
    const applied = await persona('personas', 'apply', '-f', path);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout.trim()).toBe('+ e2e-busy created at version 1');
    const installed = await persona('agent', 'install', NAME, '--interval', '5');
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/reports to http:\/\/127\.0\.0\.1:\d+ every 5 s/);
    // Before its number is there the criterion is unknown: nothing moves.
    expect(await sysctl(TTL)).toBe(before.ttl);
  }, 180_000);

  it('switches when the number is above its threshold for the duration, and says why', async () => {
    await setQueueDepth(150);
    const op = await switchEnded('e2e-busy', seen);
    seen.add(op.id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'validate:SUCCEEDED',
      'baseline:SUCCEEDED',
      'plan:SUCCEEDED',
      'resize:SKIPPED',
      'apply:SUCCEEDED',
      'verify:SUCCEEDED',
      'record:SUCCEEDED',
    ]);
    expect(await sysctl(TTL)).toBe('99');
    expect(await sysctl(SOMAXCONN)).toBe('2048');
    expect(await rootQdisc()).toMatch(/^qdisc tbf 9e50: root .*rate 20Mbit/);

    const view = await hostPersona();
    expect(view).toMatchObject({ current: 'e2e-busy', currentVersion: 1 });
    // The decision that switched it, with the criterion that held and the values it saw.
    const switched = view.history.items.find((d) => d.action === 'switch');
    expect(switched, JSON.stringify(view.history.items)).toMatchObject({
      from: null,
      to: 'e2e-busy',
      mode: 'act',
    });
    const held = switched?.reasons.find((r) => r.path === '/metric');
    expect(held, JSON.stringify(switched)).toMatchObject({ holds: 'true' });
    expect(held?.values).toMatchObject({
      'custom.queue_depth': 150,
      op: '>',
      threshold: 100,
      forSeconds: 10,
    });
    // The samples that made it hold cover the duration.
    expect(Number(held?.values?.samples)).toBeGreaterThanOrEqual(2);
    // Later reports keep it, for the same reason.
    expect(view.why).toMatchObject({ to: 'e2e-busy' });
    expect(view.why?.reasons.find((r) => r.path === '/metric')).toMatchObject({ holds: 'true' });
    const text = await persona('hosts', 'persona', NAME);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${NAME}: e2e-busy v1 since`);
    expect(text.stdout).toMatch(/why: .*\((switch|stay), /);
    expect(text.stdout).toMatch(/\bswitch\b.*\be2e-busy\b/);
    expect(text.stdout).toContain('custom.queue_depth');

    // The agent is assigned what the switch recorded and finds it already there.
    const report = await until('the agent report of e2e-busy v1', async () => {
      const r = await agentReport();
      return r?.persona === 'e2e-busy' && r.version === 1 ? r : undefined;
    });
    expect(report.outcome).toBe('applied');
    expect(report.entries.map((e: { target: string; status: string }) => `${e.target}:${e.status}`)).toEqual([
      `${SOMAXCONN}:unchanged`,
      `${TTL}:unchanged`,
      'eth0:unchanged',
    ]);

    // A reboot puts the kernel's own values back (here: a new boot id, tc and sysctl reset):
    // the agent restores the recorded persona on its next cycle, the drift and nothing else.
    await host.run(
      `cat /proc/sys/kernel/random/uuid > /run/persona-agent/boot_id && mount --bind /run/persona-agent/boot_id /proc/sys/kernel/random/boot_id && tc qdisc del dev eth0 root && sysctl -q -w ${TTL}=${before.ttl} ${SOMAXCONN}=${before.somaxconn}`,
    );
    try {
      const restored = await until('the agent restoring the persona after the reboot', async () => {
        const r = await agentReport();
        return r?.entries.some((e: { status: string }) => e.status === 'changed') ? r : undefined;
      });
      expect(restored).toMatchObject({ persona: 'e2e-busy', version: 1, outcome: 'applied' });
      expect(await sysctl(TTL)).toBe('99');
      expect(await sysctl(SOMAXCONN)).toBe('2048');
      expect(await rootQdisc()).toMatch(/^qdisc tbf 9e50: root .*rate 20Mbit/);
    } finally {
      await host.run('umount /proc/sys/kernel/random/boot_id');
    }
  }, 180_000);

  it('reverts to exactly what the host had once the number drops', async () => {
    await setQueueDepth(5);
    const op = await switchEnded(null, seen);
    seen.add(op.id);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(await hostValues()).toEqual(before);
    const view = await hostPersona();
    expect(view.current).toBeNull();
    const reverted = view.history.items.find((d) => d.action === 'revert');
    expect(reverted, JSON.stringify(view.history.items)).toMatchObject({ from: 'e2e-busy', to: null });
    const failed = reverted?.reasons.find((r) => r.path === '/metric');
    expect(failed, JSON.stringify(reverted)).toMatchObject({ holds: 'false' });
    expect(failed?.values).toMatchObject({ 'custom.queue_depth': 5 });
    expect((await persona('hosts', 'persona', NAME)).stdout).toContain(
      `${NAME}: its own parameters (no persona)`,
    );

    // A fresh capture differs from the one before the persona in none of the keys it set.
    const again = await persona('hosts', 'capture', NAME);
    expect(again.code, again.stderr).toBe(0);
    const diff = await persona('--json', 'profiles', 'diff', NAME, '--from', '1', '--to', '2');
    expect(diff.code, diff.stderr).toBe(0);
    const changes = (JSON.parse(diff.stdout) as { changes: { kind: string; key: string }[] }).changes;
    const touched = changes.filter(
      (c) =>
        [TTL, SOMAXCONN].some((k) => c.key.includes(k) || c.key.includes(k.replaceAll('.', '/'))) ||
        /bandwidth|egress|qdisc/.test(c.kind),
    );
    expect(touched, JSON.stringify(touched)).toEqual([]);
  }, 180_000);

  it('rolls back a persona version the kernel refuses, the host keeping what it had, the failure recorded', async () => {
    // The kernel takes a default TTL of 1 to 255 only: somaxconn, applied first, is put back.
    const path = join(api.dataDir, 'busy-v2.yaml');
    writeFileSync(path, personaFile({ [TTL]: '0', [SOMAXCONN]: '3000' }));
    const applied = await persona('personas', 'apply', '-f', path);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('~ e2e-busy version 2 written (was 1)');
    await setQueueDepth(150);
    const op = await switchEnded('e2e-busy', seen);
    seen.add(op.id);
    // Nothing more to decide: the failed version is not tried again and again.
    await setQueueDepth(5);
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.parameters?.persona).toEqual({ name: 'e2e-busy', version: 2 });
    expect(op.error).toMatchObject({ step: 'apply' });
    expect(op.error?.message).toContain(TTL);
    const rollback = await api.call('GET', `/operations/${op.id}/documents/rollback`);
    expect(rollback.status).toBe(200);
    expect(rollback.body).toMatchObject({ failedStep: 'apply', failures: [] });
    expect(rollback.body.reverted).toBeGreaterThanOrEqual(1);
    // Any retry started before the number fell has ended too.
    await until('no switch of the host under way', async () =>
      (await switches()).every((o) => ['SUCCEEDED', 'FAILED', 'ROLLED_BACK'].includes(o.status))
        ? true
        : undefined,
    );
    expect(await hostValues()).toEqual(before);
    expect((await hostPersona()).current).toBeNull();
    // The agent was never assigned the version that failed.
    expect((await agentReport())?.version).not.toBe(2);
  }, 180_000);

  it("refuses the agent's next report once `persona agent revoke` revoked its credential", async () => {
    const token = (await host.readFile(AGENT_PATHS.credential)).trim();
    // New SSH connections to the host refused: the credential is revoked, the agent cannot be
    // removed and keeps running.
    await host.run(
      "nft add table inet e2e_block && nft add chain inet e2e_block input '{ type filter hook input priority -10; }' && nft add rule inet e2e_block input tcp dport 22 ct state new reject with tcp reset",
    );
    try {
      const revoked = await persona('agent', 'revoke', NAME);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toContain(`revoked 1 credential of ${NAME}`);
      expect(revoked.stdout).toContain('the agent was not removed');
    } finally {
      await host.run('nft delete table inet e2e_block');
    }
    // Revoking closed the agent's way back; a way back opened again (as for any agent the
    // runtime reaches) carries its next report, which is refused.
    await registeredAgentEndpoints()?.endpointFor(NAME);
    const line = await until('the refusal in the agent log', async () =>
      (await host.readFile(AGENT_PATHS.log))
        .split('\n')
        .find((l) => l.includes('the metrics report refused with HTTP 401')),
    );
    expect(line).toContain(`the credential is revoked or not valid for host ${NAME}`);
    const direct = await fetch(`${api.agentUrl}/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        host: NAME,
        at: new Date().toISOString(),
        values: { 'custom.queue_depth': 150 },
      }),
    });
    expect(direct.status).toBe(401);
    await registeredAgentEndpoints()?.release(NAME);
  }, 180_000);
});
