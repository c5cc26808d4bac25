// Pinned SSH host keys: the fingerprint recorded at first contact is the only one accepted later.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { hostPort } from './errors.js';

export interface HostKeyStore {
  /** The recorded fingerprint (`SHA256:...`) of the host's key, if it has one. */
  get(host: string, port: number): Promise<string | undefined>;
  record(host: string, port: number, fingerprint: string): Promise<void>;
}

/**
 * OpenSSH's SHA256 fingerprint of a public key blob (the wire-format key, as ssh2 hands it to a
 * host verifier): `SHA256:` + unpadded base64 of its SHA-256, what `ssh-keygen -l` prints.
 */
export function fingerprintOf(keyBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

export class MemoryHostKeyStore implements HostKeyStore {
  private readonly keys = new Map<string, string>();

  constructor(initial: Readonly<Record<string, string>> = {}) {
    for (const [key, fingerprint] of Object.entries(initial)) this.keys.set(key, fingerprint);
  }

  async get(host: string, port: number): Promise<string | undefined> {
    return this.keys.get(hostPort(host, port));
  }

  async record(host: string, port: number, fingerprint: string): Promise<void> {
    this.keys.set(hostPort(host, port), fingerprint);
  }
}

interface HostKeyFile {
  readonly version: 1;
  /** `[host]:port` → `SHA256:...` */
  readonly hosts: Record<string, string>;
}

/**
 * Host keys in a JSON file, `{ "version": 1, "hosts": { "[10.0.0.2]:22": "SHA256:..." } }`.
 * Writes go to a temporary file (mode 0600) that is renamed over the old one, so a crash never
 * leaves a half-written file and the pins are never readable by other users. Writes from this
 * process are serialised; the file is read afresh each time so another process's pins are seen.
 */
export class FileHostKeyStore implements HostKeyStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  async get(host: string, port: number): Promise<string | undefined> {
    return (await this.load()).hosts[hostPort(host, port)];
  }

  record(host: string, port: number, fingerprint: string): Promise<void> {
    const write = this.queue.then(async () => {
      const current = await this.load();
      await this.save({ version: 1, hosts: { ...current.hosts, [hostPort(host, port)]: fingerprint } });
    });
    this.queue = write.catch(() => {});
    return write;
  }

  private async load(): Promise<HostKeyFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, hosts: {} };
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new InvalidInputError(`host key file ${this.path} is not valid JSON`, [], {
        cause: error,
        source: this.path,
      });
    }
    const hosts = (parsed as Partial<HostKeyFile> | null)?.hosts;
    const valid =
      typeof hosts === 'object' &&
      hosts !== null &&
      Object.values(hosts).every((v) => typeof v === 'string' && v.startsWith('SHA256:'));
    if (!valid) {
      throw new InvalidInputError(
        `host key file ${this.path} does not map "[host]:port" to SHA256 fingerprints`,
        [{ path: 'hosts', message: 'expected an object of "SHA256:..." strings' }],
        { source: this.path },
      );
    }
    return { version: 1, hosts: { ...hosts } };
  }

  private async save(file: HostKeyFile): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temp = `${this.path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}
