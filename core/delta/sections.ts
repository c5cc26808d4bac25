// Where each section of a Change lives in a spec, and the few operations diff and apply need
// on it. A list section is a keyed collection of COLLECTIONS; every other section is a field
// of an object, named by the change's key (a singleton is the field named like its section).
import { COLLECTIONS, sortObjectKeys } from '../profile/collections.js';
import { type Change, isListSection, type ListSection, type Section } from './changes.js';

export type FieldSection = Exclude<Section, ListSection>;

interface FieldLocation {
  /** Path from the spec to the object holding the fields. */
  readonly parent: readonly string[];
  /** The fields that belong to the section; `any` for a map such as sysctl. */
  readonly keys: readonly string[] | 'any';
}

export const FIELD_LOCATIONS: Readonly<Record<FieldSection, FieldLocation>> = {
  instance: { parent: [], keys: ['instance'] },
  baseImage: { parent: [], keys: ['baseImage'] },
  os: { parent: [], keys: ['os'] },
  executionFlag: { parent: [], keys: ['executionFlag'] },
  dns: { parent: ['network'], keys: ['dns'] },
  firewall: { parent: ['network'], keys: ['firewall'] },
  // `cgroups` sits in the same object but is a list section of its own.
  resources: { parent: ['resources'], keys: ['cpu', 'memory', 'io', 'bandwidth'] },
  sysctl: { parent: ['configuration', 'sysctl'], keys: 'any' },
  application: { parent: [], keys: ['application'] },
  // Persona-switch state the Profile does not hold (a capture reads no traffic shaping and no
  // table of Persona's own): a Delta holding these is applied to hosts, never to a Profile.
  bandwidth: { parent: ['persona', 'bandwidth'], keys: 'any' },
  ingress: { parent: ['persona'], keys: ['ingress'] },
};

type Node = Record<string, unknown>;

const isNode = (v: unknown): v is Node => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The object at `path`, created on the way when `create` is set. */
function nodeAt(root: unknown, path: readonly string[], create: boolean): Node | undefined {
  let node: unknown = root;
  for (const segment of path) {
    if (!isNode(node)) return undefined;
    if (!Object.hasOwn(node, segment) && create) setField(node, segment, {});
    node = node[segment];
  }
  return isNode(node) ? node : undefined;
}

// defineProperty rather than assignment: a map key such as `__proto__` must become a field,
// not replace the object's prototype.
function setField(node: Node, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The fields of a field section present in `spec`, in key order. */
export function fieldEntries(spec: unknown, section: FieldSection): [string, unknown][] {
  const { parent, keys } = FIELD_LOCATIONS[section];
  const node = nodeAt(spec, parent, false);
  if (node === undefined) return [];
  const names = keys === 'any' ? Object.keys(node) : keys.filter((k) => Object.hasOwn(node, k));
  return names
    .filter((k) => node[k] !== undefined)
    .sort()
    .map((k) => [k, node[k]]);
}

/** The entries of a list section: the spec's own array, so writes go to the spec. */
function listAt(spec: unknown, section: ListSection, create: boolean): unknown[] | undefined {
  const path = COLLECTIONS[section].path;
  const parent = nodeAt(spec, path.slice(0, -1) as string[], create);
  const field = path[path.length - 1] as string;
  if (parent === undefined) return undefined;
  if (!Array.isArray(parent[field]) && create) setField(parent, field, []);
  const list = parent[field];
  return Array.isArray(list) ? list : undefined;
}

const positioned = (entry: unknown, after: string | null) => ({ entry, after });

/**
 * Where `key` is, or would go, in an unordered list: those are kept sorted by key (canonical
 * form), so a binary search finds it; a linear scan made applying a clone-sized Delta
 * quadratic.
 */
function lowerBound(list: readonly unknown[], key: string, keyOf: (e: unknown) => string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(list[mid]) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function indexOfKey(list: readonly unknown[], section: ListSection, key: string): number {
  const d = COLLECTIONS[section];
  if (d.ordered) return list.findIndex((e) => d.key(e) === key);
  const at = lowerBound(list, key, d.key);
  return at < list.length && d.key(list[at]) === key ? at : -1;
}

/**
 * What a Change compares against: the entry with the change's key, or null when absent. In an
 * ordered list the position is part of the state, as the key of the entry just before it.
 */
export function currentState(spec: unknown, change: Change): unknown {
  if (!isListSection(change.section)) {
    const node = nodeAt(spec, FIELD_LOCATIONS[change.section].parent, false);
    return node !== undefined && Object.hasOwn(node, change.key) ? (node[change.key] ?? null) : null;
  }
  const d = COLLECTIONS[change.section];
  const list = listAt(spec, change.section, false) ?? [];
  const index = indexOfKey(list, change.section, change.key);
  if (index < 0) return null;
  if (!d.ordered) return list[index];
  return positioned(list[index], index === 0 ? null : d.key(list[index - 1]));
}

const afterOf = (change: Change): string | null => ('after' in change ? change.after : null);

/** The state a Change starts from (`side: 'from'`) or leads to (`side: 'to'`). */
export function changeState(change: Change, side: 'from' | 'to'): unknown {
  const value = change[side];
  if (value === null || !isListSection(change.section) || !COLLECTIONS[change.section].ordered) return value;
  return positioned(value, afterOf(change));
}

export class MissingAnchorError extends Error {
  constructor(readonly anchor: string) {
    super(`"${anchor}" is not there to insert after`);
    this.name = 'MissingAnchorError';
  }
}

/**
 * Puts `change.to` in place of the entry with the change's key: replaced, inserted (in key
 * order, or after `after` in an ordered list) or removed when `to` is null. Mutates `spec`.
 */
export function writeChange(spec: unknown, change: Change): void {
  const value = change.to === null ? null : structuredClone(change.to);
  if (!isListSection(change.section)) {
    const node = nodeAt(spec, FIELD_LOCATIONS[change.section].parent, value !== null);
    if (node === undefined) return;
    if (value === null) delete node[change.key];
    else setField(node, change.key, value);
    return;
  }
  const d = COLLECTIONS[change.section];
  const list = listAt(spec, change.section, value !== null);
  if (list === undefined) return;
  const index = indexOfKey(list, change.section, change.key);
  if (d.ordered) {
    if (index >= 0) list.splice(index, 1);
    if (value === null) return;
    const after = afterOf(change);
    const anchor = after === null ? -1 : list.findIndex((e) => d.key(e) === after);
    if (after !== null && anchor < 0) throw new MissingAnchorError(after);
    list.splice(anchor + 1, 0, value);
  } else if (value === null) {
    if (index >= 0) list.splice(index, 1);
  } else if (index >= 0) {
    list[index] = value;
  } else {
    list.splice(lowerBound(list, change.key, d.key), 0, value);
  }
}

/** A string equal for equal values, whatever the order of their object keys. */
export const stableJson = (value: unknown): string => JSON.stringify(sortObjectKeys(value)) ?? 'null';

export const sameValue = (a: unknown, b: unknown): boolean => stableJson(a) === stableJson(b);
