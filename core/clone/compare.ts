// Whether a clone is its source: the Delta from the clone to the source with the clone's own
// identity (what a plan for it would change) should be empty. A secret reference names the host
// it was sealed for, so the same password on source and clone has two references: such pairs are
// compared by the values they pin, opened in memory, never by their keys.
import { createHash } from 'node:crypto';
import type { Change } from '../delta/changes.js';
import { diff } from '../delta/diff.js';
import { sameValue } from '../delta/sections.js';
import { translateIdentity } from '../plan/identity.js';
import type { Profile } from '../profile/schema.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { displayValue } from '../transport/shell.js';

interface LocalRef {
  provider: 'local';
  key: string;
  digest?: string;
}

const isLocalRef = (v: unknown): v is LocalRef =>
  typeof v === 'object' &&
  v !== null &&
  (v as { provider?: unknown }).provider === 'local' &&
  typeof (v as { key?: unknown }).key === 'string';

/** The value with every sealed reference replaced by the SHA-256 of what it pins. */
async function openedForComparison(value: unknown, store: SnapshotStore): Promise<unknown> {
  if (Array.isArray(value)) return Promise.all(value.map((v) => openedForComparison(v, store)));
  if (value === null || typeof value !== 'object') return value;
  if (isLocalRef(value)) {
    if (value.digest === undefined) return { unpinned: value.key };
    try {
      const bytes = await store.secrets.get(value.key, value.digest);
      return { sealedSha256: createHash('sha256').update(bytes).digest('hex') };
    } catch {
      return { unopened: value.key };
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // A file that holds secrets keeps a hash keyed by the store, of the same content: compared
    // through its reference instead.
    if (k === 'hash' && typeof v === 'string' && v.startsWith('hmac-sha256:')) continue;
    out[k] = await openedForComparison(v, store);
  }
  return out;
}

async function differs(change: Change, store: SnapshotStore): Promise<boolean> {
  const c = change as { from: unknown; to: unknown };
  if (c.from === null || c.to === null) return true;
  return !sameValue(await openedForComparison(c.from, store), await openedForComparison(c.to, store));
}

/** Which fields of an entry differ (`: nice 0 → 5`), for a reader to see why without the values of secrets. */
function fieldsDiffering(change: Change): string {
  const c = change as { from: unknown; to: unknown };
  if (typeof c.from !== 'object' || typeof c.to !== 'object' || c.from === null || c.to === null) return '';
  const a = c.from as Record<string, unknown>;
  const b = c.to as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
    (k) => !sameValue(a[k] ?? null, b[k] ?? null),
  );
  const shown = keys.map((k) =>
    /ref$|secret/i.test(k)
      ? `${k} differs`
      : `${k} ${displayValue(JSON.stringify(a[k]) ?? 'none')} → ${displayValue(JSON.stringify(b[k]) ?? 'none')}`,
  );
  return shown.length === 0 ? '' : `: ${shown.join(', ').slice(0, 300)}`;
}

/**
 * The source with each sealed entry the target holds with the same value replaced by the
 * target's own entry (files and environment values whose references name another host): a
 * plan then changes nothing where nothing differs, and a second plan onto a clone is empty.
 */
export async function alignSealed(source: Profile, target: Profile, store: SnapshotStore): Promise<Profile> {
  const same = async (a: unknown, b: unknown) =>
    sameValue(await openedForComparison(a, store), await openedForComparison(b, store));
  const files = await Promise.all(
    source.spec.configuration.files.map(async (f) => {
      if (f.secretRef === undefined) return f;
      const theirs = target.spec.configuration.files.find((t) => t.path === f.path);
      return theirs !== undefined && (await same(f, theirs)) ? theirs : f;
    }),
  );
  const env = await Promise.all(
    source.spec.configuration.env.map(async (e) => {
      if (e.secretRef === undefined) return e;
      const theirs = target.spec.configuration.env.find((t) => t.name === e.name && t.scope === e.scope);
      return theirs !== undefined && (await same(e, theirs)) ? theirs : e;
    }),
  );
  return { ...source, spec: { ...source.spec, configuration: { ...source.spec.configuration, files, env } } };
}

/**
 * What still differs between a clone and its source, as `kind key` lines: empty when the clone
 * is the source but for the identity fields (core/plan/IDENTITY.md).
 */
export async function behaviouralDifferences(
  source: Profile,
  clone: Profile,
  store: SnapshotStore,
): Promise<string[]> {
  const { profile: desired } = translateIdentity(source, clone);
  const out: string[] = [];
  for (const change of diff(clone, desired).changes) {
    if (await differs(change, store))
      out.push(`${change.kind} ${displayValue(change.key)}${fieldsDiffering(change)}`);
  }
  return out;
}
