import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { hosts, observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }>) => json(200, await hosts().get(event.params.host));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
