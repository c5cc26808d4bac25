// What a host's agent applies itself: the host-local parameters (sysctl, cgroup files, tc
// egress rates) of the persona assigned to the host, as a list of typed entries; and what the
// agent reports back after applying them.
//
// The agent is a POSIX shell script, so the assignment travels as lines it can read with
// `read`, not as JSON (docs/format below). Nothing in it is ever run as shell code: the agent
// checks every field against the same grammars as here (persona-agent.sh, `valid_*`), and an
// entry that fails them is refused, not applied.
//
//   persona-assignment 2
//   persona <name or -> <version or 0> <revision>
//   override <retain|enforced> <epoch seconds, 0 for none>   what an operator's change is owed
//   sysctl <key> <value>
//   cgroup <path> <file> <value>
//   tc <interface> <rate in kbit/s>
//   refused <index> <reason>           an entry this side could not write as one line
//   end
//
// Fields are separated by one TAB; the last field takes the rest of the line (a sysctl value
// may hold spaces or tabs). `end` proves the document arrived whole. Format 1 is format 2
// without the override line, for agents installed before it (they keep an operator's change
// until the assignment changes); an agent asks for format 2 with `Accept: text/plain; format=2`.
import { createHash } from 'node:crypto';
import { type DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { LIMIT_FILES } from '../../orchestrator/executors/cgroups.js';
import { compilePersona, nextWindowEdge } from '../evaluate.js';
import type { Persona, PersonaParameters } from '../schema.js';

export const ASSIGNMENT_FORMAT = 'persona-assignment 2';
export const ASSIGNMENT_FORMAT_1 = 'persona-assignment 1';

// The grammars the agent applies (persona-agent.sh keeps the same ones as `case` patterns).
/** Names separated by dots; no "/" (a path in /proc/sys), no leading "-", no "..". */
export const SYSCTL_KEY = /^[a-z0-9_][a-z0-9_-]*(\.[a-z0-9_][a-z0-9_-]*){1,15}$/;
/** Printable words, tabs between the values of a multi-value key; at most 256 characters. */
export const SYSCTL_VALUE = /^[A-Za-z0-9_.:,/+-]([A-Za-z0-9_.:,/+ \t-]{0,254}[A-Za-z0-9_.:,/+-])?$/;
/** "/" or "/"-separated names that are never "." or ".." and never start with "-" or ".". */
export const CGROUP_PATH =
  /^\/([A-Za-z0-9_@][A-Za-z0-9_.@:-]{0,254}(\/[A-Za-z0-9_@][A-Za-z0-9_.@:-]{0,254}){0,15})?$/;
/** The limit files the agent may write; nothing else of a cgroup (not cgroup.procs). */
export const CGROUP_FILES = [
  'cpu.max',
  'cpu.weight',
  'memory.max',
  'memory.high',
  'io.weight',
  'pids.max',
  'cgroup.max.descendants',
  'cgroup.max.depth',
] as const;
export const CGROUP_VALUE = /^[a-z0-9][a-z0-9 ]{0,63}$/;
export const INTERFACE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;

export const AssignmentEntry = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('sysctl'), key: z.string(), value: z.string() }),
  z.strictObject({ kind: z.literal('cgroup'), path: z.string(), file: z.string(), value: z.string() }),
  z.strictObject({
    kind: z.literal('tc'),
    interface: z.string(),
    rateKbit: z.number().int().positive().describe('Egress rate limit (tbf), kbit/s'),
  }),
]);
export type AssignmentEntry = z.infer<typeof AssignmentEntry>;

export const AgentAssignment = z
  .object({
    host: z.string(),
    persona: z.string().nullable().describe('null: no persona with host-local parameters is assigned'),
    version: z.number().int().nonnegative(),
    /** A hash of the entries: the agent applies a revision once. */
    revision: z.string(),
    override: z
      .enum(['retain', 'enforced'])
      .describe(
        "The persona's override: an operator's change to an applied entry is restored at once (enforced) or kept until retainUntil (retain)",
      ),
    retainUntil: z
      .number()
      .int()
      .nonnegative()
      .nullable()
      .describe(
        "Epoch seconds: the persona's next window edge, until which an operator's change seen now is kept; null: kept until the assignment changes",
      ),
    entries: z.array(AssignmentEntry),
  })
  .meta({ id: 'AgentAssignment' });
export type AgentAssignment = z.infer<typeof AgentAssignment>;

