// Programs no package owns, on the control side (candidates from the first pass's appdata
// section and the process table; the decision from the second pass's facts and the package
// manager's answer, as dpkg, rpm and apk print it) and on the shell side (the second pass run for
// real on this machine: links, a loop, a name with glob characters, one query to dpkg).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ParseContext } from '../../../core/capture/parse/context.js';
import type { ProcessInfo, ProcessTable } from '../../../core/capture/parse/processes.js';
import {
  type DiscoveredProgram,
  discoveredPrograms,
  ownersOf,
  type ProgramCandidate,
  parsePrograms,
  programCandidates,
  scriptCommand,
  scriptOf,
  unitWords,
} from '../../../core/capture/parse/programs.js';
import { CAPTURE_SCRIPT, captureEnv } from '../../../core/capture/script.js';
import { SecretCollector } from '../../../core/capture/secrets.js';
import { parseSections } from '../../../core/capture/sections.js';
import { InvalidInputError } from '../../../core/errors.js';

const NONCE = 'programs-test';
const mark = (d: string) => `\n@@persona:${NONCE}:${d}\n`;
type Part = readonly [header: string, text: string];

function output(sections: Record<string, readonly Part[]>): string {
  return [
    `@@persona:begin ${NONCE} 1\n`,
    ...Object.entries(sections).flatMap(([name, parts]) => [
      mark(`section ${name}`),
      ...parts.flatMap(([h, t]) => [mark(`part ${h}`), t]),
      mark(`end ${name} 0 1.00 1.01`).replace(/\n$/, ''),
    ]),
    mark('done 1.00 1.01'),
  ].join('');
}

const contextOf = (sections: Record<string, readonly Part[]>) =>
  new ParseContext(parseSections(output(sections)), new SecretCollector('h'), 'h');

const proc = (pid: number, comm: string, args: string, ppid = 1): ProcessInfo => ({
  pid,
  ppid,
  user: 'root',
  nice: 0,
  cpuPercent: 0,
  rssKiB: 1,
  args,
  comm,
  cgroups: new Map(),
  affinity: undefined,
  ioClass: undefined,
  ioPriority: undefined,
});
const table = (...processes: ProcessInfo[]): ProcessTable => ({ processes, known: true });
const reasonsOf = (ctx: ParseContext) => ctx.unknowns.map((u) => u.reason).join('\n');

describe('programCandidates', () => {
  it('takes a listening interpreter script, a service program and a long-lived program, best first', () => {
    const ctx = contextOf({
      appdata: [
        ['cwd 10 listening', '/\n'],
        [
          'exe',
          '10\t/usr/bin/perl\n20\t/opt/bin/daemon (deleted)\n30\t/memfd:runc (deleted)\n40\t/usr/bin/sleep\n',
        ],
        ['unit shop.service', 'ExecStart=-@/usr/bin/python3 shop -u "/opt/shop/app main.py" --port 8080\n'],
      ],
    });
    const found = programCandidates(ctx, {
      given: [],
      declared: [],
      table: table(
        proc(10, 'shop-api', '/usr/bin/perl /usr/local/bin/shop-api'),
        proc(20, 'daemon', '/opt/bin/daemon -f'),
        proc(30, 'runc', 'runc init'),
        // A command someone started from a shell: not long-lived, not listening.
        proc(40, 'sleep', '/usr/bin/sleep 100', 999),
      ),
    });
    expect(found).toEqual([
      { path: '/usr/bin/perl', reasons: ['program of shop-api (listening)'], rank: 0 },
      { path: '/usr/local/bin/shop-api', reasons: ['script shop-api (listening) runs'], rank: 0 },
      { path: '/opt/shop/app main.py', reasons: ['script ExecStart of shop.service runs'], rank: 1 },
      { path: '/usr/bin/python3', reasons: ['ExecStart of shop.service'], rank: 1 },
      // Replaced since it started: the file at its path now is what starts next.
      { path: '/opt/bin/daemon', reasons: ['program of daemon (long-lived)'], rank: 2 },
    ]);
  });

  it('drops what a captured tree holds, and names malformed, virtual, identity and credential paths', () => {
    const ctx = contextOf({
      appdata: [
        ['cwd 10 listening', '/\n'],
        [
          'exe',
          '10\t/opt/bad\x1ename\n11\t/proc/self/fd/3\n12\t/etc/init.d/thing\n13\t/srv/app/bin/run\n14\t/opt/x/secret-token-tool\n',
        ],
        ['unit a.service', 'ExecStart=/usr/local/bin/run-%i\nExecStart=/etc/hostname\n'],
        ['unit b.service', 'ExecStart=/bin/sh -c "exec /opt/b"\nExecStart=/bin/sh run.sh\n'],
      ],
    });
    const found = programCandidates(ctx, {
      given: ['/srv/app'],
      declared: [],
      table: table(
        proc(10, 'bad', '/opt/bad?name'),
        proc(11, 'fdexec', 'fdexec'),
        proc(12, 'thing', 'thing'),
        proc(13, 'run', 'run'),
        proc(14, 'tok', 'tok'),
      ),
    });
    expect(found.map((c) => c.path)).toEqual(['/opt/bad?name', '/bin/sh']);
    const all = reasonsOf(ctx);
    expect(all).toContain('"/opt/bad\\nname" (program of bad (listening)) contains a control character');
    expect(all).toContain('/proc/self/fd/3 (program of fdexec (long-lived)) lies under /proc');
    expect(all).toContain(
      '/opt/x/secret-token-tool (program of tok (long-lived)) is named like a credential',
    );
    expect(all).toContain('"/usr/local/bin/run-%i" (ExecStart of a.service)');
    expect(all).toContain('run.sh (script ExecStart of b.service runs)');
    // /etc is snapshotted whole, so is a given path: nothing to add or to name.
    expect(all).not.toMatch(/\/etc\/init\.d|\/srv\/app|\/etc\/hostname/);
  });

  it('finds nothing in the output of a script that printed no programs', () => {
    const ctx = contextOf({ appdata: [['cwd 10 listening', '/\n']] });
    expect(
      programCandidates(ctx, { given: [], declared: [], table: table(proc(10, 'x', '/opt/x')) }),
    ).toEqual([]);
  });
});

