// The sampling function: every minute (an EventBridge schedule), the hosts that personas with
// metric criteria select and that have no agent are read over their own transport or from
// CloudWatch, and evaluated with what was read; then the hosts without an agent that hold a
// persona with host-local values are checked for an operator's change to them, which is
// restored or retained as the persona's override says; last, the morph policies are evaluated
// (core/morph/evaluate.ts) and the morphs they decide are started.
import middy from '@middy/core';
import type { PolicyEvaluation } from '../../../core/morph/evaluate.js';
import { checkDrift, type DriftCheck } from '../../../core/persona/drift.js';
import { type SampledHost, sampleAgentless } from '../../../core/persona/sampling.js';
import { evaluateHosts, evaluationSummary } from '../../../core/persona/service.js';
import { personaEvaluation } from '../../shared/evaluation.js';
import { logger, observability } from '../../shared/runtime.js';
import { driftDeps, samplingDeps } from '../../shared/sampling.js';

export interface SampleResult {
  readonly sampled: readonly SampledHost[];
  readonly evaluated: readonly ReturnType<typeof evaluationSummary>[];
  readonly drift: readonly DriftCheck[];
  /** What the morph policies decided, but for the hosts they hold still (counted). */
  readonly morph: { readonly held: number; readonly decided: readonly PolicyEvaluation[] };
}

export async function handler(_event: unknown): Promise<SampleResult> {
  const now = new Date();
  const sampled = await sampleAgentless(samplingDeps(), now);
  const failed = sampled.filter((s) => s.error !== undefined);
  if (failed.length > 0) logger.warn('hosts not sampled', { failed });
  const read = sampled.filter((s) => s.error === undefined).map((s) => s.host);
  const results = read.length === 0 ? [] : await evaluateHosts(personaEvaluation(), read, now.getTime());
  // After evaluation: a switch it started is under way, and the check leaves that host alone.
  const drift = await checkDrift(driftDeps(), new Date());
  const unread = drift.filter((d) => d.outcome === 'failed');
  if (unread.length > 0) logger.warn('hosts not checked for changes', { failed: unread });
  const morph = await morphRound();
  return { sampled, evaluated: results.map(evaluationSummary), drift, morph };
}

/** A failed policy round is logged and retried by the next round: it never fails the sampling. */
async function morphRound(): Promise<SampleResult['morph']> {
  let all: PolicyEvaluation[];
  try {
    // Loaded at the first round: the policies, the target profiles and the detection they use
    // are most of this function's code and not needed by its sampling.
    const [{ evaluateMorphPolicies }, { morphPolicyEvaluation }] = await Promise.all([
      import('../../../core/morph/evaluate.js'),
      import('../../shared/morph-policies.js'),
    ]);
    all = await evaluateMorphPolicies(morphPolicyEvaluation(), Date.now());
  } catch (error) {
    logger.warn('morph policies not evaluated', { error: error as Error });
    return { held: 0, decided: [] };
  }
  const decided = all.filter((e) => e.outcome !== 'held');
  for (const e of decided) {
    if (e.outcome === 'started') logger.info('morph started by policy', { ...e });
    else if (e.outcome === 'busy') logger.info('morph by policy waits: the host is busy', { ...e });
    else if (e.outcome === 'failed') logger.warn('morph policy not evaluated for host', { ...e });
  }
  return { held: all.length - decided.length, decided };
}

export const main = middy(handler).use(observability());
