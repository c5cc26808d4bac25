// The persona routes end to end on the embedded runtime: the real handlers, DynamoDB Local.
// Switches are recorded, not run: the workflow starter is replaced for these tests, so no host
// is contacted (the switch itself is tested with the switch).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { WorkflowStarter } from '../../core/operation/workflows.js';
import { MAX_CRITERIA_DEPTH } from '../../core/persona/schema.js';
import { encodeCursor } from '../../core/storage/pagination.js';
import { hostPersonas, personaTriggers, useTriggerSync } from '../../functions/shared/runtime.js';
import { useWorkflowStarter, workflows } from '../../functions/shared/workflows.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const examplesYaml = readFileSync('examples/personas/web.yaml', 'utf8');
const examples = parseAllDocuments(examplesYaml).map((d) => d.toJS());
const [peak, businessHours] = examples;

/** A copy of an example under another name, so that tests do not share history. */
const named = (doc: any, name: string) => ({ ...structuredClone(doc), metadata: { ...doc.metadata, name } });

let api: TestPersona;
let real: WorkflowStarter;
const started: { workflow: string; operationId: string }[] = [];

beforeAll(async () => {
  api = await startTestPersona();
  real = workflows();
  useWorkflowStarter({
    async start(workflow, input) {
      started.push({ workflow, operationId: input.operationId });
    },
  });
});

afterAll(async () => {
  if (real) useWorkflowStarter(real);
  await api?.stop();
});

beforeEach(() => {
  started.length = 0;
});

async function register(name: string, tags: Record<string, string> = { role: 'web' }) {
  const res = await api.call('POST', '/hosts', {
    body: {
      name,
      platform: 'baremetal',
      transport: 'ssh',
      address: '127.0.0.1',
      port: 9,
      credentialRef: { provider: 'aws-secretsmanager', secretId: `persona/ssh/${name}` },
      tags,
    },
  });
  expect([200, 201]).toContain(res.status);
}

