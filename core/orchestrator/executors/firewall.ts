// firewall.replace: the host's whole ruleset replaced in one transaction. nftables: a file
// holding `flush ruleset` and the new ruleset, checked with `nft -c -f` and then loaded with
// `nft -f`, which the kernel applies atomically (the old ruleset stays if any line fails).
// iptables, for hosts without nft: `iptables-restore --test`, then `iptables-restore`, which
// replaces each table it is given at once. The ruleset is data on standard input, never on a
// command line. What it replaced is kept on the host (as `nft list ruleset` or
// `iptables-save` printed it), under the operation's backup folder: a ruleset can be larger
// than a journal item, and a revert after the control side died must find it without it.
import type { z } from 'zod';
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import type { Firewall as FirewallSchema } from '../../profile/schema.js';
import { sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { checkOperation } from '../journal.js';
import { changed, type Executor, type ExecutorContext, runOk, unchanged, unresolved } from './executor.js';
import { BACKUP_ROOT, sha256Hex } from './files.js';

export type FirewallTool = 'nft' | 'iptables';

type FirewallChange = Extract<Change, { section: 'firewall' }>;
type Firewall = z.infer<typeof FirewallSchema>;

function firewallChange(change: Change): FirewallChange {
  if (change.section !== 'firewall') throw new TypeError(`${change.kind} is not a firewall change`);
  // `nft list ruleset` never prints an include; one in a Profile would have nft read a file of
  // the host, and print its lines in the error that ends up in the operation record.
  if (change.to?.backend === 'nftables' && /^\s*include\s/m.test(change.to.ruleset)) {
    throw new InvalidInputError('the nftables ruleset holds an include, which a listed ruleset never does', [
      { path: 'to.ruleset', message: 'holds an include statement' },
    ]);
  }
  if (change.to !== null && /\0/.test(change.to.ruleset)) {
    throw new InvalidInputError('the firewall ruleset holds a NUL byte', [
      { path: 'to.ruleset', message: 'holds a NUL byte' },
    ]);
  }
  return change;
}

/** Exit codes of the load script: the ruleset was refused by the check, nothing changed. */
const CHECK_REFUSED = 48;

const TOOLS: Record<FirewallTool, { list: string; check: string; load: string; prefix: string }> = {
  nft: { list: 'nft list ruleset', check: 'nft -c -f "$t"', load: 'nft -f "$t"', prefix: 'flush ruleset\n' },
  iptables: {
    list: 'iptables-save',
    check: 'iptables-restore --test < "$t"',
    load: 'iptables-restore < "$t"',
    prefix: '',
  },
};

/** What an empty ruleset is: for iptables, the filter table accepting everything. */
const EMPTY: Record<FirewallTool, string> = {
  nft: '',
  iptables: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n',
};

/**
 * A ruleset as it compares: nft prints with tabs and iptables-save with comments holding a
 * date, and both print packet counters, which traffic moves: none of that is the ruleset.
 */
export function normalRuleset(tool: FirewallTool, text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !(tool === 'iptables' && l.startsWith('#')))
    .map((l) =>
      tool === 'iptables'
        ? l.replace(/\[\d+:\d+\]/g, '[0:0]')
        : l.replace(/\s+/g, ' ').replace(/\bcounter packets \d+ bytes \d+/g, 'counter'),
    )
    .join('\n');
}

/** The tool that can load the ruleset on the host, or why there is none. */
async function toolFor(
  transport: Transport,
  wanted: Firewall['backend'],
): Promise<{ tool: FirewallTool } | { problem: string }> {
  const { stdout } = await runOk(
    transport,
    'finding the firewall tools',
    'for t in nft iptables-restore iptables-save; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done; true',
  );
  const has = new Set(stdout.split('\n').filter(Boolean));
  const iptables = has.has('iptables-restore') && has.has('iptables-save');
  if (wanted === 'nftables') return has.has('nft') ? { tool: 'nft' } : { problem: 'the host has no nft' };
  if (wanted === 'iptables') {
    return iptables
      ? { tool: 'iptables' }
      : { problem: 'the host has no iptables-restore and iptables-save' };
  }
  if (has.has('nft')) return { tool: 'nft' };
  return iptables ? { tool: 'iptables' } : { problem: 'the host has neither nft nor iptables-restore' };
}

async function listRuleset(transport: Transport, tool: FirewallTool): Promise<string> {
  return (await runOk(transport, `reading the ${tool} ruleset`, TOOLS[tool].list)).stdout;
}

