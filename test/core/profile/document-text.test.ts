// The document reader without the YAML parser up front: a JSON document is read, refused and
// positioned from its own text, with the line and column the YAML route gives, and everything
// else goes the YAML route with the same messages as the synchronous reader.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, type Issue, TooLargeError } from '../../../core/errors.js';
import { jsonLocator, readDocumentText } from '../../../core/profile/document-text.js';
import {
  DOCUMENT_LIMITS,
  parseDocumentText,
  parseProfile,
  validateProfile,
} from '../../../core/profile/io.js';
import { parseYamlText } from '../../../core/profile/yaml-text.js';

const web = parseProfile(readFileSync('examples/web.yaml', 'utf8'));

/** The issues validating `text` gives, positioned by `locate`. */
function profileIssues(value: unknown, locate: (path: readonly PropertyKey[]) => unknown): Issue[] {
  try {
    validateProfile(value, { source: 'body', locate: locate as never });
  } catch (e) {
    if (e instanceof InvalidInputError) return [...e.issues];
    throw e;
  }
  throw new Error('expected the profile to be refused');
}

async function refusalOf(read: () => unknown): Promise<unknown> {
  try {
    await read();
  } catch (e) {
    if (e instanceof InvalidInputError) return { message: e.message, issues: e.issues };
    if (e instanceof TooLargeError) return { message: e.message, limit: e.limit };
    throw e;
  }
  throw new Error('expected the document to be refused');
}

/** Every path of a value, and one that goes past each leaf and each collection's end. */
function pathsOf(value: unknown, at: PropertyKey[] = [], out: PropertyKey[][] = []): PropertyKey[][] {
  out.push(at);
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      pathsOf(v, [...at, i], out);
    });
    out.push([...at, value.length], [...at, String(value.length - 1)], [...at, 'missing']);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) pathsOf(v, [...at, k], out);
    out.push([...at, 'missing', 'deeper'], [...at, 0]);
  } else out.push([...at, 'below']);
  return out;
}

// Keys and strings with what JSON escapes (quotes, backslashes, control characters) and what it
// does not (non-ASCII, astral characters); short, as YAML limits implicit keys to 1024 characters.
const text = fc.string({
  unit: fc.constantFrom('a', 'b', 'é', '"', '\\', '\n', '\t', '\u0001', '😀', '/', ' ', ':', '#', '{', ']'),
  maxLength: 6,
});
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    text,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 4 }),
}));
const layout = fc.constantFrom<string | number | undefined>(undefined, 2, '\t', ' \r\n ');

