import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProfile } from '../../../core/capture/collect.js';
import { CREDENTIAL_SCAN_SH } from '../../../core/capture/script.js';
import {
  CREDENTIAL_LINE_MAX_BYTES,
  CREDENTIAL_SCAN_MAX_BYTES,
  contentHashKeyOf,
  credentialScanCovers,
  envLooksSensitive,
  fileLooksSensitive,
  holdsCredentialLines,
  keyedContentHash,
  redactCommand,
  SecretCollector,
} from '../../../core/capture/secrets.js';
import { parseSections } from '../../../core/capture/sections.js';
import { validateProfile } from '../../../core/profile/io.js';
import { looksSensitive } from '../../../core/profile/schema.js';
import {
  COMMANDS,
  CREDENTIAL_LINES,
  PLAIN_ENV,
  PLAIN_LINES,
  PLAIN_NAMES,
  SENSITIVE_ENV_VALUES,
  SENSITIVE_NAMES,
} from './fixtures/secrets-corpus.js';
import { CAPTURED_AT, fixture, reasons, withSection } from './helpers.js';

describe('fileLooksSensitive', () => {
  it('flags shadow files, private keys and credential-named files', () => {
    for (const path of [
      '/etc/shadow',
      '/etc/gshadow-',
      '/etc/ssh/ssh_host_ed25519_key',
      '/root/.ssh/id_ed25519',
      '/etc/ssl/private/snakeoil.pem',
      '/srv/app/.env',
      '/srv/app/.env.production',
      '/etc/app/db_password',
      '/etc/app/API-Token.txt',
      '/home/u/.pgpass',
      '/etc/nginx/cert.key',
      '/run/secrets/db',
    ]) {
      expect(fileLooksSensitive(path), path).toBe(true);
    }
  });

  it('lets public keys, certificates and well-known public files through', () => {
    for (const path of [
      '/etc/passwd',
      '/etc/pam.d/common-password',
      '/etc/ssh/ssh_host_ed25519_key.pub',
      '/root/.ssh/id_ed25519.pub',
      '/etc/ssl/certs/ca-certificates.crt',
      '/etc/nginx/nginx.conf',
      '/etc/keys.conf.d',
    ]) {
      expect(fileLooksSensitive(path), path).toBe(false);
    }
  });
});

describe('looksSensitive', () => {
  it('flags every credential name of the corpus, however it is spelt', () => {
    for (const name of SENSITIVE_NAMES) expect(looksSensitive(name), name).toBe(true);
  });

  it('leaves names that are about a credential, or only look like one, alone', () => {
    for (const name of PLAIN_NAMES) expect(looksSensitive(name), name).toBe(false);
  });
});

