// Reading profile documents from JSON or YAML, defensively: profile files come from people
// and from API callers, so a hostile or broken document must fail with every problem named,
// never crash and never pass half-checked.
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { formatPath, InvalidInputError, type Issue, TooLargeError } from '../errors.js';
import { canonicalSpec } from './collections.js';
import { Profile } from './schema.js';

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
}

interface Located {
  readonly value: unknown;
  /** Finds the line and column of a path inside the document, for messages. */
  readonly locate: (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;
}

const stripPosition = (message: string): string =>
  message.replace(/ at line \d+, column \d+:[\s\S]*$/, '').trim();

/**
 * Whether JSON text has a duplicate key, a forbidden key or excess nesting. One pass over the
 * characters, tracking only strings and brackets: JSON.parse has already checked the syntax.
 */
function jsonNeedsScrutiny(text: string): boolean {
  const frames: { object: boolean; keys: Set<string>; expectKey: boolean }[] = [];
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
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      frames.push({ object: c === 0x7b, keys: new Set(), expectKey: c === 0x7b });
      if (frames.length > DOCUMENT_LIMITS.maxDepth) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top?.object) top.expectKey = true;
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
  if (jsonNeedsScrutiny(text)) return undefined;
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
 * Parses JSON or YAML text into a plain value. JSON is a subset of YAML 1.2, so both get the
 * same checks: duplicate keys, forbidden keys, depth, aliases, tags.
 */
export function parseDocumentText(text: string, options: ParseOptions = {}): Located {
  const source = options.source ?? 'document';
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > DOCUMENT_LIMITS.maxBytes) {
    throw new TooLargeError(
      `${source} is ${bytes} bytes; the limit for a profile document is ${DOCUMENT_LIMITS.maxBytes} bytes`,
      DOCUMENT_LIMITS.maxBytes,
    );
  }
  return fastJson(text, options) ?? parseYamlText(text, options);
}

function parseYamlText(text: string, options: ParseOptions): Located {
  const source = options.source ?? 'document';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, strict: true, prettyErrors: true });
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

  const walk = (node: unknown, path: PropertyKey[], depth: number): void => {
    if (node === null || node === undefined || isAlias(node)) return;
    const n = node as Node;
    if (depth > DOCUMENT_LIMITS.maxDepth) {
      issues.push({
        path: formatPath(path),
        message: `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels`,
        ...at(n.range?.[0]),
      });
      return;
    }
    if (n.tag !== undefined && !n.tag.startsWith('tag:yaml.org,2002:')) {
      issues.push({ path: formatPath(path), message: `tag ${n.tag} is not allowed`, ...at(n.range?.[0]) });
    } else if (n.tag === 'tag:yaml.org,2002:binary' || n.tag === 'tag:yaml.org,2002:set') {
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
        walk(item.value, [...path, key], depth + 1);
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => {
        walk(item, [...path, i], depth + 1);
      });
    }
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

/** zod issues as Persona issues, one per problem, unknown keys one per key. */
export function issuesFromZod(error: z.ZodError, locate?: Located['locate']): Issue[] {
  const out: Issue[] = [];
  for (const issue of error.issues) {
    const paths =
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((k) => [...issue.path, k])
        : [issue.path as PropertyKey[]];
    for (const path of paths) {
      const message =
        issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message.replace(/^Invalid input: /, '');
      out.push({ path: formatPath(path), message, ...locate?.(path) });
    }
  }
  return out;
}

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
export function parseProfile(text: string, options: ParseOptions = {}): Profile {
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
