import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { assignment, assignmentText } from '../../../core/persona/agent/assignment.js';
import { requireOwnHost } from '../../../core/persona/agent/credentials.js';
import {
  type AgentCaller,
  type ApiEvent,
  agentCaller,
  apiErrors,
  header,
  json,
  parseRequest,
} from '../../shared/http.js';
import { assignments, observability } from '../../shared/runtime.js';

type Event = ApiEvent<{ host: string }> & { agent?: AgentCaller };

const handler = async (event: Event) => {
  const host = event.params.host;
  requireOwnHost(event.agent as AgentCaller, host, 'the assignment of host');
  const assigned = assignment(host, await assignments().personas.assigned(host, Date.now()));
  // The agent (a shell script) asks for the line format; everyone else gets JSON. Agents
  // installed before format 2 ask for plain text alone and get format 1.
  const accept = header(event, 'accept') ?? '';
  if (accept.includes('text/plain')) {
    const format = /\bformat=2\b/.test(accept) ? 2 : 1;
    return {
      statusCode: 200,
      headers: {
        'content-type': `text/plain; charset=utf-8; format=${format}`,
        etag: `"${assigned.revision}"`,
      },
      body: assignmentText(assigned, format),
    };
  }
  return json(200, assigned, { etag: `"${assigned.revision}"` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(agentCaller())
  .use(parseRequest({ params: HostParams }));
