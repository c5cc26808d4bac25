// A morph (statemachines/morph.asl.json): LoadProfile → LoadTarget → ComputeDelta → Snapshot →
// ApplyLive → Watch → RecordProfile, and Rollback for any failure once the host may have changed.
// It is the clone's machinery with a different desired state: the host's Profile with a target
// profile laid over it, the Delta from the diff, the orchestrator's executors and journal for
// the apply and its revert. Each step is one function of the operation id; documents under
// operations/<id>/ carry what the steps before it found (payloads carry ids and keys only).
import type { Readable } from 'node:stream';
import type { CloudPlatforms } from '../clone/cloud.js';
import type { OperationDocuments } from '../clone/documents.js';
import { Delta } from '../delta/changes.js';
import { InvalidInputError, NotFoundError, PersonaError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import {
  type CaughtError,
  endAfterRollback,
  failBeforeChange,
  problemOf,
  reasonOf as reasonOfCaught,
} from '../operation/endings.js';
import type { Operation } from '../operation/schema.js';
import { isFinished } from '../operation/schema.js';
import type { OperationStore } from '../operation/store.js';
import type { ContentSource } from '../orchestrator/executors/executor.js';
import type { Executors } from '../orchestrator/executors/index.js';
import type { Journal } from '../orchestrator/journal.js';
import type { PlatformSnapshotRef, ProvisionedHost } from '../platform/platform.js';
import type { Profile } from '../profile/schema.js';
import { type ProfileDeps, recordProfile } from '../profile/service.js';
import { validateProfile } from '../profile/validate.js';
import type { Family } from '../resolver/manager.js';
import { targetFamily } from '../resolver/manager.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import { contentHash, type MorphPlan, planMorph } from './plan.js';
import type { MorphRequest, MorphStep } from './start.js';
import { TargetProfile } from './target.js';
import { judge, type ProbeSummary, sample, type WatchVerdict } from './watch.js';

// What only some steps do is loaded by the first step that does it (one function runs every
// step): the capture, the orchestrator and the snapshot's tar and restore.
const capturing = () =>
  Promise.all([
    import('../capture/collect.js'),
    import('../capture/sealing.js'),
    import('../capture/secrets.js'),
  ]);
const orchestrator = () => import('../orchestrator/apply.js');

export interface MorphDeps {
  readonly operations: OperationStore;
  readonly hosts: HostRegistry;
  readonly documents: OperationDocuments;
  readonly journal: Journal;
  readonly snapshots: () => Promise<SnapshotStore>;
  readonly transportFor: (
    host: HostRegistration,
    options: { readonly acceptNewHostKey: boolean },
  ) => Promise<Transport>;
  readonly executors: (family: Family | undefined) => Executors | Promise<Executors>;
  readonly profiles: ProfileDeps;
  /** The platforms whose snapshots a morph takes of a cloud host besides its own (EBS, managed disks). */
  readonly platforms?: CloudPlatforms;
  readonly now?: () => Date;
  /** How the watch waits between probes: real time, except in unit tests. */
  readonly sleep?: (ms: number) => Promise<void>;
}

export const morphJournal = (operation: string) => `${operation}:apply`;

/** What the target asks that cannot be done: the morph ends before anything on the host changes. */
export class UnresolvedMorphError extends PersonaError {
  readonly code = 'INVALID_INPUT';
  constructor(readonly unresolved: MorphPlan['unresolved']) {
    super(
      `the morph cannot be done: ${unresolved
        .slice(0, 5)
        .map((u) => `${u.kind} ${u.key}: ${u.detail}`)
        .join('; ')}`,
    );
    this.name = 'UnresolvedMorphError';
  }
}

export class MorphApplyError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'MorphApplyError';
  }
}

/** The watch found the host worse than before the morph, beyond the tolerance. */
export class MorphRegressionError extends PersonaError {
  // The operation's error names it REGRESSION (reasonOf); to the API it is a conflict with the baseline.
  readonly code = 'CONFLICT';
  constructor(readonly reasons: readonly string[]) {
    super(`the host performs worse than before the morph: ${reasons.join('; ')}`);
    this.name = 'MorphRegressionError';
  }
}

