// An operator's change on a host without an agent, read over SSH on a real test host with the
// agent script's read-only check: what drifted is found with the agent's own comparisons (a
// multi-value sysctl read back with tabs is not a change), a hostile assignment is refused by
// the host's grammars without touching anything, and the round restores at once (enforced),
// keeps until the window edge first seen (retain), waits rather than restart a restore that did
// not take, and leaves alone a host whose switch is under way or whose agent reports for it.
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRecord, HostRegistration } from '../../../core/host/schema.js';
import type { Operation } from '../../../core/operation/schema.js';
import { type AssignedPersona, assignment } from '../../../core/persona/agent/assignment.js';
import { agentScript } from '../../../core/persona/agent/install.js';
import {
  checkDrift,
  checkScript,
  type DriftDeps,
  type DriftRecord,
  RESTORE_RETRY_MS,
  readDrift,
} from '../../../core/persona/drift.js';
import type { Decision, HostPersonaState } from '../../../core/persona/schema.js';
import type { PersonaSwitchRequest } from '../../../core/persona/service.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

let host: TestHost;

beforeAll(async () => {
  host = await createHost({ name: 'drift' });
}, 300_000);

afterAll(async () => {
  await destroyAllHosts();
}, 60_000);

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();

function persona(override: 'enforced' | 'retain', retainUntil: number | null = null): AssignedPersona {
  return {
    name: 'tuned',
    version: 3,
    parameters: {
      sysctl: { 'net.core.somaxconn': '2048', 'net.ipv4.ip_local_port_range': '20000 40000' },
      cgroups: [],
      bandwidth: [],
    } as unknown as AssignedPersona['parameters'],
    override,
    retainUntil,
  };
}

const registration = (name: string) =>
  ({
    name,
    platform: 'baremetal',
    transport: 'ssh',
    address: host.address,
    port: 22,
    user: 'root',
    tags: {},
    paths: [],
    processes: [],
  }) as unknown as HostRegistration;

interface World {
  deps: DriftDeps;
  decisions: Decision[];
  switches: PersonaSwitchRequest[];
  memory: Map<string, DriftRecord>;
  states: Map<string, HostPersonaState>;
  operations: Map<string, Operation['status']>;
}

function world(
  assigned: AssignedPersona | (() => AssignedPersona),
  names = ['drift'],
  live: string[] = [],
): World {
  const decisions: Decision[] = [];
  const switches: PersonaSwitchRequest[] = [];
  const memory = new Map<string, DriftRecord>();
  const states = new Map<string, HostPersonaState>();
  const operations = new Map<string, Operation['status']>();
  const records = names.map(
    (n) => ({ registration: registration(n), createdAt: '', updatedAt: '' }) as HostRecord,
  );
  const deps: DriftDeps = {
    hosts: { list: async () => ({ items: records }) },
    agents: { liveHosts: async () => live },
    assigned: { assigned: async () => (typeof assigned === 'function' ? assigned() : assigned) },
    states: { get: async (h) => states.get(h) },
    operations: {
      get: async (id) => ({ id, status: operations.get(id) ?? 'SUCCEEDED' }) as Operation,
    },
    memory: {
      get: async (h) => memory.get(h),
      put: async (h, r) => {
        memory.set(h, r);
      },
      clear: async (h) => {
        memory.delete(h);
      },
    },
    record: async (d) => {
      decisions.push(d);
    },
    startSwitch: async (request) => {
      switches.push(request);
      const operationId = `op-${switches.length}`;
      operations.set(operationId, 'RUNNING');
      return { operationId };
    },
    transportFor: async (r) => {
      if (r.name === 'unreachable') throw new Error('connect ECONNREFUSED 10.0.0.9:22');
      return sshTransportTo(host);
    },
  };
  return { deps, decisions, switches, memory, states, operations };
}

/** Puts the persona's values on the host, as its switch left them. */
async function applied() {
  await host.run("sysctl -w net.core.somaxconn=2048 'net.ipv4.ip_local_port_range=20000 40000' >/dev/null");
}

describe('reading what drifted', () => {
  it('finds only the values that no longer read as assigned, multi-value keys compared blank for blank', async () => {
    await applied();
    const expected = assignment('drift', persona('enforced'));
    const before = await host.run('ls -a /tmp');
    const transport = sshTransportTo(host);
    try {
      expect(await readDrift(transport, expected)).toEqual([]);
      await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
      const drifted = await readDrift(transport, expected);
      expect(drifted).toEqual([
        { index: 0, kind: 'sysctl', target: 'net.core.somaxconn', from: '999', to: '2048' },
      ]);
    } finally {
      await transport.close();
    }
    // Reading changed nothing, and left no temporary folder behind.
    expect(await sysctl('net.core.somaxconn')).toBe('999');
    expect(await host.run('ls -a /tmp')).toBe(before);
  });

  it('sends the agent script whole, small enough for one SSM command (24 KiB of data)', () => {
    expect(gunzipSync(checkScript()).toString('utf8')).toBe(agentScript());
    expect(checkScript().length).toBeLessThan(24 * 1024);
  });

  it('refuses a hostile assignment with the host-side grammars and touches nothing', async () => {
    await host.run('rm -f /tmp/pwned');
    const expected = {
      ...assignment('drift', persona('enforced')),
      entries: [
        { kind: 'sysctl' as const, key: '../../../tmp/pwned', value: '1' },
        { kind: 'sysctl' as const, key: 'net.core.somaxconn', value: '1;touch /tmp/pwned' },
        { kind: 'cgroup' as const, path: '/../../etc', file: 'cgroup.procs', value: '1' },
        { kind: 'tc' as const, interface: '-oProxyCommand=x', rateKbit: 10 },
      ],
    };
    const transport = sshTransportTo(host);
    try {
      await expect(readDrift(transport, expected)).rejects.toThrow(
        /refused the assignment: 4 entries failed/,
      );
    } finally {
      await transport.close();
    }
    expect((await host.run('test -e /tmp/pwned && echo yes || echo no')).trim()).toBe('no');
  });
});

