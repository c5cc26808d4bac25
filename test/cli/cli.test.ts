import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const _exec = promisify(execFile);
let api: TestPersona;

const persona = (...args: string[]) => runPersona(api, ...args);

beforeAll(async () => {
  api = await startTestPersona();
});

afterAll(async () => {
  await api?.stop();
});

describe('persona validate', () => {
  it('accepts the example profiles', async () => {
    const r = await persona('validate', 'examples/web.yaml', 'examples/web-v2.yaml');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/examples\/web\.yaml: profile web \(6 packages, 4 services, 7 files\)/);
  });

  it('lists every problem with file, line and path, and exits 3', async () => {
    const bad = join(api.dataDir, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: persona/v1\nkind: Profile\nmetadata: { name: Bad }\nspec:\n  os: { family: linux, distribution: debian, version: 12, kernel: "6", arch: x86_64 }\n',
    );
    const r = await persona('validate', bad);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${bad}:3:19 metadata.name:`);
    expect(r.stderr).toContain(`${bad}:5:55 spec.os.version: expected string, received number`);
  });

  it('reports a file it cannot read as not valid, and exits 3', async () => {
    const r = await persona('validate', 'examples/web.yaml', 'no/such/file.yaml');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot read no\/such\/file\.yaml: ENOENT/);
  });

  it('exits 4 when the file to apply does not exist', async () => {
    const r = await persona('profiles', 'apply', '-f', 'no/such/file.yaml');
    expect(r.code).toBe(4);
  });

  it('prints machine-readable results with --json', async () => {
    const r = await persona('--json', 'validate', 'examples/web.yaml');
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({ file: 'examples/web.yaml', valid: true, name: 'web' }),
    ]);
  });
});

describe('persona profiles', () => {
  it('applies, lists, shows history and diffs, as in the README walkthrough', async () => {
    const created = await persona('profiles', 'apply', '-f', 'examples/web.yaml');
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toMatch(/web created at version 1/);

    const unchanged = await persona('profiles', 'apply', '-f', 'examples/web.yaml');
    expect(unchanged.stdout).toMatch(/web unchanged at version 1/);

    const second = await persona('profiles', 'apply', '-f', 'examples/web-v2.yaml');
    expect(second.stdout).toMatch(/web version 2 written \(was 1\)/);

    const list = await persona('profiles', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+LATEST\s+UPDATED\s+DESCRIPTION/);
    expect(list.stdout).toMatch(/\nweb\s+2\s+/);

    const history = await persona('profiles', 'history', 'web');
    expect(
      history.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(['2', '1']);

    const diff = await persona('profiles', 'diff', 'web', '--from', '1', '--to', '2');
    expect(diff.code).toBe(0);
    expect(diff.stdout).toMatch(/^web@1 → web@2/);
    expect(diff.stdout).toMatch(/\+ package\.install\s+apt:redis-server/);
    expect(diff.stdout).toMatch(
      /~ package\.upgrade\s+apt:nginx-light\s+version: 1\.22\.1-9\+deb12u1 → 1\.22\.1-9\+deb12u2/,
    );
    expect(diff.stdout).toMatch(/\d+ changes, \d+ disruptive/);

    const json = await persona('--json', 'profiles', 'diff', 'web', '--from', '1');
    expect(JSON.parse(json.stdout).changes.length).toBeGreaterThan(10);

    const get = await persona('profiles', 'get', 'web', '1');
    expect(get.stdout).toMatch(/^# web version 1 /);
    expect(get.stdout).toMatch(/size: m7i\.large/);
  });

  it('exits 5 when the latest version is not the one expected', async () => {
    await persona('profiles', 'apply', '-f', 'examples/web.yaml');
    const r = await persona('profiles', 'apply', '-f', 'examples/web-v2.yaml', '--expected-version', '0');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/conflict|already exists|is at version/);
  });

  it('exits 4 for a profile that does not exist', async () => {
    const r = await persona('profiles', 'get', 'nobody');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/profile nobody does not exist/);
  });

  it('exits 2 on a usage error and 6 when the endpoint does not answer', async () => {
    expect((await persona('profiles', 'diff', 'web')).code).toBe(2);
    expect((await persona('profiles', 'diff', 'web', '--from', 'one')).code).toBe(2);
    const down = await persona('--endpoint', 'http://127.0.0.1:9', 'profiles', 'list');
    expect(down.code).toBe(6);
    expect(down.stderr).toMatch(/cannot reach Persona/);
  });
});
