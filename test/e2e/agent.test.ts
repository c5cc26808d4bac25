// persona-agent end to end: the embedded runtime installs the agent over SSH (`persona agent
// install`), the agent reaches the runtime back through an SSH tunnel on that connection (the
// runtime stays on loopback), its metrics arrive in the metric store, it applies the
// persona assigned to its host and reports it, one host's credential is refused for another
// host, and a revoked credential is refused at the agent's next call, which its log says.
import { writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignment } from '../../core/persona/agent/assignment.js';
import { AGENT_PATHS } from '../../core/persona/agent/install.js';
import { API_VERSION } from '../../core/persona/schema.js';
import { captureDeps } from '../../functions/shared/capture.js';
import { personaSwitchDeps } from '../../functions/shared/persona-switch.js';
import {
  agentCredentials,
  assignments,
  evaluationAfterMetrics,
  hosts,
  type MetricsEvaluation,
  metricsStore,
  personas,
  registeredAgentEndpoints,
  useMetricsEvaluation,
} from '../../functions/shared/runtime.js';
import { AgentTunnels } from '../../local/agent-tunnel.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let web: TestHost;
let db: TestHost;
let evaluation: MetricsEvaluation | undefined;
const persona = (...args: string[]) => runPersona(api, ...args);

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function register(host: TestHost): Promise<void> {
  const file = join(api.dataDir, `${host.name}.host.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name: host.name,
      platform: 'baremetal',
      transport: 'ssh',
      address: host.address,
      hostKeyFingerprint: host.hostKeyFingerprint,
    }),
  );
  const added = await persona('hosts', 'add', '-f', file, '--key', host.privateKeyPath);
  expect(added.code, added.stderr).toBe(0);
}

beforeAll(async () => {
  api = await startTestPersona();
  // These tests are about the agent: the host's persona is set here, not decided by evaluation.
  evaluation = evaluationAfterMetrics();
  useMetricsEvaluation(undefined);
  [web, db] = await Promise.all([createHost({ name: 'agent-web' }), createHost({ name: 'agent-db' })]);
  await register(web);
  await register(db);
  await personas().create({
    apiVersion: API_VERSION,
    kind: 'Persona',
    metadata: { name: 'peak' },
    spec: {
      hosts: { names: ['agent-web'] },
      parameters: {
        sysctl: { 'net.ipv4.ip_default_ttl': '99', 'net.core.somaxconn': '2048' },
        bandwidth: [{ interface: 'eth0', egressMbps: 50 }],
      },
    },
  } as never);
  await recordPersona({ name: 'peak', version: 1 });
}, 600_000);

/** The agent's latest report on agent-web, as the runtime recorded it. */
async function agentReport(): Promise<Record<string, any> | undefined> {
  const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  try {
    const { Item } = await ddb.send(
      new GetCommand({ TableName: process.env.HOST_PERSONAS_TABLE, Key: { host: 'agent-web', sk: 'agent' } }),
    );
    return Item;
  } finally {
    ddb.destroy();
  }
}

/** Persona peak's first parameters, with the spec fields given. */
function peakVersion(spec: Record<string, unknown>): never {
  return {
    apiVersion: API_VERSION,
    kind: 'Persona',
    metadata: { name: 'peak' },
    spec: {
      hosts: { names: ['agent-web'] },
      parameters: {
        sysctl: { 'net.ipv4.ip_default_ttl': '99', 'net.core.somaxconn': '2048' },
        bandwidth: [{ interface: 'eth0', egressMbps: 50 }],
      },
      ...spec,
    },
  } as never;
}

/** What a switch's Record saves, and the agent's assignment follows. */
async function recordPersona(current: { name: string; version: number }): Promise<void> {
  const { defaults } = await personaSwitchDeps();
  const stored = await defaults.get('agent-web');
  await defaults.put('agent-web', { ...stored, current }, stored.revision);
}

afterAll(async () => {
  useMetricsEvaluation(evaluation);
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

describe('persona-agent in the embedded runtime', () => {
  it('is installed by `persona agent install`, reaching the runtime back through the SSH tunnel', async () => {
    const r = await persona('agent', 'install', 'agent-web', '--interval', '5');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('installed persona-agent on agent-web (supervised loop, curl)');
    expect(r.stdout).toMatch(/reports to http:\/\/127\.0\.0\.1:\d+ every 5 s/);
    // The runtime itself listens on loopback only: the host reaches it through its own 127.0.0.1.
    const endpoint = (await web.readFile(AGENT_PATHS.config)).match(/^endpoint=(.*)$/m)?.[1];
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const installed = await persona('agent', 'install', 'agent-db', '--interval', '5');
    expect(installed.code, installed.stderr).toBe(0);
  }, 180_000);

  it('reports metrics that arrive in the metric store, with rates from the second report on', async () => {
    const series = await until('two reports of agent-web', async () => {
      const s = await metricsStore().series(
        'agent-web',
        ['memory.utilization', 'cpu.utilization', 'network.rx.bytes_per_second', 'load.average1'],
        0,
      );
      return (s.get('cpu.utilization')?.values.length ?? 0) >= 1 ? s : undefined;
    });
    const memory = series.get('memory.utilization')?.values[0] ?? -1;
    expect(memory).toBeGreaterThan(0);
    expect(memory).toBeLessThanOrEqual(100);
    expect(series.get('cpu.utilization')?.values[0]).toBeGreaterThanOrEqual(0);
    expect(series.has('network.rx.bytes_per_second')).toBe(true);
    expect(series.has('load.average1')).toBe(true);
  }, 120_000);

  it("applies its host's persona (sysctl and tc), and the report of it is recorded", async () => {
    await until('the persona applied on agent-web', async () =>
      (await web.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim() === '99' ? true : undefined,
    );
    expect((await web.run('cat /proc/sys/net/core/somaxconn')).trim()).toBe('2048');
    expect(await web.run('tc qdisc show dev eth0 root')).toMatch(/^qdisc tbf 9e50: root .*rate 50Mbit/);
    // A host with no persona assigned is left alone.
    expect((await db.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('64');
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    try {
      const item = await until('the agent report', async () => {
        const { Item } = await ddb.send(
          new GetCommand({
            TableName: process.env.HOST_PERSONAS_TABLE,
            Key: { host: 'agent-web', sk: 'agent' },
          }),
        );
        return Item;
      });
      expect(item).toMatchObject({ host: 'agent-web', persona: 'peak', version: 1, outcome: 'applied' });
      expect(item.entries.map((e: { target: string; status: string }) => `${e.target}:${e.status}`)).toEqual([
        'net.core.somaxconn:changed',
        'net.ipv4.ip_default_ttl:changed',
        'eth0:changed',
      ]);
    } finally {
      ddb.destroy();
    }
  }, 120_000);

  it('rolls back a persona version the kernel refuses, and does not try it again every interval', async () => {
    const peak = (sysctl: Record<string, string>) =>
      ({
        apiVersion: API_VERSION,
        kind: 'Persona',
        metadata: { name: 'peak' },
        spec: {
          hosts: { names: ['agent-web'] },
          parameters: { sysctl, bandwidth: [{ interface: 'eth0', egressMbps: 50 }] },
        },
      }) as never;
    // The kernel takes a default TTL of 1 to 255 only; somaxconn, ordered first, is rolled back.
    await personas().put('peak', peak({ 'net.core.somaxconn': '1024', 'net.ipv4.ip_default_ttl': '300' }), {
      expectedVersion: 1,
    });
    await recordPersona({ name: 'peak', version: 2 });
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    try {
      const item = await until('the report of version 2', async () => {
        const { Item } = await ddb.send(
          new GetCommand({
            TableName: process.env.HOST_PERSONAS_TABLE,
            Key: { host: 'agent-web', sk: 'agent' },
          }),
        );
        return Item?.version === 2 ? Item : undefined;
      });
      expect(item.outcome).toBe('rolled-back');
      expect(item.entries.map((e: { target: string; status: string }) => `${e.target}:${e.status}`)).toEqual([
        'net.core.somaxconn:changed',
        'net.ipv4.ip_default_ttl:failed',
        'net.ipv4.ip_default_ttl:reverted',
        'net.core.somaxconn:reverted',
      ]);
    } finally {
      ddb.destroy();
    }
    expect((await web.run('cat /proc/sys/net/core/somaxconn')).trim()).toBe('2048');
    expect((await web.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('99');
    // Three more intervals: the same revision is not applied (and rolled back) again.
    await new Promise((r) => setTimeout(r, 16_000));
    const rollbacks = (await web.readFile(AGENT_PATHS.log))
      .split('\n')
      .filter((l) => l.includes('rolling back'));
    expect(rollbacks).toHaveLength(1);
  }, 120_000);

  it("undoes an operator's change at its next cycle when the persona is enforced, and says so in its report", async () => {
    await personas().put('peak', peakVersion({ override: 'enforced' }), { expectedVersion: 2 });
    await recordPersona({ name: 'peak', version: 3 });
    await until('version 3 applied', async () => {
      const item = await agentReport();
      return item?.version === 3 && item.outcome === 'applied' ? item : undefined;
    });
    const before = await agentReport();
    // The operator's own change, by hand.
    await web.run('sysctl -qw net.ipv4.ip_default_ttl=42');
    const undone = await until('the change undone', async () => {
      const item = await agentReport();
      return item?.at !== before?.at && item?.outcome === 'applied' ? item : undefined;
    });
    expect((await web.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('99');
    expect(undone.entries).toContainEqual(
      expect.objectContaining({
        target: 'net.ipv4.ip_default_ttl',
        from: '42',
        to: '99',
        status: 'changed',
        detail: 'changed by an operator, undone (override: enforced)',
      }),
    );
    // The entry nobody touched is not written again.
    expect(undone.entries).toContainEqual(
      expect.objectContaining({ target: 'net.core.somaxconn', status: 'unchanged' }),
    );
  }, 120_000);

  it("keeps an operator's change until the persona's next window edge when it is retained, then restores it", async () => {
    // A window that ends at the second minute boundary from now: its end is the next edge.
    const end = new Date(Math.ceil((Date.now() + 60_000) / 60_000) * 60_000);
    const hhmm = (d: Date) =>
      `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
    const start = new Date(end.getTime() - 30 * 60_000);
    await personas().put(
      'peak',
      peakVersion({
        override: 'retain',
        criteria: { schedule: { timezone: 'UTC', windows: [{ start: hhmm(start), end: hhmm(end) }] } },
      }),
      { expectedVersion: 3 },
    );
    await recordPersona({ name: 'peak', version: 4 });
    await until('version 4 applied', async () => {
      const item = await agentReport();
      return item?.version === 4 && item.outcome === 'applied' ? item : undefined;
    });
    // What the agent is told: retain, until that edge.
    const assigned = assignment('agent-web', await assignments().personas.assigned('agent-web'));
    expect(assigned).toMatchObject({ override: 'retain', retainUntil: end.getTime() / 1000 });
    await web.run('sysctl -qw net.ipv4.ip_default_ttl=42');
    const retained = await until('the change retained', async () => {
      const item = await agentReport();
      return item?.outcome === 'retained' ? item : undefined;
    });
    expect(retained.entries).toEqual([
      expect.objectContaining({
        target: 'net.ipv4.ip_default_ttl',
        from: '42',
        to: '99',
        status: 'retained',
      }),
    ]);
    expect(Date.now()).toBeLessThan(end.getTime());
    // Three cycles later, still the operator's value, and reported once.
    await new Promise((r) => setTimeout(r, 16_000));
    if (Date.now() < end.getTime() - 1000) {
      expect((await web.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('42');
      expect((await agentReport())?.at).toBe(retained.at);
    }
    const restored = await until(
      'the change restored after the window edge',
      async () => {
        const item = await agentReport();
        return item?.outcome === 'applied' && item.at !== retained.at ? item : undefined;
      },
      150_000,
    );
    expect(Date.parse(restored.at)).toBeGreaterThanOrEqual(end.getTime());
    expect((await web.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('99');
    expect(restored.entries).toContainEqual(
      expect.objectContaining({
        target: 'net.ipv4.ip_default_ttl',
        from: '42',
        status: 'changed',
        detail: 'changed by an operator, retained until the window edge, now restored',
      }),
    );
  }, 240_000);

  it('opens the tunnel again when its SSH connection drops, and the reports resume', async () => {
    const port = (await web.readFile(AGENT_PATHS.config)).match(
      /^endpoint=http:\/\/127\.0\.0\.1:(\d+)$/m,
    )?.[1];
    // The host's end of the tunnel is the sshd session that listens on the forwarded port.
    const listener = await web.run(`ss -Htlnp 'sport = :${port}'`);
    const pid = listener.match(/pid=(\d+)/)?.[1];
    expect(pid, listener).toBeDefined();
    await web.run(`kill -TERM ${pid}`);
    const dropped = Date.now();
    await until(
      'a report after the drop',
      async () => {
        const s = (await metricsStore().series('agent-web', ['memory.utilization'], dropped)).get(
          'memory.utilization',
        );
        return (s?.values.length ?? 0) > 0 ? true : undefined;
      },
      90_000,
    );
    const again = await web.run(`ss -Htlnp 'sport = :${port}'`);
    expect(again.match(/pid=(\d+)/)?.[1]).not.toBe(pid);
  }, 120_000);

  it('is reached back on the port its agent knows by a runtime started again', async () => {
    const endpoint = (await web.readFile(AGENT_PATHS.config)).match(/^endpoint=(.*)$/m)?.[1];
    // What a restarted runtime does: new tunnels, reopened for the hosts with live agents.
    await registeredAgentEndpoints()?.release('agent-web');
    // A restarted runtime's agents' listener has another port: here a relay to this one's.
    const listener = Number(new URL(api.agentUrl).port);
    const relay = createServer((socket) => {
      const upstream = connect(listener, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    const relayPort = (relay.address() as AddressInfo).port;
    expect(relayPort).not.toBe(listener);
    const restarted = new AgentTunnels({
      connect: async (name) => {
        const record = await hosts().get(name);
        return captureDeps().transportFor(record.registration, { acceptNewHostKey: false });
      },
      target: { host: '127.0.0.1', port: relayPort },
    });
    try {
      expect(await restarted.endpointFor('agent-web')).toBe(endpoint);
      const reopened = Date.now();
      await until('a report through the reopened tunnel', async () => {
        const s = (await metricsStore().series('agent-web', ['memory.utilization'], reopened)).get(
          'memory.utilization',
        );
        return (s?.values.length ?? 0) > 0 ? true : undefined;
      });
    } finally {
      await restarted.close();
      relay.close();
    }
    expect(await registeredAgentEndpoints()?.endpointFor('agent-web')).toBe(endpoint);
  }, 120_000);

  it("refuses one host's credential for another host's report", async () => {
    const token = (await web.readFile(AGENT_PATHS.credential)).trim();
    const res = await fetch(`${api.agentUrl}/metrics`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        host: 'agent-db',
        at: new Date().toISOString(),
        values: { 'cpu.utilization': 1 },
      }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe('FORBIDDEN');
  });

  it('refuses a revoked credential at the next report, and the agent says so in its log', async () => {
    await agentCredentials().revoke('agent-web', new Date());
    const line = await until('the refusal in the agent log', async () =>
      (await web.readFile(AGENT_PATHS.log))
        .split('\n')
        .find((l) => l.includes('the metrics report refused with HTTP 401')),
    );
    expect(line).toContain('the credential is revoked or not valid for host agent-web');
    // agent-db's credential is its own, and still good.
    const before = (await metricsStore().series('agent-db', ['memory.utilization'], 0)).get(
      'memory.utilization',
    );
    await until('another report of agent-db', async () => {
      const s = (await metricsStore().series('agent-db', ['memory.utilization'], 0)).get(
        'memory.utilization',
      );
      return (s?.values.length ?? 0) > (before?.values.length ?? 0) ? true : undefined;
    });
  }, 120_000);

  it('is removed, its credentials revoked, by `persona agent revoke`', async () => {
    const r = await persona('agent', 'revoke', 'agent-db');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('revoked 1 credential of agent-db');
    expect(r.stdout).toContain('the agent was removed from the host');
    expect(await db.run(`ls -d ${AGENT_PATHS.libDir} ${AGENT_PATHS.confDir} 2>/dev/null || echo gone`)).toBe(
      'gone\n',
    );
    expect(await db.run('pgrep -f "persona-agent[.]sh" || echo none')).toBe('none\n');
  }, 120_000);
});
