// The apply's survey on a real test host: one read answers the file Changes a host already
// holds (no journal entry, no write), hostile names read back as they are, a path below a
// symbolic link is left to the Change itself (which refuses it), and what an earlier Change of
// the same apply changed is read again rather than trusted.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Change, Delta, summarize } from '../../../core/delta/changes.js';
import { type ApplyDeps, applyChanges } from '../../../core/orchestrator/apply.js';
import { type ContentSource, changed, type Executor } from '../../../core/orchestrator/executors/executor.js';
import { probeEntry, surveyEntries } from '../../../core/orchestrator/executors/files.js';
import { DEBIAN_EXECUTORS, executorsFor } from '../../../core/orchestrator/executors/index.js';
import { DynamoJournal } from '../../../core/orchestrator/journal.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { type RecordingTransport, recording, sshTransportTo } from '../../hosts/transport.js';

let dir: string;
let standIns: StandIns;
let host: TestHost;
const opened: { close(): Promise<void> | void }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-survey-'));
  [standIns, host] = await Promise.all([
    startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
      buckets: [],
    }),
    createHost({ name: 'survey' }),
  ]);
}, 600_000);

afterAll(async () => {
  for (const o of opened) await o.close();
  await destroyAllHosts();
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const CONFIG = Buffer.from('listen = 8080\n');
const OTHER = Buffer.from('shipped by the package\n');
const contents: ContentSource = {
  async read(hash) {
    for (const b of [CONFIG, OTHER]) if (hash === `sha256:${sha(b)}`) return b;
    throw new Error(`no content ${hash}`);
  },
};

function controlSide(executors = DEBIAN_EXECUTORS): ApplyDeps & { transport: RecordingTransport } {
  const client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const transport = recording(sshTransportTo(host));
  opened.push(transport, { close: () => ddb.destroy() });
  return { transport, journal: new DynamoJournal(ddb, 'journal'), executors, contents };
}

const write = (path: string, content: Buffer, mode = '0644'): Change => ({
  kind: 'file.write',
  section: 'files',
  key: path,
  from: null,
  to: {
    path,
    type: 'file',
    hash: `sha256:${sha(content)}`,
    size: content.length,
    mode,
    owner: 'root',
    group: 'root',
  },
  disruptive: false,
});
const folder = (path: string): Change => ({
  kind: 'file.write',
  section: 'files',
  key: path,
  from: null,
  to: { path, type: 'directory', mode: '0750', owner: 'root', group: 'root' },
  disruptive: false,
});
const delta = (changes: Change[]): Delta =>
  Delta.parse({ from: { name: 'bare' }, to: { name: 'web' }, changes, summary: summarize(changes) });

describe('the survey of file Changes', () => {
  it('reads hostile names, folders, links and other entries as probeEntry does, in one command', async () => {
    await host.run(
      [
        'mkdir -p /srv/hostile/real',
        "printf 'x' > '/srv/hostile/-n'",
        "printf 'y' > \"/srv/hostile/a b'c\"",
        "printf 'z' > '/srv/hostile/$(touch pwned)'",
        "printf 'w' > '/srv/hostile/back\\slash'",
        'ln -s ../etc/passwd /srv/hostile/link',
        'ln -s /srv/hostile/real /srv/hostile/linked-dir',
        "printf 'v' > /srv/hostile/real/inside",
        'mkfifo /srv/hostile/fifo',
        'chmod 2750 /srv/hostile/real',
      ].join(' && '),
    );
    const paths = [
      '/srv/hostile/-n',
      "/srv/hostile/a b'c",
      '/srv/hostile/$(touch pwned)',
      '/srv/hostile/back\\slash',
      '/srv/hostile/link',
      '/srv/hostile/real',
      '/srv/hostile/fifo',
      '/srv/hostile/missing',
    ];
    const transport = recording(sshTransportTo(host));
    opened.push(transport);
    const surveyed = await surveyEntries(transport, [...paths, '/srv/hostile/linked-dir/inside']);
    expect(transport.commands).toHaveLength(1);
    const probed = await Promise.all(paths.map(async (p) => (await probeEntry(transport, p, 'path')).state));
    expect(surveyed.slice(0, paths.length)).toEqual(probed);
    expect(probed[3]).toMatchObject({ kind: 'file', sha256: sha(Buffer.from('w')) });
    expect(probed[5]).toEqual({ kind: 'directory', mode: '2750', owner: 'root', group: 'root' });
    expect(probed[6]).toEqual({ kind: 'other', type: 'fifo' });
    // Below a link, the survey says nothing: the Change itself refuses to write through it.
    expect(surveyed[paths.length]).toBeUndefined();
    expect(await host.exec('ls /srv/hostile/pwned /pwned /root/pwned')).toMatchObject({ exitCode: 2 });
  });

  it('answers a Delta the host already holds with one read: no journal entry, no write', async () => {
    const changes = [
      folder('/etc/persona-s'),
      write('/etc/persona-s/a.conf', CONFIG),
      write('/etc/persona-s/b.conf', CONFIG, '0600'),
    ];
    const first = controlSide();
    const applied = await applyChanges(first, 'survey-1', delta(changes));
    expect(applied.results.map((r) => r.outcome.status)).toEqual(['changed', 'changed', 'changed']);

    const second = controlSide();
    const again = await applyChanges(second, 'survey-2', delta(changes));
    expect(again.results.map((r) => r.outcome)).toEqual([
      { status: 'unchanged', detail: '/etc/persona-s is already a folder with that owner and mode' },
      { status: 'unchanged', detail: '/etc/persona-s/a.conf already holds that content, owner and mode' },
      { status: 'unchanged', detail: '/etc/persona-s/b.conf already holds that content, owner and mode' },
    ]);
    expect(await second.journal.entries('survey-2')).toEqual([]);
    expect(second.transport.commands).toHaveLength(1);

    // One file changed on the host since: only that one goes through prepare and apply.
    await host.run('chmod 0644 /etc/persona-s/b.conf');
    const third = controlSide();
    const fixed = await applyChanges(third, 'survey-3', delta(changes));
    expect(fixed.results.map((r) => r.outcome.status)).toEqual(['unchanged', 'unchanged', 'changed']);
    expect((await third.journal.entries('survey-3')).map((e) => e.change.key)).toEqual([
      '/etc/persona-s/b.conf',
    ]);
    expect((await host.run('stat -c %a /etc/persona-s/b.conf')).trim()).toBe('600');
    // The survey, the Change's read (which keeps its copy), and its write (which hashes where
    // it landed): apply, right after its own read, does not read the host again.
    expect(third.transport.commands).toHaveLength(3);
  });

  it('reads a file again after an earlier Change of the same apply changed it, instead of trusting the survey', async () => {
    await host.run("mkdir -p /etc/persona-p && printf 'listen = 8080\\n' > /etc/persona-p/app.conf");
    // A package that ships its own copy of the file, as nginx ships nginx.conf.
    const shipping: Executor = {
      kinds: ['package.install'],
      async prepare() {
        return null;
      },
      async apply(ctx) {
        await ctx.transport.run("printf 'shipped by the package\\n' > /etc/persona-p/app.conf");
        return changed('installed');
      },
      async revert() {
        return changed('removed');
      },
    };
    const executors = executorsFor([...new Set(DEBIAN_EXECUTORS.values()), shipping]);
    const pkg: Change = {
      kind: 'package.install',
      section: 'packages',
      key: 'apt:app',
      from: null,
      to: { name: 'app', version: '1', manager: 'apt' },
      disruptive: false,
    };
    const deps = controlSide(executors);
    const result = await applyChanges(
      deps,
      'survey-4',
      delta([pkg, write('/etc/persona-p/app.conf', CONFIG)]),
    );
    expect(result.results.map((r) => r.outcome.status)).toEqual(['changed', 'changed']);
    expect(await host.readFile('/etc/persona-p/app.conf')).toBe(CONFIG.toString());
  });
});
