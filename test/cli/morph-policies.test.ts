// `persona morph policies` as a user runs it: a separate process against the embedded runtime,
// the shipped example applied, listed, printed back and deleted, and a broken file refused here,
// with its line, before anything is sent.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
const persona = (...args: string[]) => runPersona(api, ...args);
const EXAMPLE = 'examples/morph-policies/web.yaml';

beforeAll(async () => {
  // No sampling round: nothing here should start a morph.
  api = await startTestPersona({ samplingIntervalMs: 0 });
});

afterAll(async () => {
  await api?.stop();
});

describe('persona morph policies', () => {
  it('applies the example, finds it unchanged, lists it, prints it back and deletes it', async () => {
    const first = await persona('morph', 'policies', 'apply', '-f', EXAMPLE);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe('+ web-nightly-tune created');
    expect((await persona('morph', 'policies', 'apply', '-f', EXAMPLE)).stdout.trim()).toBe(
      '= web-nightly-tune unchanged',
    );
    const edited = join(api.dataDir, 'edited.yaml');
    writeFileSync(
      edited,
      readFileSync(EXAMPLE, 'utf8').replace('cooldownSeconds: 86400', 'cooldownSeconds: 7200'),
    );
    expect((await persona('morph', 'policies', 'apply', '-f', edited)).stdout.trim()).toBe(
      '~ web-nightly-tune replaced (revision 2)',
    );

    const list = await persona('morph', 'policies', 'list');
    expect(list.stdout).toMatch(/web-nightly-tune\s+recommended\s+2/);
    const got = await persona('--json', 'morph', 'policies', 'get', 'web-nightly-tune');
    expect(JSON.parse(got.stdout).spec).toMatchObject({ cooldownSeconds: 7200, target: 'recommended' });
    // What `get` prints is what `apply -f` takes back.
    const printed = await persona('morph', 'policies', 'get', 'web-nightly-tune');
    const back = join(api.dataDir, 'back.yaml');
    writeFileSync(back, printed.stdout);
    expect((await persona('morph', 'policies', 'apply', '-f', back)).stdout.trim()).toBe(
      '= web-nightly-tune unchanged',
    );

    expect((await persona('morph', 'policies', 'delete', 'web-nightly-tune')).code).toBe(0);
    const gone = await persona('morph', 'policies', 'get', 'web-nightly-tune');
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/web-nightly-tune/);
  }, 120_000);

  it('refuses a broken file with the field and its line, and sends nothing', async () => {
    const broken = join(api.dataDir, 'broken.yaml');
    writeFileSync(broken, readFileSync(EXAMPLE, 'utf8').replace('target: recommended', 'target: "; reboot"'));
    const res = await persona('morph', 'policies', 'apply', '-f', broken);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/spec\.target/);
    expect(res.stderr).toMatch(/14/);
    expect((await persona('--json', 'morph', 'policies', 'list')).stdout).toBe(
      `${JSON.stringify({ items: [] }, null, 2)}\n`,
    );
  }, 60_000);
});
