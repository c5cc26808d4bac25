// Snapshot records per host, and the locks that keep the garbage collector and snapshot
// writers apart, in DynamoDB.
import { randomUUID } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ConflictError } from '../errors.js';

export const SnapshotStats = z.object({
  files: z.number().int(),
  dirs: z.number().int(),
  /** Logical bytes of file content. */
  bytes: z.number().int(),
  chunks: z.number().int(),
  /** Chunks this snapshot stored that no earlier snapshot had. */
  newChunks: z.number().int(),
  /** Bytes of chunk content before compression that this snapshot added. */
  newBytes: z.number().int(),
  /** Bytes this snapshot added to the bucket (packs, index, manifest). */
  storedBytes: z.number().int(),
});
export type SnapshotStats = z.infer<typeof SnapshotStats>;

export const SnapshotRecord = z
  .object({
    host: z.string(),
    version: z.number().int().positive(),
    createdAt: z.iso.datetime(),
    manifestKey: z.string(),
    indexKeys: z.array(z.string()),
    profile: z.object({ name: z.string(), version: z.number().int().positive() }).optional(),
    stats: SnapshotStats,
  })
  .meta({ id: 'SnapshotRecord' });
export type SnapshotRecord = z.infer<typeof SnapshotRecord>;

export interface SnapshotRecords {
  latest(host: string): Promise<SnapshotRecord | undefined>;
  get(host: string, version: number): Promise<SnapshotRecord | undefined>;
  list(host: string): Promise<SnapshotRecord[]>;
  /** Every host's records: what the garbage collector must keep. */
  all(): Promise<SnapshotRecord[]>;
  /** Writes a record whose version must not exist yet; ConflictError otherwise. */
  put(record: SnapshotRecord): Promise<void>;
  delete(host: string, version: number): Promise<void>;
}

export class DynamoSnapshotRecords implements SnapshotRecords {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async latest(host: string): Promise<SnapshotRecord | undefined> {
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#h = :h',
        ExpressionAttributeNames: { '#h': 'host' },
        ExpressionAttributeValues: { ':h': host },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    return out.Items?.[0] as SnapshotRecord | undefined;
  }

  async get(host: string, version: number): Promise<SnapshotRecord | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { host, version }, ConsistentRead: true }),
    );
    return out.Item as SnapshotRecord | undefined;
  }

  async list(host: string): Promise<SnapshotRecord[]> {
    const items: SnapshotRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#h = :h',
          ExpressionAttributeNames: { '#h': 'host' },
          ExpressionAttributeValues: { ':h': host },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      items.push(...((out.Items ?? []) as SnapshotRecord[]));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async all(): Promise<SnapshotRecord[]> {
    const items: SnapshotRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new ScanCommand({ TableName: this.tableName, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      items.push(...((out.Items ?? []) as SnapshotRecord[]));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async put(record: SnapshotRecord): Promise<void> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: record,
          ConditionExpression: 'attribute_not_exists(#h)',
          ExpressionAttributeNames: { '#h': 'host' },
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name === 'ConditionalCheckFailedException') {
        throw new ConflictError(
          `snapshot ${record.version} of ${record.host} already exists`,
          record.version,
          {
            cause,
          },
        );
      }
      throw cause;
    }
  }

  async delete(host: string, version: number): Promise<void> {
    await this.ddb.send(new DeleteCommand({ TableName: this.tableName, Key: { host, version } }));
  }
}

/** The store is busy: a writer holds it while the collector wants it, or the other way round. */
export class StoreBusyError extends ConflictError {
  constructor(message: string) {
    super(message);
    this.name = 'StoreBusyError';
  }
}

export interface Lease {
  readonly holder: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long a lock lives without a refresh; a killed holder blocks no longer than this. */
  readonly ttlMs?: number;
  readonly now?: () => number;
  /** What the holder is doing, for the message another holder sees. */
  readonly purpose?: string;
}

const EXCLUSIVE = 'exclusive';

/**
 * Shared/exclusive locks over one resource. Shared holders each own an item; the exclusive
 * holder owns the `exclusive` item. A shared lock is taken in a transaction that also checks
 * that no live exclusive item exists; the exclusive lock is taken first and then checks for
 * live shared items, backing off if it finds one. Transactions serialise, so the two can
 * never both succeed.
 */
