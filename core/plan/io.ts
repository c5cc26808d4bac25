// Saved plans are read back as data, through the same defensive reader as profile documents
// (size, depth, duplicate and forbidden keys, aliases, tags) and then the Plan schema, which
// refuses unknown fields, Changes outside the grammar and parts that disagree with each other.
import { stringify } from 'yaml';
import { InvalidInputError } from '../errors.js';
import { sortObjectKeys } from '../profile/collections.js';
import { DOCUMENT_LIMITS, issuesFromZod, type ParseOptions, parseDocumentText } from '../profile/io.js';
import { Plan } from './plan.js';

/**
 * Bytes of a plan document. A plan holds the target's baseline and a Delta whose changes carry
 * entries of both the baseline and the desired Profile: up to three profile documents' worth.
 */
export const PLAN_MAX_BYTES = 3 * DOCUMENT_LIMITS.maxBytes;

export type PlanFormat = 'json' | 'yaml';

/** The plan as a document; parsePlan reads it back equal. */
export function serializePlan(plan: Plan, format: PlanFormat = 'json'): string {
  // A plain tree (no shared objects) with sorted keys: equal plans are equal bytes, and YAML
  // gets no anchors or aliases, which the reader would count against the document.
  const tree = sortObjectKeys(JSON.parse(JSON.stringify(plan)));
  return format === 'json'
    ? `${JSON.stringify(tree, null, 2)}\n`
    : stringify(tree, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/** Reads a saved plan (JSON or YAML), refusing anything that is not one, naming the field. */
export function parsePlan(
  text: string | Uint8Array,
  options: Omit<ParseOptions, 'maxBytes' | 'kind'> = {},
): Plan {
  const source = options.source ?? 'plan';
  const { value, locate } = parseDocumentText(text, { source, maxBytes: PLAN_MAX_BYTES, kind: 'a plan' });
  const result = Plan.safeParse(value);
  if (!result.success) {
    throw new InvalidInputError(`${source} is not a valid plan`, issuesFromZod(result.error, locate), {
      source,
    });
  }
  return result.data;
}
