// process.add and process.remove: the long-lived processes of a host, as the Profile names them.
//
// An added process that already runs (a service Change before it started it, or an earlier
// apply) is left alone. One that does not is started from its start command (the Change's
// `start`, which the diff fills from the Profile): detached in a session of its own, stdio on
// /dev/null, as its user, in its working directory, with exactly its environment — the script
// that starts it goes to `sh` on standard input, every value a quoted word exported by that
// shell, so no value is ever part of a command line the host's process list shows (only the
// name and value of a variable no shell can export, which just a process's own environ can
// hold, go to `env`'s arguments). Every process it started is written, pid and kernel start time, to the
// operation's backup folder on the host before anything else happens, so revert (even after the
// control side died) stops exactly those and never a process that took a reused pid.
//
// A removed process is stopped (TERM, then KILL after ten seconds); its command line, environment
// and working directory are kept in the backup folder (root only, never journaled: they may hold
// secrets), and revert starts it again from them.
import type { Change, ProcessStart } from '../../delta/changes.js';
import { InvalidInputError, type Issue, NotFoundError } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { checkOperation, type Outcome } from '../journal.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  probe,
  runOk,
  unchanged,
  unresolved,
} from './executor.js';
import { BACKUP_ROOT } from './files.js';

type ProcessChange = Extract<Change, { section: 'processes' }>;
type ProcessAllocation = NonNullable<ProcessChange['to']>;

/** A process as /proc shows it. `start` is its start time in clock ticks since boot. */
export interface HostProcess {
  readonly pid: number;
  readonly ppid: number;
  readonly session: number;
  readonly uid: number;
  readonly state: string;
  readonly start: string;
  readonly comm: string;
  /** The command line, its arguments joined by spaces (as `ps -o args` shows it). */
  readonly args: string;
}

/** One process this Change started or stopped: a pid is its own only at this start time. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly start: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DIGITS = /^[0-9]{1,10}$/;
// What capture writes where it masked a credential in a command line.
const MASKED = '<redacted>';

// Reads one /proc/<pid>/stat: sets s (the fields after the name, which may hold anything, even
// ") "), t (start time) and o (session); fails for a process gone or a zombie.
const STAT = [
  'st() {',
  '  read -r s 2>/dev/null < "/proc/$1/stat" || return 1',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  '  s=${s##*) }',
  '  set -f; set -- $s; set +f',
  '  [ "$1" != Z ] || return 1',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  '  t=${20}; o=$4',
  '}',
].join('\n');

export const LIST_PROCESSES = [
  'echo "self $$"',
  'for d in /proc/[0-9]*; do',
  '  read -r s 2>/dev/null < "$d/stat" || continue',
  '  u=-',
  '  while read -r k v _; do if [ "$k" = Uid: ]; then u=$v; break; fi; done 2>/dev/null < "$d/status"',
  "  a=$(tr '\\000\\n\\t' '   ' 2>/dev/null < \"$d/cmdline\")",
  '  printf \'%s\\t%s\\t%s\\n\' "$u" "$s" "$a"',
  'done',
].join('\n');

/** Parses the listing LIST prints; the shell that printed it and its children are left out. */
export function parseProcessList(stdout: string): HostProcess[] {
  const out: HostProcess[] = [];
  let self = -1;
  for (const line of stdout.split('\n')) {
    const selfLine = /^self (\d+)$/.exec(line);
    if (selfLine?.[1]) {
      self = Number(selfLine[1]);
      continue;
    }
    const [uid, stat, ...rest] = line.split('\t');
    if (uid === undefined || stat === undefined || !DIGITS.test(uid)) continue;
    const open = stat.indexOf(' (');
    const close = stat.lastIndexOf(') ');
    if (open < 0 || close < open) continue;
    const fields = stat.slice(close + 2).split(' ');
    const [state, ppid, , session] = fields;
    const start = fields[19];
    if (state === undefined || start === undefined || !DIGITS.test(start)) continue;
    out.push({
      pid: Number(stat.slice(0, open)),
      ppid: Number(ppid),
      session: Number(session),
      uid: Number(uid),
      state,
      start,
      comm: stat.slice(open + 2, close),
      args: rest.join(' ').trim(),
    });
  }
  return out.filter((p) => p.pid !== self && p.ppid !== self);
}

