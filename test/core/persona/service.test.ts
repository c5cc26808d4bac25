// Evaluating hosts: with in-memory fakes of the stores and the switch (the protocol between
// them: what is read, what is saved on top of what, when a decision is recorded, which switch
// starts), then with the real stores on DynamoDB Local.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoHostRegistry } from '../../../core/host/registry.js';
import { MetricStore } from '../../../core/persona/metrics.js';
import {
  type CriterionInput,
  type Decision,
  type HostPersonaState,
  type MetricSeries,
  Persona,
  type PersonaInput,
} from '../../../core/persona/schema.js';
import {
  compileAll,
  type EvaluationDeps,
  evaluateHost,
  evaluateHosts,
  evaluatePersonaHosts,
  evaluateSignalHosts,
  type PersonaSwitchRequest,
  type StoredPersona,
  switchKey,
} from '../../../core/persona/service.js';
import { DynamoSignalStore, type SignalStore, type StoredSignal } from '../../../core/persona/signals.js';
import { HostPersonaConflictError, HostPersonaStore } from '../../../core/persona/state.js';
import { PersonaStore } from '../../../core/persona/store.js';
import {
  HOST_PERSONAS_TABLE,
  HOSTS_TABLE,
  METRICS_TABLE,
  PERSONAS_TABLE,
  SIGNALS_TABLE,
} from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

const NOW = Date.parse('2026-12-01T10:00:00.000Z');
const MIN = 60_000;

function persona(name: string, spec: Partial<PersonaInput['spec']> & { criteria?: CriterionInput }): Persona {
  return Persona.parse({
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: { labels: { role: 'web' } }, parameters: {}, ...spec },
  });
}

const HOT_CPU: CriterionInput = { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 300 } };
const hot = persona('hot', {
  priority: 10,
  criteria: HOT_CPU,
  hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
});
const freeze = persona('freeze', {
  priority: 5,
  criteria: { signal: { name: 'deploy-freeze', op: '==', value: true } },
  hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
});

/** A sample a minute for the last `minutes` minutes, all `value`. */
function series(value: number, minutes = 8, now = NOW): MetricSeries {
  const times: number[] = [];
  const values: number[] = [];
  for (let i = minutes; i >= 0; i--) {
    times.push(now - i * MIN);
    values.push(value);
  }
  return { times, values };
}

/** The state store's protocol in memory: a save succeeds only on top of the state it names. */
class FakeStates {
  readonly states = new Map<string, HostPersonaState>();
  readonly decisions: Decision[] = [];
  /** Called before each save, to let a test change the state under it. */
  beforeSave: ((host: string) => void) | undefined;
  saves = 0;
  async get(host: string) {
    return this.states.get(host);
  }
  async save(state: HostPersonaState, expected: HostPersonaState | undefined) {
    this.saves++;
    this.beforeSave?.(state.host);
    const stored = this.states.get(state.host);
    const matches =
      expected === undefined
        ? stored === undefined
        : stored !== undefined &&
          stored.since === expected.since &&
          stored.manual?.at === expected.manual?.at;
    if (!matches) throw new HostPersonaConflictError(`state of ${state.host} changed`, state.host);
    this.states.set(state.host, state);
  }
  async record(decision: Decision) {
    this.decisions.push(decision);
  }
  async latest(host: string) {
    return this.decisions.filter((d) => d.host === host).at(-1);
  }
  async hostsWith(name: string) {
    return [...this.states.values()].filter((s) => s.current === name).map((s) => s.host);
  }
}

interface Fakes {
  readonly deps: EvaluationDeps;
  readonly states: FakeStates;
  readonly switches: PersonaSwitchRequest[];
  readonly metricReads: { host: string; names: readonly string[]; since: number }[];
  readonly signalReads: { host: string; names: readonly string[] }[];
  metrics: Map<string, Map<string, MetricSeries>>;
  signals: Map<string, StoredSignal>;
  failSwitch: Error | undefined;
}

