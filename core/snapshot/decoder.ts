// Blobs opened, decompressed and checked against their ids on a thread of their own, from and
// into memory shared with it (SharedArrayBuffer): a restore's main thread only fetches the
// packs' bytes and writes files.
//
// On the main thread each blob cost an AES-GCM plaintext, a joined copy for zstd and zstd's
// output, all of them ArrayBuffers that only a full collection of the main heap gives back: on
// the bench's corpus a restore ran 15–25 of them, about 0.8 CPU s, besides the cipher, HMAC and
// zstd themselves. Here the decoder writes each chunk into a region the reader gave it and its
// own garbage stays in its own small heap.
//
// The worker runs from source text (Worker `eval`), the same from TypeScript under a loader, from
// the `persona` bundle and from a Lambda bundle. The blob format is FORMAT.md's ("Packs",
// "Sealing") and pack.ts's: decoder.test.ts checks that both read every blob, and refuse every
// damaged one, alike.
import { Worker } from 'node:worker_threads';
import { CorruptionError, type Where } from './errors.js';
import { SEAL_OVERHEAD } from './seal.js';

/** One blob of a job: where its sealed bytes lie in `input`, where its chunk goes in `output`. */
export interface DecodeBlob {
  readonly at: number;
  readonly length: number;
  readonly id: string;
  readonly rawLength: number;
  readonly out: number;
}

export interface DecodeJob {
  readonly input: SharedArrayBuffer;
  readonly inputOffset: number;
  readonly output: SharedArrayBuffer;
  readonly outputOffset: number;
  readonly blobs: readonly DecodeBlob[];
  readonly sealKey: Uint8Array;
  readonly idKey: Uint8Array;
}

/** Why a blob was refused; undefined for one whose chunk is in place and matches its id. */
export type DecodeProblem =
  | { readonly kind: 'short'; readonly length: number }
  | { readonly kind: 'auth' }
  | { readonly kind: 'no-flag' }
  | { readonly kind: 'flag'; readonly flag: number }
  | { readonly kind: 'zstd'; readonly message: string }
  | { readonly kind: 'id' };

const problemText = (p: DecodeProblem): string => {
  switch (p.kind) {
    case 'short':
      return `sealed object is ${p.length} bytes, shorter than its ${SEAL_OVERHEAD}-byte nonce and tag`;
    case 'auth':
      return 'authentication failed (the bytes were altered)';
    case 'no-flag':
      return 'blob has no flag byte';
    case 'flag':
      return `unknown blob flag ${p.flag}`;
    case 'zstd':
      return 'compressed payload does not decompress';
    case 'id':
      return 'content does not match its id';
  }
};

/** The refusal of a blob, in the words pack.ts uses for the same damage. */
export const decodeFailure = (where: Where, p: DecodeProblem): CorruptionError =>
  new CorruptionError(where, problemText(p), p.kind === 'zstd' ? { cause: new Error(p.message) } : undefined);

