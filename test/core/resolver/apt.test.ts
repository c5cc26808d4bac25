// The Debian family on output recorded from dpkg and apt on a bookworm machine: what the
// resolver sends, how it reads the answers, and which source it prefers for a version.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Package } from '../../../core/profile/schema.js';
import {
  AptMirror,
  aptMadisonCommand,
  aptShowCommand,
  aptSpec,
  debInstallCommand,
  dpkgQueryCommand,
  parseAptShow,
  parseDpkgQuery,
  parseMadison,
} from '../../../core/resolver/apt.js';
import type { Available } from '../../../core/resolver/manager.js';
import { resolvePackages } from '../../../core/resolver/resolve.js';
import type { PackageIndex, StoredPackage } from '../../../core/resolver/store.js';
import { type Answer, RecordedTransport } from './recorded.js';

const DPKG_QUERY = [
  'bash\t5.2.15-2+b8\tamd64\tii ',
  'libc6\t2.36-9+deb12u7\tamd64\tii ',
  'ca-certificates\t20230311\tall\tii ',
  // Removed, its configuration left behind: not installed.
  'nginx\t1.22.1-9\tamd64\trc ',
  '',
].join('\n');

const MADISON = `      bash | 5.2.15-2+b13 | http://deb.debian.org/debian bookworm/main amd64 Packages
     libc6 | 2.36-9+deb12u14 | http://deb.debian.org/debian bookworm/main amd64 Packages
     libc6 | 2.36-9+deb12u7 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     libc6 | 2.36-9+deb12u7 | http://deb.debian.org/debian-security bookworm-security/main i386 Packages
   openssl | 3.0.22-1~deb12u2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
   openssl | 3.0.20-1~deb12u2 | http://deb.debian.org/debian bookworm/main amd64 Packages
   openssl | 3.0.17-1~deb12u2 | http://deb.debian.org/debian bookworm-updates/main amd64 Packages
   openssl | 3.0.17-1~deb12u2 | Debian bookworm/main Sources
ca-certificates | 20230311+deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages
`;

const SHOW_CURL = `Package: curl
Version: 7.88.1-10+deb12u15
Installed-Size: 489
Architecture: amd64
Depends: libc6 (>= 2.34), libcurl4 (= 7.88.1-10+deb12u15), zlib1g (>= 1:1.1.4)
Description: command line tool for transferring data with URL syntax
Filename: pool/main/c/curl/curl_7.88.1-10+deb12u15_amd64.deb
Size: 315764
MD5sum: 2e321a27de9d997830dd178de4c2c583
SHA256: 0dd9b6bf7a0bd11af2d68a52ec44c2a223fa7c11f9104c36ce1047e1137d4a8f

Package: curl
Version: 7.88.1-10+deb12u5
Architecture: amd64
Size: 1
SHA256: ${'1'.repeat(64)}
`;

const FAMILY =
  'if command -v dpkg-query >/dev/null 2>&1; then echo deb; elif command -v rpm >/dev/null 2>&1; then echo rpm; fi';

function debianHost(names: readonly string[], madison = MADISON): RecordedTransport {
  return new RecordedTransport(
    new Map<string, Answer>([
      [FAMILY, { stdout: 'deb\n' }],
      ['dpkg --print-architecture', { stdout: 'amd64\n' }],
      [
        dpkgQueryCommand(names),
        { exitCode: 1, stdout: DPKG_QUERY, stderr: 'dpkg-query: no packages found matching openssl\n' },
      ],
      [aptMadisonCommand(names), { stdout: madison }],
    ]),
  );
}

const apt = (name: string, version: string, arch?: string): Package => ({
  name,
  version,
  manager: 'apt',
  ...(arch ? { arch } : {}),
});

