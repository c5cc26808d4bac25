// Services and processes on a real test host (no systemd: sysvinit scripts through `service`),
// journaled into DynamoDB Local. The Delta is the diff from a bare Profile to a web host's: nginx
// added, enabled and started, its process found running, and a hand-run application process
// started from its captured start command as its user, in its folder, with exactly its
// environment (a secret value opened in memory) and a hostile command line passed word for word.
// Reverting leaves the host's process list exactly as it was.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change, Delta } from '../../../core/delta/changes.js';
import { diff } from '../../../core/delta/diff.js';
import { type ApplyDeps, applyChanges, revertOperation } from '../../../core/orchestrator/apply.js';
import { cgroupExecutor } from '../../../core/orchestrator/executors/cgroups.js';
import type { ContentSource } from '../../../core/orchestrator/executors/executor.js';
import { DEBIAN_EXECUTORS } from '../../../core/orchestrator/executors/index.js';
import { processAddExecutor, processRemoveExecutor } from '../../../core/orchestrator/executors/processes.js';
import { DynamoJournal } from '../../../core/orchestrator/journal.js';
import { Profile } from '../../../core/profile/schema.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { addUser } from '../../hosts/software.js';
import { sshTransportTo } from '../../hosts/transport.js';

let dir: string;
let standIns: StandIns;
let host: TestHost;
let initScriptHash: string;
const opened: { close(): Promise<void> | void }[] = [];

const APP = '/usr/local/bin/shop-api';
// A hand-run application: it stays until stopped, with a child of its own (as servers have).
const APP_SCRIPT = '#!/bin/sh\nsleep "$1" &\nwait\n';
const SECRET = "pa$$ word; $(touch /tmp/pwned-env) 'q'";
// Capture records a command line as its arguments joined by spaces; these are hostile ones.
const COMMAND = `/bin/sh ${APP} 100000 ;touch$IFS/tmp/pwned $(touch$IFS/tmp/pwned) -rf line\nbreak`;
const ARGV = [
  '/bin/sh',
  APP,
  '100000',
  ';touch$IFS/tmp/pwned',
  '$(touch$IFS/tmp/pwned)',
  '-rf',
  'line\nbreak',
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-processes-'));
  [standIns, host] = await Promise.all([
    startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
      buckets: [],
    }),
    createHost({ name: 'procexec', packages: ['nginx-light'] }),
  ]);
  await addUser(host, 'shop');
  await host.writeFile(APP, APP_SCRIPT, 0o755);
  await host.run('mkdir -p /srv/shop && chown shop:shop /srv/shop');
  // The package's scripts never start it here (policy-rc.d): the Delta does.
  await host.run('service nginx stop >/dev/null 2>&1 || true');
  initScriptHash = (await host.run('sha256sum /etc/init.d/nginx')).split(' ')[0] as string;
}, 600_000);

afterAll(async () => {
  for (const o of opened) await o.close();
  await destroyAllHosts();
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

function controlSide(): ApplyDeps {
  const client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const transport = sshTransportTo(host);
  opened.push(transport, { close: () => ddb.destroy() });
  return { transport, journal: new DynamoJournal(ddb, 'journal'), executors: DEBIAN_EXECUTORS, contents };
}

const SECRET_KEY = 'web/env/shop-api/DB_PASSWORD';
const contents: ContentSource = {
  async read(hash) {
    throw new Error(`no content ${hash} in this test`);
  },
  async readSealed(ref) {
    if (ref.provider !== 'local' || ref.key !== SECRET_KEY)
      throw new Error(`no secret ${JSON.stringify(ref)}`);
    return new TextEncoder().encode(SECRET);
  },
};

const profile = (spec: object) =>
  Profile.parse({
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: { name: 'web' },
    spec: {
      os: { family: 'linux', distribution: 'debian', version: '12', kernel: '6.1.0', arch: 'x86_64' },
      ...spec,
    },
  });

/** The Delta from a bare host to the web host, whole. */
function webDelta(): Delta {
  const web = profile({
    services: [
      {
        name: 'nginx',
        manager: 'sysvinit',
        state: 'running',
        enabled: true,
        unitHash: `sha256:${initScriptHash}`,
      },
    ],
    processes: [
      { name: 'nginx', command: 'nginx: master process nginx', user: 'root', nice: 0, cgroup: '/' },
      { name: 'shop-api', command: COMMAND, user: 'shop' },
    ],
    configuration: {
      env: [
        { name: 'APP_MODE', value: 'production', scope: 'shop-api' },
        { name: 'PATH', value: '/usr/bin:/bin', scope: 'shop-api' },
        {
          name: 'DB_PASSWORD',
          secretRef: { provider: 'local', key: SECRET_KEY },
          sensitive: true,
          scope: 'shop-api',
        },
      ],
      files: [],
      sysctl: {},
    },
    application: {
      startCommands: [{ name: 'shop-api', command: COMMAND, user: 'shop', workingDirectory: '/srv/shop' }],
      paths: [],
      healthChecks: [],
    },
  });
  return diff(profile({}), web);
}

/** The host's processes, but for the sshd sessions and the shell and ps that list them. */
async function processList(): Promise<string[]> {
  const out = await host.run('ps -eo pid=,comm=,user:16=,args=');
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^\d+ (sshd|ps) /.test(l) && !/^\d+ sh +root +\/bin\/sh -c ps -eo/.test(l));
}

// The application's own process (its child is `sleep`), whatever name the kernel gave it.
const shopPids = async () =>
  (await host.exec(`pgrep -u shop -f ${APP}`)).stdout.split('\n').filter((l) => l !== '');

/** The application's process once it runs as its user (a start by hand takes a moment to exec). */
async function running(): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const pids = await shopPids();
    if (pids.length > 0) return pids;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return [];
}

