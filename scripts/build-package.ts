// Builds what the package ships so that another CDK app can embed PersonaPlatform without this
// repository's layout (package.json `exports` and `files`):
//   dist/infra/index.js        the construct, its own code bundled (aws-cdk-lib and constructs
//                              are the app's), with its declarations under dist/types/
//   dist/lambda/<group>/<fn>/  every function prebuilt (index.mjs, its map, the chunks it loads
//                              on demand, files it reads), which the construct deploys instead
//                              of bundling from source
//   dist/layers/<name>/        the library layers the functions share (infra/layers.ts)
//   dist/statemachines/        the workflows' definitions (and dist/examples/targets, which the
//                              construct lists)
// `npm run build:package` (and `npm pack`, through prepack) writes them into the project root.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import {
  BUNDLE_LIMIT_BYTES,
  type BundleSpec,
  bundledPackages,
  bundleName,
  bundleOutput,
  bundleSync,
  COMMONJS_SHIM,
  heaviestInputs,
} from '../infra/bundling.js';
import { bundleSpecOf } from '../infra/function.js';
import { buildLayerSync, LAYER_NAMES, type LayerName, layersImported } from '../infra/layers.js';
import { PersonaPlatform } from '../infra/platform.js';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Modules the packaged construct leaves to the app that embeds it. */
const CONSTRUCT_EXTERNALS = ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'esbuild'];

export interface BuiltBundle {
  /** The bundle's folder under dist/lambda, e.g. `api/get-host`. */
  readonly name: string;
  readonly entry: string;
  /** Bytes a cold start loads, minified: index.mjs and the chunks it imports statically. */
  readonly bytes: number;
  /** Bytes of the chunks it loads only on demand. */
  readonly lazyBytes: number;
  /** The layers it declares, and those its code imports: the same, when it is right. */
  readonly layers: readonly LayerName[];
  readonly layersImported: readonly LayerName[];
  readonly heaviest: readonly { readonly name: string; readonly bytes: number }[];
  /** The npm packages any of its code holds, loaded at start or on demand. */
  readonly packages: readonly string[];
}

/**
 * Every function the construct builds, with what its bundle is built from, found by building the
 * construct (without bundling anything) and asking each of its functions.
 */
export function functionBundleSpecs(): BundleSpec[] {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Specs');
  new PersonaPlatform(stack, 'Platform');
  const specs = new Map<string, BundleSpec>();
  for (const construct of app.node.findAll()) {
    const spec = bundleSpecOf(construct);
    if (spec) specs.set(bundleName(spec.entry), spec);
  }
  return [...specs.values()].sort((a, b) => a.entry.localeCompare(b.entry));
}

/** Every function's bundle, built into `<packageRoot>/dist/lambda`. */
export function buildFunctions(packageRoot: string, root = PROJECT_ROOT): BuiltBundle[] {
  const built: BuiltBundle[] = [];
  for (const spec of functionBundleSpecs()) {
    const name = bundleName(spec.entry);
    const metafile = bundleSync(root, spec, path.join(packageRoot, 'dist', 'lambda', name));
    const weight = bundleOutput(metafile);
    built.push({
      name,
      entry: spec.entry,
      bytes: weight.bytes,
      lazyBytes: weight.lazyBytes,
      layers: ['powertools', ...(spec.layers ?? [])],
      layersImported: layersImported(metafile),
      heaviest: heaviestInputs(metafile),
      packages: bundledPackages(metafile),
    });
  }
  return built;
}

export interface BuiltLayer {
  readonly name: LayerName;
  /** Bytes of its modules and chunks, minified. */
  readonly bytes: number;
}

/** Every library layer, built into `<packageRoot>/dist/layers/<name>`. */
export function buildLayers(packageRoot: string, root = PROJECT_ROOT): BuiltLayer[] {
  return LAYER_NAMES.map((name) => {
    const metafile = buildLayerSync(root, name, path.join(packageRoot, 'dist', 'layers', name));
    const bytes = Object.entries(metafile.outputs)
      .filter(([file]) => file.endsWith('.mjs'))
      .reduce((sum, [, output]) => sum + output.bytes, 0);
    return { name, bytes };
  });
}

/** The construct's own code as one ES module, and the workflows' definitions it reads beside it. */
export function buildConstruct(packageRoot: string, root = PROJECT_ROOT): void {
  const esbuild: typeof import('esbuild') = createRequire(import.meta.url)('esbuild');
  const dist = path.join(packageRoot, 'dist');
  esbuild.buildSync({
    absWorkingDir: root,
    entryPoints: [path.join(root, 'infra', 'index.ts')],
    outfile: path.join(dist, 'infra', 'index.js'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    mainFields: ['module', 'main'],
    external: CONSTRUCT_EXTERNALS,
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'warning',
    banner: { js: COMMONJS_SHIM },
  });
  // PROJECT_ROOT of the bundled construct (infra/api.ts) is dist/. What it reads there when an
  // app synthesizes: the workflows' definitions, and the morph targets it lists (infra/morph.ts).
  cpSync(path.join(root, 'statemachines'), path.join(dist, 'statemachines'), { recursive: true });
  cpSync(path.join(root, 'examples', 'targets'), path.join(dist, 'examples', 'targets'), { recursive: true });
}

/** The construct's type declarations, under dist/types (package.json `exports` names them). */
export function buildDeclarations(packageRoot: string, root = PROJECT_ROOT): void {
  const config = path.join(tmpdir(), `persona-declarations-${process.pid}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      extends: path.join(root, 'tsconfig.json'),
      compilerOptions: {
        noEmit: false,
        declaration: true,
        emitDeclarationOnly: true,
        rootDir: root,
        outDir: path.join(packageRoot, 'dist', 'types'),
        typeRoots: [path.join(root, 'node_modules', '@types')],
      },
      include: [],
      files: [path.join(root, 'infra', 'index.ts')],
    }),
  );
  try {
    execFileSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', config], { stdio: 'inherit' });
  } finally {
    rmSync(config, { force: true });
  }
}

/** Everything under `<packageRoot>/dist`, replacing what was there. */
export function buildPackage(
  packageRoot = PROJECT_ROOT,
  options: { declarations?: boolean } = {},
): BuiltBundle[] {
  rmSync(path.join(packageRoot, 'dist'), { recursive: true, force: true });
  mkdirSync(path.join(packageRoot, 'dist'), { recursive: true });
  const built = buildFunctions(packageRoot);
  buildLayers(packageRoot);
  buildConstruct(packageRoot);
  if (options.declarations ?? true) buildDeclarations(packageRoot);
  return built;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const built = buildPackage();
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KB`;
  for (const bundle of [...built].sort((a, b) => b.bytes - a.bytes)) {
    const mark = bundle.bytes > BUNDLE_LIMIT_BYTES ? '  over the limit' : '';
    process.stdout.write(`${kb(bundle.bytes).padStart(7)}  ${bundle.name}${mark}\n`);
  }
  const over = built.filter((b) => b.bytes > BUNDLE_LIMIT_BYTES);
  if (over.length > 0) {
    process.stderr.write(`${over.length} bundle(s) over ${kb(BUNDLE_LIMIT_BYTES)}\n`);
    process.exitCode = 1;
  }
}
