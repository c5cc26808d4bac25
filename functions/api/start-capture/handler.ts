import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { CaptureRequest, HostParams } from '../../../core/api/schemas.js';
import { startCapture } from '../../../core/capture/operation.js';
import { InvalidInputError } from '../../../core/errors.js';
import { callerScope, claimIdempotencyKey, withIdempotency } from '../../../core/operation/idempotency.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import { issuesFromZod } from '../../../core/profile/issues.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  idempotencyKey,
  idempotencyKeys,
  json,
  parseRequest,
} from '../../shared/http.js';
import { hosts, observability, operations } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

// The route as declared (`POST /hosts/{host}/capture`): part of every idempotency key's scope.
const ROUTE = ROUTES.filter((r) => r.handler === 'start-capture').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;
const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = idempotencyKey(event);
  // The body is optional; when present it gets the same defences as every other document.
  const located = event.body?.trim()
    ? await readDocumentText(documentSource(event), { source: 'body' })
    : undefined;
  const body = CaptureRequest.safeParse(located?.value ?? {});
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located?.locate));
  const host = event.params.host;
  // A retried request finds the capture it started; the same key sent with another host, route
  // or body is refused (422), never answered with another request's operation.
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
  const started = await startCapture({ hosts: hosts(), operations: store }, host, id, body.data);
  // Started again while still PENDING: the first start may have failed after the operation was
  // recorded. The starter is idempotent by operation id (one execution per operation).
  if (started.operation.status === 'PENDING') await workflows().start('capture', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
