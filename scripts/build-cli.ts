// Builds the `persona` command for plain Node: cli/dist/persona.mjs, which cli/bin.js runs,
// and the chunks it imports when a command needs them (the AWS SDK, ssh2, the capture and
// clone code are chunks of their own, so `persona --version` reads none of them). Run by
// `npm ci` (the `prepare` script) and by the test setup when a source is newer than the build.
//
// Usage: node --import tsx scripts/build-cli.ts
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { COMMONJS_SHIM } from '../infra/bundling.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI_DIST = join(root, 'cli', 'dist');
const ENTRY = 'persona.mjs';
const META = 'meta.json';
// Chunks of an older build are left this long for a command still running from it.
const OLD_CHUNKS_KEPT_MS = 10 * 60_000;

/** Whether the build is missing or older than any file that went into it. */
export function cliBuildStale(dir = CLI_DIST): boolean {
  let built: number;
  let inputs: string[];
  try {
    built = statSync(join(dir, ENTRY)).mtimeMs;
    inputs = Object.keys((JSON.parse(readFileSync(join(dir, META), 'utf8')) as { inputs: object }).inputs);
  } catch {
    return true;
  }
  // A new source file only matters once something imports it, which changes an input.
  return inputs.some((input) => {
    try {
      return statSync(join(root, input)).mtimeMs > built;
    } catch {
      return true;
    }
  });
}

export async function buildCli(dir = CLI_DIST): Promise<void> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { persona: 'cli/main.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    mainFields: ['module', 'main'],
    minify: true,
    write: false,
    metafile: true,
    // ssh2's optional native add-ons: without them it uses its JavaScript ciphers.
    external: ['cpu-features', '*.node'],
    banner: { js: COMMONJS_SHIM },
    logLevel: 'warning',
  });
  mkdirSync(join(dir, 'chunks'), { recursive: true });
  const entry = result.outputFiles.find((f) => relative(dir, f.path) === ENTRY);
  if (!entry) throw new Error(`esbuild wrote no ${ENTRY}`);
  // Every file appears whole (written aside, then renamed), since a command may be starting from
  // the build meanwhile. Chunks are named by their content: one already there is the same file.
  // The entry, which names the chunks, is replaced last.
  const swap = (path: string, contents: string | Uint8Array) => {
    const temporary = join(dirname(path), `.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    writeFileSync(temporary, contents);
    renameSync(temporary, path);
  };
  const fresh = new Set<string>();
  for (const file of result.outputFiles) {
    if (file === entry) continue;
    fresh.add(file.path);
    if (!existsSync(file.path)) swap(file.path, file.contents);
  }
  swap(join(dir, META), JSON.stringify(result.metafile));
  swap(join(dir, ENTRY), entry.contents);
  for (const name of readdirSync(join(dir, 'chunks'))) {
    const path = join(dir, 'chunks', name);
    if (!fresh.has(path) && Date.now() - statSync(path).mtimeMs > OLD_CHUNKS_KEPT_MS)
      rmSync(path, { force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await buildCli();
