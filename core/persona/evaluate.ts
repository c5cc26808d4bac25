// Which persona a host should have now, and why. Pure: the caller reads the host's state,
// metrics and signals, calls decide, records the decision and applies it (a decision is
// applied when its mode is 'act' and `to` differs from `from`, or it is a 'switch' to the same
// persona at a newer version).
//
// Personas are taken in priority order; the first whose criteria are true is the target,
// none → the default persona, or the host's own parameters. Around that rule sit the
// protections against flapping (CRITERIA.md has them for users):
//   - unknown criteria never move a host: a persona is taken on only when true, left only
//     when false;
//   - the host's persona is left only once its criteria have been false for its hold time,
//     unless a persona ranked above it becomes true (that pre-empts at once);
//   - no switch within the cool-down after the last one (the larger of the two personas');
//   - a manual activation is kept until it expires (the next window edge, manualUntil),
//     unless the persona the criteria choose is 'enforced'.
import {
  type CompiledCriteria,
  compileCriteria,
  FALSE,
  FORECASTS_ACTING,
  FORECASTS_ALL,
  FORECASTS_NONE,
  type ForecastReading,
  TRUE,
  type Tri,
  triName,
  UNKNOWN,
} from './criteria.js';
import { nextScheduleEdge } from './schedule.js';
import type {
  CriterionReason,
  Decision,
  DecisionAction,
  EvaluationInput,
  HostPersonaState,
  Persona,
  PersonaSpec,
} from './schema.js';

/**
 * A host as selectors see it. `labels` left out means they are not known here (the caller has
 * already chosen the personas by label): only the name part of a selector is checked then.
 */
