// Operations in DynamoDB. Starting an operation whose id exists returns the existing one
// instead of starting a second (ids of requests with an Idempotency-Key are derived from the
// scoped key: idempotency.ts). Every transition is a write conditional on the revision read, so
// concurrent retries cannot lose an update, and an operation that has ended stays as it ended:
// a task delivered again, or one that outlived its time-out, changes nothing.
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { NotFoundError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../storage/pagination.js';
import {
  isFinished,
  type Operation,
  type OperationOutcome,
  percentOf,
  type Step,
  type StepStatus,
} from './schema.js';

export interface OperationStore {
  /** Creates the operation unless one with its id exists; returns whichever is stored. */
  start(operation: Operation): Promise<{ operation: Operation; created: boolean }>;
  get(id: string): Promise<Operation>;
  /** Moves one step; an operation that has ended is returned unchanged. */
  step(id: string, name: string, status: StepStatus, now: Date, detail?: string): Promise<Operation>;
  /**
   * Ends the operation: pending steps are skipped and, on failure, a step still running is marked
   * failed with the reason (it was cut short: a time-out, a crash). The first end stands; a later
   * call returns the operation as it ended.
   */
  finish(id: string, outcome: OperationOutcome, now: Date): Promise<Operation>;
  /**
   * Asks a running operation to stop; its workflow rolls back at its next check. Returns the
   * operation; one that has ended is returned as it ended.
   */
  requestCancel(id: string, now: Date): Promise<Operation>;
  /** Operations, newest first, a page at a time; the filters apply within each page read. */
  list(query: OperationQuery): Promise<{ items: Operation[]; nextCursor?: string }>;
}

export interface OperationQuery {
  readonly limit: number;
  readonly cursor?: string | undefined;
  readonly kind?: Operation['kind'] | undefined;
  readonly status?: Operation['status'] | undefined;
  readonly host?: string | undefined;
}

/** The attribute every operation item carries for the ByCreation index. */
const LISTING = { listing: 'operations' } as const;
const ListingKey = z.strictObject({
  id: z.string().min(1).max(128),
  listing: z.literal('operations'),
  createdAt: z.string().max(40),
});

const asOperation = (item: Record<string, unknown>): Operation => {
  const { listing: _l, ...op } = item;
  return op as Operation;
};

export class DynamoOperationStore implements OperationStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async start(operation: Operation): Promise<{ operation: Operation; created: boolean }> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...operation, ...LISTING },
          ConditionExpression: 'attribute_not_exists(id)',
        }),
      );
      return { operation, created: true };
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      return { operation: await this.get(operation.id), created: false };
    }
  }

  async get(id: string): Promise<Operation> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { id }, ConsistentRead: true }),
    );
    if (!out.Item) throw new NotFoundError(`operation ${id} does not exist`, id);
    return asOperation(out.Item);
  }

  async list(query: OperationQuery): Promise<{ items: Operation[]; nextCursor?: string }> {
    const start = decodeCursor(query.cursor, 'operations', ListingKey);
    const filters: string[] = [];
    const names: Record<string, string> = { '#l': 'listing' };
    const values: Record<string, unknown> = { ':l': 'operations' };
    for (const field of ['kind', 'status', 'host'] as const) {
      if (query[field] === undefined) continue;
      filters.push(`#${field} = :${field}`);
      names[`#${field}`] = field;
      values[`:${field}`] = query[field];
    }
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'ByCreation',
        KeyConditionExpression: '#l = :l',
        ScanIndexForward: false,
        Limit: query.limit,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    const last = out.LastEvaluatedKey as Record<string, string> | undefined;
    return {
      items: (out.Items ?? []).map(asOperation),
      ...(last ? { nextCursor: encodeCursor('operations', last) } : {}),
    };
  }

  // Read-modify-write, conditional on the revision read: a concurrent update makes the write
  // fail and the loop re-reads, so no step update is lost.
  async step(id: string, name: string, status: StepStatus, now: Date, detail?: string): Promise<Operation> {
    for (;;) {
      const op = await this.get(id);
      if (isFinished(op.status)) return op;
      const at = now.toISOString();
      const steps: Step[] = op.steps.map((s) =>
        s.name !== name
          ? s
          : {
              ...s,
              status,
              ...(status === 'RUNNING' ? { startedAt: at } : { endedAt: at }),
              ...(detail === undefined ? {} : { detail }),
            },
      );
      const next: Operation = {
        ...op,
        steps,
        percent: percentOf(steps),
        status: op.status === 'PENDING' ? 'RUNNING' : op.status,
        updatedAt: at,
        revision: op.revision + 1,
      };
      if (await this.replace(op, next)) return next;
    }
  }

  async finish(id: string, outcome: OperationOutcome, now: Date): Promise<Operation> {
    for (;;) {
      const op = await this.get(id);
      if (isFinished(op.status)) return op;
      const at = now.toISOString();
      const steps: Step[] = op.steps.map((s) => {
        if (s.status === 'PENDING') return { ...s, status: 'SKIPPED' };
        if (s.status === 'RUNNING' && outcome.status !== 'SUCCEEDED')
          return { ...s, status: 'FAILED', endedAt: at, detail: outcome.error.message };
        return s;
      });
      const next: Operation = {
        ...op,
        status: outcome.status,
        steps,
        percent: outcome.status === 'SUCCEEDED' ? 100 : op.percent,
        updatedAt: at,
        revision: op.revision + 1,
        ...(outcome.result === undefined ? {} : { result: outcome.result }),
        ...(outcome.status === 'SUCCEEDED' ? {} : { error: outcome.error }),
      };
      if (await this.replace(op, next)) return next;
    }
  }

  async requestCancel(id: string, now: Date): Promise<Operation> {
    for (;;) {
      const op = await this.get(id);
      if (isFinished(op.status) || op.cancelRequestedAt !== undefined) return op;
      const at = now.toISOString();
      const next: Operation = { ...op, cancelRequestedAt: at, updatedAt: at, revision: op.revision + 1 };
      if (await this.replace(op, next)) return next;
    }
  }

  private async replace(current: Operation, next: Operation): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...next, ...LISTING },
          ConditionExpression: 'revision = :seen',
          ExpressionAttributeValues: { ':seen': current.revision },
        }),
      );
      return true;
    } catch (cause) {
      if ((cause as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw cause;
    }
  }
}
