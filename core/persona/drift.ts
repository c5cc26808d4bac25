// An operator's own change on a host without an agent. The agent finds such a change itself,
// each cycle (persona-agent.sh, `drifted`); a host without one is read by the sampling round
// instead: the agent script's read-only `check` mode runs over the host's transport against the
// assignment the host's agent would have, with the same readers and comparisons (cgroup v1 in
// v2 terms, tc rates, sysctl values with their blanks), and what no longer reads as assigned
// is owed what the persona's `override` says:
//
//   enforced  a switch to the same persona at once: the Delta from what the host reads now,
//             with the switch's journal, Verify and Rollback (decision `restore`);
//   retain    kept, and recorded once (decision `retain`), until the persona's next window
//             edge as it stood when the change was first seen; then restored the same way.
//
// What was seen is kept per host (HOST_PERSONAS_TABLE, sk "drift") so that a retained change is
// recorded once and its edge does not move on, and so that a restore that did not take is not
// started again every round: the same readings wait RESTORE_RETRY_MS before another attempt.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import { isFinished, type Operation } from '../operation/schema.js';
import { TransportError } from '../transport/errors.js';
import type { Transport } from '../transport/transport.js';
import {
  type AgentAssignment,
  AgentReport,
  type AssignedPersonas,
  assignment,
  assignmentText,
} from './agent/assignment.js';
import { agentScript } from './agent/install.js';
import type { CriterionReason, Decision, HostPersonaState } from './schema.js';
import type { StartPersonaSwitch } from './service.js';

/** How long the same readings wait after a restore before another is started. */
export const RESTORE_RETRY_MS = 15 * 60_000;

/** What was seen of one host's drift, kept between rounds. */
export interface DriftRecord {
  /** The assignment's revision the drift was seen against: another revision starts afresh. */
  readonly revision: string;
  /** When the drift was first seen (epoch ms). */
  readonly seenAt: number;
  /** retain: until when it is kept (epoch ms); null: until the assignment changes. */
  readonly until: number | null;
  /** The last restore started for it. */
  readonly restore?: {
    readonly operationId: string;
    readonly at: number;
    readonly attempt: number;
    /** The readings it was started for. */
    readonly readings: string;
  };
}

export interface DriftMemory {
  get(host: string): Promise<DriftRecord | undefined>;
  put(host: string, record: DriftRecord): Promise<void>;
  clear(host: string): Promise<void>;
}

export interface DriftDeps {
  readonly hosts: Pick<HostRegistry, 'list'>;
  /** Hosts whose agent reports for them: it finds their drift itself. */
  readonly agents: { liveHosts(): Promise<readonly string[]> };
  /** What each host's agent would be assigned: the persona its last switch recorded. */
  readonly assigned: AssignedPersonas;
  /** Evaluation's state: a `current` other than the recorded persona is a switch under way. */
  readonly states: { get(host: string): Promise<HostPersonaState | undefined> };
  readonly operations: { get(id: string): Promise<Operation> };
  readonly memory: DriftMemory;
  readonly record: (decision: Decision) => Promise<void>;
  readonly startSwitch: StartPersonaSwitch;
  /** A transport to the host; closed here. */
  transportFor(host: HostRegistration): Promise<Transport>;
  /** Hosts checked at once. Default 4. */
  readonly concurrency?: number;
}

/** One drifted entry as the check reads it: what the host has (`from`), what is assigned (`to`). */
export interface DriftedEntry {
  readonly index: number;
  readonly kind: string;
  readonly target: string;
  readonly from: string;
  readonly to: string;
}

export interface DriftCheck {
  readonly host: string;
  /**
   * unchanged: reads as assigned; restoring: a restore was started (operationId); retained: kept
   * until `until`; waiting: a restore of the same readings was tried less than RESTORE_RETRY_MS
   * ago; busy: a switch or restore of the host is under way; failed: see `error`.
   */
  readonly outcome: 'unchanged' | 'restoring' | 'retained' | 'waiting' | 'busy' | 'failed';
  readonly persona?: string;
  readonly drifted?: number;
  readonly operationId?: string;
  readonly until?: string;
  readonly error?: string;
}

const CheckOutput = z.object({
  outcome: z.enum(['unchanged', 'drifted', 'refused']),
  revision: z.string().max(64),
  detail: z.string().max(600).optional(),
  entries: AgentReport.shape.entries,
});

