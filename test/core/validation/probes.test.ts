import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { runProbes } from '../../../core/validation/probes.js';
import { ProbeReport } from '../../../core/validation/report.js';
import { json, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** An application whose answers carry a timestamp and a request id: noise that every answer changes. */
async function app(price: number, extra: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startServer((req, res) => {
    if (req.url === '/page') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<p>rendered at ${process.hrtime.bigint()}</p>`);
      return;
    }
    if (req.url === '/missing') return json(res, { error: 'not found' }, 404);
    json(res, {
      item: { id: 7, name: 'lamp', price },
      generatedAt: new Date(Date.now() + Math.floor(Math.random() * 1e6)).toISOString(),
      requestId: randomUUID(),
      ...extra,
    });
  });
  servers.push(server);
  return server;
}

describe('runProbes', () => {
  it('reports only the field that really differs, not the timestamp and request id the source itself varies', async () => {
    const source = await app(10);
    const candidate = await app(12);
    const report = await runProbes({
      source: source.endpoint,
      candidate: candidate.endpoint,
      requests: [{ path: '/api/item' }, { path: '/page' }],
    });
    expect(report.passed).toBe(false);
    expect(report.differences).toEqual([
      expect.objectContaining({
        request: 'GET /api/item',
        field: 'json:$.item.price',
        source: '10',
        candidate: '12',
      }),
    ]);
    const noisy = report.noisyFields.map((f) => `${f.request} ${f.field}`);
    expect(noisy).toEqual(
      expect.arrayContaining([
        'GET /api/item json:$.generatedAt',
        'GET /api/item json:$.requestId',
        'GET /page body',
      ]),
    );
    expect(() => ProbeReport.parse(report)).not.toThrow();
  });

  it('finds no difference between two identical applications', async () => {
    const source = await app(10);
    const candidate = await app(10);
    const report = await runProbes({
      source: source.endpoint,
      candidate: candidate.endpoint,
      requests: [
        { path: '/api/item' },
        { path: '/page' },
        { method: 'HEAD', path: '/api/item' },
        { path: '/missing' },
      ],
      repeat: 2,
    });
    expect(report).toMatchObject({ passed: true, differences: [], requests: 8 });
  });

  it('reports a different status, a field the candidate lacks and a different header', async () => {
    const source = await app(10, { stock: 3 });
    const candidate = await startServer((req, res) => {
      if (req.url === '/missing') return json(res, { error: 'not found' }, 200);
      res.writeHead(200, { 'content-type': 'application/json; charset=latin1' });
      res.end(JSON.stringify({ item: { id: 7, name: 'lamp', price: 10 }, generatedAt: 'x', requestId: 'y' }));
    });
    servers.push(candidate);
    const report = await runProbes({
      source: source.endpoint,
      candidate: candidate.endpoint,
      requests: [{ path: '/api/item' }, { path: '/missing' }],
    });
    const found = report.differences.map((d) => [d.request, d.field, d.source, d.candidate]);
    expect(found).toEqual(
      expect.arrayContaining([
        ['GET /api/item', 'json:$.stock', '3', '(absent)'],
        ['GET /api/item', 'header:content-type', 'application/json', 'application/json; charset=latin1'],
        ['GET /missing', 'status', '404', '200'],
      ]),
    );
    expect(found.map((f) => f[1])).not.toContain('json:$.generatedAt');
  });

  it('shows long values truncated', async () => {
    const source = await app(10, { text: 'a'.repeat(5000) });
    const candidate = await app(10, { text: 'b'.repeat(5000) });
    const report = await runProbes({
      source: source.endpoint,
      candidate: candidate.endpoint,
      requests: [{ path: '/' }],
    });
    const diff = report.differences.find((d) => d.field === 'json:$.text');
    expect(diff?.source.length).toBeLessThan(300);
    expect(diff?.source).toContain('(5002 characters)');
  });

  it('reports a candidate that does not answer as an error field', async () => {
    const source = await app(10);
    const report = await runProbes({
      source: source.endpoint,
      candidate: { scheme: 'http', address: '127.0.0.1', port: 1 },
      requests: [{ path: '/api/item' }],
    });
    expect(report.differences).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: 'error', source: '(absent)', candidate: 'ECONNREFUSED' }),
      ]),
    );
  });

  it('refuses a method that may change the source, naming the request, and sends nothing', async () => {
    const source = await app(10);
    const candidate = await app(10);
    const error = await runProbes({
      source: source.endpoint,
      candidate: candidate.endpoint,
      requests: [{ path: '/' }, { method: 'POST', path: '/orders' }],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual(['requests[1].method']);
    expect(source.received() + candidate.received()).toBe(0);
  });

  it('refuses a path that would split the request line', async () => {
    const error = await runProbes({
      source: { scheme: 'http', address: '127.0.0.1', port: 1 },
      candidate: { scheme: 'http', address: '127.0.0.1', port: 1 },
      requests: [{ path: '/a HTTP/1.1\r\nX: y' }],
    }).catch((e: unknown) => e);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual(['requests[0].path']);
  });
});
