// cgroup.set / cgroup.unset: the limits of a named cgroup, in whichever hierarchy holds each
// controller on the host: the cgroup v2 files (cpu.max, cpu.weight, memory.max, io.weight,
// pids.max) where the unified hierarchy has the controller, else the files of the cgroup v1
// hierarchy mounted for it (cpu.cfs_quota_us and cpu.cfs_period_us, cpu.shares,
// memory.limit_in_bytes, blkio.weight or blkio.bfq.weight, pids.max), converted as
// core/profile/cgroup-v1.ts says. Hierarchies are found in /proc/self/mounts, not assumed at
// /sys/fs/cgroup/<name>. The group and the controllers it needs are made where missing, and all
// of it is put back on revert, v1 files to their exact prior contents. A host where a limit has
// no writable hierarchy records the Change unresolved with that reason: nothing is faked as
// limited, and no limit of the Change is written without the others.
//
// resource.resize: a host's CPUs and memory are the machine's; on the host they can only be
// checked (equal: unchanged; else unresolved, for the platform adaptor to resize the instance).
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import {
  sharesToWeight,
  V1_IO_WEIGHT,
  V1_MEMORY_UNLIMITED,
  weightToShares,
} from '../../profile/cgroup-v1.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';

type CgroupChange = Extract<Change, { section: 'cgroups' }>;
type Limit = NonNullable<CgroupChange['to']>;
type Field = Exclude<keyof Limit, 'path'>;

/** Each limit's v2 file, the controller that provides it and the value the kernel starts it at. */
export const LIMIT_FILES: Readonly<Record<Field, { file: string; controller: string; initial: string }>> = {
  cpuMax: { file: 'cpu.max', controller: 'cpu', initial: 'max 100000' },
  cpuWeight: { file: 'cpu.weight', controller: 'cpu', initial: '100' },
  memoryMax: { file: 'memory.max', controller: 'memory', initial: 'max' },
  ioWeight: { file: 'io.weight', controller: 'io', initial: 'default 100' },
  pidsMax: { file: 'pids.max', controller: 'pids', initial: 'max' },
};
const FIELDS = Object.keys(LIMIT_FILES) as Field[];

/** The v1 hierarchy (its mount option) of each v2 controller, and each limit's v1 files. */
const V1_CONTROLLER: Readonly<Record<string, string>> = {
  cpu: 'cpu',
  memory: 'memory',
  io: 'blkio',
  pids: 'pids',
};
const V1_FILES: Readonly<Record<Field, readonly string[]>> = {
  cpuMax: ['cpu.cfs_quota_us', 'cpu.cfs_period_us'],
  cpuWeight: ['cpu.shares'],
  memoryMax: ['memory.limit_in_bytes'],
  ioWeight: ['blkio.weight', 'blkio.bfq.weight'],
  pidsMax: ['pids.max'],
};

// One name of a cgroup path: what systemd and administrators use, never "." or "..", never
// starting with "-".
const SEGMENT = /^[A-Za-z0-9_@][A-Za-z0-9_.@:-]{0,254}$/;
const CPU_MAX = /^(max|[1-9][0-9]{0,18})( [1-9][0-9]{0,18})?$/;
// A mount point Persona writes under: absolute, no "." or ".." names, none of the octal escapes
// /proc/self/mounts uses for blanks (such a hierarchy is not used rather than guessed at).
const MOUNT_POINT = /^\/([A-Za-z0-9_@+,][A-Za-z0-9_.@:+,-]*(\/[A-Za-z0-9_@+,][A-Za-z0-9_.@:+,-]*)*)?$/;

