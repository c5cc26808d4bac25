// Window-edge schedules in EventBridge Scheduler. Scheduler has no local stand-in, so its
// client is mocked with the documented response shapes and errors.
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ListSchedulesCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { type CriterionInput, Persona } from '../../../core/persona/schema.js';
import {
  deletePersonaSchedules,
  MAX_SCHEDULE_NAME,
  type ScheduleTarget,
  scheduleNamePrefix,
  schedulesFor,
  syncPersonaSchedules,
} from '../../../core/persona/triggers.js';

const scheduler = mockClient(SchedulerClient);
const client = new SchedulerClient({ region: 'eu-west-1' });
const TARGET: ScheduleTarget = {
  groupName: 'persona-windows',
  targetArn: 'arn:aws:lambda:eu-west-1:111122223333:function:persona-evaluate',
  roleArn: 'arn:aws:iam::111122223333:role/persona-scheduler',
};
const NOW = Date.parse('2026-12-01T12:00:00Z');

function persona(name: string, criteria?: CriterionInput): Persona {
  return Persona.parse({
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: { labels: { role: 'web' } }, parameters: {}, ...(criteria ? { criteria } : {}) },
  });
}

// Scheduler's errors carry their text in Message (the documented body), which the SDK also
// exposes as message.
const conflict = (m: string) =>
  new ConflictException({ $metadata: { httpStatusCode: 409 }, message: m, Message: m });
const notFound = (m: string) =>
  new ResourceNotFoundException({ $metadata: { httpStatusCode: 404 }, message: m, Message: m });

const expressions = (p: Persona) => schedulesFor(p, NOW).map((s) => [s.expression, s.timezone]);

/** A ListSchedules page as Scheduler answers it. */
function summaries(names: readonly string[]) {
  return {
    Schedules: names.map((Name) => ({
      Name,
      GroupName: TARGET.groupName,
      Arn: `arn:aws:scheduler:eu-west-1:111122223333:schedule/${TARGET.groupName}/${Name}`,
      State: 'ENABLED' as const,
      CreationDate: new Date('2026-11-01T00:00:00Z'),
      LastModificationDate: new Date('2026-11-01T00:00:00Z'),
      Target: { Arn: TARGET.targetArn },
    })),
  };
}

beforeEach(() => {
  scheduler.reset();
});

