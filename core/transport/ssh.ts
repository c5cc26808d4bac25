// SSH with ssh2: one connection per transport for all its commands, host keys pinned.
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import type { ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import SshClient from 'ssh2/lib/client.js';
import sftpProtocol from 'ssh2/lib/protocol/SFTP.js';
import { InvalidInputError, NotFoundError, TooLargeError } from '../errors.js';
import { HostKeyMismatchError, TransportError, UnknownHostKeyError } from './errors.js';
import { fingerprintOf, type HostKeyStore } from './host-keys.js';
import { Collector, exitCodeOf, toBuffer } from './output.js';
import { checkPath } from './paths.js';
import {
  atomicWriteScript,
  COMMAND_MAX_BYTES,
  describeCommand,
  FILE_EXIT,
  sh,
  shellCommand,
  shellQuote,
} from './shell.js';
import type { RunOptions, RunResult, StreamHandle, StreamOptions, Transport } from './transport.js';

// ssh2's client and SFTP's status codes, not its index (ssh2-modules.d.ts): the index also loads
// its server, key generator and HTTP agents, about a sixth of ssh2's start-up. Both are CommonJS,
// taken from their default export.
type Client = InstanceType<typeof SshClient>;

/**
 * Makes a TCP socket's writes in one turn of the event loop leave as one writev. ssh2 writes
 * each packet in pieces (with AES-GCM in JavaScript, as without its native addon: the length,
 * the ciphertext and the tag), and with Nagle's algorithm off (see connect) each piece would
 * be a system call and a TCP segment of its own: a 4-byte and a 16-byte segment every 32 KiB.
 * The socket's own `write` is wrapped, after `connect()`, which puts back the prototype's.
 * @internal exported for its test.
 */
export function coalesceWrites(sock: Socket): void {
  const write = sock.write;
  let corked = false;
  sock.write = ((...args: Parameters<Socket['write']>) => {
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(() => {
        corked = false;
        sock.uncork();
      });
    }
    return write.apply(sock, args);
  }) as Socket['write'];
}

export interface SshTransportOptions {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
  readonly username: string;
  /** A private key (PEM or OpenSSH format), read from a file or resolved from a secret by the caller. */
  readonly privateKey?: string | Uint8Array;
  /** For an encrypted private key. */
  readonly passphrase?: string;
  /** Path of an SSH agent's socket (the caller's `SSH_AUTH_SOCK`), tried after `privateKey`. */
  readonly agent?: string;
  /** Where host keys are pinned. */
  readonly hostKeys: HostKeyStore;
  /**
   * Record the key of a host seen for the first time (trust on first use). Off by default: an
   * unknown host is refused with `UnknownHostKeyError`, which names the fingerprint to check.
   */
  readonly acceptNewHostKey?: boolean;
  /** Connect, handshake and authentication together. Default 15 s. */
  readonly connectTimeoutMs?: number;
  /** SSH-level keepalive: finds a dead peer on an idle connection. Default every 15 s. */
  readonly keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection is declared dead. Default 3. */
  readonly keepaliveCountMax?: number;
  /** How long a timed-out command has between SIGTERM and SIGKILL. Default 2 s. */
  readonly killGraceMs?: number;
  /**
   * Commands in flight at once on the one connection. Default 4. OpenSSH allows 10 sessions per
   * connection (MaxSessions) but frees a slot only some time after its channel closed, so a
   * client that keeps 8 busy is refused sessions now and then; refusals are retried anyway.
   */
  readonly maxConcurrentCommands?: number;
}

interface Connection {
  readonly client: Client;
  closed: boolean;
  /** The SFTP session, opened on first use; `undefined` when the server has no SFTP subsystem. */
  sftp?: Promise<SFTPWrapper | undefined>;
}

interface Exec {
  readonly channel: ClientChannel;
  /** Resolves when the command ends; rejects on time-out or a lost connection. */
  readonly done: Promise<{ readonly exitCode: number; readonly stderr: Buffer }>;
}

const DEFAULT_PORT = 22;

