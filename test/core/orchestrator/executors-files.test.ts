// Folder, link, sealed file, SSH key and DNS executors on scripted command output: what they
// send, what they refuse before sending anything, and that nothing sealed reaches a command
// line, an outcome, a prior or an error.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../core/delta/changes.js';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { HostStateConflictError } from '../../../core/orchestrator/errors.js';
import {
  dnsExecutor,
  dnsProblems,
  parseResolvConf,
  resolvConf,
} from '../../../core/orchestrator/executors/dns.js';
import type { ContentSource, ExecutorContext } from '../../../core/orchestrator/executors/executor.js';
import { fileExecutor } from '../../../core/orchestrator/executors/file.js';
import { DEBIAN_EXECUTORS } from '../../../core/orchestrator/executors/index.js';
import {
  checkedKeyLine,
  holdsKey,
  keyFingerprint,
  keyOfLine,
  sshKeyExecutor,
  withLine,
  withoutKey,
} from '../../../core/orchestrator/executors/sshkeys.js';
import type { SecretRef } from '../../../core/profile/schema.js';
import type { RunResult, Transport } from '../../../core/transport/transport.js';

type Reply = Partial<RunResult> | ((command: string) => Partial<RunResult>);
type Rule = readonly [RegExp, Reply];

/** A transport that answers from scripted output and keeps every command and its input. */
function scripted(rules: readonly Rule[]): Transport & { readonly sent: string[]; readonly stdin: string[] } {
  const sent: string[] = [];
  const stdin: string[] = [];
  return {
    target: 'ssh://root@scripted:22',
    sent,
    stdin,
    async run(command, options) {
      sent.push(command);
      if (options?.stdin !== undefined) stdin.push(Buffer.from(options.stdin).toString());
      const rule = rules.find(([pattern]) => pattern.test(command));
      if (rule === undefined) throw new Error(`no scripted output for: ${command}`);
      const out = typeof rule[1] === 'function' ? rule[1](command) : rule[1];
      return { exitCode: 0, stdout: '', stderr: '', durationMs: 1, ...out };
    },
    stream: async () => {
      throw new Error('not scripted');
    },
    putFile: async () => {
      throw new Error('not scripted');
    },
    getFile: async () => {
      throw new Error('not scripted');
    },
    close: async () => {},
  };
}

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const hex = (s: string) => Buffer.from(s).toString('hex');
const ref = (key: string): SecretRef => ({ provider: 'local', key });

const ctx = (transport: Transport, contents: Partial<ContentSource> = {}): ExecutorContext => ({
  transport,
  operation: 'op-1',
  seq: 3,
  contents: { read: async () => new Uint8Array(), ...contents },
});

/** The probe of one path: its first line and any ancestors' lines. */
const probeOf = (path: string) =>
  new RegExp(`^p='${path.replaceAll('/', '\\/').replaceAll('.', '\\.')}'\\nif \\[ -L`);
const WRITE = /^set -e\n/;
// A probe writes nothing but, for a file it finds, the Change's own copy under the backup folder.
const isProbe = (command: string) => /^p='[^']*'\nif \[ -L/.test(command);
const isWrite = (command: string) =>
  !isProbe(command) && /mktemp|ln -s|mkdir|rm -f|rmdir|chown|chmod/.test(command);

const fileChange = (path: string, to: object, kind: Change['kind'] = 'file.write'): Change =>
  ({ kind, section: 'files', key: path, from: null, to: { path, ...to }, disruptive: false }) as Change;

// An ed25519 public key blob built by hand: type string, then the 32-byte key.
const part = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
const blobOf = (type: string, seed: number) =>
  Buffer.concat([part(Buffer.from(type)), part(Buffer.alloc(32, seed))]).toString('base64');
const BLOB = blobOf('ssh-ed25519', 7);
const OTHER = blobOf('ssh-ed25519', 9);
const FP = keyFingerprint(BLOB);
const KEY = { user: 'root', type: 'ssh-ed25519', fingerprint: FP, keyRef: ref(`web-a/ssh/root/${FP}`) };

