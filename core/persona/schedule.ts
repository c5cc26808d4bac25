// Time windows read on the wall clock of a schedule's IANA time zone.
//
// A window that matches day D runs, in real time, from the first instant the zone's clock shows
// D + start to the first instant after that it shows D + end (an end at or before the start is
// on the next day). Reading windows as stretches of real time is what settles daylight saving:
// a start or end in the hour skipped in spring is the moment the clock jumps (03:00 for 02:30),
// so a window wholly inside it does not hold that day; in autumn's repeated hour the clock
// first shows 02:30 in the first pass, so a window ending at 02:30 ends then and does not start
// again in the second pass. The rules are written down for users in CRITERIA.md.
//
// Evaluation is on the hot path of a fleet's decisions, so it allocates nothing once warm: the
// zone's UTC offset is read through Intl once per quarter hour of UTC (cached per zone), local
// dates are computed arithmetically, and each window keeps the instants of the three days
// around the last evaluated one.
import type { Schedule, TimeWindow } from './schema.js';
import { WEEKDAYS } from './schema.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
// Every offset in use since the 1970s changes on a quarter hour of UTC (offsets themselves
// are whole quarter hours), so the offset at a quarter hour's start holds for all of it.
const BUCKET = 900_000;
const MAX_CACHED_OFFSETS = 4096;
/** How far ahead nextScheduleEdge looks: four years and a week, so that 29 February is found. */
const EDGE_HORIZON_DAYS = 4 * 366 + 7;
const EDGE_CHUNK_DAYS = 7;

class ZoneClock {
  private readonly format: Intl.DateTimeFormat;
  private readonly offsets = new Map<number, number>();
  private lastBucket = Number.NaN;
  private lastOffset = 0;

