import middy from '@middy/core';
import { HostParams, PageQuery } from '../../../core/api/schemas.js';
import { hostPersonaView } from '../../../core/persona/state.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { hostPersonas, hosts, observability, recordedPersonas } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }, { limit?: number; cursor?: string }>) => {
  const host = (await hosts().get(event.params.host)).registration.name;
  const states = hostPersonas();
  const [state, history, applied] = await Promise.all([
    states.get(host),
    states.history(host, {
      ...(event.query.limit === undefined ? {} : { limit: event.query.limit }),
      ...(event.query.cursor === undefined ? {} : { cursor: event.query.cursor }),
    }),
    recordedPersonas().current(host),
  ]);
  // The first page starts with the latest decision; a later page does not.
  const latest = event.query.cursor === undefined ? history.decisions[0] : await states.latest(host);
  // Why the host has its persona: the decision that moved it there, not the stays since.
  const moved =
    latest !== undefined && ['switch', 'revert', 'manual'].includes(latest.action)
      ? latest
      : await states.lastChange(host);
  return json(200, hostPersonaView(host, state, moved ?? latest, history, Date.now(), latest, applied));
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams, query: PageQuery }));
