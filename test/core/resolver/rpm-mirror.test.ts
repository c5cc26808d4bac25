// The control side's RHEL-family mirror against a tiny repository served on 127.0.0.1: a
// repomd.xml and a primary index shaped as createrepo_c writes them, rpm files with a real
// lead and header. What is fetched is verified as dnf verifies it and lands in the package
// store by its SHA-256; whatever does not verify, or points outside the repository, is refused.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchIntoStore } from '../../../core/resolver/deliver.js';
import { PackageVerificationError } from '../../../core/resolver/manager.js';
import { resolvePackages } from '../../../core/resolver/resolve.js';
import { checkLocation, parsePrimary, RpmMirror, readRpmHeader } from '../../../core/resolver/rpm-mirror.js';
import { PackageStore } from '../../../core/resolver/store.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { startTestStore, type TestStore } from '../../support/snapshot-store.js';
import { type Answer, RecordedTransport } from './recorded.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An rpm file: the lead, an empty signature header, a header with the package's tags, a payload. */
function rpmFile(name: string, version: string, release: string, arch: string, epoch?: number): Buffer {
  const lead = Buffer.alloc(96);
  lead.writeUInt32BE(0xedabeedb, 0);
  lead.write(`${name}-${version}-${release}`.slice(0, 65), 10);
  const headerOf = (entries: [number, number, Buffer][]) => {
    const index = Buffer.alloc(16 * entries.length);
    const data: Buffer[] = [];
    let offset = 0;
    entries.forEach(([tag, type, value], i) => {
      index.writeUInt32BE(tag, i * 16);
      index.writeUInt32BE(type, i * 16 + 4);
      index.writeUInt32BE(offset, i * 16 + 8);
      index.writeUInt32BE(1, i * 16 + 12);
      data.push(value);
      offset += value.length;
    });
    const intro = Buffer.from([0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    intro.writeUInt32BE(entries.length, 8);
    intro.writeUInt32BE(offset, 12);
    return Buffer.concat([intro, index, ...data]);
  };
  const str = (s: string) => Buffer.from(`${s}\0`);
  const int = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const signature = headerOf([]);
  const header = headerOf([
    ...(epoch === undefined ? [] : [[1003, 4, int(epoch)] as [number, number, Buffer]]),
    [1000, 6, str(name)],
    [1001, 6, str(version)],
    [1002, 6, str(release)],
    [1022, 6, str(arch)],
  ]);
  return Buffer.concat([lead, signature, header, Buffer.from(`payload of ${name}`)]);
}

interface Entry {
  readonly name: string;
  readonly epoch?: number;
  readonly ver: string;
  readonly rel: string;
  readonly arch: string;
  readonly href: string;
  readonly bytes: Buffer;
  /** What the index says, when it lies. */
  readonly checksum?: string;
  readonly attrs?: string;
}

const entry = (
  name: string,
  ver: string,
  rel: string,
  arch = 'x86_64',
  more: Partial<Entry> = {},
): Entry => ({
  name,
  ver,
  rel,
  arch,
  href: `Packages/${name[0]}/${name}-${ver}-${rel}.${arch}.rpm`,
  bytes: rpmFile(name, ver, rel, arch, more.epoch),
  ...more,
});

const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('"', '&quot;');

function primaryXml(entries: readonly Entry[]): string {
  const packages = entries.map(
    (e) => `<package type="rpm">
  <name>${esc(e.name)}</name>
  <arch>${e.arch}</arch>
  <version epoch="${e.epoch ?? 0}" ver="${esc(e.ver)}" rel="${esc(e.rel)}"/>
  <checksum type="sha256" pkgid="YES">${e.checksum ?? sha256(e.bytes)}</checksum>
  <summary>A &lt;tiny&gt; package &amp; more</summary>
  <description>Lists &lt;/package&gt; trees.</description>
  <packager>Red Hat, Inc. &lt;http://bugzilla.redhat.com/bugzilla&gt;</packager>
  <url>https://example.org/</url>
  <time file="1700000000" build="1690000000"/>
  <size package="${e.bytes.length}" installed="98765" archive="99000"/>
  <location ${e.attrs ?? ''}href="${esc(e.href)}"/>
  <format>
    <rpm:license>GPL-2.0-or-later</rpm:license>
    <rpm:provides>
      <rpm:entry name="${esc(e.name)}" flags="EQ" epoch="0" ver="99.0" rel="1"/>
    </rpm:provides>
    <file>/usr/bin/${esc(e.name)}</file>
  </format>
</package>`,
  );
  return `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="${entries.length}">
${packages.join('\n')}
</metadata>
`;
}

interface Repo {
  readonly files: Map<string, Buffer>;
}

/** A repository's files: repomd.xml, its primary index (gz or zst), and the packages. */
function repository(
  entries: readonly Entry[],
  options: { compression?: 'gz' | 'zst'; tamperPrimary?: boolean; primaryHref?: string } = {},
): Repo {
  const xml = Buffer.from(primaryXml(entries));
  const compression = options.compression ?? 'gz';
  const packed = compression === 'gz' ? gzipSync(xml) : zstdCompressSync(xml);
  const href = options.primaryHref ?? `repodata/${sha256(packed)}-primary.xml.${compression}`;
  const repomd = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1700000000</revision>
  <data type="filelists">
    <checksum type="sha256">${'f'.repeat(64)}</checksum>
    <location href="repodata/x-filelists.xml.gz"/>
  </data>
  <data type="primary">
    <checksum type="sha256">${options.tamperPrimary ? sha256(Buffer.from('other')) : sha256(packed)}</checksum>
    <open-checksum type="sha256">${sha256(xml)}</open-checksum>
    <location href="${esc(href)}"/>
    <timestamp>1700000000</timestamp>
    <size>${packed.length}</size>
    <open-size>${xml.length}</open-size>
  </data>
</repomd>
`;
  const files = new Map<string, Buffer>([
    ['repodata/repomd.xml', Buffer.from(repomd)],
    [href, packed],
  ]);
  for (const e of entries) files.set(e.href, e.bytes);
  return { files };
}

let server: Server;
let base: string;
const repos = new Map<string, Repo>();
const requested: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requested.push(path);
    const [, name = '', ...rest] = path.split('/');
    const body = repos.get(name)?.files.get(rest.join('/'));
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const mirrorOf = (...names: string[]) =>
  new RpmMirror(names.map((n) => ({ id: n, baseUrl: `${base}/${n}/` })));

describe('RpmMirror', () => {
  it('lists what the repositories have and fetches a package verified by its checksum and header', async () => {
    const tree = entry('tree', '1.8.0', '10.el9');
    repos.set(
      'baseos',
      repository([tree, entry('tree', '1.8.0', '12.el9', 'i686'), entry('tree', '1.8.0', '10.el9', 'src')]),
    );
    repos.set(
      'appstream',
      repository([entry('nginx', '1.20.1', '14.el9_2.1', 'x86_64', { epoch: 1 })], { compression: 'zst' }),
    );
    const mirror = mirrorOf('baseos', 'appstream');
    expect(await mirror.available(['tree', 'nginx', 'htop'])).toEqual([
      { name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64', origin: 'baseos' },
      { name: 'tree', version: '1.8.0-12.el9', arch: 'i686', origin: 'baseos' },
      { name: 'nginx', version: '1:1.20.1-14.el9_2.1', arch: 'x86_64', origin: 'appstream' },
    ]);
    const { bytes, record } = await mirror.fetch({ name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64' });
    expect(Buffer.from(bytes).equals(tree.bytes)).toBe(true);
    expect(record).toMatchObject({ arch: 'x86_64', sha256: sha256(tree.bytes), repository: 'baseos' });
    // The epoch comes from the header's EPOCH tag; the zst index reads as the gz one.
    const nginx = await mirror.fetch({ name: 'nginx', version: '1:1.20.1-14.el9_2.1', arch: 'x86_64' });
    expect(readRpmHeader(nginx.bytes)).toEqual({
      name: 'nginx',
      version: '1:1.20.1-14.el9_2.1',
      arch: 'x86_64',
    });
  });

  it('resolves against the mirror and fetches into the package store, so a target with no route gets it', async () => {
    const stand: TestStore = await startTestStore();
    try {
      const tree = entry('tree', '1.8.0', '10.el9');
      repos.set('store-repo', repository([tree]));
      const mirror = mirrorOf('store-repo');
      const store = new PackageStore(new S3ObjectStore(stand.s3, stand.bucket), 'rpm/');
      const names = ['tree'];
      const target = new RecordedTransport(
        new Map<string, Answer>([
          ["rpm --eval '%{_arch}'", { stdout: 'x86_64\n' }],
          [
            "rpm -q --queryformat '%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n' -- 'tree'",
            { exitCode: 1, stdout: 'package tree is not installed\n' },
          ],
        ]),
      );
      const resolutions = await resolvePackages(
        [{ name: names[0] as string, version: '1.8.0-10.el9', manager: 'dnf' }],
        { target, store, mirror },
        { family: 'rpm', targetRepositories: 'offline' },
      );
      expect(resolutions[0]).toMatchObject({ status: 'exact', source: 'mirror', origin: 'store-repo' });
      const [stored] = await fetchIntoStore(resolutions, { store, mirror, family: 'rpm' });
      expect(stored).toMatchObject({
        family: 'rpm',
        name: 'tree',
        version: '1.8.0-10.el9',
        sha256: sha256(tree.bytes),
      });
      expect(Buffer.from(await store.read(stored as never)).equals(tree.bytes)).toBe(true);
      // Gone from the mirror since: the store still has it.
      repos.delete('store-repo');
      const again = await resolvePackages(
        [{ name: 'tree', version: '1.8.0-10.el9', manager: 'dnf' }],
        { target, store },
        { family: 'rpm', targetRepositories: 'offline' },
      );
      expect(again[0]).toMatchObject({ status: 'exact', source: 'store' });
    } finally {
      await stand.stop();
    }
  });

  it('refuses a package whose bytes do not hash to what the primary index says, and stores nothing', async () => {
    const tree = entry('tree', '1.8.0', '10.el9');
    const repo = repository([tree]);
    // The mirror serves other bytes of the same length than the index names.
    const tampered = Buffer.from(tree.bytes);
    const last = tampered.length - 1;
    tampered.writeUInt8(tampered.readUInt8(last) ^ 0xff, last);
    repo.files.set(tree.href, tampered);
    repos.set('tampered', repo);
    const put: unknown[] = [];
    const store = {
      location: 'memory://',
      versionsOf: async () => [],
      put: async (...args: unknown[]) => put.push(args),
    } as unknown as PackageStore;
    const resolution = {
      status: 'exact' as const,
      package: { name: 'tree', version: '1.8.0-10.el9', manager: 'dnf' as const },
      field: 'packages[0]',
      spec: { name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64' },
      source: 'mirror' as const,
      origin: 'tampered',
    };
    const caught = await fetchIntoStore([resolution], {
      store,
      mirror: mirrorOf('tampered'),
      family: 'rpm',
    }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(PackageVerificationError);
    expect((caught as Error).message).toMatch(
      /tree 1\.8\.0-10\.el9 \(x86_64\) from http:\/\/127\.0\.0\.1:\d+\/tampered\/Packages\/t\/tree-1\.8\.0-10\.el9\.x86_64\.rpm has sha256 [0-9a-f]{64} .* says [0-9a-f]{64} .*: not stored/,
    );
    expect(put).toEqual([]);
  });

  it('refuses a primary index that does not match the checksum repomd.xml gives', async () => {
    repos.set('bad-primary', repository([entry('tree', '1.8.0', '10.el9')], { tamperPrimary: true }));
    await expect(mirrorOf('bad-primary').available(['tree'])).rejects.toThrow(
      /repository bad-primary: repodata\/[0-9a-f]+-primary\.xml\.gz has sha256 [0-9a-f]{64} .*repomd\.xml says/,
    );
  });

  it('refuses bytes of the right checksum that are another package by their header', async () => {
    // The index lists "tree" but the file (and the checksum the index gives) is jq's.
    const jq = rpmFile('jq', '1.6', '15.el9', 'x86_64');
    repos.set('swapped', repository([entry('tree', '1.8.0', '10.el9', 'x86_64', { bytes: jq })]));
    await expect(
      mirrorOf('swapped').fetch({ name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64' }),
    ).rejects.toThrow(/is not that package: its header says jq 1\.6-15\.el9 \(x86_64\)/);
  });

  it('refuses a location that leaves the repository, and asks the server for nothing outside it', async () => {
    const secret = entry('tree', '1.8.0', '10.el9', 'x86_64', { href: 'Packages/../../secret/tree.rpm' });
    const absolute = entry('jq', '1.6', '15.el9', 'x86_64', { href: 'http://169.254.169.254/latest/jq.rpm' });
    const based = entry('htop', '3.2.1', '1.el9', 'x86_64', {
      attrs: 'xml:base="http://elsewhere.example/" ',
    });
    repos.set('escape', repository([secret, absolute, based]));
    const mirror = mirrorOf('escape');
    requested.length = 0;
    await expect(
      mirror.fetch({ name: 'tree', version: '1.8.0-10.el9', arch: 'x86_64' }),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('location "Packages/../../secret/tree.rpm" leaves the repository'),
    });
    await expect(mirror.fetch({ name: 'jq', version: '1.6-15.el9', arch: 'x86_64' })).rejects.toThrow(
      /is not a path relative to the repository/,
    );
    await expect(mirror.fetch({ name: 'htop', version: '3.2.1-1.el9', arch: 'x86_64' })).rejects.toThrow(
      /location "http:\/\/elsewhere\.example\/" is an xml:base, which is not followed/,
    );
    expect(requested.every((p) => p.startsWith('/escape/repodata/'))).toBe(true);
    // A primary index repomd.xml places outside the repository is refused as well.
    repos.set('escape-md', repository([], { primaryHref: '../baseos/repodata/primary.xml.gz' }));
    await expect(mirrorOf('escape-md').available(['tree'])).rejects.toThrow(/leaves the repository/);
    // xz and bz2, which Node cannot read, are refused by name rather than misread.
    repos.set('xz', repository([], { primaryHref: 'repodata/abc-primary.xml.xz' }));
    await expect(mirrorOf('xz').available(['tree'])).rejects.toThrow(
      /the primary index "repodata\/abc-primary\.xml\.xz" is compressed in a way Persona does not read/,
    );
  });

  it('drops index entries off the RPM grammar and refuses a spec off it before asking anything', async () => {
    const rows = parsePrimary(
      'r',
      primaryXml([
        entry('-rf', '1', '1'),
        entry('tree', '$(id)', '1'),
        entry('tree', '1.8.0', '10;reboot'),
        entry('tree', '1.8.0', '10.el9'),
      ]),
    );
    expect(rows.map((r) => `${r.name} ${r.version}`)).toEqual(['tree 1.8.0-10.el9']);
    requested.length = 0;
    const mirror = mirrorOf('baseos');
    await expect(mirror.fetch({ name: '--nodeps', version: '1-1', arch: 'x86_64' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
    await expect(mirror.fetch({ name: 'tree', version: "1-1'; id #", arch: 'x86_64' })).rejects.toMatchObject(
      {
        code: 'INVALID_INPUT',
      },
    );
    expect(requested).toEqual([]);
    expect(() => checkLocation('r', 'Packages/t/tree.rpm', '.rpm')).not.toThrow();
    expect(() => checkLocation('r', 'Packages/./tree.rpm', '.rpm')).toThrow(/leaves the repository/);
    expect(() => checkLocation('r', 'Packages/t/tree.rpm?x=1', '.rpm')).toThrow(/characters outside/);
  });

  it('refuses a repository that is not http or https, or whose URL carries credentials', () => {
    expect(() => new RpmMirror([{ id: 'local', baseUrl: 'file:///srv/repo/' }])).toThrow(
      /only http and https/,
    );
    expect(() => new RpmMirror([{ id: 'x', baseUrl: 'https://user:pw@mirror.example/' }])).toThrow(
      /credentials/,
    );
    expect(() => new RpmMirror([{ id: 'a b', baseUrl: 'https://mirror.example/' }])).toThrow(/not a repo id/);
  });
});
