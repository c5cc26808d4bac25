// Applying a Delta to a host: the Changes in order, each through the executor for its kind,
// each journaled before it touches the host (journal.ts) and marked applied before the next one
// starts. On the first failure everything the journal holds for the operation is reverted, in
// reverse order — the failed Change too, since it may have got half-way. `resume` does the same
// from the journal alone, for a control side that died mid-apply: nothing in memory is needed.
import type { Change, Delta } from '../delta/changes.js';
import { ConflictError, isPersonaError } from '../errors.js';
import type { Transport } from '../transport/transport.js';
import { NoExecutorError } from './errors.js';
import type { ContentSource, Executor, ExecutorContext } from './executors/executor.js';
import { removeBackups } from './executors/files.js';
import type { Executors } from './executors/index.js';
import {
  checkOperation,
  type Journal,
  type JournalEntry,
  type JournalStep,
  MAX_JOURNAL_WRITE,
  type Outcome,
} from './journal.js';

export interface ApplyDeps {
  readonly transport: Transport;
  readonly journal: Journal;
  readonly executors: Executors;
  readonly contents: ContentSource;
  /**
   * Asked before each Change: true when the operation is being stopped (cancelled, or rolled
   * back by a workflow that gave up on this apply). The apply then ends at once, reverting
   * nothing, and leaves the rollback to whoever stopped it.
   */
  readonly shouldStop?: () => Promise<boolean>;
}

/** The apply stopped before a Change because its operation is being stopped. */
export class ApplyStoppedError extends ConflictError {
  constructor(operation: string, seq: number) {
    super(`operation ${operation} is being stopped: its apply ended before change ${seq + 1}`);
    this.name = 'ApplyStoppedError';
  }
}

export interface ChangeResult {
  readonly seq: number;
  readonly kind: Change['kind'];
  readonly key: string;
  readonly outcome: Outcome;
}

export interface RevertFailure {
  readonly seq: number;
  readonly kind: Change['kind'];
  readonly key: string;
  readonly error: string;
}

export interface RollbackResult {
  readonly reverted: readonly ChangeResult[];
  /** Reverts that failed; empty when the host is back as it was. */
  readonly failures: readonly RevertFailure[];
}

export type ApplyResult =
  | { readonly status: 'applied'; readonly operation: string; readonly results: readonly ChangeResult[] }
  | {
      readonly status: 'rolled-back';
      readonly operation: string;
      readonly results: readonly ChangeResult[];
      readonly failed: {
        readonly seq: number;
        readonly kind: Change['kind'];
        readonly key: string;
        readonly error: string;
        readonly code?: string;
      };
      readonly rollback: RollbackResult;
    };

function executorFor(executors: Executors, change: Change): Executor {
  const executor = executors.get(change.kind);
  if (executor === undefined) throw new NoExecutorError(change.kind);
  return executor;
}

const sameChange = (a: Change, b: Change) => JSON.stringify(a) === JSON.stringify(b);

const context = (
  deps: ApplyDeps,
  operation: string,
  seq: number,
  following?: readonly Change[],
): ExecutorContext => ({
  transport: deps.transport,
  operation,
  seq,
  contents: deps.contents,
  ...(following === undefined ? {} : { following }),
});

/**
 * Applies `delta` as `operation`. A retry of the same operation skips what the journal says is
 * applied and finishes a Change it left half-way from the state read before it; a Delta with a
 * kind no executor handles is refused before anything changes.
 */
