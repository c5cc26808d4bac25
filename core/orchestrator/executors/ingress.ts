// ingress.set: the ports a persona admits, as a table of Persona's own (nftables `table inet
// persona`) beside the host's ruleset, which is never read into it nor replaced. The table's
// input chain admits loopback, replies, ICMP (IPv6 needs neighbour discovery), the ports its
// Change keeps (the transport's own, so that a switch never locks Persona out) and the persona's
// rules, and drops the rest of what arrives. It is loaded in one nft transaction (the table
// declared, deleted and written again: nothing in between is ever visible), its rules carried as
// data checked against strict grammars, never a ruleset text from a request. The table's comment
// holds a digest of its rules: how a second apply and a verify read it back.
import { isIP } from 'node:net';
import type { Change, IngressTable } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import { sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { checkOperation } from '../journal.js';
import { changed, type Executor, probe, runOk, unchanged, unresolved } from './executor.js';
import { BACKUP_ROOT, sha256Hex } from './files.js';

export const PERSONA_TABLE = { family: 'inet', name: 'persona' } as const;

type IngressChange = Extract<Change, { section: 'ingress' }>;

/** An address or a prefix of one, checked as what it is, for an nft `saddr` match. */
export function sourceProblem(from: string): string | undefined {
  const [address = '', length, ...rest] = from.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return 'expected an IPv4 or IPv6 address, or a prefix of one';
  if (length === undefined) return undefined;
  const n = Number(length);
  const max = family === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(length) && n <= max ? undefined : `expected a prefix length of 0 to ${max}`;
}

function ingressChange(change: Change): IngressChange {
  if (change.section !== 'ingress') throw new TypeError(`${change.kind} is not an ingress change`);
  for (const side of ['from', 'to'] as const) {
    const table = change[side];
    table?.rules.forEach((r, i) => {
      const problem = r.from === undefined ? undefined : sourceProblem(r.from);
      if (problem !== undefined || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535)
        throw new InvalidInputError(`${side}.rules[${i}] is not a rule Persona can write`, [
          {
            path: `${side}.rules[${i}]${problem ? '.from' : '.port'}`,
            message: problem ?? 'expected 1 to 65535',
          },
        ]);
    });
    table?.keep.forEach((p, i) => {
      if (!Number.isInteger(p) || p < 1 || p > 65535)
        throw new InvalidInputError(`${side}.keep[${i}] is not a port`, [
          { path: `${side}.keep[${i}]`, message: 'expected 1 to 65535' },
        ]);
    });
  }
  return change;
}

/** The table's rules in one order, whatever order the persona listed them in. */
function canonical(table: IngressTable): IngressTable {
  const rules = table.rules
    .map((r) => ({ port: r.port, protocol: r.protocol, ...(r.from === undefined ? {} : { from: r.from }) }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  return { rules, keep: [...new Set(table.keep)].sort((a, b) => a - b) };
}

/** The digest the table's comment carries: the same rules give the same digest. */
export const ingressDigest = (table: IngressTable): string =>
  `persona:${sha256Hex(Buffer.from(JSON.stringify(canonical(table)))).slice(0, 32)}`;

/** The nft script that makes the table hold `table`, in one transaction. */
export function ingressScript(table: IngressTable): string {
  const t = canonical(table);
  const lines = [
    `table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}`,
    `delete table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}`,
    `table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name} {`,
    `  comment "${ingressDigest(t)}"`,
    '  chain input {',
    '    type filter hook input priority filter + 10; policy drop;',
    '    iif "lo" accept',
    '    ct state established,related accept',
    // By number (ICMP, ICMPv6): a minimal host has no /etc/protocols to resolve names in.
    '    meta l4proto { 1, 58 } accept',
    ...t.keep.map((p) => `    tcp dport ${p} accept`),
    ...t.rules.map((r) => {
      const source =
        r.from === undefined
          ? ''
          : `${isIP(r.from.split('/')[0] ?? '') === 6 ? 'ip6' : 'ip'} saddr ${r.from} `;
      return `    ${source}${r.protocol} dport ${r.port} accept`;
    }),
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

const DROP_SCRIPT = `table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}\ndelete table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}\n`;

export interface IngressState {
  readonly tool: boolean;
  /** The table's comment; null when the host has no such table. */
  readonly digest: string | null;
}

export async function readIngress(transport: Transport): Promise<IngressState> {
  const has = await transport.run('command -v nft >/dev/null 2>&1');
  if (has.exitCode !== 0) return { tool: false, digest: null };
  // The plain listing: nft 1.0's JSON output leaves a table's comment out.
  const command = `nft list table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}`;
  const result = await probe(transport, "reading Persona's firewall table", command);
  if (result.exitCode !== 0) {
    if (/no such file or directory/i.test(result.stderr)) return { tool: true, digest: null };
    throw new HostStateConflictError(
      `nft could not list Persona's table: ${result.stderr.trim().slice(0, 200)}`,
      'ingress.set',
      'ingress',
    );
  }
  const comment = /^\s*comment "([^"]*)"\s*$/m.exec(result.stdout)?.[1];
  // A table of that name without Persona's digest is someone's own edit: it reads as no digest.
  return { tool: true, digest: comment ?? '' };
}

interface IngressPrior extends IngressState {
  /** Where the table the host had is kept (as `nft list table` printed it), when it had one. */
  readonly backup?: string;
  readonly sha256?: string;
}

async function load(transport: Transport, script: string, what: string): Promise<void> {
  await runOk(transport, what, 'nft -f -', script);
}

export const ingressExecutor: Executor = {
  kinds: ['ingress.set'],

  async prepare(ctx, change) {
    ingressChange(change);
    const state = await readIngress(ctx.transport);
    if (state.digest === null) return state satisfies IngressPrior;
    const dir = `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;
    const backup = `${dir}/${ctx.seq}.persona.nft`;
    const { stdout } = await runOk(
      ctx.transport,
      "keeping Persona's firewall table",
      `${sh`umask 077 && mkdir -p -- ${dir} && `}nft list table ${PERSONA_TABLE.family} ${PERSONA_TABLE.name}${sh` > ${backup} && sha256sum < ${backup} | cut -d' ' -f1`}`,
    );
    return { ...state, backup, sha256: stdout.trim() } satisfies IngressPrior;
  },

  async apply(ctx, change) {
    const c = ingressChange(change);
    const now = await readIngress(ctx.transport);
    if (!now.tool) return unresolved('the host has no nft: the persona admits nothing of its own');
    if (c.to === null) {
      if (now.digest === null) return unchanged("the host has no firewall table of Persona's");
      await load(ctx.transport, DROP_SCRIPT, "removing Persona's firewall table");
      return changed("Persona's firewall table removed");
    }
    const digest = ingressDigest(c.to);
    if (now.digest === digest) return unchanged("Persona's firewall table already admits these ports");
    await load(ctx.transport, ingressScript(c.to), "loading Persona's firewall table");
    return changed(
      `Persona's firewall table admits ${c.to.rules.map((r) => `${r.protocol}/${r.port}`).join(', ') || 'no port of its own'}`,
    );
  },

  async revert(ctx, change, priorValue) {
    ingressChange(change);
    const prior = priorValue as IngressPrior;
    if (!prior.tool) return unchanged('nothing was changed');
    const now = await readIngress(ctx.transport);
    if (now.digest === prior.digest) return unchanged("Persona's firewall table is as it was");
    if (prior.digest === null) {
      await load(ctx.transport, DROP_SCRIPT, "removing Persona's firewall table");
      return changed("Persona's firewall table removed, as before");
    }
    if (
      prior.backup === undefined ||
      !prior.backup.startsWith(`${BACKUP_ROOT}/${checkOperation(ctx.operation)}/`)
    )
      throw new HostStateConflictError('no copy of the table was kept', 'ingress.set', 'ingress');
    const kept = await runOk(
      ctx.transport,
      'reading the kept table',
      sh`[ -f ${prior.backup} ] || { echo 'the kept table is gone' >&2; exit 44; }; cat -- ${prior.backup}`,
    );
    if (sha256Hex(Buffer.from(kept.stdout)) !== prior.sha256)
      throw new HostStateConflictError(
        `the kept table ${prior.backup} changed since it was kept`,
        'ingress.set',
        'ingress',
      );
    await load(ctx.transport, `${DROP_SCRIPT}${kept.stdout}`, "putting back Persona's firewall table");
    return changed("Persona's firewall table is back as it was");
  },
};
