import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { HostKeyMismatchError, TransportError, UnknownHostKeyError } from '../../../core/transport/errors.js';
import { FileHostKeyStore, MemoryHostKeyStore } from '../../../core/transport/host-keys.js';
import { coalesceWrites, SshTransport, type SshTransportOptions } from '../../../core/transport/ssh.js';
import { generateKey, startSshd, type TestSshd } from './sshd.js';

let sshd: TestSshd;
/** One transport for the tests that do not care about connections: each connect costs ~0.3 s here. */
let shared: SshTransport;
const open: SshTransport[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  shared = connect();
  open.pop();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  await shared?.close();
  await sshd?.stop();
});

/** A transport to the test server, its host key pinned, authenticating with the test key. */
function connect(overrides: Partial<SshTransportOptions> = {}, server: TestSshd = sshd): SshTransport {
  const transport = new SshTransport({
    host: server.host,
    port: server.port,
    username: 'root',
    ...(overrides.agent ? {} : { privateKey: server.clientKey.privateKey }),
    hostKeys: new MemoryHostKeyStore({ [`[${server.host}]:${server.port}`]: server.hostKey.fingerprint }),
    killGraceMs: 300,
    ...overrides,
  });
  open.push(transport);
  return transport;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** A process is gone when /proc no longer has it or it is a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('SshTransport commands', () => {
  it('returns the exit code, standard output and standard error of a command', async () => {
    const ssh = shared;

    const result = await ssh.run('echo out; echo err >&2; exit 3');

    expect(result).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(ssh.target).toBe(`ssh://root@127.0.0.1:${sshd.port}`);
  });

  it('runs the command with sh and feeds it the given standard input', async () => {
    const ssh = shared;

    const result = await ssh.run('tr a-z A-Z; echo "$0"', { stdin: 'héllo\n' });

    expect(result.stdout).toBe('HéLLO\nsh\n');
  });

  it('gives a command that does not read its input end-of-file instead of a hang', async () => {
    const ssh = shared;

    expect((await ssh.run('cat; echo done')).stdout).toBe('done\n');
  });

  it('passes environment values through unchanged, whatever shell syntax they contain', async () => {
    const ssh = shared;
    const pwned = join(sshd.dir, 'pwned');
    const env = {
      QUOTES: `it's "quoted" \\ back'slash`,
      EXPANSIONS: `$HOME $(touch ${pwned}) \`touch ${pwned}\` \${PATH}`,
      INJECTION: `'; touch ${pwned}; echo '`,
      LINES: 'one\ntwo\n\tthree ',
      UNICODE: 'naïve ☃ 日本',
      EMPTY: '',
    };

    const result = await ssh.run(
      'for n in QUOTES EXPANSIONS INJECTION LINES UNICODE EMPTY; do printenv "$n"; echo "<$n>"; done',
      {
        env,
      },
    );

    expect(result.stdout).toBe(
      Object.entries(env)
        .map(([name, value]) => `${value}\n<${name}>\n`)
        .join(''),
    );
    expect(existsSync(pwned)).toBe(false);
  });

  it('refuses an environment variable name that a shell would misread', async () => {
    const ssh = shared;

    const error = await rejection(ssh.run('true', { env: { 'A;B': 'x' } }));

    expect(error).toBeInstanceOf(InvalidInputError);
  });

  it('runs every command of a transport over one connection, also when they overlap', async () => {
    const before = sshd.logins();
    const ssh = connect();

    for (let i = 0; i < 5; i++) await ssh.run(`echo ${i}`);
    const parallel = await Promise.all(Array.from({ length: 12 }, (_, i) => ssh.run(`echo ${i}`)));
    await ssh.putFile(join(sshd.dir, 'one-connection'), Buffer.from('x'));
    await ssh.getFile(join(sshd.dir, 'one-connection'));

    expect(parallel.map((r) => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `${i}\n`));
    expect(sshd.logins() - before).toBe(1);
  });

  it('reports a command whose connection dies as disconnected and reconnects for the next one', async () => {
    const before = sshd.logins();
    const others = sshd.sessions();
    const ssh = connect();
    await ssh.run('true');
    const session = sshd.sessions().find((pid) => !others.includes(pid));
    if (session === undefined) throw new Error('no sshd process for the new connection');

    const running = ssh.run('sleep 5');
    await new Promise((r) => setTimeout(r, 200));
    process.kill(session, 'SIGKILL');
    const error = await rejection(running);
    const after = await ssh.run('echo again');

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'disconnected' });
    expect(after.stdout).toBe('again\n');
    expect(sshd.logins() - before).toBe(2);
  });

  it('reconnects without an error when the connection dropped between two commands', async () => {
    const before = sshd.logins();
    const others = sshd.sessions();
    const ssh = connect();
    await ssh.run('true');
    const session = sshd.sessions().find((pid) => !others.includes(pid));
    if (session === undefined) throw new Error('no sshd process for the new connection');

    // No pause: the next command may find the connection already known dead, or still
    // believed alive with its channel refused; both must end in one new connection.
    process.kill(session, 'SIGKILL');
    const result = await ssh.run('echo back');

    expect(result.stdout).toBe('back\n');
    expect(sshd.logins() - before).toBe(2);
  });

  it('kills a timed-out command together with the processes it started', async () => {
    const ssh = shared;
    const pidFile = join(sshd.dir, 'sleeper.pid');
    const started = Date.now();

    const error = await rejection(ssh.run(`sleep 30 & echo $! > ${pidFile}; wait`, { timeoutMs: 400 }));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'timeout' });
    expect((error as Error).message).toContain('sleep 30');
    // Ended by its time-out, not by the 30 s sleep (the bound leaves room for a busy machine).
    expect(Date.now() - started).toBeLessThan(15_000);
    const sleeper = Number(readFileSync(pidFile, 'utf8'));
    await until(() => !alive(sleeper), 1000);
    expect((await ssh.run('echo still usable')).exitCode).toBe(0);
  });
});

