// The pax tar writer behind the restore onto a host and the export: what it writes is read back
// by GNU tar (as the hosts do) and by another implementation, for entries whose values do not
// fit ustar's fields; and it holds no more than its blocks when the output stops reading, and
// gives up, not hangs, when the output fails.
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { ManifestEntry } from '../../../core/snapshot/manifest.js';
import { encodeHeader, TarWriter } from '../../../core/snapshot/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'persona-tarwriter-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const entry = (fields: Partial<ManifestEntry> & Pick<ManifestEntry, 'path' | 'type'>): ManifestEntry => ({
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtimeNs: '1700000000123456789',
  ...fields,
});

const LONG_DIR = `${'d'.repeat(120)}/ünï\ncødé`;
const ENTRIES: { e: ManifestEntry; content?: Buffer }[] = [
  { e: entry({ path: 'd', type: 'dir', mode: 0o750, uid: 3_000_000_000, gid: 2_500_000 }) },
  { e: entry({ path: 'd/-rf', type: 'file', size: 5, mode: 0o4755 }), content: Buffer.from('hello') },
  { e: entry({ path: 'd/old', type: 'file', size: 0, mtimeNs: '-1500000000' }), content: Buffer.alloc(0) },
  { e: entry({ path: LONG_DIR.split('/')[0] as string, type: 'dir' }) },
  {
    e: entry({ path: LONG_DIR, type: 'file', size: 700_001, uid: 1000, gid: 1000 }),
    content: Buffer.alloc(700_001, 7),
  },
  { e: entry({ path: 'd/link', type: 'symlink', mode: 0o777, target: `/${'t'.repeat(150)}/ü` }) },
  { e: entry({ path: 'd/hard', type: 'hardlink', target: 'd/-rf', mode: 0o4755 }) },
  { e: entry({ path: 'd/fifo', type: 'fifo', mode: 0o620 }) },
  { e: entry({ path: 'd/null', type: 'char', mode: 0o666, rdev: (1 << 8) | 3 }) },
  // Entries ustar holds whole (short ASCII names, whole seconds): no pax header at all.
  { e: entry({ path: 'd/plain', type: 'dir', mode: 0o755, mtimeNs: '1600000000000000000' }) },
  {
    e: entry({
      path: 'd/plain/-n x.conf',
      type: 'file',
      size: 3,
      mode: 0o640,
      uid: 7,
      gid: 9,
      mtimeNs: '1600000001000000000',
    }),
    content: Buffer.from('a=1'),
  },
  {
    e: entry({
      path: 'd/plain/ln',
      type: 'symlink',
      mode: 0o777,
      target: '../-rf',
      mtimeNs: '1600000002000000000',
    }),
  },
  {
    e: entry({
      path: 'd/plain/hard',
      type: 'hardlink',
      target: 'd/plain/-n x.conf',
      mode: 0o640,
      uid: 7,
      gid: 9,
      mtimeNs: '1600000001000000000',
    }),
  },
];

/** A pax record as the format spells it: the length counts the record's own bytes, its digits too. */
function paxText(record: string): string {
  const body = Buffer.byteLength(` ${record}\n`);
  let length = body + 1;
  while (String(length).length + body !== length) length = String(length).length + body;
  return `${length} ${record}\n`;
}

async function writeAll(out: Writable, blockBytes?: number): Promise<number> {
  const writer = new TarWriter(out, blockBytes === undefined ? {} : { blockBytes });
  for (const { e, content } of ENTRIES) {
    await writer.entry(e);
    // Content in uneven pieces, so pieces straddle blocks and records.
    for (let at = 0; content !== undefined && at < content.length; at += 65_537)
      await writer.content(content.subarray(at, at + 65_537));
  }
  await writer.finish();
  return writer.written;
}

