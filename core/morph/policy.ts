// When a morph starts on its own: a morph policy, in the personas' criteria language. Its
// `when` is a Criterion (schedule windows, metric thresholds held for a duration, signals,
// predicted values) compiled by the persona criteria compiler, so a scheduled, a resource-demand
// and a predicted-demand morph are one mechanism; workload detection is the recommendation
// itself (the host nearest another target than the one it has, by a margin). A policy decides;
// what starts the morph is the caller (see decideMorph).
import * as z from 'zod';
import { InvalidInputError, type Issue } from '../errors.js';
import { type CompiledCriteria, compileCriteria, TRUE, triName } from '../persona/criteria.js';
import { Criterion, type CriterionReason, type EvaluationInput } from '../persona/schema.js';
import { criteriaDepthIssues, type Locate } from '../persona/validate.js';
import { issuesFromZod } from '../profile/issues.js';
import type { Recommendation } from './similarity.js';
import type { MorphTrigger } from './start.js';

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected lower-case letters, digits and "-", not starting with "-"');

export const MorphPolicy = z
  .strictObject({
    apiVersion: z.literal('persona/v1'),
    kind: z.literal('MorphPolicy'),
    metadata: z.strictObject({ name }),
    spec: z.strictObject({
      hosts: z
        .strictObject({
          names: z.array(z.string().min(1).max(253)).optional(),
          labels: z.record(z.string().min(1).max(128), z.string().max(256)).optional(),
        })
        .default({}),
      /** A target by name, or `recommended`: whatever workload detection names. */
      target: z.union([z.literal('recommended'), name]),
      /** Criteria that start the morph: schedule, metric (resource demand), signal, predicted. */
      when: Criterion.optional(),
      /** Workload detection: start when the recommendation is at least this alike and ahead. */
      detection: z
        .strictObject({
          minSimilarity: z.number().min(0).max(1).default(0.7),
          minMargin: z.number().min(0).max(1).default(0.1),
        })
        .optional(),
      /** After a morph of a host (whatever its end), none starts for it for this long. */
      cooldownSeconds: z
        .number()
        .int()
        .min(0)
        .max(30 * 86400)
        .default(3600),
    }),
  })
  .superRefine((p, ctx) => {
    if (p.spec.when === undefined && p.spec.detection === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['spec'],
        message: 'a policy needs `when`, `detection`, or both',
      });
    if (p.spec.target === 'recommended' && p.spec.detection === undefined && p.spec.when === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['spec', 'target'],
        message: 'recommended needs a recommendation',
      });
  })
  .meta({ id: 'MorphPolicy' });
export type MorphPolicy = z.infer<typeof MorphPolicy>;

/** What the API answers of a stored policy besides its document. */
export const MorphPolicyRecord = z
  .object({
    name: z.string(),
    /** sha256 of the canonical document: equal hashes mean equal policies. */
    hash: z.string(),
    revision: z.number().int().positive().describe('Incremented by each write that changed the document'),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'MorphPolicyRecord' });
export type MorphPolicyRecord = z.infer<typeof MorphPolicyRecord>;

export interface CompiledPolicy {
  readonly policy: MorphPolicy;
  readonly criteria?: CompiledCriteria;
}

/** Compiles a policy's criteria once (the persona compiler's errors name the field under spec.when). */
export function compilePolicy(policy: MorphPolicy): CompiledPolicy {
  return policy.spec.when === undefined
    ? { policy }
    : { policy, criteria: compileCriteria(policy.spec.when, 'spec.when') };
}

/** ['spec', 'when', ...] for the path criteriaDepthIssues names ['spec', 'criteria', ...]. */
const asWhen = (path: readonly PropertyKey[]): PropertyKey[] =>
  path[0] === 'spec' && path[1] === 'criteria' ? ['spec', 'when', ...path.slice(2)] : [...path];

/**
 * Checks a plain value (a request body, a file) against MorphPolicy and compiles its criteria as
 * evaluation will, so that what the schema cannot say (criteria nested past the limit, a
 * true/false signal compared with ">") is refused now, naming the field, not at the first
 * evaluation. Criteria depth is walked before the schema sees the value (the persona reader's
 * walk), so a hostile nesting is refused by name rather than by the stack running out.
 */