/**
 * The live processes that are the entry's: of its user (when it names one), and with its
 * command line (white space as the listing shows it) or its name as the kernel keeps it (15
 * characters). Not by program: an interpreter's name (sh, python3) would take in every script.
 * Kernel threads (no command line) and zombies are none.
 */
export function matchingProcesses(
  list: readonly HostProcess[],
  entry: ProcessAllocation,
  uid: number | undefined,
): HostProcess[] {
  const name = entry.name.slice(0, 15);
  const command = entry.command.replace(/[\n\t]/g, ' ').trim();
  return list.filter(
    (p) =>
      p.state !== 'Z' &&
      p.args !== '' &&
      (uid === undefined || p.uid === uid) &&
      (p.args === command || p.comm === name),
  );
}

/** The processes of `list` whose parent is not in it: the masters, not their workers. */
const leaders = (list: readonly HostProcess[]) => {
  const pids = new Set(list.map((p) => p.pid));
  return list.filter((p) => !pids.has(p.ppid));
};

function processChange(change: Change): { c: ProcessChange; entry: ProcessAllocation } {
  if (change.section !== 'processes') throw new TypeError(`${change.kind} is not a process change`);
  const entry = change.kind === 'process.remove' ? change.from : change.to;
  if (entry === null) throw new TypeError(`${change.kind} ${change.key} has no entry`);
  if (entry.user !== undefined)
    checkUser(entry.user, `${change.kind === 'process.remove' ? 'from' : 'to'}.user`);
  return { c: change, entry };
}

function checkUser(user: string, field: string): void {
  if (DIGITS.test(user)) return;
  const problem = accountNameProblem(user);
  if (problem !== undefined) {
    throw new InvalidInputError(`${field} ${displayValue(user)} ${problem}`, [
      { path: field, message: problem },
    ]);
  }
}

async function uidOf(transport: Transport, user: string | undefined): Promise<number | null | undefined> {
  if (user === undefined) return undefined;
  const result = await probe(transport, `looking up user ${user}`, sh`id -u -- ${user}`);
  const uid = result.stdout.trim();
  // A user the host does not know runs nothing there.
  return result.exitCode === 0 && DIGITS.test(uid) ? Number(uid) : null;
}

async function listProcesses(transport: Transport): Promise<HostProcess[]> {
  return parseProcessList((await runOk(transport, 'listing processes', LIST_PROCESSES)).stdout);
}