function cgroupChange(change: Change): { c: CgroupChange; segments: string[] } {
  if (change.section !== 'cgroups') throw new TypeError(`${change.kind} is not a cgroup change`);
  const segments = change.key.split('/').filter((s) => s !== '');
  const bad = segments.find((s) => !SEGMENT.test(s) || s === '.' || s === '..');
  if (!change.key.startsWith('/') || bad !== undefined) {
    throw new InvalidInputError(`cgroup ${displayValue(change.key)} is not a cgroup path`, [
      {
        path: 'key',
        message: 'expected "/" and names of letters, digits, "_", ".", "@", ":" or "-", none "." or ".."',
      },
    ]);
  }
  for (const side of ['from', 'to'] as const) {
    const cpuMax = change[side]?.cpuMax;
    if (cpuMax !== undefined && !CPU_MAX.test(cpuMax)) {
      throw new InvalidInputError(`${side}.cpuMax ${displayValue(cpuMax)} is not a cpu.max value`, [
        { path: `${side}.cpuMax`, message: 'expected "max" or a quota in microseconds, then the period' },
      ]);
    }
  }
  return { c: change, segments };
}

/** A value as its file takes it, written on a line of its own. */
function written(field: Field, value: string | number): string {
  return field === 'ioWeight' ? `default ${value}` : String(value);
}

/** A file's first line as comparable with `written` (io.weight reads "default 100"). */
function normalised(field: Field, text: string): string {
  const line = text.trim();
  if (field === 'ioWeight') return line.startsWith('default ') ? line : `default ${line}`;
  if (field === 'cpuMax' && line === 'max') return 'max 100000';
  return line;
}

/** What the Change wants of each limit: its value, or null for one it drops (the initial value). */
function wanted(c: CgroupChange): Partial<Record<Field, string | number | null>> {
  const out: Partial<Record<Field, string | number | null>> = {};
  for (const field of FIELDS) {
    const value = c.kind === 'cgroup.unset' ? undefined : c.to?.[field];
    if (value !== undefined) out[field] = value;
    else if (c.from?.[field] !== undefined) out[field] = null;
  }
  return out;
}

/** What the Change wants of each v2 file: its values, and the initial one for a limit it drops. */
export function wantedValues(c: CgroupChange): Partial<Record<Field, string>> {
  const out: Partial<Record<Field, string>> = {};
  for (const [field, value] of Object.entries(wanted(c)) as [Field, string | number | null][]) {
    out[field] = normalised(field, value === null ? LIMIT_FILES[field].initial : written(field, value));
  }
  return out;
}

/**
 * The contents of a limit's v1 files for a v2 value (null: the kernel's initial one), in the
 * order they are written, or why the value has no v1 form. `ioFile` is the I/O weight file the
 * hierarchy has.
 */
export function v1Contents(
  field: Field,
  value: string | number | null,
  ioFile?: string,
): [string, string][] | string {
  switch (field) {
    case 'cpuMax': {
      const [quota, period] = String(value ?? 'max 100000').split(' ');
      const q: [string, string] = ['cpu.cfs_quota_us', quota === 'max' ? '-1' : String(quota)];
      if (period === undefined) return [q];
      const p: [string, string] = ['cpu.cfs_period_us', period];
      // A quota is checked against the period in force: lifting it goes first, setting it last.
      return quota === 'max' ? [q, p] : [p, q];
    }
    case 'cpuWeight':
      return [['cpu.shares', String(value === null ? 1024 : weightToShares(Number(value)))]];
    case 'memoryMax':
      return [['memory.limit_in_bytes', value === null || value === 'max' ? '-1' : String(value)]];
    case 'pidsMax':
      return [['pids.max', String(value ?? 'max')]];
    case 'ioWeight': {
      const range = ioFile === undefined ? undefined : V1_IO_WEIGHT[ioFile];
      if (ioFile === undefined || range === undefined) {
        return 'the blkio hierarchy has neither blkio.weight nor blkio.bfq.weight (no CFQ or BFQ I/O scheduler)';
      }
      const weight = value === null ? range.initial : Number(value);
      if (weight < range.min || weight > range.max) {
        return `ioWeight ${weight} is outside ${ioFile}'s range ${range.min}-${range.max}`;
      }
      return [[ioFile, String(weight)]];
    }
  }
}