describe('schedulesFor', () => {
  it('fires at the start and the end of a weekday window, in the schedule’s own time zone', () => {
    const p = persona('business-hours', {
      schedule: {
        timezone: 'Europe/Paris',
        windows: [{ start: '09:00', end: '17:30', days: ['mon', 'tue', 'wed', 'thu', 'fri'] }],
      },
    });
    expect(expressions(p)).toEqual([
      ['cron(0 9 ? * MON,TUE,WED,THU,FRI *)', 'Europe/Paris'],
      ['cron(30 17 ? * MON,TUE,WED,THU,FRI *)', 'Europe/Paris'],
    ]);
  });

  it('ends a window that runs past midnight on the following days', () => {
    const p = persona('night', {
      schedule: {
        timezone: 'America/New_York',
        windows: [{ start: '22:00', end: '02:00', days: ['fri', 'sun'] }],
      },
    });
    expect(expressions(p)).toEqual([
      ['cron(0 22 ? * FRI,SUN *)', 'America/New_York'],
      ['cron(0 2 ? * SAT,MON *)', 'America/New_York'],
    ]);
    // A window to 24:00 ends at midnight of the next day.
    const late = persona('late', { schedule: { windows: [{ start: '18:00', days: ['sat'] }] } });
    expect(expressions(late)).toEqual([
      ['cron(0 18 ? * SAT *)', 'UTC'],
      ['cron(0 0 ? * SUN *)', 'UTC'],
    ]);
  });

  it('writes the nth and the last weekday of the month with # and L, and widens the day after them to every day', () => {
    const second = persona('patch-tuesday', {
      schedule: { windows: [{ start: '20:00', end: '23:00', nthWeekday: { weekday: 'tue', n: 2 } }] },
    });
    expect(expressions(second)).toEqual([
      ['cron(0 20 ? * 3#2 *)', 'UTC'],
      ['cron(0 23 ? * 3#2 *)', 'UTC'],
    ]);
    const last = persona('month-end', {
      schedule: { windows: [{ start: '18:00', end: '06:00', nthWeekday: { weekday: 'fri', n: -1 } }] },
    });
    // The day after the last Friday may be in the next month: cron cannot say it, so the end
    // fires daily and evaluation decides.
    expect(expressions(last)).toEqual([
      ['cron(0 18 ? * 6L *)', 'UTC'],
      ['cron(0 6 * * ? *)', 'UTC'],
    ]);
  });

  it('fires on days of the month and months, and after the 28th to 31st also on the 1st of the next month', () => {
    const p = persona('billing', {
      schedule: { windows: [{ start: '23:00', end: '03:00', monthDays: [15, 31], months: [3, 12] }] },
    });
    expect(expressions(p)).toEqual([
      ['cron(0 23 15,31 3,12 ? *)', 'UTC'],
      ['cron(0 3 1,16 1,3,4,12 ? *)', 'UTC'],
    ]);
  });

  it('makes one schedule of edges that coincide, so adjacent windows do not fire twice', () => {
    const p = persona('split-day', {
      any: [
        { schedule: { windows: [{ start: '08:00', end: '12:00' }] } },
        { schedule: { windows: [{ start: '12:00', end: '18:00' }] } },
      ],
    });
    expect(expressions(p)).toEqual([
      ['cron(0 8 * * ? *)', 'UTC'],
      ['cron(0 12 * * ? *)', 'UTC'],
      ['cron(0 18 * * ? *)', 'UTC'],
    ]);
  });

  it('bounds dated windows by a start and an end date with a margin, and drops those whose dates have passed', () => {
    const p = persona('sale', {
      schedule: {
        windows: [
          { start: '00:00', end: '24:00', from: '2026-12-20', until: '2026-12-26' },
          { start: '09:00', end: '10:00', until: '2026-11-01' },
        ],
      },
    });
    const schedules = schedulesFor(p, NOW);
    expect(schedules).toHaveLength(1);
    expect(schedules[0]).toMatchObject({
      expression: 'cron(0 0 * * ? *)',
      startDate: new Date('2026-12-19T00:00:00Z'),
      endDate: new Date('2026-12-29T00:00:00Z'),
    });
  });

  it('gives no schedule to a persona without time windows, and ignores holidays, which evaluation applies', () => {
    expect(
      schedulesFor(persona('metric-only', { metric: { name: 'cpu.utilization', op: '>', value: 80 } }), NOW),
    ).toEqual([]);
    const holidays = persona('with-holidays', {
      schedule: {
        windows: [{ start: '09:00', end: '17:00' }],
        except: [{ from: '2026-12-25', name: 'Christmas' }],
      },
    });
    expect(expressions(holidays)).toHaveLength(2);
  });

  it('names schedules stably within Scheduler’s 64 characters, with a prefix of the persona’s own', () => {
    const long = 'a'.repeat(100);
    const p = persona(long, { schedule: { windows: [{ start: '09:00', end: '17:00' }] } });
    const names = schedulesFor(p, NOW).map((s) => s.name);
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(MAX_SCHEDULE_NAME);
      expect(name).toMatch(/^[0-9a-zA-Z_.-]+$/);
      expect(name.startsWith(scheduleNamePrefix(long))).toBe(true);
    }
    expect(schedulesFor(p, NOW).map((s) => s.name)).toEqual(names);
    // Another persona with the same first 40 characters lists none of these.
    expect(scheduleNamePrefix(`${long}b`)).not.toBe(scheduleNamePrefix(long));
    for (const name of names) expect(name.startsWith(scheduleNamePrefix(`${long}b`))).toBe(false);
  });
});

