// What a restore reads: the blobs of the files it writes, fetched with ranged reads of just
// those blobs (neighbours in a pack in one read), several reads in flight, decoded on the
// thread pool ahead of the files being written, and the whole bounded in bytes.
import { CorruptionError } from './errors.js';
import type { StoreKeys } from './keys.js';
import type { ManifestEntry } from './manifest.js';
import { CollectionPacer } from './memory.js';
import type { ObjectStore } from './object-store.js';
import { decodeBlobsAsync } from './pack.js';
import type { PipelineLimits } from './store.js';

/** Where the index places a chunk; undefined when no index lists it. */
export type Locate = (
  id: string,
) => { packId: string; offset: number; length: number; rawLength: number } | undefined;

// Blobs this close together in a pack are read in one request, the bytes between them
// thrown away: a request costs more than that much transfer.
const GAP = 256 * 1024;
// A read is no larger than this (unless one blob is): a few reads in flight keep the window moving.
const MAX_READ = 8 * 1024 * 1024;

interface Slot {
  readonly read: Read;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
  readonly id: string;
  consumed: boolean;
}

interface Read {
  readonly key: string;
  readonly start: number;
  end: number;
  /** Sealed plus decoded bytes this read holds until every slot of it is consumed. */
  cost: number;
  readonly slots: Slot[];
  /** Decoded chunks by offset in the pack: a chunk a read holds twice is decoded once. */
  decoded?: Map<number, Promise<Uint8Array>> | undefined;
  pending: number;
  issued: boolean;
  /** Settled once the read's bytes are in (or it failed). */
  done?: Promise<void>;
  failure?: unknown;
}

/** What the reader holds, now and at most: counted bytes, not the process's memory. */
export interface ReaderGauge {
  heldBytes: number;
  peakHeldBytes: number;
  reads: number;
  peakReads: number;
  /** The costliest single read: one goes even when it alone exceeds the window. */
  largestReadBytes: number;
  /** Full collections the reader prompted (`collectBytes`). */
  collections?: number;
}

export class BlobReader {
  private readonly reads: Read[] = [];
  private readonly files = new Map<number, (Slot | CorruptionError)[]>();
  private next = 0;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  readonly gauge: ReaderGauge = {
    heldBytes: 0,
    peakHeldBytes: 0,
    reads: 0,
    peakReads: 0,
    largestReadBytes: 0,
  };

  /** Prompts a full collection once reads of this many bytes have been consumed (memory.ts). */
  readonly collector: CollectionPacer;

  /** `files` in the order they will be written: the reads follow it. */
  constructor(
    private readonly objects: ObjectStore,
    private readonly keys: StoreKeys,
    private readonly limits: Pick<PipelineLimits, 'restoreBytes' | 'restoreReads'> &
      Partial<Pick<PipelineLimits, 'collectBytes'>>,
    files: readonly { readonly index: number; readonly entry: ManifestEntry }[],
    locate: Locate,
    keyOf: (packId: string) => string,
  ) {
    this.collector = new CollectionPacer(limits.collectBytes ?? Number.MAX_SAFE_INTEGER);
    // Half the window at most, so that two reads fit in it and one can come in while the other is written.
    const maxRead = Math.max(1, Math.min(MAX_READ, Math.floor(limits.restoreBytes / 2)));
    let read: Read | undefined;
    for (const { index, entry } of files) {
      const slots: (Slot | CorruptionError)[] = [];
      for (const id of entry.chunks ?? []) {
        const at = locate(id);
        if (!at) {
          slots.push(
            new CorruptionError(
              { objectKey: 'snapshots/index/', chunkId: id },
              'no index lists this chunk: its pack is missing',
            ),
          );
          continue;
        }
        const key = keyOf(at.packId);
        const end = at.offset + at.length;
        if (
          !read ||
          read.key !== key ||
          at.offset + GAP < read.start ||
          at.offset > read.end + GAP ||
          Math.max(end, read.end) - Math.min(at.offset, read.start) > maxRead
        ) {
          read = { key, start: at.offset, end, cost: 0, slots: [], pending: 0, issued: false };
          this.reads.push(read);
        }
        if (at.offset < read.start) {
          // A chunk that comes again just before the range: a new read rather than reaching back.
          read = { key, start: at.offset, end, cost: 0, slots: [], pending: 0, issued: false };
          this.reads.push(read);
        }
        read.end = Math.max(read.end, end);
        const slot: Slot = {
          read,
          offset: at.offset,
          length: at.length,
          rawLength: at.rawLength,
          id,
          consumed: false,
        };
        read.slots.push(slot);
        read.pending++;
        slots.push(slot);
      }
      this.files.set(index, slots);
    }
    for (const r of this.reads) {
      const distinct = new Map(r.slots.map((s) => [s.offset, s.rawLength]));
      let raw = 0;
      for (const n of distinct.values()) raw += n;
      r.cost = r.end - r.start + raw;
      this.gauge.largestReadBytes = Math.max(this.gauge.largestReadBytes, r.cost);
    }
  }

