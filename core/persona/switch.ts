// A persona switch (statemachines/persona-switch.asl.json): Validate → Baseline → Plan → Resize
// → Apply → Verify → Record, and Rollback for any failure once something may have changed. It is
// a Delta applied with the clone's machinery: a state-only capture as the baseline, the
// orchestrator's executors and journal for the host-local parameters, the platform adaptor for
// the instance size. Each step is one function of the operation id; documents under
// operations/<id>/ carry what the steps before it found (payloads carry ids only).
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { CloudPlatforms } from '../clone/cloud.js';
import type { OperationDocuments } from '../clone/documents.js';

import { Delta, summarize } from '../delta/changes.js';
import { ConflictError, InvalidInputError, NotFoundError, PersonaError } from '../errors.js';
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
import { hasTc, readRootQdisc } from '../orchestrator/executors/bandwidth.js';
import type { Executors } from '../orchestrator/executors/index.js';
import { ingressDigest, readIngress } from '../orchestrator/executors/ingress.js';
import { SYSCTL_FILE } from '../orchestrator/executors/sysctl.js';
import type { Journal } from '../orchestrator/journal.js';
import type { PlatformAdaptor, ProvisionedHost, ResizeResult } from '../platform/platform.js';
import { sortObjectKeys } from '../profile/collections.js';
import type { Package, Profile } from '../profile/schema.js';
import { validateProfile } from '../profile/validate.js';
import type { Family } from '../resolver/manager.js';
import { targetFamily } from '../resolver/manager.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import {
  type AppliedParameters,
  checkParameters,
  type DefaultParameters,
  EMPTY_DEFAULTS,
  extendDefaults,
  type HostParameters,
  keysOf,
  type ParameterKeys,
  planSwitch,
  type SwitchPlan,
} from './parameters.js';
import type { HostPersonaState, PersonaParameters } from './schema.js';
import type { SwitchRequest, SwitchStep } from './switch-start.js';

// What only some steps do is loaded by the first step that does it (one function runs every
// step): the capture, and the orchestrator with its executors.
const capturing = () =>
  Promise.all([
    import('../capture/collect.js'),
    import('../capture/sealing.js'),
    import('../capture/secrets.js'),
  ]);
const orchestrator = () => import('../orchestrator/apply.js');

// Starting a switch is apart (switch-start.ts): the API functions that start one bundle none of this.
export { SWITCH_STEPS, type SwitchRequest, type SwitchStep, startSwitch } from './switch-start.js';

/** The host's default and what the persona it has now applied (HOST_PERSONAS_TABLE, sk "default"). */
export interface HostDefaults {
  readonly defaults: DefaultParameters;
  readonly applied: AppliedParameters;
  readonly current: { readonly name: string; readonly version: number } | null;
  readonly revision: number;
}

export interface DefaultsStore {
  get(host: string): Promise<HostDefaults>;
  /** Conditional on `revision` being what was read; a ConflictError otherwise. */
  put(host: string, next: Omit<HostDefaults, 'revision'>, revision: number): Promise<void>;
}

/** Where the host's persona is recorded for evaluation and `GET /hosts/{id}/persona`. */
export interface HostPersonaRecorder {
  get(host: string): Promise<HostPersonaState | undefined>;
  save(state: HostPersonaState, expected: HostPersonaState | undefined): Promise<void>;
}

export interface SwitchDeps {
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
  readonly defaults: DefaultsStore;
  readonly hostPersonas?: HostPersonaRecorder;
  /** The platforms that resize: EC2 (`aws`) and Azure, by the registration's platform. */
  readonly platforms?: CloudPlatforms;
  /** Where an EC2 host's thresholds become alarms. */
  readonly cloudwatch?: CloudWatchClient;
  readonly now?: () => Date;
}

export const switchJournal = (operation: string) => `${operation}:apply`;

/** What cannot be done: the switch ends before anything on the host changes. */
export class UnresolvedSwitchError extends PersonaError {
  readonly code = 'INVALID_INPUT';
  constructor(readonly unresolved: SwitchPlan['unresolved']) {
    super(
      `the switch cannot be done: ${unresolved
        .slice(0, 5)
        .map((u) => `${u.kind} ${u.key}: ${u.detail}`)
        .join('; ')}`,
    );
    this.name = 'UnresolvedSwitchError';
  }
}

