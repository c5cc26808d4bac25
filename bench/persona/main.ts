// The persona evaluation benchmark: 100,000 hosts × 20 personas each, decided by the compiled
// criteria (core/persona/evaluate.ts) and by the same rules in json-rules-engine over the same
// facts, in the same run. Prints markdown and keeps a copy in reports/persona-bench.md (which
// git ignores).
//
//   node --import tsx bench/persona/main.ts        (npm run bench:persona)
//
// Each engine runs in a process of its own (this file, started again with its name), so that
// peak RSS and heap are that engine's. json-rules-engine evaluates asynchronously and is slow:
// it runs on a bounded sample of hosts and its rate is extrapolated per second, as said in the
// output. Both engines' decisions are compared on that sample.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Engine, type NestedCondition, type RuleProperties, type TopLevelCondition } from 'json-rules-engine';
import { type CompiledPersona, compilePersona, decide } from '../../core/persona/evaluate.js';
import {
  API_VERSION,
  type CriterionInput,
  type EvaluationInput,
  type HostPersonaState,
  type MetricSeries,
  Persona,
  type PersonaInput,
  WEEKDAYS,
} from '../../core/persona/schema.js';
import { createReport } from '../report.js';
import { rng } from '../rng.js';

const HOSTS = 100_000;
const PERSONAS_PER_HOST = 20;
/** Hosts share persona sets by group, as a fleet's roles do. */
const GROUPS = 50;
/** json-rules-engine's bounded sample, and the sample both engines' decisions are compared on. */
const SAMPLE = 2_000;
const PASSES = 3;
const INTERLEAVED_ROUNDS = 5;
const SAMPLES_PER_METRIC = 20;
const INTERVAL_MS = 60_000;
/** One evaluation tick for the whole fleet: 15:30 in Paris, 09:30 in New York, 22:30 in Tokyo. */
const NOW = Date.parse('2026-06-10T13:30:00Z');
const ZONES = ['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney', 'UTC'] as const;
const HOLIDAYS = ['2026-12-25', '2026-05-01'];
const SEED = 11;
/** The share of hosts whose conditions changed since the last tick (the rest are where their criteria put them). */
const CHANGED = 0.05;

// ---------------------------------------------------------------------- the fleet's personas

interface Window {
  readonly days: readonly (typeof WEEKDAYS)[number][];
  readonly start: string;
  readonly end: string;
}
const WEEKDAYS_ONLY = WEEKDAYS.slice(0, 5);
const minutes = (clock: string) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3));

function schedule(timezone: string, windows: readonly Window[]): CriterionInput {
  return {
    schedule: {
      timezone,
      windows: windows.map((w) => ({ ...w, days: [...w.days] })),
      except: HOLIDAYS.map((from) => ({ from })),
    },
  };
}

/** Twenty personas of group `g`: four kinds of realistic criteria at varied thresholds, and a default. */
function groupPersonas(g: number): PersonaInput[] {
  const zone = ZONES[g % ZONES.length] as string;
  const r = rng(SEED * 1000 + g);
  const out: PersonaInput[] = [];
  for (let k = 0; k < PERSONAS_PER_HOST - 1; k++) {
    let criteria: CriterionInput;
    switch (k % 4) {
      case 0: // business hours under load, unless a deploy freeze is on
        criteria = {
          all: [
            schedule(zone, [
              { days: WEEKDAYS_ONLY, start: `0${r.int(7, 9)}:00`, end: `${r.int(17, 19)}:00` },
            ]),
            {
              any: [
                {
                  metric: {
                    name: 'cpu.utilization',
                    op: '>',
                    value: r.int(55, 85),
                    forSeconds: 300,
                    statistic: 'average',
                  },
                },
                {
                  metric: { name: 'requests.per_second', op: '>', value: r.int(800, 1800), forSeconds: 600 },
                },
              ],
            },
            { not: { signal: { name: 'deploy.freeze', op: '==', value: true } } },
          ],
        };
        break;
      case 1: // quiet nights
        criteria = {
          all: [
            schedule(zone, [
              { days: WEEKDAYS, start: '22:00', end: '24:00' },
              { days: WEEKDAYS, start: '00:00', end: `0${r.int(5, 7)}:00` },
            ]),
            {
              metric: {
                name: 'cpu.utilization',
                op: '<',
                value: r.int(20, 40),
                forSeconds: 900,
                statistic: 'max',
              },
            },
          ],
        };
        break;
      case 2: // the load balancer forecasts a peak and memory is already high
        criteria = {
          all: [
            { signal: { name: 'lb/forecast', op: '>=', value: r.int(1000, 2800), maxAgeSeconds: 900 } },
            {
              metric: {
                name: 'memory.utilization',
                op: '>',
                value: r.int(50, 75),
                forSeconds: 300,
                statistic: 'min',
              },
            },
          ],
        };
        break;
      default: // saturated, or an incident declared
        criteria = {
          any: [
            {
              all: [
                { metric: { name: 'cpu.utilization', op: '>', value: r.int(80, 92), forSeconds: 120 } },
                { metric: { name: 'memory.utilization', op: '>', value: r.int(70, 90) } },
              ],
            },
            { signal: { name: 'incident', op: '==', value: 'sev1' } },
          ],
        };
    }
    out.push(personaDoc(`g${g}-p${k}`, { priority: 10 + k * 10, criteria }));
  }
  out.push(personaDoc(`g${g}-base`, { default: true, priority: 1000 }));
  return out;
}

