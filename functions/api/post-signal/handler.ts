import middy from '@middy/core';
import { Signal } from '../../../core/persona/schema.js';
import { evaluateSignalHosts, evaluationSummary } from '../../../core/persona/service.js';
import { personaEvaluation } from '../../shared/evaluation.js';
import { type ApiEvent, apiErrors, json, jsonBody } from '../../shared/http.js';
import { observability, signalStore } from '../../shared/runtime.js';

const handler = async (event: ApiEvent & { parsedBody?: Signal }) => {
  const signal = event.parsedBody as Signal;
  const now = Date.now();
  const stored = await signalStore().put(signal, now);
  const results = await evaluateSignalHosts(personaEvaluation(), signal, now);
  return json(202, {
    signal: stored.name,
    at: new Date(stored.at).toISOString(),
    ...(stored.expiresAt === undefined ? {} : { expiresAt: new Date(stored.expiresAt * 1000).toISOString() }),
    evaluated: results.length,
    hosts: results.map(evaluationSummary),
  });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(jsonBody(Signal, { maxBytes: 16 * 1024, kind: 'a signal' }));
