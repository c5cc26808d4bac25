// Timing helpers. Medians rather than means: a 2-core machine shared with other work has
// outliers (GC pauses, a neighbour's compile) that would drag a mean around.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';

export interface Timing {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

export interface TimingOptions {
  /** Runs thrown away first: JIT compilation and first-touch allocation are not steady state. */
  readonly warmup: number;
  readonly runs: number;
}

function summarise(samples: readonly number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, runs: sorted.length };
}

/** Milliseconds per call of `fn`; the last result is returned so that callers can check it. */
export function time<T>(fn: () => T, options: TimingOptions): { timing: Timing; result: T } {
  let result: T | undefined;
  for (let i = 0; i < options.warmup; i++) result = fn();
  const samples: number[] = [];
  for (let i = 0; i < options.runs; i++) {
    const start = performance.now();
    result = fn();
    samples.push(performance.now() - start);
  }
  return { timing: summarise(samples), result: result as T };
}

type Measured<T extends Record<string, () => unknown>> = {
  [K in keyof T]: { readonly timing: Timing; readonly result: ReturnType<T[K]> };
};

/**
 * Times several tasks round by round, each round in a rotated order, so that load from other
 * work on the machine falls on all of them alike instead of on whichever ran during a burst.
 */
export function interleaved<T extends Record<string, () => unknown>>(
  tasks: T,
  options: TimingOptions,
): Measured<T> {
  const names = Object.keys(tasks) as (keyof T & string)[];
  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  const results = new Map<string, unknown>();
  for (let round = 0; round < options.warmup + options.runs; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length] as keyof T & string;
      const task = tasks[name] as () => unknown;
      const start = performance.now();
      results.set(name, task());
      const elapsed = performance.now() - start;
      if (round >= options.warmup) samples.get(name)?.push(elapsed);
    }
  }
  return Object.fromEntries(
    names.map((n) => [n, { timing: summarise(samples.get(n) ?? []), result: results.get(n) }]),
  ) as Measured<T>;
}

/**
 * A whole process, start to exit, as a user (or a CI step) pays for it. The output goes through
 * a pipe, as it would into a pager or a file.
 */
export const processTask = (command: string, args: readonly string[]) => (): SpawnSyncReturns<string> => {
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (run.error) throw run.error;
  return run;
};

/** GNU time's `%M`: the process's peak resident set, in bytes; undefined without GNU time. */
export function maxRssOf(command: string, args: readonly string[]): number | undefined {
  const run = spawnSync('/usr/bin/time', ['-f', 'maxrss=%M', command, ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (run.error) return undefined;
  const match = /maxrss=(\d+)\s*$/.exec(run.stderr);
  return match ? Number(match[1]) * 1024 : undefined;
}

export const hasGnuTime = (): boolean => {
  const run = spawnSync('/usr/bin/time', ['-f', '%M', 'true'], { encoding: 'utf8' });
  return run.error === undefined && run.status === 0 && /^\d+\s*$/.test(run.stderr);
};

export const hasCommand = (command: string, versionArg = '--version'): string | undefined => {
  const run = spawnSync(command, [versionArg], { encoding: 'utf8' });
  if (run.error !== undefined || run.status !== 0) return undefined;
  return run.stdout.split('\n')[0]?.trim();
};

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
export const ms = (t: number): string => (t >= 100 ? t.toFixed(0) : t >= 10 ? t.toFixed(1) : t.toFixed(2));
export const perSecond = (count: number, millis: number): number => (count * 1000) / millis;