describe('TarWriter', () => {
  it('writes what GNU tar extracts as the entries were: long UTF-8 names, large ids, times before 1970, links, devices', async () => {
    const out = join(work, 'gnu');
    rmSync(out, { recursive: true, force: true });
    const untar = spawn(
      'sh',
      [
        '-c',
        `mkdir -p "$1" && exec tar -x -f - --numeric-owner --same-owner --same-permissions --delay-directory-restore -C "$1"`,
        'sh',
        out,
      ],
      { stdio: ['pipe', 'inherit', 'pipe'] },
    );
    let stderr = '';
    untar.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => untar.once('exit', resolve));
    const written = await writeAll(untar.stdin, 4096);
    expect(await exited, stderr).toBe(0);
    expect(written % 512).toBe(0);

    const d = lstatSync(join(out, 'd'), { bigint: true });
    expect(d.isDirectory()).toBe(true);
    expect(Number(d.mode & 0o7777n)).toBe(0o750);
    expect([d.uid, d.gid]).toEqual([3_000_000_000n, 2_500_000n]);
    expect(d.mtimeNs).toBe(1700000000123456789n);
    const rf = lstatSync(join(out, 'd/-rf'), { bigint: true });
    expect(Number(rf.mode & 0o7777n)).toBe(0o4755);
    expect(readFileSync(join(out, 'd/-rf'), 'utf8')).toBe('hello');
    expect(lstatSync(join(out, 'd/old'), { bigint: true }).mtimeNs).toBe(-1500000000n);
    expect(readFileSync(join(out, LONG_DIR))).toEqual(ENTRIES[4]?.content);
    expect(lstatSync(join(out, LONG_DIR)).uid).toBe(1000);
    expect(readlinkSync(join(out, 'd/link'))).toBe(`/${'t'.repeat(150)}/ü`);
    expect(BigInt(lstatSync(join(out, 'd/hard')).ino)).toBe(rf.ino);
    expect(lstatSync(join(out, 'd/fifo')).isFIFO()).toBe(true);
    const dev = lstatSync(join(out, 'd/null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe((1 << 8) | 3);
    const plain = lstatSync(join(out, 'd/plain'), { bigint: true });
    expect([plain.isDirectory(), Number(plain.mode & 0o7777n), plain.mtimeNs]).toEqual([
      true,
      0o755,
      1600000000000000000n,
    ]);
    const conf = lstatSync(join(out, 'd/plain/-n x.conf'), { bigint: true });
    expect([Number(conf.mode & 0o7777n), conf.uid, conf.gid, conf.mtimeNs]).toEqual([
      0o640,
      7n,
      9n,
      1600000001000000000n,
    ]);
    expect(readFileSync(join(out, 'd/plain/-n x.conf'), 'utf8')).toBe('a=1');
    expect(readlinkSync(join(out, 'd/plain/ln'))).toBe('../-rf');
    expect(lstatSync(join(out, 'd/plain/hard')).ino).toBe(Number(conf.ino));
  });

  it('writes a pax header only for what ustar cannot hold: 512 bytes for a short ASCII name at a whole second', () => {
    const plain = entry({ path: 'etc/hosts', type: 'file', size: 10, mtimeNs: '1700000000000000000' });
    const header = encodeHeader(plain);
    expect(header.length).toBe(512);
    expect(header.subarray(0, 9).toString()).toBe('etc/hosts');
    expect(header[156]).toBe(0x30);
    // Each of these needs its record, and gets a pax header with that record alone.
    const needs: [Partial<ManifestEntry>, string][] = [
      [{ mtimeNs: '1700000000000000001' }, 'mtime=1700000000.000000001'],
      [{ mtimeNs: '-1000000000' }, 'mtime=-1.000000000'],
      [{ path: `etc/${'h'.repeat(96)}` }, `path=etc/${'h'.repeat(96)}`],
      [{ path: 'etc/h\nosts\n' }, 'path=etc/h\nosts\n'],
      [{ path: 'etc/hösts' }, 'path=etc/hösts'],
      [{ uid: 0o10000000 }, 'uid=2097152'],
    ];
    for (const [fields, record] of needs) {
      const h = encodeHeader({ ...plain, ...fields });
      expect(h.length, record).toBe(512 * 3);
      expect(h[156]).toBe(0x78);
      // The record alone, as pax spells it (`<length> <key>=<value>\n`, the length its own bytes).
      const text = paxText(record);
      expect(h.subarray(512, 512 + Buffer.byteLength(text)).toString('utf8'), record).toBe(text);
      expect(h.subarray(512 + Buffer.byteLength(text), 1024).every((b) => b === 0)).toBe(true);
    }
  });

  it('writes what another tar reader reads as the same entries', async () => {
    const extract = tar.extract();
    const seen: {
      name: string;
      type: string;
      size: number;
      uid: number;
      linkname: string | null;
      bytes: number;
    }[] = [];
    extract.on('entry', (header, stream, next) => {
      let bytes = 0;
      stream.on('data', (d) => {
        bytes += (d as Buffer).length;
      });
      stream.on('end', () => {
        seen.push({
          name: header.name,
          type: header.type ?? '',
          size: header.size ?? 0,
          uid: Number((header.pax as Record<string, string> | undefined)?.uid ?? header.uid),
          linkname: header.linkname ?? null,
          bytes,
        });
        next();
      });
    });
    const done = new Promise<void>((resolve, reject) => {
      extract.on('finish', () => resolve());
      extract.on('error', reject);
    });
    await writeAll(extract as unknown as Writable);
    await done;
    expect(seen.map((s) => s.name)).toEqual(
      ENTRIES.map(({ e }) => (e.type === 'dir' ? `${e.path}/` : e.path)),
    );
    expect(seen.map((s) => s.type)).toEqual([
      'directory',
      'file',
      'file',
      'directory',
      'file',
      'symlink',
      'link',
      'fifo',
      'character-device',
      'directory',
      'file',
      'symlink',
      'link',
    ]);
    expect(seen[0]?.uid).toBe(3_000_000_000);
    expect(seen[4]).toMatchObject({ size: 700_001, bytes: 700_001 });
    expect(seen[5]?.linkname).toBe(`/${'t'.repeat(150)}/ü`);
  });

  it('never touches a block again once written: an output that keeps chunks for a later reader gets them intact', async () => {
    // A PassThrough calls back as soon as it has queued a chunk for its reader (the SSM
    // transport's input is one): read here only after the whole archive was written.
    const out = new PassThrough({ highWaterMark: 64 * 1024 * 1024 });
    const writer = new TarWriter(out, { blockBytes: 4096, blocks: 2 });
    const files = [0, 1, 2, 3].map((i) => Buffer.alloc(50_000 + i, 0x41 + i));
    for (const [i, bytes] of files.entries()) {
      await writer.entry(entry({ path: `f${i}`, type: 'file', size: bytes.length }));
      await writer.content(bytes);
    }
    await writer.finish();
    const extract = tar.extract();
    const seen: Buffer[] = [];
    extract.on('entry', (_header, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (d) => parts.push(d as Buffer));
      stream.on('end', () => {
        seen.push(Buffer.concat(parts));
        next();
      });
    });
    const done = new Promise<void>((resolve, reject) => {
      extract.on('finish', () => resolve());
      extract.on('error', reject);
    });
    out.pipe(extract as unknown as Writable);
    await done;
    expect(seen).toEqual(files);
  });

  it('holds at most its blocks when the output stops reading, and goes on when it reads again', async () => {
    const held: (() => void)[] = [];
    let writes = 0;
    const stalled = new Writable({
      highWaterMark: 1,
      write(_chunk, _encoding, callback) {
        writes++;
        held.push(callback);
      },
    });
    const writer = new TarWriter(stalled, { blockBytes: 8192, blocks: 3 });
    await writer.entry(entry({ path: 'big', type: 'file', size: 1 << 20 }));
    let settled = false;
    const writing = (async () => {
      for (let i = 0; i < 16; i++) await writer.content(Buffer.alloc(65_536, i));
      settled = true;
    })();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // One block with the stream's _write, the rest in its buffer: never more than three.
    expect(settled).toBe(false);
    expect(writes).toBe(1);
    expect(writer.written).toBe(3 * 8192);
    const drain = setInterval(() => held.shift()?.(), 1);
    await writing;
    await writer.finish();
    clearInterval(drain);
    expect(settled).toBe(true);
    expect(writer.written).toBe(512 * 3 + (1 << 20) + 1024);
  });

  it('fails the write in progress when the output fails, instead of waiting for it forever', async () => {
    const out = new PassThrough({ highWaterMark: 1 });
    const writer = new TarWriter(out, { blockBytes: 4096, blocks: 2 });
    await writer.entry(entry({ path: 'f', type: 'file', size: 1 << 20 }));
    const writing = (async () => {
      for (let i = 0; i < 16; i++) await writer.content(Buffer.alloc(65_536));
    })();
    await new Promise((resolve) => setTimeout(resolve, 20));
    out.destroy(new Error('the channel went away'));
    await expect(writing).rejects.toThrow('the channel went away');
  });

  it('refuses content past a file size and an entry before the file before it is whole, naming the file', async () => {
    const writer = new TarWriter(new PassThrough().resume());
    await writer.entry(entry({ path: 'etc/short', type: 'file', size: 3 }));
    await expect(writer.content(Buffer.from('four'))).rejects.toThrow(
      /etc\/short: content runs past its size/,
    );
    await writer.content(Buffer.from('tw'));
    await expect(writer.entry(entry({ path: 'next', type: 'dir' }))).rejects.toThrow(
      /etc\/short: 1 bytes of content were not written/,
    );
    await expect(writer.finish()).rejects.toThrow(/etc\/short/);
  });
});
