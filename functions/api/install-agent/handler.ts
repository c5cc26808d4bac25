import middy from '@middy/core';
import { AgentInstallRequest, HostParams } from '../../../core/api/schemas.js';
import { InvalidInputError } from '../../../core/errors.js';
import { installAgent } from '../../../core/persona/agent/install.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import { issuesFromZod } from '../../../core/profile/issues.js';
import { captureDeps } from '../../shared/capture.js';
import { type ApiEvent, apiErrors, documentSource, json, parseRequest } from '../../shared/http.js';
import {
  agentCredentials,
  hosts,
  logger,
  observability,
  registeredAgentEndpoints,
} from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }>) => {
  const located = event.body?.trim()
    ? await readDocumentText(documentSource(event), { source: 'body' })
    : undefined;
  const body = AgentInstallRequest.safeParse(located?.value ?? {});
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located?.locate));
  const name = event.params.host;
  const record = await hosts().get(name);
  // The endpoint the agent calls: the caller's, else the embedded runtime's way back, else
  // this stage's own URL (API Gateway names its domain and stage in the request).
  const tunnels = registeredAgentEndpoints();
  const endpoint =
    body.data.endpoint ??
    (tunnels
      ? await tunnels.endpointFor(name)
      : `https://${event.requestContext.domainName}/${event.requestContext.stage}`);
  const transport = await captureDeps().transportFor(record.registration, { acceptNewHostKey: false });
  try {
    const result = await installAgent(
      { transport, credentials: agentCredentials(), now: () => new Date() },
      { endpoint, host: name, intervalSeconds: body.data.intervalSeconds },
    );
    logger.info('agent installed', { host: name, credentialId: result.credentialId, init: result.init });
    return json(200, { host: name, endpoint, intervalSeconds: body.data.intervalSeconds, ...result });
  } finally {
    await transport.close();
  }
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