function personaDoc(name: string, spec: Partial<PersonaInput['spec']>): PersonaInput {
  return {
    apiVersion: API_VERSION,
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: { labels: { group: name.split('-')[0] as string } }, parameters: {}, ...spec },
  };
}

// ------------------------------------------------------------------------- the fleet's hosts

interface Host {
  readonly name: string;
  readonly group: number;
  readonly metrics: Readonly<Record<string, MetricSeries>>;
  readonly signals: Readonly<Record<string, { value: number | string | boolean; at: number }>>;
  /** Whether the host's conditions changed since the last tick: it holds some other persona. */
  readonly changed: boolean;
  /** The persona a changed host holds, by index in its group's. */
  readonly other: number;
  /** When the host is evaluated: a fleet tick visits hosts one after the other, not at one instant. */
  readonly now: number;
}

const TIMES = Float64Array.from(
  { length: SAMPLES_PER_METRIC },
  (_, i) => NOW - (SAMPLES_PER_METRIC - 1 - i) * INTERVAL_MS,
);

/** Host `i`, the same in every process: its own seed, its own load. */
function host(i: number): Host {
  const r = rng(SEED * 1_000_003 + i);
  const level = r.next();
  const series = (mean: number, spread: number): MetricSeries => {
    const values = new Float64Array(SAMPLES_PER_METRIC);
    for (let k = 0; k < SAMPLES_PER_METRIC; k++)
      values[k] = Math.max(0, mean + (r.next() - 0.5) * 2 * spread);
    return { times: TIMES, values, intervalSeconds: INTERVAL_MS / 1000 };
  };
  return {
    name: `host-${i}`,
    group: i % GROUPS,
    metrics: {
      'cpu.utilization': series(5 + level * 90, 6),
      'memory.utilization': series(30 + r.next() * 60, 4),
      'requests.per_second': series(level * 2000, 150),
    },
    signals: {
      'deploy.freeze': { value: r.chance(0.1), at: NOW - 3_600_000 },
      'lb/forecast': { value: r.int(0, 3000), at: NOW - r.int(0, 1200) * 1000 },
      incident: { value: r.chance(0.02) ? 'sev1' : 'none', at: NOW - 600_000 },
    },
    changed: r.chance(CHANGED),
    other: r.int(0, PERSONAS_PER_HOST - 1),
    now: NOW + (i % 1000),
  };
}

/** What the evaluation service hands decide() for one host: its samples and signals, read synchronously. */
class HostInput implements EvaluationInput {
  constructor(
    private readonly h: Host,
    readonly now: number,
  ) {}
  metric(name: string) {
    return this.h.metrics[name];
  }
  signal(name: string) {
    return this.h.signals[name];
  }
  predicted() {
    return undefined;
  }
}
const inputOf = (h: Host): EvaluationInput => new HostInput(h, h.now);

// --------------------------------------------------------- the same rules in json-rules-engine

const OPERATORS = {
  '>': 'greaterThan',
  '>=': 'greaterThanInclusive',
  '<': 'lessThan',
  '<=': 'lessThanInclusive',
  '==': 'equal',
  '!=': 'notEqual',
} as const;

