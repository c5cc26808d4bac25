// The clone workflow's steps (statemachines/clone.asl.json): Validate → Provision → Baseline →
// Plan → Apply → Start → Verify → Record, and Rollback for any failure after Validate. Each step
// is one function of the operation id: it reads the operation record and the documents the
// steps before it wrote (documents.ts), does its work, writes its own document and returns a
// small summary. A step delivered again after it finished finds its document and does nothing
// twice; the journal makes Apply and Start resumable; Rollback reverts from the journal alone.
import type { Readable } from 'node:stream';
import type { Change, Delta } from '../delta/changes.js';
import { summarize } from '../delta/changes.js';
import { InvalidInputError, NotFoundError, PersonaError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import {
  type CaughtError,
  endAfterRollback,
  failBeforeChange,
  problemOf,
  reasonOf,
} from '../operation/endings.js';
import type { Operation } from '../operation/schema.js';
import { isFinished } from '../operation/schema.js';
import type { OperationStore } from '../operation/store.js';
import type { ApplyResult } from '../orchestrator/apply.js';
import type { Executors } from '../orchestrator/executors/index.js';
import type { Journal } from '../orchestrator/journal.js';
import type { Plan } from '../plan/plan.js';
import type { BareMetalInventory } from '../platform/baremetal.js';
import type { Profile } from '../profile/schema.js';
import { getProfile, type ProfileDeps, recordProfile } from '../profile/service.js';
import { validateProfile } from '../profile/validate.js';
import { type Family, targetFamily } from '../resolver/manager.js';
import type { MirrorLike, Resolution } from '../resolver/resolve.js';
import type { SnapshotRecord } from '../snapshot/records.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { checkPath } from '../transport/paths.js';
import { displayValue, sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import type { ValidationReport } from '../validation/report.js';
import {
  adaptorFor,
  type CloudPlatforms,
  type CloudRecord,
  cloudHostName,
  isCloud,
  type LoginKeys,
  pollProvisioning,
  registerProvisioned,
  startProvisioning,
} from './cloud.js';
import { SnapshotContents } from './contents.js';
import type { OperationDocuments } from './documents.js';
import { stateFingerprint } from './fingerprint.js';
import { CLONE_STEPS, type CloneRequest, type CloneStep } from './request.js';

// What only some steps do is loaded by the first step that does it: every step runs in one
// function, and its cold start need not load the capture, the orchestrator, the resolver and
// the restore that Validate, Provision, Plan-only and Record never touch.
const capturing = () =>
  Promise.all([
    import('../capture/collect.js'),
    import('../capture/sealing.js'),
    import('../capture/secrets.js'),
  ]);
const orchestrator = () => import('../orchestrator/apply.js');
const restoring = () => import('../snapshot/remote.js');
const resolver = () => import('../resolver/resolve.js');
const differ = () => import('../delta/diff.js');
const planning = () => import('../plan/plan.js');
const comparing = () => import('./compare.js');

/** Where a clone reaches what it needs; the composition root (Lambda, CLI, embedded) builds it. */
export interface CloneDeps {
  readonly operations: OperationStore;
  readonly hosts: HostRegistry;
  readonly profiles: ProfileDeps;
  readonly snapshots: () => Promise<SnapshotStore>;
  readonly documents: OperationDocuments;
  readonly journal: Journal;
  readonly inventory?: BareMetalInventory;
  /** The cloud platforms this deployment provisions clones on (EC2, Azure), by target kind. */
  readonly platforms?: CloudPlatforms;
  /** Makes the login key of a host provisioned to be reached over SSH (Azure). */
  readonly loginKeys?: LoginKeys;
  readonly transportFor: (
    host: HostRegistration,
    options: { readonly acceptNewHostKey: boolean },
  ) => Promise<Transport>;
  /**
   * The host executors for a target of a package family (dpkg or rpm), with packages delivered
   * from Persona's package store.
   */
  readonly executors: (family: Family | undefined) => Executors | Promise<Executors>;
  /** What the resolver asks besides the target: Persona's package store and the control side's mirror. */
  readonly packages?: {
    readonly store?: import('../resolver/store.js').PackageIndex;
    readonly mirror?: MirrorLike;
  };
  readonly events?: EventSink;
  readonly now?: () => Date;
  /** How long the journals must stay unchanged before a rollback reverts them. Default 2 s. */
  readonly quietMs?: number;
}

/** Where a clone's outcome is announced: EventBridge in AWS (and the SNS topic its rule feeds). */
export interface EventSink {
  publish(detailType: string, detail: Record<string, unknown>): Promise<void>;
}

/** Which machine the clone works on, and whether the clone took it (and must give it back). */
export interface TargetDocument {
  readonly host: string;
  readonly address?: string;
  readonly pool?: { readonly pool: string; readonly machine: string };
  /** A host provisioned for the clone in a cloud: terminated on rollback. */
  readonly cloud?: CloudRecord;
  /** When a provisioned host was registered (Poll found it ready and reachable). */
  readonly registeredAt?: string;
}

export interface BaselineDocument {
  readonly profile: Profile;
  readonly fingerprint: string;
  /** The target's application trees as they were: the platform snapshot rollback restores. */
  readonly snapshot?: { readonly host: string; readonly version: number };
  /** Application trees of the source, and which of them the target had. */
  readonly paths: readonly string[];
  readonly existing: readonly string[];
  /** The topmost folders the target lacks above or at each tree: a rollback removes them. */
  readonly created?: readonly string[];
  /**
   * The target's Profile version recorded by an earlier clone, used instead of a capture because
   * the target's state fingerprint was unchanged since.
   */
  readonly reused?: { readonly profileVersion: number; readonly operationId: string };
}

export interface AppliedDocument {
  readonly changes: number;
  readonly changed: number;
  readonly unresolved: readonly { kind: string; key: string; detail: string }[];
  readonly data?: {
    readonly paths: readonly string[];
    readonly entries: number;
    readonly bytes: number;
    readonly sentBytes: number;
  };
}

export interface RollbackDocument {
  readonly failedStep: string;
  readonly reason: string;
  readonly reverted: number;
  readonly failures: readonly { kind: string; key: string; error: string }[];
  readonly dataRestored: readonly string[];
  /** Whether a capture of the target after rollback equals its baseline. */
  readonly verified: boolean | 'not-needed';
  readonly differences: readonly string[];
  /** A pooled machine went back to its pool. */
  readonly released?: boolean;
  /** A host provisioned in a cloud was terminated (its changes went with it, unreverted). */
  readonly terminated?: boolean;
}

/** The operation was asked to stop: the workflow rolls back. */
export class CancelledError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(at: string) {
    super(`cancelled by request at ${at}`);
    this.name = 'CancelledError';
  }
}

/** The clone does not behave like its source: the report says how. */
export class ValidationFailedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(readonly reasons: readonly string[]) {
    super(
      `the clone does not behave like its source: ${reasons.slice(0, 5).join('; ')}${reasons.length > 5 ? `; ${reasons.length - 5} more` : ''}`,
    );
    this.name = 'ValidationFailedError';
  }
}

