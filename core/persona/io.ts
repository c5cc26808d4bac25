// Reading persona documents from JSON or YAML with the defences of profile documents (size,
// depth, aliases, tags, duplicate and forbidden keys: core/profile/io.ts), plus what is
// particular to personas: criteria nested no deeper than MAX_CRITERIA_DEPTH, and files that
// hold several personas separated by `---`.
import { CST, Lexer } from 'yaml';
import { InvalidInputError, type Issue, TooLargeError } from '../errors.js';
import { type ParseOptions, parseDocumentText } from '../profile/io.js';
import { PERSONA_LIMITS, personaOf, personaReadOptions } from './read.js';
import type { Persona } from './schema.js';
import { validatePersona } from './validate.js';

export { PERSONA_LIMITS } from './read.js';

export { canonicalPersona, criteriaDepthIssues, serializePersona, validatePersona } from './validate.js';

/** Parses and validates one persona document (JSON or YAML). */
export function parsePersona(text: string | Uint8Array, options: ParseOptions = {}): Persona {
  return personaOf(parseDocumentText(text, personaReadOptions(options)), options);
}

/** One document of a file of personas, and the line its text starts on. */
export interface PersonaDocument {
  readonly persona: Persona;
  /** 1-based line of the document in its file. */
  readonly line: number;
}

/**
 * Parses a file of one or more persona documents separated by `---` (YAML), or one JSON
 * document. Empty documents are skipped. Every document is checked, and the problems of all of
 * them are reported together, each with its line in the file.
 */
export function parsePersonaFile(
  input: string | Uint8Array,
  options: { source?: string } = {},
): PersonaDocument[] {
  const source = options.source ?? 'file';
  const bytes = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (bytes > PERSONA_LIMITS.maxFileBytes) {
    throw new TooLargeError(
      `${source} is ${bytes} bytes; the limit for a file of personas is ${PERSONA_LIMITS.maxFileBytes} bytes`,
      PERSONA_LIMITS.maxFileBytes,
    );
  }
  const text = typeof input === 'string' ? input : decodeStrict(input, source);
  const pieces = splitDocuments(text);
  if (pieces.length > PERSONA_LIMITS.maxDocuments) {
    throw new InvalidInputError(
      `${source} holds too many documents`,
      [
        {
          path: '',
          message: `${pieces.length} documents; at most ${PERSONA_LIMITS.maxDocuments} in one file`,
        },
      ],
      { source },
    );
  }
  const documents: PersonaDocument[] = [];
  const issues: Issue[] = [];
  const seen = new Map<string, number>();
  for (const piece of pieces) {
    const shift = (i: Issue): Issue =>
      i.line === undefined ? { ...i, line: piece.line } : { ...i, line: i.line + piece.line - 1 };
    try {
      const { value, locate } = parseDocumentText(piece.text, {
        source,
        maxBytes: PERSONA_LIMITS.maxBytes,
        kind: 'a persona document',
      });
      if (value === null || value === undefined) continue;
      const persona = validatePersona(value, { source, locate });
      const name = persona.metadata.name;
      const first = seen.get(name);
      if (first !== undefined) {
        issues.push(
          shift({
            path: 'metadata.name',
            message: `persona ${name} is defined twice in this file (first at line ${first})`,
            ...locate(['metadata', 'name']),
          }),
        );
        continue;
      }
      seen.set(name, piece.line);
      documents.push({ persona, line: piece.line });
    } catch (e) {
      if (e instanceof InvalidInputError) issues.push(...e.issues.map(shift));
      else if (e instanceof TooLargeError) issues.push({ path: '', message: e.message, line: piece.line });
      else throw e;
    }
  }
  if (issues.length > 0)
    throw new InvalidInputError(`${source} is not a valid file of personas`, issues, { source });
  if (documents.length === 0) {
    throw new InvalidInputError(
      `${source} holds no persona`,
      [{ path: '', message: 'expected at least one document of kind Persona' }],
      { source },
    );
  }
  return documents;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeStrict(bytes: Uint8Array, source: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    // The document parser names the offending byte, line and column.
    parseDocumentText(bytes, { source, maxBytes: PERSONA_LIMITS.maxFileBytes });
    throw new InvalidInputError(`${source} is not valid UTF-8`, [{ path: '', message: 'invalid UTF-8' }], {
      source,
    });
  }
}

/**
 * The text of each document of a YAML stream and the line it starts on, split where the lexer
 * (which does not recurse) finds a document start (`---`) or the directives before one.
 */
function splitDocuments(text: string): { text: string; line: number }[] {
  const starts: number[] = [0];
  let offset = 0;
  let directiveAt: number | undefined;
  let content = false;
  // Whether the piece being read has its `---` already: a second one starts another document.
  let started = false;
  for (const token of new Lexer().lex(text)) {
    if (token === '\x02' || token === '\x1f' || token === '\x18') continue;
    const type = CST.tokenType(token);
    if (type === 'directive-line') directiveAt ??= offset;
    else if (type === 'doc-start') {
      // Comments and directives before the first `---` belong to the document it starts.
      if (content || started) starts.push(directiveAt ?? offset);
      directiveAt = undefined;
      content = false;
      started = true;
    } else if (type === 'doc-end') {
      starts.push(offset + token.length);
      content = false;
      started = false;
    } else if (type !== 'space' && type !== 'newline' && type !== 'comment' && type !== 'byte-order-mark') {
      content = true;
    }
    offset += token.length;
  }
  const out: { text: string; line: number }[] = [];
  for (let i = 0; i < starts.length; i++) {
    const to = starts[i + 1] ?? text.length;
    let from = starts[i] as number;
    if (text.slice(from, to).trim() === '') continue;
    // From the line of its first text: a document after `...` starts on the next line.
    const first = from + (text.slice(from, to).length - text.slice(from, to).trimStart().length);
    from = Math.max(from, text.lastIndexOf('\n', first - 1) + 1);
    const piece = text.slice(from, to);
    out.push({ text: piece, line: lineAt(text, from) });
  }
  return out;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}
