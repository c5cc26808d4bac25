// Morph policies at work: every minute (the sampling round), each policy's hosts are read for
// what its `when` needs (metrics, signals, forecasts: the persona evaluation's own reading),
// for `detection` their recommendation, and their last morph; decideMorph says whether a morph
// starts, and a morph that should start is started through the same path as
// POST /hosts/{host}/morph.
//
// Two evaluations that decide the same morph start one: the morph's idempotency key is made of
// the policy, the host, the target and what the decision was made from (the schedule window it
// falls in, whose end is the same instant for every evaluation inside it, or else the host's
// last morph). Once a morph has started the ledger names it, so the next evaluation is cooling
// down (or, with no cool-down, finds the morph under way, or decides from a new last morph).
//
// A host with a morph or a persona switch under way is left alone: the decision is answered as
// `busy` and nothing starts. At most one morph starts per host per round, from the first
// policy (by name) that decides one.
import { createHash } from 'node:crypto';
import { NotFoundError } from '../errors.js';
import { isFinished, type Operation } from '../operation/schema.js';
import type { OperationStore } from '../operation/store.js';
import { nextScheduleEdge } from '../persona/schedule.js';
import { type EvaluationDeps, type RegisteredHosts, readCriteriaInput } from '../persona/service.js';
import { type HostRef, hostSelected } from '../persona/signals.js';
import { type LastMorph, type MorphLedger, UNDER_WAY_HORIZON_MS } from './ledger.js';
import { type CompiledPolicy, compilePolicy, decideMorph, type MorphDecision } from './policy.js';
import type { StoredMorphPolicy } from './policy-store.js';
import type { Recommendation } from './similarity.js';
import type { MorphTriggerRecord } from './start.js';

/** What a policy asks of the start path: the host, a target by name, why, and the key. */
export interface PolicyMorphRequest {
  readonly host: string;
  readonly target: string;
  readonly trigger: MorphTriggerRecord;
  readonly idempotencyKey: string;
}

export interface MorphPolicyDeps {
  readonly policies: { loadAll(): Promise<readonly StoredMorphPolicy[]> };
  readonly hosts: RegisteredHosts;
  readonly metrics: EvaluationDeps['metrics'];
  readonly signals: EvaluationDeps['signals'];
  readonly settings?: NonNullable<EvaluationDeps['settings']>;
  readonly ledger: MorphLedger;
  readonly operations: Pick<OperationStore, 'get'>;
  /** The host's recommendation as GET /hosts/{host}/recommendation computes it; undefined without a Profile. */
  recommendation(host: string): Promise<Recommendation | undefined>;
  /** Starts the morph (POST /hosts/{host}/morph's path); the same key finds the morph it started. */
  startMorph(
    request: PolicyMorphRequest,
  ): Promise<{ readonly operationId: string; readonly created: boolean }>;
  /** Hosts evaluated at once. @default 4 */
  readonly concurrency?: number;
}

/**
 * One policy's verdict on one host. started: a morph started now; found: the morph this
 * decision names had started already (another evaluation, an earlier round of the same window);
 * held: the policy does not start one now (summary says why); busy: it would, but a morph or
 * persona switch of the host is under way; failed: see `error`.
 */
export interface PolicyEvaluation {
  readonly policy: string;
  readonly host: string;
  readonly outcome: 'started' | 'found' | 'held' | 'busy' | 'failed';
  readonly summary: string;
  readonly trigger?: MorphDecision['trigger'];
  readonly target?: string;
  readonly operationId?: string;
  readonly error?: string;
}

// A stored policy is compiled once per content (its hash) for the life of the process.
const compiledByHash = new Map<string, CompiledPolicy>();
const MAX_COMPILED = 1000;

function compiled(stored: StoredMorphPolicy): CompiledPolicy {
  let c = compiledByHash.get(stored.record.hash);
  if (c === undefined) {
    if (compiledByHash.size >= MAX_COMPILED) compiledByHash.clear();
    c = compilePolicy(stored.policy);
    compiledByHash.set(stored.record.hash, c);
  }
  return c;
}

const needsRecommendation = (c: CompiledPolicy) =>
  c.policy.spec.detection !== undefined || c.policy.spec.target === 'recommended';

/**
 * The key a policy's morph starts under: equal for every evaluation that decides the same
 * morph from the same window (or, outside a window with an end, the same last morph).
 */
export function policyMorphKey(
  c: CompiledPolicy,
  host: string,
  target: string,
  last: LastMorph | undefined,
  now: number,
): string {
  const edges = (c.criteria?.schedules ?? []).map((s) => nextScheduleEdge(s, now));
  const basis =
    edges.length > 0 && edges.every((e) => e !== undefined)
      ? `window:${edges.join(',')}`
      : `after:${last?.operationId ?? 'none'}`;
  const digest = createHash('sha256')
    .update(JSON.stringify([c.policy.metadata.name, host, target, basis]))
    .digest('base64url')
    .slice(0, 40);
  return `morph-policy-${digest}`;
}

