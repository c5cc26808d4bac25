// Writing a snapshot's entries as a pax tar stream: the restore onto a host and the export.
//
// The stream is written in blocks of a fixed size, each handed to the output whole and never
// touched again (an output may hold a chunk after its callback: a PassThrough keeps it for its
// reader, as the SSM transport's input does); content is copied into a block as it comes.
// So a chunk the caller only lends (a view of the blob reader's window) is free again as soon
// as `content` returns, the output sees a few large writes instead of a header, a chunk and a
// padding each, and what is in flight is bounded by `blocks × blockBytes`, whatever the tree.
//
// An entry carries a pax extended header with whatever its ustar header cannot hold: a path or
// link target that is not short printable ASCII, a time with a fraction of a second or before
// 1970, ids past 7 octal digits, sizes past 11, names that do not fit. GNU tar reads the pax
// values over the ustar ones, so a name with newlines or any UTF-8 reaches the host as itself
// (a leading "-" is only ever a name in a header). Most of a host's entries (package files,
// whole-second times, short paths) need none: 512 bytes of header each instead of 1,536.
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { majorOf, minorOf } from './devices.js';
import type { ManifestEntry } from './manifest.js';

const RECORD = 512;
// ustar's numeric fields: 7 octal digits for mode, ids and device numbers, 11 for size and mtime.
const OCTAL7_MAX = 0o7777777;
const OCTAL11_MAX = 0o77777777777;

const TYPEFLAG: Readonly<Record<ManifestEntry['type'], number>> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  dir: 0x35,
  fifo: 0x36,
};
const PAX_TYPEFLAG = 0x78;

export interface TarWriterOptions {
  /** Bytes of each write to the output. */
  readonly blockBytes?: number;
  /** Blocks that may be with the output at once: the bound on what the writer holds. */
  readonly blocks?: number;
  /** Writes the entries' user and group names (an export); without it only numeric ids. */
  readonly names?: boolean;
}

/** A pax record, `<length> <key>=<value>\n`, where the length counts the record's own bytes. */
function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, 'utf8');
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length), 'ascii'), body]);
}

/**
 * A signed nanosecond time as pax writes it, a decimal number of seconds (`-1.500000000` is
 * half a second before -1), and its whole seconds for ustar's field.
 */
function paxTime(mtimeNs: string): { seconds: bigint; text: string; ustar: boolean } {
  const ns = BigInt(mtimeNs);
  const magnitude = ns < 0n ? -ns : ns;
  const whole = magnitude / 1_000_000_000n;
  const part = magnitude % 1_000_000_000n;
  const fraction = part.toString().padStart(9, '0');
  return {
    seconds: ns < 0n ? -whole : whole,
    text: `${ns < 0n ? '-' : ''}${whole}.${fraction}`,
    // ustar's field holds whole seconds from 1970, in 11 octal digits.
    ustar: part === 0n && ns >= 0n && whole <= BigInt(OCTAL11_MAX),
  };
}

const isShortAscii = (value: string, max: number) => value.length < max && /^[\x20-\x7e]*$/.test(value);

function putOctal(header: Buffer, at: number, digits: number, value: number): void {
  header.write(value.toString(8).padStart(digits, '0'), at, digits, 'ascii');
  header[at + digits] = 0;
}

/**
 * What goes before a file's content (or is the whole of any other entry): a pax header and its
 * records where the entry needs them, then its ustar header.
 */
