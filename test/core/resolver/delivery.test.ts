// The whole path on a real test host with no route out: resolve tree against it, fetch the exact
// version on the control machine (which reaches Debian's mirror) into Persona's package store,
// deliver it over SSH, find it installed at exactly that version; then again from the store
// alone, as after the mirror dropped the version. One host, one SSH connection.
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AptMirror, parseAptShow, parseMadison } from '../../../core/resolver/apt.js';
import { compareDebianVersions } from '../../../core/resolver/debian.js';
import { deliverPackages, fetchIntoStore } from '../../../core/resolver/deliver.js';
import {
  assertResolvable,
  resolvePackages,
  UnresolvablePackagesError,
} from '../../../core/resolver/resolve.js';
import { PackageStore } from '../../../core/resolver/store.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { LocalTransport } from '../../../core/transport/local.js';
import type { SshTransport } from '../../../core/transport/ssh.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';
import { startTestStore, type TestStore } from '../../support/snapshot-store.js';

// Small, one dependency (libc6, which every host has), and not in the test hosts' base image.
const PACKAGE = 'tree';

let host: TestHost;
let ssh: SshTransport;
let stand: TestStore;
let store: PackageStore;
let version: string;
const control = new LocalTransport();
const mirror = new AptMirror(control);

/**
 * The version of PACKAGE the control machine's apt offers. apt-get download needs package
 * lists: they are fetched here only when there are none (CI installs with apt-get update
 * already). Without a mirror this fails saying so, rather than letting the test pass.
 */
async function controlVersion(): Promise<string> {
  const lists = readdirSync('/var/lib/apt/lists').filter((f) => f.includes('_Packages'));
  if (lists.length === 0) {
    const update = await control.run('apt-get update -q', { timeoutMs: 300_000 });
    if (update.exitCode !== 0) {
      throw new Error(
        `the control machine has no apt package lists and apt-get update failed, so no package can be fetched into the store (it needs to reach Debian's mirror): ${update.stderr.trim()}`,
      );
    }
  }
  const found = parseMadison((await control.run(`apt-cache madison -- ${PACKAGE}`)).stdout)[0];
  if (!found) {
    throw new Error(
      `the control machine's apt knows no version of ${PACKAGE}: its package lists lack Debian's main archive`,
    );
  }
  return found.version;
}

/** The newest version the control machine's mirror offers, as a Profile's package. */
async function latestOnControl(name: string) {
  const versions = parseMadison((await control.run(`apt-cache madison -- ${name}`)).stdout).map(
    (a) => a.version,
  );
  const latest = versions.sort(compareDebianVersions).at(-1);
  if (!latest) throw new Error(`the control machine's apt knows no version of ${name}`);
  return { name, version: latest, manager: 'apt' as const };
}

beforeAll(async () => {
  version = await controlVersion();
  stand = await startTestStore();
  store = new PackageStore(new S3ObjectStore(stand.s3, stand.bucket));
  host = await createHost({ name: 'resolve' });
  ssh = sshTransportTo(host);
}, 600_000);

afterAll(async () => {
  await ssh?.close();
  await destroyAllHosts();
  await stand?.stop();
}, 120_000);

const wanted = () => [{ name: PACKAGE, version, manager: 'apt' as const }];
const installedVersion = async () => (await host.exec(`dpkg-query -W -f='\${Version}' -- ${PACKAGE}`)).stdout;
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own field syntax
const EVERY_PACKAGE = "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'";
const dpkgState = async () => (await host.run(EVERY_PACKAGE)).trim();