describe('SSH key lines', () => {
  it('takes one line of a key type, its key and a comment whose fingerprint is the Change’s', () => {
    expect(checkedKeyLine(Buffer.from(`ssh-ed25519 ${BLOB} deploy@web-a\n`), KEY, 'root:x')).toBe(
      `ssh-ed25519 ${BLOB} deploy@web-a`,
    );
    expect(checkedKeyLine(Buffer.from(`ssh-ed25519 ${BLOB}`), KEY, 'root:x')).toBe(`ssh-ed25519 ${BLOB}`);
    expect(checkedKeyLine(Buffer.from(`ssh-ed25519\t${BLOB}`), KEY, 'root:x')).toBe(`ssh-ed25519\t${BLOB}`);
    // The fingerprint is OpenSSH's: SHA-256 of the blob, base64 without padding.
    expect(FP).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('refuses options, a second line, another key or type, naming the Change and never showing the line', () => {
    const hostile = [
      [`from="10.0.0.0/8" ssh-ed25519 ${BLOB} x`, /options/],
      [`command="/bin/sh -c 'id'" ssh-ed25519 ${BLOB}`, /options/],
      [`ssh-ed25519 ${BLOB} a\nssh-ed25519 ${OTHER} b`, /line break/],
      [`ssh-ed25519 ${BLOB} a\r`, /line break/],
      [`ssh-ed25519 ${OTHER} x`, /fingerprint/],
      [`ssh-rsa ${BLOB} x`, /not "ssh-ed25519"/],
      [`ssh-ed25519 ${blobOf('ssh-rsa', 7)}`, /does not hold a ssh-ed25519 key/],
      ['ssh-ed25519 not*base64', /does not hold/],
    ] as const;
    for (const [line, why] of hostile) {
      let error: unknown;
      try {
        checkedKeyLine(Buffer.from(line), KEY, 'root:SHA256:x');
      } catch (e) {
        error = e;
      }
      expect(error, line).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toMatch(why);
      expect((error as Error).message).toMatch(/root:SHA256:x/);
      expect((error as Error).message).not.toContain(BLOB);
    }
    expect(() => checkedKeyLine(Buffer.from([0xff, 0xfe]), KEY, 'k')).toThrow(/UTF-8/);
  });

  it('finds a key behind options with quoted spaces and removes exactly its lines', () => {
    const text = [
      '# deploy keys',
      `command="echo a b",no-pty ssh-ed25519 ${BLOB} one`,
      `ssh-ed25519 ${OTHER} other`,
      `ssh-ed25519 ${BLOB} two`,
      '',
    ].join('\n');
    expect(keyOfLine(`from="a b" ssh-ed25519 ${BLOB} c`)).toEqual({ type: 'ssh-ed25519', blob: BLOB });
    expect(keyOfLine('# ssh-ed25519 AAAA')).toBeUndefined();
    expect(holdsKey(text, FP)).toBe(true);
    expect(withoutKey(text, FP)).toBe(`# deploy keys\nssh-ed25519 ${OTHER} other\n`);
    expect(holdsKey(withoutKey(text, FP), FP)).toBe(false);
    expect(withLine('a', 'b')).toBe('a\nb\n');
    expect(withLine('', 'b')).toBe('b\n');
  });
});

describe('sshKeyExecutor', () => {
  const change: Change = {
    kind: 'sshkey.authorize',
    section: 'sshKeys',
    key: `root:${FP}`,
    from: null,
    to: KEY,
    disruptive: false,
  };
  const PASSWD = [/^getent -- passwd 'root'$/, { stdout: 'root:x:0:0:root:/root:/bin/bash\n' }] as const;
  const KEYS = '/root/.ssh/authorized_keys';

  it('says unchanged and writes nothing when the key is there already, behind options', async () => {
    const existing = `no-pty ssh-ed25519 ${BLOB} old\n`;
    const transport = scripted([
      PASSWD,
      [probeOf(KEYS), { stdout: `file 600 root root ${sha(existing)}\n` }],
      [/^cat -- '\/root\/\.ssh\/authorized_keys'$/, { stdout: existing }],
      [/^umask 077 && mkdir -p -- '\/var\/lib\/persona\/backup\/op-1'/, {}],
    ]);
    const opened: string[] = [];
    const c = ctx(transport, {
      readSealed: async () => {
        opened.push('opened');
        return Buffer.from(`ssh-ed25519 ${BLOB}`);
      },
    });
    const prior = await sshKeyExecutor.prepare(c, change);
    expect(await sshKeyExecutor.apply(c, change, prior)).toMatchObject({ status: 'unchanged' });
    expect(opened).toEqual([]);
    expect(transport.sent.filter((s) => WRITE.test(s))).toEqual([]);
  });

  it('refuses a sealed line with options before writing anything', async () => {
    const transport = scripted([PASSWD, [probeOf(KEYS), { stdout: 'absent\n' }], [/^cat/, { stdout: '' }]]);
    const c = ctx(transport, {
      readSealed: async () => Buffer.from(`command="/tmp/x" ssh-ed25519 ${BLOB}`),
    });
    const prior = await sshKeyExecutor.prepare(c, change);
    await expect(sshKeyExecutor.apply(c, change, prior)).rejects.toBeInstanceOf(InvalidInputError);
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });

  it('refuses an authorized_keys that is a symbolic link, and a key of a user the host lacks', async () => {
    const linked = scripted([PASSWD, [probeOf(KEYS), { stdout: `symlink root root ${hex('/tmp/k')}\n` }]]);
    await expect(sshKeyExecutor.prepare(ctx(linked), change)).rejects.toThrow(/symbolic link/);
    expect(linked.sent.filter(isWrite)).toEqual([]);
    const nobody = scripted([[/^getent/, { exitCode: 2 }]]);
    await expect(sshKeyExecutor.prepare(ctx(nobody), change)).rejects.toBeInstanceOf(HostStateConflictError);
  });

  it('refuses a user name a program could read as an option before any command', async () => {
    const transport = scripted([]);
    const bad = { ...change, key: `-r:${FP}`, to: { ...KEY, user: '-r' } } as Change;
    await expect(sshKeyExecutor.prepare(ctx(transport), bad)).rejects.toBeInstanceOf(InvalidInputError);
    expect(transport.sent).toEqual([]);
  });
});

describe('fileExecutor: folders and links', () => {
  it('makes a folder with its owner and a five-digit mode, so chmod clears a set-group-ID bit too', async () => {
    let made = false;
    const transport = scripted([
      [
        probeOf('/etc/nginx'),
        () => ({ stdout: made ? 'directory 755 root root\n' : 'directory 2755 root adm\n' }),
      ],
      [
        WRITE,
        () => {
          made = true;
          return {};
        },
      ],
    ]);
    const change = fileChange('/etc/nginx', {
      type: 'directory',
      mode: '0755',
      owner: 'root',
      group: 'root',
    });
    const prior = await fileExecutor.prepare(ctx(transport), change);
    expect(prior).toMatchObject({ state: { kind: 'directory', mode: '2755', owner: 'root', group: 'adm' } });
    expect(await fileExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'changed' });
    const script = transport.sent.find((s) => WRITE.test(s)) ?? '';
    expect(script).toContain('chown -h -- \'root:root\' "$p"');
    expect(script).toContain('chmod -- \'00755\' "$p"');
    expect(script).not.toContain('mkdir');
    expect(await fileExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('writes a link’s target as one quoted word, newline and ".." included, and renames it with mv -T', async () => {
    const target = '../odd\nname/..';
    let linked = false;
    const transport = scripted([
      [
        probeOf('/etc/nginx/sites-enabled/persona'),
        () => ({ stdout: linked ? `symlink root root ${hex(target)}\n` : 'absent\n' }),
      ],
      [
        WRITE,
        () => {
          linked = true;
          return {};
        },
      ],
    ]);
    const change = fileChange('/etc/nginx/sites-enabled/persona', {
      type: 'symlink',
      owner: 'root',
      group: 'root',
      target,
    });
    const prior = await fileExecutor.prepare(ctx(transport), change);
    expect(await fileExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'changed' });
    const script = transport.sent.find((s) => WRITE.test(s)) ?? '';
    expect(script).toContain(`ln -s -- '../odd\nname/..' "$t"`);
    expect(script).toContain('mv -T -f -- "$t" "$p"');
    expect(await fileExecutor.apply(ctx(transport), change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('refuses a folder or link below a symlinked folder before writing anything', async () => {
    const transport = scripted([[/^p=/, { stdout: 'absent\nlink /etc/nginx\n' }]]);
    for (const to of [
      { type: 'directory', mode: '0755' },
      { type: 'symlink', target: '/etc/passwd' },
    ]) {
      const change = fileChange('/etc/nginx/sites-enabled', to);
      await expect(fileExecutor.prepare(ctx(transport), change)).rejects.toThrow(
        /below \/etc\/nginx, which is a symbolic link/,
      );
    }
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });

  it('never replaces a folder with a link, nor deletes a folder that is not empty', async () => {
    const transport = scripted([
      [/^p=/, { stdout: 'directory 755 root root\n' }],
      [/^if rmdir/, { stdout: 'kept\n' }],
    ]);
    const link = fileChange('/etc/nginx', { type: 'symlink', target: '/srv/nginx' });
    await expect(fileExecutor.apply(ctx(transport), link, null)).rejects.toThrow(
      /folder on the host, not a symbolic link/,
    );
    const remove = {
      ...fileChange('/etc/nginx', {}),
      kind: 'file.delete',
      from: { path: '/etc/nginx', type: 'directory' },
      to: null,
    } as Change;
    await expect(fileExecutor.apply(ctx(transport), remove, null)).rejects.toThrow(/not empty/);
    expect(transport.sent.filter((s) => WRITE.test(s))).toEqual([]);
  });

  it('refuses a link target holding a NUL before any command', async () => {
    const transport = scripted([[/^p=/, { stdout: 'absent\n' }]]);
    const change = fileChange('/etc/x', { type: 'symlink', target: 'a\0b' });
    await expect(fileExecutor.apply(ctx(transport), change, null)).rejects.toBeInstanceOf(InvalidInputError);
    expect(transport.sent.filter((s) => WRITE.test(s))).toEqual([]);
  });
});

describe('fileExecutor: sealed files', () => {
  const SECRET = Buffer.from('root:$y$j9T$secret-hash:19000:0:99999:7:::\n');
  const HOST_SHADOW = Buffer.from('root:*:19000:0:99999:7:::\n');
  const change = fileChange('/etc/shadow', {
    type: 'file',
    size: SECRET.length,
    mode: '0640',
    owner: 'root',
    group: 'shadow',
    sensitive: true,
    secretRef: ref('web-a/file/etc/shadow'),
  });

  it('fails the Change naming the path when the apply cannot open sealed values, writing nothing', async () => {
    const transport = scripted([
      [probeOf('/etc/shadow'), { stdout: `file 640 root shadow ${sha(HOST_SHADOW)}\n` }],
    ]);
    const error = await fileExecutor.apply(ctx(transport), change, null).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as Error).message).toMatch(/\/etc\/shadow holds sealed content/);
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });

  it('writes it with its owner and mode, checks it on the host, and keeps its bytes and hashes out of commands, outcomes and the prior', async () => {
    let written = false;
    const transport = scripted([
      [
        probeOf('/etc/shadow'),
        () => ({ stdout: `file 640 root shadow ${sha(written ? SECRET : HOST_SHADOW)}\n` }),
      ],
      [/^umask 077 && mkdir -p -- '\/var\/lib\/persona\/backup\/op-1' && cp -P -p/, {}],
      [
        WRITE,
        () => {
          written = true;
          // The write script hashes the file where it landed, last.
          return { stdout: `${sha(SECRET)}\n` };
        },
      ],
    ]);
    const opened: string[] = [];
    const c = ctx(transport, {
      readSealed: async (secret, field) => {
        opened.push(`${secret.provider === 'local' ? secret.key : ''} ${field}`);
        return SECRET;
      },
    });
    const prior = await fileExecutor.prepare(c, change);
    const outcome = await fileExecutor.apply(c, change, prior);
    expect(outcome).toEqual({
      status: 'changed',
      detail: 'wrote /etc/shadow (sealed content, root:shadow, 0640)',
    });
    expect(opened).toEqual(['web-a/file/etc/shadow files /etc/shadow secretRef']);
    const script = transport.sent.find((s) => WRITE.test(s)) ?? '';
    expect(script).toContain('chown -- \'root:shadow\' "$t"');
    expect(script).toContain('chmod -- \'0640\' "$t"');
    expect(script).toContain('mktemp');
    // The content and its hash go on standard input only: a command line is readable by all.
    expect(transport.stdin).toEqual([`${sha(SECRET)}\n${SECRET.toString()}`]);
    const visible = JSON.stringify([transport.sent, outcome, prior]);
    expect(visible).not.toContain('secret-hash');
    expect(visible).not.toContain(sha(SECRET));
    expect(JSON.stringify(prior)).not.toContain(sha(HOST_SHADOW));
    expect(prior).toMatchObject({
      state: { kind: 'file', mode: '640' },
      backup: '/var/lib/persona/backup/op-1/3',
    });
    expect(await fileExecutor.apply(c, change, prior)).toMatchObject({ status: 'unchanged' });
  });

  it('reports bytes that landed wrong without naming the sealed content’s hash', async () => {
    const transport = scripted([
      [probeOf('/etc/shadow'), { stdout: 'absent\n' }],
      [WRITE, { stdout: `${sha('other')}\n` }],
    ]);
    const c = ctx(transport, { readSealed: async () => SECRET });
    const error = await fileExecutor.apply(c, change, null).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/sealed content's SHA-256/);
    expect((error as Error).message).not.toContain(sha(SECRET));
    expect((error as Error).message).not.toContain(sha('other'));
  });

  it('records a file known only by its HMAC, with no reference to open, as unresolved', async () => {
    const transport = scripted([[probeOf('/etc/app.key'), { stdout: 'absent\n' }]]);
    const hmacOnly = fileChange('/etc/app.key', { type: 'file', hash: `hmac-sha256:${sha('k')}` });
    expect(await fileExecutor.apply(ctx(transport), hmacOnly, null)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(/no reference to open it/),
    });
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });

  it('refuses sealed bytes of another size than the Profile recorded, writing nothing', async () => {
    const transport = scripted([[probeOf('/etc/shadow'), { stdout: 'absent\n' }]]);
    const c = ctx(transport, { readSealed: async () => Buffer.from('short') });
    await expect(fileExecutor.apply(c, change, null)).rejects.toThrow(
      /not the one its Profile version recorded/,
    );
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });
});

describe('DNS settings', () => {
  const dns = {
    nameservers: ['10.213.0.1', 'fd00::53'],
    search: ['web.internal', 'example.com.'],
    options: ['ndots:2', 'rotate'],
  };

  it('writes nameserver, search and options lines that read back as the same settings', () => {
    expect(resolvConf(dns)).toBe(
      'nameserver 10.213.0.1\nnameserver fd00::53\nsearch web.internal example.com.\noptions ndots:2 rotate\n',
    );
    expect(parseResolvConf(resolvConf(dns))).toEqual(dns);
    expect(resolvConf({ nameservers: [], search: [], options: [] })).toBe('');
    expect(dnsProblems(dns)).toEqual([]);
  });

  it('refuses a value that is not an address, a domain name or an option word, naming it', () => {
    const issues = dnsProblems({
      nameservers: ['1.2.3.4\nnameserver evil', '10.0.0.0/8', 'dns.example'],
      search: ['a b', 'evil\noptions debug', '-x.example', `${'a'.repeat(64)}.example`],
      options: ['ndots:2 rotate', 'debug\n', 'x;y'],
    });
    expect(issues.map((i) => i.path)).toEqual([
      'dns.nameservers[0]',
      'dns.nameservers[1]',
      'dns.nameservers[2]',
      'dns.search[0]',
      'dns.search[1]',
      'dns.search[2]',
      'dns.search[3]',
      'dns.options[0]',
      'dns.options[1]',
      'dns.options[2]',
    ]);
    // Shown escaped: a value cannot add a line to a message either.
    expect(issues[0]?.message).toContain('"1.2.3.4\\nnameserver evil"');
  });

  const change = (to: object | null): Change =>
    ({ kind: 'dns.set', section: 'dns', key: 'dns', from: null, to, disruptive: false }) as Change;

  it('refuses hostile settings before any command', async () => {
    const transport = scripted([]);
    const bad = change({ nameservers: ['1.2.3.4\nnameserver evil'], search: [], options: [] });
    await expect(dnsExecutor.prepare(ctx(transport), bad)).rejects.toBeInstanceOf(InvalidInputError);
    expect(transport.sent).toEqual([]);
  });

  it('records a symlinked resolv.conf unresolved with its reason and leaves the link alone', async () => {
    const transport = scripted([
      [
        probeOf('/etc/resolv.conf'),
        { stdout: `symlink root root ${hex('../run/systemd/resolve/stub-resolv.conf')}\n` },
      ],
    ]);
    const c = change(dns);
    const prior = await dnsExecutor.prepare(ctx(transport), c);
    expect(await dnsExecutor.apply(ctx(transport), c, prior)).toMatchObject({
      status: 'unresolved',
      detail: expect.stringMatching(
        /symbolic link to "\.\.\/run\/systemd\/resolve\/stub-resolv\.conf".*systemd-resolved/,
      ),
    });
    expect(await dnsExecutor.revert(ctx(transport), c, prior)).toMatchObject({ status: 'unchanged' });
    expect(transport.sent.filter(isWrite)).toEqual([]);
  });

  it('says unchanged when resolv.conf already holds the settings, comments and order of lines aside', async () => {
    const text =
      '# from dhcp\nsearch web.internal example.com.\nnameserver 10.213.0.1\nnameserver fd00::53\noptions ndots:2 rotate\n';
    const transport = scripted([
      [probeOf('/etc/resolv.conf'), { stdout: `file 644 root root ${sha(text)}\n` }],
      [/^cat -- '\/etc\/resolv\.conf'$/, { stdout: text }],
    ]);
    expect(await dnsExecutor.apply(ctx(transport), change(dns), null)).toMatchObject({ status: 'unchanged' });
  });

  it('is registered with the other Debian executors, as are SSH keys', () => {
    expect(DEBIAN_EXECUTORS.get('dns.set')).toBe(dnsExecutor);
    expect(DEBIAN_EXECUTORS.get('sshkey.authorize')).toBe(sshKeyExecutor);
    expect(DEBIAN_EXECUTORS.get('sshkey.revoke')).toBe(sshKeyExecutor);
  });
});
