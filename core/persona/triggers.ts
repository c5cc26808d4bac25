// EventBridge Scheduler schedules that wake evaluation at the edges of a persona's time
// windows. Each distinct window start and end becomes one cron schedule, read in the
// schedule's own IANA time zone (ScheduleExpressionTimezone), so Scheduler follows DST itself.
//
// Cron says less than a window does. What it cannot say is widened, never narrowed: a firing
// too many is an evaluation that changes nothing, a firing too few is a switch that never
// happens. So date ranges (`from`/`until`) only bound the schedule's StartDate/EndDate with a
// margin, holidays (`except`) are not expressed at all, a window on both weekdays and days of
// the month fires on the days of the month, and the end of a window past midnight fires on
// every day that can follow its start. Whether a window holds is always decided by evaluation
// at the firing, from the persona's criteria, never by which schedule fired.
import { createHash } from 'node:crypto';
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleInput,
  DeleteScheduleCommand,
  paginateListSchedules,
  ResourceNotFoundException,
  type SchedulerClient,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import * as z from 'zod';
import type { Criterion, Persona, Schedule, TimeWindow } from './schema.js';

/** What Scheduler sends the evaluate function (functions/events/persona-evaluate). */
export interface WindowEdgeInput {
  readonly persona: string;
  readonly reason: 'window-edge';
  /** Filled in by Scheduler (a context attribute): when the firing was due. */
  readonly scheduledTime?: string;
}

/** Where a persona's schedules live and what they invoke. */
export interface ScheduleTarget {
  readonly groupName: string;
  /** The evaluate function's ARN. */
  readonly targetArn: string;
  /** The role Scheduler assumes to invoke it. */
  readonly roleArn: string;
}

/**
 * The variables through which a function that writes personas learns where their schedules go
 * (infra/personas.ts sets them, functions/shared/runtime.ts reads them). Without the group,
 * persona writes sync no schedules: triggers are off, or the runtime has its own timer.
 */
export const SCHEDULE_ENV = {
  group: 'PERSONA_SCHEDULE_GROUP',
  target: 'PERSONA_EVALUATE_FUNCTION_ARN',
  role: 'PERSONA_SCHEDULER_ROLE_ARN',
} as const;

/** One schedule a persona needs. */
export interface PersonaSchedule {
  readonly name: string;
  /** `cron(M H DOM MON DOW *)`. */
  readonly expression: string;
  readonly timezone: string;
  readonly startDate?: Date;
  readonly endDate?: Date;
  readonly description: string;
}

/** Scheduler's limit on a schedule name. */
export const MAX_SCHEDULE_NAME = 64;
const DAY_MS = 86_400_000;
// Cron's day-of-week numbers (SUN=1) for `#` and `L`, the forms Scheduler's cron reference
// documents with them; lists use the names.
const WEEKDAY_CRON = { mon: 'MON', tue: 'TUE', wed: 'WED', thu: 'THU', fri: 'FRI', sat: 'SAT', sun: 'SUN' };
const WEEKDAY_NUMBER = { sun: 1, mon: 2, tue: 3, wed: 4, thu: 5, fri: 6, sat: 7 };
const NEXT_WEEKDAY = {
  mon: 'tue',
  tue: 'wed',
  wed: 'thu',
  thu: 'fri',
  fri: 'sat',
  sat: 'sun',
  sun: 'mon',
} as const;

const hash = (text: string, length: number) =>
  createHash('sha256').update(text).digest('hex').slice(0, length);

/** Every schedule criterion in a persona's criteria, in document order. */
export function personaSchedules(persona: Persona): Schedule[] {
  const found: Schedule[] = [];
  const walk = (c: Criterion) => {
    if ('all' in c) c.all.forEach(walk);
    else if ('any' in c) c.any.forEach(walk);
    else if ('not' in c) walk(c.not);
    else if ('schedule' in c) found.push(c.schedule);
  };
  if (persona.spec.criteria) walk(persona.spec.criteria);
  return found;
}

/**
 * The start of every schedule name of a persona: its name cut to fit, and a hash of the whole
 * name so that two personas sharing a long prefix never list (and delete) each other's.
 */