/** v1 files' contents read back as the v2 value they stand for (see core/profile/cgroup-v1.ts). */
export function fromV1(field: Field, contents: Readonly<Record<string, string>>): string | undefined {
  switch (field) {
    case 'cpuMax': {
      const quota = contents['cpu.cfs_quota_us'];
      const period = contents['cpu.cfs_period_us'];
      if (quota === undefined || period === undefined) return undefined;
      return `${Number(quota) < 0 ? 'max' : quota} ${period}`;
    }
    case 'cpuWeight': {
      const shares = contents['cpu.shares'];
      return shares === undefined ? undefined : String(sharesToWeight(Number(shares)));
    }
    case 'memoryMax': {
      const bytes = contents['memory.limit_in_bytes'];
      if (bytes === undefined) return undefined;
      return Number(bytes) < 0 || Number(bytes) >= V1_MEMORY_UNLIMITED ? 'max' : bytes;
    }
    case 'ioWeight': {
      const weight = contents['blkio.weight'] ?? contents['blkio.bfq.weight'];
      return weight === undefined ? undefined : `default ${weight}`;
    }
    case 'pidsMax':
      return contents['pids.max'];
  }
}

/** Two contents of a v1 file that mean the same (memory's "no limit" is -1 written, huge read). */
function sameV1(file: string, a: string | undefined, b: string | undefined): boolean {
  if (a === b) return true;
  if (file !== 'memory.limit_in_bytes' || a === undefined || b === undefined) return false;
  const unlimited = (v: string) => Number(v) < 0 || Number(v) >= V1_MEMORY_UNLIMITED;
  return unlimited(a) && unlimited(b);
}

interface Hierarchy {
  readonly version: 'v1' | 'v2';
  readonly root: string;
  readonly writable: boolean;
}

/** The hierarchy that holds each controller, from the mounts the host lists. */
export function hierarchies(mountsOutput: string): {
  any: boolean;
  byController: Readonly<Record<string, Hierarchy>>;
} {
  const byController: Record<string, Hierarchy> = {};
  let any = false;
  const v1: { h: Hierarchy; options: string[] }[] = [];
  for (const line of mountsOutput.split('\n')) {
    const [version, access, root, ...rest] = line.trim().split(' ');
    if ((version !== 'v1' && version !== 'v2') || root === undefined) continue;
    any = true;
    if (!MOUNT_POINT.test(root) || root.split('/').some((s) => s === '.' || s === '..')) continue;
    const h: Hierarchy = { version, root, writable: access === 'rw' };
    if (version === 'v2') {
      for (const controller of rest) if (byController[controller] === undefined) byController[controller] = h;
    } else {
      v1.push({ h, options: (rest[0] ?? '').split(',') });
    }
  }
  // The unified hierarchy wins a controller it has; a v1 hierarchy takes the rest.
  for (const [controller, option] of Object.entries(V1_CONTROLLER)) {
    if (byController[controller] !== undefined) continue;
    const found = v1.find((m) => m.options.includes(option));
    if (found !== undefined) byController[controller] = found.h;
  }
  return { any, byController };
}

const MOUNTS_SCRIPT = [
  // Each cgroup mount: its version, whether Persona can write it, its mount point, and (v2)
  // the controllers it has or (v1) its mount options, which name its controllers.
  'while read -r dev mp type opts rest; do',
  '  case $type in',
  '    cgroup2)',
  '      if [ -f "$mp/cgroup.controllers" ]; then',
  '        w=ro; if [ -w "$mp/cgroup.subtree_control" ]; then w=rw; fi',
  `        printf 'v2 %s %s ' "$w" "$mp"; tr '\\n' ' ' < "$mp/cgroup.controllers"; echo`,
  '      fi ;;',
  '    cgroup)',
  '      w=ro; case ",$opts," in *,rw,*) if [ -w "$mp" ]; then w=rw; fi ;; esac',
  `      printf 'v1 %s %s %s\\n' "$w" "$mp" "$opts" ;;`,
  '  esac',
  'done < /proc/self/mounts',
].join('\n');

/** Where one limit lives on this host. */
interface Placement {
  readonly hierarchy: Hierarchy;
  /** The group's folders in that hierarchy, from the top. */
  readonly folders: readonly string[];
  /** v2: the group's file; v1: the group's files (ioWeight: the one the hierarchy has). */
  readonly files: readonly string[];
}

