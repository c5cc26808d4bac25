// Reading profile documents from JSON or YAML, defensively: profile files come from people
// and from API callers, so a hostile or broken document must fail with every problem named,
// never crash and never pass half-checked.
import {
  CST,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseDocument,
} from 'yaml';
import { formatPath, InvalidInputError, type Issue, TooLargeError } from '../errors.js';
import { canonicalSpec } from './collections.js';
import { issuesFromZod } from './issues.js';
import { Profile } from './schema.js';

// The core schema's own tags, which say no more than the plain value does: any other tag is
// refused, `!!js/function` and the like (read as strings, with a warning, by the parser) included.
const PLAIN_TAGS = new Set(
  ['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`),
);

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
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

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

const stripPosition = (message: string): string =>
  message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').trim();

/** 1-based line and column (in UTF-16 code units, as editors count) of an offset in `text`. */
function positionOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

const depthMessage = `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels`;

/**
 * Whether JSON text has a duplicate key, a forbidden key or excess nesting. One pass over the
 * characters, tracking only strings and brackets: JSON.parse has already checked the syntax.
 * Excess nesting is refused here, with its position: the YAML route below would recurse once
 * per level and run out of stack long before it could name the limit.
 */
function jsonNeedsScrutiny(text: string, options: ParseOptions): boolean {
  const frames: { object: boolean; keys: Set<string>; expectKey: boolean; at: PropertyKey }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
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
          [{ path, message: depthMessage, ...positionOf(text, i) }],
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
 * a YAML parser on large documents); anything else, and positions for messages, come from the
 * YAML route below.
 */
function fastJson(text: string, options: ParseOptions): Located | undefined {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (jsonNeedsScrutiny(text, options)) return undefined;
  let slow: Located | undefined;
  return {
    value,
    locate: (path) => {
      slow ??= parseYamlText(text, options);
      return slow.locate(path);
    },
  };
}

/**
 * Parses a JSON or YAML document into a plain value. JSON is a subset of YAML 1.2, so both get
 * the same checks: duplicate keys, forbidden keys, depth, aliases, tags. Bytes are decoded as
 * strict UTF-8, and text that is not valid Unicode (invalid bytes, lone surrogates, raw or
 * escaped) is refused naming where, rather than read with replacement characters.
 */
export function parseDocumentText(input: string | Uint8Array, options: ParseOptions = {}): Located {
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
  const located = fastJson(text, options) ?? parseYamlText(text, options);
  // Only an escape (\ud800 in JSON, \ud800 or \U0000d800 in YAML) can make a lone surrogate
  // out of well-formed text; look at the values only when the text has one.
  if (SURROGATE_ESCAPE.test(text)) {
    const issues: Issue[] = [];
    findLoneSurrogates(located.value, [], issues, located.locate);
    if (issues.length > 0)
      throw new InvalidInputError(`${source} is not a valid document`, issues, { source });
  }
  return located;
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

// The YAML composer recurses once per level and runs out of stack near a thousand levels
// (and an unclosed `[` ten thousand deep once exhausted the heap as well), so nesting is
// bounded from the tokens before composing. The exact limit is checked on the composed nodes.
const PRESCAN_DEPTH = 4 * DOCUMENT_LIMITS.maxDepth;

/**
 * The offset of the first token nested deeper than PRESCAN_DEPTH, from the lexer alone (it
 * does not recurse): flow brackets are counted exactly, block collections by the columns of
 * their indicators (`-`, `?`, and the key before `:`).
 */
function tooDeepAt(text: string): number | undefined {
  const block: { col: number; kind: 'seq' | 'map' }[] = [];
  let flow = 0;
  let offset = 0;
  let col = 0;
  let keyCol: number | undefined;
  const open = (at: number, kind: 'seq' | 'map') => {
    for (;;) {
      const top = block[block.length - 1];
      if (top === undefined || top.col < at) break;
      if (top.col === at && top.kind === kind) return;
      // A sequence may sit at its parent key's column; a key there ends that sequence.
      if (top.col === at && kind === 'seq') break;
      block.pop();
    }
    block.push({ col: at, kind });
  };
  for (const token of new Lexer().lex(text)) {
    // The lexer's own markers (document, scalar, flow end) are not source text.
    if (token === '\x02' || token === '\x1f' || token === '\x18') continue;
    const type = CST.tokenType(token);
    if (type === 'flow-map-start' || type === 'flow-seq-start') flow++;
    else if (type === 'flow-map-end' || type === 'flow-seq-end') flow = Math.max(0, flow - 1);
    else if (flow === 0 && (type === 'seq-item-ind' || type === 'explicit-key-ind')) {
      open(col, type === 'seq-item-ind' ? 'seq' : 'map');
      keyCol = undefined;
    } else if (flow === 0 && type === 'map-value-ind') {
      open(keyCol ?? col, 'map');
      keyCol = undefined;
    } else if (type === 'doc-start') block.length = 0;
    if (block.length + flow > PRESCAN_DEPTH) return offset;
    if (keyCol === undefined && type !== 'space' && type !== 'newline' && type !== 'comment') keyCol = col;
    const newline = token.lastIndexOf('\n');
    if (newline === -1) col += token.length;
    else {
      col = token.length - newline - 1;
      keyCol = undefined;
    }
    offset += token.length;
  }
  return undefined;
}

function parseYamlText(text: string, options: ParseOptions): Located {
  const source = options.source ?? 'document';
  const refuseDepth = (offset: number, cause?: unknown): never => {
    throw new InvalidInputError(
      `${source} is not a valid document`,
      [{ path: '', message: depthMessage, ...positionOf(text, offset) }],
      { source, cause },
    );
  };
  const deep = tooDeepAt(text);
  if (deep !== undefined) refuseDepth(deep);
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { lineCounter, uniqueKeys: false, strict: true, prettyErrors: true });
  } catch (cause) {
    if (cause instanceof RangeError) refuseDepth(0, cause);
    throw cause;
  }
  const at = (offset: number | undefined) => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  const issues: Issue[] = doc.errors.map((e) => ({
    path: '',
    message: stripPosition(e.message),
    ...(e.linePos ? { line: e.linePos[0].line, column: e.linePos[0].col } : {}),
  }));

  // Heights of the nodes walked so far, and the collections enclosing the current one: an
  // alias adds its target's height where it is used, and an alias inside its own target would
  // make a value that contains itself.
  const heights = new Map<unknown, number>();
  const enclosing = new Set<unknown>();
  const walk = (node: unknown, path: PropertyKey[], depth: number): number => {
    if (node === null || node === undefined) return 0;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (enclosing.has(target)) {
        issues.push({
          path: formatPath(path),
          message: `alias *${node.source} refers to a node that contains it`,
          ...at(node.range?.[0]),
        });
        return 0;
      }
      const height = heights.get(target) ?? 0;
      if (depth + height - 1 > DOCUMENT_LIMITS.maxDepth) {
        issues.push({ path: formatPath(path), message: depthMessage, ...at(node.range?.[0]) });
      }
      return height;
    }
    const n = node as Node;
    if (depth > DOCUMENT_LIMITS.maxDepth && (isMap(n) || isSeq(n))) {
      issues.push({
        path: formatPath(path),
        message: depthMessage,
        ...at(n.range?.[0]),
      });
      return 0;
    }
    let below = 0;
    enclosing.add(n);
    if (n.tag !== undefined && !PLAIN_TAGS.has(n.tag)) {
      issues.push({ path: formatPath(path), message: `tag ${n.tag} is not allowed`, ...at(n.range?.[0]) });
    }
    if (isMap(n)) {
      const seen = new Map<string, number | undefined>();
      for (const item of n.items) {
        if (!isPair(item)) continue;
        const keyNode = item.key;
        if (!isScalar(keyNode)) {
          issues.push({
            path: formatPath(path),
            message: 'keys must be plain strings',
            ...at((keyNode as Node | null)?.range?.[0]),
          });
          continue;
        }
        const key = String(keyNode.value);
        const keyAt = at(keyNode.range?.[0]);
        if (FORBIDDEN_KEYS.has(key)) {
          issues.push({ path: formatPath([...path, key]), message: `key "${key}" is not allowed`, ...keyAt });
        }
        if (seen.has(key)) {
          const first = seen.get(key);
          issues.push({
            path: formatPath([...path, key]),
            message: `duplicate key "${key}"${first === undefined ? '' : ` (first at line ${first})`}`,
            ...keyAt,
          });
        } else {
          seen.set(key, keyAt?.line);
        }
        below = Math.max(below, walk(item.value, [...path, key], depth + 1));
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => {
        below = Math.max(below, walk(item, [...path, i], depth + 1));
      });
    }
    enclosing.delete(n);
    const height = isMap(n) || isSeq(n) ? below + 1 : 0;
    heights.set(n, height);
    return height;
  };
  walk(doc.contents, [], 1);

  if (issues.length > 0) throw new InvalidInputError(`${source} is not a valid document`, issues, { source });

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: DOCUMENT_LIMITS.maxAliasCount });
  } catch (cause) {
    throw new InvalidInputError(
      `${source} is not a valid document`,
      [
        {
          path: '',
          message: `aliases expand to more than ${DOCUMENT_LIMITS.maxAliasCount} nodes; expand them in the document instead`,
        },
      ],
      { cause, source },
    );
  }

  const locate = (path: readonly PropertyKey[]) => {
    // A missing field has no node: point at the closest ancestor that exists.
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true) as Node | undefined;
      const offset = node?.range?.[0];
      if (offset !== undefined) return at(offset);
    }
    return undefined;
  };
  return { value, locate };
}

