// Time windows on a zone's wall clock: days, nth weekdays, month days, date bounds, holidays,
// windows past midnight, adjacent windows, and daylight saving in both directions in the
// northern (Paris, New York) and southern (Sydney) hemispheres.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextScheduleEdge, scheduleHolds } from '../../../core/persona/schedule.js';
import { Schedule } from '../../../core/persona/schema.js';

const at = (iso: string) => Date.parse(iso);
const schedule = (input: unknown) => Schedule.parse(input);
const edge = (s: Schedule, iso: string) => {
  const e = nextScheduleEdge(s, at(iso));
  return e === undefined ? undefined : new Date(e).toISOString();
};

describe('scheduleHolds', () => {
  const office = schedule({
    timezone: 'Europe/Paris',
    windows: [{ start: '09:00', end: '17:00', days: ['mon', 'tue', 'wed', 'thu', 'fri'] }],
  });

  it('reads the window on the zone’s wall clock, in winter and in summer time', () => {
    // Tuesday 2026-01-13: Paris is UTC+1; Tuesday 2026-07-14: UTC+2.
    expect(scheduleHolds(office, at('2026-01-13T07:59:00Z'))).toBe(false);
    expect(scheduleHolds(office, at('2026-01-13T08:00:00Z'))).toBe(true);
    expect(scheduleHolds(office, at('2026-01-13T15:59:59Z'))).toBe(true);
    expect(scheduleHolds(office, at('2026-01-13T16:00:00Z'))).toBe(false); // half-open: 17:00 is out
    expect(scheduleHolds(office, at('2026-07-14T07:00:00Z'))).toBe(true);
    expect(scheduleHolds(office, at('2026-07-14T15:00:00Z'))).toBe(false);
  });

  it('holds on the listed weekdays only', () => {
    expect(scheduleHolds(office, at('2026-01-17T10:00:00Z'))).toBe(false); // Saturday
    expect(scheduleHolds(office, at('2026-01-16T10:00:00Z'))).toBe(true); // Friday
  });

  it('runs a window whose end is before its start past midnight, on the day it starts', () => {
    const night = schedule({ timezone: 'UTC', windows: [{ start: '22:00', end: '06:00', days: ['fri'] }] });
    expect(scheduleHolds(night, at('2026-01-16T21:59:00Z'))).toBe(false);
    expect(scheduleHolds(night, at('2026-01-16T22:00:00Z'))).toBe(true); // Friday night
    expect(scheduleHolds(night, at('2026-01-17T05:59:00Z'))).toBe(true); // Saturday morning: started Friday
    expect(scheduleHolds(night, at('2026-01-17T06:00:00Z'))).toBe(false);
    expect(scheduleHolds(night, at('2026-01-16T03:00:00Z'))).toBe(false); // Friday morning: Thursday did not start one
  });

  it('reads 24:00 as the end of the day and an equal start and end as a whole day', () => {
    const evening = schedule({ timezone: 'UTC', windows: [{ start: '18:00', end: '24:00' }] });
    expect(scheduleHolds(evening, at('2026-01-16T23:59:59Z'))).toBe(true);
    expect(scheduleHolds(evening, at('2026-01-17T00:00:00Z'))).toBe(false);
    const allDay = schedule({ timezone: 'UTC', windows: [{ start: '12:00', end: '12:00', days: ['mon'] }] });
    expect(scheduleHolds(allDay, at('2026-01-13T11:59:00Z'))).toBe(true); // Tuesday morning
    expect(scheduleHolds(allDay, at('2026-01-13T12:00:00Z'))).toBe(false);
  });

  it('takes the nth weekday of the month, and -1 for the last', () => {
    const firstMonday = schedule({ timezone: 'UTC', windows: [{ nthWeekday: { weekday: 'mon', n: 1 } }] });
    expect(scheduleHolds(firstMonday, at('2026-06-01T10:00:00Z'))).toBe(true);
    expect(scheduleHolds(firstMonday, at('2026-06-08T10:00:00Z'))).toBe(false);
    const lastFriday = schedule({ timezone: 'UTC', windows: [{ nthWeekday: { weekday: 'fri', n: -1 } }] });
    // January 2026 has five Fridays (the 30th is the last), February four (the 27th).
    expect(scheduleHolds(lastFriday, at('2026-01-30T10:00:00Z'))).toBe(true);
    expect(scheduleHolds(lastFriday, at('2026-01-23T10:00:00Z'))).toBe(false);
    expect(scheduleHolds(lastFriday, at('2026-02-27T10:00:00Z'))).toBe(true);
    expect(scheduleHolds(lastFriday, at('2026-02-20T10:00:00Z'))).toBe(false);
    const fifthFriday = schedule({ timezone: 'UTC', windows: [{ nthWeekday: { weekday: 'fri', n: 5 } }] });
    expect(scheduleHolds(fifthFriday, at('2026-01-30T10:00:00Z'))).toBe(true);
    expect(scheduleHolds(fifthFriday, at('2026-02-27T10:00:00Z'))).toBe(false);
  });

  it('matches month days, months and the from/until dates a window may start on', () => {
    const monthEnd = schedule({ timezone: 'UTC', windows: [{ monthDays: [31], months: [1, 4] }] });
    expect(scheduleHolds(monthEnd, at('2026-01-31T10:00:00Z'))).toBe(true);
    expect(scheduleHolds(monthEnd, at('2026-04-30T10:00:00Z'))).toBe(false); // April has no 31st
    expect(scheduleHolds(monthEnd, at('2026-03-31T10:00:00Z'))).toBe(false);
    const season = schedule({
      timezone: 'UTC',
      windows: [{ start: '20:00', end: '02:00', from: '2026-12-01', until: '2026-12-24' }],
    });
    expect(scheduleHolds(season, at('2026-11-30T21:00:00Z'))).toBe(false);
    expect(scheduleHolds(season, at('2026-12-01T21:00:00Z'))).toBe(true);
    expect(scheduleHolds(season, at('2026-12-25T01:00:00Z'))).toBe(true); // started on the 24th
    expect(scheduleHolds(season, at('2026-12-25T21:00:00Z'))).toBe(false);
  });

  it('holds nothing on an excepted date, including the tail of the night before', () => {
    const night = schedule({
      timezone: 'Europe/Paris',
      windows: [{ start: '22:00', end: '06:00' }],
      except: [{ from: '2026-12-25', name: 'Christmas' }],
    });
    // Paris is UTC+1 in December.
    expect(scheduleHolds(night, at('2026-12-24T22:30:00Z'))).toBe(true); // 23:30 on the 24th
    expect(scheduleHolds(night, at('2026-12-24T23:30:00Z'))).toBe(false); // 00:30 on the 25th
    expect(scheduleHolds(night, at('2026-12-25T22:30:00Z'))).toBe(false); // 23:30 on the 25th
    expect(scheduleHolds(night, at('2026-12-26T02:00:00Z'))).toBe(false); // the 25th's window never started
    expect(scheduleHolds(night, at('2026-12-26T22:30:00Z'))).toBe(true);
    const range = schedule({
      timezone: 'UTC',
      windows: [{}],
      except: [{ from: '2026-08-03', until: '2026-08-07', name: 'freeze' }],
    });
    expect(scheduleHolds(range, at('2026-08-02T23:59:00Z'))).toBe(true);
    expect(scheduleHolds(range, at('2026-08-05T12:00:00Z'))).toBe(false);
    expect(scheduleHolds(range, at('2026-08-07T23:59:00Z'))).toBe(false);
    expect(scheduleHolds(range, at('2026-08-08T00:00:00Z'))).toBe(true);
  });
});

