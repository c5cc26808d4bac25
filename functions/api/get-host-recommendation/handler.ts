import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { recommend } from '../../../core/morph/similarity.js';
import { getProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { targetCatalog } from '../../shared/morph-targets.js';
import { hosts, observability, stores } from '../../shared/runtime.js';

// Workload detection: the host's latest Profile (its trait vector) against every target profile.
const handler = async (event: ApiEvent<{ host: string }>) => {
  const host = (await hosts().get(event.params.host)).registration.name;
  const [{ version, profile }, targets] = await Promise.all([
    getProfile(stores(), host),
    targetCatalog().list(),
  ]);
  return json(200, recommend(host, profile, targets, version.version));
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
