// How a Persona function's code is built: one esbuild configuration shared by the construct (when
// it bundles from source), the package build (scripts/build-package.ts, which prebuilds every
// function so that an app embedding the construct needs none of this repository's layout) and
// the bundle size test.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { BuildOptions, Metafile } from 'esbuild';
import { type LayerName, layerExternals } from './layers.js';

/** The most a function's bundle (its `index.mjs`, minified) may weigh. */
export const BUNDLE_LIMIT_BYTES = 250 * 1024;

/** Modules every bundle leaves out: the AWS SDK, which the Node.js 22 runtime provides. */
export const RUNTIME_MODULES = ['@aws-sdk/*'] as const;

/**
 * Bundled CommonJS dependencies still call require() and read __dirname and __filename, which an
 * ES module does not define (ssh2 reads __dirname as it loads). The aliases keep the banner from
 * colliding with a bundled `createRequire` or `fileURLToPath` import.
 */
export const COMMONJS_SHIM = [
  "import { createRequire as personaCreateRequire } from 'node:module';",
  "import { fileURLToPath as personaFileURLToPath } from 'node:url';",
  'const require = personaCreateRequire(import.meta.url);',
  'const __filename = personaFileURLToPath(import.meta.url);',
  "const __dirname = personaFileURLToPath(new URL('.', import.meta.url));",
].join(' ');