export function scheduleNamePrefix(persona: string): string {
  return `${persona.slice(0, 40)}.${hash(persona, 8)}.`;
}

const minutesOf = (clock: string) => {
  const [h = '0', m = '0'] = clock.split(':');
  return Number(h) * 60 + Number(m);
};

/** The cron fields of one edge: a time of day, and whether it falls on the day after the window's start. */
function cronFor(window: TimeWindow, clock: string, nextDay: boolean): string {
  let minutes = minutesOf(clock);
  let shift = nextDay;
  if (minutes >= 24 * 60) {
    minutes -= 24 * 60;
    shift = true;
  }
  const m = String(minutes % 60);
  const h = String(Math.floor(minutes / 60));
  let dom = '*';
  let dow = '?';
  if (window.nthWeekday && !shift) {
    const n = window.nthWeekday;
    dom = '?';
    dow = n.n === -1 ? `${WEEKDAY_NUMBER[n.weekday]}L` : `${WEEKDAY_NUMBER[n.weekday]}#${n.n}`;
  } else if (window.nthWeekday) {
    // The day after the nth weekday has no cron of its own (the day after the second Monday
    // is the second or the third Tuesday): every day, and evaluation decides.
  } else if (window.monthDays) {
    const days = new Set(window.monthDays.map((d) => (shift ? d + 1 : d)).filter((d) => d <= 31));
    // The day after the 28th to the 31st may be the 1st of the next month.
    if (shift && window.monthDays.some((d) => d >= 28)) days.add(1);
    dom = [...days].sort((a, b) => a - b).join(',');
  } else if (window.days) {
    const days = window.days.map((d) => (shift ? NEXT_WEEKDAY[d] : d));
    dom = '?';
    dow = [...new Set(days)].map((d) => WEEKDAY_CRON[d]).join(',');
  }
  let months = '*';
  if (window.months) {
    const set = new Set(window.months);
    // The day after a month's last day is in the next month.
    if (shift) for (const month of window.months) set.add((month % 12) + 1);
    months = set.size === 12 ? '*' : [...set].sort((a, b) => a - b).join(',');
  }
  return `cron(${m} ${h} ${dom} ${months} ${dow} *)`;
}

/**
 * The schedules that wake evaluation at each start and end of a persona's windows, one per
 * distinct cron expression, time zone and date bounds. Windows whose `until` has passed get
 * none.
 */
export function schedulesFor(persona: Persona, now: number): PersonaSchedule[] {
  const name = persona.metadata.name;
  const prefix = scheduleNamePrefix(name);
  const out = new Map<string, PersonaSchedule>();
  for (const schedule of personaSchedules(persona)) {
    for (const window of schedule.windows) {
      // A zone is at most 14 hours from UTC and a window ends at most a day after it starts:
      // a day before `from` and three after `until` (UTC midnights) cover every firing.
      const start = window.from ? Date.parse(`${window.from}T00:00:00Z`) - DAY_MS : undefined;
      const end = window.until ? Date.parse(`${window.until}T00:00:00Z`) + 3 * DAY_MS : undefined;
      if (end !== undefined && end <= now) continue;
      const crossesMidnight = window.end === '24:00' || minutesOf(window.end) <= minutesOf(window.start);
      const edges = [
        { expression: cronFor(window, window.start, false), what: `start ${window.start}` },
        { expression: cronFor(window, window.end, crossesMidnight), what: `end ${window.end}` },
      ];
      for (const edge of edges) {
        const key = JSON.stringify([edge.expression, schedule.timezone, start, end]);
        if (out.has(key)) continue;
        out.set(key, {
          name: `${prefix}${hash(key, 12)}`,
          expression: edge.expression,
          timezone: schedule.timezone,
          // Scheduler refuses a start date in the past; none is the same from now on.
          ...(start !== undefined && start > now ? { startDate: new Date(start) } : {}),
          ...(end !== undefined ? { endDate: new Date(end) } : {}),
          description: `Persona ${name}: window ${edge.what} (${schedule.timezone}); evaluation decides whether it holds`,
        });
      }
    }
  }
  return [...out.values()];
}

