import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { personaJsonSchema } from '../../../core/persona/json-schema.js';

const published = readFileSync('schema/persona.schema.json', 'utf8');
const examples = parseAllDocuments(readFileSync('examples/personas/web.yaml', 'utf8')).map((d) => d.toJS());

describe('the published persona JSON Schema', () => {
  it('is what the zod schema generates (run `npm run schema` when this fails)', () => {
    expect(published).toBe(personaJsonSchema());
  });

  it('accepts the example personas and refuses broken ones, as an editor would', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(published));
    expect(examples).toHaveLength(3);
    for (const doc of examples) expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);

    const broken = structuredClone(examples[0]);
    broken.spec.criteria.metric.name = 'cpu';
    broken.spec.hysteresis.typo = 1;
    expect(validate(broken)).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toEqual(
      expect.arrayContaining(['/spec/criteria/metric/name', '/spec/hysteresis']),
    );
    // Criteria nest: a broken leaf deep inside all/any/not is found there.
    const nested = structuredClone(examples[1]);
    nested.spec.criteria = { all: [{ not: { any: [nested.spec.criteria, { schedule: { windows: [] } }] } }] };
    expect(validate(nested)).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toContain(
      '/spec/criteria/all/0/not/any/1/schedule/windows',
    );
  });
});