describe('the script an interpreter runs', () => {
  it.each([
    [['python3'], ['-u', '/opt/x/app.py', '--port', '1'], '/opt/x/app.py'],
    [['python3'], ['-m', 'http.server', '8000'], undefined],
    [['python3'], ['-W', 'ignore', '/opt/a.py'], '/opt/a.py'],
    [['sh'], ['-c', '/opt/b'], undefined],
    [['bash'], ['-o', 'pipefail', '/usr/local/bin/run.sh'], '/usr/local/bin/run.sh'],
    [['node'], ['--require', 'dotenv/config', '/srv/a.js'], '/srv/a.js'],
    [['java'], ['-cp', '/opt/lib', '-jar', '/opt/app.jar'], '/opt/app.jar'],
    [['java'], ['-cp', '/opt/lib', 'com.example.Main'], undefined],
    [['perl'], ['-MIO::Socket::INET', '-e', 'listen'], undefined],
    [['sh'], ['--', '-odd-name'], '-odd-name'],
  ])('%s %j runs %s', (interpreter, words, script) => {
    const ctx = contextOf({
      appdata: [
        ['cwd 1 listening', '/\n'],
        ['exe', `1\t/usr/bin/${interpreter[0]}\n`],
      ],
    });
    const found = programCandidates(ctx, {
      given: [],
      declared: [],
      table: table(proc(1, 'p', [`/usr/bin/${interpreter[0]}`, ...words].join(' '))),
    });
    const scripts = found.filter((c) => c.reasons[0]?.startsWith('script')).map((c) => c.path);
    expect(scripts).toEqual(script?.startsWith('/') ? [script] : []);
  });

  it('starts a script the kernel ran by its own path as that path, anything else as it ran', () => {
    expect(scriptCommand('/usr/bin/perl /usr/local/bin/shop-api --port 8080', 'shop-api')).toBe(
      '/usr/local/bin/shop-api --port 8080',
    );
    expect(scriptCommand('/bin/sh -e /usr/local/bin/a-long-script-name.sh', 'a-long-script-n')).toBe(
      '/usr/local/bin/a-long-script-name.sh',
    );
    // Run through its interpreter by someone: the process has the interpreter's name.
    expect(scriptCommand('python3 /opt/x/app.py', 'python3')).toBeUndefined();
    expect(scriptCommand('/usr/sbin/nginx -g daemon off;', 'nginx')).toBeUndefined();
  });

  it('reads a grammar directly', () => {
    expect(scriptOf({ stop: ['-c'], value: ['-o'] }, ['-o', 'x', 'y'])).toBe('y');
    expect(unitWords(`/bin/sh -c "a b" 'c d' e`)).toEqual(['/bin/sh', '-c', 'a b', 'c d', 'e']);
    expect(unitWords('/bin/x "unclosed')).toEqual(['/bin/x']);
  });
});

