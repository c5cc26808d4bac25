// How a Persona function's code is built: one esbuild configuration shared by the construct (when
// it bundles from source), the package build (scripts/build-package.ts, which prebuilds every
// function so that an app embedding the construct needs none of this repository's layout) and
// the bundle size test.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { BuildOptions, Metafile } from 'esbuild';

/** The most a function's bundle (its `index.mjs`, minified) may weigh. */
export const BUNDLE_LIMIT_BYTES = 250 * 1024;

/** Modules every bundle leaves out: the AWS SDK, which the Node.js 22 runtime provides. */
export const RUNTIME_MODULES = ['@aws-sdk/*'] as const;

/** What one function's bundle is built from. */
export interface BundleSpec {
  /** The handler file, relative to the project root, e.g. `functions/api/get-host/handler.ts`. */
  readonly entry: string;
  /** Modules left out besides RUNTIME_MODULES (optional native add-ons that are never loaded). */
  readonly externalModules?: readonly string[];
  /** Files the code reads beside itself: project-relative source, name in the bundle's folder. */
  readonly files?: readonly { readonly from: string; readonly to: string }[];
}

/**
 * The folder name of a function's prebuilt bundle: its entry's folder under `functions/`, e.g.
 * `api/get-host` for `functions/api/get-host/handler.ts`.
 */
export function bundleName(entry: string): string {
  const parts = path.normalize(entry).split(path.sep);
  if (parts[0] !== 'functions' || parts.length < 3) {
    throw new Error(`a function's entry lies under functions/: ${entry}`);
  }
  return parts.slice(1, -1).join('/');
}

/** esbuild's options for one function, writing `index.mjs` (and its map) into `outdir`. */
export function bundleOptions(projectRoot: string, spec: BundleSpec, outdir: string): BuildOptions {
  return {
    absWorkingDir: projectRoot,
    entryPoints: [path.join(projectRoot, spec.entry)],
    outfile: path.join(outdir, 'index.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    mainFields: ['module', 'main'],
    // yaml's Node build is CommonJS, which a bundle keeps whole wherever it is imported at all;
    // its ES module build is the same code, and only what a function calls stays in.
    alias: { yaml: path.join(projectRoot, 'node_modules', 'yaml', 'browser', 'index.js') },
    minify: true,
    sourcemap: true,
    // Stack traces need the mappings, not a second copy of the sources in every bundle.
    sourcesContent: false,
    metafile: true,
    logLevel: 'warning',
    external: [...RUNTIME_MODULES, ...(spec.externalModules ?? [])],
    // Bundled CommonJS dependencies still call require(), which ESM does not define. The alias
    // keeps the banner from colliding with a bundled `createRequire` import.
    banner: {
      js: "import { createRequire as personaCreateRequire } from 'node:module'; const require = personaCreateRequire(import.meta.url);",
    },
  };
}

/**
 * Builds one function into `outdir` (synchronously: CDK's local bundling is) and copies the files
 * it reads beside itself. Returns esbuild's account of what went in.
 */
export function bundleSync(projectRoot: string, spec: BundleSpec, outdir: string): Metafile {
  // Loaded here rather than imported: an app that embeds the packaged construct uses prebuilt
  // bundles and need not have esbuild installed.
  const esbuild: typeof import('esbuild') = createRequire(import.meta.url)('esbuild');
  mkdirSync(outdir, { recursive: true });
  const result = esbuild.buildSync(bundleOptions(projectRoot, spec, outdir));
  for (const file of spec.files ?? []) {
    const from = path.join(projectRoot, file.from);
    if (!existsSync(from)) throw new Error(`${spec.entry} reads ${file.from}, which does not exist`);
    copyFileSync(from, path.join(outdir, file.to));
  }
  if (!result.metafile) throw new Error(`esbuild gave no metafile for ${spec.entry}`);
  return result.metafile;
}

/** The output file of a metafile that is the bundle itself (not its source map). */
export function bundleOutput(metafile: Metafile): {
  readonly bytes: number;
  readonly inputs: Metafile['outputs'][string]['inputs'];
} {
  const entry = Object.entries(metafile.outputs).find(([file]) => file.endsWith('.mjs'));
  if (!entry) throw new Error('the bundle has no .mjs output');
  return entry[1];
}

/**
 * The inputs that weigh most in a bundle, grouped by npm package (or by project folder), the
 * heaviest first: what to look at when a bundle grows.
 */
export function heaviestInputs(
  metafile: Metafile,
  count = 8,
): { readonly name: string; readonly bytes: number }[] {
  const byName = new Map<string, number>();
  for (const [file, input] of Object.entries(bundleOutput(metafile).inputs)) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1];
    const name = pkg ?? file.split('/').slice(0, 2).join('/');
    byName.set(name, (byName.get(name) ?? 0) + input.bytesInOutput);
  }
  return [...byName.entries()]
    .map(([name, bytes]) => ({ name, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, count);
}