describe('readDocumentText', () => {
  it('positions every path of JSON as the YAML route does, missing ones at their closest ancestor', () => {
    fc.assert(
      fc.property(fc.oneof(json.array, json.object), layout, (value, indent) => {
        const source =
          typeof indent === 'string' && indent.includes('\r')
            ? JSON.stringify(value, null, 1).replaceAll('\n', indent)
            : JSON.stringify(value, null, indent);
        const yaml = parseYamlText(source, {}).locate;
        const locate = jsonLocator(source);
        for (const path of pathsOf(value)) expect(locate(path), JSON.stringify(path)).toEqual(yaml(path));
      }),
      { numRuns: 300 },
    );
  });

  it('gives a JSON profile that fails validation the line and column the YAML route gives', async () => {
    const broken = structuredClone(web) as unknown as Record<string, any>;
    broken.spec.packages[3].version = 20230311; // inside an array
    broken.spec.os.kernel = ['6.1']; // a nested key
    broken.metadata.labels['tea"m\\é'] = 5; // under a key JSON escapes
    delete broken.spec.os.family; // a missing field: its map
    broken.spec.services[1] = { name: 'extra' }; // missing fields inside an array
    for (const indent of [undefined, 2]) {
      const body = JSON.stringify(broken, null, indent);
      const located = await readDocumentText(body, { source: 'body' });
      const issues = profileIssues(located.value, located.locate);
      expect(issues).toEqual(profileIssues(located.value, parseYamlText(body, {}).locate));
      expect(issues.map((i) => i.path)).toEqual(
        expect.arrayContaining([
          'spec.packages[3].version',
          'spec.os.kernel',
          'metadata.labels["tea\\"m\\\\é"]',
          'spec.os.family',
          'spec.services[1].state',
        ]),
      );
      expect(issues.every((i) => i.line !== undefined && i.column !== undefined)).toBe(true);
      // And the synchronous reader gives the same.
      const sync = parseDocumentText(body, { source: 'body' });
      expect(profileIssues(sync.value, sync.locate)).toEqual(issues);
    }
  });

  it('points a missing field at its closest ancestor, and a path through a scalar at the scalar', () => {
    const body = '{\n  "metadata": {\n    "name": "web"\n  },\n  "spec": [1, {"a": "b"}]\n}';
    const locate = jsonLocator(body);
    expect(locate(['metadata', 'labels', 'role'])).toEqual({ line: 2, column: 15 });
    expect(locate(['metadata', 'name', 'first'])).toEqual({ line: 3, column: 13 });
    expect(locate(['spec', 1, 'a'])).toEqual({ line: 5, column: 21 });
    expect(locate(['spec', 2])).toEqual({ line: 5, column: 11 });
    expect(locate(['spec', 'a'])).toEqual({ line: 5, column: 11 });
    expect(locate(['nothing'])).toEqual({ line: 1, column: 1 });
  });

  it('reads a YAML document to the value and positions the synchronous reader gives', async () => {
    const yaml = readFileSync('examples/web.yaml');
    const located = await readDocumentText(yaml, { source: 'web.yaml' });
    const sync = parseDocumentText(yaml, { source: 'web.yaml' });
    expect(located.value).toEqual(sync.value);
    expect(validateProfile(located.value)).toEqual(web);
    for (const path of [
      ['spec', 'packages', 3, 'version'],
      ['metadata', 'labels', 'team'],
      ['spec', 'nope'],
    ])
      expect(located.locate(path)).toEqual(sync.locate(path));
    expect(located.locate(['spec', 'packages', 3, 'version'])).toEqual({ line: 36, column: 41 });
  });

  it('refuses duplicate and forbidden keys in JSON through the YAML route, naming the key and where', async () => {
    const duplicate = '{\n  "metadata": { "name": "a", "name": "b" }\n}';
    const refused = await refusalOf(() => readDocumentText(duplicate, { source: 'body' }));
    expect(refused).toEqual(await refusalOf(() => parseDocumentText(duplicate, { source: 'body' })));
    expect(refused).toMatchObject({
      issues: [
        { path: 'metadata.name', message: 'duplicate key "name" (first at line 2)', line: 2, column: 30 },
      ],
    });
    const proto = '{"metadata": {"__proto__": {"x": 1}}}';
    expect(await refusalOf(() => readDocumentText(proto))).toMatchObject({
      issues: [{ path: 'metadata.__proto__', message: 'key "__proto__" is not allowed' }],
    });
  });

  it('refuses what the synchronous reader refuses, with the same message', async () => {
    const deep = (n: number) => `{"a": ${'['.repeat(n)}${']'.repeat(n)}}`;
    const hostile: [string, string | Uint8Array, { maxBytes?: number }?][] = [
      ['over the size limit', '{"a": "0123456789"}', { maxBytes: 10 }],
      ['not UTF-8', Uint8Array.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
      ['a raw lone surrogate', '{"a": "\ud800"}'],
      ['an escaped lone surrogate in JSON', '{"a": ["ok", "\\ud800"]}'],
      ['an escaped lone surrogate in YAML', 'a:\n  - "\\ud800"\n'],
      ['JSON nested too deep', deep(DOCUMENT_LIMITS.maxDepth + 1)],
      ['YAML nested 10,000 deep', `a: ${'['.repeat(10_000)}`],
      ['a custom tag', 'a: !!js/function "f"\n'],
      ['a YAML syntax error', 'a: [1, 2\n'],
      [
        'an alias bomb',
        `a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [${'*b, '.repeat(20)}*b]\n`,
      ],
    ];
    for (const [what, input, limits] of hostile) {
      const options = { source: 'body', ...limits };
      const refused = await refusalOf(() => readDocumentText(input, options));
      expect(refused, what).toEqual(await refusalOf(() => parseDocumentText(input, options)));
    }
  });
});
