import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { CloneRequest } from '../../../core/clone/request.js';
import { startClone } from '../../../core/clone/workflow.js';
import { InvalidInputError } from '../../../core/errors.js';
import { idempotency, withIdempotency } from '../../../core/operation/idempotency.js';
import { issuesFromZod, parseDocumentText } from '../../../core/profile/io.js';
import { cloneDocuments } from '../../shared/documents.js';
import { type ApiEvent, apiErrors, documentSource, documentTypes, header, json } from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

const ROUTE = ROUTES.filter((r) => r.handler === 'start-clone').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;
const IdempotencyKey = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

const handler = async (event: ApiEvent) => {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IdempotencyKey.safeParse(key).success) {
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
  }
  if (!event.body?.trim())
    throw new InvalidInputError('a clone needs a body', [
      { path: 'body', message: 'required: profile and target' },
    ]);
  const located = parseDocumentText(documentSource(event), { source: 'body' });
  const body = CloneRequest.safeParse(located.value);
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located.locate));
  // The key names the operation within this route and source: a retried request finds the
  // clone it started; the same key with another body is refused, not answered with another's.
  const idem =
    key === undefined
      ? undefined
      : idempotency({ route: ROUTE, host: body.data.profile.name, key }, body.data);
  const id = idem?.operationId ?? randomUUID();
  const store = idem ? withIdempotency(operations(), idem) : operations();
  const started = await startClone({ operations: store, documents: cloneDocuments() }, id, body.data);
  if (idem && !started.created && started.operation.requestHash !== idem.requestHash) {
    throw new InvalidInputError('this Idempotency-Key was sent with another request', [
      { path: 'headers.idempotency-key', message: 'reused for a different body: send a new key' },
    ]);
  }
  if (started.operation.status === 'PENDING') await workflows().start('clone', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes());