export interface HostRef {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface CompiledPersona {
  readonly name: string;
  readonly version: number;
  readonly spec: PersonaSpec;
  readonly criteria?: CompiledCriteria;
  selects(host: { name: string; labels?: Record<string, string> }): boolean;
}

/** Compiles a persona's criteria and host selector once, for any number of evaluations. */
export function compilePersona(persona: Persona, version: number): CompiledPersona {
  const spec = persona.spec;
  const criteria = spec.criteria === undefined ? undefined : compileCriteria(spec.criteria, 'spec.criteria');
  const names = spec.hosts.names === undefined ? undefined : new Set(spec.hosts.names);
  const labelKeys = Object.keys(spec.hosts.labels ?? {});
  const labelValues = labelKeys.map((k) => spec.hosts.labels?.[k]);
  return {
    name: persona.metadata.name,
    version,
    spec,
    ...(criteria === undefined ? {} : { criteria }),
    selects(host: HostRef) {
      if (names !== undefined && !names.has(host.name)) return false;
      const have = host.labels;
      if (have === undefined) return true;
      for (let i = 0; i < labelKeys.length; i++) {
        if (have[labelKeys[i] as string] !== labelValues[i]) return false;
      }
      return true;
    },
  };
}

const byRank = (a: CompiledPersona, b: CompiledPersona) =>
  a.spec.priority - b.spec.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function ranked(personas: readonly CompiledPersona[], host: HostRef): readonly CompiledPersona[] {
  // Usually the caller has chosen the host's personas already, in order: then no copy.
  let every = true;
  for (let i = 0; i < personas.length && every; i++) {
    every =
      (personas[i] as CompiledPersona).selects(host) &&
      (i === 0 || byRank(personas[i - 1] as CompiledPersona, personas[i] as CompiledPersona) <= 0);
  }
  if (every) return personas;
  const chosen: CompiledPersona[] = [];
  for (const p of personas) if (p.selects(host)) chosen.push(p);
  for (let i = 1; i < chosen.length; i++) {
    if (byRank(chosen[i - 1] as CompiledPersona, chosen[i] as CompiledPersona) > 0)
      return chosen.sort(byRank);
  }
  return chosen;
}

// Each candidate's verdict in the last decide(), so that a host staying on its default is told
// every persona's verdict without explaining each one again. Reused: decide runs per host.
const NOT_TESTED = 3;
let seen = new Uint8Array(64);

/** One reason per persona tested, from the verdicts of the last decide(). */
/** `seen` for `n` candidates as one number, two bits each: a decision keeps it without an array. */
function packVerdicts(n: number): number | Uint8Array {
  if (n > 26) return seen.slice(0, n); // past 2^53
  let packed = 0;
  for (let i = n - 1; i >= 0; i--) packed = packed * 4 + (seen[i] as number);
  return packed;
}

function verdicts(candidates: readonly CompiledPersona[], tris: number | Uint8Array): CriterionReason[] {
  const out: CriterionReason[] = [];
  let packed = typeof tris === 'number' ? tris : 0;
  for (let i = 0; i < candidates.length; i++) {
    const p = candidates[i] as CompiledPersona;
    let t: number;
    if (typeof tris === 'number') {
      t = packed % 4;
      packed = (packed - t) / 4;
    } else t = tris[i] as number;
    if (t === NOT_TESTED || p.criteria === undefined) continue;
    out.push(verdictOf(p, t as Tri));
  }
  return out;
}

// A persona's verdict as a reason depends on nothing but the persona and the verdict: made
// once, frozen, shared by every decision that reports it.
const verdictReasons = new WeakMap<CompiledPersona, readonly CriterionReason[]>();
function verdictOf(p: CompiledPersona, t: Tri): CriterionReason {
  let reasons = verdictReasons.get(p);
  if (reasons === undefined) {
    const path = p.criteria?.path ?? '';
    reasons = ([FALSE, TRUE, UNKNOWN] as const).map((v) =>
      Object.freeze({ path, holds: triName(v), detail: `${p.name}: its criteria are ${triName(v)}` }),
    );
    verdictReasons.set(p, reasons);
  }
  return reasons[t] as CriterionReason;
}

/** `f(...args)`, when asked. */
function later<A extends unknown[], R>(f: (...args: A) => R, ...args: A): () => R {
  return () => f(...args);
}

/** The reasons of a move from `current` (`held`, when it is still a persona of the host) to `target`. */
function moving(
  target: CompiledPersona | undefined,
  current: string | null,
  held: CompiledPersona | undefined,
  input: EvaluationInput,
  reading: ForecastReading,
): CriterionReason[] {
  return [
    ...(target !== undefined && !target.spec.default ? reasonsOf(target, input, reading) : []),
    ...(current !== null && held === undefined
      ? [{ path: '', holds: triName(FALSE), detail: `${current} no longer applies to this host` }]
      : []),
    ...(held?.criteria !== undefined ? reasonsOf(held, input, reading) : []),
  ];
}

function stateOf(
  host: string,
  current: string | null,
  version: number | undefined,
  since: number,
): HostPersonaState {
  return version === undefined ? { host, current, since } : { host, current, currentVersion: version, since };
}

function decision(
  host: string,
  at: number,
  from: string | null,
  action: DecisionAction,
  to: string | null,
  summary: string,
  reasons: () => readonly CriterionReason[],
  mode: 'act' | 'report' = 'act',
): Decision {
  let built: readonly CriterionReason[] | undefined;
  return {
    host,
    at,
    action,
    from,
    to,
    mode,
    summary: `${host} ${summary}`,
    // Built when first read, from the same input: a fleet's evaluation decides every host but
    // records (and so reads the reasons of) only the decisions that change something. An own
    // enumerable getter, so that JSON and spreads carry the reasons like a plain field.
    get reasons() {
      if (built === undefined) built = reasons();
      return built;
    },
  };
}

const iso = (t: number) => new Date(t).toISOString();
const label = (name: string | null) => name ?? 'its own parameters';

function reasonsOf(
  p: CompiledPersona | undefined,
  input: EvaluationInput,
  reading: ForecastReading = FORECASTS_ALL,
): CriterionReason[] {
  if (p?.criteria === undefined) return [];
  return p.criteria.explain(input, `${p.name}: `, reading);
}

/** The data missing for unknown criteria, for a summary: "cpu.utilization: no samples". */
function missing(reasons: readonly CriterionReason[]): string {
  const leaves = reasons.filter((r) => r.holds === 'unknown' && r.values !== undefined);
  return leaves.map((r) => r.detail).join('; ') || 'data missing';
}

/**
 * Decides which persona `host` should have at `input.now`. `personas` are those of the host
 * (others are filtered out again here); `state` is what the host has, undefined for a host
 * never evaluated. Returns the decision and the state to store.
 */
export function decide(
  host: string | HostRef,
  personas: readonly CompiledPersona[],
  state: HostPersonaState | undefined,
  input: EvaluationInput,
): { decision: Decision; state: HostPersonaState } {
  const ref: HostRef = typeof host === 'string' ? { name: host } : host;
  const candidates = ranked(personas, ref);
  let forecastOnly = false;
  for (let i = 0; i < candidates.length && !forecastOnly; i++)
    forecastOnly = (candidates[i] as CompiledPersona).criteria?.forecastOnly === true;
  if (!forecastOnly) return decideReading(ref, candidates, state, input, FORECASTS_ALL, false);
  // Forecast-only criteria: what is done reads them as if there were no forecast. When that
  // changes nothing, the decision says what their forecasts would have done, and when, in
  // report mode (recorded, not applied); the host's state is what acting decided.
  const acting = decideReading(ref, candidates, state, input, FORECASTS_ACTING, false);
  if (acting.decision.action !== 'stay') return acting;
  const would = decideReading(ref, candidates, state, input, FORECASTS_ALL, true);
  if (
    (would.decision.action === 'switch' || would.decision.action === 'revert') &&
    would.decision.to !== acting.decision.to
  )
    return { decision: would.decision, state: acting.state };
  return acting;
}

function decideReading(
  ref: HostRef,
  candidates: readonly CompiledPersona[],
  state: HostPersonaState | undefined,
  input: EvaluationInput,
  reading: ForecastReading,
  forecastOnly: boolean,
): { decision: Decision; state: HostPersonaState } {
  const now = input.now;
  const current = state?.current ?? null;
  let currentIndex = -1;
  let fallback: CompiledPersona | undefined;
  for (let i = 0; i < candidates.length; i++) {
    const p = candidates[i] as CompiledPersona;
    if (p.name === current && currentIndex < 0) currentIndex = i;
    if (p.spec.default && fallback === undefined) fallback = p;
  }
  const held = currentIndex >= 0 ? candidates[currentIndex] : undefined;

  if (seen.length < candidates.length) seen = new Uint8Array(candidates.length * 2);
  let targetIndex = -1;
  let heldTri: Tri = FALSE;
  for (let i = 0; i < candidates.length; i++) {
    const p = candidates[i] as CompiledPersona;
    seen[i] = NOT_TESTED;
    if (p.spec.default || p.criteria === undefined) continue;
    const t = p.criteria.test(input, reading);
    seen[i] = t;
    if (i === currentIndex) heldTri = t;
    if (t === TRUE) {
      targetIndex = i;
      break;
    }
  }
  const target = targetIndex >= 0 ? candidates[targetIndex] : fallback;
  const targetName = target?.name ?? null;

  let manual = state?.manual;
  if (manual !== undefined && manual.until !== null && manual.until <= now) manual = undefined;
  const base = stateOf(ref.name, current, state?.currentVersion, state?.since ?? now);
  // A manual activation (or an operator's own change) stands until it expires, unless the
  // persona the criteria choose is enforced: that one undoes it at once, cool-down or not.
  let enforced = false;
  if (manual !== undefined) {
    if (target !== undefined && target.spec.override === 'enforced' && target.name !== manual.persona) {
      enforced = true;
      manual = undefined;
    } else {
      const to = manual.persona;
      let chosen: CompiledPersona | undefined;
      for (const p of candidates) if (p.name === to && chosen === undefined) chosen = p;
      const until = manual.until === null ? 'until changed' : `until ${iso(manual.until)}`;
      const calls = targetName === to ? '' : ` (criteria call for ${label(targetName)})`;
      return {
        decision: decision(
          ref.name,
          now,
          current,
          'manual',
          to,
          `keeps the manual choice of ${label(to)} ${until}${calls}`,
          () => (targetName === to ? reasonsOf(chosen, input, reading) : reasonsOf(target, input, reading)),
        ),
        state: {
          ...base,
          current: to,
          ...(chosen === undefined ? {} : { currentVersion: chosen.version }),
          since: to === current ? base.since : now,
          manual,
        },
      };
    }
  }

  if (targetName === current) {
    let reasons: () => readonly CriterionReason[];
    if (target?.criteria !== undefined && !target.spec.default)
      reasons = later(reasonsOf, target, input, reading);
    // `seen` is packed: the next decide() reuses it.
    else reasons = later(verdicts, candidates, packVerdicts(candidates.length));
    const stayed =
      target === undefined || target.version === state?.currentVersion
        ? base
        : stateOf(ref.name, current, target.version, base.since);
    if (
      target !== undefined &&
      state?.currentVersion !== undefined &&
      state.currentVersion !== target.version
    ) {
      // The persona changed under the host: its new version's parameters are to be applied.
      const mode = target.spec.mode;
      return {
        decision: decision(
          ref.name,
          now,
          current,
          'switch',
          targetName,
          `moves ${target.name} from version ${state.currentVersion} to ${target.version}`,
          reasons,
          mode,
        ),
        state: mode === 'report' ? base : stayed,
      };
    }
    const why =
      target === undefined || target.spec.default || target.criteria === undefined
        ? "no persona's criteria hold"
        : 'its criteria hold';
    return {
      decision: decision(
        ref.name,
        now,
        current,
        'stay',
        current,
        `stays on ${label(current)}: ${why}`,
        reasons,
      ),
      state: stayed,
    };
  }

  // The host's persona ranks above the target: it is left only on its criteria being false,
  // for its hold time.
  let falseSince: number | undefined;
  const leaving = later(reasonsOf, held, input, reading);
  // A forecast never takes a host off its persona: criteria false only thanks to a forecast
  // (a `not` over a predicted value) are read as not false.
  if (
    heldTri === FALSE &&
    held !== undefined &&
    !held.spec.default &&
    (targetIndex < 0 || currentIndex < targetIndex) &&
    held.criteria !== undefined &&
    held.criteria.predicted.length > 0 &&
    held.criteria.test(input, FORECASTS_NONE) !== FALSE
  ) {
    return {
      decision: decision(
        ref.name,
        now,
        current,
        'stay',
        current,
        `stays on ${held.name}: its criteria are false only on a forecast, and a forecast never takes a host off its persona`,
        leaving,
      ),
      state: base,
    };
  }
  if (held !== undefined && !held.spec.default && targetIndex >= 0 && currentIndex > targetIndex) {
    // A persona ranked above the host's pre-empts it at once, but not on a forecast alone: while
    // the host's own criteria are not false without forecasts, it stays.
    const above = candidates[targetIndex] as CompiledPersona;
    if (
      above.criteria !== undefined &&
      above.criteria.predicted.length > 0 &&
      above.criteria.test(input, FORECASTS_NONE) !== TRUE &&
      held.criteria !== undefined &&
      held.criteria.test(input, FORECASTS_NONE) !== FALSE
    ) {
      return {
        decision: decision(
          ref.name,
          now,
          current,
          'stay',
          current,
          `stays on ${held.name}: ${above.name} holds only on a forecast, and a forecast never takes a host off its persona`,
          later(moving, above, current, held, input, reading),
        ),
        state: base,
      };
    }
  }
  if (held !== undefined && !held.spec.default && (targetIndex < 0 || currentIndex < targetIndex)) {
    if (heldTri === UNKNOWN) {
      return {
        decision: decision(
          ref.name,
          now,
          current,
          'stay',
          current,
          `stays on ${held.name}: its criteria are unknown (${missing(held.criteria?.explain(input, '', reading) ?? [])})`,
          leaving,
        ),
        state: base,
      };
    }
    falseSince = state?.falseSince ?? now;
    const holdEnd = falseSince + held.spec.hysteresis.holdSeconds * 1000;
    if (now < holdEnd) {
      return {
        decision: decision(
          ref.name,
          now,
          current,
          'hold',
          current,
          `stays on ${held.name} until ${iso(holdEnd)}: its criteria are false since ${iso(falseSince)}, held ${held.spec.hysteresis.holdSeconds} s (then ${label(targetName)})`,
          leaving,
        ),
        state: { ...base, falseSince },
      };
    }
  }
  const tracked = falseSince === undefined ? base : { ...base, falseSince };
  const reasons = later(moving, target, current, held, input, reading);

  const coolDown =
    Math.max(held?.spec.hysteresis.coolDownSeconds ?? 0, target?.spec.hysteresis.coolDownSeconds ?? 0) * 1000;
  if (!enforced && state !== undefined && now < state.since + coolDown) {
    const ends = state.since + coolDown;
    return {
      decision: decision(
        ref.name,
        now,
        current,
        'cool-down',
        current,
        `stays on ${label(current)} until ${iso(ends)}: cool-down of ${coolDown / 1000} s after the switch at ${iso(state.since)} (criteria call for ${label(targetName)})`,
        reasons,
      ),
      state: tracked,
    };
  }

  const action: DecisionAction = target !== undefined && !target.spec.default ? 'switch' : 'revert';
  const why =
    action === 'switch'
      ? `its criteria hold${held !== undefined && !held.spec.default && currentIndex > targetIndex ? `, and it ranks above ${held.name}` : ''}`
      : held === undefined && current !== null
        ? `${current} no longer applies`
        : "no persona's criteria hold";
  const undo = enforced ? ' (enforced: the manual choice is undone)' : '';
  if (target?.spec.mode === 'report' || forecastOnly) {
    // Report mode: what would be done is recorded; the host keeps its persona.
    return {
      decision: decision(
        ref.name,
        now,
        current,
        action,
        targetName,
        `would ${action} from ${label(current)} to ${label(targetName)} (${forecastOnly && target?.spec.mode !== 'report' ? 'forecast only' : 'report mode'}): ${why}${undo}`,
        reasons,
        'report',
      ),
      state: tracked,
    };
  }
  return {
    decision: decision(
      ref.name,
      now,
      current,
      action,
      targetName,
      `${action === 'switch' ? 'switches' : 'reverts'} from ${label(current)} to ${label(targetName)}: ${why}${undo}`,
      reasons,
    ),
    state: {
      host: ref.name,
      current: targetName,
      ...(target === undefined ? {} : { currentVersion: target.version }),
      since: now,
    },
  };
}

/** The next instant after `now` at which any of the personas' schedules changes its verdict. */
export function nextWindowEdge(personas: readonly CompiledPersona[], now: number): number | undefined {
  let next: number | undefined;
  for (const p of personas) {
    for (const schedule of p.criteria?.schedules ?? []) {
      const edge = nextScheduleEdge(schedule, now);
      if (edge !== undefined && (next === undefined || edge < next)) next = edge;
    }
  }
  return next;
}

/**
 * Until when a manual activation made at `now` stands: the next window edge of the host's
 * personas, or null (until changed) when none of them has a schedule that changes.
 */
export function manualUntil(personas: readonly CompiledPersona[], now: number): number | null {
  return nextWindowEdge(personas, now) ?? null;
}