describe('syncPersonaSchedules', () => {
  const p = persona('business-hours', {
    schedule: { timezone: 'Europe/Paris', windows: [{ start: '09:00', end: '17:00', days: ['mon'] }] },
  });
  const wanted = schedulesFor(p, NOW).map((s) => s.name);

  it('creates each missing schedule targeting the evaluate function with the persona as input', async () => {
    scheduler.on(ListSchedulesCommand).resolves(summaries([]));
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn:aws:scheduler:::schedule/x' });
    const result = await syncPersonaSchedules(client, TARGET, p, NOW);
    expect(result).toEqual({ created: wanted, updated: [], deleted: [] });
    expect(scheduler.commandCalls(ListSchedulesCommand)[0]?.args[0].input).toEqual({
      GroupName: TARGET.groupName,
      NamePrefix: scheduleNamePrefix('business-hours'),
    });
    const inputs = scheduler.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input);
    expect(inputs[0]).toMatchObject({
      Name: wanted[0],
      GroupName: TARGET.groupName,
      ScheduleExpression: 'cron(0 9 ? * MON *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: { Arn: TARGET.targetArn, RoleArn: TARGET.roleArn },
    });
    expect(JSON.parse(inputs[0]?.Target?.Input ?? '')).toEqual({
      persona: 'business-hours',
      reason: 'window-edge',
      scheduledTime: '<aws.scheduler.scheduled-time>',
    });
  });

  it('updates the schedules that exist and deletes those no window needs any more, across pages', async () => {
    const stale = `${scheduleNamePrefix('business-hours')}0123456789ab`;
    scheduler
      .on(ListSchedulesCommand)
      .resolvesOnce({ ...summaries([wanted[0] as string]), NextToken: 'page-2' })
      .resolvesOnce(summaries([stale]));
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: 'arn' });
    scheduler.on(UpdateScheduleCommand).resolves({ ScheduleArn: 'arn' });
    scheduler.on(DeleteScheduleCommand).resolves({});
    const result = await syncPersonaSchedules(client, TARGET, p, NOW);
    expect(result).toEqual({ created: [wanted[1]], updated: [wanted[0]], deleted: [stale] });
    expect(scheduler.commandCalls(ListSchedulesCommand)[1]?.args[0].input.NextToken).toBe('page-2');
    expect(scheduler.commandCalls(DeleteScheduleCommand)[0]?.args[0].input).toEqual({
      Name: stale,
      GroupName: TARGET.groupName,
    });
  });

  it('turns a create that lost a race (ConflictException) into an update, and an update of a vanished schedule into a create', async () => {
    scheduler.on(ListSchedulesCommand).resolves(summaries([wanted[1] as string]));
    scheduler.on(CreateScheduleCommand, { Name: wanted[0] }).rejects(conflict('Schedule already exists.'));
    scheduler.on(CreateScheduleCommand, { Name: wanted[1] }).resolves({ ScheduleArn: 'arn' });
    scheduler.on(UpdateScheduleCommand, { Name: wanted[0] }).resolves({ ScheduleArn: 'arn' });
    scheduler.on(UpdateScheduleCommand, { Name: wanted[1] }).rejects(notFound('Schedule not found.'));
    const result = await syncPersonaSchedules(client, TARGET, p, NOW);
    expect(result).toEqual({ created: [wanted[1]], updated: [wanted[0]], deleted: [] });
  });

  it('fails with Scheduler’s own error when it refuses for another reason, and deletes nothing after it', async () => {
    scheduler.on(ListSchedulesCommand).resolves(summaries(['business-hours.x.stale']));
    scheduler.on(CreateScheduleCommand).rejects(conflict('Schedule group is being deleted.'));
    scheduler.on(UpdateScheduleCommand).rejects(notFound('Schedule group not found.'));
    await expect(syncPersonaSchedules(client, TARGET, p, NOW)).rejects.toThrow('Schedule group not found.');
    expect(scheduler.commandCalls(DeleteScheduleCommand)).toHaveLength(0);
  });

  it('deletes every schedule of a persona whose windows are gone', async () => {
    scheduler.on(ListSchedulesCommand).resolves(summaries(wanted));
    scheduler.on(DeleteScheduleCommand).resolves({});
    const result = await syncPersonaSchedules(client, TARGET, persona('business-hours'), NOW);
    expect(result.deleted).toEqual(wanted);
  });
});

describe('deletePersonaSchedules', () => {
  it('deletes the persona’s schedules, taking one already deleted (ResourceNotFoundException) as done', async () => {
    const names = [`${scheduleNamePrefix('gone')}a`, `${scheduleNamePrefix('gone')}b`];
    scheduler.on(ListSchedulesCommand).resolves(summaries(names));
    scheduler.on(DeleteScheduleCommand, { Name: names[0] }).rejects(notFound('Schedule not found.'));
    scheduler.on(DeleteScheduleCommand, { Name: names[1] }).resolves({});
    expect(await deletePersonaSchedules(client, TARGET, 'gone')).toEqual(names);
    expect(scheduler.commandCalls(DeleteScheduleCommand)).toHaveLength(2);
  });
});

// --- the law: cron is widened, never narrowed -------------------------------------------------

