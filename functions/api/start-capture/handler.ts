import { randomUUID } from 'node:crypto';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import { CaptureRequest, HostParams } from '../../../core/api/schemas.js';
import { startCapture } from '../../../core/capture/operation.js';
import { InvalidInputError } from '../../../core/errors.js';
import { issuesFromZod, parseDocumentText } from '../../../core/profile/io.js';
import { type ApiEvent, apiErrors, header, json, parseRequest } from '../../shared/http.js';
import { hosts, logger, operations } from '../../shared/runtime.js';
import { workflows } from '../../shared/workflows.js';

const IdempotencyKey = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

const handler = async (event: ApiEvent<{ host: string }>) => {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IdempotencyKey.safeParse(key).success) {
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
  }
  // The body is optional; when present it gets the same defences as every other document.
  const located = event.body?.trim() ? parseDocumentText(event.body, { source: 'body' }) : undefined;
  const body = CaptureRequest.safeParse(located?.value ?? {});
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located?.locate));
  // The idempotency key is the operation id: a retried request finds the capture it started.
  const id = key ?? randomUUID();
  const started = await startCapture(
    { hosts: hosts(), operations: operations() },
    event.params.host,
    id,
    body.data,
  );
  if (started.created) await workflows().start('capture', { operationId: id });
  return json(202, started.operation, { location: `/operations/${id}` });
};

export const main = middy(handler)
  .use(injectLambdaContext(logger))
  .use(apiErrors())
  .use(parseRequest({ params: HostParams }));
