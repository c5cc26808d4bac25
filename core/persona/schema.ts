// The Persona document: a named set of operational parameters and the criteria under which a
// host takes them on. Like the Profile, this zod schema is the one source of the types, the
// JSON Schema for persona files (schema/persona.schema.json) and the OpenAPI document.
//
// Criteria are a small language of their own (documented in core/persona/CRITERIA.md):
//   all / any / not          combine criteria
//   schedule                 time windows in an IANA time zone, with holiday exclusions
//   metric                   a host metric compared with a threshold, held for a duration
//   signal                   an external signal posted to the API (POST /signals)
//   predicted                a forecast of a host metric (the forecaster fills it in)
// Every criterion evaluates to true, false or unknown (a metric with no samples, a signal
// never posted, no forecast yet): a persona is taken on only when its criteria are true, and
// left only when they are false, so missing data never flips a host back and forth.
import * as z from 'zod';
import { API_VERSION, CgroupLimit, Threshold } from '../profile/schema.js';

export { API_VERSION };
export const PERSONA_KIND = 'Persona';

const text = z.string().min(1);
const name = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, 'expected lower-case letters, digits, ".", "_" or "-"');
const labels = z.record(z.string().min(1).max(128), z.string().max(256));
const seconds = z.number().int().nonnegative();
const comparison = z.enum(['>', '>=', '<', '<=', '==', '!=']);
const clock = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'expected a time of day "HH:MM" (00:00 to 24:00)');
const day = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/, 'expected a date "YYYY-MM-DD"');
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const weekday = z.enum(WEEKDAYS);

/** Whether `zone` is an IANA time zone this runtime knows (its tz database). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const timeZone = z
  .string()
  .min(1)
  .refine(isTimeZone, 'expected an IANA time zone such as "Europe/Paris" or "UTC"')
  .describe('IANA time zone the windows are read in');

/**
 * One window of a schedule, read in its schedule's time zone. A window holds from `start` to
 * `end` on each matching day; an `end` before `start` runs past midnight into the next day.
 * Every field left out matches everything.
 */
export const TimeWindow = z
  .strictObject({
    start: clock.default('00:00'),
    end: clock.default('24:00'),
    days: z.array(weekday).min(1).optional().describe('Weekdays on which the window starts'),
    nthWeekday: z
      .strictObject({
        weekday,
        n: z.union([z.number().int().min(1).max(5), z.literal(-1)]).describe('1 to 5, or -1 for the last'),
      })
      .optional()
      .describe('The nth weekday of the month, e.g. the first Monday'),
    monthDays: z.array(z.number().int().min(1).max(31)).min(1).optional(),
    months: z.array(z.number().int().min(1).max(12)).min(1).optional(),
    from: day.optional().describe('First date the window can start on (inclusive)'),
    until: day.optional().describe('Last date the window can start on (inclusive)'),
  })
  .meta({ id: 'TimeWindow' });

export const DateRange = z
  .strictObject({
    from: day,
    until: day.optional().describe('Inclusive; one day when left out'),
    name: z.string().max(128).optional().describe('Why: "New Year", "freeze"'),
  })
  .meta({ id: 'DateRange' });

export const Schedule = z
  .strictObject({
    timezone: timeZone.default('UTC'),
    windows: z.array(TimeWindow).min(1),
    except: z
      .array(DateRange)
      .default([])
      .describe('Holidays and other dates on which no window of this schedule holds'),
  })
  .meta({ id: 'Schedule' });

/**
 * The host metrics criteria can name. Agents (and agentless sampling) report them under these
 * names; `custom.<name>` is any other number a host reports.
 */
export const METRIC_NAMES = [
  'cpu.utilization',
  'memory.utilization',
  'disk.io.bytes_per_second',
  'disk.io.operations_per_second',
  'network.rx.bytes_per_second',
  'network.tx.bytes_per_second',
  'requests.per_second',
  'data.processed.bytes_per_second',
  'load.average1',
] as const;
export const MetricName = z
  .union([
    z.enum(METRIC_NAMES),
    z
      .string()
      .regex(/^custom\.[a-z0-9_]+(\.[a-z0-9_]+)*$/, 'expected custom.<name> for a metric of your own'),
  ])
  .describe('cpu.utilization and memory.utilization are percentages (0 to 100); rates are per second');
