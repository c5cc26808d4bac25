// group.add/remove and user.add/remove through shadow's groupadd, useradd, groupdel and
// userdel, every name validated and after `--`. A user is added without a home folder (its
// files are file Changes of their own) and with a locked password; a password kept as a
// reference is left to the secrets step. Removing a user keeps its password hash on the host
// (root only, with the operation's other kept copies) so that revert can put it back.
import type { z } from 'zod';
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import type { Group as GroupSchema, User as UserSchema } from '../../profile/schema.js';
import { checkPath } from '../../transport/paths.js';
import { sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { checkOperation } from '../journal.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  runOk,
  unchanged,
} from './executor.js';
import { BACKUP_ROOT } from './files.js';

function checkName(name: string, field: string): string {
  const problem = accountNameProblem(name);
  if (problem !== undefined) {
    throw new InvalidInputError(`${field} ${JSON.stringify(name)} ${problem}`, [
      { path: field, message: problem },
    ]);
  }
  return name;
}

type Group = z.infer<typeof GroupSchema>;
type User = z.infer<typeof UserSchema>;

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}
interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

async function getent(
  transport: Transport,
  database: 'passwd' | 'group',
  name: string,
): Promise<string[] | null> {
  const result = await transport.run(sh`getent -- ${database} ${name}`);
  // getent exits 2 for "no such entry"; anything else is a failure to read.
  if (result.exitCode === 2) return null;
  if (result.exitCode !== 0) {
    throw new HostStateConflictError(
      `getent ${database} ${name} failed: ${result.stderr.trim()}`,
      database,
      name,
    );
  }
  return result.stdout.trim().split(':');
}

export async function readGroup(transport: Transport, name: string): Promise<GroupEntry | null> {
  const f = await getent(transport, 'group', name);
  if (f === null) return null;
  return { name: f[0] ?? name, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter((m) => m !== '') };
}

export async function readUser(transport: Transport, name: string): Promise<PasswdEntry | null> {
  const f = await getent(transport, 'passwd', name);
  if (f === null) return null;
  return { name: f[0] ?? name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '', shell: f[6] ?? '' };
}

/** Supplementary groups of a user, as `id -Gn` lists them without the primary one. */
async function supplementaryGroups(transport: Transport, user: PasswdEntry): Promise<string[]> {
  const { stdout } = await runOk(transport, `listing the groups of ${user.name}`, sh`id -Gn -- ${user.name}`);
  const primary = await transport.run(sh`getent -- group ${String(user.gid)}`);
  const primaryName = primary.exitCode === 0 ? primary.stdout.split(':')[0] : undefined;
  return stdout
    .trim()
    .split(/\s+/)
    .filter((g) => g !== '' && g !== primaryName);
}

// userdel also deletes the group named like the user when it is the user's primary group and
// has no other member (USERGROUPS_ENAB). That group is another entry of the Profile: put it
// back if this userdel took it.
async function userdel(transport: Transport, name: string): Promise<void> {
  const group = await readGroup(transport, name);
  await runOk(transport, `removing user ${name}`, sh`userdel -- ${name}`);
  if (group !== null && (await readGroup(transport, name)) === null) {
    await runOk(transport, `keeping group ${name}`, sh`groupadd --gid ${String(group.gid)} -- ${name}`);
  }
}

function useraddCommand(user: {
  name: string;
  uid: number;
  gid: number;
  home?: string | undefined;
  shell?: string | undefined;
  groups: readonly string[];
  system?: boolean | undefined;
}): string {
  const args: string[] = ['--uid', String(user.uid), '--gid', String(user.gid), '--no-create-home'];
  if (user.home !== undefined) args.push('--home-dir', checkPath(user.home, 'home'));
  if (user.shell !== undefined) args.push('--shell', checkPath(user.shell, 'shell'));
  const groups = user.groups.map((g, i) => checkName(g, `groups[${i}]`));
  if (groups.length > 0) args.push('--groups', groups.join(','));
  if (user.system === true) args.push('--system');
  return sh`useradd ${args} -- ${checkName(user.name, 'name')}`;
}

type AccountChange = Extract<Change, { section: 'users' | 'groups' }>;

function accountChange(change: Change): AccountChange {
  if (change.section !== 'users' && change.section !== 'groups')
    throw new TypeError(`${change.kind} is not an account change`);
  checkName(change.key, 'key');
  return change;
}

interface UserPrior {
  readonly user: PasswdEntry | null;
  readonly groups: readonly string[];
  /** Where the password hash was kept on the host, for a removed user. */
  readonly shadow?: string;
}

