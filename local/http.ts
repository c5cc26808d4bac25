// Serves the API functions over plain HTTP on localhost, in API Gateway's proxy event shape,
// so that the very handlers deployed to Lambda answer here too.
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { PROBLEM_MEDIA_TYPE, type ProblemCode, problemDocument, problemTitle } from '../core/api/problems.js';
import { ROUTES, type Route } from '../core/api/routes.js';

export type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

// API Gateway refuses payloads above 10 MB and Lambda above 6 MB; the stand-in does the same.
const MAX_BODY_BYTES = 6 * 1024 * 1024;

interface CompiledRoute {
  readonly route: Route;
  readonly pattern: RegExp;
  readonly params: readonly string[];
}

function compile(route: Route): CompiledRoute {
  const params: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      const m = /^\{(\w+)\}$/.exec(segment);
      if (!m?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(m[1]);
      return '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}/?$`), params };
}

/** Every error the router makes itself is a problem of the same shape as the functions'. */
function problem(
  res: ServerResponse,
  status: number,
  code: ProblemCode,
  detail: string,
  extra: Record<string, unknown> = {},
): void {
  res.writeHead(status, { 'content-type': PROBLEM_MEDIA_TYPE });
  res.end(JSON.stringify(problemDocument(status, code, detail, extra)));
}

/**
 * What Node's HTTP parser refuses before a request exists (a header too long, a malformed request
 * line) gets a problem too, written to the socket as the response Node would have sent.
 */
function clientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || error.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify(
    problemDocument(
      status,
      tooLarge ? 'TOO_LARGE' : 'INVALID_INPUT',
      tooLarge
        ? 'the request line and headers are over the limit'
        : 'the request is not well-formed HTTP/1.1',
    ),
  );
  socket.end(
    `HTTP/1.1 ${status} ${problemTitle(status)}\r\nContent-Type: ${PROBLEM_MEDIA_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Names this server answers to, besides the address it listens on. */
const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * `Host` values a request for this server can carry. A page on another site that rebinds its
 * own name to 127.0.0.1 reaches the port with its name in `Host`: refusing every name but our
 * own leaves it nothing to talk to.
 */
function ownAuthorities(host: string, port: number): Set<string> {
  const names = new Set([...LOOPBACK_NAMES, host.includes(':') ? `[${host}]` : host]);
  return new Set([...names].map((n) => `${n}:${port}`));
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Strict percent-decoding: a malformed escape or bytes that are not UTF-8 are the caller's error. */
function percentDecode(raw: string, field: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? raw.replaceAll('+', ' ') : raw);
  } catch {
    throw new BadRequest(`${field} is not well-formed percent-encoded UTF-8: ${JSON.stringify(raw)}`, field);
  }
}

/** Query parameters, decoded strictly (URLSearchParams would pass `%zz` and `%ff` through). */
function queryParameters(search: string): [string, string][] {
  const out: [string, string][] = [];
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const key = percentDecode(rawKey, `query.${rawKey}`, true);
    out.push([key, eq === -1 ? '' : percentDecode(part.slice(eq + 1), `query.${key}`, true)]);
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * A Lambda context with `timeoutMs` left: 29 s for an API function (API Gateway's limit), the
 * function's own time-out for a workflow task.
 */
export function lambdaContext(functionName: string, requestId: string, timeoutMs = 29_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export interface LocalApiOptions {
  readonly handlers: Readonly<Record<string, ApiHandler>>;
  /** The loopback address the server listens on (default 127.0.0.1). */
  readonly host?: string;
  /** The routes served (default all of ROUTES): the agents' listener serves the agent routes only. */
  readonly routes?: readonly Route[];
  /**
   * Checks an agent route's `Authorization` header, as the agent authoriser does in AWS; the
   * principal reaches the handler in `requestContext.authorizer`. Without it, agent routes are
   * refused.
   */
  readonly agentAuth?: (authorization: string | undefined) => Promise<{ host: string; id: string }>;
  /**
   * Accept `Host` of this server's names at any port: a tunnel's far end listens on a port of
   * the host's own, and the agent names that one.
   */
  readonly anyPort?: boolean;
  readonly onRequest?: (line: { method: string; path: string; status: number; ms: number }) => void;
}

export function createApiServer(options: LocalApiOptions): Server {
  const compiled = (options.routes ?? ROUTES).map(compile);
  const server = createServer(async (req, res) => {
    const started = performance.now();
    // Origin-form ("/path?query") is read as a path even when it starts with "//", which a URL
    // base would take for a host; absolute-form is read as it is; anything else is no target.
    const target = req.url ?? '';
    const parsed = target.startsWith('/')
      ? URL.parse(`http://localhost${target}`)
      : /^https?:\/\//i.test(target)
        ? URL.parse(target)
        : null;
    const url = parsed ?? new URL('http://localhost/');
    const method = req.method ?? 'GET';
    const finish = (status: number) =>
      options.onRequest?.({
        method,
        path: url.pathname,
        status,
        ms: Math.round(performance.now() - started),
      });
    try {
      if (parsed === null) {
        problem(res, 400, 'INVALID_INPUT', `the request target ${JSON.stringify(req.url)} is not a URL path`);
        return finish(400);
      }
      const authorities = ownAuthorities(options.host ?? '127.0.0.1', req.socket.localPort ?? 0);
      const host = (req.headers.host ?? '').toLowerCase();
      const portless = (a: string) => a.replace(/:\d+$/, '');
      const known = options.anyPort
        ? [...authorities].some((a) => portless(a) === portless(host) && /:\d+$/.test(host))
        : authorities.has(host);
      if (!known) {
        problem(
          res,
          421,
          'MISDIRECTED_REQUEST',
          `this server answers only to ${[...authorities].join(', ')}, not to Host ${JSON.stringify(req.headers.host ?? '')}`,
        );
        return finish(421);
      }
      // Browsers name the page that sent a request in Origin: a page of any other site may
      // send requests here but never act through this API.
      const origin = req.headers.origin;
      if (
        origin !== undefined &&
        !authorities.has(origin.toLowerCase().replace(/^http:\/\/(?=[^/]+$)/, ''))
      ) {
        problem(
          res,
          403,
          'FORBIDDEN',
          `requests from web pages of other origins are refused (Origin ${origin})`,
        );
        return finish(403);
      }
      const matches = compiled
        .map((c) => ({ c, m: c.pattern.exec(url.pathname) }))
        .filter((x): x is { c: CompiledRoute; m: RegExpExecArray } => x.m !== null);
      const hit = matches.find((x) => x.c.route.method === method);
      if (!hit) {
        if (matches.length > 0) {
          res.setHeader('allow', matches.map((x) => x.c.route.method).join(', '));
          problem(res, 405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
          return finish(405);
        }
        problem(res, 404, 'NOT_FOUND', `no route for ${method} ${url.pathname}`);
        return finish(404);
      }
      // Agent routes take a host agent's credential; the others never do (in AWS they take
      // SigV4 only), so a bearer token there is refused rather than ignored.
      let authorizer: Record<string, string> | null = null;
      const authorization = req.headers.authorization;
      if (hit.c.route.auth === 'agent') {
        const agent = options.agentAuth
          ? await options.agentAuth(authorization).catch(() => undefined)
          : undefined;
        if (agent === undefined) {
          problem(res, 401, 'UNAUTHORIZED', 'this route is for a host agent presenting a valid credential');
          return finish(401);
        }
        authorizer = { principal: 'agent', host: agent.host, id: agent.id };
      } else if (/^bearer\s/i.test(authorization ?? '')) {
        problem(res, 403, 'FORBIDDEN', 'agent credentials are accepted on agent routes only');
        return finish(403);
      }
      const body = await readBody(req);
      if (body === undefined) {
        problem(res, 413, 'TOO_LARGE', `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
        return finish(413);
      }
      const pathParameters: Record<string, string> = {};
      const query: Record<string, string> = {};
      const multiQuery: Record<string, string[]> = {};
      let decodedQuery: [string, string][];
      try {
        hit.c.params.forEach((name, i) => {
          pathParameters[name] = percentDecode(hit.m[i + 1] ?? '', `params.${name}`, false);
        });
        decodedQuery = queryParameters(url.search);
      } catch (e) {
        if (!(e instanceof BadRequest)) throw e;
        problem(res, 400, 'INVALID_INPUT', e.message, {
          issues: [{ path: e.field, message: 'malformed percent-encoding' }],
        });
        return finish(400);
      }
      for (const [k, v] of decodedQuery) {
        query[k] = v;
        multiQuery[k] = [...(multiQuery[k] ?? []), v];
      }
      const headers: Record<string, string> = {};
      const multiHeaders: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined) continue;
        headers[k] = Array.isArray(v) ? v.join(',') : v;
        multiHeaders[k] = Array.isArray(v) ? v : [v];
      }
      const requestId = randomUUID();
      const event: APIGatewayProxyEvent = {
        resource: hit.c.route.path,
        path: url.pathname,
        httpMethod: method,
        headers,
        multiValueHeaders: multiHeaders,
        queryStringParameters: Object.keys(query).length > 0 ? query : null,
        multiValueQueryStringParameters: Object.keys(multiQuery).length > 0 ? multiQuery : null,
        pathParameters: hit.c.params.length > 0 ? pathParameters : null,
        stageVariables: null,
        // Text as API Gateway passes it; bytes that are not UTF-8 go as base64, as API Gateway
        // does for binary bodies, so the document parser can name the bad byte rather than
        // read a replacement character.
        body: body.length === 0 ? null : isUtf8(body) ? body.toString('utf8') : body.toString('base64'),
        isBase64Encoded: body.length > 0 && !isUtf8(body),
        requestContext: {
          accountId: '000000000000',
          apiId: 'local',
          authorizer,
          protocol: 'HTTP/1.1',
          httpMethod: method,
          identity: {} as APIGatewayProxyEvent['requestContext']['identity'],
          path: url.pathname,
          stage: 'local',
          requestId,
          requestTimeEpoch: Date.now(),
          resourceId: hit.c.route.handler,
          resourcePath: hit.c.route.path,
        },
      };
      const handler = options.handlers[hit.c.route.handler];
      if (!handler) throw new Error(`no handler loaded for ${hit.c.route.handler}`);
      const result = await handler(event, lambdaContext(hit.c.route.handler, requestId));
      res.writeHead(result.statusCode, {
        'x-request-id': requestId,
        ...(result.headers as Record<string, string>),
      });
      res.end(result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body);
      finish(result.statusCode);
    } catch (e) {
      // In Lambda an unhandled error is API Gateway's 502; say the same here.
      if (res.headersSent) {
        res.destroy();
        return finish(502);
      }
      problem(res, 502, 'INTERNAL', `the function failed: ${(e as Error).message}`);
      finish(502);
    }
  });
  server.on('clientError', clientError);
  return server;
}
