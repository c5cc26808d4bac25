// Applying and reverting a Delta on the Profile document. Nothing here touches a host: a host
// executor walks the same Change list with the same rule — read the entry the change touches,
// then apply, skip or refuse — against what it reads on the host instead of the document.
import { PersonaError } from '../errors.js';
import { canonicalSpec, sortObjectKeys } from '../profile/collections.js';
import type { Profile, ProfileSpec } from '../profile/schema.js';
import {
  type Change,
  type ChangeKind,
  type Delta,
  inverseKind,
  KINDS,
  type Section,
  summarize,
} from './changes.js';
import {
  changeState,
  currentState,
  MissingAnchorError,
  sameValue,
  stableJson,
  writeChange,
} from './sections.js';

/** The document does not hold what a Change starts from: the Delta was made for another base. */
export class DeltaConflictError extends PersonaError {
  readonly code = 'DELTA_CONFLICT';
  readonly kind: ChangeKind;
  readonly section: Section;
  readonly key: string;

  constructor(
    readonly change: Change,
    /** Position of the change in the Delta, from 0. */
    readonly index: number,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`change ${index + 1} (${change.kind} "${change.key}") does not apply: ${reason}`, options);
    this.name = 'DeltaConflictError';
    this.kind = change.kind;
    this.section = change.section;
    this.key = change.key;
  }
}

const chainOf = (c: Change) => `${c.section}\u0000${c.key}`;

/**
 * For each change, the states its entry reaches from that change on: the entry has already
 * been through this change when it is in one of them. Several changes can touch one entry in
 * turn (a service is added, enabled, then started), so after a full application the entry sits
 * at the last of them, not at the `to` of the first.
 */
function statesAhead(changes: readonly Change[]): Set<string>[] {
  const ahead = new Array<Set<string>>(changes.length);
  const seen = new Map<string, Set<string>>();
  for (let i = changes.length - 1; i >= 0; i--) {
    const c = changes[i] as Change;
    const states = new Set(seen.get(chainOf(c)));
    states.add(stableJson(changeState(c, 'to')));
    seen.set(chainOf(c), states);
    ahead[i] = states;
  }
  return ahead;
}

/**
 * Whether the kernel modules already stand where the Delta leaves them: each module it touches
 * loaded with its last Change's parameters after the module that Change names, or absent where
 * its last Change unloads it. Modules are a list in load order, so re-applying an unload and a
 * load that moved a module would shift its neighbours' positions: such a Delta, applied again,
 * leaves the list alone instead.
 */
function kernelModulesDone(spec: ProfileSpec, changes: readonly Change[]): boolean {
  const last = new Map<string, Change>();
  for (const c of changes) if (c.section === 'kernelModules') last.set(c.key, c);
  if (last.size === 0) return false;
  const list = spec.kernelModules;
  for (const [name, c] of last) {
    const at = list.findIndex((m) => m.name === name);
    if (c.to === null) {
      if (at >= 0) return false;
      continue;
    }
    if (at < 0 || !sameValue(list[at], c.to)) return false;
    if ((list[at - 1]?.name ?? null) !== ((c as { after?: string | null }).after ?? null)) return false;
  }
  return true;
}

/**
 * Applies the Changes in order to a copy of `profile` and returns it, its spec in canonical
 * form (collections sorted by key, as canonicalSpec does).
 *
 * Each change compares the entry it touches with its `from`: equal, it is applied; already at
 * the change's `to` — or at a state a later change on the same entry leads to — it is skipped,
 * so a Delta applied twice changes nothing the second time, and one interrupted half-way can be
 * applied again from the start; anything else throws DeltaConflictError, which protects a
 * profile from a Delta computed against another one. When a change is both applicable and
 * already done (an entry that leaves and comes back), applying it wins: the result is the same.
 */
export function applyDelta(profile: Profile, delta: Delta): Profile {
  const spec = canonicalSpec(profile.spec);
  const ahead = statesAhead(delta.changes);
  const modulesDone = kernelModulesDone(spec, delta.changes);
  delta.changes.forEach((change, index) => {
    if (modulesDone && change.section === 'kernelModules') return;
    const current = stableJson(currentState(spec, change));
    if (current === stableJson(changeState(change, 'from'))) {
      try {
        writeChange(spec, change);
      } catch (e) {
        if (!(e instanceof MissingAnchorError)) throw e;
        throw new DeltaConflictError(
          change,
          index,
          `it comes after "${e.anchor}", which is not in ${change.section}`,
          { cause: e },
        );
      }
    } else if (!ahead[index]?.has(current)) {
      throw new DeltaConflictError(
        change,
        index,
        `the profile's ${change.section} entry is not the one the change starts from`,
      );
    }
  });
  // Fields a change adds land at the end of their object: sorting keys again keeps the result
  // canonical, so that it compares and hashes like a freshly stored profile.
  return { ...profile, spec: sortObjectKeys(spec) as ProfileSpec };
}

/** The Change that undoes `change`: from and to swapped, and the kind that does the reverse. */
export function invertChange(change: Change): Change {
  const kind = inverseKind(change);
  return { ...change, kind, from: change.to, to: change.from, disruptive: KINDS[kind].disruptive } as Change;
}

/**
 * The Delta that undoes `delta`: its changes inverted, in reverse order. A kernel module keeps
 * its `after`: an unload records where the module was, which is where the inverse load puts it.
 */
export function invert(delta: Delta): Delta {
  const changes = delta.changes.toReversed().map(invertChange);
  return { from: delta.to, to: delta.from, changes, summary: summarize(changes) };
}

/** Undoes `delta` on a profile it was applied to: revertDelta(applyDelta(p, d), d) is p. */
export function revertDelta(profile: Profile, delta: Delta): Profile {
  return applyDelta(profile, invert(delta));
}
