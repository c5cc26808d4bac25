// Exit codes, in one place. Scripts can rely on them.
import type { z } from 'zod';
import type { ProblemSchema } from '../core/api/schemas.js';
import { type ErrorCode, type Issue, isPersonaError } from '../core/errors.js';

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
  /** The endpoint could not be reached, was throttling or failed (after the retries). */
  UNAVAILABLE: 6,
  /** `snapshot check` found damage, or a read found corrupt data. */
  CORRUPT: 7,
  /** The caller is not allowed: missing or refused credentials, a signature the API refused. */
  UNAUTHORIZED: 8,
  /** The endpoint did not answer within --timeout. */
  TIMED_OUT: 9,
} as const;

const BY_CODE: Readonly<Record<ErrorCode, number>> = {
  INVALID_INPUT: EXIT.INVALID,
  TOO_LARGE: EXIT.INVALID,
  UNSUPPORTED_MEDIA_TYPE: EXIT.INVALID,
  IDEMPOTENCY_KEY_REUSED: EXIT.INVALID,
  NOT_FOUND: EXIT.NOT_FOUND,
  CONFLICT: EXIT.CONFLICT,
  DELTA_CONFLICT: EXIT.CONFLICT,
  PRECONDITION_REQUIRED: EXIT.CONFLICT,
  CORRUPT: EXIT.CORRUPT,
  TRANSPORT: EXIT.UNAVAILABLE,
  UNAUTHORIZED: EXIT.UNAUTHORIZED,
  FORBIDDEN: EXIT.UNAUTHORIZED,
};

/**
 * A problem document (RFC 9457) as a Persona function answers it; any field may be missing
 * (an older stage, a proxy), and `code` may be one this CLI does not know yet. Its issues are
 * core/errors' Issue, which the schema's issues describe.
 */
export type Problem = Partial<Omit<z.output<typeof ProblemSchema>, 'code' | 'issues'>> & {
  code?: string;
  issues?: readonly Issue[];
};

/** An error API Gateway answered itself (authorisation, throttling, integration failures). */
export interface GatewayFault {
  /** `x-amzn-ErrorType` without its namespace, e.g. AccessDeniedException. */
  readonly type: string | undefined;
  readonly message: string;
  readonly requestId: string | undefined;
  /** The region the refused request was signed for: what a signature error is most often about. */
  readonly signedFor?: string | undefined;
}

const gatewayLine = (status: number, g: GatewayFault) =>
  `API Gateway answered ${status}${g.type ? ` ${g.type}` : ''}: ${g.message}${g.requestId ? ` (request id ${g.requestId})` : ''}${g.signedFor ? `; the request was signed for ${g.signedFor}` : ''}`;

/** An error answer from the API: a function's problem document, or API Gateway's own error. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
    readonly gateway?: GatewayFault,
  ) {
    super(gateway ? gatewayLine(status, gateway) : (problem.detail ?? `HTTP ${status}`));
    this.name = 'ApiError';
  }

  /** What `-o json` prints on standard error: the problem document, or the gateway's answer. */
  document(): Record<string, unknown> {
    if (!this.gateway) return this.problem;
    return {
      status: this.status,
      source: 'api-gateway',
      ...(this.gateway.type ? { errorType: this.gateway.type } : {}),
      message: this.gateway.message,
      ...(this.gateway.requestId ? { requestId: this.gateway.requestId } : {}),
      ...(this.gateway.signedFor ? { signedFor: this.gateway.signedFor } : {}),
    };
  }
}

/** The endpoint did not answer at all. */
export class UnreachableError extends Error {
  constructor(endpoint: string, cause: unknown) {
    const inner = (cause as { cause?: { code?: string; message?: string } })?.cause;
    const why = inner?.code ?? inner?.message;
    super(
      `cannot reach Persona at ${endpoint}${why ? ` (${why})` : ''} (is \`npm start\` running, or is --endpoint right?)`,
      { cause },
    );
    this.name = 'UnreachableError';
  }
}

/** A request to be signed, and no AWS credentials to sign it with. */
export class CredentialsError extends Error {
  constructor(host: string, cause: unknown) {
    super(
      `cannot sign the request to ${host}: ${(cause as Error)?.message ?? cause} (set AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or sign in with aws sso login)`,
      { cause },
    );
    this.name = 'CredentialsError';
  }
}

/** The endpoint took the request and gave no answer in time. */
export class TimedOutError extends Error {
  constructor(endpoint: string, method: string, path: string, seconds: number) {
    super(
      `no answer from ${endpoint} to ${method} ${path} within ${seconds} s (--timeout); the request may still have been carried out`,
    );
    this.name = 'TimedOutError';
  }
}

export function exitCodeOf(error: unknown): number {
  if (isPersonaError(error)) return BY_CODE[error.code];
  if (error instanceof UnreachableError) return EXIT.UNAVAILABLE;
  if (error instanceof TimedOutError) return EXIT.TIMED_OUT;
  if (error instanceof CredentialsError) return EXIT.UNAUTHORIZED;
  if (error instanceof ApiError) {
    const code = error.problem.code as ErrorCode | undefined;
    if (!error.gateway && code && code in BY_CODE) return BY_CODE[code];
    if (error.status === 401 || error.status === 403) return EXIT.UNAUTHORIZED;
    if (error.status === 404) return EXIT.NOT_FOUND;
    if (error.status === 409 || error.status === 412 || error.status === 428) return EXIT.CONFLICT;
    if (error.status === 429 || error.status >= 500) return EXIT.UNAVAILABLE;
    if (error.status >= 400) return EXIT.INVALID;
    return EXIT.UNAVAILABLE;
  }
  return EXIT.FAILURE;
}
