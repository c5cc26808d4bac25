// bandwidth.set / bandwidth.unset: an egress rate limit on one interface, as a token bucket
// (tc-tbf) at the interface's root under Persona's own handle. Set is `tc qdisc replace`, so a
// limit already there is changed in one step; unset is `tc qdisc del ... root`, which gives the
// interface back the kernel's default qdisc. The root qdisc the interface had is what prepare
// reads and revert puts back: the kernel's default (handle 0:) by deleting Persona's, Persona's
// own tbf by replacing it with the rate it had. A root qdisc someone else put there (an htb
// tree, fq, a tbf under another handle) is not Persona's to replace: the Change is unresolved.
// iproute2's tc takes the same words on Debian and RHEL, so one executor serves both families.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, probe, runOk, unchanged, unresolved } from './executor.js';

/** The handle of Persona's root qdisc: how a limit of its own is told from someone else's. */
export const PERSONA_QDISC_HANDLE = '9e50:';

// An interface name as the kernel takes it (IFNAMSIZ - 1), never one a program reads as an
// option or a shell reads as more than a word.
const INTERFACE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;

/** The interface's root qdisc as tc -j prints it, reduced to what a revert needs. */
export interface RootQdisc {
  /** `default`: the kernel's own (handle 0:); `persona`: Persona's tbf; `other`: someone else's. */
  readonly owner: 'default' | 'persona' | 'other';
  readonly kind: string;
  readonly handle: string;
  /** Persona's tbf only: its rate in bits per second. */
  readonly rateBps?: number;
}

type BandwidthChange = Extract<Change, { section: 'bandwidth' }>;

/** The Change, its interface checked against the grammar before any command is built. */
export function bandwidthChange(change: Change): BandwidthChange {
  if (change.section !== 'bandwidth') throw new TypeError(`${change.kind} is not a bandwidth change`);
  interfaceName(change.key, 'key');
  for (const side of ['from', 'to'] as const) {
    const limit = change[side];
    if (limit === null) continue;
    interfaceName(limit.interface, `${side}.interface`);
    if (!(Number.isFinite(limit.egressMbps) && limit.egressMbps > 0 && limit.egressMbps <= 400_000))
      throw new InvalidInputError(`${side}.egressMbps ${limit.egressMbps} is not a rate tc can take`, [
        { path: `${side}.egressMbps`, message: 'expected a positive rate of at most 400000 Mbit/s' },
      ]);
  }
  return change;
}

/** An interface name in the kernel's grammar; anything else is refused, naming `field`. */
export function interfaceName(name: string, field: string): string {
  if (!INTERFACE.test(name) || name === '.' || name === '..')
    throw new InvalidInputError(`interface ${displayValue(name)} is not a network interface name`, [
      {
        path: field,
        message: 'expected at most 15 letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
      },
    ]);
  return name;
}

/** Rates to tc in kbit/s, whole: a Mbit/s figure with a fraction keeps its precision. */
const kbit = (mbps: number) => Math.max(1, Math.round(mbps * 1000));

/**
 * tbf's bucket: at least 10 ms of traffic at the rate (and one large frame), so that a high rate
 * is not held back by a bucket smaller than what the kernel hands over per timer tick; 50 ms of
 * latency before packets are dropped rather than queued.
 */
export function tbfArguments(mbps: number): string[] {
  const burstBytes = Math.max(16 * 1024, Math.ceil((mbps * 1_000_000) / 8 / 100));
  return ['rate', `${kbit(mbps)}kbit`, 'burst', String(burstBytes), 'latency', '50ms'];
}

/** Whether the host has tc: iproute2 on Debian, the separate iproute-tc package on RHEL 8 and on. */
export async function hasTc(transport: Transport): Promise<boolean> {
  return (await transport.run('command -v tc >/dev/null 2>&1')).exitCode === 0;
}

export const NO_TC = 'the host has no tc (iproute2; on RHEL the iproute-tc package)';

