// Small pieces the process-backed transports (local, SSH) share.
import { constants } from 'node:os';

/** Bytes as they arrive; decoded once at the end so a character split across chunks survives. */
export class Collector {
  private readonly chunks: Buffer[] = [];
  readonly push = (chunk: Buffer | string): void => {
    this.chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  };
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  text(): string {
    return this.bytes().toString('utf8');
  }
}

/** A process killed by a signal reports 128 + its number, as shells do (`$?` after SIGKILL is 137). */
export function exitCodeOf(code: number | null | undefined, signal: string | null | undefined): number {
  if (typeof code === 'number') return code;
  if (signal) {
    const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as keyof typeof constants.signals;
    const number = constants.signals[name];
    if (typeof number === 'number') return 128 + number;
  }
  return 255;
}

export function toBuffer(data: string | Uint8Array): Buffer {
  return typeof data === 'string'
    ? Buffer.from(data, 'utf8')
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
