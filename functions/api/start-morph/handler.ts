import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import { ROUTES } from '../../../core/api/routes.js';
import { HostParams, MorphStartRequest } from '../../../core/api/schemas.js';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import { recommend } from '../../../core/morph/similarity.js';
import { startMorph } from '../../../core/morph/start.js';
import { claimIdempotencyKey, withIdempotency } from '../../../core/operation/idempotency.js';
import { issuesFromZod, parseDocumentText } from '../../../core/profile/io.js';
import { getProfile } from '../../../core/profile/service.js';
import { cloneDocuments } from '../../shared/documents.js';
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
import { targetCatalog } from '../../shared/morph-targets.js';
import { hosts, observability, operations, stores } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

const ROUTE = ROUTES.filter((r) => r.handler === 'start-morph').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;

// The target's document is read now and kept with the operation: editing its YAML later does
// not change a morph under way.
const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = idempotencyKey(event);
  if (!event.body?.trim())
    throw new InvalidInputError('a morph needs a body', [{ path: 'body', message: 'required: target' }]);
  const located = parseDocumentText(documentSource(event), { source: 'body', maxBytes: 64 * 1024 });
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
  const target = await targetCatalog().get(name);
  // The same key with another host, route or body is refused (422), never answered with another
  // request's operation; the key is claimed for the body as sent ("recommended" stays so).
  const idem =
    key === undefined
      ? undefined
      : await claimIdempotencyKey(idempotencyKeys(), {
          route: ROUTE,
          host,
          params: event.params,
          body: body.data,
          key,
        });
  const id = idem?.operationId ?? randomUUID();
  const store = idem ? withIdempotency(operations(), idem) : operations();
  const started = await startMorph({ operations: store, documents: cloneDocuments() }, id, {
    host,
    target,
    ...(body.data.watch ? { watch: body.data.watch } : {}),
    trigger: { kind: body.data.target === 'recommended' ? 'detection' : 'manual', detail },
  });
  if (started.operation.status === 'PENDING') await workflows().start('morph', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: HostParams }));
