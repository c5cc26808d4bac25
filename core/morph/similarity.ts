// Workload detection: which target profile a host is nearest to, and why. A host's trait vector
// comes from its Profile (the one capture computed from its software, listeners and usage); a
// target's from its YAML. Nearness is the weighted cosine similarity of the two vectors, which
// splits exactly into one term per trait: that split is the evidence, so a reader sees which
// traits pulled the host toward the target and by how much, and which the host lacks.
import { computeTraits, type TraitName } from '../capture/traits.js';
import type { Profile } from '../profile/schema.js';
import { type TargetProfile, TRAIT_NAMES } from './target.js';

export type TraitVectorValues = Readonly<Partial<Record<TraitName, number>>>;

/** Below this similarity no target is recommended: the host is like none of them. */
export const MIN_SIMILARITY = 0.5;

/** The host's trait vector: the one its capture recorded, or computed from the Profile's spec and observations. */
export function hostVector(profile: Profile): Record<TraitName, number> {
  const recorded = profile.observed?.traitVector?.traits;
  const traits =
    recorded ??
    computeTraits({
      spec: profile.spec,
      listening: profile.observed?.listening ?? [],
      usage: profile.observed?.usage,
    }).traits;
  const out = {} as Record<TraitName, number>;
  for (const t of TRAIT_NAMES) out[t] = clamp(traits[t]);
  return out;
}

const clamp = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? 0 : Math.min(1, Math.max(0, x));
const round = (x: number) => Math.round(x * 1000) / 1000;

export interface TraitEvidence {
  readonly trait: TraitName;
  readonly host: number;
  readonly target: number;
  readonly importance: number;
  /** This trait's term of the similarity: the terms add up to it. */
  readonly contribution: number;
  /** target − host: what the host lacks of the target (positive) or has beyond it (negative). */
  readonly gap: number;
}

export interface Similarity {
  readonly target: string;
  readonly similarity: number;
  /** Every trait's term, largest contribution first. */
  readonly evidence: readonly TraitEvidence[];
}

/** The weighted cosine similarity of a host's vector and a target's, with each trait's term. */
export function similarity(host: TraitVectorValues, target: TargetProfile): Similarity {
  const terms = TRAIT_NAMES.map((trait) => {
    const w = target.spec.importance[trait] ?? 1;
    return { trait, h: clamp(host[trait]), t: clamp(target.spec.traits[trait]), w };
  });
  const hostNorm = Math.sqrt(terms.reduce((a, x) => a + x.w * x.h * x.h, 0));
  const targetNorm = Math.sqrt(terms.reduce((a, x) => a + x.w * x.t * x.t, 0));
  const denominator = hostNorm * targetNorm;
  const evidence = terms
    .map(
      (x): TraitEvidence => ({
        trait: x.trait,
        host: round(x.h),
        target: round(x.t),
        importance: x.w,
        contribution: denominator === 0 ? 0 : (x.w * x.h * x.t) / denominator,
        gap: round(x.t - x.h),
      }),
    )
    .sort((a, b) => b.contribution - a.contribution || a.trait.localeCompare(b.trait));
  const total = evidence.reduce((a, e) => a + e.contribution, 0);
  return {
    target: target.metadata.name,
    similarity: round(total),
    evidence: evidence.map((e) => ({ ...e, contribution: round(e.contribution) })),
  };
}

export interface Recommendation {
  readonly host: string;
  readonly profile: { readonly name: string; readonly version?: number };
  readonly vector: Record<TraitName, number>;
  /** The target recommended, or null when none is at least MIN_SIMILARITY alike. */
  readonly recommended: string | null;
  readonly similarity: number;
  /** How far ahead of the runner-up the recommended target is. */
  readonly margin: number;
  /** Why: the traits that pulled the host to the recommended target, and what it lacks of it. */
  readonly evidence: {
    readonly pulledBy: readonly TraitEvidence[];
    readonly lacking: readonly TraitEvidence[];
  };
  /** Every target, nearest first. */
  readonly ranked: readonly { readonly target: string; readonly similarity: number }[];
}

/** The nearest target to the host, with the evidence; ties go to the name first in order. */
export function recommend(
  host: string,
  profile: Profile,
  targets: readonly TargetProfile[],
  version?: number,
): Recommendation {
  const vector = hostVector(profile);
  const scored = targets
    .map((t) => similarity(vector, t))
    .sort((a, b) => b.similarity - a.similarity || a.target.localeCompare(b.target));
  const best = scored[0];
  const runnerUp = scored[1];
  const chosen = best !== undefined && best.similarity >= MIN_SIMILARITY ? best : undefined;
  return {
    host,
    profile: { name: profile.metadata.name, ...(version === undefined ? {} : { version }) },
    vector,
    recommended: chosen?.target ?? null,
    similarity: best?.similarity ?? 0,
    margin: round((best?.similarity ?? 0) - (runnerUp?.similarity ?? 0)),
    evidence: {
      pulledBy: (best?.evidence ?? []).filter((e) => e.contribution > 0),
      lacking: (best?.evidence ?? []).filter((e) => e.gap >= 0.25).sort((a, b) => b.gap - a.gap),
    },
    ranked: scored.map((s) => ({ target: s.target, similarity: s.similarity })),
  };
}