interface CgroupState {
  /** Whether the host has any cgroup filesystem at all. */
  readonly any: boolean;
  readonly placements: Partial<Record<Field, Placement>>;
  /** Why a limit has nowhere to go, by field. */
  readonly problems: Partial<Record<Field, string>>;
  /** Folders that exist (as folders), and any that are symbolic links. */
  readonly dirs: readonly string[];
  readonly links: readonly string[];
  /** First line of each limit file that exists, by its full path. */
  readonly contents: Readonly<Record<string, string>>;
  /** Controllers enabled for the children of each v2 ancestor. */
  readonly subtree: Readonly<Record<string, readonly string[]>>;
}

const join = (root: string, rest: string) => (root === '/' ? rest : `${root}${rest}`);
const foldersUnder = (root: string, segments: readonly string[]) =>
  segments.map((_, i) => join(root, `/${segments.slice(0, i + 1).join('/')}`));

async function readState(transport: Transport, segments: readonly string[]): Promise<CgroupState> {
  const { stdout: mounts } = await runOk(transport, 'finding the cgroup hierarchies', MOUNTS_SCRIPT);
  const { any, byController } = hierarchies(mounts);
  const problems: Partial<Record<Field, string>> = {};
  const found: Partial<Record<Field, { hierarchy: Hierarchy; folders: string[] }>> = {};
  for (const field of FIELDS) {
    const controller = LIMIT_FILES[field].controller;
    const hierarchy = byController[controller];
    if (!any) problems[field] = 'the host has no cgroup filesystem mounted';
    else if (hierarchy === undefined) {
      problems[field] =
        `no cgroup hierarchy on the host holds the ${controller} controller (neither cgroup v2 nor a v1 ${V1_CONTROLLER[controller]} mount)`;
    } else if (!hierarchy.writable) problems[field] = `${hierarchy.root} is read-only on this host`;
    else found[field] = { hierarchy, folders: foldersUnder(hierarchy.root, segments) };
  }
  const folders = new Set<string>();
  const ancestors = new Set<string>();
  const files = new Set<string>();
  for (const [field, f] of Object.entries(found) as [Field, { hierarchy: Hierarchy; folders: string[] }][]) {
    for (const d of f.folders) folders.add(d);
    const group = f.folders.at(-1) ?? f.hierarchy.root;
    if (f.hierarchy.version === 'v2') {
      for (const a of [f.hierarchy.root, ...f.folders.slice(0, -1)]) ancestors.add(a);
      files.add(`${group}/${LIMIT_FILES[field].file}`);
    } else {
      for (const name of V1_FILES[field]) files.add(`${group}/${name}`);
      if (field === 'ioWeight') {
        // Which weight file a group will have shows in its nearest existing ancestor; at the
        // root BFQ has no weight of its own, only its statistics.
        for (const d of f.folders.slice(0, -1))
          for (const name of V1_FILES.ioWeight) files.add(`${d}/${name}`);
        files.add(`${f.hierarchy.root}/blkio.weight`);
        files.add(`${f.hierarchy.root}/blkio.bfq.io_serviced`);
      }
    }
  }
  const script = [
    sh`for d in ${[...folders]}; do if [ -L "$d" ]; then echo "link $d"; elif [ -d "$d" ]; then echo "dir $d"; fi; done`,
    sh`for a in ${[...ancestors]}; do if [ -f "$a/cgroup.subtree_control" ]; then printf 'subtree %s ' "$a"; tr '\\n' ' ' < "$a/cgroup.subtree_control"; echo; fi; done`,
    sh`for f in ${[...files]}; do if [ -f "$f" ] && [ ! -L "$f" ]; then printf 'file %s ' "$f"; head -n 1 -- "$f"; fi; done`,
  ];
  const { stdout } =
    folders.size === 0
      ? { stdout: '' }
      : await runOk(transport, 'reading cgroup limits', `: cgroup limits\n${script.join('\n')}`);
  const dirs: string[] = [];
  const links: string[] = [];
  const contents: Record<string, string> = {};
  const subtree: Record<string, string[]> = {};
  for (const line of stdout.split('\n')) {
    const [word, path, ...rest] = line.split(' ');
    if (path === undefined) continue;
    if (word === 'dir') dirs.push(path);
    else if (word === 'link') links.push(path);
    else if (word === 'subtree') subtree[path] = rest.filter((x) => x !== '');
    else if (word === 'file') contents[path] = rest.join(' ').trim();
  }
  const placements: Partial<Record<Field, Placement>> = {};
  for (const [field, f] of Object.entries(found) as [Field, { hierarchy: Hierarchy; folders: string[] }][]) {
    const group = f.folders.at(-1) ?? f.hierarchy.root;
    if (f.hierarchy.version === 'v2') {
      placements[field] = { ...f, files: [`${group}/${LIMIT_FILES[field].file}`] };
    } else if (field !== 'ioWeight') {
      placements[field] = { ...f, files: V1_FILES[field].map((n) => `${group}/${n}`) };
    } else {
      const ioFile = v1IoFile(f.hierarchy.root, f.folders, contents);
      if (ioFile === undefined) {
        problems[field] = v1Contents('ioWeight', null) as string;
      } else placements[field] = { ...f, files: [`${group}/${ioFile}`] };
    }
  }
  return { any, placements, problems, dirs, links, contents, subtree };
}