// Changes applied by Start rather than Apply: the application is started once its whole
// configuration is in place, services before the processes they may start.
const START_KINDS = new Set<Change['kind']>(['service.start', 'process.add']);
const START_ORDER: Change['kind'][] = ['service.start', 'process.add'];

export const applyJournal = (operation: string) => `${operation}:apply`;
export const startJournal = (operation: string) => `${operation}:start`;
export const settleJournal = (operation: string) => `${operation}:settle`;

function splitDelta(delta: Delta): { apply: Delta; start: Delta } {
  const apply = delta.changes.filter((c) => !START_KINDS.has(c.kind));
  const start = START_ORDER.flatMap((k) => delta.changes.filter((c) => c.kind === k));
  const part = (changes: Change[]): Delta => ({ ...delta, changes, summary: summarize(changes) });
  return { apply: part(apply), start: part(start) };
}

const isoNow = (deps: CloneDeps) => deps.now?.() ?? new Date();

/** Starts nothing: records the operation and its request. The workflow does the rest. */
export async function startClone(
  deps: Pick<CloneDeps, 'operations' | 'documents' | 'now'>,
  id: string,
  request: CloneRequest,
): Promise<{ operation: Operation; created: boolean }> {
  const at = isoNow(deps as CloneDeps).toISOString();
  const steps = request.mode === 'plan' ? CLONE_STEPS.slice(0, 4) : CLONE_STEPS;
  const started = await deps.operations.start({
    id,
    kind: 'clone',
    host: request.profile.name,
    status: 'PENDING',
    percent: 0,
    steps: steps.map((name) => ({ name, status: 'PENDING' })),
    createdAt: at,
    updatedAt: at,
    parameters: {
      profile: request.profile,
      target: request.target,
      mode: request.mode,
      savedPlan: request.plan !== undefined,
    },
    revision: 0,
  });
  // Written by the first start only; a retried request finds the operation and its request.
  if (started.created) await deps.documents.put(id, 'request', request);
  return started;
}

/** The work of one step; the caller marks it running and done. */
type StepWork = (ctx: StepContext) => Promise<Record<string, unknown>>;

interface StepContext {
  readonly deps: CloneDeps;
  readonly op: Operation;
  readonly request: CloneRequest;
}

async function targetRegistration(ctx: StepContext): Promise<HostRegistration> {
  const target = await ctx.deps.documents.get<TargetDocument>(ctx.op.id, 'target');
  return (await ctx.deps.hosts.get(target.host)).registration;
}

async function withTarget<T>(
  ctx: StepContext,
  work: (t: Transport, host: HostRegistration) => Promise<T>,
): Promise<T> {
  const host = await targetRegistration(ctx);
  const transport = await ctx.deps.transportFor(host, { acceptNewHostKey: ctx.request.acceptNewHostKey });
  try {
    return await work(transport, host);
  } finally {
    await transport.close();
  }
}

async function sourceProfile(ctx: StepContext): Promise<{ profile: Profile; version: number }> {
  const got = await getProfile(ctx.deps.profiles, ctx.request.profile.name, ctx.request.profile.version);
  return { profile: got.profile, version: got.version.version };
}

/**
 * A capture of a host as a Profile, its secrets sealed and pinned as a capture pins them.
 * `state`: the host's state only, without the usage sample's second of waiting (a baseline, a
 * check after apply or rollback); the clone's own Profile, recorded at the end, has its usage.
 */
async function captureProfile(
  deps: CloneDeps,
  transport: Transport,
  host: HostRegistration,
  what: 'state' | 'profile' = 'state',
): Promise<Profile> {
  const [store, [{ captureHost }, { pinSecretRefs, sealSecrets }, { contentHashKeyOf }]] = await Promise.all([
    deps.snapshots(),
    capturing(),
  ]);
  const captured = await captureHost(transport, {
    ...(what === 'state' ? { params: { usageSample: false } } : {}),
    name: host.name,
    capturedAt: isoNow(deps).toISOString(),
    host: host.name,
    application: { paths: host.paths, processes: host.processes },
    contentHashKey: contentHashKeyOf(store.keys),
  });
  const sealed = await sealSecrets(store.secrets, transport, captured.secrets);
  return validateProfile(pinSecretRefs(captured.profile, sealed.digests), {
    source: `capture of ${host.name}`,
  });
}

/** What a state fingerprint covers for a clone of `source`: /etc and the application's trees. */
function fingerprintPaths(source: Profile): string[] {
  return ['/etc', ...applicationPaths(source).map((p) => `/${p}`)];
}

/**
 * The target's Profile as an earlier clone's Record captured it, when the target's state
 * fingerprint over the same trees is what it was then; otherwise undefined (a full capture).
 */