export function encodeHeader(e: ManifestEntry, options: { names?: boolean } = {}): Buffer {
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const time = paxTime(e.mtimeNs);
  const name = e.type === 'dir' ? `${e.path}/` : e.path;
  const records: Buffer[] = [];
  if (!isShortAscii(name, 100)) records.push(paxRecord('path', name));
  const link = e.type === 'symlink' || e.type === 'hardlink' ? (e.target ?? '') : '';
  if (link !== '' && !isShortAscii(link, 100)) records.push(paxRecord('linkpath', link));
  if (!time.ustar) records.push(paxRecord('mtime', time.text));
  if (e.uid > OCTAL7_MAX) records.push(paxRecord('uid', String(e.uid)));
  if (e.gid > OCTAL7_MAX) records.push(paxRecord('gid', String(e.gid)));
  if (size > OCTAL11_MAX) records.push(paxRecord('size', String(size)));
  const user = options.names ? (e.user ?? '') : '';
  const group = options.names ? (e.group ?? '') : '';
  if (user !== '' && !isShortAscii(user, 32)) records.push(paxRecord('uname', user));
  if (group !== '' && !isShortAscii(group, 32)) records.push(paxRecord('gname', group));
  const paxBytes = records.reduce((n, r) => n + r.length, 0);
  const paxPadded = Math.ceil(paxBytes / RECORD) * RECORD;
  const paxHeader = records.length === 0 ? 0 : RECORD + paxPadded;
  const out = Buffer.alloc(paxHeader + RECORD);

  const ustar = (at: number, fields: UstarFields) => {
    const h = out.subarray(at, at + RECORD);
    // A name or link its field cannot hold as itself is left empty: its pax record holds it.
    h.write(fields.name, 0, 100, 'utf8');
    putOctal(h, 100, 7, fields.mode & 0o7777);
    putOctal(h, 108, 7, Math.min(fields.uid, OCTAL7_MAX));
    putOctal(h, 116, 7, Math.min(fields.gid, OCTAL7_MAX));
    putOctal(h, 124, 11, Math.min(fields.size, OCTAL11_MAX));
    putOctal(h, 136, 11, Math.min(Math.max(Number(fields.mtime), 0), OCTAL11_MAX));
    h[156] = fields.typeflag;
    h.write(fields.link, 157, 100, 'utf8');
    h.write('ustar\u000000', 257, 8, 'ascii');
    if (isShortAscii(fields.user, 32)) h.write(fields.user, 265, 32, 'ascii');
    if (isShortAscii(fields.group, 32)) h.write(fields.group, 297, 32, 'ascii');
    if (fields.device !== undefined) {
      putOctal(h, 329, 7, Math.min(fields.device[0], OCTAL7_MAX));
      putOctal(h, 337, 7, Math.min(fields.device[1], OCTAL7_MAX));
    }
    // The checksum counts its own field as eight spaces; it is written as six digits, NUL, space.
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < RECORD; i++) sum += h[i] as number;
    putOctal(h, 148, 6, sum);
    h[155] = 0x20;
  };

  if (paxHeader > 0) {
    ustar(0, {
      name: 'PaxHeader',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: paxBytes,
      mtime: time.seconds,
      typeflag: PAX_TYPEFLAG,
      link: '',
      user: '',
      group: '',
    });
    let at = RECORD;
    for (const r of records) {
      r.copy(out, at);
      at += r.length;
    }
  }
  const rdev = e.rdev ?? 0;
  ustar(paxHeader, {
    name: isShortAscii(name, 100) ? name : '',
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size,
    mtime: time.seconds,
    typeflag: TYPEFLAG[e.type],
    link: isShortAscii(link, 100) ? link : '',
    user,
    group,
    ...(e.type === 'char' || e.type === 'block' ? { device: [majorOf(rdev), minorOf(rdev)] as const } : {}),
  });
  return out;
}

interface UstarFields {
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: bigint;
  readonly typeflag: number;
  readonly link: string;
  readonly user: string;
  readonly group: string;
  readonly device?: readonly [number, number];
}

/**
 * A pax tar stream onto `out`: `entry` for each entry, then for a file exactly its size in
 * `content`, then `finish`. Each call resolves once its bytes are in a block; a block goes to
 * the output when full, and the writer waits while `blocks` of them are with the output.
 */
