// Debian package names and versions: the grammar Debian policy gives them (5.6.1, 5.6.12) and
// dpkg's ordering of versions. Names and versions come from Profiles and hosts, so they are data:
// anything outside the grammar is refused before it can reach a command line.
import { InvalidInputError } from '../errors.js';
import { displayValue } from '../transport/shell.js';

/** Lower-case letters, digits, `+`, `-` and `.`; at least two characters, the first alphanumeric. */
const NAME = /^[a-z0-9][a-z0-9+.-]+$/;
/** dpkg architecture names: `amd64`, `arm64`, `i386`, `all`, `musl-linux-amd64`. */
const ARCH = /^[a-z0-9][a-z0-9-]*$/;
const EPOCH = /^[0-9]{1,9}$/;
// Upstream versions start with a digit (dpkg refuses anything else) and hold alphanumerics and
// `. + ~`, plus `-` when a revision follows (the last hyphen separates the revision).
const UPSTREAM = /^[0-9][A-Za-z0-9.+~-]*$/;
const UPSTREAM_NO_HYPHEN = /^[0-9][A-Za-z0-9.+~]*$/;
const REVISION = /^[A-Za-z0-9.+~]+$/;
const MAX_LENGTH = 256;

export interface DebianVersion {
  readonly epoch: bigint;
  readonly upstream: string;
  /** Absent revision compares as an empty one, which sorts as `0`. */
  readonly revision: string;
}

function invalid(field: string, value: string, why: string): InvalidInputError {
  return new InvalidInputError(`${field} ${displayValue(value)} is not a Debian ${why}`, [
    { path: field, message: `not a Debian ${why}` },
  ]);
}

/**
 * A package name as dpkg-query's `${binary:Package}` prints it: `name` or `name:arch` (the
 * qualifier dpkg adds to Multi-Arch: same packages). Returns the name and the qualifier.
 */
export function checkDebianName(value: string, field: string): { name: string; arch?: string } {
  const colon = value.indexOf(':');
  const name = colon < 0 ? value : value.slice(0, colon);
  const arch = colon < 0 ? undefined : value.slice(colon + 1);
  if (value.length > MAX_LENGTH || !NAME.test(name) || (arch !== undefined && !ARCH.test(arch))) {
    throw invalid(field, value, 'package name (lower-case letters, digits, "+", "-", "."; two or more)');
  }
  return arch === undefined ? { name } : { name, arch };
}

export function checkDebianArch(value: string, field: string): string {
  if (value.length > 64 || !ARCH.test(value)) throw invalid(field, value, 'architecture name');
  return value;
}

/** `[epoch:]upstream[-revision]`, refused with the field's name when it is anything else. */
export function parseDebianVersion(value: string, field = 'version'): DebianVersion {
  if (value.length === 0 || value.length > MAX_LENGTH) throw invalid(field, value, 'version');
  const colon = value.indexOf(':');
  const epochText = colon < 0 ? '0' : value.slice(0, colon);
  const rest = colon < 0 ? value : value.slice(colon + 1);
  if (!EPOCH.test(epochText)) throw invalid(field, value, 'version (the epoch is not a number)');
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen < 0 ? rest : rest.slice(0, hyphen);
  const revision = hyphen < 0 ? '' : rest.slice(hyphen + 1);
  const upstreamOk = hyphen < 0 ? UPSTREAM_NO_HYPHEN.test(upstream) : UPSTREAM.test(upstream);
  if (!upstreamOk) throw invalid(field, value, 'version (the upstream part must start with a digit)');
  if (hyphen >= 0 && !REVISION.test(revision)) throw invalid(field, value, 'version (bad revision)');
  return { epoch: BigInt(epochText), upstream, revision };
}

export const isDebianVersion = (value: string): boolean => {
  try {
    parseDebianVersion(value);
    return true;
  } catch {
    return false;
  }
};

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isLetter = (c: string) => (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');

// Policy 5.6.12: in the non-digit parts letters sort before non-letters, and `~` before
// anything, even the end of the part. A digit or the end weighs 0.
function weight(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (c === '~') return -1;
  const code = c.charCodeAt(0);
  return isLetter(c) ? code : code + 256;
}

/** Compares one upstream version or revision by policy: alternating non-digit and digit runs. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const wa = weight(a[i]);
      const wb = weight(b[j]);
      if (wa !== wb) return wa < wb ? -1 : 1;
      i++;
      j++;
    }
    let na = '';
    let nb = '';
    while (isDigit(a[i])) na += a[i++];
    while (isDigit(b[j])) nb += b[j++];
    // Runs of digits compare as numbers; an empty run is 0.
    const da = BigInt(na || '0');
    const db = BigInt(nb || '0');
    if (da !== db) return da < db ? -1 : 1;
  }
  return 0;
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b` (dpkg's order). */
export function compareDebianVersions(a: string, b: string): number {
  const va = parseDebianVersion(a, 'a');
  const vb = parseDebianVersion(b, 'b');
  if (va.epoch !== vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  return compareFragment(va.upstream, vb.upstream) || compareFragment(va.revision, vb.revision);
}