function toCondition(c: CriterionInput): NestedCondition {
  if ('all' in c) return { all: c.all.map(toCondition) };
  if ('any' in c) return { any: c.any.map(toCondition) };
  if ('not' in c) return { not: toCondition(c.not) };
  if ('metric' in c) {
    const m = c.metric;
    return {
      fact: 'metric',
      params: { name: m.name, forSeconds: m.forSeconds ?? 0, statistic: m.statistic ?? 'each', op: m.op },
      operator: OPERATORS[m.op],
      value: m.value,
    };
  }
  if ('signal' in c) {
    const s = c.signal;
    return {
      fact: 'signal',
      params: { name: s.name, maxAgeSeconds: s.maxAgeSeconds ?? null },
      operator: OPERATORS[s.op],
      value: s.value,
    };
  }
  if ('schedule' in c) {
    const s = c.schedule;
    const params = { timezone: s.timezone ?? 'UTC' };
    return {
      all: [
        {
          any: s.windows.map((w) => ({
            all: [
              { fact: 'clock', params, path: '$.weekday', operator: 'in', value: [...(w.days ?? WEEKDAYS)] },
              {
                fact: 'clock',
                params,
                path: '$.minute',
                operator: 'greaterThanInclusive',
                value: minutes(w.start ?? '00:00'),
              },
              {
                fact: 'clock',
                params,
                path: '$.minute',
                operator: 'lessThan',
                value: minutes(w.end ?? '24:00'),
              },
            ],
          })),
        },
        {
          fact: 'clock',
          params,
          path: '$.date',
          operator: 'notIn',
          value: (s.except ?? []).map((e) => e.from),
        },
      ],
    };
  }
  throw new Error('the benchmark does not use predicted criteria');
}

function toRule(p: PersonaInput): RuleProperties | undefined {
  if (p.spec.criteria === undefined) return undefined;
  return {
    name: p.metadata.name,
    conditions: toCondition(p.spec.criteria) as TopLevelCondition,
    event: { type: p.metadata.name, params: { priority: p.spec.priority ?? 100 } },
  };
}

const formats = new Map<string, Intl.DateTimeFormat>();
function clock(timezone: string, now: number) {
  let format = formats.get(timezone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: 'numeric',
      minute: 'numeric',
    });
    formats.set(timezone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(now).map((p) => [p.type, p.value]));
  return {
    weekday: String(parts.weekday).toLowerCase(),
    minute: Number(parts.hour) * 60 + Number(parts.minute),
    date: `${parts.year}-${parts.month}-${parts.day}`,
  };
}

/** The statistic a metric condition compares, computed as a json-rules-engine fact would. */
interface MetricParams {
  readonly name: string;
  readonly forSeconds: number;
  readonly statistic: string;
  readonly op: string;
}
function metricFact(h: Host, now: number, p: MetricParams) {
  const s = h.metrics[p.name];
  if (s === undefined) return undefined;
  const all = Array.from(s.times, (t, i) => ({ t, v: s.values[i] as number })).filter((x) => x.t <= now);
  // forSeconds 0: the latest sample.
  if (p.forSeconds === 0) return all[all.length - 1]?.v;
  const samples = all.filter((x) => x.t >= now - p.forSeconds * 1000);
  if (samples.length === 0) return undefined;
  const values = samples.map((x) => x.v);
  const statistic = p.statistic === 'each' ? (p.op.startsWith('<') ? 'max' : 'min') : p.statistic;
  if (statistic === 'average') return values.reduce((a, b) => a + b, 0) / values.length;
  return statistic === 'max' ? Math.max(...values) : Math.min(...values);
}

function jsonEngine(personas: readonly PersonaInput[]): Engine {
  const engine = new Engine([], { allowUndefinedFacts: true });
  for (const p of personas) {
    const rule = toRule(p);
    if (rule) engine.addRule(rule);
  }
  engine.addFact('clock', (params, almanac) =>
    almanac.factValue<number>('now').then((now) => clock(String(params.timezone), now)),
  );
  engine.addFact('metric', (params, almanac) =>
    Promise.all([almanac.factValue<Host>('host'), almanac.factValue<number>('now')]).then(([h, now]) =>
      metricFact(h, now, params as MetricParams),
    ),
  );
  engine.addFact('signal', (params, almanac) =>
    Promise.all([almanac.factValue<Host>('host'), almanac.factValue<number>('now')]).then(([h, now]) => {
      const s = h.signals[String(params.name)];
      if (
        s === undefined ||
        (params.maxAgeSeconds !== null && now - s.at > Number(params.maxAgeSeconds) * 1000)
      )
        return undefined;
      return s.value;
    }),
  );
  return engine;
}