describe('ownersOf', () => {
  it('reads dpkg-query -S: owned paths, diversions, arch-qualified names and /bin as /usr/bin', () => {
    const owned = ownersOf(
      'dpkg',
      'coreutils: /bin/true\nlibc6:amd64: /usr/lib/x86_64-linux-gnu/libc.so.6\ndiversion by dash from: /bin/sh\nfoo, bar: /opt/a: b\n',
    );
    expect(owned).toBeDefined();
    const is = owned as (p: string) => boolean;
    expect(is('/bin/true')).toBe(true);
    expect(is('/usr/bin/true')).toBe(true);
    expect(is('/lib/x86_64-linux-gnu/libc.so.6')).toBe(true);
    expect(is('/bin/sh')).toBe(true);
    expect(is('/opt/a: b')).toBe(true);
    expect(is('/usr/local/bin/shop-api')).toBe(false);
  });

  it('reads rpm -qf and apk --who-owns, which name what they do not own', () => {
    const rpm = ownersOf(
      'rpm',
      'bash-5.1.8-6.el9.x86_64\nfile /usr/local/bin/shop-api is not owned by any package\nerror: file /opt/gone: No such file or directory\n',
    ) as (p: string) => boolean;
    expect(rpm('/usr/bin/bash')).toBe(true);
    expect(rpm('/usr/local/bin/shop-api')).toBe(false);
    expect(rpm('/opt/gone')).toBe(false);
    const apk = ownersOf(
      'apk',
      '/bin/busybox is owned by busybox-1.36.1-r5\nERROR: /usr/local/bin/x: Could not find owner package\n',
    ) as (p: string) => boolean;
    expect(apk('/bin/busybox')).toBe(true);
    expect(apk('/usr/local/bin/x')).toBe(false);
    expect(ownersOf('none', '')).toBeUndefined();
    expect(ownersOf('failed', '')).toBeUndefined();
  });
});

const candidate = (path: string, reason = 'program of x (listening)', rank = 0): ProgramCandidate => ({
  path,
  reasons: [reason],
  rank,
});

/** The second pass's `programs` section for these candidates. */
function facts(
  entries: readonly { path: string; status?: string; bytes?: number; real?: string; links?: string[] }[],
  owners: Part,
): Part[] {
  return [
    ...entries.flatMap((e, i): Part[] => [
      ...(e.links ?? []).map((l): Part => [`prog-link ${i + 1}`, l]),
      [`prog ${i + 1} ${e.status ?? 'file'} ${e.bytes ?? 100}`, e.path],
      [`prog-real ${i + 1}`, e.real ?? e.path],
    ]),
    owners,
  ];
}