// The script arrives on standard input, compressed, into a private temporary folder and runs
// from there; the assignment is a variable of its environment, never a word of the command.
// Compressed, it fits the data one SSM command carries (about 13 of 24 KiB), so an EC2 instance
// reached over SSM is checked in one command as a host over SSH is.
const CHECK_COMMAND =
  'd=$(mktemp -d) || exit 70; trap \'rm -rf -- "$d"\' EXIT; gzip -dc >"$d/persona-agent.sh" && sh "$d/persona-agent.sh" check';

let compressed: Buffer | undefined;
/** The agent script as the check sends it. */
export function checkScript(): Buffer {
  compressed ??= gzipSync(agentScript(), { level: 9 });
  return compressed;
}

/** The entries of `expected` that no longer read as assigned on the host. */
export async function readDrift(transport: Transport, expected: AgentAssignment): Promise<DriftedEntry[]> {
  const result = await transport.run(CHECK_COMMAND, {
    stdin: checkScript(),
    env: { PERSONA_ASSIGNMENT: assignmentText(expected, 2) },
    timeoutMs: 30_000,
  });
  let parsed: z.infer<typeof CheckOutput> | undefined;
  try {
    const out = CheckOutput.safeParse(JSON.parse(result.stdout.trim().split('\n').pop() ?? ''));
    parsed = out.success ? out.data : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (result.exitCode !== 0 && parsed.outcome !== 'refused')) {
    throw new TransportError(
      `could not check the persona's values on ${transport.target} (exit ${result.exitCode})`,
      'failed',
      transport.target,
    );
  }
  if (parsed.outcome === 'refused')
    throw new Error(`the host's check refused the assignment: ${parsed.detail ?? 'no reason given'}`);
  if (parsed.revision !== expected.revision)
    throw new Error(`the host checked revision ${parsed.revision}, not ${expected.revision}`);
  return parsed.entries.map((e) => ({
    index: e.index,
    kind: e.kind,
    target: e.target ?? '',
    from: e.from ?? '',
    to: e.to ?? '',
  }));
}

const digest = (...parts: unknown[]) =>
  createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 32);

const reading = (e: DriftedEntry) =>
  `${e.kind} ${e.target} reads ${e.from === '' ? '(nothing readable)' : e.from}, the persona sets ${e.to}`;

function reasons(entries: readonly DriftedEntry[]): CriterionReason[] {
  return entries.slice(0, 20).map((e) => ({
    path: `/parameters/${e.kind}/${e.index}`,
    holds: 'false',
    detail: reading(e),
    values: { target: e.target, reads: e.from === '' ? null : e.from, sets: e.to },
  }));
}

function listed(entries: readonly DriftedEntry[]): string {
  const shown = entries.slice(0, 3).map(reading).join('; ');
  return entries.length > 3 ? `${shown}; and ${entries.length - 3} more` : shown;
}

/**
 * One round: every registered host without a live agent whose recorded persona has host-local
 * parameters is checked, and what drifted is restored or retained as its override says. A host
 * that cannot be read is answered with the reason; the others go on.
 */
