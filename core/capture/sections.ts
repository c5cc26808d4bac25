// Splitting the capture script's output into its sections. The format is described at the top
// of script.ts; markers carry a per-run nonce, so only the script itself can write them.
import { IncompleteCaptureError, UnsupportedHostError } from './errors.js';
import { SCRIPT_VERSION } from './script.js';

export interface SectionPart {
  /** The text after `part` on its marker (a file name, a pid, a format); '' before the first. */
  readonly header: string;
  readonly text: string;
}

export interface Section {
  readonly name: string;
  /** Everything the section printed, parts joined by newlines, without markers. */
  readonly text: string;
  readonly parts: readonly SectionPart[];
  /** The section's exit status; -1 when its end marker never came. */
  readonly status: number;
  /** The first `missing` reason, the one most callers want to show. */
  readonly missing?: string;
  /** Every `missing` reason. */
  readonly missingAll: readonly string[];
  readonly notes: readonly string[];
  /** The first lines the section wrote to standard error. */
  readonly stderr: readonly string[];
  /** Wall-clock seconds the section took, from /proc/uptime on the host. */
  readonly seconds?: number;
}

/** The sections of one capture, by name, with what the run as a whole reported. */
export class CaptureSections extends Map<string, Section> {
  constructor(
    readonly nonce: string,
    /** Seconds from the script's first section to its last, on the host's clock. */
    readonly seconds: number | undefined,
  ) {
    super();
  }
}

const BEGIN = /@@persona:begin ([A-Za-z0-9-]+) (\d+)\r?\n/;

interface Building {
  name: string;
  parts: { header: string; text: string }[];
  missing: string[];
  notes: string[];
  stderr: string[];
}

const uptime = (s: string | undefined): number | undefined => {
  const n = s === undefined ? Number.NaN : Number(s);
  return Number.isFinite(n) ? n : undefined;
};

const elapsed = (a: string | undefined, b: string | undefined): number | undefined => {
  const x = uptime(a);
  const y = uptime(b);
  return x === undefined || y === undefined ? undefined : Math.round((y - x) * 100) / 100;
};

/**
 * The sections of a capture script's output. Throws UnsupportedHostError for a host that is not
 * Linux and IncompleteCaptureError for output that is not the script's, or not all of it.
 */
