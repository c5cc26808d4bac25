// The part of reading a document that needs no YAML parser: the size, UTF-8 and Unicode checks,
// JSON's fast path and the positions of its values. An API function imports only this, so the
// YAML parser (yaml-text.ts, a hundred kilobytes) is loaded when a body is YAML, or JSON that
// needs the YAML route's scrutiny, and never for a well-formed JSON body.
import { formatPath, InvalidInputError, type Issue, TooLargeError } from '../errors.js';

/** Limits on a profile document, documented in the README. */
export const DOCUMENT_LIMITS = {
  /**
   * Bytes of source text (UTF-8). A host with 2,500 packages and 6,000 configuration files is
   * 1.8 MiB of YAML and 2.4 MiB of indented JSON; the limit stays under Lambda's 6 MB request.
   */
  maxBytes: 4 * 1024 * 1024,
  /** Nesting of maps and lists. A Profile needs fewer than 10 levels. */
  maxDepth: 32,
  /** Alias expansions while building the value: stops "billion laughs" documents. */
  maxAliasCount: 100,
} as const;

// Keys that would reach an object's prototype if any consumer merged the document naively.
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export const DEPTH_MESSAGE = `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels`;

export interface ParseOptions {
  /** Shown in messages, e.g. the file name. */
  readonly source?: string;
  /** A smaller size limit than a profile document's, for smaller documents. */
  readonly maxBytes?: number;
  /** What the limit is for, in messages: `a host registration`. */
  readonly kind?: string;
}

export interface Located {
  readonly value: unknown;
  /** Finds the line and column of a path inside the document, for messages. */
  readonly locate: (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;
}

/** 1-based line and column (in UTF-16 code units, as editors count) of an offset in `text`. */
export function positionOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * The text of a document after the checks that need no parser: its size, strict UTF-8 when it
 * is bytes, and no lone surrogate in the text itself.
 */
export function documentText(input: string | Uint8Array, options: ParseOptions = {}): string {
  const source = options.source ?? 'document';
  const limit = options.maxBytes ?? DOCUMENT_LIMITS.maxBytes;
  const bytes = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (bytes > limit) {
    throw new TooLargeError(
      `${source} is ${bytes} bytes; the limit for ${options.kind ?? 'a profile document'} is ${limit} bytes`,
      limit,
    );
  }
  const text = typeof input === 'string' ? input : decodeUtf8(input, source);
  const lone = LONE_SURROGATE.exec(text);
  if (lone) {
    throw new InvalidInputError(
      `${source} is not a valid document`,
      [{ path: '', message: loneSurrogateMessage(text, lone.index), ...positionOf(text, lone.index) }],
      { source },
    );
  }
  return text;
}

/**
 * Refuses a value holding a lone surrogate that an escape made (\ud800 in JSON, \ud800 or
 * \U0000d800 in YAML): only an escape can make one out of well-formed text, so the values are
 * looked at only when the text has one.
 */
export function refuseEscapedSurrogates(text: string, located: Located, options: ParseOptions = {}): Located {
  if (SURROGATE_ESCAPE.test(text)) {
    const source = options.source ?? 'document';
    const issues: Issue[] = [];
    findLoneSurrogates(located.value, [], issues, located.locate);
    if (issues.length > 0)
      throw new InvalidInputError(`${source} is not a valid document`, issues, { source });
  }
  return located;
}

/**
 * Reads a JSON or YAML document as parseDocumentText (io.ts) does, with the same checks and the
 * same messages, loading the YAML parser only when the fast path cannot take the document.
 */
export async function readDocumentText(
  input: string | Uint8Array,
  options: ParseOptions = {},
): Promise<Located> {
  const text = documentText(input, options);
  const located = fastJson(text, options) ?? (await import('./yaml-text.js')).parseYamlText(text, options);
  return refuseEscapedSurrogates(text, located, options);
}

/**
 * Whether JSON text has a duplicate key, a forbidden key or excess nesting. One pass over the
 * characters, tracking only strings and brackets: JSON.parse has already checked the syntax.
 * Excess nesting is refused here, with its position: the YAML route would recurse once per
 * level and run out of stack long before it could name the limit.
 */
function jsonNeedsScrutiny(text: string, options: ParseOptions): boolean {
  const frames: { object: boolean; keys: Set<string>; expectKey: boolean; at: PropertyKey }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const j = stringEnd(text, i);
      const top = frames[frames.length - 1];
      if (top?.object && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key) || FORBIDDEN_KEYS.has(key)) return true;
        top.keys.add(key);
        top.expectKey = false;
        top.at = key;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      frames.push({ object: c === 0x7b, keys: new Set(), expectKey: c === 0x7b, at: 0 });
      if (frames.length > DOCUMENT_LIMITS.maxDepth) {
        const source = options.source ?? 'document';
        const path = formatPath(frames.slice(0, -1).map((f) => f.at));
        throw new InvalidInputError(
          `${source} is not a valid document`,
          [{ path, message: DEPTH_MESSAGE, ...positionOf(text, i) }],
          { source },
        );
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top?.object) top.expectKey = true;
      else if (top) top.at = (top.at as number) + 1;
    }
  }
  return false;
}

