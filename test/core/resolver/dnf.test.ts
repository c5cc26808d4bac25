// The RHEL family on output recorded from rpm and dnf (there is no RHEL test host): what the
// resolver sends, how it reads the answers, and the delivery command for a target with no route.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import type { Package } from '../../../core/profile/schema.js';
import { deliverPackages } from '../../../core/resolver/deliver.js';
import {
  dnfInstallCommand,
  dnfListCommand,
  parseDnfList,
  parseRpmQuery,
  rpmInstallCommand,
  rpmQueryCommand,
} from '../../../core/resolver/dnf.js';
import {
  assertResolvable,
  resolvePackages,
  UnresolvablePackagesError,
} from '../../../core/resolver/resolve.js';
import type { PackageStore, StoredPackage } from '../../../core/resolver/store.js';
import { type Answer, RecordedTransport } from './recorded.js';

// rpm -q with the resolver's query format, on a RHEL 9 host with bash and nginx but no tree.
const RPM_Q = [
  'bash\t5.1.8-6.el9_1\tx86_64',
  'nginx\t1:1.20.1-14.el9_2.1\tx86_64',
  'package tree is not installed',
  'package jq is not installed',
  'package htop is not installed',
  '',
].join('\n');

// dnf list --showduplicates --available --quiet: long name.arch wraps, noarch, several repos.
const DNF_LIST = `Available Packages
bash.x86_64                          5.1.8-6.el9_1                          baseos
bash.x86_64                          5.1.8-9.el9                            baseos
jq.x86_64                            1.6-15.el9                             appstream
jq.x86_64                            1.6-16.el9                             appstream
nginx.x86_64                         1:1.20.1-13.el9                        appstream
nginx.x86_64                         1:1.20.1-16.el9_4.1                    appstream
python3-requests-toolbelt.noarch
                                     0.9.1-16.el9                           appstream
tree.x86_64                          1.8.0-10.el9                           baseos
tree.i686                            1.8.0-12.el9                           baseos
`;

const pkg = (name: string, version: string, manager: Package['manager'] = 'dnf'): Package => ({
  name,
  version,
  manager,
});

function rhelHost(names: readonly string[], extra: [string, Answer][] = []): RecordedTransport {
  return new RecordedTransport(
    new Map<string, Answer>([
      [
        'if command -v dpkg-query >/dev/null 2>&1; then echo deb; elif command -v rpm >/dev/null 2>&1; then echo rpm; fi',
        { stdout: 'rpm\n' },
      ],
      ["rpm --eval '%{_arch}'", { stdout: 'x86_64\n' }],
      [rpmQueryCommand(names), { exitCode: 3, stdout: RPM_Q }],
      [dnfListCommand(names), { stdout: DNF_LIST }],
      ...extra,
    ]),
  );
}

