// Registered hosts in DynamoDB. Registering the same host twice with the same settings is a
// no-op (a retried request); with other settings it is a conflict, not a silent overwrite.
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ConflictError, NotFoundError } from '../errors.js';
import { sortObjectKeys } from '../profile/collections.js';
import { decodeCursor, nextCursor } from '../storage/pagination.js';
import { type HostRecord, HostRegistration } from './schema.js';

const HOSTS_LISTING = 'hosts';
const HostStart = z.strictObject({ name: HostRegistration.shape.name });

export interface HostRegistry {
  register(registration: HostRegistration, now: Date): Promise<{ host: HostRecord; created: boolean }>;
  /** Registers the host, or replaces its settings: what `persona capture` does with its flags. */
  save(registration: HostRegistration, now: Date): Promise<HostRecord>;
  get(name: string): Promise<HostRecord>;
  list(page: {
    limit: number;
    cursor?: string | undefined;
  }): Promise<{ items: HostRecord[]; nextCursor?: string }>;
  recordCapture(name: string, capture: NonNullable<HostRecord['lastCapture']>): Promise<void>;
}

const same = (a: unknown, b: unknown) =>
  JSON.stringify(sortObjectKeys(a)) === JSON.stringify(sortObjectKeys(b));

export class DynamoHostRegistry implements HostRegistry {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async register(registration: HostRegistration, now: Date): Promise<{ host: HostRecord; created: boolean }> {
    const host: HostRecord = { registration, createdAt: now.toISOString(), updatedAt: now.toISOString() };
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { name: registration.name, ...host },
          ConditionExpression: 'attribute_not_exists(#n)',
          ExpressionAttributeNames: { '#n': 'name' },
        }),
      );
      return { host, created: true };
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      const existing = await this.get(registration.name);
      if (same(existing.registration, registration)) return { host: existing, created: false };
      throw new ConflictError(
        `host ${registration.name} is already registered with other settings`,
        undefined,
        {
          cause,
        },
      );
    }
  }

  async save(registration: HostRegistration, now: Date): Promise<HostRecord> {
    const out = await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { name: registration.name },
        UpdateExpression: 'SET registration = :r, updatedAt = :u, createdAt = if_not_exists(createdAt, :u)',
        ExpressionAttributeValues: { ':r': registration, ':u': now.toISOString() },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const { name: _n, ...record } = out.Attributes ?? {};
    return record as HostRecord;
  }

  async get(name: string): Promise<HostRecord> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { name }, ConsistentRead: true }),
    );
    if (!out.Item) throw new NotFoundError(`host ${name} is not registered`, name);
    const { name: _n, ...record } = out.Item;
    return record as HostRecord;
  }

  async list(page: {
    limit: number;
    cursor?: string | undefined;
  }): Promise<{ items: HostRecord[]; nextCursor?: string }> {
    const out = await this.ddb.send(
      new ScanCommand({
        TableName: this.tableName,
        Limit: page.limit,
        ExclusiveStartKey: decodeCursor(page.cursor, HOSTS_LISTING, HostStart),
        ConsistentRead: true,
      }),
    );
    const items = (out.Items ?? []).map(({ name: _n, ...r }) => r as HostRecord);
    return { items, ...nextCursor(HOSTS_LISTING, out.LastEvaluatedKey) };
  }

  async recordCapture(name: string, capture: NonNullable<HostRecord['lastCapture']>): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { name },
        UpdateExpression: 'SET lastCapture = :c, updatedAt = :u',
        ConditionExpression: 'attribute_exists(#n)',
        ExpressionAttributeNames: { '#n': 'name' },
        ExpressionAttributeValues: { ':c': capture, ':u': capture.at },
      }),
    );
  }
}