describe('a round over hosts without an agent', () => {
  it('enforced: restores at once with a switch to the same persona, and says what it read', async () => {
    await applied();
    const w = world(persona('enforced'), ['drift', 'has-agent', 'unreachable'], ['has-agent']);
    const now = new Date('2026-12-01T10:00:00Z');
    const clean = await checkDrift(w.deps, now);
    expect(clean.map((c) => [c.host, c.outcome])).toEqual([
      ['drift', 'unchanged'],
      ['unreachable', 'failed'],
    ]);
    expect(clean[1]?.error).toMatch(/ECONNREFUSED/);
    expect(w.switches).toEqual([]);

    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    const [first] = await checkDrift(w.deps, now);
    expect(first).toMatchObject({ host: 'drift', outcome: 'restoring', drifted: 1, operationId: 'op-1' });
    expect(w.switches).toHaveLength(1);
    expect(w.switches[0]?.to).toEqual({ name: 'tuned', version: 3 });
    expect(w.switches[0]?.decision.action).toBe('restore');
    expect(w.decisions[0]?.summary).toMatch(
      /undone \(override: enforced\): sysctl net.core.somaxconn reads 999, the persona sets 2048/,
    );
    expect(w.decisions[0]?.reasons[0]?.values).toEqual({
      target: 'net.core.somaxconn',
      reads: '999',
      sets: '2048',
    });

    // The restore is under way: the next round leaves the host to it.
    const [running] = await checkDrift(w.deps, new Date(now.getTime() + 60_000));
    expect(running).toMatchObject({ outcome: 'busy', operationId: 'op-1' });
    // It ended but the value still reads the same: not started again before RESTORE_RETRY_MS.
    w.operations.set('op-1', 'ROLLED_BACK');
    const [waiting] = await checkDrift(w.deps, new Date(now.getTime() + 120_000));
    expect(waiting).toMatchObject({ outcome: 'waiting', operationId: 'op-1' });
    const [again] = await checkDrift(w.deps, new Date(now.getTime() + RESTORE_RETRY_MS + 1000));
    expect(again).toMatchObject({ outcome: 'restoring', operationId: 'op-2' });
    // Each attempt is its own operation; rounds of one attempt share its key.
    expect(w.switches[1]?.idempotencyKey).not.toBe(w.switches[0]?.idempotencyKey);

    // Once it reads as assigned again, what was seen is forgotten.
    w.operations.set('op-2', 'SUCCEEDED');
    await applied();
    const [restored] = await checkDrift(w.deps, new Date(now.getTime() + RESTORE_RETRY_MS + 60_000));
    expect(restored?.outcome).toBe('unchanged');
    expect(w.memory.size).toBe(0);
  });

  it('retain: keeps the change until the window edge first seen, recorded once, then restores it', async () => {
    await applied();
    const now = new Date('2026-12-01T10:00:00Z');
    const edge = Math.floor(now.getTime() / 1000) + 3600;
    let assignedEdge = edge;
    const w = world(() => persona('retain', assignedEdge));
    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    const [kept] = await checkDrift(w.deps, now);
    expect(kept).toMatchObject({ outcome: 'retained', until: '2026-12-01T11:00:00.000Z' });
    expect(w.decisions.map((d) => d.action)).toEqual(['retain']);
    expect(w.decisions[0]?.summary).toMatch(/kept until 2026-12-01T11:00:00.000Z \(override: retain\)/);

    // Later rounds keep it silently, and the edge does not move on with the assignment's.
    assignedEdge = edge + 7200;
    const [still] = await checkDrift(w.deps, new Date(now.getTime() + 30 * 60_000));
    expect(still).toMatchObject({ outcome: 'retained', until: '2026-12-01T11:00:00.000Z' });
    expect(w.decisions).toHaveLength(1);
    expect(w.switches).toHaveLength(0);

    const [due] = await checkDrift(w.deps, new Date(edge * 1000 + 1000));
    expect(due?.outcome).toBe('restoring');
    expect(w.switches[0]?.decision.summary).toMatch(
      /kept until the window edge 2026-12-01T11:00:00.000Z, now restored/,
    );
    expect(w.decisions.map((d) => d.action)).toEqual(['retain', 'restore']);
  });

  it('retain without a window edge: kept until the persona changes', async () => {
    await applied();
    const w = world(persona('retain', null));
    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    const [kept] = await checkDrift(w.deps, new Date());
    expect(kept?.outcome).toBe('retained');
    expect(kept?.until).toBeUndefined();
    expect(w.decisions[0]?.summary).toMatch(/kept until the persona changes/);
    const [later] = await checkDrift(w.deps, new Date(Date.now() + 30 * 86400_000));
    expect(later?.outcome).toBe('retained');
    expect(w.switches).toHaveLength(0);
  });

  it('leaves a host whose switch is under way, and one whose persona has no host-local values', async () => {
    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    const w = world(persona('enforced'));
    // Evaluation decided another persona; its switch has not recorded it yet.
    w.states.set('drift', { host: 'drift', current: 'other', currentVersion: 1, since: 0 });
    const [busy] = await checkDrift(w.deps, new Date());
    expect(busy?.outcome).toBe('busy');
    expect(w.switches).toHaveLength(0);

    const none = world({
      ...persona('enforced'),
      parameters: { sysctl: {}, cgroups: [], bandwidth: [] } as never,
    });
    expect(await checkDrift(none.deps, new Date())).toEqual([]);
    await applied();
  });
});
