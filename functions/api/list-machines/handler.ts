import middy from '@middy/core';
import { PoolParams } from '../../../core/api/schemas.js';
import { BareMetalInventory } from '../../../core/platform/baremetal.js';
import { INVENTORY_TABLE } from '../../../core/storage/definitions.js';
import { type ApiEvent, apiErrors, json, parseRequest } from '../../shared/http.js';
import { ddb, getRequiredEnv, observability } from '../../shared/runtime.js';

const handler = async (event: ApiEvent<{ pool: string }>) => {
  const inventory = new BareMetalInventory(ddb(), getRequiredEnv(INVENTORY_TABLE.env));
  return json(200, { items: await inventory.list(event.params.pool) });
};

export const main = middy(handler)
  .use(observability())
  .use(apiErrors())
  .use(parseRequest({ params: PoolParams }));
