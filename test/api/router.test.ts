// The embedded runtime's router, sent raw bytes: every answer it makes itself is a problem of
// the functions' shape (RFC 9457 with `code`), and malformed input is the caller's 400, never 502.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProblemSchema } from '../../core/api/schemas.js';
import { type ApiHandler, createApiServer } from '../../local/http.js';

let server: Server;
let port: number;
const seen: { path: string; params: unknown; query: unknown }[] = [];

// Handlers that echo what reached them, and one that throws as a function with a bug would.
const echo: ApiHandler = async (event) => {
  seen.push({ path: event.path, params: event.pathParameters, query: event.queryStringParameters });
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{}' };
};
const handlers = new Proxy({} as Record<string, ApiHandler>, {
  get: (_, name) =>
    name === 'get-openapi'
      ? async () => {
          throw new Error('injected: the function crashed');
        }
      : echo,
});

beforeAll(async () => {
  server = createApiServer({ handlers });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** Sends `head` (the request line and headers, without the blank line) byte for byte. */
function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    const size = Number.parseInt(body.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

function raw(head: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        const split = text.indexOf('\r\n\r\n');
        const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
        const headers = Object.fromEntries(
          lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
        );
        const rest = text.slice(split + 4);
        const body = headers['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest;
        resolve({
          status: Number(statusLine.split(' ')[1]),
          headers,
          body: body ? JSON.parse(body) : undefined,
        });
      } catch (e) {
        reject(e);
      }
    });
    socket.end(`${head}\r\nConnection: close\r\n\r\n`);
  });
}

const get = (target: string, extra = '') => raw(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}${extra}`);

/** The functions' problem shape: the documented schema, and a type per code. */
function expectProblem(res: RawResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toBe('application/problem+json');
  expect(ProblemSchema.safeParse(res.body).success, JSON.stringify(res.body)).toBe(true);
  expect(res.body).toMatchObject({
    status,
    code,
    type: `urn:persona:problem:${code.toLowerCase().replaceAll('_', '-')}`,
  });
}

describe('the embedded router', () => {
  it('answers malformed percent-encoding in a path parameter with 400 naming it, and reaches no function', async () => {
    seen.length = 0;
    for (const bad of ['%E0%A4%A', '%zz', '%C0%AF', '%ED%A0%80', '%']) {
      const res = await get(`/hosts/${bad}`);
      expectProblem(res, 400, 'INVALID_INPUT');
      expect(res.body.issues, bad).toEqual([{ path: 'params.host', message: 'malformed percent-encoding' }]);
    }
    expect(seen).toEqual([]);
  });

  it('answers malformed percent-encoding in a query name or value with 400 naming it', async () => {
    for (const [target, field] of [
      ['/profiles?limit=%E0%A4%A', 'query.limit'],
      ['/profiles?cursor=%C0%AF', 'query.cursor'],
      ['/profiles?%zz=1', 'query.%zz'],
    ] as const) {
      const res = await get(target);
      expectProblem(res, 400, 'INVALID_INPUT');
      expect(res.body.issues[0].path, target).toBe(field);
    }
  });

  it('decodes well-formed escapes before the function sees them', async () => {
    seen.length = 0;
    expect((await get('/hosts/web%2D1?cursor=a%20b')).status).toBe(200);
    expect(seen).toEqual([{ path: '/hosts/web%2D1', params: { host: 'web-1' }, query: { cursor: 'a b' } }]);
  });

  it('reads a target that starts with // as a path, not as a host', async () => {
    const res = await get('//profiles');
    expectProblem(res, 404, 'NOT_FOUND');
    expect(res.body.detail).toBe('no route for GET //profiles');
  });

  it('refuses a request target that is no path with 400', async () => {
    expectProblem(await get('profiles'), 400, 'INVALID_INPUT');
  });

  it('answers an overlong request line with 431 and a problem, not a bare socket error', async () => {
    const res = await get(`/profiles?cursor=${'a'.repeat(20_000)}`);
    expectProblem(res, 431, 'TOO_LARGE');
  });

  it('answers HTTP it cannot parse with 400 and a problem', async () => {
    const res = await raw(`GET /profiles HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nBad Header Name: x`);
    expectProblem(res, 400, 'INVALID_INPUT');
  });

  it('refuses a cross-site request (another Origin) with 403 FORBIDDEN', async () => {
    const res = await get('/profiles', '\r\nOrigin: https://evil.example');
    expectProblem(res, 403, 'FORBIDDEN');
  });

  it('refuses another Host with 421 MISDIRECTED_REQUEST', async () => {
    const res = await raw('GET /profiles HTTP/1.1\r\nHost: rebound.example');
    expectProblem(res, 421, 'MISDIRECTED_REQUEST');
  });

  it('answers a wrong method with 405 and Allow, an agent credential on an operator route with 403, an agent route without one with 401', async () => {
    const wrong = await raw(`PATCH /profiles HTTP/1.1\r\nHost: 127.0.0.1:${port}`);
    expectProblem(wrong, 405, 'METHOD_NOT_ALLOWED');
    expect(wrong.headers.allow).toBe('POST, GET');
    expectProblem(await get('/profiles', '\r\nAuthorization: Bearer abc'), 403, 'FORBIDDEN');
    expectProblem(await get('/hosts/web-1/agent/assignment'), 401, 'UNAUTHORIZED');
  });

  it('answers a function that throws with 502 and a problem', async () => {
    const res = await get('/openapi.json');
    expectProblem(res, 502, 'INTERNAL');
    expect(res.body.detail).toMatch(/injected/);
  });
});