function fakes(personas: readonly Persona[], hosts: Record<string, Record<string, string>>): Fakes {
  const states = new FakeStates();
  const f: Fakes = {
    states,
    switches: [],
    metricReads: [],
    signalReads: [],
    metrics: new Map(),
    signals: new Map(),
    failSwitch: undefined,
    deps: undefined as unknown as EvaluationDeps,
  };
  const registered = (name: string) => {
    const tags = hosts[name];
    if (tags === undefined) throw new Error(`host ${name} is not registered`);
    return { registration: { name, tags } };
  };
  const signals: Pick<SignalStore, 'forHost'> = {
    async forHost(host, names) {
      f.signalReads.push({ host: host.name, names });
      return new Map([...f.signals].filter(([n]) => names.includes(n)));
    },
  };
  (f as { deps: EvaluationDeps }).deps = {
    personas: {
      loadAll: async () => personas.map((persona): StoredPersona => ({ persona, version: { version: 1 } })),
    },
    hosts: {
      get: async (name) => registered(name),
      list: async () => ({ items: Object.keys(hosts).map(registered) }),
    },
    states,
    metrics: {
      async series(host, names, since) {
        f.metricReads.push({ host, names, since });
        return new Map([...(f.metrics.get(host) ?? [])].filter(([n]) => names.includes(n)));
      },
    },
    signals,
    async startSwitch(request) {
      if (f.failSwitch) throw f.failSwitch;
      f.switches.push(request);
      return { operationId: `op-${f.switches.length}` };
    },
    settings: { quietRecordSeconds: 600, lookbackMarginSeconds: 120 },
  };
  return f;
}

