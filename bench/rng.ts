// A seeded generator, so that every run of the benchmark measures the same documents and
// figures from two runs (or two machines) can be compared.
import { createHash } from 'node:crypto';

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  /** `count` distinct items, in a random order. */
  sample<T>(items: readonly T[], count: number): T[];
  /** Lower-case hex digits. */
  hex(length: number): string;
}

/** mulberry32: tiny, fast and good enough to make test data look varied. */
export function rng(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[int(0, items.length - 1)] as T;
  };
  const sample = <T>(items: readonly T[], count: number): T[] => {
    const copy = [...items];
    const n = Math.min(count, copy.length);
    // Partial Fisher-Yates: only the first n positions need shuffling.
    for (let i = 0; i < n; i++) {
      const j = int(i, copy.length - 1);
      const tmp = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = tmp;
    }
    return copy.slice(0, n);
  };
  const hex = (length: number) => {
    let out = '';
    while (out.length < length)
      out += Math.floor(next() * 0x100000000)
        .toString(16)
        .padStart(8, '0');
    return out.slice(0, length);
  };
  return { next, int, pick, chance: (p) => next() < p, sample, hex };
}

/** A content hash as a capture would record it: the digest of some (here made-up) content. */
export const contentHash = (content: string): string =>
  `sha256:${createHash('sha256').update(content).digest('hex')}`;

/** An OpenSSH SHA256 fingerprint (base64 without padding, 43 characters). */
export const fingerprint = (content: string): string =>
  `SHA256:${createHash('sha256').update(content).digest('base64').replace(/=+$/, '')}`;
