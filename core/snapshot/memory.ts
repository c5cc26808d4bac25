// How a snapshot or a restore keeps V8 from holding what the pipeline has dropped.
//
// A snapshot's bytes live in ArrayBuffers: each chunk, what zstd and the cipher make of it, each
// ranged read and what it decodes to. The memory of a dropped one is freed only when the
// collector finds its handle, and V8 runs a full collection for external memory only once it
// has grown by about 64 MiB since the last: the pipeline's own bounds (40 MiB of packs and
// chunks) were followed by as much again of dropped buffers, and glibc keeps what it was given.
// Two measures, both process-wide:
// - the young generation is held at the size it has (V8 lets it grow to 2 × 16 MiB, which the
//   process then holds, and its buffers wait longer for a scavenge);
// - once the pipeline has dropped `collectBytes` (16 MiB by default), V8 is told of external
//   memory it has not seen: an ArrayBuffer larger than its 64 MiB threshold, allocated and
//   dropped at once. Past that threshold V8 starts incremental marking, done mostly on its own
//   threads, and the buffers the chunks of that stretch used go back then, not 64 MiB later.
//   The buffer's pages are never written, so it costs address space, not memory (a fresh mmap
//   reads as zeros). V8's `gc()` did the same in one atomic pause on the main thread: 15–20 ms
//   each, a tenth of a restore's time on the bench's corpus.
import { setFlagsFromString } from 'node:v8';

let held = false;

/**
 * Stops the young generation from growing for the rest of the process (V8's growth factor 1:
 * each semi-space keeps its current capacity). Called once by the processes that run
 * snapshots and restores, before the modules they load make it grow.
 * `PERSONA_YOUNG_GENERATION=grow` leaves V8's default.
 */
export function holdYoungGeneration(): void {
  if (held || process.env.PERSONA_YOUNG_GENERATION === 'grow') return;
  held = true;
  setFlagsFromString('--semi-space-growth-factor=1');
}

// Above V8's soft limit for external memory (64 MiB over the least since the last full
// collection) and far below its hard one (half the old generation's maximum), past which it would
// collect at once, atomically, as `gc()` did.
const NUDGE_BYTES = 96 * 1024 * 1024;

/**
 * Makes V8 start incremental marking now, if it is not marking already: external memory of
 * NUDGE_BYTES reported and dropped. Never touched, the buffer is mapped and unmapped, not
 * filled; the collection it starts frees it with the rest.
 */
export function promptCollection(): void {
  void new ArrayBuffer(NUDGE_BYTES);
}

/** Counts the bytes a pipeline drops and prompts a full collection after every `every` of them. */
export class CollectionPacer {
  private since = 0;
  /** Collections prompted (for tests of the pacing). */
  started = 0;

  constructor(private readonly every: number) {}

  dropped(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    // What went past the mark counts toward the next one: a collection per `every` bytes,
    // however the chunks fall, not one per `every` plus the chunk that crossed it.
    this.since -= this.every;
    promptCollection();
    this.started++;
  }
}
