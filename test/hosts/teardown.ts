// Removing what the harness made, synchronously: the same code serves `destroy()`, the
// process exit handler (where no promise settles) and the clean-up of a killed run.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { runSync } from './process.js';

/** Mount points at or below `dir` in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(prefix))
    .reverse();
}

export function unmountAll(dir: string): void {
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const mount of mounts) {
      if (runSync('umount', [mount]).exitCode !== 0) runSync('umount', ['-l', mount]);
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted under ${dir}: ${left.join(', ')}`);
}

/**
 * Deletes a directory tree that may have had things mounted in it. Refuses while anything
 * is still mounted there: `rm -r` through a bind mount of /dev or /proc would delete the
 * control machine's own files.
 */
export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  unmountAll(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

export function netnsList(): string[] {
  const r = runSync('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

export function netnsPids(netns: string): number[] {
  return runSync('ip', ['netns', 'pids', netns])
    .stdout.split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}
