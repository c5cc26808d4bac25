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
import * as z from 'zod';
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
  /**
   * Writes a record whose version must not exist yet; ConflictError otherwise. With `fence`,
   * the record is written only if that lease is still held, in the same transaction
   * (LeaseLostError otherwise): a writer whose lock was taken over cannot record a snapshot.
   */
  put(record: SnapshotRecord, options?: { readonly fence?: Lease }): Promise<void>;
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

  async put(record: SnapshotRecord, options: { readonly fence?: Lease } = {}): Promise<void> {
    const put = {
      TableName: this.tableName,
      Item: record,
      ConditionExpression: 'attribute_not_exists(#h)',
      ExpressionAttributeNames: { '#h': 'host' },
    };
    const taken = (cause: unknown) =>
      new ConflictError(`snapshot ${record.version} of ${record.host} already exists`, record.version, {
        cause,
      });
    const lease = options.fence;
    try {
      if (!lease) await this.ddb.send(new PutCommand(put));
      else
        await this.ddb.send(
          new TransactWriteCommand({ TransactItems: [{ ConditionCheck: lease.fence() }, { Put: put }] }),
        );
    } catch (cause) {
      if (isConditionFailure(cause)) throw taken(cause);
      if (lease && cause instanceof TransactionCanceledException) {
        const [held, free] = (cause.CancellationReasons ?? []).map((r) => r.Code);
        if (held === 'ConditionalCheckFailed') {
          throw new LeaseLostError(
            lease.resource,
            `snapshot ${record.host}#${record.version} was not recorded: this writer's lock on ${lease.resource} was taken over`,
            { cause },
          );
        }
        // A version taken, or another writer's transaction on the same item: the caller tries the next one.
        if (
          free === 'ConditionalCheckFailed' ||
          held === 'TransactionConflict' ||
          free === 'TransactionConflict'
        )
          throw taken(cause);
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

/**
 * A lock this process held is no longer its own: its refreshes failed for longer than the
 * lease could wait, or another process took the lock over once it looked expired. What the
 * holder was about to write (an index, a snapshot record, a deletion) must not be written.
 */
export class LeaseLostError extends ConflictError {
  constructor(
    readonly resource: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, undefined, options);
    this.name = 'LeaseLostError';
  }
}

/** A DynamoDB condition that holds exactly while a lease is held (a TransactWrite ConditionCheck). */
export interface LeaseFence {
  readonly TableName: string;
  readonly Key: Record<string, string>;
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues: Record<string, unknown>;
}

export interface Lease {
  readonly resource: string;
  readonly holder: string;
  /**
   * Throws LeaseLostError once the lease is known to be lost: a refresh found it taken over,
   * or no refresh has succeeded for so long that others may consider it expired. No round trip.
   */
  throwIfLost(): void;
  /**
   * Confirms in DynamoDB, conditional on this holder's owner token, that the lease is still
   * held, and extends it: what a holder calls right before a write that must not happen
   * without it. Throws LeaseLostError otherwise.
   */
  assertHeld(): Promise<void>;
  /** The condition to write together with a record, so that the record exists only if the lease did. */
  fence(): LeaseFence;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long a lock lives without a refresh; a killed holder blocks no longer than this (plus the skew). */
  readonly ttlMs?: number;
  /**
   * How far apart the clocks of two machines may be. A lock is taken over only when its stored
   * expiry lies more than this far in the past by the taker's clock.
   */
  readonly clockSkewMs?: number;
  /** Wall clock (ms since the epoch): what stored expiries are written and compared in. */
  readonly now?: () => number;
  /** Local monotonic clock (ms): how the holder measures its own lease. */
  readonly monotonic?: () => number;
  /** What the holder is doing, for the message another holder sees. */
  readonly purpose?: string;
}

interface Clock {
  readonly ttlMs: number;
  readonly skewMs: number;
  readonly now: () => number;
  readonly monotonic: () => number;
}

const EXCLUSIVE = 'exclusive';
const CREATOR = 'creator';
const isConditionFailure = (e: unknown) =>
  (e as { name?: string }).name === 'ConditionalCheckFailedException';

/**
 * The one definition of "this lock may be taken over": no item, an item without an expiry
 * (a claim written before claims expired), or a stored expiry more than the clock skew in
 * the past by the taker's clock. DynamoDB evaluates it against the stored item, atomically
 * with the write that takes the lock over.
 */
function takeable(clock: Clock) {
  return {
    ConditionExpression: 'attribute_not_exists(#r) OR attribute_not_exists(#x) OR #x < :cutoff',
    ExpressionAttributeNames: { '#r': 'resource', '#x': 'expiresAt' },
    ExpressionAttributeValues: { ':cutoff': clock.now() - clock.skewMs },
  };
}

/**
 * Shared/exclusive locks over one resource. Every lock item carries its holder's random
 * owner token, and every refresh, release and fenced write is conditional on that token, so
 * that a holder whose lock was taken over cannot extend it, release another's, or write
 * under it. Shared holders each own an item; the exclusive holder owns the `exclusive` item.
 * A shared lock is taken in a transaction that also removes the exclusive item if it is
 * takeable (and fails if not); the exclusive lock is taken first and then removes every
 * takeable shared item, backing off if one is live. The writes on either side are
 * conditional on the same items, so the two can never both succeed.
 */
export class DynamoLocks {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly defaults: LockOptions = {},
  ) {}

  async shared(resource: string, options: LockOptions = {}): Promise<Lease> {
    const clock = this.clock(options);
    const holder = `shared:${randomUUID()}`;
    const owner = randomUUID();
    const purpose = options.purpose ?? this.defaults.purpose ?? 'snapshot';
    for (let attempt = 0; ; attempt++) {
      const sentAt = clock.monotonic();
      try {
        await this.ddb.send(
          new TransactWriteCommand({
            TransactItems: [
              // A collector whose lock lapsed is fenced off: its owner-conditional writes fail.
              {
                Delete: {
                  TableName: this.tableName,
                  Key: { resource, holder: EXCLUSIVE },
                  ...takeable(clock),
                },
              },
              {
                Put: {
                  TableName: this.tableName,
                  Item: { resource, holder, owner, expiresAt: clock.now() + clock.ttlMs, purpose },
                },
              },
            ],
          }),
        );
        return new DynamoLease(this.ddb, this.tableName, resource, holder, owner, purpose, clock, sentAt);
      } catch (cause) {
        if (cause instanceof TransactionCanceledException) {
          const codes = (cause.CancellationReasons ?? []).map((r) => r.Code);
          if (codes[0] === 'ConditionalCheckFailed') {
            throw new StoreBusyError(
              'the snapshot store is being garbage-collected; try again when it has finished',
            );
          }
          // Another writer's transaction touched the exclusive item at the same moment.
          if (codes.includes('TransactionConflict') && attempt < 8) {
            await sleep(20 + Math.random() * 80 * (attempt + 1));
            continue;
          }
        }
        throw cause;
      }
    }
  }

  async exclusive(resource: string, options: LockOptions = {}): Promise<Lease> {
    const clock = this.clock(options);
    const owner = randomUUID();
    const purpose = options.purpose ?? this.defaults.purpose ?? 'gc';
    const sentAt = clock.monotonic();
    const condition = takeable(clock);
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { resource, holder: EXCLUSIVE, owner, expiresAt: clock.now() + clock.ttlMs, purpose },
          ...condition,
        }),
      );
    } catch (cause) {
      if (isConditionFailure(cause))
        throw new StoreBusyError('another garbage collection holds the snapshot store');
      throw cause;
    }
    const lease = new DynamoLease(
      this.ddb,
      this.tableName,
      resource,
      EXCLUSIVE,
      owner,
      purpose,
      clock,
      sentAt,
    );
    try {
      const live = await this.breakSharedLeases(resource, clock);
      if (live.length > 0) {
        throw new StoreBusyError(
          `${live.length} holder${live.length === 1 ? '' : 's'} of the store (${[...new Set(live)].join(', ')}) ${live.length === 1 ? 'is' : 'are'} at work; try again later`,
        );
      }
    } catch (e) {
      await lease.release();
      throw e;
    }
    return lease;
  }

  /**
   * The right to create what `resource` names, as a lease: undefined while another holder's
   * claim is live. A claimant that dies stops refreshing, and its claim becomes takeable.
   */
  async claim(resource: string, options: LockOptions = {}): Promise<Lease | undefined> {
    const clock = this.clock(options);
    const owner = randomUUID();
    const purpose = options.purpose ?? 'create';
    const sentAt = clock.monotonic();
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            resource,
            holder: CREATOR,
            owner,
            expiresAt: clock.now() + clock.ttlMs,
            purpose,
            claimedAt: new Date(clock.now()).toISOString(),
          },
          ...takeable(clock),
        }),
      );
    } catch (cause) {
      if (isConditionFailure(cause)) return undefined;
      throw cause;
    }
    return new DynamoLease(this.ddb, this.tableName, resource, CREATOR, owner, purpose, clock, sentAt);
  }

  /**
   * Removes every shared item that is takeable, each conditional on the owner read and on
   * the stored expiry (a holder that refreshed meanwhile keeps its lock), and returns the
   * purposes of those that are live.
   */
  private async breakSharedLeases(resource: string, clock: Clock): Promise<string[]> {
    const live: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#r = :r AND begins_with(holder, :p)',
          ExpressionAttributeNames: { '#r': 'resource' },
          ExpressionAttributeValues: { ':r': resource, ':p': 'shared:' },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const condition = takeable(clock);
        const owned = typeof item.owner === 'string';
        try {
          await this.ddb.send(
            new DeleteCommand({
              TableName: this.tableName,
              Key: { resource, holder: item.holder },
              ConditionExpression: `${owned ? '#o = :o' : 'attribute_not_exists(#o)'} AND (${condition.ConditionExpression})`,
              ExpressionAttributeNames: { ...condition.ExpressionAttributeNames, '#o': 'owner' },
              ExpressionAttributeValues: {
                ...condition.ExpressionAttributeValues,
                ...(owned ? { ':o': item.owner } : {}),
              },
            }),
          );
        } catch (cause) {
          if (!isConditionFailure(cause)) throw cause;
          live.push(typeof item.purpose === 'string' ? item.purpose : 'snapshot');
        }
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return live;
  }

  private clock(options: LockOptions): Clock {
    const o = { ...this.defaults, ...options };
    return {
      ttlMs: o.ttlMs ?? 60_000,
      skewMs: o.clockSkewMs ?? 30_000,
      now: o.now ?? Date.now,
      monotonic: o.monotonic ?? (() => performance.now()),
    };
  }
}

