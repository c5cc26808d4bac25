// External signals (POST /signals) and the per-host signals CloudWatch alarms become, in
// SIGNALS_TABLE. A posted signal is one item under its name, with the selector of the hosts
// it concerns; a host's own signal (an alarm about that host) is an item under
// `<name>@<host>`, which no posted name can collide with ("@" is not a signal-name
// character). A host reads the newer of the two. Items carry `expiresAt` (epoch seconds) when
// they were given a time to live; DynamoDB deletes them days late, so reads skip them first.
import {
  BatchGetCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { HostSelector, type Signal } from './schema.js';

export type HostSelection = z.infer<typeof HostSelector>;

/** A host as selectors see it: its registered name and its tags (labels). */
export interface HostRef {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Whether a selector takes in a host: every field given must match (names: the host is one of
 * them; labels: each label has that value); a selector with neither selects every host.
 */
export function hostSelected(selector: HostSelection | undefined, host: HostRef): boolean {
  if (selector === undefined) return true;
  if (selector.names !== undefined && !selector.names.includes(host.name)) return false;
  for (const [key, value] of Object.entries(selector.labels ?? {})) {
    if (host.labels[key] !== value) return false;
  }
  return true;
}

export type SignalValue = number | string | boolean;

export interface StoredSignal {
  readonly name: string;
  readonly value: SignalValue;
  /** Epoch ms it was posted (or the alarm changed state). */
  readonly at: number;
  /** The hosts it concerns; every host when absent. A host's own signal has its name here. */
  readonly hosts?: HostSelection;
  /** Epoch seconds after which it is as if never posted. */
  readonly expiresAt?: number;
}

export interface SignalStore {
  /** Stores a posted signal, replacing the previous value of that name. */
  put(signal: Signal, now: number): Promise<StoredSignal>;
  /** Stores a signal about one host only (an alarm's state), beside the posted ones. */
  putForHost(host: string, signal: Omit<StoredSignal, 'hosts'>): Promise<void>;
  /** Forgets a host's own signal: it reads as never posted (unknown) again. */
  deleteForHost(host: string, name: string): Promise<void>;
  /** The newest unexpired value of each of `names` that concerns `host`. */
  forHost(host: HostRef, names: readonly string[], now: number): Promise<Map<string, StoredSignal>>;
}

/** DynamoDB takes at most 100 keys in one BatchGetItem. */
const BATCH_KEYS = 100;
/** Rounds of retrying the keys DynamoDB left unprocessed before giving up. */
const MAX_BATCH_ROUNDS = 8;

const Item = z.object({
  name: z.string(),
  signal: z.string(),
  value: z.union([z.number(), z.string(), z.boolean()]),
  at: z.number(),
  hosts: HostSelector.optional(),
  expiresAt: z.number().optional(),
});

export const hostSignalKey = (name: string, host: string): string => `${name}@${host}`;

export class DynamoSignalStore implements SignalStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async put(signal: Signal, now: number): Promise<StoredSignal> {
    const stored: StoredSignal = {
      name: signal.name,
      value: signal.value,
      at: now,
      ...(signal.hosts ? { hosts: signal.hosts } : {}),
      ...(signal.ttlSeconds ? { expiresAt: Math.ceil(now / 1000) + signal.ttlSeconds } : {}),
    };
    await this.ddb.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...stored, name: signal.name, signal: signal.name },
      }),
    );
    return stored;
  }

  async putForHost(host: string, signal: Omit<StoredSignal, 'hosts'>): Promise<void> {
    await this.ddb
      .send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...signal,
            name: hostSignalKey(signal.name, host),
            signal: signal.name,
            hosts: { names: [host] },
          },
          // State changes can arrive out of order (EventBridge retries): an older one never
          // replaces a newer.
          ConditionExpression: 'attribute_not_exists(#n) OR #at <= :at',
          ExpressionAttributeNames: { '#n': 'name', '#at': 'at' },
          ExpressionAttributeValues: { ':at': signal.at },
        }),
      )
      .catch((e: { name?: string }) => {
        if (e.name !== 'ConditionalCheckFailedException') throw e;
      });
  }

  async deleteForHost(host: string, name: string): Promise<void> {
    await this.ddb.send(
      new DeleteCommand({ TableName: this.tableName, Key: { name: hostSignalKey(name, host) } }),
    );
  }

  async forHost(host: HostRef, names: readonly string[], now: number): Promise<Map<string, StoredSignal>> {
    const keys = [...new Set(names)].flatMap((n) => [n, hostSignalKey(n, host.name)]);
    const found = new Map<string, StoredSignal>();
    for (let i = 0; i < keys.length; i += BATCH_KEYS) {
      for (const raw of await this.batchGet(keys.slice(i, i + BATCH_KEYS))) {
        const item = Item.safeParse(raw);
        // A damaged item is skipped rather than failing every evaluation that names it.
        if (!item.success) continue;
        const { name: _key, signal, ...rest } = item.data;
        const stored: StoredSignal = {
          name: signal,
          value: rest.value,
          at: rest.at,
          ...(rest.hosts ? { hosts: rest.hosts } : {}),
          ...(rest.expiresAt !== undefined ? { expiresAt: rest.expiresAt } : {}),
        };
        if (stored.expiresAt !== undefined && stored.expiresAt * 1000 <= now) continue;
        if (!hostSelected(stored.hosts, host)) continue;
        const previous = found.get(signal);
        if (previous === undefined || previous.at < stored.at) found.set(signal, stored);
      }
    }
    return found;
  }

  private async batchGet(keys: readonly string[]): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let pending: Record<string, unknown>[] = keys.map((name) => ({ name }));
    for (let round = 0; pending.length > 0; round++) {
      if (round === MAX_BATCH_ROUNDS)
        throw new Error(`DynamoDB left ${pending.length} signal keys unprocessed after ${round} rounds`);
      if (round > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** round));
      const out = await this.ddb.send(
        new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }),
      );
      items.push(...(out.Responses?.[this.tableName] ?? []));
      pending = (out.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, unknown>[];
    }
    return items;
  }
}
