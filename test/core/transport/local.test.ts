import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError } from '../../../core/errors.js';
import { TransportError } from '../../../core/transport/errors.js';
import { LocalTransport } from '../../../core/transport/local.js';

let dir: string;
const local = new LocalTransport({ killGraceMs: 300 });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'persona-local-'));
});

afterAll(async () => {
  await local.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('LocalTransport commands', () => {
  it('returns the exit code, standard output and standard error of a command', async () => {
    const result = await local.run('echo out; echo err >&2; exit 3');

    expect(result).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(local.target).toBe('local');
  });

  it('feeds the given standard input, and end-of-file when there is none', async () => {
    expect((await local.run('tr a-z A-Z', { stdin: 'héllo' })).stdout).toBe('HéLLO');
    expect((await local.run('cat; echo done')).stdout).toBe('done\n');
  });

  it('passes environment values through unchanged, whatever shell syntax they contain', async () => {
    const pwned = join(dir, 'pwned');
    const env = { TRICKY: `'; touch ${pwned}; echo '$(touch ${pwned})\`x\`\n"q"`, EMPTY: '' };

    const result = await local.run('printenv TRICKY; printenv EMPTY', { env });

    expect(result.stdout).toBe(`${env.TRICKY}\n\n`);
    expect(existsSync(pwned)).toBe(false);
  });

  it('refuses an environment variable name that a shell would misread', async () => {
    expect(await rejection(local.run('true', { env: { '1X': 'y' } }))).toBeInstanceOf(InvalidInputError);
  });

  it('reports a command killed by a signal with 128 + the signal number', async () => {
    expect((await local.run('kill -9 $$')).exitCode).toBe(137);
  });

  it('kills a timed-out command together with the processes it started', async () => {
    const pidFile = join(dir, 'sleeper.pid');
    const started = Date.now();

    const error = await rejection(local.run(`sleep 30 & echo $! > ${pidFile}; wait`, { timeoutMs: 300 }));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'timeout', target: 'local' });
    expect(Date.now() - started).toBeLessThan(2000);
    const sleeper = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(sleeper)).toBe(false);
  });

  it('kills with SIGKILL a command that ignores SIGTERM, after the grace period', async () => {
    const started = Date.now();

    const error = await rejection(local.run("trap '' TERM; sleep 30 & wait; sleep 30", { timeoutMs: 200 }));

    expect(error).toMatchObject({ reason: 'timeout' });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('LocalTransport streams', () => {
  it('streams a tar archive out', async () => {
    const handle = await local.stream('tar -cf - -C /etc hostname');
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, body, next) => {
      names.push(header.name);
      body.resume();
      body.on('end', next);
    });
    await pipeline(handle.stdout, extract);

    expect((await handle.done).exitCode).toBe(0);
    expect(names).toEqual(['hostname']);
  });

  it('streams a tar archive in', async () => {
    const into = join(dir, 'unpacked');
    const pack = tar.pack();
    pack.entry({ name: 'a.txt', mode: 0o640 }, 'alpha\n');
    pack.finalize();

    const handle = await local.stream(`mkdir -p ${into} && tar -xf - -C ${into}`, { input: true });
    handle.stdout.resume();
    await pipeline(pack, handle.stdin);

    expect((await handle.done).exitCode).toBe(0);
    expect(readFileSync(join(into, 'a.txt'), 'utf8')).toBe('alpha\n');
  });
});

describe('LocalTransport files', () => {
  it('puts a file with its mode and gets the same bytes back', async () => {
    const path = join(dir, 'file.bin');
    const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));

    await local.putFile(path, bytes, { mode: 0o751 });

    expect(Buffer.from(await local.getFile(path)).equals(bytes)).toBe(true);
    expect(statSync(path).mode & 0o7777).toBe(0o751);
  });

  it('keeps the mode of a file it replaces when no mode is given', async () => {
    const path = join(dir, 'kept.conf');
    writeFileSync(path, 'v1', { mode: 0o600 });

    await local.putFile(path, Buffer.from('v2'));

    expect(readFileSync(path, 'utf8')).toBe('v2');
    expect(statSync(path).mode & 0o7777).toBe(0o600);
  });

  it('reports a missing file as NotFoundError and an unwritable path as a TransportError', async () => {
    expect(await rejection(local.getFile(join(dir, 'absent')))).toBeInstanceOf(NotFoundError);
    expect(await rejection(local.putFile(join(dir, 'no-dir', 'x'), Buffer.from('x')))).toMatchObject({
      reason: 'failed',
    });
  });
});
