// Libraries that many functions share, deployed once as Lambda layers instead of inside every
// function's bundle: Powertools and the X-Ray SDK (in every function), ssh2 (in those that reach
// hosts) and the Azure SDK (in those that reach Azure). A function's bundle leaves their modules
// out; the Node.js runtime finds them in the layer's `nodejs/node_modules`, for ES modules too
// (it searches NODE_PATH, which includes /opt/nodejs/node_modules).
//
// A layer is itself built with esbuild, one minified ES module per module a function imports and
// the code they share in chunks beside them, so that it holds one copy of each library (Tracer
// and Logger share Powertools' commons) and nothing of a package that no function loads: the
// Azure SDK's packages as installed are 140 MB, its layer a few MB.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Metafile } from 'esbuild';
import { COMMONJS_SHIM, RUNTIME_MODULES } from './bundling.js';

export interface LibraryLayer {
  readonly description: string;
  /** The module specifiers it provides, exactly as functions import them. */
  readonly modules: readonly string[];
  /** Modules it leaves out besides the runtime's: optional native add-ons never loaded. */
  readonly externalModules?: readonly string[];
}

export const LIBRARY_LAYERS = {
  powertools: {
    description: 'Persona: Powertools for AWS Lambda (Logger, Metrics, Tracer) and the X-Ray SDK',
    modules: [
      '@aws-lambda-powertools/logger',
      '@aws-lambda-powertools/logger/middleware',
      '@aws-lambda-powertools/metrics',
      '@aws-lambda-powertools/tracer',
      '@aws-lambda-powertools/tracer/middleware',
    ],
  },
  ssh: {
    description: 'Persona: ssh2, the SSH transport to hosts',
    // The transport's two modules, not ssh2's index (core/transport/ssh.ts).
    modules: ['ssh2/lib/client.js', 'ssh2/lib/protocol/SFTP.js'],
    // ssh2 falls back to Node's own crypto without its optional native add-ons.
    externalModules: ['cpu-features', '*.node'],
  },
  azure: {
    description: 'Persona: the Azure SDK clients, for Azure targets',
    modules: ['@azure/arm-compute', '@azure/arm-network', '@azure/identity'],
  },
} as const satisfies Record<string, LibraryLayer>;

export type LayerName = keyof typeof LIBRARY_LAYERS;
export const LAYER_NAMES = Object.keys(LIBRARY_LAYERS) as LayerName[];

/** The package a module specifier names: `@a/b/c` is `@a/b`, `x/y` is `x`. */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

/** What a function's bundle leaves out because a layer provides it: every layer's packages. */
export function layerExternals(): string[] {
  const packages = new Set(LAYER_NAMES.flatMap((name) => LIBRARY_LAYERS[name].modules.map(packageOf)));
  return [...packages].flatMap((p) => [p, `${p}/*`]);
}

/** The layers whose modules a bundle imports, from its metafile's external imports. */
export function layersImported(metafile: Metafile): LayerName[] {
  const imported = new Set<string>();
  for (const output of Object.values(metafile.outputs))
    for (const i of output.imports) if (i.external) imported.add(i.path);
  return LAYER_NAMES.filter((name) => LIBRARY_LAYERS[name].modules.some((m) => imported.has(m)));
}

/** The layer's own module for a specifier: `@a/b` is `@a/b/index`, `@a/b/middleware` itself. */
function outputName(specifier: string): string {
  const pkg = packageOf(specifier);
  const sub = specifier.slice(pkg.length + 1);
  return `${pkg}/${sub === '' ? 'index' : sub}`;
}

/** A package's own manifest, where npm installs it (its exports need not name package.json). */
function manifestOf(projectRoot: string, pkg: string): { version: string; type?: string; module?: string } {
  return JSON.parse(readFileSync(path.join(projectRoot, 'node_modules', pkg, 'package.json'), 'utf8'));
}

/**
 * The source of a layer's entry for one module: a re-export. An ES module package re-exports as
 * it is; a CommonJS one (ssh2) is read once here for its export names, since an ES module made
 * from CommonJS has no named exports of its own and functions import it both ways.
 */
function entrySource(projectRoot: string, specifier: string): string {
  const requireFromRoot = createRequire(path.join(projectRoot, 'package.json'));
  const manifest = manifestOf(projectRoot, packageOf(specifier));
  const quoted = JSON.stringify(specifier);
  if (manifest.type === 'module' || manifest.module !== undefined) return `export * from ${quoted};\n`;
  const names = Object.keys(requireFromRoot(specifier) as object).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k));
  return `import m from ${quoted};\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`;
}

/**
 * Builds one layer's content into `outdir` (synchronously, as CDK's local bundling is):
 * `nodejs/node_modules/<package>/package.json` whose exports name the modules built beside it.
 */
export function buildLayerSync(projectRoot: string, name: LayerName, outdir: string): Metafile {
  const esbuild: typeof import('esbuild') = createRequire(import.meta.url)('esbuild');
  const layer: LibraryLayer = LIBRARY_LAYERS[name];
  const modulesDir = path.join(outdir, 'nodejs', 'node_modules');
  mkdirSync(modulesDir, { recursive: true });
  // The entries are files of their own (esbuild's synchronous API takes no plugins), outside
  // the layer; their imports resolve from the project's node_modules.
  const entries = mkdtempSync(path.join(tmpdir(), 'persona-layer-'));
  const entryPoints: Record<string, string> = {};
  layer.modules.forEach((m, i) => {
    const file = path.join(entries, `${i}.mjs`);
    writeFileSync(file, entrySource(projectRoot, m));
    entryPoints[outputName(m)] = file;
  });
  let result: ReturnType<typeof esbuild.buildSync>;
  try {
    result = esbuild.buildSync({
      absWorkingDir: projectRoot,
      nodePaths: [path.join(projectRoot, 'node_modules')],
      entryPoints,
      outdir: modulesDir,
      outExtension: { '.js': '.mjs' },
      chunkNames: '.persona-chunks/[name]-[hash]',
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      mainFields: ['module', 'main'],
      minify: true,
      metafile: true,
      logLevel: 'warning',
      legalComments: 'linked',
      external: [...RUNTIME_MODULES, ...(layer.externalModules ?? [])],
      banner: { js: COMMONJS_SHIM },
    });
  } finally {
    rmSync(entries, { recursive: true, force: true });
  }
  const byPackage = new Map<string, string[]>();
  for (const m of layer.modules) byPackage.set(packageOf(m), [...(byPackage.get(packageOf(m)) ?? []), m]);
  for (const [pkg, modules] of byPackage) {
    const { version } = manifestOf(projectRoot, pkg);
    const exports = Object.fromEntries(
      modules.map((m) => [
        m === pkg ? '.' : `./${m.slice(pkg.length + 1)}`,
        `./${outputName(m).slice(pkg.length + 1)}.mjs`,
      ]),
    );
    writeFileSync(
      path.join(modulesDir, pkg, 'package.json'),
      `${JSON.stringify({ name: pkg, version, type: 'module', exports }, null, 2)}\n`,
    );
  }
  if (!result.metafile) throw new Error(`esbuild gave no metafile for the ${name} layer`);
  return result.metafile;
}
