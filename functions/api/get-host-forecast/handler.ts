import middy from '@middy/core';
import { ForecastQuery, HostParams } from '../../../core/api/schemas.js';
import { hostForecast } from '../../../core/persona/forecast-host.js';
import { compileAll } from '../../../core/persona/service.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { hosts, metricsStore, observability, personas } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ host: string }, { metric?: string }>) => {
  const { registration } = await hosts().get(event.params.host);
  const host = { name: registration.name, labels: registration.tags ?? {} };
  const mine = compileAll(await personas().loadAll()).filter((p) => p.selects(host));
  const metric = event.query.metric;
  return json(
    200,
    await hostForecast(metricsStore(), host, mine, Date.now(), metric === undefined ? undefined : [metric]),
  );
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: HostParams, query: ForecastQuery }));
