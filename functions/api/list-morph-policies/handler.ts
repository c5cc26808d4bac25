import middy from '@middy/core';
import { PageQuery } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { morphPolicies } from '../../shared/morph-policies.js';
import { observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<unknown, { limit?: number; cursor?: string }>) =>
  json(200, await morphPolicies().list(event.query));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ query: PageQuery }));