describe('daylight saving', () => {
  // Europe/Paris: 2026-03-29 02:00 CET → 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
  // America/New_York: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
  // Australia/Sydney: 2026-04-05 03:00 AEDT → 02:00 AEST (16:00Z on the 4th); 2026-10-04 02:00 AEST → 03:00 AEDT (16:00Z on the 3rd).
  const zone = (timezone: string, start: string, end: string) =>
    schedule({ timezone, windows: [{ start, end }] });

  it('spring forward: a window wholly in the skipped hour does not hold that day (Paris)', () => {
    const skipped = zone('Europe/Paris', '02:00', '02:30');
    for (let t = at('2026-03-28T23:00:00Z'); t < at('2026-03-29T04:00:00Z'); t += 60_000) {
      expect(scheduleHolds(skipped, t)).toBe(false);
    }
    expect(scheduleHolds(skipped, at('2026-03-30T00:15:00Z'))).toBe(true); // the next day, 02:15 CEST
  });

  it('spring forward: a start or end in the skipped hour is the moment the clock jumps (Paris, New York)', () => {
    const ending = zone('Europe/Paris', '01:30', '02:30');
    expect(scheduleHolds(ending, at('2026-03-29T00:30:00Z'))).toBe(true); // 01:30 CET
    expect(scheduleHolds(ending, at('2026-03-29T00:59:59Z'))).toBe(true);
    expect(scheduleHolds(ending, at('2026-03-29T01:00:00Z'))).toBe(false); // 03:00 CEST
    expect(edge(ending, '2026-03-29T00:40:00Z')).toBe('2026-03-29T01:00:00.000Z');
    const starting = zone('America/New_York', '02:30', '04:00');
    expect(scheduleHolds(starting, at('2026-03-08T06:59:00Z'))).toBe(false); // 01:59 EST
    expect(scheduleHolds(starting, at('2026-03-08T07:00:00Z'))).toBe(true); // 03:00 EDT
    expect(scheduleHolds(starting, at('2026-03-08T07:59:00Z'))).toBe(true);
    expect(scheduleHolds(starting, at('2026-03-08T08:00:00Z'))).toBe(false); // 04:00 EDT
    expect(edge(starting, '2026-03-08T05:00:00Z')).toBe('2026-03-08T07:00:00.000Z');
  });

  it('fall back: the repeated hour counts once, so a window ending in it does not start again (Paris, New York)', () => {
    const paris = zone('Europe/Paris', '01:00', '02:30');
    expect(scheduleHolds(paris, at('2026-10-24T23:00:00Z'))).toBe(true); // 01:00 CEST
    expect(scheduleHolds(paris, at('2026-10-25T00:29:00Z'))).toBe(true); // 02:29 CEST
    expect(scheduleHolds(paris, at('2026-10-25T00:30:00Z'))).toBe(false); // 02:30 CEST
    expect(scheduleHolds(paris, at('2026-10-25T01:15:00Z'))).toBe(false); // 02:15 CET, second pass
    expect(edge(paris, '2026-10-25T00:00:00Z')).toBe('2026-10-25T00:30:00.000Z');
    expect(edge(paris, '2026-10-25T00:30:00Z')).toBe('2026-10-26T00:00:00.000Z'); // 01:00 CET next day
    const ny = zone('America/New_York', '01:00', '01:30');
    expect(scheduleHolds(ny, at('2026-11-01T05:15:00Z'))).toBe(true); // 01:15 EDT
    expect(scheduleHolds(ny, at('2026-11-01T06:15:00Z'))).toBe(false); // 01:15 EST, second pass
  });

  it('fall back: a window spanning the repeated hour lasts an hour longer in real time (New York)', () => {
    const night = zone('America/New_York', '00:00', '03:00');
    expect(scheduleHolds(night, at('2026-11-01T04:00:00Z'))).toBe(true); // 00:00 EDT
    expect(scheduleHolds(night, at('2026-11-01T07:59:00Z'))).toBe(true); // 02:59 EST
    expect(scheduleHolds(night, at('2026-11-01T08:00:00Z'))).toBe(false); // 03:00 EST
    expect(edge(night, '2026-11-01T04:30:00Z')).toBe('2026-11-01T08:00:00.000Z');
  });

  it('southern hemisphere: Sydney falls back in April and springs forward in October', () => {
    const fall = zone('Australia/Sydney', '02:00', '02:30');
    expect(scheduleHolds(fall, at('2026-04-04T15:15:00Z'))).toBe(true); // 02:15 AEDT, first pass
    expect(scheduleHolds(fall, at('2026-04-04T16:15:00Z'))).toBe(false); // 02:15 AEST, second pass
    expect(edge(fall, '2026-04-04T15:00:00Z')).toBe('2026-04-04T15:30:00.000Z');
    const spring = zone('Australia/Sydney', '02:00', '02:30');
    for (let t = at('2026-10-03T14:00:00Z'); t < at('2026-10-03T18:00:00Z'); t += 60_000) {
      expect(scheduleHolds(spring, t)).toBe(false);
    }
    const across = zone('Australia/Sydney', '01:00', '04:00');
    expect(scheduleHolds(across, at('2026-10-03T15:00:00Z'))).toBe(true); // 01:00 AEST
    expect(scheduleHolds(across, at('2026-10-03T16:00:00Z'))).toBe(true); // 03:00 AEDT
    expect(scheduleHolds(across, at('2026-10-03T17:00:00Z'))).toBe(false); // 04:00 AEDT: two real hours
  });
});