export type MetricName = z.infer<typeof MetricName>;

export const MetricCriterion = z
  .strictObject({
    name: MetricName,
    op: comparison,
    value: z.number(),
    forSeconds: seconds
      .default(0)
      .describe('How long every sample must have met the threshold; 0 means the latest sample'),
    statistic: z
      .enum(['each', 'average', 'max', 'min'])
      .default('each')
      .describe('each: every sample in the duration meets it; average/max/min: that statistic of them does'),
  })
  .meta({ id: 'MetricCriterion' });

const signalName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'expected letters, digits, ".", "_", ":", "/" or "-"');

export const SignalCriterion = z
  .strictObject({
    name: signalName,
    op: comparison,
    value: z.union([z.number(), z.string(), z.boolean()]),
    maxAgeSeconds: seconds
      .optional()
      .describe('A signal posted longer ago than this is unknown, as if never posted'),
  })
  .meta({ id: 'SignalCriterion' });

export const PredictedCriterion = z
  .strictObject({
    name: MetricName,
    op: comparison,
    value: z.number(),
    withinSeconds: z
      .number()
      .int()
      .positive()
      .max(48 * 3600)
      .default(3600)
      .describe('Holds when the forecast meets the threshold at any point from now to now + this'),
    bufferSeconds: seconds
      .max(3600)
      .default(300)
      .describe('How long before a forecast hour its value counts: the persona is applied this much ahead'),
    mode: z
      .enum(['act', 'report'])
      .default('report')
      .describe(
        'report (forecast only): what the forecast would have done is recorded, not applied; act: the forecast switches the host',
      ),
  })
  .meta({ id: 'PredictedCriterion' });

export type Criterion =
  | { readonly all: readonly Criterion[] }
  | { readonly any: readonly Criterion[] }
  | { readonly not: Criterion }
  | { readonly schedule: z.infer<typeof Schedule> }
  | { readonly metric: z.infer<typeof MetricCriterion> }
  | { readonly signal: z.infer<typeof SignalCriterion> }
  | { readonly predicted: z.infer<typeof PredictedCriterion> };

export type CriterionInput =
  | { all: CriterionInput[] }
  | { any: CriterionInput[] }
  | { not: CriterionInput }
  | { schedule: z.input<typeof Schedule> }
  | { metric: z.input<typeof MetricCriterion> }
  | { signal: z.input<typeof SignalCriterion> }
  | { predicted: z.input<typeof PredictedCriterion> };

/** How deep criteria may nest; deeper is refused so that a document cannot exhaust the stack. */
export const MAX_CRITERIA_DEPTH = 16;

export const Criterion: z.ZodType<Criterion, CriterionInput> = z
  .lazy(() =>
    z.union([
      z.strictObject({ all: z.array(Criterion).min(1) }),
      z.strictObject({ any: z.array(Criterion).min(1) }),
      z.strictObject({ not: Criterion }),
      z.strictObject({ schedule: Schedule }),
      z.strictObject({ metric: MetricCriterion }),
      z.strictObject({ signal: SignalCriterion }),
      z.strictObject({ predicted: PredictedCriterion }),
    ]),
  )
  .meta({ id: 'Criterion' });

const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/, 'expected a network interface name such as eth0');
const sysctlKey = z
  .string()
  .regex(/^[a-z0-9_]+([./][a-z0-9_*-]+)*$/, 'expected a sysctl key such as net.ipv4.ip_forward');

/**
 * What a persona sets. Everything left out is left as the host has it. Host-local parameters
 * (cgroups, bandwidth, sysctl) are what the agent can apply itself; the rest go through the
 * platform adaptor (instance size) or the orchestrator (firewall, packages, thresholds).
 */