/** The entry's live processes; with `descendants`, every process below them too. */
async function running(
  transport: Transport,
  entry: ProcessAllocation,
  descendants = false,
): Promise<HostProcess[]> {
  const uid = await uidOf(transport, entry.user);
  if (uid === null) return [];
  const list = await listProcesses(transport);
  const found = matchingProcesses(list, entry, uid);
  if (!descendants) return found;
  // A shell that runs a server waits on it: stopping the shell alone would leave the server.
  const pids = new Set(found.map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of list) {
      if (!pids.has(p.pid) && pids.has(p.ppid) && p.state !== 'Z') {
        pids.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

const backupDir = (ctx: ExecutorContext) => `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;

/** What starting a process takes: its argument vector, environment, folder and user. */
export interface Launch {
  readonly argv: readonly string[];
  /** `NAME=value` entries, exactly the process's environment. */
  readonly env: readonly string[];
  readonly cwd: string;
  /** A user name, or a uid with the gid to run under. */
  readonly user: string | { readonly uid: number; readonly gid: number };
  /**
   * The process's name as the kernel keeps it (its first 15 characters are compared): a program
   * that daemonises leaves the session it was started in, and is found by this name instead.
   */
  readonly name?: string;
}

/** The shell a launch script runs in: the session's PATH, nothing else of its environment. */
export const LAUNCH_SHELL = 'env -i "PATH=$PATH" sh';

// Reads the name (c) and start time (lt) of process $1 from its stat, for the session leader a
// daemon made: the name is what lies between the first "(" and the last ") ".
const LEADER = [
  'lead() {',
  '  read -r s 2>/dev/null < "/proc/$1/stat" || return 1',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  '  c=${s#*(}; c=${c%) *}; s=${s##*) }',
  '  set -f; set -- $s; set +f',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
  '  lt=${20}',
  '}',
].join('\n');

/** Whether the host has the program a start command runs, looked up as execvp would (its PATH, else /bin:/usr/bin). */
function programCheck(program: string, env: readonly string[]): string {
  const path = env.find((e) => e.startsWith('PATH='))?.slice('PATH='.length) ?? '/bin:/usr/bin';
  return [
    sh`prog=${program}`,
    'case $prog in',
    '  */*) [ -f "$prog" ] && [ -x "$prog" ] ;;',
    sh`  *) w=$(PATH=${path}; command -v -- "$prog" 2>/dev/null) && case $w in /*) ;; *) false ;; esac ;;`,
    // Before anything starts: a program that is not there would only "exit within a second".
    `esac || { printf "the host has no program '%s': no package or tree of the Profile brings it, or the command line is a title the process gave itself\\n" "$prog" >&2; exit 76; }`,
  ].join('\n');
}

/**
 * The script (for LAUNCH_SHELL on standard input) that starts `launch` detached and writes each process
 * it started, pid and start time, to `record`: first the one it forked, at once, then, a second
 * later, every live process of the session it made (a program that forks stays in it) and, given
 * the launch's name, of any session led by a process of that name started since the script began
 * (a program that daemonises makes a session of its own; its parent exits). It fails before
 * starting anything when the program is not on the host, and when none is alive a second later.
 * Exported for tests.
 */
export function launchScript(launch: Launch, dir: string, record: string): string {
  const { argv, env, cwd, user } = launch;
  if (argv.length === 0)
    throw new InvalidInputError('a start command has no program', [{ path: 'argv', message: 'is empty' }]);
  for (const [i, entry] of env.entries()) {
    const eq = entry.indexOf('=');
    if (eq <= 0) {
      throw new InvalidInputError(`environment entry ${i} is not NAME=value`, [
        { path: `env[${i}]`, message: 'expected NAME=value' },
      ]);
    }
  }
  const exported = env.filter((e) => ENV_NAME.test(e.slice(0, e.indexOf('='))));
  const odd = env.filter((e) => !ENV_NAME.test(e.slice(0, e.indexOf('='))));
  const identity =
    typeof user === 'string'
      ? [sh`g=$(id -g -- ${user}) || exit 73`, sh`set -- --reuid=${user} "--regid=$g" --init-groups`]
      : [sh`set -- --reuid=${user.uid} --regid=${user.gid} --init-groups`];
  return [
    STAT,
    LEADER,
    // Whatever starts from here on starts no earlier than this shell; its own session is never one.
    'st "$$" || exit 70',
    't0=$t; me=$o',
    sh`name=${launch.name?.slice(0, 15) ?? ''}`,
    'daemon() {',
    '  [ -n "$name" ] && [ "$o" != "$me" ] && [ "$o" != 0 ] && [ "$t" -ge "$t0" ] &&',
    '    lead "$o" && [ "$c" = "$name" ] && [ "$lt" -ge "$t0" ]',
    '}',
    // Only what Persona writes is private: the process keeps the session's umask.
    sh`(umask 077 && mkdir -p -- ${dir} && : >> ${record}) || exit 70`,
    sh`cd -- ${cwd} || exit 71`,
    programCheck(argv[0] as string, env),
    ...identity,
    // Found here, with the session's PATH: the process's own PATH may not lead to them.
    'ss=$(command -v setsid) && sp=$(command -v setpriv) || { echo "the host has no setsid or setpriv (util-linux)" >&2; exit 74; }',
    // The shell runs with no environment but PATH (LAUNCH_SHELL), so the subshell holds exactly
    // the variables it exports: no value is ever an argument a process list shows. A name no
    // shell can export goes to `env` instead. setpriv takes the user with its groups; after each
    // `--` nothing is read as an option, not even a leading "-".
    '(',
    '  unset PWD OLDPWD PATH',
    ...(exported.length > 0 ? [sh`  export ${exported}`] : []),
    odd.length > 0
      ? sh`  exec "$ss" -- env -- ${odd} "$sp" "$@" -- ${[...argv]} </dev/null >/dev/null 2>&1`
      : sh`  exec "$ss" -- "$sp" "$@" -- ${[...argv]} </dev/null >/dev/null 2>&1`,
    ') &',
    'p=$!',
    sh`if st "$p"; then printf '%s %s\\n' "$p" "$t" >> ${record}; fi`,
    'sleep 1',
    'n=0',
    'for d in /proc/[0-9]*; do',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
    '  q=${d#/proc/}',
    '  st "$q" || continue',
    '  if [ "$q" = "$p" ] || [ "$o" = "$p" ] || daemon; then',
    sh`    printf '%s %s\\n' "$q" "$t" >> ${record}`,
    `    printf 'started %s %s\\n' "$q" "$t"`,
    '    n=$((n + 1))',
    '  fi',
    'done',
    `[ "$n" -gt 0 ] || { echo 'it exited within a second of its start' >&2; exit 72; }`,
  ].join('\n');
}

/**
 * The script that stops the processes named by pid and start time: those still alive with that
 * start time get TERM, then KILL after ten seconds; it fails naming any still alive after 15.
 * A pid another process has taken since (another start time) is never signalled.
 */
export function stopScript(targets: readonly ProcessIdentity[]): string {
  const unique = [...new Map(targets.map((t) => [`${t.pid} ${t.start}`, t])).values()];
  const words = unique.flatMap((t) => {
    if (!Number.isSafeInteger(t.pid) || t.pid <= 1 || !DIGITS.test(t.start)) {
      throw new InvalidInputError(
        `process ${t.pid} (start ${displayValue(t.start)}) is not a pid and start time`,
        [{ path: 'pid', message: 'expected a pid above 1 and a start time in clock ticks' }],
      );
    }
    return [t.pid, t.start];
  });
  return [
    STAT,
    'live() { out=; while [ $# -ge 2 ]; do if st "$1" && [ "$t" = "$2" ]; then out="$out $1 $2"; fi; shift 2; done; }',
    sh`live ${words}`,
    'n=0',
    'while [ -n "$out" ] && [ "$n" -lt 150 ]; do',
    '  case $n in 0) sig=TERM ;; 100) sig=KILL ;; *) sig= ;; esac',
    '  if [ -n "$sig" ]; then',
    '    set -- $out',
    '    while [ $# -ge 2 ]; do kill -s "$sig" "$1" 2>/dev/null; printf \'%s %s %s\\n\' "$sig" "$1" "$2"; shift 2; done',
    '  fi',
    '  sleep 0.1',
    '  n=$((n + 1))',
    '  set -- $out',
    '  live "$@"',
    'done',
    `[ -z "$out" ] || { echo "still running:$out" >&2; exit 75; }`,
  ].join('\n');
}

const identities = (stdout: string, prefix: string): ProcessIdentity[] =>
  stdout
    .split('\n')
    .map((l) => new RegExp(`^${prefix}(\\d+) (\\d+)$`).exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), start: m[2] as string }));

