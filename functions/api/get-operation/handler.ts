import middy from '@middy/core';
import { OperationParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ id: string }>) => json(200, await operations().get(event.params.id));

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: OperationParams }));