export { issuesFromZod } from './issues.js';

/** Checks a plain value against the Profile schema and returns it in canonical form. */
export function validateProfile(
  value: unknown,
  options: ParseOptions & { locate?: Located['locate'] } = {},
): Profile {
  const result = Profile.safeParse(value);
  if (!result.success) {
    throw new InvalidInputError(
      `${options.source ?? 'profile'} is not a valid profile`,
      issuesFromZod(result.error, options.locate),
      options.source === undefined ? {} : { source: options.source },
    );
  }
  return canonicalProfile(result.data);
}

/** Parses and validates a profile document (JSON or YAML). */
export function parseProfile(text: string | Uint8Array, options: ParseOptions = {}): Profile {
  const { value, locate } = parseDocumentText(text, options);
  return validateProfile(value, { ...options, locate });
}

/** The form profiles are stored in: defaults filled, unordered collections sorted by key. */
export function canonicalProfile(profile: Profile): Profile {
  return { ...profile, spec: canonicalSpec(profile.spec) };
}

/** One line per issue: `web.yaml:14:9 spec.packages[3].version: expected string`. */
export function formatIssues(issues: readonly Issue[], source?: string): string[] {
  return issues.map((i) => {
    const where = i.line === undefined ? (source ?? '') : `${source ?? ''}:${i.line}:${i.column ?? 1}`;
    const prefix = [where, i.path].filter((s) => s !== '').join(' ');
    return prefix ? `${prefix}: ${i.message}` : i.message;
  });
}
