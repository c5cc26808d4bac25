// Evaluating hosts when something changes: a metric report, a signal, a window edge, an alarm.
// One evaluation of one host reads the personas that select it, its state, exactly the metric
// history and signals their criteria name (for a predicted criterion, the hour's forecast of the
// metric: two weeks of its history read once an hour, core/persona/forecast-host.ts), decides
// (core/persona/evaluate.ts), stores the new state on top of the one it read, records the
// decision when it says something new, and starts the switch an 'act' decision calls for.
//
// Two evaluations of one host can run at once (a report and a window edge). The state is
// written only on top of the state read, so one of them wins; the other reads the state again
// and decides once more, and if it loses a second time gives up: the winner's decision stands.
// A switch is started under a key made of the host, where it goes from and to, and the state
// it was decided from, so that racing evaluations that did both decide it start one switch.
import { createHash } from 'node:crypto';
import { sortObjectKeys } from '../profile/collections.js';
import type { CompiledCriteria } from './criteria.js';
import type { CompiledPersona, HostRef } from './evaluate.js';
import { compilePersona, decide } from './evaluate.js';
import { forecastRange } from './forecast.js';
import { cachedForecasts, FORECAST_HISTORY_MS, forecastSeries, forecastZone } from './forecast-host.js';
import type { Decision, EvaluationInput, HostPersonaState, MetricSeries, Persona, Signal } from './schema.js';
import { hostSelected, type SignalStore } from './signals.js';
import { HostPersonaConflictError } from './state.js';

/** What the switch engineer's startPersonaSwitch takes (functions/shared/persona-switch.ts). */
export interface PersonaSwitchRequest {
  readonly host: string;
  /** The persona to apply, or null for the host's own parameters. */
  readonly to: { readonly name: string; readonly version: number } | null;
  readonly decision: Decision;
  readonly idempotencyKey?: string;
}
export type StartPersonaSwitch = (request: PersonaSwitchRequest) => Promise<{ readonly operationId: string }>;

export interface EvaluationSettings {
  /**
   * A decision that says what the previous recorded one said (same action, from, to and mode)
   * is recorded at most once per this many seconds, so that a host staying put for a month does
   * not write a decision per report. Every change is recorded at once.
   */
  readonly quietRecordSeconds: number;
  /** How long decisions are kept. */
  readonly retentionDays?: number;
  /**
   * Metric history read besides the longest duration the criteria hold a threshold for: it must
   * reach back past the sample before the duration's start and the latest sample of a metric
   * held for 0 s. Hosts reporting less often than every half of this need more.
   */
  readonly lookbackMarginSeconds: number;
  /** Hosts evaluated at once by evaluateHosts. */
  readonly concurrency: number;
}

export const DEFAULT_EVALUATION_SETTINGS: EvaluationSettings = {
  quietRecordSeconds: 15 * 60,
  lookbackMarginSeconds: 15 * 60,
  concurrency: 8,
};

export interface StoredPersona {
  readonly persona: Persona;
  readonly version: { readonly version: number };
}

export interface RegisteredHosts {
  get(
    name: string,
  ): Promise<{ readonly registration: { readonly name: string; readonly tags: Record<string, string> } }>;
  list(page: { limit: number; cursor?: string | undefined }): Promise<{
    items: readonly {
      readonly registration: { readonly name: string; readonly tags: Record<string, string> };
    }[];
    nextCursor?: string;
  }>;
}

export interface HostStates {
  get(host: string): Promise<HostPersonaState | undefined>;
  save(state: HostPersonaState, expected: HostPersonaState | undefined): Promise<void>;
  record(decision: Decision, options?: { retentionDays?: number }): Promise<void>;
  latest(host: string): Promise<Decision | undefined>;
  hostsWith(persona: string, limit?: number): Promise<string[]>;
}

export interface EvaluationDeps {
  readonly personas: { loadAll(): Promise<readonly StoredPersona[]> };
  readonly hosts: RegisteredHosts;
  readonly states: HostStates;
  readonly metrics: {
    series(host: string, names: readonly string[], sinceMs: number): Promise<Map<string, MetricSeries>>;
  };
  readonly signals: Pick<SignalStore, 'forHost'>;
  readonly startSwitch: StartPersonaSwitch;
  readonly settings?: Partial<EvaluationSettings>;
}