export class DynamoLocks {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly defaults: LockOptions = {},
  ) {}

  async shared(resource: string, options: LockOptions = {}): Promise<Lease> {
    const { ttlMs, now } = settle({ ...this.defaults, ...options });
    const holder = `shared:${randomUUID()}`;
    try {
      await this.ddb.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: { resource, holder: EXCLUSIVE },
                ConditionExpression: 'attribute_not_exists(#r) OR expiresAt < :now',
                ExpressionAttributeNames: { '#r': 'resource' },
                ExpressionAttributeValues: { ':now': now() },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: { resource, holder, expiresAt: now() + ttlMs, purpose: options.purpose ?? 'snapshot' },
              },
            },
          ],
        }),
      );
    } catch (cause) {
      if (cause instanceof TransactionCanceledException) {
        throw new StoreBusyError(
          `the snapshot store is being garbage-collected; try again when it has finished`,
        );
      }
      throw cause;
    }
    return this.lease(resource, holder, ttlMs, now);
  }

  async exclusive(resource: string, options: LockOptions = {}): Promise<Lease> {
    const { ttlMs, now } = settle({ ...this.defaults, ...options });
    const holder = EXCLUSIVE;
    const owner = randomUUID();
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { resource, holder, owner, expiresAt: now() + ttlMs, purpose: options.purpose ?? 'gc' },
          ConditionExpression: 'attribute_not_exists(#r) OR expiresAt < :now',
          ExpressionAttributeNames: { '#r': 'resource' },
          ExpressionAttributeValues: { ':now': now() },
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name === 'ConditionalCheckFailedException') {
        throw new StoreBusyError('another garbage collection holds the snapshot store');
      }
      throw cause;
    }
    const live = await this.liveShared(resource, now());
    if (live > 0) {
      await this.releaseExclusive(resource, owner);
      throw new StoreBusyError(
        `${live} snapshot writer${live === 1 ? '' : 's'} hold the store; try again later`,
      );
    }
    const lease = this.lease(resource, holder, ttlMs, now, owner);
    return lease;
  }

  /**
   * Claims `resource` for good: true for the one caller that gets it first, false for every
   * other. Used to let exactly one process create a store.
   */
  async claim(resource: string, holder: string): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { resource, holder, claimedAt: new Date().toISOString() },
          ConditionExpression: 'attribute_not_exists(#r)',
          ExpressionAttributeNames: { '#r': 'resource' },
        }),
      );
      return true;
    } catch (cause) {
      if ((cause as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw cause;
    }
  }

  private async liveShared(resource: string, now: number): Promise<number> {
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#r = :r AND begins_with(holder, :p)',
        ExpressionAttributeNames: { '#r': 'resource' },
        ExpressionAttributeValues: { ':r': resource, ':p': 'shared:' },
        ConsistentRead: true,
      }),
    );
    return (out.Items ?? []).filter((i) => (i.expiresAt as number) >= now).length;
  }

  private async releaseExclusive(resource: string, owner: string): Promise<void> {
    try {
      await this.ddb.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { resource, holder: EXCLUSIVE },
          ConditionExpression: '#o = :o',
          ExpressionAttributeNames: { '#o': 'owner' },
          ExpressionAttributeValues: { ':o': owner },
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
    }
  }

  private lease(resource: string, holder: string, ttlMs: number, now: () => number, owner?: string): Lease {
    // Refresh well before expiry so that a slow request does not let the lock lapse.
    const timer = setInterval(
      () => {
        this.ddb
          .send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { resource, holder },
              UpdateExpression: 'SET expiresAt = :e',
              ExpressionAttributeValues: { ':e': now() + ttlMs },
            }),
          )
          .catch(() => {});
      },
      Math.max(1000, Math.floor(ttlMs / 3)),
    );
    timer.unref();
    return {
      holder,
      release: async () => {
        clearInterval(timer);
        if (owner !== undefined) await this.releaseExclusive(resource, owner);
        else await this.ddb.send(new DeleteCommand({ TableName: this.tableName, Key: { resource, holder } }));
      },
    };
  }
}

function settle(options: LockOptions) {
  return { ttlMs: options.ttlMs ?? 60_000, now: options.now ?? Date.now };
}
