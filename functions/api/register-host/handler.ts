import middy from '@middy/core';
import { HOST_LIMITS, HostRegistration } from '../../../core/host/schema.js';
import { type ApiEvent, apiErrors, json, jsonBody } from '../../shared/http.js';
import { hosts, observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent & { parsedBody?: unknown }) => {
  const result = await hosts().register(event.parsedBody as HostRegistration, new Date());
  return json(result.created ? 201 : 200, result.host, {
    location: `/hosts/${result.host.registration.name}`,
  });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(jsonBody(HostRegistration, { maxBytes: HOST_LIMITS.maxBytes, kind: 'a host registration' }));
