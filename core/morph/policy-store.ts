// Morph policies in PERSONAS_TABLE, beside the personas: one item per policy under the key
// `morph-policy#<name>` (version 0), which no persona name can take ("#" is not a name
// character), carrying `entity = "morph-policy"` so that the table's byEntity index lists the
// policies apart from the personas (which carry "persona"). A policy is a small document kept
// whole in its item, so evaluation reads every policy in one query, as it reads personas.
//
// Policies are not versioned: a PUT replaces the document. Each item carries a revision and
// the hash of its canonical document, so an equal PUT writes nothing and a write never lands
// on top of one it did not read.
import { createHash } from 'node:crypto';
import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ConflictError, NotFoundError, PersonaError, TooLargeError } from '../errors.js';
import { sortObjectKeys } from '../profile/collections.js';
import { allEntities, entityPage } from '../storage/entity-index.js';
import { type MorphPolicy, type MorphPolicyRecord, validateMorphPolicy } from './policy.js';

const ENTITY = 'morph-policy';
const PREFIX = `${ENTITY}#`;
const LISTING = 'morph-policies';
export const MAX_POLICY_PAGE = 100;
/** Bytes of a stored policy (canonical JSON), well within DynamoDB's 400 KB item. */
export const MAX_STORED_POLICY_BYTES = 128 * 1024;

export interface StoredMorphPolicy {
  readonly record: MorphPolicyRecord;
  readonly policy: MorphPolicy;
}

/** A stored policy whose document fails its recorded hash or no longer parses. */
export class CorruptMorphPolicyError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    message: string,
    readonly policy: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CorruptMorphPolicyError';
  }
}

export interface MorphPolicyStore {
  /** Writes the policy under its name; an equal document writes nothing (`changed` false). */
  put(policy: MorphPolicy): Promise<StoredMorphPolicy & { created: boolean; changed: boolean }>;
  get(name: string): Promise<StoredMorphPolicy>;
  list(page?: { limit?: number; cursor?: string | undefined }): Promise<{
    items: readonly (MorphPolicyRecord & { readonly target: string })[];
    nextCursor?: string;
  }>;
  /** Every policy with its document, in name order: what evaluation reads. */
  loadAll(): Promise<StoredMorphPolicy[]>;
  delete(name: string): Promise<void>;
}

interface Item {
  name: string;
  version: 0;
  entity: typeof ENTITY;
  policy: string;
  target: string;
  hash: string;
  revision: number;
  createdAt: string;
  updatedAt: string;
  body: string;
}

const HeadStart = z.strictObject({
  entity: z.literal(ENTITY),
  name: z
    .string()
    .startsWith(PREFIX)
    .max(PREFIX.length + 63),
  version: z.literal(0),
});

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

/** The stored form: defaults filled, keys sorted, so that equal policies are equal bytes. */
export const serializeMorphPolicy = (policy: MorphPolicy): string => JSON.stringify(sortObjectKeys(policy));

export class DynamoMorphPolicyStore implements MorphPolicyStore {
  private readonly now: () => Date;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: { readonly now?: () => Date } = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  async put(input: MorphPolicy): Promise<StoredMorphPolicy & { created: boolean; changed: boolean }> {
    const policy = validateMorphPolicy(input);
    const name = policy.metadata.name;
    const body = serializeMorphPolicy(policy);
    const bytes = Buffer.byteLength(body, 'utf8');
    if (bytes > MAX_STORED_POLICY_BYTES)
      throw new TooLargeError(
        `morph policy ${name} is ${bytes} bytes once its defaults are filled; the limit is ${MAX_STORED_POLICY_BYTES}`,
        MAX_STORED_POLICY_BYTES,
      );
    const hash = sha256(body);
    const before = await this.item(name);
    if (before?.hash === hash)
      return { record: recordOf(before), policy: read(before), created: false, changed: false };
    const at = this.now().toISOString();
    const item: Item = {
      name: PREFIX + name,
      version: 0,
      entity: ENTITY,
      policy: name,
      target: policy.spec.target,
      hash,
      revision: (before?.revision ?? 0) + 1,
      createdAt: before?.createdAt ?? at,
      updatedAt: at,
      body,
    };
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ...(before === undefined
            ? {
                ConditionExpression: 'attribute_not_exists(#name)',
                ExpressionAttributeNames: { '#name': 'name' },
              }
            : {
                ConditionExpression: '#revision = :seen',
                ExpressionAttributeNames: { '#revision': 'revision' },
                ExpressionAttributeValues: { ':seen': before.revision },
              }),
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      throw new ConflictError(
        `morph policy ${name} was written by another request at the same time`,
        undefined,
        {
          cause,
        },
      );
    }
    return { record: recordOf(item), policy, created: before === undefined, changed: true };
  }

  async get(name: string): Promise<StoredMorphPolicy> {
    const item = await this.item(name);
    if (item === undefined) throw new NotFoundError(`morph policy ${name} does not exist`, name);
    return { record: recordOf(item), policy: read(item) };
  }

  async list(page: { limit?: number; cursor?: string | undefined } = {}) {
    const limit = Math.min(Math.max(Math.trunc(page.limit ?? 50), 1), MAX_POLICY_PAGE);
    const out = await entityPage<Item, typeof HeadStart>(this.ddb, this.listing, limit, page.cursor);
    return {
      items: out.items.map((i) => ({ ...recordOf(i), target: i.target })),
      ...(out.nextCursor === undefined ? {} : { nextCursor: out.nextCursor }),
    };
  }

  async loadAll(): Promise<StoredMorphPolicy[]> {
    const items = await allEntities<Item, typeof HeadStart>(this.ddb, this.listing, MAX_POLICY_PAGE);
    return items.map((i) => ({ record: recordOf(i), policy: read(i) }));
  }

  async delete(name: string): Promise<void> {
    try {
      await this.ddb.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { name: PREFIX + name, version: 0 },
          ConditionExpression: 'attribute_exists(#name)',
          ExpressionAttributeNames: { '#name': 'name' },
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      throw new NotFoundError(`morph policy ${name} does not exist`, name, { cause });
    }
  }

  private async item(name: string): Promise<Item | undefined> {
    const out = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { name: PREFIX + name, version: 0 },
        ConsistentRead: true,
      }),
    );
    return out.Item as Item | undefined;
  }

  private get listing() {
    return { tableName: this.tableName, entity: ENTITY, listing: LISTING, start: HeadStart };
  }
}

const recordOf = (i: Item): MorphPolicyRecord => ({
  name: i.policy,
  hash: i.hash,
  revision: i.revision,
  createdAt: i.createdAt,
  updatedAt: i.updatedAt,
});

/** The document of an item, checked against its hash and the schema: storage is data too. */
function read(i: Item): MorphPolicy {
  if (typeof i.body !== 'string' || sha256(i.body) !== i.hash)
    throw new CorruptMorphPolicyError(`morph policy ${i.policy} does not match its recorded hash`, i.policy);
  try {
    return validateMorphPolicy(JSON.parse(i.body), { source: `stored morph policy ${i.policy}` });
  } catch (cause) {
    throw new CorruptMorphPolicyError(`morph policy ${i.policy} as stored is no longer valid`, i.policy, {
      cause,
    });
  }
}