describe('rpm and dnf output', () => {
  it('reads rpm -q lines and drops the names that are not installed', () => {
    expect(parseRpmQuery(RPM_Q)).toEqual([
      { name: 'bash', version: '5.1.8-6.el9_1', arch: 'x86_64' },
      { name: 'nginx', version: '1:1.20.1-14.el9_2.1', arch: 'x86_64' },
    ]);
  });

  it('reads dnf list lines, joining a wrapped name.arch with the line below it', () => {
    const rows = parseDnfList(DNF_LIST);
    expect(rows).toHaveLength(9);
    expect(rows).toContainEqual({
      name: 'python3-requests-toolbelt',
      version: '0.9.1-16.el9',
      arch: 'noarch',
      origin: 'appstream',
    });
    expect(rows).toContainEqual({
      name: 'nginx',
      version: '1:1.20.1-16.el9_4.1',
      arch: 'x86_64',
      origin: 'appstream',
    });
  });

  it('drops installed entries and lines a hostile host made up', () => {
    const rows = parseDnfList(
      [
        'Installed Packages',
        'bash.x86_64    5.1.8-6.el9_1    @anaconda',
        'evil;id.x86_64    1.0-1    baseos',
        'tree.x86_64    $(id)-1    baseos',
        'tree.x86_64    1.0-1-1    baseos',
        'tree.x86_64    1.8.0-10.el9    baseos',
      ].join('\n'),
    );
    expect(rows).toEqual([{ name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64', origin: 'baseos' }]);
  });

  it('asks with every name as one quoted word after --', () => {
    expect(rpmQueryCommand(['bash', 'gcc-c++'])).toBe(
      "rpm -q --queryformat '%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n' -- 'bash' 'gcc-c++'",
    );
    expect(dnfListCommand(['tree'])).toBe("dnf list --showduplicates --available --quiet -- 'tree'");
  });
});

describe('resolving on a RHEL-family target', () => {
  const names = ['bash', 'htop', 'jq', 'nginx', 'tree'];

  it('says installed, exact, nearest (with the reason) and unresolvable by rpm’s ordering', async () => {
    const host = rhelHost(names);
    const packages = [
      pkg('bash', '5.1.8-6.el9_1'),
      // The epoch is written out on one side only: still the same version for rpm.
      pkg('nginx', '1:1.20.1-16.el9_4.1'),
      pkg('jq', '1.6-14.el9'),
      pkg('tree', '1.8.0-11.el9', 'rpm'),
      pkg('htop', '3.2.1-1.el9'),
    ];
    const out = await resolvePackages(packages, { target: host });
    expect(out.map((r) => r.status)).toEqual(['installed', 'exact', 'nearest', 'nearest', 'unresolvable']);
    expect(out[1]).toMatchObject({
      source: 'repository',
      origin: 'appstream',
      installed: '1:1.20.1-14.el9_2.1',
      spec: { name: 'nginx', version: '1:1.20.1-16.el9_4.1', arch: 'x86_64' },
    });
    // 1.6-15 is newer than the captured 1.6-14, and nearer than 1.6-16.
    expect(out[2]).toMatchObject({
      spec: { version: '1.6-15.el9' },
      reason: expect.stringContaining('nearest newer'),
    });
    // The only newer tree is for i686, which an x86_64 host does not take: the older one it is.
    expect(out[3]).toMatchObject({ spec: { version: '1.8.0-10.el9', arch: 'x86_64' } });
    expect(out[3]).toMatchObject({ reason: expect.stringContaining('nearest older') });
    expect(out[4]).toMatchObject({ reason: "no version of htop for x86_64 in the target's repositories" });
    expect(() => assertResolvable(out)).toThrow(UnresolvablePackagesError);
    expect(() => assertResolvable(out)).toThrow(/"htop" "3.2.1-1.el9"/);
    // Reads only: nothing but queries was sent.
    expect(host.sent.map((s) => s.command.split(' ')[0])).toEqual(['if', 'rpm', 'rpm', 'dnf']);
  });

  it('refuses nearest versions when asked to, and says which versions there are', async () => {
    const host = rhelHost(['jq']);
    const [jq] = await resolvePackages([pkg('jq', '1.6-14.el9')], { target: host }, { nearest: false });
    expect(jq).toMatchObject({
      status: 'unresolvable',
      reason: expect.stringContaining('1.6-15.el9, 1.6-16.el9; nearest versions are not accepted'),
    });
  });

  it('refuses a name or version off the RPM grammar before sending anything, naming each field', async () => {
    const host = rhelHost(names);
    const caught = await resolvePackages(
      [pkg('bash', '5.1.8-6.el9_1'), pkg('tree;touch /pwned', '1.0-1'), pkg('jq', '$(id)-1')],
      { target: host },
    ).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(InvalidInputError);
    expect((caught as InvalidInputError).issues.map((i) => i.path)).toEqual([
      'packages[1].name',
      'packages[2].version',
    ]);
    expect(host.sent).toEqual([]);
  });

  it('says a Debian package cannot resolve on an rpm host, and a pip one is not a system package', async () => {
    const host = rhelHost([]);
    const out = await resolvePackages([pkg('tree', '2.1.0-1', 'apt'), pkg('requests', '2.31.0', 'pip')], {
      target: host,
    });
    expect(out.map((r) => r.status === 'unresolvable' && r.reason)).toEqual([
      'a deb-family package (apt), and recorded://rhel9 has rpm',
      'pip packages are not resolved against a system package manager',
    ]);
  });
});

describe('delivering rpm files to a target with no route out', () => {
  it('puts the files in a temporary directory, checks them by hash there, installs with every repository off', async () => {
    const bytes = new TextEncoder().encode('an rpm file');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const file = `/tmp/tmp.abc/${sha256}.rpm`;
    const entry: StoredPackage = {
      family: 'rpm',
      name: 'tree',
      version: '1.8.0-10.el9',
      arch: 'x86_64',
      sha256,
      size: bytes.length,
      storedAt: '2026-12-01T00:00:00.000Z',
    };
    const host = new RecordedTransport(
      new Map<string, Answer>([
        ['mktemp -d', { stdout: '/tmp/tmp.abc\n' }],
        [`sha256sum -- '${file}'`, { stdout: `${sha256}  ${file}\n` }],
        [rpmInstallCommand('/tmp/tmp.abc', [file]), { stdout: 'Complete!\n' }],
        ["rm -rf -- '/tmp/tmp.abc'", {}],
      ]),
    );
    const store = { read: async () => bytes } as unknown as PackageStore;
    await deliverPackages(host, 'rpm', store, [entry]);
    expect(dnfInstallCommand([file])).toBe(`dnf install -y --disablerepo='*' -- '${file}'`);
    expect(host.sent.map((s) => s.command)).toEqual([
      'mktemp -d',
      `sha256sum -- '${file}'`,
      `if command -v dnf >/dev/null 2>&1; then\n  dnf install -y --disablerepo='*' -- '${file}'\nelse\n  rpm -U --oldpackage -- '${file}'\nfi`,
      "rm -rf -- '/tmp/tmp.abc'",
    ]);
    expect(host.files.get(file)).toEqual(bytes);
  });

  it('installs nothing when a file arrives damaged, and still removes the directory', async () => {
    const bytes = new TextEncoder().encode('an rpm file');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const file = `/tmp/tmp.abc/${sha256}.rpm`;
    const host = new RecordedTransport(
      new Map<string, Answer>([
        ['mktemp -d', { stdout: '/tmp/tmp.abc\n' }],
        [`sha256sum -- '${file}'`, { stdout: `${'0'.repeat(64)}  ${file}\n` }],
        ["rm -rf -- '/tmp/tmp.abc'", {}],
      ]),
    );
    const store = { read: async () => bytes } as unknown as PackageStore;
    const entry = {
      family: 'rpm',
      name: 'tree',
      version: '1.8.0-10.el9',
      arch: 'x86_64',
      sha256,
      size: 11,
    } as StoredPackage;
    await expect(deliverPackages(host, 'rpm', store, [entry])).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringContaining('arrived on recorded://rhel9 damaged'),
    });
    expect(host.sent.map((s) => s.command.split(' ')[0])).toEqual(['mktemp', 'sha256sum', 'rm']);
  });
});