async function keepShadow(ctx: ExecutorContext, name: string): Promise<string> {
  const dir = `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;
  const file = `${dir}/${ctx.seq}.shadow`;
  await runOk(
    ctx.transport,
    `keeping the password of ${name}`,
    sh`umask 077 && mkdir -p -- ${dir} && getent -- shadow ${name} | cut -d: -f1,2 > ${file}`,
  );
  return file;
}

// shadow's tools keep the file they replace as `<file>-`: a groupadd and its groupdel leave
// /etc/group- other than it was. These copies are kept on the host before an account Change
// and put back after its revert, so that a rollback leaves the account files as they were.
const SHADOW_BACKUPS = ['passwd-', 'group-', 'shadow-', 'gshadow-', 'subuid-', 'subgid-'] as const;

const accountBackupDir = (ctx: ExecutorContext) =>
  `${BACKUP_ROOT}/${checkOperation(ctx.operation)}/${ctx.seq}.accounts`;

async function keepShadowBackups(ctx: ExecutorContext): Promise<string[]> {
  const dir = accountBackupDir(ctx);
  const r = await runOk(
    ctx.transport,
    'keeping the account files',
    sh`umask 077 && mkdir -p -- ${dir} && for f in ${[...SHADOW_BACKUPS]}; do if [ -f "/etc/$f" ] && [ ! -L "/etc/$f" ]; then cp -p -- "/etc/$f" ${dir}/ && printf '%s\n' "$f"; fi; done`,
  );
  return r.stdout
    .split('\n')
    .filter((f): f is (typeof SHADOW_BACKUPS)[number] => (SHADOW_BACKUPS as readonly string[]).includes(f));
}

async function restoreShadowBackups(
  ctx: ExecutorContext,
  kept: readonly string[] | undefined,
): Promise<void> {
  if (kept === undefined) return;
  const dir = accountBackupDir(ctx);
  const names = kept.filter((f) => (SHADOW_BACKUPS as readonly string[]).includes(f));
  const absent = SHADOW_BACKUPS.filter((f) => !names.includes(f));
  await runOk(
    ctx.transport,
    'restoring the account files',
    sh`for f in ${names.length > 0 ? names : ['']}; do if [ -n "$f" ] && [ -f ${dir}/"$f" ]; then cp -p -- ${dir}/"$f" "/etc/$f.persona-tmp" && mv -T -- "/etc/$f.persona-tmp" "/etc/$f"; fi; done; for f in ${[...absent]}; do rm -f -- "/etc/$f"; done`,
  );
}

/** The executor, with shadow's own backup copies kept before and put back after each revert. */
function keepingShadowBackups(executor: Executor): Executor {
  return {
    kinds: executor.kinds,
    async prepare(ctx, change) {
      const prior = await executor.prepare(ctx, change);
      return { prior, shadowBackups: await keepShadowBackups(ctx) };
    },
    apply: (ctx, change, prior) => executor.apply(ctx, change, (prior as { prior: unknown }).prior),
    async revert(ctx, change, prior) {
      const p = prior as { prior: unknown; shadowBackups?: string[] };
      const outcome = await executor.revert(ctx, change, p.prior);
      await restoreShadowBackups(ctx, p.shadowBackups);
      return outcome;
    },
  };
}

const groupAccountExecutor: Executor = {
  kinds: ['group.add', 'group.remove'],

  async prepare(ctx, change) {
    return readGroup(ctx.transport, accountChange(change).key);
  },

  async apply(ctx, change) {
    const c = accountChange(change);
    // Read again rather than taken from prior: an apply finished after a crash finds its work.
    const now = await readGroup(ctx.transport, c.key);
    if (c.kind === 'group.remove') {
      if (now === null) return unchanged(`group ${c.key} is already absent`);
      await runOk(ctx.transport, `removing group ${c.key}`, sh`groupdel -- ${c.key}`);
      return changed(`removed group ${c.key}`);
    }
    const group = c.to as Group;
    if (now !== null) {
      if (now.gid === group.gid) return unchanged(`group ${c.key} exists with gid ${group.gid}`);
      throw new HostStateConflictError(
        `group ${c.key} exists with gid ${now.gid}, not ${group.gid}`,
        c.kind,
        c.key,
      );
    }
    await runOk(ctx.transport, `adding group ${c.key}`, sh`groupadd --gid ${String(group.gid)} -- ${c.key}`);
    // Members whose users exist join now; the others join when their user.add names the group.
    // Only for a group this Change made, so that its revert (groupdel) takes the memberships too.
    const later: string[] = [];
    for (const [i, member] of group.members.entries()) {
      checkName(member, `members[${i}]`);
      if ((await readUser(ctx.transport, member)) === null) later.push(member);
      else {
        await runOk(
          ctx.transport,
          `adding ${member} to ${c.key}`,
          sh`usermod --append --groups ${c.key} -- ${member}`,
        );
      }
    }
    const pending = later.length === 0 ? '' : `; ${later.join(', ')} join when their users are added`;
    return changed(`added group ${c.key} (gid ${group.gid})${pending}`);
  },

  async revert(ctx, change, prior) {
    const c = accountChange(change);
    const before = prior as GroupEntry | null;
    const now = await readGroup(ctx.transport, c.key);
    if (before === null) {
      if (now === null) return unchanged(`group ${c.key} is absent, as it was`);
      await runOk(ctx.transport, `removing group ${c.key}`, sh`groupdel -- ${c.key}`);
      return changed(`removed group ${c.key}`);
    }
    if (now !== null) return unchanged(`group ${c.key} exists, as it did`);
    await runOk(ctx.transport, `adding group ${c.key}`, sh`groupadd --gid ${String(before.gid)} -- ${c.key}`);
    // Members come back with their users' supplementary groups: gpasswd takes no `--`.
    for (const member of before.members) {
      if ((await readUser(ctx.transport, member)) !== null) {
        await runOk(
          ctx.transport,
          `adding ${member} to ${c.key}`,
          sh`usermod --append --groups ${c.key} -- ${checkName(member, 'member')}`,
        );
      }
    }
    return changed(`added group ${c.key} back (gid ${before.gid})`);
  },
};

const userAccountExecutor: Executor = {
  kinds: ['user.add', 'user.remove'],

  async prepare(ctx, change) {
    const c = accountChange(change);
    const user = await readUser(ctx.transport, c.key);
    if (user === null) return { user: null, groups: [] } satisfies UserPrior;
    const groups = await supplementaryGroups(ctx.transport, user);
    const shadow = c.kind === 'user.remove' ? await keepShadow(ctx, c.key) : undefined;
    return { user, groups, ...(shadow === undefined ? {} : { shadow }) } satisfies UserPrior;
  },

  async apply(ctx, change) {
    const c = accountChange(change);
    // Read again rather than taken from prior: an apply finished after a crash finds its work.
    const now = await readUser(ctx.transport, c.key);
    if (c.kind === 'user.remove') {
      if (now === null) return unchanged(`user ${c.key} is already absent`);
      await userdel(ctx.transport, c.key);
      return changed(`removed user ${c.key}`);
    }
    const user = c.to as User;
    if (now !== null) {
      const u = now;
      const differs: string[] = [];
      if (u.uid !== user.uid) differs.push(`uid ${u.uid}, not ${user.uid}`);
      if (u.gid !== user.gid) differs.push(`gid ${u.gid}, not ${user.gid}`);
      if (user.home !== undefined && u.home !== user.home) differs.push(`home ${u.home}, not ${user.home}`);
      if (user.shell !== undefined && u.shell !== user.shell)
        differs.push(`shell ${u.shell}, not ${user.shell}`);
      if (differs.length > 0) {
        throw new HostStateConflictError(`user ${c.key} exists with ${differs.join(', ')}`, c.kind, c.key);
      }
      return unchanged(`user ${c.key} exists with uid ${user.uid}`);
    }
    await runOk(ctx.transport, `adding user ${c.key}`, useraddCommand(user));
    return changed(`added user ${c.key} (uid ${user.uid})`);
  },

  async revert(ctx, change, prior) {
    const c = accountChange(change);
    const before = prior as UserPrior;
    const now = await readUser(ctx.transport, c.key);
    if (before.user === null) {
      if (now === null) return unchanged(`user ${c.key} is absent, as it was`);
      await userdel(ctx.transport, c.key);
      return changed(`removed user ${c.key}`);
    }
    if (now !== null) return unchanged(`user ${c.key} exists, as it did`);
    const u = before.user;
    await runOk(
      ctx.transport,
      `adding user ${c.key} back`,
      useraddCommand({
        name: c.key,
        uid: u.uid,
        gid: u.gid,
        home: u.home,
        shell: u.shell,
        groups: before.groups,
      }),
    );
    if (before.shadow !== undefined) {
      const kept = checkPath(before.shadow, 'shadow');
      await runOk(ctx.transport, `restoring the password of ${c.key}`, sh`chpasswd -e < ${kept}`);
    }
    return changed(`added user ${c.key} back (uid ${u.uid})`);
  },
};

export const groupExecutor: Executor = keepingShadowBackups(groupAccountExecutor);
export const userExecutor: Executor = keepingShadowBackups(userAccountExecutor);
