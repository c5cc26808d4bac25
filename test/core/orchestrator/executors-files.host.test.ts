// Folders, symbolic links, sealed files, authorized SSH keys and DNS on one real test host,
// journaled into DynamoDB Local: a small Delta as a clone of a web host carries them lands and
// shows on the host, a second apply changes nothing, a revert leaves every file of the host as
// it was (mode, owner, link target, hash), and nothing sealed reaches the journal. Links in the
// way (a symlinked folder, .ssh, resolv.conf) are refused or left alone, never followed.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Change, Delta, summarize } from '../../../core/delta/changes.js';
import { type ApplyDeps, applyChanges, revertOperation } from '../../../core/orchestrator/apply.js';
import type { ContentSource, Executor } from '../../../core/orchestrator/executors/executor.js';
import { DEBIAN_EXECUTORS, type Executors } from '../../../core/orchestrator/executors/index.js';
import { DynamoJournal } from '../../../core/orchestrator/journal.js';
import type { SecretRef } from '../../../core/profile/schema.js';
import { JOURNAL_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

let dir: string;
let standIns: StandIns;
let host: TestHost;
const opened: { close(): Promise<void> | void }[] = [];

/** An OpenSSH ed25519 public key line and its fingerprint, made here. */
function sshKey(comment: string): { line: string; fingerprint: string } {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const part = (b: Buffer) => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.length);
    return Buffer.concat([n, b]);
  };
  const blob = Buffer.concat([part(Buffer.from('ssh-ed25519')), part(raw)]).toString('base64');
  const fingerprint = `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
  return { line: `ssh-ed25519 ${blob} ${comment}`, fingerprint };
}

const SEALED = Buffer.from('api_token = s3cr3t-7f4e9a\n');
const SEALED_REPLACING = Buffer.from('password = hunter2-other\n');
const ROOT_KEY = sshKey('deploy@web-a');
const USER_KEY = sshKey('app@web-a');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const ref = (key: string): SecretRef => ({
  provider: 'local',
  key: `web-a/${key}`,
  digest: sha(Buffer.from(key)),
});

const sealed = new Map<string, Uint8Array>([
  ['web-a/file/etc/persona-site/secret.conf', SEALED],
  ['web-a/file/etc/persona-replaced.conf', SEALED_REPLACING],
  [`web-a/ssh/root/${ROOT_KEY.fingerprint}`, Buffer.from(ROOT_KEY.line)],
  [`web-a/ssh/pkeys/${USER_KEY.fingerprint}`, Buffer.from(`${USER_KEY.line}\n`)],
]);
const contents: ContentSource = {
  async read(hash) {
    throw new Error(`no content ${hash}`);
  },
  async readSealed(secret) {
    const bytes = secret.provider === 'local' ? sealed.get(secret.key) : undefined;
    if (bytes === undefined) throw new Error('no such sealed value');
    return bytes;
  },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-files-'));
  [standIns, host] = await Promise.all([
    startStandIns({
      dataDir: join(dir, 'data'),
      tables: [{ definition: JOURNAL_TABLE, name: 'journal' }],
      buckets: [],
    }),
    createHost({ name: 'fileexec' }),
  ]);
  // What the bare host holds before: a user with a home and no .ssh, a file a sealed one
  // replaces, a link another one replaces.
  await host.run(
    [
      'useradd -m -d /home/pkeys -s /bin/sh pkeys',
      'printf "old = 1\\n" > /etc/persona-replaced.conf && chmod 600 /etc/persona-replaced.conf',
      'ln -s /nowhere /etc/persona-relink',
    ].join(' && '),
  );
}, 600_000);

afterAll(async () => {
  for (const o of opened) await o.close();
  await destroyAllHosts();
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

function controlSide(executors: Executors = DEBIAN_EXECUTORS): ApplyDeps & { journal: DynamoJournal } {
  const client = new DynamoDBClient({
    endpoint: standIns.dynamoEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const transport = sshTransportTo(host);
  opened.push(transport, { close: () => ddb.destroy() });
  return { transport, journal: new DynamoJournal(ddb, 'journal'), executors, contents };
}

const file = (path: string, to: object, kind: Change['kind'] = 'file.write'): Change =>
  ({ kind, section: 'files', key: path, from: null, to: { path, ...to }, disruptive: false }) as Change;

// A newline and ".." in a link's target are data: the link holds them, nothing follows them.
const ODD_TARGET = '../odd\nname/..';

const CHANGES: Change[] = [
  file('/etc/persona-site', { type: 'directory', mode: '2750', owner: 'root', group: 'www-data' }),
  file('/etc/persona-site/enabled/persona', {
    type: 'symlink',
    owner: 'root',
    group: 'root',
    target: '../available/persona',
  }),
  file('/etc/persona-relink', { type: 'symlink', owner: 'root', group: 'root', target: ODD_TARGET }),
  file('/etc/persona-site/secret.conf', {
    type: 'file',
    size: SEALED.length,
    mode: '0640',
    owner: 'root',
    group: 'shadow',
    sensitive: true,
    secretRef: ref('file/etc/persona-site/secret.conf'),
  }),
  file('/etc/persona-replaced.conf', {
    type: 'file',
    mode: '0640',
    owner: 'root',
    group: 'root',
    sensitive: true,
    secretRef: ref('file/etc/persona-replaced.conf'),
  }),
  {
    kind: 'sshkey.authorize',
    section: 'sshKeys',
    key: `root:${ROOT_KEY.fingerprint}`,
    from: null,
    to: {
      user: 'root',
      type: 'ssh-ed25519',
      fingerprint: ROOT_KEY.fingerprint,
      comment: 'deploy@web-a',
      keyRef: ref(`ssh/root/${ROOT_KEY.fingerprint}`),
    },
    disruptive: false,
  },
  {
    kind: 'sshkey.authorize',
    section: 'sshKeys',
    key: `pkeys:${USER_KEY.fingerprint}`,
    from: null,
    to: {
      user: 'pkeys',
      type: 'ssh-ed25519',
      fingerprint: USER_KEY.fingerprint,
      keyRef: ref(`ssh/pkeys/${USER_KEY.fingerprint}`),
    },
    disruptive: false,
  },
  {
    kind: 'dns.set',
    section: 'dns',
    key: 'dns',
    from: null,
    to: { nameservers: ['10.213.0.1', 'fd00::53'], search: ['web.internal'], options: ['ndots:2', 'rotate'] },
    disruptive: false,
  },
];

// The real keys sealed values are kept under are the Profile's, not these: the map above
// follows them, so that a reference the Change holds is the one the source opens.
for (const c of CHANGES) {
  const to = c.to as { secretRef?: SecretRef; keyRef?: SecretRef };
  const r = to.secretRef ?? to.keyRef;
  if (r?.provider === 'local' && !sealed.has(r.key)) throw new Error(`no sealed value for ${r.key}`);
}

const delta = (changes: Change[]): Delta =>
  Delta.parse({ from: { name: 'bare' }, to: { name: 'web' }, changes, summary: summarize(changes) });

/**
 * Every entry of /etc, /root, /home and /var/lib: type, mode, owner, group, a link's target and
 * each file's hash. shadow's own `-` backups are left out.
 */
async function hostState(): Promise<string> {
  const where = "/etc /root /home /var/lib -xdev ! -name '*-'";
  const entries = await host.run(
    `find ${where} \\( -type l -printf '%p %y %u %g -> %l\\n' \\) -o -printf '%p %y %m %u %g\\n' | sort`,
  );
  const hashes = await host.run(`find ${where} -type f -exec sha256sum {} + | sort`);
  return `${entries}\n${hashes}`;
}

describe('file, folder, link, sealed file, SSH key and DNS Changes on a real host', () => {
  it('applies them so that the host shows them, a second apply changes nothing, and a revert leaves the host exactly as it was', async () => {
    const before = await hostState();
    expect(before).toMatch(/^\/etc\/persona-relink l root root -> \/nowhere$/m);
    const deps = controlSide();
    const first = await applyChanges(deps, 'files-1', delta(CHANGES));
    expect(first.status).toBe('applied');
    expect(first.results.map((r) => r.outcome.status)).toEqual(CHANGES.map(() => 'changed'));

    const stat = async (p: string) => (await host.run(`stat -c '%F %a %U %G' -- '${p}'`)).trim();
    expect(await stat('/etc/persona-site')).toBe('directory 2750 root www-data');
    // A folder made above the link inherits the set-group-ID folder's group and bit, as mkdir does.
    expect(await stat('/etc/persona-site/enabled')).toBe('directory 2755 root www-data');
    expect(await host.run('readlink -n /etc/persona-site/enabled/persona')).toBe('../available/persona');
    expect(await host.run('readlink -n /etc/persona-relink')).toBe(ODD_TARGET);
    expect(await stat('/etc/persona-site/secret.conf')).toBe('regular file 640 root shadow');
    expect(await host.readFile('/etc/persona-site/secret.conf')).toBe(SEALED.toString());
    expect(await stat('/etc/persona-replaced.conf')).toBe('regular file 640 root root');
    expect(await host.readFile('/etc/persona-replaced.conf')).toBe(SEALED_REPLACING.toString());
    expect(await host.readFile('/root/.ssh/authorized_keys')).toBe(`${host.publicKey}\n${ROOT_KEY.line}\n`);
    expect(await stat('/home/pkeys/.ssh')).toBe('directory 700 pkeys pkeys');
    expect(await stat('/home/pkeys/.ssh/authorized_keys')).toBe('regular file 600 pkeys pkeys');
    expect(await host.readFile('/home/pkeys/.ssh/authorized_keys')).toBe(`${USER_KEY.line}\n`);
    expect(await host.readFile('/etc/resolv.conf')).toBe(
      'nameserver 10.213.0.1\nnameserver fd00::53\nsearch web.internal\noptions ndots:2 rotate\n',
    );
    // The key the control side logs in with still works: the file was replaced, never half-written.
    expect((await deps.transport.run('echo still-in')).stdout).toBe('still-in\n');

    // Nothing sealed is journaled or reported: not the bytes, not their hash, not the key lines.
    const recorded = JSON.stringify([await deps.journal.entries('files-1'), first]);
    for (const secret of [SEALED, SEALED_REPLACING]) {
      expect(recorded).not.toContain(secret.toString().trim());
      expect(recorded).not.toContain(sha(secret));
    }
    expect(recorded).not.toContain(sha(Buffer.from('old = 1\n')));
    expect(recorded).not.toContain(ROOT_KEY.line.split(' ')[1]);
    expect(first.results.find((r) => r.key === '/etc/persona-site/secret.conf')?.outcome.detail).toBe(
      'wrote /etc/persona-site/secret.conf (sealed content, root:shadow, 0640)',
    );

    const again = await applyChanges(deps, 'files-2', delta(CHANGES));
    expect(again.status).toBe('applied');
    expect(again.results.map((r) => r.outcome.status)).toEqual(CHANGES.map(() => 'unchanged'));

    expect((await revertOperation(deps, 'files-2')).failures).toEqual([]);
    const rollback = await revertOperation(deps, 'files-1');
    expect(rollback.failures).toEqual([]);
    expect(rollback.reverted.map((r) => r.outcome.status)).toEqual(CHANGES.map(() => 'changed'));
    expect(await hostState()).toEqual(before);
  });

  it('rolls every one of them back when the last Change fails after landing, leaving the host as it was', async () => {
    const before = await hostState();
    const failing = new Map(DEBIAN_EXECUTORS);
    const real = DEBIAN_EXECUTORS.get('dns.set') as Executor;
    failing.set('dns.set', {
      ...real,
      async apply(ctx, change, prior) {
        await real.apply(ctx, change, prior);
        throw new Error('injected: connection lost after resolv.conf was written');
      },
    });
    const result = await applyChanges(controlSide(failing), 'files-fail', delta(CHANGES));
    expect(result.status).toBe('rolled-back');
    if (result.status !== 'rolled-back') return;
    expect(result.failed).toMatchObject({ kind: 'dns.set', error: /injected/ });
    expect(result.rollback.failures).toEqual([]);
    expect(result.rollback.reverted).toHaveLength(CHANGES.length);
    expect(await hostState()).toEqual(before);
  });

  it('refuses a folder or link below a symlinked folder, and a key for a user whose .ssh is a link, writing nothing through them', async () => {
    await host.run(
      'mkdir -p /srv/outside && ln -s /srv/outside /etc/persona-linked && useradd -m -d /home/plinked plinked && mkdir -p /srv/keys && ln -s /srv/keys /home/plinked/.ssh',
    );
    const before = await hostState();
    const outside = await host.run('find /srv/outside /srv/keys | sort');
    const refused: Change[] = [
      file('/etc/persona-linked/sub', { type: 'directory', mode: '0755' }),
      file('/etc/persona-linked/link', { type: 'symlink', target: '/etc/passwd' }),
      {
        kind: 'sshkey.authorize',
        section: 'sshKeys',
        key: `plinked:${USER_KEY.fingerprint}`,
        from: null,
        to: {
          user: 'plinked',
          type: 'ssh-ed25519',
          fingerprint: USER_KEY.fingerprint,
          keyRef: ref(`ssh/pkeys/${USER_KEY.fingerprint}`),
        },
        disruptive: false,
      },
    ];
    for (const [i, change] of refused.entries()) {
      const result = await applyChanges(controlSide(), `files-refused-${i}`, delta([change]));
      expect(result.status).toBe('rolled-back');
      if (result.status !== 'rolled-back') continue;
      expect(result.failed.error).toMatch(/symbolic link/);
      expect(result.failed.code).toBe('CONFLICT');
    }
    expect(await host.run('find /srv/outside /srv/keys | sort')).toBe(outside);
    expect(await hostState()).toEqual(before);
  });

  it('revokes exactly the lines holding a key, options or not, and puts them back exactly on revert', async () => {
    const keys = '/root/.ssh/authorized_keys';
    const original = await host.readFile(keys);
    const [, blob] = ROOT_KEY.line.split(' ');
    const held = `${original}from="10.213.0.0/16",no-pty ssh-ed25519 ${blob} restricted\n# kept\n${USER_KEY.line}\n`;
    await host.writeFile(keys, held, 0o600);
    try {
      const before = await hostState();
      const revoke: Change = {
        kind: 'sshkey.revoke',
        section: 'sshKeys',
        key: `root:${ROOT_KEY.fingerprint}`,
        from: { user: 'root', type: 'ssh-ed25519', fingerprint: ROOT_KEY.fingerprint },
        to: null,
        disruptive: false,
      };
      const deps = controlSide();
      const result = await applyChanges(deps, 'files-revoke', delta([revoke]));
      expect(result.results.map((r) => r.outcome.status)).toEqual(['changed']);
      expect(await host.readFile(keys)).toBe(`${original}# kept\n${USER_KEY.line}\n`);
      const again = await applyChanges(deps, 'files-revoke-2', delta([revoke]));
      expect(again.results.map((r) => r.outcome.status)).toEqual(['unchanged']);
      expect((await revertOperation(deps, 'files-revoke-2')).failures).toEqual([]);
      expect((await revertOperation(deps, 'files-revoke')).failures).toEqual([]);
      expect(await host.readFile(keys)).toBe(held);
      expect(await hostState()).toEqual(before);
    } finally {
      await host.writeFile(keys, original, 0o600);
    }
  });

  it('reverts an authorized key by dropping only its line when others changed the file since', async () => {
    const keys = '/home/pkeys/.ssh/authorized_keys';
    const change = CHANGES.find((c) => c.key.startsWith('pkeys:')) as Change;
    const deps = controlSide();
    expect((await applyChanges(deps, 'files-shared', delta([change]))).status).toBe('applied');
    const added = ROOT_KEY.line.replace('deploy@web-a', 'added-by-hand');
    await host.run(`echo '${added}' >> ${keys}`);
    expect((await revertOperation(deps, 'files-shared')).failures).toEqual([]);
    expect(await host.readFile(keys)).toBe(`${added}\n`);
    expect((await host.run(`stat -c '%a %U %G' ${keys}`)).trim()).toBe('600 pkeys pkeys');
    await host.run('rm -r /home/pkeys/.ssh');
  });

  it('replaces, never enters, a link to a folder that appears at the path between the probe and the rename', async () => {
    await host.run('mkdir -p /srv/elsewhere');
    const before = await hostState();
    const deps = controlSide();
    const inner = deps.transport;
    const path = '/etc/persona-site-race.conf';
    // Right before the write script runs, something puts a link to a folder where the file goes.
    const racing = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop !== 'run') return Reflect.get(target, prop, receiver);
        return async (command: string, options?: { stdin?: Uint8Array | string }) => {
          if (command.startsWith('set -e') && command.includes(path))
            await host.run(`ln -s /srv/elsewhere ${path}`);
          return target.run(command, options);
        };
      },
    });
    const change = file(path, {
      type: 'file',
      mode: '0600',
      owner: 'root',
      group: 'root',
      sensitive: true,
      secretRef: ref('file/etc/persona-site/secret.conf'),
    });
    const result = await applyChanges({ ...deps, transport: racing }, 'files-race', delta([change]));
    expect(result.status).toBe('applied');
    expect((await host.run(`stat -c %F ${path}`)).trim()).toBe('regular file');
    expect(await host.run('ls -A /srv/elsewhere')).toBe('');
    expect((await revertOperation(deps, 'files-race')).failures).toEqual([]);
    expect(await hostState()).toEqual(before);
  });

  it('records DNS unresolved and leaves the link alone when resolv.conf is a symbolic link', async () => {
    await host.run(
      'mkdir -p /run/systemd/resolve && cp /etc/resolv.conf /run/systemd/resolve/stub-resolv.conf && mv /etc/resolv.conf /etc/resolv.conf.real && ln -s ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf',
    );
    try {
      const before = await hostState();
      const stub = await host.readFile('/run/systemd/resolve/stub-resolv.conf');
      const deps = controlSide();
      const result = await applyChanges(deps, 'files-dns-link', delta([CHANGES.at(-1) as Change]));
      expect(result.status).toBe('applied');
      expect(result.results[0]?.outcome).toMatchObject({
        status: 'unresolved',
        detail: expect.stringMatching(/symbolic link to "\.\.\/run\/systemd\/resolve\/stub-resolv\.conf"/),
      });
      expect(await host.readFile('/run/systemd/resolve/stub-resolv.conf')).toBe(stub);
      expect((await revertOperation(deps, 'files-dns-link')).failures).toEqual([]);
      expect(await hostState()).toEqual(before);
    } finally {
      await host.run('rm /etc/resolv.conf && mv /etc/resolv.conf.real /etc/resolv.conf');
    }
  });
});