describe('envLooksSensitive', () => {
  it('flags credential names and values that carry credentials whatever their name', () => {
    expect(envLooksSensitive('DB_PASSWORD', 'x')).toBe(true);
    expect(envLooksSensitive('GITHUB_TOKEN', 'x')).toBe(true);
    expect(envLooksSensitive('DATABASE_URL', 'postgres://app:s3cret@db:5432/app')).toBe(true);
    expect(envLooksSensitive('TLS', '-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
    expect(envLooksSensitive('AUTH', 'Bearer abcdefghijkl')).toBe(true);
    expect(envLooksSensitive('DATABASE_URL', 'postgres://db:5432/app')).toBe(false);
    expect(envLooksSensitive('NODE_ENV', 'production')).toBe(false);
  });

  it('flags DSNs, webhook URLs, keyed URLs, connection strings and token formats by value', () => {
    for (const [name, value] of SENSITIVE_ENV_VALUES) expect(envLooksSensitive(name, value), name).toBe(true);
  });

  it('keeps lengths, methods, paths, templates and plain URLs in clear', () => {
    for (const [name, value] of PLAIN_ENV)
      expect(envLooksSensitive(name, value), `${name}=${value}`).toBe(false);
  });
});

describe('holdsCredentialLines', () => {
  it('flags each credential line of the corpus, alone and among ordinary lines', () => {
    for (const line of CREDENTIAL_LINES) {
      expect(holdsCredentialLines(line), line).toBe(true);
      expect(holdsCredentialLines(`# settings\nlisten = 8080\n${line}\nlog = info\n`), line).toBe(true);
    }
  });

  it('leaves lines that mention credentials without holding one alone', () => {
    for (const line of PLAIN_LINES) expect(holdsCredentialLines(line), line).toBe(false);
    expect(holdsCredentialLines(PLAIN_LINES.join('\n'))).toBe(false);
  });

  it('reads bytes one to a character and holds binary content to have none', () => {
    expect(holdsCredentialLines(Buffer.from('PORT=8080\nDB_PASSWORD=hunter2\n'))).toBe(true);
    expect(holdsCredentialLines(Buffer.from('\u00e9t\u00e9=1\npassword = caf\u00e9\n', 'latin1'))).toBe(true);
    expect(holdsCredentialLines(Buffer.from('\u0000\u0001password = hunter2\n', 'latin1'))).toBe(false);
    expect(holdsCredentialLines('')).toBe(false);
  });

  it('looks at the first CREDENTIAL_LINE_MAX_BYTES of each line, as the host does', () => {
    const pad = 'x'.repeat(CREDENTIAL_LINE_MAX_BYTES);
    expect(holdsCredentialLines(`${pad} password=hunter2`)).toBe(false);
    expect(holdsCredentialLines(`password=hunter2 ${pad}`)).toBe(true);
  });
});

describe('secret detection on hostile input', () => {
  // Each of these took seconds to minutes with patterns that backtrack over every position of a
  // long run; linear patterns take milliseconds, far inside the test's time limit.
  const runs = ['x', 'password', 'X-', 'eyj', 'a://', '"a', 'environment=a', '-p'];

  it('reads long lines of repeated fragments in linear time', () => {
    for (const r of runs) {
      const line = r
        .repeat(Math.ceil(CREDENTIAL_LINE_MAX_BYTES / r.length))
        .slice(0, CREDENTIAL_LINE_MAX_BYTES);
      expect(holdsCredentialLines(`${line}\n`.repeat(8)), r).toBe(false);
    }
  });

  it('redacts and classifies command lines and values of 256 KiB in linear time', () => {
    for (const r of runs) {
      const big = r.repeat((256 * 1024) / r.length);
      expect(redactCommand(big).length, r).toBeGreaterThan(0);
      expect(typeof envLooksSensitive('X', big)).toBe('boolean');
    }
  });
});

describe('the capture script’s credential scan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'persona-credscan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const nonce = randomBytes(16).toString('hex');
  const scan = (...roots: string[]): string[] => scanWith({}, ...roots);
  const scanWith = (env: Record<string, string>, ...roots: string[]): string[] => {
    // As the script calls it: its lists split on newlines only, globbing off.
    const run = spawnSync(
      'sh',
      ['-c', `${CREDENTIAL_SCAN_SH}\nIFS='\n'; set -f\ncred_scan "$@"`, 'sh', ...roots],
      {
        env: { PATH: '/usr/bin:/bin', LC_ALL: 'C', T: dir, N: nonce, ...env },
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      },
    );
    expect(run.stderr).toBe('');
    return run.stdout.split('\n').filter(Boolean).sort();
  };

  // Regular files under 64 KiB that the scan covers by name, as the script looks at them.
  const candidates = (root: string): string[] => {
    const out: string[] = [];
    const walk = (d: string) => {
      let names: string[];
      try {
        names = readdirSync(d);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(d, n);
        const st = lstatSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.isFile() && st.size < CREDENTIAL_SCAN_MAX_BYTES && credentialScanCovers(p)) out.push(p);
      }
    };
    walk(root);
    return out;
  };

  it('flags on the host exactly the corpus files that holdsCredentialLines flags', () => {
    const corpus = join(dir, 'corpus');
    const lines = [...CREDENTIAL_LINES, ...PLAIN_LINES];
    spawnSync('mkdir', ['-p', corpus]);
    lines.forEach((line, i) => {
      writeFileSync(join(corpus, `line-${i}.conf`), `listen = 8080\n${line}\n`);
    });
    writeFileSync(join(corpus, 'binary.bin'), Buffer.from('\u0000\u0001password = hunter2\n', 'latin1'));
    writeFileSync(
      join(corpus, 'large.conf'),
      `${'#'.repeat(CREDENTIAL_SCAN_MAX_BYTES)}\npassword = hunter2\n`,
    );
    const expected = lines.flatMap((_l, i) =>
      i < CREDENTIAL_LINES.length ? [join(corpus, `line-${i}.conf`)] : [],
    );
    expect(scan(corpus)).toEqual(expected.sort());
  });

  it('agrees with holdsCredentialLines on every file of this machine’s /etc', () => {
    const here = candidates('/etc')
      .filter((p) => {
        try {
          return holdsCredentialLines(readFileSync(p));
        } catch {
          return false;
        }
      })
      .sort();
    expect(scan('/etc')).toEqual(here);
  });

  it('looks into configuration, not into program source or documentation that only handles credentials', () => {
    const app = join(dir, 'app');
    spawnSync('mkdir', ['-p', app]);
    writeFileSync(
      join(app, 'auth.py'),
      'class Login:\n    def __init__(self, password):\n        self.password = "x" + password\n',
    );
    writeFileSync(join(app, 'README.md'), 'Set it up:\n\n    password = example-in-the-docs\n');
    writeFileSync(join(app, 'settings.py'), "SECRET_KEY = 'django-insecure-abcdef0123456789'\n");
    writeFileSync(join(app, 'app.ini'), '[db]\npassword = s3cret-pw\n');
    expect(scan(app)).toEqual([join(app, 'app.ini'), join(app, 'settings.py')]);
    expect(credentialScanCovers(join(app, 'auth.py'))).toBe(false);
    expect(credentialScanCovers(join(app, 'settings.py'))).toBe(true);
    expect(credentialScanCovers('/etc/ssl/private/web.key')).toBe(false);
    expect(credentialScanCovers('/etc/default/shop-api')).toBe(true);
    // Named like credentials, so out of the host's scan, though public.
    expect(credentialScanCovers('/etc/passwd')).toBe(false);
  });

  it('names each file by its own lines, whatever ends the one before, with or without grep -P', () => {
    const mixed = join(dir, 'mixed');
    spawnSync('mkdir', ['-p', mixed]);
    // Each file's last line unterminated: a line of one file must never run into the next.
    const files: [string, string, boolean][] = [
      ['a excused.conf', 'passwd: files systemd', false],
      ['b-held.conf', 'passwd: files\npassword = s3cret-pw', true],
      ['-c dash.conf', 'password = ', false],
      ['d.conf', 's3cret-pw\n# password = s3cret-pw', false],
      ["e quote's.conf", 'DB_PASSWORD=hunter2', true],
      // What a file could guess of the marker between files, without the run's nonce.
      ['f.conf', `@@persona::file\n@@persona:file ${dir}\npassword = none`, false],
      ['g.conf', 'listen = 8080\nREDIS_PASS=s3cret-pw\nREDIS_PASS=%(pw)s', true],
      ['h.bin', '\u0000DB_PASSWORD=hunter2', false],
    ];
    for (const [name, text] of files) writeFileSync(join(mixed, name), text);
    const expected = files.filter(([, , held]) => held).map(([name]) => join(mixed, name));
    for (const [, text, held] of files) expect(holdsCredentialLines(text), text).toBe(held);
    expect(scan(mixed)).toEqual(expected.sort());
    // A grep without -P (busybox): binary files found by their size without NUL bytes.
    const bin = join(dir, 'no-pcre');
    spawnSync('mkdir', ['-p', bin]);
    writeFileSync(
      join(bin, 'grep'),
      '#!/bin/sh\nfor a do if [ "$a" = -P ]; then exit 2; fi; done\nexec /bin/grep "$@"\n',
      { mode: 0o755 },
    );
    expect(scanWith({ PATH: `${bin}:/usr/bin:/bin` }, mixed)).toEqual(expected.sort());
  });

  it('prints the names of the files, never what is in them', () => {
    const secret = join(dir, 'secret-content');
    spawnSync('mkdir', ['-p', secret]);
    writeFileSync(join(secret, 'app.env'), 'DB_PASSWORD=hunter2-on-the-host\n');
    const run = spawnSync('sh', ['-c', `${CREDENTIAL_SCAN_SH}\ncred_scan "$1"`, 'sh', secret], {
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C', T: dir },
      encoding: 'utf8',
    });
    expect(run.stdout).toBe(`${join(secret, 'app.env')}\n`);
    expect(run.stdout + run.stderr).not.toContain('hunter2');
  });
});

