// A target profile is data, never code: every hostile document is refused whole, naming the field.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { FolderTargetCatalog } from '../../../core/morph/catalog.js';
import { readTarget } from '../../../core/morph/target.js';

const base = (spec: string) => `apiVersion: persona/v1
kind: TargetProfile
metadata:
  name: t
spec:
  traits: { web-serving: 0.9 }
${spec}`;

async function refusal(text: string): Promise<{ message: string; paths: string[] }> {
  try {
    await readTarget(text, 't.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    const err = e as InvalidInputError;
    return { message: err.message, paths: err.issues.map((i) => `${i.path}: ${i.message}`) };
  }
  throw new Error('the target was accepted');
}

describe('target profiles', () => {
  it('loads every shipped target, each named as its file', async () => {
    const folder = join(import.meta.dirname, '../../../examples/targets');
    const targets = await new FolderTargetCatalog(folder).list();
    expect(targets.map((t) => t.metadata.name)).toEqual(['analytics-node', 'database-server', 'web-server']);
    expect(readdirSync(folder).filter((f) => f.endsWith('.yaml'))).toHaveLength(3);
    const web = await readTarget(readFileSync(join(folder, 'web-server.yaml')), 'web-server.yaml');
    expect(web.spec.sysctl['net.core.somaxconn']).toBe('4096');
    expect(web.spec.watch?.probe).toEqual({ kind: 'load' });
  });

  it('fills defaults: a file is 0644 root:root and restarts nothing', async () => {
    const t = await readTarget(base('  files:\n    - path: /etc/app.conf\n      content: "a=1\\n"\n'));
    expect(t.spec.files[0]).toEqual({
      path: '/etc/app.conf',
      content: 'a=1\n',
      mode: '0644',
      owner: 'root',
      group: 'root',
      restarts: [],
    });
  });

  it('refuses unknown keys at any level, naming each', async () => {
    const r = await refusal(
      base('  shell: "rm -rf /"\n  files:\n    - path: /etc/a\n      content: x\n      exec: true\n'),
    );
    expect(r.paths).toEqual(
      expect.arrayContaining(['spec.shell: unknown field', 'spec.files[0].exec: unknown field']),
    );
  });

  it.each([
    ['/etc/../root/.ssh/authorized_keys', 'a ".." segment'],
    ['/etc/./a', 'a "." segment'],
    ['etc/a', 'a relative path'],
    ['/var/www/index.html', 'a path outside /etc'],
    ['/etc//a', 'an empty segment'],
    ['/etc/-rf', 'a segment starting with "-"'],
    ['/etc/init.d/backdoor', 'an init script'],
    ['/etc/cron.d/job', 'a cron job'],
    ['/etc/sudoers.d/all', 'a sudoers rule'],
    ['/etc/systemd/system/x.service', 'a unit file'],
    ['/etc/ld.so.preload', 'the preload list'],
    ['/etc/a\nb', 'a newline'],
  ])('refuses the file path %j (%s)', async (path) => {
    const r = await refusal(base(`  files:\n    - path: ${JSON.stringify(path)}\n      content: x\n`));
    expect(r.paths.some((p) => p.startsWith('spec.files[0].path'))).toBe(true);
  });

  it('refuses an executable or set-id mode: a target file is never a program', async () => {
    for (const mode of ['0755', '0644x', '4644', '0711'])
      expect(
        (await refusal(base(`  files:\n    - path: /etc/a\n      content: x\n      mode: "${mode}"\n`)))
          .paths[0],
      ).toMatch(/^spec\.files\[0\]\.mode/);
  });

  it('refuses names that start with a dash, where a command line receives them', async () => {
    expect(
      (await refusal(base('  services:\n    - name: "--help"\n      state: running\n'))).paths[0],
    ).toMatch(/^spec\.services\[0\]\.name/);
    expect(
      (await refusal(base('  files:\n    - path: /etc/a\n      content: x\n      restarts: ["-x"]\n')))
        .paths[0],
    ).toMatch(/^spec\.files\[0\]\.restarts\[0\]/);
    expect(
      (await refusal(base('  files:\n    - path: /etc/a\n      content: x\n      owner: "-o"\n'))).paths[0],
    ).toMatch(/^spec\.files\[0\]\.owner/);
    expect((await refusal(base('  sysctl: { "-w kernel.x": "1" }\n'))).paths[0]).toMatch(/^spec\.sysctl/);
  });

  it('refuses unknown traits, values out of [0, 1], a multi-line sysctl value and duplicates', async () => {
    expect((await refusal(base('  importance: { telepathy: 1 }\n'))).paths[0]).toMatch(/^spec\.importance/);
    expect((await refusal(base('').replace('web-serving: 0.9', 'web-serving: 1.5'))).paths[0]).toMatch(
      /^spec\.traits\["web-serving"\]/,
    );
    expect((await refusal(base('  sysctl: { net.core.somaxconn: "1\\n2" }\n'))).paths[0]).toMatch(
      /^spec\.sysctl/,
    );
    expect(
      (
        await refusal(
          base('  files:\n    - { path: /etc/a, content: x }\n    - { path: /etc/a, content: y }\n'),
        )
      ).paths,
    ).toEqual(['spec.files[1].path: a path appears twice']);
  });

  it('reads YAML as data: tags and prototype keys are refused, not evaluated', async () => {
    await expect(readTarget(base('  sysctl: !!js/function "function(){}"\n'))).rejects.toThrow(
      InvalidInputError,
    );
    await expect(readTarget(base('  __proto__: { polluted: true }\n'))).rejects.toThrow(InvalidInputError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a watch longer than one task invocation can sample', async () => {
    expect((await refusal(base('  watch: { periodSeconds: 3600 }\n'))).paths[0]).toMatch(
      /^spec\.watch\.periodSeconds/,
    );
  });
});

describe('a folder of targets', () => {
  const shipped = join(import.meta.dirname, '../../../examples/targets');
  const folderWith = (files: Record<string, string>) => {
    const folder = mkdtempSync(join(tmpdir(), 'persona-targets-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
    return folder;
  };
  const asJson = (file: string) => JSON.stringify(parse(readFileSync(join(shipped, file), 'utf8')));

  it('reads JSON targets beside YAML ones, to the same targets', async () => {
    const folder = folderWith({
      'web-server.json': asJson('web-server.yaml'),
      'database-server.yaml': readFileSync(join(shipped, 'database-server.yaml'), 'utf8'),
      'index.mjs': '',
      'notes.txt': 'not a target',
    });
    const catalog = new FolderTargetCatalog(folder);
    const yaml = new FolderTargetCatalog(shipped);
    expect((await catalog.list()).map((t) => t.metadata.name)).toEqual(['database-server', 'web-server']);
    expect(await catalog.get('web-server')).toEqual(await yaml.get('web-server'));
    await expect(catalog.get('analytics-node')).rejects.toThrow(NotFoundError);
  });

  it('refuses a target two files define, naming both, and a JSON file named for another target', async () => {
    const twice = new FolderTargetCatalog(
      folderWith({
        'web-server.json': asJson('web-server.yaml'),
        'web-server.yaml': readFileSync(join(shipped, 'web-server.yaml'), 'utf8'),
      }),
    );
    await expect(twice.list()).rejects.toThrow(
      'target web-server is defined by both web-server.json and web-server.yaml',
    );
    await expect(twice.get('web-server')).rejects.toThrow(InvalidInputError);
    const misnamed = new FolderTargetCatalog(folderWith({ 'db.json': asJson('web-server.yaml') }));
    await expect(misnamed.get('db')).rejects.toThrow('db.json holds target web-server, not db');
  });

  it('positions a problem in a JSON target by its line and column', async () => {
    const target = { ...parse(readFileSync(join(shipped, 'web-server.yaml'), 'utf8')), extra: 1 };
    const folder = folderWith({ 'web-server.json': JSON.stringify(target, null, 2) });
    const refused = await new FolderTargetCatalog(folder).get('web-server').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidInputError);
    const lines = JSON.stringify(target, null, 2).split('\n');
    expect((refused as InvalidInputError).issues).toEqual([
      { path: 'extra', message: 'unknown field', line: lines.length - 1, column: 12 },
    ]);
  });
});