export class SshTransport implements Transport {
  readonly target: string;
  private readonly port: number;
  private readonly where: string;
  private current: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private readonly slots: Semaphore;
  /** Starts the line the command's shell writes first on stderr: its process group id. */
  private readonly marker = `persona-pgid-${randomBytes(4).toString('hex')}:`;

  constructor(private readonly options: SshTransportOptions) {
    this.port = options.port ?? DEFAULT_PORT;
    if (!options.privateKey && !options.agent) {
      throw new InvalidInputError(`no credentials for ssh ${options.username}@${options.host}`, [
        { path: 'privateKey', message: 'give a private key or an agent socket' },
      ]);
    }
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    this.where = `${options.username}@${host}:${this.port}`;
    this.target = `ssh://${this.where}`;
    this.slots = new Semaphore(options.maxConcurrentCommands ?? 4);
  }

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const started = Date.now();
    const release = await this.slots.acquire();
    try {
      const { channel, done } = await this.exec(
        shellCommand(command, options.env),
        command,
        options.timeoutMs,
      );
      const stdout = new Collector();
      channel.on('data', stdout.push);
      channel.end(options.stdin === undefined ? undefined : toBuffer(options.stdin));
      const { exitCode, stderr } = await done;
      return {
        exitCode,
        stdout: stdout.text(),
        stderr: stderr.toString('utf8'),
        durationMs: Date.now() - started,
      };
    } finally {
      release();
    }
  }

  async stream(command: string, options: StreamOptions = {}): Promise<StreamHandle> {
    const release = await this.slots.acquire();
    try {
      const { channel, done } = await this.exec(
        shellCommand(command, options.env),
        command,
        options.timeoutMs,
      );
      if (!options.input) channel.end();
      const finished = done.then(
        ({ exitCode, stderr }) => ({ exitCode, stderr: stderr.toString('utf8') }),
        (error: unknown) => {
          // Readers of stdout must not wait forever for data that will not come.
          channel.destroy();
          throw error;
        },
      );
      finished.then(release, release);
      // The channel is a duplex: its readable side is the command's stdout, its writable side stdin.
      return { stdout: channel, stdin: channel, done: finished };
    } catch (error) {
      release();
      throw error;
    }
  }

  async putFile(path: string, content: Uint8Array, options: { readonly mode?: number } = {}): Promise<void> {
    checkPath(path, 'path');
    const sftp = await this.sftp();
    if (sftp) {
      await this.putWithSftp(sftp, path, toBuffer(content), options.mode);
      return;
    }
    const result = await this.run(atomicWriteScript(path, 'cat', options.mode), { stdin: content });
    if (result.exitCode !== 0) {
      throw new TransportError(
        `cannot write ${path} on ${this.target}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`,
        'failed',
        this.target,
      );
    }
  }

  async getFile(path: string): Promise<Uint8Array> {
    checkPath(path, 'path');
    const sftp = await this.sftp();
    if (sftp) {
      try {
        return new Uint8Array(await call<Buffer>((cb) => sftp.readFile(path, cb)));
      } catch (error) {
        if (sftpStatus(error) === sftpProtocol.STATUS_CODE.NO_SUCH_FILE) {
          throw new NotFoundError(`no file ${path} on ${this.target}`, path, { cause: error });
        }
        throw this.fileError('read', path, error);
      }
    }
    const release = await this.slots.acquire();
    try {
      const script = sh`[ -e ${path} ] || exit ${FILE_EXIT.MISSING}; exec cat -- ${path}`;
      const { channel, done } = await this.exec(shellCommand(script), `cat ${path}`, undefined);
      const stdout = new Collector();
      channel.on('data', stdout.push);
      channel.end();
      const { exitCode, stderr } = await done;
      if (exitCode === FILE_EXIT.MISSING) throw new NotFoundError(`no file ${path} on ${this.target}`, path);
      if (exitCode !== 0) {
        throw new TransportError(
          `cannot read ${path} on ${this.target}: ${stderr.toString('utf8').trim() || `exit code ${exitCode}`}`,
          'failed',
          this.target,
        );
      }
      return new Uint8Array(stdout.bytes());
    } finally {
      release();
    }
  }

  /**
   * A remote port forward on this transport's connection: the host listens on
   * `address:port` (0: a port it picks) and each connection made there reaches `accept` as a
   * channel. `closed` settles when the connection ends, which ends the forward with it.
   */
  async forwardRemote(
    address: string,
    port: number,
    accept: (channel: ClientChannel) => void,
  ): Promise<{ readonly port: number; readonly closed: Promise<void>; stop(): Promise<void> }> {
    const connection = await this.connection();
    const { client } = connection;
    const bound = await new Promise<number>((resolve, reject) =>
      client.forwardIn(address, port, (error, p) =>
        error
          ? reject(
              new TransportError(
                `${this.target} refused to listen on ${address}:${port} for a forward: ${error.message}`,
                'failed',
                this.target,
                { cause: error },
              ),
            )
          : resolve(p || port),
      ),
    );
    const onConnection = (
      info: { destIP: string; destPort: number },
      take: () => ClientChannel,
      refuse: () => void,
    ) => {
      if (info.destPort !== bound) return refuse();
      accept(take());
    };
    client.on('tcp connection', onConnection);
    const closed = new Promise<void>((resolve) => {
      if (connection.closed) resolve();
      client.once('close', () => resolve());
    });
    return {
      port: bound,
      closed,
      stop: async () => {
        client.off('tcp connection', onConnection);
        if (connection.closed) return;
        await new Promise<void>((resolve) => client.unforwardIn(address, bound, () => resolve()));
      },
    };
  }

  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = undefined;
    const connection = this.current ?? (await pending?.catch(() => undefined));
    this.current = undefined;
    if (!connection || connection.closed) return;
    const closed = new Promise<void>((resolve) => connection.client.once('close', () => resolve()));
    connection.client.end();
    // A peer that does not answer the disconnect must not hold close() up.
    await Promise.race([closed, delay(2000).then(() => connection.client.destroy())]);
  }

  /** The live connection, connecting if there is none (first use, or it dropped since the last command). */
  private connection(): Promise<Connection> {
    if (this.current && !this.current.closed) return Promise.resolve(this.current);
    this.connecting ??= this.connect().then(
      (connection) => {
        this.connecting = undefined;
        this.current = connection;
        return connection;
      },
      (error: unknown) => {
        this.connecting = undefined;
        throw error;
      },
    );
    return this.connecting;
  }

  private connect(): Promise<Connection> {
    const { options } = this;
    const client = new SshClient();
    const connection: Connection = { client, closed: false };
    // The verifier's verdict, kept so the connect error can say why the host was refused.
    let refusal: TransportError | undefined;
    const sock = new Socket();
    const config: ConnectConfig = {
      host: options.host,
      port: this.port,
      sock,
      username: options.username,
      readyTimeout: options.connectTimeoutMs ?? 15_000,
      keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        this.verifyHostKey(key).then(
          () => verify(true),
          (error: unknown) => {
            refusal =
              error instanceof TransportError
                ? error
                : new TransportError(
                    `cannot check the host key of ${this.where}: ${messageOf(error)}`,
                    'host-key',
                    this.target,
                    { cause: error },
                  );
            verify(false);
          },
        );
      },
      ...(options.privateKey === undefined ? {} : { privateKey: toBuffer(options.privateKey) }),
      ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      ...(options.agent === undefined ? {} : { agent: options.agent }),
    };
    return new Promise<Connection>((resolve, reject) => {
      let ready = false;
      // ssh2 may emit more than one error (a socket error, then "connection lost"): keep a
      // listener for the connection's whole life so none of them is unhandled.
      client.on('error', (error: Error) => {
        connection.closed = true;
        if (ready) return; // Running commands see their channel close without an exit status.
        client.destroy();
        reject(refusal ?? this.connectError(error));
      });
      client.once('ready', () => {
        ready = true;
        resolve(connection);
      });
      client.on('close', () => {
        connection.closed = true;
        if (this.current === connection) this.current = undefined;
        if (!ready)
          reject(
            refusal ??
              new TransportError(
                `connection to ${this.where} closed during the handshake`,
                'unreachable',
                this.target,
              ),
          );
      });
      try {
        // Connecting before ssh2 sees the socket: ssh2 then waits for its 'connect'.
        sock.connect({ host: options.host, port: this.port });
        coalesceWrites(sock);
        client.connect(config);
        // A command is a few small packets each way (exec request, reply, exit status, close),
        // as is every step of the handshake. With Nagle's algorithm on, each waits for the
        // peer's delayed ACK (40 ms on Linux): a `true` cost about 90 ms instead of 9.
        client.setNoDelay(true);
      } catch (error) {
        // ssh2 parses the private key synchronously: a bad key or a missing passphrase lands here.
        connection.closed = true;
        sock.destroy();
        reject(
          new TransportError(
            `cannot use the private key for ${this.where}: ${messageOf(error)}`,
            'auth',
            this.target,
            { cause: error },
          ),
        );
      }
    });
  }

  private async verifyHostKey(key: Buffer): Promise<void> {
    const { host, hostKeys, acceptNewHostKey } = this.options;
    const presented = fingerprintOf(key);
    const recorded = await hostKeys.get(host, this.port);
    if (recorded === undefined) {
      if (!acceptNewHostKey) throw new UnknownHostKeyError(host, this.port, presented, this.target);
      await hostKeys.record(host, this.port, presented);
      return;
    }
    if (recorded !== presented)
      throw new HostKeyMismatchError(host, this.port, recorded, presented, this.target);
  }

  private connectError(error: Error & { level?: string; code?: unknown }): TransportError {
    const where = this.where;
    const cause = { cause: error };
    switch (error.level) {
      case 'client-authentication':
        return new TransportError(
          `authentication failed for ${where}: the server accepted none of the offered keys`,
          'auth',
          this.target,
          cause,
        );
      case 'agent':
        return new TransportError(
          `the SSH agent failed for ${where}: ${error.message}`,
          'auth',
          this.target,
          cause,
        );
      case 'client-timeout':
        return new TransportError(
          `timed out connecting to ${where} after ${this.options.connectTimeoutMs ?? 15_000} ms (no SSH handshake)`,
          'timeout',
          this.target,
          cause,
        );
      case 'client-dns':
        return new TransportError(
          `cannot resolve ${where}: ${error.message}`,
          'unreachable',
          this.target,
          cause,
        );
    }
    const reasons: Record<string, string> = {
      ECONNREFUSED: 'connection refused (nothing listens on that port, or a firewall rejects it)',
      EHOSTUNREACH: 'no route to host',
      ENETUNREACH: 'network unreachable',
      ETIMEDOUT: 'connection timed out',
      ECONNRESET: 'connection reset during the handshake',
      ENOTFOUND: 'unknown host name',
      EAI_AGAIN: 'name resolution failed',
    };
    const reason = typeof error.code === 'string' ? reasons[error.code] : undefined;
    if (reason)
      return new TransportError(`cannot reach ${where}: ${reason}`, 'unreachable', this.target, cause);
    return new TransportError(
      `cannot connect to ${where}: ${error.message}`,
      'unreachable',
      this.target,
      cause,
    );
  }

  /**
   * Starts `remote` on a channel. A channel that cannot be opened because the connection died
   * since the last command is retried once on a new connection: the command never started, so
   * it cannot run twice. A command whose connection dies while it runs is not retried.
   */
  private async exec(remote: string, command: string, timeoutMs: number | undefined): Promise<Exec> {
    // The remote login shell becomes our `sh` (exec keeps its pid), and sshd made it the leader
    // of a new session and process group. It reports that id first on stderr, so a time-out can
    // kill the whole group; a signal on the channel alone reaches only the shell.
    // `remote` follows as the arguments of that sh, not inside its script: quoted once more
    // there, every quote in the data would cost four times as many bytes again.
    const wrapped = `exec sh -c ${shellQuote(`printf '%s%s\\n' ${shellQuote(this.marker)} "$$" >&2; exec "$@"`)} sh ${remote}`;
    const bytes = Buffer.byteLength(wrapped, 'utf8');
    if (bytes > COMMAND_MAX_BYTES) {
      throw new TooLargeError(
        `the command for ${this.target} is ${bytes} bytes once quoted, over the ${COMMAND_MAX_BYTES} bytes a host takes as one command line; send large data as standard input or a file: ${describeCommand(command)}`,
        COMMAND_MAX_BYTES,
      );
    }
    let refusals = 0;
    for (let attempt = 0; ; attempt++) {
      const connection = await this.connection();
      try {
        return await new Promise<Exec>((resolve, reject) => {
          connection.client.exec(wrapped, (error, channel) => {
            if (error) return reject(error);
            // Listen before returning to the event loop: the command's whole life (output,
            // exit status, close) can arrive in the same packet batch as the exec reply.
            resolve({ channel, done: this.watch(connection, channel, command, timeoutMs) });
          });
        });
      } catch (error) {
        const gone = connection.closed || /Not connected|No response from server/.test(messageOf(error));
        if (gone) {
          connection.closed = true;
          if (this.current === connection) this.current = undefined;
          if (attempt === 0) continue;
          throw new TransportError(
            `lost the connection to ${this.where} before the command started`,
            'disconnected',
            this.target,
            { cause: error },
          );
        }
        // The server refused a session (its MaxSessions slots not yet freed): nothing started,
        // so waiting a little and asking again is safe.
        if (/Channel open failure/.test(messageOf(error)) && refusals < 6) {
          await delay(25 * 2 ** refusals++);
          continue;
        }
        throw new TransportError(
          `cannot start a command on ${this.where}: ${messageOf(error)}`,
          'failed',
          this.target,
          { cause: error },
        );
      }
    }
  }

  private watch(
    connection: Connection,
    channel: ClientChannel,
    command: string,
    timeoutMs: number | undefined,
  ): Promise<{ exitCode: number; stderr: Buffer }> {
    const stderr = new MarkerFilter(this.marker);
    channel.stderr.on('data', stderr.push);
    return new Promise((resolve, reject) => {
      let exit: { code: number | null; signal: string | null } | undefined;
      let killing: Promise<void> | undefined;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              killing = this.kill(connection, channel, stderr.pgid).finally(() => {
                try {
                  channel.close();
                } catch {
                  // Already closed.
                }
              });
            }, timeoutMs);
      channel.on('exit', (code: number | null, signal?: string) => {
        exit = { code, signal: signal ?? null };
      });
      channel.once('close', () => {
        if (timer) clearTimeout(timer);
        if (killing) {
          // Answer only once the process group is gone, so the caller may rely on it.
          const error = new TransportError(
            `command timed out after ${timeoutMs} ms on ${this.target} and was killed: ${describeCommand(command)}`,
            'timeout',
            this.target,
          );
          killing.then(() => reject(error));
        } else if (exit === undefined) {
          reject(
            new TransportError(
              `lost the connection to ${this.where} while running: ${describeCommand(command)}`,
              'disconnected',
              this.target,
            ),
          );
        } else {
          resolve({ exitCode: exitCodeOf(exit.code, exit.signal), stderr: stderr.bytes() });
        }
      });
    });
  }

  /**
   * Ends a timed-out command: SIGTERM to its shell through the channel (OpenSSH honours signal
   * requests since 7.9), then TERM to its whole process group from a second channel and KILL if
   * the group outlives the grace period. Best effort: on a dead connection there is nothing left
   * to kill with, and sshd tears the session down itself.
   */
  private async kill(
    connection: Connection,
    channel: ClientChannel,
    pgid: number | undefined,
  ): Promise<void> {
    try {
      channel.signal('TERM');
    } catch {
      // Channel already closing.
    }
    if (pgid === undefined || connection.closed) return;
    const polls = Math.max(1, Math.ceil((this.options.killGraceMs ?? 2000) / 100));
    const script = [
      `kill -s TERM -- -${pgid} 2>/dev/null || exit 0`,
      `i=0; while [ $i -lt ${polls} ]; do kill -0 -- -${pgid} 2>/dev/null || exit 0; sleep 0.1; i=$((i + 1)); done`,
      `kill -s KILL -- -${pgid} 2>/dev/null; exit 0`,
    ].join('\n');
    try {
      await new Promise<void>((resolve, reject) => {
        connection.client.exec(shellCommand(script), (error, killer) => {
          if (error) return reject(error);
          killer.once('close', () => resolve());
          killer.resume();
          killer.stderr.resume();
          killer.end();
        });
        setTimeout(resolve, (this.options.killGraceMs ?? 2000) + 5000).unref();
      });
    } catch {
      // Connection gone: the server tears the session down itself.
    }
  }

  private async sftp(): Promise<SFTPWrapper | undefined> {
    const connection = await this.connection();
    connection.sftp ??= new Promise<SFTPWrapper | undefined>((resolve) => {
      try {
        // A server without the SFTP subsystem refuses the session: fall back to cat over exec.
        connection.client.sftp((error, sftp) => resolve(error ? undefined : sftp));
      } catch {
        resolve(undefined);
      }
    });
    const sftp = await connection.sftp;
    if (sftp === undefined && connection.closed) {
      // The connection died, not the subsystem: ask again on the next connection.
      delete connection.sftp;
      return this.sftp();
    }
    return sftp;
  }

  private async putWithSftp(sftp: SFTPWrapper, path: string, data: Buffer, mode: number | undefined) {
    const temp = `${path}.persona-${randomBytes(6).toString('hex')}`;
    try {
      const finalMode =
        mode ??
        (await call<{ mode: number }>((cb) => sftp.stat(path, cb)).then(
          (stats) => stats.mode & 0o7777,
          () => 0o644,
        ));
      // Exclusive create at 0600: nobody reads the content before it is complete and chmod'ed.
      await call<void>((cb) => sftp.writeFile(temp, data, { mode: 0o600, flag: 'wx' }, cb));
      await call<void>((cb) => sftp.chmod(temp, finalMode, cb));
      // posix-rename replaces the target in one step; plain SFTP rename refuses an existing one.
      await call<void>((cb) => sftp.ext_openssh_rename(temp, path, cb));
    } catch (error) {
      await call<void>((cb) => sftp.unlink(temp, cb)).catch(() => {});
      throw this.fileError('write', path, error);
    }
  }

  private fileError(verb: 'read' | 'write', path: string, error: unknown): TransportError {
    return new TransportError(
      `cannot ${verb} ${path} on ${this.target}: ${messageOf(error)}`,
      'failed',
      this.target,
      {
        cause: error,
      },
    );
  }
}