async function start(ctx: ExecutorContext, what: string, launch: Launch, record: string) {
  const script = launchScript(launch, backupDir(ctx), record);
  const { stdout } = await runOk(ctx.transport, what, LAUNCH_SHELL, script);
  return identities(stdout, 'started ');
}

async function stop(ctx: ExecutorContext, what: string, targets: readonly ProcessIdentity[]) {
  if (targets.length === 0) return [];
  const { stdout } = await runOk(ctx.transport, what, 'sh', stopScript(targets));
  return [...new Set(identities(stdout, '(?:TERM|KILL) ').map((t) => t.pid))];
}

/**
 * The start command as the process to start: its words (capture joins arguments with spaces,
 * so that is how they split), user, folder, and environment with secret values opened in memory.
 * Undefined with the reason where it cannot be what the source ran.
 */
async function launchFromStart(
  ctx: ExecutorContext,
  c: ProcessChange,
  start: ProcessStart,
  entry: ProcessAllocation,
): Promise<Launch | string> {
  const { command } = start;
  if (command.command.includes(MASKED)) {
    return `the start command of ${c.key} held a credential that capture masked, so it cannot be run as the source ran it`;
  }
  const argv = command.command.split(' ').filter((w) => w !== '');
  const user = command.user ?? entry.user ?? 'root';
  checkUser(user, 'start.command.user');
  const cwd = command.workingDirectory ?? '/';
  if (!cwd.startsWith('/')) {
    throw new InvalidInputError(
      `start.command.workingDirectory ${displayValue(cwd)} is not an absolute path`,
      [{ path: 'start.command.workingDirectory', message: 'expected an absolute path' }],
    );
  }
  const issues: Issue[] = [];
  const env: string[] = [];
  for (const [i, v] of start.environment.entries()) {
    if (!ENV_NAME.test(v.name)) {
      issues.push({
        path: `start.environment[${i}].name`,
        message: `${displayValue(v.name)} is not a variable name`,
      });
      continue;
    }
    if (v.value !== undefined) {
      env.push(`${v.name}=${v.value}`);
      continue;
    }
    const open = ctx.contents.readSealed;
    if (v.secretRef === undefined || open === undefined) {
      throw new NotFoundError(
        `process ${c.key}: environment variable ${v.name} is a secret reference, and this apply was given no way to open sealed secrets`,
        `env ${v.name}`,
      );
    }
    const bytes = await open.call(
      ctx.contents,
      v.secretRef,
      `processes ${c.key} start.environment ${v.name}`,
    );
    env.push(`${v.name}=${new TextDecoder('utf-8', { fatal: true }).decode(bytes)}`);
  }
  if (issues.length > 0) {
    throw new InvalidInputError(
      `the start of process ${displayValue(c.key)} names variables no environment can hold`,
      issues,
    );
  }
  return { argv, env, cwd, user, name: entry.name };
}