export const PersonaParameters = z
  .strictObject({
    instance: z
      .strictObject({
        size: text.describe('Instance type or VM size: m6i.large, Standard_D2s_v5'),
        preferredSizes: z
          .array(text)
          .default([])
          .describe('Tried in order when the platform has no capacity for `size`'),
      })
      .optional(),
    cgroups: z
      .array(CgroupLimit)
      .default([])
      .describe('CPU, memory and I/O weights and limits of cgroups (cgroup v2)'),
    bandwidth: z
      .array(
        z.strictObject({
          interface: interfaceName,
          egressMbps: z.number().positive().max(400_000),
        }),
      )
      .default([])
      .describe('Egress rate limits (tc) per interface'),
    sysctl: z.record(sysctlKey, z.string().max(4096)).default({}),
    security: z
      .strictObject({
        allowIngress: z
          .array(
            z.strictObject({
              port: z.number().int().min(1).max(65535),
              protocol: z.enum(['tcp', 'udp']).default('tcp'),
              from: z
                .string()
                .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'expected an IP address or CIDR')
                .optional(),
            }),
          )
          .optional()
          .describe("Ports the persona's own firewall table admits; the host's ruleset is left alone"),
      })
      .optional(),
    packages: z
      .array(z.strictObject({ name: text, version: text }))
      .default([])
      .describe('Software versions: each package at exactly this version'),
    thresholds: z.array(Threshold).default([]).describe('Monitoring thresholds (CloudWatch alarms on AWS)'),
  })
  .meta({ id: 'PersonaParameters' });

export const HostSelector = z
  .strictObject({
    names: z.array(text).optional().describe('Registered host names'),
    labels: labels.optional().describe('Every label must match'),
  })
  .meta({ id: 'HostSelector' });

export const PersonaSpec = z
  .strictObject({
    hosts: HostSelector.describe('The hosts this persona is for'),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(100)
      .describe('Lower is evaluated first; the first persona whose criteria hold is applied'),
    default: z
      .boolean()
      .default(false)
      .describe('The persona a host returns to when no other holds (at most one per host)'),
    parameters: PersonaParameters,
    criteria: Criterion.optional().describe('When left out, the persona is taken on only by activation'),
    mode: z
      .enum(['act', 'report'])
      .default('act')
      .describe(
        'report: decisions are recorded (what would have been done, and when) but nothing is applied',
      ),
    hysteresis: z
      .strictObject({
        holdSeconds: seconds
          .default(0)
          .describe('How long the criteria must have been false before the host leaves this persona'),
        coolDownSeconds: seconds
          .default(300)
          .describe('The least time between two switches of a host, whichever way'),
      })
      .default({ holdSeconds: 0, coolDownSeconds: 300 }),
    override: z
      .enum(['retain', 'enforced'])
      .default('retain')
      .describe(
        'retain: a manual activation or an operator change is kept until the next window edge; enforced: undone at the next evaluation',
      ),
  })
  .meta({ id: 'PersonaSpec' });

export const PersonaMetadata = z
  .strictObject({
    name,
    description: z.string().max(1024).optional(),
    labels: labels.optional(),
  })
  .meta({ id: 'PersonaMetadata' });

export const Persona = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(PERSONA_KIND),
    metadata: PersonaMetadata,
    spec: PersonaSpec,
  })
  .meta({
    id: 'Persona',
    title: 'Persona Persona',
    description: 'A named set of operational parameters and the criteria under which a host takes them on.',
  });

export type PersonaInput = z.input<typeof Persona>;
export type Persona = z.infer<typeof Persona>;
export type PersonaSpec = z.infer<typeof PersonaSpec>;
export type PersonaParameters = z.infer<typeof PersonaParameters>;
export type Schedule = z.infer<typeof Schedule>;
export type TimeWindow = z.infer<typeof TimeWindow>;
export type MetricCriterion = z.infer<typeof MetricCriterion>;
export type SignalCriterion = z.infer<typeof SignalCriterion>;
export type PredictedCriterion = z.infer<typeof PredictedCriterion>;

