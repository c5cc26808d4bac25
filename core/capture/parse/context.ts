// What every area parser shares: the sections, the list of what stayed unknown and why, and
// the secret collector. Parsers never throw on odd host output: they leave the odd entry out
// and say so.
import type { z } from 'zod';
import type { SecretCollector } from '../secrets.js';
import type { CaptureSections, Section } from '../sections.js';

/** A part of the Profile the capture could not fill, and why. */
export interface Unknown {
  /** The script section (or Profile area) concerned. */
  readonly section: string;
  readonly reason: string;
}

export class ParseContext {
  readonly unknowns: Unknown[] = [];
  private readonly seen = new Set<string>();

  constructor(
    readonly sections: CaptureSections,
    readonly secrets: SecretCollector,
    /** The host's name, as it prefixes secret references. */
    readonly host: string,
  ) {}

  unknown(section: string, reason: string): void {
    const key = `${section}\0${reason}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.unknowns.push({ section, reason });
  }

  /**
   * A section, recording as unknown what it reported missing, its notes, and a failed exit
   * status. Parsers still read whatever text a failed section printed.
   */
  section(name: string): Section | undefined {
    const s = this.sections.get(name);
    if (!s) {
      this.unknown(name, 'the capture output has no such section');
      return undefined;
    }
    for (const m of s.missingAll) this.unknown(name, m);
    for (const n of s.notes) this.unknown(name, n);
    if (s.status !== 0 && s.missingAll.length === 0 && s.notes.length === 0) {
      const why = s.status === -1 ? 'did not finish' : `exited with status ${s.status}`;
      this.unknown(name, s.stderr[0] === undefined ? why : `${why}: ${s.stderr[0]}`);
    }
    return s;
  }

  /**
   * The entries the schema accepts, each once by `key`; the rest are left out and named in one
   * unknown per call, so a host with a thousand odd entries does not bury the report.
   */
  keep<T>(
    area: string,
    schema: z.ZodType,
    entries: readonly T[],
    key: (entry: T) => string,
    noun: string,
  ): T[] {
    const kept: T[] = [];
    const keys = new Set<string>();
    const invalid: string[] = [];
    const duplicate: string[] = [];
    for (const entry of entries) {
      const k = key(entry);
      if (keys.has(k)) {
        duplicate.push(k);
        continue;
      }
      const result = schema.safeParse(entry);
      if (!result.success) {
        const issue = result.error.issues[0];
        invalid.push(`${k} (${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'invalid'})`);
        continue;
      }
      keys.add(k);
      kept.push(entry);
    }
    if (invalid.length > 0)
      this.unknown(area, `${count(invalid.length, noun)} left out as invalid: ${sample(invalid)}`);
    if (duplicate.length > 0) {
      this.unknown(area, `${count(duplicate.length, noun)} listed twice, first kept: ${sample(duplicate)}`);
    }
    return kept;
  }
}

export const count = (n: number, noun: string, plural = `${noun}s`): string =>
  `${n} ${n === 1 ? noun : plural}`;

/** The first few items of a list, for messages. */
export const sample = (items: readonly string[], max = 3): string =>
  items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;

/** `key=value` lines into a map (os-release, the os section); quotes and escapes removed. */
export function keyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1);
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\(.)/g, '$1');
    }
    out.set(line.slice(0, eq), value);
  }
  return out;
}

/** A whole non-negative number, or undefined. */
export function int(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  const n = Number(text.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A finite number, or undefined. */
export function num(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** Octal escapes (`\040`) as /proc/mounts and `ip` write them. */
export const unescapeOctal = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
