// Agent credentials: each persona-agent holds a token of its own, issued at install and scoped
// to its host. The token is a public id and a secret; the table keeps only the SHA-256 of the
// secret. The secret is 32 random bytes, so a fast hash is enough: a slow one (scrypt) guards
// guessable passwords, and nobody guesses 256 bits. Every check reads the table (strongly
// consistent, no cache here), so a revocation holds from the next request on.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  paginateScan,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ForbiddenError, UnauthorizedError } from '../../errors.js';
import { AGENTS_TABLE } from '../../storage/definitions.js';

/** `agt_` and 16 base64url characters (12 random bytes): the public half, the table's key. */
const ID = /^agt_[A-Za-z0-9_-]{16}$/;
/** `<id>.<secret>`, the secret 32 random bytes in base64url (43 characters). */
const TOKEN = /^(agt_[A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;

export interface AgentPrincipal {
  readonly principal: 'agent';
  readonly host: string;
  /** The credential's id. */
  readonly id: string;
}

export interface AgentCredentialRecord {
  readonly id: string;
  readonly host: string;
  readonly createdAt: string;
  readonly revokedAt?: string;
}

export interface AgentCredentials {
  /** A new credential for `host`; the token is answered once and never stored. */
  issue(host: string, now: Date): Promise<{ readonly id: string; readonly token: string }>;
  /** The host and id the token stands for, or UnauthorizedError saying nothing of why. */
  verify(token: string, now: Date): Promise<AgentPrincipal>;
  /** Revokes every live credential of `host` but `keep`; answers the ids it revoked. */
  revoke(host: string, now: Date, options?: { readonly keep?: string }): Promise<string[]>;
  list(host: string): Promise<AgentCredentialRecord[]>;
  /** The hosts that hold a live credential: whose agents a restarted runtime reaches back to. */
  liveHosts(): Promise<string[]>;
}

const sha256 = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();
// Compared against when the id is unknown, so that an unknown id costs what a wrong secret does.
const NO_HASH = sha256('persona-agent: no such credential');

export function isAgentCredentialId(value: string): boolean {
  return ID.test(value);
}

export class DynamoAgentCredentials implements AgentCredentials {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async issue(host: string, now: Date): Promise<{ id: string; token: string }> {
    const id = `agt_${randomBytes(12).toString('base64url')}`;
    const secret = randomBytes(32).toString('base64url');
    await this.ddb.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { id, host, secretHash: sha256(secret).toString('hex'), createdAt: now.toISOString() },
        ConditionExpression: 'attribute_not_exists(id)',
      }),
    );
    return { id, token: `${id}.${secret}` };
  }

  async verify(token: string, _now: Date): Promise<AgentPrincipal> {
    const match = TOKEN.exec(token);
    if (!match) throw new UnauthorizedError();
    const [, id = '', secret = ''] = match;
    const { Item } = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { id }, ConsistentRead: true }),
    );
    const stored =
      typeof Item?.secretHash === 'string' && /^[0-9a-f]{64}$/.test(Item.secretHash)
        ? Buffer.from(Item.secretHash, 'hex')
        : NO_HASH;
    const equal = timingSafeEqual(sha256(secret), stored);
    if (!equal || Item === undefined || Item.revokedAt !== undefined || typeof Item.host !== 'string') {
      throw new UnauthorizedError();
    }
    return { principal: 'agent', host: Item.host, id };
  }

  async revoke(host: string, now: Date, options: { readonly keep?: string } = {}): Promise<string[]> {
    const revoked: string[] = [];
    for (const record of await this.list(host)) {
      if (record.revokedAt !== undefined || record.id === options.keep) continue;
      try {
        await this.ddb.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { id: record.id },
            UpdateExpression: 'SET revokedAt = :at',
            ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(revokedAt)',
            ExpressionAttributeValues: { ':at': now.toISOString() },
          }),
        );
        revoked.push(record.id);
      } catch (cause) {
        // Revoked by someone else meanwhile: it is revoked, which is what was asked.
        if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      }
    }
    return revoked;
  }

  async list(host: string): Promise<AgentCredentialRecord[]> {
    const out: AgentCredentialRecord[] = [];
    // The index is eventually consistent: a credential issued a moment ago may be missing here
    // (and so escape a revocation made in the same instant); verify reads the table itself.
    const pages = paginateQuery(
      { client: this.ddb },
      {
        TableName: this.tableName,
        IndexName: AGENTS_TABLE.globalSecondaryIndexes[0].indexName,
        KeyConditionExpression: 'host = :h',
        ExpressionAttributeValues: { ':h': host },
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        out.push({
          id: String(item.id),
          host: String(item.host),
          createdAt: String(item.createdAt),
          ...(typeof item.revokedAt === 'string' ? { revokedAt: item.revokedAt } : {}),
        });
      }
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async liveHosts(): Promise<string[]> {
    const hosts = new Set<string>();
    const pages = paginateScan(
      { client: this.ddb },
      {
        TableName: this.tableName,
        ProjectionExpression: 'host',
        FilterExpression: 'attribute_not_exists(revokedAt)',
      },
    );
    for await (const page of pages) for (const item of page.Items ?? []) hosts.add(String(item.host));
    return [...hosts].sort();
  }
}

/**
 * The agent behind an `Authorization: Bearer <token>` header: what the API Gateway authoriser
 * and the embedded runtime both decide with. Anything but one well-formed bearer token of a
 * live credential is UnauthorizedError.
 */
export async function authenticateAgent(
  credentials: AgentCredentials,
  authorization: string | undefined,
  now: Date,
): Promise<AgentPrincipal> {
  const match = /^Bearer ([A-Za-z0-9_.-]{1,128})$/.exec(authorization ?? '');
  if (!match?.[1]) throw new UnauthorizedError('an agent credential is required (Authorization: Bearer …)');
  return credentials.verify(match[1], now);
}

/** Refuses an agent acting for a host other than its own. */
export function requireOwnHost(principal: { readonly host: string }, host: string, field: string): void {
  if (principal.host !== host) {
    throw new ForbiddenError(
      `this agent's credential is for host ${principal.host}, not for ${field} ${host}`,
    );
  }
}