describe('POST /personas', () => {
  it('creates version 1 with an ETag and Location, from JSON or YAML', async () => {
    const res = await api.call('POST', '/personas', { body: named(peak, 'api-create') });
    expect(res.status).toBe(201);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(res.headers.get('location')).toBe('/personas/api-create');
    expect(res.body).toMatchObject({
      created: true,
      warnings: [],
      version: { name: 'api-create', version: 1 },
    });

    const yaml = examplesYaml.split(/^---$/m)[2] as string;
    const fromYaml = await api.call('POST', '/personas', {
      raw: yaml.replace('name: web-quiet', 'name: api-yaml'),
      headers: { 'content-type': 'application/yaml' },
    });
    expect(fromYaml.status).toBe(201);
    const got = await api.call('GET', '/personas/api-yaml');
    expect(got.body.persona.spec).toMatchObject({ default: true, priority: 1000, mode: 'act' });
  });

  it('answers a retry with 200 and refuses another document under the same name with 409', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-retry') });
    const again = await api.call('POST', '/personas', { body: named(peak, 'api-retry') });
    expect(again.status).toBe(200);
    expect(again.body.created).toBe(false);
    const other = await api.call('POST', '/personas', { body: named(businessHours, 'api-retry') });
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ code: 'CONFLICT', current: 1 });
  });

  it('refuses a bad persona with 400 naming every bad field, and writes nothing', async () => {
    const bad = named(peak, 'api-bad');
    bad.spec.criteria.metric.name = 'cpu';
    bad.spec.hysteresis.holdSeconds = -1;
    bad.spec.surprise = true;
    const res = await api.call('POST', '/personas', { body: bad });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.body.issues.map((i: { path: string }) => i.path)).toEqual(
      expect.arrayContaining(['spec.criteria.metric.name', 'spec.hysteresis.holdSeconds', 'spec.surprise']),
    );
    expect((await api.call('GET', '/personas/api-bad')).status).toBe(404);
  });

  it('refuses criteria nested past the limit with 400 naming the field, not a crash', async () => {
    let criteria: unknown = { signal: { name: 'freeze', op: '==', value: true } };
    for (let i = 0; i < MAX_CRITERIA_DEPTH; i++) criteria = { not: criteria };
    const deep = { ...named(peak, 'api-deep'), spec: { ...named(peak, 'x').spec, criteria } };
    const res = await api.call('POST', '/personas', { body: deep });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe(`spec.criteria${'.not'.repeat(MAX_CRITERIA_DEPTH)}`);

    // Far deeper than any stack would bear: refused by the document limits, naming where.
    const abyss = `{"apiVersion":"persona/v1","kind":"Persona","metadata":{"name":"abyss"},"spec":{"hosts":{},"parameters":{},"criteria":${'{"any":['.repeat(5000)}{}${']}'.repeat(5000)}}}`;
    const bottom = await api.call('POST', '/personas', { raw: abyss });
    expect(bottom.status).toBe(400);
    expect(bottom.body.issues[0].message).toMatch(/nested deeper than/);
    expect(bottom.body.issues[0].path).toMatch(/^spec\.criteria/);
  });

  it('refuses a criterion the schema allows but evaluation cannot (400 naming it)', async () => {
    const odd = named(peak, 'api-odd');
    odd.spec.criteria = { signal: { name: 'freeze', op: '>', value: true } };
    const res = await api.call('POST', '/personas', { body: odd });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('spec.criteria.signal.op');
  });

  it('refuses an oversized document with 413, and YAML alias bombs with 400', async () => {
    const huge = named(peak, 'api-huge');
    huge.spec.parameters.sysctl = Object.fromEntries(
      Array.from({ length: 12_000 }, (_, i) => [`net.test.key_${i}`, 'some value']),
    );
    const res = await api.call('POST', '/personas', { body: huge });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('TOO_LARGE');

    const lol = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...Array.from({ length: 8 }, (_, i) => {
        const prev = String.fromCharCode(97 + i);
        const next = String.fromCharCode(98 + i);
        return `${next}: &${next} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`;
      }),
    ].join('\n');
    const bomb = await api.call('POST', '/personas', {
      raw: lol,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(bomb.status).toBe(400);
    expect(JSON.stringify(bomb.body.issues)).toMatch(/alias/);
    const tagged = await api.call('POST', '/personas', {
      raw: 'apiVersion: !!js/function "x"\n',
      headers: { 'content-type': 'application/yaml' },
    });
    expect(tagged.status).toBe(400);
  });

  it('refuses a body a web page could send unasked (415) and an empty one (400)', async () => {
    const form = await api.call('POST', '/personas', {
      raw: JSON.stringify(named(peak, 'api-form')),
      headers: { 'content-type': 'text/plain' },
    });
    expect(form.status).toBe(415);
    expect((await api.call('POST', '/personas', { raw: '' })).status).toBe(400);
  });

  it('warns, and writes, when a second default persona selects the same hosts', async () => {
    const quiet = examples[2];
    const a = await api.call('POST', '/personas', { body: named(quiet, 'api-default-a') });
    expect(a.status).toBe(201);
    const b = await api.call('POST', '/personas', { body: named(quiet, 'api-default-b') });
    expect(b.status).toBe(201);
    expect(b.body.warnings).toEqual([expect.objectContaining({ path: 'spec.default' })]);
  });
});