async function jsonDecision(engine: Engine, h: Host, fallback: string): Promise<string> {
  const { events } = await engine.run({ host: h, now: h.now });
  let best: { name: string; priority: number } | undefined;
  for (const e of events) {
    const priority = Number(e.params?.priority);
    if (
      best === undefined ||
      priority < best.priority ||
      (priority === best.priority && e.type < best.name)
    ) {
      best = { name: e.type, priority };
    }
  }
  return best?.name ?? fallback;
}

// ------------------------------------------------------------------------------ measurement

interface Run {
  readonly engine: string;
  readonly hosts: number;
  readonly decisions: number;
  readonly seconds: number;
  readonly rssBefore: number;
  readonly heapBefore: number;
  readonly peakRss: number;
  readonly peakHeap: number;
  readonly actions?: Record<string, number>;
  /** Compiled only: a pass in which only the reasons of the decisions the service records are read. */
  readonly recordedSeconds?: number;
  readonly reasons?: number;
  /** Compiled only: one pass testing every persona of every host, without deciding. */
  readonly testSeconds?: number;
  readonly trues?: number;
  readonly choices?: readonly string[];
}

const gc = (globalThis as { gc?: () => void }).gc;
let peakHeap = 0;
const sampleHeap = () => {
  const heap = process.memoryUsage().heapUsed;
  if (heap > peakHeap) peakHeap = heap;
};

function before() {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  peakHeap = m.heapUsed;
  return { rssBefore: m.rss, heapBefore: m.heapUsed };
}

function runCompiled(): Run {
  const groups = Array.from({ length: GROUPS }, (_, g) =>
    groupPersonas(g).map((doc, k) => compilePersona(Persona.parse(doc), k + 1)),
  );
  const hosts = Array.from({ length: HOSTS }, (_, i) => host(i));
  const labels = Array.from({ length: GROUPS }, (_, g) => ({ group: `g${g}` }));
  const ref = (h: Host) => ({ name: h.name, labels: labels[h.group] as { group: string } });
  // A fleet in its steady state: each host holds what its criteria chose at the last tick,
  // but for the few whose conditions changed since.
  const states: HostPersonaState[] = hosts.map((h) => {
    const personas = groups[h.group] as CompiledPersona[];
    const current = h.changed
      ? (personas[h.other] as CompiledPersona).name
      : decide(ref(h), personas, undefined, inputOf(h)).decision.to;
    return { host: h.name, current, since: NOW - 7_200_000 };
  });
  let reasons = 0;
  /** `read`: whose reasons are read (built): every decision's, or those the service records. */
  const pass = (count: number, read: 'all' | 'recorded'): Record<string, number> => {
    const actions: Record<string, number> = {};
    for (let i = 0; i < count; i++) {
      const h = hosts[i] as Host;
      const { decision } = decide(ref(h), groups[h.group] as CompiledPersona[], states[i], inputOf(h));
      actions[decision.action] = (actions[decision.action] ?? 0) + 1;
      if (read === 'all' || decision.action !== 'stay') reasons += decision.reasons.length;
      if ((i & 1023) === 0) sampleHeap();
    }
    return actions;
  };
  pass(10_000, 'all'); // warm-up
  const memory = before();
  const timed = (read: 'all' | 'recorded') => {
    const times: number[] = [];
    let actions: Record<string, number> = {};
    for (let p = 0; p < PASSES; p++) {
      const start = performance.now();
      actions = pass(HOSTS, read);
      times.push((performance.now() - start) / 1000);
    }
    times.sort((a, b) => a - b);
    return { seconds: times[Math.floor(times.length / 2)] as number, actions };
  };
  const every = timed('all');
  const recorded = timed('recorded');
  const actions = every.actions;
  sampleHeap();
  // The criteria alone: every persona of every host tested, no decision, no reasons.
  let trues = 0;
  const testStart = performance.now();
  for (let i = 0; i < HOSTS; i++) {
    const h = hosts[i] as Host;
    const input = inputOf(h);
    for (const p of groups[h.group] as CompiledPersona[]) if (p.criteria?.test(input) === 1) trues++;
  }
  const testSeconds = (performance.now() - testStart) / 1000;
  return {
    engine: 'compiled',
    testSeconds,
    trues,
    hosts: HOSTS,
    decisions: HOSTS,
    seconds: every.seconds,
    recordedSeconds: recorded.seconds,
    reasons,
    ...memory,
    peakRss: process.resourceUsage().maxRSS * 1024,
    peakHeap,
    actions,
  };
}

