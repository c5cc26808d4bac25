import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { CaptureRequest, HostParams } from '../../../core/api/schemas.js';
import { startCapture } from '../../../core/capture/operation.js';
import { InvalidInputError } from '../../../core/errors.js';
import { idempotency, withIdempotency } from '../../../core/operation/idempotency.js';
import { issuesFromZod, parseDocumentText } from '../../../core/profile/io.js';
import { type ApiEvent, apiErrors, documentSource, header, json, parseRequest } from '../../shared/http.js';
import { hosts, observability, operations } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

// The route as declared (`POST /hosts/{host}/capture`): part of every idempotency key's scope.
const ROUTE = ROUTES.filter((r) => r.handler === 'start-capture').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;
const IdempotencyKey = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IdempotencyKey.safeParse(key).success) {
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
  }
  // The body is optional; when present it gets the same defences as every other document.
  const located = event.body?.trim()
    ? parseDocumentText(documentSource(event), { source: 'body' })
    : undefined;
  const body = CaptureRequest.safeParse(located?.value ?? {});
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located?.locate));
  const host = event.params.host;
  // The key names the operation within this route and host: a retried request finds the capture
  // it started, and the same key sent to another host or route starts another one.
  const idem = key === undefined ? undefined : idempotency({ route: ROUTE, host, key }, body.data);
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
