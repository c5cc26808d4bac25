import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { PersonaNameParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, parseRequest } from '../../shared/http.js';
import { ifMatchVersion } from '../../shared/persona-http.js';
import { logger, personas } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }>) => {
  await personas().delete(event.params.name, { expectedVersion: ifMatchVersion(event) });
  return { statusCode: 204, headers: {}, body: '' };
};

export const main = middy(handler)
  .use(injectLambdaContext(logger))
  .use(apiErrors())
  .use(parseRequest({ params: PersonaNameParams }));
