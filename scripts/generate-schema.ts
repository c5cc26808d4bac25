// Writes schema/profile.schema.json and schema/persona.schema.json, the JSON Schemas editors
// use to check profile and persona files. `npm run schema` regenerates them;
// test/core/profile/json-schema.test.ts and test/core/persona/json-schema.test.ts fail when
// they are stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { personaJsonSchema } from '../core/persona/json-schema.js';
import { profileJsonSchema } from '../core/profile/json-schema.js';

for (const [file, text] of [
  ['profile.schema.json', profileJsonSchema()],
  ['persona.schema.json', personaJsonSchema()],
] as const) {
  const target = fileURLToPath(new URL(`../schema/${file}`, import.meta.url));
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
