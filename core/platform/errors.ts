// Why a platform could not give a clone a host.
import { PersonaError } from '../errors.js';

/** Every machine of the pool is held by an operation: nothing was taken. */
export class PoolExhaustedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    readonly pool: string,
    options?: ErrorOptions,
  ) {
    super(`no free machine in pool "${pool}": every machine is held by an operation`, options);
    this.name = 'PoolExhaustedError';
  }
}
