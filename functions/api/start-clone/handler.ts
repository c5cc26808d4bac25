import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { CloneRequest } from '../../../core/clone/request.js';
import { startClone } from '../../../core/clone/workflow.js';
import { InvalidInputError } from '../../../core/errors.js';
import { callerScope, claimIdempotencyKey, withIdempotency } from '../../../core/operation/idempotency.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import { issuesFromZod } from '../../../core/profile/issues.js';
import { cloneDocuments } from '../../shared/documents.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  documentTypes,
  idempotencyKey,
  idempotencyKeys,
  json,
} from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

const ROUTE = ROUTES.filter((r) => r.handler === 'start-clone').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;
const handler = async (event: ApiEvent) => {
  const key = idempotencyKey(event);
  if (!event.body?.trim())
    throw new InvalidInputError('a clone needs a body', [
      { path: 'body', message: 'required: profile and target' },
    ]);
  const located = await readDocumentText(documentSource(event), { source: 'body' });
  const body = CloneRequest.safeParse(located.value);
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located.locate));
  // A retried request finds the clone it started; the same key with another source, route or
  // body is refused (422), not answered with another request's operation.
  const idem =
    key === undefined
      ? undefined
      : await claimIdempotencyKey(idempotencyKeys(), {
          caller: callerScope(event.requestContext?.identity),
          route: ROUTE,
          host: body.data.profile.name,
          params: {},
          body: body.data,
          key,
        });
  const id = idem?.operationId ?? randomUUID();
  const store = idem ? withIdempotency(operations(), idem) : operations();
  const started = await startClone({ operations: store, documents: cloneDocuments() }, id, body.data);
  if (started.operation.status === 'PENDING') await workflows().start('clone', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes());