describe('PUT /personas/{name}', () => {
  it('writes the next version when If-Match names the latest, and refuses a stale one (409)', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-put') });
    const next = named(peak, 'api-put');
    next.spec.priority = 11;
    const ok = await api.call('PUT', '/personas/api-put', { body: next, headers: { 'if-match': '"1"' } });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('etag')).toBe('"2"');
    const third = named(peak, 'api-put');
    third.spec.priority = 12;
    const stale = await api.call('PUT', '/personas/api-put', { body: third, headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ code: 'CONFLICT', current: 2 });
    expect((await api.call('GET', '/personas/api-put')).body.persona.spec.priority).toBe(11);
  });

  it('answers an unchanged document with 200 and no new version', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-same') });
    const res = await api.call('PUT', '/personas/api-same', {
      body: named(peak, 'api-same'),
      headers: { 'if-match': '"1"' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ created: false, version: { version: 1 } });
  });

  it('needs If-Match (428), a well-formed one (400 naming the header), and a matching name', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-pre') });
    expect((await api.call('PUT', '/personas/api-pre', { body: named(peak, 'api-pre') })).status).toBe(428);
    const garbled = await api.call('PUT', '/personas/api-pre', {
      body: named(peak, 'api-pre'),
      headers: { 'if-match': 'latest' },
    });
    expect(garbled.status).toBe(400);
    expect(garbled.body.issues[0].path).toBe('headers.if-match');
    const mismatch = await api.call('PUT', '/personas/api-pre', {
      body: named(peak, 'api-other'),
      headers: { 'if-match': '"1"' },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.issues[0].path).toBe('metadata.name');
  });

  it('refuses names that read as options or paths (400 naming params.name)', async () => {
    for (const name of [
      '--force',
      '-rf',
      '.hidden',
      '%2e%2e%2fetc',
      'a%2Fb',
      'UPPER',
      `${'x'.repeat(129)}`,
    ]) {
      const res = await api.call('PUT', `/personas/${name}`, {
        body: named(peak, 'whatever'),
        headers: { 'if-match': '"0"' },
      });
      expect(res.status, name).toBe(400);
      expect(res.body.issues[0].path, name).toBe('params.name');
      expect((await api.call('GET', `/personas/${name}`)).status, name).toBe(400);
    }
    const body = named(peak, '-rf');
    const res = await api.call('POST', '/personas', { body });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('metadata.name');
  });
});

