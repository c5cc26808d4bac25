// The one shape of every error answer, whoever makes it: the functions (functions/shared/http.ts),
// the embedded runtime's router (local/http.ts) and API Gateway itself (its GatewayResponses,
// infra/api.ts). RFC 9457 problem details, with a stable `code` that callers branch on.
// No zod here: the router and the stack import it, and neither needs a schema to build a problem.
import { ERROR_CODES, type ErrorCode } from '../errors.js';

/** Codes of the problems the edge answers before any function runs. */
export const EDGE_PROBLEM_CODES = [
  // A function failed in a way it did not map (a bug), or, in the embedded runtime, threw.
  'INTERNAL',
  // The embedded runtime's router: a method the path does not take, a Host that is not this
  // server's (RFC 9110 15.5.20). A path no route has is NOT_FOUND, as a missing resource is.
  'METHOD_NOT_ALLOWED',
  'MISDIRECTED_REQUEST',
] as const;

/**
 * API Gateway's own error responses and their statuses. Each becomes a problem whose code is the
 * response type: a caller tells "the gateway refused the signature" (INVALID_SIGNATURE) from "the
 * function refused the request" (a domain code) without parsing prose.
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
 */
export const GATEWAY_RESPONSES = {
  ACCESS_DENIED: 403,
  API_CONFIGURATION_ERROR: 500,
  AUTHORIZER_CONFIGURATION_ERROR: 500,
  AUTHORIZER_FAILURE: 500,
  BAD_REQUEST_PARAMETERS: 400,
  BAD_REQUEST_BODY: 400,
  EXPIRED_TOKEN: 403,
  INTEGRATION_FAILURE: 504,
  INTEGRATION_TIMEOUT: 504,
  INVALID_API_KEY: 403,
  INVALID_SIGNATURE: 403,
  MISSING_AUTHENTICATION_TOKEN: 403,
  QUOTA_EXCEEDED: 429,
  REQUEST_TOO_LARGE: 413,
  RESOURCE_NOT_FOUND: 404,
  THROTTLED: 429,
  UNAUTHORIZED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  WAF_FILTERED: 403,
  // Whatever type AWS adds later: the status stays the one API Gateway chose (the response sets
  // none), the body's `status` is the class's.
  DEFAULT_4XX: 400,
  DEFAULT_5XX: 500,
} as const satisfies Record<string, number>;
export type GatewayResponseType = keyof typeof GATEWAY_RESPONSES;

/** Every `code` a problem of this API can carry. */
export const PROBLEM_CODES = [
  ...new Set([
    ...ERROR_CODES,
    ...EDGE_PROBLEM_CODES,
    ...(Object.keys(GATEWAY_RESPONSES) as GatewayResponseType[]),
  ]),
] as readonly (ErrorCode | (typeof EDGE_PROBLEM_CODES)[number] | GatewayResponseType)[];
export type ProblemCode = (typeof PROBLEM_CODES)[number];

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
};

export const problemTitle = (status: number): string =>
  TITLES[status] ?? (status >= 500 ? 'Server Error' : 'Client Error');

/** The problem's `type`: one URN per code, so that it identifies the kind of problem (RFC 9457 3.1.1). */
export const problemType = (code: string): string =>
  `urn:persona:problem:${code.toLowerCase().replaceAll('_', '-')}`;

export interface ProblemDocument {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: ProblemCode;
  readonly [extension: string]: unknown;
}

export function problemDocument(
  status: number,
  code: ProblemCode,
  detail: string,
  extensions: Readonly<Record<string, unknown>> = {},
): ProblemDocument {
  return { type: problemType(code), title: problemTitle(status), status, detail, code, ...extensions };
}
