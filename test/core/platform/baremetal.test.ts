// The bare-metal pool on DynamoDB Local: provisioning takes a free machine with a conditional
// write, concurrent takers never share one, and rollback releases only what the operation holds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { BareMetalAdaptor, BareMetalInventory } from '../../../core/platform/baremetal.js';
import { PoolExhaustedError } from '../../../core/platform/errors.js';
import type { HostAccess } from '../../../core/platform/platform.js';
import { INVENTORY_TABLE } from '../../../core/storage/definitions.js';
import type { Transport } from '../../../core/transport/transport.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let inventory: BareMetalInventory;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-pool-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: INVENTORY_TABLE, name: 'inventory' }],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  inventory = new BareMetalInventory(ddb, 'inventory');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const machine = (pool: string, name: string) => ({
  pool,
  machine: name,
  address: '10.213.9.2',
  user: 'root',
});

describe('BareMetalInventory', () => {
  it('gives one free machine to exactly one of two concurrent takers', async () => {
    await inventory.add(machine('race', 'm1'));
    // Neither taker writes before both have read the pool with m1 free: only the conditional
    // write keeps them from both having it.
    let queries = 0;
    let bothRead: () => void = () => {};
    const read = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    const gated = new Proxy(ddb, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver);
        return async (command: { constructor: { name: string } }) => {
          if (command.constructor.name === 'UpdateCommand') await read;
          const out = await target.send(command as never);
          if (command.constructor.name === 'QueryCommand' && ++queries === 2) bothRead();
          return out;
        };
      },
    });
    const racing = new BareMetalInventory(gated, 'inventory');
    const [a, b] = await Promise.allSettled([racing.take('race', 'op-a'), racing.take('race', 'op-b')]);
    expect(queries).toBe(2);
    const won = [a, b].filter((r) => r.status === 'fulfilled');
    const lost = [a, b].filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(PoolExhaustedError);
    const holder = (won[0] as PromiseFulfilledResult<{ holder?: string }>).value.holder;
    expect((await inventory.get('race', 'm1'))?.holder).toBe(holder);
  });

  it('gives many concurrent takers distinct machines, and refuses the ones left over', async () => {
    for (const n of ['m1', 'm2', 'm3']) await inventory.add(machine('crowd', n));
    const takers = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6'];
    const results = await Promise.allSettled(takers.map((op) => inventory.take('crowd', op)));
    const taken = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.machine] : []));
    expect(taken.sort()).toEqual(['m1', 'm2', 'm3']);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(3);
    const stored = await inventory.list('crowd');
    expect(new Set(stored.map((m) => m.holder)).size).toBe(3);
  });

  it('gives an operation that asks again the machine it already holds', async () => {
    await inventory.add(machine('retry', 'm1'));
    await inventory.add(machine('retry', 'm2'));
    const first = await inventory.take('retry', 'op-1');
    const again = await inventory.take('retry', 'op-1');
    expect(again.machine).toBe(first.machine);
    expect((await inventory.list('retry')).filter((m) => m.state === 'free')).toHaveLength(1);
  });

  it('releases a machine only for the operation that holds it', async () => {
    await inventory.add(machine('release', 'm1'));
    await inventory.take('release', 'op-1');
    expect(await inventory.release('release', 'm1', 'op-other')).toBe(false);
    expect((await inventory.get('release', 'm1'))?.holder).toBe('op-1');
    expect(await inventory.release('release', 'm1', 'op-1')).toBe(true);
    expect(await inventory.get('release', 'm1')).toMatchObject({ state: 'free' });
    expect((await inventory.get('release', 'm1'))?.holder).toBeUndefined();
    // A late second release of op-1 must not free the machine op-2 has taken since.
    await inventory.take('release', 'op-2');
    expect(await inventory.release('release', 'm1', 'op-1')).toBe(false);
    expect((await inventory.get('release', 'm1'))?.holder).toBe('op-2');
  });

  it('refuses a machine added twice and names that are not names', async () => {
    await inventory.add(machine('dup', 'm1'));
    await expect(inventory.add(machine('dup', 'm1'))).rejects.toThrow(/already has a machine "m1"/);
    await expect(inventory.add(machine('dup', '-rf'))).rejects.toBeInstanceOf(InvalidInputError);
    await expect(inventory.take('dup', 'op/../x')).rejects.toBeInstanceOf(InvalidInputError);
  });
});

describe('BareMetalAdaptor', () => {
  const connected: HostAccess[] = [];
  const adaptor = () =>
    new BareMetalAdaptor({
      inventory,
      connect: async (access) => {
        connected.push(access);
        return { target: 'fake', close: async () => {} } as unknown as Transport;
      },
      snapshots: {
        snapshot: async () => 'v1',
        restore: async () => {},
      },
    });

  it('provisions from the pool, is ready at once with SSH access, and terminates by releasing', async () => {
    await inventory.add({ ...machine('adaptor', 'm1'), port: 2222 });
    const platform = adaptor();
    const handle = await platform.provision({ operation: 'clone-1', parameters: { pool: 'adaptor' } });
    expect(handle).toEqual({ platform: 'baremetal', operation: 'clone-1', id: 'm1', scope: 'adaptor' });
    const status = await platform.poll(handle);
    expect(status).toMatchObject({
      state: 'ready',
      host: { access: { transport: 'ssh', address: '10.213.9.2', port: 2222 } },
    });
    if (status.state !== 'ready') throw new Error('not ready');
    await (await platform.transport(status.host)).close();
    expect(connected.at(-1)).toMatchObject({ transport: 'ssh', port: 2222 });
    expect(await platform.resize(status.host, 'large')).toMatchObject({ state: 'unsupported' });
    await platform.terminate(handle);
    expect(await inventory.get('adaptor', 'm1')).toMatchObject({ state: 'free' });
    expect(await platform.poll(handle)).toMatchObject({ state: 'failed' });
    // Terminating again changes nothing.
    await platform.terminate(handle);
  });

  it('needs a pool to provision from', async () => {
    await expect(adaptor().provision({ operation: 'clone-2' })).rejects.toThrow(/needs a pool/);
  });
});
