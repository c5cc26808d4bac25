// Each host's persona in HOST_PERSONAS_TABLE: one state item (sk "state") saying which persona
// the host has, since when, and a manual activation in force; and the decisions that led there
// (sk "decision#<ISO at>#<random>"), each expiring after its retention.
//
// The state is written only on top of the state the writer read (its `since` and `manual.at`):
// two evaluations of one host, or an evaluation racing a manual activation, cannot both win,
// and the loser reads again instead of overwriting a switch it did not see.
import { randomBytes } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { ConflictError } from '../errors.js';
import { HOST_PERSONAS_TABLE } from '../storage/definitions.js';
import { decodeCursor, nextCursor } from '../storage/pagination.js';
import type { CriterionReason, Decision, DecisionAction, HostPersonaState } from './schema.js';

const STATE_SK = 'state';
const DECISION_PREFIX = 'decision#';
/** How long decisions are kept when the caller does not say. */
export const DEFAULT_DECISION_RETENTION_DAYS = 30;
export const MAX_HISTORY_PAGE = 100;

/** Decisions that move a host to another persona (or its default). */
const MOVES: ReadonlySet<Decision['action']> = new Set(['switch', 'revert', 'manual']);
// A decision is one item; its reasons are what the evaluator saw and could be long. Past this
// many bytes of reasons the tail is dropped (and said so) rather than the write failing at
// DynamoDB's 400 KB item limit.
const MAX_REASONS_BYTES = 256 * 1024;

/** The stored state is not the one the writer read: someone else switched or activated first. */
export class HostPersonaConflictError extends ConflictError {
  constructor(
    message: string,
    readonly host: string,
    options?: ErrorOptions,
  ) {
    super(message, undefined, options);
    this.name = 'HostPersonaConflictError';
  }
}