describe('dpkg and apt output', () => {
  it('reads dpkg-query lines, only installed packages', () => {
    expect(parseDpkgQuery(DPKG_QUERY)).toEqual([
      { name: 'bash', version: '5.2.15-2+b8', arch: 'amd64' },
      { name: 'libc6', version: '2.36-9+deb12u7', arch: 'amd64' },
      { name: 'ca-certificates', version: '20230311', arch: 'all' },
    ]);
  });

  it('reads madison lines with their architecture and origin, not source packages', () => {
    const rows = parseMadison(MADISON);
    expect(rows).toHaveLength(8);
    expect(rows[2]).toEqual({
      name: 'libc6',
      version: '2.36-9+deb12u7',
      arch: 'amd64',
      origin: 'http://deb.debian.org/debian-security bookworm-security/main',
    });
    expect(rows.some((r) => r.origin.includes('Sources'))).toBe(false);
  });

  it('drops lines a hostile host made up', () => {
    expect(
      parseMadison(
        [
          ' tree;id | 1.0-1 | http://x bookworm/main amd64 Packages',
          ' tree | $(id) | http://x bookworm/main amd64 Packages',
          ' tree | 1.0-1 | http://x bookworm/main AMD;64 Packages',
          ' tree | 1.0-1 | http://x | y amd64 Packages',
        ].join('\n'),
      ),
    ).toEqual([]);
    expect(parseDpkgQuery('tree\t1.0 -1\tamd64\tii \n$(id)\t1.0\tamd64\tii \n')).toEqual([]);
  });

  it('takes the hash and size to verify from the first stanza of apt-cache show', () => {
    expect(parseAptShow(SHOW_CURL)).toEqual({
      name: 'curl',
      version: '7.88.1-10+deb12u15',
      arch: 'amd64',
      sha256: '0dd9b6bf7a0bd11af2d68a52ec44c2a223fa7c11f9104c36ce1047e1137d4a8f',
      size: 315764,
    });
    expect(parseAptShow(SHOW_CURL.replace(/^SHA256: .*$/m, 'SHA256: xyz'))).toBeUndefined();
    expect(parseAptShow(SHOW_CURL.replace(/^Size: 315764$/m, 'Size: -3'))).toBeUndefined();
  });

  it('builds every command with each value one quoted word after --', () => {
    expect(dpkgQueryCommand(['tree', 'libc6'])).toBe(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own field syntax
      "dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n' -- 'tree' 'libc6'",
    );
    expect(aptMadisonCommand(['tree'])).toBe("apt-cache madison -- 'tree'");
    expect(aptShowCommand('tree=2.1.0-1')).toBe("apt-cache show --no-all-versions -- 'tree=2.1.0-1'");
    expect(debInstallCommand('/tmp/x', ['/tmp/x/a.deb', '/tmp/x/b.deb']).split('\n')).toEqual([
      'if command -v apt-get >/dev/null 2>&1; then',
      "  mkdir -p -- '/tmp/x/sources.list.d' && touch -- '/tmp/x/sources.list' &&",
      "  apt-get install -y -q --allow-downgrades -o 'Dir::Etc::SourceList=/tmp/x/sources.list' -o 'Dir::Etc::SourceParts=/tmp/x/sources.list.d' -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -- '/tmp/x/a.deb' '/tmp/x/b.deb'",
      'else',
      "  dpkg --force-confdef --force-confold -i -- '/tmp/x/a.deb' '/tmp/x/b.deb'",
      'fi',
    ]);
    expect(aptSpec({ name: 'libc6', version: '2.36-9', arch: 'i386' }, 'amd64')).toBe('libc6:i386=2.36-9');
    expect(aptSpec({ name: 'tzdata', version: '2024a-0+deb12u1', arch: 'all' }, 'amd64')).toBe(
      'tzdata=2024a-0+deb12u1',
    );
  });
});

describe('resolving on a Debian target', () => {
  const names = ['bash', 'ca-certificates', 'libc6', 'nginx', 'openssl'];

  it('says installed, exact and nearest by dpkg’s ordering, and keeps what is installed now', async () => {
    const host = debianHost(names);
    const out = await resolvePackages(
      [
        apt('bash', '5.2.15-2+b8'),
        // dpkg-query's binary:Package names a Multi-Arch: same package with its architecture.
        apt('libc6:amd64', '2.36-9+deb12u14'),
        apt('ca-certificates', '20230311', 'all'),
        apt('openssl', '3.0.18-1~deb12u1'),
        apt('nginx', '1.22.1-9'),
      ],
      { target: host },
    );
    expect(out.map((r) => r.status)).toEqual(['installed', 'exact', 'installed', 'nearest', 'unresolvable']);
    expect(out[1]).toMatchObject({
      spec: { name: 'libc6', version: '2.36-9+deb12u14', arch: 'amd64' },
      source: 'repository',
      origin: 'http://deb.debian.org/debian bookworm/main',
      installed: '2.36-9+deb12u7',
    });
    // 3.0.20 is the smallest version above 3.0.18 by dpkg's ordering (~ sorts low).
    expect(out[3]).toMatchObject({
      spec: { version: '3.0.20-1~deb12u2' },
      reason: expect.stringContaining(
        '3.0.20-1~deb12u2 is the nearest newer version, another upstream version',
      ),
    });
    const [rebuilt] = await resolvePackages([apt('bash', '5.2.15-2+b9')], { target: debianHost(['bash']) });
    expect(rebuilt).toMatchObject({
      status: 'nearest',
      spec: { version: '5.2.15-2+b13' },
      installed: '5.2.15-2+b8',
      reason: expect.stringContaining(
        'nearest newer version, the same upstream version, another Debian revision',
      ),
    });
    // A removed package whose configuration remains is not installed; no repository has it.
    expect(out[4]).toMatchObject({ reason: expect.stringContaining('no version of nginx for amd64') });
  });

  it('with offline repositories asks only the store and the mirror, and prefers the store', async () => {
    const host = debianHost(['openssl']);
    const entry: StoredPackage = {
      family: 'deb',
      name: 'openssl',
      version: '3.0.17-1~deb12u2',
      arch: 'amd64',
      sha256: 'a'.repeat(64),
      size: 10,
      storedAt: '2026-12-01T00:00:00.000Z',
    };
    const store: PackageIndex = { location: 's3://b/packages/', versionsOf: async () => [entry] };
    const mirrorRows: Available[] = [
      { ...entry, origin: 'http://deb.debian.org/debian bookworm-updates/main' },
    ];
    const mirror = { family: 'deb' as const, available: async () => mirrorRows };
    const [openssl] = await resolvePackages(
      [apt('openssl', '3.0.17-1~deb12u2')],
      { target: host, store, mirror },
      {
        targetRepositories: 'offline',
      },
    );
    expect(openssl).toMatchObject({ status: 'exact', source: 'store', origin: 's3://b/packages/' });
    expect(host.sent.some((s) => s.command.startsWith('apt-cache'))).toBe(false);
    const [older] = await resolvePackages(
      [apt('openssl', '3.0.19-1')],
      { target: host, mirror },
      {
        targetRepositories: 'offline',
      },
    );
    expect(older).toMatchObject({
      status: 'nearest',
      source: 'mirror',
      reason:
        "3.0.19-1 is not in the control machine's mirror; 3.0.17-1~deb12u2 is the nearest older version, another upstream version (of 3.0.17-1~deb12u2)",
    });
  });

  it('refuses a hostile name or version before sending anything, naming each field', async () => {
    const host = debianHost(names);
    await expect(
      resolvePackages(
        [
          apt('bash', '5.2'),
          apt('--force-all', '1.0'),
          apt('tree', '1.0; touch /pwned'),
          apt('tree', '1', 'AMD64'),
        ],
        {
          target: host,
        },
      ),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [
        expect.objectContaining({ path: 'packages[1].name' }),
        expect.objectContaining({ path: 'packages[2].version' }),
        expect.objectContaining({ path: 'packages[3].arch' }),
      ],
    });
    expect(host.sent).toEqual([]);
  });
});

