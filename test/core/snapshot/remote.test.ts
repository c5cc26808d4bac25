// Restoring a snapshot onto a real test host over SSH: the store on the real stand-ins, the
// tree restored through the host's own GNU tar, then compared with a listing taken on the host.
// The hostile cases are a target whose directories are symlinks out of it (and a host whose
// environment asks tar to keep them), a file changed on the host after the restore, and names
// the host's tools could not carry.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { comparePaths } from '../../../core/snapshot/manifest.js';
import { restoreToHost, verifyOnHost } from '../../../core/snapshot/remote.js';
import type { SnapshotStore } from '../../../core/snapshot/store.js';
import { directorySource } from '../../../core/snapshot/tree.js';
import { shellQuote } from '../../../core/transport/shell.js';
import type { SshTransport } from '../../../core/transport/ssh.js';
import type { RunOptions, StreamOptions, Transport } from '../../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';
import { rawSource } from '../../support/hostile-trees.js';
import {
  bytesFrom,
  describeTree,
  startTestStore,
  type TestStore,
  type TreeLine,
} from '../../support/snapshot-store.js';

let ts: TestStore;
let store: SnapshotStore;
let host: TestHost;
let ssh: SshTransport;
let counter = 0;

beforeAll(async () => {
  expect(process.getuid?.(), 'owners are restored as root').toBe(0);
  ts = await startTestStore();
  store = await ts.open();
  host = await createHost({ name: 'restore' });
  ssh = sshTransportTo(host);
}, 600_000);

afterAll(async () => {
  await ssh?.close();
  await destroyAllHosts();
  await ts?.stop();
});

const NAMES = {
  space: 'with space/a file',
  newline: 'new\nline',
  backslash: 'back\\slash',
  dash: '-rf',
  unicode: 'ünïcødé ✓',
  long: `${'l'.repeat(200)}`,
} as const;

/** Files, directories, symlinks, hard links, a fifo, odd names, modes and owners. */
async function buildTree(): Promise<string> {
  const root = join(ts.dir, `tree-${counter++}`);
  const file = async (path: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0) => {
    await fs.writeFile(join(root, path), content);
    await fs.chmod(join(root, path), mode);
    await fs.chown(join(root, path), uid, gid);
  };
  const dir = async (path: string, mode = 0o755, uid = 0, gid = 0) => {
    mkdirSync(join(root, path), { recursive: true });
    await fs.chmod(join(root, path), mode);
    await fs.chown(join(root, path), uid, gid);
  };
  await dir('');
  await dir('etc');
  await file('etc/app.conf', 'listen 8080\n', 0o640, 0, 1234);
  await file('etc/secret', 'token\n', 0o600, 1234, 1234);
  await fs.symlink('app.conf', join(root, 'etc/link'));
  await dir('srv');
  await dir('srv/site', 0o2775, 33, 33);
  await file('srv/site/index.html', '<h1>hi</h1>\n', 0o644, 33, 33);
  await fs.link(join(root, 'srv/site/index.html'), join(root, 'srv/site/copy.html'));
  await file('srv/site/big.bin', bytesFrom(7, 3 * 1024 * 1024));
  await file('srv/empty', '');
  await dir('bin');
  await file('bin/tool', '#!/bin/sh\necho tool\n', 0o4755);
  await dir('tmp', 0o1777);
  await dir('private', 0o700, 3_000_000, 3_000_001);
  await file('private/big-ids', 'ids beyond ustar\n', 0o600, 3_000_000, 3_000_001);
  await dir('with space');
  await file(NAMES.space, 'spaced\n');
  await file(NAMES.newline, 'a name with a newline\n');
  await file(NAMES.backslash, 'a backslash\n');
  await file(NAMES.dash, 'not an option\n');
  await file(NAMES.unicode, 'unicode\n');
  await file(NAMES.long, 'a long name\n');
  await fs.symlink('/etc/passwd', join(root, 'abs'));
  await fs.symlink('nowhere', join(root, 'dangling'));
  await dir('run');
  execFileSync('mkfifo', ['-m', '0620', join(root, 'run/fifo')]);
  return root;
}

