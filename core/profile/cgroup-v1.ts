// The cgroup v1 meaning of a Profile's cgroup limits (CgroupLimit speaks cgroup v2). Capture
// reads v1 files into these fields and the cgroup executor and persona-agent write them back,
// so both sides use these conversions and a v1 host's limits survive a capture and an apply.

/** cpu.shares' range in the kernel (MIN_SHARES, MAX_SHARES). */
export const SHARES_MIN = 2;
export const SHARES_MAX = 262144;
/** cpu.weight's range. */
export const WEIGHT_MIN = 1;
export const WEIGHT_MAX = 10000;

/**
 * A memory.limit_in_bytes this large is "no limit": the kernel stores -1 as its largest
 * page-rounded value (9223372036854771712 with 4 KiB pages), which no real limit comes near.
 */
export const V1_MEMORY_UNLIMITED = 2 ** 62;

const clamp = (v: number, min: number, max: number) => Math.min(max, Math.max(min, v));

/**
 * cpu.weight as cpu.shares, systemd's conversion (the default weight 100 is the default 1024
 * shares): shares = weight × 1024 / 100, rounded, clamped to the kernel's range. Every weight
 * of 1–10000 lands inside it (10–102400), so nothing is clamped on the way out.
 */
export const weightToShares = (weight: number): number =>
  clamp(Math.round((weight * 1024) / 100), SHARES_MIN, SHARES_MAX);

/**
 * cpu.shares as cpu.weight, the inverse: weight = shares × 100 / 1024, rounded, clamped to
 * 1–10000. A weight written as shares reads back as that weight (the rounding on the way out
 * moves shares by at most 0.5, less than half of one weight step of 10.24 shares).
 */
export const sharesToWeight = (shares: number): number =>
  clamp(Math.round((shares * 100) / 1024), WEIGHT_MIN, WEIGHT_MAX);

/** Each v1 I/O weight file's range: CFQ's blkio.weight 10–1000, BFQ's blkio.bfq.weight 1–1000. */
export const V1_IO_WEIGHT: Readonly<Record<string, { min: number; max: number; initial: number }>> = {
  'blkio.weight': { min: 10, max: 1000, initial: 500 },
  'blkio.bfq.weight': { min: 1, max: 1000, initial: 100 },
};
