import middy from '@middy/core';
import { PageQuery } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { hosts, observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<unknown, { limit?: number; cursor?: string }>) =>
  json(200, await hosts().list({ limit: event.query.limit ?? 50, cursor: event.query.cursor }));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ query: PageQuery }));