// The worker's source: plain JavaScript as text, not a function's toString(), because loaders
// and bundlers rewrite functions (helpers for names, for require) with code of the module around
// them, which the worker does not have. Node's modules come from process.getBuiltinModule.
const DECODER_SOURCE = `
'use strict';
const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads');
const { createDecipheriv, createHmac } = process.getBuiltinModule('node:crypto');
const zlib = process.getBuiltinModule('node:zlib');
const NONCE = 12;
const TAG = 16;
const STORED = 0;
const ZSTD = 1;
// What a job allocates here (each plaintext, zstd's input and output) is garbage once it has
// answered, and still young: a scavenge of this thread's small heap gives it back before the
// next job, which then reuses the same memory. Left to V8, it went back only after 64 MiB more
// of it, and glibc kept the high-water mark.
process.getBuiltinModule('node:v8').setFlagsFromString('--expose-gc');
const collect = process.getBuiltinModule('node:vm').runInNewContext('gc');

function open(job, b) {
  const sealed = new Uint8Array(job.input, job.inputOffset + b.at, b.length);
  if (sealed.length < NONCE + TAG) return { problem: { kind: 'short', length: sealed.length } };
  let plain;
  try {
    const d = createDecipheriv('aes-256-gcm', job.sealKey, sealed.subarray(0, NONCE), { authTagLength: TAG });
    d.setAAD(Buffer.from('blob:' + b.id, 'utf8'));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    plain = d.update(sealed.subarray(NONCE, sealed.length - TAG));
    // Nothing is used before final() has checked the tag.
    d.final();
  } catch {
    return { problem: { kind: 'auth' } };
  }
  if (plain.length === 0) return { problem: { kind: 'no-flag' } };
  const flag = plain[0];
  if (flag !== STORED && flag !== ZSTD) return { problem: { kind: 'flag', flag } };
  return { flag, payload: plain.subarray(1) };
}

// The chunk's region, checked against its id there.
const region = (job, b) => new Uint8Array(job.output, job.outputOffset + b.out, b.rawLength);
const matches = (job, b, out) => createHmac('sha256', job.idKey).update(out).digest('hex') === b.id;

// A stored chunk into its region.
function place(job, b, chunk) {
  // A chunk of another length than the index says is not the chunk the id names.
  if (chunk.length !== b.rawLength) return { kind: 'id' };
  const out = region(job, b);
  out.set(chunk);
  return matches(job, b, out) ? undefined : { kind: 'id' };
}

// One zstd context for every frame, inflating straight into the chunk's region through the
// stream's native handle (what Node's own zstdDecompressSync drives). zstdDecompressSync builds
// a stream and its context per call, inflates into 16 KB buffers, joins them, and the chunk was
// then copied into its region: for 4000 frames of 30 KB, 130 ms against 55. A handle that has
// failed a frame is not trusted with the next; without the handle (another Node), each frame
// goes through zstdDecompressSync.
const SPARE = Buffer.alloc(64);
// null: every frame through zstdDecompressSync (what the tests make the thread do as well).
let inflater = workerData?.inflate === 'per-frame' ? null : undefined;
function kept() {
  if (inflater !== undefined) return inflater;
  const stream = new zlib.ZstdDecompress();
  const handle = stream._handle;
  const state = stream._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || !state) {
    inflater = null;
    return inflater;
  }
  inflater = { stream, handle, state, error: undefined };
  handle.onerror = (message) => {
    inflater.error = message;
  };
  return inflater;
}

function write(z, payload, at, out) {
  z.handle.writeSync(zlib.constants.ZSTD_e_end, payload, at, payload.length - at, out, 0, out.length);
  if (z.error === undefined) return { availOut: z.state[0], availIn: z.state[1] };
  inflater = undefined;
  z.stream.close();
  return { problem: { kind: 'zstd', message: String(z.error) } };
}

function inflateInto(job, b, payload) {
  const z = kept();
  if (!z) {
    const raw = inflate(payload, b.rawLength);
    return raw.problem ? raw.problem : place(job, b, raw);
  }
  const out = region(job, b);
  z.handle.reset();
  const first = write(z, payload, 0, out);
  if (first.problem) return first.problem;
  if (first.availOut !== 0) {
    const message = 'the frame decompressed to ' + (out.length - first.availOut) + ' bytes, not ' + b.rawLength;
    return { kind: 'zstd', message };
  }
  // The region is full: whatever the frame still holds is more than the index says.
  const rest = write(z, payload, payload.length - first.availIn, SPARE);
  if (rest.problem) return rest.problem;
  if (rest.availOut !== SPARE.length)
    return { kind: 'zstd', message: 'the frame decompresses to more than ' + b.rawLength + ' bytes' };
  return matches(job, b, out) ? undefined : { kind: 'id' };
}

function inflate(payload, rawLength) {
  try {
    // No more than the index says: a frame that would inflate past it is refused, not held.
    const raw = zlib.zstdDecompressSync(payload, { maxOutputLength: Math.max(1, rawLength) });
    return raw.length === rawLength
      ? raw
      : { problem: { kind: 'zstd', message: 'the frame decompressed to ' + raw.length + ' bytes, not ' + rawLength } };
  } catch (e) {
    return { problem: { kind: 'zstd', message: e instanceof Error ? e.message : String(e) } };
  }
}

// Each frame decompressed on its own: zstdDecompressSync, and Node's zstd streams too, stop at
// the end of the first frame of their input and drop the rest, so frames cannot be joined into
// one call. The verdicts go back every ANSWER_BYTES of chunks, so that the files of a read are
// written while the rest of it is decoded.
const ANSWER_BYTES = 1024 * 1024;
function decode(job) {
  let from = 0;
  let bytes = 0;
  const problems = [];
  job.blobs.forEach((b, i) => {
    const o = open(job, b);
    let problem;
    if (o.problem) problem = o.problem;
    else if (o.flag === STORED) problem = place(job, b, o.payload);
    else problem = inflateInto(job, b, o.payload);
    problems.push(problem);
    bytes += b.rawLength;
    if (bytes >= ANSWER_BYTES && i < job.blobs.length - 1) {
      parentPort.postMessage({ seq: job.seq, from, problems: problems.splice(0) });
      from = i + 1;
      bytes = 0;
    }
  });
  parentPort.postMessage({ seq: job.seq, from, problems, last: true });
}

parentPort.on('message', (job) => {
  try {
    decode(job);
  } catch (e) {
    // Not a damaged blob (those are answers): the job fails, and the next still runs.
    parentPort.postMessage({ seq: job.seq, error: e instanceof Error ? e.message : String(e) });
  }
  collect({ type: 'minor' });
});
`;

