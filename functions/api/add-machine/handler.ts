import middy from '@middy/core';
import { AddMachineRequest, PoolParams } from '../../../core/api/schemas.js';
import { InvalidInputError } from '../../../core/errors.js';
import { BareMetalInventory } from '../../../core/platform/baremetal.js';
import { readDocumentText } from '../../../core/profile/document-text.js';
import { issuesFromZod } from '../../../core/profile/issues.js';
import { INVENTORY_TABLE } from '../../../core/storage/definitions.js';
import {
  type ApiEvent,
  apiErrors,
  documentSource,
  documentTypes,
  json,
  parseRequest,
} from '../../shared/http.js';
import { ddb, getRequiredEnv, hosts, observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ pool: string }>) => {
  if (!event.body?.trim())
    throw new InvalidInputError('a machine needs a body', [{ path: 'body', message: 'required: host' }]);
  const located = await readDocumentText(documentSource(event), { source: 'body' });
  const body = AddMachineRequest.safeParse(located.value);
  if (!body.success)
    throw new InvalidInputError('the body is not valid', issuesFromZod(body.error, located.locate));
  // The machine is a registered host: it is reached as that host is, with its pinned key.
  const host = (await hosts().get(body.data.host)).registration;
  if (host.transport !== 'ssh' || host.address === undefined)
    throw new InvalidInputError(`host ${host.name} is not reached over SSH`, [
      { path: 'host', message: 'a bare-metal machine is a registered SSH host' },
    ]);
  const inventory = new BareMetalInventory(ddb(), getRequiredEnv(INVENTORY_TABLE.env));
  const machine = await inventory.add({
    pool: event.params.pool,
    machine: body.data.machine ?? host.name,
    host: host.name,
    address: host.address,
    port: host.port,
    user: host.user,
  });
  return json(201, machine, { location: `/pools/${event.params.pool}/machines` });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  // A body of any other type is what a web page could send unasked: refused before anything.
  .use(documentTypes())
  .use(parseRequest({ params: PoolParams }));