describe('fetching on the control machine', () => {
  const bytes = new TextEncoder().encode('a .deb file');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const show = `Package: tree\nVersion: 2.1.0-1\nArchitecture: amd64\nSize: ${bytes.length}\nSHA256: ${sha256}\n`;
  const dir = '/tmp/tmp.ctl';
  const control = (showText: string, fields: string) => {
    const t = new RecordedTransport(
      new Map<string, Answer>([
        ['dpkg --print-architecture', { stdout: 'amd64\n' }],
        [aptShowCommand('tree=2.1.0-1'), { stdout: showText }],
        ['mktemp -d', { stdout: `${dir}\n` }],
        [
          `cd '${dir}' && apt-get download -q -- 'tree=2.1.0-1' >&2 && ls -1`,
          { stdout: 'tree_2.1.0-1_amd64.deb\n' },
        ],
        [`dpkg-deb -f -- '${dir}/tree_2.1.0-1_amd64.deb' Package Version Architecture`, { stdout: fields }],
        [`rm -rf -- '${dir}'`, {}],
      ]),
    );
    t.files.set(`${dir}/tree_2.1.0-1_amd64.deb`, bytes);
    return t;
  };
  const spec = { name: 'tree', version: '2.1.0-1', arch: 'amd64' };
  const fields = 'Package: tree\nVersion: 2.1.0-1\nArchitecture: amd64\n';

  it('returns the bytes when they match the Packages index and the package names itself', async () => {
    const t = control(show, fields);
    const got = await new AptMirror(t).fetch(spec);
    expect(got.record).toEqual({
      name: 'tree',
      version: '2.1.0-1',
      arch: 'amd64',
      sha256,
      size: bytes.length,
    });
    expect(t.sent.at(-1)?.command).toBe(`rm -rf -- '${dir}'`);
  });

  it('refuses a download whose SHA-256 is not the index’s, and removes the directory', async () => {
    const t = control(show.replace(sha256, 'e'.repeat(64)), fields);
    await expect(new AptMirror(t).fetch(spec)).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringContaining('the Packages index says eeee'),
    });
    expect(t.sent.at(-1)?.command).toBe(`rm -rf -- '${dir}'`);
  });

  it('refuses a spec off the grammar (a saved plan is a document) before sending anything', async () => {
    const t = control(show, fields);
    await expect(
      new AptMirror(t).fetch({ ...spec, version: '2.1.0-1 --allow-unauthenticated' }),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [expect.objectContaining({ path: 'spec.version' })],
    });
    expect(t.sent).toEqual([]);
  });

  it('refuses a file that is another package than the one asked for', async () => {
    const t = control(show, fields.replace('Package: tree', 'Package: evil'));
    await expect(new AptMirror(t).fetch(spec)).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringContaining('is not that package'),
    });
  });
});