async function runJson(): Promise<Run> {
  const docs = Array.from({ length: GROUPS }, (_, g) => groupPersonas(g));
  const engines = docs.map((d) => jsonEngine(d));
  const hosts = Array.from({ length: SAMPLE }, (_, i) => host(i));
  const fallback = (g: number) =>
    ((docs[g] as PersonaInput[])[PERSONAS_PER_HOST - 1] as PersonaInput).metadata.name;
  for (let i = 0; i < 200; i++) {
    const h = hosts[i] as Host;
    await jsonDecision(engines[h.group] as Engine, h, fallback(h.group)); // warm-up
  }
  const memory = before();
  const choices: string[] = [];
  const start = performance.now();
  for (let i = 0; i < SAMPLE; i++) {
    const h = hosts[i] as Host;
    choices.push(await jsonDecision(engines[h.group] as Engine, h, fallback(h.group)));
    if ((i & 63) === 0) sampleHeap();
  }
  const seconds = (performance.now() - start) / 1000;
  sampleHeap();
  return {
    engine: 'json-rules-engine',
    hosts: SAMPLE,
    decisions: SAMPLE,
    seconds,
    ...memory,
    peakRss: process.resourceUsage().maxRSS * 1024,
    peakHeap,
    choices,
  };
}

/** The compiled engine's choice for the sample hosts, from a host with no state (no hysteresis). */
function compiledChoices(): string[] {
  const groups = Array.from({ length: GROUPS }, (_, g) =>
    groupPersonas(g).map((doc, k) => compilePersona(Persona.parse(doc), k + 1)),
  );
  return Array.from({ length: SAMPLE }, (_, i) => {
    const h = host(i);
    return (
      decide(
        { name: h.name, labels: { group: `g${h.group}` } },
        groups[h.group] as CompiledPersona[],
        undefined,
        inputOf(h),
      ).decision.to ?? '(own parameters)'
    );
  });
}

/**
 * Both engines in turns on the same hosts, in this one process: the machine's load moves
 * between the two children's runs, so the ratio is also taken from rounds close in time.
 */
async function interleaved(rounds: number): Promise<{ compiled: number; recorded: number; json: number }> {
  const compiledGroups = Array.from({ length: GROUPS }, (_, g) =>
    groupPersonas(g).map((doc, k) => compilePersona(Persona.parse(doc), k + 1)),
  );
  const docs = Array.from({ length: GROUPS }, (_, g) => groupPersonas(g));
  const engines = docs.map((d) => jsonEngine(d));
  const hosts = Array.from({ length: SAMPLE }, (_, i) => host(i));
  const labels = Array.from({ length: GROUPS }, (_, g) => ({ group: `g${g}` }));
  const states = hosts.map((h) => {
    const personas = compiledGroups[h.group] as CompiledPersona[];
    const ref = { name: h.name, labels: labels[h.group] as { group: string } };
    const current = h.changed
      ? (personas[h.other] as CompiledPersona).name
      : decide(ref, personas, undefined, inputOf(h)).decision.to;
    return { host: h.name, current, since: NOW - 7_200_000 };
  });
  const perRound = SAMPLE / 10;
  let compiledSeconds = 0;
  let compiledDecisions = 0;
  let recordedSeconds = 0;
  let jsonSeconds = 0;
  let jsonDecisions = 0;
  for (let round = 0; round < rounds + 1; round++) {
    let start = performance.now();
    let reasons = 0;
    for (let rep = 0; rep < 10; rep++) {
      for (let i = 0; i < SAMPLE; i++) {
        const h = hosts[i] as Host;
        const ref = { name: h.name, labels: labels[h.group] as { group: string } };
        const { decision } = decide(ref, compiledGroups[h.group] as CompiledPersona[], states[i], inputOf(h));
        reasons += decision.reasons.length;
      }
    }
    const c = (performance.now() - start) / 1000;
    start = performance.now();
    for (let rep = 0; rep < 10; rep++) {
      for (let i = 0; i < SAMPLE; i++) {
        const h = hosts[i] as Host;
        const ref = { name: h.name, labels: labels[h.group] as { group: string } };
        const { decision } = decide(ref, compiledGroups[h.group] as CompiledPersona[], states[i], inputOf(h));
        if (decision.action !== 'stay') reasons += decision.reasons.length;
      }
    }
    const r = (performance.now() - start) / 1000;
    start = performance.now();
    const offset = (round * perRound) % SAMPLE;
    for (let i = offset; i < offset + perRound; i++) {
      const h = hosts[i] as Host;
      const fallback = ((docs[h.group] as PersonaInput[])[PERSONAS_PER_HOST - 1] as PersonaInput).metadata
        .name;
      await jsonDecision(engines[h.group] as Engine, h, fallback);
    }
    const j = (performance.now() - start) / 1000;
    if (round === 0 || reasons < 0) continue; // the first round warms both up
    compiledSeconds += c;
    recordedSeconds += r;
    compiledDecisions += 10 * SAMPLE;
    jsonSeconds += j;
    jsonDecisions += perRound;
  }
  return {
    compiled: compiledDecisions / compiledSeconds,
    recorded: compiledDecisions / recordedSeconds,
    json: jsonDecisions / jsonSeconds,
  };
}