/** One host's evaluation, as the triggers and POST /signals answer it. */
export interface HostEvaluation {
  readonly host: string;
  /**
   * decided: the decision stands (and was applied when it called for it); superseded: another
   * evaluation changed the state twice while this one decided, and its decision stands instead;
   * unselected: no persona selects the host and it has none, so there was nothing to decide
   * and nothing was written; failed: see `error`.
   */
  readonly outcome: 'decided' | 'superseded' | 'unselected' | 'failed';
  readonly decision?: Decision;
  /** Whether the decision was recorded in the host's history (see quietRecordSeconds). */
  readonly recorded?: boolean;
  /** The switch operation started for it. */
  readonly operationId?: string;
  readonly error?: string;
}

// Persona versions are immutable: a compiled one stays right for the life of the process.
const compiled = new Map<string, CompiledPersona>();
const MAX_COMPILED = 10_000;

/** The personas, compiled once per name and version. */
export function compileAll(stored: readonly StoredPersona[]): CompiledPersona[] {
  return stored.map(({ persona, version }) => {
    const key = `${persona.metadata.name}@${version.version}`;
    let c = compiled.get(key);
    if (c === undefined) {
      if (compiled.size >= MAX_COMPILED) compiled.clear();
      c = compilePersona(persona, version.version);
      compiled.set(key, c);
    }
    return c;
  });
}

/** The last decision recorded per host, by states store: what quiet recording compares with. */
const lastRecorded = new WeakMap<object, Map<string, { key: string; at: number }>>();
const decisionKey = (d: Decision) => JSON.stringify([d.action, d.from, d.to, d.mode]);

const settingsOf = (deps: Pick<EvaluationDeps, 'settings'>): EvaluationSettings => ({
  ...DEFAULT_EVALUATION_SETTINGS,
  ...deps.settings,
});

const same = (a: unknown, b: unknown) =>
  JSON.stringify(sortObjectKeys(a)) === JSON.stringify(sortObjectKeys(b));

/**
 * The key a switch is started under: equal for every evaluation that decided the same switch
 * from the same state, so that racing ones start one operation.
 */
export function switchKey(
  host: string,
  from: HostPersonaState | undefined,
  decision: Decision,
  version?: number,
) {
  const digest = createHash('sha256')
    .update(JSON.stringify([host, from?.current ?? null, decision.to, version ?? null, from?.since ?? null]))
    .digest('base64url')
    .slice(0, 40);
  return `persona-${digest}`;
}

async function hostRef(
  deps: EvaluationDeps,
  host: string,
): Promise<HostRef & { labels: Record<string, string> }> {
  const record = await deps.hosts.get(host);
  return { name: record.registration.name, labels: record.registration.tags ?? {} };
}

/**
 * What criteria read of a host, read once for all of them: exactly the metric history and
 * signals they name, and the hour's forecasts of the metrics they predict. Morph policies'
 * criteria (core/morph/evaluate.ts) are read through this too.
 */
export async function readCriteriaInput(
  deps: Pick<EvaluationDeps, 'metrics' | 'signals' | 'settings'>,
  host: HostRef & { labels: Record<string, string> },
  personas: readonly { readonly criteria?: CompiledCriteria }[],
  now: number,
): Promise<EvaluationInput> {
  const metricNames = new Set<string>();
  const signalNames = new Set<string>();
  const predictedNames = new Set<string>();
  let longest = 0;
  for (const p of personas) {
    for (const m of p.criteria?.metrics ?? []) metricNames.add(m);
    for (const s of p.criteria?.signals ?? []) signalNames.add(s);
    for (const m of p.criteria?.predicted ?? []) {
      // A predicted criterion's "no" is checked against the metric's latest sample.
      metricNames.add(m);
      predictedNames.add(m);
    }
    longest = Math.max(longest, p.criteria?.maxForSeconds ?? 0);
  }
  const settings = settingsOf(deps);
  let since = now - (longest + settings.lookbackMarginSeconds) * 1000;
  // The hour's forecasts are made once: two weeks of history are read only for those not made yet.
  const zone = predictedNames.size === 0 ? 'UTC' : forecastZone(host.labels, personas);
  const { ready: forecasts, missing } = cachedForecasts(host.name, [...predictedNames], zone, now);
  if (missing.length > 0) since = Math.min(since, now - FORECAST_HISTORY_MS);
  const [series, signals] = await Promise.all([
    metricNames.size === 0
      ? new Map<string, MetricSeries>()
      : deps.metrics.series(host.name, [...metricNames], since),
    signalNames.size === 0 ? new Map() : deps.signals.forHost(host, [...signalNames], now),
  ]);
  if (missing.length > 0) forecastSeries(host.name, missing, series, zone, now, forecasts);
  return {
    now,
    metric: (name) => series.get(name),
    signal: (name) => {
      const s = signals.get(name);
      return s === undefined ? undefined : { value: s.value, at: s.at };
    },
    predicted: (name, withinSeconds) => {
      const f = forecasts.get(name);
      return f?.ok ? forecastRange(f.forecast, now, withinSeconds) : undefined;
    },
    forecast: (name) => {
      const f = forecasts.get(name);
      return f === undefined ? undefined : f.ok ? f.forecast : { unavailable: f.detail };
    },
  };
}

