// Application data discovery on the control side: the recorded Debian host with an `appdata`
// section as the script prints it, and the second pass's `treesize` and file listing, through
// buildProfile as a capture runs it. Hostile host text is dropped and named, never used.
import { describe, expect, it } from 'vitest';
import { buildProfile, type CaptureResult } from '../../../core/capture/collect.js';
import {
  apacheDirective,
  globPattern,
  MAX_FOLDERS_PER_PROCESS,
  nginxDirectives,
  treeCandidates,
} from '../../../core/capture/parse/appdata.js';
import { ParseContext } from '../../../core/capture/parse/context.js';
import { captureEnv } from '../../../core/capture/script.js';
import { SecretCollector } from '../../../core/capture/secrets.js';
import { type CaptureSections, mergeSections, parseSections } from '../../../core/capture/sections.js';
import { InvalidInputError } from '../../../core/errors.js';
import { validateProfile } from '../../../core/profile/io.js';
import { CAPTURED_AT, fixture, reasons } from './helpers.js';

const NONCE = 'debian-fixture';
const mark = (d: string) => `\n@@persona:${NONCE}:${d}\n`;

type Part = readonly [header: string, text: string];

/** The recorded output with an `appdata` section of these parts, as the script prints it. */
function withAppdata(parts: readonly Part[], notes: readonly string[] = []): string {
  const output = fixture('debian-12');
  const done = output.indexOf(mark('done').trimEnd());
  const section = [
    mark('section appdata'),
    ...notes.map((n) => mark(`note ${n}`)),
    ...parts.flatMap(([h, t]) => [mark(`part ${h}`), t]),
    mark('end appdata 0 1.00 1.01').replace(/\n$/, ''),
  ].join('');
  return output.slice(0, done) + section + output.slice(done);
}

/** The second pass's output: treesize lines, then a listing and hashes of what fits. */
function secondPass(sizes: readonly string[], listing: readonly string[] = [], hashes = '', credfiles = '') {
  return [
    `@@persona:begin ${NONCE} 1\n`,
    mark('section treesize'),
    sizes.map((l) => `${l}\n`).join(''),
    mark('end treesize 0 2.00 2.01').replace(/\n$/, ''),
    mark('section files'),
    mark('part printf 20000'),
    listing.map((l) => `${l}\n`).join(''),
    mark('end files 0 2.01 2.02').replace(/\n$/, ''),
    mark('section hashes'),
    hashes,
    mark('end hashes 0 2.02 2.03').replace(/\n$/, ''),
    mark('section privkeys'),
    mark('end privkeys 0 2.03 2.03').replace(/\n$/, ''),
    mark('section credfiles'),
    credfiles,
    mark('end credfiles 0 2.03 2.04').replace(/\n$/, ''),
    mark('done 2.00 2.04'),
  ].join('');
}

interface Options {
  readonly given?: readonly string[];
  readonly maxTrees?: number;
  readonly enabled?: boolean;
}

const options = (o: Options = {}) => ({
  name: 'fixture-host',
  capturedAt: CAPTURED_AT,
  application: { paths: o.given ?? [] },
  discovery: {
    ...(o.maxTrees === undefined ? {} : { maxTrees: o.maxTrees }),
    ...(o.enabled === undefined ? {} : { enabled: o.enabled }),
  },
});

const candidatesOf = (sections: CaptureSections, o: Options = {}) => {
  const ctx = new ParseContext(sections, new SecretCollector('fixture-host'), 'fixture-host');
  const found = treeCandidates(ctx, { given: o.given ?? [], maxTrees: o.maxTrees ?? 32 });
  return { paths: found.map((c) => c.path), unknowns: ctx.unknowns.map((u) => u.reason), found };
};

/** Both passes through buildProfile, the second one measuring every candidate as `ok` unless told. */
function capture(
  first: string,
  sizes: (candidates: readonly string[]) => readonly string[],
  o: Options = {},
  listing: readonly string[] = [],
  hashes = '',
  credfiles = '',
): CaptureResult & { valid: ReturnType<typeof validateProfile> } {
  const one = parseSections(first);
  const { paths } = candidatesOf(one, o);
  const both = mergeSections(one, parseSections(secondPass(sizes(paths), listing, hashes, credfiles)));
  const result = buildProfile(both, options(o));
  return { ...result, valid: validateProfile(result.profile) };
}

const allOk = (candidates: readonly string[]) => candidates.map((p) => `ok\t12\t${p}`);