function v1IoFile(
  root: string,
  folders: readonly string[],
  contents: Readonly<Record<string, string>>,
): string | undefined {
  for (const d of folders.toReversed()) {
    for (const name of V1_FILES.ioWeight) if (contents[`${d}/${name}`] !== undefined) return name;
  }
  if (contents[`${root}/blkio.weight`] !== undefined) return 'blkio.weight';
  if (contents[`${root}/blkio.bfq.io_serviced`] !== undefined) return 'blkio.bfq.weight';
  return undefined;
}

const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/** A limit's present value in the v2 vocabulary, read from wherever it lives. */
function currentValue(state: CgroupState, field: Field): string | undefined {
  const p = state.placements[field];
  if (p === undefined) return undefined;
  if (p.hierarchy.version === 'v2') {
    const text = state.contents[p.files[0] ?? ''];
    return text === undefined ? undefined : normalised(field, text);
  }
  const byName: Record<string, string> = {};
  for (const f of p.files) {
    const text = state.contents[f];
    if (text !== undefined) byName[base(f)] = text;
  }
  return fromV1(field, byName);
}

/** One file to write: its full path and contents. */
type Write = readonly [string, string];

/** The writes that give a limit its wanted value, none if it has it; or why it cannot. */
function writesFor(state: CgroupState, field: Field, value: string | number | null): Write[] | string {
  const p = state.placements[field];
  if (p === undefined) return state.problems[field] ?? `no cgroup hierarchy holds ${field}`;
  const group = p.folders.at(-1) ?? p.hierarchy.root;
  if (p.hierarchy.version === 'v2') {
    const text = normalised(field, value === null ? LIMIT_FILES[field].initial : written(field, value));
    return currentValue(state, field) === text ? [] : [[`${group}/${LIMIT_FILES[field].file}`, text]];
  }
  const contents = v1Contents(field, value, field === 'ioWeight' ? base(p.files[0] ?? '') : undefined);
  if (typeof contents === 'string') return contents;
  const writes = contents.map(([name, text]): Write => [`${group}/${name}`, text]);
  return writes.every(([path, text]) => sameV1(base(path), state.contents[path], text)) ? [] : writes;
}

const write = ([path, text]: Write) => sh`printf '%s\\n' ${text} > ${path}`;

