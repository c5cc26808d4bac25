// The load test's latency histogram: the library's JavaScript histogram of 32-bit counts, which
// its `build()` makes by default, taken from the factory `build()` uses. The package's index also
// brings its WebAssembly build and the inflate code of its log encoding (about 110 KB of its
// 140) to every function that runs a load test, and neither is used here.
//
// A module of its own, imported statically, so that the library's named export is resolved the
// same way by Node, by the test runner and by a function's bundle (where a CommonJS module loaded
// by a dynamic import() offers only its default export).
import { constructorFromBucketSize } from 'hdr-histogram-js/dist/JsHistogramFactory.js';

/** Microseconds: 1 µs to an hour at three significant digits. */
export function latencyHistogram() {
  const Histogram = constructorFromBucketSize(32);
  return new Histogram(1, 3_600_000_000, 3);
}