describe('discoveredPrograms', () => {
  const bounds = { maxPrograms: 64, programMaxBytes: 1024 * 1024 };
  const decide = (
    candidates: readonly ProgramCandidate[],
    entries: Parameters<typeof facts>[0],
    owners: Part = ['owners dpkg', 'perl-base: /usr/bin/perl\n'],
    trees: readonly string[] = ['/etc'],
    b = bounds,
  ): { kept: DiscoveredProgram[]; ctx: ParseContext } => {
    const ctx = contextOf({ programs: facts(entries, owners) });
    return { kept: discoveredPrograms(ctx, candidates, trees, b), ctx };
  };

  it('keeps the files no package owns and the links that lead to them, leaving out what packages own', () => {
    const { kept, ctx } = decide(
      [
        candidate('/usr/bin/perl'),
        candidate('/usr/local/bin/shop-api'),
        candidate('/usr/local/bin/w', 'ExecStart of w.service', 1),
      ],
      [
        { path: '/usr/bin/perl' },
        { path: '/usr/local/bin/shop-api', bytes: 300 },
        {
          path: '/usr/local/bin/w',
          real: '/opt/w/bin/worker',
          links: ['/usr/local/bin/w', '/opt/w/current'],
        },
      ],
    );
    expect(kept).toEqual([
      { path: '/opt/w/bin/worker', reasons: ['ExecStart of w.service'], bytes: 100 },
      {
        path: '/opt/w/current',
        reasons: ['link to /opt/w/bin/worker: ExecStart of w.service'],
        linkTo: '/opt/w/bin/worker',
      },
      { path: '/usr/local/bin/shop-api', reasons: ['program of x (listening)'], bytes: 300 },
      {
        path: '/usr/local/bin/w',
        reasons: ['link to /opt/w/bin/worker: ExecStart of w.service'],
        linkTo: '/opt/w/bin/worker',
      },
    ]);
    expect(ctx.unknowns).toEqual([]);
  });

  it('leaves a program a captured tree holds to it, but keeps the link from outside', () => {
    const { kept } = decide(
      [candidate('/usr/local/bin/tool')],
      [{ path: '/usr/local/bin/tool', real: '/srv/app/bin/tool', links: ['/usr/local/bin/tool'] }],
      ['owners dpkg', ''],
      ['/etc', '/srv/app'],
    );
    expect(kept.map((k) => k.path)).toEqual(['/usr/local/bin/tool']);
  });

  it('refuses a link into /etc/shadow or an identity file, and names what is missing, a folder or unreadable', () => {
    const { kept, ctx } = decide(
      ['/usr/local/bin/s', '/usr/local/bin/m', '/opt/nl', '/opt/gone', '/opt/dir', '/opt/locked'].map((p) =>
        candidate(p),
      ),
      [
        { path: '/usr/local/bin/s', real: '/etc/shadow', links: ['/usr/local/bin/s'] },
        { path: '/usr/local/bin/m', real: '/etc/machine-id', links: ['/usr/local/bin/m'] },
        { path: '/opt/nl', real: '/opt/n\nl', links: ['/opt/nl'] },
        { path: '/opt/gone', status: 'missing', real: '' },
        { path: '/opt/dir', status: 'dir' },
        { path: '/opt/locked', status: 'denied' },
      ],
      ['owners dpkg', ''],
    );
    expect(kept).toEqual([]);
    const all = reasonsOf(ctx);
    expect(all).toContain(
      '/usr/local/bin/s (program of x (listening)) leads to /etc/shadow, which is named like a credential',
    );
    expect(all).toContain(
      'leads to /etc/machine-id, which is an identity file or one another part of the Profile writes',
    );
    expect(all).toContain(
      '/opt/nl (program of x (listening)) leads to "/opt/n\\nl", which contains a control character',
    );
    expect(all).toContain('/opt/gone (program of x (listening)) is not on the host');
    expect(all).toContain('/opt/dir (program of x (listening)) is a directory');
    expect(all).toContain(
      '/opt/locked (program of x (listening)) cannot be read: permission denied (capture as root)',
    );
  });

  it('names programs over the size bound and beyond the count bound', () => {
    const { kept, ctx } = decide(
      [candidate('/opt/a'), candidate('/opt/big'), candidate('/opt/c')],
      [{ path: '/opt/a' }, { path: '/opt/big', bytes: 3 * 1024 * 1024 }, { path: '/opt/c' }],
      ['owners dpkg', ''],
      ['/etc'],
      { maxPrograms: 1, programMaxBytes: 1024 * 1024 },
    );
    expect(kept.map((k) => k.path)).toEqual(['/opt/a']);
    const all = reasonsOf(ctx);
    expect(all).toContain(
      '1 program over the bound of 1.0 MiB not snapshotted (give it with --path): /opt/big (program of x (listening)) holds 3.0 MiB',
    );
    expect(all).toContain(
      '1 more program beyond the bound of 1 not snapshotted (give them with --path): /opt/c',
    );
  });

  it('captures nothing when the package manager could not be asked, and says so', () => {
    const { kept, ctx } = decide([candidate('/opt/a')], [{ path: '/opt/a' }], ['owners none', '']);
    expect(kept).toEqual([]);
    expect(reasonsOf(ctx)).toContain(
      'which of 1 program of processes and services packages own could not be told',
    );
  });

  it('reads each program of the first run and of a second with its own run’s answer, sizes from wc', () => {
    // As the two runs' sections merge: the first's parts, then the second's, each ending with
    // what its package manager said. rpm names what it does not own: /opt/b was not asked of the
    // first run's rpm, so its silence there says nothing about /opt/b.
    const answer: Part = ['owners rpm', 'file /opt/a is not owned by any package\n'];
    const first: Part[] = [
      ...facts([{ path: '/opt/a', bytes: 0 }, { path: '/usr/bin/perl' }], answer).slice(0, -1),
      ['prog-bytes 1 4096', ''],
      answer,
    ];
    const second = facts([{ path: '/opt/b' }], ['owners rpm', 'file /opt/b is not owned by any package\n']);
    const ctx = contextOf({ programs: [...first, ...second] });
    const kept = discoveredPrograms(
      ctx,
      [candidate('/opt/a'), candidate('/opt/b'), candidate('/usr/bin/perl')],
      ['/etc'],
      bounds,
    );
    expect(kept.map((p) => [p.path, p.bytes])).toEqual([
      ['/opt/a', 4096],
      ['/opt/b', 100],
    ]);
    // Without the second run, /opt/b is named as not resolved, not taken for owned.
    const alone = contextOf({ programs: first });
    expect(discoveredPrograms(alone, [candidate('/opt/b')], ['/etc'], bounds)).toEqual([]);
    expect(reasonsOf(alone)).toContain('/opt/b (program of x (listening)) was not resolved on the host');
  });

  it('ignores an answer about another path than the one asked', () => {
    const { kept, ctx } = decide([candidate('/opt/a')], [{ path: '/opt/b' }], ['owners dpkg', '']);
    expect(kept).toEqual([]);
    expect(reasonsOf(ctx)).toContain('/opt/a (program of x (listening)) was not resolved on the host');
  });
});

