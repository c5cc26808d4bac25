// Domain errors. Each has a stable `code`; the API maps codes to HTTP statuses in one place
// (functions/shared/http.ts) and the CLI maps them to exit codes in one place (cli/errors.ts).

export const ERROR_CODES = [
  'INVALID_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'PRECONDITION_REQUIRED',
  'TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'DELTA_CONFLICT',
  'CORRUPT',
  'TRANSPORT',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'IDEMPOTENCY_KEY_REUSED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface Issue {
  /** Dotted path of the offending field, e.g. `spec.packages[3].version`; empty for the document. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the source document, when it came from a file. */
  readonly line?: number;
  readonly column?: number;
}

export abstract class PersonaError extends Error {
  abstract readonly code: ErrorCode;
}

/** The input is wrong; `issues` lists every problem found, not only the first. */
export class InvalidInputError extends PersonaError {
  readonly code = 'INVALID_INPUT';
  /** The document the issues are about (a file name), when there is one. */
  readonly source: string | undefined;
  constructor(
    message: string,
    readonly issues: readonly Issue[] = [],
    options?: ErrorOptions & { readonly source?: string },
  ) {
    super(message, options);
    this.name = 'InvalidInputError';
    this.source = options?.source;
  }
}

export class TooLargeError extends PersonaError {
  readonly code = 'TOO_LARGE';
  constructor(
    message: string,
    readonly limit: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TooLargeError';
  }
}

/** A body in a format the API does not read: only JSON and YAML documents are accepted. */
export class UnsupportedMediaTypeError extends PersonaError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  constructor(
    message: string,
    /** The Content-Type the caller sent, if any. */
    readonly contentType: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'UnsupportedMediaTypeError';
  }
}

/**
 * A stored profile version failed its integrity check: its document is missing, or does not
 * match the hash recorded when it was written. Retrying does not help; the document has to be
 * restored from a copy.
 */
export class CorruptProfileError extends PersonaError {
  readonly code = 'CORRUPT';
  constructor(
    message: string,
    readonly profile: string,
    readonly version: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CorruptProfileError';
  }
}

export class NotFoundError extends PersonaError {
  readonly code = 'NOT_FOUND';
  constructor(
    message: string,
    readonly resource: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'NotFoundError';
  }
}

/** A write that would lose someone else's: the caller read an older version than the latest. */
export class ConflictError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly current?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ConflictError';
  }
}

/** A write that must say which version it read, and did not. */
export class PreconditionRequiredError extends PersonaError {
  readonly code = 'PRECONDITION_REQUIRED';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PreconditionRequiredError';
  }
}

/**
 * The caller did not prove who it is: no credential, or one that is unknown, revoked or wrong.
 * The message never says which, so that a guess learns nothing about the ids that exist.
 */
export class UnauthorizedError extends PersonaError {
  readonly code = 'UNAUTHORIZED';
  constructor(message = 'a valid credential is required', options?: ErrorOptions) {
    super(message, options);
    this.name = 'UnauthorizedError';
  }
}

/** The caller is known but may not do this: a host's agent acting for another host. */
export class ForbiddenError extends PersonaError {
  readonly code = 'FORBIDDEN';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ForbiddenError';
  }
}

/**
 * An Idempotency-Key sent again with another request (another route, host or body): answering it
 * with the first request's operation would hand the caller someone else's result.
 */
export class IdempotencyKeyReusedError extends PersonaError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
  constructor(
    message: string,
    /** What differs from the request the key was first sent with. */
    readonly differs: 'route' | 'host' | 'body',
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'IdempotencyKeyReusedError';
  }
}

export const isPersonaError = (e: unknown): e is PersonaError => e instanceof PersonaError;

/** `spec.packages[3].version` from ['spec', 'packages', 3, 'version']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment))
      out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}
