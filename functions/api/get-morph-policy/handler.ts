import middy from '@middy/core';
import { MorphPolicyNameParams } from '../../../core/api/schemas.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { morphPolicies } from '../../shared/morph-policies.js';
import { observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }>) => {
  const found = await morphPolicies().get(event.params.name);
  return json(200, { ...found.record, policy: found.policy });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: MorphPolicyNameParams }));