function scheduleInput(target: ScheduleTarget, persona: string, s: PersonaSchedule): CreateScheduleInput {
  const input = { persona, reason: 'window-edge', scheduledTime: '<aws.scheduler.scheduled-time>' };
  return {
    Name: s.name,
    GroupName: target.groupName,
    ScheduleExpression: s.expression,
    ScheduleExpressionTimezone: s.timezone,
    ...(s.startDate ? { StartDate: s.startDate } : {}),
    ...(s.endDate ? { EndDate: s.endDate } : {}),
    Description: s.description.slice(0, 512),
    State: 'ENABLED',
    FlexibleTimeWindow: { Mode: 'OFF' },
    Target: {
      Arn: target.targetArn,
      RoleArn: target.roleArn,
      Input: JSON.stringify(input),
      // An edge evaluated an hour late is still right (evaluation reads the clock, not the
      // firing), but no longer useful.
      RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
    },
  };
}

export interface SyncResult {
  readonly created: readonly string[];
  readonly updated: readonly string[];
  readonly deleted: readonly string[];
}

async function existingSchedules(
  scheduler: SchedulerClient,
  target: ScheduleTarget,
  persona: string,
): Promise<string[]> {
  const names: string[] = [];
  const pages = paginateListSchedules(
    { client: scheduler },
    { GroupName: target.groupName, NamePrefix: scheduleNamePrefix(persona) },
  );
  for await (const page of pages) for (const s of page.Schedules ?? []) if (s.Name) names.push(s.Name);
  return names;
}

async function deleteSchedule(scheduler: SchedulerClient, groupName: string, name: string) {
  try {
    await scheduler.send(new DeleteScheduleCommand({ Name: name, GroupName: groupName }));
  } catch (e) {
    // Another writer removed it first: gone either way.
    if (!(e instanceof ResourceNotFoundException)) throw e;
  }
}

/**
 * Makes the persona's schedules in the group exactly those its windows need: creates the
 * missing, updates the rest (so that a moved target or role is picked up), deletes those no
 * window needs any more. Safe to run twice at once: a create that finds the schedule made is
 * an update, an update or delete that finds it gone is a create or nothing.
 */
export async function syncPersonaSchedules(
  scheduler: SchedulerClient,
  target: ScheduleTarget,
  persona: Persona,
  now: number = Date.now(),
): Promise<SyncResult> {
  const name = persona.metadata.name;
  const wanted = schedulesFor(persona, now);
  const existing = new Set(await existingSchedules(scheduler, target, name));
  const created: string[] = [];
  const updated: string[] = [];
  for (const s of wanted) {
    const input = scheduleInput(target, name, s);
    const create = async () => {
      try {
        await scheduler.send(new CreateScheduleCommand(input));
        created.push(s.name);
      } catch (e) {
        if (!(e instanceof ConflictException)) throw e;
        await scheduler.send(new UpdateScheduleCommand(input));
        updated.push(s.name);
      }
    };
    if (!existing.has(s.name)) {
      await create();
      continue;
    }
    try {
      await scheduler.send(new UpdateScheduleCommand(input));
      updated.push(s.name);
    } catch (e) {
      if (!(e instanceof ResourceNotFoundException)) throw e;
      await create();
    }
  }
  const keep = new Set(wanted.map((s) => s.name));
  const deleted: string[] = [];
  for (const old of existing) {
    if (keep.has(old)) continue;
    await deleteSchedule(scheduler, target.groupName, old);
    deleted.push(old);
  }
  return { created, updated, deleted };
}

/** Deletes every schedule of a persona (the persona was deleted). */
export async function deletePersonaSchedules(
  scheduler: SchedulerClient,
  target: Pick<ScheduleTarget, 'groupName'>,
  persona: string,
): Promise<string[]> {
  const names = await existingSchedules(scheduler, target as ScheduleTarget, persona);
  for (const name of names) await deleteSchedule(scheduler, target.groupName, name);
  return names;
}

