// The shell side of discovery, run for real on this machine: the `appdata` section for a process
// of a name of its own (a working directory with a newline in it, ten thousand files held open),
// and the second pass measuring trees and listing only those that fit, each once.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { treeCandidates } from '../../../core/capture/parse/appdata.js';
import { ParseContext } from '../../../core/capture/parse/context.js';
import { CAPTURE_SCRIPT, captureEnv } from '../../../core/capture/script.js';
import { SecretCollector } from '../../../core/capture/secrets.js';
import { lines, parseSections, partsWith } from '../../../core/capture/sections.js';

const run = (env: Record<string, string>) => {
  const r = spawnSync('sh', ['-s'], {
    input: CAPTURE_SCRIPT,
    env: { PATH: '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  expect(r.status).toBe(0);
  return parseSections(r.stdout);
};

const dir = mkdtempSync(join(tmpdir(), 'persona-discovery-'));

describe('the appdata section', () => {
  const name = `pdisc-${randomBytes(3).toString('hex')}`;
  const odd = join(dir, 'odd\nname');
  const many = join(dir, 'many');
  const OPEN = 10_000;
  let app: ChildProcess;

  beforeAll(async () => {
    mkdirSync(odd, { recursive: true });
    mkdirSync(many);
    for (let i = 0; i < OPEN; i++) writeFileSync(join(many, `f${i}`), '');
    copyFileSync('/bin/sleep', join(dir, name));
    // Working in a folder whose name holds a newline, holding ten thousand files open.
    app = spawn(
      'bash',
      [
        '-c',
        `ulimit -n 20000 || exit 1; for i in $(seq 0 ${OPEN - 1}); do exec {fd}< "$1/f$i"; done; exec "$2" 120`,
        'bash',
        many,
        join(dir, name),
      ],
      { cwd: odd, stdio: 'ignore' },
    );
    for (let i = 0; i < 100; i++) {
      const fds = spawnSync('sh', ['-c', `ls /proc/${app.pid}/fd | wc -l`], { encoding: 'utf8' });
      if (
        Number(fds.stdout) >= OPEN &&
        spawnSync('cat', [`/proc/${app.pid}/comm`])
          .stdout.toString()
          .trim() === name
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(() => {
    app?.kill();
  });

  it('prints the working directory whole and the folder of ten thousand open files once', () => {
    const sections = run(captureEnv({ appProcesses: [name] }));
    const section = sections.get('appdata');
    expect(section?.status).toBe(0);
    const cwd = partsWith(section, `cwd ${app.pid}`);
    expect(cwd.map((p) => p.text)).toEqual([`${odd}\n`]);
    const fd = partsWith(section, `fd ${app.pid}`);
    expect(fd.map((p) => p.header)).toEqual([`fd ${app.pid} application ${OPEN}`]);
    expect(lines(fd[0]?.text ?? '')).toEqual([many]);

    // The control side refuses the directory with a newline before anything else looks at it.
    const ctx = new ParseContext(sections, new SecretCollector('local'), 'local');
    const paths = treeCandidates(ctx, { given: [], maxTrees: 32 }).map((c) => c.path);
    expect(paths.some((p) => p.includes('odd'))).toBe(false);
    expect(ctx.unknowns.map((u) => u.reason).join('\n')).toContain(
      `${JSON.stringify(odd)} (working directory of process ${app.pid}) contains a control character`,
    );
  });
});

describe('the second pass', () => {
  const root = join(dir, 'trees');
  const trees = {
    app: join(root, 'app'),
    nested: join(root, 'app', 'data'),
    spaced: join(root, 'a b $(touch pwned)'),
    big: join(root, 'big'),
    link: join(root, 'link'),
    gone: join(root, 'gone'),
  };

  beforeAll(() => {
    mkdirSync(trees.nested, { recursive: true });
    writeFileSync(join(trees.nested, 'db.txt'), 'rows\n');
    writeFileSync(join(trees.app, 'index.html'), '<h1>hi</h1>\n');
    mkdirSync(trees.spaced);
    writeFileSync(join(trees.spaced, 'x'), 'x\n');
    mkdirSync(trees.big);
    writeFileSync(join(trees.big, 'blob'), Buffer.alloc(3 * 1024 * 1024, 7));
    symlinkSync(trees.app, trees.link);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('measures each tree, lists those that fit once each, and runs nothing a name holds', () => {
    const sections = run(
      captureEnv({ trees: Object.values(trees), treeMaxBytes: 1024 * 1024, treeDuTimeoutSeconds: 5 }),
    );
    expect([...sections.keys()]).toEqual(['treesize', 'files', 'hashes', 'privkeys', 'credfiles']);
    const status = new Map(
      lines(sections.get('treesize')?.text ?? '').map((l) => {
        const [s, kib, ...p] = l.split('\t');
        return [p.join('\t'), { s, kib: Number(kib) }];
      }),
    );
    expect(status.get(trees.app)?.s).toBe('ok');
    expect(status.get(trees.nested)?.s).toBe('ok');
    expect(status.get(trees.spaced)?.s).toBe('ok');
    expect(status.get(trees.big)).toMatchObject({ s: 'over' });
    expect(status.get(trees.big)?.kib).toBeGreaterThanOrEqual(3 * 1024);
    expect(status.get(trees.link)?.s).toBe('symlink');
    expect(status.get(trees.gone)?.s).toBe('missing');

    const listed = lines(partsWith(sections.get('files'), 'printf')[0]?.text ?? '').map((l) =>
      l.split('\t').slice(6).join('\t'),
    );
    expect(listed.filter((p) => p === join(trees.nested, 'db.txt'))).toHaveLength(1);
    expect(listed).toContain(join(trees.spaced, 'x'));
    expect(listed.some((p) => p.startsWith(trees.big))).toBe(false);
    expect(listed.some((p) => p.startsWith('/etc/'))).toBe(false);
    expect(sections.get('hashes')?.text).toContain(`  ${join(trees.app, 'index.html')}`);
    expect(existsSync('pwned') || existsSync(join(root, 'pwned'))).toBe(false);
  });

  it('lists nothing when no tree fits', () => {
    const sections = run(captureEnv({ trees: [trees.big, trees.gone], treeMaxBytes: 1024 }));
    expect([...sections.keys()]).toEqual(['treesize']);
  });
});
