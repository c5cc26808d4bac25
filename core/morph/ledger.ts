// What policy evaluation needs to know of a host's operations, read cheaply every minute:
//
// - its last morph (when it started, toward which target, under which operation): one small
//   item per host in OPERATIONS_TABLE under `morph-latest#<host>`, written by startMorph as it
//   records the operation, whatever started it (the API or a policy). Operation ids are
//   [A-Za-z0-9_-] only, so no operation can take that key; the item carries no `listing`, so
//   GET /operations never lists it.
// - whether a morph or a persona switch of the host is under way: asked only when a policy
//   has decided to start a morph (rarely), by reading the operations created within
//   UNDER_WAY_HORIZON_MS, newest first. Older ones that never ended are the abandoned-operation
//   sweeper's to end, not a reason to hold a host for ever.
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { isFinished, type Operation } from '../operation/schema.js';
import type { MorphTrigger } from './start.js';

/**
 * How far back operations are read for one under way. A morph's or a switch's longest path is
 * its task time-outs with their retries (statemachines/*.asl.json), a few hours at worst.
 */
export const UNDER_WAY_HORIZON_MS = 24 * 3600_000;

export interface LastMorph {
  readonly host: string;
  readonly operationId: string;
  readonly target: string;
  /** Epoch ms it started. */
  readonly at: number;
  readonly trigger: MorphTrigger;
  readonly policy?: string;
}

export interface MorphLedger {
  /** Records that a morph of the host started (only a morph newer than the one recorded). */
  note(morph: LastMorph): Promise<void>;
  last(host: string): Promise<LastMorph | undefined>;
  /** A morph or persona switch of the host not ended, created since `sinceMs`, if any. */
  underWay(host: string, sinceMs: number): Promise<Pick<Operation, 'id' | 'kind' | 'status'> | undefined>;
}

const key = (host: string) => `morph-latest#${host}`;

export class DynamoMorphLedger implements MorphLedger {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async note(morph: LastMorph): Promise<void> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { id: key(morph.host), ...morph },
          // Two starts racing: the later morph is the last one, whichever writes second.
          ConditionExpression: 'attribute_not_exists(#at) OR #at <= :at',
          ExpressionAttributeNames: { '#at': 'at' },
          ExpressionAttributeValues: { ':at': morph.at },
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
    }
  }

  async last(host: string): Promise<LastMorph | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { id: key(host) }, ConsistentRead: true }),
    );
    const item = out.Item;
    if (item === undefined || typeof item.operationId !== 'string' || typeof item.at !== 'number')
      return undefined;
    const { id: _id, ...morph } = item;
    return morph as LastMorph;
  }

  async underWay(host: string, sinceMs: number) {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'ByCreation',
          KeyConditionExpression: '#l = :l AND #c >= :since',
          FilterExpression:
            '#host = :host AND #status IN (:pending, :running) AND #kind IN (:morph, :activate)',
          ExpressionAttributeNames: {
            '#l': 'listing',
            '#c': 'createdAt',
            '#host': 'host',
            '#status': 'status',
            '#kind': 'kind',
          },
          ExpressionAttributeValues: {
            ':l': 'operations',
            ':since': new Date(sinceMs).toISOString(),
            ':host': host,
            ':pending': 'PENDING',
            ':running': 'RUNNING',
            ':morph': 'morph',
            ':activate': 'activate',
          },
          ProjectionExpression: 'id, #kind, #status',
          ScanIndexForward: false,
          ExclusiveStartKey: start,
        }),
      );
      const found = (out.Items ?? []) as Pick<Operation, 'id' | 'kind' | 'status'>[];
      const first = found.find((o) => !isFinished(o.status));
      if (first !== undefined) return first;
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return undefined;
  }
}
