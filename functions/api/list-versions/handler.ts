import middy from '@middy/core';
import { NameParams, PageQuery } from '../../../core/api/schemas.js';
import { listVersions } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }, { limit?: number; cursor?: string }>) =>
  json(200, await listVersions(stores(), event.params.name, event.query));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: NameParams, query: PageQuery }));
