// The Delta of a morph: the host's Profile with the target laid over it, diffed against the
// Profile as captured, so the Delta holds only what differs (a sysctl already at its value, a
// file already with its content, mode and owner, a service already in its state: nothing). A
// service is restarted only when a file it reads changed (the file names it in `restarts`) and
// it runs after the morph without the Delta starting it; otherwise it keeps its process.
import { createHash } from 'node:crypto';
import type { Change, Delta } from '../delta/changes.js';
import { diff } from '../delta/diff.js';
import type { ConfigFile, Profile } from '../profile/schema.js';
import type { TargetProfile } from './target.js';

/** The sections a morph may change: anything else in its Delta is a bug, refused before it applies. */
export const MORPH_SECTIONS = ['sysctl', 'files', 'services'] as const;

export interface MorphUnresolved {
  readonly kind: string;
  readonly key: string;
  readonly detail: string;
}

export interface MorphPlan {
  readonly delta: Delta;
  /** Services to restart after the Delta, each with the changed files that make it so. */
  readonly restarts: readonly { readonly service: string; readonly because: readonly string[] }[];
  /** What the target asks that a morph cannot do (a service the host does not have). */
  readonly unresolved: readonly MorphUnresolved[];
}

export const contentHash = (content: string): string =>
  `sha256:${createHash('sha256').update(content, 'utf8').digest('hex')}`;

const mode4 = (mode: string) => mode.padStart(4, '0');

function fileEntry(f: TargetProfile['spec']['files'][number]): ConfigFile {
  return {
    path: f.path,
    type: 'file',
    hash: contentHash(f.content),
    size: Buffer.byteLength(f.content, 'utf8'),
    mode: mode4(f.mode),
    owner: f.owner,
    group: f.group,
  };
}

/** The host's Profile as the target would leave it. */
export function desiredProfile(
  current: Profile,
  target: TargetProfile,
): { profile: Profile; unresolved: MorphUnresolved[] } {
  const profile = structuredClone(current);
  const unresolved: MorphUnresolved[] = [];
  const spec = profile.spec;
  for (const [key, value] of Object.entries(target.spec.sysctl)) spec.configuration.sysctl[key] = value;
  for (const f of target.spec.files) {
    const at = spec.configuration.files.findIndex((x) => x.path === f.path);
    const before = at >= 0 ? spec.configuration.files[at] : undefined;
    // A size the capture did not record stays out of the comparison, as it is out of the entry.
    const { size, ...rest } = fileEntry(f);
    const merged: ConfigFile = before !== undefined && before.size === undefined ? rest : { ...rest, size };
    if (at >= 0) spec.configuration.files[at] = merged;
    else spec.configuration.files.push(merged);
  }
  for (const s of target.spec.services) {
    const service = spec.services.find((x) => x.name === s.name);
    if (service === undefined) {
      unresolved.push({
        kind: 'service',
        key: s.name,
        detail: 'the host has no such service: a morph configures software, it does not install it',
      });
      continue;
    }
    service.state = s.state;
    if (s.enabled !== undefined) service.enabled = s.enabled;
  }
  return { profile, unresolved };
}

/** The morph's plan: the Delta from the host's Profile to the desired one, and the restarts it implies. */
export function planMorph(
  current: Profile,
  target: TargetProfile,
  refs: { version?: number } = {},
): MorphPlan {
  const { profile, unresolved } = desiredProfile(current, target);
  const delta = diff(current, profile, {
    from: { name: current.metadata.name, ...(refs.version === undefined ? {} : { version: refs.version }) },
    to: { name: target.metadata.name },
  });
  for (const c of delta.changes)
    if (!(MORPH_SECTIONS as readonly string[]).includes(c.section))
      unresolved.push({
        kind: c.kind,
        key: c.key,
        detail: 'a morph changes sysctl, files and services only',
      });
  return { delta, restarts: restartsOf(current, profile, delta.changes, target), unresolved };
}

/**
 * Which running services read a file the Delta writes. A service the Delta starts reads its
 * files as it starts, and one that ends stopped has nothing to read them: neither is restarted.
 */
export function restartsOf(
  current: Profile,
  desired: Profile,
  changes: readonly Change[],
  target: TargetProfile,
): MorphPlan['restarts'] {
  const written = new Set(changes.filter((c) => c.section === 'files').map((c) => c.key));
  const started = new Set(changes.filter((c) => c.kind === 'service.start').map((c) => c.key));
  const because = new Map<string, string[]>();
  for (const f of target.spec.files) {
    if (!written.has(f.path)) continue;
    for (const s of f.restarts) because.set(s, [...(because.get(s) ?? []), f.path]);
  }
  const out: { service: string; because: string[] }[] = [];
  for (const [service, paths] of [...because].sort(([a], [b]) => a.localeCompare(b))) {
    const after = desired.spec.services.find((s) => s.name === service);
    const before = current.spec.services.find((s) => s.name === service);
    if (after?.state !== 'running' || before === undefined || started.has(service)) continue;
    out.push({ service, because: paths });
  }
  return out;
}
