// Application data discovery: the trees an application runs from or serves, so that a host
// captured without --path still has its content in the snapshot. The script prints raw material
// (the `appdata` section: working directories and folders of open files of listening and
// declared processes, web server configuration lines, WorkingDirectory= of enabled services);
// here it becomes a short list of candidate trees, each checked against the path grammar, outside
// the system's own trees and with why it was found. A second pass of the script measures the
// candidates (`treesize`); the trees that fit its bound, none inside another, are the result.
//
// Everything here is data from the host: a path that is relative, holds ".." or a control
// character, or is too long is dropped and named as unknown, never sent anywhere.

import { pathProblem } from '../../transport/paths.js';
import { displayValue } from '../../transport/shell.js';
import { lines, partsWith, type Section } from '../sections.js';
import { count, int, type ParseContext, sample } from './context.js';

const AREA = 'appdata';

/**
 * Trees that are the system's, not an application's: virtual filesystems, scratch space, logs and
 * caches, what packages install (the clone installs the packages), /etc (always snapshotted) and
 * the package managers' and Persona's own state.
 */
export const SYSTEM_TREES: readonly string[] = [
  '/proc',
  '/sys',
  '/dev',
  '/run',
  '/var/run',
  '/var/lock',
  '/tmp',
  '/var/tmp',
  '/var/log',
  '/var/cache',
  '/usr',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/bin',
  '/sbin',
  '/boot',
  '/etc',
  '/lost+found',
  '/var/lib/dpkg',
  '/var/lib/apt',
  '/var/lib/rpm',
  '/var/lib/dnf',
  '/var/lib/yum',
  '/var/lib/systemd',
  '/var/lib/persona',
];

/**
 * Folders that hold many trees, never one: a daemon that runs from "/" or a shell left in /root
 * says nothing about where an application keeps its data. People's homes (of users with a login
 * shell) are added per host.
 */
export const NOT_WHOLE_TREES: readonly string[] = ['/', '/root', '/home', '/var', '/var/lib', '/var/spool'];

/** Folders of open files taken per process; a process holding files in more is named. */
export const MAX_FOLDERS_PER_PROCESS = 64;
/** How deep includes are followed in a web server's configuration. */
const MAX_INCLUDE_DEPTH = 16;

/** Why a tree was found: what says so, and the folder it named when a larger tree holds it. */
interface Reason {
  readonly text: string;
  readonly at: string;
}

export interface TreeCandidate {
  readonly path: string;
  readonly reasons: readonly Reason[];
  /**
   * How strongly it speaks for application data: 0 a configuration names it (document root,
   * WorkingDirectory=), 1 a process works in it, 2 a process holds files open in it.
   */
  readonly rank: number;
}

export interface DiscoveryInputs {
  /** The registration's own paths: a tree inside one of them is already snapshotted. */
  readonly given: readonly string[];
  readonly maxTrees: number;
}

/** What the second pass found for one tree. */
export interface TreeMeasure {
  readonly status: 'ok' | 'over' | 'missing' | 'symlink' | 'denied' | 'timeout' | 'unmeasured';
  readonly kib: number;
}

export interface DiscoveredTree {
  readonly path: string;
  readonly reasons: readonly string[];
  /** Disk usage as `du -s` measured it. */
  readonly bytes: number;
}

/** Host text in a reason or message: plain when it is printable ASCII, else escaped and quoted. */
const shown = (s: string): string => (/^[\x20-\x7e]*$/.test(s) ? s : displayValue(s));

const within = (path: string, tree: string): boolean => path === tree || path.startsWith(`${tree}/`);

/** A directory path as configuration writes it, trailing slashes taken off ("/var/www/"). */
const trimSlashes = (p: string): string => (p.length > 1 ? p.replace(/\/+$/, '') || '/' : p);

/** The homes of users who log in, from the passwd text of the `users` section. */
function loginHomes(ctx: ParseContext): string[] {
  const passwd = ctx.sections.get('users')?.parts[0]?.text ?? '';
  const homes: string[] = [];
  for (const line of lines(passwd)) {
    const f = line.split(':');
    const home = f[5];
    const shell = f[6] ?? '';
    if (home === undefined || home === '' || /(nologin|false|sync|shutdown|halt)$/.test(shell)) continue;
    homes.push(trimSlashes(home));
  }
  return homes;
}