interface AddPrior {
  /** What ran of the entry before: never stopped by revert. */
  readonly running: readonly ProcessIdentity[];
}

const startedRecord = (ctx: ExecutorContext) => `${backupDir(ctx)}/${ctx.seq}.started`;

async function recorded(transport: Transport, path: string): Promise<ProcessIdentity[]> {
  const { stdout } = await runOk(
    transport,
    'reading the processes an apply started',
    sh`if [ -f ${path} ]; then cat -- ${path}; fi`,
  );
  return identities(stdout, '');
}

const processAdd: Executor = {
  kinds: ['process.add'],

  async prepare(ctx, change): Promise<AddPrior> {
    const { entry } = processChange(change);
    return { running: (await running(ctx.transport, entry)).map(({ pid, start }) => ({ pid, start })) };
  },

  async apply(ctx, change) {
    const { c, entry } = processChange(change);
    const now = await running(ctx.transport, entry);
    if (now.length > 0) {
      return unchanged(
        `${c.key} runs already (pid ${leaders(now)
          .map((p) => p.pid)
          .join(', ')})`,
      );
    }
    if (c.start === undefined)
      return unresolved(`${c.key}: no start command captured and no service starts it`);
    const launch = await launchFromStart(ctx, c, c.start, entry);
    if (typeof launch === 'string') return unresolved(launch);
    const started = await start(ctx, `starting ${c.key}`, launch, startedRecord(ctx));
    const user = typeof launch.user === 'string' ? launch.user : String(launch.user.uid);
    return changed(
      `started ${c.key} as ${user} in ${launch.cwd} (pid ${started.map((p) => p.pid).join(', ')})`,
    );
  },

  async revert(ctx, change, prior) {
    const { c } = processChange(change);
    const before = new Set(((prior as AddPrior | null)?.running ?? []).map((p) => `${p.pid} ${p.start}`));
    const ours = (await recorded(ctx.transport, startedRecord(ctx))).filter(
      (p) => !before.has(`${p.pid} ${p.start}`),
    );
    const stopped = await stop(ctx, `stopping ${c.key}`, ours);
    return stopped.length === 0
      ? unchanged(`${c.key}: nothing this apply started runs`)
      : changed(`stopped ${c.key} (pid ${stopped.join(', ')})`);
  },
};

/** What a removed process was, to start it again: its bytes (argv, environment) stay on the host. */
interface Stopped extends ProcessIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly cwd: string;
  /** Where its command line and environment were kept, NUL-separated as /proc gave them. */
  readonly kept: string;
}

interface RemovePrior {
  readonly stopped: readonly Stopped[];
}

const base64 = (text: string) => new Uint8Array(Buffer.from(text.trim(), 'base64'));
const nulFields = (bytes: Uint8Array) => {
  const text = new TextDecoder().decode(bytes);
  const fields = text.split('\0');
  if (fields.at(-1) === '') fields.pop();
  return fields;
};