export {
  MORPH_STEPS,
  MORPH_TRIGGERS,
  type MorphRequest,
  type MorphStep,
  type MorphTrigger,
} from './start.js';

const isoNow = (deps: Pick<MorphDeps, 'now'>) => deps.now?.() ?? new Date();
const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- documents -------------------------------------------------------------------------------

interface BaselineDocument {
  readonly profile: Profile;
  readonly family: Family | null;
  /** The probe before the morph: what the watch compares with. */
  readonly performance: ProbeSummary;
  /** The latest stored version of the host's Profile when the morph began. */
  readonly storedVersion: number | null;
}

interface PlanDocument extends MorphPlan {}

interface SnapshotDocument {
  /** A Persona snapshot of the files the Delta writes that exist now (relative paths). */
  readonly persona?: { readonly host: string; readonly version: number; readonly paths: readonly string[] };
  /** The platform's own snapshot of a cloud host's volumes. */
  readonly platform?: PlatformSnapshotRef;
}

interface AppliedDocument {
  readonly changed: number;
  readonly restarted: readonly { readonly service: string; readonly because: readonly string[] }[];
}

// --- steps -----------------------------------------------------------------------------------

interface StepContext {
  readonly deps: MorphDeps;
  readonly op: Operation;
  readonly request: MorphRequest;
}

async function withHost<T>(ctx: StepContext, work: (t: Transport, host: HostRegistration) => Promise<T>) {
  const host = (await ctx.deps.hosts.get(ctx.request.host)).registration;
  const transport = await ctx.deps.transportFor(host, { acceptNewHostKey: false });
  try {
    return await work(transport, host);
  } finally {
    await transport.close();
  }
}

