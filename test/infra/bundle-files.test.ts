// The files a function reads beside its code: the shipped target profiles go into a bundle as
// JSON, converted at build time, so that the function reading them never loads the YAML parser.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FolderTargetCatalog } from '../../core/morph/catalog.js';
import { bundleSync } from '../../infra/bundling.js';
import { targetFiles } from '../../infra/morph.js';

const root = path.resolve(import.meta.dirname, '../..');
const shipped = path.join(root, 'examples', 'targets');
// The smallest function: the build is not what these tests are about.
const entry = 'functions/authorizers/agent/handler.ts';

/** A file outside the project, named as BundleSpec.files names its sources. */
function outside(name: string, text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'persona-files-')), name);
  writeFileSync(file, text);
  return path.relative(root, file);
}

describe('bundle files', () => {
  it('lists every shipped target as <name>.json, converted from its YAML', () => {
    const files = targetFiles(root);
    expect(files.map((f) => f.to)).toEqual([
      'analytics-node.json',
      'database-server.json',
      'web-server.json',
    ]);
    expect(files.every((f) => f.json === true && /^examples\/targets\/[a-z-]+\.yaml$/.test(f.from))).toBe(
      true,
    );
  });

  it('writes the shipped targets as JSON beside the code, which read back as the same targets', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'persona-bundle-'));
    bundleSync(root, { entry, files: targetFiles(root) }, out);
    const written = readdirSync(out).filter((f) => !f.startsWith('index.') && f !== 'chunks');
    expect(written.sort()).toEqual(['analytics-node.json', 'database-server.json', 'web-server.json']);
    for (const file of written) {
      const yaml = parse(readFileSync(path.join(shipped, file.replace(/\.json$/, '.yaml')), 'utf8'));
      expect(JSON.parse(readFileSync(path.join(out, file), 'utf8')), file).toEqual(yaml);
    }
    expect(await new FolderTargetCatalog(out).list()).toEqual(await new FolderTargetCatalog(shipped).list());
  });

  it('copies a file without `json` as it is', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'persona-bundle-'));
    const from = outside('notes.yaml', 'a: 1 # as written\n');
    bundleSync(root, { entry, files: [{ from, to: 'notes.yaml' }] }, out);
    expect(readFileSync(path.join(out, 'notes.yaml'), 'utf8')).toBe('a: 1 # as written\n');
  });

  it.each([
    ['a duplicate key', 'a: 1\na: 2\n', /twice\.yaml is not valid YAML: .*unique/i],
    ['a syntax error', 'a: [1, 2\n', /twice\.yaml is not valid YAML/],
    ['a value JSON cannot say', 'a: .inf\n', /twice\.yaml holds values JSON cannot represent/],
  ])('stops the build on %s, naming the file, and writes no JSON', (_what, text, message) => {
    const out = mkdtempSync(path.join(tmpdir(), 'persona-bundle-'));
    const from = outside('twice.yaml', text);
    expect(() => bundleSync(root, { entry, files: [{ from, to: 'twice.json', json: true }] }, out)).toThrow(
      message,
    );
    expect(existsSync(path.join(out, 'twice.json'))).toBe(false);
  });
});