describe('SshTransport streams', () => {
  it('streams a tar archive out of the host', async () => {
    const ssh = shared;

    const handle = await ssh.stream('tar -cf - -C /etc hostname');
    const entries: { name: string; size: number }[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, body, next) => {
      let size = 0;
      body.on('data', (chunk: unknown) => {
        size += (chunk as Buffer).length;
      });
      body.on('end', () => {
        entries.push({ name: header.name, size });
        next();
      });
    });
    await pipeline(handle.stdout, extract);
    const { exitCode, stderr } = await handle.done;

    expect(exitCode).toBe(0);
    expect(stderr).toBe('');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.name).toBe('hostname');
    expect(entries[0]?.size).toBeGreaterThan(0);
  });

  it('streams a tar archive into the host', async () => {
    const ssh = shared;
    const into = join(sshd.dir, 'unpacked');
    const pack = tar.pack();
    pack.entry({ name: 'a.txt', mode: 0o640 }, 'alpha\n');
    pack.entry({ name: 'sub/b.bin', mode: 0o600 }, Buffer.from([0, 1, 2, 255]));
    pack.finalize();

    const handle = await ssh.stream(`mkdir -p ${into} && tar -xf - -C ${into}`, { input: true });
    handle.stdout.resume();
    await pipeline(pack, handle.stdin);
    const { exitCode } = await handle.done;

    expect(exitCode).toBe(0);
    expect(readFileSync(join(into, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect([...readFileSync(join(into, 'sub/b.bin'))]).toEqual([0, 1, 2, 255]);
    expect(statSync(join(into, 'a.txt')).mode & 0o777).toBe(0o640);
  });
});

describe('coalesceWrites', () => {
  it('holds the writes of one turn of the event loop and sends them together, in order, at its end', async () => {
    const received: Buffer[] = [];
    const server = createServer((s) => s.on('data', (d: Buffer) => received.push(d)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const sock = new Socket();
    sock.connect({ host: '127.0.0.1', port });
    coalesceWrites(sock);
    sock.setNoDelay(true);
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    try {
      const pieces = [Buffer.from('len.'), Buffer.alloc(32_768, 1), Buffer.from('tag-of-16-bytes!')];
      for (const piece of pieces) sock.write(piece);
      // Held in the socket until the turn ends: ssh2's pieces of a packet go in one writev.
      expect(sock.writableLength).toBe(4 + 32_768 + 16);
      await new Promise((resolve) => setImmediate(resolve));
      expect(sock.writableLength).toBe(0);
      sock.write(Buffer.from('next turn'));
      expect(sock.writableLength).toBe(9);
      await new Promise<void>((resolve) => sock.end(resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(Buffer.concat(received)).toEqual(Buffer.concat([...pieces, Buffer.from('next turn')]));
    } finally {
      sock.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('SshTransport files', () => {
  const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));

  it('puts a file with its mode and gets the same bytes back', async () => {
    const ssh = shared;
    const path = join(sshd.dir, 'put-sftp.bin');

    await ssh.putFile(path, bytes, { mode: 0o750 });
    const back = await ssh.getFile(path);

    expect(Buffer.from(back).equals(bytes)).toBe(true);
    expect(statSync(path).mode & 0o7777).toBe(0o750);
  });

  it('keeps the mode of a file it replaces when no mode is given, and leaves no temporary file', async () => {
    const ssh = shared;
    const path = join(sshd.dir, 'replaced.conf');
    await ssh.putFile(path, Buffer.from('v1'), { mode: 0o600 });

    await ssh.putFile(path, Buffer.from('v2'));

    expect(readFileSync(path, 'utf8')).toBe('v2');
    expect(statSync(path).mode & 0o7777).toBe(0o600);
    expect((await ssh.run(`ls ${sshd.dir} | grep -c persona- || true`)).stdout.trim()).toBe('0');
  });

  it('reports a missing file as NotFoundError', async () => {
    const ssh = shared;

    const error = await rejection(ssh.getFile(join(sshd.dir, 'no-such-file')));

    expect(error).toBeInstanceOf(NotFoundError);
  });

  it('falls back to cat over exec on a server without SFTP', async () => {
    const plain = await startSshd({ sftp: false });
    try {
      const ssh = connect({}, plain);
      const path = join(plain.dir, 'put-cat.bin');

      await ssh.putFile(path, bytes, { mode: 0o604 });
      const back = await ssh.getFile(path);
      const missing = await rejection(ssh.getFile(join(plain.dir, 'absent')));

      expect(Buffer.from(back).equals(bytes)).toBe(true);
      expect(statSync(path).mode & 0o7777).toBe(0o604);
      expect(missing).toBeInstanceOf(NotFoundError);
      expect(plain.log()).toContain('subsystem request for sftp');
    } finally {
      await Promise.all(open.splice(0).map((t) => t.close()));
      await plain.stop();
    }
  });
});

describe('SshTransport host keys', () => {
  it('connects to a host whose key matches the pinned fingerprint', async () => {
    const store = new FileHostKeyStore(join(sshd.dir, 'pinned.json'));
    await store.record(sshd.host, sshd.port, sshd.hostKey.fingerprint);

    const result = await connect({ hostKeys: store }).run('echo ok');

    expect(result.stdout).toBe('ok\n');
  });

  it('refuses a host whose key differs from the recorded one, naming both fingerprints, and runs nothing', async () => {
    const recorded = generateKey(sshd.dir, 'other_host_key').fingerprint;
    const before = sshd.logins();
    const marker = join(sshd.dir, 'ran-anyway');
    const ssh = connect({
      hostKeys: new MemoryHostKeyStore({ [`[${sshd.host}]:${sshd.port}`]: recorded }),
      acceptNewHostKey: true,
    });

    const error = await rejection(ssh.run(`touch ${marker}`));

    expect(error).toBeInstanceOf(HostKeyMismatchError);
    expect(error).toMatchObject({ reason: 'host-key', expected: recorded, actual: sshd.hostKey.fingerprint });
    const message = (error as Error).message;
    expect(message).toContain(recorded);
    expect(message).toContain(sshd.hostKey.fingerprint);
    expect(message).toContain(`127.0.0.1]:${sshd.port}`);
    expect(existsSync(marker)).toBe(false);
    expect(sshd.logins()).toBe(before);
  });

  it('refuses an unknown host unless asked to accept new keys, then records the key in a 0600 file', async () => {
    const path = join(sshd.dir, 'keys', 'known.json');
    const store = new FileHostKeyStore(path);

    const refused = await rejection(connect({ hostKeys: store }).run('true'));
    expect(refused).toBeInstanceOf(UnknownHostKeyError);
    expect(refused).toMatchObject({ fingerprint: sshd.hostKey.fingerprint });
    expect((refused as Error).message).toContain(sshd.hostKey.fingerprint);
    expect(existsSync(path)).toBe(false);

    await connect({ hostKeys: store, acceptNewHostKey: true }).run('true');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8')).hosts).toEqual({
      [`[127.0.0.1]:${sshd.port}`]: sshd.hostKey.fingerprint,
    });
    expect((await connect({ hostKeys: new FileHostKeyStore(path) }).run('echo pinned')).stdout).toBe(
      'pinned\n',
    );
  });
});

describe('SshTransport authentication and connection errors', () => {
  it('authenticates with a passphrase-protected key', async () => {
    const key = generateKey(sshd.dir, 'protected', 'correct horse');
    execFileSync('sh', ['-c', `cat ${key.path}.pub >> ${join(sshd.dir, 'authorized_keys')}`]);

    const result = await connect({ privateKey: key.privateKey, passphrase: 'correct horse' }).run('echo in');

    expect(result.stdout).toBe('in\n');
  });

  it('authenticates through an SSH agent holding the key', async () => {
    const socket = join(sshd.dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      await until(() => existsSync(socket));
      execFileSync('ssh-add', ['-q', sshd.clientKey.path], {
        env: { ...process.env, SSH_AUTH_SOCK: socket },
      });

      const result = await connect({ agent: socket }).run('echo agent');

      expect(result.stdout).toBe('agent\n');
    } finally {
      agent.kill();
    }
  });

  it('reports a key the server refuses as an auth failure naming user@host:port', async () => {
    const stranger = generateKey(sshd.dir, 'stranger');

    const error = await rejection(connect({ privateKey: stranger.privateKey }).run('true'));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'auth' });
    expect((error as Error).message).toContain(`root@127.0.0.1:${sshd.port}`);
  });

  it('reports a port where nothing listens as unreachable, at once', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    const started = Date.now();

    const error = await rejection(connect({ port }).run('true'));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'unreachable' });
    expect((error as Error).message).toContain(`root@127.0.0.1:${port}`);
    expect((error as Error).message).toContain('connection refused');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('gives up on a server that never completes the handshake after the connect timeout', async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const error = await rejection(connect({ port, connectTimeoutMs: 300 }).run('true'));

      expect(error).toBeInstanceOf(TransportError);
      expect(error).toMatchObject({ reason: 'timeout' });
      expect((error as Error).message).toContain(`root@127.0.0.1:${port}`);
    } finally {
      silent.close();
    }
  });

  it('refuses to be built without a key or an agent', () => {
    expect(
      () =>
        new SshTransport({
          host: '127.0.0.1',
          username: 'root',
          hostKeys: new MemoryHostKeyStore(),
        }),
    ).toThrow(InvalidInputError);
  });

  it('turns a malformed private key into an auth error', async () => {
    const error = await rejection(connect({ privateKey: 'not a key' }).run('true'));

    expect(error).toMatchObject({ reason: 'auth' });
  });
});
