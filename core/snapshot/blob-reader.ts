// What a restore reads: the blobs of the files it writes, fetched with ranged reads of just
// those blobs (neighbours in a pack in one read), several reads in flight, decoded on a thread of
// their own (decoder.ts) ahead of the files being written, and the whole bounded in bytes.
//
// A read's bytes and its chunks lie in one SharedArrayBuffer the reader keeps (its window):
// fetched into it, decoded from it into it, written to files from it, and given back once every
// file that needs them has taken them. A restore that allocated them anew for each read left
// the main heap's collector hundreds of MiB of ArrayBuffers to find.
import { MAX_CHUNK_BYTES } from './chunker.js';
import { Arena, type BlobDecoder, blobDecoder, decodeFailure } from './decoder.js';
import { CorruptionError } from './errors.js';
import type { StoreKeys } from './keys.js';
import type { ManifestEntry } from './manifest.js';
import { CollectionPacer } from './memory.js';
import type { ObjectStore } from './object-store.js';
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

/** Where a read's bytes lie: its sealed bytes and, after them or elsewhere, its chunks. */
interface Place {
  readonly input: SharedArrayBuffer;
  readonly inputOffset: number;
  readonly output: SharedArrayBuffer;
  readonly outputOffset: number;
  /** Taken from the window (given back there), or a buffer of its own for a read larger than it. */
  readonly inWindow: boolean;
}

interface Read {
  readonly key: string;
  readonly start: number;
  end: number;
  /** Sealed plus decoded bytes this read holds until every slot of it is consumed. */
  cost: number;
  /** Decoded bytes: each distinct chunk once. */
  raw: number;
  readonly slots: Slot[];
  /** Each distinct chunk's offset in the read's output, by its offset in the pack. */
  readonly outAt: Map<number, number>;
  /**
   * Each distinct chunk by its offset in the pack (a chunk a read holds twice is decoded once),
   * settled as the decoder answers for it: a view of the read's output, or why not.
   */
  decoded?: Map<number, Promise<Uint8Array>> | undefined;
  pending: number;
  issued: boolean;
  place?: Place | undefined;
  /** The output is the decoder's until it has answered: given back only after that. */
  decoding: boolean;
  /** Settled once the read's chunks are decoded (or it failed). */
  done?: Promise<void>;
}

const newRead = (key: string, start: number, end: number): Read => ({
  key,
  start,
  end,
  cost: 0,
  raw: 0,
  slots: [],
  outAt: new Map(),
  pending: 0,
  issued: false,
  decoding: false,
});