/** A Change of the apply failed; the orchestrator has reverted what it had applied. */
export class SwitchApplyError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'SwitchApplyError';
  }
}

/** After the apply, the host does not read back as the persona sets it. */
export class SwitchVerifyError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(readonly differences: readonly string[]) {
    super(`the host does not read back as the switch set it: ${differences.slice(0, 5).join('; ')}`);
    this.name = 'SwitchVerifyError';
  }
}

const isoNow = (deps: Pick<SwitchDeps, 'now'>) => deps.now?.() ?? new Date();

// --- reading the host -----------------------------------------------------------------------

interface BaselineDocument {
  readonly family: Family | null;
  readonly host: HostParameters;
  readonly keys: ParameterKeys;
}

/** A state-only capture, its secrets sealed and pinned, as a clone's Baseline takes one. */
export async function captureState(
  deps: SwitchDeps,
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

/** The keys of Persona's sysctl file (60-persona.conf): what it persists. */
async function persistedSysctl(transport: Transport): Promise<Set<string>> {
  const r = await transport.run(sh`cat -- ${SYSCTL_FILE}`);
  const keys = new Set<string>();
  if (r.exitCode !== 0) return keys;
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !line.trimStart().startsWith('#')) keys.add(line.slice(0, eq).trim().replaceAll('/', '.'));
  }
  return keys;
}

/**
 * The host's value of every key the switch reads: sysctl, cgroups and packages from a capture
 * (`profile`), the egress limits and Persona's firewall table from tc and nft.
 */
export async function readHostParameters(
  transport: Transport,
  profile: Profile,
  keys: ParameterKeys,
): Promise<HostParameters> {
  const persisted = await persistedSysctl(transport);
  const sysctl: Record<string, { value: string; persisted: boolean } | null> = {};
  for (const key of keys.sysctl) {
    const value = profile.spec.configuration.sysctl[key];
    sysctl[key] =
      value === undefined
        ? await liveSysctl(transport, key, persisted)
        : { value, persisted: persisted.has(key) };
  }
  const cgroups: Record<string, HostParameters['cgroups'][string]> = {};
  for (const path of keys.cgroups)
    cgroups[path] = profile.spec.resources.cgroups.find((c) => c.path === path) ?? null;
  const bandwidth: Record<string, HostParameters['bandwidth'][string]> = {};
  const tc = keys.interfaces.length > 0 && (await hasTc(transport));
  for (const iface of keys.interfaces) {
    if (!tc) {
      bandwidth[iface] = 'no-tc';
      continue;
    }
    const q = await readRootQdisc(transport, iface);
    if (q === null) continue;
    bandwidth[iface] =
      q.owner === 'other'
        ? 'other'
        : q.owner === 'default' || q.rateBps === undefined
          ? null
          : { interface: iface, egressMbps: Math.round(q.rateBps / 1000) / 1000 };
  }
  const packages: Record<string, Package | null> = {};
  for (const name of keys.packages)
    packages[name] = profile.spec.packages.find((p) => p.name === name) ?? null;
  const ingress = await readIngress(transport);
  const size = profile.spec.instance?.size;
  return {
    sysctl,
    cgroups,
    bandwidth,
    ...(ingress.tool ? { ingress: ingress.digest } : {}),
    packages,
    ...(size === undefined ? {} : { instanceSize: size }),
  };
}

/** A key the capture leaves out (state, or derived from the machine's size), read live. */
async function liveSysctl(transport: Transport, key: string, persisted: Set<string>) {
  const r = await transport.run(sh`sysctl -n -- ${key}`);
  return r.exitCode === 0
    ? { value: r.stdout.trim().split(/\s+/).join(' '), persisted: persisted.has(key) }
    : null;
}

// --- steps ----------------------------------------------------------------------------------

interface StepContext {
  readonly deps: SwitchDeps;
  readonly op: Operation;
  readonly request: SwitchRequest;
}

type StepWork = (ctx: StepContext) => Promise<Record<string, unknown>>;