/** One report of a host's metrics (POST /metrics), by an agent or agentless sampling. */
export const MetricReport = z
  .strictObject({
    host: text,
    at: z.iso.datetime().describe('When the values were read on the host'),
    intervalSeconds: z.number().int().positive().max(3600).optional(),
    values: z.record(MetricName, z.number().finite()).refine((v) => Object.keys(v).length > 0, 'no values'),
  })
  .meta({ id: 'MetricReport' });
export type MetricReport = z.infer<typeof MetricReport>;

/** An external signal (POST /signals): a load balancer's forecast, a deploy freeze, ... */
export const Signal = z
  .strictObject({
    name: signalName,
    value: z.union([z.number().finite(), z.string().max(1024), z.boolean()]),
    hosts: HostSelector.optional().describe('The hosts it concerns; every host when left out'),
    ttlSeconds: z
      .number()
      .int()
      .positive()
      .max(30 * 86400)
      .optional(),
  })
  .meta({ id: 'Signal' });
export type Signal = z.infer<typeof Signal>;

// --- What evaluation reads and what it decides (implemented in core/persona/evaluate.ts) -----

/** A host metric's recent samples, oldest first; times are epoch milliseconds. */
export interface MetricSeries {
  readonly times: ArrayLike<number>;
  readonly values: ArrayLike<number>;
  /** The reporting interval when known; otherwise evaluation takes the samples' mean gap. */
  readonly intervalSeconds?: number;
}

/** Everything criteria can read about one host at one instant. Synchronous by design. */
export interface EvaluationInput {
  /** Epoch milliseconds. */
  readonly now: number;
  metric(name: string): MetricSeries | undefined;
  signal(name: string): { readonly value: number | string | boolean; readonly at: number } | undefined;
  /** The forecast of `name` for [now, now + withinSeconds]: its highest and lowest values. */
  predicted(name: string, withinSeconds: number): { readonly max: number; readonly min: number } | undefined;
  /** The hourly forecast of `name` (values[i]: the hour from start + i h), or why there is none; read by explain. */
  forecast?(name: string): HourlyForecast | { readonly unavailable: string } | undefined;
}

/** An hourly forecast of a metric, as criteria read it (core/persona/forecast.ts makes it). */
export interface HourlyForecast {
  readonly start: number;
  readonly values: ArrayLike<number>;
}

/** Which criterion decided, with the values it saw: the reason a decision records. */
export interface CriterionReason {
  /** A JSON-pointer-like path into the persona's criteria: "/all/0/metric". */
  readonly path: string;
  readonly holds: 'true' | 'false' | 'unknown';
  readonly detail: string;
  readonly values?: Readonly<Record<string, number | string | boolean | null>>;
}

/** A host's persona state, as evaluation needs it and GET /hosts/{id}/persona answers it. */
export interface HostPersonaState {
  readonly host: string;
  /** The persona the host has now, or null for its default (its own parameters). */
  readonly current: string | null;
  readonly currentVersion?: number;
  /** When the host took on `current` (epoch ms). */
  readonly since: number;
  /** When criteria of `current` were first seen false, for the hold time (epoch ms). */
  readonly falseSince?: number;
  /** A manual activation (or an operator's own change) in force, and until when (epoch ms). */
  readonly manual?: { readonly persona: string | null; readonly at: number; readonly until: number | null };
}

/**
 * What a decision did. restore: an operator's change to the persona's host-local values on a
 * host without an agent was undone (a switch to the same persona); retain: that change is kept
 * until the persona's next window edge (override: retain).
 */
export const DECISION_ACTIONS = [
  'switch',
  'revert',
  'stay',
  'hold',
  'cool-down',
  'manual',
  'restore',
  'retain',
] as const;
export type DecisionAction = (typeof DECISION_ACTIONS)[number];

/** One evaluation's outcome for one host. */
export interface Decision {
  readonly host: string;
  /** Epoch ms. */
  readonly at: number;
  readonly action: DecisionAction;
  readonly from: string | null;
  readonly to: string | null;
  /** report mode: what would have been done, not done. */
  readonly mode: 'act' | 'report';
  readonly summary: string;
  readonly reasons: readonly CriterionReason[];
}
