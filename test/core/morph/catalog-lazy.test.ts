// The stack ships target profiles as JSON so that the functions reading them never load the YAML
// route (core/profile/yaml-text.ts, the one module importing the parser); a YAML folder still reads.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { FolderTargetCatalog } from '../../../core/morph/catalog.js';

const loads = vi.hoisted(() => ({ yamlRoute: 0 }));
vi.mock('../../../core/profile/yaml-text.js', async (original) => {
  loads.yamlRoute++;
  return await original();
});

describe('FolderTargetCatalog', () => {
  it('reads a folder of JSON targets without loading the YAML route, and a YAML folder with it', async () => {
    const shipped = join(import.meta.dirname, '../../../examples/targets');
    // The YAML parser itself, imported here by the test only, converts the shipped targets.
    const { parse } = await import('yaml');
    const folder = mkdtempSync(join(tmpdir(), 'persona-targets-'));
    for (const name of ['web-server', 'database-server'])
      writeFileSync(
        join(folder, `${name}.json`),
        JSON.stringify(parse(readFileSync(join(shipped, `${name}.yaml`), 'utf8'))),
      );
    const json = await new FolderTargetCatalog(folder).list();
    expect(json.map((t) => t.metadata.name)).toEqual(['database-server', 'web-server']);
    expect(loads.yamlRoute).toBe(0);
    expect(await new FolderTargetCatalog(shipped).get('web-server')).toEqual(json[1]);
    expect(loads.yamlRoute).toBe(1);
  });
});