/**
 * A held lock. It refreshes itself every third of its lifetime, each refresh conditional on
 * the owner token. The holder counts its lease as valid for three quarters of the lifetime
 * after the last refresh that succeeded (measured on its own monotonic clock from when that
 * refresh was sent), so it stops before anyone whose clock is within the skew may take the
 * lock over. A refresh that finds the lock taken over loses the lease at once; one that
 * fails otherwise is tried again, and the lease is lost when its validity runs out first.
 */
class DynamoLease implements Lease {
  private lost: LeaseLostError | undefined;
  private lastError: unknown;
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    readonly resource: string,
    readonly holder: string,
    private readonly owner: string,
    private readonly purpose: string,
    private readonly clock: Clock,
    private confirmedAt: number,
  ) {
    this.schedule();
  }

  throwIfLost(): void {
    if (this.lost) throw this.lost;
    const since = this.clock.monotonic() - this.confirmedAt;
    if (since > this.validMs) {
      const why =
        this.lastError === undefined ? '' : `: ${(this.lastError as Error).message ?? this.lastError}`;
      this.lost = new LeaseLostError(
        this.resource,
        `the ${this.purpose} lock on ${this.resource} lapsed: not refreshed for ${Math.round(since)} ms${why}`,
        { cause: this.lastError },
      );
      throw this.lost;
    }
  }

  async assertHeld(): Promise<void> {
    this.throwIfLost();
    const failure = await this.extend();
    if (this.lost) throw this.lost;
    if (failure !== undefined) {
      throw new LeaseLostError(
        this.resource,
        `could not confirm the ${this.purpose} lock on ${this.resource}: ${(failure as Error).message}`,
        { cause: failure },
      );
    }
    this.throwIfLost();
  }

  fence(): LeaseFence {
    return {
      TableName: this.tableName,
      Key: { resource: this.resource, holder: this.holder },
      ConditionExpression: '#o = :o',
      ExpressionAttributeNames: { '#o': 'owner' },
      ExpressionAttributeValues: { ':o': this.owner },
    };
  }

  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.timer);
    try {
      await this.ddb.send(new DeleteCommand({ ...this.fence() }));
    } catch (cause) {
      // Taken over already: there is nothing of ours left to remove.
      if (!isConditionFailure(cause)) throw cause;
    }
  }

  private get validMs(): number {
    return this.clock.ttlMs - this.clock.ttlMs / 4;
  }

  /** One conditional refresh; what went wrong is returned and kept, never thrown. */
  private async extend(): Promise<unknown> {
    const sentAt = this.clock.monotonic();
    try {
      await this.ddb.send(
        new UpdateCommand({
          ...this.fence(),
          UpdateExpression: 'SET #x = :e',
          ExpressionAttributeNames: { '#o': 'owner', '#x': 'expiresAt' },
          ExpressionAttributeValues: { ':o': this.owner, ':e': this.clock.now() + this.clock.ttlMs },
        }),
      );
    } catch (cause) {
      if (isConditionFailure(cause)) {
        this.lost ??= new LeaseLostError(
          this.resource,
          `the ${this.purpose} lock on ${this.resource} was taken over by another process after it looked expired`,
          { cause },
        );
      } else {
        this.lastError = cause;
      }
      return cause;
    }
    this.confirmedAt = Math.max(this.confirmedAt, sentAt);
    this.lastError = undefined;
    return undefined;
  }

  private schedule(): void {
    if (this.released || this.lost) return;
    this.timer = setTimeout(() => void this.tick(), Math.max(10, Math.floor(this.clock.ttlMs / 3)));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    await this.extend();
    if (this.released) return;
    try {
      this.throwIfLost();
    } catch {
      // Lost for good: the holder learns it at its next throwIfLost or assertHeld.
      return;
    }
    this.schedule();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
