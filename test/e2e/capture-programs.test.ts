// Programs no package owns, on real Debian test hosts: a listening perl script in
// /usr/local/bin and an enabled service whose ExecStart= is a link into /opt are captured
// without --path as application paths, with their mode and owner, while what packages bring
// (sshd, perl) is not; a clone of that host then starts the script, which it would otherwise not
// have. A second host holds what must be handled as data: a program whose path has spaces and a
// command substitution, one whose path has a newline, links into /etc/shadow and /etc/machine-id,
// a link loop, a missing program, and programs over the count and size bounds.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost, type HostCapture } from '../../core/capture/collect.js';
import { parseSections } from '../../core/capture/sections.js';
import type { Operation } from '../../core/operation/schema.js';
import { validateProfile } from '../../core/profile/io.js';
import type { Profile } from '../../core/profile/schema.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { addUser } from '../hosts/software.js';
import { sshTransportTo } from '../hosts/transport.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const SHOP_API = `#!/usr/bin/perl
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
  my $line = <$c>;
  print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nshop-api ok\\n";
  close $c;
}
`;
const WORKER = '#!/bin/sh\nexec sleep 100000\n';
const ODD = '/opt/odd dir/srv $(touch PWNED) `touch PWNED`';
const listener = (port: number) =>
  `-MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalPort => ${port}, Listen => 5, ReuseAddr => 1) or die; sleep 100000'`;
const unit = (exec: string) =>
  `[Unit]\nDescription=test\n[Service]\nExecStart=${exec}\n[Install]\nWantedBy=multi-user.target\n`;
const sha256 = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

let api: TestPersona;
let shop: TestHost;
let target: TestHost;
let odd: TestHost;

const persona = (...args: string[]) => runPersona(api, ...args);

/** Writes unit files under /etc/systemd/system and enables them (the host does not run systemd). */
async function enableUnits(h: TestHost, units: Record<string, string>): Promise<void> {
  for (const [name, exec] of Object.entries(units)) {
    await h.writeFile(`/etc/systemd/system/${name}.service`, unit(exec));
    await h.run(
      `mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sfn /etc/systemd/system/${name}.service /etc/systemd/system/multi-user.target.wants/${name}.service`,
    );
  }
}

