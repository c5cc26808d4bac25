// Host persona state and decisions on DynamoDB Local: conditional saves, decisions newest
// first with their retention, cursors that only page the listing they came from.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import type { Decision, HostPersonaState } from '../../../core/persona/schema.js';
import { HostPersonaConflictError, HostPersonaStore, hostPersonaView } from '../../../core/persona/state.js';
import { HOST_PERSONAS_TABLE } from '../../../core/storage/definitions.js';
import { encodeCursor } from '../../../core/storage/pagination.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let store: HostPersonaStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-host-state-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: HOST_PERSONAS_TABLE, name: 'host-personas' }],
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
  store = new HostPersonaStore(ddb, 'host-personas');
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.parse('2026-03-02T08:00:00.000Z');

const decision = (host: string, at: number, action: Decision['action'] = 'switch'): Decision => ({
  host,
  at,
  action,
  from: null,
  to: 'business-hours',
  mode: 'act',
  summary: `switched at ${new Date(at).toISOString()}`,
  reasons: [
    {
      path: '/all/0/schedule',
      holds: 'true',
      detail: 'Mon 09:00-18:00 Europe/Paris',
      values: { zone: 'Europe/Paris' },
    },
    { path: '/all/1/metric', holds: 'unknown', detail: 'no samples', values: { 'cpu.utilization': null } },
  ],
});

describe('HostPersonaStore state', () => {
  it('has no state for a host never evaluated, and reads back what was saved', async () => {
    expect(await store.get('fresh')).toBeUndefined();
    const state: HostPersonaState = {
      host: 'fresh',
      current: 'peak',
      currentVersion: 3,
      since: T0,
      falseSince: T0 + 5,
    };
    await store.save(state, undefined);
    expect(await store.get('fresh')).toEqual(state);
  });

  it('refuses a first save when a state exists, naming the conflict, and keeps the stored one', async () => {
    const first: HostPersonaState = { host: 'twice', current: null, since: T0 };
    await store.save(first, undefined);
    const second: HostPersonaState = { host: 'twice', current: 'peak', since: T0 + 1 };
    const error = await store.save(second, undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HostPersonaConflictError);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as HostPersonaConflictError).host).toBe('twice');
    expect(await store.get('twice')).toEqual(first);
  });

  it('writes on top of the state read, and refuses a writer whose since is stale', async () => {
    const read: HostPersonaState = { host: 'racer', current: null, since: T0 };
    await store.save(read, undefined);
    const winner: HostPersonaState = {
      host: 'racer',
      current: 'peak',
      currentVersion: 1,
      since: T0 + 60_000,
    };
    const loser: HostPersonaState = {
      host: 'racer',
      current: 'night',
      currentVersion: 1,
      since: T0 + 61_000,
    };
    const results = await Promise.allSettled([store.save(winner, read), store.save(loser, read)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const stored = await store.get('racer');
    expect([winner, loser]).toContainEqual(stored);
    // A writer that read the winner's state goes on from there.
    const next: HostPersonaState = { ...(stored as HostPersonaState), falseSince: T0 + 120_000 };
    await store.save(next, stored);
    expect(await store.get('racer')).toEqual(next);
  });

  it('compares manual.at too: an activation made since the read is not overwritten', async () => {
    const read: HostPersonaState = { host: 'manual', current: 'day', since: T0 };
    await store.save(read, undefined);
    const activated: HostPersonaState = { ...read, manual: { persona: 'peak', at: T0 + 10, until: null } };
    await store.save(activated, read);
    // An evaluation that read the state before the activation keeps `since` but not manual.
    const stale: HostPersonaState = { ...read, falseSince: T0 + 20 };
    await expect(store.save(stale, read)).rejects.toBeInstanceOf(HostPersonaConflictError);
    expect(await store.get('manual')).toEqual(activated);
    const later: HostPersonaState = {
      ...activated,
      manual: { persona: 'peak', at: T0 + 30, until: T0 + 3_600_000 },
    };
    await store.save(later, activated);
    expect((await store.get('manual'))?.manual).toEqual({
      persona: 'peak',
      at: T0 + 30,
      until: T0 + 3_600_000,
    });
  });

  it('lists the hosts that have a persona now, and not those that left it', async () => {
    await store.save({ host: 'idx-a', current: 'indexed', since: T0 }, undefined);
    await store.save({ host: 'idx-b', current: 'indexed', since: T0 }, undefined);
    const c: HostPersonaState = { host: 'idx-c', current: 'indexed', since: T0 };
    await store.save(c, undefined);
    await store.save({ host: 'idx-c', current: null, since: T0 + 1 }, c);
    expect((await store.hostsWith('indexed')).sort()).toEqual(['idx-a', 'idx-b']);
    expect(await store.hostsWith('nobody-has-it')).toEqual([]);
  });
});

