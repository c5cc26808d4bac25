// Fixture outputs of the capture script and ways to derive variants of them: a host without a
// tool is the recorded host with that tool's section replaced by what the script prints then.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProfile, type CaptureResult } from '../../../core/capture/collect.js';
import { parseSections } from '../../../core/capture/sections.js';
import { validateProfile } from '../../../core/profile/io.js';
import type { Profile } from '../../../core/profile/schema.js';

export const CAPTURED_AT = '2024-07-01T10:00:00.000Z';

export const fixture = (name: string): string =>
  readFileSync(join(import.meta.dirname, 'fixtures', `${name}.txt`), 'utf8');

export interface Built extends CaptureResult {
  /** The Profile after validation, defaults filled in. */
  readonly valid: Profile;
  /** The whole Profile as JSON, to search for what must not be in it. */
  readonly json: string;
}

export function build(output: string, processes: readonly string[] = [], host?: string): Built {
  const result = buildProfile(parseSections(output), {
    name: 'fixture-host',
    capturedAt: CAPTURED_AT,
    ...(host === undefined ? {} : { host }),
    application: { processes },
  });
  const valid = validateProfile(result.profile);
  return { ...result, valid, json: JSON.stringify(result.profile) };
}

const nonceOf = (output: string): string => {
  const m = /^@@persona:begin (\S+) /.exec(output);
  if (!m?.[1]) throw new Error('not a capture output');
  return m[1];
};

export interface SectionReplacement {
  readonly body?: string;
  readonly parts?: readonly (readonly [string, string])[];
  readonly missing?: readonly string[];
  readonly notes?: readonly string[];
  readonly status?: number;
}

/** The output with one section replaced, as the script would print it. */
export function withSection(output: string, name: string, replacement: SectionReplacement): string {
  const n = nonceOf(output);
  const mark = (d: string) => `\n@@persona:${n}:${d}\n`;
  const start = output.indexOf(mark(`section ${name}`));
  const endMarker = `\n@@persona:${n}:end ${name} `;
  const end = output.indexOf(endMarker);
  if (start === -1 || end === -1) throw new Error(`no section ${name}`);
  const endLine = output.indexOf('\n', end + endMarker.length);
  const text = [
    mark(`section ${name}`),
    replacement.body ?? '',
    ...(replacement.missing ?? []).map((m) => mark(`missing ${m}`)),
    ...(replacement.notes ?? []).map((m) => mark(`note ${m}`)),
    ...(replacement.parts ?? []).flatMap(([header, body]) => [mark(`part ${header}`), body]),
    mark(`end ${name} ${replacement.status ?? 0} 1.00 1.01`).replace(/\n$/, ''),
  ].join('');
  return output.slice(0, start) + text + output.slice(endLine);
}

/** The output without a section at all, as an older script would print it. */
export function withoutSection(output: string, name: string): string {
  const n = nonceOf(output);
  const start = output.indexOf(`\n@@persona:${n}:section ${name}\n`);
  const endMarker = `\n@@persona:${n}:end ${name} `;
  const end = output.indexOf(endMarker);
  if (start === -1 || end === -1) throw new Error(`no section ${name}`);
  return output.slice(0, start) + output.slice(output.indexOf('\n', end + endMarker.length));
}

/** The reasons recorded for one section. */
export const reasons = (result: CaptureResult, section: string): string[] =>
  result.unknowns.filter((u) => u.section === section).map((u) => u.reason);
