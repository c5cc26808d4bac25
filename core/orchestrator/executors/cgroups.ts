// cgroup.set / cgroup.unset: the limits of a named cgroup through its cgroup v2 files under
// /sys/fs/cgroup (cpu.max, cpu.weight, memory.max, io.weight, pids.max), the group and the
// controllers it needs made where missing, and all of it put back on revert. A host whose
// cgroup filesystem is absent, read-only or v1 only records the Change unresolved with that
// reason: nothing is faked as limited.
//
// resource.resize: a host's CPUs and memory are the machine's; on the host they can only be
// checked (equal: unchanged; else unresolved, for the platform adaptor to resize the instance).
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';

type CgroupChange = Extract<Change, { section: 'cgroups' }>;
type Limit = NonNullable<CgroupChange['to']>;
type Field = Exclude<keyof Limit, 'path'>;

const ROOT = '/sys/fs/cgroup';

/** Each limit's file, the controller that provides it and the value the kernel starts it at. */
export const LIMIT_FILES: Readonly<Record<Field, { file: string; controller: string; initial: string }>> = {
  cpuMax: { file: 'cpu.max', controller: 'cpu', initial: 'max 100000' },
  cpuWeight: { file: 'cpu.weight', controller: 'cpu', initial: '100' },
  memoryMax: { file: 'memory.max', controller: 'memory', initial: 'max' },
  ioWeight: { file: 'io.weight', controller: 'io', initial: '100' },
  pidsMax: { file: 'pids.max', controller: 'pids', initial: 'max' },
};
const FIELDS = Object.keys(LIMIT_FILES) as Field[];

// One name of a cgroup path: what systemd and administrators use, never "." or "..", never
// starting with "-".
const SEGMENT = /^[A-Za-z0-9_@][A-Za-z0-9_.@:-]{0,254}$/;
const CPU_MAX = /^(max|[1-9][0-9]{0,18})( [1-9][0-9]{0,18})?$/;

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

/** What the Change wants of each file: its values, and the initial one for a limit it drops. */
export function wantedValues(c: CgroupChange): Partial<Record<Field, string>> {
  const out: Partial<Record<Field, string>> = {};
  for (const field of FIELDS) {
    const value = c.kind === 'cgroup.unset' ? undefined : c.to?.[field];
    if (value !== undefined) out[field] = normalised(field, written(field, value));
    else if (c.from?.[field] !== undefined) out[field] = normalised(field, LIMIT_FILES[field].initial);
  }
  return out;
}

interface CgroupState {
  readonly fs: 'v2' | 'v1' | 'absent' | 'read-only';
  /** The group's folders from the top, and whether each exists. */
  readonly folders: readonly { readonly path: string; readonly exists: boolean }[];
  /** Current values of the limit files the group has. */
  readonly values: Partial<Record<Field, string>>;
  /** Controllers enabled for the children of each ancestor (ROOT first). */
  readonly subtree: Readonly<Record<string, readonly string[]>>;
}

const folderOf = (segments: readonly string[], n: number) => `${ROOT}/${segments.slice(0, n).join('/')}`;

async function readState(transport: Transport, segments: readonly string[]): Promise<CgroupState> {
  const folders = segments.map((_, i) => folderOf(segments, i + 1));
  const ancestors = [ROOT, ...folders.slice(0, -1)];
  const group = folders.at(-1) ?? ROOT;
  const { stdout } = await runOk(
    transport,
    'reading cgroup limits',
    [
      sh`R=${ROOT}`,
      'if [ ! -f "$R/cgroup.controllers" ]; then',
      '  if [ -d "$R/cpu" ] || [ -d "$R/memory" ] || [ -d "$R/pids" ]; then echo fs v1; else echo fs absent; fi',
      '  exit 0',
      'fi',
      'if [ -w "$R/cgroup.subtree_control" ]; then echo fs v2; else echo fs read-only; fi',
      sh`for d in ${folders}; do if [ -d "$d" ]; then echo "dir $d"; fi; done`,
      sh`for a in ${ancestors}; do if [ -f "$a/cgroup.subtree_control" ]; then printf 'subtree %s ' "$a"; tr '\\n' ' ' < "$a/cgroup.subtree_control"; echo; fi; done`,
      sh`for f in ${FIELDS.map((f) => LIMIT_FILES[f].file)}; do if [ -f ${group}/"$f" ]; then printf 'file %s ' "$f"; head -n 1 ${group}/"$f"; fi; done`,
    ].join('\n'),
  );
  let fs: CgroupState['fs'] = 'absent';
  const dirs = new Set<string>();
  const values: Partial<Record<Field, string>> = {};
  const subtree: Record<string, string[]> = {};
  for (const line of stdout.split('\n')) {
    const [word, ...rest] = line.split(' ');
    const text = rest.join(' ');
    if (word === 'fs') fs = text as CgroupState['fs'];
    else if (word === 'dir') dirs.add(text);
    else if (word === 'subtree') {
      const [path, ...controllers] = rest;
      if (path !== undefined) subtree[path] = controllers.filter((x) => x !== '');
    } else if (word === 'file') {
      const field = FIELDS.find((f) => LIMIT_FILES[f].file === rest[0]);
      if (field !== undefined) values[field] = normalised(field, rest.slice(1).join(' '));
    }
  }
  return { fs, folders: folders.map((path) => ({ path, exists: dirs.has(path) })), values, subtree };
}

