import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { etag } from '../../../core/api/schemas.js';
import type { Persona } from '../../../core/persona/schema.js';
import { apiErrors, json } from '../../shared/http.js';
import { type PersonaEvent, personaBody } from '../../shared/persona-http.js';
import { metrics, observability, personas, personaTriggers } from '../../shared/runtime.js';

const handler = async (event: PersonaEvent) => {
  const result = await personas().create(event.persona as Persona);
  // Also when unchanged: a retry of a write whose schedules failed to sync syncs them.
  await personaTriggers().personaWritten(event.persona as Persona);
  const { name, version } = result.version;
  metrics.addMetric(
    result.created ? 'PersonaVersionsWritten' : 'PersonaWritesUnchanged',
    MetricUnit.Count,
    1,
  );
  return json(result.created ? 201 : 200, result, {
    etag: etag(version),
    location: `/personas/${encodeURIComponent(name)}`,
  });
};

export const main = middy(handler).use(observability()).use(apiErrors({ metrics })).use(personaBody());
