import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { HealthCheck as HealthCheckSchema } from '../../../core/profile/schema.js';
import { LocalTransport } from '../../../core/transport/local.js';
import type { Transport } from '../../../core/transport/transport.js';
import { type HealthCheck, runHealthChecks } from '../../../core/validation/health.js';
import { HealthReport } from '../../../core/validation/report.js';
import { closedPort, startServer, type TestServer } from './servers.js';

const transport = new LocalTransport({ killGraceMs: 200 });
const servers: TestServer[] = [];
let dir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'persona-health-'));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Checks as a Profile holds them, defaults filled in. */
const checks = (...input: unknown[]): HealthCheck[] => input.map((c) => HealthCheckSchema.parse(c));
const run = (list: HealthCheck[]) => runHealthChecks({ transport }, list, { address: '127.0.0.1' });

async function web(): Promise<TestServer> {
  const s = await startServer((req, res) => {
    if (req.url === '/health' && req.headers.host?.startsWith('www.shop.example:')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('status: ok');
    } else if (req.url === '/hang') {
      // Never answers.
    } else {
      res.writeHead(503);
      res.end('down');
    }
  });
  servers.push(s);
  return s;
}

/** Starts a copy of `sleep` under its own name, so the process check has something to count. */
function startNamed(name: string): ChildProcess {
  const path = join(dir, name);
  if (!existsSync(path)) copyFileSync('/bin/sleep', path);
  const child = spawn(path, ['30'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

async function waitForComm(child: ChildProcess, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      if (readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === name.slice(0, 15)) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name} did not start`);
}

describe('runHealthChecks: HTTP', () => {
  it("dials the clone's address with the check's own Host and passes on the expected status and body", async () => {
    const s = await web();
    const report = await run(
      checks({
        type: 'http',
        name: 'site',
        url: `http://www.shop.example:${s.port}/health`,
        expectBodyContains: 'ok',
      }),
    );
    expect(report.passed).toBe(true);
    expect(report.results[0]).toMatchObject({
      name: 'site',
      passed: true,
      target: `http://127.0.0.1:${s.port}/health`,
      observed: { status: 200, bodyContains: true },
    });
    expect(() => HealthReport.parse(report)).not.toThrow();
  });

  it('fails on another status or a body without the expected text, saying which', async () => {
    const s = await web();
    const report = await run(
      checks(
        { type: 'http', name: 'wrong-path', url: `http://www.shop.example:${s.port}/other` },
        {
          type: 'http',
          name: 'wrong-body',
          url: `http://www.shop.example:${s.port}/health`,
          expectBodyContains: 'green',
        },
      ),
    );
    expect(report.passed).toBe(false);
    expect(report.results.map((r) => [r.name, r.passed, r.reason])).toEqual([
      ['wrong-path', false, 'status 503, expected 200'],
      ['wrong-body', false, 'body does not contain "green"'],
    ]);
  });

  it('fails a server that never answers at the time-out, and a refused connection', async () => {
    const s = await web();
    const port = await closedPort();
    const report = await run(
      checks(
        { type: 'http', name: 'hang', url: `http://127.0.0.1:${s.port}/hang`, timeoutMs: 300 },
        { type: 'http', name: 'refused', url: `http://127.0.0.1:${port}/` },
      ),
    );
    expect(report.results[0]?.reason).toContain('within 300 ms');
    expect(report.results[1]?.reason).toContain('ECONNREFUSED');
    expect(report.passed).toBe(false);
  });
});

