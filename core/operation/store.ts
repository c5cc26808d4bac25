// Operations in DynamoDB. The id is the idempotency key: starting an operation whose id
// exists returns the existing one instead of starting a second.
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { NotFoundError } from '../errors.js';
import { type Operation, percentOf, type Step, type StepStatus } from './schema.js';

export interface OperationStore {
  /** Creates the operation unless one with its id exists; returns whichever is stored. */
  start(operation: Operation): Promise<{ operation: Operation; created: boolean }>;
  get(id: string): Promise<Operation>;
  step(id: string, name: string, status: StepStatus, now: Date, detail?: string): Promise<Operation>;
  finish(
    id: string,
    outcome:
      | { status: 'SUCCEEDED'; result: Record<string, unknown> }
      | { status: 'FAILED'; error: { code: string; message: string } },
    now: Date,
  ): Promise<Operation>;
}

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
          Item: operation,
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
    return out.Item as Operation;
  }

  // Read-modify-write, conditional on the revision read: a concurrent update makes the write
  // fail and the loop re-reads, so no step update is lost.
  async step(id: string, name: string, status: StepStatus, now: Date, detail?: string): Promise<Operation> {
    for (;;) {
      const op = await this.get(id);
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

  async finish(
    id: string,
    outcome:
      | { status: 'SUCCEEDED'; result: Record<string, unknown> }
      | { status: 'FAILED'; error: { code: string; message: string } },
    now: Date,
  ): Promise<Operation> {
    for (;;) {
      const op = await this.get(id);
      const next: Operation = {
        ...op,
        status: outcome.status,
        percent: outcome.status === 'SUCCEEDED' ? 100 : op.percent,
        steps: op.steps.map((s) => (s.status === 'PENDING' ? { ...s, status: 'SKIPPED' } : s)),
        updatedAt: now.toISOString(),
        revision: op.revision + 1,
        ...('result' in outcome ? { result: outcome.result } : { error: outcome.error }),
      };
      if (await this.replace(op, next)) return next;
    }
  }

  private async replace(current: Operation, next: Operation): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: next,
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
