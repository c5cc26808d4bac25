import middy from '@middy/core';
import { requireOwnHost } from '../../../core/persona/agent/credentials.js';
import { MetricReport } from '../../../core/persona/schema.js';
import {
  type AgentCaller,
  type ApiEvent,
  agentCaller,
  apiErrors,
  json,
  jsonBody,
} from '../../shared/http.js';
// Registers the evaluation of each report (and the switch it may start) in this function.
import '../../shared/evaluation.js';
import { evaluationAfterMetrics, metricsStore, observability } from '../../shared/runtime.js';

type Event = ApiEvent & { agent?: AgentCaller; parsedBody?: MetricReport };

const handler = async (event: Event) => {
  const report = event.parsedBody as MetricReport;
  requireOwnHost(event.agent as AgentCaller, report.host, 'the report of host');
  await metricsStore().put(report);
  // The host's personas are evaluated against the report just stored, when the evaluation
  // service is part of this runtime.
  const evaluate = evaluationAfterMetrics();
  if (evaluate) await evaluate(report.host, Date.now());
  return json(202, { host: report.host, at: report.at, evaluated: evaluate !== undefined });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(agentCaller())
  .use(jsonBody(MetricReport, { maxBytes: 64 * 1024, kind: 'a metric report' }));