async function shouldRecord(deps: EvaluationDeps, decision: Decision): Promise<boolean> {
  let memory = lastRecorded.get(deps.states);
  if (memory === undefined) {
    memory = new Map();
    lastRecorded.set(deps.states, memory);
  }
  let last = memory.get(decision.host);
  if (last === undefined) {
    // Once per host per process: the history says what was last recorded.
    const latest = await deps.states.latest(decision.host);
    if (latest !== undefined) last = { key: decisionKey(latest), at: latest.at };
  }
  const quiet = settingsOf(deps).quietRecordSeconds * 1000;
  return last === undefined || last.key !== decisionKey(decision) || decision.at - last.at >= quiet;
}

function remember(deps: EvaluationDeps, decision: Decision): void {
  lastRecorded.get(deps.states)?.set(decision.host, { key: decisionKey(decision), at: decision.at });
}

const applies = (d: Decision) => d.mode === 'act' && (d.action === 'switch' || d.action === 'revert');

/** Evaluates one host against personas already loaded (evaluateHosts loads them once for many). */
async function evaluateWith(
  deps: EvaluationDeps,
  personas: readonly CompiledPersona[],
  host: string,
  now: number,
): Promise<HostEvaluation> {
  const ref = await hostRef(deps, host);
  const mine = personas.filter((p) => p.selects(ref));
  // A host that holds a persona which no longer selects it is still decided (it reverts).
  let state = await deps.states.get(host);
  // Most reports come from hosts no persona is for: they are not worth a state or a decision.
  if (mine.length === 0 && (state?.current ?? null) === null && state?.manual === undefined)
    return { host, outcome: 'unselected' };
  const input = await readCriteriaInput(deps, ref, mine, now);
  for (let attempt = 0; ; attempt++) {
    const result = decide(ref, mine, state, input);
    try {
      if (!same(result.state, state)) await deps.states.save(result.state, state);
    } catch (e) {
      if (!(e instanceof HostPersonaConflictError)) throw e;
      if (attempt === 1) return { host, outcome: 'superseded' };
      state = await deps.states.get(host);
      continue;
    }
    let operationId: string | undefined;
    if (applies(result.decision)) {
      const to = result.decision.to === null ? undefined : mine.find((p) => p.name === result.decision.to);
      try {
        ({ operationId } = await deps.startSwitch({
          host,
          to: to === undefined ? null : { name: to.name, version: to.version },
          decision: result.decision,
          idempotencyKey: switchKey(host, state, result.decision, to?.version),
        }));
      } catch (e) {
        // The state says the host switched; left so, no later evaluation would start the switch
        // again. Put back the state this one read, on top of its own, and fail.
        await deps.states.save(state ?? undefinedState(host, result.state), result.state).catch(() => {});
        throw e;
      }
    }
    const decided = {
      host,
      outcome: 'decided' as const,
      decision: result.decision,
      ...(operationId === undefined ? {} : { operationId }),
    };
    try {
      if (operationId === undefined && !(await shouldRecord(deps, result.decision)))
        return { ...decided, recorded: false };
      await deps.states.record(result.decision, {
        ...(deps.settings?.retentionDays === undefined ? {} : { retentionDays: deps.settings.retentionDays }),
      });
    } catch (e) {
      // The state is stored and the switch started: the decision stands, unrecorded, and says so.
      return { ...decided, recorded: false, error: `the decision was not recorded: ${(e as Error).message}` };
    }
    remember(deps, result.decision);
    return { ...decided, recorded: true };
  }
}

/**
 * A host never evaluated has no state to put back; the nearest is "its own parameters since the
 * epoch", which lets the next evaluation decide afresh with no cool-down.
 */
function undefinedState(host: string, _failed: HostPersonaState): HostPersonaState {
  return { host, current: null, since: 0 };
}

