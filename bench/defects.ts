// What each validation route catches, on the small example with one defect at a time. Speed
// alone would be unfair to Persona: the JSON Schema cannot express everything the model checks.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify } from 'yaml';
import { parseProfile } from '../core/profile/io.js';
import { schemaValidator } from './operations.js';

export interface DefectResult {
  readonly defect: string;
  readonly persona: boolean;
  readonly schema: boolean;
}

type Doc = {
  spec: {
    packages: Record<string, unknown>[];
    configuration: { env: Record<string, unknown>[]; files: Record<string, unknown>[] };
  };
};

const EXAMPLE = new URL('../examples/web.yaml', import.meta.url);

function edited(text: string, edit: (doc: Doc) => void): string {
  const doc = parseYaml(text) as Doc;
  edit(doc);
  return stringify(doc, { lineWidth: 0 });
}

function replaced(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`the example no longer contains ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

export function checkDefects(): DefectResult[] {
  const text = readFileSync(EXAMPLE, 'utf8');
  const validate = schemaValidator();
  const cases: [string, string][] = [
    [
      'unknown field (`pinned` on a package)',
      edited(text, (d) => {
        d.spec.packages[0] = { ...d.spec.packages[0], pinned: true };
      }),
    ],
    [
      'wrong type (numeric package version)',
      edited(text, (d) => {
        d.spec.packages[0] = { ...d.spec.packages[0], version: 12 };
      }),
    ],
    [
      'same package listed twice',
      edited(text, (d) => {
        d.spec.packages.push({ ...d.spec.packages[0] });
      }),
    ],
    [
      'password env var in clear text',
      edited(text, (d) => {
        d.spec.configuration.env.push({ name: 'DB_PASSWORD', value: 'hunter2' });
      }),
    ],
    [
      'file with neither hash nor secretRef',
      edited(text, (d) => {
        d.spec.configuration.files.push({ path: '/etc/motd', mode: '0644' });
      }),
    ],
    [
      'sensitive file without secretRef',
      edited(text, (d) => {
        d.spec.configuration.files.push({
          path: '/etc/app.key',
          hash: `sha256:${'a'.repeat(64)}`,
          sensitive: true,
        });
      }),
    ],
    ['duplicate YAML key', replaced(text, '    role: web\n', '    role: web\n    role: api\n')],
    ['`__proto__` key', replaced(text, '    role: web\n', '    role: web\n    __proto__: polluted\n')],
    ['custom tag (`!shell`)', replaced(text, '    hostname: web-a', '    hostname: !shell web-a')],
  ];
  return cases.map(([defect, doc]) => {
    let persona = false;
    try {
      parseProfile(doc, { source: 'web.yaml' });
    } catch {
      persona = true;
    }
    let schema = false;
    try {
      schema = !validate(parseYaml(doc, { logLevel: 'error' })).valid;
    } catch {
      // The YAML parser refusing the document counts as caught: an editor shows it too.
      schema = true;
    }
    return { defect, persona, schema };
  });
}