export async function applyChanges(deps: ApplyDeps, operation: string, delta: Delta): Promise<ApplyResult> {
  checkOperation(operation);
  for (const change of delta.changes) executorFor(deps.executors, change);
  const journaled = new Map((await deps.journal.entries(operation)).map((e) => [e.seq, e]));
  const writer = new ApplyJournal(deps.journal, operation);
  let known = await surveyDelta(deps, delta, journaled, 0);
  const results: ChangeResult[] = [];
  // What this apply changed since the survey: what it read may no longer be so.
  let touched: Change[] = [];
  let seq = 0;
  while (seq < delta.changes.length) {
    const change = delta.changes[seq] as Change;
    let answer = known.get(seq);
    if (answer?.status === 'unchanged' && touched.some((t) => mayAffect(t, change))) {
      // Packages come first in a Delta and change files: after them the host is read again,
      // once, for the Changes still to come, rather than each of them reading it for itself.
      known = await surveyDelta(deps, delta, journaled, seq);
      touched = [];
      answer = known.get(seq);
    }
    if (answer !== undefined) {
      results.push({ seq, kind: change.kind, key: change.key, outcome: answer });
      seq++;
      continue;
    }
    if (deps.shouldStop && (await deps.shouldStop())) {
      await writer.flush();
      throw new ApplyStoppedError(operation, seq);
    }
    let current = seq;
    try {
      const entry = journaled.get(seq);
      if (entry !== undefined) {
        const outcome = await resumeOne(
          deps,
          writer,
          operation,
          seq,
          change,
          entry,
          delta.changes.slice(seq + 1),
        );
        results.push({ seq, kind: change.kind, key: change.key, outcome });
        if (outcome.status === 'changed') touched.push(change);
        seq++;
        continue;
      }
      // A run of Changes none of which can change what another reads (files on unrelated
      // paths) is read first, journaled in one write, then applied: one journal round trip for
      // the run instead of one per Change.
      const run = await prepareRun(deps, operation, delta, runFrom(delta, seq, known, journaled, touched));
      await writer.begin(
        run.map(({ seq: at, prior }) => ({ seq: at, change: delta.changes[at] as Change, prior })),
      );
      // The run's Changes touch unrelated paths: they go to the host together (the transport
      // keeps a few commands in flight), and the first that fails, in Delta order, is the
      // failure. All of them are journaled, so a rollback reverts any that landed.
      const settled = await Promise.allSettled(
        run.map(({ seq: at, prior }) => {
          const c = delta.changes[at] as Change;
          const ctx = { ...context(deps, operation, at, delta.changes.slice(at + 1)), fresh: true };
          return executorFor(deps.executors, c).apply(ctx, c, prior);
        }),
      );
      const inRun = new Map(run.map(({ seq: at }, i) => [at, settled[i] as PromiseSettledResult<Outcome>]));
      const last = run.at(-1)?.seq ?? seq;
      // In Delta order: the run's outcomes, and those the survey gave for the positions the run
      // stepped over (which nothing in the run could change).
      for (let at = seq; at <= last; at++) {
        current = at;
        const c = delta.changes[at] as Change;
        const result = inRun.get(at);
        if (result === undefined) {
          results.push({ seq: at, kind: c.kind, key: c.key, outcome: known.get(at) as Outcome });
          continue;
        }
        if (result.status === 'rejected') throw result.reason;
        writer.applied(at, result.value);
        results.push({ seq: at, kind: c.kind, key: c.key, outcome: result.value });
        if (result.value.status === 'changed') touched.push(c);
      }
      seq = last + 1;
    } catch (error) {
      // The journal holds another Delta for this operation, or another apply of it is writing
      // the same positions: reverting would undo that one's work. Stop without touching the host.
      await writer.flush().catch(() => undefined);
      if (error instanceof ConflictError) throw error;
      const failedChange = delta.changes[current] as Change;
      const rollback = await revertOperation(deps, operation);
      return {
        status: 'rolled-back',
        operation,
        results,
        failed: {
          seq: current,
          kind: failedChange.kind,
          key: failedChange.key,
          error: error instanceof Error ? error.message : String(error),
          ...(isPersonaError(error) ? { code: error.code } : {}),
        },
        rollback,
      };
    }
  }
  await writer.flush();
  return { status: 'applied', operation, results };
}

/**
 * The journal as one apply writes it: the `applied` marks are held until the next Changes
 * begin, and all go in one atomic write where the journal can, so that a run of Changes costs
 * one round trip to the journal instead of two per Change. The held marks are written before
 * the next Change touches the host, and before the apply returns or stops; a crash in between
 * leaves entries `applying`, which a resumed apply finishes and a rollback reverts, as for any
 * crash after a Change ran.
 */
