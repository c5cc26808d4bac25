import middy from '@middy/core';
import { etag, PersonaVersionParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, personas } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string; version: number }>) => {
  const found = await personas().getVersion(event.params.name, event.params.version);
  // Versions never change once written (a delete removes them, and the name starts again at 1,
  // so caches keep them only privately and for a day).
  return json(200, found, { etag: etag(found.version.version), 'cache-control': 'private, max-age=86400' });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: PersonaVersionParams }));