/** The commands that make the missing folders and enable the v2 controllers the writes need. */
function prepareCommands(state: CgroupState, fields: readonly Field[]): string[] {
  const commands: string[] = [];
  const made = new Set<string>();
  for (const field of fields) {
    const p = state.placements[field];
    if (p === undefined) continue;
    for (const d of p.folders) {
      if (!state.dirs.includes(d) && !made.has(d)) {
        made.add(d);
        commands.push(sh`mkdir -- ${d}`);
      }
    }
  }
  const enabled = new Set<string>();
  for (const field of fields) {
    const p = state.placements[field];
    if (p === undefined || p.hierarchy.version !== 'v2') continue;
    const controller = LIMIT_FILES[field].controller;
    for (const a of [p.hierarchy.root, ...p.folders.slice(0, -1)]) {
      const key = `${a} ${controller}`;
      if (!(state.subtree[a] ?? []).includes(controller) && !enabled.has(key)) {
        enabled.add(key);
        commands.push(sh`printf '%s\\n' ${`+${controller}`} > ${`${a}/cgroup.subtree_control`}`);
      }
    }
  }
  return commands;
}

const describeWrites = (state: CgroupState, fields: readonly Field[]) =>
  fields
    .map((f) => {
      const p = state.placements[f];
      return `${LIMIT_FILES[f].file}=${currentValue(state, f)}${p?.hierarchy.version === 'v1' ? ` (${p.files.map(base).join(', ')})` : ''}`;
    })
    .join(', ');

export const cgroupExecutor: Executor = {
  kinds: ['cgroup.set', 'cgroup.unset'],

  async prepare(ctx, change) {
    return readState(ctx.transport, cgroupChange(change).segments);
  },

  async apply(ctx, change) {
    const { c, segments } = cgroupChange(change);
    if (segments.length === 0) return unresolved('the root cgroup has no limits of its own');
    const state = await readState(ctx.transport, segments);
    if (!state.any) return unresolved(`${c.key}: the host has no cgroup filesystem mounted`);
    const want = wanted(c);
    const fields = FIELDS.filter((f) => want[f] !== undefined);
    if (state.links.length > 0) {
      return unresolved(
        `${c.key}: ${state.links.join(', ')} is a symbolic link, not a cgroup; nothing is written through it`,
      );
    }
    const missing = fields.some((f) => {
      return state.placements[f]?.folders.some((d) => !state.dirs.includes(d)) ?? false;
    });
    if (c.kind === 'cgroup.unset' && missing) {
      return unchanged(`${c.key} has no limit the Change names (the group is not there)`);
    }
    const writes: Write[] = [];
    const problems: string[] = [];
    const differ: Field[] = [];
    for (const f of fields) {
      const w = writesFor(state, f, want[f] ?? null);
      if (typeof w === 'string') problems.push(`${f}: ${w}`);
      else if (w.length > 0) {
        writes.push(...w);
        differ.push(f);
      }
    }
    if (problems.length > 0) return unresolved(`${c.key}: ${problems.join('; ')}`);
    if (differ.length === 0) {
      return unchanged(`${c.key} has ${describeWrites(state, fields) || 'no limit the Change names'}`);
    }
    await runOk(
      ctx.transport,
      `setting the limits of ${c.key}`,
      [...prepareCommands(state, differ), ...writes.map(write)].join(' &&\n'),
    );
    const after = await readState(ctx.transport, segments);
    return changed(`${c.key}: ${describeWrites(after, differ)}`);
  },

  async revert(ctx, change, prior) {
    const { c, segments } = cgroupChange(change);
    const before = prior as CgroupState;
    if (segments.length === 0 || !before.any) return unchanged(`${c.key} was not changed`);
    const now = await readState(ctx.transport, segments);
    if (now.links.length > 0)
      return unchanged(`${c.key}: ${now.links.join(', ')} is a symbolic link; left alone`);
    const commands: string[] = [];
    const removed = new Set<string>();
    for (const field of FIELDS) {
      const p = before.placements[field];
      if (p === undefined || now.placements[field] === undefined) continue;
      if (p.folders.every((d) => before.dirs.includes(d))) {
        const files = p.files.filter(
          (f) => before.contents[f] !== undefined && now.contents[f] !== undefined,
        );
        // The v1 CPU quota is lifted before its period changes and set after it, as on apply.
        const ordered = files.toSorted((a, b) => {
          const lifted = (f: string) => base(f) === 'cpu.cfs_quota_us' && Number(before.contents[f]) < 0;
          return Number(lifted(b)) - Number(lifted(a));
        });
        for (const f of ordered) {
          const was = before.contents[f] as string;
          if (sameV1(base(f), was, now.contents[f])) continue;
          const text = base(f) === 'memory.limit_in_bytes' && sameV1(base(f), was, '-1') ? '-1' : was;
          commands.push(write([f, text]));
        }
      } else {
        // Folders this Change made go again, deepest first; one that holds processes is refused
        // by the kernel (EBUSY), which fails the revert rather than moving them somewhere.
        for (const d of p.folders.toReversed()) {
          if (!before.dirs.includes(d) && now.dirs.includes(d) && !removed.has(d)) {
            removed.add(d);
            commands.push(sh`rmdir -- ${d}`);
          }
        }
      }
    }
    const rmdirs = commands.filter((x) => x.startsWith('rmdir'));
    const others = commands.filter((x) => !x.startsWith('rmdir'));
    // Deepest folders first across hierarchies too.
    rmdirs.sort((a, b) => b.length - a.length);
    const subtree: string[] = [];
    for (const [ancestor, controllers] of Object.entries(before.subtree).toReversed()) {
      // Only ancestors that were there before: they still are (the ones made here went above).
      for (const controller of now.subtree[ancestor] ?? []) {
        if (!controllers.includes(controller)) {
          subtree.push(sh`printf '%s\\n' ${`-${controller}`} > ${`${ancestor}/cgroup.subtree_control`}`);
        }
      }
    }
    const all = [...others, ...rmdirs, ...subtree];
    if (all.length === 0) return unchanged(`${c.key} is as it was`);
    await runOk(ctx.transport, `putting back the limits of ${c.key}`, all.join(' &&\n'));
    return changed(`${c.key} put back as it was`);
  },
};