describe('redactCommand', () => {
  it('masks values of sensitive options, assignments, JSON fields and URL passwords', () => {
    expect(redactCommand('app --db-password=hunter2 --port 80')).toBe(
      'app --db-password=<redacted> --port 80',
    );
    expect(redactCommand('app --api-key abc123 -v')).toBe('app --api-key <redacted> -v');
    expect(redactCommand('env DB_PASSWORD=hunter2 LANG=C app')).toBe('env DB_PASSWORD=<redacted> LANG=C app');
    expect(redactCommand('run --env {"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "abc"}')).toBe(
      'run --env {"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "<redacted>"}',
    );
    expect(redactCommand('psql postgres://app:hunter2@db/app')).toBe('psql postgres://app:<redacted>@db/app');
    expect(redactCommand('nginx: worker process')).toBe('nginx: worker process');
  });

  it('redacts every command-line form of the corpus and leaves ordinary arguments exactly as they were', () => {
    for (const [command, redacted] of COMMANDS) expect(redactCommand(command), command).toBe(redacted);
  });

  it('masks the same way every time, so that an unchanged process gives an unchanged Profile', () => {
    for (const [command] of COMMANDS) {
      const once = redactCommand(command);
      expect(redactCommand(once), command).toBe(once);
      expect(redactCommand(command)).toBe(once);
    }
  });

  it('lets no secret of the corpus through', () => {
    for (const [command] of COMMANDS) {
      expect(redactCommand(command), command).not.toMatch(/hunter2|s3cret|dXNlcjpzM2NyZXQ|ghp_|eyJzdWIi/);
    }
  });
});