describe('evaluateHost', () => {
  let f: Fakes;
  beforeEach(() => {
    f = fakes([hot, freeze], { 'web-1': { role: 'web' }, 'db-1': { role: 'db' } });
  });

  it('switches a host whose metric held its threshold for its duration: saves the state, starts the switch, records why', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    const result = await evaluateHost(f.deps, 'web-1', NOW);
    expect(result).toMatchObject({ host: 'web-1', outcome: 'decided', recorded: true, operationId: 'op-1' });
    expect(result.decision).toMatchObject({ action: 'switch', from: null, to: 'hot', mode: 'act' });
    expect(f.states.states.get('web-1')).toMatchObject({ current: 'hot', currentVersion: 1, since: NOW });
    expect(f.switches).toEqual([
      {
        host: 'web-1',
        to: { name: 'hot', version: 1 },
        decision: result.decision,
        idempotencyKey: switchKey('web-1', undefined, result.decision as Decision, 1),
      },
    ]);
    expect(f.states.decisions).toHaveLength(1);
    expect(f.states.decisions[0]?.reasons.some((r) => r.path.includes('metric') && r.holds === 'true')).toBe(
      true,
    );
  });

  it('reads only the metrics and signals the criteria name, only as far back as the longest duration and the margin', async () => {
    await evaluateHost(f.deps, 'web-1', NOW);
    expect(f.metricReads).toEqual([
      { host: 'web-1', names: ['cpu.utilization'], since: NOW - (300 + 120) * 1000 },
    ]);
    expect(f.signalReads).toEqual([{ host: 'web-1', names: ['deploy-freeze'] }]);
    // A host no persona selects reads nothing at all.
    await evaluateHost(f.deps, 'db-1', NOW);
    expect(f.metricReads).toHaveLength(1);
    expect(f.signalReads).toHaveLength(1);
  });

  it('writes nothing for a host no persona is for and that has none, but reverts one that still holds a persona', async () => {
    expect(await evaluateHost(f.deps, 'db-1', NOW)).toEqual({ host: 'db-1', outcome: 'unselected' });
    expect(f.states.saves).toBe(0);
    expect(f.states.decisions).toEqual([]);
    f.states.states.set('db-1', { host: 'db-1', current: 'hot', currentVersion: 1, since: NOW - 60 * MIN });
    const result = await evaluateHost(f.deps, 'db-1', NOW);
    expect(result.decision).toMatchObject({ action: 'revert', from: 'hot', to: null });
    expect(f.switches.map((s) => [s.host, s.to])).toEqual([['db-1', null]]);
  });

  it('reads a signal the criteria name and switches on it, ahead of a lower-ranked persona', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    f.signals.set('deploy-freeze', { name: 'deploy-freeze', value: true, at: NOW - MIN });
    const result = await evaluateHost(f.deps, 'web-1', NOW);
    expect(result.decision).toMatchObject({ action: 'switch', to: 'freeze' });
    expect(f.switches[0]?.to).toEqual({ name: 'freeze', version: 1 });
  });

  it('records a decision that says nothing new at most once per quiet period, and every change at once', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(20)]]));
    const first = await evaluateHost(f.deps, 'web-1', NOW);
    expect(first).toMatchObject({ recorded: true, decision: { action: 'stay' } });
    for (const minutes of [1, 2, 9]) {
      f.metrics.set('web-1', new Map([['cpu.utilization', series(20, 8, NOW + minutes * MIN)]]));
      expect((await evaluateHost(f.deps, 'web-1', NOW + minutes * MIN)).recorded, `${minutes} min`).toBe(
        false,
      );
    }
    f.metrics.set('web-1', new Map([['cpu.utilization', series(20, 8, NOW + 10 * MIN)]]));
    expect((await evaluateHost(f.deps, 'web-1', NOW + 10 * MIN)).recorded).toBe(true);
    // The criterion holds a minute later: a switch is news, recorded at once.
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95, 8, NOW + 11 * MIN)]]));
    const switched = await evaluateHost(f.deps, 'web-1', NOW + 11 * MIN);
    expect(switched).toMatchObject({ recorded: true, decision: { action: 'switch' } });
    expect(f.states.decisions.map((d) => d.action)).toEqual(['stay', 'stay', 'switch']);
  });

  it('asks the history what was last recorded, once, when the process has not recorded for the host', async () => {
    f.states.decisions.push({
      host: 'web-1',
      at: NOW - MIN,
      action: 'stay',
      from: null,
      to: null,
      mode: 'act',
      summary: 'web-1 stays',
      reasons: [],
    });
    f.metrics.set('web-1', new Map([['cpu.utilization', series(20)]]));
    const result = await evaluateHost(f.deps, 'web-1', NOW);
    expect(result.recorded).toBe(false);
    expect(f.states.decisions).toHaveLength(1);
  });

  it('decides again on the state another evaluation saved first, and gives up cleanly when it loses twice', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    // Someone else switches the host to hot between this evaluation's read and its save.
    f.states.beforeSave = (host) => {
      f.states.beforeSave = undefined;
      f.states.states.set(host, { host, current: 'hot', currentVersion: 1, since: NOW - 1000 });
    };
    const result = await evaluateHost(f.deps, 'web-1', NOW);
    // On the winner's state there is nothing to do: no second switch.
    expect(result).toMatchObject({ outcome: 'decided', decision: { action: 'stay', to: 'hot' } });
    expect(f.switches).toEqual([]);

    // Now the state changes under every save.
    f.metrics.set('web-1', new Map([['cpu.utilization', series(10)]]));
    let n = 0;
    f.states.beforeSave = (host) => {
      n++;
      f.states.states.set(host, { host, current: 'hot', currentVersion: 1, since: NOW - 1000 - n });
    };
    const lost = await evaluateHost(f.deps, 'web-1', NOW);
    expect(lost).toEqual({ host: 'web-1', outcome: 'superseded' });
    expect(n).toBe(2);
    expect(f.switches).toEqual([]);
    expect(f.states.decisions.map((d) => d.action)).toEqual(['stay']);
  });

  it('starts one switch when two evaluations race from the same state', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    const [a, b] = await Promise.all([
      evaluateHost(f.deps, 'web-1', NOW),
      evaluateHost(f.deps, 'web-1', NOW),
    ]);
    expect([a?.decision?.action, b?.decision?.action].sort()).toEqual(['stay', 'switch']);
    expect(f.switches).toHaveLength(1);
    // Had both won (a store without the condition), both would have asked under one key.
    const d = a?.decision?.action === 'switch' ? (a.decision as Decision) : (b?.decision as Decision);
    expect(switchKey('web-1', undefined, d, 1)).toBe(
      switchKey('web-1', undefined, { ...d, summary: 'other' }, 1),
    );
    expect(switchKey('web-1', undefined, d, 1)).not.toBe(
      switchKey('web-1', { host: 'web-1', current: null, since: NOW - MIN }, d, 1),
    );
    expect(switchKey('web-1', undefined, d, 1)).toMatch(/^[A-Za-z0-9_-]{8,80}$/);
  });

  it('puts the state back when the switch cannot be started, so that the next evaluation starts it', async () => {
    f.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    f.failSwitch = new Error('Step Functions is unavailable');
    await expect(evaluateHost(f.deps, 'web-1', NOW)).rejects.toThrow('Step Functions is unavailable');
    expect(f.states.states.get('web-1')).toMatchObject({ current: null });
    expect(f.states.decisions).toEqual([]);
    f.failSwitch = undefined;
    const retried = await evaluateHost(f.deps, 'web-1', NOW + 1000);
    expect(retried).toMatchObject({ operationId: 'op-1', decision: { action: 'switch', to: 'hot' } });
  });

  it('reverts with a switch to the host’s own parameters when the criterion passes', async () => {
    f.states.states.set('web-1', { host: 'web-1', current: 'hot', currentVersion: 1, since: NOW - 30 * MIN });
    f.metrics.set('web-1', new Map([['cpu.utilization', series(10)]]));
    const result = await evaluateHost(f.deps, 'web-1', NOW);
    expect(result.decision).toMatchObject({ action: 'revert', from: 'hot', to: null });
    expect(f.switches[0]).toMatchObject({ host: 'web-1', to: null });
    expect(f.states.states.get('web-1')).toMatchObject({ current: null, since: NOW });
  });

  it('records but starts nothing for a persona in report mode, or while metrics are missing', async () => {
    const g = fakes([persona('watch', { criteria: HOT_CPU, mode: 'report' })], { 'web-1': { role: 'web' } });
    g.metrics.set('web-1', new Map([['cpu.utilization', series(95)]]));
    const report = await evaluateHost(g.deps, 'web-1', NOW);
    expect(report).toMatchObject({ recorded: true, decision: { action: 'switch', mode: 'report' } });
    expect(g.switches).toEqual([]);
    expect(g.states.states.get('web-1')?.current ?? null).toBeNull();
    // No samples: unknown, the host stays.
    const missing = await evaluateHost(f.deps, 'web-1', NOW);
    expect(missing.decision?.action).toBe('stay');
    expect(f.switches).toEqual([]);
  });

  it('reads no forecast yet: a predicted criterion is unknown and switches nothing', async () => {
    const g = fakes(
      [persona('ahead', { criteria: { predicted: { name: 'cpu.utilization', op: '>', value: 50 } } })],
      { 'web-1': { role: 'web' } },
    );
    const result = await evaluateHost(g.deps, 'web-1', NOW);
    expect(result.decision?.action).toBe('stay');
    expect(result.decision?.reasons.some((r) => r.holds === 'unknown')).toBe(true);
    expect(g.switches).toEqual([]);
  });

  it('compiles each persona version once for the life of the process', () => {
    const stored = [{ persona: hot, version: { version: 1 } }];
    expect(compileAll(stored)[0]).toBe(compileAll(stored)[0]);
    expect(compileAll([{ persona: hot, version: { version: 2 } }])[0]).not.toBe(compileAll(stored)[0]);
  });
});

