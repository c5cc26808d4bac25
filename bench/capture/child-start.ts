// The capture child's start, as cli/bin.js starts `persona`: V8's compile cache on before any
// module of the capture loads (cli/compile-cache.js), and zod set as the command sets it before
// any schema is built (cli/zod-config.ts); then the capture itself (child.ts), loaded only now
// so that its modules come from the cache.
//
//   node capture-child.mjs '<ChildJob as JSON>'            (bundled by bench/capture/main.ts)
//   node --import tsx bench/capture/child-start.ts '<ChildJob as JSON>'
import { enableCompileCache } from '../../cli/compile-cache.js';

enableCompileCache();
await import('../../cli/zod-config.js');
await import('./child.js');