type ResourceChange = Extract<Change, { section: 'resources' }>;

async function hostResources(transport: Transport): Promise<{ cpus: number; memoryBytes: number }> {
  const { stdout } = await runOk(
    transport,
    'reading the CPUs and memory',
    `getconf _NPROCESSORS_ONLN; sed -n 's/^MemTotal: *\\([0-9]*\\) kB$/\\1/p' /proc/meminfo`,
  );
  const [cpus, kib] = stdout.split('\n').map((l) => Number(l.trim()));
  return { cpus: cpus ?? Number.NaN, memoryBytes: (kib ?? Number.NaN) * 1024 };
}

/** resource.resize: the machine's own size, checked; what the host cannot change is said so. */
export const resourceExecutor: Executor = {
  kinds: ['resource.resize'],

  async prepare() {
    return null;
  },

  async apply(ctx, change) {
    if (change.section !== 'resources') throw new TypeError(`${change.kind} is not a resource change`);
    const c = change as ResourceChange;
    if (c.to === null) return unchanged(`the Profile says nothing of ${c.key}: the host keeps its own`);
    if (c.key === 'cpu') {
      const { cpus } = await hostResources(ctx.transport);
      const quota = c.to.quotaMillicores;
      if (cpus === c.to.count && quota === undefined) return unchanged(`the host has ${cpus} CPUs`);
      return unresolved(
        cpus === c.to.count
          ? `a host-wide CPU quota (${quota} millicores) has no cgroup to hold it; the processes' cgroups carry their own`
          : `the host has ${cpus} CPUs, not ${c.to.count}: a machine's size changes with its instance (instance.resize), not on the host`,
      );
    }
    if (c.key === 'memory') {
      const { memoryBytes } = await hostResources(ctx.transport);
      if (memoryBytes === c.to.bytes) return unchanged(`the host has ${memoryBytes} bytes of memory`);
      return unresolved(
        `the host has ${memoryBytes} bytes of memory, not ${c.to.bytes}: a machine's size changes with its instance (instance.resize), not on the host`,
      );
    }
    return unresolved(
      c.key === 'io'
        ? 'a host-wide I/O class is not applied yet: each process keeps the class it is started with'
        : 'bandwidth limits are not applied yet (no traffic shaping on the host)',
    );
  },

  async revert(_ctx, change) {
    return unchanged(`${change.key}: nothing was changed on the host`);
  },
};