/**
 * Collects stderr, minus the process-group line the wrapper writes first, and reads the id from
 * it as soon as it arrives. The line is looked for, not assumed first, in case the login shell
 * wrote something before it.
 */
class MarkerFilter {
  pgid: number | undefined;
  private readonly chunks = new Collector();
  private scanned = false;

  constructor(private readonly marker: string) {}

  readonly push = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    if (this.scanned || this.pgid !== undefined) return;
    const head = this.chunks.bytes();
    const match = this.find(head);
    if (match) this.pgid = match.pgid;
    // Past the first few KiB the line is not coming (the remote shell is not a POSIX one).
    else if (head.length > 4096) this.scanned = true;
  };

  bytes(): Buffer {
    const all = this.chunks.bytes();
    const match = this.find(all);
    return match ? Buffer.concat([all.subarray(0, match.start), all.subarray(match.end)]) : all;
  }

  private find(bytes: Buffer): { pgid: number; start: number; end: number } | undefined {
    const start = bytes.indexOf(this.marker, 0, 'latin1');
    if (start === -1 || start > 4096) return undefined;
    const newline = bytes.indexOf(10, start);
    if (newline === -1) return undefined;
    const pgid = Number(bytes.subarray(start + this.marker.length, newline).toString('latin1'));
    return Number.isInteger(pgid) && pgid > 1 ? { pgid, start, end: newline + 1 } : undefined;
  }
}

/** Limits the channels in flight on one connection; waiters are served in order. */
class Semaphore {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

function call<T>(fn: (cb: (error: Error | undefined | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))));
}

function sftpStatus(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number'
    ? error.code
    : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