/** Process names by pid, from the `comm` part of the processes section. */
function commsByPid(ctx: ParseContext): Map<number, string> {
  const out = new Map<number, string>();
  for (const part of partsWith(ctx.sections.get('processes'), 'comm')) {
    for (const line of lines(part.text)) {
      const m = /^\/proc\/(\d+)\/comm:(.*)$/.exec(line);
      const pid = int(m?.[1]);
      if (pid !== undefined && m?.[2] !== undefined && !out.has(pid)) out.set(pid, m[2]);
    }
  }
  return out;
}

class Candidates {
  readonly byPath = new Map<string, { reasons: Reason[]; rank: number }>();
  readonly dropped: string[] = [];

  constructor(
    private readonly ctx: ParseContext,
    private readonly excluded: (path: string) => boolean,
  ) {}

  /** Takes `value` as a tree if it is a well-formed path outside the system's trees. */
  add(value: string, reason: string, rank: number, origin: string): void {
    const problem = pathProblem(value);
    if (problem !== undefined) {
      // "/" itself is where most daemons run: not odd, just not a tree.
      if (value !== '/') this.dropped.push(`${displayValue(value)} (${origin}) ${problem}`);
      return;
    }
    if (this.excluded(value)) return;
    const entry = this.byPath.get(value) ?? { reasons: [], rank };
    entry.rank = Math.min(entry.rank, rank);
    if (!entry.reasons.some((r) => r.text === reason)) entry.reasons.push({ text: reason, at: value });
    this.byPath.set(value, entry);
  }

  refuse(message: string): void {
    this.ctx.unknown(AREA, message);
  }
}

const whyText = (why: string): string =>
  why
    .split(',')
    .map((w) => (w === 'application' ? 'application process' : w === 'listening' ? 'listening' : shown(w)))
    .join(', ');

function fromProcesses(ctx: ParseContext, section: Section, found: Candidates): void {
  const comms = commsByPid(ctx);
  const who = (pid: number, why: string) => `${shown(comms.get(pid) ?? `process ${pid}`)} (${whyText(why)})`;
  for (const part of partsWith(section, 'cwd')) {
    const [, pidText, why = ''] = part.header.split(' ');
    const pid = int(pidText);
    if (pid === undefined) continue;
    // readlink ends the path with one newline of its own; any other is the path's.
    const path = part.text.endsWith('\n') ? part.text.slice(0, -1) : part.text;
    found.add(path, `working directory of ${who(pid, why)}`, 1, `working directory of process ${pid}`);
  }
  for (const part of partsWith(section, 'fd')) {
    const [, pidText, why = '', openText] = part.header.split(' ');
    const pid = int(pidText);
    if (pid === undefined) continue;
    const folders = lines(part.text);
    if (folders.length > MAX_FOLDERS_PER_PROCESS) {
      found.refuse(
        `${who(pid, why)} holds ${int(openText) ?? 'many'} files open in more than ${MAX_FOLDERS_PER_PROCESS} folders: only the first ${MAX_FOLDERS_PER_PROCESS} are looked at`,
      );
    }
    for (const folder of folders.slice(0, MAX_FOLDERS_PER_PROCESS)) {
      // A file right under "/" leaves an empty folder name: "/" is not a tree.
      if (folder === '') continue;
      found.add(folder, `files held open by ${who(pid, why)}`, 2, `folder of files open in process ${pid}`);
    }
  }
}

