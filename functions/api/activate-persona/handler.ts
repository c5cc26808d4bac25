import middy from '@middy/core';
import * as z from 'zod';
import { ActivateRequest, PersonaNameParams } from '../../../core/api/schemas.js';
import { InvalidInputError } from '../../../core/errors.js';
import { activatePersona } from '../../../core/persona/activation.js';
import { decisionRecord } from '../../../core/persona/state.js';
import { type ApiEvent, apiErrors, header, json, jsonBody, parseRequest } from '../../shared/http.js';
import { startPersonaSwitch } from '../../shared/persona-switch-start.js';
import { hostPersonas, hosts, observability, personas } from '../../shared/runtime.js';

const IdempotencyKey = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

type Event = ApiEvent<{ name: string }> & { parsedBody?: z.output<typeof ActivateRequest> };

const iso = (t: number) => new Date(t).toISOString();

const handler = async (event: Event) => {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IdempotencyKey.safeParse(key).success) {
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
  }
  const body = event.parsedBody as z.output<typeof ActivateRequest>;
  const activation = await activatePersona(
    { personas: personas(), hosts: hosts(), states: hostPersonas(), startSwitch: startPersonaSwitch },
    {
      persona: event.params.name,
      host: body.host,
      ...(body.until === undefined ? {} : { until: body.until === null ? null : Date.parse(body.until) }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    },
  );
  return json(
    202,
    {
      ...activation,
      manual: {
        at: iso(activation.manual.at),
        until: activation.manual.until === null ? null : iso(activation.manual.until),
      },
      decision: decisionRecord(activation.decision),
    },
    { location: `/operations/${activation.operationId}` },
  );
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: PersonaNameParams }))
  // A small JSON or YAML body, with the document defences.
  .use(jsonBody<typeof ActivateRequest, Event>(ActivateRequest, { maxBytes: 4096, kind: 'an activation' }));