class ApplyJournal {
  private held: { readonly seq: number; readonly outcome: Outcome }[] = [];

  constructor(
    private readonly journal: Journal,
    private readonly operation: string,
  ) {}

  async begin(entries: JournalStep['begin']): Promise<void> {
    const applied = this.held;
    this.held = [];
    if (this.journal.write !== undefined && applied.length + entries.length <= MAX_JOURNAL_WRITE) {
      await this.journal.write(this.operation, { applied, begin: entries });
      return;
    }
    await this.markApplied(applied);
    for (const e of entries) await this.journal.begin(this.operation, e.seq, e.change, e.prior);
  }

  applied(seq: number, outcome: Outcome): void {
    this.held.push({ seq, outcome });
  }

  async flush(): Promise<void> {
    const applied = this.held;
    this.held = [];
    await this.markApplied(applied);
  }

  private async markApplied(applied: JournalStep['applied']): Promise<void> {
    if (applied.length === 0) return;
    if (this.journal.write !== undefined && applied.length <= MAX_JOURNAL_WRITE && applied.length > 1) {
      await this.journal.write(this.operation, { applied, begin: [] });
      return;
    }
    for (const a of applied) await this.journal.applied(this.operation, a.seq, a.outcome);
  }
}

/** The longest run of Changes journaled in one write (with the marks held before it). */
const MAX_RUN = 32;

/**
 * The positions from `seq` that can be read before any of them is applied: not journaled, not
 * answered by the survey, and none able to change what a later one reads (mayAffect). A
 * position the survey answered is stepped over while neither the run nor what was applied before
 * it may have changed its answer; any other position ends the run. Always at least `seq`.
 */
function runFrom(
  delta: Delta,
  seq: number,
  known: ReadonlyMap<number, Outcome>,
  journaled: ReadonlyMap<number, JournalEntry>,
  touched: readonly Change[],
): number[] {
  const run = [seq];
  for (let at = seq + 1; at < delta.changes.length && run.length < MAX_RUN; at++) {
    if (journaled.has(at)) break;
    const later = delta.changes[at] as Change;
    const affects = (earlier: Change) => mayAffect(earlier, later);
    if (run.some((r) => affects(delta.changes[r] as Change))) break;
    if (known.has(at)) {
      if (touched.some(affects)) break;
      continue;
    }
    run.push(at);
  }
  return run;
}

/**
 * Each Change of the run read by its executor, all at once (they read unrelated paths). A
 * Change after the first whose read fails ends the run there: it is read again on its own, at its own turn, and fails there, after
 * the ones before it, as it would have without the run.
 */
async function prepareRun(
  deps: ApplyDeps,
  operation: string,
  delta: Delta,
  run: readonly number[],
): Promise<{ readonly seq: number; readonly prior: unknown }[]> {
  const settled = await Promise.allSettled(
    run.map((seq) => {
      const change = delta.changes[seq] as Change;
      const ctx = context(deps, operation, seq, delta.changes.slice(seq + 1));
      return executorFor(deps.executors, change).prepare(ctx, change);
    }),
  );
  const prepared: { seq: number; prior: unknown }[] = [];
  for (const [i, seq] of run.entries()) {
    const result = settled[i] as PromiseSettledResult<unknown>;
    if (result.status === 'fulfilled') {
      prepared.push({ seq, prior: result.value });
      continue;
    }
    if (prepared.length === 0) throw result.reason;
    // What was read after it is dropped; a copy it kept on the host is overwritten when its
    // Change is read again, and goes with the operation's other copies.
    break;
  }
  return prepared;
}

/**
 * Each executor's survey of its Changes not yet journaled, in one round trip per executor; the
 * outcomes known before anything is applied, by position. An executor without a survey, or
 * whose survey fails, answers nothing: its Changes go through prepare and apply.
 */
