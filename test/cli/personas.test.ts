// `persona personas` and `persona hosts persona` as a user runs them: a separate process
// against the embedded runtime. Switches are recorded, not run (no host is contacted).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowStarter } from '../../core/operation/workflows.js';
import { useWorkflowStarter, workflows } from '../../functions/shared/workflows.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let real: WorkflowStarter;
const started: string[] = [];

const persona = (...args: string[]) => runPersona(api, ...args);
const EXAMPLE = 'examples/personas/web.yaml';

beforeAll(async () => {
  api = await startTestPersona();
  real = workflows();
  useWorkflowStarter({
    async start(_workflow, input) {
      started.push(input.operationId);
    },
  });
  for (const [name, role] of [
    ['web-1', 'web'],
    ['db-1', 'db'],
  ] as const) {
    const res = await api.call('POST', '/hosts', {
      body: {
        name,
        platform: 'baremetal',
        transport: 'ssh',
        address: '127.0.0.1',
        port: 9,
        credentialRef: { provider: 'aws-secretsmanager', secretId: `persona/ssh/${name}` },
        tags: { role },
      },
    });
    expect(res.status).toBe(201);
  }
});

afterAll(async () => {
  if (real) useWorkflowStarter(real);
  await api?.stop();
});

const file = (name: string, text: string) => {
  const path = join(api.dataDir, name);
  writeFileSync(path, text);
  return path;
};

describe('persona personas apply', () => {
  it('applies the example file of three personas, then finds them unchanged, then writes a new version', async () => {
    const first = await persona('personas', 'apply', '-f', EXAMPLE);
    expect(first.code).toBe(0);
    expect(first.stdout.trim().split('\n')).toEqual([
      '+ web-peak created at version 1',
      '+ web-business-hours created at version 1',
      '+ web-quiet created at version 1',
    ]);

    const again = await persona('personas', 'apply', '-f', EXAMPLE);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/= web-peak unchanged at version 1/);
    expect(again.stdout).toMatch(/= web-quiet unchanged at version 1/);

    const edited = file('edited.yaml', readFileSync(EXAMPLE, 'utf8').replace('value: 75', 'value: 80'));
    const next = await persona('personas', 'apply', '-f', edited);
    expect(next.code).toBe(0);
    expect(next.stdout).toMatch(/~ web-peak version 2 written \(was 1\)/);
    expect(next.stdout).toMatch(/= web-business-hours unchanged at version 1/);

    const json = await persona('--json', 'personas', 'apply', '-f', edited);
    expect(
      JSON.parse(json.stdout).map((r: { name: string; created: boolean }) => [r.name, r.created]),
    ).toEqual([
      ['web-peak', false],
      ['web-business-hours', false],
      ['web-quiet', false],
    ]);
  });

  it('checks the whole file first: one bad document sends nothing, and every problem names file, line and field', async () => {
    const bad = file(
      'bad.yaml',
      [
        'apiVersion: persona/v1',
        'kind: Persona',
        'metadata: { name: cli-good }',
        'spec: { hosts: {}, parameters: {} }',
        '---',
        'apiVersion: persona/v1',
        'kind: Persona',
        'metadata: { name: Cli-Bad }',
        'spec:',
        '  hosts: {}',
        '  parameters: {}',
        '  criteria: { metric: { name: cpu, op: ">", value: 1 } }',
        '',
      ].join('\n'),
    );
    const r = await persona('personas', 'apply', '-f', bad);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${bad}:8:19 metadata.name:`);
    expect(r.stderr).toContain(`${bad}:12:31 spec.criteria.metric.name:`);
    expect((await persona('personas', 'get', 'cli-good')).code).toBe(4);
  });

  it('refuses hostile files: an alias bomb, criteria nested too deep, one persona twice, a file too large', async () => {
    const bomb = file(
      'bomb.yaml',
      [
        'a: &a [x, x, x, x, x, x, x, x, x]',
        'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
        'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
        'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
        'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
      ].join('\n'),
    );
    const b = await persona('personas', 'apply', '-f', bomb);
    expect(b.code).toBe(3);
    expect(b.stderr).toMatch(/alias/);

    let criteria = '{ signal: { name: freeze, op: "==", value: true } }';
    for (let i = 0; i < 16; i++) criteria = `{ not: ${criteria} }`;
    const deep = file(
      'deep.yaml',
      `apiVersion: persona/v1\nkind: Persona\nmetadata: { name: cli-deep }\nspec:\n  hosts: {}\n  parameters: {}\n  criteria: ${criteria}\n`,
    );
    const d = await persona('personas', 'apply', '-f', deep);
    expect(d.code).toBe(3);
    expect(d.stderr).toMatch(/spec\.criteria(\.not){16}: criteria nest deeper than 16 levels/);

    const one =
      'apiVersion: persona/v1\nkind: Persona\nmetadata: { name: cli-twice }\nspec: { hosts: {}, parameters: {} }\n';
    const twice = await persona('personas', 'apply', '-f', file('twice.yaml', `${one}---\n${one}`));
    expect(twice.code).toBe(3);
    expect(twice.stderr).toMatch(
      /twice\.yaml:8:\d+ metadata\.name: persona cli-twice is defined twice in this file \(first at line 1\)/,
    );

    const huge = await persona(
      'personas',
      'apply',
      '-f',
      file('huge.yaml', `# ${'x'.repeat(5 * 1024 * 1024)}\n`),
    );
    expect(huge.code).toBe(3);
    expect(huge.stderr).toMatch(/limit for a file of personas/);

    expect((await persona('personas', 'apply', '-f', 'no/such/file.yaml')).code).toBe(4);
  });
});