/** Whether a schedule's cron expression fires at `instant` (read in its time zone). */
function fires(
  schedule: { expression: string; timezone: string; startDate?: Date; endDate?: Date },
  instant: number,
) {
  if (schedule.startDate && instant < schedule.startDate.getTime()) return false;
  if (schedule.endDate && instant > schedule.endDate.getTime()) return false;
  const [minute, hour, dom, month, dow] = schedule.expression.slice(5, -1).split(' ');
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: schedule.timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    })
      .formatToParts(new Date(instant))
      .map((p) => [p.type, p.value]),
  );
  const [y, mo, d] = [Number(parts.year), Number(parts.month), Number(parts.day)];
  const weekday = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday as string) + 1;
  const list = (field: string) => field.split(',');
  if (Number(minute) !== Number(parts.minute) || Number(hour) !== Number(parts.hour)) return false;
  if (
    dom !== '*' &&
    dom !== '?' &&
    !list(dom as string)
      .map(Number)
      .includes(d)
  )
    return false;
  if (
    month !== '*' &&
    !list(month as string)
      .map(Number)
      .includes(mo)
  )
    return false;
  if (dow === '?') return true;
  const nth = /^(\d)#(\d)$/.exec(dow as string);
  if (nth) return weekday === Number(nth[1]) && Math.ceil(d / 7) === Number(nth[2]);
  const last = /^(\d)L$/.exec(dow as string);
  if (last) return weekday === Number(last[1]) && d + 7 > new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return list(dow as string).includes((parts.weekday as string).toUpperCase());
}

describe('schedulesFor, against the schedule engine', () => {
  const WEEKDAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
  // Daylight saving moves clocks between 01:00 and 03:00 in these zones; Scheduler's handling
  // of a time that does not exist is its own (TRIGGERS.md), so windows keep clear of it there.
  const zone = fc.constantFrom('UTC', 'Asia/Kolkata', 'Europe/Paris', 'America/New_York', 'Australia/Sydney');
  const clockIn = (from: number, to: number) =>
    fc
      .tuple(fc.integer({ min: from, max: to }), fc.constantFrom(0, 15, 30, 45))
      .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
  const days = fc.uniqueArray(fc.constantFrom(...WEEKDAY_NAMES), { minLength: 1, maxLength: 7 });
  const nthWeekday = fc.record({
    weekday: fc.constantFrom(...WEEKDAY_NAMES),
    n: fc.constantFrom(1, 2, 3, 4, 5, -1 as const),
  });
  const monthDays = fc.uniqueArray(fc.integer({ min: 1, max: 31 }), { minLength: 1, maxLength: 4 });
  // Each way of choosing days about as often, so that every branch of the cron is exercised.
  const dayRule = fc.oneof(
    fc.constant({}),
    fc.record({ days }),
    fc.record({ nthWeekday }),
    fc.record({ monthDays }),
    fc.record({ days, monthDays }),
    fc.record({ days, nthWeekday }),
  );
  const window = (dst: boolean) =>
    fc
      .tuple(
        dst ? clockIn(4, 22) : clockIn(0, 23),
        fc.oneof(dst ? clockIn(4, 22) : clockIn(0, 23), fc.constant('24:00')),
        dayRule,
        fc.option(fc.uniqueArray(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 6 }), {
          nil: undefined,
        }),
      )
      .map(([start, end, rule, months]) => ({ start, end, ...rule, ...(months ? { months } : {}) }));
  const schedule = zone.chain((timezone) =>
    fc.record({
      timezone: fc.constant(timezone),
      windows: fc.array(window(timezone !== 'UTC' && timezone !== 'Asia/Kolkata'), {
        minLength: 1,
        maxLength: 2,
      }),
    }),
  );

  it('fires at every instant a window starts or ends (property)', async () => {
    const { nextScheduleEdge } = await import('../../../core/persona/schedule.js');
    const { Schedule } = await import('../../../core/persona/schema.js');
    fc.assert(
      fc.property(schedule, (input) => {
        const parsed = Schedule.parse(input);
        const p = persona('law', { schedule: input as never });
        const schedules = schedulesFor(p, NOW);
        let t = NOW;
        const until = NOW + 400 * 86_400_000;
        for (let i = 0; i < 60; i++) {
          const edge = nextScheduleEdge(parsed, t);
          if (edge === undefined || edge > until) break;
          const by = schedules.filter((s) => fires(s, edge));
          expect(
            by.length,
            `${new Date(edge).toISOString()} in ${parsed.timezone}: ${JSON.stringify(schedules.map((s) => s.expression))}`,
          ).toBeGreaterThan(0);
          t = edge;
        }
      }),
      { numRuns: 300 },
    );
  });
});