async function recordedState(
  deps: CloneDeps,
  transport: Transport,
  host: HostRegistration,
  paths: readonly string[],
): Promise<{ profile: Profile; version: number; operationId: string } | undefined> {
  const last = (await deps.hosts.get(host.name)).lastCapture;
  const state = last?.state;
  if (!last || !state || last.profileVersion === undefined) return undefined;
  if (state.paths.length !== paths.length || state.paths.some((p, i) => p !== paths[i])) return undefined;
  const now = await stateFingerprint(transport, paths).catch(() => undefined);
  if (now !== state.fingerprint) return undefined;
  const got = await getProfile(deps.profiles, host.name, last.profileVersion).catch(() => undefined);
  return got
    ? { profile: got.profile, version: got.version.version, operationId: last.operationId }
    : undefined;
}

/** The source's application trees (relative to "/"), as the source's snapshot holds them. */
function applicationPaths(profile: Profile): string[] {
  const paths = profile.spec.application.paths.map((p, i) =>
    checkPath(p, `spec.application.paths[${i}]`).replace(/^\/+/, '').replace(/\/+$/, ''),
  );
  return [...new Set(paths)].filter((p) => p !== '' && p !== 'etc' && !p.startsWith('etc/')).sort();
}

const STEPS: Record<Exclude<CloneStep, never> | 'poll', StepWork> = {
  async validate(ctx) {
    const { deps, request } = ctx;
    const source = await sourceProfile(ctx);
    if (isCloud(request.target)) {
      adaptorFor(deps.platforms, request.target.kind);
    } else if (request.target.kind === 'host') {
      const target = await deps.hosts.get(request.target.host);
      if (target.registration.name === request.profile.name)
        throw new InvalidInputError('a host cannot be cloned onto itself', [
          { path: 'target.host', message: `is the source ${request.profile.name}` },
        ]);
    } else if (!deps.inventory) {
      throw new InvalidInputError('this deployment has no bare-metal inventory', [
        { path: 'target.pool', message: 'no inventory' },
      ]);
    }
    const snapshots = await (await deps.snapshots()).list(request.profile.name);
    return { profile: { name: request.profile.name, version: source.version }, snapshots: snapshots.length };
  },

  async provision(ctx) {
    const { deps, request, op } = ctx;
    const done = await deps.documents.find<TargetDocument>(op.id, 'target');
    if (done && (!done.cloud || done.cloud.handle))
      return { host: done.host, ready: !done.cloud, waitSeconds: 1 };
    let target: TargetDocument;
    if (isCloud(request.target)) {
      const adaptor = adaptorFor(deps.platforms, request.target.kind);
      const host = cloudHostName(request.profile.name, op.id);
      const cloud: CloudRecord = done?.cloud ?? {
        kind: request.target.kind,
        startedAt: isoNow(deps).toISOString(),
      };
      // Recorded before the platform is asked, so that a rollback knows to look for what it made.
      await deps.documents.put(op.id, 'target', { host, cloud });
      const source = await sourceProfile(ctx);
      const started = await startProvisioning(adaptor, (await deps.snapshots()).secrets, deps.loginKeys, {
        operation: op.id,
        request,
        target: request.target,
        source: source.profile,
        host,
      });
      target = { host, cloud: { ...cloud, ...started } };
      await deps.documents.put(op.id, 'target', target);
      return { host, ready: false, waitSeconds: 1 };
    }
    if (request.target.kind === 'pool') {
      const inventory = deps.inventory as BareMetalInventory;
      const machine = await inventory.take(request.target.pool, op.id);
      target = {
        host: machine.host ?? machine.machine,
        address: machine.address,
        pool: { pool: machine.pool, machine: machine.machine },
      };
      // Recorded before anything else can fail, so that rollback gives the machine back.
      await deps.documents.put(op.id, 'target', target);
      if (target.host === request.profile.name)
        throw new InvalidInputError('a host cannot be cloned onto itself', [
          { path: 'target.pool', message: `the machine taken, ${target.host}, is the source` },
        ]);
      try {
        await deps.hosts.get(target.host);
      } catch (e) {
        throw new NotFoundError(
          `machine ${displayValue(machine.machine)} of pool ${displayValue(machine.pool)} names host ${displayValue(target.host)}, which is not registered`,
          target.host,
          { cause: e },
        );
      }
    } else {
      const host = await deps.hosts.get(request.target.host);
      target = {
        host: host.registration.name,
        ...(host.registration.address ? { address: host.registration.address } : {}),
      };
      await deps.documents.put(op.id, 'target', target);
    }
    return { host: target.host, ready: true };
  },

  // Bare-metal machines and registered hosts are ready once held; cloud adaptors poll here.
  async poll(ctx) {
    const { deps, op, request } = ctx;
    const target = await deps.documents.get<TargetDocument>(op.id, 'target');
    if (!target.cloud || target.registeredAt) return { host: target.host, ready: true };
    const adaptor = adaptorFor(deps.platforms, target.cloud.kind);
    const now = isoNow(deps);
    const outcome = await pollProvisioning(adaptor, target.cloud, {
      host: target.host,
      operation: op.id,
      now,
    });
    if (!outcome.ready)
      return {
        host: target.host,
        ready: false,
        waitSeconds: outcome.waitSeconds,
        ...(outcome.detail ? { detail: outcome.detail } : {}),
      };
    await registerProvisioned(deps.hosts, outcome.registration, now);
    // Up as the platform sees it is not yet reachable: sshd or the SSM Agent may still be starting.
    const reachable = await deps
      .transportFor(outcome.registration, { acceptNewHostKey: request.acceptNewHostKey })
      .then(async (transport) => {
        try {
          return (await transport.run('true', { timeoutMs: 20_000 })).exitCode === 0;
        } finally {
          await transport.close();
        }
      })
      .catch(() => false);
    if (!reachable) return { host: target.host, ready: false, waitSeconds: 5, detail: 'not answering yet' };
    const address = outcome.registration.address;
    await deps.documents.put(op.id, 'target', {
      ...target,
      ...(address ? { address } : {}),
      registeredAt: now.toISOString(),
    });
    return { host: target.host, ready: true };
  },

  async baseline(ctx) {
    const { deps, op } = ctx;
    const done = await deps.documents.find<BaselineDocument>(op.id, 'baseline');
    if (done) return { fingerprint: done.fingerprint };
    const source = await sourceProfile(ctx);
    const paths = applicationPaths(source.profile);
    return withTarget(ctx, async (transport, host) => {
      const reused = await recordedState(deps, transport, host, fingerprintPaths(source.profile));
      const profile = reused?.profile ?? (await captureProfile(deps, transport, host));
      const existing = await existingPaths(transport, paths);
      const created = await createdRoots(transport, paths);
      let snapshot: BaselineDocument['snapshot'];
      if (existing.length > 0) {
        const store = await deps.snapshots();
        const tar = await transport.stream(sh`tar --format=pax --numeric-owner -cf - -C / -- ${existing}`);
        tar.stdin.end();
        const { tarSource } = await import('../snapshot/tar.js');
        const record = await store.create(tarSource(tar.stdout as Readable, `${host.name}:/`), {
          host: host.name,
        });
        const ended = await tar.done;
        if (ended.exitCode > 1)
          throw new Error(`tar on the target failed: ${ended.stderr.trim().slice(0, 300)}`);
        snapshot = { host: record.host, version: record.version };
      }
      const baseline: BaselineDocument = {
        profile,
        ...(reused ? { reused: { profileVersion: reused.version, operationId: reused.operationId } } : {}),
        fingerprint: (await planning()).targetFingerprint(profile.spec),
        paths,
        existing,
        created,
        ...(snapshot ? { snapshot } : {}),
      };
      await deps.documents.put(op.id, 'baseline', baseline);
      return {
        fingerprint: baseline.fingerprint,
        ...(reused ? { reused: reused.version } : {}),
        snapshot: snapshot?.version ?? null,
        trees: existing.length,
      };
    });
  },

  async plan(ctx) {
    const { deps, op, request } = ctx;
    const existing = await deps.documents.find<Plan>(op.id, 'plan');
    if (existing) return planSummary(existing, request);
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const target = await deps.documents.get<TargetDocument>(op.id, 'target');
    const { buildPlan, checkPlanApplies, withoutUnappliable } = await planning();
    let plan: Plan;
    if (request.plan !== undefined) {
      // Exactly the saved plan, on exactly the target it was made for.
      checkPlanApplies(request.plan, baseline.profile);
      plan = request.plan;
    } else {
      const source = await sourceProfile(ctx);
      const { resolutions, family } = await withTarget(ctx, async (transport) => {
        const family = await targetFamily(transport);
        const { resolvePackages } = await resolver();
        const resolutions: Resolution[] = await resolvePackages(
          source.profile.spec.packages,
          {
            target: transport,
            ...(deps.packages?.store ? { store: deps.packages.store } : {}),
            ...(deps.packages?.mirror ? { mirror: deps.packages.mirror } : {}),
          },
          { targetRepositories: 'offline', ...(family ? { family } : {}) },
        );
        return { resolutions, family };
      });
      const built = buildPlan({
        source: {
          profile: await (await comparing()).alignSealed(
            source.profile,
            baseline.profile,
            await deps.snapshots(),
          ),
          version: source.version,
        },
        baseline: baseline.profile,
        resolutions,
        ...(target.address ? { address: target.address } : {}),
        now: () => isoNow(deps),
      });
      plan = withoutUnappliable(built, await deps.executors(family));
    }
    await deps.documents.put(op.id, 'plan', plan);
    const unresolvable = (plan.resolution ?? []).filter((r) => r.status === 'unresolvable');
    if (unresolvable.length > 0) {
      const { UnresolvablePackagesError } = await resolver();
      throw new UnresolvablePackagesError(
        unresolvable.map((r) => ({
          status: 'unresolvable',
          package: r.package,
          field: r.field,
          reason: r.reason ?? 'unresolvable',
        })),
      );
    }
    return planSummary(plan, request);
  },

  async apply(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<Plan>(op.id, 'plan');
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const { apply } = splitDelta(plan.delta);
    const store = await deps.snapshots();
    const contents = new SnapshotContents(store, plan.source.name, plan.source.version);
    return withTarget(ctx, async (transport, host) => {
      const run = await applier(deps, op.id, transport, contents);
      const result = await run(applyJournal(op.id), apply);
      // What the packages' own scripts did that the source had undone (a default site nginx's
      // package enables, a file the source deleted): the target is captured again and the files
      // that still differ from the source are settled, journaled like the rest.
      await checkCancelled(deps, op.id);
      const source = await getProfile(deps.profiles, plan.source.name, plan.source.version);
      const now = await captureProfile(deps, transport, host);
      const aligned = await (await comparing()).alignSealed(source.profile, now, store);
      const [{ diff }, { translateIdentity }] = await Promise.all([differ(), import('../plan/identity.js')]);
      const settling = diff(now, translateIdentity(aligned, now).profile).changes.filter(
        (c) => c.section === 'files',
      );
      const settled = await run(settleJournal(op.id), {
        ...apply,
        changes: settling,
        summary: summarize(settling),
      });
      // The application's trees: only what differs from what the target holds is sent.
      let data: AppliedDocument['data'];
      if (baseline.paths.length > 0) {
        await checkCancelled(deps, op.id);
        const records = await contents.records();
        const record = records[0];
        if (record === undefined)
          throw new NotFoundError(
            `no snapshot of ${displayValue(plan.source.name)} holds its application trees`,
            plan.source.name,
          );
        data = await restoreTrees(store, record, transport, baseline);
      }
      const applied: AppliedDocument = {
        changes: result.results.length + settled.results.length,
        changed: [...result.results, ...settled.results].filter((r) => r.outcome.status === 'changed').length,
        unresolved: result.results
          .filter((r) => r.outcome.status === 'unresolved')
          .map((r) => ({ kind: r.kind, key: r.key, detail: r.outcome.detail })),
        ...(data ? { data } : {}),
      };
      await deps.documents.put(op.id, 'applied', applied);
      return {
        changes: applied.changes,
        changed: applied.changed,
        unresolved: applied.unresolved.length,
        ...(data ? { dataEntries: data.entries, dataBytes: data.bytes } : {}),
      };
    });
  },

  async start(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<Plan>(op.id, 'plan');
    const { start } = splitDelta(plan.delta);
    const store = await deps.snapshots();
    const contents = new SnapshotContents(store, plan.source.name, plan.source.version);
    return withTarget(ctx, async (transport) => {
      const run = await applier(deps, op.id, transport, contents);
      const result = await run(startJournal(op.id), start);
      return {
        started: result.results.filter((r) => r.outcome.status === 'changed').length,
        unresolved: result.results.filter((r) => r.outcome.status === 'unresolved').length,
      };
    });
  },

  async verify(ctx) {
    const { deps, op } = ctx;
    const existing = await deps.documents.find<ValidationReport>(op.id, 'report');
    const report = existing ?? (await validate(ctx));
    if (!existing) await deps.documents.put(op.id, 'report', report);
    if (report.verdict === 'failed') throw new ValidationFailedError(report.reasons);
    return { verdict: report.verdict, reasons: report.reasons.length };
  },

  async record(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<Plan>(op.id, 'plan');
    return withTarget(ctx, async (transport, host) => {
      const source = await getProfile(deps.profiles, plan.source.name, plan.source.version);
      // The state fingerprint around the capture: kept only when nothing moved while it ran.
      const paths = fingerprintPaths(source.profile);
      const before = await stateFingerprint(transport, paths).catch(() => undefined);
      const clone = await captureProfile(deps, transport, host, 'profile');
      const after = await stateFingerprint(transport, paths).catch(() => undefined);
      const written = await recordProfile(deps.profiles, clone);
      await deps.hosts.recordCapture(host.name, {
        operationId: op.id,
        at: isoNow(deps).toISOString(),
        profileVersion: written.version.version,
        ...(before !== undefined && before === after ? { state: { fingerprint: after, paths } } : {}),
      });
      const differences = await (await comparing()).behaviouralDifferences(
        source.profile,
        clone,
        await deps.snapshots(),
      );
      // The copies kept on the target for rollback go once the clone is final.
      const { commitOperation } = await orchestrator();
      for (const journal of [applyJournal(op.id), settleJournal(op.id), startJournal(op.id)])
        await commitOperation({ transport }, journal);
      return {
        profile: { name: written.version.name, version: written.version.version },
        differences: differences.length,
        differencesShown: differences.slice(0, 20),
      };
    });
  },
};

