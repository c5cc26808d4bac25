// Why a capture produced no Profile. Everything short of these becomes an "unknown" with its
// reason, never an error: a Profile with gaps that are named beats no Profile.
import { PersonaError } from '../errors.js';

/** The host is not one Persona can describe (not Linux, or an architecture the schema lacks). */
export class UnsupportedHostError extends PersonaError {
  readonly code = 'INVALID_INPUT';
  constructor(
    message: string,
    /** What the host said it is: `uname -s` or `uname -m`. */
    readonly found: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'UnsupportedHostError';
  }
}

/**
 * The capture output is not whole: the script was killed, the transport cut it short, or it is
 * not the script's output at all. A partial capture is refused rather than turned into a Profile
 * whose missing packages and files would read, in a diff, as removals.
 */
export class IncompleteCaptureError extends PersonaError {
  readonly code = 'TRANSPORT';
  constructor(
    message: string,
    /** The transport's target, when known. */
    readonly target?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'IncompleteCaptureError';
  }
}