/** What one function's bundle is built from. */
export interface BundleSpec {
  /** The handler file, relative to the project root, e.g. `functions/api/get-host/handler.ts`. */
  readonly entry: string;
  /** Modules left out besides RUNTIME_MODULES (optional native add-ons that are never loaded). */
  readonly externalModules?: readonly string[];
  /**
   * The library layers it loads besides Powertools, which every function has (infra/layers.ts).
   * Every layer's modules are left out of every bundle; the bundle test checks that a function
   * has each layer it imports and no other.
   */
  readonly layers?: readonly Exclude<LayerName, 'powertools'>[];
  /**
   * Files the code reads beside itself: project-relative source, name in the bundle's folder.
   * With `json`, a YAML source is written as JSON, so that the function reads it without loading
   * the YAML parser (the shipped target profiles: infra/morph.ts).
   */
  readonly files?: readonly { readonly from: string; readonly to: string; readonly json?: boolean }[];
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

/**
 * esbuild's options for one function, writing `index.mjs` (and its map) into `outdir`, and the
 * code it loads only when it needs it (a dynamic `import()`) into chunks beside it, so that a
 * cold start reads only what every invocation runs.
 */
export function bundleOptions(projectRoot: string, spec: BundleSpec, outdir: string): BuildOptions {
  return {
    absWorkingDir: projectRoot,
    entryPoints: { index: path.join(projectRoot, spec.entry) },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    splitting: true,
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
    external: [...RUNTIME_MODULES, ...layerExternals(), ...(spec.externalModules ?? [])],
    banner: { js: COMMONJS_SHIM },
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
    if (file.json) writeFileSync(path.join(outdir, file.to), yamlAsJson(from, file.from));
    else copyFileSync(from, path.join(outdir, file.to));
  }
  if (!result.metafile) throw new Error(`esbuild gave no metafile for ${spec.entry}`);
  return withoutDeadChunks(result.metafile, projectRoot);
}

/**
 * The build without the chunks no code of it can load, which are deleted. esbuild makes a chunk
 * of every dynamic `import()` in the modules a function reaches, before it drops the code that
 * is never called: each API function got the YAML parser (a hundred kilobytes) that only a
 * request body can need, from a module it shares with the functions that read bodies, and
 * that no line of its index.mjs imports.
 */
function withoutDeadChunks(metafile: Metafile, projectRoot: string): Metafile {
  const outputs = metafile.outputs;
  const reached = reachedFromIndex(outputs, () => true);
  const kept: Metafile['outputs'] = {};
  for (const [file, output] of Object.entries(outputs)) {
    const code = file.endsWith('.map') ? file.slice(0, -'.map'.length) : file;
    // Only code goes: an asset a loader emitted is reached by its URL, not by an import.
    if (reached.has(code) || !code.endsWith('.mjs')) kept[file] = output;
    else rmSync(path.join(projectRoot, file), { force: true });
  }
  return { ...metafile, outputs: kept };
}

/**
 * A YAML file as JSON text, at build time. A file that does not parse cleanly (a syntax error, a
 * duplicate key) or holds what JSON cannot say (.inf, .nan) stops the build, naming the file.
 */
function yamlAsJson(file: string, name: string): string {
  // Loaded here, as esbuild is: the packaged construct does not carry the YAML parser.
  const yaml: typeof import('yaml') = createRequire(import.meta.url)('yaml');
  const doc = yaml.parseDocument(readFileSync(file, 'utf8'), { strict: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new Error(`${name} is not valid YAML: ${doc.errors[0]?.message}`);
  const value: unknown = doc.toJS();
  const json = JSON.stringify(value, null, 2);
  if (!isDeepStrictEqual(JSON.parse(json), value))
    throw new Error(`${name} holds values JSON cannot represent`);
  return `${json}\n`;
}

/** The output files index.mjs reaches through the imports `follow` accepts, itself included. */
function reachedFromIndex(
  outputs: Metafile['outputs'],
  follow: (kind: Metafile['outputs'][string]['imports'][number]['kind']) => boolean,
): Set<string> {
  const entry = Object.keys(outputs).find((file) => path.basename(file) === 'index.mjs');
  if (!entry) throw new Error('the bundle has no index.mjs output');
  // Output imports name files as esbuild wrote them: relative to the working directory.
  const reached = new Set<string>();
  const visit = (file: string) => {
    if (reached.has(file) || !outputs[file]) return;
    reached.add(file);
    for (const i of outputs[file].imports) if (!i.external && follow(i.kind)) visit(i.path);
  };
  visit(entry);
  return reached;
}

/** What a function's bundle weighs: what a cold start loads, and what it loads only on demand. */
export interface BundleWeight {
  /** Bytes of index.mjs and the chunks it imports statically: what every cold start loads. */
  readonly bytes: number;
  /** Bytes of the chunks only a dynamic import() loads (and what they import in turn). */
  readonly lazyBytes: number;
  readonly inputs: Metafile['outputs'][string]['inputs'];
}

/**
 * The bundle's weight from esbuild's account: index.mjs with its static imports counted as
 * loaded at start, the rest as loaded on demand. Source maps are not code.
 */
export function bundleOutput(metafile: Metafile): BundleWeight {
  const outputs = metafile.outputs;
  const loaded = reachedFromIndex(outputs, (kind) => kind === 'import-statement');
  let bytes = 0;
  let lazyBytes = 0;
  const inputs: Record<string, Metafile['outputs'][string]['inputs'][string]> = {};
  for (const [file, output] of Object.entries(outputs)) {
    if (!file.endsWith('.mjs')) continue;
    if (loaded.has(file)) {
      bytes += output.bytes;
      Object.assign(inputs, output.inputs);
    } else lazyBytes += output.bytes;
  }
  return { bytes, lazyBytes, inputs };
}

/** The npm package a bundle's input comes from, if it comes from one. */
function packageOfInput(file: string): string | undefined {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1];
}

/** The npm packages in any of a bundle's code, loaded at start or on demand, sorted. */
export function bundledPackages(metafile: Metafile): string[] {
  const packages = new Set<string>();
  for (const [file, output] of Object.entries(metafile.outputs)) {
    if (!file.endsWith('.mjs')) continue;
    for (const input of Object.keys(output.inputs)) {
      const pkg = packageOfInput(input);
      if (pkg) packages.add(pkg);
    }
  }
  return [...packages].sort();
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
    const name = packageOfInput(file) ?? file.split('/').slice(0, 2).join('/');
    byName.set(name, (byName.get(name) ?? 0) + input.bytesInOutput);
  }
  return [...byName.entries()]
    .map(([name, bytes]) => ({ name, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, count);
}