describe('keyedContentHash', () => {
  const sha = `sha256:${createHash('sha256').update('password = hunter2\n').digest('hex')}`;
  const key = contentHashKeyOf({ secretIdKey: new Uint8Array(32).fill(7) });

  it('is an HMAC of the file’s SHA-256, marked as keyed, stable for one key', () => {
    const h = keyedContentHash(key, sha);
    expect(h).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(h.slice('hmac-sha256:'.length)).not.toBe(sha.slice('sha256:'.length));
    expect(keyedContentHash(key, sha)).toBe(h);
    expect(keyedContentHash(contentHashKeyOf({ secretIdKey: new Uint8Array(32).fill(8) }), sha)).not.toBe(h);
  });

  it('refuses anything but a sha256 content hash', () => {
    expect(() => keyedContentHash(key, 'md5:abc')).toThrow(/not a sha256 content hash/);
  });
});

describe('SecretCollector', () => {
  it('hands out one reference per secret, under the host, and keeps the values beside them', () => {
    const secrets = new SecretCollector('web-a');
    const a = secrets.add('env', 'node/DB_PASSWORD', 'hunter2');
    const b = secrets.add('env', 'node/DB_PASSWORD', 'hunter2');
    const f = secrets.add('file', '/etc/ssl/private/web.key');
    expect(a).toEqual({ provider: 'local', key: 'web-a/env/node/DB_PASSWORD' });
    expect(b).toEqual(a);
    expect(f).toEqual({ provider: 'local', key: 'web-a/file/etc/ssl/private/web.key' });
    expect(secrets.list()).toEqual([
      { ref: a, kind: 'env', source: 'node/DB_PASSWORD', value: 'hunter2' },
      { ref: f, kind: 'file', source: '/etc/ssl/private/web.key' },
    ]);
  });
});

const debian = fixture('debian-12');
const nonce = /^@@persona:begin (\S+) /.exec(debian)?.[1] ?? '';

/** The recorded output with a section the recording predates, added after `after`. */
function withAdded(output: string, after: string, name: string, body: string): string {
  const endMarker = `\n@@persona:${nonce}:end ${after} `;
  const at = output.indexOf('\n', output.indexOf(endMarker) + endMarker.length);
  const mark = (d: string) => `\n@@persona:${nonce}:${d}\n`;
  const section = `${mark(`section ${name}`)}${body}${mark(`end ${name} 0 1.00 1.01`).replace(/\n$/, '')}`;
  return output.slice(0, at) + section + output.slice(at);
}