export function validateMorphPolicy(
  value: unknown,
  options: { readonly source?: string; readonly locate?: Locate } = {},
): MorphPolicy {
  const source = options.source ?? 'morph policy';
  const refuse = (issues: Issue[]): never => {
    throw new InvalidInputError(`${source} is not a valid morph policy`, issues, {
      ...(options.source === undefined ? {} : { source: options.source }),
    });
  };
  const spec = (value as { spec?: { when?: unknown } } | null)?.spec;
  const locate = options.locate;
  const deep = criteriaDepthIssues(
    { spec: { criteria: spec?.when } },
    locate === undefined ? undefined : (path) => locate(asWhen(path)),
  );
  if (deep.length > 0)
    refuse(deep.map((i) => ({ ...i, path: i.path.replace(/^spec\.criteria/, 'spec.when') })));
  const parsed = MorphPolicy.safeParse(value);
  if (!parsed.success) return refuse(issuesFromZod(parsed.error, locate));
  try {
    compilePolicy(parsed.data);
  } catch (e) {
    if (!(e instanceof InvalidInputError)) throw e;
    refuse([...e.issues]);
  }
  return parsed.data;
}

export interface MorphDecision {
  readonly start: boolean;
  readonly target: string | null;
  readonly trigger: MorphTrigger;
  readonly reasons: readonly CriterionReason[];
  readonly summary: string;
}

/** Which trigger kind a criterion stands for, by what it reads: a forecast, a metric, else a schedule. */
function triggerOf(c: CompiledCriteria): MorphTrigger {
  if (c.predicted.length > 0) return 'predicted';
  if (c.metrics.length > 0 || c.signals.length > 0) return 'demand';
  return 'schedule';
}

/**
 * Whether the policy starts a morph of the host now, toward which target, and why. Both parts
 * must hold when both are given: criteria say when, detection says that the target fits.
 */
export function decideMorph(
  compiled: CompiledPolicy,
  context: {
    readonly input: EvaluationInput;
    readonly recommendation?: Recommendation;
    /** The target the host last morphed to, if any: detection does not morph it there again. */
    readonly current?: string | null;
    readonly lastMorphAt?: number;
  },
): MorphDecision {
  const { policy, criteria } = compiled;
  const reasons: CriterionReason[] = [];
  const no = (summary: string, trigger: MorphTrigger): MorphDecision => ({
    start: false,
    target: null,
    trigger,
    reasons,
    summary,
  });
  const trigger = criteria ? triggerOf(criteria) : 'detection';
  if (
    context.lastMorphAt !== undefined &&
    context.input.now - context.lastMorphAt < policy.spec.cooldownSeconds * 1000
  )
    return no(
      `cooling down until ${new Date(context.lastMorphAt + policy.spec.cooldownSeconds * 1000).toISOString()}`,
      trigger,
    );
  if (criteria) {
    const holds = criteria.test(context.input);
    reasons.push(...criteria.explain(context.input, policy.metadata.name));
    if (holds !== TRUE) return no(`criteria ${triName(holds)}`, trigger);
  }
  let target = policy.spec.target === 'recommended' ? null : policy.spec.target;
  const detection = policy.spec.detection;
  if (detection !== undefined || target === null) {
    const rec = context.recommendation;
    if (rec === undefined) return no('no recommendation for the host', 'detection');
    const min = detection?.minSimilarity ?? 0;
    const margin = detection?.minMargin ?? 0;
    reasons.push({
      path: '/detection',
      holds: rec.recommended !== null && rec.similarity >= min && rec.margin >= margin ? 'true' : 'false',
      detail: `nearest ${rec.recommended ?? 'none'} at ${rec.similarity} (margin ${rec.margin}; needs ${min} and ${margin})`,
      values: { similarity: rec.similarity, margin: rec.margin, recommended: rec.recommended },
    });
    if (rec.recommended === null || rec.similarity < min || rec.margin < margin)
      return no('the host is not clearly nearer a target', 'detection');
    if (target !== null && rec.recommended !== target)
      return no(`the host is nearest ${rec.recommended}, not ${target}`, 'detection');
    target = rec.recommended;
    if (context.current === target) return no(`the host already morphed to ${target}`, 'detection');
  }
  return {
    start: true,
    target,
    trigger: criteria ? trigger : 'detection',
    reasons,
    summary: `morph to ${target}`,
  };
}
