// What an API function pays for a JSON body: the YAML route (yaml-text.ts, the one module that
// imports the YAML parser) is loaded by the first document that needs it, and never for JSON.
import { describe, expect, it, vi } from 'vitest';
import { readDocumentText } from '../../../core/profile/document-text.js';

const loads = vi.hoisted(() => ({ yamlRoute: 0 }));
vi.mock('../../../core/profile/yaml-text.js', async (original) => {
  loads.yamlRoute++;
  return await original();
});

describe('readDocumentText', () => {
  it('reads and positions JSON, valid or not, without loading the YAML route, and loads it for YAML', async () => {
    const located = await readDocumentText(JSON.stringify({ metadata: { name: 7 }, spec: [1, 2] }, null, 2));
    expect(located.value).toEqual({ metadata: { name: 7 }, spec: [1, 2] });
    expect(located.locate(['metadata', 'name'])).toEqual({ line: 3, column: 13 });
    expect(located.locate(['spec', 5])).toEqual({ line: 5, column: 11 });
    expect(loads.yamlRoute).toBe(0);

    const yaml = await readDocumentText('metadata:\n  name: 7\n');
    expect(yaml.value).toEqual({ metadata: { name: 7 } });
    expect(yaml.locate(['metadata', 'name'])).toEqual({ line: 2, column: 9 });
    expect(loads.yamlRoute).toBe(1);
  });
});