describe('reading personas', () => {
  beforeAll(async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-read') });
    const v2 = named(peak, 'api-read');
    v2.spec.priority = 5;
    await api.call('PUT', '/personas/api-read', { body: v2, headers: { 'if-match': '"1"' } });
  });

  it('gets the latest, any version, and the versions newest first', async () => {
    const latest = await api.call('GET', '/personas/api-read');
    expect(latest.status).toBe(200);
    expect(latest.headers.get('etag')).toBe('"2"');
    expect(latest.body.version.version).toBe(2);
    const first = await api.call('GET', '/personas/api-read/versions/1');
    expect(first.body.persona.spec.priority).toBe(10);
    const versions = await api.call('GET', '/personas/api-read/versions');
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect((await api.call('GET', '/personas/api-read/versions/7')).status).toBe(404);
    expect((await api.call('GET', '/personas/api-read/versions/zero')).status).toBe(400);
    expect((await api.call('GET', '/personas/nobody')).status).toBe(404);
  });

  it('lists personas a page at a time, and refuses a forged cursor with 400 naming it', async () => {
    const first = await api.call('GET', '/personas?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.items[0]).toMatchObject({ latest: expect.any(Number), priority: expect.any(Number) });
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await api.call('GET', `/personas?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items[0].name > first.body.items[1].name).toBe(true);
    for (const cursor of [
      'forged',
      encodeCursor('profiles', { entity: 'profile', name: 'web', version: 0 }),
      encodeCursor('personas', { entity: 'persona', name: 'x', version: 3 }),
    ]) {
      const res = await api.call('GET', `/personas?cursor=${cursor}`);
      expect(res.status, cursor).toBe(400);
      expect(res.body.issues[0].path).toBe('cursor');
    }
    expect((await api.call('GET', '/personas?limit=1000')).body.issues[0].path).toBe('query.limit');
  });
});

describe('DELETE /personas/{name}', () => {
  it('deletes a persona and its versions (204), after which it is 404', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-del') });
    const res = await api.call('DELETE', '/personas/api-del');
    expect(res.status).toBe(204);
    expect((await api.call('GET', '/personas/api-del')).status).toBe(404);
    expect((await api.call('GET', '/personas/api-del/versions/1')).status).toBe(404);
    expect((await api.call('DELETE', '/personas/api-del')).status).toBe(404);
  });

  it('refuses (409, naming the host) while a host has the persona, and a stale If-Match', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-del-held') });
    await hostPersonas().save(
      { host: 'del-held-host', current: 'api-del-held', since: Date.now() },
      undefined,
    );
    const res = await api.call('DELETE', '/personas/api-del-held');
    expect(res.status).toBe(409);
    expect(res.body.detail).toMatch(/current persona of host del-held-host/);
    expect((await api.call('GET', '/personas/api-del-held')).status).toBe(200);
    const stale = await api.call('DELETE', '/personas/api-create', { headers: { 'if-match': '"7"' } });
    expect(stale.status).toBe(409);
  });
});

describe('POST /personas/{name}/activate', () => {
  it('records the manual activation and its decision, starts the switch, and answers 202 with its Location', async () => {
    await register('act-web-1');
    await api.call('POST', '/personas', { body: named(businessHours, 'api-act') });
    const until = new Date(Date.now() + 3_600_000).toISOString();
    const res = await api.call('POST', '/personas/api-act/activate', {
      body: { host: 'act-web-1', until },
      headers: { 'idempotency-key': 'activate-key-0001' },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/operations/${res.body.operationId}`);
    expect(res.body).toMatchObject({
      host: 'act-web-1',
      persona: { name: 'api-act', version: 1 },
      manual: { until },
      recorded: true,
      decision: { action: 'manual', to: 'api-act', from: null, mode: 'act' },
    });
    expect(started).toEqual([{ workflow: 'persona-switch', operationId: res.body.operationId }]);
    const op = await api.call('GET', `/operations/${res.body.operationId}`);
    expect(op.body).toMatchObject({ kind: 'activate', host: 'act-web-1', status: 'PENDING' });

    const view = await api.call('GET', '/hosts/act-web-1/persona');
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({
      host: 'act-web-1',
      current: null,
      manual: { persona: 'api-act', until },
      why: { action: 'manual', to: 'api-act' },
    });
    expect(view.body.why.reasons[0].detail).toMatch(/activated by an operator/);
    expect(view.body.history.items).toHaveLength(1);

    // A retry with the same key records nothing twice and finds the same switch.
    const retry = await api.call('POST', '/personas/api-act/activate', {
      body: { host: 'act-web-1', until },
      headers: { 'idempotency-key': 'activate-key-0001' },
    });
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ operationId: res.body.operationId, recorded: false });
    expect((await api.call('GET', '/hosts/act-web-1/persona')).body.history.items).toHaveLength(1);
  });

  it('refuses an activation key sent again for another host (422): nothing recorded, no second switch', async () => {
    await register('act-key-a');
    await register('act-key-b');
    await api.call('POST', '/personas', { body: named(businessHours, 'api-act-key') });
    const headers = { 'idempotency-key': 'activate-key-hostile-1' };
    const first = await api.call('POST', '/personas/api-act-key/activate', {
      body: { host: 'act-key-a', until: null },
      headers,
    });
    expect(first.status).toBe(202);
    started.length = 0;
    const other = await api.call('POST', '/personas/api-act-key/activate', {
      body: { host: 'act-key-b', until: null },
      headers,
    });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', status: 422 });
    expect(started).toEqual([]);
    const view = await api.call('GET', '/hosts/act-key-b/persona');
    expect(view.body.manual).toBeUndefined();
    expect(view.body.history.items).toEqual([]);
  });

  it('ends a manual activation at the next window edge of the host personas when no until is given', async () => {
    await register('act-web-2');
    await api.call('POST', '/personas', { body: named(businessHours, 'api-act-edge') });
    const res = await api.call('POST', '/personas/api-act-edge/activate', { body: { host: 'act-web-2' } });
    expect(res.status).toBe(202);
    const until = Date.parse(res.body.manual.until);
    expect(until).toBeGreaterThan(Date.now());
    // Business hours in Paris change at 08:00 or 19:00 local time, within a week.
    const local = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Paris',
      hour: '2-digit',
      minute: '2-digit',
    }).format(new Date(until));
    expect(['08:00', '19:00', '00:00']).toContain(local);
  });

  it('answers 404 naming an unregistered host, 409 for a host the persona does not select', async () => {
    await api.call('POST', '/personas', { body: named(peak, 'api-act-sel') });
    const ghost = await api.call('POST', '/personas/api-act-sel/activate', { body: { host: 'ghost-host' } });
    expect(ghost.status).toBe(404);
    expect(ghost.body.detail).toMatch(/host ghost-host \(body\.host\) is not registered/);
    await register('db-1', { role: 'db' });
    const other = await api.call('POST', '/personas/api-act-sel/activate', { body: { host: 'db-1' } });
    expect(other.status).toBe(409);
    expect(other.body.detail).toMatch(
      /does not select host db-1 \(body\.host\): its hosts are labels role=web/,
    );
    expect(started).toEqual([]);
    expect((await api.call('GET', '/hosts/db-1/persona')).body.history.items).toEqual([]);
    const none = await api.call('POST', '/personas/nobody/activate', { body: { host: 'db-1' } });
    expect(none.status).toBe(404);
  });

  it('refuses a bad body, a past until and a bad Idempotency-Key, naming each', async () => {
    await register('act-web-3');
    await api.call('POST', '/personas', { body: named(peak, 'api-act-bad') });
    const cases: [unknown, Record<string, string>, string][] = [
      [{ host: '-oProxyCommand=x' }, {}, 'host'],
      [{ host: 'act-web-3', extra: 1 }, {}, 'extra'],
      [{ host: 'act-web-3', until: 'tomorrow' }, {}, 'until'],
      [{ host: 'act-web-3', until: '2001-01-01T00:00:00Z' }, {}, 'body.until'],
      [{ host: 'act-web-3' }, { 'idempotency-key': 'short' }, 'headers.idempotency-key'],
    ];
    for (const [body, headers, path] of cases) {
      const res = await api.call('POST', '/personas/api-act-bad/activate', { body, headers });
      expect(res.status, path).toBe(400);
      expect(res.body.issues[0].path, path).toBe(path);
    }
    expect(started).toEqual([]);
  });
});