function planSummary(plan: Plan, request: CloneRequest): Record<string, unknown> {
  return {
    mode: request.mode,
    changes: plan.delta.changes.length,
    unresolved: plan.unresolved.length,
    packages: (plan.resolution ?? []).length,
  };
}

/**
 * Applies a Delta under one of the operation's journals, stopping before the next Change when
 * the operation is being stopped. A Change that fails has been reverted with the others of that
 * journal, and fails the step: the workflow's Rollback undoes the rest.
 */
async function applier(
  deps: CloneDeps,
  id: string,
  transport: Transport,
  contents: SnapshotContents,
): Promise<(journal: string, delta: Delta) => Promise<Extract<ApplyResult, { status: 'applied' }>>> {
  const executors = await deps.executors(await targetFamily(transport));
  return async (journal, delta) => {
    const { applyChanges } = await orchestrator();
    const result = await applyChanges(
      { transport, journal: deps.journal, executors, contents, shouldStop: stopping(deps, id) },
      journal,
      delta,
    );
    failIfRolledBack(result);
    return result as Extract<ApplyResult, { status: 'applied' }>;
  };
}

function failIfRolledBack(result: ApplyResult): void {
  if (result.status !== 'rolled-back') return;
  const f = result.failed;
  throw new ChangeFailedError(
    `change ${f.seq + 1} (${f.kind} ${displayValue(f.key)}) failed: ${f.error}`,
    f.code,
  );
}