describe('the second pass on this machine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'persona-programs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resolves links at their real folder, stops at a loop, and asks dpkg about every path at once', () => {
    mkdirSync(join(dir, 'real/bin'), { recursive: true });
    writeFileSync(join(dir, 'real/bin/app'), 'twelve bytes');
    symlinkSync('real/bin/app', join(dir, 'hop'));
    mkdirSync(join(dir, 'bin'));
    symlinkSync('../hop', join(dir, 'bin/app'));
    symlinkSync('loop-b', join(dir, 'loop-a'));
    symlinkSync('loop-a', join(dir, 'loop-b'));
    writeFileSync(join(dir, 'star*[x]'), '');
    // Where it ends has a newline: that one, and those after it, resolved each on its own.
    writeFileSync(join(dir, 'real/new\nline'), 'seven b');
    symlinkSync('real/new\nline', join(dir, 'nl'));
    const sent = [
      join(dir, 'bin/app'),
      join(dir, 'nl'),
      join(dir, 'loop-a'),
      join(dir, 'star*[x]'),
      '/bin/true',
      join(dir, 'real'),
    ];
    const r = spawnSync('sh', ['-s'], {
      input: CAPTURE_SCRIPT,
      env: { PATH: '/usr/bin:/bin', ...captureEnv({ programs: sent }) },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const { facts, owners } = parsePrograms(parseSections(r.stdout).get('programs'), sent);
    expect(facts.get(join(dir, 'bin/app'))).toEqual({
      status: 'file',
      bytes: 12,
      real: join(dir, 'real/bin/app'),
      links: [join(dir, 'bin/app'), join(dir, 'hop')],
    });
    expect(facts.get(join(dir, 'nl'))).toEqual({
      status: 'file',
      bytes: 7,
      real: join(dir, 'real/new\nline'),
      links: [join(dir, 'nl')],
    });
    expect(facts.get(join(dir, 'loop-a'))).toMatchObject({ status: 'missing' });
    expect(facts.get(join(dir, 'star*[x]'))).toMatchObject({ status: 'file', bytes: 0 });
    expect(facts.get(join(dir, 'real'))).toMatchObject({ status: 'dir' });
    const has = spawnSync('sh', ['-c', 'command -v dpkg-query']).status === 0;
    if (has) {
      expect(owners).toBeDefined();
      expect(owners?.('/bin/true')).toBe(true);
      expect(owners?.('/usr/bin/true')).toBe(true);
      expect(owners?.(join(dir, 'star*[x]'))).toBe(false);
    }
  });
});

describe('captureEnv', () => {
  it('refuses a program or a file to list that the path grammar refuses, naming it', () => {
    expect(() => captureEnv({ programs: ['/opt/a\nb'] })).toThrow(InvalidInputError);
    let issue: string | undefined;
    try {
      captureEnv({ files: ['relative/x'] });
    } catch (error) {
      issue = (error as InvalidInputError).issues[0]?.path;
    }
    expect(issue).toBe('files[0]');
  });
});