const historyListing = (host: string) => `hosts/${host}/persona/decisions`;
const decisionStart = (host: string) =>
  z.strictObject({
    host: z.literal(host),
    sk: z.string().regex(/^decision#\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#[0-9a-f]{16}$/),
  });

const nowSeconds = () => Math.floor(Date.now() / 1000);

export class HostPersonaStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(host: string): Promise<HostPersonaState | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { host, sk: STATE_SK }, ConsistentRead: true }),
    );
    return out.Item === undefined ? undefined : toState(out.Item);
  }

  /** Conditional: succeeds only if the stored state's `since` (and manual.at) still equals `expected`'s (or none is stored when expected is undefined); else throws a named conflict error. */
  async save(state: HostPersonaState, expected: HostPersonaState | undefined): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    let condition = 'attribute_not_exists(#host)';
    if (expected === undefined) names['#host'] = 'host';
    else {
      names['#since'] = 'since';
      names['#manual'] = 'manual';
      values[':since'] = expected.since;
      condition = '#since = :since';
      if (expected.manual === undefined) condition += ' AND attribute_not_exists(#manual)';
      else {
        names['#at'] = 'at';
        values[':manualAt'] = expected.manual.at;
        condition += ' AND #manual.#at = :manualAt';
      }
    }
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: toItem(state),
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
        }),
      );
    } catch (cause) {
      if ((cause as { name?: string }).name !== 'ConditionalCheckFailedException') throw cause;
      throw new HostPersonaConflictError(
        expected === undefined
          ? `host ${state.host} already has a persona state; read it and write on top of it`
          : `the persona state of host ${state.host} changed since it was read (another switch or activation came first)`,
        state.host,
        { cause },
      );
    }
  }

  /** Records one decision; it expires `retentionDays` after its time (default 30 days). */
  async record(decision: Decision, options: { retentionDays?: number } = {}): Promise<void> {
    const days = options.retentionDays ?? DEFAULT_DECISION_RETENTION_DAYS;
    if (!Number.isFinite(decision.at) || !Number.isFinite(days) || days <= 0) {
      throw new RangeError(
        `a decision needs a finite time and a positive retention, not ${decision.at}, ${days}`,
      );
    }
    const at = new Date(decision.at).toISOString();
    await this.ddb.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...decisionItem(decision),
          host: decision.host,
          // The random tail keeps two decisions of the same millisecond apart.
          sk: `${DECISION_PREFIX}${at}#${randomBytes(8).toString('hex')}`,
          expiresAt: Math.floor(decision.at / 1000) + Math.round(days * 86_400),
        },
      }),
    );
  }

  /** Decisions of one host, newest first, a page at a time; expired ones are skipped. */
  async history(
    host: string,
    options: { limit?: number; cursor?: string } = {},
  ): Promise<{ decisions: Decision[]; cursor?: string }> {
    const limit = Math.min(Math.max(Math.trunc(options.limit ?? 20), 1), MAX_HISTORY_PAGE);
    const listing = historyListing(host);
    let start = decodeCursor(options.cursor, listing, decisionStart(host)) as
      | Record<string, unknown>
      | undefined;
    const decisions: Decision[] = [];
    // DynamoDB applies Limit before the filter, so expired items that TTL has not removed yet
    // can make a read come back short; read on (a few times) until the page is full.
    for (let read = 0; read < 5 && decisions.length < limit; read++) {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#host = :host AND begins_with(#sk, :prefix)',
          FilterExpression: '#expiresAt > :now',
          ExpressionAttributeNames: { '#host': 'host', '#sk': 'sk', '#expiresAt': 'expiresAt' },
          ExpressionAttributeValues: { ':host': host, ':prefix': DECISION_PREFIX, ':now': nowSeconds() },
          ScanIndexForward: false,
          Limit: limit - decisions.length,
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      decisions.push(...(out.Items ?? []).map(toDecision));
      start = out.LastEvaluatedKey;
      if (start === undefined) break;
    }
    const { nextCursor: cursor } = nextCursor(listing, start);
    return cursor === undefined ? { decisions } : { decisions, cursor };
  }

  /** The latest decision of a host that has not expired, if any. */
  async latest(host: string): Promise<Decision | undefined> {
    return (await this.history(host, { limit: 1 })).decisions[0];
  }

  /**
   * The latest decision that moved the host (a switch, a revert or a manual activation): why it
   * has the persona it has, however many decisions to stay came since. Read a page at a time,
   * as far back as `pages` pages of the history.
   */
  async lastChange(host: string, pages = 5): Promise<Decision | undefined> {
    let cursor: string | undefined;
    for (let page = 0; page < pages; page++) {
      const out = await this.history(host, { limit: MAX_HISTORY_PAGE, ...(cursor ? { cursor } : {}) });
      const found = out.decisions.find((d) => MOVES.has(d.action));
      if (found !== undefined || out.cursor === undefined) return found;
      cursor = out.cursor;
    }
    return undefined;
  }

  /**
   * Hosts whose state names `persona` as current, at most `limit` of them. Read from a sparse
   * index, so a switch a moment old may not show yet.
   */
  async hostsWith(persona: string, limit = 10): Promise<string[]> {
    const index = HOST_PERSONAS_TABLE.globalSecondaryIndexes[0];
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: index.indexName,
        KeyConditionExpression: '#p = :p',
        ExpressionAttributeNames: { '#p': index.partitionKey.name },
        ExpressionAttributeValues: { ':p': persona },
        Limit: limit,
      }),
    );
    return (out.Items ?? []).map((i) => String(i.host));
  }
}

function toItem(state: HostPersonaState): Record<string, unknown> {
  return {
    host: state.host,
    sk: STATE_SK,
    current: state.current,
    // The index key: absent when the host has its own parameters (no persona), so it is not listed.
    ...(state.current === null ? {} : { currentPersona: state.current }),
    ...(state.currentVersion === undefined ? {} : { currentVersion: state.currentVersion }),
    since: state.since,
    ...(state.falseSince === undefined ? {} : { falseSince: state.falseSince }),
    ...(state.manual === undefined
      ? {}
      : { manual: { persona: state.manual.persona, at: state.manual.at, until: state.manual.until } }),
  };
}

