// The sampling function: every minute (an EventBridge schedule), the hosts that personas with
// metric criteria select and that have no agent are read over their own transport or from
// CloudWatch, and evaluated with what was read.
import middy from '@middy/core';
import { type SampledHost, sampleAgentless } from '../../../core/persona/sampling.js';
import { evaluateHosts, evaluationSummary } from '../../../core/persona/service.js';
import { personaEvaluation } from '../../shared/evaluation.js';
import { logger, observability } from '../../shared/runtime.js';
import { samplingDeps } from '../../shared/sampling.js';

export interface SampleResult {
  readonly sampled: readonly SampledHost[];
  readonly evaluated: readonly ReturnType<typeof evaluationSummary>[];
}

export async function handler(_event: unknown): Promise<SampleResult> {
  const now = new Date();
  const sampled = await sampleAgentless(samplingDeps(), now);
  const failed = sampled.filter((s) => s.error !== undefined);
  if (failed.length > 0) logger.warn('hosts not sampled', { failed });
  const read = sampled.filter((s) => s.error === undefined).map((s) => s.host);
  const results = read.length === 0 ? [] : await evaluateHosts(personaEvaluation(), read, now.getTime());
  return { sampled, evaluated: results.map(evaluationSummary) };
}

export const main = middy(handler).use(observability());
