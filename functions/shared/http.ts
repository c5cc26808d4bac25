// The HTTP edge every API function shares: request parsing that names the bad field, and one
// mapping from domain errors to problem responses (RFC 9457), so no function answers a
// caller's mistake with a 500.
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { z } from 'zod';
import { PROBLEM_MEDIA_TYPE, type ProblemDocument, problemDocument } from '../../core/api/problems.js';
import {
  type ErrorCode,
  IdempotencyKeyReusedError,
  InvalidInputError,
  type Issue,
  isPersonaError,
  TooLargeError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from '../../core/errors.js';
import {
  DynamoIdempotencyKeys,
  IDEMPOTENCY_KEY_PATTERN,
  type IdempotencyKeys,
} from '../../core/operation/idempotency.js';
import { type ParseOptions, readDocumentText } from '../../core/profile/document-text.js';
import { issuesFromZod } from '../../core/profile/issues.js';
import type { Profile } from '../../core/profile/schema.js';
import { validateProfile } from '../../core/profile/validate.js';
import { OPERATIONS_TABLE } from '../../core/storage/definitions.js';
import { ddb, getRequiredEnv, logger } from './runtime.js';

export interface ApiEvent<P = Record<string, never>, Q = Record<string, never>> extends APIGatewayProxyEvent {
  params: P;
  query: Q;
  /** The request body read as a Profile, when the function asked for one. */
  profile?: Profile;
}

export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  DELTA_CONFLICT: 409,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PRECONDITION_REQUIRED: 428,
  // Damaged stored data is the service's problem, not the caller's, but not an unexplained
  // failure either: the store behind the function answered with bytes that fail their recorded
  // hash, which is what 502 says of an upstream (RFC 9110 15.6.3). The code says which.
  CORRUPT: 502,
  // A managed host could not be reached or refused us: the upstream failed, not the request.
  TRANSPORT: 502,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  // The request is well-formed, but its key names another request's operation (RFC 9110 15.5.21).
  IDEMPOTENCY_KEY_REUSED: 422,
};

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

export interface Problem extends ProblemDocument {
  readonly code: ErrorCode | 'INTERNAL';
  readonly issues?: readonly Issue[];
  readonly current?: number;
}

function problem(status: number, code: Problem['code'], detail: string, extra: Partial<Problem> = {}) {
  const body: Problem = problemDocument(status, code, detail, extra) as Problem;
  return { ...json(status, body), headers: { 'content-type': PROBLEM_MEDIA_TYPE } };
}

/** Case-insensitive header lookup (API Gateway passes header names as the client sent them). */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted && v) return v;
  return undefined;
}

/** The media types a request body may have: documents, JSON or YAML, in UTF-8. */
export const DOCUMENT_MEDIA_TYPES = ['application/json', 'application/yaml', 'text/yaml'] as const;

// application/x-yaml and text/x-yaml are the names YAML went by before RFC 9512; +json and
// +yaml are structured syntax suffixes (application/merge-patch+json, ...).
const DOCUMENT_TYPE = /^(application\/((x-)?yaml|json|[\w.+-]+\+(json|yaml))|text\/(x-)?yaml)$/;

/**
 * Refuses a body that is not declared as a JSON or YAML document. A web page can send
 * text/plain, form data or an untyped blob to any address without asking first (a "simple"
 * CORS request), so accepting those would let any site write; every other type makes the
 * browser ask, and this API never says yes.
 */
export function requireDocumentType(event: APIGatewayProxyEvent): void {
  if (event.body === null || event.body === undefined || event.body === '') return;
  const raw = header(event, 'content-type');
  const [type = '', ...params] = (raw ?? '').split(';').map((p) => p.trim().toLowerCase());
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (DOCUMENT_TYPE.test(type) && (charset === undefined || charset === 'utf-8')) return;
  throw new UnsupportedMediaTypeError(
    raw === undefined
      ? `the body needs a Content-Type: ${DOCUMENT_MEDIA_TYPES.join(', ')}`
      : `Content-Type ${JSON.stringify(raw)} is not accepted; send ${DOCUMENT_MEDIA_TYPES.join(', ')} (UTF-8)`,
    raw,
  );
}

/** requireDocumentType as a middleware: for routes whose body is optional or parsed later. */
export function documentTypes(): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  return { name: 'documentTypes', before: (request) => requireDocumentType(request.event) };
}

/** The body as the document parser takes it: text, or the bytes when API Gateway sent base64. */
export function documentSource(event: APIGatewayProxyEvent): string | Uint8Array {
  const body = event.body ?? '';
  return event.isBase64Encoded ? Buffer.from(body, 'base64') : body;
}

const isBlank = (body: string | Uint8Array) =>
  typeof body === 'string' ? body.trim() === '' : Buffer.from(body).toString('latin1').trim() === '';

interface RequestSchemas<P extends z.ZodType, Q extends z.ZodType> {
  readonly params?: P;
  readonly query?: Q;
}

/** Validates path and query parameters; a bad one is a 400 naming `params.x` or `query.x`. */
export function parseRequest<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType>(
  schemas: RequestSchemas<P, Q>,
): MiddlewareObj<ApiEvent<z.output<P>, z.output<Q>>, APIGatewayProxyResult> {
  return {
    name: 'parseRequest',
    before: (request) => {
      const event = request.event;
      const issues: Issue[] = [];
      const check = <S extends z.ZodType>(schema: S | undefined, value: unknown, prefix: string) => {
        if (schema === undefined) return {};
        const result = schema.safeParse(value ?? {});
        if (result.success) return result.data;
        issues.push(
          ...issuesFromZod(result.error).map((i) => ({
            ...i,
            path: i.path ? `${prefix}.${i.path}` : prefix,
          })),
        );
        return undefined;
      };
      requireDocumentType(event);
      const params = check(schemas.params, event.pathParameters, 'params');
      const query = check(schemas.query, event.queryStringParameters, 'query');
      if (issues.length > 0) throw new InvalidInputError('the request is not valid', issues);
      event.params = params as z.output<P>;
      event.query = query as z.output<Q>;
    },
  };
}