describe('runHealthChecks: HTTPS', () => {
  it("sends the check's host name as the TLS server name and verifies the certificate unless told not to", async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=www.shop.example',
        '-addext',
        'subjectAltName=DNS:www.shop.example',
      ],
      { stdio: 'ignore' },
    );
    let serverName: string | undefined;
    const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      serverName = (req.socket as TLSSocket).servername || undefined;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const check = checks({ type: 'http', name: 'tls', url: `https://www.shop.example:${port}/` });
      const verified = await runHealthChecks({ transport }, check, { address: '127.0.0.1' });
      expect(verified.results[0]?.passed).toBe(false);
      expect(verified.results[0]?.reason).toMatch(/self[- ]signed/i);
      const unverified = await runHealthChecks({ transport }, check, {
        address: '127.0.0.1',
        verifyTls: false,
      });
      expect(unverified.results[0]).toMatchObject({ passed: true, target: `https://127.0.0.1:${port}/` });
      expect(serverName).toBe('www.shop.example');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('runHealthChecks: TCP', () => {
  it('passes when the port accepts a connection and fails when it refuses one', async () => {
    const s = await web();
    const port = await closedPort();
    const report = await run(
      // The check's own host is the source's address; the server listens on 127.0.0.1 only, so
      // the check passes only if the clone's address is dialled instead of 127.0.0.2.
      checks(
        { type: 'tcp', name: 'open', host: '127.0.0.2', port: s.port },
        { type: 'tcp', name: 'closed', port },
      ),
    );
    expect(report.results.map((r) => [r.name, r.passed, r.observed.connected])).toEqual([
      ['open', true, true],
      ['closed', false, false],
    ]);
    expect(report.results[0]?.target).toBe(`tcp://127.0.0.1:${s.port}`);
    expect(report.results[1]?.reason).toBe('connection failed: ECONNREFUSED');
  });
});

describe('runHealthChecks: command and process, through the transport', () => {
  it('compares the exit code with the expected one and shows the output', async () => {
    const report = await run(
      checks(
        { type: 'command', name: 'three', command: 'echo hi; exit 3', expectExitCode: 3 },
        { type: 'command', name: 'fails', command: 'echo broken >&2; exit 1' },
      ),
    );
    expect(report.results.map((r) => [r.name, r.passed, r.observed.exitCode])).toEqual([
      ['three', true, 3],
      ['fails', false, 1],
    ]);
    expect(report.results[1]).toMatchObject({
      target: 'local',
      observed: { output: 'broken' },
      reason: 'exit code 1, expected 0',
    });
  });

  it('fails a command that outlives its time-out, and the check ends soon after it', async () => {
    const report = await run(checks({ type: 'command', name: 'slow', command: 'sleep 20', timeoutMs: 300 }));
    expect(report.results[0]?.passed).toBe(false);
    expect(report.results[0]?.reason).toContain('timed out');
    expect(report.results[0]?.durationMs).toBeLessThan(10_000);
  });

  it('counts running processes by name, including a name longer than the kernel keeps', async () => {
    const short = `pv${process.pid}a`;
    const long = `pv${process.pid}-with-a-long-name`;
    const a = startNamed(short);
    const b = startNamed(short);
    const c = startNamed(long);
    await Promise.all([waitForComm(a, short), waitForComm(b, short), waitForComm(c, long)]);
    const report = await run(
      checks(
        { type: 'process', name: 'two', process: short, minCount: 2 },
        { type: 'process', name: 'three', process: short, minCount: 3 },
        { type: 'process', name: 'long', process: long },
        { type: 'process', name: 'absent', process: `pv${process.pid}-none` },
      ),
    );
    expect(report.results.map((r) => [r.name, r.passed, r.observed.processCount])).toEqual([
      ['two', true, 2],
      ['three', false, 2],
      ['long', true, 1],
      ['absent', false, 0],
    ]);
    expect(report.results[1]?.reason).toBe(`2 processes named ${short} running, expected at least 3`);
  });

  it('treats a process name as data: shell syntax in it runs nothing', async () => {
    const marker = join(dir, 'ran');
    const report = await run(
      checks({ type: 'process', name: 'hostile', process: `x$(touch ${marker})';touch ${marker};'` }),
    );
    expect(report.results[0]).toMatchObject({ passed: false, observed: { processCount: 0 } });
    expect(existsSync(marker)).toBe(false);
  });

  it('ends a check at its time-out plus a grace even when the transport never answers', async () => {
    const hung: Transport = {
      target: 'ssh://root@hung',
      run: () => new Promise(() => {}),
      stream: () => new Promise(() => {}),
      putFile: async () => {},
      getFile: async () => new Uint8Array(),
      close: async () => {},
    };
    const report = await runHealthChecks(
      { transport: hung },
      checks({ type: 'process', name: 'p', process: 'nginx' }),
      {
        address: '127.0.0.1',
        processTimeoutMs: 100,
      },
    );
    expect(report.results[0]).toMatchObject({
      passed: false,
      target: 'ssh://root@hung',
      reason: 'no result within 2100 ms',
    });
  });

  it('refuses an address that is not a host name or address', async () => {
    await expect(runHealthChecks({ transport }, [], { address: 'root@host/x' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });
});