export interface BlobReaderOptions {
  /**
   * Chunks are yielded as views of the window, valid until the file asks for its next chunk
   * (then its share may be given to another read): for a consumer that writes each before it
   * asks for the next. Without it each chunk is a copy of its own.
   */
  readonly lend?: boolean;
  /** Bytes consumed between two full collections the reader prompts: the store's `collectBytes` unless given. */
  readonly collectBytes?: number;
  /** The decoding thread (tests stop it to see a restore fail cleanly). */
  readonly decoder?: BlobDecoder;
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
  private window: Arena | undefined;
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
    private readonly options: BlobReaderOptions = {},
  ) {
    this.collector = new CollectionPacer(
      options.collectBytes ?? limits.collectBytes ?? Number.MAX_SAFE_INTEGER,
    );
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
        if (at.rawLength > MAX_CHUNK_BYTES) {
          // Room is made for it before it is decoded: an index may not ask for more than a chunk can be.
          slots.push(
            new CorruptionError(
              { objectKey: keyOf(at.packId), chunkId: id },
              `the index gives this chunk ${at.rawLength} bytes, more than a chunk can have (${MAX_CHUNK_BYTES})`,
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
          // Sealed bytes and chunks together: two reads fit in the window.
          Math.max(end, read.end) -
            Math.min(at.offset, read.start) +
            read.raw +
            (read.outAt.has(at.offset) ? 0 : at.rawLength) >
            maxRead
        ) {
          read = newRead(key, at.offset, end);
          this.reads.push(read);
        }
        if (at.offset < read.start) {
          // A chunk that comes again just before the range: a new read rather than reaching back.
          read = newRead(key, at.offset, end);
          this.reads.push(read);
        }
        read.end = Math.max(read.end, end);
        if (!read.outAt.has(at.offset)) {
          read.outAt.set(at.offset, read.raw);
          read.raw += at.rawLength;
        }
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
      r.cost = r.end - r.start + r.raw;
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
        if (this.options.lend) {
          // Consumed once the file asks for the next one: until then the view is the file's.
          yield chunk;
          this.consume(slot);
        } else {
          const copy = Buffer.from(chunk);
          this.consume(slot);
          yield copy;
        }
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
        this.giveBack(read);
        // What the read's bytes came in as (the socket's buffers), and the copies made of its
        // chunks, are dropped now.
        this.collector.dropped(read.end - read.start + (this.options.lend ? 0 : read.raw));
        this.gauge.collections = this.collector.started;
      } else read.issued = true; // never needed: the pump skips it
      this.wake();
    }
  }

  /** The read's output back to the window, once every file has taken it and the decoder is done with it. */
  private giveBack(read: Read): void {
    const place = read.place;
    if (place === undefined || read.pending > 0 || read.decoding) return;
    read.place = undefined;
    if (place.inWindow) (this.window as Arena).give(place.outputOffset, read.raw);
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
      const place = this.placeOf(read, empty);
      if (place === undefined) return;
      this.next++;
      read.place = place;
      this.issue(read);
    }
  }

  /**
   * Room for a read's sealed bytes and its chunks in the window. A read the window cannot hold
   * goes alone in buffers of its own; one that waits for a decoder still writing into regions
   * given up waits for them (the decoder's answer pumps again).
   */
  private placeOf(read: Read, empty: boolean): Place | undefined {
    const sealed = read.end - read.start;
    this.window ??= new Arena(Math.max(1, this.limits.restoreBytes));
    const input = this.window.take(sealed);
    const output = input === undefined ? undefined : this.window.take(read.raw);
    if (input !== undefined && output !== undefined)
      return {
        input: this.window.buffer,
        inputOffset: input,
        output: this.window.buffer,
        outputOffset: output,
        inWindow: true,
      };
    if (input !== undefined) this.window.give(input, sealed);
    if (!empty) return undefined;
    return {
      input: new SharedArrayBuffer(sealed),
      inputOffset: 0,
      output: new SharedArrayBuffer(read.raw),
      outputOffset: 0,
      inWindow: false,
    };
  }

  private issue(read: Read): void {
    read.issued = true;
    this.gauge.heldBytes += read.cost;
    this.gauge.peakHeldBytes = Math.max(this.gauge.peakHeldBytes, this.gauge.heldBytes);
    this.inFlight++;
    this.gauge.reads = this.inFlight;
    this.gauge.peakReads = Math.max(this.gauge.peakReads, this.inFlight);
    const place = read.place as Place;
    const sealed = read.end - read.start;
    const fetched = this.fetch(read, new Uint8Array(place.input, place.inputOffset, sealed)).finally(() => {
      this.inFlight--;
      this.gauge.reads = this.inFlight;
      this.pump();
    });
    read.decoding = true;
    const settle = new Map<number, { resolve: (c: Uint8Array) => void; reject: (e: unknown) => void }>();
    read.decoded = new Map();
    for (const offset of read.outAt.keys()) {
      const chunk = new Promise<Uint8Array>((resolve, reject) => settle.set(offset, { resolve, reject }));
      // Taken up by the file that needs it; one that failed before must not go unhandled.
      chunk.catch(() => undefined);
      read.decoded.set(offset, chunk);
    }
    read.done = fetched
      .then(() => this.decode(read, place, settle))
      .catch((e) => {
        // Chunks already answered for keep their verdict; the rest share the read's failure.
        for (const s of settle.values()) s.reject(e);
      })
      .finally(() => {
        // The sealed bytes are the decoder's no more; the chunks go back once consumed.
        read.decoding = false;
        if (place.inWindow) (this.window as Arena).give(place.inputOffset, sealed);
        this.giveBack(read);
        this.pump();
        this.wake();
      });
  }

  /** The read's chunks decoded into its output, each settled as its verdict comes: a view there, or why not. */
  private async decode(
    read: Read,
    place: Place,
    settle: Map<number, { resolve: (c: Uint8Array) => void; reject: (e: unknown) => void }>,
  ): Promise<void> {
    const blobs: {
      offset: number;
      id: string;
      rawLength: number;
      at: number;
      length: number;
      out: number;
    }[] = [];
    const seen = new Set<number>();
    for (const s of read.slots) {
      if (seen.has(s.offset)) continue;
      seen.add(s.offset);
      blobs.push({
        offset: s.offset,
        id: s.id,
        rawLength: s.rawLength,
        at: s.offset - read.start,
        length: s.length,
        out: read.outAt.get(s.offset) as number,
      });
    }
    await (this.options.decoder ?? blobDecoder).decode(
      {
        input: place.input,
        inputOffset: place.inputOffset,
        output: place.output,
        outputOffset: place.outputOffset,
        blobs: blobs.map(({ at, length, id, rawLength, out }) => ({ at, length, id, rawLength, out })),
        sealKey: this.keys.sealKey,
        idKey: this.keys.idKey,
      },
      (from, problems) => {
        for (const [k, problem] of problems.entries()) {
          const b = blobs[from + k];
          const s = b && settle.get(b.offset);
          if (!b || !s) continue;
          settle.delete(b.offset);
          if (problem === undefined)
            s.resolve(new Uint8Array(place.output, place.outputOffset + b.out, b.rawLength));
          else s.reject(decodeFailure({ objectKey: read.key, chunkId: b.id }, problem));
        }
      },
    );
    // Every chunk has its verdict by now; one without would leave its file waiting.
    for (const s of settle.values())
      s.reject(new Error(`the blob decoder gave no verdict on a chunk of ${read.key}`));
  }

  /** One ranged read into `into`, checked to be as long as asked: a short one is tried once more, then refused. */
  private async fetch(read: Read, into: Uint8Array): Promise<void> {
    const length = read.end - read.start;
    for (let attempt = 0; ; attempt++) {
      const bytes = await this.objects.getRange(read.key, read.start, length, into);
      if (bytes.length === length) {
        // A store that read elsewhere (or a wrapper of one) is copied from.
        if (bytes.buffer !== into.buffer || bytes.byteOffset !== into.byteOffset) into.set(bytes);
        return;
      }
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
    const chunk = read.decoded?.get(slot.offset);
    if (!chunk) throw new Error(`chunk ${slot.id} was released before it was read`);
    return chunk;
  }
}