/**
 * Reads the body as a JSON or YAML document (with the same defences as profile documents)
 * and validates it with `schema`; the result is in `event.parsedBody`.
 */
export function jsonBody<S extends z.ZodType, E extends ApiEvent<unknown, unknown>>(
  schema: S,
  limits: Pick<ParseOptions, 'maxBytes' | 'kind'> = {},
): MiddlewareObj<E & { parsedBody?: z.output<S> }, APIGatewayProxyResult> {
  return {
    name: 'jsonBody',
    before: async (request) => {
      const event = request.event;
      requireDocumentType(event);
      const source = documentSource(event);
      if (isBlank(source)) {
        throw new InvalidInputError('the request needs a body', [{ path: 'body', message: 'required' }]);
      }
      const { value, locate } = await readDocumentText(source, { source: 'body', ...limits });
      const result = schema.safeParse(value);
      if (!result.success)
        throw new InvalidInputError('the body is not valid', issuesFromZod(result.error, locate));
      event.parsedBody = result.data;
    },
  };
}

/** Reads the body as a Profile document, JSON or YAML, with every problem named. */
export function profileBody<E extends ApiEvent<unknown, unknown>>(): MiddlewareObj<E, APIGatewayProxyResult> {
  return {
    name: 'profileBody',
    before: async (request) => {
      const event = request.event;
      requireDocumentType(event);
      const source = documentSource(event);
      if (isBlank(source)) {
        throw new InvalidInputError('the request needs a profile document as its body', [
          { path: 'body', message: 'required' },
        ]);
      }
      const { value, locate } = await readDocumentText(source, { source: 'body' });
      event.profile = validateProfile(value, { source: 'body', locate });
    },
  };
}

/**
 * Maps every error to a problem response: domain errors by code, anything else as a logged
 * 500. With `metrics`, each problem is also counted by its code (conflicts, refused documents).
 */
export function apiErrors(
  options: { readonly metrics?: Metrics } = {},
): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  const count = (code: Problem['code']) => {
    options.metrics?.addDimension('problem', code);
    options.metrics?.addMetric('Problems', MetricUnit.Count, 1);
  };
  return {
    name: 'apiErrors',
    onError: (request) => {
      const error = request.error;
      if (isPersonaError(error)) {
        count(error.code);
        const status = STATUS_BY_CODE[error.code];
        const extra: Partial<Problem> = {};
        if (error instanceof InvalidInputError && error.issues.length > 0)
          Object.assign(extra, { issues: error.issues });
        if (error instanceof TooLargeError)
          Object.assign(extra, { issues: [{ path: 'body', message: error.message }] });
        if (error instanceof UnsupportedMediaTypeError)
          Object.assign(extra, { issues: [{ path: 'headers.content-type', message: error.message }] });
        if (error instanceof IdempotencyKeyReusedError)
          Object.assign(extra, {
            issues: [
              { path: 'headers.idempotency-key', message: `first sent with another ${error.differs}` },
            ],
          });
        if ('current' in error && typeof error.current === 'number')
          Object.assign(extra, { current: error.current });
        if (status >= 500) logger.error('request failed', { error });
        request.response = problem(status, error.code, error.message, extra);
        if (error instanceof UnsupportedMediaTypeError)
          request.response.headers = { ...request.response.headers, accept: DOCUMENT_MEDIA_TYPES.join(', ') };
        return;
      }
      logger.error('unexpected error', { error: error as Error });
      count('INTERNAL');
      request.response = problem(500, 'INTERNAL', `internal error (request ${request.context.awsRequestId})`);
    },
  };
}

/** The agent an agent route was called by, as the authoriser (or the embedded runtime) passed it. */
export interface AgentCaller {
  readonly host: string;
  readonly id?: string;
}

/**
 * For routes with `auth: 'agent'`: reads the principal the agent authoriser put in the request
 * context (API Gateway) or the embedded runtime put there the same way; none is 401.
 */
export function agentCaller<E extends APIGatewayProxyEvent & { agent?: AgentCaller }>(): MiddlewareObj<
  E,
  APIGatewayProxyResult
> {
  return {
    name: 'agentCaller',
    before: (request) => {
      const context = request.event.requestContext?.authorizer as Record<string, unknown> | null | undefined;
      const host = context?.host;
      if (context?.principal !== 'agent' || typeof host !== 'string' || host === '') {
        throw new UnauthorizedError('this route is for a host agent presenting its own credential');
      }
      request.event.agent = { host, ...(typeof context.id === 'string' ? { id: context.id } : {}) };
    },
  };
}

/** The request's Idempotency-Key, when it sent one; a malformed one is a 400 naming the header. */
export function idempotencyKey(event: APIGatewayProxyEvent): string | undefined {
  const key = header(event, 'idempotency-key');
  if (key !== undefined && !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new InvalidInputError('Idempotency-Key must be 8 to 80 letters, digits, "-" or "_"', [
      { path: 'headers.idempotency-key', message: 'expected 8 to 80 of [A-Za-z0-9_-]' },
    ]);
  }
  return key;
}

let keys: IdempotencyKeys | undefined;

/** Claimed Idempotency-Keys: records in the operations table, beside the operations they name. */
export function idempotencyKeys(): IdempotencyKeys {
  keys ??= new DynamoIdempotencyKeys(ddb(), getRequiredEnv(OPERATIONS_TABLE.env));
  return keys;
}