/** A Change failed; the orchestrator has reverted what the step had done. */
export class ChangeFailedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly changeCode?: string,
  ) {
    super(message);
    this.name = 'ChangeFailedError';
  }
}

/** Which of the trees are on the host (a directory or anything else at that path). */
async function existingPaths(transport: Transport, paths: readonly string[]): Promise<string[]> {
  if (paths.length === 0) return [];
  const r = await transport.run(
    sh`cd / && for p in ${paths}; do if [ -e "$p" ] || [ -L "$p" ]; then printf '%s\\n' "$p"; fi; done`,
  );
  if (r.exitCode !== 0)
    throw new Error(`could not list the application trees on ${transport.target}: ${r.stderr.trim()}`);
  const found = new Set(r.stdout.split('\n').filter((l) => l !== ''));
  return paths.filter((p) => found.has(p));
}

/** Sends the source's trees, only what differs from the target's, and removes what the source lacks. */
async function restoreTrees(
  store: SnapshotStore,
  record: SnapshotRecord,
  transport: Transport,
  baseline: BaselineDocument,
): Promise<NonNullable<AppliedDocument['data']>> {
  const manifest = await store.manifest(record);
  const inSource = (p: string) => manifest.entries.some((e) => e.path === p || e.path.startsWith(`${p}/`));
  const paths = baseline.paths.filter((p) => manifest.entries.some((e) => e.path === p) && inSource(p));
  if (paths.length === 0) return { paths, entries: 0, bytes: 0, sentBytes: 0 };
  await refuseLinkedAncestors(transport, paths);
  const existing = baseline.snapshot
    ? await store.manifest(await store.record(baseline.snapshot.host, baseline.snapshot.version))
    : undefined;
  const { restoreToHost } = await restoring();
  const stats = await restoreToHost(store, record, transport, {
    target: '/',
    paths,
    ...(existing ? { existing } : {}),
  });
  if (stats.failed.length > 0)
    throw new Error(
      `${stats.failed.length} entries of the application trees did not land: ${stats.failed
        .slice(0, 3)
        .map((f) => `${f.path} (${f.reason})`)
        .join(', ')}`,
    );
  // What the target held under the trees and the source does not: removed, deepest first.
  const wanted = new Set(manifest.entries.map((e) => e.path));
  const extra = (existing?.entries ?? [])
    .map((e) => e.path)
    .filter((p) => paths.some((t) => p === t || p.startsWith(`${t}/`)) && !wanted.has(p))
    .sort((a, b) => b.length - a.length);
  if (extra.length > 0) await removeOnHost(transport, extra);
  return { paths, entries: stats.entries, bytes: stats.bytes, sentBytes: stats.sentBytes };
}

