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
// - a full collection is started, marked concurrently, once the pipeline has dropped
//   `collectBytes` (16 MiB by default): the buffers the chunks of that stretch used go back
//   then, not 64 MiB later.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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

type Collect = (options: { type: 'major'; execution: 'async' }) => void;
let collect: Collect | null | undefined;

/**
 * V8's `gc` function, made available after start-up: `--expose-gc` set now gives it to the
 * contexts made afterwards. Null where that does not work (the pipeline then only loses the
 * pacing, not its bounds).
 */
function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    collect = typeof gc === 'function' ? (gc as Collect) : null;
  } catch {
    collect = null;
  }
  return collect;
}

/** Counts the bytes a pipeline drops and starts a full collection after every `every` of them. */
export class CollectionPacer {
  private since = 0;
  /** Collections started (for tests of the pacing). */
  started = 0;

  constructor(private readonly every: number) {}

  dropped(bytes: number): void {
    this.since += bytes;
    if (this.since < this.every) return;
    // What went past the mark counts toward the next one: a collection per `every` bytes,
    // however the chunks fall, not one per `every` plus the chunk that crossed it.
    this.since -= this.every;
    const gc = collector();
    if (!gc) return;
    gc({ type: 'major', execution: 'async' });
    this.started++;
  }
}