/** What is in `target` on the host, in the form describeTree gives for the control side. */
async function hostTree(target: string): Promise<TreeLine[]> {
  const out = await host.run(
    `cd ${shellQuote(target)} && find . -mindepth 1 -printf '%P\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%l\\0%i\\0'`,
  );
  const sums = new Map<string, string>();
  const hashed = await host.run(
    `cd ${shellQuote(target)} && find . -type f -print0 | xargs -0r sha256sum -z --`,
  );
  for (const line of hashed.split('\0')) {
    const m = /^([0-9a-f]{64}) {2}\.\/([\s\S]*)$/.exec(line);
    if (m) sums.set(m[2] as string, m[1] as string);
  }
  const fields = out.split('\0');
  const raw: {
    path: string;
    y: string;
    mode: number;
    uid: number;
    gid: number;
    size: number;
    t: string;
    l: string;
    i: string;
  }[] = [];
  for (let i = 0; i + 9 <= fields.length; i += 9) {
    const [path = '', y = '', m = '', u = '', g = '', s = '', t = '', l = '', ino = ''] = fields.slice(
      i,
      i + 9,
    );
    raw.push({
      path,
      y,
      mode: Number.parseInt(m, 8),
      uid: Number(u),
      gid: Number(g),
      size: Number(s),
      t,
      l,
      i: ino,
    });
  }
  raw.sort((a, b) => comparePaths(a.path, b.path));
  const types: Record<string, string> = {
    f: 'file',
    d: 'dir',
    l: 'symlink',
    p: 'fifo',
    c: 'char',
    b: 'block',
  };
  const firstOfInode = new Map<string, string>();
  return raw.map((r) => {
    const [sec = '0', frac = ''] = r.t.split('.');
    const mtimeUs = (BigInt(sec) * 1_000_000n + BigInt(frac.padEnd(6, '0').slice(0, 6))).toString();
    if (r.y === 'f') {
      const first = firstOfInode.get(r.i);
      if (first !== undefined)
        return { path: r.path, type: 'hardlink', mode: r.mode, uid: r.uid, gid: r.gid, target: first };
      firstOfInode.set(r.i, r.path);
    }
    const line: TreeLine = { path: r.path, type: types[r.y] ?? r.y, mode: r.mode, uid: r.uid, gid: r.gid };
    if (r.y !== 'l') line.mtimeUs = mtimeUs;
    if (r.y === 'l') line.target = r.l;
    if (r.y === 'f') {
      line.size = r.size;
      line.sha256 = sums.get(r.path) ?? 'unread';
    }
    return line;
  });
}

const controlTree = async (root: string) =>
  (await describeTree(root)).map(({ sparse: _sparse, ...line }) => line);

/** Everything about a directory on the host, status-change times included. */
const picture = (dir: string) =>
  host.run(
    `find ${shellQuote(dir)} -printf '%p %y %m %U %G %s %C@ %T@ %l\\n' | sort; find ${shellQuote(dir)} -type f -exec sha256sum {} + | sort`,
  );

const b2 = (text: string) => createHash('blake2b512').update(text).digest('hex');

