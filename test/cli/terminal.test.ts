// The CLI never writes control characters from stored data to a terminal: descriptions and
// values holding escape sequences are shown escaped in tables and diffs, and JSON and YAML
// output stay exact documents of the same values with nothing in them a terminal acts on.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pc from 'picocolors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { jsonText, table, terminalText, yamlText } from '../../cli/render.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

// Retitles an xterm, turns the rest red, and (8-bit CSI) red again; then reverses the text.
const HOSTILE = 'shop \x1b]0;owned\x07 \x1b[31mred \u009b31m \u202eesrever';
// Bytes a terminal acts on: C0 but line feed, DEL, C1, bidirectional overrides.
const ACTS = /[^\P{Cc}\n]|[\u202a-\u202e\u2066-\u2069]/u;

let api: TestPersona;
const persona = (...args: string[]) => runPersona(api, ...args);
const web = parse(readFileSync('examples/web.yaml', 'utf8'));

beforeAll(async () => {
  api = await startTestPersona();
  const doc = structuredClone(web);
  doc.metadata = { ...doc.metadata, name: 'hostile', description: HOSTILE };
  expect((await api.call('POST', '/profiles', { body: doc })).status).toBe(201);
  const next = structuredClone(doc);
  next.spec.configuration.env.push({ name: 'BANNER', value: '\x1b[2J\x1b[Hcleared' });
  expect(
    (await api.call('PUT', '/profiles/hostile', { body: next, headers: { 'if-match': '"1"' } })).status,
  ).toBe(201);
});

afterAll(async () => {
  await api?.stop();
});

describe('what persona prints from stored data', () => {
  it('shows a description with escape sequences escaped in `profiles list` and `history`', async () => {
    for (const args of [
      ['profiles', 'list'],
      ['profiles', 'history', 'hostile'],
    ]) {
      const r = await persona(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).not.toMatch(ACTS);
      expect(r.stdout).toContain('shop \\x1b]0;owned\\x07 \\x1b[31mred \\x9b31m \\u{202e}esrever');
    }
  });

  it('shows changed values escaped in `profiles diff`', async () => {
    const r = await persona('profiles', 'diff', 'hostile', '--from', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('BANNER');
    expect(r.stdout).toContain('\\x1b[2J\\x1b[Hcleared');
    expect(r.stdout).not.toMatch(ACTS);
  });

  it('prints YAML that reads back to the exact description, with no raw control character', async () => {
    const r = await persona('profiles', 'get', 'hostile', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(ACTS);
    expect(parse(r.stdout).metadata.description).toBe(HOSTILE);
  });

  it('prints JSON that parses to the exact values, with no raw control character', async () => {
    for (const args of [
      ['--json', 'profiles', 'list'],
      ['--json', 'profiles', 'get', 'hostile', '1'],
      ['profiles', 'get', 'hostile', '-o', 'json'],
    ]) {
      const r = await persona(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).not.toMatch(ACTS);
      expect(r.stdout).toContain('owned');
      const parsed = JSON.parse(r.stdout);
      const description = parsed.items?.find((h: { name: string }) => h.name === 'hostile')?.description;
      expect(description ?? parsed.version?.description ?? parsed.metadata?.description).toBe(HOSTILE);
    }
  });

  it('writes a profile it printed back unchanged: `get` then `apply` makes no new version', async () => {
    const printed = await persona('profiles', 'get', 'hostile');
    const file = join(api.dataDir, 'hostile.yaml');
    writeFileSync(file, printed.stdout);
    const r = await persona('profiles', 'apply', '-f', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hostile unchanged at version 2/);
  });

  it('refuses a profile file that is not UTF-8, naming the byte, and exits 3', async () => {
    const file = join(api.dataDir, 'latin1.yaml');
    const text = readFileSync('examples/web.yaml', 'utf8');
    const at = Buffer.byteLength(text.slice(0, text.indexOf('nginx reverse')));
    writeFileSync(
      file,
      Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xe9]), Buffer.from(text.slice(at))]),
    );
    const r = await persona('validate', file);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`invalid UTF-8 at byte ${at}`);
  });
});

describe('snapshot paths from a host', () => {
  it('shows file names holding escape sequences escaped in `snapshot diff` and `show`', async () => {
    const tree = join(api.dataDir, 'hostile-tree');
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, 'plain'), 'a');
    expect((await persona('snapshot', 'create', tree, '--host', 'hostile')).code).toBe(0);
    writeFileSync(join(tree, 'evil\x1b]0;owned\x07\x1b[31m'), 'b');
    expect((await persona('snapshot', 'create', tree, '--host', 'hostile')).code).toBe(0);
    for (const args of [
      ['snapshot', 'diff', '--host', 'hostile', '1', '2'],
      ['snapshot', 'show', '--host', 'hostile', '2'],
    ]) {
      const r = await persona(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toContain('evil\\x1b]0;owned\\x07\\x1b[31m');
      expect(r.stdout, args.join(' ')).not.toMatch(ACTS);
    }
  });
});

describe('render', () => {
  it('escapes every character a terminal acts on, and leaves other text alone', () => {
    expect(terminalText('\x1b]0;t\x07\x1b[31m\u009b\x7f\u202e\u2066a\tb\nc é ☕ 😀')).toBe(
      '\\x1b]0;t\\x07\\x1b[31m\\x9b\\x7f\\u{202e}\\u{2066}a\\tb\\nc é ☕ 😀',
    );
  });

  it('aligns table columns by what is shown', () => {
    const lines = table(
      ['A', 'B'],
      [
        ['\x1b[31m', 'P'],
        ['abcdefghij', 'Q'],
      ],
    ).split('\n');
    expect(lines[1]?.indexOf('P')).toBe(lines[2]?.indexOf('Q'));
    // The header's own bold (on when colours are, as under CI) is the only sequence allowed.
    const [open = '', close = ''] = pc.bold('A').split('A');
    expect(lines.join('\n').replaceAll(open, '').replaceAll(close, '')).not.toMatch(ACTS);
  });

  it('keeps JSON and YAML exact for every hostile string', () => {
    const value = { d: HOSTILE, k: { [HOSTILE]: ['\r', '\u0085', '\u2028', 'line\nbreak\n'] } };
    expect(JSON.parse(jsonText(value))).toEqual(value);
    expect(parse(yamlText(value))).toEqual(value);
    expect(jsonText(value) + yamlText(value)).not.toMatch(ACTS);
  });
});
