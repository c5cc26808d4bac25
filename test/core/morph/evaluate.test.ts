// Morph policies evaluated over in-memory stores: which hosts a policy selects, its cool-down,
// workload detection's margin, one morph for two evaluations of the same decision, a host with
// an operation under way left alone, and policy documents refused by the field at fault. The
// morph starts through the real startMorph (its operation, request and the host's last morph).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { OperationDocuments } from '../../../core/clone/documents.js';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import {
  evaluateMorphPolicies,
  type MorphPolicyDeps,
  type PolicyMorphRequest,
} from '../../../core/morph/evaluate.js';
import type { LastMorph, MorphLedger } from '../../../core/morph/ledger.js';
import { MorphPolicy, validateMorphPolicy } from '../../../core/morph/policy.js';
import { type StoredMorphPolicy, serializeMorphPolicy } from '../../../core/morph/policy-store.js';
import type { Recommendation } from '../../../core/morph/similarity.js';
import { startMorph } from '../../../core/morph/start.js';
import { TargetProfile } from '../../../core/morph/target.js';
import { operationIdFor } from '../../../core/operation/idempotency.js';
import { isFinished, type Operation } from '../../../core/operation/schema.js';
import type { OperationStore } from '../../../core/operation/store.js';
import type { MetricSeries } from '../../../core/persona/schema.js';
import { parseDocumentText } from '../../../core/profile/io.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const MINUTE = 60_000;
/** When the hosts' latest metric sample was taken (half a minute before this). */
const sampledAt = { at: NOW };

class MemoryOperations implements OperationStore {
  readonly items = new Map<string, Operation>();
  async start(op: Operation) {
    const found = this.items.get(op.id);
    if (found) return { operation: found, created: false };
    this.items.set(op.id, op);
    return { operation: op, created: true };
  }
  async get(id: string) {
    const op = this.items.get(id);
    if (!op) throw new NotFoundError(`operation ${id} does not exist`, id);
    return op;
  }
  async step(): Promise<Operation> {
    throw new Error('not used');
  }
  async finish(id: string, outcome: { status: Operation['status'] }) {
    const op = { ...(await this.get(id)), status: outcome.status };
    this.items.set(id, op);
    return op;
  }
  async requestCancel(): Promise<Operation> {
    throw new Error('not used');
  }
  async list() {
    return { items: [...this.items.values()] };
  }
}

class MemoryLedger implements MorphLedger {
  readonly lasts = new Map<string, LastMorph>();
  constructor(private readonly operations: MemoryOperations) {}
  async note(m: LastMorph) {
    const before = this.lasts.get(m.host);
    if (before === undefined || before.at <= m.at) this.lasts.set(m.host, m);
  }
  async last(host: string) {
    return this.lasts.get(host);
  }
  async underWay(host: string, since: number) {
    return [...this.operations.items.values()].find(
      (o) =>
        o.host === host &&
        (o.kind === 'morph' || o.kind === 'activate') &&
        !isFinished(o.status) &&
        Date.parse(o.createdAt) >= since,
    );
  }
}

const target = (name: string) =>
  TargetProfile.parse({
    apiVersion: 'persona/v1',
    kind: 'TargetProfile',
    metadata: { name },
    spec: { traits: { 'web-serving': 0.9 } },
  });

const policy = (name: string, spec: Record<string, unknown>): StoredMorphPolicy => {
  const p = MorphPolicy.parse({ apiVersion: 'persona/v1', kind: 'MorphPolicy', metadata: { name }, spec });
  const hash = createHash('sha256').update(serializeMorphPolicy(p)).digest('hex');
  const at = new Date(NOW - 86_400_000).toISOString();
  return { record: { name, hash, revision: 1, createdAt: at, updatedAt: at }, policy: p };
};

const rec = (
  host: string,
  recommended: string | null,
  similarity: number,
  margin: number,
): Recommendation => ({
  host,
  profile: { name: host },
  vector: {} as Recommendation['vector'],
  recommended,
  similarity,
  margin,
  evidence: { pulledBy: [], lacking: [] },
  ranked: [],
});

