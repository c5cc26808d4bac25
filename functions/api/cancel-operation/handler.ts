import middy from '@middy/core';
import { OperationParams } from '../../../core/api/schemas.js';
import { isFinished } from '../../../core/operation/schema.js';
import { type ApiEvent, apiErrors, documentTypes, json, parseRequest } from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';

// Cancelling is asking: the workflow sees the request at its next step (or between the
// application trees and the Changes) and rolls back, so the target is never left half-changed.
const handler = async (event: ApiEvent<{ id: string }>) => {
  const op = await operations().requestCancel(event.params.id, new Date());
  return json(isFinished(op.status) ? 200 : 202, op, { location: `/operations/${op.id}` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: OperationParams }));
