#!/usr/bin/env node
// Entry point of the `persona` command. The project runs on its own Node 22 (a dev
// dependency); when invoked with an older Node, re-run under that one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { enableCompileCache } from './compile-cache.js';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  const node = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(node)) {
    process.stderr.write(
      `persona needs Node.js 22 or later (this is ${process.version}); run npm ci first\n`,
    );
    process.exit(1);
  }
  const result = spawnSync(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}

// A snapshot's buffers are freed only when the collector finds their handles: its young
// generation is held at the size it has before the modules load (core/snapshot/memory.ts).
if (process.argv[2] === 'snapshot' && process.env.PERSONA_YOUNG_GENERATION !== 'grow')
  setFlagsFromString('--semi-space-growth-factor=1');

// The command as built by `npm ci` (scripts/build-cli.ts): plain JavaScript, each command's
// code loaded when that command runs. A checkout where it was never built runs the sources
// through tsx, a dev dependency, compiling them at every start.
// Node keeps the compiled code of what it loads (under the user's cache directory, see
// compile-cache.js), so the next start does not parse it again.
enableCompileCache();
const bundle = new URL('./dist/persona.mjs', import.meta.url);
let run;
if (existsSync(fileURLToPath(bundle))) ({ run } = await import(bundle.href));
else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ run } = await import('./main.ts'));
}
process.exitCode = await run(process.argv.slice(2));
