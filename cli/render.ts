// How results look to people: aligned tables and coloured diffs. `-o json|yaml` bypasses all of it.
//
// Everything shown comes from stored data (descriptions, file paths, values captured from a
// host), so it passes through `terminalText` before our own colours are added: an escape
// sequence in a description must not retitle the terminal, recolour the output or move the
// cursor. JSON and YAML output stay exact documents of the same values (see jsonText, yamlText).
import { stripVTControlCharacters } from 'node:util';
import type { Command } from 'commander';
import { Document, visit } from 'yaml';
import { formatOf, pc } from './output.js';

// C0 controls (ESC among them), DEL and C1 controls (CSI is U+009B); bidirectional controls and
// line separators, which reorder or break what is shown; lone surrogates.
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/gu;

const hex = (c: string, width: number) => (c.codePointAt(0) ?? 0).toString(16).padStart(width, '0');

/** Stored text as it may be written to a terminal: every unsafe character shown as an escape. */
export function terminalText(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return (c.codePointAt(0) ?? 0) <= 0xff ? `\\x${hex(c, 2)}` : `\\u{${hex(c, 4)}}`;
  });
}

// JSON.stringify and the yaml library escape C0 controls inside strings, but write DEL, C1
// controls and bidirectional controls as they are; those only ever occur inside strings, where
// a \u escape means the same character.
const UNSAFE_IN_DOCUMENT = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const documentEscape = (c: string) => `\\u${hex(c, 4)}`;
// Line breaks and tabs are safe on a terminal, and multi-line values read best as block text.
const NEEDS_QUOTES = /[^\P{Cc}\n\t]|[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\p{Cs}/u;

/** JSON of `value`, indented, with nothing in it that a terminal would act on. Parses to `value`. */
export function jsonText(value: unknown, indent = 2): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE_IN_DOCUMENT, documentEscape);
}

/**
 * YAML of `value` with nothing in it that a terminal would act on. Strings holding such
 * characters are written double-quoted, where YAML escapes mean the same characters, so the
 * document still reads back to `value`.
 */
export function yamlText(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && NEEDS_QUOTES.test(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  return doc.toString({ lineWidth: 0 }).replace(UNSAFE_IN_DOCUMENT, documentEscape);
}

/** A command's result as the document `-o json` or `-o yaml` asked for. */
export function emit(cmd: Command, value: unknown): void {
  process.stdout.write(formatOf(cmd) === 'yaml' ? yamlText(value) : `${jsonText(value)}\n`);
}

const visibleLength = (s: string) => stripVTControlCharacters(s).length;

/** Columns of stored values: each cell is shown through terminalText. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const safeRows = rows.map((r) => r.map(terminalText));
  const widths = headers.map((h, i) => Math.max(h.length, ...safeRows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return [pc.bold(line(headers)), ...safeRows.map(line)].join('\n');
}

export const ago = (iso: string, now = Date.now()): string => {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
};

export interface RenderableChange {
  readonly kind: string;
  readonly key: string;
  readonly from: unknown;
  readonly to: unknown;
  readonly disruptive?: boolean;
}

const HASH = /^sha256:([0-9a-f]{12})[0-9a-f]{52}$/;

const short = (v: unknown): string => {
  if (v === undefined || v === null) return '∅';
  if (typeof v === 'string') {
    const hash = HASH.exec(v);
    if (hash) return `sha256:${hash[1]}…`;
    const oneLine = v.includes('\n') ? `${v.split('\n').length} lines` : v;
    return oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
  }
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const named = (v: unknown): v is { name: string }[] =>
  Array.isArray(v) && v.every((e) => isObj(e) && typeof e.name === 'string');

/** Lists of named entries (health checks, start commands) by what was added, removed or changed. */
function listChanges(from: { name: string }[], to: { name: string }[]): string {
  const before = new Map(from.map((e) => [e.name, JSON.stringify(e)]));
  const after = new Map(to.map((e) => [e.name, JSON.stringify(e)]));
  const parts = [
    ...[...after.keys()].filter((n) => !before.has(n)).map((n) => `+${n}`),
    ...[...before.keys()].filter((n) => !after.has(n)).map((n) => `-${n}`),
    ...[...after].filter(([n, v]) => before.has(n) && before.get(n) !== v).map(([n]) => `~${n}`),
  ];
  const common = (list: { name: string }[], other: Map<string, string>) =>
    list
      .filter((e) => other.has(e.name))
      .map((e) => e.name)
      .join('\0');
  const order = common(from, after) === common(to, before) ? '' : ' (reordered)';
  return `${parts.join(' ')}${parts.length === 0 && order ? 'reordered' : order}`;
}

/** The fields that differ between two entries, as `field: old → new`. */
export function fieldChanges(from: unknown, to: unknown): string[] {
  if (named(from) && named(to)) return [listChanges(from, to)];
  if (!isObj(from) || !isObj(to)) return from === to ? [] : [`${short(from)} → ${short(to)}`];
  const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
  return keys
    .filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]))
    .map((k) =>
      named(from[k]) && named(to[k])
        ? `${k}: ${listChanges(from[k], to[k])}`
        : `${k}: ${short(from[k])} → ${short(to[k])}`,
    );
}

/** What a new or removed entry is, in a few words: its version, value or size. */
function brief(entry: unknown): string {
  if (!isObj(entry)) return short(entry);
  for (const field of ['version', 'value', 'size', 'sizeBytes', 'state']) {
    if (entry[field] !== undefined)
      return `${field === 'size' || field === 'sizeBytes' ? `${entry[field]} bytes` : short(entry[field])}`;
  }
  if (entry.secretRef !== undefined) return '(secret reference)';
  return '';
}

export function renderChange(change: RenderableChange): string {
  const absent = (v: unknown) => v === null || v === undefined;
  const [marker, colour] = absent(change.from)
    ? [pc.green('+'), pc.green]
    : absent(change.to)
      ? [pc.red('-'), pc.red]
      : [pc.yellow('~'), pc.yellow];
  const detail = absent(change.from)
    ? brief(change.to)
    : absent(change.to)
      ? ''
      : fieldChanges(change.from, change.to).join(', ');
  const flag = change.disruptive ? pc.magenta(' [disruptive]') : '';
  const shown = terminalText(detail);
  return `${marker} ${colour(terminalText(change.kind).padEnd(21))} ${pc.bold(terminalText(change.key))}${shown ? pc.dim(`  ${shown}`) : ''}${flag}`;
}

interface DeltaRef {
  name?: string | undefined;
  version?: number | undefined;
}

export function renderDelta(delta: {
  from?: DeltaRef | undefined;
  to?: DeltaRef | undefined;
  changes: readonly RenderableChange[];
}): string {
  const ref = (r?: DeltaRef) => (r ? terminalText(`${r.name ?? '?'}@${r.version ?? '?'}`) : '?');
  const disruptive = delta.changes.filter((c) => c.disruptive).length;
  const head = pc.bold(`${ref(delta.from)} → ${ref(delta.to)}`);
  if (delta.changes.length === 0) return `${head}\n${pc.dim('no changes')}`;
  const lines = delta.changes.map(renderChange);
  const noun = delta.changes.length === 1 ? 'change' : 'changes';
  const tail = `${delta.changes.length} ${noun}${disruptive > 0 ? `, ${disruptive} disruptive` : ''}`;
  return [head, ...lines, pc.dim(tail)].join('\n');
}