const ancestorsOf = (path: string): string[] => {
  const names = path.split('/');
  return names.slice(0, -1).map((_, i) => names.slice(0, i + 1).join('/'));
};

/**
 * The trees go into "/" with the directories above them: none of those may be a link on the
 * target (a merged /var, a symlinked /srv), which the restore would otherwise replace.
 */
async function refuseLinkedAncestors(transport: Transport, paths: readonly string[]): Promise<void> {
  const ancestors = [...new Set(paths.flatMap(ancestorsOf))];
  if (ancestors.length === 0) return;
  const r = await transport.run(
    sh`cd / && for a in ${ancestors}; do if [ -L "$a" ] || { [ -e "$a" ] && [ ! -d "$a" ]; }; then printf '%s\n' "$a"; fi; done`,
  );
  if (r.exitCode !== 0)
    throw new Error(`could not check the folders above the application trees: ${r.stderr.trim()}`);
  const linked = r.stdout.split('\n').filter((l) => l !== '');
  if (linked.length > 0)
    throw new InvalidInputError(
      `the target has ${linked.map((l) => displayValue(`/${l}`)).join(', ')} where the application's trees need a folder: nothing was restored`,
      linked.map((l) => ({ path: `/${l}`, message: 'is a link or not a folder on the target' })),
    );
}

/**
 * The topmost folder of each tree that the target lacks (`var/www` for `var/www/persona` on a
 * host with no /var/www): what a rollback removes to leave no folder the clone made.
 */
async function createdRoots(transport: Transport, paths: readonly string[]): Promise<string[]> {
  const candidates = [...new Set(paths.flatMap((p) => [...ancestorsOf(p), p]))];
  const present = new Set(await existingPaths(transport, candidates));
  const roots = paths
    .map((p) => [...ancestorsOf(p), p].find((a) => !present.has(a)))
    .filter((a) => a !== undefined);
  return [...new Set(roots)].filter((r, _, all) => !all.some((o) => o !== r && r.startsWith(`${o}/`)));
}

/** Removes paths relative to "/", given NUL-separated on standard input: names are never parsed by a shell. */
async function removeOnHost(transport: Transport, paths: readonly string[]): Promise<void> {
  for (const p of paths) checkPath(`/${p}`, 'path');
  const r = await transport.run('cd / && xargs -0 -r rm -rf --', { stdin: `${paths.join('\0')}\0` });
  if (r.exitCode !== 0)
    throw new Error(`could not remove ${paths.length} paths on ${transport.target}: ${r.stderr.trim()}`);
}

async function validate(ctx: StepContext): Promise<ValidationReport> {
  const { deps, request } = ctx;
  const plan = await deps.documents.get<Plan>(ctx.op.id, 'plan');
  const source = await getProfile(deps.profiles, plan.source.name, plan.source.version);
  const sourceHost = (await deps.hosts.get(plan.source.name).catch(() => undefined))?.registration;
  const listening = new Set(
    (source.profile.observed?.listening ?? []).flatMap((l) => (l.port === undefined ? [] : [l.port])),
  );
  return withTarget(ctx, async (transport, host) => {
    // The clone answers over its transport before anything is asked of its application.
    const alive = await transport.run('uname -sr', { timeoutMs: 30_000 });
    if (alive.exitCode !== 0)
      throw new Error(`the clone ${host.name} did not run a command: ${alive.stderr.trim().slice(0, 200)}`);
    const candidate = host.address;
    if (candidate === undefined)
      throw new InvalidInputError(`target ${host.name} has no address to validate against`, [
        { path: 'target', message: 'no address' },
      ]);
    const v = request.validation;
    const sourceAddress = sourceHost?.address;
    const defaultPort = listening.has(80) ? 80 : undefined;
    const probePort = v.probes?.port ?? defaultPort;
    const probes =
      sourceAddress !== undefined && probePort !== undefined
        ? {
            source: { scheme: v.probes?.scheme ?? 'http', address: sourceAddress, port: probePort },
            candidate: { scheme: v.probes?.scheme ?? 'http', address: candidate, port: probePort },
            requests: (v.probes?.paths ?? ['/']).map((path) => ({ method: 'GET', path })),
            repeat: v.probes?.repeat ?? 2,
          }
        : undefined;
    const loadPort = v.load?.port ?? defaultPort;
    const load =
      v.load !== undefined && sourceAddress !== undefined && loadPort !== undefined
        ? {
            source: { scheme: v.load.scheme, address: sourceAddress, port: loadPort },
            candidate: { scheme: v.load.scheme, address: candidate, port: loadPort },
            requests: [{ method: 'GET', path: v.load.path }],
            ratePerSecond: v.load.ratePerSecond,
            durationMs: v.load.durationMs,
            maxRequests: v.load.maxRequests,
            // The registered source and the target are the hosts this load test may reach.
            allowedAddresses: [sourceAddress, candidate],
            ...(v.load.tolerances ? { tolerances: v.load.tolerances } : {}),
          }
        : undefined;
    const { validateBehaviour } = await import('../validation/validate.js');
    return validateBehaviour(
      { transport, now: () => isoNow(deps) },
      {
        candidateAddress: candidate,
        ...(v.healthChecks ? { healthChecks: source.profile.spec.application.healthChecks } : {}),
        ...(probes ? { probes: probes as never } : {}),
        ...(load ? { load: load as never } : {}),
      },
    );
  });
}

