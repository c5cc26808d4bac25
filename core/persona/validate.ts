// What checks a persona value and gives its stored form, apart from the document reader
// (io.ts): the persona store and every function that reads personas need this, and none of the
// YAML parser the reader brings.
import { formatPath, InvalidInputError, type Issue } from '../errors.js';
import { sortObjectKeys } from '../profile/collections.js';
import { issuesFromZod } from '../profile/issues.js';
import { compileCriteria } from './criteria.js';
import { MAX_CRITERIA_DEPTH, Persona } from './schema.js';

/** ['spec', 'criteria', 'all', 0] from `spec.criteria.all[0]`, to locate an issue in its file. */
const pathOf = (path: string): PropertyKey[] =>
  [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) =>
    m[2] === undefined ? (m[1] as string) : Number(m[2]),
  );

export type Locate = (path: readonly PropertyKey[]) => { line: number; column: number } | undefined;

/**
 * Where criteria nest deeper than MAX_CRITERIA_DEPTH (a leaf at the top is depth 1), named by
 * the path of the first criterion too deep. Walked with an explicit stack before the schema
 * sees the value, so that depth is refused by name rather than by the stack running out.
 */
export function criteriaDepthIssues(value: unknown, locate?: Locate): Issue[] {
  const spec = (value as { spec?: unknown } | null)?.spec;
  const root = (spec as { criteria?: unknown } | null)?.criteria;
  if (root === undefined || root === null || typeof root !== 'object') return [];
  const stack: { node: unknown; path: PropertyKey[]; depth: number }[] = [
    { node: root, path: ['spec', 'criteria'], depth: 1 },
  ];
  while (stack.length > 0) {
    const { node, path, depth } = stack.pop() as (typeof stack)[number];
    if (node === null || typeof node !== 'object' || Array.isArray(node)) continue;
    if (depth > MAX_CRITERIA_DEPTH) {
      return [
        {
          path: formatPath(path),
          message: `criteria nest deeper than ${MAX_CRITERIA_DEPTH} levels; flatten them (all/any take lists)`,
          ...locate?.(path),
        },
      ];
    }
    const c = node as Record<string, unknown>;
    for (const op of ['all', 'any'] as const) {
      const list = c[op];
      if (Array.isArray(list)) {
        list.forEach((child, i) => {
          stack.push({ node: child, path: [...path, op, i], depth: depth + 1 });
        });
      }
    }
    if (c.not !== undefined) stack.push({ node: c.not, path: [...path, 'not'], depth: depth + 1 });
  }
  return [];
}

/** Checks a plain value against the Persona schema and returns it with its defaults filled. */
export function validatePersona(value: unknown, options: { source?: string; locate?: Locate } = {}): Persona {
  const source = options.source ?? 'persona';
  const refuse = (issues: Issue[]): never => {
    throw new InvalidInputError(
      `${source} is not a valid persona`,
      issues,
      options.source === undefined ? {} : { source: options.source },
    );
  };
  const deep = criteriaDepthIssues(value, options.locate);
  if (deep.length > 0) refuse(deep);
  const result = Persona.safeParse(value);
  if (!result.success) refuse(issuesFromZod(result.error, options.locate));
  const persona = (result as { data: Persona }).data;
  // What the schema cannot say (a true/false signal compared with ">") is found by compiling
  // the criteria as evaluation will: refused now, naming the field, not at the first evaluation.
  if (persona.spec.criteria !== undefined) {
    try {
      compileCriteria(persona.spec.criteria, 'spec.criteria');
    } catch (e) {
      if (!(e instanceof InvalidInputError)) throw e;
      refuse(e.issues.map((i) => ({ ...i, ...options.locate?.(pathOf(i.path)) })));
    }
  }
  return canonicalPersona(persona);
}

/** The form personas are stored and compared in: defaults filled, object keys sorted. */
export function canonicalPersona(persona: Persona): Persona {
  return sortObjectKeys(persona) as Persona;
}

/** The stored form: equal personas are equal bytes. */
export function serializePersona(persona: Persona): string {
  return JSON.stringify(canonicalPersona(persona));
}