  /** Issues the first reads: they come in while the restore makes its directories. */
  start(): void {
    this.pump();
  }

  /** Whether the file was planned (an incremental restore may write one it did not expect to). */
  planned(index: number): boolean {
    return this.files.has(index);
  }

  /** The content of a planned file, chunk by chunk, each verified before it is yielded. */
  async *content(index: number): AsyncGenerator<Uint8Array> {
    const slots = this.files.get(index) ?? [];
    try {
      for (const slot of slots) {
        if (slot instanceof CorruptionError) throw slot;
        this.pump();
        const chunk = await this.chunk(slot);
        this.consume(slot);
        yield chunk;
      }
    } finally {
      this.release(index);
    }
  }

  /**
   * Marks what is left of a file as consumed: a file that failed or was not written frees its
   * share of the window, so the reads behind it can go.
   */
  release(index: number): void {
    for (const slot of this.files.get(index) ?? [])
      if (!(slot instanceof CorruptionError)) this.consume(slot);
    this.files.delete(index);
    this.pump();
  }

  private consume(slot: Slot): void {
    if (slot.consumed) return;
    slot.consumed = true;
    const read = slot.read;
    read.pending--;
    if (read.pending === 0) {
      if (read.issued) {
        this.gauge.heldBytes -= read.cost;
        read.decoded = undefined;
        // The read's bytes and the chunks decoded from it are dropped now.
        this.collector.dropped(read.cost);
        this.gauge.collections = this.collector.started;
      } else read.issued = true; // never needed: the pump skips it
      this.wake();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Until the window changes: a read's bytes came in, or a read was wholly consumed. */
  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Issues reads in order while the window has room; the first one always goes. */
  private pump(): void {
    while (this.next < this.reads.length) {
      const read = this.reads[this.next] as Read;
      if (read.issued) {
        this.next++;
        continue;
      }
      const empty = this.gauge.heldBytes === 0 && this.inFlight === 0;
      if (
        !empty &&
        (this.inFlight >= this.limits.restoreReads ||
          this.gauge.heldBytes + read.cost > this.limits.restoreBytes)
      )
        return;
      this.next++;
      this.issue(read);
    }
  }

  private issue(read: Read): void {
    read.issued = true;
    this.gauge.heldBytes += read.cost;
    this.gauge.peakHeldBytes = Math.max(this.gauge.peakHeldBytes, this.gauge.heldBytes);
    this.inFlight++;
    this.gauge.reads = this.inFlight;
    this.gauge.peakReads = Math.max(this.gauge.peakReads, this.inFlight);
    const fetched = this.fetch(read).then(
      (bytes) => {
        const decoded = new Map<number, Promise<Uint8Array>>();
        const blobs: { offset: number; sealed: Uint8Array; id: string; rawLength: number }[] = [];
        const seen = new Set<number>();
        for (const s of read.slots) {
          if (seen.has(s.offset)) continue;
          seen.add(s.offset);
          const sealed = bytes.subarray(s.offset - read.start, s.offset - read.start + s.length);
          blobs.push({ offset: s.offset, sealed, id: s.id, rawLength: s.rawLength });
        }
        // The read's blobs decoded together: one trip to the thread pool for all of them.
        for (const [i, chunk] of decodeBlobsAsync(this.keys, blobs, read.key).entries()) {
          // Taken up by the file that needs it; one that failed before must not go unhandled.
          chunk.catch(() => undefined);
          decoded.set((blobs[i] as (typeof blobs)[number]).offset, chunk);
        }
        if (read.pending > 0) read.decoded = decoded;
      },
      (e) => {
        read.failure = e;
      },
    );
    read.done = fetched.finally(() => {
      this.inFlight--;
      this.gauge.reads = this.inFlight;
      this.pump();
      this.wake();
    });
  }

  /** One ranged read, checked to be as long as asked: a short one is tried once more, then refused. */
  private async fetch(read: Read): Promise<Uint8Array> {
    const length = read.end - read.start;
    for (let attempt = 0; ; attempt++) {
      const bytes = await this.objects.getRange(read.key, read.start, length);
      if (bytes.length === length) return bytes;
      if (attempt >= 1)
        throw new CorruptionError(
          { objectKey: read.key },
          `a read of ${length} bytes at ${read.start} returned ${bytes.length}: the pack is shorter than its index says`,
        );
    }
  }

  private async chunk(slot: Slot): Promise<Uint8Array> {
    const read = slot.read;
    // Reads before this one hold the window: they go as the files they belong to are written.
    while (read.done === undefined) {
      this.pump();
      if (read.done === undefined) await this.changed();
    }
    await read.done;
    if (read.failure !== undefined) throw read.failure;
    const chunk = read.decoded?.get(slot.offset);
    if (!chunk) throw new Error(`chunk ${slot.id} was released before it was read`);
    return chunk;
  }
}