describe('evaluateHosts and the hosts a trigger concerns', () => {
  it('answers a host that fails as failed and evaluates the others', async () => {
    const f = fakes([hot], { 'web-1': { role: 'web' }, 'web-2': { role: 'web' } });
    f.metrics.set('web-2', new Map([['cpu.utilization', series(95)]]));
    const results = await evaluateHosts(f.deps, ['web-1', 'ghost', 'web-2', 'web-1'], NOW);
    expect(results.map((r) => [r.host, r.outcome, r.decision?.action])).toEqual([
      ['web-1', 'decided', 'stay'],
      ['ghost', 'failed', undefined],
      ['web-2', 'decided', 'switch'],
    ]);
    expect(results[1]?.error).toContain('ghost');
  });

  it('wakes at a window edge the hosts a persona selects, and those that hold it but no longer match', async () => {
    const f = fakes([hot], { 'web-1': { role: 'web' }, 'db-1': { role: 'db' }, 'web-2': { role: 'web' } });
    f.states.states.set('db-1', { host: 'db-1', current: 'hot', currentVersion: 1, since: NOW - 60 * MIN });
    const results = await evaluatePersonaHosts(f.deps, 'hot', NOW);
    expect(results.map((r) => [r.host, r.decision?.action])).toEqual([
      ['db-1', 'revert'],
      ['web-1', 'stay'],
      ['web-2', 'stay'],
    ]);
    expect(await evaluatePersonaHosts(f.deps, 'deleted', NOW)).toEqual([]);
  });

  it('evaluates for a signal the hosts that carry a persona naming it, within the signal’s own selector', async () => {
    const f = fakes([hot, freeze], {
      'web-1': { role: 'web' },
      'web-2': { role: 'web' },
      'db-1': { role: 'db' },
    });
    f.signals.set('deploy-freeze', { name: 'deploy-freeze', value: true, at: NOW });
    const all = await evaluateSignalHosts(f.deps, { name: 'deploy-freeze' }, NOW);
    expect(all.map((r) => [r.host, r.decision?.action, r.decision?.to])).toEqual([
      ['web-1', 'switch', 'freeze'],
      ['web-2', 'switch', 'freeze'],
    ]);
    const g = fakes([hot, freeze], { 'web-1': { role: 'web' }, 'web-2': { role: 'web' } });
    const some = await evaluateSignalHosts(
      g.deps,
      { name: 'deploy-freeze', hosts: { names: ['web-2'] } },
      NOW,
    );
    expect(some.map((r) => r.host)).toEqual(['web-2']);
    expect(await evaluateSignalHosts(g.deps, { name: 'nobody-reads-this' }, NOW)).toEqual([]);
  });
});

