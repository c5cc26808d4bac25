import middy from '@middy/core';
import { HostVersionParams } from '../../../core/api/schemas.js';
import { getSnapshot } from '../../../core/snapshot/catalog.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, snapshotRecords } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string; version: number }>) =>
  // Snapshot records never change once written.
  json(200, await getSnapshot(snapshotRecords(), event.params.host, event.params.version), {
    'cache-control': 'private, max-age=31536000, immutable',
  });

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostVersionParams }));
