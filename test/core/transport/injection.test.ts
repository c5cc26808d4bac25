// Data never becomes code on a real host: hostile strings go through the one quoting helper and
// the real SSH transport to a real test host, and the host runs exactly the intended program
// with exactly that argument. One host, one SSH connection for the whole file.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost } from '../../../core/capture/collect.js';
import { snapshotCommand } from '../../../core/capture/operation.js';
import { InvalidInputError } from '../../../core/errors.js';
import { MemoryHostKeyStore } from '../../../core/transport/host-keys.js';
import { sh } from '../../../core/transport/shell.js';
import { SshTransport } from '../../../core/transport/ssh.js';
import type { Transport } from '../../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';
import { hostileString } from './hostile.js';
import { startSshd } from './sshd.js';

let host: TestHost;
let ssh: SshTransport;

// What a hostile name would run if it were ever read as code: the tests look for this file.
const CANARY = '/pwned';
const ATTEMPTS = [
  `$(touch ${CANARY})`,
  `\`touch ${CANARY}\``,
  `;touch ${CANARY};`,
  `\ntouch ${CANARY}\n`,
  `'; touch ${CANARY}; '`,
  `"; touch ${CANARY}; "`,
];

beforeAll(async () => {
  host = await createHost({ name: 'inject' });
  ssh = sshTransportTo(host);
}, 600_000);

afterAll(async () => {
  await ssh?.close();
  await destroyAllHosts();
}, 120_000);

/** Runs the command and returns its standard output as bytes, exactly as the host wrote them. */
async function stdoutBytes(transport: Transport, command: string, env?: Record<string, string>) {
  const run = await transport.stream(command, env ? { env } : {});
  const chunks: Buffer[] = [];
  for await (const chunk of run.stdout) chunks.push(chunk as Buffer);
  const { exitCode, stderr } = await run.done;
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: '' });
  return Buffer.concat(chunks);
}

const exists = async (path: string) => (await host.exec(`test -e '${path}'`)).exitCode === 0;
const canaryAbsent = async () => !(await exists(CANARY));

const withAttempts = fc.oneof(hostileString, fc.constantFrom(...ATTEMPTS));

describe('a hostile string sent to a real host over SSH', () => {
  it('would be seen: the canary check finds a file that an unquoted attempt creates', async () => {
    await ssh.run(`printf '%s' ${ATTEMPTS[0]?.replace(CANARY, `${CANARY}-control`)}`);
    expect(await exists(`${CANARY}-control`)).toBe(true);
    expect(await canaryAbsent()).toBe(true);
  });

  it('reaches printf as exactly one argument, byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(withAttempts, async (value) => {
        // printf repeats its format for each argument: one NUL at the end means one argument.
        const out = await stdoutBytes(ssh, sh`printf '%s\\0' ${value}`);
        expect(out.equals(Buffer.from(`${value}\0`, 'utf8'))).toBe(true);
      }),
      { numRuns: 100 },
    );
    expect(await canaryAbsent()).toBe(true);
  });

  it('reaches the command as exactly that value through its environment', async () => {
    await fc.assert(
      fc.asyncProperty(withAttempts, async (value) => {
        const out = await stdoutBytes(ssh, `printf '%s\\0' "$V"`, { V: value });
        expect(out.equals(Buffer.from(`${value}\0`, 'utf8'))).toBe(true);
      }),
      { numRuns: 50 },
    );
    expect(await canaryAbsent()).toBe(true);
  });

  it('keeps a very long argument whole', async () => {
    // 48 KB, which quoting makes about 110 KB: near the most a host takes as one command line.
    const value = `-${"'$(x)`\n\x1b😀".repeat(4000)}`;
    const out = await stdoutBytes(ssh, sh`printf '%s\\0' ${value}`);
    expect(out.equals(Buffer.from(`${value}\0`, 'utf8'))).toBe(true);
  });

  it('is refused, not sent, when the command line would be longer than a host takes', async () => {
    await expect(ssh.run(sh`printf '%s' ${'a'.repeat(140_000)}`)).rejects.toMatchObject({
      code: 'TOO_LARGE',
      limit: 131_071,
    });
    // The connection is still there for the next command.
    expect((await ssh.run('echo ok')).stdout).toBe('ok\n');
  });

  it('is refused before anything is sent when it holds a NUL, naming the field', async () => {
    expect(() => sh`printf '%s' ${'a\0b'}`).toThrow(InvalidInputError);
    await expect(ssh.run('true', { env: { V: 'a\0b' } })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [{ path: 'env.V', message: 'contains a NUL byte' }],
    });
    await expect(ssh.getFile('/etc/passwd\0/x')).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [expect.objectContaining({ path: 'path' })],
    });
  });
});