/** Verdicts on the blobs from index `from` on. */
export type DecodeAnswer = (from: number, problems: readonly (DecodeProblem | undefined)[]) => void;

interface Pending {
  readonly problems: (DecodeProblem | undefined)[];
  readonly onAnswer: DecodeAnswer | undefined;
  readonly resolve: (problems: (DecodeProblem | undefined)[]) => void;
  readonly reject: (e: Error) => void;
}

export interface BlobDecoderOptions {
  /**
   * How frames are inflated: by one kept zstd context, straight into their regions (the
   * default), or each by zstdDecompressSync, as the thread does where the first is not there.
   */
  readonly inflate?: 'kept' | 'per-frame';
}

/** The decoding thread: one per process, started on first use, kept while jobs are pending. */
export class BlobDecoder {
  private worker: Worker | undefined;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly options: BlobDecoderOptions = {}) {}

  /**
   * Decodes a job's blobs; `onAnswer` hears the verdicts as they come, blobs in order, in
   * pieces, before the promise settles with all of them.
   */
  decode(job: DecodeJob, onAnswer?: DecodeAnswer): Promise<(DecodeProblem | undefined)[]> {
    const worker = this.started();
    const seq = this.seq++;
    if (this.pending.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { problems: [], onAnswer, resolve, reject });
      worker.postMessage({ seq, ...job });
    });
  }

  /** Stops the thread; pending jobs fail. The next job starts another. */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.failAll(worker, new Error('the blob decoder was stopped'));
    await worker.terminate();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(DECODER_SOURCE, { eval: true, workerData: { inflate: this.options.inflate } });
    worker.unref();
    worker.on(
      'message',
      (m: {
        seq: number;
        from?: number;
        problems?: (DecodeProblem | undefined)[];
        last?: boolean;
        error?: string;
      }) => {
        const p = this.pending.get(m.seq);
        if (!p) return;
        if (m.problems) {
          p.problems.push(...m.problems);
          p.onAnswer?.(m.from ?? 0, m.problems);
          if (!m.last) return;
        }
        this.pending.delete(m.seq);
        if (this.pending.size === 0) worker.unref();
        if (m.problems) p.resolve(p.problems);
        else p.reject(new Error(`the blob decoder failed: ${m.error}`));
      },
    );
    worker.on('error', (e) => this.failAll(worker, e));
    worker.on('exit', (code) => this.failAll(worker, new Error(`the blob decoder exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private failAll(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending)
      p.reject(new Error(`the blob decoder failed: ${error.message}`, { cause: error }));
  }
}

/** The process's decoder. */
export const blobDecoder = new BlobDecoder();

/**
 * Regions of one SharedArrayBuffer, given out and taken back in any order: the reads of a
 * restore are held as the files that need them are written, mostly but not always in turn.
 */
export class Arena {
  readonly buffer: SharedArrayBuffer;
  /** Free regions, by offset, none adjacent to another. */
  private free: { offset: number; length: number }[];

  constructor(readonly size: number) {
    this.buffer = new SharedArrayBuffer(size);
    this.free = [{ offset: 0, length: size }];
  }

  /** The offset of a region of `length` bytes, or undefined when none is free. */
  take(length: number): number | undefined {
    if (length === 0) return 0;
    for (const [i, r] of this.free.entries()) {
      if (r.length < length) continue;
      const offset = r.offset;
      if (r.length === length) this.free.splice(i, 1);
      else this.free[i] = { offset: offset + length, length: r.length - length };
      return offset;
    }
    return undefined;
  }

  give(offset: number, length: number): void {
    if (length === 0) return;
    let i = 0;
    while (i < this.free.length && (this.free[i] as { offset: number }).offset < offset) i++;
    const before = this.free[i - 1];
    const after = this.free[i];
    if ((before && before.offset + before.length > offset) || (after && offset + length > after.offset))
      throw new Error(`region ${offset}+${length} is given back twice or was never taken`);
    let region = { offset, length };
    if (after && offset + length === after.offset) {
      region = { offset, length: length + after.length };
      this.free.splice(i, 1);
    }
    if (before && before.offset + before.length === offset) {
      this.free[i - 1] = { offset: before.offset, length: before.length + region.length };
    } else this.free.splice(i, 0, region);
  }

  /** Whether nothing is taken. */
  get empty(): boolean {
    return this.free.length === 1 && (this.free[0] as { length: number }).length === this.size;
  }
}