describe('GET /hosts/{host}/persona', () => {
  it('answers a registered host never evaluated with no persona, 404 for an unregistered one', async () => {
    await register('view-1');
    const res = await api.call('GET', '/hosts/view-1/persona');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ host: 'view-1', current: null, applied: null, history: { items: [] } });
    expect((await api.call('GET', '/hosts/nobody-here/persona')).status).toBe(404);
    expect((await api.call('GET', '/hosts/..%2f..%2fetc/persona')).status).toBe(400);
  });

  it('answers the current persona, since when, why, and pages the history newest first', async () => {
    await register('view-2');
    const states = hostPersonas();
    const t = Date.now() - 60_000;
    await states.save({ host: 'view-2', current: 'api-read', currentVersion: 2, since: t }, undefined);
    for (let i = 0; i < 3; i++) {
      await states.record({
        host: 'view-2',
        at: t + i * 1000,
        action: i === 2 ? 'switch' : 'stay',
        from: null,
        to: 'api-read',
        mode: 'act',
        summary: `decision ${i}`,
        reasons: [
          { path: '/metric', holds: 'true', detail: 'cpu.utilization > 75 for 300 s', values: { max: 91 } },
        ],
      });
    }
    const first = await api.call('GET', '/hosts/view-2/persona?limit=2');
    expect(first.body).toMatchObject({
      host: 'view-2',
      current: 'api-read',
      currentVersion: 2,
      since: new Date(t).toISOString(),
      why: { summary: 'decision 2', reasons: [{ path: '/metric', values: { max: 91 } }] },
    });
    expect(first.body.history.items.map((d: { summary: string }) => d.summary)).toEqual([
      'decision 2',
      'decision 1',
    ]);
    const second = await api.call(
      'GET',
      `/hosts/view-2/persona?limit=2&cursor=${first.body.history.nextCursor}`,
    );
    expect(second.body.history.items.map((d: { summary: string }) => d.summary)).toEqual(['decision 0']);
    expect(second.body.why.summary).toBe('decision 2');
    // Decisions to stay since the switch: `why` is still the switch, `latest` the newest stay.
    for (const i of [3, 4]) {
      await states.record({
        host: 'view-2',
        at: t + i * 1000,
        action: 'stay',
        from: 'api-read',
        to: 'api-read',
        mode: 'act',
        summary: `decision ${i}`,
        reasons: [{ path: '/metric', holds: 'true', detail: 'cpu.utilization > 75 for 300 s' }],
      });
    }
    const later = await api.call('GET', '/hosts/view-2/persona?limit=1');
    expect(later.body.why).toMatchObject({ summary: 'decision 2', action: 'switch' });
    expect(later.body.latest).toMatchObject({ summary: 'decision 4', action: 'stay' });
    const foreign = await api.call('GET', `/hosts/view-1/persona?cursor=${first.body.history.nextCursor}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.issues[0].path).toBe('cursor');
  });
});

describe('persona writes keep the triggers current', () => {
  it('syncs schedules after every write and delete, and a retry after a failed sync syncs again', async () => {
    const before = personaTriggers();
    const calls: string[] = [];
    let fail = false;
    useTriggerSync({
      async personaWritten(p) {
        calls.push(`written ${p.metadata.name} ${p.spec.priority}`);
        if (fail) throw new Error('Scheduler: ThrottlingException (injected)');
      },
      async personaDeleted(name) {
        calls.push(`deleted ${name}`);
        if (fail) throw new Error('Scheduler: ThrottlingException (injected)');
      },
    });
    try {
      await api.call('POST', '/personas', { body: named(businessHours, 'api-sync') });
      const next = named(businessHours, 'api-sync');
      next.spec.priority = 30;
      fail = true;
      const failed = await api.call('PUT', '/personas/api-sync', {
        body: next,
        headers: { 'if-match': '"1"' },
      });
      expect(failed.status).toBe(500);
      fail = false;
      // The version was written; the retry finds it unchanged and syncs its schedules.
      const retry = await api.call('PUT', '/personas/api-sync', {
        body: next,
        headers: { 'if-match': '"1"' },
      });
      expect(retry.status).toBe(200);
      fail = true;
      expect((await api.call('DELETE', '/personas/api-sync')).status).toBe(500);
      fail = false;
      expect((await api.call('DELETE', '/personas/api-sync')).status).toBe(404);
      expect(calls).toEqual([
        'written api-sync 20',
        'written api-sync 30',
        'written api-sync 30',
        'deleted api-sync',
        'deleted api-sync',
      ]);
    } finally {
      useTriggerSync(before);
    }
  });
});

describe('the persona routes in OpenAPI', () => {
  it('describes every persona route with its parameters and problems', async () => {
    const doc = (await api.call('GET', '/openapi.json')).body;
    const put = doc.paths['/personas/{name}'].put;
    expect(put.parameters.map((p: { name: string }) => p.name)).toEqual(['name', 'If-Match']);
    expect(put.parameters[0].schema.maxLength).toBe(128);
    expect(Object.keys(put.responses)).toEqual(
      expect.arrayContaining(['200', '201', '400', '409', '413', '415', '428']),
    );
    expect(doc.paths['/personas/{name}'].delete.responses['204']).toBeDefined();
    expect(doc.paths['/personas/{name}/activate'].post.responses['202'].headers.Location).toBeDefined();
    expect(doc.paths['/hosts/{host}/persona'].get.responses['200']).toBeDefined();
    for (const id of [
      'Persona',
      'PersonaWriteResult',
      'VersionedPersona',
      'Activation',
      'HostPersona',
      'Decision',
    ])
      expect(doc.components.schemas[id], id).toBeDefined();
  });
});
