// What the resolver needs from a package manager family (dpkg/apt, rpm/dnf), so that resolving,
// fetching and delivering are written once: the grammar of names and versions, the manager's
// own ordering of versions, how to ask a host what is installed and available, how to install
// package files.

import { PersonaError } from '../errors.js';
import type { Package } from '../profile/schema.js';
import { TransportError } from '../transport/errors.js';
import { describeCommand } from '../transport/shell.js';
import type { RunResult, Transport } from '../transport/transport.js';

export type Family = 'deb' | 'rpm';

/** One version of one package for one architecture, every part checked against the grammar. */
export interface PackageSpec {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
}

export type Installed = PackageSpec;

export interface Available extends PackageSpec {
  /** Where the manager would take it from, as it says it: `http://deb.debian.org/debian bookworm/main`. */
  readonly origin: string;
}

export interface ManagerDriver {
  readonly family: Family;
  /** The Profile's `manager` values this family serves. */
  readonly managers: readonly Package['manager'][];
  /** The package files' extension, without the dot. */
  readonly extension: string;
  /** The architecture of packages that install on any host: `all`, `noarch`. */
  readonly neutralArch: string;
  /** The name, and the architecture when the name carries one (`libc6:amd64`). */
  checkName(value: string, field: string): { name: string; arch?: string };
  checkVersion(value: string, field: string): string;
  checkArch(value: string, field: string): string;
  /** The manager's own ordering: negative, zero or positive. */
  compare(a: string, b: string): number;
  /** How far apart two versions are, for a reason: `the same upstream version, another revision`. */
  distance(a: string, b: string): string;
  /** Prints the host's native architecture, in the manager's spelling. */
  readonly nativeArchCommand: string;
  installed(transport: Transport, names: readonly string[]): Promise<Installed[]>;
  available(transport: Transport, names: readonly string[]): Promise<Available[]>;
  /**
   * Installs the package files (absolute paths, in `dir`, a directory of Persona's own) from
   * the files alone: no repository is asked, so a missing dependency fails before any change.
   */
  installCommand(dir: string, files: readonly string[]): string;
  readonly installEnv: Readonly<Record<string, string>>;
}

/**
 * Package bytes that are not what the index says: another hash or size, or another package. The
 * artifact is neither stored nor delivered.
 */
export class PackageVerificationError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    message: string,
    readonly packageName: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PackageVerificationError';
  }
}

/** A command the resolver sent did not answer as the manager answers. */
export function commandFailed(transport: Transport, what: string, result: RunResult): TransportError {
  // apt prints why (unmet dependencies) on standard output and only its verdict on standard error.
  const tail = (text: string) => text.trim().split('\n').filter(Boolean).slice(-3);
  const said = [...tail(result.stdout), ...tail(result.stderr)].join(' / ');
  return new TransportError(
    `${describeCommand(what)} on ${transport.target} failed (exit ${result.exitCode})${said ? `: ${describeCommand(said, 300)}` : ''}`,
    'failed',
    transport.target,
  );
}

// dpkg first: a Debian host may have rpm installed as a tool, never the other way round.
const FAMILY_COMMAND =
  'if command -v dpkg-query >/dev/null 2>&1; then echo deb; elif command -v rpm >/dev/null 2>&1; then echo rpm; fi';

/** The target's package family, by which package tool it has; undefined for neither. */
export async function targetFamily(target: Transport): Promise<Family | undefined> {
  const result = await target.run(FAMILY_COMMAND);
  if (result.exitCode !== 0) throw commandFailed(target, 'command -v dpkg-query rpm', result);
  const word = result.stdout.trim();
  return word === 'deb' || word === 'rpm' ? word : undefined;
}