/** Evaluates one host now: what POST /metrics does after storing a report. */
export async function evaluateHost(deps: EvaluationDeps, host: string, now: number): Promise<HostEvaluation> {
  const personas = compileAll(await deps.personas.loadAll());
  return evaluateWith(deps, personas, host, now);
}

/**
 * Evaluates many hosts, a few at a time, reading the personas once. A host whose evaluation
 * fails is answered as failed; the others go on.
 */
export async function evaluateHosts(
  deps: EvaluationDeps,
  hosts: readonly string[],
  now: number,
  loaded?: readonly CompiledPersona[],
): Promise<HostEvaluation[]> {
  const personas = loaded ?? compileAll(await deps.personas.loadAll());
  const unique = [...new Set(hosts)];
  const out: HostEvaluation[] = new Array(unique.length);
  let next = 0;
  const worker = async () => {
    while (next < unique.length) {
      const i = next++;
      const host = unique[i] as string;
      try {
        out[i] = await evaluateWith(deps, personas, host, now);
      } catch (e) {
        out[i] = { host, outcome: 'failed', error: (e as Error).message };
      }
    }
  };
  const workers = Math.max(1, Math.min(settingsOf(deps).concurrency, unique.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return out;
}

/** Every registered host, as selectors see it (the registry a page at a time). */
async function allHosts(deps: EvaluationDeps): Promise<(HostRef & { labels: Record<string, string> })[]> {
  const out: (HostRef & { labels: Record<string, string> })[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.hosts.list({ limit: 100, cursor });
    for (const h of page.items) out.push({ name: h.registration.name, labels: h.registration.tags ?? {} });
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return out;
}

/**
 * The hosts the given personas select, and those that hold one of them now (a host the
 * selector no longer takes in is evaluated so that it reverts). Selectors of names alone are
 * answered without reading the registry.
 */
export async function hostsOf(deps: EvaluationDeps, personas: readonly CompiledPersona[]): Promise<string[]> {
  const found = new Set<string>();
  const byName = personas.every((p) => p.spec.hosts.names !== undefined && p.spec.hosts.labels === undefined);
  if (byName) {
    for (const p of personas) for (const n of p.spec.hosts.names ?? []) found.add(n);
  } else {
    for (const h of await allHosts(deps)) if (personas.some((p) => p.selects(h))) found.add(h.name);
  }
  for (const p of personas) for (const h of await deps.states.hostsWith(p.name, 1000)) found.add(h);
  return [...found].sort();
}

/** What a window edge of one persona wakes: the evaluation of its hosts. */
export async function evaluatePersonaHosts(
  deps: EvaluationDeps,
  persona: string,
  now: number,
): Promise<HostEvaluation[]> {
  const personas = compileAll(await deps.personas.loadAll());
  const chosen = personas.filter((p) => p.name === persona);
  // A persona deleted since its schedules were made: its hosts were evaluated when it went.
  if (chosen.length === 0) return [];
  return evaluateHosts(deps, await hostsOf(deps, chosen), now, personas);
}

/**
 * The hosts a posted signal concerns: those its selector takes in (every host when it has
 * none) that carry a persona whose criteria name the signal. Others would decide as before.
 */
export async function evaluateSignalHosts(
  deps: EvaluationDeps,
  signal: Pick<Signal, 'name' | 'hosts'>,
  now: number,
): Promise<HostEvaluation[]> {
  const personas = compileAll(await deps.personas.loadAll());
  const naming = personas.filter((p) => p.criteria?.signals.includes(signal.name));
  if (naming.length === 0) return [];
  let hosts = await hostsOf(deps, naming);
  if (signal.hosts !== undefined) {
    const selector = signal.hosts;
    const refs =
      selector.labels === undefined ? undefined : new Map((await allHosts(deps)).map((h) => [h.name, h]));
    hosts = hosts.filter((name) => hostSelected(selector, refs?.get(name) ?? { name, labels: {} }));
  }
  return evaluateHosts(deps, hosts, now, personas);
}

/** What the API and the triggers answer of one evaluation (the reasons stay in the history). */
export function evaluationSummary(e: HostEvaluation) {
  return {
    host: e.host,
    outcome: e.outcome,
    ...(e.decision === undefined
      ? {}
      : {
          action: e.decision.action,
          from: e.decision.from,
          to: e.decision.to,
          mode: e.decision.mode,
          summary: e.decision.summary,
        }),
    ...(e.recorded === undefined ? {} : { recorded: e.recorded }),
    ...(e.operationId === undefined ? {} : { operationId: e.operationId }),
    ...(e.error === undefined ? {} : { error: e.error }),
  };
}