async function registration(ctx: StepContext): Promise<HostRegistration> {
  return (await ctx.deps.hosts.get(ctx.request.host)).registration;
}

async function withHost<T>(
  ctx: StepContext,
  work: (t: Transport, host: HostRegistration) => Promise<T>,
): Promise<T> {
  const host = await registration(ctx);
  const transport = await ctx.deps.transportFor(host, { acceptNewHostKey: false });
  try {
    return await work(transport, host);
  } finally {
    await transport.close();
  }
}

const parametersOf = (request: SwitchRequest): PersonaParameters | null =>
  request.persona?.spec.parameters ?? null;

/** The adaptor that resizes the host, and the host as the adaptor knows it; undefined where none does. */
function resizer(
  deps: SwitchDeps,
  host: HostRegistration,
): { adaptor: PlatformAdaptor; host: ProvisionedHost } | undefined {
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

const ec2InstanceOf = (host: HostRegistration) =>
  host.platform === 'aws' ? (host.tags['persona:platform-id'] ?? host.instanceId) : undefined;

async function switchExecutors(
  deps: SwitchDeps,
  family: Family | undefined,
  host: HostRegistration,
): Promise<Executors> {
  const base = await deps.executors(family);
  const instanceId = ec2InstanceOf(host);
  if (deps.cloudwatch === undefined || instanceId === undefined) return base;
  const [{ executorsFor }, { alarmExecutor }] = await Promise.all([
    import('../orchestrator/executors/index.js'),
    import('../orchestrator/executors/alarms.js'),
  ]);
  return executorsFor([
    ...new Set(base.values()),
    alarmExecutor({ cloudwatch: deps.cloudwatch, host: host.name, instanceId }),
  ]);
}

interface PlanDocument extends SwitchPlan {
  readonly delta: Delta;
}

interface ResizeDocument {
  readonly from?: string;
  readonly to: string;
  readonly result: ResizeResult;
}

const STEPS: Record<SwitchStep, StepWork> = {
  async validate(ctx) {
    const { request } = ctx;
    const host = await registration(ctx);
    if ((request.to === null) !== (request.persona === null))
      throw new InvalidInputError('a switch names a persona and carries its document, or neither', [
        { path: 'to', message: 'does not match the persona document' },
      ]);
    if (request.decision.mode === 'report')
      throw new InvalidInputError('a decision in report mode is recorded, never applied', [
        { path: 'decision.mode', message: 'report: nothing is switched' },
      ]);
    const persona = request.persona;
    if (persona !== null) {
      checkParameters(persona.spec.parameters, 'spec.parameters');
      const { names, labels } = persona.spec.hosts;
      const named = names === undefined || names.includes(host.name);
      const labelled = labels === undefined || Object.entries(labels).every(([k, v]) => host.tags[k] === v);
      if (!named || !labelled)
        throw new InvalidInputError(`persona ${persona.metadata.name} is not for host ${host.name}`, [
          { path: 'spec.hosts', message: `does not select ${host.name}` },
        ]);
    }
    return { host: host.name, persona: request.to?.name ?? '(default)' };
  },

  async baseline(ctx) {
    const { deps, op, request } = ctx;
    const done = await deps.documents.find<BaselineDocument>(op.id, 'baseline');
    if (done) return { keys: countKeys(done.keys) };
    const stored = await deps.defaults.get(request.host);
    const keys = keysOf(parametersOf(request) ?? undefined, stored.defaults);
    const doc = await withHost(ctx, async (transport, host) => {
      const family = (await targetFamily(transport)) ?? null;
      const profile = await captureState(deps, transport, host);
      return {
        family,
        keys,
        host: await readHostParameters(transport, profile, keys),
      } satisfies BaselineDocument;
    });
    await deps.documents.put(op.id, 'baseline', doc);
    return { keys: countKeys(keys) };
  },

  async plan(ctx) {
    const { deps, op, request } = ctx;
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const host = await registration(ctx);
    const stored = await deps.defaults.get(request.host);
    const persona = parametersOf(request);
    // The host leaves its default, or a persona touches keys no earlier one did: the values it
    // overwrites are recorded first, so that going back restores exactly them.
    const defaults = persona
      ? extendDefaults(stored.defaults, persona, baseline.host, stored.applied)
      : stored.defaults;
    const plan = planSwitch(baseline.host, defaults, stored.applied, persona, {
      alarms: deps.cloudwatch !== undefined && ec2InstanceOf(host) !== undefined,
      resizable: resizer(deps, host) !== undefined,
      packageManager: baseline.family === 'rpm' ? 'rpm' : 'apt',
      keepPorts: host.transport === 'ssh' ? [host.port] : [],
    });
    if (plan.unresolved.length > 0) throw new UnresolvedSwitchError(plan.unresolved);
    if (JSON.stringify(defaults) !== JSON.stringify(stored.defaults))
      await deps.defaults.put(request.host, { ...stored, defaults }, stored.revision);
    const ref = (name: string) => ({ name });
    const delta = Delta.parse({
      from: ref(stored.current?.name ?? 'default'),
      to: ref(request.to?.name ?? 'default'),
      changes: plan.changes,
      summary: summarize(plan.changes),
    });
    await deps.documents.put(op.id, 'plan', { ...plan, delta } satisfies PlanDocument);
    return { changes: delta.changes.length, resize: plan.resize?.to ?? false };
  },

  async resize(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    if (plan.resize === undefined) return { resized: false };
    const done = await deps.documents.find<ResizeDocument>(op.id, 'target');
    if (done) return { resized: done.result.state === 'resized', size: done.to };
    const found = resizer(deps, await registration(ctx));
    if (found === undefined)
      throw new UnresolvedSwitchError([
        { kind: 'instance.resize', key: 'instance', detail: 'no adaptor resizes this host' },
      ]);
    const result = await found.adaptor.resize(found.host, plan.resize.to, {
      fallback: plan.resize.preferred,
    });
    const size = result.state === 'unsupported' ? plan.resize.to : result.size;
    if (result.state === 'unsupported')
      throw new UnresolvedSwitchError([{ kind: 'instance.resize', key: 'instance', detail: result.reason }]);
    const from = result.state === 'resized' ? (result.previous ?? plan.resize.from) : plan.resize.from;
    // The size the host had before any persona, where only the platform could tell it.
    const stored = await deps.defaults.get(ctx.request.host);
    if (from !== undefined && stored.defaults.instanceSize === undefined)
      await deps.defaults.put(
        ctx.request.host,
        { ...stored, defaults: { ...stored.defaults, instanceSize: from } },
        stored.revision,
      );
    await deps.documents.put(op.id, 'target', {
      ...(from === undefined ? {} : { from }),
      to: size,
      result,
    } satisfies ResizeDocument);
    return { resized: result.state === 'resized', size };
  },

  async apply(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const { applyChanges } = await orchestrator();
    const result = await withHost(ctx, async (transport, host) =>
      applyChanges(
        {
          transport,
          journal: deps.journal,
          executors: await switchExecutors(deps, baseline.family ?? undefined, host),
          contents: NO_CONTENTS,
          shouldStop: async () => (await deps.operations.get(op.id)).cancelRequestedAt !== undefined,
        },
        switchJournal(op.id),
        plan.delta,
      ),
    );
    if (result.status === 'rolled-back')
      throw new SwitchApplyError(
        `change ${result.failed.seq + 1} (${result.failed.kind} ${result.failed.key}) failed: ${result.failed.error}`,
      );
    await deps.documents.put(op.id, 'applied', {
      changes: result.results.length,
      changed: result.results.filter((r) => r.outcome.status === 'changed').length,
      unresolved: result.results
        .filter((r) => r.outcome.status === 'unresolved')
        .map((r) => ({ kind: r.kind, key: r.key, detail: r.outcome.detail })),
    });
    const unresolved = result.results.filter((r) => r.outcome.status === 'unresolved');
    if (unresolved.length > 0)
      throw new SwitchApplyError(
        `the host could not take ${unresolved.map((r) => `${r.kind} ${r.key} (${r.outcome.detail})`).join('; ')}`,
      );
    return { changed: result.results.filter((r) => r.outcome.status === 'changed').length };
  },

  async verify(ctx) {
    const { deps, op } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    const baseline = await deps.documents.get<BaselineDocument>(op.id, 'baseline');
    const after = await withHost(ctx, async (transport, host) =>
      readHostParameters(transport, await captureState(deps, transport, host), baseline.keys),
    );
    const differences = readBack(plan, after);
    if (differences.length > 0) throw new SwitchVerifyError(differences);
    return { verified: plan.delta.changes.length };
  },

  async record(ctx) {
    const { deps, op, request } = ctx;
    const plan = await deps.documents.get<PlanDocument>(op.id, 'plan');
    // The size the platform gave (a preferred one, on a capacity error), not only the one asked.
    const resized = await deps.documents.find<ResizeDocument>(op.id, 'target');
    const applied = resized ? { ...plan.applied, instanceSize: resized.to } : plan.applied;
    // The host's persona state first, the record the agent's assignment follows last: a write
    // that fails leaves that record naming what the host had, which Rollback then puts the state
    // back to, so an agent never keeps a host at a persona whose switch was rolled back.
    if (deps.hostPersonas) await recordPersona(deps, deps.hostPersonas, request.host, request.to);
    const stored = await deps.defaults.get(request.host);
    await deps.defaults.put(
      request.host,
      { defaults: stored.defaults, applied, current: request.to },
      stored.revision,
    );
    // Last: the copies kept for a rollback go once the switch stands. Copies left behind by a
    // failure here are only files under the backup folder, not a reason to undo the switch.
    const { commitOperation } = await orchestrator();
    const committed = await withHost(ctx, (transport) => commitOperation({ transport }, switchJournal(op.id)))
      .then(() => true)
      .catch(() => false);
    return {
      persona: request.to?.name ?? null,
      changes: plan.delta.changes.length,
      backupsDropped: committed,
    };
  },
};

/**
 * The host's persona as the host now has it, written on top of the state read. Evaluation
 * records its decision before it starts the switch: a state that already names the persona
 * is left as it is (its `since` is evaluation's). Evaluation writes the same item (a hold time
 * starting, a manual activation): a write that lost to one of those reads again rather than fail
 * a switch that stands on the host.
 */
async function recordPersona(
  deps: SwitchDeps,
  store: HostPersonaRecorder,
  host: string,
  to: SwitchRequest['to'],
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = await store.get(host);
    if ((before?.current ?? null) === (to?.name ?? null) && before?.currentVersion === to?.version) return;
    const state: HostPersonaState = {
      host,
      current: to?.name ?? null,
      ...(to ? { currentVersion: to.version } : {}),
      since: isoNow(deps).getTime(),
      ...(before?.manual ? { manual: before.manual } : {}),
    };
    try {
      await store.save(state, before);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
    }
  }
}