const processRemove: Executor = {
  kinds: ['process.remove'],

  async prepare(ctx, change): Promise<RemovePrior> {
    const { c, entry } = processChange(change);
    const stopped: Stopped[] = [];
    for (const p of leaders(await running(ctx.transport, entry))) {
      const kept = `${backupDir(ctx)}/${ctx.seq}.${p.pid}`;
      // Kept before anything stops: a revert after a crash still has them.
      const { stdout } = await runOk(
        ctx.transport,
        `keeping how ${c.key} was started`,
        [
          'umask 077',
          sh`mkdir -p -- ${backupDir(ctx)}`,
          sh`cat /proc/${p.pid}/cmdline > ${`${kept}.cmdline`}`,
          sh`cat /proc/${p.pid}/environ > ${`${kept}.environ`}`,
          sh`g=; while read -r k _ v _; do if [ "$k" = Gid: ]; then g=$v; break; fi; done < /proc/${p.pid}/status`,
          'printf \'%s\\n\' "$g"',
          sh`readlink -n -- /proc/${p.pid}/cwd | base64 -w0`,
        ].join('\n'),
      );
      const [gid, cwd] = stdout.split('\n');
      if (gid === undefined || !DIGITS.test(gid) || cwd === undefined) continue;
      stopped.push({
        pid: p.pid,
        start: p.start,
        uid: p.uid,
        gid: Number(gid),
        cwd: new TextDecoder().decode(base64(cwd)),
        kept,
      });
    }
    return { stopped };
  },

  async apply(ctx, change) {
    const { c, entry } = processChange(change);
    const now = await running(ctx.transport, entry, true);
    if (now.length === 0) return unchanged(`${c.key} does not run`);
    const stopped = await stop(ctx, `stopping ${c.key}`, now);
    return changed(`stopped ${c.key} (pid ${stopped.join(', ')})`);
  },

  async revert(ctx, change, prior) {
    const { c, entry } = processChange(change);
    if ((await running(ctx.transport, entry)).length > 0) return unchanged(`${c.key} runs`);
    const before = (prior as RemovePrior | null)?.stopped ?? [];
    const pids: number[] = [];
    for (const p of before) {
      const { stdout } = await runOk(
        ctx.transport,
        `reading how ${c.key} was started`,
        sh`if [ -f ${`${p.kept}.cmdline`} ] && [ -f ${`${p.kept}.environ`} ]; then base64 -w0 -- ${`${p.kept}.cmdline`} && echo && base64 -w0 -- ${`${p.kept}.environ`}; fi`,
      );
      const [argv, env] = stdout.split('\n');
      let launch: Launch | string;
      if (argv !== undefined && argv !== '' && env !== undefined) {
        launch = {
          argv: nulFields(base64(argv)),
          env: nulFields(base64(env)),
          cwd: p.cwd,
          user: { uid: p.uid, gid: p.gid },
          name: entry.name,
        };
      } else if (c.start !== undefined) {
        // The kept copy is gone (the backup folder was dropped): the Profile's start command is next best.
        launch = await launchFromStart(ctx, c, c.start, entry);
      } else {
        launch = `the command line ${c.key} ran with was not kept on the host`;
      }
      if (typeof launch === 'string')
        throw new NotFoundError(`cannot start ${c.key} again: ${launch}`, c.key);
      const started = await start(ctx, `starting ${c.key} again`, launch, `${p.kept}.restarted`);
      pids.push(...started.map((s) => s.pid));
    }
    return before.length === 0
      ? unchanged(`${c.key} did not run`)
      : changed(`started ${c.key} again (pid ${pids.join(', ')})`);
  },
};

export const processAddExecutor = processAdd;
export const processRemoveExecutor = processRemove;

function applicationOutcome(change: Change): Outcome {
  if (change.section !== 'application') throw new TypeError(`${change.kind} is not an application change`);
  const to = change.to;
  const commands = to?.startCommands.length ?? 0;
  const checks = to?.healthChecks.length ?? 0;
  return unchanged(
    `nothing on the host holds the application itself: its ${commands} start command(s) run through the process Changes, its ${checks} health check(s) in validation`,
  );
}

/**
 * application.configure: the application as the Profile declares it holds nothing of its own on
 * the host. Its start commands are started by the process Changes (their `start`), its trees come
 * with the snapshot restore, and its health checks run in validation; so this says what carries
 * each part instead of pretending to apply it.
 */
export const applicationExecutor: Executor = {
  kinds: ['application.configure'],

  async prepare() {
    return null;
  },

  async apply(_ctx, change) {
    return applicationOutcome(change);
  },

  // Known from the Change alone: nothing to journal, nothing to read.
  async survey(_ctx, changes) {
    return changes.map(applicationOutcome);
  },

  async revert() {
    return unchanged('nothing on the host was changed');
  },
};