/** Whether the operation is being stopped: cancelled, or given up on by its workflow. */
const stopping = (deps: CloneDeps, id: string) => async (): Promise<boolean> =>
  (await deps.operations.get(id)).cancelRequestedAt !== undefined;

/**
 * Waits until nothing writes the operation's journals any more. A step the workflow gave up on
 * (its time-out passed while its function still ran, or a frozen function resumed) sees the
 * stop at its next Change; reverting before it has stopped would race it on the host.
 */
async function journalsQuiet(deps: CloneDeps, id: string): Promise<void> {
  const read = async () =>
    JSON.stringify(
      await Promise.all(
        [applyJournal(id), settleJournal(id), startJournal(id)].map(async (j) =>
          (await deps.journal.entries(j)).map((e) => [e.seq, e.state, e.updatedAt]),
        ),
      ),
    );
  const interval = deps.quietMs ?? 2000;
  const deadline = Date.now() + 60_000;
  let last = await read();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, interval));
    const now = await read();
    if (now === last) return;
    last = now;
  }
}

async function checkCancelled(deps: CloneDeps, id: string): Promise<void> {
  const op = await deps.operations.get(id);
  if (op.cancelRequestedAt !== undefined) throw new CancelledError(op.cancelRequestedAt);
}

export type StepName = CloneStep | 'poll';

/**
 * Runs one step of the clone. The step is marked RUNNING, then SUCCEEDED with its summary; a
 * failure leaves it RUNNING with the error for Rollback (the workflow's Catch) to record. A
 * step of an operation that has ended does nothing; an operation asked to stop rolls back.
 */
export async function runCloneStep(
  deps: CloneDeps,
  id: string,
  step: StepName,
): Promise<Record<string, unknown>> {
  const op = await deps.operations.get(id);
  if (isFinished(op.status)) return { redelivered: true, status: op.status };
  if (op.cancelRequestedAt !== undefined) throw new CancelledError(op.cancelRequestedAt);
  const request = await deps.documents.get<CloneRequest>(id, 'request');
  const shown = step === 'poll' ? 'provision' : step;
  await deps.operations.step(id, shown, 'RUNNING', isoNow(deps));
  const summary = await STEPS[step]({ deps, op, request });
  await deps.operations.step(id, shown, 'SUCCEEDED', isoNow(deps), describe(summary));
  if (step === 'plan' && request.mode === 'plan') await finishPlanOnly(deps, id);
  if (step === 'record') await finishClone(deps, id, summary);
  return { ...summary, ...(step === 'plan' ? { mode: request.mode } : {}) };
}

const describe = (summary: Record<string, unknown>): string =>
  Object.entries(summary)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');

async function releaseTarget(deps: CloneDeps, id: string): Promise<boolean | undefined> {
  const target = await deps.documents.find<TargetDocument>(id, 'target');
  if (target?.cloud) return terminateCloud(deps, id, target, target.cloud);
  if (!target?.pool || !deps.inventory) return undefined;
  return deps.inventory.release(target.pool.pool, target.pool.machine, id);
}

/**
 * Terminates what was provisioned for the clone; the host's registration stays, tagged as
 * terminated, so that the operation's record still names what it was. Again after it is done,
 * nothing happens.
 */
async function terminateCloud(
  deps: CloneDeps,
  id: string,
  target: TargetDocument,
  cloud: CloudRecord,
): Promise<boolean> {
  if (cloud.terminatedAt) return true;
  if (cloud.handle === undefined) return false;
  await adaptorFor(deps.platforms, cloud.kind).terminate(cloud.handle);
  const at = isoNow(deps);
  await deps.documents.put(id, 'target', { ...target, cloud: { ...cloud, terminatedAt: at.toISOString() } });
  if (target.registeredAt) {
    const host = await deps.hosts.get(target.host).catch(() => undefined);
    if (host)
      await deps.hosts.save(
        { ...host.registration, tags: { ...host.registration.tags, 'persona:terminated': at.toISOString() } },
        at,
      );
  }
  return true;
}

async function finishPlanOnly(deps: CloneDeps, id: string): Promise<void> {
  // A plan changes nothing: a machine taken from a pool to plan on goes back at once.
  await releaseTarget(deps, id);
  const op = await deps.operations.finish(
    id,
    { status: 'SUCCEEDED', result: { plan: documentKeyOf(id, 'plan') } },
    isoNow(deps),
  );
  await deps.events?.publish('Clone Planned', eventDetail(op));
}

async function finishClone(deps: CloneDeps, id: string, summary: Record<string, unknown>): Promise<void> {
  const target = await deps.documents.get<TargetDocument>(id, 'target');
  const report = await deps.documents.find<ValidationReport>(id, 'report');
  const op = await deps.operations.finish(
    id,
    {
      status: 'SUCCEEDED',
      result: {
        target: target.host,
        plan: documentKeyOf(id, 'plan'),
        report: documentKeyOf(id, 'report'),
        verdict: report?.verdict ?? 'inconclusive',
        clone: summary.profile,
        differences: summary.differences,
        ...(Array.isArray(summary.differencesShown) && summary.differencesShown.length > 0
          ? { differencesShown: summary.differencesShown }
          : {}),
      },
    },
    isoNow(deps),
  );
  await deps.events?.publish('Clone Succeeded', eventDetail(op));
}

const documentKeyOf = (id: string, name: 'plan' | 'report') => `operations/${id}/${name}.json`;

const eventDetail = (op: Operation): Record<string, unknown> => ({
  operationId: op.id,
  kind: op.kind,
  host: op.host,
  status: op.status,
  ...(op.error ? { error: op.error } : {}),
  ...(op.result?.target ? { target: op.result.target } : {}),
});

