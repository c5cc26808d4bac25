// Programs no package owns: the executables of listening and long-lived processes, the
// ExecStart= programs of enabled services, and the scripts that interpreters among them run. A
// clone installs packages, and discovery's trees leave /usr and the like out as package
// territory, so a program such as /usr/local/bin/shop-api would reach a clone by neither and its
// start command would fail there. The first pass prints the raw material (the `appdata` section:
// every process's exe, the units' ExecStart= lines; the process table); here it becomes a list of
// candidate paths. The first pass's `programs` section has already resolved on the host every
// absolute path its processes and services name and asked the package manager about all of them
// in one query; a second pass does the same for the candidates it did not name.
// `discoveredPrograms` then keeps the regular files no package owns and no captured tree holds,
// with the links that lead to them, within the bounds.
//
// Everything here is data from the host: a path that fails the path grammar, lies under /proc,
// /sys or /dev, is an identity file or is named like a credential is left out and named as
// unknown, never sent anywhere. Command lines are only read for paths, never shown.

import { isIdentityFile } from '../../plan/identity.js';
import { pathProblem } from '../../transport/paths.js';
import { displayValue } from '../../transport/shell.js';
import { fileLooksSensitive } from '../secrets.js';
import { lines, partsWith, partWith, type Section } from '../sections.js';
import { count, int, type ParseContext, sample } from './context.js';
import { isLongLived, type ProcessTable } from './processes.js';

const AREA = 'appdata';

/** Candidates sent to the second pass; more are named as unknown. */
export const MAX_PROGRAM_CANDIDATES = 256;

/** Trees no program of an application is taken from: the kernel's and the devices'. */
const VIRTUAL_TREES = ['/proc', '/sys', '/dev'];

const within = (path: string, tree: string): boolean =>
  path === tree || path.startsWith(`${tree.replace(/\/+$/, '')}/`);

const shown = (s: string): string => (/^[\x20-\x7e]*$/.test(s) ? s : displayValue(s));

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/**
 * How an interpreter's command line names the file it runs: the options that end the search
 * (the program is then on the command line itself, or a module), and those that take the next
 * word as their value. The first other word that is not an option is the script.
 */
interface Grammar {
  readonly stop: readonly string[];
  readonly value: readonly string[];
  /** The option whose value is the file run (java -jar); without it, nothing is. */
  readonly fileOption?: string;
}

const SHELL: Grammar = {
  stop: ['-c', '-s', '-'],
  value: ['-o', '+o', '-O', '+O', '--rcfile', '--init-file'],
};
const INTERPRETERS: readonly (readonly [RegExp, Grammar])[] = [
  [/^(sh|dash|bash|ash|ksh|ksh93|mksh|zsh)$/, SHELL],
  [/^python[0-9.]*$/, { stop: ['-c', '-m', '-'], value: ['-W', '-X', '--check-hash-based-pycs'] }],
  [/^perl[0-9.]*$/, { stop: ['-e', '-E', '-'], value: [] }],
  [/^ruby[0-9.]*$/, { stop: ['-e', '-'], value: ['-I', '-r', '-C'] }],
  [
    /^(node|nodejs)$/,
    {
      stop: ['-e', '--eval', '-p', '--print', '-'],
      value: ['-r', '--require', '--import', '--loader', '-C', '--conditions'],
    },
  ],
  [/^php[0-9.]*$/, { stop: ['-r', '-a', '-'], value: ['-c', '-d', '-z'] }],
  [/^(lua[0-9.]*|luajit|tclsh[0-9.]*)$/, { stop: ['-e', '-'], value: ['-l'] }],
  [/^java$/, { stop: [], value: [], fileOption: '-jar' }],
];

const grammarOf = (program: string | undefined): Grammar | undefined =>
  program === undefined ? undefined : INTERPRETERS.find(([re]) => re.test(basename(program)))?.[1];

/**
 * The file an interpreter runs, from the words after its own name: the first that is no option
 * (or the value of java's -jar), undefined when the command line itself is the program.
 */