describe('persona personas validate', () => {
  it('checks files offline: each persona with its line, every problem with file, line and field', async () => {
    const ok = await runPersona(
      { ...api, url: 'http://127.0.0.1:9' } as TestPersona,
      'personas',
      'validate',
      EXAMPLE,
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim().split('\n')).toEqual([
      `✓ ${EXAMPLE}:1: persona web-peak`,
      `✓ ${EXAMPLE}:35: persona web-business-hours`,
      `✓ ${EXAMPLE}:66: persona web-quiet`,
    ]);
    const bad = file(
      'invalid.yaml',
      'apiVersion: persona/v1\nkind: Persona\nmetadata: { name: x }\nspec: { hosts: {}, parameters: {}, mode: dry }\n',
    );
    const r = await persona('personas', 'validate', EXAMPLE, bad, 'no/such.yaml');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${bad}:4:42 spec.mode:`);
    expect(r.stderr).toMatch(/cannot read no\/such\.yaml: ENOENT/);
  });
});

describe('persona personas list, get, versions, delete', () => {
  it('lists, gets the latest or a version, and lists versions newest first', async () => {
    await persona('personas', 'apply', '-f', EXAMPLE);
    const list = await persona('personas', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+LATEST\s+PRIORITY\s+DEFAULT\s+MODE\s+UPDATED\s+DESCRIPTION/);
    expect(list.stdout).toMatch(/\nweb-quiet\s+1\s+1000\s+yes\s+act\s+/);

    const get = await persona('personas', 'get', 'web-business-hours');
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/^# web-business-hours version 1 \(sha256:/);
    expect(get.stdout).toMatch(/timezone: Europe\/Paris/);

    await persona(
      'personas',
      'apply',
      '-f',
      file('v2.yaml', readFileSync(EXAMPLE, 'utf8').replace('priority: 20', 'priority: 21')),
    );
    const old = await persona('personas', 'get', 'web-business-hours', '1', '-o', 'json');
    expect(JSON.parse(old.stdout).spec.priority).toBe(20);
    const versions = await persona('personas', 'versions', 'web-business-hours');
    expect(
      versions.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(['2', '1']);
  });

  it('exits 2 for a name that reads as an option, 3 for one that is not a persona name, 4 for none', async () => {
    expect((await persona('personas', 'get', '-rf')).code).toBe(2);
    const dashed = await persona('personas', 'get', '--', '-rf');
    expect(dashed.code).toBe(3);
    expect(dashed.stderr).toMatch(/params\.name/);
    expect((await persona('personas', 'get', '../../etc/passwd')).code).toBe(3);
    const missing = await persona('personas', 'get', 'nobody');
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/persona nobody does not exist/);
  });

  it('deletes a persona, then says it does not exist', async () => {
    await persona(
      'personas',
      'apply',
      '-f',
      file(
        'del.yaml',
        'apiVersion: persona/v1\nkind: Persona\nmetadata: { name: cli-del }\nspec: { hosts: {}, parameters: {} }\n',
      ),
    );
    const stale = await persona('personas', 'delete', 'cli-del', '--expected-version', '2');
    expect(stale.code).toBe(5);
    const del = await persona('personas', 'delete', 'cli-del');
    expect(del).toMatchObject({ code: 0 });
    expect(del.stdout).toMatch(/cli-del deleted/);
    expect((await persona('personas', 'delete', 'cli-del')).code).toBe(4);
  });
});

describe('persona personas activate and persona hosts persona', () => {
  it('activates a persona on a host, and shows the host in it, why, and the history', async () => {
    await persona('personas', 'apply', '-f', EXAMPLE);
    const until = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const r = await persona('personas', 'activate', 'web-peak', '--host', 'web-1', '--until', until);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`web-1 takes web-peak v\\d+ until ${until.replace(/\./g, '\\.')}`));
    expect(started).toHaveLength(1);
    expect(r.stdout).toContain(started[0] as string);

    const shown = await persona('hosts', 'persona', 'web-1');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^web-1: its own parameters \(no persona\)/);
    expect(shown.stdout).toMatch(new RegExp(`manual: web-peak until ${until.replace(/\./g, '\\.')}`));
    expect(shown.stdout).toMatch(/why: manual activation of web-peak v\d+ until /);
    expect(shown.stdout).toMatch(/true\s+\/\s+activated by an operator/);
    expect(shown.stdout).toMatch(/\nAT\s+ACTION\s+FROM\s+TO\s+MODE\s+SUMMARY\n.*manual\s+-\s+web-peak\s+act/);

    const json = JSON.parse((await persona('--json', 'hosts', 'persona', 'web-1')).stdout);
    expect(json).toMatchObject({ host: 'web-1', manual: { persona: 'web-peak', until } });
  });

  it('exits 4 for an unregistered host and 5 for a host the persona does not select', async () => {
    await persona('personas', 'apply', '-f', EXAMPLE);
    const ghost = await persona('personas', 'activate', 'web-peak', '--host', 'ghost');
    expect(ghost.code).toBe(4);
    expect(ghost.stderr).toMatch(/host ghost \(body\.host\) is not registered/);
    const db = await persona('personas', 'activate', 'web-peak', '--host', 'db-1');
    expect(db.code).toBe(5);
    expect(db.stderr).toMatch(/does not select host db-1/);
    expect((await persona('hosts', 'persona', 'ghost')).code).toBe(4);
    const fresh = await persona('hosts', 'persona', 'db-1');
    expect(fresh.stdout).toMatch(/db-1: its own parameters \(no persona\)\nno decisions recorded yet/);
  });
});