export async function checkDrift(deps: DriftDeps, now: Date): Promise<DriftCheck[]> {
  const live = new Set(await deps.agents.liveHosts());
  const hosts: HostRegistration[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.hosts.list({ limit: 100, cursor });
    for (const { registration } of page.items) if (!live.has(registration.name)) hosts.push(registration);
    cursor = page.nextCursor;
  } while (cursor !== undefined);

  const out: DriftCheck[] = [];
  const queue = [...hosts];
  const worker = async () => {
    for (let host = queue.shift(); host !== undefined; host = queue.shift()) {
      try {
        const checked = await checkHost(deps, host, now);
        if (checked !== undefined) out.push(checked);
      } catch (e) {
        out.push({ host: host.name, outcome: 'failed', error: e instanceof Error ? e.message : String(e) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency ?? 4) }, worker));
  return out.sort((a, b) => a.host.localeCompare(b.host));
}

async function checkHost(
  deps: DriftDeps,
  host: HostRegistration,
  now: Date,
): Promise<DriftCheck | undefined> {
  const persona = await deps.assigned.assigned(host.name, now.getTime());
  if (persona === null) return undefined;
  const expected = assignment(host.name, persona);
  if (expected.entries.length === 0) return undefined;
  const base = { host: host.name, persona: persona.name };

  // Evaluation writes the persona it decided before its switch runs, and the switch records it
  // last: until they agree, the host's values are the switch's to set, not drift.
  const state = await deps.states.get(host.name);
  if (state !== undefined && (state.current !== persona.name || state.currentVersion !== persona.version))
    return { ...base, outcome: 'busy' };
  const seen = await deps.memory.get(host.name);
  const mine = seen?.revision === expected.revision ? seen : undefined;
  if (mine?.restore !== undefined) {
    const op = await deps.operations.get(mine.restore.operationId).catch(() => undefined);
    if (op !== undefined && !isFinished(op.status)) return { ...base, outcome: 'busy', operationId: op.id };
  }

  const transport = await deps.transportFor(host);
  let drifted: DriftedEntry[];
  try {
    drifted = await readDrift(transport, expected);
  } finally {
    await transport.close();
  }
  if (drifted.length === 0) {
    if (seen !== undefined) await deps.memory.clear(host.name);
    return { ...base, outcome: 'unchanged' };
  }

  const at = now.getTime();
  const count = drifted.length;
  if (persona.override !== 'enforced') {
    if (mine === undefined) {
      const until = persona.retainUntil == null ? null : persona.retainUntil * 1000;
      await deps.memory.put(host.name, { revision: expected.revision, seenAt: at, until });
      const kept = until === null ? 'until the persona changes' : `until ${new Date(until).toISOString()}`;
      await deps.record({
        host: host.name,
        at,
        action: 'retain',
        from: persona.name,
        to: persona.name,
        mode: 'act',
        summary: `an operator's change to ${count} of ${persona.name}'s values is kept ${kept} (override: retain): ${listed(drifted)}`,
        reasons: reasons(drifted),
      });
      return { ...base, outcome: 'retained', drifted: count, ...untilOf(until) };
    }
    if (mine.until === null || at < mine.until)
      return { ...base, outcome: 'retained', drifted: count, ...untilOf(mine.until) };
  }

  const record: DriftRecord = mine ?? { revision: expected.revision, seenAt: at, until: null };
  const readings = digest(drifted);
  const last = record.restore;
  if (last !== undefined && last.readings === readings && at - last.at < RESTORE_RETRY_MS)
    return { ...base, outcome: 'waiting', drifted: count, operationId: last.operationId };
  const attempt = (last?.attempt ?? 0) + 1;
  const why =
    persona.override === 'enforced'
      ? 'undone (override: enforced)'
      : `kept until the window edge ${new Date(record.until ?? at).toISOString()}, now restored (override: retain)`;
  const decision: Decision = {
    host: host.name,
    at,
    action: 'restore',
    from: persona.name,
    to: persona.name,
    mode: 'act',
    summary: `an operator's change to ${count} of ${persona.name}'s values is ${why}: ${listed(drifted)}`,
    reasons: reasons(drifted),
  };
  const { operationId } = await deps.startSwitch({
    host: host.name,
    to: { name: persona.name, version: persona.version },
    decision,
    // Rounds that saw the same drift start one restore; a later drift, or another attempt, another.
    idempotencyKey: `restore-${digest(host.name, expected.revision, record.seenAt, attempt)}`,
  });
  await deps.memory.put(host.name, { ...record, restore: { operationId, at, attempt, readings } });
  await deps.record(decision);
  return { ...base, outcome: 'restoring', drifted: count, operationId };
}

const untilOf = (until: number | null) => (until === null ? {} : { until: new Date(until).toISOString() });

const DRIFT_SK = 'drift';

const StoredDrift = z.object({
  revision: z.string(),
  seenAt: z.number(),
  until: z.number().nullable(),
  restore: z
    .object({ operationId: z.string(), at: z.number(), attempt: z.number(), readings: z.string() })
    .optional(),
});

/** What was seen of each host's drift, as an item of HOST_PERSONAS_TABLE (sk "drift"). */
export class DynamoDriftMemory implements DriftMemory {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(host: string): Promise<DriftRecord | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { host, sk: DRIFT_SK }, ConsistentRead: true }),
    );
    const parsed = StoredDrift.safeParse(out.Item?.drift);
    // A damaged item is as good as none: the drift is seen afresh.
    if (!parsed.success) return undefined;
    const { restore, ...seen } = parsed.data;
    return restore === undefined ? seen : { ...seen, restore };
  }

  async put(host: string, record: DriftRecord): Promise<void> {
    await this.ddb.send(
      new PutCommand({ TableName: this.tableName, Item: { host, sk: DRIFT_SK, drift: record } }),
    );
  }

  async clear(host: string): Promise<void> {
    await this.ddb.send(new DeleteCommand({ TableName: this.tableName, Key: { host, sk: DRIFT_SK } }));
  }
}