/** Loads `ruleset` in one transaction, after the tool's own check of the whole of it. */
async function loadRuleset(transport: Transport, tool: FirewallTool, ruleset: string): Promise<void> {
  const t = TOOLS[tool];
  const script = [
    'set -e',
    'umask 077',
    't=$(mktemp)',
    'trap \'rm -f -- "$t"\' EXIT',
    'cat > "$t"',
    `if ! ${t.check}; then echo 'the ruleset was refused by its check; nothing changed' >&2; exit ${CHECK_REFUSED}; fi`,
    t.load,
  ].join('\n');
  await runOk(transport, `loading the ${tool} ruleset`, script, `${t.prefix}${ruleset}`);
}

interface FirewallPrior {
  readonly tool: FirewallTool | null;
  /** Where the ruleset the host had is kept on the host, and its SHA-256. */
  readonly backup?: string;
  readonly sha256?: string;
  /** Its normal form's SHA-256, to tell whether the host holds it again. */
  readonly normal?: string;
}

const wantedRuleset = (tool: FirewallTool, to: Firewall) =>
  to.backend === 'none' ? EMPTY[tool] : to.ruleset;

export const firewallExecutor: Executor = {
  kinds: ['firewall.replace'],

  async prepare(ctx: ExecutorContext, change) {
    const c = firewallChange(change);
    if (c.to === null) return { tool: null } satisfies FirewallPrior;
    const found = await toolFor(ctx.transport, c.to.backend);
    if (!('tool' in found)) return { tool: null } satisfies FirewallPrior;
    const dir = `${BACKUP_ROOT}/${checkOperation(ctx.operation)}`;
    const backup = `${dir}/${ctx.seq}.${found.tool}`;
    const { stdout } = await runOk(
      ctx.transport,
      `keeping the ${found.tool} ruleset`,
      `${sh`umask 077 && mkdir -p -- ${dir} && `}${TOOLS[found.tool].list}${sh` > ${backup} && sha256sum < ${backup} | cut -d' ' -f1`}`,
    );
    const text = await listRuleset(ctx.transport, found.tool);
    const prior: FirewallPrior = {
      tool: found.tool,
      backup,
      sha256: stdout.trim(),
      normal: sha256Hex(Buffer.from(normalRuleset(found.tool, text))),
    };
    return prior;
  },

  async apply(ctx, change) {
    const c = firewallChange(change);
    if (c.to === null) return unchanged('the Profile names no firewall ruleset: the host keeps its own');
    const found = await toolFor(ctx.transport, c.to.backend);
    if (!('tool' in found)) return unresolved(`the ${c.to.backend} ruleset was not loaded: ${found.problem}`);
    const wanted = wantedRuleset(found.tool, c.to);
    const now = await listRuleset(ctx.transport, found.tool);
    if (normalRuleset(found.tool, now) === normalRuleset(found.tool, wanted)) {
      return unchanged(`the ${found.tool} ruleset is already the Profile's`);
    }
    await loadRuleset(ctx.transport, found.tool, wanted);
    return changed(`the ${found.tool} ruleset replaced (${wanted.split('\n').filter(Boolean).length} lines)`);
  },

  async revert(ctx, change, priorValue) {
    firewallChange(change);
    const prior = priorValue as FirewallPrior;
    if (prior.tool === null) return unchanged('the ruleset was not changed');
    const tool: FirewallTool = prior.tool === 'iptables' ? 'iptables' : 'nft';
    const now = await listRuleset(ctx.transport, tool);
    if (sha256Hex(Buffer.from(normalRuleset(tool, now))) === prior.normal) {
      return unchanged(`the ${tool} ruleset is as it was`);
    }
    if (
      prior.backup === undefined ||
      !prior.backup.startsWith(`${BACKUP_ROOT}/${checkOperation(ctx.operation)}/`)
    ) {
      throw new HostStateConflictError('no copy of the ruleset was kept', 'firewall.replace', 'firewall');
    }
    const kept = await runOk(
      ctx.transport,
      'reading the kept ruleset',
      sh`[ -f ${prior.backup} ] || { echo 'the kept ruleset is gone' >&2; exit 44; }; cat -- ${prior.backup}`,
    );
    if (sha256Hex(Buffer.from(kept.stdout)) !== prior.sha256) {
      throw new HostStateConflictError(
        `the kept ruleset ${prior.backup} changed since it was kept`,
        'firewall.replace',
        'firewall',
      );
    }
    await loadRuleset(ctx.transport, tool, kept.stdout);
    return changed(`the ${tool} ruleset is back as it was`);
  },
};
