// A plan is data: what the target is (its baseline and that baseline's fingerprint), the Delta
// that turns it into the source with the target's identity, and what cannot be done. It can be
// printed, saved and applied later, but only to a target that has not changed since: the
// Delta's `from` sides describe the target as it was, and on any other target they are wrong.
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { applyDelta, DeltaConflictError } from '../delta/apply.js';
import { type Change, Delta, ProfileRef, summarize } from '../delta/changes.js';
import { diff } from '../delta/diff.js';
import { sameValue } from '../delta/sections.js';
import { ConflictError } from '../errors.js';
import type { Executors } from '../orchestrator/executors/index.js';
import { canonicalSpec } from '../profile/collections.js';
import { API_VERSION, Package, PROFILE_KIND, type Profile, ProfileSpec } from '../profile/schema.js';
import type { Resolution } from '../resolver/resolve.js';
import { SOURCES } from '../resolver/resolve.js';
import { displayValue } from '../transport/shell.js';
import { translateIdentity, Unresolved } from './identity.js';

export const PLAN_KIND = 'Plan';

const sha256 = z
  .string()
  .regex(/^sha256:[0-9a-f]{64}$/, 'expected "sha256:" followed by 64 lower-case hex digits');

/**
 * The hash of a spec in canonical form: the same as the `specHash` a stored Profile version
 * records, so equal hosts have equal fingerprints whatever order their capture listed things in.
 */
