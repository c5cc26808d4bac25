// Memory of one operation, in a process of its own (started with --expose-gc): a fresh heap
// per operation, so that what one operation left behind does not count against the next, and
// the process's peak RSS belongs to this operation and its setup only.
//
//   node --expose-gc --import tsx bench/memory.ts <operation> <documents dir>
//
// Prints one line of JSON (MemoryProbe).
import { isOperationName, OPERATIONS } from './operations.js';

export interface MemoryProbe {
  readonly operation: string;
  /** After setup and a full GC, just before the operation. */
  readonly rssBefore: number;
  readonly heapBefore: number;
  /** Peak RSS of the process before the operation (setup and start-up included). */
  readonly peakRssBefore: number;
  /** Peak RSS of the process once the operation has run. */
  readonly peakRssAfter: number;
  /** Heap in use right after the operation, garbage included: what it allocated and kept around. */
  readonly heapAfter: number;
  /** Heap still in use after a full GC while the result is held: the size of the result. */
  readonly heapRetained: number;
}

const [operation, dir] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc;
if (operation === undefined || dir === undefined || !isOperationName(operation)) {
  process.stderr.write(`usage: memory.ts <${Object.keys(OPERATIONS).join('|')}> <dir>\n`);
  process.exit(2);
}
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const run = OPERATIONS[operation](dir);
gc();
gc();
const before = process.memoryUsage();
const peakRssBefore = process.resourceUsage().maxRSS * 1024;
const result: unknown = run();
const after = process.memoryUsage();
const peakRssAfter = process.resourceUsage().maxRSS * 1024;
gc();
gc();
const retained = process.memoryUsage();
const probe: MemoryProbe = {
  operation,
  rssBefore: before.rss,
  heapBefore: before.heapUsed,
  peakRssBefore,
  peakRssAfter,
  heapAfter: after.heapUsed,
  heapRetained: retained.heapUsed,
};
// Holding the result until here keeps it out of the "retained" collection above.
if (result === undefined) process.exitCode = 1;
process.stdout.write(`${JSON.stringify(probe)}\n`);
