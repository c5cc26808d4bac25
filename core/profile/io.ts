// Reading profile documents from JSON or YAML, defensively: profile files come from people
// and from API callers, so a hostile or broken document must fail with every problem named,
// never crash and never pass half-checked. The checks that need no YAML parser are in
// document-text.ts (what an API function loads, with readDocumentText), the YAML route in
// yaml-text.ts; this module is the synchronous reader the CLI, the embedded runtime and core use.
import type { Issue } from '../errors.js';
import {
  documentText,
  fastJson,
  type Located,
  type ParseOptions,
  refuseEscapedSurrogates,
} from './document-text.js';
import type { Profile } from './schema.js';
import { validateProfile } from './validate.js';
import { parseYamlText } from './yaml-text.js';

export {
  DOCUMENT_LIMITS,
  type Located,
  type ParseOptions,
  readDocumentText,
} from './document-text.js';

/**
 * Parses a JSON or YAML document into a plain value. JSON is a subset of YAML 1.2, so both get
 * the same checks: duplicate keys, forbidden keys, depth, aliases, tags. Bytes are decoded as
 * strict UTF-8, and text that is not valid Unicode (invalid bytes, lone surrogates, raw or
 * escaped) is refused naming where, rather than read with replacement characters.
 */
export function parseDocumentText(input: string | Uint8Array, options: ParseOptions = {}): Located {
  const text = documentText(input, options);
  return refuseEscapedSurrogates(text, fastJson(text, options) ?? parseYamlText(text, options), options);
}

export { issuesFromZod } from './issues.js';
export { canonicalProfile, validateProfile } from './validate.js';

/** Parses and validates a profile document (JSON or YAML). */
export function parseProfile(text: string | Uint8Array, options: ParseOptions = {}): Profile {
  const { value, locate } = parseDocumentText(text, options);
  return validateProfile(value, { ...options, locate });
}

/** One line per issue: `web.yaml:14:9 spec.packages[3].version: expected string`. */
export function formatIssues(issues: readonly Issue[], source?: string): string[] {
  return issues.map((i) => {
    const where = i.line === undefined ? (source ?? '') : `${source ?? ''}:${i.line}:${i.column ?? 1}`;
    const prefix = [where, i.path].filter((s) => s !== '').join(' ');
    return prefix ? `${prefix}: ${i.message}` : i.message;
  });
}
