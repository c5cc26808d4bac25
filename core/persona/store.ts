// Personas with history in PERSONAS_TABLE: one head item per persona (version 0) and one
// immutable item per version (1, 2, ...). A persona is a few kilobytes, so its document is kept
// in the item (no S3 body as profiles need): the version item holds its version's document and
// the head holds the latest one, so that evaluation reads every persona in one query.
//
// A version is written in one transaction with the head, only if the head still names the
// version the writer read (optimistic locking): a stale write changes nothing. Documents are
// stored in canonical form (defaults filled, keys sorted) with their hash, checked on every read.
import { createHash } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import {
  ConflictError,
  InvalidInputError,
  type Issue,
  NotFoundError,
  PersonaError,
  PreconditionRequiredError,
  TooLargeError,
} from '../errors.js';
import { sortObjectKeys } from '../profile/collections.js';
import { allEntities, entityPage } from '../storage/entity-index.js';
import { decodeCursor, nextCursor } from '../storage/pagination.js';
import { HostSelector, type Persona, PersonaMetadata } from './schema.js';
import type { HostPersonaStore } from './state.js';
import { canonicalPersona, serializePersona, validatePersona } from './validate.js';

const HEAD_VERSION = 0;
const ENTITY = 'persona';
export const MAX_PERSONA_PAGE = 100;
/**
 * Bytes of a stored document (canonical JSON). DynamoDB refuses items over 400 KB; a document
 * read within PERSONA_LIMITS can grow a little when its defaults are filled, never this much.
 */
export const MAX_STORED_PERSONA_BYTES = 300 * 1024;
// A transaction takes at most 100 items: the head and 99 versions.
const TRANSACTION_VERSIONS = 99;

const personaName = PersonaMetadata.shape.name;