const ENV_FILE = '/etc/default/useradd';
const ENV_FILE_SHA = 'sha256:6702e1cb0d7035a0d7a2beeded69f69acd8ac2b2778913b5afe60595936448f5';
const KEY = contentHashKeyOf({ secretIdKey: new Uint8Array(32).fill(1) });

const buildFrom = (output: string, contentHashKey?: Uint8Array) => {
  const result = buildProfile(parseSections(output), {
    name: 'fixture-host',
    capturedAt: CAPTURED_AT,
    application: { processes: ['shopapi'] },
    ...(contentHashKey === undefined ? {} : { contentHashKey }),
  });
  return { ...result, valid: validateProfile(result.profile), json: JSON.stringify(result.profile) };
};

describe('a capture of files that hold credential lines', () => {
  const withCredentials = withAdded(debian, 'privkeys', 'credfiles', `${ENV_FILE}\n`);
  const fileOf = (b: ReturnType<typeof buildFrom>, path: string) =>
    b.valid.spec.configuration.files.find((f) => f.path === path);

  it('keeps them as secrets with a keyed hash, and no bare SHA-256 anywhere in the Profile', () => {
    const plain = buildFrom(debian, KEY);
    expect(fileOf(plain, ENV_FILE)?.hash).toBe(ENV_FILE_SHA);

    const built = buildFrom(withCredentials, KEY);
    expect(fileOf(built, ENV_FILE)).toMatchObject({
      type: 'file',
      sensitive: true,
      secretRef: { provider: 'local', key: expect.stringMatching(/\/file\/etc\/default\/useradd$/) },
      hash: keyedContentHash(KEY, ENV_FILE_SHA),
    });
    expect(built.json).not.toContain(ENV_FILE_SHA.slice('sha256:'.length));
    expect(built.secrets).toContainEqual(
      expect.objectContaining({ kind: 'file', source: ENV_FILE, ref: fileOf(built, ENV_FILE)?.secretRef }),
    );
  });

  it('gives an identical Profile for an unchanged host under the same key, another hash under another', () => {
    const a = buildFrom(withCredentials, KEY);
    const b = buildFrom(withCredentials, contentHashKeyOf({ secretIdKey: new Uint8Array(32).fill(1) }));
    expect(b.json).toBe(a.json);
    const other = buildFrom(withCredentials, contentHashKeyOf({ secretIdKey: new Uint8Array(32).fill(2) }));
    expect(fileOf(other, ENV_FILE)?.hash).not.toBe(fileOf(a, ENV_FILE)?.hash);
  });

  it('still seals a file past the listing limit that holds credentials, so that no snapshot keeps it', () => {
    const built = buildFrom(withAdded(debian, 'privkeys', 'credfiles', '/etc/app/late.env\n'), KEY);
    expect(built.valid.spec.configuration.files.map((f) => f.path)).not.toContain('/etc/app/late.env');
    expect(built.secrets).toContainEqual(
      expect.objectContaining({ kind: 'file', source: '/etc/app/late.env' }),
    );
  });

  it('keeps no hash at all without a key, rather than a bare one', () => {
    const built = buildFrom(withCredentials);
    expect(fileOf(built, ENV_FILE)?.hash).toBeUndefined();
    expect(fileOf(built, ENV_FILE)?.secretRef).toBeDefined();
    expect(built.json).not.toContain(ENV_FILE_SHA.slice('sha256:'.length));
  });

  it('keys the hash of a systemd unit that holds credentials the same way', () => {
    const unit = '/etc/systemd/system/shop.service';
    const unitSha = 'a'.repeat(64);
    const output = withAdded(
      withSection(debian, 'services', {
        parts: [
          ['systemd units', 'shop.service loaded active running Shop\n'],
          ['systemd unit-files', 'shop.service enabled enabled\n'],
          [
            'systemd unit-hashes',
            `${unitSha}  ${unit}\n${'b'.repeat(64)}  /usr/lib/systemd/system/shop.service\n`,
          ],
        ],
      }),
      'privkeys',
      'credfiles',
      `${unit}\n`,
    );
    const built = buildFrom(output, KEY);
    expect(built.valid.spec.services.find((s) => s.name === 'shop')?.unitHash).toBe(
      keyedContentHash(KEY, `sha256:${unitSha}`),
    );
    expect(built.json).not.toContain(unitSha);
    // Without a key the unit shows no hash, not the one of the copy it overrides.
    expect(buildFrom(output).valid.spec.services.find((s) => s.name === 'shop')?.unitHash).toBeUndefined();
  });
});

