import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import { etag, PersonaNameParams } from '../../../core/api/schemas.js';
import type { Persona } from '../../../core/persona/schema.js';
import { apiErrors, json, parseRequest } from '../../shared/http.js';
import { ifMatchVersion, type PersonaEvent, personaBody } from '../../shared/persona-http.js';
import { metrics, observability, personas, personaTriggers } from '../../shared/runtime.js';

const handler = async (event: PersonaEvent<{ name: string }>) => {
  const result = await personas().put(event.params.name, event.persona as Persona, {
    expectedVersion: ifMatchVersion(event),
  });
  // Also when unchanged: a retry of a write whose schedules failed to sync syncs them.
  await personaTriggers().personaWritten(event.persona as Persona);
  metrics.addMetric(
    result.created ? 'PersonaVersionsWritten' : 'PersonaWritesUnchanged',
    MetricUnit.Count,
    1,
  );
  return json(result.created ? 201 : 200, result, { etag: etag(result.version.version) });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors({ metrics }))
  .use(parseRequest({ params: PersonaNameParams }))
  .use(personaBody());
