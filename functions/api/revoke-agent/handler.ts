import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { isPersonaError } from '../../../core/errors.js';
import { uninstallAgent } from '../../../core/persona/agent/install.js';
import { captureDeps } from '../../shared/capture.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import {
  agentCredentials,
  hosts,
  logger,
  observability,
  registeredAgentEndpoints,
} from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }>) => {
  const name = event.params.host;
  // Revoked first, whatever happens next: from this moment the agent's calls are refused.
  const revoked = await agentCredentials().revoke(name, new Date());
  let uninstalled = false;
  let detail: string | undefined;
  try {
    const record = await hosts().get(name);
    const transport = await captureDeps().transportFor(record.registration, { acceptNewHostKey: false });
    try {
      await uninstallAgent(transport);
      uninstalled = true;
    } finally {
      await transport.close();
    }
  } catch (error) {
    // An unreachable or unregistered host keeps its agent files, but its credential is dead.
    if (!isPersonaError(error)) throw error;
    detail = error.message;
  }
  await registeredAgentEndpoints()?.release(name);
  logger.info('agent revoked', { host: name, revoked, uninstalled });
  return json(200, { host: name, revoked, uninstalled, ...(detail === undefined ? {} : { detail }) });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