/**
 * After a switch that did not happen: a state that says the host took the persona (evaluation
 * wrote it before starting the switch) is put back to what the host has, since now, so that
 * the cool-down keeps evaluation from asking again at once.
 */
async function unrecordPersona(deps: SwitchDeps, request: SwitchRequest): Promise<void> {
  if (deps.hostPersonas === undefined) return;
  const state = await deps.hostPersonas.get(request.host);
  if (state === undefined || state.current !== (request.to?.name ?? null)) return;
  const has = (await deps.defaults.get(request.host)).current;
  if ((has?.name ?? null) === state.current && has?.version === state.currentVersion) return;
  await recordPersona(deps, deps.hostPersonas, request.host, has);
}

const NO_CONTENTS = {
  async read(hash: string): Promise<Uint8Array> {
    throw new NotFoundError(`a persona switch writes no file content (${hash})`, hash);
  },
};

const countKeys = (k: ParameterKeys) =>
  k.sysctl.length + k.cgroups.length + k.interfaces.length + k.packages.length;

/** What of the plan does not read back from the host after it was applied. */
export function readBack(plan: Pick<PlanDocument, 'delta'>, after: HostParameters): string[] {
  const out: string[] = [];
  const last = new Map(plan.delta.changes.map((c) => [`${c.section}\u0000${c.key}`, c]));
  for (const c of last.values()) {
    switch (c.section) {
      case 'sysctl': {
        const now = after.sysctl[c.key];
        if (c.kind === 'sysctl.unset') {
          if (now?.persisted) out.push(`sysctl ${c.key} is still persisted`);
          const set = plan.delta.changes.find((x) => x.kind === 'sysctl.set' && x.key === c.key);
          if (set?.to != null && now?.value !== set.to)
            out.push(`sysctl ${c.key} = ${now?.value}, not ${set.to}`);
        } else if (now?.value !== c.to?.trim().split(/\s+/).join(' '))
          out.push(`sysctl ${c.key} = ${now?.value}, not ${c.to}`);
        break;
      }
      case 'cgroups':
        // Key order aside: the plan's limit is in the schema's order, a capture's sorted.
        if (
          JSON.stringify(sortObjectKeys(after.cgroups[c.key] ?? null)) !==
          JSON.stringify(sortObjectKeys(c.to))
        )
          out.push(`cgroup ${c.key} does not hold its limits`);
        break;
      case 'bandwidth':
        if (JSON.stringify(after.bandwidth[c.key] ?? null) !== JSON.stringify(c.to))
          out.push(
            `${c.key}: egress ${JSON.stringify(after.bandwidth[c.key] ?? null)}, not ${JSON.stringify(c.to)}`,
          );
        break;
      case 'packages': {
        // Keyed manager:name in the Delta, by name in what the host reads.
        const name = (c.to ?? c.from)?.name ?? c.key;
        const now = after.packages[name] ?? null;
        if ((now?.version ?? null) !== (c.to?.version ?? null))
          out.push(`package ${name} is at ${now?.version ?? 'none'}`);
        break;
      }
      case 'ingress':
        if ((after.ingress ?? null) !== (c.to === null ? null : ingressDigest(c.to)))
          out.push("Persona's firewall table is not the persona's");
        break;
      default:
        break;
    }
  }
  return out;
}

