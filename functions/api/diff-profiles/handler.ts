import middy from '@middy/core';
import { DiffQuery, NameParams } from '../../../core/api/schemas.js';
import { diffVersions } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }, { from: number; to?: number }>) =>
  json(200, await diffVersions(stores(), event.params.name, event.query.from, event.query.to));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: NameParams, query: DiffQuery }));
