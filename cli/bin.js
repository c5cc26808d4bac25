#!/usr/bin/env node
// Entry point of the `persona` command. The project runs on its own Node 22 (a dev
// dependency); when invoked with an older Node, re-run under that one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

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

// The command as built by `npm ci` (scripts/build-cli.ts): plain JavaScript, each command's
// code loaded when that command runs. A checkout where it was never built runs the sources
// through tsx, a dev dependency, compiling them at every start.
// Node keeps the compiled code of what it loads (in the temporary folder), so the next start
// does not parse it again.
module.enableCompileCache?.();
const bundle = new URL('./dist/persona.mjs', import.meta.url);
let run;
if (existsSync(fileURLToPath(bundle))) ({ run } = await import(bundle.href));
else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ run } = await import('./main.ts'));
}
process.exitCode = await run(process.argv.slice(2));