  constructor(readonly zone: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The zone's offset from UTC at instant `t`, in ms (local = t + offset). */
  offsetAt(t: number): number {
    const bucket = Math.floor(t / BUCKET);
    if (bucket === this.lastBucket) return this.lastOffset;
    let offset = this.offsets.get(bucket);
    if (offset === undefined) {
      offset = this.read(bucket * BUCKET);
      if (this.offsets.size >= MAX_CACHED_OFFSETS) this.offsets.clear();
      this.offsets.set(bucket, offset);
    }
    this.lastBucket = bucket;
    this.lastOffset = offset;
    return offset;
  }

  private read(t: number): number {
    let year = 1970;
    let month = 1;
    let day = 1;
    let hour = 0;
    let minute = 0;
    let second = 0;
    for (const part of this.format.formatToParts(t)) {
      const n = Number(part.value);
      if (part.type === 'year') year = n;
      else if (part.type === 'month') month = n;
      else if (part.type === 'day') day = n;
      else if (part.type === 'hour') hour = n;
      else if (part.type === 'minute') minute = n;
      else if (part.type === 'second') second = n;
    }
    const local = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
    local.setUTCFullYear(year); // Date.UTC reads years 0 to 99 as 1900 to 1999
    return local.getTime() - Math.floor(t / 1000) * 1000;
  }

  /** The first instant at which the zone's clock shows `wall` or later (`wall` in local ms). */
  firstInstantAt(wall: number): number {
    const before = this.offsetAt(wall - DAY);
    const after = this.offsetAt(wall + DAY);
    if (before === after) return wall - before;
    const early = wall - before;
    const late = wall - after;
    const earlyValid = this.offsetAt(early) === before;
    const lateValid = this.offsetAt(late) === after;
    if (earlyValid && lateValid) return Math.min(early, late); // repeated: the first pass
    if (earlyValid) return early;
    if (lateValid) return late;
    // Skipped (spring forward): the clock jumps over `wall`, at the change of offset.
    let t = Math.ceil(Math.min(early, late) / BUCKET) * BUCKET;
    const end = Math.max(early, late);
    while (t < end && this.offsetAt(t) !== after) t += BUCKET;
    return t;
  }
}

const clocks = new Map<string, ZoneClock>();
function clockFor(zone: string): ZoneClock {
  let clock = clocks.get(zone);
  if (clock === undefined) {
    clock = new ZoneClock(zone);
    clocks.set(zone, clock);
  }
  return clock;
}

// Civil date of a day number (days since 1970-01-01), after Howard Hinnant's algorithm; the
// result goes to these module fields rather than a new object per call.
let civilYear = 1970;
let civilMonth = 1;
let civilDay = 1;
function civil(days: number): void {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  civilDay = doy - Math.floor((153 * mp + 2) / 5) + 1;
  civilMonth = mp < 10 ? mp + 3 : mp - 9;
  civilYear = yoe + era * 400 + (civilMonth <= 2 ? 1 : 0);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Monday 0 to Sunday 6; 1970-01-01 was a Thursday. */
function weekdayOf(days: number): number {
  return (((days + 3) % 7) + 7) % 7;
}

/** Day number of a "YYYY-MM-DD" date. */
export function dayNumber(date: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(2000, m - 1, d));
  t.setUTCFullYear(y);
  return Math.round(t.getTime() / DAY);
}

function minutes(clock: string): number {
  const [h, m] = clock.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

class CompiledWindow {
  readonly start: number;
  /** Minutes after the start day's midnight; past 1440 on the next day. */
  readonly end: number;
  private readonly dayMask: number;
  private readonly nthWeekday: number;
  private readonly nth: number;
  private readonly monthDayMask: number;
  private readonly monthMask: number;
  private readonly from: number;
  private readonly until: number;
  // The window's stretches starting the day before, on and the day after `cachedDay`.
  cachedDay = Number.NaN;
  readonly starts = new Float64Array(3);
  readonly ends = new Float64Array(3);

  constructor(window: TimeWindow) {
    this.start = minutes(window.start ?? '00:00');
    const end = minutes(window.end ?? '24:00');
    this.end = end > this.start ? end : end + 1440;
    this.dayMask = window.days ? window.days.reduce((mask, d) => mask | (1 << WEEKDAYS.indexOf(d)), 0) : 0x7f;
    this.nthWeekday = window.nthWeekday ? WEEKDAYS.indexOf(window.nthWeekday.weekday) : -1;
    this.nth = window.nthWeekday?.n ?? 0;
    this.monthDayMask = window.monthDays ? window.monthDays.reduce((mask, d) => mask | (1 << d), 0) : -1;
    this.monthMask = window.months ? window.months.reduce((mask, m) => mask | (1 << m), 0) : -1;
    this.from = window.from ? dayNumber(window.from) : Number.NEGATIVE_INFINITY;
    this.until = window.until ? dayNumber(window.until) : Number.POSITIVE_INFINITY;
  }

  /** Whether the window starts on day `days` (holidays aside). */
  startsOn(days: number): boolean {
    if (days < this.from || days > this.until) return false;
    const weekday = weekdayOf(days);
    if ((this.dayMask & (1 << weekday)) === 0) return false;
    civil(days);
    if ((this.monthMask & (1 << civilMonth)) === 0) return false;
    if ((this.monthDayMask & (1 << civilDay)) === 0) return false;
    if (this.nthWeekday >= 0) {
      if (weekday !== this.nthWeekday) return false;
      if (this.nth === -1) return civilDay + 7 > daysInMonth(civilYear, civilMonth);
      return Math.ceil(civilDay / 7) === this.nth;
    }
    return true;
  }
}

export class CompiledSchedule {
  readonly clock: ZoneClock;
  readonly windows: readonly CompiledWindow[];
  /** Inclusive day-number ranges, flattened: from0, until0, from1, until1, ... */
  private readonly except: Float64Array;

  constructor(readonly source: Schedule) {
    this.clock = clockFor(source.timezone ?? 'UTC');
    this.windows = source.windows.map((w) => new CompiledWindow(w));
    const except = source.except ?? [];
    this.except = new Float64Array(except.length * 2);
    except.forEach((range, i) => {
      this.except[2 * i] = dayNumber(range.from);
      this.except[2 * i + 1] = dayNumber(range.until ?? range.from);
    });
  }

  excepted(days: number): boolean {
    const except = this.except;
    for (let i = 0; i < except.length; i += 2) {
      if (days >= (except[i] as number) && days <= (except[i + 1] as number)) return true;
    }
    return false;
  }

  /** The local day number of instant `now`. */
  dayOf(now: number): number {
    return Math.floor((now + this.clock.offsetAt(now)) / DAY);
  }

  // The stretch of real time around the last instant evaluated over which the answer cannot
  // change (no window starts or ends in it and the local day does not change): a fleet's
  // evaluation reads the same schedule for many hosts within seconds of each other.
  private steadyFrom = Number.NaN;
  private steadyUntil = Number.NaN;
  private steadyWindow = -1;

  /** Index of a window holding at `now`, or -1. */
  holding(now: number): number {
    if (now >= this.steadyFrom && now < this.steadyUntil) return this.steadyWindow;
    const today = this.dayOf(now);
    const clock = this.clock;
    let from = clock.firstInstantAt(today * DAY);
    let until = clock.firstInstantAt((today + 1) * DAY);
    let found = -1;
    const windows = this.windows;
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i] as CompiledWindow;
      if (w.cachedDay !== today) this.fill(w, today);
      const starts = w.starts;
      const ends = w.ends;
      // Only windows that start the day before, on or after the local day can hold: see fill.
      for (let k = 0; k < 3; k++) {
        const start = starts[k] as number;
        const end = ends[k] as number;
        if (found < 0 && now >= start && now < end) found = i;
        if (start <= now) from = Math.max(from, start);
        else if (start < until) until = start;
        if (end <= now) from = Math.max(from, end);
        else if (end < until) until = end;
      }
    }
    if (this.excepted(today)) found = -1;
    // Where the offset changes within the day, the day's bounds are not read again: no memo.
    if (clock.offsetAt(from) !== clock.offsetAt(until - 1)) until = from;
    this.steadyFrom = from;
    this.steadyUntil = until;
    this.steadyWindow = found;
    return found;
  }