export function scriptOf(grammar: Grammar, words: readonly string[]): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (grammar.fileOption !== undefined) {
      if (w === grammar.fileOption) return words[i + 1];
      continue;
    }
    if (w === '--') return words[i + 1];
    if (grammar.stop.includes(w)) return undefined;
    if (grammar.value.includes(w)) {
      i++;
      continue;
    }
    if (w.startsWith('-') || w.startsWith('+')) continue;
    return w;
  }
  return undefined;
}

/**
 * The command line from the script on, when the process is an interpreter the kernel started for
 * a script run by its own path (`#!/usr/bin/perl` in /usr/local/bin/shop-api): its name is then
 * the script's, and running the script again, not the interpreter, gives the same name and
 * command line. Undefined for any other process.
 */
export function scriptCommand(args: string, comm: string): string | undefined {
  const words = args.split(' ').filter((w) => w !== '');
  const grammar = grammarOf(words[0]);
  if (grammar === undefined) return undefined;
  const script = scriptOf(grammar, words.slice(1));
  if (!script?.startsWith('/') || basename(script).slice(0, 15) !== comm) return undefined;
  return words.slice(words.indexOf(script, 1)).join(' ');
}

/** ExecStart= as systemd splits it: words, with "..." and '...' keeping spaces. */
export function unitWords(value: string): string[] {
  const out: string[] = [];
  let word = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quote !== undefined) {
      if (c === '\\' && i + 1 < value.length) word += value[++i];
      else if (c === quote) quote = undefined;
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord && quote === undefined) out.push(word);
  return out;
}

/** Why a path can never be an application's program; undefined when it can. */
export function programPathProblem(path: string): string | undefined {
  const problem = pathProblem(path);
  if (problem !== undefined) return problem;
  const virtual = VIRTUAL_TREES.find((t) => within(path, t));
  if (virtual !== undefined) return `lies under ${virtual}`;
  if (fileLooksSensitive(path)) return 'is named like a credential';
  if (isIdentityFile(path)) return 'is an identity file or one another part of the Profile writes';
  return undefined;
}

export interface ProgramCandidate {
  readonly path: string;
  readonly reasons: readonly string[];
  /** 0 a listening or declared process runs it, 1 an enabled service's ExecStart=, 2 a long-lived process. */
  readonly rank: number;
}

export interface ProgramInputs {
  /** The registration's own paths: a program inside one of them is snapshotted already. */
  readonly given: readonly string[];
  readonly declared: readonly string[];
  readonly table: ProcessTable;
}

class Found {
  readonly byPath = new Map<string, { reasons: string[]; rank: number }>();
  readonly malformed: string[] = [];
  readonly refused: string[] = [];
  readonly relative: string[] = [];
  readonly variable: string[] = [];

  constructor(private readonly given: readonly string[]) {}

  add(path: string, reason: string, rank: number): void {
    const grammar = pathProblem(path);
    if (grammar !== undefined) {
      this.malformed.push(`${displayValue(path)} (${reason}) ${grammar}`);
      return;
    }
    // /etc is always snapshotted, the registration's paths too.
    if (within(path, '/etc') || this.given.some((g) => within(path, g))) return;
    const problem = programPathProblem(path);
    if (problem !== undefined) {
      this.refused.push(`${shown(path)} (${reason}) ${problem}`);
      return;
    }
    const entry = this.byPath.get(path) ?? { reasons: [], rank };
    entry.rank = Math.min(entry.rank, rank);
    if (!entry.reasons.includes(reason)) entry.reasons.push(reason);
    this.byPath.set(path, entry);
  }

  /** The script an interpreter runs, when the words name one. */
  script(grammar: Grammar | undefined, words: readonly string[], reason: string, rank: number): void {
    if (grammar === undefined) return;
    const script = scriptOf(grammar, words);
    if (script === undefined) return;
    if (script.startsWith('/')) this.add(script, reason, rank);
    else this.relative.push(`${shown(script)} (${reason})`);
  }
}