export async function readRootQdisc(transport: Transport, name: string): Promise<RootQdisc | null> {
  interfaceName(name, 'interface');
  const command = sh`tc -j qdisc show dev ${name} root`;
  const result = await probe(transport, `reading the root qdisc of ${name}`, command);
  if (result.exitCode !== 0) {
    // tc says "Cannot find device" for an interface the host does not have.
    if (/cannot find device/i.test(result.stderr)) return null;
    throw new HostStateConflictError(
      `tc could not read the qdisc of ${name}: ${result.stderr.trim().slice(0, 200)}`,
      'bandwidth.set',
      name,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout || '[]');
  } catch {
    throw new HostStateConflictError(`tc printed no JSON for ${name}`, 'bandwidth.set', name);
  }
  const root = (Array.isArray(parsed) ? parsed : []).find(
    (q): q is { kind?: unknown; handle?: unknown; root?: unknown; options?: { rate?: unknown } } =>
      typeof q === 'object' && q !== null && (q as { root?: unknown }).root === true,
  );
  const kind = typeof root?.kind === 'string' ? root.kind : 'noqueue';
  const handle = typeof root?.handle === 'string' ? root.handle : '0:';
  if (kind === 'tbf' && handle === PERSONA_QDISC_HANDLE) {
    // tc -j prints tbf's rate in bytes per second.
    const rate = Number(root?.options?.rate);
    return { owner: 'persona', kind, handle, ...(Number.isFinite(rate) ? { rateBps: rate * 8 } : {}) };
  }
  return { owner: handle === '0:' ? 'default' : 'other', kind, handle };
}

/** Whether Persona's tbf runs at `mbps`, within tc's own rounding of the rate. */
export const runsAt = (q: RootQdisc | null, mbps: number): boolean =>
  q?.owner === 'persona' && q.rateBps !== undefined && Math.abs(q.rateBps - kbit(mbps) * 1000) <= 8 * 1000;

async function setLimit(transport: Transport, name: string, mbps: number): Promise<void> {
  await runOk(
    transport,
    `limiting the egress of ${name}`,
    sh`tc qdisc replace dev ${name} root handle ${PERSONA_QDISC_HANDLE} tbf ${tbfArguments(mbps)}`,
  );
}

async function dropLimit(transport: Transport, name: string): Promise<void> {
  await runOk(transport, `removing the egress limit of ${name}`, sh`tc qdisc del dev ${name} root`);
}

const someoneElses = (name: string, q: RootQdisc) =>
  unresolved(
    `${name} has a root qdisc of its own (${q.kind} ${q.handle}) that Persona did not put there: it is left alone`,
  );

export const bandwidthExecutor: Executor = {
  kinds: ['bandwidth.set', 'bandwidth.unset'],

  async prepare(ctx, change) {
    const c = bandwidthChange(change);
    return (await hasTc(ctx.transport)) ? readRootQdisc(ctx.transport, c.key) : null;
  },

  async apply(ctx, change) {
    const c = bandwidthChange(change);
    if (!(await hasTc(ctx.transport))) return unresolved(NO_TC);
    const now = await readRootQdisc(ctx.transport, c.key);
    if (now === null) {
      throw new HostStateConflictError(`the host has no interface ${c.key}`, c.kind, c.key);
    }
    if (now.owner === 'other') return someoneElses(c.key, now);
    if (c.kind === 'bandwidth.unset' || c.to === null) {
      if (now.owner === 'default') return unchanged(`${c.key} has no egress limit`);
      await dropLimit(ctx.transport, c.key);
      return changed(`${c.key}: egress limit removed`);
    }
    if (runsAt(now, c.to.egressMbps))
      return unchanged(`${c.key} is already limited to ${c.to.egressMbps} Mbit/s`);
    await setLimit(ctx.transport, c.key, c.to.egressMbps);
    return changed(`${c.key}: egress limited to ${c.to.egressMbps} Mbit/s`);
  },

  async revert(ctx, change, priorValue) {
    const c = bandwidthChange(change);
    const prior = priorValue as RootQdisc | null;
    if (prior === null || prior.owner === 'other') return unchanged(`${c.key} was not changed`);
    const now = await readRootQdisc(ctx.transport, c.key);
    if (now === null || now.owner === 'other') return unchanged(`${c.key} is not Persona's to put back`);
    if (prior.owner === 'default') {
      if (now.owner === 'default') return unchanged(`${c.key} has no egress limit, as before`);
      await dropLimit(ctx.transport, c.key);
      return changed(`${c.key}: egress limit removed, as before`);
    }
    const mbps = (prior.rateBps ?? 0) / 1_000_000;
    if (!(mbps > 0)) throw new HostStateConflictError(`no rate was kept for ${c.key}`, c.kind, c.key);
    if (runsAt(now, mbps)) return unchanged(`${c.key} is limited to ${mbps} Mbit/s, as before`);
    await setLimit(ctx.transport, c.key, mbps);
    return changed(`${c.key}: egress limit back to ${mbps} Mbit/s`);
  },
};