/**
 * Runs one step. Marked RUNNING, then SUCCEEDED (SKIPPED for a Resize with nothing to do) with
 * its summary; a failure leaves it RUNNING for Rollback (the workflow's Catch) to record.
 */
export async function runSwitchStep(
  deps: SwitchDeps,
  id: string,
  step: SwitchStep,
): Promise<Record<string, unknown>> {
  const op = await deps.operations.get(id);
  if (isFinished(op.status)) return { redelivered: true, status: op.status };
  const request = await deps.documents.get<SwitchRequest>(id, 'request');
  await deps.operations.step(id, step, 'RUNNING', isoNow(deps));
  const summary = await STEPS[step]({ deps, op, request });
  const skipped = step === 'resize' && summary.resized === false && summary.size === undefined;
  await deps.operations.step(id, step, skipped ? 'SKIPPED' : 'SUCCEEDED', isoNow(deps), describe(summary));
  if (step === 'record') {
    await deps.operations.finish(
      id,
      {
        status: 'SUCCEEDED',
        result: {
          persona: request.to,
          plan: `operations/${id}/plan.json`,
          changes: summary.changes,
        },
      },
      isoNow(deps),
    );
  }
  return summary;
}

const describe = (summary: Record<string, unknown>): string =>
  Object.entries(summary)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');