describe('packages for a host with no route out', () => {
  it('starts from a host without the package, whose apt lists name a mirror it cannot reach', async () => {
    expect((await host.exec(`command -v ${PACKAGE}`)).exitCode).not.toBe(0);
    expect((await host.exec('apt-get download -q -o Acquire::Retries=0 -- tree')).exitCode).not.toBe(0);
    // Its lists still claim the version: which is why such a target is resolved offline.
    const [claimed] = await resolvePackages(wanted(), { target: ssh });
    expect(claimed).toMatchObject({ status: 'exact', source: 'repository' });
  });

  it('resolves the captured version to the control machine’s mirror, changing nothing', async () => {
    const before = await dpkgState();
    const [tree] = await resolvePackages(
      wanted(),
      { target: ssh, store, mirror },
      { targetRepositories: 'offline' },
    );
    expect(tree).toMatchObject({ status: 'exact', source: 'mirror', spec: { name: PACKAGE, version } });
    expect(await dpkgState()).toBe(before);
  });

  it('fetches the exact version into the store, verified against the Packages index, and installs it', async () => {
    const resolutions = await resolvePackages(
      wanted(),
      { target: ssh, store, mirror },
      { targetRepositories: 'offline' },
    );
    assertResolvable(resolutions);
    const entries = await fetchIntoStore(resolutions, { store, mirror, family: 'deb' });
    const index = parseAptShow(
      (await control.run(`apt-cache show --no-all-versions -- ${PACKAGE}=${version}`)).stdout,
    );
    expect(entries).toEqual([
      expect.objectContaining({ name: PACKAGE, version, sha256: index?.sha256, size: index?.size }),
    ]);
    await deliverPackages(ssh, 'deb', store, entries);
    expect(await installedVersion()).toBe(version);
    expect((await host.exec(`${PACKAGE} --version`)).stdout).toContain('tree v');
    // Nothing left behind in the target's temporary directory.
    expect((await host.run('ls -A /tmp')).trim()).toBe('');
    const [again] = await resolvePackages(
      wanted(),
      { target: ssh, store, mirror },
      { targetRepositories: 'offline' },
    );
    expect(again).toMatchObject({ status: 'installed', spec: { name: PACKAGE, version } });
  });

  it('installs the version from the store alone once the mirror has dropped it', async () => {
    await host.run(`dpkg -r -- ${PACKAGE}`);
    expect(await installedVersion()).toBe('');
    const gone = { family: 'deb' as const, available: async () => [] };
    const resolutions = await resolvePackages(
      wanted(),
      { target: ssh, store, mirror: gone },
      {
        targetRepositories: 'offline',
      },
    );
    expect(resolutions[0]).toMatchObject({ status: 'exact', source: 'store' });
    await deliverPackages(ssh, 'deb', store, await fetchIntoStore(resolutions, { store, family: 'deb' }));
    expect(await installedVersion()).toBe(version);
  });

  it('installs nothing when a delivered package depends on one neither installed nor delivered', async () => {
    const jq = await latestOnControl('jq');
    const libjq1 = await latestOnControl('libjq1');
    const libonig5 = await latestOnControl('libonig5');
    const alone = await resolvePackages(
      [jq],
      { target: ssh, store, mirror },
      { targetRepositories: 'offline' },
    );
    const entries = await fetchIntoStore(alone, { store, mirror, family: 'deb' });
    const before = await dpkgState();
    await expect(deliverPackages(ssh, 'deb', store, entries)).rejects.toMatchObject({
      code: 'TRANSPORT',
      message: expect.stringMatching(/unmet dependencies.*libjq1/),
    });
    expect(await dpkgState()).toBe(before);
    expect((await host.run('ls -A /tmp')).trim()).toBe('');
    // Delivered together, they configure together.
    const all = await resolvePackages(
      [jq, libjq1, libonig5],
      { target: ssh, store, mirror },
      {
        targetRepositories: 'offline',
      },
    );
    await deliverPackages(ssh, 'deb', store, await fetchIntoStore(all, { store, mirror, family: 'deb' }));
    expect((await host.run('printf \'{"a":[1,2]}\' | jq -c .a')).trim()).toBe('[1,2]');
    const again = await resolvePackages(
      [jq, libjq1, libonig5],
      { target: ssh, store },
      { targetRepositories: 'offline' },
    );
    expect(again.map((r) => r.status)).toEqual(['installed', 'installed', 'installed']);
  });

  it('fails a plan with an unresolvable package before any change, naming it; offers the nearest otherwise', async () => {
    await host.run(`dpkg -r -- ${PACKAGE}`);
    const before = await dpkgState();
    const resolutions = await resolvePackages(
      [
        { name: PACKAGE, version: '2.0.9-1', manager: 'apt' },
        { name: 'persona-no-such-package', version: '1.0-1', manager: 'apt' },
      ],
      { target: ssh, store, mirror },
      { targetRepositories: 'offline' },
    );
    expect(resolutions[0]).toMatchObject({
      status: 'nearest',
      spec: { version },
      reason: expect.stringContaining(`${version} is the nearest newer version`),
    });
    expect(() => assertResolvable(resolutions)).toThrow(UnresolvablePackagesError);
    expect(() => assertResolvable(resolutions)).toThrow(
      /"persona-no-such-package" "1\.0-1" \(no version of persona-no-such-package/,
    );
    expect(await dpkgState()).toBe(before);
  });
});
