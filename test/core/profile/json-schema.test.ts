import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { profileJsonSchema } from '../../../core/profile/json-schema.js';

const published = readFileSync('schema/profile.schema.json', 'utf8');

describe('the published JSON Schema', () => {
  it('is what the zod schema generates (run `npm run schema` when this fails)', () => {
    expect(published).toBe(profileJsonSchema());
  });

  it('accepts the example profiles and refuses a broken one, as an editor would', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(published));
    for (const file of ['examples/web.yaml', 'examples/web-v2.yaml']) {
      expect(validate(parse(readFileSync(file, 'utf8'))), JSON.stringify(validate.errors)).toBe(true);
    }
    const broken = parse(readFileSync('examples/web.yaml', 'utf8'));
    broken.spec.packages[0].version = 7;
    broken.spec.typo = true;
    expect(validate(broken)).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toEqual(
      expect.arrayContaining(['/spec/packages/0/version', '/spec']),
    );
  });
});
