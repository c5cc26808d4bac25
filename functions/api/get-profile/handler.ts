import middy from '@middy/core';
import { etag, NameParams } from '../../../core/api/schemas.js';
import { getProfile } from '../../../core/profile/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, stores } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }>) => {
  const found = await getProfile(stores(), event.params.name);
  return json(200, found, { etag: etag(found.version.version) });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: NameParams }));