describe('evaluation on DynamoDB Local', () => {
  let dir: string;
  let standIns: StandIns;
  let ddb: DynamoDBDocumentClient;
  let deps: EvaluationDeps;
  let states: HostPersonaStore;
  let signals: DynamoSignalStore;
  const switches: PersonaSwitchRequest[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'persona-evaluation-'));
    const tables = [PERSONAS_TABLE, HOST_PERSONAS_TABLE, METRICS_TABLE, SIGNALS_TABLE, HOSTS_TABLE].map(
      (definition) => ({ definition, name: definition.id.toLowerCase() }),
    );
    standIns = await startStandIns({ dataDir: join(dir, 'data'), tables, buckets: [] });
    ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: standIns.dynamoEndpoint,
        region: LOCAL_REGION,
        credentials: LOCAL_CREDENTIALS,
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    states = new HostPersonaStore(ddb, 'hostpersonas');
    signals = new DynamoSignalStore(ddb, 'signals');
    const personas = new PersonaStore(ddb, 'personas');
    const hosts = new DynamoHostRegistry(ddb, 'hosts');
    await personas.create(hot);
    await personas.create(freeze);
    for (const [name, role] of [
      ['web-1', 'web'],
      ['web-2', 'web'],
    ] as const) {
      await hosts.register(
        {
          name,
          platform: 'local',
          transport: 'local',
          port: 22,
          user: 'root',
          tags: { role },
          paths: [],
          processes: [],
        } as never,
        new Date(NOW),
      );
    }
    deps = {
      personas,
      hosts,
      states,
      metrics: new MetricStore(ddb, 'metrics', () => NOW),
      signals,
      startSwitch: async (request) => {
        switches.push(request);
        return { operationId: `op-${switches.length}` };
      },
    };
    const metrics = new MetricStore(ddb, 'metrics', () => NOW);
    for (let i = 8; i >= 0; i--) {
      await metrics.put({
        host: 'web-1',
        at: new Date(NOW - i * MIN).toISOString(),
        intervalSeconds: 60,
        values: { 'cpu.utilization': 95, 'memory.utilization': 40 },
      });
    }
  }, 120_000);

  afterAll(async () => {
    ddb?.destroy();
    await standIns?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('switches a host on its stored metrics, saves its state and records the decision with its reason', async () => {
    const result = await evaluateHost(deps, 'web-1', NOW);
    expect(result).toMatchObject({
      outcome: 'decided',
      recorded: true,
      decision: { action: 'switch', to: 'hot' },
    });
    expect(await states.get('web-1')).toMatchObject({ current: 'hot', currentVersion: 1, since: NOW });
    const history = await states.history('web-1');
    expect(history.decisions[0]).toMatchObject({ action: 'switch', to: 'hot' });
    expect(history.decisions[0]?.summary).toContain('hot');
    expect(switches).toHaveLength(1);
  });

  it('lets one of two racing evaluations of a host win on the conditional state, and starts one switch', async () => {
    await signals.put({ name: 'deploy-freeze', value: true, hosts: { names: ['web-2'] } }, NOW);
    const before = switches.length;
    const results = await Promise.all([1, 2, 3].map(() => evaluateHost(deps, 'web-2', NOW + 1)));
    expect(results.filter((r) => r.decision?.action === 'switch')).toHaveLength(1);
    expect(switches.slice(before).map((s) => [s.host, s.to?.name])).toEqual([['web-2', 'freeze']]);
    expect(await states.get('web-2')).toMatchObject({ current: 'freeze' });
  });
});

