import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpEndpoint } from '../../../core/validation/http.js';

export interface TestServer {
  readonly endpoint: HttpEndpoint;
  readonly port: number;
  /** Requests the server has received. */
  readonly received: () => number;
  readonly close: () => Promise<void>;
}

/** A real HTTP server on 127.0.0.1 with an ephemeral port. */
export async function startServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, index: number) => void,
): Promise<TestServer> {
  let count = 0;
  const server = http.createServer((req, res) => handler(req, res, count++));
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: { scheme: 'http', address: '127.0.0.1', port },
    port,
    received: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: http.ServerResponse, body: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': String(Math.random()) });
  res.end(JSON.stringify(body));
}

/** A port nothing listens on (it was just listened on and closed). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
