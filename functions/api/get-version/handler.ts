import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { etag, VersionParams } from '../../../core/api/schemas.js';
import { getProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { logger, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string; version: number }>) => {
  const found = await getProfile(stores(), event.params.name, event.params.version);
  // Versions never change once written, so caches may keep them.
  return json(200, found, {
    etag: etag(found.version.version),
    'cache-control': 'private, max-age=31536000, immutable',
  });
};

export const main = middy(handler)
  .use(injectLambdaContext(logger))
  .use(apiErrors())
  .use(parseRequest({ params: VersionParams }));
