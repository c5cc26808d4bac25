import middy from '@middy/core';
import { MorphPolicyNameParams } from '../../../core/api/schemas.js';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { validateMorphPolicy } from '../../../core/morph/policy.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  documentTypes,
  json,
  parseRequest,
} from '../../shared/http.js';
import { morphPolicies } from '../../shared/morph-policies.js';
import { targetCatalog } from '../../shared/morph-targets.js';
import { observability } from '../../shared/runtime.js';

/** A policy is a few hundred bytes; this leaves room for long criteria and nothing more. */
const MAX_POLICY_BYTES = 64 * 1024;

const handler = async (event: ApiEvent<{ name: string }>) => {
  if (!event.body?.trim())
    throw new InvalidInputError('the request needs a morph policy document as its body', [
      { path: 'body', message: 'required' },
    ]);
  const { value, locate } = await readDocumentText(documentSource(event), {
    source: 'body',
    maxBytes: MAX_POLICY_BYTES,
    kind: 'a morph policy document',
  });
  const policy = validateMorphPolicy(value, { source: 'body', locate });
  if (policy.metadata.name !== event.params.name)
    throw new InvalidInputError(`the body is policy ${policy.metadata.name}, not ${event.params.name}`, [
      { path: 'metadata.name', message: `must be ${event.params.name}, as the path names it` },
    ]);
  // A target that is not there would fail every round the policy holds: refused now instead.
  const target = policy.spec.target;
  if (target !== 'recommended')
    await targetCatalog()
      .get(target)
      .catch((e: unknown) => {
        if (!(e instanceof NotFoundError)) throw e;
        throw new InvalidInputError(`there is no target profile ${target}`, [
          { path: 'spec.target', message: 'not a target profile of this deployment, nor `recommended`' },
        ]);
      });
  const result = await morphPolicies().put(policy);
  return json(result.created ? 201 : 200, {
    ...result.record,
    policy: result.policy,
    created: result.created,
    changed: result.changed,
  });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: MorphPolicyNameParams }));
