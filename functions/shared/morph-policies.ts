// Morph policies where functions use them: the store (the API's policy routes), and what
// evaluating them works with (the sampling round): the shared stores, each host's
// recommendation as GET /hosts/{host}/recommendation computes it, and the morph start path of
// POST /hosts/{host}/morph under an operation id derived from the policy's key.

import { createHash } from 'node:crypto';
import { NotFoundError } from '../../core/errors.js';
import type { MorphPolicyDeps } from '../../core/morph/evaluate.js';
import { DynamoMorphPolicyStore, type MorphPolicyStore } from '../../core/morph/policy-store.js';
import { type Recommendation, recommend } from '../../core/morph/similarity.js';
import { operationIdFor } from '../../core/operation/idempotency.js';
import { getProfile } from '../../core/profile/service.js';
import { PERSONAS_TABLE } from '../../core/storage/definitions.js';
import { morphLedger, startHostMorph } from './morph-start.js';
import { targetCatalog } from './morph-targets.js';
import { ddb, getRequiredEnv, hosts, metricsStore, operations, signalStore, stores } from './runtime.js';

let store: MorphPolicyStore | undefined;

export function morphPolicies(): MorphPolicyStore {
  store ??= new DynamoMorphPolicyStore(ddb(), getRequiredEnv(PERSONAS_TABLE.env));
  return store;
}

let deps: MorphPolicyDeps | undefined;
const recommended = new Map<
  string,
  { readonly version: number; readonly targets: string; readonly recommendation: Recommendation }
>();
const MAX_REMEMBERED = 10_000;

export function morphPolicyEvaluation(): MorphPolicyDeps {
  deps ??= {
    policies: morphPolicies(),
    hosts: hosts(),
    metrics: metricsStore(),
    signals: signalStore(),
    ledger: morphLedger(),
    operations: operations(),
    async recommendation(host) {
      const [head, targets] = await Promise.all([stores().profiles.getHead(host), targetCatalog().list()]);
      // Not captured yet: detection has nothing to go on.
      if (head === undefined) return undefined;
      // Each round asks again; the answer changes only with a new Profile version or target.
      const fingerprint = createHash('sha256').update(JSON.stringify(targets)).digest('base64url');
      const hit = recommended.get(host);
      if (hit?.version === head.latest && hit.targets === fingerprint) return hit.recommendation;
      try {
        const { version, profile } = await getProfile(stores(), host, head.latest);
        const recommendation = recommend(host, profile, targets, version.version);
        if (recommended.size >= MAX_REMEMBERED) recommended.clear();
        recommended.set(host, { version: head.latest, targets: fingerprint, recommendation });
        return recommendation;
      } catch (e) {
        if (e instanceof NotFoundError) return undefined;
        throw e;
      }
    },
    async startMorph(request) {
      const id = operationIdFor(`morph-policy#${request.host}#${request.idempotencyKey}`);
      const started = await startHostMorph(operations(), id, request);
      return { operationId: started.operation.id, created: started.created };
    },
  };
  return deps;
}
