// The memory a snapshot reads file content into: one buffer, used as a ring.
//
// Read into a fresh buffer each, a root filesystem's files are about as many bytes of
// ArrayBuffers as the tree (190 MiB for the bench's), each dropped once its chunks are sealed
// and freed only when V8's collector finds it: V8 collects for external memory only after
// 64 MiB of it, so that much garbage stood beside the pipeline's own buffers, and every such
// collection marks the whole heap. Here file content goes into regions of one buffer taken
// in order; a region is given back once the store is done with it and no chunk being
// encoded is a view of it, and regions come back in about the order they were taken (chunks
// are encoded in order), so the ring's free space stays in one or two pieces.

/** A stretch of the ring holding one read. */
export interface SlabRegion {
  /** The region's bytes. */
  readonly view: Uint8Array;
  /** @internal */ readonly start: number;
  /** @internal */ readonly end: number;
  /** Chunks being encoded that are views of this region. */
  holds: number;
  /** The store has read and chunked the region and will add no more holds. */
  closed: boolean;
  released: boolean;
}

export class ReadSlab {
  private readonly buffer: Uint8Array;
  private head = 0;
  private readonly live: SlabRegion[] = [];
  /** Bytes of regions taken and not given back, at most (for tests of the pipeline's bounds). */
  peakHeldBytes = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`a read slab holds a positive number of bytes, not ${capacity}`);
    this.buffer = Buffer.allocUnsafeSlow(capacity);
  }

  /** Bytes between the oldest region still held and the end of the newest. */
  get heldBytes(): number {
    const first = this.live[0];
    if (!first) return 0;
    return first.start < this.head ? this.head - first.start : this.capacity - first.start + this.head;
  }

  /**
   * A region of `size` bytes, or undefined while older regions hold the room it needs (the
   * caller then finishes some of their chunks and asks again). With nothing held, any size up
   * to the capacity is given.
   */
  take(size: number): SlabRegion | undefined {
    // An empty region would make the ring's head meet its tail while something is held.
    if (!Number.isSafeInteger(size) || size < 1 || size > this.capacity)
      throw new RangeError(
        `a region of a read slab of ${this.capacity} bytes is 1 to that many bytes, not ${size}`,
      );
    let start: number;
    const first = this.live[0];
    if (!first) {
      this.head = 0;
      start = 0;
    } else if (first.start < this.head) {
      // Not wrapped: the held regions lie in [tail, head).
      if (this.capacity - this.head >= size) start = this.head;
      else if (size < first.start) start = 0;
      else return undefined;
    } else {
      // Wrapped: free room is [head, tail); kept strictly short of the tail, so that head and
      // tail meet only when nothing is held.
      if (this.head + size < first.start) start = this.head;
      else return undefined;
    }
    const region: SlabRegion = {
      view: this.buffer.subarray(start, start + size),
      start,
      end: start + size,
      holds: 0,
      closed: false,
      released: false,
    };
    this.live.push(region);
    this.head = start + size;
    this.peakHeldBytes = Math.max(this.peakHeldBytes, this.heldBytes);
    return region;
  }

  /** The store is done reading and chunking `region`: it goes back once nothing holds it. */
  close(region: SlabRegion): void {
    region.closed = true;
    this.settle(region);
  }

  /** A chunk that was a view of `region` is encoded. */
  unhold(region: SlabRegion): void {
    region.holds--;
    this.settle(region);
  }

  private settle(region: SlabRegion): void {
    if (!region.closed || region.holds > 0 || region.released) return;
    region.released = true;
    while (this.live[0]?.released) this.live.shift();
    if (this.live.length === 0) this.head = 0;
  }
}