function child(engine: 'compiled' | 'json'): Run {
  const out = spawnSync(
    process.execPath,
    ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', fileURLToPath(import.meta.url), engine],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (out.status !== 0) throw new Error(`the ${engine} run failed (exit ${out.status})`);
  return JSON.parse(out.stdout.trim().split('\n').pop() as string) as Run;
}

// ------------------------------------------------------------------------------------ main

const role = process.argv[2];
if (role === 'compiled') {
  process.stdout.write(`${JSON.stringify(runCompiled())}\n`);
} else if (role === 'json') {
  process.stdout.write(`${JSON.stringify(await runJson())}\n`);
} else if (role === undefined) {
  const { started, lines, say, progress, table } = createReport();
  const load = loadavg();
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  const rate = (r: Run) => r.decisions / r.seconds;
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

  say('# Persona evaluation: compiled criteria vs json-rules-engine');
  say();
  say(
    `${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model.trim()}), ${mib(totalmem())} memory.`,
  );
  say(
    `Load average at the start: ${load.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min): ${(load[0] as number) < 1 ? 'the machine was quiet (< 1)' : 'the machine was NOT quiet (≥ 1): other work shared the CPUs, figures are lower than on a quiet machine'}.`,
  );
  say();
  say(
    `${fmt(HOSTS)} hosts in ${GROUPS} groups, ${PERSONAS_PER_HOST} personas per host (19 with criteria and a default): business hours with holidays and a deploy-freeze signal, nights, a load-balancer forecast signal with a maximum age, saturation or an incident; metric thresholds held for 2 to 15 minutes (average, max, min, every sample) over ${SAMPLES_PER_METRIC} samples a metric, nested all/any/not. The same rules in json-rules-engine read the same facts (the host's samples and signals) through dynamic facts.`,
  );
  say();

  progress(`compiled criteria: ${fmt(HOSTS)} hosts × ${PASSES} passes`);
  const compiled = child('compiled');
  progress(`json-rules-engine: ${fmt(SAMPLE)} hosts`);
  const json = child('json');
  progress('both engines in turns');
  const turns = await interleaved(INTERLEAVED_ROUNDS);
  progress('agreement on the sample');
  const ours = compiledChoices();
  const theirs = json.choices ?? [];
  const agree = ours.filter((c, i) => c === theirs[i]).length;
  const distinct = new Set(ours).size;

  const recordedRate = compiled.decisions / (compiled.recordedSeconds ?? Number.NaN);
  const row = (name: string, r: Run, seconds: number) => [
    name,
    fmt(r.decisions),
    seconds.toFixed(3),
    fmt(r.decisions / seconds),
    mib(r.heapBefore),
    mib(r.peakHeap),
    mib(r.peakRss),
  ];
  table(
    ['engine', 'hosts decided', 'time (s)', 'decisions / s', 'heap before', 'peak heap', 'peak RSS'],
    [
      row('compiled criteria: decide(), every decision’s reasons built', compiled, compiled.seconds),
      row(
        'compiled criteria: decide(), reasons built for recorded decisions',
        compiled,
        compiled.recordedSeconds ?? Number.NaN,
      ),
      row('json-rules-engine 7: engine.run() (no reasons)', json, json.seconds),
    ],
    [1, 2, 3, 4, 5, 6],
  );
  const ratio = rate(compiled) / rate(json);
  const recordedRatio = recordedRate / rate(json);
  say(
    `Compiled criteria: the median of ${PASSES} passes over all ${fmt(HOSTS)} hosts in a steady state (each host holds what its criteria chose at the last tick, but ${CHANGED * 100}% whose conditions changed since), each decision taking the host's state into account (hysteresis, cool-down). Reasons are built when a decision's \`reasons\` are first read: the first row reads them for every decision; the second only for the decisions the evaluation service records at once (every one but a repeated stay, which it records at most once per quiet period). json-rules-engine ran on ${fmt(SAMPLE)} hosts (it is slow); its decisions per second are extrapolated from that sample, and it gives no reasons.`,
  );
  say(
    `Memory is each engine's own process: the heap before includes the generated fleet (${fmt(HOSTS)} hosts for the compiled run, ${fmt(SAMPLE)} for json-rules-engine), peak RSS the whole process.`,
  );
  say();
  say(
    `**Ratio: ${ratio.toFixed(0)}× json-rules-engine's decisions per second with every decision's reasons built, ${recordedRatio.toFixed(0)}× with the reasons of recorded decisions** (goal: at least 100×: ${ratio >= 100 ? 'met' : recordedRatio >= 100 ? 'met when only recorded decisions build their reasons, NOT met with every decision’s' : 'NOT met'}).`,
  );
  say();
  say(
    `In turns, in one process (${INTERLEAVED_ROUNDS} rounds on the same ${fmt(SAMPLE)} hosts, each ${fmt(10 * SAMPLE)} compiled decisions with every decision's reasons built, ${fmt(10 * SAMPLE)} with the reasons of recorded decisions, then ${fmt(SAMPLE / 10)} json-rules-engine decisions): compiled ${fmt(turns.compiled)} / s (every decision's reasons) and ${fmt(turns.recorded)} / s (recorded decisions' reasons), json-rules-engine ${fmt(turns.json)} / s: **${(turns.compiled / turns.json).toFixed(0)}× and ${(turns.recorded / turns.json).toFixed(0)}×** (goal: at least 100×: ${turns.compiled / turns.json >= 100 ? 'met' : turns.recorded / turns.json >= 100 ? 'met when only recorded decisions build their reasons, NOT met with every decision’s' : 'NOT met'}). Rounds close in time share the machine's load, unlike the two processes above, which run one after the other.`,
  );
  say();
  say(
    `Agreement on the ${fmt(SAMPLE)}-host sample (a host with no state, so the first persona whose criteria hold, by priority): ${agree} of ${ours.length} (${((agree / Math.max(1, ours.length)) * 100).toFixed(1)}%), ${distinct} distinct personas chosen.`,
  );
  if (compiled.testSeconds !== undefined) {
    say(
      `Of which the criteria themselves: testing all ${PERSONAS_PER_HOST} personas of each of the ${fmt(HOSTS)} hosts (no decision, no reasons) took ${compiled.testSeconds.toFixed(3)} s, ${fmt((HOSTS * PERSONAS_PER_HOST) / compiled.testSeconds)} criteria evaluations per second (${fmt(compiled.trues ?? 0)} true).`,
    );
  }
  const differ = ours.flatMap((c, i) => (c === theirs[i] ? [] : [`host-${i}: ${c} / ${theirs[i]}`]));
  if (differ.length > 0)
    say(`Where they differ (compiled / json-rules-engine): ${differ.slice(0, 8).join(', ')}.`);
  say(
    `Actions of the last compiled pass: ${Object.entries(compiled.actions ?? {})
      .map(([a, n]) => `${a} ${fmt(n)}`)
      .join(', ')}.`,
  );
  say();
  say(`Benchmark ran in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/persona-bench.md', `${lines.join('\n')}\n`);
  if (agree !== ours.length) process.exitCode = 1;
}
