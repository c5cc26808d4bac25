// A host captured without --path: a real Debian test host serving a site from its document root,
// a hand-started server working in /srv/app with a file held open there, and a service whose
// unit names its WorkingDirectory. `persona capture` finds those trees by itself, records them in
// the Profile with why, and their files are in the snapshot, restored byte for byte. The same
// host holds what discovery must refuse: a working directory with a newline in its name, an nginx
// root of /etc/../, a symlinked root, a tree over the size bound, ten thousand open files.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost, type HostCapture } from '../../core/capture/collect.js';
import { validateProfile } from '../../core/profile/io.js';
import type { Profile } from '../../core/profile/schema.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { installNginxSite } from '../hosts/software.js';
import { sshTransportTo } from '../hosts/transport.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const PAGE = '<h1>served from the document root</h1>\n';
const DB = 'rows of the application\n';
const MANY = 10_000;
const sha256 = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

let api: TestPersona;
let host: TestHost;
let restoreDir: string;

const persona = (...args: string[]) => runPersona(api, ...args);

beforeAll(async () => {
  api = await startTestPersona();
  restoreDir = mkdtempSync(join(tmpdir(), 'persona-discovery-'));
  host = await createHost({
    name: 'disc',
    hostname: 'web-d',
    setup: async (h) => {
      await installNginxSite(h, { page: PAGE });
      // A server nobody declared: it listens, works in /srv/app and holds a file there open.
      await h.writeFile('/srv/app/data/db.txt', DB);
      await h.writeFile('/srv/app/.env', 'DB_PASSWORD=hunter2-in-app-env\n');
      await h.run(
        `cd /srv/app && setsid perl -MIO::Socket::INET -e 'open(my $f, "<", "data/db.txt") or die; my $s = IO::Socket::INET->new(LocalPort => 8081, Listen => 5, ReuseAddr => 1) or die; sleep 100000' </dev/null >/dev/null 2>&1 &`,
      );
      // A service enabled for boot, read from its unit file (the host does not run systemd).
      await h.writeFile('/opt/shop/app.ini', 'workers = 2\n');
      await h.writeFile(
        '/etc/systemd/system/shop.service',
        '[Unit]\nDescription=shop\n[Service]\nWorkingDirectory=/opt/shop\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n',
      );
      await h.run(
        'mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sfn /etc/systemd/system/shop.service /etc/systemd/system/multi-user.target.wants/shop.service',
      );
      // What must be refused or bounded. Declared processes: copies of sleep under their own names.
      await h.run(
        'for n in oddwork manyfiles bigwork; do cp /bin/sleep /usr/local/bin/$n; done\n' +
          'd="$(printf \'/srv/odd\\nname\')"; mkdir -p "$d"; cd "$d" && setsid /usr/local/bin/oddwork 100000 </dev/null >/dev/null 2>&1 &\n' +
          'mkdir -p /srv/big && head -c 3145728 /dev/urandom > /srv/big/blob && cd /srv/big && setsid /usr/local/bin/bigwork 100000 </dev/null >/dev/null 2>&1 &\n' +
          `mkdir -p /srv/many && cd /srv/many && bash -c 'for i in $(seq 1 ${MANY}); do : > f$i; done'\n` +
          `cd / && setsid bash -c 'ulimit -n 20000 || exit 1; for i in $(seq 1 ${MANY}); do exec {fd}< /srv/many/f$i; done; exec /usr/local/bin/manyfiles 100000' </dev/null >/dev/null 2>&1 &\n` +
          'mkdir -p /srv/real && echo real > /srv/real/index.html && ln -sfn /srv/real /srv/symlinked\n',
      );
      // An enabled site nginx never needs to load: read from its files all the same.
      await h.writeFile(
        '/etc/nginx/sites-available/hostile',
        'server {\n\tlisten 8089;\n\troot /etc/../;\n\tlocation /x { root /srv/symlinked; }\n\tlocation /y { root $document_root/y; }\n}\n',
      );
      await h.run('ln -sfn ../sites-available/hostile /etc/nginx/sites-enabled/hostile');
      // Wait until every process is there: the open files above all.
      await h.run(
        `for i in $(seq 1 100); do n=$(ls /proc/$(pgrep -x manyfiles)/fd 2>/dev/null | wc -l); [ "$n" -ge ${MANY} ] && ss -ltn | grep -q ':8081 ' && exit 0; sleep 0.1; done; exit 1`,
      );
    },
  });
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
  if (restoreDir) rmSync(restoreDir, { recursive: true, force: true });
}, 120_000);

