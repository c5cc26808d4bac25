import middy from '@middy/core';
import { openApiDocument } from '../../../core/api/openapi.js';
import { apiErrors, json } from '../../shared/http.js';
import { observability } from '../../shared/observability.js';

// Built once per execution environment: the document only changes with a deployment.
const document = openApiDocument();

export const main = middy(async () => json(200, document, { 'cache-control': 'public, max-age=300' }))
  .use(observability())
  .use(apiErrors());