describe('restoreToHost', () => {
  it('restores files, directories, links, a fifo, odd names, modes and owners exactly as the tree was', async () => {
    const src = await buildTree();
    const record = await store.create(directorySource(src), { host: 'remote-full' });
    const manifest = await store.manifest(record);
    const result = await restoreToHost(store, record, ssh, { target: '/srv/restored' });
    expect(result.failed).toEqual([]);
    expect(result.entries).toBe(manifest.entries.length);
    expect(result.sentBytes).toBeGreaterThan(3 * 1024 * 1024);
    const onHost = await hostTree('/srv/restored');
    expect(onHost).toEqual(await controlTree(src));
    // The odd names are there as themselves, not escaped or cut.
    for (const name of Object.values(NAMES)) expect(onHost.map((l) => l.path)).toContain(name);
    expect(onHost.find((l) => l.path === 'private/big-ids')).toMatchObject({
      uid: 3_000_000,
      gid: 3_000_001,
    });

    // The verification is not vacuous: on the intact restore it finds nothing, and each change
    // made on the host afterwards is named by its path.
    expect(await verifyOnHost(ssh, '/srv/restored', result.expected)).toEqual([]);
    await host.run(
      [
        'cd /srv/restored',
        "printf 'Z' | dd of=srv/site/big.bin bs=1 seek=1000 conv=notrunc status=none",
        'chmod 0644 etc/secret',
        'chown 0:0 etc/app.conf',
        'ln -sfn elsewhere etc/link',
        // copy.html comes first in path order, so index.html is the tree's hard link to it.
        'rm srv/site/index.html && cp -p srv/site/copy.html srv/site/index.html',
        `rm ${shellQuote(NAMES.newline)}`,
        'rm -r with\\ space && ln -s /tmp with\\ space',
      ].join(' && '),
    );
    const found = await verifyOnHost(ssh, '/srv/restored', result.expected);
    const reasons = Object.fromEntries(found.map((f) => [f.path, f.reason]));
    expect(Object.keys(reasons).sort()).toEqual(
      [
        'srv/site/big.bin',
        'etc/secret',
        'etc/app.conf',
        'etc/link',
        'srv/site/index.html',
        NAMES.newline,
        'with space',
        NAMES.space,
      ].sort(),
    );
    expect(reasons['srv/site/big.bin']).toMatch(
      /content differs on the host: BLAKE2b-512 [0-9a-f]{128}, not/,
    );
    expect(reasons['etc/secret']).toMatch(/mode 0644, not 0600/);
    expect(reasons['etc/app.conf']).toMatch(/owner 0:0, not 0:1234/);
    expect(reasons['etc/link']).toMatch(/points to "elsewhere", not "app.conf"/);
    expect(reasons['srv/site/index.html']).toMatch(/not a hard link/);
    expect(reasons[NAMES.newline]).toMatch(/missing/);
    expect(reasons['with space']).toMatch(/is a symlink on the host, not a directory/);
  }, 120_000);

  it('replaces symlinks out of the target where the snapshot has directories, without touching what they point to', async () => {
    const src = await buildTree();
    const record = await store.create(directorySource(src), { host: 'remote-links' });
    await host.run(
      [
        'mkdir -p /outside-canary-dir/site /srv/linked',
        'echo canary > /outside-canary-dir/app.conf',
        'echo canary > /outside-canary-dir/site/index.html',
        'echo canary > /outside-canary-dir/tool',
        'ln -s /outside-canary-dir /srv/linked/etc',
        'mkdir /srv/linked/srv && ln -s /outside-canary-dir /srv/linked/srv/site',
        'echo not-a-dir > /srv/linked/bin',
        'mkdir /srv/linked/tmp && ln -s /outside-canary-dir/tool /srv/linked/srv/empty',
      ].join(' && '),
    );
    const before = await picture('/outside-canary-dir');
    const result = await restoreToHost(store, record, ssh, { target: '/srv/linked' });
    expect(result.failed).toEqual([]);
    expect(await picture('/outside-canary-dir')).toBe(before);
    expect(await hostTree('/srv/linked')).toEqual(await controlTree(src));
  }, 120_000);

  it('sends the directories above a chosen subset, so a symlinked directory on the host is replaced, not written through', async () => {
    const src = await buildTree();
    const record = await store.create(directorySource(src), { host: 'remote-subset' });
    await host.run(
      'mkdir -p /outside-subset /srv/subset && echo canary > /outside-subset/app.conf && ln -s /outside-subset /srv/subset/etc',
    );
    const before = await picture('/outside-subset');
    const result = await restoreToHost(store, record, ssh, {
      target: '/srv/subset',
      paths: ['etc/app.conf'],
    });
    expect(result.failed).toEqual([]);
    expect(result.entries).toBe(2);
    expect(await picture('/outside-subset')).toBe(before);
    const onHost = await hostTree('/srv/subset');
    const want = (await controlTree(src)).filter((l) => l.path === 'etc' || l.path === 'etc/app.conf');
    expect(onHost).toEqual(want);
  }, 120_000);

  it('keeps to the target on a host whose environment asks tar to keep and write through links', async () => {
    const src = await buildTree();
    const record = await store.create(directorySource(src), { host: 'remote-env' });
    await host.run(
      'mkdir -p /outside-env /srv/env && echo canary > /outside-env/app.conf && ln -s /outside-env /srv/env/etc',
    );
    const before = await picture('/outside-env');
    const hostile = withEnv(ssh, { TAR_OPTIONS: '--keep-directory-symlink --overwrite' });
    const result = await restoreToHost(store, record, hostile, { target: '/srv/env' });
    expect(result.failed).toEqual([]);
    expect(await picture('/outside-env')).toBe(before);
    expect(await host.run('stat -c %F /srv/env/etc')).toBe('directory\n');
  }, 120_000);

  it('sends only what changed when told what the host holds', async () => {
    const src = await buildTree();
    const first = await store.create(directorySource(src), { host: 'remote-incremental' });
    const full = await restoreToHost(store, first, ssh, { target: '/srv/incremental' });
    expect(full.failed).toEqual([]);
    const changed = 'listen 9090\nworkers 4\n';
    await fs.writeFile(join(src, 'etc/app.conf'), changed);
    const second = await store.create(directorySource(src), { host: 'remote-incremental' });
    const again = await restoreToHost(store, second, ssh, {
      target: '/srv/incremental',
      existing: await store.manifest(first),
    });
    expect(again.failed).toEqual([]);
    // The file and its directory (a header) only; the 3 MiB file stays where it is.
    expect(again.entries).toBe(2);
    expect(again.bytes).toBe(Buffer.byteLength(changed));
    expect(again.sentBytes).toBeLessThan(16 * 1024);
    expect(again.unchanged).toBe(full.entries - 1);
    expect(await hostTree('/srv/incremental')).toEqual(await controlTree(src));
    expect(again.expected.find((x) => x.entry.path === 'etc/app.conf')?.digest).toEqual({
      algorithm: 'blake2b512',
      hex: b2(changed),
    });
  }, 120_000);

  it('checks content with sha256sum on a host without b2sum, and still names a file changed there', async () => {
    const src = join(ts.dir, `tree-${counter++}`);
    await fs.mkdir(join(src, 'etc'), { recursive: true });
    await fs.writeFile(join(src, 'etc/app.conf'), 'listen 8080\n');
    await fs.writeFile(join(src, 'etc/big.bin'), bytesFrom(7, 300_000));
    const record = await store.create(directorySource(src), { host: 'remote-no-b2sum' });
    // The host's own layer only (an overlay on the shared root filesystem): put back afterwards.
    await host.run('mv /usr/bin/b2sum /usr/bin/b2sum.away');
    try {
      const result = await restoreToHost(store, record, ssh, { target: '/srv/no-b2sum' });
      expect(result.failed).toEqual([]);
      const conf = result.expected.find((x) => x.entry.path === 'etc/app.conf');
      expect(conf?.digest).toEqual({
        algorithm: 'sha256',
        hex: createHash('sha256').update('listen 8080\n').digest('hex'),
      });
      expect(await hostTree('/srv/no-b2sum')).toEqual(await controlTree(src));
      await host.run(
        "cd /srv/no-b2sum && printf 'Z' | dd of=etc/big.bin bs=1 seek=5 conv=notrunc status=none",
      );
      const found = await verifyOnHost(ssh, '/srv/no-b2sum', result.expected);
      expect(found).toEqual([
        { path: 'etc/big.bin', reason: expect.stringMatching(/^content differs on the host: SHA-256 /) },
      ]);
    } finally {
      await host.run('mv /usr/bin/b2sum.away /usr/bin/b2sum');
    }
  }, 120_000);

  it('names a file whose snapshot data is damaged, restores the rest, and leaves no zero-filled file on the host', async () => {
    const own = await ts.open();
    const src = join(ts.dir, `tree-${counter++}`);
    mkdirSync(src);
    await fs.writeFile(join(src, 'good.txt'), 'intact\n');
    await own.create(directorySource(src), { host: 'remote-damaged' });
    const packs = async () => {
      const keys = new Set<string>();
      for await (const o of ts.deps().objects.list('snapshots/packs/')) keys.add(o.key);
      return keys;
    };
    const before = await packs();
    await fs.writeFile(join(src, 'data.bin'), bytesFrom(99, 700_000));
    await fs.link(join(src, 'data.bin'), join(src, 'link-to-data'));
    const record = await own.create(directorySource(src), { host: 'remote-damaged' });
    // The one pack the second snapshot added holds data.bin's chunks only.
    const key = [...(await packs())].find((k) => !before.has(k)) as string;
    const bytes = Buffer.from(await ts.deps().objects.get(key));
    bytes[100] = (bytes[100] as number) ^ 0xff;
    await ts.deps().objects.put(key, bytes);
    try {
      const result = await restoreToHost(await ts.open(), record, ssh, { target: '/srv/damaged' });
      expect(result.failed).toEqual([
        { path: 'data.bin', reason: expect.stringContaining(key), damaged: true },
        { path: 'link-to-data', reason: expect.stringContaining('link target was damaged'), damaged: true },
      ]);
      expect(await host.run('cd /srv/damaged && ls -A')).toBe('good.txt\n');
      expect(await host.run('cat /srv/damaged/good.txt')).toBe('intact\n');
    } finally {
      bytes[100] = (bytes[100] as number) ^ 0xff;
      await ts.deps().objects.put(key, bytes);
    }
  }, 120_000);

  it('refuses what it cannot restore faithfully before anything reaches the host', async () => {
    const record = await store.create(
      rawSource([
        { name: 'ok', type: 'file', content: 'fine\n' },
        { name: 'bad\uD800name', type: 'file', content: 'lone surrogate\n' },
      ]),
      { host: 'remote-refused' },
    );
    const refusal = await restoreToHost(store, record, ssh, { target: '/srv/refused' }).catch(
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(InvalidInputError);
    expect((refusal as InvalidInputError).issues[0]?.path).toBe('bad\uD800name');
    expect((refusal as Error).message).toMatch(/lone surrogate/);

    const src = await buildTree();
    const good = await store.create(directorySource(src), { host: 'remote-refused-paths' });
    const unknown = await restoreToHost(store, good, ssh, {
      target: '/srv/refused',
      paths: ['etc', 'nope'],
    }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(InvalidInputError);
    expect((unknown as InvalidInputError).issues[0]?.path).toBe('paths[1]');
    const relative = await restoreToHost(store, good, ssh, { target: 'srv/refused' }).catch(
      (e: unknown) => e,
    );
    expect(relative).toBeInstanceOf(InvalidInputError);
    expect((relative as InvalidInputError).issues[0]?.path).toBe('target');
    expect((await host.exec('test -e /srv/refused')).exitCode).toBe(1);
  }, 120_000);
});

/** The transport with variables added to every command's environment, as a host's own settings would. */
function withEnv(inner: Transport, env: Readonly<Record<string, string>>): Transport {
  return {
    target: inner.target,
    run: (command: string, options: RunOptions = {}) =>
      inner.run(command, { ...options, env: { ...env, ...options.env } }),
    stream: (command: string, options: StreamOptions = {}) =>
      inner.stream(command, { ...options, env: { ...env, ...options.env } }),
    putFile: (path, content, options) => inner.putFile(path, content, options),
    getFile: (path) => inner.getFile(path),
    close: () => inner.close(),
  };
}