const outcomes = (results: readonly { kind: Change['kind']; key: string; outcome: { status: string } }[]) =>
  results.map((r) => `${r.kind} ${r.key} ${r.outcome.status}`);

describe('service and process Changes on a real host', () => {
  it('start nginx and the application, find them again on a second apply, and leave the process list as it was on revert', async () => {
    // Something of the host's own that runs throughout, and that no revert may touch.
    await host.run('setsid sleep 100001 </dev/null >/dev/null 2>&1 &');
    const before = await processList();
    expect(before).toEqual([expect.stringMatching(/^\d+ sleep +root +sleep 100001$/)]);
    const deps = controlSide();
    const delta = webDelta();

    const first = await applyChanges(deps, 'procs-1', delta);
    expect(first.status).toBe('applied');
    expect(outcomes(first.results)).toEqual([
      'env.set shop-api:APP_MODE unresolved',
      'env.set shop-api:DB_PASSWORD unresolved',
      'env.set shop-api:PATH unresolved',
      'service.add nginx unchanged',
      expect.stringMatching(/^service\.enable nginx (changed|unchanged)$/),
      'service.start nginx changed',
      'process.add nginx unchanged',
      'process.add shop-api changed',
      'application.configure application unchanged',
    ]);
    expect(first.results.find((r) => r.kind === 'service.add')?.outcome.detail).toBe(
      'nginx: /etc/init.d/nginx is on the host, as hashed',
    );
    expect((await host.exec('service nginx status')).exitCode).toBe(0);
    const started = first.results.find((r) => r.key === 'shop-api')?.outcome.detail ?? '';
    expect(started).toMatch(/^started shop-api as shop in \/srv\/shop \(pid \d+/);
    expect(started).not.toContain('word');

    // The application runs as captured: its user, folder, session, stdio, argv and environment.
    const [pid] = await shopPids();
    expect(started).toContain(`pid ${pid}`);
    const status = await host.run(`grep -E '^(Uid|Gid):' /proc/${pid}/status`);
    const uid = (await host.run('id -u shop')).trim();
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, 'm'));
    expect((await host.run(`readlink /proc/${pid}/cwd`)).trim()).toBe('/srv/shop');
    expect((await host.run(`readlink /proc/${pid}/fd/0 /proc/${pid}/fd/1 /proc/${pid}/fd/2`)).trim()).toBe(
      '/dev/null\n/dev/null\n/dev/null',
    );
    expect((await host.run(`ps -o sid= -p ${pid}`)).trim()).toBe(pid);
    const argv = (await host.run(`cat /proc/${pid}/cmdline | base64 -w0`)).trim();
    expect(Buffer.from(argv, 'base64').toString().split('\0').slice(0, -1)).toEqual(ARGV);
    const environ = (await host.run(`cat /proc/${pid}/environ | base64 -w0`)).trim();
    expect(Buffer.from(environ, 'base64').toString().split('\0').slice(0, -1).sort()).toEqual(
      ['APP_MODE=production', `DB_PASSWORD=${SECRET}`, 'PATH=/usr/bin:/bin'].sort(),
    );
    expect((await host.exec('ls /tmp/pwned /tmp/pwned-env')).exitCode).not.toBe(0);

    // A second apply, as another operation, finds everything in place.
    const second = await applyChanges(deps, 'procs-2', delta);
    expect(second.status).toBe('applied');
    expect(second.results.filter((r) => r.outcome.status === 'changed')).toEqual([]);
    expect(await shopPids()).toEqual([pid]);
    expect((await revertOperation(deps, 'procs-2')).failures).toEqual([]);
    expect(await shopPids()).toEqual([pid]);

    const rollback = await revertOperation(deps, 'procs-1');
    expect(rollback.failures).toEqual([]);
    expect((await host.exec('service nginx status')).exitCode).not.toBe(0);
    expect(await processList()).toEqual(before);
  }, 180_000);

  it('stops a removed process and starts it again on revert as it ran: argv, environment, folder and user', async () => {
    const before = await processList();
    await host.run(
      `cd /srv/shop && setsid env -i 'A=1' 'B=two words' 'C=line\nbreak' setpriv --reuid=shop --regid=shop --init-groups -- /bin/sh ${APP} 100002 'x y' </dev/null >/dev/null 2>&1 &`,
    );
    const [pid] = await running();
    const facts = async (p: string | undefined) => ({
      argv: (await host.run(`base64 -w0 /proc/${p}/cmdline`)).trim(),
      // The same variables; their order in environ is the shell's, which means nothing.
      environ: Buffer.from((await host.run(`base64 -w0 /proc/${p}/environ`)).trim(), 'base64')
        .toString()
        .split('\0')
        .sort(),
      cwd: (await host.run(`readlink /proc/${p}/cwd`)).trim(),
      ids: (await host.run(`grep -E '^(Uid|Gid|Groups):' /proc/${p}/status`)).trim(),
    });
    const was = await facts(pid);
    const deps = controlSide();
    const ctx = { transport: deps.transport, operation: 'procs-4', seq: 0, contents };
    const change: Change = {
      kind: 'process.remove',
      section: 'processes',
      key: 'shop-api',
      from: { name: 'shop-api', command: `/bin/sh ${APP} 100002 x y`, user: 'shop' },
      to: null,
      disruptive: false,
    };
    const prior = await processRemoveExecutor.prepare(ctx, change);
    expect(JSON.stringify(prior)).not.toContain('two words');
    expect(await processRemoveExecutor.apply(ctx, change, prior)).toMatchObject({ status: 'changed' });
    expect(await shopPids()).toEqual([]);
    expect(await processRemoveExecutor.apply(ctx, change, prior)).toMatchObject({ status: 'unchanged' });

    expect(await processRemoveExecutor.revert(ctx, change, prior)).toMatchObject({ status: 'changed' });
    const [again] = await running();
    expect(again).toBeDefined();
    expect(again).not.toBe(pid);
    expect(await facts(again)).toEqual(was);
    expect(await processRemoveExecutor.revert(ctx, change, prior)).toMatchObject({ status: 'unchanged' });
    await processRemoveExecutor.apply(ctx, change, prior);
    // Its child (`sleep`) went with it.
    expect(await processList()).toEqual(before);
  }, 60_000);

  it('records a cgroup limit as unresolved on a host with no cgroup filesystem, and writes nothing', async () => {
    // The test hosts mount sysfs read-only and no cgroup filesystem on it.
    const before = await host.run('ls -A /sys/fs/cgroup; echo .');
    const deps = controlSide();
    const ctx = { transport: deps.transport, operation: 'procs-5', seq: 0, contents };
    const change: Change = {
      kind: 'cgroup.set',
      section: 'cgroups',
      key: '/system.slice/shop.service',
      from: null,
      to: { path: '/system.slice/shop.service', memoryMax: 268435456, cpuMax: '50000 100000' },
      disruptive: false,
    };
    const prior = await cgroupExecutor.prepare(ctx, change);
    expect(await cgroupExecutor.apply(ctx, change, prior)).toEqual({
      status: 'unresolved',
      detail: '/system.slice/shop.service: the host has no cgroup filesystem mounted',
    });
    expect(await cgroupExecutor.revert(ctx, change, prior)).toMatchObject({ status: 'unchanged' });
    expect(await host.run('ls -A /sys/fs/cgroup; echo .')).toBe(before);
  }, 60_000);

  it('never stops a process that holds a recorded pid at another start time', async () => {
    const pid = (await host.run('setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!')).trim();
    const start = (await host.run(`cut -d' ' -f22 /proc/${pid}/stat`)).trim();
    await host.run(
      `mkdir -p /var/lib/persona/backup/procs-3 && echo "${pid} ${Number(start) - 1}" > /var/lib/persona/backup/procs-3/0.started`,
    );
    const deps = controlSide();
    const ctx = { transport: deps.transport, operation: 'procs-3', seq: 0, contents };
    const change = webDelta().changes.find((c) => c.kind === 'process.add' && c.key === 'shop-api') as Change;
    expect(await processAddExecutor.revert(ctx, change, { running: [] })).toMatchObject({
      status: 'unchanged',
    });
    expect((await host.exec(`kill -0 ${pid}`)).exitCode).toBe(0);
    await host.run(`echo "${pid} ${start}" > /var/lib/persona/backup/procs-3/0.started`);
    expect(await processAddExecutor.revert(ctx, change, { running: [] })).toEqual({
      status: 'changed',
      detail: `stopped shop-api (pid ${pid})`,
    });
    expect((await host.exec(`kill -0 ${pid}`)).exitCode).not.toBe(0);
  }, 60_000);
});