describe('DynamoSignalStore on DynamoDB Local', () => {
  let dir: string;
  let standIns: StandIns;
  let ddb: DynamoDBDocumentClient;
  let store: DynamoSignalStore;
  const web1 = { name: 'web-1', labels: { role: 'web' } };
  const db1 = { name: 'db-1', labels: { role: 'db' } };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'persona-signals-'));
    standIns = await startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: SIGNALS_TABLE, name: 'signals' }],
      buckets: [],
    });
    ddb = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: standIns.dynamoEndpoint,
        region: LOCAL_REGION,
        credentials: LOCAL_CREDENTIALS,
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    store = new DynamoSignalStore(ddb, 'signals');
  }, 120_000);

  afterAll(async () => {
    ddb?.destroy();
    await standIns?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the latest value of a signal to the hosts its selector takes in, and to no other', async () => {
    await store.put({ name: 'lb.forecast', value: 120, hosts: { labels: { role: 'web' } } }, NOW - 2000);
    await store.put({ name: 'lb.forecast', value: 480, hosts: { labels: { role: 'web' } } }, NOW - 1000);
    expect(await store.forHost(web1, ['lb.forecast', 'never-posted'], NOW)).toEqual(
      new Map([
        [
          'lb.forecast',
          { name: 'lb.forecast', value: 480, at: NOW - 1000, hosts: { labels: { role: 'web' } } },
        ],
      ]),
    );
    expect((await store.forHost(db1, ['lb.forecast'], NOW)).size).toBe(0);
  });

  it('skips a signal whose time to live has passed, though DynamoDB has not deleted it yet', async () => {
    const stored = await store.put({ name: 'freeze', value: true, ttlSeconds: 60 }, NOW);
    expect(stored.expiresAt).toBe(NOW / 1000 + 60);
    expect((await store.forHost(web1, ['freeze'], NOW + 59_000)).get('freeze')?.value).toBe(true);
    expect((await store.forHost(web1, ['freeze'], NOW + 60_000)).has('freeze')).toBe(false);
  });

  it('keeps a host’s own signal beside the posted one, answers the newer, and never lets an older state replace a newer', async () => {
    await store.put({ name: 'alarm/cpu', value: 'OK' }, NOW - 5000);
    await store.putForHost('web-1', { name: 'alarm/cpu', value: 'ALARM', at: NOW - 1000 });
    // A retried, older state change arrives late.
    await store.putForHost('web-1', { name: 'alarm/cpu', value: 'OK', at: NOW - 3000 });
    expect((await store.forHost(web1, ['alarm/cpu'], NOW)).get('alarm/cpu')).toMatchObject({
      value: 'ALARM',
      at: NOW - 1000,
    });
    // Another host sees only the posted value.
    expect((await store.forHost(db1, ['alarm/cpu'], NOW)).get('alarm/cpu')?.value).toBe('OK');
    await store.deleteForHost('web-1', 'alarm/cpu');
    expect((await store.forHost(web1, ['alarm/cpu'], NOW)).get('alarm/cpu')?.value).toBe('OK');
  });

  it('skips a damaged item rather than failing every evaluation that names it', async () => {
    const { PutCommand } = await import('@aws-sdk/lib-dynamodb');
    await ddb.send(
      new PutCommand({
        TableName: 'signals',
        Item: { name: 'damaged', signal: 'damaged', value: { nested: 'map' }, at: 'yesterday' },
      }),
    );
    await store.put({ name: 'fine', value: 1 }, NOW);
    const found = await store.forHost(web1, ['damaged', 'fine'], NOW);
    expect([...found.keys()]).toEqual(['fine']);
  });

  it('reads more than one batch of names', async () => {
    const names = Array.from({ length: 120 }, (_, i) => `s${i}`);
    for (const name of names.slice(0, 3)) await store.put({ name, value: name }, NOW);
    await store.put({ name: 's119', value: 'last' }, NOW);
    const found = await store.forHost(web1, names, NOW);
    expect([...found.keys()].sort()).toEqual(['s0', 's1', 's119', 's2']);
  });
});