// --- CloudWatch alarms ----------------------------------------------------------------------

/**
 * Alarms whose name starts with this wake evaluation (the EventBridge rule matches the
 * prefix): `Persona/<key>` or `Persona/<key>/<host>`.
 */
export const ALARM_PREFIX = 'Persona/';
/** The dimension (or alarm tag) that names the host an alarm is about. */
export const HOST_DIMENSION = 'PersonaHost';
/** What criteria name an alarm's state by: `alarm/<key>`. */
export const ALARM_SIGNAL_PREFIX = 'alarm/';

const alarmKey = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}$/;
const hostName = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

/** The fields of EventBridge's "CloudWatch Alarm State Change" event that are read here. */
export const AlarmStateChange = z.object({
  source: z.literal('aws.cloudwatch'),
  'detail-type': z.literal('CloudWatch Alarm State Change'),
  time: z.string(),
  detail: z.object({
    alarmName: z.string(),
    state: z.object({
      value: z.enum(['OK', 'ALARM', 'INSUFFICIENT_DATA']),
      timestamp: z.string().optional(),
    }),
    configuration: z
      .object({
        // Metric math alarms list expressions too (no metricStat); composite alarms have none.
        metrics: z
          .array(
            z.object({
              metricStat: z
                .object({ metric: z.object({ dimensions: z.record(z.string(), z.string()).optional() }) })
                .optional(),
            }),
          )
          .optional(),
      })
      .optional(),
    alarmTags: z.record(z.string(), z.string()).optional(),
  }),
});
export type AlarmStateChange = z.infer<typeof AlarmStateChange>;

/** What an alarm's state change means for evaluation. */
export interface AlarmTrigger {
  /** The signal criteria read: `alarm/<key>`. */
  readonly signal: string;
  /** ALARM or OK; undefined for INSUFFICIENT_DATA, which reads as unknown. */
  readonly value: 'ALARM' | 'OK' | undefined;
  readonly hosts: readonly string[];
  /** Epoch ms of the state change. */
  readonly at: number;
}

/**
 * Reads an alarm state change as a per-host signal, or says why it cannot: the alarm's name
 * gives the signal (`Persona/<key>[/<host>]` → `alarm/<key>`), its hosts are the values of a
 * `PersonaHost` dimension of its metrics, a `PersonaHost` alarm tag (alarms with tag
 * propagation) and the name's third segment, together.
 */
export function alarmTrigger(event: AlarmStateChange): AlarmTrigger | { readonly ignored: string } {
  const name = event.detail.alarmName;
  if (!name.startsWith(ALARM_PREFIX)) return { ignored: `alarm ${name} does not start with ${ALARM_PREFIX}` };
  const [key = '', host, ...rest] = name.slice(ALARM_PREFIX.length).split('/');
  if (!alarmKey.test(key) || rest.length > 0)
    return { ignored: `alarm ${name} is not named ${ALARM_PREFIX}<key> or ${ALARM_PREFIX}<key>/<host>` };
  const hosts = new Set<string>();
  for (const metric of event.detail.configuration?.metrics ?? []) {
    const value = metric.metricStat?.metric.dimensions?.[HOST_DIMENSION];
    if (value !== undefined) hosts.add(value);
  }
  const tagged = event.detail.alarmTags?.[HOST_DIMENSION];
  if (tagged !== undefined) hosts.add(tagged);
  if (host !== undefined) hosts.add(host);
  const named = [...hosts].filter((h) => hostName.test(h));
  if (named.length === 0)
    return {
      ignored: `alarm ${name} names no host: give its metric a ${HOST_DIMENSION} dimension or name it ${ALARM_PREFIX}${key}/<host>`,
    };
  const at = Date.parse(event.detail.state.timestamp ?? event.time);
  const value = event.detail.state.value;
  return {
    signal: `${ALARM_SIGNAL_PREFIX}${key}`,
    value: value === 'INSUFFICIENT_DATA' ? undefined : value,
    hosts: named.sort(),
    at: Number.isFinite(at) ? at : Date.parse(event.time),
  };
}
