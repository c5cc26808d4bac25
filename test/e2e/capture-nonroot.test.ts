// A capture by an ordinary user: a real Debian host reached over SSH as a user without any
// privilege. The capture succeeds, the Profile is valid, and what only root may read is named
// as unknown with the reason, never silently left out.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateProfile } from '../../core/profile/io.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { addUser, writeEnvironmentFile } from '../hosts/software.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let host: TestHost;

interface Unknown {
  readonly section: string;
  readonly reason: string;
}

const capture = (...extra: string[]) =>
  runPersona(
    api,
    '--json',
    'capture',
    `ssh://capture@${host.address}`,
    '--key',
    host.privateKeyPath,
    '--name',
    'app-b',
    '--process',
    'shop-api',
    ...extra,
  );

beforeAll(async () => {
  api = await startTestPersona();
  host = await createHost({
    name: 'nonroot',
    hostname: 'app-b',
    setup: async (h) => {
      await addUser(h, 'capture', { uid: 1100, authorizedKey: h.publicKey });
      await addUser(h, 'shop', { uid: 1101 });
      // A root-only configuration file and directory, and a readable file with a credential line.
      await h.writeFile('/etc/shop/db.conf', 'host = db\npassword = hunter2-root-only\n', 0o600);
      await h.run('mkdir -p -m 700 /etc/shop/keys && echo k > /etc/shop/keys/signing');
      await writeEnvironmentFile(
        h,
        '/etc/default/shop-api',
        { PORT: '8080', DB_PASSWORD: 'hunter2-in-a-file' },
        0o644,
      );
      // The application runs as its own user, with a credential in its environment.
      await h.run('cp /bin/sleep /usr/local/bin/shop-api');
      await h.run(
        'cd / && DB_PASSWORD=hunter2-in-env setsid setpriv --reuid=shop --regid=shop --init-groups /usr/local/bin/shop-api 100000 >/dev/null 2>&1 &',
      );
    },
  });
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

describe('persona capture as a user other than root', () => {
  let unknowns: Unknown[] = [];
  const reasonsOf = (section: string) => unknowns.filter((u) => u.section === section).map((u) => u.reason);

  it('succeeds and records a valid Profile', async () => {
    const r = await capture('--accept-new-host-key');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const op = JSON.parse(r.stdout);
    expect(op).toMatchObject({ status: 'SUCCEEDED', result: { profile: { name: 'app-b', version: 1 } } });
    unknowns = op.result.unknowns;

    const { body } = await api.call('GET', '/profiles/app-b');
    const profile = validateProfile(body.profile);
    expect(profile.spec.os).toMatchObject({ distribution: 'debian', hostname: 'app-b' });
    expect(profile.spec.security.users.map((u) => u.name)).toEqual(
      expect.arrayContaining(['capture', 'shop']),
    );
    expect(profile.spec.processes.map((p) => p.name)).toContain('shop-api');
  });

  it('says who captured, and names what only root may read as unknown because permission was denied', () => {
    expect(reasonsOf('capture')).toEqual([
      'captured as capture (uid 1100), not root: what only root may read is unknown (permission denied)',
    ]);
    expect(reasonsOf('shadow')).toEqual([
      'cannot read /etc/shadow: permission denied (capture as root): password states unknown',
    ]);
    expect(reasonsOf('environ')).toEqual([
      expect.stringMatching(
        /^the environment of application process "shop-api" \(pid \d+\) could not be read: permission denied/,
      ),
    ]);
    expect(reasonsOf('files')).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\d+ files could not be read: permission denied \(capture as root\): /),
        expect.stringMatching(
          /^\d+ director(y|ies) could not be listed: permission denied \(capture as root\): /,
        ),
      ]),
    );
    expect(reasonsOf('sudoers')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^cannot read \/etc\/sudoers: permission denied/)]),
    );
    expect(reasonsOf('firewall')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^nft list ruleset failed: permission denied/)]),
    );
    expect(reasonsOf('sshkeys')).toEqual(
      expect.arrayContaining([
        'cannot read the authorized keys of root (/root): permission denied (capture as root)',
      ]),
    );
    // /var/cache/ldconfig is root's alone.
    expect(reasonsOf('du')).toEqual(
      expect.arrayContaining([
        'parts of /var/cache could not be read: permission denied (capture as root): its size and file count are lower bounds',
      ]),
    );
    expect(reasonsOf('snapshot')).toEqual([
      expect.stringMatching(/could not be read for the snapshot: permission denied \(capture as root\)/),
    ]);
  });

  it('leaves out what it could not read, keeps nothing of it empty or invented, and no secret in clear', async () => {
    const { body } = await api.call('GET', '/profiles/app-b');
    const files = body.profile.spec.configuration.files as {
      path: string;
      hash?: string;
      secretRef?: unknown;
    }[];
    const paths = files.map((f) => f.path);
    expect(paths).not.toContain('/etc/shop/db.conf');
    expect(paths).not.toContain('/etc/shadow');
    expect(paths).not.toContain('/etc/shop/keys/signing');
    // What it could read is there: the readable file with a credential line, as a secret with a
    // keyed hash.
    expect(files.find((f) => f.path === '/etc/default/shop-api')).toMatchObject({
      hash: expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/),
      secretRef: { provider: 'local' },
    });
    // The application's environment could not be read: none of it is in the Profile as empty.
    const env = body.profile.spec.configuration.env as { scope?: string }[];
    expect(env.filter((e) => e.scope === 'shop-api')).toEqual([]);

    expect(JSON.stringify(body)).not.toMatch(/hunter2/);
    const dynamo = readFileSync(join(api.dataDir, 'dynamodb', 'shared-local-instance.db'));
    expect(dynamo.includes('hunter2')).toBe(false);
  });

  it('makes no new Profile version when the host has not changed', async () => {
    const r = await capture();
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).result.profile).toMatchObject({ version: 1, created: false });
    const versions = await api.call('GET', '/profiles/app-b/versions');
    expect(versions.body.items).toHaveLength(1);
  });
});