export interface SwitchRollback {
  readonly failedStep: string;
  readonly reason: string;
  readonly reverted: number;
  readonly failures: readonly { kind: string; key: string; error: string }[];
  readonly resizedBack?: string;
}

/**
 * Rollback: the journal reverted in reverse, the instance resized back to the size it had, and
 * the operation ended ROLLED_BACK naming the failed step and why (FAILED with ROLLBACK_INCOMPLETE
 * when something could not be put back). Again after it ended, it answers what it did.
 */
export async function rollbackSwitch(
  deps: SwitchDeps,
  id: string,
  caught: CaughtError,
): Promise<SwitchRollback> {
  const op = await deps.operations.get(id);
  const already = await deps.documents.find<SwitchRollback>(id, 'rollback');
  if (isFinished(op.status) && already) return already;
  const failedStep = op.steps.find((s) => s.status === 'RUNNING')?.name ?? 'validate';
  const reason = reasonOf(caught);
  const request = await deps.documents.get<SwitchRequest>(id, 'request');
  const host = (await deps.hosts.get(request.host)).registration;
  const baseline = await deps.documents.find<BaselineDocument>(id, 'baseline');
  const failures: SwitchRollback['failures'][number][] = [];
  let reverted = 0;
  const touched = op.steps.some((s) => s.name === 'apply' && s.status !== 'PENDING');
  if (touched) {
    // An apply the workflow gave up on stops at its next Change instead of racing the revert.
    await deps.operations.requestCancel(id, isoNow(deps));
    const transport = await deps.transportFor(host, { acceptNewHostKey: false });
    try {
      const { revertOperation } = await orchestrator();
      const r = await revertOperation(
        {
          transport,
          journal: deps.journal,
          executors: await switchExecutors(deps, baseline?.family ?? undefined, host),
          contents: NO_CONTENTS,
        },
        switchJournal(id),
      );
      failures.push(...r.failures.map((f) => ({ kind: f.kind, key: f.key, error: f.error })));
      reverted = (await deps.journal.entries(switchJournal(id))).filter((e) => e.state === 'reverted').length;
    } finally {
      await transport.close();
    }
  }
  let resizedBack: string | undefined;
  const resized = await deps.documents.find<ResizeDocument>(id, 'target');
  if (resized?.result.state === 'resized' && resized.from !== undefined) {
    const found = resizer(deps, host);
    try {
      if (found === undefined) throw new Error('no adaptor resizes this host any more');
      await found.adaptor.resize(found.host, resized.from);
      resizedBack = resized.from;
    } catch (error) {
      failures.push({
        kind: 'instance.resize',
        key: 'instance',
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  await unrecordPersona(deps, request).catch((error: unknown) =>
    failures.push({
      kind: 'persona',
      key: request.host,
      error: error instanceof Error ? error.message : String(error),
    }),
  );
  const doc: SwitchRollback = {
    failedStep,
    reason: reason.message,
    reverted,
    failures,
    ...(resizedBack ? { resizedBack } : {}),
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

/** A failure before anything on the host changed (Validate, Baseline, Plan): the operation ends FAILED. */
export async function failSwitch(deps: SwitchDeps, id: string, caught: CaughtError): Promise<Operation> {
  const { operation } = await failBeforeChange(deps.operations, id, caught, {
    firstStep: 'validate',
    now: () => isoNow(deps),
    before: async () => {
      const request = await deps.documents.find<SwitchRequest>(id, 'request');
      if (request) await unrecordPersona(deps, request);
    },
  });
  return operation;
}

// --- the host's default, durable --------------------------------------------------------------

const DEFAULT_SK = 'default';

/** The default record as one item of HOST_PERSONAS_TABLE (sk "default"), written under its revision. */
export class DynamoDefaultsStore implements DefaultsStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(host: string): Promise<HostDefaults> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { host, sk: DEFAULT_SK }, ConsistentRead: true }),
    );
    const item = out.Item;
    if (item === undefined)
      return { defaults: EMPTY_DEFAULTS, applied: { thresholds: [] }, current: null, revision: 0 };
    return {
      // As JSON text: a sysctl value of "" or a null entry must come back exactly.
      defaults: JSON.parse(String(item.defaults)) as DefaultParameters,
      applied: JSON.parse(String(item.applied)) as AppliedParameters,
      current:
        item.current === undefined ? null : (JSON.parse(String(item.current)) as HostDefaults['current']),
      revision: Number(item.revision),
    };
  }

  async put(host: string, next: Omit<HostDefaults, 'revision'>, revision: number): Promise<void> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            host,
            sk: DEFAULT_SK,
            defaults: JSON.stringify(next.defaults),
            applied: JSON.stringify(next.applied),
            current: JSON.stringify(next.current),
            revision: revision + 1,
          },
          ConditionExpression: revision === 0 ? 'attribute_not_exists(#h)' : '#r = :r',
          ExpressionAttributeNames: revision === 0 ? { '#h': 'host' } : { '#r': 'revision' },
          ...(revision === 0 ? {} : { ExpressionAttributeValues: { ':r': revision } }),
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      throw new ConflictError(
        `the default of host ${host} changed since it was read: another switch came first`,
        undefined,
        { cause },
      );
    }
  }
}
