// The library layers as `cdk synth` from a checkout builds them (no prebuilt package): each holds
// its own libraries, and a function that names a layer is given it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { afterAll, describe, expect, it } from 'vitest';
import { personaFunction } from '../../infra/function.js';
import { LAYER_NAMES, LIBRARY_LAYERS, packageOf } from '../../infra/layers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const outdir = mkdtempSync(path.join(tmpdir(), 'persona-layers-'));

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('the library layers built from source', { timeout: 300_000 }, () => {
  it('each hold their own libraries, though they share one source folder', () => {
    const app = new App({ outdir });
    const stack = new Stack(app, 'Layers');
    personaFunction(stack, 'Capture', {
      entry: path.join('functions', 'steps', 'capture', 'handler.ts'),
      description: 'a function that reaches hosts',
      projectRoot: ROOT,
      retention: logs.RetentionDays.ONE_DAY,
      logRemovalPolicy: RemovalPolicy.DESTROY,
      memorySize: 512,
      timeout: Duration.seconds(10),
      layers: ['ssh', 'azure'],
    });
    app.synth();
    const template = JSON.parse(readFileSync(path.join(outdir, 'Layers.template.json'), 'utf8'));
    const layers = Object.values(
      template.Resources as Record<string, { Type: string; Properties: any }>,
    ).filter((r) => r.Type === 'AWS::Lambda::LayerVersion');
    expect(layers).toHaveLength(LAYER_NAMES.length);
    // Where each asset was staged, by the object key a layer's Content names.
    const manifest = JSON.parse(readFileSync(path.join(outdir, 'Layers.assets.json'), 'utf8'));
    const staged = new Map<string, string>();
    for (const asset of Object.values(manifest.files) as {
      source: { path: string };
      destinations: Record<string, { objectKey: string }>;
    }[])
      for (const d of Object.values(asset.destinations)) staged.set(d.objectKey, asset.source.path);
    const folders = new Set<string>();
    for (const name of LAYER_NAMES) {
      const layer = layers.find((l) => l.Properties.Description === LIBRARY_LAYERS[name].description);
      expect(layer, name).toBeDefined();
      const folder = path.join(outdir, staged.get(layer?.Properties.Content.S3Key) ?? 'none');
      folders.add(folder);
      const modules = path.join(folder, 'nodejs', 'node_modules');
      for (const m of LIBRARY_LAYERS[name].modules)
        expect(existsSync(path.join(modules, packageOf(m), 'package.json')), `${name} holds ${m}`).toBe(true);
      for (const other of LAYER_NAMES.filter((n) => n !== name))
        expect(
          existsSync(path.join(modules, packageOf(LIBRARY_LAYERS[other].modules[0] as string))),
          `${name} holds ${other}'s`,
        ).toBe(false);
    }
    expect(folders.size).toBe(LAYER_NAMES.length);
  });
});
