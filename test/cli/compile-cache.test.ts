// The `persona` command keeps V8's compile cache under the user's cache directory, and starts
// whatever becomes of that directory.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileCacheDir } from '../../cli/compile-cache.js';

/** `persona --version` with `env` added to this process's environment (less NODE_COMPILE_CACHE). */
const version = (env: NodeJS.ProcessEnv) => {
  const { NODE_COMPILE_CACHE: _ignored, ...inherited } = process.env;
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['cli/bin.js', '--version'],
      { env: { ...inherited, ...env }, timeout: 50_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
};
const scratches: string[] = [];
const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'persona-xdg-'));
  scratches.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of scratches) rmSync(dir, { recursive: true, force: true });
});
/** The files of every cache (one folder per Node version) under `dir`. */
const cached = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir).flatMap((v) => readdirSync(join(dir, v)).map((f) => join(v, f))) : [];

describe('compileCacheDir', () => {
  it('is persona/compile-cache under XDG_CACHE_HOME, else under ~/.cache', () => {
    expect(compileCacheDir({ XDG_CACHE_HOME: '/var/cache/u1' })).toBe('/var/cache/u1/persona/compile-cache');
    expect(compileCacheDir({ HOME: '/home/u2' })).toMatch(/\/\.cache\/persona\/compile-cache$/);
  });

  it('ignores a relative XDG_CACHE_HOME, as the XDG specification says, and keeps NODE_COMPILE_CACHE', () => {
    expect(compileCacheDir({ XDG_CACHE_HOME: 'relative/cache' })).not.toContain('relative/cache');
    expect(compileCacheDir({ XDG_CACHE_HOME: '/x', NODE_COMPILE_CACHE: '/chosen' })).toBe('/chosen');
  });
});

describe('persona start-up', () => {
  it('writes the compiled code of what it loaded under the user cache directory', async () => {
    const home = scratch();
    const r = await version({ XDG_CACHE_HOME: home });
    expect(r.code).toBe(0);
    expect(cached(join(home, 'persona', 'compile-cache')).length).toBeGreaterThan(0);
    // The second start reads it and answers the same.
    const again = await version({ XDG_CACHE_HOME: home });
    expect(again).toEqual(r);
  });

  it('starts with Node’s default cache when the cache directory cannot be created', async () => {
    const dir = scratch();
    // A regular file where a directory should be: not even root can create one under it.
    writeFileSync(join(dir, 'file'), '');
    const temporary = join(dir, 'tmp');
    const r = await version({ XDG_CACHE_HOME: join(dir, 'file', 'cache'), TMPDIR: temporary });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.stderr).toBe('');
    expect(cached(join(temporary, 'node-compile-cache')).length).toBeGreaterThan(0);
  });

  it('starts without any cache when neither directory can be created', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'file'), '');
    const r = await version({ XDG_CACHE_HOME: join(dir, 'file', 'cache'), TMPDIR: join(dir, 'file', 'tmp') });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.stderr).toBe('');
  });
});
