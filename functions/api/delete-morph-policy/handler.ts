import middy from '@middy/core';
import { MorphPolicyNameParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, parseRequest } from '../../shared/http.js';
import { morphPolicies } from '../../shared/morph-policies.js';
import { observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }>) => {
  await morphPolicies().delete(event.params.name);
  return { statusCode: 204, headers: {}, body: '' };
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: MorphPolicyNameParams }));
