// One HTTP exchange as validation needs it: to an address given apart from the Host header (a
// clone answers for the source's names at its own address, as `curl --resolve` would reach it),
// never following redirects, with a deadline and a cap on the body kept.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isIPv6 } from 'node:net';

export interface HttpEndpoint {
  readonly scheme: 'http' | 'https';
  /** The address dialled: an IP address or a host name. */
  readonly address: string;
  readonly port: number;
  /** The Host header (and TLS server name); `address:port` when absent. */
  readonly hostHeader?: string;
  /** Whether an HTTPS certificate must be valid for the host name. Default true. */
  readonly verifyTls?: boolean;
}

export interface HttpExchange {
  readonly method: string;
  /** Path and query, starting with `/`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface HttpResponseData {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The body's first `maxBodyBytes` bytes. */
  readonly body: Buffer;
  /** sha256 of the whole body, however long. */
  readonly bodySha256: string;
  readonly bodyBytes: number;
  readonly bodyTruncated: boolean;
}

export interface HttpRequestOptions {
  readonly timeoutMs: number;
  /** Bytes of body kept for inspection; the rest is hashed and dropped. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  readonly agent?: http.Agent;
}

export type HttpFailureKind = 'timeout' | 'connect' | 'protocol';

/** The exchange produced no response: `reason` is short and stable (`timeout`, `ECONNREFUSED`). */
export class HttpFailure extends Error {
  constructor(
    message: string,
    readonly kind: HttpFailureKind,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'HttpFailure';
  }
}

export function endpointLabel(endpoint: HttpEndpoint, path = ''): string {
  const host = isIPv6(endpoint.address) ? `[${endpoint.address}]` : endpoint.address;
  return `${endpoint.scheme}://${host}:${endpoint.port}${path}`;
}

export function httpExchange(
  endpoint: HttpEndpoint,
  exchange: HttpExchange,
  options: HttpRequestOptions,
): Promise<HttpResponseData> {
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const hostHeader = endpoint.hostHeader ?? new URL(endpointLabel(endpoint)).host;
  const serverName = hostHeader.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const lib = endpoint.scheme === 'https' ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: HttpFailure) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    };
    const req = lib.request({
      host: endpoint.address,
      port: endpoint.port,
      method: exchange.method,
      path: exchange.path,
      headers: { ...exchange.headers, host: hostHeader },
      ...(options.agent ? { agent: options.agent } : {}),
      ...(endpoint.scheme === 'https'
        ? {
            // A server name is only meaningful as a name; an address literal is sent as none.
            servername: /^[\d.]+$|:/.test(serverName) ? '' : serverName,
            rejectUnauthorized: endpoint.verifyTls ?? true,
          }
        : {}),
    });
    const timer = setTimeout(() => {
      const error = new HttpFailure(
        `${exchange.method} ${endpointLabel(endpoint, exchange.path)} got no whole answer within ${options.timeoutMs} ms`,
        'timeout',
        'timeout',
      );
      fail(error);
      req.destroy(error);
    }, options.timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code ?? 'error';
      const kind = ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(reason)
        ? 'connect'
        : 'protocol';
      fail(
        new HttpFailure(
          `${exchange.method} ${endpointLabel(endpoint, exchange.path)} failed: ${error.message}`,
          kind,
          reason,
          { cause: error },
        ),
      );
    });
    req.on('response', (res) => {
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let total = 0;
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => {
        total += chunk.length;
        hash.update(chunk);
        if (keptBytes < maxBody) {
          const part = chunk.subarray(0, maxBody - keptBytes);
          kept.push(part);
          keptBytes += part.length;
        }
      });
      res.on('error', (error: NodeJS.ErrnoException) =>
        fail(
          new HttpFailure(
            `${exchange.method} ${endpointLabel(endpoint, exchange.path)} broke off mid-answer: ${error.message}`,
            'protocol',
            error.code ?? 'aborted',
            { cause: error },
          ),
        ),
      );
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(kept),
          bodySha256: hash.digest('hex'),
          bodyBytes: total,
          bodyTruncated: total > keptBytes,
        });
      });
    });
    req.end();
  });
}
