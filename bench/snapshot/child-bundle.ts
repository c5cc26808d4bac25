// The bench's Persona child as the `persona` command ships: one ES module bundled by esbuild.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { COMMONJS_SHIM } from '../../infra/bundling.js';

/** Bundles the child into `outfile`; `entry` another tree's child (an older commit's). */
export async function bundleChild(
  outfile: string,
  entry = fileURLToPath(new URL('./persona-child.ts', import.meta.url)),
): Promise<void> {
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    outfile,
    logLevel: 'error',
    banner: { js: COMMONJS_SHIM },
  });
}