const NOT_WRITABLE: Record<Exclude<CgroupState['fs'], 'v2'>, string> = {
  absent: `the host has no cgroup filesystem at ${ROOT}`,
  'read-only': `${ROOT} is read-only on this host`,
  v1: 'the host has cgroup v1 hierarchies only; Persona writes cgroup v2 limits',
};

/** The commands that give `group` the values, making folders and enabling controllers first. */
function writeCommands(
  state: CgroupState,
  segments: readonly string[],
  values: Partial<Record<Field, string>>,
): string[] {
  const group = folderOf(segments, segments.length);
  const commands: string[] = [];
  for (const f of state.folders) if (!f.exists) commands.push(sh`mkdir -- ${f.path}`);
  const ancestors = [ROOT, ...state.folders.slice(0, -1).map((f) => f.path)];
  const needed = new Set(
    FIELDS.filter((f) => values[f] !== undefined && state.values[f] !== values[f]).map(
      (f) => LIMIT_FILES[f].controller,
    ),
  );
  for (const a of ancestors) {
    for (const controller of needed) {
      if (!(state.subtree[a] ?? []).includes(controller)) {
        commands.push(sh`printf '%s\\n' ${`+${controller}`} > ${`${a}/cgroup.subtree_control`}`);
      }
    }
  }
  for (const field of FIELDS) {
    const value = values[field];
    if (value === undefined || state.values[field] === value) continue;
    commands.push(sh`printf '%s\\n' ${value} > ${`${group}/${LIMIT_FILES[field].file}`}`);
  }
  return commands;
}

const describe = (values: Partial<Record<Field, string>>) =>
  FIELDS.filter((f) => values[f] !== undefined)
    .map((f) => `${LIMIT_FILES[f].file}=${values[f]}`)
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
    if (state.fs !== 'v2') return unresolved(`${c.key}: ${NOT_WRITABLE[state.fs]}`);
    const wanted = wantedValues(c);
    const differ = FIELDS.filter((f) => wanted[f] !== undefined && state.values[f] !== wanted[f]);
    if (differ.length === 0 || (c.kind === 'cgroup.unset' && state.folders.some((f) => !f.exists))) {
      return unchanged(`${c.key} has ${describe(wanted) || 'no limit the Change names'}`);
    }
    await runOk(
      ctx.transport,
      `setting the limits of ${c.key}`,
      writeCommands(state, segments, wanted).join(' &&\n'),
    );
    return changed(`${c.key}: ${describe(Object.fromEntries(differ.map((f) => [f, wanted[f]])))}`);
  },

  async revert(ctx, change, prior) {
    const { c, segments } = cgroupChange(change);
    const before = prior as CgroupState;
    if (segments.length === 0 || before.fs !== 'v2') return unchanged(`${c.key} was not changed`);
    const now = await readState(ctx.transport, segments);
    if (now.fs !== 'v2') return unchanged(`${c.key}: ${NOT_WRITABLE[now.fs]}`);
    const group = folderOf(segments, segments.length);
    const commands: string[] = [];
    if (before.folders.every((f) => f.exists)) {
      for (const field of FIELDS) {
        const value = before.values[field];
        if (value !== undefined && now.values[field] !== undefined && now.values[field] !== value) {
          commands.push(sh`printf '%s\\n' ${value} > ${`${group}/${LIMIT_FILES[field].file}`}`);
        }
      }
    } else {
      // Folders this Change made go again, deepest first; one that holds processes is refused by
      // the kernel (EBUSY), which fails the revert rather than moving them somewhere.
      for (const f of before.folders.toReversed()) {
        if (!f.exists && now.folders.find((n) => n.path === f.path)?.exists)
          commands.push(sh`rmdir -- ${f.path}`);
      }
    }
    for (const [ancestor, controllers] of Object.entries(before.subtree).toReversed()) {
      // Only ancestors that were there before: they still are (the ones made here went above).
      for (const controller of now.subtree[ancestor] ?? []) {
        if (!controllers.includes(controller)) {
          commands.push(sh`printf '%s\\n' ${`-${controller}`} > ${`${ancestor}/cgroup.subtree_control`}`);
        }
      }
    }
    if (commands.length === 0) return unchanged(`${c.key} is as it was`);
    await runOk(ctx.transport, `putting back the limits of ${c.key}`, commands.join(' &&\n'));
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
