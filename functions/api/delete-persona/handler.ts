import middy from '@middy/core';
import { PersonaNameParams } from '../../../core/api/schemas.js';
import { NotFoundError } from '../../../core/errors.js';
import { type ApiEvent, apiErrors, parseRequest } from '../../shared/http.js';
import { ifMatchVersion } from '../../shared/persona-http.js';
import { observability, personas, personaTriggers } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ name: string }>) => {
  const name = event.params.name;
  try {
    await personas().delete(name, { expectedVersion: ifMatchVersion(event) });
  } catch (e) {
    // Gone already: a retry of a delete whose schedules failed to go removes them still.
    if (e instanceof NotFoundError) await personaTriggers().personaDeleted(name);
    throw e;
  }
  await personaTriggers().personaDeleted(name);
  return { statusCode: 204, headers: {}, body: '' };
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: PersonaNameParams }));
