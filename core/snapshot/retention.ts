// Retention: which snapshots a policy keeps, and forgetting the others.
import { InvalidInputError } from '../errors.js';
import type { SnapshotRecord, SnapshotRecords } from './records.js';

export interface RetentionPolicy {
  readonly keepLast?: number;
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
}

const isoDay = (d: Date) => d.toISOString().slice(0, 10);
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  return `${t.getUTCFullYear()}-W${Math.ceil(((t.getTime() - yearStart) / 86400000 + 1) / 7)}`;
}

/** Which records a retention policy keeps: the newest of each of the last N ... */
export function selectKept(records: readonly SnapshotRecord[], policy: RetentionPolicy): Set<number> {
  const newest = [...records].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.version - a.version);
  const kept = new Set<number>();
  for (const r of newest.slice(0, policy.keepLast ?? 0)) kept.add(r.version);
  const bucketed = (n: number | undefined, bucket: (d: Date) => string) => {
    const seen = new Set<string>();
    for (const r of newest) {
      if (seen.size >= (n ?? 0)) break;
      const b = bucket(new Date(r.createdAt));
      if (!seen.has(b)) {
        seen.add(b);
        kept.add(r.version);
      }
    }
  };
  bucketed(policy.keepDaily, isoDay);
  bucketed(policy.keepWeekly, isoWeek);
  return kept;
}

/** Forgets snapshots of a host that the policy does not keep. Their data goes at the next gc. */
export async function forgetSnapshots(
  records: SnapshotRecords,
  host: string,
  policy: RetentionPolicy,
): Promise<{ kept: number[]; removed: number[] }> {
  if (!policy.keepLast && !policy.keepDaily && !policy.keepWeekly) {
    throw new InvalidInputError('say what to keep', [
      { path: 'policy', message: 'give at least one of keepLast, keepDaily, keepWeekly' },
    ]);
  }
  const all = await records.list(host);
  const kept = selectKept(all, policy);
  const removed: number[] = [];
  for (const r of all) {
    if (!kept.has(r.version)) {
      await records.delete(host, r.version);
      removed.push(r.version);
    }
  }
  return { kept: [...kept].sort((a, b) => a - b), removed: removed.sort((a, b) => a - b) };
}