describe('HostPersonaStore decisions', () => {
  it('answers history newest first, a page at a time, with reasons and their values', async () => {
    const now = Date.now();
    for (let i = 0; i < 5; i++) await store.record(decision('hist', now - (5 - i) * 60_000));
    // Two in the same millisecond are two decisions.
    await store.record(decision('hist', now, 'stay'));
    await store.record(decision('hist', now, 'hold'));
    const first = await store.history('hist', { limit: 4 });
    expect(first.decisions).toHaveLength(4);
    expect(
      first.decisions
        .slice(0, 2)
        .map((d) => d.action)
        .sort(),
    ).toEqual(['hold', 'stay']);
    expect(first.decisions[2]?.at).toBe(now - 60_000);
    expect(first.decisions[2]?.reasons[1]).toEqual({
      path: '/all/1/metric',
      holds: 'unknown',
      detail: 'no samples',
      values: { 'cpu.utilization': null },
    });
    expect(first.cursor).toBeDefined();
    const second = await store.history('hist', { limit: 4, cursor: first.cursor as string });
    expect(second.decisions.map((d) => d.at)).toEqual([now - 3 * 60_000, now - 4 * 60_000, now - 5 * 60_000]);
    expect(second.cursor).toBeUndefined();
    expect((await store.latest('hist'))?.at).toBe(now);
  });

  it('sets expiresAt from the retention and skips decisions whose time has passed', async () => {
    const now = Date.now();
    await store.record(decision('ttl', now - 3 * 86_400_000), { retentionDays: 1 });
    await store.record(decision('ttl', now - 2 * 86_400_000), { retentionDays: 1 });
    await store.record(decision('ttl', now - 86_400_000 * 10));
    await store.record(decision('ttl', now));
    const page = await store.history('ttl', { limit: 10 });
    expect(page.decisions.map((d) => d.at)).toEqual([now, now - 86_400_000 * 10]);
    // A short page of live decisions is filled past the expired ones TTL has not removed.
    const one = await store.history('ttl', { limit: 2 });
    expect(one.decisions).toHaveLength(2);
  });

  it('refuses a cursor of another host or listing, or one edited by hand, naming the cursor', async () => {
    await store.record(decision('cur-a', Date.now()));
    await store.record(decision('cur-a', Date.now() - 1000));
    const page = await store.history('cur-a', { limit: 1 });
    const forged = [
      page.cursor?.slice(0, -2) ?? 'x',
      encodeCursor('hosts/cur-b/persona/decisions', { host: 'cur-b', sk: 'state' }),
      encodeCursor('hosts/cur-b/persona/decisions', { host: 'cur-a', sk: 'decision#x' }),
      encodeCursor('profiles', { entity: 'profile', name: 'web', version: 0 }),
      '../../etc/passwd',
    ];
    for (const cursor of forged) {
      const error = await store.history('cur-b', { cursor }).catch((e: unknown) => e);
      expect(error, cursor).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).issues[0]?.path).toBe('cursor');
    }
    // Another host's own cursor does not page this host's decisions either.
    await expect(store.history('cur-b', { cursor: page.cursor as string })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('keeps a decision whose reasons are too long for one item, saying how many were dropped', async () => {
    const long = decision('long', Date.now());
    const reasons = Array.from({ length: 400 }, (_, i) => ({
      path: `/any/${i}/metric`,
      holds: 'false' as const,
      detail: 'x'.repeat(1000),
    }));
    await store.record({ ...long, reasons });
    const [got] = (await store.history('long')).decisions;
    expect(got?.reasons.length).toBeLessThan(400);
    expect(got?.reasons.length).toBeGreaterThan(100);
    expect(got?.summary).toMatch(/reasons not kept: too long/);
  });
});

describe('the host persona view', () => {
  const state: HostPersonaState = { host: 'web-1', current: 'peak', currentVersion: 2, since: 1000 };
  const none = { decisions: [] };

  it('says a switch is under way while the decided persona is not what the last switch applied', () => {
    const deciding = hostPersonaView('web-1', state, undefined, none, 2000, undefined, null);
    expect(deciding).toMatchObject({ current: 'peak', applied: null, switching: true });
    // Another version of the same persona is a switch too.
    const older = hostPersonaView('web-1', state, undefined, none, 2000, undefined, {
      name: 'peak',
      version: 1,
    });
    expect(older).toMatchObject({ applied: { persona: 'peak', version: 1 }, switching: true });
    const back = hostPersonaView('web-1', { ...state, current: null }, undefined, none, 2000, undefined, {
      name: 'peak',
      version: 2,
    });
    expect(back.switching).toBe(true);
  });

  it('says nothing of a switch once it applied what was decided', () => {
    const done = hostPersonaView('web-1', state, undefined, none, 2000, undefined, {
      name: 'peak',
      version: 2,
    });
    expect(done).toMatchObject({ current: 'peak', applied: { persona: 'peak', version: 2 } });
    expect(done).not.toHaveProperty('switching');
    const own = hostPersonaView('web-1', undefined, undefined, none, 2000, undefined, null);
    expect(own).toMatchObject({ current: null, applied: null });
    expect(own).not.toHaveProperty('switching');
  });
});
