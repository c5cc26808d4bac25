#!/usr/bin/env node
// Entry point of the `persona` command. The project runs on its own Node 22 (a dev
// dependency); when invoked with an older Node, re-run under that one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

const { register } = await import('tsx/esm/api');
register();
const { run } = await import('./main.ts');
process.exitCode = await run(process.argv.slice(2));
