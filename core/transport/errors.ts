// Why a host could not be reached or refused us. One error class with a `reason`, so callers
// branch on a closed set of causes and every message names the target it was about.
import { PersonaError } from '../errors.js';

export const TRANSPORT_FAILURES = [
  /** Nothing answered: connection refused, no route, unknown name, SSM node not online. */
  'unreachable',
  /** The host answered but did not accept our credentials. */
  'auth',
  /** Connecting or the command took longer than allowed. */
  'timeout',
  /** The host's key is not the one recorded, or it is unknown and new keys were not accepted. */
  'host-key',
  /** The connection was lost while a command was running; the command may or may not have run. */
  'disconnected',
  /** The host could not carry out the transport's own work (a file write, an SSM invocation). */
  'failed',
] as const;
export type TransportFailure = (typeof TRANSPORT_FAILURES)[number];

export class TransportError extends PersonaError {
  readonly code = 'TRANSPORT';
  constructor(
    message: string,
    readonly reason: TransportFailure,
    /** The transport's target, e.g. `ssh://root@10.0.0.2:22`. */
    readonly target: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

/** The host presented a key other than the one recorded for it: refused, nothing was sent. */
export class HostKeyMismatchError extends TransportError {
  constructor(
    readonly host: string,
    readonly port: number,
    /** The fingerprint on record, `SHA256:...`. */
    readonly expected: string,
    /** The fingerprint the host presented. */
    readonly actual: string,
    target: string,
  ) {
    super(
      `host key of ${hostPort(host, port)} changed: recorded ${expected}, presented ${actual}. ` +
        'Refusing to connect: this is what a man-in-the-middle looks like. If the host was rebuilt, ' +
        'remove its entry from the host key store and connect again accepting the new key.',
      'host-key',
      target,
    );
    this.name = 'HostKeyMismatchError';
  }
}

/** First contact with a host whose key the caller did not ask us to accept. */
export class UnknownHostKeyError extends TransportError {
  constructor(
    readonly host: string,
    readonly port: number,
    /** The fingerprint the host presented, to compare with one obtained out of band. */
    readonly fingerprint: string,
    target: string,
  ) {
    super(
      `host key of ${hostPort(host, port)} is not known (it presented ${fingerprint}). ` +
        'Check the fingerprint out of band, then connect accepting new host keys to record it.',
      'host-key',
      target,
    );
    this.name = 'UnknownHostKeyError';
  }
}

/** `[host]:port`, the form OpenSSH uses for a host on a port, unambiguous for IPv6 too. */
export function hostPort(host: string, port: number): string {
  return `[${host}]:${port}`;
}
