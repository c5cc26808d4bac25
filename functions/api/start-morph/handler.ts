import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import { ROUTES } from '../../../core/api/routes.js';
import { HostParams, MorphStartRequest } from '../../../core/api/schemas.js';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import { recommend } from '../../../core/morph/similarity.js';
import { callerScope, claimIdempotencyKey, withIdempotency } from '../../../core/operation/idempotency.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import { issuesFromZod } from '../../../core/profile/issues.js';
import { getProfile } from '../../../core/profile/service.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  documentTypes,
  idempotencyKey,
  idempotencyKeys,
  json,
  parseRequest,
} from '../../shared/http.js';
import { startHostMorph } from '../../shared/morph-start.js';
import { targetCatalog } from '../../shared/morph-targets.js';
import { hosts, observability, operations, stores } from '../../shared/runtime.js';

const ROUTE = ROUTES.filter((r) => r.handler === 'start-morph').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;

// The target's document is read now and kept with the operation: editing its YAML later does
// not change a morph under way.
const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = idempotencyKey(event);
  if (!event.body?.trim())
    throw new InvalidInputError('a morph needs a body', [{ path: 'body', message: 'required: target' }]);
  const located = await readDocumentText(documentSource(event), { source: 'body', maxBytes: 64 * 1024 });
  const body = MorphStartRequest.safeParse(located.value);
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located.locate));
  const host = (await hosts().get(event.params.host)).registration.name;
  let name = body.data.target;
  let detail = `asked for ${name}`;
  if (name === 'recommended') {
    const rec = recommend(host, (await getProfile(stores(), host)).profile, await targetCatalog().list());
    if (rec.recommended === null)
      throw new ConflictError(`no target profile is alike enough to ${host} (nearest at ${rec.similarity})`);
    name = rec.recommended;
    detail = `recommended at similarity ${rec.similarity}`;
  }
  // Refused (404) before the key is claimed: a retry after adding the target is a new request.
  await targetCatalog().get(name);
  // The same key with another host, route or body is refused (422), never answered with another
  // request's operation; the key is claimed for the body as sent ("recommended" stays so).
  const idem =
    key === undefined
      ? undefined
      : await claimIdempotencyKey(idempotencyKeys(), {
          caller: callerScope(event.requestContext?.identity),
          route: ROUTE,
          host,
          params: event.params,
          body: body.data,
          key,
        });
  const id = idem?.operationId ?? randomUUID();
  const store = idem ? withIdempotency(operations(), idem) : operations();
  const started = await startHostMorph(store, id, {
    host,
    target: name,
    ...(body.data.watch ? { watch: body.data.watch } : {}),
    trigger: { kind: body.data.target === 'recommended' ? 'detection' : 'manual', detail },
  });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: HostParams }));
