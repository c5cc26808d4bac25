// The host executors for RHEL-family hosts (RHEL, CentOS Stream, Rocky, Alma, Fedora). Most
// Debian executors run unchanged there — sysctl (procps-ng's sysctl, /etc/sysctl.d), files,
// environment files, groups (shadow-utils takes the same options), routes (iproute2), kernel
// modules (kmod's modprobe) — and are taken as they are. What differs is here:
// - packages: rpm and dnf (rpm-packages.ts);
// - services on a sysvinit host: enabled and disabled (service.enable/disable, and what
//   service.remove disables) with chkconfig, which RHEL has where Debian has update-rc.d
//   (systemd hosts and `service` start/stop are the same);
// - firewall: a host where firewalld runs records the ruleset unresolved with the reason
//   (firewalld owns the ruleset and replaces one loaded under it at its next reload); nftables
//   and iptables otherwise, as on Debian;
// - files, SSH keys and resolv.conf: where SELinux is enabled, what such a Change wrote
//   (or its revert put back) is given the label the policy names for its path (restorecon): a
//   file made beside its target and renamed takes its folder's label, which is not always the
//   path's (/etc/hosts is net_conf_t in an etc_t folder), and a confined service (sshd reading
//   authorized_keys) is then denied it;
// - users: RHEL's useradd makes a mail spool (CREATE_MAIL_SPOOL=yes in /etc/default/useradd)
//   that userdel without -r leaves behind; the empty one useradd made is removed, so that a
//   revert leaves the host as it was. Every other account default (login.defs' UID and GID
//   ranges, useradd's GROUP=100) is never used: uid, gid and --no-create-home are always given.
import type { Change } from '../../delta/changes.js';
import { checkPath, pathProblem } from '../../transport/paths.js';
import { sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import type { Outcome } from '../journal.js';
import { userExecutor } from './accounts.js';
import { dnsExecutor, RESOLV_CONF } from './dns.js';
import {
  accountNameProblem,
  changed,
  type Executor,
  type ExecutorContext,
  runOk,
  unchanged,
  unresolved,
} from './executor.js';
import { fileExecutor } from './file.js';
import { firewallExecutor } from './firewall.js';
import { DEBIAN_EXECUTORS, type Executors, executorsFor } from './index.js';
import type { PackageSource } from './packages.js';
import { rpmPackageExecutor } from './rpm-packages.js';
import { type InitSystem, serviceExecutor, serviceRemoveExecutor } from './services.js';
import { sshKeyExecutor } from './sshkeys.js';

// --- services --------------------------------------------------------------------------------

interface ServiceState {
  readonly init: InitSystem;
  readonly running: boolean | null;
  readonly enabled: boolean | null;
}

const CHKCONFIG = {
  'service.enable': { want: true, word: 'on' },
  'service.disable': { want: false, word: 'off' },
} as const;

async function hasChkconfig(transport: Transport): Promise<boolean> {
  return (await transport.run('command -v chkconfig >/dev/null 2>&1')).exitCode === 0;
}

/**
 * The service executor, with chkconfig enabling and disabling services on a sysvinit host that
 * has it. The state is read as on Debian: RHEL's /etc/rc[0-6].d are links to /etc/rc.d/rc[0-6].d.
 */
export const rhelServiceExecutor: Executor = {
  kinds: serviceExecutor.kinds,

  prepare: (ctx, change) => serviceExecutor.prepare(ctx, change),

  async apply(ctx, change, prior) {
    const step = CHKCONFIG[change.kind as keyof typeof CHKCONFIG];
    if (step === undefined) return serviceExecutor.apply(ctx, change, prior);
    // Read again (and the name checked) by the service executor's own reader.
    const state = (await serviceExecutor.prepare(ctx, change)) as ServiceState;
    if (state.init !== 'sysvinit' || !(await hasChkconfig(ctx.transport)))
      return serviceExecutor.apply(ctx, change, prior);
    if (state.enabled === step.want)
      return unchanged(`${change.key} is already ${step.want ? 'enabled' : 'disabled'}`);
    await runOk(
      ctx.transport,
      `chkconfig ${change.key} ${step.word}`,
      sh`chkconfig ${change.key} ${step.word}`,
    );
    return changed(`chkconfig ${change.key} ${step.word} (sysvinit)`);
  },

  async revert(ctx, change, prior) {
    const before = prior as ServiceState;
    if (CHKCONFIG[change.kind as keyof typeof CHKCONFIG] === undefined || before.init !== 'sysvinit')
      return serviceExecutor.revert(ctx, change, prior);
    const now = (await serviceExecutor.prepare(ctx, change)) as ServiceState;
    if (before.enabled === null || now.enabled === before.enabled)
      return unchanged(`${change.key} is as it was`);
    if (!(await hasChkconfig(ctx.transport))) return serviceExecutor.revert(ctx, change, prior);
    const word = before.enabled ? 'on' : 'off';
    await runOk(ctx.transport, `chkconfig ${change.key} ${word}`, sh`chkconfig ${change.key} ${word}`);
    return changed(`chkconfig ${change.key} ${word} again`);
  },
};

/**
 * service.remove with chkconfig on a sysvinit host that has it: what still runs is stopped with
 * `service` and what starts at boot is disabled, and revert puts both back as they were read.
 * Elsewhere, the service.remove executor as on Debian.
 */
export const rhelServiceRemoveExecutor: Executor = {
  kinds: serviceRemoveExecutor.kinds,

  prepare: (ctx, change) => serviceRemoveExecutor.prepare(ctx, change),

  async apply(ctx, change, prior) {
    const state = (await serviceRemoveExecutor.prepare(ctx, change)) as ServiceState;
    if (state.init !== 'sysvinit' || !(await hasChkconfig(ctx.transport)))
      return serviceRemoveExecutor.apply(ctx, change, prior);
    const done: string[] = [];
    if (state.running === true) {
      await runOk(ctx.transport, `stop ${change.key}`, sh`service ${change.key} stop`);
      done.push('stopped');
    }
    if (state.enabled === true) {
      await runOk(ctx.transport, `chkconfig ${change.key} off`, sh`chkconfig ${change.key} off`);
      done.push('disabled');
    }
    return done.length === 0
      ? unchanged(
          `${change.key} is stopped and disabled; its init script goes with its package or file Change`,
        )
      : changed(`${change.key} ${done.join(' and ')} (sysvinit, chkconfig)`);
  },

  async revert(ctx, change, prior) {
    const before = prior as ServiceState;
    if (before.init !== 'sysvinit' || !(await hasChkconfig(ctx.transport)))
      return serviceRemoveExecutor.revert(ctx, change, prior);
    const now = (await serviceRemoveExecutor.prepare(ctx, change)) as ServiceState;
    const done: string[] = [];
    if (before.enabled === true && now.enabled === false) {
      await runOk(ctx.transport, `chkconfig ${change.key} on`, sh`chkconfig ${change.key} on`);
      done.push('enabled');
    }
    if (before.running === true && now.running === false) {
      await runOk(ctx.transport, `start ${change.key}`, sh`service ${change.key} start`);
      done.push('started');
    }
    return done.length === 0
      ? unchanged(`${change.key} is as it was`)
      : changed(`${change.key} ${done.join(' and ')} again`);
  },
};

// --- files -----------------------------------------------------------------------------------

const RELABEL = (paths: readonly string[]) =>
  [
    'if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled && command -v restorecon >/dev/null 2>&1; then',
    `  ${sh`for p in ${paths}; do`}`,
    '    if [ -e "$p" ] || [ -L "$p" ]; then restorecon -- "$p" && echo relabelled || exit 1; fi',
    '  done',
    'fi',
  ].join('\n');

/** Gives the paths the policy's label where SELinux is enabled; false where it is not (or nothing is there). */
export async function relabel(transport: Transport, paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return false;
  const checked = paths.map((p, i) => checkPath(p, `paths[${i}]`));
  const { stdout } = await runOk(
    transport,
    `restoring the SELinux label of ${checked.join(', ')}`,
    RELABEL(checked),
  );
  return stdout.includes('relabelled');
}

/** The paths a Change writes: what `withRelabel` gives the policy's label after it. */
export type WrittenPaths = (ctx: ExecutorContext, change: Change) => Promise<readonly string[]>;

/** A file Change writes its key. */
export const filePaths: WrittenPaths = async (_ctx, change) =>
  change.section === 'files' ? [change.key] : [];

/** A DNS Change writes /etc/resolv.conf, net_conf_t in an etc_t folder. */
export const dnsPaths: WrittenPaths = async (_ctx, change) => (change.section === 'dns' ? [RESOLV_CONF] : []);

/**
 * An SSH key Change writes the user's ~/.ssh and its authorized_keys: sshd, confined, reads
 * only what is labelled ssh_home_t.
 */
export const sshKeyPaths: WrittenPaths = async (ctx, change) => {
  if (change.section !== 'sshKeys') return [];
  const user = (change.to ?? change.from)?.user ?? '';
  if (accountNameProblem(user) !== undefined) return [];
  const found = await ctx.transport.run(sh`getent -- passwd ${user}`);
  const home = found.exitCode === 0 ? found.stdout.replace(/\n$/, '').split(':')[5] : undefined;
  if (home === undefined || pathProblem(home) !== undefined) return [];
  const base = home.replace(/\/+$/, '');
  return [`${base}/.ssh`, `${base}/.ssh/authorized_keys`];
};

/**
 * `inner` with what it wrote relabelled. Only after a Change that changed the host: what was
 * left as it was keeps the label it has, which is no Change's to alter.
 */
export function withRelabel(inner: Executor, written: WrittenPaths): Executor {
  const after = async (ctx: ExecutorContext, change: Change, outcome: Outcome): Promise<Outcome> => {
    if (outcome.status !== 'changed') return outcome;
    return (await relabel(ctx.transport, await written(ctx, change)))
      ? { ...outcome, detail: `${outcome.detail}; SELinux label set by the policy` }
      : outcome;
  };
  return {
    kinds: inner.kinds,
    prepare: (ctx, change) => inner.prepare(ctx, change),
    apply: async (ctx, change, prior) => after(ctx, change, await inner.apply(ctx, change, prior)),
    revert: async (ctx, change, prior) => after(ctx, change, await inner.revert(ctx, change, prior)),
  };
}

// --- firewall --------------------------------------------------------------------------------

const FIREWALLD_STATE =
  'if command -v firewall-cmd >/dev/null 2>&1; then firewall-cmd --state 2>&1; else echo absent; fi';

/** Whether firewalld runs on the host (`firewall-cmd --state` says `running`, exit 0). */
export async function firewalldRuns(transport: Transport): Promise<boolean> {
  const result = await transport.run(FIREWALLD_STATE);
  return result.exitCode === 0 && result.stdout.trim() === 'running';
}

/** The firewall executor, which leaves a host whose ruleset firewalld owns to firewalld. */
export const rhelFirewallExecutor: Executor = {
  kinds: firewallExecutor.kinds,

  async prepare(ctx, change) {
    // The firewall executor's own prior for "nothing loaded": its revert then changes nothing.
    if (await firewalldRuns(ctx.transport)) return { tool: null };
    return firewallExecutor.prepare(ctx, change);
  },

  async apply(ctx, change, prior) {
    if (change.section === 'firewall' && change.to !== null && (await firewalldRuns(ctx.transport))) {
      return unresolved(
        `firewalld runs on ${ctx.transport.target} and owns its ruleset (it would replace one loaded under it at its next reload): the ${change.to.backend} ruleset was not loaded; stop and disable firewalld first, or keep its zones as files`,
      );
    }
    return firewallExecutor.apply(ctx, change, prior);
  },

  revert: (ctx, change, prior) => firewallExecutor.revert(ctx, change, prior),
};

// --- users -----------------------------------------------------------------------------------

const DEFAULT_MAIL_DIR = '/var/spool/mail';

interface UserPrior {
  readonly inner: unknown;
  readonly spool: { readonly path: string; readonly existed: boolean };
}

async function spoolOf(transport: Transport, name: string): Promise<UserPrior['spool']> {
  const found = await transport.run(
    `awk '$1 == "MAIL_DIR" { print $2; exit }' /etc/login.defs 2>/dev/null; true`,
  );
  const dir = found.stdout.trim().replace(/\/+$/, '') || DEFAULT_MAIL_DIR;
  const path = checkPath(`${dir}/${name}`, 'MAIL_DIR');
  const exists = await transport.run(sh`[ -e ${path} ] || [ -L ${path} ]`);
  return { path, existed: exists.exitCode === 0 };
}

/**
 * Removes the mail spool useradd made where there was none before: only an empty regular file
 * owned by the user's uid, never one holding mail or one that is a link.
 */
async function dropNewSpool(transport: Transport, spool: UserPrior['spool'], uid: number): Promise<boolean> {
  if (spool.existed) return false;
  const path = checkPath(spool.path, 'spool');
  const { stdout } = await runOk(
    transport,
    `removing the mail spool useradd made (${path})`,
    sh`p=${path}; if [ -f "$p" ] && [ ! -L "$p" ] && [ ! -s "$p" ] && [ "$(stat -c %u -- "$p")" = ${String(uid)} ]; then rm -f -- "$p" && echo removed; fi`,
  );
  return stdout.trim() === 'removed';
}

const uidOf = (change: Change, prior: UserPrior): number | undefined => {
  if (change.section !== 'users') return undefined;
  const inner = prior.inner as { user?: { uid?: number } | null };
  return (change.to as { uid?: number } | null)?.uid ?? inner.user?.uid ?? undefined;
};

/** The user executor, leaving no mail spool behind that the host did not have. */
export const rhelUserExecutor: Executor = {
  kinds: userExecutor.kinds,

  async prepare(ctx: ExecutorContext, change) {
    const inner = await userExecutor.prepare(ctx, change);
    return { inner, spool: await spoolOf(ctx.transport, change.key) } satisfies UserPrior;
  },

  async apply(ctx, change, priorValue) {
    const prior = priorValue as UserPrior;
    const outcome = await userExecutor.apply(ctx, change, prior.inner);
    const uid = uidOf(change, prior);
    if (
      change.kind === 'user.add' &&
      uid !== undefined &&
      (await dropNewSpool(ctx.transport, prior.spool, uid))
    ) {
      return { ...outcome, detail: `${outcome.detail}; the empty mail spool useradd made was removed` };
    }
    return outcome;
  },

  async revert(ctx, change, priorValue) {
    const prior = priorValue as UserPrior;
    const outcome = await userExecutor.revert(ctx, change, prior.inner);
    const uid = uidOf(change, prior);
    if (uid !== undefined && (await dropNewSpool(ctx.transport, prior.spool, uid))) {
      return changed(`${outcome.detail}; the empty mail spool useradd made was removed`);
    }
    return outcome;
  },
};

// --- the composition -------------------------------------------------------------------------

/**
 * The executors for a RHEL-family host: the Debian ones, with those above in place of theirs,
 * and rpm packages installed from `packages` (the package store and an RpmMirror). Without a
 * package source a Delta holding a package Change is refused before anything changes.
 */
export function rhelExecutors(packages?: PackageSource): Executors {
  return executorsFor([
    ...new Set(DEBIAN_EXECUTORS.values()),
    withRelabel(fileExecutor, filePaths),
    withRelabel(sshKeyExecutor, sshKeyPaths),
    withRelabel(dnsExecutor, dnsPaths),
    rhelServiceExecutor,
    rhelServiceRemoveExecutor,
    rhelFirewallExecutor,
    rhelUserExecutor,
    ...(packages === undefined ? [] : [rpmPackageExecutor(packages)]),
  ]);
}