/** What a workflow's Catch hands on, as the rollback step records it. */
export type { CaughtError };

/**
 * Rollback: undoes what the clone did to the target, in reverse (Start's Changes, Apply's, the
 * application trees), checks the target is as its baseline says, gives back a machine taken
 * from a pool, and ends the operation ROLLED_BACK naming the step that failed and why. Rolling
 * back again (a redelivery) finds the journal reverted and does the checks again.
 */
export async function rollbackClone(
  deps: CloneDeps,
  id: string,
  caught: CaughtError,
): Promise<RollbackDocument> {
  const op = await deps.operations.get(id);
  const already = await deps.documents.find<RollbackDocument>(id, 'rollback');
  if (isFinished(op.status) && already) return already;
  const failedStep =
    op.steps.find((s) => s.status === 'RUNNING')?.name ??
    op.steps.find((s) => s.status === 'FAILED')?.name ??
    'validate';
  const reason = reasonOf(caught);
  const request = await deps.documents.find<CloneRequest>(id, 'request');
  const target = await deps.documents.find<TargetDocument>(id, 'target');
  const baseline = await deps.documents.find<BaselineDocument>(id, 'baseline');
  const touched = op.steps.some((s) => (s.name === 'apply' || s.name === 'start') && s.status !== 'PENDING');
  let doc: RollbackDocument = {
    failedStep,
    reason: reason.message,
    reverted: 0,
    failures: [],
    dataRestored: [],
    verified: 'not-needed',
    differences: [],
  };
  if (target && touched && !target.cloud) {
    // Whatever still runs for this operation stops at its next Change, and is waited for.
    await deps.operations.requestCancel(id, isoNow(deps));
    await journalsQuiet(deps, id);
    const host = (await deps.hosts.get(target.host)).registration;
    const transport = await deps.transportFor(host, { acceptNewHostKey: request?.acceptNewHostKey === true });
    try {
      const store = await deps.snapshots();
      const contents = new SnapshotContents(store, op.host);
      const failures: RollbackDocument['failures'][number][] = [];
      let reverted = 0;
      const executors = await deps.executors(await targetFamily(transport));
      // Undone in the reverse order of Apply: the trees came last, so they go first.
      const dataRestored = baseline ? await restoreBaselineTrees(store, transport, baseline) : [];
      const { revertOperation } = await orchestrator();
      for (const journal of [startJournal(id), settleJournal(id), applyJournal(id)]) {
        const r = await revertOperation({ transport, journal: deps.journal, executors, contents }, journal);
        // Counted from the journal: an apply that failed has reverted its own Changes already.
        reverted += (await deps.journal.entries(journal)).filter((e) => e.state === 'reverted').length;
        failures.push(...r.failures.map((f) => ({ kind: f.kind, key: f.key, error: f.error })));
      }
      let verified: boolean | 'not-needed' = 'not-needed';
      let differences: string[] = [];
      if (baseline) {
        const after = await captureProfile(deps, transport, host);
        verified = (await planning()).targetFingerprint(after.spec) === baseline.fingerprint;
        if (!verified) {
          const { diff } = await differ();
          differences = diff(baseline.profile, after).changes.map((c) => `${c.kind} ${displayValue(c.key)}`);
        }
      }
      doc = { ...doc, reverted, failures, dataRestored, verified, differences };
    } finally {
      await transport.close();
    }
  }
  if (target?.cloud && touched) {
    // A host provisioned for the clone goes as a whole: its Changes are not reverted one by one.
    await deps.operations.requestCancel(id, isoNow(deps));
    await journalsQuiet(deps, id);
  }
  const released = await releaseTarget(deps, id);
  doc = {
    ...doc,
    ...(released === undefined ? {} : target?.cloud ? { terminated: released } : { released }),
  };
  await deps.documents.put(id, 'rollback', doc);
  const problems = [...doc.failures.map(problemOf), ...doc.differences];
  if (doc.verified === false && problems.length === 0)
    problems.push('the target does not read back as its baseline');
  const clean = problems.length === 0;
  const ended = await endAfterRollback(deps.operations, id, {
    failedStep,
    reason,
    reverted: doc.reverted,
    problems,
    incomplete: 'did not bring the target back',
    now: () => isoNow(deps),
  });
  await deps.events?.publish(clean ? 'Clone Rolled Back' : 'Clone Rollback Incomplete', eventDetail(ended));
  return doc;
}

/** The target's application trees back as the baseline's platform snapshot has them; new ones removed. */
async function restoreBaselineTrees(
  store: SnapshotStore,
  transport: Transport,
  baseline: BaselineDocument,
): Promise<string[]> {
  if (baseline.paths.length === 0) return [];
  // Whatever the apply left there goes, with the folders it made above them; then the trees the
  // target had come back whole.
  await removeOnHost(transport, [...baseline.paths, ...(baseline.created ?? [])]);
  if (baseline.snapshot && baseline.existing.length > 0) {
    const record = await store.record(baseline.snapshot.host, baseline.snapshot.version);
    const { restoreToHost } = await restoring();
    const stats = await restoreToHost(store, record, transport, { target: '/', paths: baseline.existing });
    if (stats.failed.length > 0)
      throw new Error(
        `${stats.failed.length} entries of the target's trees could not be restored: ${stats.failed
          .slice(0, 3)
          .map((f) => f.path)
          .join(', ')}`,
      );
  }
  return [...baseline.paths];
}

/**
 * The failure path before anything was provisioned (Validate refused the request): the
 * operation ends FAILED with the reason, and the outcome is announced like any other.
 */
export async function failClone(deps: CloneDeps, id: string, caught: CaughtError): Promise<Operation> {
  const { operation, ended } = await failBeforeChange(deps.operations, id, caught, {
    firstStep: 'validate',
    now: () => isoNow(deps),
  });
  if (ended) await deps.events?.publish('Clone Failed', eventDetail(operation));
  return operation;
}