async function allHosts(hosts: RegisteredHosts): Promise<HostRef[]> {
  const out: HostRef[] = [];
  let cursor: string | undefined;
  do {
    const page = await hosts.list({ limit: 100, cursor });
    for (const h of page.items) out.push({ name: h.registration.name, labels: h.registration.tags ?? {} });
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}

/** The hosts the policies select; selectors of names alone are answered without listing the registry. */
async function selectedHosts(
  deps: MorphPolicyDeps,
  policies: readonly CompiledPolicy[],
): Promise<{
  hosts: Map<string, { ref: HostRef; policies: CompiledPolicy[] }>;
  unknown: PolicyEvaluation[];
}> {
  const hosts = new Map<string, { ref: HostRef; policies: CompiledPolicy[] }>();
  const unknown: PolicyEvaluation[] = [];
  const byName = policies.every(
    (p) => p.policy.spec.hosts.names !== undefined && p.policy.spec.hosts.labels === undefined,
  );
  let refs: HostRef[];
  if (byName) {
    refs = [];
    const names = new Set(policies.flatMap((p) => p.policy.spec.hosts.names ?? []));
    for (const name of names) {
      try {
        const r = (await deps.hosts.get(name)).registration;
        refs.push({ name: r.name, labels: r.tags ?? {} });
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
        for (const p of policies)
          if (p.policy.spec.hosts.names?.includes(name))
            unknown.push({
              policy: p.policy.metadata.name,
              host: name,
              outcome: 'held',
              summary: `host ${name} is not registered`,
            });
      }
    }
  } else refs = await allHosts(deps.hosts);
  for (const ref of refs) {
    const mine = policies.filter((p) => hostSelected(p.policy.spec.hosts, ref));
    if (mine.length > 0) hosts.set(ref.name, { ref, policies: mine });
  }
  return { hosts, unknown };
}

/** Evaluates every morph policy on every host it selects, and starts the morphs they decide. */
export async function evaluateMorphPolicies(deps: MorphPolicyDeps, now: number): Promise<PolicyEvaluation[]> {
  const stored = await deps.policies.loadAll();
  if (stored.length === 0) return [];
  const policies = stored
    .map(compiled)
    .sort((a, b) => a.policy.metadata.name.localeCompare(b.policy.metadata.name));
  const { hosts, unknown } = await selectedHosts(deps, policies);
  const work = [...hosts.values()];
  const out: PolicyEvaluation[][] = new Array(work.length);
  let next = 0;
  const worker = async () => {
    while (next < work.length) {
      const i = next++;
      const { ref, policies: mine } = work[i] as (typeof work)[number];
      try {
        out[i] = await evaluateHost(deps, ref, mine, now);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        out[i] = mine.map((p) => ({
          policy: p.policy.metadata.name,
          host: ref.name,
          outcome: 'failed',
          summary: 'the host could not be evaluated',
          error,
        }));
      }
    }
  };
  const workers = Math.max(1, Math.min(deps.concurrency ?? 4, work.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return [...unknown, ...out.flat()];
}

async function evaluateHost(
  deps: MorphPolicyDeps,
  host: HostRef,
  policies: readonly CompiledPolicy[],
  now: number,
): Promise<PolicyEvaluation[]> {
  const [last, input, recommendation] = await Promise.all([
    deps.ledger.last(host.name),
    readCriteriaInput(deps, { name: host.name, labels: { ...host.labels } }, policies, now),
    policies.some(needsRecommendation) ? deps.recommendation(host.name) : Promise.resolve(undefined),
  ]);
  // The last morph's operation, read once: whether it is under way, and where it left the host.
  let lastOperation: Pick<Operation, 'status'> | undefined;
  const lastOp = async () => {
    if (last === undefined) return undefined;
    lastOperation ??= await deps.operations.get(last.operationId).catch((e: unknown) => {
      if (e instanceof NotFoundError) return { status: 'FAILED' as const };
      throw e;
    });
    return lastOperation;
  };
  // Detection does not morph a host again to where its last morph took it (and stayed).
  const current =
    last !== undefined && policies.some(needsRecommendation) && (await lastOp())?.status === 'SUCCEEDED'
      ? last.target
      : null;
  const out: PolicyEvaluation[] = [];
  let startedHere = false;
  for (const c of policies) {
    const name = c.policy.metadata.name;
    try {
      out.push(await evaluatePair(c));
    } catch (e) {
      out.push({
        policy: name,
        host: host.name,
        outcome: 'failed',
        summary: 'the policy could not be evaluated',
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
  return out;

  async function evaluatePair(c: CompiledPolicy): Promise<PolicyEvaluation> {
    const policy = c.policy.metadata.name;
    const decision = decideMorph(c, {
      input,
      ...(recommendation === undefined ? {} : { recommendation }),
      current,
      ...(last === undefined ? {} : { lastMorphAt: last.at }),
    });
    const base = { policy, host: host.name, trigger: decision.trigger, summary: decision.summary };
    if (!decision.start || decision.target === null) return { ...base, outcome: 'held' };
    const target = decision.target;
    if (startedHere)
      return {
        ...base,
        target,
        outcome: 'busy',
        summary: `${decision.summary}: another policy's morph of the host started in this round`,
      };
    const op = await lastOp();
    if (last !== undefined && op !== undefined && !isFinished(op.status))
      return {
        ...base,
        target,
        outcome: 'busy',
        operationId: last.operationId,
        summary: `${decision.summary}: morph ${last.operationId} of the host is under way`,
      };
    const running = await deps.ledger.underWay(host.name, now - UNDER_WAY_HORIZON_MS);
    if (running !== undefined)
      return {
        ...base,
        target,
        outcome: 'busy',
        operationId: running.id,
        summary: `${decision.summary}: ${running.kind === 'activate' ? 'a persona switch' : 'a morph'} of the host is under way (${running.id})`,
      };
    const started = await deps.startMorph({
      host: host.name,
      target,
      idempotencyKey: policyMorphKey(c, host.name, target, last, now),
      trigger: {
        kind: decision.trigger,
        policy,
        detail: `policy ${policy}: ${decision.summary}`,
        // The operation's record stays small: the reasons that decided, not an essay.
        reasons: decision.reasons.slice(0, 20),
      },
    });
    startedHere = true;
    return {
      ...base,
      target,
      outcome: started.created ? 'started' : 'found',
      operationId: started.operationId,
    };
  }
}