export function targetFingerprint(spec: ProfileSpec): string {
  const canonical = JSON.stringify(canonicalSpec(spec));
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/** How the resolver settled one package of the source, as the plan records it. */
export const PackageResolution = z
  .strictObject({
    field: z.string().min(1).max(1024),
    package: Package,
    status: z.enum(['installed', 'exact', 'nearest', 'unresolvable']),
    version: z.string().min(1).max(1024).optional().describe('The exact version that will be installed'),
    arch: z.string().min(1).max(64).optional(),
    source: z.enum(SOURCES).optional(),
    origin: z.string().max(4096).optional(),
    installed: z.string().max(1024).optional(),
    reason: z.string().max(4096).optional(),
  })
  .meta({ id: 'PackageResolution' });
export type PackageResolution = z.infer<typeof PackageResolution>;

export const Plan = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(PLAN_KIND),
    source: ProfileRef.describe('The Profile (and version) the target is to become'),
    target: z.strictObject({
      name: z.string().min(1).max(253).describe("The baseline capture's name"),
      address: z.string().min(1).max(1024).optional().describe('Where the target is: ssh://root@10.0.0.3'),
      fingerprint: sha256.describe(
        'targetFingerprint(baseline): the plan applies only to a target that still has it',
      ),
      baseline: ProfileSpec.describe('The target as it was captured when planned, to say what changed since'),
    }),
    createdAt: z.iso.datetime(),
    delta: Delta.describe('From the baseline to the source with the target identity'),
    unresolved: z
      .array(Unresolved)
      .describe('What the plan cannot reproduce; listed before anything changes'),
    resolution: z.array(PackageResolution).optional(),
  })
  .superRefine((plan, ctx) => {
    // A saved plan is read back from a file anyone may have edited: its parts must agree.
    if (targetFingerprint(plan.target.baseline) !== plan.target.fingerprint) {
      ctx.addIssue({
        code: 'custom',
        path: ['target', 'fingerprint'],
        message: 'is not the fingerprint of target.baseline',
      });
    }
    if (!sameValue(summarize(plan.delta.changes), plan.delta.summary)) {
      ctx.addIssue({ code: 'custom', path: ['delta', 'summary'], message: 'does not count delta.changes' });
    }
    try {
      applyDelta(baselineProfile(plan.target.name, plan.target.baseline), plan.delta);
    } catch (e) {
      // Whatever a crafted Delta makes the model-level apply throw is a refusal, never a crash.
      ctx.addIssue({
        code: 'custom',
        path: e instanceof DeltaConflictError ? ['delta', 'changes', e.index] : ['delta'],
        message: `does not start from target.baseline: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  })
  .meta({
    id: 'Plan',
    description: 'What a clone will change on its target, saved before anything changes.',
  });
export type Plan = z.infer<typeof Plan>;

const baselineProfile = (name: string, spec: ProfileSpec): Profile => ({
  apiVersion: API_VERSION,
  kind: PROFILE_KIND,
  metadata: { name },
  spec,
});

export interface BuildPlanInput {
  readonly source: { readonly profile: Profile; readonly version?: number };
  /** A capture of the target, taken now. */
  readonly baseline: Profile;
  /** Where the target is, for people reading the plan. */
  readonly address?: string;
  /** The dependency resolver's answer for the source's packages. */
  readonly resolutions?: readonly Resolution[];
  /** Further items the caller could not resolve. */
  readonly unresolved?: readonly Unresolved[];
  readonly now?: () => Date;
}

function recordResolution(r: Resolution): PackageResolution {
  const common = { field: r.field, package: r.package, status: r.status };
  if (r.status === 'unresolvable') return { ...common, reason: r.reason };
  const exact = { ...common, version: r.spec.version, arch: r.spec.arch };
  if (r.status === 'installed') return exact;
  return Object.fromEntries(
    Object.entries({
      ...exact,
      source: r.source,
      origin: r.origin,
      installed: r.installed,
      reason: r.reason,
    }).filter(([, v]) => v !== undefined),
  ) as PackageResolution;
}

/** The plan that makes the target captured in `baseline` behave like `source`. Pure. */
export function buildPlan(input: BuildPlanInput): Plan {
  const { profile: source, version } = input.source;
  const { profile: desired, unresolved } = translateIdentity(source, input.baseline);
  const baseline = canonicalSpec(input.baseline.spec);
  const sourceRef: ProfileRef =
    version === undefined ? { name: source.metadata.name } : { name: source.metadata.name, version };
  const delta = diff(input.baseline, desired, {
    from: { name: input.baseline.metadata.name },
    to: sourceRef,
  });
  const packages = (input.resolutions ?? [])
    .filter((r) => r.status === 'unresolvable')
    .map(
      (r): Unresolved => ({
        kind: 'package',
        field: r.field,
        reason: `${r.package.name} ${r.package.version}: ${r.reason}`,
      }),
    );
  return Plan.parse({
    apiVersion: API_VERSION,
    kind: PLAN_KIND,
    source: sourceRef,
    target: {
      name: input.baseline.metadata.name,
      ...(input.address === undefined ? {} : { address: input.address }),
      fingerprint: targetFingerprint(baseline),
      baseline,
    },
    createdAt: (input.now ?? (() => new Date()))().toISOString(),
    delta,
    unresolved: [...unresolved, ...packages, ...(input.unresolved ?? [])],
    ...(input.resolutions === undefined ? {} : { resolution: input.resolutions.map(recordResolution) }),
  });
}

/** The target is not what it was when the plan was made: applying the plan would be a guess. */
export class TargetChangedError extends ConflictError {
  constructor(
    message: string,
    /** What changed on the target since the plan was made, as a Delta's changes. */
    readonly changes: readonly Change[],
  ) {
    super(message);
    this.name = 'TargetChangedError';
  }
}

const SHOWN_CHANGES = 5;

/**
 * Refuses, naming what changed, when `freshBaseline` (a capture of the target taken just
 * before applying) is not the target the plan was made for.
 */
export function checkPlanApplies(plan: Plan, freshBaseline: Profile): void {
  const fingerprint = targetFingerprint(freshBaseline.spec);
  if (fingerprint === plan.target.fingerprint) return;
  const changed = diff(baselineProfile(plan.target.name, plan.target.baseline), freshBaseline).changes;
  const shown = changed.slice(0, SHOWN_CHANGES).map((c) => `${c.kind} ${displayValue(c.key)}`);
  if (changed.length > SHOWN_CHANGES) shown.push(`${changed.length - SHOWN_CHANGES} more`);
  const what =
    changed.length === 0
      ? 'its spec differs from the baseline in no part a Delta changes'
      : `${changed.length} change${changed.length === 1 ? '' : 's'}: ${shown.join(', ')}`;
  throw new TargetChangedError(
    `target ${displayValue(plan.target.name)} changed since the plan was made (${what}); plan again`,
    changed,
  );
}

/**
 * The plan with the Changes no executor of the target applies yet (sudo rules, runtimes from
 * tarballs, monitoring agents, disks...) moved to `unresolved`, each named: they are listed
 * before anything changes, and the rest of the clone goes ahead without them, rather than the
 * whole apply being refused. A plan whose remaining Changes no longer start from the baseline
 * without them is refused whole, naming why.
 */
export function withoutUnappliable(plan: Plan, executors: Executors): Plan {
  const left = plan.delta.changes.filter((c) => !executors.has(c.kind));
  if (left.length === 0) return plan;
  const changes = plan.delta.changes.filter((c) => executors.has(c.kind));
  return Plan.parse({
    ...plan,
    delta: { ...plan.delta, changes, summary: summarize(changes) },
    unresolved: [
      ...plan.unresolved,
      ...left.map((c) => ({
        kind: 'other' as const,
        field: `delta ${c.kind} ${displayValue(c.key)}`.slice(0, 1024),
        reason: `no host executor applies ${c.kind} changes yet: not reproduced`,
      })),
    ],
  });
}