describe('hashes of unit files outside the Profile’s trees', () => {
  it('are kept as computed, whatever their name looks like', () => {
    const sha = 'c'.repeat(64);
    const output = withSection(debian, 'services', {
      parts: [
        ['systemd units', 'systemd-ask-password-wall.service loaded active running Forward\n'],
        ['systemd unit-files', 'systemd-ask-password-wall.service static -\n'],
        ['systemd unit-hashes', `${sha}  /usr/lib/systemd/system/systemd-ask-password-wall.service\n`],
      ],
    });
    expect(
      buildFrom(output, KEY).valid.spec.services.find((s) => s.name === 'systemd-ask-password-wall')
        ?.unitHash,
    ).toBe(`sha256:${sha}`);
  });
});

describe('command lines in a capture', () => {
  it('keeps the credential of a sudo rule’s command out of the Profile', () => {
    const output = withSection(debian, 'sudoers', {
      parts: [
        [
          '/etc/sudoers.d/backup',
          'backup ALL=(root) NOPASSWD: /usr/bin/mysqldump -uroot -phunter2 --all-databases\n',
        ],
      ],
    });
    const built = buildFrom(output, KEY);
    expect(built.valid.spec.security.sudoers).toContainEqual({
      principal: 'backup',
      rules: ['ALL=(root) NOPASSWD: /usr/bin/mysqldump -uroot -p<redacted> --all-databases'],
    });
    expect(built.json).not.toContain('hunter2');
  });
});

describe('a capture by a user other than root', () => {
  const asUser = (output: string) => output.replace(`\nhostname=`, '\nuid=1001\nuser=capture\nhostname=');
  const FILES_PART = /(@@persona:[^:\n]+:part printf \d+\n[\s\S]*?)(\n@@persona:[^:\n]+:end files )/;

  it('says it was not root, and names the files it could not read and the directories it could not list', () => {
    const output = asUser(debian).replace(
      FILES_PART,
      `$1\n@@persona:${nonce}:part unreadable\nf\t/etc/default/cacerts\nf\t/etc/shadow\nd\t/etc/ssl/private$2`,
    );
    const built = buildFrom(output, KEY);
    expect(reasons(built, 'capture')).toEqual([
      'captured as capture (uid 1001), not root: what only root may read is unknown (permission denied)',
    ]);
    expect(reasons(built, 'files')).toEqual(
      expect.arrayContaining([
        '2 files could not be read: permission denied (capture as root): /etc/default/cacerts, /etc/shadow',
        '1 directory could not be listed: permission denied (capture as root): /etc/ssl/private',
      ]),
    );
    const paths = built.valid.spec.configuration.files.map((f) => f.path);
    expect(paths).not.toContain('/etc/shadow');
    expect(paths).not.toContain('/etc/default/cacerts');
    // Nothing the user could not read is handed on to be read and sealed.
    expect(built.secrets.map((s) => s.source)).not.toContain('/etc/shadow');
  });

  it('names an application process whose environment belongs to another user, instead of calling it not running', () => {
    const output = withSection(debian, 'environ', {
      parts: [
        ['file /etc/environment', ''],
        ['denied 4242 shopapi', ''],
      ],
    });
    const built = buildFrom(output, KEY);
    expect(reasons(built, 'environ')).toEqual([
      'the environment of application process "shopapi" (pid 4242) could not be read: permission denied (it runs as another user; capture as root or as that user)',
    ]);
  });

  it('says which data directories it could only partly walk', () => {
    const built = buildFrom(
      withSection(debian, 'du', {
        body: 'cache\t/var/cache\t120\t4096000\tdenied\nlogs\t/var/log\t9\t1000\t0\n',
      }),
      KEY,
    );
    expect(reasons(built, 'du')).toEqual([
      'parts of /var/cache could not be read: permission denied (capture as root): its size and file count are lower bounds',
    ]);
    expect(built.valid.observed?.usage?.data).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'cache', bytes: 4096000 })]),
    );
  });

  it('is no different from a root capture for root', () => {
    expect(reasons(buildFrom(debian, KEY), 'capture')).toEqual([]);
  });
});