  holds(now: number): boolean {
    return this.holding(now) >= 0;
  }

  /** The real-time stretch of window `w` starting on `days`, or NaN when it does not start then. */
  private stretch(
    w: CompiledWindow,
    days: number,
    starts: Float64Array,
    ends: Float64Array,
    k: number,
  ): void {
    if (!w.startsOn(days) || this.excepted(days)) {
      starts[k] = Number.NaN;
      ends[k] = Number.NaN;
      return;
    }
    starts[k] = this.clock.firstInstantAt(days * DAY + w.start * MINUTE);
    ends[k] = this.clock.firstInstantAt(days * DAY + w.end * MINUTE);
  }

  private fill(w: CompiledWindow, today: number): void {
    // A window ends at most at the midnight after its start day's, so one that started two
    // days before has ended; one starting tomorrow can hold today only where autumn's clock
    // change crosses midnight and shows today's date again after tomorrow's has begun.
    for (let k = 0; k < 3; k++) this.stretch(w, today - 1 + k, w.starts, w.ends, k);
    w.cachedDay = today;
  }

  nextEdge(now: number): number | undefined {
    const verdict = this.holds(now);
    const today = this.dayOf(now);
    const one = new Float64Array(1);
    const oneEnd = new Float64Array(1);
    let pending: number[] = [];
    for (let first = today - 1; first <= today + EDGE_HORIZON_DAYS; first += EDGE_CHUNK_DAYS) {
      const last = first + EDGE_CHUNK_DAYS;
      for (let d = first; d < last; d++) {
        for (const w of this.windows) {
          this.stretch(w, d, one, oneEnd, 0);
          const s = one[0] as number;
          const e = oneEnd[0] as number;
          if (s < e) pending.push(s, e);
        }
        if (this.excepted(d)) {
          pending.push(this.clock.firstInstantAt(d * DAY), this.clock.firstInstantAt((d + 1) * DAY));
        }
      }
      // Every window starting from day `last` on starts at or after this instant, so the
      // candidates before it are all known.
      const complete = this.clock.firstInstantAt(last * DAY);
      pending.sort((a, b) => a - b);
      const later: number[] = [];
      for (const c of pending) {
        if (c >= complete) later.push(c);
        else if (c > now && this.holds(c) !== verdict) return c;
      }
      pending = later;
    }
    return undefined;
  }

  /** The zone's wall clock at `now`, "YYYY-MM-DD HH:MM ddd", for reasons. */
  wallClock(now: number): string {
    const local = now + this.clock.offsetAt(now);
    const days = Math.floor(local / DAY);
    civil(days);
    const minute = Math.floor((local - days * DAY) / MINUTE);
    return `${civilYear}-${pad(civilMonth)}-${pad(civilDay)} ${pad(Math.floor(minute / 60))}:${pad(minute % 60)} ${WEEKDAYS[weekdayOf(days)]}`;
  }
}

const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

const compiled = new WeakMap<Schedule, CompiledSchedule>();

/** The compiled form of `schedule`, built once per schedule object. */
export function compileSchedule(schedule: Schedule): CompiledSchedule {
  let c = compiled.get(schedule);
  if (c === undefined) {
    c = new CompiledSchedule(schedule);
    compiled.set(schedule, c);
  }
  return c;
}

/** Whether a window of `schedule` holds at `now` (epoch ms). */
export function scheduleHolds(schedule: Schedule, now: number): boolean {
  return compileSchedule(schedule).holds(now);
}

/**
 * The next instant after `now` at which the schedule's verdict changes, or undefined when it
 * does not change within four years. Windows that touch or overlap are one stretch: there is
 * no edge where one ends and the next begins.
 */
export function nextScheduleEdge(schedule: Schedule, now: number): number | undefined {
  return compileSchedule(schedule).nextEdge(now);
}
