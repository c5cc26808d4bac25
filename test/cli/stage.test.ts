// The CLI against a deployed stage, as a user runs it (a separate process of the built
// command), with a local HTTP server standing in for API Gateway: every host name resolves to
// 127.0.0.1 in that process (fixtures/loopback-dns.mjs), so an execute-api URL reaches the
// server and nothing leaves the machine. The server answers as API Gateway does (its own
// errors with `message` and x-amzn-ErrorType, throttling, integration failures, silence) and
// records what it received, signatures included.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { commandOf } from '../../cli/main.js';
import { profileRegion, regionOf, signingRegion } from '../../cli/region.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
type Answer =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | 'hang'
  | 'hang-body'
  | 'reset';

let server: Server;
let port: number;
const received: Received[] = [];
let script: Answer[] = [];
let fallback: Answer;
const hanging: ServerResponse[] = [];

const PROFILE_HEAD = {
  name: 'web',
  latest: 2,
  hash: `sha256:${'a'.repeat(64)}`,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-02T00:00:00.000Z',
  description: 'the shop',
};
const PAGE = { status: 200, body: { items: [PROFILE_HEAD] } };

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const answer = script.shift() ?? fallback;
      if (answer === 'hang') return void hanging.push(res);
      if (answer === 'reset') return void req.socket.destroy();
      if (answer === 'hang-body') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"items": [');
        return void hanging.push(res);
      }
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  received.length = 0;
  script = [];
  fallback = PAGE;
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `persona ARGS` with AWS credentials in the environment and no AWS configuration file. */
function persona(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', './test/cli/fixtures/loopback-dns.mjs', 'cli/bin.js', ...args],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: '/nonexistent',
          NO_COLOR: '1',
          AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
          AWS_CONFIG_FILE: '/nonexistent/config',
          AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
          AWS_EC2_METADATA_DISABLED: 'true',
          ...env,
        },
        timeout: 50_000,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const stage = (region = 'eu-west-1', path = '/v1') =>
  `http://a1b2c3d4e5.execute-api.${region}.amazonaws.com:${port}${path}`;
/** The region of the SigV4 credential scope the server received. */
const scopeOf = (r: Received | undefined) =>
  /Credential=AKIDEXAMPLE\/\d{8}\/([a-z0-9-]+)\/execute-api\/aws4_request/.exec(
    String(r?.headers.authorization),
  )?.[1];