beforeAll(async () => {
  api = await startTestPersona();
  [shop, target, odd] = await Promise.all([
    createHost({
      name: 'pshop',
      hostname: 'shop-a',
      setup: async (h) => {
        await addUser(h, 'shop', { uid: 1001 });
        await h.writeFile('/usr/local/bin/shop-api', SHOP_API);
        await h.run('chown root:shop /usr/local/bin/shop-api && chmod 0750 /usr/local/bin/shop-api');
        await h.writeFile('/opt/shopw/bin/worker', WORKER, 0o755);
        await h.run('ln -sfn ../../../opt/shopw/bin/worker /usr/local/bin/shop-worker');
        await enableUnits(h, { 'shop-worker': '/usr/local/bin/shop-worker --queue jobs' });
        await h.run(
          'cd / && setsid /usr/local/bin/shop-api </dev/null >/dev/null 2>&1 &\n' +
            "for i in $(seq 1 300); do ss -ltn | grep -q ':8080 ' && exit 0; sleep 0.1; done; ss -ltn >&2; exit 1",
        );
      },
    }),
    createHost({ name: 'ptarget', hostname: 'shop-b' }),
    createHost({
      name: 'podd',
      hostname: 'odd-c',
      setup: async (h) => {
        await h.writeFile(
          '/root/setup.sh',
          [
            `odd='${ODD}'`,
            `nl="$(printf '/opt/nl/bad\\nname')"`,
            'mkdir -p "/opt/odd dir" /opt/nl',
            'cp /usr/bin/perl "$odd"',
            'cp /usr/bin/perl "$nl"',
            'cp /bin/sleep /usr/local/bin/helper',
            'ln -sfn /etc/shadow /usr/local/bin/shadowy',
            'ln -sfn /etc/machine-id /usr/local/bin/whoami-id',
            'ln -sfn /usr/local/bin/loop-b /usr/local/bin/loop-a',
            'ln -sfn /usr/local/bin/loop-a /usr/local/bin/loop-b',
            'cd /',
            `setsid "$odd" ${listener(8083)} </dev/null >/dev/null 2>&1 &`,
            `setsid "$nl" ${listener(8084)} </dev/null >/dev/null 2>&1 &`,
            `setsid perl ${listener(8085)} </dev/null >/dev/null 2>&1 &`,
            'for i in $(seq 1 300); do n=$(ss -ltn | grep -c -E \':808[345] \'); [ "$n" -ge 3 ] && exit 0; sleep 0.1; done; ss -ltn >&2; exit 1',
            '',
          ].join('\n'),
        );
        await h.run('sh /root/setup.sh');
        await enableUnits(h, {
          shadowy: '/usr/local/bin/shadowy',
          ident: '/usr/local/bin/whoami-id',
          loop: '/usr/local/bin/loop-a',
          missing: '/usr/local/sbin/not-there',
          owned: '/bin/true',
          helper: '/usr/local/bin/helper 100000',
        });
      },
    }),
  ]);
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

const lastClone = async () =>
  (await api.call('GET', '/operations?kind=clone&limit=1')).body.items[0] as Operation;

describe('capture of a host running a program no package owns', () => {
  let profile: Profile;

  it('lists the listening script and the service program, with the link to it, as application paths', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${shop.address}`,
      '--key',
      shop.privateKeyPath,
      '--name',
      'shop',
      '--process',
      'shop-api',
      '--accept-new-host-key',
    );
    expect(r.code, r.stderr).toBe(0);
    const { body } = await api.call('GET', '/profiles/shop');
    profile = validateProfile(body.profile);
    const paths = profile.spec.application.paths;
    expect(paths).toEqual(
      expect.arrayContaining([
        '/usr/local/bin/shop-api',
        '/usr/local/bin/shop-worker',
        '/opt/shopw/bin/worker',
      ]),
    );
    // What packages bring is the packages' to install: perl runs the script, sshd listens.
    for (const owned of ['/usr/bin/perl', '/usr/sbin/sshd', '/bin/sh', '/usr/bin/dash'])
      expect(paths).not.toContain(owned);
    expect(paths.filter((p) => p.startsWith('/usr/'))).toHaveLength(2);

    const why = new Map((profile.observed?.applicationTrees ?? []).map((t) => [t.path, t.reasons]));
    expect(why.get('/usr/local/bin/shop-api')).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^script shop-api \(listening, application process\) runs$/),
      ]),
    );
    expect(why.get('/opt/shopw/bin/worker')).toEqual(['ExecStart of shop-worker.service']);
    expect(why.get('/usr/local/bin/shop-worker')).toEqual([
      'link to /opt/shopw/bin/worker: ExecStart of shop-worker.service',
    ]);

    // Listed like configuration, with the mode and owner the clone gives it.
    const files = new Map(profile.spec.configuration.files.map((f) => [f.path, f]));
    expect(files.get('/usr/local/bin/shop-api')).toMatchObject({
      type: 'file',
      hash: sha256(SHOP_API),
      mode: '0750',
      owner: 'root',
      group: 'shop',
    });
    expect(files.get('/usr/local/bin/shop-worker')).toMatchObject({
      type: 'symlink',
      target: '../../../opt/shopw/bin/worker',
    });
    expect(files.get('/opt/shopw/bin/worker')).toMatchObject({ hash: sha256(WORKER) });
    // Started as the kernel started it, by its own path: the clone's process has its name.
    expect(profile.spec.application.startCommands).toContainEqual(
      expect.objectContaining({ name: 'shop-api', command: '/usr/local/bin/shop-api' }),
    );
  }, 300_000);

  it('has the programs in the snapshot', async () => {
    const shown = await persona('--json', 'snapshot', 'show', '--host', 'shop');
    expect(shown.code, shown.stderr).toBe(0);
    const entries = (JSON.parse(shown.stdout).manifest.entries as { path: string }[]).map((e) => e.path);
    expect(entries).toEqual(
      expect.arrayContaining(['usr/local/bin/shop-api', 'usr/local/bin/shop-worker', 'opt/shopw/bin/worker']),
    );
    expect(entries).not.toContain('usr/bin/perl');
  }, 120_000);

  it('captures the unchanged host again as the same Profile version', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${shop.address}`,
      '--key',
      shop.privateKeyPath,
      '--name',
      'shop',
      '--process',
      'shop-api',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/profile\s+shop version 1 \(unchanged\)/);
  }, 120_000);

  it('clones onto a bare host whose Start then runs the program, landed with its mode and owner', async () => {
    expect((await target.exec('ls /usr/local/bin/shop-api')).exitCode).not.toBe(0);
    const r = await persona(
      'clone',
      'shop',
      '--to',
      `ssh://root@${target.address}`,
      '--key',
      target.privateKeyPath,
      '--target-name',
      'shopb',
      '--accept-new-host-key',
    );
    const op = await lastClone();
    expect(op.status, `${r.stderr}\n${r.stdout}\n${JSON.stringify(op.error)}`).toBe('SUCCEEDED');
    expect(op.steps.find((s) => s.name === 'start')?.status).toBe('SUCCEEDED');
    expect((await target.exec(`curl -s --max-time 5 http://${target.address}:8080/`)).stdout).toBe(
      'shop-api ok\n',
    );
    expect((await target.exec('stat -c "%a %U:%G" /usr/local/bin/shop-api')).stdout.trim()).toBe(
      '750 root:shop',
    );
    expect((await target.exec('readlink /usr/local/bin/shop-worker')).stdout.trim()).toBe(
      '../../../opt/shopw/bin/worker',
    );
  }, 600_000);
});

