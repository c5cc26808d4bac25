import middy from '@middy/core';
import type { z } from 'zod';
import { OperationQuery } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<unknown, z.output<typeof OperationQuery>>) =>
  json(200, await operations().list({ ...event.query, limit: event.query.limit ?? 50 }));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ query: OperationQuery }));
