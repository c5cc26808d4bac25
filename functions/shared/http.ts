// The HTTP edge every API function shares: request parsing that names the bad field, and one
// mapping from domain errors to problem responses (RFC 9457), so no function answers a
// caller's mistake with a 500.
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { z } from 'zod';
import {
  type ErrorCode,
  InvalidInputError,
  type Issue,
  isPersonaError,
  TooLargeError,
} from '../../core/errors.js';
import { issuesFromZod, parseDocumentText, validateProfile } from '../../core/profile/io.js';
import type { Profile } from '../../core/profile/schema.js';
import { logger } from './runtime.js';

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
  PRECONDITION_REQUIRED: 428,
  // Damaged stored data is the service's problem, not the caller's.
  CORRUPT: 500,
  // A managed host could not be reached or refused us: the upstream failed, not the request.
  TRANSPORT: 502,
};

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  428: 'Precondition Required',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
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

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: ErrorCode | 'INTERNAL';
  readonly issues?: readonly Issue[];
  readonly current?: number;
}

function problem(status: number, code: Problem['code'], detail: string, extra: Partial<Problem> = {}) {
  const body: Problem = {
    type: `urn:persona:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    ...extra,
  };
  return { ...json(status, body), headers: { 'content-type': 'application/problem+json' } };
}

/** Case-insensitive header lookup (API Gateway passes header names as the client sent them). */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted && v) return v;
  return undefined;
}

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
): MiddlewareObj<E & { parsedBody?: z.output<S> }, APIGatewayProxyResult> {
  return {
    name: 'jsonBody',
    before: (request) => {
      const event = request.event;
      if (event.body === null || event.body === undefined || event.body.trim() === '') {
        throw new InvalidInputError('the request needs a body', [{ path: 'body', message: 'required' }]);
      }
      const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
      const { value, locate } = parseDocumentText(text, { source: 'body' });
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
    before: (request) => {
      const event = request.event;
      if (event.body === null || event.body === undefined || event.body.trim() === '') {
        throw new InvalidInputError('the request needs a profile document as its body', [
          { path: 'body', message: 'required' },
        ]);
      }
      const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
      const { value, locate } = parseDocumentText(text, { source: 'body' });
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
        if ('current' in error && typeof error.current === 'number')
          Object.assign(extra, { current: error.current });
        if (status >= 500) logger.error('request failed', { error });
        request.response = problem(status, error.code, error.message, extra);
        return;
      }
      logger.error('unexpected error', { error: error as Error });
      count('INTERNAL');
      request.response = problem(500, 'INTERNAL', `internal error (request ${request.context.awsRequestId})`);
    },
  };
}
