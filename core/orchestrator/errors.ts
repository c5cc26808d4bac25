// Why an executor could not apply or revert a Change on a host.
import { PersonaError } from '../errors.js';
import { TransportError } from '../transport/errors.js';
import { describeCommand, displayValue } from '../transport/shell.js';

/** A command on the host exited non-zero: what ran (cut, escaped), its exit code and stderr. */
export class HostCommandError extends TransportError {
  constructor(
    readonly what: string,
    readonly command: string,
    readonly exitCode: number,
    readonly stderr: string,
    target: string,
  ) {
    super(
      `${what} failed on ${target} (exit ${exitCode}: ${describeCommand(command)}): ${displayValue(stderr.trim(), 300)}`,
      'failed',
      target,
    );
    this.name = 'HostCommandError';
  }
}

/** The host holds something the Change does not expect (a user with another uid): nothing changed. */
export class HostStateConflictError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly kind: string,
    readonly key: string,
  ) {
    super(message);
    this.name = 'HostStateConflictError';
  }
}

/** What landed on the host is not what was sent: its hash differs. */
export class VerificationError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${displayValue(path)} on the host hashes to ${actual}, not ${expected}`);
    this.name = 'VerificationError';
  }
}

/** No executor handles this kind of Change yet: the plan lists it as unresolved. */
export class NoExecutorError extends PersonaError {
  readonly code = 'INVALID_INPUT';
  constructor(readonly kind: string) {
    super(`no host executor applies ${kind} changes yet`);
    this.name = 'NoExecutorError';
  }
}