interface World {
  deps: MorphPolicyDeps;
  operations: MemoryOperations;
  ledger: MemoryLedger;
  policies: StoredMorphPolicy[];
  cpu: Map<string, number>;
  recommendations: Map<string, Recommendation>;
  starts: PolicyMorphRequest[];
}

let world: World;

function makeWorld(): World {
  const operations = new MemoryOperations();
  const ledger = new MemoryLedger(operations);
  const policies: StoredMorphPolicy[] = [];
  const cpu = new Map<string, number>();
  const recommendations = new Map<string, Recommendation>();
  const starts: PolicyMorphRequest[] = [];
  const registered = [
    { name: 'web-1', tags: { role: 'web' } },
    { name: 'web-2', tags: { role: 'web' } },
    { name: 'db-1', tags: { role: 'db' } },
  ];
  const documents = { put: async () => 'key' } as unknown as OperationDocuments;
  const deps: MorphPolicyDeps = {
    policies: { loadAll: async () => policies },
    hosts: {
      async get(name) {
        const r = registered.find((h) => h.name === name);
        if (!r) throw new NotFoundError(`host ${name} is not registered`, name);
        return { registration: r };
      },
      async list() {
        return { items: registered.map((registration) => ({ registration })) };
      },
    },
    metrics: {
      async series(host, names) {
        const out = new Map<string, MetricSeries>();
        const v = cpu.get(host);
        if (v !== undefined && names.includes('cpu.utilization'))
          out.set('cpu.utilization', { times: [sampledAt.at - 30_000], values: [v], intervalSeconds: 60 });
        return out;
      },
    },
    signals: { forHost: async () => new Map() },
    ledger,
    operations,
    recommendation: async (host) => recommendations.get(host),
    // What functions/shared/morph-policies.ts does: the operation id from the key, the real start.
    async startMorph(request) {
      starts.push(request);
      const id = operationIdFor(`morph-policy#${request.host}#${request.idempotencyKey}`);
      const started = await startMorph({ operations, documents, ledger, now: () => new Date(NOW) }, id, {
        host: request.host,
        target: target(request.target),
        trigger: request.trigger,
      });
      return { operationId: started.operation.id, created: started.created };
    },
  };
  return { deps, operations, ledger, policies, cpu, recommendations, starts };
}

beforeEach(() => {
  world = makeWorld();
  sampledAt.at = NOW;
});

const busyCpu = { metric: { name: 'cpu.utilization', op: '>', value: 80 } };

