// The agent routes through the embedded runtime: a host agent's bearer credential is required
// and checked at every request, an agent acts for its own host only, IAM routes take no agent
// token, and the agents' listener serves the agent routes and nothing else.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSIGNMENT_FORMAT } from '../../core/persona/agent/assignment.js';
import { PersonaParameters } from '../../core/persona/schema.js';
import {
  agentCredentials,
  assignments,
  metricsStore,
  useAssignments,
  useMetricsEvaluation,
} from '../../functions/shared/runtime.js';
import { lambdaContext } from '../../local/http.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let webToken: string;
let dbToken: string;
const evaluated: string[] = [];

beforeAll(async () => {
  api = await startTestPersona();
  webToken = (await agentCredentials().issue('web-1', new Date())).token;
  dbToken = (await agentCredentials().issue('db-1', new Date())).token;
  // The route's own assignment source and report store, with a persona assigned to web-1 as a
  // switch would have recorded it.
  const real = assignments();
  useAssignments({
    personas: {
      assigned: async (host) =>
        host === 'web-1'
          ? {
              name: 'peak',
              version: 3,
              parameters: PersonaParameters.parse({
                sysctl: {
                  'net.core.somaxconn': '4096',
                  'kernel.hostile': 'x\nsysctl\tnet.ipv4.ip_forward\t1',
                },
                cgroups: [{ path: '/system.slice/shop.service', cpuWeight: 200, memoryMax: 1073741824 }],
                bandwidth: [{ interface: 'eth0', egressMbps: 100 }],
              }),
            }
          : null,
    },
    reports: real.reports,
  });
  useMetricsEvaluation(async (host) => {
    evaluated.push(host);
  });
}, 120_000);

afterAll(async () => {
  useAssignments(undefined);
  useMetricsEvaluation(undefined);
  await api?.stop();
});

const report = (host: string) => ({
  host,
  at: '2026-12-01T12:00:00Z',
  intervalSeconds: 60,
  values: { 'cpu.utilization': 42.5, 'memory.utilization': 61 },
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('POST /metrics', () => {
  it('stores a report of the agent’s own host and evaluates the host', async () => {
    const res = await api.call('POST', '/metrics', { body: report('web-1'), headers: bearer(webToken) });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ host: 'web-1', evaluated: true });
    const series = await metricsStore().series('web-1', ['cpu.utilization'], 0);
    expect(Array.from(series.get('cpu.utilization')?.values ?? [])).toEqual([42.5]);
    expect(evaluated).toContain('web-1');
  });

  it('refuses a report without a credential, or with one that is not valid, with 401 UNAUTHORIZED', async () => {
    for (const headers of [
      {},
      bearer('agt_AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'),
      { authorization: 'Basic eDp5' },
    ]) {
      const res = await api.call('POST', '/metrics', { body: report('web-1'), headers });
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('UNAUTHORIZED');
    }
  });

  it('refuses one host’s agent reporting for another host with 403 FORBIDDEN, and stores nothing', async () => {
    const res = await api.call('POST', '/metrics', { body: report('web-1'), headers: bearer(dbToken) });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
    const assignment = await api.call('GET', '/hosts/web-1/agent/assignment', { headers: bearer(dbToken) });
    expect(assignment.status).toBe(403);
    const series = await metricsStore().series('web-1', ['cpu.utilization'], 0);
    expect(series.get('cpu.utilization')?.values.length).toBe(1);
  });

  it('names the bad field of a report (400)', async () => {
    const res = await api.call('POST', '/metrics', {
      body: { ...report('web-1'), values: { 'cpu.utilization': 'high' } },
      headers: bearer(webToken),
    });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toContain('values');
  });
});

describe('agent credentials on IAM routes', () => {
  it('refuses an agent token on a route for operators (403)', async () => {
    const res = await api.call('GET', '/hosts', { headers: bearer(webToken) });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
  });
});

