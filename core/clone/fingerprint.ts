// A host's state fingerprint: one digest, computed on the host in one command, of what a clone
// would otherwise learn by capturing it again — the metadata of every entry of the trees it
// manages (path, type, size, modification time, mode, owner, link target, as rsync's quick
// check sees files), the package database's size and time, the firewall ruleset, addresses and
// routes, the loaded kernel modules, the names of long-lived processes, and the live values of
// the sysctl keys Persona persisted. Record takes it right after it captured the clone; a
// re-clone onto that host computes it again and, when it is unchanged, plans from the recorded
// capture instead of capturing the host anew. Any difference (or a host this cannot read)
// means a full capture: the fingerprint can only save work, never skip a change.
import { createHash } from 'node:crypto';
import { checkPath } from '../transport/paths.js';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';

/** Bumped when what the fingerprint covers changes: an older one never matches a newer. */
const VERSION = 'v1';

/** The sysctl file Persona writes (core/orchestrator/executors/sysctl.ts). */
const PERSONA_SYSCTL = '/etc/sysctl.d/60-persona.conf';

function script(paths: readonly string[]): string {
  return [
    // Entries in path order; a missing tree is simply absent from the listing.
    sh`find ${paths} -xdev -printf '%p\\t%y\\t%s\\t%T@\\t%m\\t%U\\t%G\\t%l\\n' 2>/dev/null | LC_ALL=C sort`,
    'echo --',
    'stat -c "%n %s %Y" /var/lib/dpkg/status /var/lib/rpm/rpmdb.sqlite /var/lib/rpm/Packages /lib/apk/db/installed 2>/dev/null',
    'echo --',
    'nft list ruleset 2>/dev/null || iptables-save 2>/dev/null | grep -v "^#"',
    'echo --',
    // Address lifetimes count down by themselves, and an IPv6 address is `tentative` for its
    // first second or two (duplicate address detection) and only then gets its route in the
    // local table, which the kernel keeps from the addresses anyway: all three left out.
    "ip -o addr show 2>/dev/null | sed 's/ tentative\\b//; s/ valid_lft.*//'",
    "ip route show table all 2>/dev/null | grep -v ' table local '",
    'echo --',
    "cut -d' ' -f1 /proc/modules 2>/dev/null | LC_ALL=C sort",
    'echo --',
    "ps -eo ppid=,comm= 2>/dev/null | awk '$1 <= 1 { print $2 }' | LC_ALL=C sort -u",
    'echo --',
    sh`if [ -f ${PERSONA_SYSCTL} ]; then sed -n 's/^[[:space:]]*\\([^#=[:space:]][^=[:space:]]*\\)[[:space:]]*=.*/\\1/p' ${PERSONA_SYSCTL} | while IFS= read -r k; do printf '%s=' "$k"; sysctl -n -- "$k" 2>/dev/null; done; fi`,
  ].join('\n');
}

/**
 * The fingerprint of the host's state over `paths` (absolute, in the path grammar), as
 * `v1:<sha256 hex>`. The host hashes what it read and sends the digest only: a command of about
 * 1 KiB out, 65 bytes back.
 */
export async function stateFingerprint(transport: Transport, paths: readonly string[]): Promise<string> {
  const trees = [...new Set(paths.map((p, i) => checkPath(p, `paths[${i}]`)))].sort();
  const result = await transport.run(
    `{
${script(trees)}
} | sha256sum`,
    { timeoutMs: 60_000 },
  );
  const digest = /^([0-9a-f]{64})\b/.exec(result.stdout.trim())?.[1];
  if (result.exitCode !== 0 || digest === undefined)
    throw new Error(
      `the state fingerprint of ${transport.target} could not be read (exit ${result.exitCode})`,
    );
  return `${VERSION}:${createHash('sha256')
    .update(`${trees.join('\n')}\n${digest}`)
    .digest('hex')}`;
}
