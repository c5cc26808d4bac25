import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError, TooLargeError } from '../../../core/errors.js';
import { DOCUMENT_LIMITS, formatIssues, parseDocumentText, parseProfile } from '../../../core/profile/io.js';

const web = readFileSync('examples/web.yaml', 'utf8');

function issuesOf(text: string | Uint8Array) {
  try {
    parseProfile(text, { source: 'p.yaml' });
  } catch (e) {
    if (e instanceof InvalidInputError) return e.issues;
    throw e;
  }
  throw new Error('expected the document to be refused');
}

const minimal = (extra = '') => `apiVersion: persona/v1
kind: Profile
metadata:
  name: mini
spec:
  os: { family: linux, distribution: debian, version: "12", kernel: 6.1.0, arch: x86_64 }
${extra}`;

describe('parseProfile', () => {
  it('reads the example profile and fills in defaults', () => {
    const p = parseProfile(web);
    expect(p.metadata.name).toBe('web');
    expect(p.spec.packages).toHaveLength(6);
    expect(p.spec.services.find((s) => s.name === 'ssh')?.manager).toBe('systemd');
  });

  it('reads JSON as well as YAML, to the same profile', () => {
    const fromYaml = parseProfile(web);
    const fromJson = parseProfile(JSON.stringify(fromYaml, null, '\t'));
    expect(fromJson).toEqual(fromYaml);
  });

  it('names the path and the problem of every error at once, with line and column', () => {
    const text = web
      .replace('version: "12"', 'version: 12')
      .replace('{ name: curl, version: 7.88.1-10+deb12u8,', '{ name: curl, version: 7,')
      .replace('  - { name: tcp_bbr }', '  - { name: tcp_bbr, colour: blue }');
    const issues = issuesOf(text);
    const lines = formatIssues(issues, 'p.yaml');
    expect(lines).toContainEqual(
      expect.stringMatching(/^p\.yaml:16:\d+ spec\.os\.version: expected string, received number$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/spec\.packages\[4\]\.version: expected string, received number$/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/spec\.kernelModules\[2\]\.colour: unknown field$/));
    expect(issues).toHaveLength(3);
  });

  it('refuses a sensitive-looking environment value in clear, but accepts a reference', () => {
    const clear = minimal('  configuration:\n    env:\n      - { name: DB_PASSWORD, value: hunter2 }\n');
    expect(issuesOf(clear)).toEqual([
      expect.objectContaining({
        path: 'spec.configuration.env[0].value',
        message: expect.stringMatching(/secretRef/),
      }),
    ]);
    const ref = minimal(
      '  configuration:\n    env:\n      - { name: DB_PASSWORD, secretRef: { provider: aws-ssm, parameter: /db/pw } }\n',
    );
    expect(parseProfile(ref).spec.configuration.env[0]?.secretRef).toEqual({
      provider: 'aws-ssm',
      parameter: '/db/pw',
    });
  });

  it('refuses recorded paths a command could misread, and keeps "/" and odd but harmless forms', () => {
    const hostile = minimal(
      '  application:\n    paths: ["/-rf", "/srv/\\e]0;owned\\a", "/srv/../etc", "/srv/shop/"]\n',
    );
    expect(issuesOf(hostile).map((i) => i.path)).toEqual([
      'spec.application.paths[0]',
      'spec.application.paths[1]',
      'spec.application.paths[2]',
    ]);
    expect(issuesOf(hostile)[0]?.message).toMatch(/read as an option/);
    const root = minimal('  storage:\n    mounts:\n      - { target: /, source: /dev/vda1, fstype: ext4 }\n');
    expect(parseProfile(root).spec.storage.mounts[0]?.target).toBe('/');
  });

  it('refuses a user with a password hash field', () => {
    const text = minimal(
      '  security:\n    users:\n      - { name: a, uid: 1000, gid: 1000, password: "$6$abc" }\n',
    );
    expect(issuesOf(text)).toEqual([
      expect.objectContaining({ path: 'spec.security.users[0].password', message: 'unknown field' }),
    ]);
  });

  it('refuses two entries with the same key in a collection', () => {
    const text = minimal(
      '  packages:\n    - { name: curl, version: "1", manager: apt }\n    - { name: curl, version: "2", manager: apt }\n',
    );
    expect(issuesOf(text)).toEqual([
      expect.objectContaining({
        path: 'spec.packages[1]',
        message: expect.stringMatching(/duplicate package "apt:curl"/),
      }),
    ]);
  });

  it('refuses duplicate keys in YAML and in JSON', () => {
    expect(issuesOf(minimal().replace('kind: Profile', 'kind: Profile\nkind: Profile'))).toEqual([
      expect.objectContaining({
        path: 'kind',
        message: expect.stringMatching(/duplicate key "kind"/),
        line: 3,
      }),
    ]);
    const json =
      '{"apiVersion":"persona/v1","kind":"Profile","kind":"Profile","metadata":{"name":"x"},"spec":{}}';
    expect(issuesOf(json)).toEqual([
      expect.objectContaining({ path: 'kind', message: expect.stringMatching(/duplicate/) }),
    ]);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('refuses the key %s anywhere', (key) => {
    const issues = issuesOf(minimal(`  configuration:\n    sysctl:\n      ${key}: "1"\n`));
    expect(issues).toContainEqual(
      expect.objectContaining({
        path: `spec.configuration.sysctl.${key}`,
        message: `key "${key}" is not allowed`,
      }),
    );
  });

  it('gives JSON the same checks and positions as YAML', () => {
    const json = JSON.stringify(parseProfile(web), null, 2).replace('"version": "12"', '"version": 12');
    expect(formatIssues(issuesOf(json), 'p.json')).toEqual([
      expect.stringMatching(/^p\.json:\d+:\d+ spec\.os\.version: expected string, received number$/),
    ]);
    const proto = JSON.stringify(parseProfile(web)).replace(
      '"metadata":{',
      '"metadata":{"__proto__":{"x":1},',
    );
    expect(issuesOf(proto)).toContainEqual(expect.objectContaining({ path: 'metadata.__proto__' }));
    const deep = `{"metadata": ${'['.repeat(DOCUMENT_LIMITS.maxDepth + 2)}${']'.repeat(DOCUMENT_LIMITS.maxDepth + 2)}}`;
    expect(issuesOf(deep)).toContainEqual(
      expect.objectContaining({ message: expect.stringMatching(/nested deeper/) }),
    );
  });

  it('refuses a YAML alias bomb before expanding it', () => {
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    ].join('\n');
    const started = Date.now();
    expect(issuesOf(bomb)).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/aliases expand/) }),
    ]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('accepts a few aliases, as people use them for repeated blocks', () => {
    const text = minimal(
      '  packages:\n    - &pkg { name: curl, version: "1", manager: apt }\n  runtimeDependencies:\n    - { type: library, name: libcurl, version: "1" }\n',
    );
    expect(parseProfile(text).spec.packages).toHaveLength(1);
  });

  it(`refuses nesting deeper than ${DOCUMENT_LIMITS.maxDepth} levels`, () => {
    const deep = `${'['.repeat(DOCUMENT_LIMITS.maxDepth + 5)}${']'.repeat(DOCUMENT_LIMITS.maxDepth + 5)}`;
    expect(issuesOf(`metadata: ${deep}`)).toContainEqual(
      expect.objectContaining({ message: `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels` }),
    );
  });

  it('refuses a document over the size limit without parsing it', () => {
    const big = `# ${'x'.repeat(DOCUMENT_LIMITS.maxBytes)}\n${minimal()}`;
    expect(() => parseProfile(big)).toThrow(TooLargeError);
  });

  it('refuses several documents in one file, and custom tags', () => {
    expect(issuesOf(`${minimal()}---\n${minimal()}`)[0]?.message).toMatch(/multiple documents/);
    expect(issuesOf(minimal().replace('name: mini', 'name: !shell mini'))).toContainEqual(
      expect.objectContaining({ path: 'metadata.name', message: 'tag !shell is not allowed' }),
    );
    // Under the core schema's own prefix, only the tags that add nothing to the plain value.
    expect(issuesOf(minimal().replace('name: mini', 'name: !!js/function mini'))).toContainEqual(
      expect.objectContaining({
        path: 'metadata.name',
        message: 'tag tag:yaml.org,2002:js/function is not allowed',
      }),
    );
    expect(parseProfile(minimal().replace('name: mini', 'name: !!str mini')).metadata.name).toBe('mini');
  });

  it('reports a YAML syntax error with its position', () => {
    const issues = issuesOf('apiVersion: persona/v1\nkind: [Profile\nmetadata: {}\n');
    expect(issues[0]).toEqual(
      expect.objectContaining({ line: expect.any(Number), column: expect.any(Number) }),
    );
  });

  it('stores unordered collections in key order but keeps kernel module load order', () => {
    const text = minimal(
      '  packages:\n    - { name: zsh, version: "1", manager: apt }\n    - { name: bash, version: "1", manager: apt }\n' +
        '  kernelModules:\n    - { name: zram }\n    - { name: af_packet }\n',
    );
    const p = parseProfile(text);
    expect(p.spec.packages.map((x) => x.name)).toEqual(['bash', 'zsh']);
    expect(p.spec.kernelModules.map((x) => x.name)).toEqual(['zram', 'af_packet']);
  });

  it('reads UTF-8 bytes, emoji included, to the same profile as the text', () => {
    const text = web.replace(/description: .*/, 'description: "café ☕ 😀"');
    const fromBytes = parseProfile(Buffer.from(text, 'utf8'));
    expect(fromBytes).toEqual(parseProfile(text));
    expect(fromBytes.metadata.description).toBe('café ☕ 😀');
  });

  it('refuses bytes that are not UTF-8, naming the byte offset, line and column', () => {
    const head = Buffer.from('apiVersion: persona/v1\nkind: Profile\nmetadata:\n  name: "caf', 'utf8');
    for (const bad of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xc0, 0xaf], [0xf5, 0x80, 0x80, 0x80]]) {
      const bytes = Buffer.concat([head, Buffer.from(bad), Buffer.from('"\n')]);
      expect(issuesOf(bytes), bad.join(' ')).toEqual([
        {
          path: '',
          message: expect.stringMatching(new RegExp(`^invalid UTF-8 at byte ${head.length} \\(0x`)),
          line: 4,
          column: 13,
        },
      ]);
    }
  });

  it('refuses surrogates encoded as UTF-8 bytes (CESU-8), which are not characters', () => {
    const bytes = Buffer.concat([Buffer.from('a: "'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"\n')]);
    expect(() => parseDocumentText(bytes)).toThrow(/not valid UTF-8/);
  });

  it('refuses a lone surrogate escaped in JSON or YAML, naming the field and its position', () => {
    const json = JSON.stringify(parseProfile(web), null, 2).replace('"name": "web"', '"name": "w\\ud800"');
    expect(issuesOf(json)).toEqual([
      expect.objectContaining({
        path: 'metadata.name',
        message: 'lone surrogate U+D800 at character 2: text must be valid Unicode',
        line: expect.any(Number),
        column: expect.any(Number),
      }),
    ]);
    const yaml = minimal('  configuration:\n    env:\n      - { name: LANG, value: "C\\udfff" }\n');
    expect(issuesOf(yaml)).toEqual([
      expect.objectContaining({ path: 'spec.configuration.env[0].value', line: 9 }),
    ]);
    expect(issuesOf('{"\\ud800key": 1}')).toEqual([expect.objectContaining({ path: '["\\ud800key"]' })]);
  });

  it('refuses a raw lone surrogate in the text with its line and column', () => {
    expect(issuesOf(minimal().replace('name: mini', 'name: mi\ud800ni'))).toEqual([
      {
        path: '',
        message: expect.stringMatching(/^lone surrogate U\+D800 at character \d+/),
        line: 4,
        column: 11,
      },
    ]);
  });

  it('accepts an escaped surrogate pair, which is one character', () => {
    expect(parseDocumentText('{"a": "\\ud83d\\ude00"}').value).toEqual({ a: '😀' });
  });

  it('reports nesting 10,000 levels deep as the depth limit, in every notation, with its position', () => {
    const n = 10_000;
    const documents = {
      'JSON arrays': `${'['.repeat(n)}${']'.repeat(n)}`,
      'unclosed JSON': '['.repeat(n),
      'JSON objects': `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`,
      'YAML flow': `metadata: ${'['.repeat(n)}${']'.repeat(n)}`,
      'YAML block sequences': `${'- '.repeat(n)}x\n`,
      'YAML explicit keys': `${'? '.repeat(n)}x\n`,
      'YAML indentation': Array.from({ length: 2_000 }, (_, i) => `${' '.repeat(i)}k:`).join('\n'),
    };
    for (const [what, text] of Object.entries(documents)) {
      const issues = issuesOf(text);
      expect(issues, what).toEqual([
        expect.objectContaining({
          message: `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels`,
          line: expect.any(Number),
          column: expect.any(Number),
        }),
      ]);
      expect(JSON.stringify(issues)).not.toMatch(/call stack/);
    }
  });

  it('counts the depth an alias adds where it is used, and refuses an alias inside its own target', () => {
    const deep = `a: &x ${'['.repeat(30)}${']'.repeat(30)}\nb: ${'['.repeat(10)}*x${']'.repeat(10)}\n`;
    expect(issuesOf(deep)).toContainEqual(
      expect.objectContaining({ message: `nested deeper than ${DOCUMENT_LIMITS.maxDepth} levels`, line: 2 }),
    );
    expect(issuesOf('metadata: &m { name: x, labels: *m }\n')).toContainEqual(
      expect.objectContaining({
        path: 'metadata.labels',
        message: 'alias *m refers to a node that contains it',
      }),
    );
  });

  it('accepts nesting at the limit in both notations', () => {
    const d = DOCUMENT_LIMITS.maxDepth;
    expect(parseDocumentText(`${'['.repeat(d)}${']'.repeat(d)}`).value).toBeDefined();
    const block = Array.from({ length: d }, (_, i) => `${'  '.repeat(i)}k:`).join('\n');
    expect(parseDocumentText(`${block} 1\n`).value).toBeDefined();
  });
});
