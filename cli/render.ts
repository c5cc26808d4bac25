// How results look to people: aligned tables and coloured diffs. `--json` bypasses all of it.
import pc from 'picocolors';

const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return [pc.bold(line(headers)), ...rows.map(line)].join('\n');
}

export const ago = (iso: string, now = Date.now()): string => {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
};

export interface RenderableChange {
  readonly kind: string;
  readonly key: string;
  readonly from: unknown;
  readonly to: unknown;
  readonly disruptive?: boolean;
}

const short = (v: unknown): string => {
  if (v === undefined || v === null) return '∅';
  if (typeof v === 'string') {
    const oneLine = v.includes('\n') ? `${v.split('\n').length} lines` : v;
    return oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
  }
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

/** The fields that differ between two entries, as `field: old → new`. */
export function fieldChanges(from: unknown, to: unknown): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(from) || !isObj(to)) return from === to ? [] : [`${short(from)} → ${short(to)}`];
  const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
  return keys
    .filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]))
    .map((k) => `${k}: ${short(from[k])} → ${short(to[k])}`);
}

const ADDS = /\.(install|add|attach|create|load|grant|authorize)$/;
const REMOVES = /\.(remove|detach|unload|revoke|unset|delete|stop|disable)$/;

export function renderChange(change: RenderableChange): string {
  const marker = ADDS.test(change.kind) ? pc.green('+') : REMOVES.test(change.kind) ? pc.red('-') : pc.yellow('~');
  const colour = ADDS.test(change.kind) ? pc.green : REMOVES.test(change.kind) ? pc.red : pc.yellow;
  const detail =
    change.from === null || change.from === undefined || change.to === null || change.to === undefined
      ? ''
      : fieldChanges(change.from, change.to).join(', ');
  const flag = change.disruptive ? pc.magenta(' [disruptive]') : '';
  return `${marker} ${colour(change.kind.padEnd(20))} ${pc.bold(change.key)}${detail ? pc.dim(`  ${detail}`) : ''}${flag}`;
}

export function renderDelta(delta: {
  from?: { name?: string; version?: number };
  to?: { name?: string; version?: number };
  changes: readonly RenderableChange[];
}): string {
  const ref = (r?: { name?: string; version?: number }) => (r ? `${r.name ?? '?'}@${r.version ?? '?'}` : '?');
  const disruptive = delta.changes.filter((c) => c.disruptive).length;
  const head = pc.bold(`${ref(delta.from)} → ${ref(delta.to)}`);
  if (delta.changes.length === 0) return `${head}\n${pc.dim('no changes')}`;
  const lines = delta.changes.map(renderChange);
  const noun = delta.changes.length === 1 ? 'change' : 'changes';
  const tail = `${delta.changes.length} ${noun}${disruptive > 0 ? `, ${disruptive} disruptive` : ''}`;
  return [head, ...lines, pc.dim(tail)].join('\n');
}
