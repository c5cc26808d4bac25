// The durable journal of an apply (JOURNAL_TABLE): one item per Change, keyed by operation and
// position. The item is written before the Change touches the host (state `applying`, with what
// was there before), marked `applied` once it has landed, and `reverted` once rollback undid it.
// Write-ahead rather than after: a control side that dies between the host's change and the
// journal write would otherwise leave a change that no rollback knows about. Reverting an entry
// that never got past `applying` is safe: it puts back what was there, which is still there.
//
// Nothing secret is journaled: Changes carry references, and the content a file held before is
// kept on the target (executors/backup.ts), not here.
import {
  type DynamoDBDocumentClient,
  PutCommand,
  paginateQuery,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { Change } from '../delta/changes.js';
import { ConflictError, InvalidInputError, PersonaError } from '../errors.js';
import { displayValue } from '../transport/shell.js';

export const ENTRY_STATES = ['applying', 'applied', 'reverted'] as const;
export type EntryState = (typeof ENTRY_STATES)[number];

export const OUTCOMES = ['changed', 'unchanged', 'unresolved'] as const;
export type OutcomeStatus = (typeof OUTCOMES)[number];

/** What applying or reverting one Change did, in words a plan or a report can show. */
export interface Outcome {
  readonly status: OutcomeStatus;
  readonly detail: string;
}

export interface JournalEntry {
  readonly operation: string;
  /** Position of the Change in the Delta, from 0. */
  readonly seq: number;
  readonly change: Change;
  /** What the executor captured before applying: what its revert puts back. */
  readonly prior: unknown;
  readonly state: EntryState;
  readonly outcome?: Outcome;
  readonly updatedAt: string;
}

/** What one atomic journal write holds: Changes marked applied, then Changes begun. */
export interface JournalStep {
  readonly applied: readonly { readonly seq: number; readonly outcome: Outcome }[];
  readonly begin: readonly { readonly seq: number; readonly change: Change; readonly prior: unknown }[];
}

/** The most entries one atomic write holds: DynamoDB's limit on a transaction's actions. */
export const MAX_JOURNAL_WRITE = 100;

export interface Journal {
  /** Records that the Change is about to be applied; ConflictError if that position is taken. */
  begin(operation: string, seq: number, change: Change, prior: unknown): Promise<void>;
  applied(operation: string, seq: number, outcome: Outcome): Promise<void>;
  /**
   * Optional: `applied` for some Changes and `begin` for the next ones in one atomic write (at
   * most MAX_JOURNAL_WRITE entries in all), so that an apply journals a run of Changes in one
   * round trip rather than two per Change. Either all are written or none; a ConflictError names
   * which condition failed.
   */
  write?(operation: string, step: JournalStep): Promise<void>;
  reverted(operation: string, seq: number, outcome: Outcome): Promise<void>;
  /** Every entry of the operation, in apply order. */
  entries(operation: string): Promise<JournalEntry[]>;
}

const OPERATION = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Operation ids name journal partitions and backup folders on hosts: a strict grammar. */
export function checkOperation(operation: string): string {
  if (!OPERATION.test(operation)) {
    throw new InvalidInputError(`operation ${displayValue(operation)} is not a valid operation id`, [
      { path: 'operation', message: 'expected 1 to 128 letters, digits, ".", "_", ":" or "-"' },
    ]);
  }
  return operation;
}

const Item = z.object({
  operation: z.string(),
  seq: z.number().int().nonnegative(),
  change: z.string(),
  prior: z.string(),
  state: z.enum(ENTRY_STATES),
  outcome: z.object({ status: z.enum(OUTCOMES), detail: z.string() }).optional(),
  updatedAt: z.string(),
});

const isConditionFailure = (e: unknown) =>
  (e as { name?: string } | null)?.name === 'ConditionalCheckFailedException';

export class DynamoJournal implements Journal {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async begin(operation: string, seq: number, change: Change, prior: unknown): Promise<void> {
    checkOperation(operation);
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            operation,
            seq,
            // As JSON text: DynamoDB maps would turn an empty string or a sparse value into
            // something else, and a revert needs the Change exactly as it was.
            change: JSON.stringify(change),
            prior: JSON.stringify(prior ?? null),
            state: 'applying',
            updatedAt: this.now().toISOString(),
          },
          ConditionExpression: 'attribute_not_exists(#s)',
          ExpressionAttributeNames: { '#s': 'seq' },
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      throw new ConflictError(
        `operation ${operation} already journaled change ${seq + 1}: another apply of it is running or ran`,
        seq,
        { cause: e },
      );
    }
  }

  applied(operation: string, seq: number, outcome: Outcome): Promise<void> {
    return this.move(operation, seq, ['applying'], 'applied', outcome);
  }

  async write(operation: string, step: JournalStep): Promise<void> {
    checkOperation(operation);
    const size = step.applied.length + step.begin.length;
    if (size === 0) return;
    if (size > MAX_JOURNAL_WRITE)
      throw new RangeError(`a journal write holds at most ${MAX_JOURNAL_WRITE} entries, not ${size}`);
    const at = this.now().toISOString();
    try {
      await this.ddb.send(
        new TransactWriteCommand({
          TransactItems: [
            ...step.applied.map((done) => ({
              Update: {
                TableName: this.tableName,
                Key: { operation, seq: done.seq },
                UpdateExpression: 'SET #st = :to, #o = :o, #u = :u',
                ConditionExpression: '#st = :from',
                ExpressionAttributeNames: { '#st': 'state', '#o': 'outcome', '#u': 'updatedAt' },
                ExpressionAttributeValues: {
                  ':to': 'applied',
                  ':o': done.outcome,
                  ':u': at,
                  ':from': 'applying',
                },
              },
            })),
            ...step.begin.map((next) => ({
              Put: {
                TableName: this.tableName,
                Item: {
                  operation,
                  seq: next.seq,
                  change: JSON.stringify(next.change),
                  prior: JSON.stringify(next.prior ?? null),
                  state: 'applying',
                  updatedAt: at,
                },
                ConditionExpression: 'attribute_not_exists(#s)',
                ExpressionAttributeNames: { '#s': 'seq' },
              },
            })),
          ],
        }),
      );
    } catch (e) {
      const reasons = (e as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
      if ((e as { name?: string }).name !== 'TransactionCanceledException' || !reasons) throw e;
      const failed = reasons.findIndex((r) => r?.Code === 'ConditionalCheckFailed');
      if (failed < 0) throw e;
      const done = step.applied[failed];
      if (done !== undefined)
        throw new ConflictError(
          `change ${done.seq + 1} of operation ${operation} is not applying`,
          done.seq,
          {
            cause: e,
          },
        );
      const next = step.begin[failed - step.applied.length] as JournalStep['begin'][number];
      throw new ConflictError(
        `operation ${operation} already journaled change ${next.seq + 1}: another apply of it is running or ran`,
        next.seq,
        { cause: e },
      );
    }
  }

  reverted(operation: string, seq: number, outcome: Outcome): Promise<void> {
    return this.move(operation, seq, ['applying', 'applied', 'reverted'], 'reverted', outcome);
  }

  private async move(
    operation: string,
    seq: number,
    from: readonly EntryState[],
    to: EntryState,
    outcome: Outcome,
  ): Promise<void> {
    const names = from.map((_, i) => `:f${i}`);
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { operation, seq },
          UpdateExpression: 'SET #st = :to, #o = :o, #u = :u',
          ConditionExpression: `#st IN (${names.join(', ')})`,
          ExpressionAttributeNames: { '#st': 'state', '#o': 'outcome', '#u': 'updatedAt' },
          ExpressionAttributeValues: {
            ':to': to,
            ':o': outcome,
            ':u': this.now().toISOString(),
            ...Object.fromEntries(from.map((state, i) => [names[i], state])),
          },
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
      throw new ConflictError(
        `change ${seq + 1} of operation ${operation} is not ${from.join(' or ')}`,
        seq,
        {
          cause: e,
        },
      );
    }
  }

  async entries(operation: string): Promise<JournalEntry[]> {
    checkOperation(operation);
    const entries: JournalEntry[] = [];
    const pages = paginateQuery(
      { client: this.ddb },
      {
        TableName: this.tableName,
        KeyConditionExpression: '#op = :op',
        ExpressionAttributeNames: { '#op': 'operation' },
        ExpressionAttributeValues: { ':op': operation },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) {
      for (const raw of page.Items ?? []) entries.push(parseEntry(raw));
    }
    return entries.sort((a, b) => a.seq - b.seq);
  }
}

function parseEntry(raw: unknown): JournalEntry {
  const item = Item.safeParse(raw);
  const change = item.success ? Change.safeParse(JSON.parse(item.data.change)) : undefined;
  if (!item.success || !change?.success) {
    const where = raw as { operation?: unknown; seq?: unknown };
    // Rollback must not guess: an entry it cannot read stops it, naming the entry.
    throw new CorruptJournalError(String(where.operation), Number(where.seq));
  }
  const { outcome, ...rest } = item.data;
  return {
    ...rest,
    change: change.data,
    prior: JSON.parse(item.data.prior),
    ...(outcome === undefined ? {} : { outcome }),
  };
}

/** A journal entry that is not what the journal writes: rollback stops rather than guess. */
export class CorruptJournalError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    readonly operation: string,
    readonly seq: number,
  ) {
    super(`journal entry ${seq} of operation ${operation} cannot be read`);
    this.name = 'CorruptJournalError';
  }
}