const NGINX_CONF = [
  'user www-data;',
  '\tinclude /etc/nginx/modules-enabled/*.conf;',
  '\tinclude /etc/nginx/conf.d/*.conf;',
  '\tinclude /etc/nginx/sites-enabled/*;',
].join('\n');

const site = (root: string) => `\troot ${root};\n`;

describe('application data discovery', () => {
  it('finds document roots of enabled sites, working directories, open files and services', () => {
    const first = withAppdata([
      ['cwd 4242 listening', '/srv/app\n'],
      ['fd 4242 listening 3', '/srv/app/data\n/var/log/shop\n'],
      ['cwd 10810 listening', '/\n'],
      ['cwd 4343 application', '/root\n'],
      ['nginx /etc/nginx/nginx.conf', NGINX_CONF],
      ['nginx /etc/nginx/sites-available/persona', site('/var/www/persona')],
      ['nginx /etc/nginx/sites-available/unused', site('/srv/unused')],
      ['nginx /etc/nginx/sites-enabled/persona', site('/var/www/persona/')],
      ['unit shop.service', 'WorkingDirectory=/opt/shop\n'],
    ]);
    const built = capture(first, allOk);
    expect(built.valid.spec.application.paths).toEqual(['/opt/shop', '/srv/app', '/var/www/persona']);
    const trees = built.valid.observed?.applicationTrees ?? [];
    expect(trees.find((t) => t.path === '/srv/app')?.reasons).toEqual([
      'working directory of process 4242 (listening)',
      'files held open by process 4242 (listening) (in /srv/app/data)',
    ]);
    expect(trees.find((t) => t.path === '/var/www/persona')?.reasons).toEqual([
      'nginx root in /etc/nginx/sites-enabled/persona',
    ]);
    expect(trees.find((t) => t.path === '/opt/shop')).toMatchObject({
      reasons: ['WorkingDirectory of shop.service'],
      bytes: 12 * 1024,
    });
    expect(reasons(built, 'appdata')).toEqual([]);
  });

  it('names a process by its comm and leaves out what the system owns, / and login homes', () => {
    const first = withAppdata([
      ['cwd 10810 listening,application', '/srv/ssh-data\n'],
      [
        'fd 10810 listening 9',
        ['', '/var/log', '/var/cache/x', '/usr/share/nginx/html', '/tmp/x', '/run/sshd', '/etc/ssh'].join(
          '\n',
        ),
      ],
      ['cwd 9001 listening', '/home/cloudsdk\n'],
      ['cwd 9002 listening', '/var/lib/postgresql\n'],
      ['cwd 9003 listening', '/var/lib/postgresql/15/main\n'],
      ['cwd 9004 listening', '/home\n'],
      ['cwd 9005 listening', '/var\n'],
    ]);
    const { paths, found } = candidatesOf(parseSections(first));
    expect(paths).toEqual(['/srv/ssh-data', '/var/lib/postgresql/15/main']);
    expect(found[0]?.reasons.map((r) => r.text)).toEqual([
      'working directory of sshd (listening, application process)',
    ]);
  });

  it('drops a cwd with a newline, a "..", a control character and an overlong path, naming each escaped', () => {
    const first = withAppdata([
      ['cwd 100 listening', '/srv/a\nb\n'],
      ['cwd 101 listening', '/srv/../etc\n'],
      ['cwd 102 listening', `/srv/${'x'.repeat(250)}/${'y'.repeat(250)}/${'z'.repeat(4000)}\n`],
      ['cwd 103 listening', 'srv/relative\n'],
      ['fd 104 listening 2', '/srv/evil\u001e/etc\n/srv/ok\n'],
      ['cwd 105 listening', '/srv/trailing-newline\n\n'],
      ['cwd 106 listening', '/srv/\u001b[31mred\n'],
    ]);
    const built = capture(first, allOk);
    expect(built.valid.spec.application.paths).toEqual(['/srv/ok']);
    const [why] = reasons(built, 'appdata');
    expect(why).toMatch(/^7 paths found for application data left out as malformed: /);
    expect(why).toContain('"/srv/a\\nb" (working directory of process 100) contains a control character');
    expect(why).toContain('"/srv/../etc" (working directory of process 101) has a "." or ".." name');
    expect(why).toContain('longer than 4095 bytes');
    expect(why).toContain('and 4 more');
    // Nothing from the host reaches the report raw.
    const raw = built.unknowns.filter((u) => [...u.reason].some((c) => (c.codePointAt(0) ?? 0) < 0x20));
    expect(raw).toEqual([]);
    expect(JSON.stringify(built.profile)).not.toContain('/srv/evil');
  });

  it('takes the first folders of a process holding 10 000 files open in as many folders, and names the rest', () => {
    const folders = Array.from({ length: 10_000 }, (_, i) => `/srv/many/f${String(i).padStart(5, '0')}`);
    const first = withAppdata([['fd 200 listening 10000', `${folders.join('\n')}\n`]]);
    const { paths, unknowns } = candidatesOf(parseSections(first));
    expect(paths).toHaveLength(32);
    expect(paths[0]).toBe('/srv/many/f00000');
    expect(unknowns).toContain(
      `process 200 (listening) holds 10000 files open in more than ${MAX_FOLDERS_PER_PROCESS} folders: only the first ${MAX_FOLDERS_PER_PROCESS} are looked at`,
    );
    expect(unknowns.find((u) => u.includes('beyond the bound of 32'))).toMatch(
      /^32 more trees found for application data beyond the bound of 32: not snapshotted \(give them with --path\)/,
    );
  });

  it('prefers trees a configuration names over working directories over folders of open files', () => {
    const first = withAppdata([
      ['fd 300 listening 2', '/srv/a-files\n/srv/b-files\n'],
      ['cwd 300 listening', '/srv/z-cwd\n'],
      ['nginx /etc/nginx/nginx.conf', site('/srv/zz-root')],
    ]);
    expect(candidatesOf(parseSections(first), { maxTrees: 2 }).paths).toEqual(['/srv/zz-root', '/srv/z-cwd']);
  });

  it('refuses hostile web server configuration: "..", variables, relative roots and includes leaving /etc/nginx', () => {
    const first = withAppdata([
      [
        'nginx /etc/nginx/nginx.conf',
        [
          'root /etc/../;',
          'root html;',
          'root $document_root/x;',
          'root "/srv/quoted dir";',
          "location / { root '/srv/in-block'; } # root /srv/commented;",
          '# root /srv/comment;',
          'root /srv/unfinished',
          'root /srv/two args;',
          'include ../../shadow;',
          'include /usr/share/nginx/extra.conf;',
          'include /etc/nginx/loop.conf;',
          'root "/srv/esc\\naped";',
        ].join('\n'),
      ],
      ['nginx /etc/nginx/loop.conf', 'include /etc/nginx/nginx.conf;\nroot /srv/looped;\n'],
      ['nginx /etc/nginx/sites-available/x', 'root /srv/not-enabled;\n'],
    ]);
    const { paths, unknowns } = candidatesOf(parseSections(first));
    expect(paths).toEqual(['/srv/in-block', '/srv/looped', '/srv/quoted dir']);
    expect(unknowns).toContain(
      'nginx root "$document_root/x" in /etc/nginx/nginx.conf uses a variable: not followed',
    );
    expect(unknowns).toContain(
      'nginx include "../../shadow" in /etc/nginx/nginx.conf has a "." or ".." name: not followed',
    );
    expect(unknowns).toContain(
      'nginx include "/usr/share/nginx/extra.conf" in /etc/nginx/nginx.conf is outside /etc/nginx: not followed',
    );
    const malformed = unknowns.find((u) => u.includes('malformed')) ?? '';
    expect(malformed).toContain('"/etc/.." (nginx root in /etc/nginx/nginx.conf) has a "." or ".." name');
    expect(malformed).toContain('"html" (nginx root in /etc/nginx/nginx.conf) is not absolute');
    expect(malformed).toContain('contains a control character');
  });

  it('reads Apache DocumentRoot through its includes, and not relative ones under another ServerRoot', () => {
    const first = withAppdata([
      [
        'apache /etc/apache2/apache2.conf',
        'IncludeOptional mods-enabled/*.load\nIncludeOptional sites-enabled/*.conf\n',
      ],
      ['apache /etc/apache2/sites-enabled/000-default.conf', '\tDocumentRoot /var/www/html\n'],
      ['apache /etc/apache2/sites-enabled/shop.conf', '\tdocumentroot "/srv/shop site/"\n'],
      ['apache /etc/apache2/sites-available/off.conf', '\tDocumentRoot /srv/off\n'],
      [
        'apache /etc/httpd/conf/httpd.conf',
        'ServerRoot "/opt/elsewhere"\nInclude conf.d/*.conf\nDocumentRoot "${WEB}/x"\n',
      ],
      ['apache /etc/httpd/conf.d/a.conf', 'DocumentRoot /srv/never\n'],
    ]);
    const { paths, unknowns } = candidatesOf(parseSections(first));
    expect(paths).toEqual(['/srv/shop site', '/var/www/html']);
    expect(unknowns).toContain(
      'Apache include "conf.d/*.conf" in /etc/httpd/conf/httpd.conf is relative to a root outside /etc/httpd: not followed',
    );
    expect(unknowns).toContain(
      'Apache DocumentRoot "${WEB}/x" in /etc/httpd/conf/httpd.conf uses a variable: not followed',
    );
  });

  it("takes a service's last WorkingDirectory= and refuses one that depends on its user or instance", () => {
    const first = withAppdata([
      ['unit a.service', 'WorkingDirectory=/srv/first\nWorkingDirectory=\n'],
      ['unit b.service', 'WorkingDirectory=/srv/first\n  WorkingDirectory = -/srv/b/\n'],
      ['unit c.service', 'WorkingDirectory=~\n'],
      ['unit d@x.service', 'WorkingDirectory=/srv/%i\n'],
    ]);
    const { paths, unknowns } = candidatesOf(parseSections(first));
    expect(paths).toEqual(['/srv/b']);
    expect(unknowns).toContain(
      'WorkingDirectory "/srv/%i" of d@x.service depends on the service\'s user or instance: not followed',
    );
  });

  it('keeps one tree of nested ones and not a sibling sharing its prefix', () => {
    const first = withAppdata([
      ['cwd 9001 listening', '/srv/app\n'],
      ['fd 9001 listening 3', '/srv/app/data\n/srv/app-x\n/srv/app/data/deep\n'],
    ]);
    const built = capture(first, allOk);
    expect(built.valid.spec.application.paths).toEqual(['/srv/app', '/srv/app-x']);
  });

  it('names a tree over the size bound with its size and falls back to the trees inside it that fit', () => {
    const first = withAppdata([
      ['cwd 9001 listening', '/srv/huge\n'],
      ['fd 9001 listening 1', '/srv/huge/www\n'],
      ['cwd 9002 listening', '/srv/link\n'],
      ['cwd 9003 listening', '/srv/gone\n'],
      ['cwd 9004 listening', '/srv/slow\n'],
      ['cwd 9005 listening', '/srv/locked\n'],
    ]);
    const built = capture(first, () => [
      `over\t${3 * 1024 * 1024}\t/srv/huge`,
      'ok\t40\t/srv/huge/www',
      'symlink\t0\t/srv/link',
      'missing\t0\t/srv/gone',
      'timeout\t0\t/srv/slow',
      'denied\t0\t/srv/locked',
    ]);
    expect(built.valid.spec.application.paths).toEqual(['/srv/huge/www']);
    const why = reasons(built, 'appdata');
    expect(why).toContain(
      '/srv/huge (found as working directory of process 9001 (listening)) holds 3.0 GiB, over the bound of 1.0 GiB for a discovered tree: not snapshotted (give it with --path to snapshot it)',
    );
    expect(why.some((w) => w.startsWith('/srv/link ') && w.includes('symbolic link: not followed'))).toBe(
      true,
    );
    expect(why.some((w) => w.startsWith('/srv/gone ') && w.includes('is not a directory'))).toBe(true);
    expect(why.some((w) => w.startsWith('/srv/slow ') && w.includes('within 5 s'))).toBe(true);
    expect(why.some((w) => w.startsWith('/srv/locked ') && w.includes('permission denied'))).toBe(true);
  });

  it('records no tree when the second pass did not measure it', () => {
    const first = withAppdata([['cwd 9001 listening', '/srv/app\n']]);
    const result = buildProfile(parseSections(first), options());
    expect(validateProfile(result.profile).spec.application.paths).toEqual([]);
    expect(reasons(result, 'appdata')).toEqual([
      '/srv/app (found as working directory of process 9001 (listening)) could not be measured: not snapshotted',
    ]);
  });

  it('keeps the given paths first and adds no tree they already hold', () => {
    const first = withAppdata([
      ['cwd 9001 listening', '/srv/app/sub\n'],
      ['cwd 9002 listening', '/srv/other\n'],
      ['cwd 9003 listening', '/srv\n'],
    ]);
    const built = capture(first, allOk, { given: ['/srv/app', '/opt/given'] });
    expect(built.valid.spec.application.paths).toEqual(['/srv/app', '/opt/given', '/srv']);
  });

  it('lists and hashes the files of discovered trees and treats a credential file there as a secret', () => {
    const first = withAppdata([['cwd 9001 listening', '/srv/app\n']]);
    const hash = 'a'.repeat(64);
    const built = capture(
      first,
      allOk,
      {},
      [
        'd\t755\troot\troot\t4096\t\t/srv/app',
        'f\t644\troot\troot\t6\t\t/srv/app/index.html',
        'f\t600\troot\troot\t20\t\t/srv/app/settings.conf',
      ],
      `${hash}  /srv/app/index.html\n${'b'.repeat(64)}  /srv/app/settings.conf\n`,
      '/srv/app/settings.conf\n',
    );
    const files = built.valid.spec.configuration.files;
    expect(files.find((f) => f.path === '/srv/app/index.html')).toMatchObject({ hash: `sha256:${hash}` });
    const secret = files.find((f) => f.path === '/srv/app/settings.conf');
    expect(secret).toMatchObject({ sensitive: true });
    expect(secret && 'hash' in secret ? secret.hash : undefined).toBeUndefined();
    expect(built.secrets.map((s) => s.source)).toContain('/srv/app/settings.conf');
    // The first pass's /etc listing is still there.
    expect(files.some((f) => f.path === '/etc/hostname')).toBe(true);
  });

  it('finds nothing when switched off, and nothing in output from a script without the section', () => {
    const first = withAppdata([['cwd 9001 listening', '/srv/app\n']]);
    expect(candidatesOf(parseSections(first), {}).paths).toEqual(['/srv/app']);
    const off = buildProfile(parseSections(first), options({ enabled: false }));
    expect(off.profile.spec.application?.paths).toEqual([]);
    expect(reasons(off, 'appdata')).toEqual([]);
    const old = buildProfile(parseSections(fixture('debian-12')), options());
    expect(old.profile.observed?.applicationTrees).toBeUndefined();
    expect(reasons(old, 'appdata')).toEqual([]);
  });

  it('records what the script could not see as unknown', () => {
    const first = withAppdata(
      [],
      ['2 listening or application processes of other users hide their working directories'],
    );
    expect(candidatesOf(parseSections(first)).unknowns).toEqual([
      '2 listening or application processes of other users hide their working directories',
    ]);
  });
});