describe('evaluateMorphPolicies', () => {
  it('starts a morph on the hosts the policy selects by label whose criteria hold, and records why in the operation', async () => {
    world.policies.push(
      policy('web-demand', { hosts: { labels: { role: 'web' } }, target: 'web-server', when: busyCpu }),
    );
    world.cpu.set('web-1', 95).set('web-2', 20).set('db-1', 99);
    const out = await evaluateMorphPolicies(world.deps, NOW);
    expect(out.map((e) => `${e.host}:${e.outcome}`).sort()).toEqual(['web-1:started', 'web-2:held']);
    const started = out.find((e) => e.outcome === 'started');
    const op = await world.operations.get(started?.operationId as string);
    expect(op).toMatchObject({ kind: 'morph', host: 'web-1', status: 'PENDING' });
    expect(op.parameters).toMatchObject({
      target: 'web-server',
      trigger: { kind: 'demand', policy: 'web-demand', detail: 'policy web-demand: morph to web-server' },
    });
    const reasons = (op.parameters?.trigger as { reasons?: { holds: string }[] } | undefined)?.reasons ?? [];
    expect(reasons.length).toBeGreaterThan(0);
    expect(reasons[0]?.holds).toBe('true');
    // The host's last morph is noted, for the cool-down.
    expect(await world.ledger.last('web-1')).toMatchObject({
      operationId: op.id,
      target: 'web-server',
      at: NOW,
    });
    // db-1 is not selected, however busy.
    expect(world.starts.map((s) => s.host)).toEqual(['web-1']);
  });

  it('selects hosts by name, and says so of a name that is not registered', async () => {
    world.policies.push(
      policy('named', { hosts: { names: ['db-1', 'ghost'] }, target: 'database-server', when: busyCpu }),
    );
    world.cpu.set('db-1', 90).set('web-1', 90);
    const out = await evaluateMorphPolicies(world.deps, NOW);
    expect(out.map((e) => `${e.host}:${e.outcome}`).sort()).toEqual(['db-1:started', 'ghost:held']);
    expect(out.find((e) => e.host === 'ghost')?.summary).toMatch(/not registered/);
  });

  it('keeps the cool-down after the last morph of the host, whoever started it', async () => {
    world.policies.push(
      policy('web-demand', {
        hosts: { names: ['web-1'] },
        target: 'web-server',
        when: busyCpu,
        cooldownSeconds: 600,
      }),
    );
    world.cpu.set('web-1', 95);
    // A morph by hand five minutes ago, which has ended.
    await world.operations.start({
      id: 'manual-op-1',
      kind: 'morph',
      host: 'web-1',
      status: 'SUCCEEDED',
      percent: 100,
      steps: [],
      createdAt: new Date(NOW - 5 * MINUTE).toISOString(),
      updatedAt: new Date(NOW - 4 * MINUTE).toISOString(),
      revision: 3,
    });
    await world.ledger.note({
      host: 'web-1',
      operationId: 'manual-op-1',
      target: 'web-server',
      at: NOW - 5 * MINUTE,
      trigger: 'manual',
    });
    const cooling = await evaluateMorphPolicies(world.deps, NOW);
    expect(cooling).toMatchObject([{ host: 'web-1', outcome: 'held' }]);
    expect(cooling[0]?.summary).toMatch(/cooling down until/);
    expect(world.starts).toEqual([]);
    // Past the cool-down it starts.
    sampledAt.at = NOW + 6 * MINUTE;
    const later = await evaluateMorphPolicies(world.deps, NOW + 6 * MINUTE);
    expect(later).toMatchObject([{ host: 'web-1', outcome: 'started' }]);
  });

  it('detects the workload only past the policy margin, and does not morph a host again to where it went', async () => {
    world.policies.push(
      policy('detect', {
        hosts: { labels: { role: 'web' } },
        target: 'recommended',
        detection: { minSimilarity: 0.7, minMargin: 0.2 },
      }),
    );
    world.recommendations
      .set('web-1', rec('web-1', 'web-server', 0.9, 0.1))
      .set('web-2', rec('web-2', 'web-server', 0.9, 0.3));
    const out = await evaluateMorphPolicies(world.deps, NOW);
    expect(out.map((e) => `${e.host}:${e.outcome}`).sort()).toEqual(['web-1:held', 'web-2:started']);
    expect(out.find((e) => e.host === 'web-1')?.summary).toMatch(/not clearly nearer/);
    const started = out.find((e) => e.host === 'web-2');
    expect(started).toMatchObject({ trigger: 'detection', target: 'web-server' });
    // The morph succeeded: detection leaves the host where it is (no cool-down in the way).
    await world.operations.finish(started?.operationId as string, { status: 'SUCCEEDED' });
    const again = await evaluateMorphPolicies(world.deps, NOW + 2 * 3600_000);
    expect(again.find((e) => e.host === 'web-2')).toMatchObject({ outcome: 'held' });
    expect(again.find((e) => e.host === 'web-2')?.summary).toMatch(/already morphed to web-server/);
    expect(world.starts).toHaveLength(1);
  });

  it('starts one morph when two evaluations decide it at once', async () => {
    world.policies.push(
      policy('web-demand', { hosts: { names: ['web-1'] }, target: 'web-server', when: busyCpu }),
    );
    world.cpu.set('web-1', 95);
    // Both read the host before either noted its morph.
    const [a, b] = await Promise.all([
      evaluateMorphPolicies(world.deps, NOW),
      evaluateMorphPolicies(world.deps, NOW + 1000),
    ]);
    const outcomes = [a[0]?.outcome, b[0]?.outcome];
    expect(world.starts).toHaveLength(2);
    expect(world.starts[0]?.idempotencyKey).toBe(world.starts[1]?.idempotencyKey);
    expect(outcomes.sort()).toEqual(['found', 'started']);
    expect(a[0]?.operationId).toBe(b[0]?.operationId);
    expect([...world.operations.items.values()].filter((o) => o.kind === 'morph')).toHaveLength(1);
  });

  it('starts one morph in a schedule window, even with no cool-down, and another in the next window', async () => {
    world.policies.push(
      policy('nightly', {
        hosts: { names: ['web-1'] },
        target: 'web-server',
        cooldownSeconds: 0,
        when: { schedule: { windows: [{ start: '11:00', end: '13:00' }] } },
      }),
    );
    const first = await evaluateMorphPolicies(world.deps, NOW);
    expect(first).toMatchObject([{ outcome: 'started', trigger: 'schedule' }]);
    await world.operations.finish(first[0]?.operationId as string, { status: 'SUCCEEDED' });
    const sameWindow = await evaluateMorphPolicies(world.deps, NOW + 30 * MINUTE);
    expect(sameWindow).toMatchObject([{ outcome: 'found', operationId: first[0]?.operationId }]);
    const nextDay = await evaluateMorphPolicies(world.deps, NOW + 86_400_000);
    expect(nextDay[0]?.outcome).toBe('started');
    expect(nextDay[0]?.operationId).not.toBe(first[0]?.operationId);
    const outside = await evaluateMorphPolicies(world.deps, NOW + 3 * 3600_000);
    expect(outside[0]?.outcome).toBe('held');
  });

  it('leaves a host alone while a morph or a persona switch of it is under way', async () => {
    world.policies.push(
      policy('web-demand', {
        hosts: { names: ['web-1', 'web-2'] },
        target: 'web-server',
        when: busyCpu,
        cooldownSeconds: 0,
      }),
    );
    world.cpu.set('web-1', 95).set('web-2', 95);
    // web-1: a persona switch running; web-2: a morph by hand still running.
    const at = new Date(NOW - MINUTE).toISOString();
    const base = { percent: 10, steps: [], createdAt: at, updatedAt: at, revision: 1 };
    await world.operations.start({
      ...base,
      id: 'switch-op-1',
      kind: 'activate',
      host: 'web-1',
      status: 'RUNNING',
    });
    await world.operations.start({
      ...base,
      id: 'morph-op-2',
      kind: 'morph',
      host: 'web-2',
      status: 'RUNNING',
    });
    await world.ledger.note({
      host: 'web-2',
      operationId: 'morph-op-2',
      target: 'database-server',
      at: NOW - MINUTE,
      trigger: 'manual',
    });
    const out = await evaluateMorphPolicies(world.deps, NOW);
    expect(out.map((e) => `${e.host}:${e.outcome}:${e.operationId}`).sort()).toEqual([
      'web-1:busy:switch-op-1',
      'web-2:busy:morph-op-2',
    ]);
    expect(out.find((e) => e.host === 'web-1')?.summary).toMatch(/persona switch/);
    expect(world.starts).toEqual([]);
    // Once they end, the morph starts.
    await world.operations.finish('switch-op-1', { status: 'SUCCEEDED' });
    await world.operations.finish('morph-op-2', { status: 'ROLLED_BACK' });
    const after = await evaluateMorphPolicies(world.deps, NOW + MINUTE);
    expect(after.map((e) => e.outcome)).toEqual(['started', 'started']);
  });

  it('starts at most one morph of a host per round, from the first policy by name', async () => {
    world.policies.push(
      policy('b-second', { hosts: { names: ['web-1'] }, target: 'database-server', when: busyCpu }),
      policy('a-first', { hosts: { names: ['web-1'] }, target: 'web-server', when: busyCpu }),
    );
    world.cpu.set('web-1', 95);
    const out = await evaluateMorphPolicies(world.deps, NOW);
    expect(out.map((e) => `${e.policy}:${e.outcome}`)).toEqual(['a-first:started', 'b-second:busy']);
    expect(world.starts.map((s) => s.target)).toEqual(['web-server']);
  });

  it('answers a host whose reading fails as failed and goes on with the others', async () => {
    world.policies.push(
      policy('web-demand', { hosts: { labels: { role: 'web' } }, target: 'web-server', when: busyCpu }),
    );
    world.cpu.set('web-2', 95);
    const series = world.deps.metrics.series.bind(world.deps.metrics);
    const deps: MorphPolicyDeps = {
      ...world.deps,
      metrics: {
        series: (host, names, since) =>
          host === 'web-1' ? Promise.reject(new Error('throttled')) : series(host, names, since),
      },
    };
    const out = await evaluateMorphPolicies(deps, NOW);
    expect(out.map((e) => `${e.host}:${e.outcome}`).sort()).toEqual(['web-1:failed', 'web-2:started']);
    expect(out.find((e) => e.host === 'web-1')?.error).toBe('throttled');
  });
});