/** `*`, `?` and `[...]` as glob(3) reads them in one name, as a regular expression. */
export function globPattern(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negated = body.startsWith('!') || body.startsWith('^');
      if (negated) body = body.slice(1);
      re += `[${negated ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

interface ConfigFiles {
  /** The server's directory (/etc/nginx): includes are followed only inside it. */
  readonly base: string;
  /** What a relative include is relative to; undefined when that is outside `base`. */
  readonly relativeTo: string | undefined;
  readonly files: ReadonlyMap<string, string>;
  readonly server: string;
}

/**
 * The files an include names, in the order glob(3) gives them (sorted), among those the script
 * printed. A directory (Apache) means every file under it.
 */
function expandInclude(conf: ConfigFiles, pattern: string, from: string, found: Candidates): string[] {
  if (!pattern.startsWith('/') && conf.relativeTo === undefined) {
    found.refuse(
      `${conf.server} include ${displayValue(pattern)} in ${shown(from)} is relative to a root outside ${conf.base}: not followed`,
    );
    return [];
  }
  const full = trimSlashes(pattern.startsWith('/') ? pattern : `${conf.relativeTo}/${pattern}`);
  const problem = pathProblem(full);
  if (problem !== undefined) {
    found.refuse(
      `${conf.server} include ${displayValue(pattern)} in ${shown(from)} ${problem}: not followed`,
    );
    return [];
  }
  if (!full.startsWith(`${conf.base}/`)) {
    found.refuse(
      `${conf.server} include ${displayValue(pattern)} in ${shown(from)} is outside ${conf.base}: not followed`,
    );
    return [];
  }
  const names = [...conf.files.keys()].sort();
  const re = globPattern(full);
  const matched = names.filter((n) => re.test(n));
  if (matched.length > 0 || /[*?[]/.test(full)) return matched;
  return names.filter((n) => n.startsWith(`${full}/`));
}

/** nginx tokens of one line: the simple directives it ends (`root /srv;`), block openers dropped. */
export function nginxDirectives(line: string): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let token = '';
  let inToken = false;
  let quote: string | undefined;
  const endToken = () => {
    if (inToken) current.push(token);
    token = '';
    inToken = false;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      const n = line[++i] as string;
      token += quote === undefined ? n : n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n;
      inToken = true;
    } else if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else token += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inToken = true;
    } else if (c === '#' && !inToken) {
      break;
    } else if (/\s/.test(c)) {
      endToken();
    } else if (c === ';') {
      endToken();
      if (current.length > 0) out.push(current);
      current = [];
    } else if (c === '{' || c === '}') {
      endToken();
      current = [];
    } else {
      token += c;
      inToken = true;
    }
  }
  // A directive not ended on its line (or an unclosed quote) is left out: nothing is guessed.
  return out;
}

/**
 * Apache's directive and first argument on one line (`DocumentRoot "/var/www/html"`), the
 * directive in lower case.
 */
export function apacheDirective(line: string): [string, string] | undefined {
  const m = /^\s*([A-Za-z]+)\s+(.*?)\s*$/.exec(line);
  if (!m?.[1] || m[2] === undefined) return undefined;
  const rest = m[2];
  let arg: string;
  if (rest.startsWith('"')) {
    const q = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
    if (!q) return undefined;
    arg = (q[1] ?? '').replace(/\\(.)/g, '$1');
  } else {
    arg = rest.split(/\s+/)[0] ?? '';
  }
  return [m[1].toLowerCase(), arg];
}

function documentRoot(
  found: Candidates,
  server: string,
  directive: string,
  value: string,
  file: string,
): void {
  if (value.includes('$')) {
    found.refuse(
      `${server} ${directive} ${displayValue(value)} in ${shown(file)} uses a variable: not followed`,
    );
    return;
  }
  found.add(
    trimSlashes(value),
    `${server} ${directive} in ${shown(file)}`,
    0,
    `${server} ${directive} in ${shown(file)}`,
  );
}

function configFiles(section: Section, kind: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const part of partsWith(section, kind)) files.set(part.header.slice(kind.length + 1), part.text);
  return files;
}

function fromNginx(section: Section, found: Candidates): void {
  const conf: ConfigFiles = {
    base: '/etc/nginx',
    relativeTo: '/etc/nginx',
    files: configFiles(section, 'nginx'),
    server: 'nginx',
  };
  const start = '/etc/nginx/nginx.conf';
  if (!conf.files.has(start)) return;
  const visited = new Set<string>();
  const visit = (file: string, depth: number) => {
    if (visited.has(file)) return;
    if (depth > MAX_INCLUDE_DEPTH) {
      found.refuse(`nginx includes nest deeper than ${MAX_INCLUDE_DEPTH} at ${shown(file)}: not followed`);
      return;
    }
    visited.add(file);
    for (const line of lines(conf.files.get(file) ?? '')) {
      for (const [name, ...args] of nginxDirectives(line)) {
        if (args.length !== 1 || args[0] === undefined) continue;
        if (name === 'root') documentRoot(found, 'nginx', 'root', args[0], file);
        else if (name === 'include')
          for (const f of expandInclude(conf, args[0], file, found)) visit(f, depth + 1);
      }
    }
  };
  visit(start, 0);
}

function fromApache(section: Section, found: Candidates): void {
  const all = configFiles(section, 'apache');
  for (const [base, start] of [
    ['/etc/apache2', '/etc/apache2/apache2.conf'],
    ['/etc/httpd', '/etc/httpd/conf/httpd.conf'],
  ] as const) {
    if (!all.has(start)) continue;
    const files = new Map([...all].filter(([f]) => f.startsWith(`${base}/`)));
    let conf: ConfigFiles = { base, relativeTo: base, files, server: 'Apache' };
    const visited = new Set<string>();
    const visit = (file: string, depth: number) => {
      if (visited.has(file) || depth > MAX_INCLUDE_DEPTH) return;
      visited.add(file);
      for (const line of lines(files.get(file) ?? '')) {
        const d = apacheDirective(line);
        if (!d) continue;
        const [name, arg] = d;
        if (name === 'documentroot') documentRoot(found, 'Apache', 'DocumentRoot', arg, file);
        else if (name === 'include' || name === 'includeoptional')
          for (const f of expandInclude(conf, arg, file, found)) visit(f, depth + 1);
        else if (name === 'serverroot')
          // Relative includes are read from the ServerRoot: followed only when it is `base`.
          conf = { ...conf, relativeTo: trimSlashes(arg) === base ? base : undefined };
      }
    };
    visit(start, 0);
  }
}

function fromUnits(section: Section, found: Candidates): void {
  for (const part of partsWith(section, 'unit')) {
    const unit = part.header.slice('unit '.length);
    let value: string | undefined;
    for (const line of lines(part.text)) {
      const m = /^\s*WorkingDirectory\s*=\s*(.*?)\s*$/.exec(line);
      if (m) value = m[1] === '' ? undefined : m[1];
    }
    if (value === undefined) continue;
    // "-" only says a missing directory is not an error.
    const path = value.startsWith('-') ? value.slice(1) : value;
    if (path === '~' || path.includes('%')) {
      found.refuse(
        `WorkingDirectory ${displayValue(value)} of ${shown(unit)} depends on the service's user or instance: not followed`,
      );
      continue;
    }
    found.add(
      trimSlashes(path),
      `WorkingDirectory of ${shown(unit)}`,
      1,
      `WorkingDirectory of ${shown(unit)}`,
    );
  }
}