export class TarWriter {
  /** Bytes of the stream written so far, headers and padding included. */
  written = 0;
  private readonly blockBytes: number;
  private readonly maxBlocks: number;
  /** Blocks written whose callback has not come yet. */
  private inFlight = 0;
  private block: Buffer | undefined;
  private at = 0;
  /** Content still owed to the current file. */
  private owed = 0;
  private owedPath = '';
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly out: Writable,
    private readonly options: TarWriterOptions = {},
  ) {
    this.blockBytes = Math.max(RECORD, options.blockBytes ?? 256 * 1024);
    this.maxBlocks = Math.max(2, options.blocks ?? 4);
    const fail = (error: Error) => {
      this.failure ??= error;
      this.wake();
    };
    out.on('error', fail);
    out.on('close', () => fail(new Error('the tar stream was closed before it ended')));
  }

  /** The entry's header; a file's content follows through `content`. */
  async entry(e: ManifestEntry): Promise<void> {
    if (this.owed > 0) throw new Error(`${this.owedPath}: ${this.owed} bytes of content were not written`);
    await this.put(encodeHeader(e, { names: this.options.names === true }));
    if (e.type === 'file') {
      this.owed = e.size ?? 0;
      this.owedPath = e.path;
    }
  }

  /** Part of the current file's content: copied before this resolves, so `piece` may be reused after. */
  async content(piece: Uint8Array): Promise<void> {
    if (piece.length > this.owed)
      throw new Error(
        `${this.owedPath}: content runs past its size (${piece.length} bytes, ${this.owed} owed)`,
      );
    this.owed -= piece.length;
    await this.put(piece);
    if (this.owed === 0) await this.pad();
  }

  /** Zeros as the current file's content: what is left of a file whose data failed part-way. */
  async zeros(count: number): Promise<void> {
    const n = Math.min(count, this.owed);
    this.owed -= n;
    await this.fill(n);
    if (this.owed === 0) await this.pad();
  }

  /** The end-of-archive records, the last block, and the output ended and finished. */
  async finish(): Promise<void> {
    if (this.owed > 0) throw new Error(`${this.owedPath}: ${this.owed} bytes of content were not written`);
    await this.put(Buffer.alloc(2 * RECORD));
    if (this.at > 0) this.send();
    this.check();
    this.out.end();
    await finished(this.out, { readable: false });
  }

  /** Zeros to the next record boundary: headers are whole records, so what is over is content. */
  private async pad(): Promise<void> {
    const over = this.written % RECORD;
    if (over > 0) await this.fill(RECORD - over);
  }

  private async fill(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      const block = await this.current();
      const n = Math.min(left, block.length - this.at);
      block.fill(0, this.at, this.at + n);
      this.at += n;
      this.written += n;
      left -= n;
      if (this.at === block.length) this.send();
    }
  }

  private async put(bytes: Uint8Array): Promise<void> {
    let from = 0;
    while (from < bytes.length) {
      const block = await this.current();
      const n = Math.min(bytes.length - from, block.length - this.at);
      block.set(bytes.subarray(from, from + n), this.at);
      this.at += n;
      from += n;
      this.written += n;
      if (this.at === block.length) this.send();
    }
  }

  /** The block being filled; when there is none, a new one once fewer than the bound are with the output. */
  private async current(): Promise<Buffer> {
    this.check();
    if (this.block !== undefined) return this.block;
    for (;;) {
      const block = this.inFlight < this.maxBlocks ? Buffer.allocUnsafe(this.blockBytes) : undefined;
      if (block !== undefined) {
        this.block = block;
        this.at = 0;
        return block;
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      this.check();
    }
  }

  private send(): void {
    const block = this.block as Buffer;
    const length = this.at;
    this.block = undefined;
    this.at = 0;
    this.inFlight++;
    this.out.write(length === block.length ? block : block.subarray(0, length), (error) => {
      this.inFlight--;
      if (error) this.failure ??= error;
      this.wake();
    });
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
