// What one core of this machine can do at all, for each step a snapshot pays per byte: the
// ceiling any snapshot tool's ingest on one thread runs into, measured on the corpus's data.
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { constants, zstdCompressSync } from 'node:zlib';
import { Chunker, DEFAULT_CHUNKER } from '../../core/snapshot/chunker.js';

export interface Limit {
  readonly step: string;
  readonly bytes: number;
  readonly ms: number;
  readonly note: string;
}

const MiB = 1024 * 1024;

/** Best of `runs`: the machine's capability, not its neighbours' load. */
function best(runs: number, fn: () => void): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}

const slices = (data: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size)
    out.push(data.subarray(at, Math.min(data.length, at + size)));
  return out;
};

/**
 * `data`: the corpus's file contents laid end to end (256 MiB); `files`: the corpus's files one
 * by one, for the steps whose cost depends on how many pieces there are.
 */
export function measureLimits(data: Buffer, files: readonly Buffer[]): Limit[] {
  const limits: Limit[] = [];
  const mib1 = slices(data, MiB);
  const kib16 = slices(data.subarray(0, 64 * MiB), 16 * 1024);
  const key = randomBytes(32);
  const filesBytes = files.reduce((n, f) => n + f.length, 0);

  limits.push({
    step: 'SHA-256',
    bytes: data.length,
    ms: best(3, () => {
      const h = createHash('sha256');
      for (const s of mib1) h.update(s);
      h.digest();
    }),
    note: 'node:crypto, one hash fed 1 MiB at a time (pack ids, pack data hash)',
  });
  limits.push({
    step: 'HMAC-SHA256, 1 MiB pieces',
    bytes: data.length,
    ms: best(3, () => {
      for (const s of mib1) createHmac('sha256', key).update(s).digest('hex');
    }),
    note: 'one HMAC per 1 MiB chunk (chunk ids)',
  });
  limits.push({
    step: 'HMAC-SHA256, 16 KiB pieces',
    bytes: 64 * MiB,
    ms: best(3, () => {
      for (const s of kib16) createHmac('sha256', key).update(s).digest('hex');
    }),
    note: 'one HMAC per small file: the per-call cost shows',
  });
  let chunks = 0;
  const cdcMs = best(3, () => {
    const c = new Chunker(DEFAULT_CHUNKER);
    chunks = 0;
    for (const s of mib1) chunks += c.push(s).length;
    chunks += c.finish().length;
  });
  limits.push({
    step: 'FastCDC (Chunker, DEFAULT_CHUNKER)',
    bytes: data.length,
    ms: cdcMs,
    note: `one stream pushed 1 MiB at a time; ${chunks} chunks`,
  });
  limits.push({
    step: 'FastCDC, one Chunker per file',
    bytes: filesBytes,
    ms: best(3, () => {
      for (const f of files) {
        const c = new Chunker(DEFAULT_CHUNKER);
        for (const s of slices(f, MiB)) c.push(s);
        c.finish();
      }
    }),
    note: `the store's use: a new Chunker for each of the corpus's ${files.length} files`,
  });
  let packed = 0;
  const zstd = { params: { [constants.ZSTD_c_compressionLevel]: 3 } };
  const zstdMs = best(2, () => {
    packed = 0;
    for (const s of mib1) packed += zstdCompressSync(s, zstd).length;
  });
  limits.push({
    step: 'zstd level 3, 1 MiB pieces',
    bytes: data.length,
    ms: zstdMs,
    note: `node:zlib zstdCompressSync per piece; ratio ${(data.length / packed).toFixed(2)}`,
  });
  let packedFiles = 0;
  const zstdFilesMs = best(2, () => {
    packedFiles = 0;
    for (const f of files) for (const s of slices(f, MiB)) packedFiles += zstdCompressSync(s, zstd).length;
  });
  limits.push({
    step: 'zstd level 3, one call per file',
    bytes: filesBytes,
    ms: zstdFilesMs,
    note: `per file (≤ 1 MiB pieces), as small files are stored; ratio ${(filesBytes / Math.max(1, packedFiles)).toFixed(2)}`,
  });
  limits.push({
    step: 'AES-256-GCM, 1 MiB pieces',
    bytes: data.length,
    ms: best(3, () => {
      for (const s of mib1) {
        const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
        c.update(s);
        c.final();
        c.getAuthTag();
      }
    }),
    note: 'node:crypto (OpenSSL, AES-NI)',
  });
  return limits;
}