/**
 * The candidate trees of a capture, best first: checked, outside the system's trees and the
 * registration's paths, at most `maxTrees` (the rest named as unknown). Empty for output from a
 * script that had no `appdata` section.
 */
export function treeCandidates(ctx: ParseContext, inputs: DiscoveryInputs): TreeCandidate[] {
  if (!ctx.sections.has(AREA)) return [];
  const section = ctx.section(AREA);
  if (!section) return [];
  const wholes = new Set([...NOT_WHOLE_TREES, ...loginHomes(ctx)]);
  const excluded = (path: string) =>
    wholes.has(path) ||
    SYSTEM_TREES.some((t) => within(path, t)) ||
    inputs.given.some((g) => within(path, trimSlashes(g)));
  const found = new Candidates(ctx, excluded);
  fromProcesses(ctx, section, found);
  fromNginx(section, found);
  fromApache(section, found);
  fromUnits(section, found);
  if (found.dropped.length > 0) {
    ctx.unknown(
      AREA,
      `${count(found.dropped.length, 'path')} found for application data left out as malformed: ${sample(found.dropped)}`,
    );
  }
  const ranked = [...found.byPath]
    .map(([path, e]) => ({ path, reasons: e.reasons, rank: e.rank }))
    .sort((a, b) => a.rank - b.rank || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (ranked.length > inputs.maxTrees) {
    ctx.unknown(
      AREA,
      `${count(ranked.length - inputs.maxTrees, 'more tree')} found for application data beyond the bound of ${inputs.maxTrees}: not snapshotted (give them with --path): ${sample(ranked.slice(inputs.maxTrees).map((c) => shown(c.path)))}`,
    );
  }
  return ranked.slice(0, inputs.maxTrees);
}

const STATUSES = new Set<TreeMeasure['status']>([
  'ok',
  'over',
  'missing',
  'symlink',
  'denied',
  'timeout',
  'unmeasured',
]);

/** The second pass's `treesize` lines: status, KiB, path (the path last: it may hold a tab). */
export function parseTreeSizes(section: Section | undefined): Map<string, TreeMeasure> {
  const out = new Map<string, TreeMeasure>();
  for (const line of lines(section?.parts[0]?.text ?? '')) {
    const [status, kibText, ...rest] = line.split('\t');
    const kib = int(kibText);
    if (!STATUSES.has(status as TreeMeasure['status']) || kib === undefined || rest.length === 0) continue;
    out.set(rest.join('\t'), { status: status as TreeMeasure['status'], kib });
  }
  return out;
}

const size = (kib: number): string =>
  kib >= 1024 * 1024 ? `${(kib / 1024 / 1024).toFixed(1)} GiB` : `${(kib / 1024).toFixed(1)} MiB`;

export interface TreeBounds {
  readonly treeMaxBytes: number;
  readonly treeDuTimeoutSeconds: number;
}

/**
 * The discovered trees: candidates the second pass measured within the bound, none inside
 * another (its reasons go to the tree that holds it), sorted by path. Every candidate left out,
 * and not inside a tree that is kept, is named as unknown with why.
 */
export function discoveredTrees(
  ctx: ParseContext,
  candidates: readonly TreeCandidate[],
  bounds: TreeBounds,
): DiscoveredTree[] {
  if (candidates.length === 0) return [];
  const sizes = ctx.sections.has('treesize')
    ? parseTreeSizes(ctx.section('treesize'))
    : new Map<string, TreeMeasure>();
  const fits = candidates.filter((c) => sizes.get(c.path)?.status === 'ok');
  const kept = fits
    .filter((c) => !fits.some((o) => o.path !== c.path && within(c.path, o.path)))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const reasons = new Map(kept.map((k) => [k.path, [] as string[]]));
  for (const c of candidates) {
    const holder = kept.find((k) => within(c.path, k.path));
    if (holder) {
      const list = reasons.get(holder.path) ?? [];
      for (const r of c.reasons) {
        const text = r.at === holder.path ? r.text : `${r.text} (in ${shown(r.at)})`;
        if (!list.includes(text)) list.push(text);
      }
      continue;
    }
    const m = sizes.get(c.path);
    const tree = shown(c.path);
    const why = c.reasons.map((r) => r.text);
    const found = `found as ${why.slice(0, 2).join('; ')}`;
    switch (m?.status) {
      case 'over':
        ctx.unknown(
          AREA,
          `${tree} (${found}) holds ${size(m.kib)}, over the bound of ${size(bounds.treeMaxBytes / 1024)} for a discovered tree: not snapshotted (give it with --path to snapshot it)`,
        );
        break;
      case 'symlink':
        ctx.unknown(
          AREA,
          `${tree} (${found}) is a symbolic link: not followed (give its target with --path)`,
        );
        break;
      case 'missing':
        ctx.unknown(AREA, `${tree} (${found}) is not a directory on the host: nothing to snapshot`);
        break;
      case 'denied':
        ctx.unknown(
          AREA,
          `${tree} (${found}) cannot be read: permission denied (capture as root): not snapshotted`,
        );
        break;
      case 'timeout':
        ctx.unknown(
          AREA,
          `${tree} (${found}) could not be measured within ${bounds.treeDuTimeoutSeconds} s: not snapshotted (give it with --path to snapshot it)`,
        );
        break;
      default:
        ctx.unknown(AREA, `${tree} (${found}) could not be measured: not snapshotted`);
    }
  }
  return kept.map((k) => ({
    path: k.path,
    reasons: reasons.get(k.path) ?? [],
    bytes: (sizes.get(k.path)?.kib ?? 0) * 1024,
  }));
}