/** pid → the program the kernel says it runs, from the `exe` part of the appdata section. */
function exeByPid(section: Section): Map<number, string> | undefined {
  const part = partWith(section, 'exe');
  if (part === undefined) return undefined;
  const out = new Map<number, string>();
  // Split on newlines alone: a carriage return is part of a path, not of a line's end.
  for (const line of part.text.split('\n')) {
    const tab = line.indexOf('\t');
    const pid = int(line.slice(0, tab));
    // \036 stands for a newline in the path: the grammar refuses it as a control character.
    const path = line.slice(tab + 1).replaceAll('\x1e', '\n');
    if (tab <= 0 || pid === undefined || path === '') continue;
    out.set(pid, path);
  }
  return out;
}

const whyText = (why: string): string =>
  why
    .split(',')
    .map((w) => (w === 'application' ? 'application process' : shown(w)))
    .join(', ');

/**
 * The programs a capture proposes, best first: listening and declared processes' programs and
 * scripts, enabled services' ExecStart= programs and scripts, then those of long-lived
 * processes; checked and bounded. Empty for output from a script that printed no programs.
 */
export function programCandidates(ctx: ParseContext, inputs: ProgramInputs): ProgramCandidate[] {
  const section = ctx.sections.get(AREA);
  const exes = section ? exeByPid(section) : undefined;
  if (!section || !exes) return [];
  const found = new Found(inputs.given);
  const byPid = new Map(inputs.table.processes.map((p) => [p.pid, p]));
  const seen = new Set<number>();

  const fromProcess = (pid: number, why: string, rank: number) => {
    const p = byPid.get(pid);
    // The capture's own processes are not in the table: not the host's software.
    if (p === undefined || seen.has(pid)) return;
    seen.add(pid);
    const who = `${shown(p.comm || `process ${pid}`)} (${why})`;
    const exe = exes.get(pid);
    // A program replaced since it started: the file now at its path is what starts next.
    const program = exe?.endsWith(' (deleted)') ? exe.slice(0, -' (deleted)'.length) : exe;
    // A program run from an anonymous file (memfd_create) has no file to capture.
    if (program !== undefined && !program.startsWith('/memfd:'))
      found.add(program, `program of ${who}`, rank);
    // The start command runs the process's first word, as its executor splits the command.
    const words = p.args.split(' ').filter((w) => w !== '');
    const first = words[0];
    if (first?.startsWith('/') && first !== program) found.add(first, `command of ${who}`, rank);
    found.script(grammarOf(program) ?? grammarOf(first), words.slice(1), `script ${who} runs`, rank);
  };

  for (const part of partsWith(section, 'cwd')) {
    const [, pidText, why = ''] = part.header.split(' ');
    const pid = int(pidText);
    if (pid !== undefined) fromProcess(pid, whyText(why), 0);
  }
  fromUnits(section, found);
  for (const p of [...inputs.table.processes].sort((a, b) => a.pid - b.pid)) {
    if (isLongLived(p, inputs.declared)) fromProcess(p.pid, 'long-lived', 2);
  }

  if (found.malformed.length > 0)
    ctx.unknown(
      AREA,
      `${count(found.malformed.length, 'program path')} of processes and services left out as malformed: ${sample(found.malformed)}`,
    );
  if (found.refused.length > 0)
    ctx.unknown(
      AREA,
      `${count(found.refused.length, 'program')} of processes and services not captured: ${sample(found.refused)}`,
    );
  if (found.relative.length > 0)
    ctx.unknown(
      AREA,
      `${count(found.relative.length, 'script')} named by a relative path not captured as programs (a working directory discovery finds holds them): ${sample(found.relative)}`,
    );
  if (found.variable.length > 0)
    ctx.unknown(
      AREA,
      `${count(found.variable.length, 'ExecStart= program')} that depend on the service's specifiers or environment not captured: ${sample(found.variable)}`,
    );
  const ranked = [...found.byPath]
    .map(([path, e]) => ({ path, reasons: e.reasons, rank: e.rank }))
    .sort((a, b) => a.rank - b.rank || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (ranked.length > MAX_PROGRAM_CANDIDATES)
    ctx.unknown(
      AREA,
      `${count(ranked.length - MAX_PROGRAM_CANDIDATES, 'more program')} of processes and services beyond the bound of ${MAX_PROGRAM_CANDIDATES} not looked at: ${sample(ranked.slice(MAX_PROGRAM_CANDIDATES).map((c) => shown(c.path)))}`,
    );
  return ranked.slice(0, MAX_PROGRAM_CANDIDATES);
}

/** ExecStart= of the enabled services, in the order the script read their unit and drop-ins. */
function fromUnits(section: Section, found: Found): void {
  for (const part of partsWith(section, 'unit')) {
    const unit = shown(part.header.slice('unit '.length));
    let starts: string[] = [];
    for (const line of lines(part.text)) {
      const m = /^\s*ExecStart\s*=\s*(.*?)\s*$/.exec(line);
      if (!m) continue;
      // An empty ExecStart= in a drop-in clears those before it.
      if (m[1] === '') starts = [];
      else starts.push(m[1] ?? '');
    }
    for (const start of starts) {
      const prefix = /^[@\-:+!]*/.exec(start)?.[0] ?? '';
      const words = unitWords(start.slice(prefix.length));
      const program = words[0];
      if (program === undefined) continue;
      const reason = `ExecStart of ${unit}`;
      if (/[%$]/.test(program)) {
        found.variable.push(`${displayValue(program)} (${reason})`);
        continue;
      }
      // A bare name is looked up by systemd in its own fixed folders: not guessed here.
      if (!program.startsWith('/')) continue;
      found.add(program, reason, 1);
      // "@" gives the process a name of its own as the second word.
      const args = words.slice(prefix.includes('@') ? 2 : 1);
      if (args.some((a) => /[%$]/.test(a))) continue;
      found.script(grammarOf(program), args, `script ${reason} runs`, 1);
    }
  }
}

/** What the second pass found for one candidate. */
export interface ProgramFacts {
  readonly status: 'file' | 'dir' | 'missing' | 'denied' | 'other';
  readonly bytes: number;
  /** Where it ends, readlink -f. */
  readonly real: string;
  /** The links on the way, each at its folder's real path. */
  readonly links: readonly string[];
}

/** A program's facts with its pass's answer from the package manager (undefined: not asked). */
export interface ResolvedProgram {
  readonly facts: ProgramFacts;
  readonly owners: ((path: string) => boolean) | undefined;
}

/**
 * What the passes that resolved programs found, by the path each answer is about (a later pass's
 * answer over an earlier one's). Each pass ends with the package manager's answer about every
 * path it resolved: a fact is read with its own pass's answer, never another's (rpm and apk name
 * what they do not own, so a path another pass asked about would read as owned).
 */
export function programFacts(section: Section | undefined): {
  readonly byPath: Map<string, ResolvedProgram>;
  /** Whether any pass could ask the package manager. */
  readonly asked: boolean;
} {
  const byPath = new Map<string, ResolvedProgram>();
  let asked = false;
  let pass = new Map<
    number,
    { status?: string; bytes?: number; path?: string; real?: string; links: string[] }
  >();
  const at = (i: number) => {
    const e = pass.get(i) ?? { links: [] };
    pass.set(i, e);
    return e;
  };
  const close = (owners: ((path: string) => boolean) | undefined) => {
    for (const e of pass.values()) {
      const status = (['file', 'dir', 'missing', 'denied', 'other'] as const).find((s) => s === e.status);
      if (e.path === undefined || e.real === undefined || status === undefined) continue;
      byPath.set(e.path, { facts: { status, bytes: e.bytes ?? 0, real: e.real, links: e.links }, owners });
    }
    pass = new Map();
  };
  for (const part of section?.parts ?? []) {
    const [kind, a, b, c] = part.header.split(' ');
    const i = int(a);
    if (kind === 'prog' && i !== undefined)
      Object.assign(at(i), { status: b, bytes: int(c) ?? 0, path: part.text });
    else if (kind === 'prog-real' && i !== undefined) at(i).real = part.text;
    else if (kind === 'prog-link' && i !== undefined) at(i).links.push(part.text);
    else if (kind === 'prog-bytes' && i !== undefined) at(i).bytes = int(b) ?? 0;
    else if (kind === 'owners') {
      const owners = ownersOf(a, part.text);
      if (owners !== undefined) asked = true;
      close(owners);
    }
  }
  // A pass cut short before its answer: its facts, without one.
  close(undefined);
  return { byPath, asked };
}

/** One pass's facts about the paths it was sent, and whom the package manager says owns what. */
export function parsePrograms(section: Section | undefined, sent: readonly string[]) {
  const { byPath } = programFacts(section);
  const facts = new Map<string, ProgramFacts>();
  let owners: ((path: string) => boolean) | undefined;
  for (const path of sent) {
    const r = byPath.get(path);
    if (r === undefined) continue;
    facts.set(path, r.facts);
    owners ??= r.owners;
  }
  return { facts, owners };
}

/** /usr/bin/x is /bin/x where /bin is a link to usr/bin: dpkg knows some files by one, some by the other. */
const otherName = (path: string): string | undefined => {
  const m = /^\/usr(\/(?:s?bin|lib|lib32|lib64|libx32)\/.*)$/.exec(path);
  if (m?.[1]) return m[1];
  return /^\/(?:s?bin|lib|lib32|lib64|libx32)\//.test(path) ? `/usr${path}` : undefined;
};

/**
 * Whether a package owns a path, by what the package manager answered; undefined when it could
 * not be asked. dpkg names the paths it owns ("pkg: /path", "diversion by pkg from: /path");
 * rpm and apk name those they do not, and anything else they said counts as owned.
 */
export function ownersOf(tool: string | undefined, text: string): ((path: string) => boolean) | undefined {
  const named = new Set<string>();
  const names = (path: string) => [path, otherName(path)].filter((p) => p !== undefined);
  if (tool === 'dpkg') {
    for (const line of lines(text)) {
      const sep = line.indexOf(': ');
      if (sep > 0) named.add(line.slice(sep + 2));
    }
    return (path) => names(path).some((p) => named.has(p));
  }
  const notOwned =
    tool === 'rpm'
      ? [/^file (.+) is not owned by any package$/, /^error: file (.+): No such file or directory$/]
      : tool === 'apk'
        ? [/^ERROR: (.+): Could not find owner package$/]
        : undefined;
  if (notOwned === undefined) return undefined;
  for (const line of lines(text)) {
    for (const re of notOwned) {
      const m = re.exec(line);
      if (m?.[1] !== undefined) named.add(m[1]);
    }
  }
  return (path) => !names(path).every((p) => named.has(p));
}

export interface ProgramBounds {
  readonly maxPrograms: number;
  readonly programMaxBytes: number;
}

export interface DiscoveredProgram {
  readonly path: string;
  readonly reasons: readonly string[];
  /** Its size; absent for a link. */
  readonly bytes?: number;
  /** For a link: where it ends. */
  readonly linkTo?: string;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * The programs a capture keeps, sorted by path: each candidate that ends in a regular file no
 * package owns, with the links that lead to it (a link is kept only where what it leads to is
 * captured, as a program or inside a tree). What the captured trees (`trees`: /etc, the given
 * paths, the discovered trees) hold is left to them. Every candidate left out for another reason
 * than a package owning it is named as unknown with why.
 */
export function discoveredPrograms(
  ctx: ParseContext,
  candidates: readonly ProgramCandidate[],
  trees: readonly string[],
  bounds: ProgramBounds,
): DiscoveredProgram[] {
  if (candidates.length === 0) return [];
  const section = ctx.sections.has('programs') ? ctx.section('programs') : undefined;
  const { byPath, asked } = programFacts(section);
  const resolved = candidates.filter((c) => byPath.has(c.path));
  if (resolved.length === 0 ? !asked : resolved.some((c) => byPath.get(c.path)?.owners === undefined)) {
    ctx.unknown(
      AREA,
      `which of ${count(candidates.length, 'program')} of processes and services packages own could not be told: none captured (give them with --path): ${sample(candidates.map((c) => shown(c.path)))}`,
    );
    return [];
  }
  const inTree = (p: string) => trees.some((t) => within(p, t));
  const programs = new Map<string, { reasons: string[]; bytes: number }>();
  const links = new Map<string, { reasons: string[]; to: string }>();
  const refused: string[] = [];
  const absent: string[] = [];
  const over: string[] = [];
  const beyond: string[] = [];
  for (const c of candidates) {
    const r = byPath.get(c.path);
    const f = r?.facts;
    const owners = r?.owners ?? (() => true);
    const what = `${shown(c.path)} (${c.reasons[0] ?? 'found'})`;
    if (f === undefined) {
      absent.push(`${what} was not resolved on the host`);
      continue;
    }
    // Where nothing is at the end, readlink -f says nothing: only the links are checked then.
    const leadsTo = [...f.links, f.real].find(
      (p) => p !== c.path && p !== '' && programPathProblem(p) !== undefined,
    );
    if (leadsTo !== undefined) {
      refused.push(`${what} leads to ${shown(leadsTo)}, which ${programPathProblem(leadsTo)}`);
      continue;
    }
    if (f.status !== 'file') {
      absent.push(
        `${what} ${
          f.status === 'missing'
            ? 'is not on the host (or leads nowhere)'
            : f.status === 'dir'
              ? 'is a directory'
              : f.status === 'denied'
                ? 'cannot be read: permission denied (capture as root)'
                : 'is not a regular file'
        }`,
      );
      continue;
    }
    if ([c.path, ...f.links, f.real].some(owners)) continue;
    if (!inTree(f.real)) {
      const held = programs.get(f.real);
      if (held === undefined) {
        if (f.bytes > bounds.programMaxBytes) {
          over.push(`${what} holds ${mib(f.bytes)}`);
          continue;
        }
        if (programs.size >= bounds.maxPrograms) {
          beyond.push(what);
          continue;
        }
      }
      const entry = held ?? { reasons: [], bytes: f.bytes };
      for (const r of c.reasons) if (!entry.reasons.includes(r)) entry.reasons.push(r);
      programs.set(f.real, entry);
    }
    for (const link of f.links) {
      if (inTree(link) || link === f.real) continue;
      const entry = links.get(link) ?? { reasons: [], to: f.real };
      for (const r of c.reasons) {
        const text = `link to ${shown(f.real)}: ${r}`;
        if (!entry.reasons.includes(text)) entry.reasons.push(text);
      }
      links.set(link, entry);
    }
  }
  if (refused.length > 0)
    ctx.unknown(AREA, `${count(refused.length, 'program')} not captured: ${sample(refused)}`);
  if (absent.length > 0)
    ctx.unknown(AREA, `${count(absent.length, 'program')} with nothing to capture: ${sample(absent)}`);
  if (over.length > 0)
    ctx.unknown(
      AREA,
      `${count(over.length, 'program')} over the bound of ${mib(bounds.programMaxBytes)} not snapshotted (give it with --path): ${sample(over)}`,
    );
  if (beyond.length > 0)
    ctx.unknown(
      AREA,
      `${count(beyond.length, 'more program')} beyond the bound of ${bounds.maxPrograms} not snapshotted (give them with --path): ${sample(beyond)}`,
    );
  const out: DiscoveredProgram[] = [
    ...[...programs].map(([path, e]) => ({ path, reasons: e.reasons, bytes: e.bytes })),
    ...[...links]
      .filter(([path]) => !programs.has(path))
      .map(([path, e]) => ({ path, reasons: e.reasons, linkTo: e.to })),
  ];
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
