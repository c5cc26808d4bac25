import middy from '@middy/core';
import { PageQuery, PersonaNameParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, personas } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }, { limit?: number; cursor?: string }>) =>
  json(200, await personas().versions(event.params.name, event.query));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: PersonaNameParams, query: PageQuery }));
