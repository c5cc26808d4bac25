// The operations under test, each as "set up, then return the thing to run". The timing loop
// and the memory probe (a separate process) share them, so both measure exactly the same work.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { applyDelta, revertDelta } from '../core/delta/apply.js';
import { diff } from '../core/delta/diff.js';
import { parseProfile } from '../core/profile/io.js';
import type { Profile } from '../core/profile/schema.js';
import { serializeProfile } from '../core/profile/service.js';

export const SCHEMA_PATH = new URL('../schema/profile.schema.json', import.meta.url);

/** The files the benchmark writes, by role. */
export const DOCUMENTS = {
  v1Yaml: 'v1.yaml',
  v2Yaml: 'v2.yaml',
  /** The stored form (serializeProfile): compact, canonical. */
  v1Json: 'v1.json',
  v2Json: 'v2.json',
  /** One key per line, for line-based diff tools. */
  v1PrettyJson: 'v1.pretty.json',
  v2PrettyJson: 'v2.pretty.json',
} as const;
export type DocumentRole = keyof typeof DOCUMENTS;

export const documentPath = (dir: string, role: DocumentRole): string => join(dir, DOCUMENTS[role]);
const read = (dir: string, role: DocumentRole) => readFileSync(documentPath(dir, role), 'utf8');

export const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * The JSON-Schema route an editor or a CI step takes: compile the published schema once.
 * `format` (uri, date-time) is left unchecked, as plain ajv does without ajv-formats.
 */
export function schemaValidator(): (value: unknown) => { valid: boolean; errors: number } {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
  return (value) => {
    const valid = validate(value);
    return { valid, errors: validate.errors?.length ?? 0 };
  };
}

/** How Persona itself loads a stored version (service.getProfile): the canonical JSON body. */
export const loadStored = (dir: string, role: 'v1Json' | 'v2Json'): Profile =>
  JSON.parse(read(dir, role)) as Profile;

export const OPERATIONS = {
  'persona.parse.yaml': (dir: string) => {
    const text = read(dir, 'v1Yaml');
    return () => parseProfile(text, { source: DOCUMENTS.v1Yaml });
  },
  'persona.parse.json': (dir: string) => {
    const text = read(dir, 'v1Json');
    return () => parseProfile(text, { source: DOCUMENTS.v1Json });
  },
  'ajv.yaml': (dir: string) => {
    const text = read(dir, 'v1Yaml');
    const validate = schemaValidator();
    return () => validate(parseYaml(text));
  },
  'ajv.json': (dir: string) => {
    const text = read(dir, 'v1Json');
    const validate = schemaValidator();
    return () => validate(JSON.parse(text));
  },
  'persona.diff': (dir: string) => {
    const a = loadStored(dir, 'v1Json');
    const b = loadStored(dir, 'v2Json');
    return () => diff(a, b);
  },
  'persona.apply+revert': (dir: string) => {
    const a = loadStored(dir, 'v1Json');
    const delta = diff(a, loadStored(dir, 'v2Json'));
    return () => revertDelta(applyDelta(a, delta), delta);
  },
  'persona.serialize+sha256': (dir: string) => {
    const a = loadStored(dir, 'v1Json');
    return () => sha256(serializeProfile(a));
  },
} as const;
export type OperationName = keyof typeof OPERATIONS;
export const isOperationName = (s: string): s is OperationName => Object.hasOwn(OPERATIONS, s);
