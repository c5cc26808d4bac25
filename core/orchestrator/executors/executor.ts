// What a host executor is: for one family of Change kinds, read what the Change would replace
// (prepare, before anything changes; the journal stores it), apply the Change, and revert it
// from what prepare read. Apply compares the host with the Change first, so a second apply
// finds nothing to do and says so; revert puts back what was there, and does nothing where
// that is already so, so a rollback interrupted half-way can simply run again.
import type { Change, ChangeKind } from '../../delta/changes.js';
import type { SecretRef } from '../../profile/schema.js';
import type { RunResult, Transport } from '../../transport/transport.js';
import { HostCommandError } from '../errors.js';
import type { Outcome } from '../journal.js';

/** The bytes of a file's content, by the content hash its Change names. */
export interface ContentSource {
  read(hash: string, path: string): Promise<Uint8Array>;
  /**
   * A sealed value the source holds by reference (a file that holds secrets, a secret
   * environment value), opened in memory for this write only. `field` names where the reference
   * sits, for messages. Absent where the control side has no secrets to open: a Change that
   * needs one then fails, naming it.
   */
  readSealed?(ref: SecretRef, field: string): Promise<Uint8Array>;
}

export interface ExecutorContext {
  readonly transport: Transport;
  readonly operation: string;
  /** The Change's position in the Delta: it names the Change's backup on the host. */
  readonly seq: number;
  readonly contents: ContentSource;
  /**
   * The Changes after this one in its Delta, when applying: packages that depend on one another
   * (nginx and the modules that need its ABI) install together with the first of them.
   */
  readonly following?: readonly Change[];
  /**
   * Apply runs right after its own prepare, in this process, with only the journal write
   * between: what prepare read is what the host holds, and an executor may take it as the
   * host's state rather than read it again. Never set for an apply resumed from the journal.
   */
  readonly fresh?: boolean;
}

export interface Executor {
  readonly kinds: readonly ChangeKind[];
  /** What the Change will replace, as JSON; taken before the journal entry is written. */
  prepare(ctx: ExecutorContext, change: Change): Promise<unknown>;
  /**
   * Applies the Change, comparing it with the host as it is now rather than with `prior` (which
   * sets only defaults, such as the mode a replaced file had): an apply run again after a crash
   * then finds its own earlier work and leaves it.
   */
  apply(ctx: ExecutorContext, change: Change, prior: unknown): Promise<Outcome>;
  revert(ctx: ExecutorContext, change: Change, prior: unknown): Promise<Outcome>;
  /**
   * Optional: the outcome of many of its Changes that can be known before any of them is
   * applied, in one round trip: `unchanged` when the host already is as the Change would leave
   * it, `unresolved` when the Change can never be applied as given; `undefined` for a Change that
   * must go through prepare and apply. A Change answered here is neither journaled nor touched,
   * so a Delta that is mostly done already (a re-clone, a second apply) costs one read, not a
   * journal entry and a few commands per Change. The apply trusts an `unchanged` only while no
   * Change applied before it may have changed what was read (see apply.ts).
   */
  survey?(ctx: SurveyContext, changes: readonly Change[]): Promise<readonly (Outcome | undefined)[]>;
}

export interface SurveyContext {
  readonly transport: Transport;
  readonly contents: ContentSource;
}

export const changed = (detail: string): Outcome => ({ status: 'changed', detail });
export const unchanged = (detail: string): Outcome => ({ status: 'unchanged', detail });
export const unresolved = (detail: string): Outcome => ({ status: 'unresolved', detail });

/**
 * A probe's answer: its own exit statuses say yes (0) or no (1–125, as each tool defines them;
 * 255 is sysctl's "no such key"), but 126 and above (could not run, not found, killed by a
 * signal) say nothing about the host and fail the Change, naming `what`, instead of passing for
 * a "no" on which the executor would act.
 */
export function probed(transport: Transport, what: string, command: string, result: RunResult): RunResult {
  if (result.exitCode >= 126 && result.exitCode !== 255)
    throw new HostCommandError(what, command, result.exitCode, result.stderr, transport.target);
  return result;
}

/** Runs a probe (see `probed`). */
export async function probe(transport: Transport, what: string, command: string): Promise<RunResult> {
  return probed(transport, what, command, await transport.run(command));
}

/** Runs a command and returns its result; a non-zero exit is a HostCommandError naming `what`. */
export async function runOk(
  transport: Transport,
  what: string,
  command: string,
  stdin?: Uint8Array | string,
): Promise<RunResult> {
  const result = await transport.run(command, stdin === undefined ? {} : { stdin });
  if (result.exitCode !== 0) {
    throw new HostCommandError(what, command, result.exitCode, result.stderr, transport.target);
  }
  return result;
}

// Names of users and groups as shadow's useradd accepts them by default, and no longer than
// utmp holds: nothing a program could read as an option or a separator.
const ACCOUNT_NAME = /^[a-z_][a-z0-9_-]{0,30}\$?$/;

export function accountNameProblem(name: string): string | undefined {
  return ACCOUNT_NAME.test(name)
    ? undefined
    : 'is not a user or group name (lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32)';
}