/** One immutable version of a persona (its document is answered beside it). */
export const PersonaVersion = z
  .object({
    name: z.string(),
    version: z.number().int().positive(),
    /** sha256 of the canonical document: equal hashes mean equal personas. */
    hash: z.string(),
    sizeBytes: z.number().int(),
    createdAt: z.iso.datetime(),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .meta({ id: 'PersonaVersion' });
export type PersonaVersion = z.infer<typeof PersonaVersion>;

/** One per persona: its latest version, and what evaluation orders and selects by. */
export const PersonaHead = z
  .object({
    name: z.string(),
    latest: z.number().int().positive(),
    hash: z.string(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    priority: z.number().int(),
    default: z.boolean(),
    mode: z.enum(['act', 'report']),
    hosts: HostSelector,
  })
  .meta({ id: 'PersonaHead' });
export type PersonaHead = z.infer<typeof PersonaHead>;

export interface VersionedPersona {
  readonly version: PersonaVersion;
  readonly persona: Persona;
}

export interface PersonaWriteResult {
  readonly version: PersonaVersion;
  /** False when the document equals the latest version and nothing was written. */
  readonly created: boolean;
  /** What was accepted but looks wrong (another default for the same hosts). */
  readonly warnings: readonly Issue[];
}

export interface PersonaPage<T> {
  readonly items: readonly T[];
  readonly nextCursor?: string;
}

/** A stored persona version whose document fails its recorded hash or does not parse. */
export class CorruptPersonaError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    message: string,
    readonly persona: string,
    readonly version: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CorruptPersonaError';
  }
}

const HEADS_LISTING = 'personas';
const HeadStart = z.strictObject({
  entity: z.literal(ENTITY),
  name: personaName,
  version: z.literal(HEAD_VERSION),
});
const versionsListing = (name: string) => `personas/${name}/versions`;
const versionStart = (name: string) =>
  z.strictObject({ name: z.literal(name), version: z.number().int().positive() });

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
const pageSize = (limit: number | undefined) =>
  Math.min(Math.max(Math.trunc(limit ?? 50), 1), MAX_PERSONA_PAGE);
/** Equal for selectors that pick the same hosts however they are written. */
const selectorKey = (hosts: Persona['spec']['hosts']) =>
  JSON.stringify(
    sortObjectKeys({ ...hosts, ...(hosts.names ? { names: [...new Set(hosts.names)].sort() } : {}) }),
  );

export interface PersonaStoreOptions {
  /** Host states, to refuse deleting a persona a host has now. Without it, delete does not check. */
  readonly hostPersonas?: HostPersonaStore;
  readonly now?: () => Date;
}

export class PersonaStore {
  private readonly now: () => Date;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: PersonaStoreOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Creates a persona at version 1. Creating it again with the same document answers the
   * existing version (a retried request); with another document it is a conflict.
   */
  async create(input: Persona): Promise<PersonaWriteResult> {
    const persona = validatePersona(input);
    const name = persona.metadata.name;
    const body = storedBody(persona);
    const head = await this.headItem(name);
    if (head !== undefined) {
      if (head.hash === sha256(body)) return this.unchanged(head, persona);
      throw new ConflictError(
        `persona ${name} already exists (latest version ${head.latest}); write a new version with PUT /personas/${name}`,
        head.latest,
      );
    }
    try {
      return await this.write(persona, body, undefined);
    } catch (e) {
      // Two creators raced; the loser may still have sent the same document.
      if (e instanceof ConflictError) {
        const now = await this.headItem(name);
        if (now !== undefined && now.hash === sha256(body)) return this.unchanged(now, persona);
      }
      throw e;
    }
  }

  /**
   * Writes the next version of `name`. `expectedVersion` is the version the caller read (0: it
   * believes the persona does not exist). A stale expectation is a conflict and writes nothing;
   * a document equal to the latest version writes nothing and answers the latest.
   */
  async put(
    name: string,
    input: Persona,
    options: { readonly expectedVersion: number | undefined },
  ): Promise<PersonaWriteResult> {
    const persona = validatePersona(input);
    if (persona.metadata.name !== name) {
      throw new InvalidInputError(`metadata.name must be ${name}, the persona being written`, [
        {
          path: 'metadata.name',
          message: `expected "${name}" (the name in the path), got "${persona.metadata.name}"`,
        },
      ]);
    }
    const expected = options.expectedVersion;
    if (expected === undefined) {
      throw new PreconditionRequiredError(
        `say which version of persona ${name} this replaces (If-Match: "<version>", or "0" for a new persona)`,
      );
    }
    const body = storedBody(persona);
    const head = await this.headItem(name);
    const current = head?.latest ?? 0;
    // Unchanged, or a retry of the write that made the latest version: nothing to do.
    if (
      head !== undefined &&
      head.hash === sha256(body) &&
      (current === expected || current === expected + 1)
    ) {
      return this.unchanged(head, persona);
    }
    if (current !== expected) {
      throw new ConflictError(
        head === undefined
          ? `persona ${name} does not exist; it cannot be at version ${expected}`
          : `persona ${name} is at version ${current}, not ${expected}`,
        current,
      );
    }
    try {
      return await this.write(persona, body, head);
    } catch (e) {
      // Concurrent copies of one request race for the same version: the losers find their very
      // document written and answer as a retry after the fact would.
      if (!(e instanceof ConflictError)) throw e;
      const now = await this.headItem(name);
      if (now !== undefined && now.latest === current + 1 && now.hash === sha256(body)) {
        return this.unchanged(now, persona);
      }
      throw e;
    }
  }

  /** The latest version of a persona and its document. */
  async get(name: string): Promise<VersionedPersona> {
    const head = await this.headItem(name);
    if (head === undefined) throw new NotFoundError(`persona ${name} does not exist`, name);
    return { version: versionOf(head, head.latest), persona: readBody(head, name, head.latest) };
  }

  async getVersion(name: string, version: number): Promise<VersionedPersona> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { name, version }, ConsistentRead: true }),
    );
    if (out.Item === undefined) {
      const head = await this.headItem(name);
      throw new NotFoundError(
        head === undefined
          ? `persona ${name} does not exist`
          : `persona ${name} has no version ${version} (latest is ${head.latest})`,
        name,
      );
    }
    const item = out.Item as StoredVersion;
    return { version: versionOf(item, item.version), persona: readBody(item, name, version) };
  }

  /** Personas by name, a page at a time. */
  async list(page: { limit?: number; cursor?: string | undefined } = {}): Promise<PersonaPage<PersonaHead>> {
    const out = await entityPage<StoredHead, typeof HeadStart>(
      this.ddb,
      this.heads,
      pageSize(page.limit),
      page.cursor,
    );
    return {
      items: out.items.map(toHead),
      ...(out.nextCursor === undefined ? {} : { nextCursor: out.nextCursor }),
    };
  }

  /** Every persona's latest version with its document, in name order: what evaluation reads. */
  async loadAll(): Promise<VersionedPersona[]> {
    const heads = await allEntities<StoredHead, typeof HeadStart>(this.ddb, this.heads, MAX_PERSONA_PAGE);
    return heads.map((head) => ({
      version: versionOf(head, head.latest),
      persona: readBody(head, head.name, head.latest),
    }));
  }

  /** The versions of a persona, newest first. */
  async versions(
    name: string,
    page: { limit?: number; cursor?: string | undefined } = {},
  ): Promise<PersonaPage<PersonaVersion>> {
    const head = await this.headItem(name);
    if (head === undefined) throw new NotFoundError(`persona ${name} does not exist`, name);
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#name = :name AND #version > :head',
        ExpressionAttributeNames: { '#name': 'name', '#version': 'version' },
        ExpressionAttributeValues: { ':name': name, ':head': HEAD_VERSION },
        ScanIndexForward: false,
        Limit: pageSize(page.limit),
        ExclusiveStartKey: decodeCursor(page.cursor, versionsListing(name), versionStart(name)),
        ConsistentRead: true,
      }),
    );
    return {
      items: (out.Items ?? []).map((i) => versionOf(i as StoredVersion, (i as StoredVersion).version)),
      ...nextCursor(versionsListing(name), out.LastEvaluatedKey),
    };
  }

  /**
   * Deletes a persona: its head and every version. Refused while a host has it (its state
   * names it as current), and, with `expectedVersion`, unless that is still the latest. The
   * host check reads an index that lags a switch by a moment.
   */
  async delete(
    name: string,
    options: { readonly expectedVersion?: number | undefined } = {},
  ): Promise<{ name: string; versions: number }> {
    const head = await this.headItem(name);
    if (head === undefined) throw new NotFoundError(`persona ${name} does not exist`, name);
    if (options.expectedVersion !== undefined && options.expectedVersion !== head.latest) {
      throw new ConflictError(
        `persona ${name} is at version ${head.latest}, not ${options.expectedVersion}`,
        head.latest,
      );
    }
    const holders = (await this.options.hostPersonas?.hostsWith(name, 6)) ?? [];
    if (holders.length > 0) {
      const shown = holders.slice(0, 5).join(', ');
      throw new ConflictError(
        `persona ${name} is the current persona of host ${shown}${holders.length > 5 ? ' and more' : ''}; switch ${holders.length > 1 ? 'them' : 'it'} to another persona first`,
        head.latest,
      );
    }
    const versions: number[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#name = :name AND #version > :head',
          ExpressionAttributeNames: { '#name': 'name', '#version': 'version' },
          ExpressionAttributeValues: { ':name': name, ':head': HEAD_VERSION },
          ProjectionExpression: '#version',
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      versions.push(...(out.Items ?? []).map((i) => Number(i.version)));
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    // Oldest first, the head last: a delete cut short leaves the persona readable at its latest
    // version, and deleting it again finishes the job.
    versions.sort((a, b) => a - b);
    const deleteVersion = (version: number) => ({
      Delete: { TableName: this.tableName, Key: { name, version } },
    });
    while (versions.length > TRANSACTION_VERSIONS) {
      const batch = versions.splice(0, Math.min(100, versions.length - TRANSACTION_VERSIONS));
      await this.ddb.send(new TransactWriteCommand({ TransactItems: batch.map(deleteVersion) }));
    }
    try {
      await this.ddb.send(
        new TransactWriteCommand({
          TransactItems: [
            ...versions.map(deleteVersion),
            {
              Delete: {
                TableName: this.tableName,
                Key: { name, version: HEAD_VERSION },
                ConditionExpression: 'latest = :latest',
                ExpressionAttributeValues: { ':latest': head.latest },
              },
            },
          ],
        }),
      );
    } catch (cause) {
      if (!(cause instanceof TransactionCanceledException)) throw cause;
      const now = await this.headItem(name);
      throw new ConflictError(
        now === undefined
          ? `persona ${name} was deleted by another request`
          : `persona ${name} got version ${now.latest} while it was being deleted; nothing of that version was removed`,
        now?.latest,
        { cause },
      );
    }
    return { name, versions: head.latest };
  }

  private async write(
    persona: Persona,
    body: string,
    head: StoredHead | undefined,
  ): Promise<PersonaWriteResult> {
    const name = persona.metadata.name;
    const version = (head?.latest ?? 0) + 1;
    const at = this.now().toISOString();
    const record: StoredVersion = {
      name,
      version,
      hash: sha256(body),
      sizeBytes: Buffer.byteLength(body, 'utf8'),
      createdAt: at,
      body,
      ...describe(persona),
    };
    const newHead: StoredHead = {
      ...record,
      version: HEAD_VERSION,
      entity: ENTITY,
      latest: version,
      createdAt: head?.createdAt ?? at,
      updatedAt: at,
      priority: persona.spec.priority,
      default: persona.spec.default,
      mode: persona.spec.mode,
      hosts: persona.spec.hosts,
    };
    try {
      await this.ddb.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: newHead,
                ...(head === undefined
                  ? {
                      ConditionExpression: 'attribute_not_exists(#name)',
                      ExpressionAttributeNames: { '#name': 'name' },
                    }
                  : {
                      ConditionExpression: 'latest = :expected',
                      ExpressionAttributeValues: { ':expected': head.latest },
                    }),
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: record,
                ConditionExpression: 'attribute_not_exists(#name)',
                ExpressionAttributeNames: { '#name': 'name' },
              },
            },
          ],
        }),
      );
    } catch (cause) {
      if (cause instanceof TransactionCanceledException) {
        const now = await this.headItem(name);
        throw new ConflictError(
          now === undefined
            ? `persona ${name} does not exist, so there is no version ${head?.latest ?? 0} to build on`
            : `persona ${name} is at version ${now.latest}, not ${head?.latest ?? 0}`,
          now?.latest,
          { cause },
        );
      }
      throw cause;
    }
    return { version: versionOf(record, version), created: true, warnings: await this.warnings(persona) };
  }

  private async unchanged(head: StoredHead, persona: Persona): Promise<PersonaWriteResult> {
    return { version: versionOf(head, head.latest), created: false, warnings: await this.warnings(persona) };
  }

  /**
   * Another default persona for exactly the same hosts is a warning, not an error: selectors by
   * label overlap in ways a write cannot see whole (a host's labels change after the fact), and
   * evaluation settles it the same way for every host, by priority and then name. Refusing the
   * write would only make an operator delete one default before adding its replacement.
   */
  private async warnings(persona: Persona): Promise<Issue[]> {
    if (!persona.spec.default) return [];
    const mine = selectorKey(persona.spec.hosts);
    const heads = await allEntities<StoredHead, typeof HeadStart>(this.ddb, this.heads, MAX_PERSONA_PAGE);
    const others = heads
      .filter((h) => h.name !== persona.metadata.name && h.default && selectorKey(h.hosts) === mine)
      .map((h) => h.name);
    if (others.length === 0) return [];
    return [
      {
        path: 'spec.default',
        message: `persona ${others.join(', ')} is also the default for the same hosts; evaluation takes the one of lowest priority (then name)`,
      },
    ];
  }

  private async headItem(name: string): Promise<StoredHead | undefined> {
    const out = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { name, version: HEAD_VERSION },
        ConsistentRead: true,
      }),
    );
    return out.Item as StoredHead | undefined;
  }

  private get heads() {
    return { tableName: this.tableName, entity: ENTITY, listing: HEADS_LISTING, start: HeadStart };
  }
}

