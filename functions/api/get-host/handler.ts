import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { HostParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { hosts, logger } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }>) => json(200, await hosts().get(event.params.host));

export const main = middy(handler)
  .use(injectLambdaContext(logger))
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