describe('GET /hosts/{host}/agent/assignment', () => {
  it('answers the assigned persona’s host-local entries as lines, refusing an entry that would be two', async () => {
    const res = await fetch(`${api.url}/hosts/web-1/agent/assignment`, {
      headers: { ...bearer(webToken), accept: 'text/plain; format=2' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('format=2');
    const text = await res.text();
    const lines = text.split('\n');
    expect(lines[0]).toBe(ASSIGNMENT_FORMAT);
    expect(lines[1]).toMatch(/^persona\tpeak\t3\t[0-9a-f]{16}$/);
    expect(lines[2]).toBe('override\tretain\t0');
    // An agent installed before format 2 asks for plain text alone: the same lines, without
    // the override line it would not read.
    const old = await fetch(`${api.url}/hosts/web-1/agent/assignment`, {
      headers: { ...bearer(webToken), accept: 'text/plain' },
    });
    const oldLines = (await old.text()).split('\n');
    expect(oldLines[0]).toBe('persona-assignment 1');
    expect(oldLines.slice(1)).toEqual(lines.filter((_, i) => i !== 0 && i !== 2));
    expect(lines).toContain('sysctl\tnet.core.somaxconn\t4096');
    expect(lines).toContain('cgroup\t/system.slice/shop.service\tcpu.weight\t200');
    expect(lines).toContain('cgroup\t/system.slice/shop.service\tmemory.max\t1073741824');
    expect(lines).toContain('tc\teth0\t100000');
    expect(lines.find((l) => l.startsWith('refused\t'))).toMatch(/^refused\t0\tholds a line break/);
    expect(lines).not.toContain('sysctl\tnet.ipv4.ip_forward\t1');
    expect(lines.at(-2)).toBe('end');
  });

  it('answers JSON to other callers, and an empty assignment for a host with no persona', async () => {
    const web = await api.call('GET', '/hosts/web-1/agent/assignment', { headers: bearer(webToken) });
    expect(web.body).toMatchObject({ host: 'web-1', persona: 'peak', version: 3 });
    expect(web.body.entries).toHaveLength(5);
    const db = await api.call('GET', '/hosts/db-1/agent/assignment', { headers: bearer(dbToken) });
    expect(db.body).toMatchObject({ host: 'db-1', persona: null, entries: [] });
  });
});

describe('POST /hosts/{host}/agent/reports', () => {
  it('records what the agent did beside the host persona state', async () => {
    const body = {
      host: 'web-1',
      revision: 'abcdef0123456789',
      persona: 'peak',
      version: 3,
      outcome: 'rolled-back',
      at: '2026-12-01T12:01:00Z',
      entries: [
        {
          index: 0,
          kind: 'sysctl',
          target: 'net.core.somaxconn',
          from: '128',
          to: '4096',
          status: 'reverted',
        },
        {
          index: 1,
          kind: 'sysctl',
          target: 'kernel.x',
          from: '1',
          to: '2',
          status: 'failed',
          detail: 'EPERM',
        },
      ],
    };
    const res = await api.call('POST', '/hosts/web-1/agent/reports', { body, headers: bearer(webToken) });
    expect(res.status).toBe(202);
    const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
    const { Item } = await ddb.send(
      new GetCommand({ TableName: process.env.HOST_PERSONAS_TABLE, Key: { host: 'web-1', sk: 'agent' } }),
    );
    ddb.destroy();
    expect(Item).toMatchObject({
      outcome: 'rolled-back',
      revision: 'abcdef0123456789',
      entries: body.entries,
    });
    const forOther = await api.call('POST', '/hosts/web-1/agent/reports', {
      body: { ...body, host: 'db-1' },
      headers: bearer(webToken),
    });
    expect(forOther.status).toBe(403);
  });
});

describe('the agents’ listener', () => {
  it('serves the agent routes only', async () => {
    const metrics = await fetch(`${api.agentUrl}/metrics`, {
      method: 'POST',
      headers: { ...bearer(webToken), 'content-type': 'application/json' },
      body: JSON.stringify({ ...report('web-1'), at: '2026-12-01T12:05:00Z' }),
    });
    expect(metrics.status).toBe(202);
    const hosts = await fetch(`${api.agentUrl}/hosts`);
    expect(hosts.status).toBe(404);
    const install = await fetch(`${api.agentUrl}/hosts/web-1/agent`, { method: 'POST' });
    expect(install.status).toBe(404);
  });

  it('refuses a revoked credential from the next request on', async () => {
    const { token } = await agentCredentials().issue('gone-1', new Date());
    const before = await api.call('POST', '/metrics', { body: report('gone-1'), headers: bearer(token) });
    expect(before.status).toBe(202);
    const revoked = await api.call('DELETE', '/hosts/gone-1/agent');
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ host: 'gone-1', uninstalled: false });
    expect(revoked.body.revoked).toHaveLength(1);
    const after = await api.call('POST', '/metrics', { body: report('gone-1'), headers: bearer(token) });
    expect(after.status).toBe(401);
  });
});

describe('POST /hosts/{host}/agent', () => {
  it('answers 404 for a host that is not registered', async () => {
    const res = await api.call('POST', '/hosts/nowhere/agent', { body: {} });
    expect(res.status).toBe(404);
  });
});

describe('the agent authoriser (API Gateway REQUEST)', () => {
  const event = (authorization?: string) =>
    ({
      type: 'REQUEST',
      methodArn: 'arn:aws:execute-api:eu-west-1:111122223333:abc123/v1/POST/metrics',
      resource: '/metrics',
      path: '/metrics',
      httpMethod: 'POST',
      headers: authorization === undefined ? {} : { Authorization: authorization },
      multiValueHeaders: {},
      pathParameters: null,
      queryStringParameters: null,
      multiValueQueryStringParameters: null,
      stageVariables: null,
      requestContext: {},
    }) as never;

  it('allows the method it was asked for, with the agent’s host in the context', async () => {
    const { main } = await import('../../functions/authorizers/agent/handler.js');
    const { id, token } = await agentCredentials().issue('web-9', new Date());
    const result = await main(event(`Bearer ${token}`), lambdaContext('agent-authoriser', 'allow'));
    expect(result).toEqual({
      principalId: `agent:${id}`,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Action: 'execute-api:Invoke',
            Effect: 'Allow',
            Resource: 'arn:aws:execute-api:eu-west-1:111122223333:abc123/v1/POST/metrics',
          },
        ],
      },
      context: { principal: 'agent', host: 'web-9', id },
    });
  });

  it('answers Unauthorized (API Gateway’s 401) for no token, a wrong one and a revoked one', async () => {
    const { main } = await import('../../functions/authorizers/agent/handler.js');
    const { token } = await agentCredentials().issue('web-10', new Date());
    await agentCredentials().revoke('web-10', new Date());
    for (const header of [undefined, 'Bearer nope', `Bearer ${token}`]) {
      await expect(main(event(header), lambdaContext('agent-authoriser', 'deny'))).rejects.toThrow(
        /^Unauthorized$/,
      );
    }
  });
});