/** The host-local entries of a persona's parameters, in the order the agent applies them. */
export function assignmentEntries(parameters: PersonaParameters | undefined): AssignmentEntry[] {
  if (parameters === undefined) return [];
  const entries: AssignmentEntry[] = [];
  for (const key of Object.keys(parameters.sysctl).sort()) {
    entries.push({ kind: 'sysctl', key, value: parameters.sysctl[key] ?? '' });
  }
  for (const limit of parameters.cgroups) {
    for (const [field, spec] of Object.entries(LIMIT_FILES) as [
      keyof typeof LIMIT_FILES,
      { file: string },
    ][]) {
      const value = limit[field];
      if (value === undefined) continue;
      entries.push({
        kind: 'cgroup',
        path: limit.path,
        file: spec.file,
        value: field === 'ioWeight' ? `default ${value}` : String(value),
      });
    }
  }
  for (const b of parameters.bandwidth) {
    entries.push({
      kind: 'tc',
      interface: b.interface,
      rateKbit: Math.max(1, Math.round(b.egressMbps * 1000)),
    });
  }
  return entries;
}

export function assignment(host: string, persona: AssignedPersona | null): AgentAssignment {
  const entries = assignmentEntries(persona?.parameters);
  // The override and its time stay out of the revision: a window edge moving on is not a new
  // assignment to apply.
  const revision = createHash('sha256')
    .update(JSON.stringify({ persona: persona?.name ?? null, version: persona?.version ?? 0, entries }))
    .digest('hex')
    .slice(0, 16);
  return {
    host,
    persona: persona?.name ?? null,
    version: persona?.version ?? 0,
    revision,
    override: persona?.override ?? 'retain',
    retainUntil: persona?.retainUntil ?? null,
    entries,
  };
}

/** The lines of one entry's fields, or why it cannot be one line. */
function fields(entry: AssignmentEntry): string[] | string {
  const f =
    entry.kind === 'sysctl'
      ? [entry.key, entry.value]
      : entry.kind === 'cgroup'
        ? [entry.path, entry.file, entry.value]
        : [entry.interface, String(entry.rateKbit)];
  // A newline would start another entry; a tab in any field but the last would shift the rest.
  if (f.some((v) => /[\n\r\0]/.test(v))) return 'holds a line break or NUL';
  if (f.slice(0, -1).some((v) => v.includes('\t'))) return 'holds a tab in a field other than the last';
  return f;
}

/** The assignment as the agent reads it (the line format above), in format 2 or 1. */
export function assignmentText(a: AgentAssignment, format: 1 | 2 = 2): string {
  const lines = [
    format === 2 ? ASSIGNMENT_FORMAT : ASSIGNMENT_FORMAT_1,
    ['persona', a.persona ?? '-', String(a.version), a.revision].join('\t'),
  ];
  if (format === 2) lines.push(['override', a.override, String(a.retainUntil ?? 0)].join('\t'));
  a.entries.forEach((entry, i) => {
    const f = fields(entry);
    lines.push(typeof f === 'string' ? ['refused', String(i), f].join('\t') : [entry.kind, ...f].join('\t'));
  });
  lines.push('end');
  return `${lines.join('\n')}\n`;
}

/** What the agent reports after an assignment (POST /hosts/{host}/agent/reports). */
export const AgentReport = z
  .strictObject({
    host: z.string().min(1).max(253),
    revision: z.string().regex(/^[0-9a-f]{1,64}$|^-$/),
    persona: z.string().max(128).nullable(),
    version: z.number().int().nonnegative(),
    outcome: z
      .enum(['applied', 'unchanged', 'rolled-back', 'refused', 'failed', 'retained'])
      .describe("retained: an operator's change to applied entries is kept (override: retain)"),
    at: z.iso.datetime(),
    entries: z
      .array(
        z.strictObject({
          index: z.number().int().nonnegative(),
          kind: z.enum(['sysctl', 'cgroup', 'tc', 'unknown']),
          target: z.string().max(600).optional().describe('The key, cgroup file or interface'),
          from: z.string().max(300).optional(),
          to: z.string().max(300).optional(),
          status: z.enum([
            'changed',
            'unchanged',
            'failed',
            'reverted',
            'refused',
            'not-reverted',
            'retained',
          ]),
          detail: z.string().max(600).optional(),
        }),
      )
      .max(1000),
  })
  .meta({ id: 'AgentReport' });
export type AgentReport = z.infer<typeof AgentReport>;