async function surveyDelta(
  deps: ApplyDeps,
  delta: Delta,
  journaled: ReadonlyMap<number, JournalEntry>,
  from: number,
): Promise<Map<number, Outcome>> {
  const byExecutor = new Map<Executor, number[]>();
  for (const [seq, change] of delta.changes.entries()) {
    if (seq < from || journaled.has(seq)) continue;
    const executor = executorFor(deps.executors, change);
    if (executor.survey === undefined) continue;
    byExecutor.set(executor, [...(byExecutor.get(executor) ?? []), seq]);
  }
  const known = new Map<number, Outcome>();
  const ctx = { transport: deps.transport, contents: deps.contents };
  for (const [executor, seqs] of byExecutor) {
    const outcomes = await (executor.survey as NonNullable<Executor['survey']>)(
      ctx,
      seqs.map((seq) => delta.changes[seq] as Change),
    ).catch(() => []);
    for (const [i, seq] of seqs.entries()) {
      const outcome = outcomes[i];
      if (outcome !== undefined && outcome.status !== 'changed') known.set(seq, outcome);
    }
  }
  return known;
}

/**
 * Whether applying `earlier` may have changed what a survey read for `later`: a file Change
 * touches its own path (and folders it makes above it), so files on unrelated paths stay as
 * surveyed; any other kind (a package, a user, a service) may change any file, so it may.
 */
function mayAffect(earlier: Change, later: Change): boolean {
  // The application's own Change holds nothing on the host: nothing applied changes its answer.
  if (later.section === 'application') return false;
  if (earlier.section !== 'files' || later.section !== 'files') return true;
  const a = earlier.key;
  const b = later.key;
  return a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

/** A Change the journal already holds for this operation: skipped, or finished from its prior. */
async function resumeOne(
  deps: ApplyDeps,
  writer: ApplyJournal,
  operation: string,
  seq: number,
  change: Change,
  entry: JournalEntry,
  following: readonly Change[],
): Promise<Outcome> {
  if (!sameChange(entry.change, change) || entry.state === 'reverted') {
    throw new ConflictError(
      `operation ${operation} journaled another change ${seq + 1}, or rolled it back: apply it as a new operation`,
      seq,
    );
  }
  if (entry.state === 'applied' && entry.outcome !== undefined) {
    return { status: 'unchanged', detail: `already applied by this operation: ${entry.outcome.detail}` };
  }
  // Written, never marked applied: the host may hold it or not; apply is idempotent from the
  // state read before, which is what the journal kept.
  await writer.flush();
  const outcome = await executorFor(deps.executors, change).apply(
    context(deps, operation, seq, following),
    change,
    entry.prior,
  );
  writer.applied(seq, outcome);
  return outcome;
}

/**
 * Reverts every journaled Change of the operation not yet reverted, last first, then drops the
 * copies kept on the host. A revert that fails is reported and the others still run: each
 * revert puts back its own entry, whatever became of the others.
 */
export async function revertOperation(deps: ApplyDeps, operation: string): Promise<RollbackResult> {
  checkOperation(operation);
  const entries = await deps.journal.entries(operation);
  const reverted: ChangeResult[] = [];
  const failures: RevertFailure[] = [];
  for (const entry of entries.toReversed()) {
    if (entry.state === 'reverted') continue;
    const { change, seq } = entry;
    try {
      const outcome = await executorFor(deps.executors, change).revert(
        context(deps, operation, seq),
        change,
        entry.prior,
      );
      await deps.journal.reverted(operation, seq, outcome);
      reverted.push({ seq, kind: change.kind, key: change.key, outcome });
    } catch (error) {
      failures.push({
        seq,
        kind: change.kind,
        key: change.key,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  // The kept copies are what a failed revert would retry from: they stay until all went back.
  if (failures.length === 0) await removeBackups(deps.transport, operation);
  return { reverted, failures };
}

/** After the control side died mid-apply: revert what the journal says was done, from it alone. */
export const resume = revertOperation;

/** The operation is final (validated): the copies kept for its rollback are dropped. */
export async function commitOperation(deps: Pick<ApplyDeps, 'transport'>, operation: string): Promise<void> {
  await removeBackups(deps.transport, checkOperation(operation));
}
