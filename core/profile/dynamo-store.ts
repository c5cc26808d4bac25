// Profiles in DynamoDB (heads and version records) with documents in S3.
//
// Documents go to S3 rather than into the item because a large host's profile can pass
// DynamoDB's 400 KB item limit. The body is written first under a content-addressed key; the
// version record that points at it is written second, in a transaction with the head. A
// failure between the two leaves an unreferenced body, never a record without its body.
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ConflictError, NotFoundError } from '../errors.js';
import { PROFILES_TABLE } from '../storage/definitions.js';
import { decodeCursor, nextCursor } from '../storage/pagination.js';
import { ProfileMetadata } from './schema.js';
import type { Page, PageRequest, ProfileHead, ProfileRepository, ProfileVersion } from './store.js';

const HEAD_VERSION = 0;
const ENTITY = 'profile';

// Start keys each listing can produce: the sparse index's key plus the table's (heads), or a
// version of the one profile being listed. Anything else in a cursor is forged or foreign.
const HEADS_LISTING = 'profiles';
const HeadStart = z.strictObject({
  entity: z.literal(ENTITY),
  name: ProfileMetadata.shape.name,
  version: z.literal(HEAD_VERSION),
});
const versionsListing = (name: string) => `profiles/${name}/versions`;
const versionStart = (name: string) =>
  z.strictObject({ name: z.literal(name), version: z.number().int().positive() });

export interface DynamoProfileStoreConfig {
  readonly tableName: string;
  readonly bucketName: string;
}

export class DynamoProfileStore implements ProfileRepository {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly s3: S3Client,
    private readonly config: DynamoProfileStoreConfig,
  ) {}

  async getHead(name: string): Promise<ProfileHead | undefined> {
    const out = await this.ddb.send(
      new GetCommand({
        TableName: this.config.tableName,
        Key: { name, version: HEAD_VERSION },
        ConsistentRead: true,
      }),
    );
    return out.Item ? toHead(out.Item) : undefined;
  }

  async getVersion(name: string, version: number): Promise<ProfileVersion | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.config.tableName, Key: { name, version }, ConsistentRead: true }),
    );
    return out.Item ? toVersion(out.Item) : undefined;
  }

  async listHeads(page: PageRequest): Promise<Page<ProfileHead>> {
    const index = PROFILES_TABLE.globalSecondaryIndexes[0];
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.config.tableName,
        IndexName: index.indexName,
        KeyConditionExpression: '#entity = :entity',
        ExpressionAttributeNames: { '#entity': index.partitionKey.name },
        ExpressionAttributeValues: { ':entity': ENTITY },
        Limit: page.limit,
        ExclusiveStartKey: decodeCursor(page.cursor, HEADS_LISTING, HeadStart),
      }),
    );
    return { items: (out.Items ?? []).map(toHead), ...nextCursor(HEADS_LISTING, out.LastEvaluatedKey) };
  }

  async listVersions(name: string, page: PageRequest): Promise<Page<ProfileVersion>> {
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.config.tableName,
        KeyConditionExpression: '#name = :name AND #version > :head',
        ExpressionAttributeNames: { '#name': 'name', '#version': 'version' },
        ExpressionAttributeValues: { ':name': name, ':head': HEAD_VERSION },
        ScanIndexForward: false,
        Limit: page.limit,
        ExclusiveStartKey: decodeCursor(page.cursor, versionsListing(name), versionStart(name)),
        ConsistentRead: true,
      }),
    );
    return {
      items: (out.Items ?? []).map(toVersion),
      ...nextCursor(versionsListing(name), out.LastEvaluatedKey),
    };
  }

  async writeVersion(record: ProfileVersion, expectedLatest: number): Promise<void> {
    const head = {
      latest: record.version,
      hash: record.hash,
      updatedAt: record.createdAt,
      description: record.description,
      labels: record.labels,
    };
    const headWrite =
      expectedLatest === 0
        ? {
            Put: {
              TableName: this.config.tableName,
              Item: {
                name: record.name,
                version: HEAD_VERSION,
                entity: ENTITY,
                createdAt: record.createdAt,
                ...head,
              },
              ConditionExpression: 'attribute_not_exists(#name)',
              ExpressionAttributeNames: { '#name': 'name' },
            },
          }
        : {
            Update: {
              TableName: this.config.tableName,
              Key: { name: record.name, version: HEAD_VERSION },
              UpdateExpression: updateExpression(head),
              ConditionExpression: 'latest = :expected',
              ExpressionAttributeNames: { '#hash': 'hash' },
              ExpressionAttributeValues: {
                ':latest': head.latest,
                ':hash': head.hash,
                ':updatedAt': head.updatedAt,
                ':expected': expectedLatest,
                ...(head.description === undefined ? {} : { ':description': head.description }),
                ...(head.labels === undefined ? {} : { ':labels': head.labels }),
              },
            },
          };
    try {
      await this.ddb.send(
        new TransactWriteCommand({
          TransactItems: [
            headWrite,
            {
              Put: {
                TableName: this.config.tableName,
                Item: { ...record },
                ConditionExpression: 'attribute_not_exists(#name)',
                ExpressionAttributeNames: { '#name': 'name' },
              },
            },
          ],
        }),
      );
    } catch (cause) {
      if (cause instanceof TransactionCanceledException) {
        const current = await this.getHead(record.name);
        throw new ConflictError(
          current === undefined
            ? `profile ${record.name} does not exist, so there is no version ${expectedLatest} to build on`
            : `profile ${record.name} is at version ${current.latest}, not ${expectedLatest}`,
          current?.latest,
          { cause },
        );
      }
      throw cause;
    }
  }

  async putBody(key: string, body: string): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.config.bucketName,
        Key: key,
        Body: body,
        ContentType: 'application/json',
      }),
    );
  }

  async getBody(key: string): Promise<string> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.config.bucketName, Key: key }));
      if (!out.Body) throw new NotFoundError(`profile document ${key} is empty`, key);
      return await out.Body.transformToString('utf8');
    } catch (cause) {
      if ((cause as { name?: string }).name === 'NoSuchKey') {
        throw new NotFoundError(`profile document ${key} is missing from the bucket`, key, { cause });
      }
      throw cause;
    }
  }
}

/** Description and labels follow the latest version: set when present, removed when not. */
function updateExpression(head: { description?: string | undefined; labels?: unknown }): string {
  const set = ['latest = :latest', '#hash = :hash', 'updatedAt = :updatedAt'];
  const remove: string[] = [];
  (head.description === undefined ? remove : set).push(
    head.description === undefined ? 'description' : 'description = :description',
  );
  (head.labels === undefined ? remove : set).push(head.labels === undefined ? 'labels' : 'labels = :labels');
  return `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`;
}

function toHead(item: Record<string, unknown>): ProfileHead {
  const { name, latest, hash, createdAt, updatedAt, description, labels } = item as ProfileHead;
  return {
    name,
    latest,
    hash,
    createdAt,
    updatedAt,
    ...(description === undefined ? {} : { description }),
    ...(labels === undefined ? {} : { labels }),
  };
}

function toVersion(item: Record<string, unknown>): ProfileVersion {
  const { name, version, hash, specHash, bodyKey, sizeBytes, createdAt, description, labels, summary } =
    item as ProfileVersion;
  return {
    name,
    version,
    hash,
    specHash,
    bodyKey,
    sizeBytes,
    createdAt,
    summary,
    ...(description === undefined ? {} : { description }),
    ...(labels === undefined ? {} : { labels }),
  };
}
