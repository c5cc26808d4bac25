// One persona document read as an API function reads it: the document checks without the YAML
// parser loaded up front (core/profile/document-text.ts), then the persona's own. The limits
// live here so that what reads a request body need not import io.ts, which brings the parser.
import { type Located, type ParseOptions, readDocumentText } from '../profile/document-text.js';
import type { Persona } from './schema.js';
import { validatePersona } from './validate.js';

/** Limits on persona documents, documented in the README. */
export const PERSONA_LIMITS = {
  /**
   * Bytes of one persona document. A persona is stored whole in one DynamoDB item (400 KB at
   * most), and a persona with every parameter set is a few kilobytes.
   */
  maxBytes: 256 * 1024,
  /** Bytes of a file of several personas (`persona personas apply -f`). */
  maxFileBytes: 4 * 1024 * 1024,
  /** Documents in one file. */
  maxDocuments: 200,
} as const;

/** How a persona document is read: the persona limits unless the caller's options say otherwise. */
export function personaReadOptions(options: ParseOptions): ParseOptions {
  return { maxBytes: PERSONA_LIMITS.maxBytes, kind: 'a persona document', ...options };
}

/** The persona a document read with personaReadOptions holds, every problem named. */
export function personaOf({ value, locate }: Located, options: ParseOptions): Persona {
  return validatePersona(value, {
    ...(options.source === undefined ? {} : { source: options.source }),
    locate,
  });
}

/** Reads and validates one persona document (JSON or YAML), as parsePersona (io.ts) does. */
export async function readPersona(text: string | Uint8Array, options: ParseOptions = {}): Promise<Persona> {
  return personaOf(await readDocumentText(text, personaReadOptions(options)), options);
}
