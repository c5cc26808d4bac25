// The personas table keeps several kinds of item side by side (personas, morph policies), each
// kind's heads under its own `entity` in the table's entity index: one listing per kind, paged
// by the one cursor helper (pagination.ts).
import { type DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type * as z from 'zod';
import { PERSONAS_TABLE } from './definitions.js';
import { decodeCursor, nextCursor, type StartKey } from './pagination.js';

export interface EntityListing<S extends z.ZodType<StartKey>> {
  readonly tableName: string;
  /** The entity index's partition value of this kind. */
  readonly entity: string;
  /** What the cursor names, e.g. `personas`. */
  readonly listing: string;
  /** The start key a cursor of this listing may carry. */
  readonly start: S;
}

/** One page of a kind's items in name order; a cursor of another listing is refused (400). */
export async function entityPage<T, S extends z.ZodType<StartKey>>(
  ddb: DynamoDBDocumentClient,
  of: EntityListing<S>,
  limit: number,
  cursor: string | undefined,
): Promise<{ items: T[]; nextCursor?: string }> {
  const index = PERSONAS_TABLE.globalSecondaryIndexes[0];
  const out = await ddb.send(
    new QueryCommand({
      TableName: of.tableName,
      IndexName: index.indexName,
      KeyConditionExpression: '#entity = :entity',
      ExpressionAttributeNames: { '#entity': index.partitionKey.name },
      ExpressionAttributeValues: { ':entity': of.entity },
      Limit: limit,
      ExclusiveStartKey: decodeCursor(cursor, of.listing, of.start),
    }),
  );
  return { items: (out.Items ?? []) as T[], ...nextCursor(of.listing, out.LastEvaluatedKey) };
}

/** Every item of a kind, page after page of `pageSize`. */
export async function allEntities<T, S extends z.ZodType<StartKey>>(
  ddb: DynamoDBDocumentClient,
  of: EntityListing<S>,
  pageSize: number,
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const out = await entityPage<T, S>(ddb, of, pageSize, cursor);
    all.push(...out.items);
    cursor = out.nextCursor;
  } while (cursor !== undefined);
  return all;
}