describe('morph policy documents', () => {
  const doc = (spec: unknown, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'persona/v1',
    kind: 'MorphPolicy',
    metadata: { name: 'p' },
    spec,
    ...extra,
  });
  const issuesOf = (value: unknown) => {
    try {
      validateMorphPolicy(value);
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
      return (e as InvalidInputError).issues.map((i) => i.path);
    }
    throw new Error('accepted');
  };

  it('refuses hostile documents, naming the field at fault', () => {
    expect(issuesOf(doc({ target: '../../etc/passwd', when: busyCpu }))).toEqual(['spec.target']);
    expect(issuesOf(doc({ target: 'web-server', when: busyCpu, cooldownSeconds: -1 }))).toEqual([
      'spec.cooldownSeconds',
    ]);
    expect(issuesOf(doc({ target: 'web-server', when: busyCpu, run: 'rm -rf /' }))).toEqual(['spec.run']);
    expect(issuesOf(doc({ target: 'web-server' }))).toEqual(['spec']);
    expect(
      issuesOf(doc({ target: 'web-server', when: { metric: { name: '$(reboot)', op: '>', value: 1 } } }))[0],
    ).toMatch(/^spec\.when\.metric\.name/);
    expect(issuesOf(doc({ target: 'web-server', detection: { minMargin: 2 } }))).toEqual([
      'spec.detection.minMargin',
    ]);
    expect(
      issuesOf({ ...doc({ target: 'web-server', when: busyCpu }), metadata: { name: 'Bad Name' } }),
    ).toEqual(['metadata.name']);
    // Nested past the criteria limit: refused by name before the schema walks it.
    let deep: Record<string, unknown> = busyCpu;
    for (let i = 0; i < 5000; i++) deep = { not: deep };
    const [path] = issuesOf(doc({ target: 'web-server', when: deep }));
    expect(path).toMatch(/^spec\.when(\.not)+$/);
  });

  it('refuses criteria the compiler refuses (a true/false signal compared with ">"), naming the field', () => {
    const paths = issuesOf(
      doc({ target: 'web-server', when: { signal: { name: 'freeze', op: '>', value: true } } }),
    );
    expect(paths[0]).toMatch(/^spec\.when/);
  });

  it('reads the shipped example as a valid policy, with its lines for errors', () => {
    const file = join(import.meta.dirname, '../../../examples/morph-policies/web.yaml');
    const { value, locate } = parseDocumentText(readFileSync(file), { source: file });
    const p = validateMorphPolicy(value, { source: file, locate });
    expect(p.spec).toMatchObject({ target: 'recommended', cooldownSeconds: 86400 });
    const broken = readFileSync(file, 'utf8').replace('minMargin: 0.1', 'minMargin: 7');
    const located = parseDocumentText(broken, { source: file });
    try {
      validateMorphPolicy(located.value, { source: file, locate: located.locate });
      throw new Error('accepted');
    } catch (e) {
      expect((e as InvalidInputError).issues[0]).toMatchObject({
        path: 'spec.detection.minMargin',
        line: 26,
      });
    }
  });

  it('accepts a policy and fills its defaults', () => {
    const p = validateMorphPolicy(doc({ target: 'recommended', detection: {} }));
    expect(p.spec).toMatchObject({
      cooldownSeconds: 3600,
      detection: { minSimilarity: 0.7, minMargin: 0.1 },
      hosts: {},
    });
  });
});
