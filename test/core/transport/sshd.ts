// A real OpenSSH server for transport tests: its own config, host key and authorized key in a
// temporary folder, listening on 127.0.0.1 at a free high port. Needs root and the Debian
// package openssh-server (/usr/sbin/sshd); ssh-keygen and ssh-agent come from openssh-client.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SSHD = '/usr/sbin/sshd';

export interface KeyPair {
  readonly path: string;
  readonly privateKey: string;
  readonly publicKey: string;
  /** `SHA256:...`, as `ssh-keygen -l` prints it. */
  readonly fingerprint: string;
}

export interface TestSshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** The one key the server accepts for root. */
  readonly clientKey: KeyPair;
  readonly hostKey: KeyPair;
  /** The server's log so far (sshd -e writes it to stderr). */
  log(): string;
  /** Logins the server accepted so far: one per TCP connection that authenticated. */
  logins(): number;
  /** Pids of the per-connection sshd processes (children of the listener). */
  sessions(): number[];
  stop(): Promise<void>;
}

export function generateKey(dir: string, name: string, passphrase = ''): KeyPair {
  const path = join(dir, name);
  // Few KDF rounds for an encrypted key: the tests check that the passphrase is used, not its
  // resistance to guessing, and every round costs time in ssh2's JavaScript bcrypt.
  const rounds = passphrase ? ['-a', '2'] : [];
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', ...rounds, '-N', passphrase, '-C', name, '-f', path]);
  return {
    path,
    privateKey: readFileSync(path, 'utf8'),
    publicKey: readFileSync(`${path}.pub`, 'utf8'),
    fingerprint: fingerprintOfFile(`${path}.pub`),
  };
}

export function fingerprintOfFile(publicKeyPath: string): string {
  const line = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyPath], { encoding: 'utf8' });
  const fingerprint = line.split(' ')[1];
  if (!fingerprint?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen output: ${line}`);
  return fingerprint;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startSshd(options: { readonly sftp?: boolean } = {}): Promise<TestSshd> {
  if (!existsSync(SSHD)) {
    throw new Error(
      `${SSHD} is missing: install the Debian package openssh-server (apt-get install openssh-server)`,
    );
  }
  if (process.getuid?.() !== 0)
    throw new Error('the sshd transport tests run sshd as root: run them as root');
  // sshd refuses to start without its privilege-separation directory (normally made by systemd).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = mkdtempSync(join(tmpdir(), 'persona-sshd-'));
  const hostKey = generateKey(dir, 'host_ed25519');
  const clientKey = generateKey(dir, 'client_ed25519');
  writeFileSync(join(dir, 'authorized_keys'), clientKey.publicKey, { mode: 0o600 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey.path}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'LogLevel INFO',
      'MaxStartups 100',
      // bash sources ~/.bashrc when sshd starts it; a developer's root dotfiles (pyenv init and
      // the like) cost half a second per command and are not what these tests are about.
      `SetEnv HOME=${dir}`,
      ...(options.sftp === false ? [] : ['Subsystem sftp /usr/lib/openssh/sftp-server']),
      '',
    ].join('\n'),
  );

  let log = '';
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // A test process that exits without running its afterAll must not leave an sshd listening.
  const stopOnExit = () => child.kill('SIGTERM');
  process.once('exit', stopOnExit);
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString('utf8');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start:\n${log}`)), 10_000);
    const check = () => {
      if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
        clearTimeout(timer);
        child.stderr?.off('data', check);
        resolve();
      }
    };
    child.stderr?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code}:\n${log}`));
    });
  });

  return {
    host: '127.0.0.1',
    port,
    dir,
    clientKey,
    hostKey,
    log: () => log,
    logins: () => log.match(/Accepted publickey for /g)?.length ?? 0,
    sessions: () => {
      try {
        return execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .map(Number);
      } catch {
        return [];
      }
    },
    async stop() {
      process.off('exit', stopOnExit);
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