describe('programs that must be handled as data', () => {
  let capture: HostCapture;
  const unknowns = () => capture.unknowns.filter((u) => u.section === 'appdata').map((u) => u.reason);
  const captureOdd = async (discovery: { maxPrograms?: number; programMaxBytes?: number } = {}) => {
    const transport = sshTransportTo(odd);
    try {
      return await captureHost(transport, { name: 'odd', capturedAt: new Date().toISOString(), discovery });
    } finally {
      await transport.close();
    }
  };

  beforeAll(async () => {
    capture = await captureOdd();
  }, 120_000);

  it('captures a program whose path holds spaces and a command substitution as the path it is, running nothing', async () => {
    expect(capture.profile.spec.application?.paths).toContain(ODD);
    const perl = (await odd.exec('sha256sum /usr/bin/perl')).stdout.split(' ')[0];
    const file = capture.profile.spec.configuration?.files?.find((f) => f.path === ODD);
    expect(file?.hash).toBe(`sha256:${perl}`);
    expect((await odd.exec('find / -xdev -name PWNED')).stdout).toBe('');
  });

  it('refuses a program path with a newline, and links into /etc/shadow and /etc/machine-id, naming them', () => {
    const paths = capture.profile.spec.application?.paths ?? [];
    for (const p of paths) expect(p).not.toMatch(/\n|shadow|machine-id|whoami-id|loop-|not-there/);
    const all = unknowns().join('\n');
    expect(all).toContain('"/opt/nl/bad\\nname" (program of bad');
    expect(all).toContain('contains a control character');
    expect(all).toContain(
      '/usr/local/bin/shadowy (ExecStart of shadowy.service) leads to /etc/shadow, which is named like a credential',
    );
    expect(all).toContain(
      '/usr/local/bin/whoami-id (ExecStart of ident.service) leads to /etc/machine-id, which is an identity file or one another part of the Profile writes',
    );
    expect(all).toContain('/usr/local/sbin/not-there (ExecStart of missing.service) is not on the host');
    expect(all).toContain(
      '/usr/local/bin/loop-a (ExecStart of loop.service) is not on the host (or leads nowhere)',
    );
  });

  /** A capture of the odd host that records every run; `withoutFirst` takes the first run's programs section out. */
  const recorded = async (withoutFirst: boolean) => {
    const transport = sshTransportTo(odd);
    const runs: { env: Record<string, string>; stdout: string }[] = [];
    const run = transport.run.bind(transport);
    transport.run = async (command, options) => {
      const r = await run(command, options);
      runs.push({ env: { ...options?.env }, stdout: r.stdout });
      if (!withoutFirst || runs.length > 1) return r;
      const nonce = /^@@persona:begin (\S+) /.exec(r.stdout)?.[1] ?? '';
      const from = r.stdout.indexOf(`\n@@persona:${nonce}:section programs\n`);
      const end = r.stdout.indexOf(`\n@@persona:${nonce}:end programs `, from);
      const to = r.stdout.indexOf('\n', end + 1);
      expect(from).toBeGreaterThan(0);
      return { ...r, stdout: r.stdout.slice(0, from) + r.stdout.slice(to) };
    };
    try {
      const c = await captureHost(transport, { name: 'odd', capturedAt: new Date().toISOString() });
      return { capture: c, runs };
    } finally {
      await transport.close();
    }
  };

  it('resolves in the first run every program the processes and services name, never the capture’s own words', async () => {
    const { capture: once, runs } = await recorded(false);
    // No run of its own to resolve programs: the first one did, ODD (spaces and all) included.
    expect(runs.some((r) => r.env.PERSONA_PROGRAMS !== undefined)).toBe(false);
    const first = parseSections(runs[0]?.stdout ?? '').get('programs');
    const resolved = new Set(
      (first?.parts ?? []).filter((p) => /^prog \d/.test(p.header)).map((p) => p.text),
    );
    for (const p of [ODD, '/usr/local/bin/helper', '/usr/local/bin/shadowy', '/usr/bin/perl'])
      expect(resolved.has(p), p).toBe(true);
    // The script's own command line names these; no process of the host does.
    for (const p of ['/etc/shadow', '/etc/os-release', '/var/lib/persona-agent/sample', '/proc/uptime'])
      expect(resolved.has(p), p).toBe(false);
    // Decided as when a second run resolves every candidate, as a host whose first run resolved
    // none has it.
    const { capture: twice, runs: more } = await recorded(true);
    expect(more[1]?.env.PERSONA_PROGRAMS?.split('\n')).toContain(ODD);
    expect(once.profile.spec.application?.paths).toEqual(twice.profile.spec.application?.paths);
    expect(once.profile.observed?.applicationTrees).toEqual(twice.profile.observed?.applicationTrees);
    expect(once.unknowns.filter((u) => u.section === 'appdata')).toEqual(
      twice.unknowns.filter((u) => u.section === 'appdata'),
    );
  }, 120_000);

  it('leaves out what packages own and keeps what they do not', () => {
    const paths = capture.profile.spec.application?.paths ?? [];
    for (const owned of ['/usr/bin/perl', '/usr/sbin/sshd', '/bin/true', '/usr/bin/true'])
      expect(paths).not.toContain(owned);
    expect(paths).toContain('/usr/local/bin/helper');
  });

  it('names programs beyond the count bound and over the size bound, and snapshots neither', async () => {
    const counted = await captureOdd({ maxPrograms: 1 });
    const paths = counted.profile.spec.application?.paths ?? [];
    expect(paths).toContain(ODD);
    expect(paths).not.toContain('/usr/local/bin/helper');
    expect(counted.unknowns.map((u) => u.reason)).toContainEqual(
      expect.stringMatching(
        /^1 more program beyond the bound of 1 not snapshotted .*\/usr\/local\/bin\/helper/,
      ),
    );
    const sized = await captureOdd({ programMaxBytes: 1024 * 1024 });
    expect(sized.profile.spec.application?.paths).not.toContain(ODD);
    expect(sized.profile.spec.application?.paths).toContain('/usr/local/bin/helper');
    expect(sized.unknowns.map((u) => u.reason)).toContainEqual(
      expect.stringMatching(/^1 program over the bound of 1\.0 MiB not snapshotted .* holds 3\.6 MiB$/),
    );
  }, 240_000);
});
