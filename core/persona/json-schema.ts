import * as z from 'zod';
import { Persona } from './schema.js';

export const PERSONA_SCHEMA_ID = 'https://persona.dev/schemas/persona-v1/persona.schema.json';

/** The JSON Schema of a persona file as people write it (defaults may be left out). */
export function personaJsonSchema(): string {
  const schema = z.toJSONSchema(Persona, { io: 'input', target: 'draft-2020-12' });
  return `${JSON.stringify({ ...schema, $id: PERSONA_SCHEMA_ID }, null, 2)}\n`;
}
