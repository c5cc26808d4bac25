import middy from '@middy/core';
import type * as z from 'zod';
import { ROUTES } from '../../../core/api/routes.js';
import { ActivateRequest, PersonaNameParams } from '../../../core/api/schemas.js';
import { callerScope, claimIdempotencyKey } from '../../../core/operation/idempotency.js';
import { activatePersona } from '../../../core/persona/activation.js';
import { decisionRecord } from '../../../core/persona/state.js';
import {
  type ApiEvent,
  apiErrors,
  idempotencyKey,
  idempotencyKeys,
  json,
  jsonBody,
  parseRequest,
} from '../../shared/http.js';
import { startPersonaSwitch } from '../../shared/persona-switch-start.js';
import { hostPersonas, hosts, observability, personas } from '../../shared/runtime.js';

// The route as declared: part of the key's fingerprint.
const ROUTE = ROUTES.filter((r) => r.handler === 'activate-persona').map(
  (r) => `${r.method} ${r.path}`,
)[0] as string;

type Event = ApiEvent<{ name: string }> & { parsedBody?: z.output<typeof ActivateRequest> };

const iso = (t: number) => new Date(t).toISOString();

const handler = async (event: Event) => {
  const key = idempotencyKey(event);
  const body = event.parsedBody as z.output<typeof ActivateRequest>;
  // The same key with another persona, host or until is refused (422). The switch is named by
  // the claim's id, which a key that expired and came back does not share with the old switch.
  const claim =
    key === undefined
      ? undefined
      : await claimIdempotencyKey(idempotencyKeys(), {
          caller: callerScope(event.requestContext?.identity),
          route: ROUTE,
          host: body.host,
          params: event.params,
          body,
          key,
        });
  const activation = await activatePersona(
    { personas: personas(), hosts: hosts(), states: hostPersonas(), startSwitch: startPersonaSwitch },
    {
      persona: event.params.name,
      host: body.host,
      ...(body.until === undefined ? {} : { until: body.until === null ? null : Date.parse(body.until) }),
      ...(claim === undefined ? {} : { idempotencyKey: claim.operationId }),
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
