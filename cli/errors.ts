// Exit codes, in one place. Scripts can rely on them.
import { type ErrorCode, isPersonaError } from '../core/errors.js';

export const EXIT = {
  OK: 0,
  /** Something unexpected; a bug or an environment problem. */
  FAILURE: 1,
  /** The command line itself is wrong. */
  USAGE: 2,
  /** A profile or argument is not valid. */
  INVALID: 3,
  NOT_FOUND: 4,
  /** Someone else wrote first (stale version), or the write did not say which version it read. */
  CONFLICT: 5,
  /** The endpoint could not be reached or failed. */
  UNAVAILABLE: 6,
  /** `snapshot check` found damage, or a read found corrupt data. */
  CORRUPT: 7,
} as const;

const BY_CODE: Readonly<Record<ErrorCode, number>> = {
  INVALID_INPUT: EXIT.INVALID,
  TOO_LARGE: EXIT.INVALID,
  UNSUPPORTED_MEDIA_TYPE: EXIT.INVALID,
  NOT_FOUND: EXIT.NOT_FOUND,
  CONFLICT: EXIT.CONFLICT,
  DELTA_CONFLICT: EXIT.CONFLICT,
  PRECONDITION_REQUIRED: EXIT.CONFLICT,
  CORRUPT: EXIT.CORRUPT,
  TRANSPORT: EXIT.UNAVAILABLE,
  UNAUTHORIZED: EXIT.INVALID,
  FORBIDDEN: EXIT.INVALID,
};

/** An error answer from the API, carrying its problem document. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: {
      code?: string;
      detail?: string;
      issues?: { path: string; message: string; line?: number; column?: number }[];
    },
  ) {
    super(problem.detail ?? `HTTP ${status}`);
    this.name = 'ApiError';
  }
}

/** The endpoint did not answer at all. */
export class UnreachableError extends Error {
  constructor(endpoint: string, cause: unknown) {
    super(`cannot reach Persona at ${endpoint} (is \`npm start\` running, or is --endpoint right?)`, {
      cause,
    });
    this.name = 'UnreachableError';
  }
}

export function exitCodeOf(error: unknown): number {
  if (isPersonaError(error)) return BY_CODE[error.code];
  if (error instanceof UnreachableError) return EXIT.UNAVAILABLE;
  if (error instanceof ApiError) {
    const code = error.problem.code as ErrorCode | undefined;
    if (code && code in BY_CODE) return BY_CODE[code];
    if (error.status === 404) return EXIT.NOT_FOUND;
    if (error.status === 409 || error.status === 428) return EXIT.CONFLICT;
    if (error.status >= 400 && error.status < 500) return EXIT.INVALID;
    return EXIT.UNAVAILABLE;
  }
  return EXIT.FAILURE;
}