function toState(item: Record<string, unknown>): HostPersonaState {
  const manual = item.manual as { persona?: string | null; at: number; until?: number | null } | undefined;
  return {
    host: String(item.host),
    current: typeof item.current === 'string' ? item.current : null,
    ...(typeof item.currentVersion === 'number' ? { currentVersion: item.currentVersion } : {}),
    since: Number(item.since),
    ...(typeof item.falseSince === 'number' ? { falseSince: item.falseSince } : {}),
    ...(manual === undefined
      ? {}
      : {
          manual: {
            persona: typeof manual.persona === 'string' ? manual.persona : null,
            at: Number(manual.at),
            until: typeof manual.until === 'number' ? manual.until : null,
          },
        }),
  };
}

function decisionItem(decision: Decision): Record<string, unknown> {
  let reasons = decision.reasons;
  let dropped = 0;
  while (reasons.length > 0 && Buffer.byteLength(JSON.stringify(reasons), 'utf8') > MAX_REASONS_BYTES) {
    const keep = Math.floor(reasons.length / 2);
    dropped += reasons.length - keep;
    reasons = reasons.slice(0, keep);
  }
  return {
    at: decision.at,
    action: decision.action,
    from: decision.from,
    to: decision.to,
    mode: decision.mode,
    summary: dropped === 0 ? decision.summary : `${decision.summary} (${dropped} reasons not kept: too long)`,
    reasons: reasons.map((r) => ({
      path: r.path,
      holds: r.holds,
      detail: r.detail,
      ...(r.values === undefined ? {} : { values: r.values }),
    })),
  };
}

function toDecision(item: Record<string, unknown>): Decision {
  return {
    host: String(item.host),
    at: Number(item.at),
    action: item.action as DecisionAction,
    from: typeof item.from === 'string' ? item.from : null,
    to: typeof item.to === 'string' ? item.to : null,
    mode: item.mode === 'report' ? 'report' : 'act',
    summary: String(item.summary ?? ''),
    reasons: ((item.reasons as CriterionReason[] | undefined) ?? []).map((r) => ({
      path: String(r.path),
      holds: r.holds,
      detail: String(r.detail ?? ''),
      ...(r.values === undefined ? {} : { values: r.values }),
    })),
  };
}

const isoOf = (t: number) => new Date(t).toISOString();

/** A decision as the API answers it: times as ISO 8601. */
export function decisionRecord(d: Decision) {
  return { ...d, at: isoOf(d.at), reasons: [...d.reasons] };
}

/**
 * What GET /hosts/{host}/persona answers: the state (a manual activation only while in force),
 * the latest decision as `why`, and a page of history.
 */
export function hostPersonaView(
  host: string,
  state: HostPersonaState | undefined,
  why: Decision | undefined,
  history: { decisions: readonly Decision[]; cursor?: string },
  now: number,
  latest?: Decision,
  applied?: { readonly name: string; readonly version: number } | null,
) {
  const manual = state?.manual;
  const inForce = manual !== undefined && (manual.until === null || manual.until > now);
  // Evaluation writes the persona it decided before the switch runs, and the switch records what
  // it applied last: until they agree, the host still has what the last switch left.
  const decided = state?.current ?? null;
  const switching =
    applied !== undefined &&
    ((applied?.name ?? null) !== decided ||
      (applied !== null && state?.currentVersion !== undefined && applied.version !== state.currentVersion));
  return {
    host,
    current: decided,
    ...(state?.currentVersion === undefined ? {} : { currentVersion: state.currentVersion }),
    ...(applied === undefined
      ? {}
      : {
          applied: applied === null ? null : { persona: applied.name, version: applied.version },
          ...(switching ? { switching: true } : {}),
        }),
    ...(state === undefined ? {} : { since: isoOf(state.since) }),
    ...(state?.falseSince === undefined ? {} : { falseSince: isoOf(state.falseSince) }),
    ...(inForce && manual
      ? {
          manual: {
            persona: manual.persona,
            at: isoOf(manual.at),
            until: manual.until === null ? null : isoOf(manual.until),
          },
        }
      : {}),
    ...(why === undefined ? {} : { why: decisionRecord(why) }),
    // The latest decision too, when it is another one (a stay, a hold, a cool-down).
    ...(latest === undefined || latest === why || why === undefined
      ? {}
      : { latest: decisionRecord(latest) }),
    history: {
      items: history.decisions.map(decisionRecord),
      ...(history.cursor === undefined ? {} : { nextCursor: history.cursor }),
    },
  };
}
