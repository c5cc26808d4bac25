import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { ForbiddenError } from '../../../core/errors.js';
import { AgentReport } from '../../../core/persona/agent/assignment.js';
import { requireOwnHost } from '../../../core/persona/agent/credentials.js';
import {
  type AgentCaller,
  type ApiEvent,
  agentCaller,
  apiErrors,
  json,
  jsonBody,
  parseRequest,
} from '../../shared/http.js';
import { assignments, logger, observability } from '../../shared/runtime.js';

type Event = ApiEvent<{ host: string }> & { agent?: AgentCaller; parsedBody?: AgentReport };

const handler = async (event: Event) => {
  const host = event.params.host;
  const report = event.parsedBody as AgentReport;
  requireOwnHost(event.agent as AgentCaller, host, 'a report on host');
  if (report.host !== host) {
    throw new ForbiddenError(`the report names host ${report.host} but was posted for ${host}`);
  }
  const receivedAt = new Date();
  await assignments().reports.record(report, receivedAt);
  if (report.outcome === 'rolled-back' || report.outcome === 'refused' || report.outcome === 'failed') {
    logger.warn('agent did not apply its assignment', {
      host,
      outcome: report.outcome,
      revision: report.revision,
    });
  }
  return json(202, {
    host,
    revision: report.revision,
    outcome: report.outcome,
    receivedAt: receivedAt.toISOString(),
  });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(agentCaller())
  .use(parseRequest({ params: HostParams }))
  .use(jsonBody(AgentReport, { maxBytes: 256 * 1024, kind: 'an agent report' }));