export function parseSections(output: string): CaptureSections {
  const begin = BEGIN.exec(output);
  if (!begin) {
    throw new IncompleteCaptureError(
      'the output is not from the Persona capture script (no begin marker): the script did not start, or something else answered',
    );
  }
  const [, nonce = '', version = ''] = begin;
  if (Number(version) !== SCRIPT_VERSION) {
    throw new IncompleteCaptureError(
      `the capture script output is format ${version}; this parser reads format ${SCRIPT_VERSION}`,
    );
  }

  const marker = `@@persona:${nonce}:`;
  let at = begin.index + begin[0].length;
  let current: Building | undefined;
  let done: number | undefined | null = null;
  const sections = new Map<string, Section>();

  const appendText = (text: string) => {
    const part = current?.parts[current.parts.length - 1];
    if (part) part.text += text;
  };
  const finish = (b: Building, status: number, seconds?: number) => {
    const parts = b.parts.filter((p, i) => i > 0 || p.text !== '' || b.parts.length === 1);
    sections.set(b.name, {
      name: b.name,
      text: parts.map((p) => p.text).join('\n'),
      parts,
      status,
      ...(b.missing[0] === undefined ? {} : { missing: b.missing[0] }),
      missingAll: b.missing,
      notes: b.notes,
      stderr: b.stderr,
      ...(seconds === undefined ? {} : { seconds }),
    });
  };

  for (;;) {
    const next = output.indexOf(marker, at);
    const chunk = output.slice(at, next === -1 ? undefined : next);
    // Every marker is written after a newline of its own.
    appendText(next === -1 ? chunk : chunk.replace(/\r?\n$/, ''));
    if (next === -1) break;
    const eol = output.indexOf('\n', next);
    const line = output.slice(next + marker.length, eol === -1 ? undefined : eol).replace(/\r$/, '');
    at = eol === -1 ? output.length : eol + 1;
    const space = line.indexOf(' ');
    const directive = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? '' : line.slice(space + 1);

    switch (directive) {
      case 'unsupported':
        throw new UnsupportedHostError(
          `the host runs ${rest || 'an unknown kernel'}, not Linux: Persona captures Linux hosts only`,
          rest,
        );
      case 'fatal':
        throw new IncompleteCaptureError(`the capture script stopped: ${rest}`);
      case 'section':
        if (current) finish(current, -1);
        current = { name: rest, parts: [{ header: '', text: '' }], missing: [], notes: [], stderr: [] };
        break;
      case 'part':
        current?.parts.push({ header: rest, text: '' });
        break;
      case 'missing':
        current?.missing.push(rest);
        break;
      case 'note':
        current?.notes.push(rest);
        break;
      case 'stderr':
        current?.stderr.push(rest);
        break;
      case 'end': {
        const [name, status, t0, t1] = rest.split(' ');
        if (current && current.name === name) finish(current, Number(status ?? -1), elapsed(t0, t1));
        current = undefined;
        break;
      }
      case 'done': {
        const [t0, t1] = rest.split(' ');
        if (current) finish(current, -1);
        current = undefined;
        done = elapsed(t0, t1);
        break;
      }
      default:
        // A directive from a newer script: its text still belongs to the current section.
        break;
    }
  }
  if (current) finish(current, -1);
  if (done === null) {
    throw new IncompleteCaptureError(
      'the capture output ends before the script finished: it was cut short or the script was killed',
    );
  }
  const result = new CaptureSections(nonce, done);
  for (const [name, section] of sections) result.set(name, section);
  return result;
}

/** The lines of a text, without the empty last one a trailing newline leaves. */
export function lines(text: string): string[] {
  if (text === '') return [];
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** The parts of a section whose header starts with `prefix` (a word, e.g. `pid`). */
export function partsWith(section: Section | undefined, prefix: string): SectionPart[] {
  if (!section) return [];
  return section.parts.filter((p) => p.header === prefix || p.header.startsWith(`${prefix} `));
}

/** The first part whose header starts with `prefix`. */
export const partWith = (section: Section | undefined, prefix: string): SectionPart | undefined =>
  partsWith(section, prefix)[0];

/**
 * One capture out of two runs of the script on the same host: the sections of the second pass
 * (a section the first also has gets the second's parts after its own, so a file listing of /etc
 * and one of the discovered trees read as one listing in two parts).
 */
export function mergeSections(first: CaptureSections, second: CaptureSections): CaptureSections {
  const seconds =
    first.seconds === undefined || second.seconds === undefined
      ? first.seconds
      : first.seconds + second.seconds;
  const merged = new CaptureSections(first.nonce, seconds);
  for (const [name, section] of first) merged.set(name, section);
  for (const [name, b] of second) {
    const a = merged.get(name);
    if (!a) {
      merged.set(name, b);
      continue;
    }
    const parts = [...a.parts, ...b.parts];
    const missingAll = [...a.missingAll, ...b.missingAll];
    const seconds = a.seconds === undefined || b.seconds === undefined ? a.seconds : a.seconds + b.seconds;
    merged.set(name, {
      name,
      text: parts.map((p) => p.text).join('\n'),
      parts,
      status: a.status !== 0 ? a.status : b.status,
      ...(missingAll[0] === undefined ? {} : { missing: missingAll[0] }),
      missingAll,
      notes: [...a.notes, ...b.notes],
      stderr: [...a.stderr, ...b.stderr],
      ...(seconds === undefined ? {} : { seconds }),
    });
  }
  return merged;
}