interface StoredVersion {
  name: string;
  version: number;
  hash: string;
  sizeBytes: number;
  createdAt: string;
  body: string;
  description?: string;
  labels?: Record<string, string>;
}

interface StoredHead extends StoredVersion {
  entity: string;
  latest: number;
  updatedAt: string;
  priority: number;
  default: boolean;
  mode: 'act' | 'report';
  hosts: Persona['spec']['hosts'];
}

function storedBody(persona: Persona): string {
  const body = serializePersona(persona);
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > MAX_STORED_PERSONA_BYTES) {
    throw new TooLargeError(
      `persona ${persona.metadata.name} is ${bytes} bytes once its defaults are filled; the limit is ${MAX_STORED_PERSONA_BYTES}`,
      MAX_STORED_PERSONA_BYTES,
    );
  }
  return body;
}

function describe(persona: Persona): Pick<StoredVersion, 'description' | 'labels'> {
  const { description, labels } = persona.metadata;
  return {
    ...(description === undefined ? {} : { description }),
    ...(labels === undefined ? {} : { labels }),
  };
}

function versionOf(item: StoredVersion, version: number): PersonaVersion {
  return {
    name: item.name,
    version,
    hash: item.hash,
    sizeBytes: item.sizeBytes,
    // A head's createdAt is the persona's; its latest version was written at updatedAt.
    createdAt: 'latest' in item ? (item as StoredHead).updatedAt : item.createdAt,
    ...(item.description === undefined ? {} : { description: item.description }),
    ...(item.labels === undefined ? {} : { labels: item.labels }),
  };
}

function toHead(item: StoredHead): PersonaHead {
  return {
    name: item.name,
    latest: item.latest,
    hash: item.hash,
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
    ...(item.description === undefined ? {} : { description: item.description }),
    ...(item.labels === undefined ? {} : { labels: item.labels }),
    priority: item.priority,
    default: item.default,
    mode: item.mode,
    hosts: item.hosts,
  };
}

/** A stored document, checked against the hash recorded when it was written. */
function readBody(item: StoredVersion, name: string, version: number): Persona {
  const damaged = (what: string, cause?: unknown) =>
    new CorruptPersonaError(`persona ${name} version ${version} is damaged: ${what}`, name, version, {
      cause,
    });
  if (typeof item.body !== 'string') throw damaged('its document is missing');
  const actual = sha256(item.body);
  if (actual !== item.hash) throw damaged(`its document hashes to ${actual}, not the recorded ${item.hash}`);
  try {
    return canonicalPersona(JSON.parse(item.body) as Persona);
  } catch (cause) {
    throw damaged('its document is not JSON', cause);
  }
}
