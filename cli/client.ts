// The CLI's view of the API: plain HTTP to the embedded runtime, SigV4-signed requests to
// API Gateway (whose methods use IAM authorisation). Every attempt has a time-out; throttling
// and server failures are retried with a bounded, jittered exponential back-off when the
// request can be sent twice without doing its work twice.

import { ERROR_CODES } from '../core/errors.js';
import {
  ApiError,
  CredentialsError,
  type GatewayFault,
  type Problem,
  TimedOutError,
  UnreachableError,
} from './errors.js';
import { signingRegion } from './region.js';

export interface ClientOptions {
  readonly endpoint: string;
  /** Sign requests with the caller's AWS credentials. */
  readonly sigv4: boolean;
  /** The region to sign for; default: the endpoint's own, else the caller's configured one. */
  readonly region?: string | undefined;
  /** How long one attempt may take, answer body included. */
  readonly timeoutMs?: number;
  /** Attempts after the first, for a request that may be retried. */
  readonly retries?: number;
  /** First back-off and the most any one back-off may be. */
  readonly backoffMs?: { readonly base: number; readonly max: number };
}

export interface Response<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_RETRIES = 3;
const DEFAULT_BACKOFF = { base: 250, max: 5_000 };

// Sent again without asking: nothing in these methods does more the second time. A PUT
// carried out before its answer was lost finds its own document at the version after the
// one its If-Match names, and is answered "unchanged" rather than written twice.
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
// Failures of a connection that was established or being set up, worth another attempt; a
// refused connection or an unknown host is not (nothing listens there; retrying only delays).
const TRANSIENT = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seconds (or an HTTP date) of a Retry-After header, in milliseconds. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const PERSONA_CODES = new Set<string>([...ERROR_CODES, 'INTERNAL']);
const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

/**
 * API Gateway's own error, not a function's: `x-amzn-ErrorType` and a `message`, either as its
 * default `{"message": …}` or as the stage's problem document (infra/api.ts), whose `code` is the
 * gateway response type (ACCESS_DENIED, THROTTLED, …) and never one of Persona's codes.
 */
function gatewayFault(res: globalThis.Response, parsed: unknown): GatewayFault | undefined {
  const header = res.headers.get('x-amzn-errortype')?.split(':')[0];
  const body = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  const code = text(body.code);
  if (code !== undefined && PERSONA_CODES.has(code)) return undefined;
  const message = text(body.message) ?? text(body.Message);
  if (header === undefined && message === undefined) return undefined;
  return {
    type: header ?? code,
    message: message ?? text(body.detail) ?? `HTTP ${res.status}`,
    requestId:
      res.headers.get('x-amzn-requestid') ??
      text(body.requestId) ??
      res.headers.get('x-amz-apigw-id') ??
      undefined,
  };
}

export class PersonaClient {
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoff: { readonly base: number; readonly max: number };
  constructor(private readonly options: ClientOptions) {
    this.base = new URL(options.endpoint.endsWith('/') ? options.endpoint : `${options.endpoint}/`);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.backoff = options.backoffMs ?? DEFAULT_BACKOFF;
  }

  /** The wait before attempt `n + 1`: exponential, capped, half of it random. */
  private delay(n: number, retryAfter: number | undefined): number {
    const ceiling = Math.min(this.backoff.max, this.backoff.base * 2 ** n);
    const jittered = ceiling / 2 + Math.random() * (ceiling / 2);
    return retryAfter === undefined ? jittered : Math.min(Math.max(retryAfter, jittered), this.backoff.max);
  }

  async request<T>(
    method: string,
    path: string,
    init: {
      body?: unknown;
      headers?: Record<string, string>;
      query?: Record<string, string | number | undefined>;
      /** Statuses answered as they are instead of thrown (a 404 that means "not yet"). */
      allow?: readonly number[];
    } = {},
  ): Promise<Response<T>> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    for (const [k, v] of Object.entries(init.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    };
    const keyed = Object.keys(headers).some((h) => h.toLowerCase() === 'idempotency-key');
    const retryable = IDEMPOTENT.has(method) || (method === 'POST' && keyed);
    const region = this.options.sigv4 ? signingRegion(url, this.options.region) : undefined;
    const sign =
      region === undefined
        ? undefined
        : (await import('./sigv4.js')).signRequest.bind(undefined, { method, url, headers, body, region });

    for (let attempt = 0; ; attempt++) {
      const left = retryable && attempt < this.retries;
      // Signed again for every attempt: a signature is only good for a few minutes.
      let sent = headers;
      if (sign) {
        try {
          sent = await sign();
        } catch (cause) {
          throw new CredentialsError(url.host, cause);
        }
      }
      let res: globalThis.Response;
      let text: string;
      try {
        res = await fetch(url, {
          method,
          headers: sent,
          signal: AbortSignal.timeout(this.timeoutMs),
          ...(body === undefined ? {} : { body }),
        });
        text = await res.text();
      } catch (cause) {
        if ((cause as Error).name === 'TimeoutError')
          throw new TimedOutError(this.options.endpoint, method, url.pathname, this.timeoutMs / 1000);
        const code = (cause as { cause?: { code?: string } }).cause?.code;
        if (left && code !== undefined && TRANSIENT.has(code)) {
          await sleep(this.delay(attempt, undefined));
          continue;
        }
        throw new UnreachableError(this.options.endpoint, cause);
      }
      if (left && (res.status === 429 || res.status >= 500) && !(init.allow ?? []).includes(res.status)) {
        await sleep(this.delay(attempt, retryAfterMs(res.headers.get('retry-after'))));
        continue;
      }
      let parsed: unknown = text;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        // not JSON: keep the text for the message
      }
      if (!res.ok && !(init.allow ?? []).includes(res.status)) {
        const fault = gatewayFault(res, parsed);
        const refused = res.status === 401 || res.status === 403;
        const gateway = fault && refused && region ? { ...fault, signedFor: region } : fault;
        const problem: Problem =
          parsed !== null && typeof parsed === 'object' && !gateway
            ? (parsed as Problem)
            : { detail: `HTTP ${res.status}: ${String(text).slice(0, 200)}` };
        throw new ApiError(res.status, problem, gateway);
      }
      return { status: res.status, headers: res.headers, body: parsed as T };
    }
  }
}
