// Firewall, route, kernel module and package Changes on one real test host with no route out,
// journaled into DynamoDB Local, packages from Persona's package store in an S3-protocol
// server: each lands and shows on the host, a second apply changes nothing, a revert puts back
// exactly what was there, and a failure injected at the last Change of a Delta holding all of
// them leaves the host as it was.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Change, Delta, summarize } from '../../../core/delta/changes.js';
import { type ApplyDeps, applyChanges, revertOperation } from '../../../core/orchestrator/apply.js';
import type { Executor } from '../../../core/orchestrator/executors/executor.js';
import { debianExecutors, type Executors } from '../../../core/orchestrator/executors/index.js';
import { DynamoJournal } from '../../../core/orchestrator/journal.js';
import { AptMirror, parseMadison } from '../../../core/resolver/apt.js';
import { PackageStore } from '../../../core/resolver/store.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LocalTransport } from '../../../core/transport/local.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

// Small, one dependency (libc6, which every host has), and not in the test hosts' base image.
const PACKAGE = 'tree';
const BUCKET = 'persona-packages';

let dir: string;
let standIns: StandIns;
let host: TestHost;
let store: PackageStore;
let version: string;
const control = new LocalTransport();
const mirror = new AptMirror(control);
const opened: { close(): Promise<void> | void }[] = [];

/** The version of PACKAGE the control machine's apt offers; it fails saying why when it has none. */
async function controlVersion(): Promise<string> {
  const lists = readdirSync('/var/lib/apt/lists').filter((f) => f.includes('_Packages'));
  if (lists.length === 0) {
    const update = await control.run('apt-get update -q', { timeoutMs: 300_000 });
    if (update.exitCode !== 0) {
      throw new Error(
        `the control machine has no apt package lists and apt-get update failed, so no package can be fetched into the store: ${update.stderr.trim()}`,
      );
    }
  }
  const found = parseMadison((await control.run(`apt-cache madison -- ${PACKAGE}`)).stdout)[0];
  if (!found) throw new Error(`the control machine's apt knows no version of ${PACKAGE}`);
  return found.version;
}

// A ruleset the host has before, so that a revert has something to put back.
const PRIOR_RULESET = [
  'table inet persona_prior {',
  '\tchain input {',
  '\t\ttype filter hook input priority filter; policy accept;',
  '\t\ttcp dport 22 accept',
  '\t}',
  '}',
  '',
].join('\n');
const RULESET = [
  'table inet persona_web {',
  '\tset allowed {',
  '\t\ttype ipv4_addr',
  '\t\telements = { 10.213.0.1, 10.213.0.5 }',
  '\t}',
  '',
  '\tchain input {',
  '\t\ttype filter hook input priority filter; policy accept;',
  '\t\ttcp dport { 22, 8080 } accept',
  '\t\tip saddr @allowed counter packets 0 bytes 0 accept',
  '\t}',
  '}',
  '',
].join('\n');

// A module the host's modprobe finds (an ELF file indexed by depmod in the running kernel's
// folder), so that what stops it is the kernel's refusal to load it (no CAP_SYS_MODULE, or no
// module loading at all), not a missing file.
const MODULE = 'persona_probe';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-executors-'));
  [version, standIns, host] = await Promise.all([
    controlVersion(),
    startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
      buckets: [BUCKET],
    }),
    createHost({ name: 'netexec' }),
  ]);
  const s3 = new S3Client({
    endpoint: standIns.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  opened.push({ close: () => s3.destroy() });
  store = new PackageStore(new S3ObjectStore(s3, BUCKET));
  await host.writeFile('/tmp/prior.nft', PRIOR_RULESET);
  await host.run('nft -f /tmp/prior.nft && rm /tmp/prior.nft');
  await host.run('ip route add 203.0.113.0/24 dev eth0');
  await host.run(
    `d=/lib/modules/$(uname -r) && mkdir -p "$d/extra" && cp /bin/true "$d/extra/${MODULE}.ko" && depmod 2>/dev/null`,
  );
}, 600_000);

