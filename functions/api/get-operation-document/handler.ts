import middy from '@middy/core';
import { OperationDocumentParams } from '../../../core/api/schemas.js';
import { NotFoundError } from '../../../core/errors.js';
import { cloneDocuments } from '../../shared/documents.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { observability, operations } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ id: string; document: 'plan' | 'report' | 'rollback' }>) => {
  const { id, document } = event.params;
  // The operation first: a document is served only for an operation that exists.
  await operations().get(id);
  const found = await cloneDocuments().find(id, document);
  if (found === undefined) throw new NotFoundError(`operation ${id} has no ${document} (yet)`, id);
  return json(200, found);
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: OperationDocumentParams }));