/**
 * JSON that passes every check takes a fast path (JSON.parse is some fifty times quicker than
 * a YAML parser on large documents), and its positions come from the text itself; anything else
 * takes the YAML route (undefined here).
 */
export function fastJson(text: string, options: ParseOptions): Located | undefined {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (jsonNeedsScrutiny(text, options)) return undefined;
  return { value, locate: jsonLocator(text) };
}

/** The offset of the closing quote of the string whose opening quote is at `start`. */
function stringEnd(text: string, start: number): number {
  let j = start + 1;
  while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
  return j;
}

const isJsonSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(text: string, i: number): number {
  while (i < text.length && isJsonSpace(text.charCodeAt(i))) i++;
  return i;
}

/** The offset just past the value starting at `start` (no whitespace before it). */
function valueEnd(text: string, start: number): number {
  let depth = 0;
  let i = start;
  do {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = stringEnd(text, i) + 1;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      i++;
    } else if (depth === 0) {
      // A number, true, false or null: up to the next delimiter.
      while (i < text.length && !isJsonSpace(text.charCodeAt(i)) && !',}]'.includes(text[i] as string)) i++;
    } else i++;
  } while (depth > 0 && i < text.length);
  return i;
}

/** The offsets of a collection's members: by key for an object, by index for an array. */
type Members =
  | { readonly object: true; readonly at: Map<string, number> }
  | { readonly object: false; readonly at: number[] };

function membersOf(text: string, open: number): Members {
  const object = text.charCodeAt(open) === 0x7b;
  const keys = new Map<string, number>();
  const items: number[] = [];
  let i = skipSpace(text, open + 1);
  while (i < text.length && text.charCodeAt(i) !== 0x7d && text.charCodeAt(i) !== 0x5d) {
    if (object) {
      const end = stringEnd(text, i);
      const raw = text.slice(i + 1, end);
      const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
      i = skipSpace(text, skipSpace(text, end + 1) + 1); // past the colon
      keys.set(key, i);
    } else items.push(i);
    i = skipSpace(text, valueEnd(text, i));
    if (text.charCodeAt(i) === 0x2c) i = skipSpace(text, i + 1);
  }
  return object ? { object, at: keys } : { object, at: items };
}

/** An array index as the YAML route reads one from a path: a non-negative integer, or its digits. */
function itemIndex(key: PropertyKey): number | undefined {
  const n = typeof key === 'string' && key !== '' ? Number(key) : key;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/**
 * Finds paths in well-formed JSON (checked by JSON.parse, without duplicate keys) by scanning the
 * text, with the positions the YAML route gives: where the value starts, or for a missing field
 * the closest ancestor that exists. Each collection on a path is scanned once, on first use.
 */
export function jsonLocator(text: string): Located['locate'] {
  const members = new Map<number, Members>();
  const root = skipSpace(text, 0);
  // Where each line starts, found on first use: a refused document may have an issue per entry.
  let lineStarts: number[] | undefined;
  const positionAt = (offset: number) => {
    if (lineStarts === undefined) {
      lineStarts = [0];
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
    }
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - (lineStarts[lo] as number) + 1 };
  };
  return (path) => {
    let at = root;
    for (const key of path) {
      const c = text.charCodeAt(at);
      if (c !== 0x7b && c !== 0x5b) break;
      let m = members.get(at);
      if (m === undefined) {
        m = membersOf(text, at);
        members.set(at, m);
      }
      let next: number | undefined;
      if (m.object) next = typeof key === 'string' ? m.at.get(key) : undefined;
      else {
        const index = itemIndex(key);
        next = index === undefined ? undefined : m.at[index];
      }
      if (next === undefined) break;
      at = next;
    }
    return positionAt(at);
  };
}

// With the u flag, a character class of surrogates matches only those not in a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const SURROGATE_ESCAPE = /\\(u|U0000)[dD][89a-fA-F]/;

const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');

function loneSurrogateMessage(text: string, index: number): string {
  return `lone surrogate U+${hex(text.charCodeAt(index), 4)} at character ${index + 1}: text must be valid Unicode`;
}

function findLoneSurrogates(
  value: unknown,
  path: PropertyKey[],
  issues: Issue[],
  locate: Located['locate'],
): void {
  const check = (text: string, at: PropertyKey[]) => {
    const lone = LONE_SURROGATE.exec(text);
    if (lone)
      issues.push({ path: formatPath(at), message: loneSurrogateMessage(text, lone.index), ...locate(at) });
  };
  if (typeof value === 'string') check(value, path);
  else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      findLoneSurrogates(v, [...path, i], issues, locate);
    });
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      check(k, [...path, k]);
      findLoneSurrogates(v, [...path, k], issues, locate);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8: the first ill-formed sequence is refused with its byte offset, line and column. */
function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const before = new TextDecoder('utf-8').decode(bytes.subarray(0, offset));
    const shown = [...bytes.subarray(offset, offset + 4)].map((b) => `0x${hex(b, 2)}`).join(' ');
    throw new InvalidInputError(
      `${source} is not valid UTF-8`,
      [
        {
          path: '',
          message: `invalid UTF-8 at byte ${offset} (${shown})`,
          ...positionOf(before, before.length),
        },
      ],
      { source },
    );
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode table 3-7). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i] as number;
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // U+D800..U+DFFF (surrogates) are not characters
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return b.length;
}