describe('nginxDirectives', () => {
  it('splits a line into simple directives, quotes and escapes read as nginx reads them', () => {
    expect(nginxDirectives('server { root /a; location / { root "/b c"; } } root \'/d\';')).toEqual([
      ['root', '/a'],
      ['root', '/b c'],
      ['root', '/d'],
    ]);
    expect(nginxDirectives('root /a#b; # root /c;')).toEqual([['root', '/a#b']]);
    expect(nginxDirectives('root "/unclosed;')).toEqual([]);
  });
});

describe('apacheDirective', () => {
  it('reads a directive and its first argument, quoted or not', () => {
    expect(apacheDirective('  DocumentRoot "/var/www/my \\"site\\""  ')).toEqual([
      'documentroot',
      '/var/www/my "site"',
    ]);
    expect(apacheDirective('Include conf.d/*.conf extra')).toEqual(['include', 'conf.d/*.conf']);
    expect(apacheDirective('DocumentRoot "/unclosed')).toBeUndefined();
  });
});

describe('globPattern', () => {
  it('matches within one name as glob(3) does, everything else literal', () => {
    const re = globPattern('/etc/nginx/sites-enabled/*.conf');
    expect(re.test('/etc/nginx/sites-enabled/a.conf')).toBe(true);
    expect(re.test('/etc/nginx/sites-enabled/sub/a.conf')).toBe(false);
    expect(re.test('/etc/nginx/sites-enabledXa.conf')).toBe(false);
    expect(globPattern('/etc/nginx/[ab]?.conf').test('/etc/nginx/b1.conf')).toBe(true);
    expect(globPattern('/etc/nginx/[!ab].conf').test('/etc/nginx/a.conf')).toBe(false);
    expect(globPattern('/etc/nginx/(x)+.conf').test('/etc/nginx/(x)+.conf')).toBe(true);
  });
});

describe('captureEnv trees', () => {
  it('passes the trees one a line and refuses one that is not a plain absolute path', () => {
    expect(captureEnv({ trees: ['/srv/a b', '/srv/c'] }).PERSONA_TREES).toBe('/srv/a b\n/srv/c');
    try {
      captureEnv({ trees: ['/srv/ok', '/srv/../etc', '/srv/a\nb'], treeMaxBytes: 0 });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
      expect((e as InvalidInputError).issues.map((i) => i.path)).toEqual([
        'trees[1]',
        'trees[2]',
        'treeMaxBytes',
      ]);
    }
  });
});