describe('persona capture without --path', () => {
  let profile: Profile;

  it('records the document root, the working directory and the service tree in the Profile', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'disc',
      '--accept-new-host-key',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/found\s+.*\/srv\/app.*\/var\/www\/persona/);
    const { body } = await api.call('GET', '/profiles/disc');
    profile = validateProfile(body.profile);
    const paths = profile.spec.application.paths;
    expect(paths).toEqual(expect.arrayContaining(['/var/www/persona', '/srv/app', '/opt/shop']));
    for (const refused of ['/etc', '/srv/symlinked', '/', '/root', '/srv/app/data'])
      expect(paths).not.toContain(refused);
    expect(paths.some((p) => p.startsWith('/srv/odd'))).toBe(false);

    const why = new Map((profile.observed?.applicationTrees ?? []).map((t) => [t.path, t.reasons]));
    expect(why.get('/var/www/persona')).toContain('nginx root in /etc/nginx/sites-enabled/persona');
    expect(why.get('/srv/app')).toEqual(expect.arrayContaining(['working directory of perl (listening)']));
    expect(why.get('/opt/shop')).toEqual(['WorkingDirectory of shop.service']);

    // Listed and hashed like configuration; the credential file there is a secret, not content.
    const files = new Map(profile.spec.configuration.files.map((f) => [f.path, f]));
    expect(files.get('/var/www/persona/index.html')).toMatchObject({ hash: sha256(PAGE) });
    expect(files.get('/srv/app/data/db.txt')).toMatchObject({ hash: sha256(DB) });
    expect(files.get('/srv/app/.env')).toMatchObject({ sensitive: true });
    expect(JSON.stringify(body)).not.toContain('hunter2');
  });

  it('has the files of the discovered trees in the snapshot, restored byte for byte', async () => {
    const shown = await persona('--json', 'snapshot', 'show', '--host', 'disc');
    expect(shown.code, shown.stderr).toBe(0);
    const entries = (JSON.parse(shown.stdout).manifest.entries as { path: string }[]).map((e) => e.path);
    expect(entries).toEqual(
      expect.arrayContaining([
        'etc/nginx/sites-available/persona',
        'var/www/persona/index.html',
        'srv/app/data/db.txt',
        'opt/shop/app.ini',
      ]),
    );
    // Sealed apart, never in the snapshot.
    expect(entries).not.toContain('srv/app/.env');

    const restored = await persona('snapshot', 'restore', '--host', 'disc', join(restoreDir, 'tree'));
    expect(restored.code, restored.stderr).toBe(0);
    expect(readFileSync(join(restoreDir, 'tree', 'var/www/persona/index.html'), 'utf8')).toBe(PAGE);
    expect(readFileSync(join(restoreDir, 'tree', 'srv/app/data/db.txt'), 'utf8')).toBe(DB);
  });

  it('captures the unchanged host again as the same Profile version', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'disc',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/profile\s+disc version 1 \(unchanged\)/);
  });
});

describe('discovery on the same host, bounded', () => {
  let capture: HostCapture;
  const unknowns = () => capture.unknowns.filter((u) => u.section === 'appdata').map((u) => u.reason);

  beforeAll(async () => {
    const transport = sshTransportTo(host);
    try {
      capture = await captureHost(transport, {
        name: 'disc',
        capturedAt: new Date().toISOString(),
        application: { processes: ['oddwork', 'manyfiles', 'bigwork'] },
        discovery: { treeMaxBytes: 2 * 1024 * 1024 },
      });
    } finally {
      await transport.close();
    }
  }, 120_000);

  it('takes the folder of ten thousand open files once, with every file listed', () => {
    const paths = capture.profile.spec.application?.paths ?? [];
    expect(paths).toContain('/srv/many');
    const listed = (capture.profile.spec.configuration?.files ?? []).filter((f) =>
      f.path.startsWith('/srv/many/'),
    );
    expect(listed).toHaveLength(MANY);
    const many = capture.profile.observed?.applicationTrees?.find((t) => t.path === '/srv/many');
    expect(many?.reasons).toEqual(['files held open by manyfiles (application process)']);
  });

  it('names a tree over the size bound with its size and leaves it out', () => {
    expect(capture.profile.spec.application?.paths).not.toContain('/srv/big');
    expect(unknowns()).toContainEqual(
      expect.stringMatching(
        /^\/srv\/big \(found as working directory of bigwork \(application process\)\) holds 3\.\d MiB, over the bound of 2\.0 MiB/,
      ),
    );
  });

  it('drops a working directory with a newline, a root of /etc/.., a symlinked and a variable root', () => {
    const paths = capture.profile.spec.application?.paths ?? [];
    expect(paths.some((p) => p.startsWith('/srv/odd') || p === '/etc' || p === '/srv/symlinked')).toBe(false);
    const malformed = unknowns().find((u) => u.includes('left out as malformed')) ?? '';
    expect(malformed).toContain('"/srv/odd\\nname" (working directory of process');
    expect(malformed).toContain(
      '"/etc/.." (nginx root in /etc/nginx/sites-enabled/hostile) has a "." or ".." name',
    );
    expect(unknowns()).toContainEqual(expect.stringMatching(/^\/srv\/symlinked .* is a symbolic link/));
    expect(unknowns()).toContain(
      'nginx root "$document_root/y" in /etc/nginx/sites-enabled/hostile uses a variable: not followed',
    );
  });
});
