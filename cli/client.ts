// The CLI's view of the API: plain HTTP to the embedded runtime, SigV4-signed requests to
// API Gateway (whose methods use IAM authorisation).
import { ApiError, UnreachableError } from './errors.js';
import { signRequest } from './sigv4.js';

export interface ClientOptions {
  readonly endpoint: string;
  /** Sign requests with the caller's AWS credentials. */
  readonly sigv4: boolean;
}

export interface Response<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

export class PersonaClient {
  private readonly base: URL;
  constructor(private readonly options: ClientOptions) {
    this.base = new URL(options.endpoint.endsWith('/') ? options.endpoint : `${options.endpoint}/`);
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
    let headers: Record<string, string> = {
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    };
    if (this.options.sigv4) headers = await signRequest({ method, url, headers, body });
    let res: globalThis.Response;
    try {
      res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
    } catch (cause) {
      throw new UnreachableError(this.options.endpoint, cause);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text for the message
    }
    if (!res.ok && !(init.allow ?? []).includes(res.status)) {
      const problem =
        parsed !== null && typeof parsed === 'object'
          ? (parsed as ApiError['problem'])
          : { detail: `HTTP ${res.status}: ${String(parsed).slice(0, 200)}` };
      throw new ApiError(res.status, problem);
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }
}