/** A persona as its agent is assigned it: parameters and what an operator's change is owed. */
export interface AssignedPersona {
  readonly name: string;
  readonly version: number;
  readonly parameters: PersonaParameters;
  readonly override?: 'retain' | 'enforced';
  /** Epoch seconds of the persona's next window edge; null or absent when it has none. */
  readonly retainUntil?: number | null;
}

/** The persona a host has now, with its parameters: what its agent is assigned. */
export interface AssignedPersonas {
  /** `now` (epoch ms) places the next window edge. */
  assigned(host: string, now?: number): Promise<AssignedPersona | null>;
}

export interface AgentReports {
  record(report: AgentReport, receivedAt: Date): Promise<void>;
}

export interface AgentAssignmentDeps {
  readonly personas: AssignedPersonas;
  readonly reports: AgentReports;
}

/**
 * The persona a completed switch left on a host: what Record saved (HOST_PERSONAS_TABLE, sk
 * "default", written by the switch's DefaultsStore), null for the host's own parameters.
 */
export interface RecordedPersonas {
  current(host: string): Promise<{ readonly name: string; readonly version: number } | null>;
}

/**
 * Assignments from what the last completed switch recorded, never from the host persona state.
 * Evaluation writes the state before it starts a switch, and a rollback puts it back after: an
 * agent assigned from the state would apply a persona before the switch has (its Baseline
 * would then read the persona's values as the host's default) or one the switch rolled back.
 * The switch applies on a decision, with its journal, Verify and Rollback; the agent, assigned
 * what Record saved, finds nothing to do right after it and only restores what drifted.
 */
export function personaAssignments(
  recorded: RecordedPersonas,
  personas: {
    getVersion(
      name: string,
      version: number,
    ): Promise<{ readonly persona: Persona; readonly version: { readonly version: number } }>;
  },
): AssignedPersonas {
  return {
    async assigned(host, now = Date.now()) {
      const current = await recorded.current(host);
      if (current === null) return null;
      const stored = await personas.getVersion(current.name, current.version);
      // The persona's own schedule edges: at another persona's edge the decision moves the host
      // to that persona, a new assignment, which ends a retained change anyway.
      const edge = nextWindowEdge([compilePersona(stored.persona, stored.version.version)], now);
      return {
        name: stored.persona.metadata.name,
        version: stored.version.version,
        parameters: stored.persona.spec.parameters,
        override: stored.persona.spec.override,
        retainUntil: edge === undefined ? null : Math.ceil(edge / 1000),
      };
    },
  };
}

const RECORDED_SK = 'default';
const RecordedCurrent = z
  .strictObject({ name: z.string().min(1), version: z.number().int().positive() })
  .nullable();

/**
 * The `current` a switch's Record saved, read alone from the default item (the switch's
 * DynamoDefaultsStore writes it as JSON text). Kept here rather than importing the switch, so
 * that the agent's routes do not carry the switch task's dependencies.
 */
export class DynamoRecordedPersonas implements RecordedPersonas {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async current(host: string): Promise<{ readonly name: string; readonly version: number } | null> {
    const out = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { host, sk: RECORDED_SK },
        ProjectionExpression: '#c',
        ExpressionAttributeNames: { '#c': 'current' },
        ConsistentRead: true,
      }),
    );
    const text = out.Item?.current;
    if (typeof text !== 'string') return null;
    let parsed: ReturnType<typeof RecordedCurrent.safeParse> | undefined;
    try {
      parsed = RecordedCurrent.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success)
      throw new Error(`the persona recorded for host ${host} is not a persona name and version`);
    return parsed.data;
  }
}

export const AGENT_REPORT_RETENTION_DAYS = 30;

/**
 * Agent reports in the host persona table, beside the host's state and decisions: the latest
 * under sk "agent" (what the host's agent last did) and each under
 * sk "agent#<received ISO time>#<revision>", expiring after AGENT_REPORT_RETENTION_DAYS.
 */
export class DynamoAgentReports implements AgentReports {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async record(report: AgentReport, receivedAt: Date): Promise<void> {
    const received = receivedAt.toISOString();
    const expiresAt = Math.floor(receivedAt.getTime() / 1000) + AGENT_REPORT_RETENTION_DAYS * 86_400;
    const item = { ...report, receivedAt: received };
    await this.ddb.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: this.tableName,
              Item: { ...item, host: report.host, sk: `agent#${received}#${report.revision}`, expiresAt },
            },
          },
          { Put: { TableName: this.tableName, Item: { ...item, host: report.host, sk: 'agent' } } },
        ],
      }),
    );
  }
}
