import * as z from 'zod';
import { Profile } from './schema.js';

export const PROFILE_SCHEMA_ID = 'https://persona.dev/schemas/persona-v1/profile.schema.json';

/** The JSON Schema of a profile file as people write it (defaults may be left out). */
export function profileJsonSchema(): string {
  const schema = z.toJSONSchema(Profile, { io: 'input', target: 'draft-2020-12' });
  return `${JSON.stringify({ ...schema, $id: PROFILE_SCHEMA_ID }, null, 2)}\n`;
}