describe('nextScheduleEdge', () => {
  it('finds no edge where one window ends and the next begins', () => {
    const day = schedule({
      timezone: 'Europe/Paris',
      windows: [
        { start: '09:00', end: '12:00', days: ['mon'] },
        { start: '12:00', end: '17:00', days: ['mon'] },
      ],
    });
    expect(edge(day, '2026-01-12T08:30:00Z')).toBe('2026-01-12T16:00:00.000Z'); // Monday 09:30 → 17:00
    const nights = schedule({
      timezone: 'UTC',
      windows: [
        { start: '22:00', end: '24:00', days: ['fri'] },
        { start: '00:00', end: '06:00', days: ['sat'] },
        { start: '06:00', end: '08:00', days: ['sat'] },
      ],
    });
    expect(edge(nights, '2026-01-16T23:00:00Z')).toBe('2026-01-17T08:00:00.000Z');
    expect(edge(nights, '2026-01-16T12:00:00Z')).toBe('2026-01-16T22:00:00.000Z');
  });

  it('finds the start of the next window, days ahead', () => {
    const firstMonday = schedule({
      timezone: 'America/New_York',
      windows: [{ start: '08:00', end: '10:00', nthWeekday: { weekday: 'mon', n: 1 } }],
    });
    expect(edge(firstMonday, '2026-06-02T12:00:00Z')).toBe('2026-07-06T12:00:00.000Z'); // 08:00 EDT
  });

  it('stops a stretch at midnight before an excepted date', () => {
    const always = schedule({ timezone: 'UTC', windows: [{}], except: [{ from: '2026-12-25' }] });
    expect(edge(always, '2026-12-20T10:00:00Z')).toBe('2026-12-25T00:00:00.000Z');
    expect(edge(always, '2026-12-25T10:00:00Z')).toBe('2026-12-26T00:00:00.000Z');
  });

  it('has no edge for a schedule that always holds or never will again', () => {
    expect(
      edge(schedule({ timezone: 'Europe/Paris', windows: [{}] }), '2026-03-29T00:00:00Z'),
    ).toBeUndefined();
    expect(
      edge(schedule({ timezone: 'UTC', windows: [{ until: '2020-01-01' }] }), '2026-01-01T00:00:00Z'),
    ).toBeUndefined();
  });

  it('finds 29 February, years ahead', () => {
    const leap = schedule({ timezone: 'UTC', windows: [{ months: [2], monthDays: [29] }] });
    expect(edge(leap, '2029-03-01T00:00:00Z')).toBe('2032-02-29T00:00:00.000Z');
  });

  const ZONES = [
    'UTC',
    'Europe/Paris',
    'America/New_York',
    'Australia/Sydney',
    'Australia/Lord_Howe',
    'Asia/Kolkata',
  ];
  const clock = fc
    .tuple(fc.integer({ min: 0, max: 24 }), fc.constantFrom(0, 15, 30, 45))
    .map(([h, m]) => (h === 24 ? '24:00' : `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`));
  const windowArb = fc.record(
    {
      start: clock.filter((c) => c !== '24:00'),
      end: clock,
      days: fc.uniqueArray(fc.constantFrom('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'), {
        minLength: 1,
      }),
      nthWeekday: fc.record({
        weekday: fc.constantFrom('mon', 'sun'),
        n: fc.constantFrom(1, 2, -1),
      }),
    },
    { requiredKeys: ['start', 'end'] },
  );
  const scheduleArb = fc.record({
    timezone: fc.constantFrom(...ZONES),
    windows: fc.array(windowArb, { minLength: 1, maxLength: 3 }),
    except: fc.array(
      fc.date({ min: new Date('2026-01-01'), max: new Date('2027-12-31'), noInvalidDate: true }).map((d) => ({
        from: d.toISOString().slice(0, 10),
      })),
      { maxLength: 2 },
    ),
  });
  // Instants around the DST changes of 2026 as well as anywhere in 2026-2027.
  const instant = fc.oneof(
    fc.integer({ min: at('2026-01-01T00:00:00Z'), max: at('2027-12-31T00:00:00Z') }),
    fc
      .constantFrom(
        '2026-03-08T07:00:00Z',
        '2026-03-29T01:00:00Z',
        '2026-04-04T16:00:00Z',
        '2026-10-03T16:00:00Z',
        '2026-10-25T01:00:00Z',
        '2026-11-01T06:00:00Z',
      )
      .chain((iso) => fc.integer({ min: at(iso) - 86_400_000, max: at(iso) + 86_400_000 })),
  );

  it('property: a schedule read at many instants in any order answers as one read at each afresh', () => {
    fc.assert(
      fc.property(scheduleArb, fc.array(instant, { minLength: 1, maxLength: 30 }), (input, instants) => {
        const shared = schedule(input);
        for (const t of instants) {
          // A copy is compiled anew, with nothing remembered from an earlier instant.
          expect(scheduleHolds(shared, t)).toBe(scheduleHolds({ ...shared }, t));
          expect(scheduleHolds(shared, t + 1)).toBe(scheduleHolds({ ...shared }, t + 1));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('property: the verdict is constant from an instant to the next edge, and changes at the edge', () => {
    fc.assert(
      fc.property(
        scheduleArb,
        instant,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
        (input, now, fractions) => {
          const s = schedule(input);
          const verdict = scheduleHolds(s, now);
          const next = nextScheduleEdge(s, now);
          const until = next ?? now + 30 * 86_400_000;
          for (const f of fractions) {
            const t = now + Math.floor(f * (until - now - 1));
            expect(scheduleHolds(s, t)).toBe(verdict);
          }
          expect(scheduleHolds(s, until - 1)).toBe(verdict);
          if (next !== undefined) {
            expect(next).toBeGreaterThan(now);
            expect(scheduleHolds(s, next)).toBe(!verdict);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