describe('application trees and processes with hostile names, on a real host', () => {
  // Legal in the path grammar: spaces, quotes, wildcards, expansions, a dash after the first name.
  const trees = [
    '/srv/my app',
    `/srv/it's $(touch ${CANARY}) \`touch ${CANARY}\``,
    '/srv/*',
    '/srv/back\\slash ',
    '/srv/--checkpoint-action=exec=touch /pwned',
  ];
  const content = (i: number) => `setting=${i}\n`;
  const process = 'web app';

  beforeAll(async () => {
    for (const [i, tree] of trees.entries()) await host.writeFile(`${tree}/app.conf`, content(i));
    // A process whose comm holds a space, with a value in its environment.
    await host.run(`cp /bin/sleep '/usr/local/bin/${process}'`);
    await host.run(
      `cd / && APP_MODE=hostile-names setsid '/usr/local/bin/${process}' 100000 >/dev/null 2>&1 &`,
    );
  }, 120_000);

  it('are captured whole: each tree listed and hashed, the process found by its name', async () => {
    const capture = await captureHost(ssh, {
      name: 'inject',
      capturedAt: new Date().toISOString(),
      application: { paths: trees, processes: [process] },
    });
    const files = capture.profile.spec.configuration?.files ?? [];
    for (const [i, tree] of trees.entries()) {
      const file = files.find((f) => f.path === `${tree}/app.conf`);
      expect(file, tree).toBeDefined();
      expect(file?.hash).toBe(`sha256:${createHash('sha256').update(content(i)).digest('hex')}`);
    }
    expect(capture.profile.spec.configuration?.env).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'APP_MODE', value: 'hostile-names' })]),
    );
    expect(await canaryAbsent()).toBe(true);
  });

  it('are archived by the snapshot command as exactly those trees, and nothing runs', async () => {
    const run = await ssh.stream(snapshotCommand({ paths: trees }));
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      names.push(header.name.replace(/\/$/, ''));
      stream.on('end', next);
      stream.resume();
    });
    await pipeline(run.stdout, extract);
    const { exitCode, stderr } = await run.done;
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: '' });
    const files = trees.map((t) => `${t.slice(1)}/app.conf`);
    for (const file of files) expect(names).toContain(file);
    // Nothing but /etc, those files and the directories that lead to them.
    const others = names.filter((n) => n !== 'etc' && !n.startsWith('etc/'));
    expect(others.filter((n) => !files.some((f) => f === n || f.startsWith(`${n}/`)))).toEqual([]);
    expect(await canaryAbsent()).toBe(true);
  });
});

describe('files with hostile names, put and read over SSH', () => {
  // Legal names in the grammar that a shell, cat, mv or chmod would misread if not quoted and
  // put after `--`.
  const names = ["it's $(touch pwned)", '`touch pwned`', '-n', '--help', '* ?', 'back\\slash'];

  it('writes and reads exactly the file named through SFTP on a real host', async () => {
    for (const [i, name] of names.entries()) {
      const path = `/srv/files/${name}`;
      await host.run('mkdir -p /srv/files');
      await ssh.putFile(path, Buffer.from(`content ${i}`), { mode: 0o600 });
      expect(Buffer.from(await ssh.getFile(path)).toString()).toBe(`content ${i}`);
    }
    const listed = (await host.run("find /srv/files -type f -printf '%f\\0'")).split('\0').filter(Boolean);
    expect(listed.sort()).toEqual([...names].sort());
    // A newline is refused, naming the path: no program that reads lines could take it whole.
    await expect(ssh.putFile('/srv/files/new\nline', Buffer.from('x'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [{ path: 'path', message: '"/srv/files/new\\nline" contains a control character' }],
    });
    expect(await canaryAbsent()).toBe(true);
  });

  it('writes and reads exactly the file named through the shell on a server without SFTP', async () => {
    const plain = await startSshd({ sftp: false });
    const transport = new SshTransport({
      host: plain.host,
      port: plain.port,
      username: 'root',
      privateKey: plain.clientKey.privateKey,
      hostKeys: new MemoryHostKeyStore({ [`[${plain.host}]:${plain.port}`]: plain.hostKey.fingerprint }),
    });
    try {
      const dir = join(plain.dir, 'files');
      await transport.run(sh`mkdir -- ${dir}`);
      for (const [i, name] of names.entries()) {
        await transport.putFile(join(dir, name), Buffer.from(`content ${i}`), { mode: 0o640 });
        expect(Buffer.from(await transport.getFile(join(dir, name))).toString()).toBe(`content ${i}`);
        expect(readFileSync(join(dir, name), 'utf8')).toBe(`content ${i}`);
      }
      expect(readdirSync(dir).sort()).toEqual([...names].sort());
      expect(plain.log()).toContain('subsystem request for sftp');
    } finally {
      await transport.close();
      await plain.stop();
    }
  });
});