describe('signing for the region of the endpoint', () => {
  it('signs for eu-west-1 an eu-west-1 endpoint, whatever AWS_REGION and AWS_DEFAULT_REGION say', async () => {
    const r = await persona(['--endpoint', stage('eu-west-1'), 'profiles', 'list'], {
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'ap-southeast-2',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+LATEST/);
    expect(received).toHaveLength(1);
    expect(received[0]?.url).toBe('/v1/profiles?limit=100');
    expect(scopeOf(received[0])).toBe('eu-west-1');
    expect(received[0]?.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
  });

  it('is not steered by a region-like string in the path or the query of the endpoint', async () => {
    const r = await persona(
      [
        '--endpoint',
        `${stage('eu-west-1', '/v1/x.execute-api.us-west-2.amazonaws.com')}?region=sa-east-1`,
        'profiles',
        'list',
      ],
      { AWS_REGION: 'us-east-1' },
    );
    expect(r.code).toBe(0);
    expect(scopeOf(received[0])).toBe('eu-west-1');
  });

  it('signs a custom domain for AWS_REGION, and a host that only looks like API Gateway is neither signed unasked nor read for its region', async () => {
    await persona(
      [
        '--endpoint',
        `http://persona.example.test:${port}/api.execute-api.us-west-2.amazonaws.com`,
        '--sigv4',
        'profiles',
        'list',
      ],
      {
        AWS_REGION: 'eu-central-1',
      },
    );
    expect(scopeOf(received[0])).toBe('eu-central-1');

    const lookalike = `http://a1b2c3d4e5.execute-api.us-west-2.amazonaws.com.example.test:${port}/v1`;
    await persona(['--endpoint', lookalike, 'profiles', 'list'], { AWS_REGION: 'eu-central-1' });
    expect(received[1]?.headers.authorization).toBeUndefined();
    await persona(['--endpoint', lookalike, '--sigv4', 'profiles', 'list'], { AWS_REGION: 'eu-central-1' });
    expect(scopeOf(received[2])).toBe('eu-central-1');
  });

  it('signs a custom domain for the region of the AWS profile, and refuses to guess without one', async () => {
    const custom = `http://persona.example.test:${port}`;
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const config = join(mkdtempSync(join(tmpdir(), 'persona-aws-')), 'config');
    writeFileSync(
      config,
      '[profile ops]\nregion = ca-central-1\n\n[default]\nregion = us-east-2 # the usual\n',
    );
    await persona(['--endpoint', custom, '--sigv4', 'profiles', 'list'], { AWS_CONFIG_FILE: config });
    expect(scopeOf(received[0])).toBe('us-east-2');
    expect(profileRegion({ AWS_CONFIG_FILE: config, AWS_PROFILE: 'ops' })).toBe('ca-central-1');
    expect(profileRegion({ AWS_CONFIG_FILE: config, AWS_PROFILE: 'nobody' })).toBeUndefined();

    const none = await persona(['--endpoint', custom, '--sigv4', 'profiles', 'list']);
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/cannot tell which region persona\.example\.test:\d+ is in/);
    expect(none.stderr).toMatch(/--region: give --region, or set AWS_REGION/);
    expect(received).toHaveLength(1);

    await persona(['--endpoint', custom, '--sigv4', '--region', 'eu-north-1', 'profiles', 'list']);
    expect(scopeOf(received[1])).toBe('eu-north-1');
  });

  it('refuses to send a request it cannot sign, naming where credentials come from, and exits 8', async () => {
    const r = await persona(['--endpoint', stage(), 'profiles', 'list'], {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
    });
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(
      /^error: cannot sign the request to a1b2c3d4e5\.execute-api\.eu-west-1\.amazonaws\.com:\d+: .+ \(set AWS_PROFILE/,
    );
    expect(received).toHaveLength(0);
  });

  it('reads the region from the host name alone (unit)', () => {
    const env = { AWS_REGION: 'us-east-1', AWS_CONFIG_FILE: '/nonexistent' };
    expect(regionOf(new URL('https://abc123.execute-api.eu-west-1.amazonaws.com/v1'))).toBe('eu-west-1');
    expect(regionOf(new URL('https://abc123-vpce-0a1b2c.execute-api.ap-south-1.vpce.amazonaws.com/v1'))).toBe(
      'ap-south-1',
    );
    expect(regionOf(new URL('https://abc.execute-api.cn-north-1.amazonaws.com.cn/'))).toBe('cn-north-1');
    expect(regionOf(new URL('https://abc.execute-api.us-gov-west-1.amazonaws.com/'))).toBe('us-gov-west-1');
    for (const hostile of [
      'https://api.example.com/abc.execute-api.eu-west-1.amazonaws.com',
      'https://api.example.com/?host=abc.execute-api.eu-west-1.amazonaws.com',
      'https://abc.execute-api.eu-west-1.amazonaws.com.example.com/',
      'https://abc.execute-api.eu-west-1.amazonaws.com@example.com/',
      'https://x.abc.execute-api.eu-west-1.amazonaws.com/',
    ])
      expect(signingRegion(new URL(hostile), undefined, env), hostile).toBe('us-east-1');
  });
});

describe("API Gateway's own errors", () => {
  it('shows a 403 as API Gateway said it, with its error type and request id, and exits 8, without retrying', async () => {
    script = [
      {
        status: 403,
        headers: {
          'x-amzn-errortype':
            'AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/',
          'x-amzn-requestid': 'c0ffee00-1111-2222-3333-444455556666',
        },
        body: {
          message:
            'User: arn:aws:sts::123456789012:assumed-role/ops/ada is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/v1/GET/profiles',
        },
      },
    ];
    const r = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(r.code).toBe(8);
    expect(r.stderr).toContain(
      'error: API Gateway answered 403 AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ops/ada is not authorized to perform: execute-api:Invoke',
    );
    expect(r.stderr).toContain(
      '(request id c0ffee00-1111-2222-3333-444455556666); the request was signed for eu-west-1',
    );
    expect(received).toHaveLength(1);
  });

  it("reads the stage's gateway responses, problem documents whose code is the response type, as API Gateway's own", async () => {
    const problem = (code: string, status: number, message: string) => ({
      type: `urn:persona:problem:${code.toLowerCase()}`,
      title: 'Forbidden',
      status,
      detail: message,
      code,
      message,
      requestId: 'req-0001',
    });
    script = [
      {
        status: 403,
        headers: { 'x-amzn-errortype': 'MissingAuthenticationTokenException' },
        body: problem('MISSING_AUTHENTICATION_TOKEN', 403, 'Missing Authentication Token'),
      },
      { status: 429, body: problem('THROTTLED', 429, 'Too Many Requests') },
    ];
    const missing = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(missing.code).toBe(8);
    expect(missing.stderr).toContain(
      'error: API Gateway answered 403 MissingAuthenticationTokenException: Missing Authentication Token (request id req-0001)',
    );
    const throttled = await persona(['--endpoint', stage(), '--retries', '0', 'profiles', 'list']);
    expect(throttled.code).toBe(6);
    expect(throttled.stderr).toContain(
      'error: API Gateway answered 429 THROTTLED: Too Many Requests (request id req-0001)',
    );
  });

  it('prints the gateway error as a document on standard error with -o json', async () => {
    script = [
      {
        status: 403,
        headers: { 'x-amzn-errortype': 'InvalidSignatureException' },
        body: { message: "Credential should be scoped to a valid region. 'us-east-1' is not valid." },
      },
    ];
    const r = await persona(['--endpoint', stage(), '-o', 'json', 'profiles', 'list']);
    expect(r.code).toBe(8);
    expect(JSON.parse(r.stderr)).toEqual({
      status: 403,
      source: 'api-gateway',
      errorType: 'InvalidSignatureException',
      message: "Credential should be scoped to a valid region. 'us-east-1' is not valid.",
      signedFor: 'eu-west-1',
    });
  });

  it('retries a throttled read with back-off, then answers', async () => {
    script = [
      {
        status: 429,
        headers: { 'x-amzn-errortype': 'TooManyRequestsException' },
        body: { message: 'Too Many Requests' },
      },
      {
        status: 429,
        headers: { 'x-amzn-errortype': 'TooManyRequestsException' },
        body: { message: 'Too Many Requests' },
      },
    ];
    const r = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nweb\s+2\s+/);
    expect(received.map((q) => q.method)).toEqual(['GET', 'GET', 'GET']);
  });

  it('gives up after --retries, shows the throttling as it is and exits 6', async () => {
    fallback = {
      status: 429,
      headers: { 'x-amzn-errortype': 'TooManyRequestsException' },
      body: { message: 'Too Many Requests' },
    };
    const r = await persona(['--endpoint', stage(), '--retries', '2', 'profiles', 'list']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('error: API Gateway answered 429 TooManyRequestsException: Too Many Requests');
    expect(received).toHaveLength(3);
  });

  it.each([
    [502, 'InternalServerErrorException', 'Internal server error'],
    [503, 'ServiceUnavailableException', 'Service Unavailable'],
    [504, 'IntegrationTimeout', 'Endpoint request timed out'],
  ])('shows a %i (%s) as it is and exits 6 once the retries are spent', async (status, type, message) => {
    fallback = { status, headers: { 'x-amzn-errortype': type }, body: { message } };
    const r = await persona(['--endpoint', stage(), '--retries', '1', 'profiles', 'list']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(`error: API Gateway answered ${status} ${type}: ${message}`);
    expect(received).toHaveLength(2);
  });

  it('does not send again a POST without an Idempotency-Key, and does send again one with it', async () => {
    const { writeFileSync, mkdtempSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'persona-stage-')), 'web.yaml');
    writeFileSync(file, readFileSync('examples/web.yaml'));
    script = [
      { status: 404, body: { code: 'NOT_FOUND', detail: 'profile web does not exist', status: 404 } },
      {
        status: 503,
        headers: { 'x-amzn-errortype': 'ServiceUnavailableException' },
        body: { message: 'Service Unavailable' },
      },
    ];
    const apply = await persona(['--endpoint', stage(), 'profiles', 'apply', '-f', file]);
    expect(apply.code).toBe(6);
    expect(received.map((q) => `${q.method} ${q.url}`)).toEqual([
      'GET /v1/profiles/web',
      'POST /v1/profiles',
    ]);

    received.length = 0;
    script = [
      {
        status: 503,
        headers: { 'x-amzn-errortype': 'ServiceUnavailableException' },
        body: { message: 'Service Unavailable' },
      },
      { status: 202, body: { id: 'op-12345678', status: 'PENDING' } },
    ];
    const capture = await persona(['--endpoint', stage(), 'hosts', 'capture', 'web-a', '--no-wait']);
    expect(capture.stderr).toBe('');
    expect(capture.code).toBe(0);
    expect(capture.stdout).toBe('op-12345678 PENDING\n');
    expect(received.map((q) => `${q.method} ${q.url}`)).toEqual([
      'POST /v1/hosts/web-a/capture',
      'POST /v1/hosts/web-a/capture',
    ]);
    const keys = received.map((q) => q.headers['idempotency-key']);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
  });

  it("shows a function's problem document as before: its detail and issues, exit codes by its code", async () => {
    script = [
      {
        status: 400,
        body: {
          type: 'about:blank',
          title: 'Bad Request',
          status: 400,
          code: 'INVALID_INPUT',
          detail: 'the query is not valid',
          issues: [{ path: 'query.limit', message: 'expected a number ≤ 100' }],
        },
      },
    ];
    const invalid = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toContain('error: the query is not valid');
    expect(invalid.stderr).toContain('query.limit: expected a number ≤ 100');

    script = [
      {
        status: 403,
        body: { status: 403, code: 'FORBIDDEN', detail: 'this credential may not read profiles' },
      },
    ];
    const forbidden = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(forbidden.code).toBe(8);
    expect(forbidden.stderr).toContain('error: this credential may not read profiles');
  });
});

describe('nothing hangs', () => {
  it('times out a server that never answers, with a clear message, and exits 9', async () => {
    fallback = 'hang';
    const r = await persona(['--endpoint', stage(), '--timeout', '0.5', 'profiles', 'list']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(
      /error: no answer from http:\/\/a1b2c3d4e5\.execute-api\.eu-west-1\.amazonaws\.com:\d+\/v1 to GET \/v1\/profiles within 0\.5 s \(--timeout\)/,
    );
    expect(received).toHaveLength(1);
  });

  it('times out an answer whose body never ends (PERSONA_TIMEOUT)', async () => {
    fallback = 'hang-body';
    const r = await persona(['--endpoint', stage(), 'profiles', 'list'], { PERSONA_TIMEOUT: '0.5' });
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/within 0\.5 s/);
  });

  it('retries a read whose connection was reset, and a connection refused is unavailable (6) at once', async () => {
    script = ['reset'];
    const r = await persona(['--endpoint', stage(), 'profiles', 'list']);
    expect(r.code).toBe(0);
    expect(received).toHaveLength(2);

    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const free = (closed.address() as AddressInfo).port;
    closed.close();
    const refused = await persona(['--endpoint', `http://127.0.0.1:${free}`, 'profiles', 'list']);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain(`cannot reach Persona at http://127.0.0.1:${free} (ECONNREFUSED)`);
  });
});

describe('output conventions', () => {
  it('prints the same result as JSON with --json and -o json, as YAML with -o yaml, wherever the option stands', async () => {
    const json = await persona(['--endpoint', stage(), '--json', 'profiles', 'list']);
    const json2 = await persona(['--endpoint', stage(), 'profiles', 'list', '-o', 'json']);
    const yaml = await persona(['--endpoint', stage(), 'profiles', 'list', '--output', 'yaml']);
    expect(JSON.parse(json.stdout)).toEqual({ items: [PROFILE_HEAD] });
    expect(json2.stdout).toBe(json.stdout);
    expect(parse(yaml.stdout)).toEqual({ items: [PROFILE_HEAD] });
  });

  it('refuses an unknown format, and --json with another -o, as usage errors (2)', async () => {
    expect((await persona(['--endpoint', stage(), '-o', 'xml', 'profiles', 'list'])).code).toBe(2);
    expect((await persona(['--endpoint', stage(), '--json', '-o', 'yaml', 'profiles', 'list'])).code).toBe(2);
    expect(received).toHaveLength(0);
  });

  it('finds the command name past global options and their values (unit)', () => {
    expect(commandOf(['--endpoint', 'profiles', 'hosts', 'list'])).toBe('hosts');
    expect(commandOf(['-o', 'json', '--timeout', '3', 'validate', 'x'])).toBe('validate');
    expect(commandOf(['--json', 'help', 'personas'])).toBe('personas');
    expect(commandOf(['--version'])).toBeUndefined();
  });
});