afterAll(async () => {
  for (const o of opened) await o.close();
  await destroyAllHosts();
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

function controlSide(executors?: Executors): ApplyDeps & { journal: DynamoJournal } {
  const client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const transport = sshTransportTo(host);
  opened.push(transport, { close: () => ddb.destroy() });
  return {
    transport,
    journal: new DynamoJournal(ddb, 'journal'),
    executors: executors ?? debianExecutors({ store, mirror, targetRepositories: 'offline' }),
    contents: { read: async () => new Uint8Array() },
  };
}

const delta = (changes: Change[]): Delta =>
  Delta.parse({ from: { name: 'bare' }, to: { name: 'web' }, changes, summary: summarize(changes) });

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own field syntax
const EVERY_PACKAGE = "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'";
const TTL = 'net.ipv4.ip_default_ttl';

/** What these Changes could alter or leave behind. */
async function hostState(): Promise<Record<string, string>> {
  return {
    ruleset: await host.run('nft list ruleset'),
    routes: await host.run('ip route show table all'),
    packages: await host.run(EVERY_PACKAGE),
    modules: (await host.exec(`ls -d /sys/module/${MODULE}`)).stdout,
    sysctl: await host.run(`sysctl -n ${TTL}`),
    backups: (await host.exec('ls -AR /var/lib/persona')).stdout,
    tmp: await host.run('ls -A /tmp'),
  };
}

const firewall: Change = {
  kind: 'firewall.replace',
  section: 'firewall',
  key: 'firewall',
  from: null,
  to: { backend: 'nftables', ruleset: RULESET },
  disruptive: false,
};
const route = (): Change => ({
  kind: 'route.add',
  section: 'routes',
  key: `main 198.51.100.0/24 ${host.gateway} eth0 -`,
  from: null,
  to: { destination: '198.51.100.0/24', gateway: host.gateway, interface: 'eth0' },
  disruptive: false,
});
const kmod: Change = {
  kind: 'kmod.load',
  section: 'kernelModules',
  key: MODULE,
  from: null,
  to: { name: MODULE, parameters: { debug: '1' } },
  after: null,
  disruptive: false,
};
const install = (): Change => ({
  kind: 'package.install',
  section: 'packages',
  key: `apt:${PACKAGE}`,
  from: null,
  to: { name: PACKAGE, version, manager: 'apt' },
  disruptive: false,
});

describe('network, module and package executors on a real host', () => {
  it('replaces the nftables ruleset atomically, says unchanged the second time, and reverts it exactly', async () => {
    const before = await hostState();
    expect(before.ruleset).toBe(PRIOR_RULESET);
    const deps = controlSide();
    const first = await applyChanges(deps, 'fw-1', delta([firewall]));
    expect(first.results.map((r) => r.outcome.status)).toEqual(['changed']);
    expect(await host.run('nft list ruleset')).toBe(RULESET);
    const again = await applyChanges(deps, 'fw-2', delta([firewall]));
    expect(again.results.map((r) => r.outcome.status)).toEqual(['unchanged']);
    expect((await revertOperation(deps, 'fw-2')).failures).toEqual([]);
    expect((await revertOperation(deps, 'fw-1')).failures).toEqual([]);
    expect(await host.run('nft list ruleset')).toBe(PRIOR_RULESET);
    expect(await hostState()).toEqual(before);
  });

  it('refuses a ruleset nft does not accept and leaves the ruleset as it was', async () => {
    const before = await hostState();
    const bad: Change = {
      ...firewall,
      to: {
        backend: 'nftables',
        ruleset: `${RULESET}table inet broken {\n\tchain c {\n\t\tno such rule\n\t}\n}\n`,
      },
    } as Change;
    const result = await applyChanges(controlSide(), 'fw-bad', delta([bad]));
    expect(result).toMatchObject({
      status: 'rolled-back',
      failed: { kind: 'firewall.replace', code: 'TRANSPORT' },
    });
    if (result.status !== 'rolled-back') return;
    expect(result.failed.error).toMatch(/refused by its check; nothing changed/);
    expect(await hostState()).toEqual(before);
  });

  it('adds a route through the link gateway, replaces one and removes one, and reverts each exactly', async () => {
    const before = await hostState();
    const replaced: Change = {
      kind: 'route.add',
      section: 'routes',
      key: `main 203.0.113.0/24 ${host.gateway} eth0 -`,
      from: null,
      to: { destination: '203.0.113.0/24', gateway: host.gateway, interface: 'eth0' },
      disruptive: false,
    };
    const removed: Change = {
      kind: 'route.remove',
      section: 'routes',
      key: 'main 203.0.113.0/24 - eth0 -',
      from: { destination: '203.0.113.0/24', interface: 'eth0' },
      to: null,
      disruptive: false,
    };
    const deps = controlSide();
    const first = await applyChanges(deps, 'route-1', delta([route(), replaced]));
    expect(first.results.map((r) => r.outcome.status)).toEqual(['changed', 'changed']);
    const routes = await host.run('ip route show');
    expect(routes).toContain(`198.51.100.0/24 via ${host.gateway} dev eth0`);
    expect(routes).toContain(`203.0.113.0/24 via ${host.gateway} dev eth0`);
    const again = await applyChanges(deps, 'route-2', delta([route(), replaced]));
    expect(again.results.map((r) => r.outcome.status)).toEqual(['unchanged', 'unchanged']);
    expect((await revertOperation(deps, 'route-2')).failures).toEqual([]);
    expect((await revertOperation(deps, 'route-1')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);

    const gone = await applyChanges(deps, 'route-3', delta([removed]));
    expect(gone.results.map((r) => r.outcome.status)).toEqual(['changed']);
    expect(await host.run('ip route show')).not.toContain('203.0.113.0/24');
    expect((await revertOperation(deps, 'route-3')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
  });

  it('records a module the host will not load as unresolved, with modprobe’s reason, and loads nothing', async () => {
    const before = await hostState();
    const deps = controlSide();
    const result = await applyChanges(deps, 'kmod-1', delta([kmod]));
    expect(result.status).toBe('applied');
    expect(result.results[0]?.outcome).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(
        new RegExp(
          `${MODULE} was not loaded: .*could not insert '${MODULE}': (Operation not permitted|Function not implemented)`,
        ),
      ),
    });
    const rollback = await revertOperation(deps, 'kmod-1');
    expect(rollback.reverted.map((r) => r.outcome.status)).toEqual(['unchanged']);
    expect(await hostState()).toEqual(before);
  });

  it('installs a package from the store on a host with no route out, removes it again, and reverts both', async () => {
    const before = await hostState();
    const installedVersion = async () =>
      (await host.exec(`dpkg-query -W -f='\${Version}' -- ${PACKAGE}`)).stdout;
    const deps = controlSide();
    const first = await applyChanges(deps, 'pkg-1', delta([install()]));
    expect(first.results[0]?.outcome).toMatchObject({
      status: 'changed',
      detail: expect.stringContaining('from mirror'),
    });
    expect(await installedVersion()).toBe(version);
    const again = await applyChanges(deps, 'pkg-2', delta([install()]));
    expect(again.results.map((r) => r.outcome.status)).toEqual(['unchanged']);

    // Removing what the host has keeps its version in the store first; revert reinstalls it
    // from there alone (the host reaches no repository).
    const remove: Change = {
      kind: 'package.remove',
      section: 'packages',
      key: `apt:${PACKAGE}`,
      from: { name: PACKAGE, version, manager: 'apt' },
      to: null,
      disruptive: false,
    };
    const removed = await applyChanges(deps, 'pkg-3', delta([remove]));
    expect(removed.results.map((r) => r.outcome.status)).toEqual(['changed']);
    expect(await installedVersion()).toBe('');
    expect((await revertOperation(deps, 'pkg-3')).failures).toEqual([]);
    expect(await installedVersion()).toBe(version);

    expect((await revertOperation(deps, 'pkg-2')).failures).toEqual([]);
    expect((await revertOperation(deps, 'pkg-1')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
  });

  it('rolls back a ruleset, a route, a module and a package when the Change after them fails', async () => {
    const before = await hostState();
    const base = debianExecutors({ store, mirror, targetRepositories: 'offline' });
    const failing = new Map(base);
    const real = base.get('sysctl.set') as Executor;
    failing.set('sysctl.set', {
      ...real,
      async apply(ctx, change, prior) {
        await real.apply(ctx, change, prior);
        throw new Error('injected: connection lost after sysctl -w');
      },
    });
    const deps = controlSide(failing);
    const changes: Change[] = [
      firewall,
      route(),
      kmod,
      install(),
      { kind: 'sysctl.set', section: 'sysctl', key: TTL, from: '64', to: '77', disruptive: false },
    ];
    const result = await applyChanges(deps, 'all-1', delta(changes));
    expect(result.status).toBe('rolled-back');
    if (result.status !== 'rolled-back') return;
    expect(result.failed).toMatchObject({ seq: 4, kind: 'sysctl.set', error: /injected/ });
    expect(result.results.map((r) => r.outcome.status)).toEqual([
      'changed',
      'changed',
      'unresolved',
      'changed',
    ]);
    expect(result.rollback.failures).toEqual([]);
    expect(result.rollback.reverted.map((r) => [r.kind, r.outcome.status])).toEqual([
      ['sysctl.set', 'changed'],
      ['package.install', 'changed'],
      ['kmod.load', 'unchanged'],
      ['route.add', 'changed'],
      ['firewall.replace', 'changed'],
    ]);
    expect(await hostState()).toEqual(before);
  });
});
