import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { HostParams, MorphStartRequest } from '../../../core/api/schemas.js';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import { recommend } from '../../../core/morph/similarity.js';
import { startMorph } from '../../../core/morph/start.js';
import { idempotency, withIdempotency } from '../../../core/operation/idempotency.js';
import { issuesFromZod, parseDocumentText } from '../../../core/profile/io.js';
import { getProfile } from '../../../core/profile/service.js';
import { cloneDocuments } from '../../shared/documents.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  documentTypes,
  header,
  json,
  parseRequest,
} from '../../shared/http.js';
import { targetCatalog } from '../../shared/morph-targets.js';
import { hosts, observability, operations, stores } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

const ROUTE = ROUTES.filter((r) => r.handler === 'start-morph').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;
const IdempotencyKey = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

// The target's document is read now and kept with the operation: editing its YAML later does
// not change a morph under way.
const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IdempotencyKey.safeParse(key).success)
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
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
  const idem = key === undefined ? undefined : idempotency({ route: ROUTE, host, key }, body.data);
  const id = idem?.operationId ?? randomUUID();
  const store = idem ? withIdempotency(operations(), idem) : operations();
  const started = await startMorph({ operations: store, documents: cloneDocuments() }, id, {
    host,
    target,
    ...(body.data.watch ? { watch: body.data.watch } : {}),
    trigger: { kind: body.data.target === 'recommended' ? 'detection' : 'manual', detail },
  });
  if (idem && !started.created && started.operation.requestHash !== idem.requestHash)
    throw new InvalidInputError('this Idempotency-Key was sent with another request', [
      { path: 'headers.idempotency-key', message: 'reused for a different body: send a new key' },
    ]);
  if (started.operation.status === 'PENDING') await workflows().start('morph', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: HostParams }));
