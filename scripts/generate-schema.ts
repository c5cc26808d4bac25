// Writes schema/profile.schema.json, the JSON Schema editors use to check profile files.
// `npm run schema` regenerates it; test/core/profile/json-schema.test.ts fails when it is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { profileJsonSchema } from '../core/profile/json-schema.js';

const target = fileURLToPath(new URL('../schema/profile.schema.json', import.meta.url));
writeFileSync(target, profileJsonSchema());
console.log(`wrote ${target}`);
