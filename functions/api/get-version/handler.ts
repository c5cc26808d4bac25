import middy from '@middy/core';
import { etag, VersionParams } from '../../../core/api/schemas.js';
import { getProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string; version: number }>) => {
  const found = await getProfile(stores(), event.params.name, event.params.version);
  // Versions never change once written, so caches may keep them.
  return json(200, found, {
    etag: etag(found.version.version),
    'cache-control': 'private, max-age=31536000, immutable',
  });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: VersionParams }));