/** A state-only capture, its secrets sealed and pinned, as a clone's Baseline takes one. */
export async function captureState(
  deps: Pick<MorphDeps, 'snapshots' | 'now'>,
  transport: Transport,
  host: HostRegistration,
): Promise<Profile> {
  const [store, [{ captureHost }, { pinSecretRefs, sealSecrets }, { contentHashKeyOf }]] = await Promise.all([
    deps.snapshots(),
    capturing(),
  ]);
  const captured = await captureHost(transport, {
    params: { usageSample: false },
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

/** The contents a morph writes: the target's own files, by the hash the plan gave them. */
function targetContents(target: TargetProfile): ContentSource {
  const byHash = new Map(
    target.spec.files.map((f) => [contentHash(f.content), Buffer.from(f.content, 'utf8')]),
  );
  return {
    async read(hash: string, path: string) {
      const bytes = byHash.get(hash);
      if (bytes === undefined) throw new NotFoundError(`the target has no content ${hash} for ${path}`, hash);
      return bytes;
    },
  };
}

async function restartService(transport: Transport, name: string): Promise<void> {
  const { initSystem } = await import('../orchestrator/executors/services.js');
  const init = await initSystem(transport);
  if (init === 'none') throw new MorphApplyError(`${name}: the host has no init system to restart it with`);
  const command = init === 'systemd' ? sh`systemctl restart -- ${name}` : sh`service ${name} restart`;
  const r = await transport.run(command);
  if (r.exitCode !== 0)
    throw new MorphApplyError(
      `restarting ${name} failed (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 300)}`,
    );
}

/** The cloud host's platform adaptor and handle, where the deployment has one for it. */
function cloudSnapshotter(deps: MorphDeps, host: HostRegistration) {
  if (host.platform !== 'aws' && host.platform !== 'azure') return undefined;
  const adaptor = host.platform === 'aws' ? deps.platforms?.aws : deps.platforms?.azure;
  const operation = host.tags['persona:operation'];
  const id = host.tags['persona:platform-id'] ?? host.instanceId;
  if (adaptor === undefined || operation === undefined || id === undefined) return undefined;
  const provisioned: ProvisionedHost =
    host.platform === 'aws'
      ? {
          platform: 'ec2',
          operation,
          id,
          scope: host.region ?? '',
          access: {
            transport: 'ssm',
            instanceId: host.instanceId ?? id,
            ...(host.region ? { region: host.region } : {}),
          },
        }
      : {
          platform: 'azure',
          operation,
          id,
          scope: '',
          access: { transport: 'ssh', address: host.address ?? '', port: host.port, user: host.user },
        };
  return { adaptor, host: provisioned };
}

type StepWork = (ctx: StepContext) => Promise<Record<string, unknown>>;

const STEPS: Record<MorphStep, StepWork> = {
  async profile(ctx) {
    const { deps, op, request } = ctx;
    const done = await deps.documents.find<BaselineDocument>(op.id, 'baseline');
    if (done) return { baseline: done.performance.median, family: done.family };
    const head = await deps.profiles.profiles.getHead(request.host);
    const doc = await withHost(ctx, async (transport, host) => {
      const family = (await targetFamily(transport)) ?? null;
      const profile = await captureState(deps, transport, host);
      const w = request.watch;
      const performance = await sample(
        transport,
        w.probe,
        w.samples,
        Math.min(w.periodSeconds * 1000, w.samples * 1000),
        deps.sleep ?? realSleep,
      );
      return { profile, family, performance, storedVersion: head?.latest ?? null } satisfies BaselineDocument;
    });
    await deps.documents.put(op.id, 'baseline', doc);
    return { baseline: doc.performance.median, errorRate: doc.performance.errorRate };
  },

  async target(ctx) {
    const { deps, op, request } = ctx;
    // Checked again here: a request document is data read back from the bucket.
    const target = TargetProfile.safeParse(request.target);
    if (!target.success)
      throw new InvalidInputError('the morph request carries no valid target', [
        { path: 'target', message: target.error.message },
      ]);
    await deps.documents.put(op.id, 'target', target.data);
    return {
      target: target.data.metadata.name,
      sysctl: Object.keys(target.data.spec.sysctl).length,
      files: target.data.spec.files.length,
      services: target.data.spec.services.length,
    };
  },

  async delta(ctx) {
    const { deps, op } = ctx;
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const target = await deps.documents.get<TargetProfile>(op.id, 'target');
    const plan = planMorph(
      baseline.profile,
      target,
      baseline.storedVersion === null ? {} : { version: baseline.storedVersion },
    );
    if (plan.unresolved.length > 0) throw new UnresolvedMorphError(plan.unresolved);
    const delta = Delta.parse(plan.delta);
    await deps.documents.put(op.id, 'plan', { ...plan, delta } satisfies PlanDocument);
    return { changes: delta.changes.length, restarts: plan.restarts.length };
  },

  async snapshot(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    const doc = await withHost(ctx, async (transport, host): Promise<SnapshotDocument> => {
      const files = plan.delta.changes.filter((c) => c.section === 'files').map((c) => c.key.slice(1));
      const existing: string[] = [];
      for (const p of files)
        if ((await transport.run(sh`test -e ${`/${p}`}`)).exitCode === 0) existing.push(p);
      let persona: SnapshotDocument['persona'];
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
          throw new Error(`tar on the host failed: ${ended.stderr.trim().slice(0, 300)}`);
        persona = { host: record.host, version: record.version, paths: existing };
      }
      const cloud = cloudSnapshotter(deps, host);
      const platform = cloud
        ? await cloud.adaptor.snapshot(cloud.host, {
            paths: files.map((p) => `/${p}`),
            state: ['sysctl', 'services'],
          })
        : undefined;
      return { ...(persona ? { persona } : {}), ...(platform ? { platform } : {}) };
    });
    await deps.documents.put(op.id, 'rollback', { snapshot: doc, rolledBack: false });
    return { persona: doc.persona?.version ?? null, platform: doc.platform?.id ?? null };
  },

  async apply(ctx) {
    const { deps, op, request } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const { result, restarted } = await withHost(ctx, async (transport) => {
      const { applyChanges } = await orchestrator();
      const result = await applyChanges(
        {
          transport,
          journal: deps.journal,
          executors: await deps.executors(baseline.family ?? undefined),
          contents: targetContents(request.target),
          shouldStop: async () => (await deps.operations.get(op.id)).cancelRequestedAt !== undefined,
        },
        morphJournal(op.id),
        plan.delta,
      );
      if (result.status === 'rolled-back') return { result, restarted: [] };
      const unresolved = result.results.filter((r) => r.outcome.status === 'unresolved');
      if (unresolved.length > 0)
        throw new MorphApplyError(
          `the host could not take ${unresolved.map((r) => `${r.kind} ${r.key} (${r.outcome.detail})`).join('; ')}`,
        );
      // Recorded before the restarts: a rollback restarts what may have read the new files.
      await deps.documents.put(op.id, 'applied', {
        changed: result.results.filter((r) => r.outcome.status === 'changed').length,
        restarted: plan.restarts,
      } satisfies AppliedDocument);
      for (const r of plan.restarts) await restartService(transport, r.service);
      return { result, restarted: plan.restarts };
    });
    if (result.status === 'rolled-back')
      throw new MorphApplyError(
        `change ${result.failed.seq + 1} (${result.failed.kind} ${result.failed.key}) failed: ${result.failed.error}`,
      );
    return {
      changed: result.results.filter((r) => r.outcome.status === 'changed').length,
      restarted: restarted.map((r) => r.service).join(' ') || 'none',
    };
  },

  async watch(ctx) {
    const { deps, op, request } = ctx;
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const w = request.watch;
    const after = await withHost(ctx, (transport) =>
      sample(transport, w.probe, w.samples, w.periodSeconds * 1000, deps.sleep ?? realSleep),
    );
    const verdict = judge(baseline.performance, after, w.tolerance);
    await deps.documents.put(op.id, 'report', {
      verdict,
      after,
      judgedAt: isoNow(deps).toISOString(),
    } satisfies { verdict: WatchVerdict; after: ProbeSummary; judgedAt: string });
    if (verdict.degraded) throw new MorphRegressionError(verdict.reasons);
    return {
      baseline: verdict.baseline.median,
      after: verdict.after.median,
      errorRate: verdict.after.errorRate,
    };
  },

  async record(ctx) {
    const { deps, op } = ctx;
    const profile = await withHost(ctx, (transport, host) => captureState(deps, transport, host));
    const written = await recordProfile(deps.profiles, profile);
    // Last: the copies kept for a rollback go once the morph stands.
    const { commitOperation } = await orchestrator();
    const committed = await withHost(ctx, (transport) => commitOperation({ transport }, morphJournal(op.id)))
      .then(() => true)
      .catch(() => false);
    return {
      profile: written.version.name,
      version: written.version.version,
      created: written.created,
      backupsDropped: committed,
    };
  },
};

const describe = (summary: Record<string, unknown>): string =>
  Object.entries(summary)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');

/**
 * Runs one step. Marked RUNNING, then SUCCEEDED with its summary; a failure leaves it RUNNING
 * for Rollback (the workflow's Catch) to record.
 */
export async function runMorphStep(
  deps: MorphDeps,
  id: string,
  step: MorphStep,
): Promise<Record<string, unknown>> {
  const op = await deps.operations.get(id);
  if (isFinished(op.status)) return { redelivered: true, status: op.status };
  const request = await deps.documents.get<MorphRequest>(id, 'request');
  await deps.operations.step(id, step, 'RUNNING', isoNow(deps));
  const summary = await STEPS[step]({ deps, op, request });
  await deps.operations.step(id, step, 'SUCCEEDED', isoNow(deps), describe(summary));
  if (step === 'record')
    await deps.operations.finish(
      id,
      {
        status: 'SUCCEEDED',
        result: {
          target: request.target.metadata.name,
          profile: summary.profile,
          version: summary.version,
          plan: `operations/${id}/plan.json`,
          report: `operations/${id}/report.json`,
        },
      },
      isoNow(deps),
    );
  return summary;
}

const reasonOf = (error: CaughtError) => reasonOfCaught(error, { MorphRegressionError: 'REGRESSION' });

export interface MorphRollback {
  readonly failedStep: string;
  readonly reason: string;
  readonly reverted: number;
  readonly restarted: readonly string[];
  /** Entries put back from the platform snapshot where the journal could not revert them. */
  readonly restoredFromSnapshot: readonly string[];
  readonly failures: readonly { kind: string; key: string; error: string }[];
  readonly snapshot?: SnapshotDocument;
  /** When the rollback began and ended: the time to revert. */
  readonly startedAt: string;
  readonly endedAt: string;
}

/**
 * Rollback: the journal reverted in reverse; the services the morph restarted restarted again,
 * so that they read the files as they were; files the journal could not put back restored from
 * the morph's snapshot. The operation ends ROLLED_BACK naming the failed step and why (a watch
 * that found the host worse: REGRESSION), or FAILED with ROLLBACK_INCOMPLETE.
 */
export async function rollbackMorph(
  deps: MorphDeps,
  id: string,
  caught: CaughtError,
): Promise<MorphRollback> {
  const op = await deps.operations.get(id);
  const kept = await deps.documents.find<MorphRollback & { rolledBack?: boolean }>(id, 'rollback');
  if (isFinished(op.status) && kept?.failedStep !== undefined) return kept;
  const startedAt = isoNow(deps).toISOString();
  const failedStep = op.steps.find((s) => s.status === 'RUNNING')?.name ?? 'profile';
  const reason = reasonOf(caught);
  const request = await deps.documents.get<MorphRequest>(id, 'request');
  const host = (await deps.hosts.get(request.host)).registration;
  const baseline = await deps.documents.find<BaselineDocument>(id, 'baseline');
  const applied = await deps.documents.find<AppliedDocument>(id, 'applied');
  const snapshot = kept?.snapshot;
  const failures: MorphRollback['failures'][number][] = [];
  const restarted: string[] = [];
  const restoredFromSnapshot: string[] = [];
  let reverted = 0;
  const touched = op.steps.some((s) => s.name === 'apply' && s.status !== 'PENDING');
  if (touched) {
    await deps.operations.requestCancel(id, isoNow(deps));
    const transport = await deps.transportFor(host, { acceptNewHostKey: false });
    try {
      const { revertOperation } = await orchestrator();
      const r = await revertOperation(
        {
          transport,
          journal: deps.journal,
          executors: await deps.executors(baseline?.family ?? undefined),
          contents: targetContents(request.target),
        },
        morphJournal(id),
      );
      failures.push(...r.failures.map((f) => ({ kind: f.kind, key: f.key, error: f.error })));
      reverted = (await deps.journal.entries(morphJournal(id))).filter((e) => e.state === 'reverted').length;
      const unreverted = r.failures.filter((f) => f.kind.startsWith('file.')).map((f) => f.key.slice(1));
      if (unreverted.length > 0 && snapshot?.persona) {
        const store = await deps.snapshots();
        const record = await store.record(snapshot.persona.host, snapshot.persona.version);
        const paths = unreverted.filter((p) => snapshot.persona?.paths.includes(p));
        const { restoreToHost } = await import('../snapshot/remote.js');
        const stats = await restoreToHost(store, record, transport, { target: '/', paths });
        if (stats.failed.length === 0) {
          restoredFromSnapshot.push(...paths);
          for (let i = failures.length - 1; i >= 0; i--)
            if (paths.includes(failures[i]?.key.slice(1) ?? '')) failures.splice(i, 1);
        }
      }
      for (const r of applied?.restarted ?? []) {
        try {
          await restartService(transport, r.service);
          restarted.push(r.service);
        } catch (error) {
          failures.push({
            kind: 'service.restart',
            key: r.service,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
    } finally {
      await transport.close();
    }
  }
  const doc: MorphRollback = {
    failedStep,
    reason: reason.message,
    reverted,
    restarted,
    restoredFromSnapshot,
    failures,
    ...(snapshot ? { snapshot } : {}),
    startedAt,
    endedAt: isoNow(deps).toISOString(),
  };
  await deps.documents.put(id, 'rollback', doc);
  await endAfterRollback(deps.operations, id, {
    failedStep,
    reason,
    reverted,
    problems: failures.map(problemOf),
    incomplete: 'did not put everything back',
    now: () => isoNow(deps),
  });
  return doc;
}

/** A failure before anything on the host changed (LoadProfile, LoadTarget, ComputeDelta): FAILED. */
export async function failMorph(deps: MorphDeps, id: string, caught: CaughtError): Promise<Operation> {
  const { operation } = await failBeforeChange(deps.operations, id, caught, {
    firstStep: 'profile',
    now: () => isoNow(deps),
  });
  return operation;
}
