import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestPersona, type TestPersona } from '../support/local.js';

const webYaml = readFileSync('examples/web.yaml', 'utf8');
const webV2Yaml = readFileSync('examples/web-v2.yaml', 'utf8');
const web = parse(webYaml);
const webV2 = parse(webV2Yaml);

/** A copy of the example under another name, so tests do not share history. */
const named = (doc: any, name: string) => ({ ...structuredClone(doc), metadata: { ...doc.metadata, name } });

let api: TestPersona;

beforeAll(async () => {
  api = await startTestPersona();
});

afterAll(async () => {
  await api?.stop();
});

describe('POST /profiles', () => {
  it('creates version 1 and returns its record with an ETag and Location', async () => {
    const res = await api.call('POST', '/profiles', { body: named(web, 'create-1') });
    expect(res.status).toBe(201);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(res.headers.get('location')).toBe('/profiles/create-1');
    expect(res.body).toMatchObject({
      created: true,
      version: { name: 'create-1', version: 1, summary: { packages: 6, services: 4, files: 7 } },
    });
    expect(res.body.version.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('accepts a YAML body', async () => {
    const res = await api.call('POST', '/profiles', {
      raw: webYaml.replace('name: web', 'name: yaml-body'),
      headers: { 'content-type': 'application/yaml' },
    });
    expect(res.status).toBe(201);
    const got = await api.call('GET', '/profiles/yaml-body');
    expect(got.body.profile.spec.os.hostname).toBe('web-a');
  });

  it('answers a retried create with the same document with 200 and writes nothing new', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'retry') });
    const again = await api.call('POST', '/profiles', { body: named(web, 'retry') });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ created: false, version: { version: 1 } });
    const versions = await api.call('GET', '/profiles/retry/versions');
    expect(versions.body.items).toHaveLength(1);
  });

  it('refuses to create over an existing profile with a different document (409)', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'exists') });
    const res = await api.call('POST', '/profiles', { body: named(webV2, 'exists') });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'CONFLICT', current: 1 });
  });

  it('refuses a bad profile with 400 naming every bad field, and writes nothing', async () => {
    const bad = named(web, 'bad-one');
    bad.spec.packages[3].version = 42;
    bad.spec.configuration.env.push({ name: 'API_TOKEN', value: 'abc' });
    bad.spec.surprise = true;
    const res = await api.call('POST', '/profiles', { body: bad });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const paths = res.body.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'spec.packages[3].version',
        'spec.configuration.env[5].value',
        'spec.surprise',
      ]),
    );
    expect((await api.call('GET', '/profiles/bad-one')).status).toBe(404);
  });

  it('refuses malformed JSON, duplicate keys and __proto__ with 400, never 500', async () => {
    for (const raw of [
      '{"apiVersion": "persona/v1", ',
      '{"apiVersion":"persona/v1","kind":"Profile","kind":"Profile"}',
      '{"__proto__": {"polluted": true}}',
      '',
    ]) {
      const res = await api.call('POST', '/profiles', { raw });
      expect(res.status, raw).toBe(400);
      expect(res.body.code).toBe('INVALID_INPUT');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a body over the document size limit with 413', async () => {
    const huge = named(web, 'huge');
    huge.metadata.description = 'x'.repeat(100);
    huge.spec.configuration.sysctl = Object.fromEntries(
      Array.from({ length: 150_000 }, (_, i) => [`net.test.key_${i}`, 'some value']),
    );
    const res = await api.call('POST', '/profiles', { body: huge });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe('TOO_LARGE');
  });
});

describe('PUT /profiles/{name}', () => {
  it('writes the next version when If-Match names the latest', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'put-ok') });
    const res = await api.call('PUT', '/profiles/put-ok', {
      body: named(webV2, 'put-ok'),
      headers: { 'if-match': '"1"' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('etag')).toBe('"2"');
    expect(res.body.version).toMatchObject({ version: 2, summary: { packages: 7 } });
  });

  it('rejects a stale write with 409 and loses nothing', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'stale') });
    const first = await api.call('PUT', '/profiles/stale', {
      body: named(webV2, 'stale'),
      headers: { 'if-match': '1' },
    });
    expect(first.status).toBe(201);
    const third = named(webV2, 'stale');
    third.spec.instance.size = 'm7i.2xlarge';
    const stale = await api.call('PUT', '/profiles/stale', { body: third, headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ code: 'CONFLICT', current: 2 });
    const latest = await api.call('GET', '/profiles/stale');
    expect(latest.body.version.version).toBe(2);
    expect(latest.body.profile.spec.instance.size).toBe('m7i.xlarge');
  });

  it('lets exactly one of several concurrent writers of the same version win', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'race') });
    const writers = Array.from({ length: 6 }, (_, i) => {
      const doc = named(web, 'race');
      doc.metadata.description = `writer ${i}`;
      return api.call('PUT', '/profiles/race', { body: doc, headers: { 'if-match': '"1"' } });
    });
    const statuses = (await Promise.all(writers)).map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409]);
    const versions = await api.call('GET', '/profiles/race/versions');
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
  });

  it('answers an unchanged document with 200 and no new version', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'same') });
    const res = await api.call('PUT', '/profiles/same', {
      body: named(web, 'same'),
      headers: { 'if-match': '"1"' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ created: false, version: { version: 1 } });
  });

  it('treats a retried successful write as success, not as a conflict', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'put-retry') });
    const body = named(webV2, 'put-retry');
    const first = await api.call('PUT', '/profiles/put-retry', { body, headers: { 'if-match': '"1"' } });
    const retry = await api.call('PUT', '/profiles/put-retry', { body, headers: { 'if-match': '"1"' } });
    expect([first.status, retry.status]).toEqual([201, 200]);
    expect(retry.body.version.version).toBe(2);
  });

  it('requires If-Match (428) and a well-formed one (400 naming the header)', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'precondition') });
    const missing = await api.call('PUT', '/profiles/precondition', { body: named(webV2, 'precondition') });
    expect(missing.status).toBe(428);
    const garbled = await api.call('PUT', '/profiles/precondition', {
      body: named(webV2, 'precondition'),
      headers: { 'if-match': 'latest' },
    });
    expect(garbled.status).toBe(400);
    expect(garbled.body.issues[0].path).toBe('headers.if-match');
  });

  it('creates a new profile with If-Match "0"', async () => {
    const res = await api.call('PUT', '/profiles/via-put', {
      body: named(web, 'via-put'),
      headers: { 'if-match': '"0"' },
    });
    expect(res.status).toBe(201);
    expect(res.body.version.version).toBe(1);
  });

  it('refuses a body whose metadata.name differs from the path (400 naming the field)', async () => {
    const res = await api.call('PUT', '/profiles/other', {
      body: named(web, 'mismatch'),
      headers: { 'if-match': '"0"' },
    });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('metadata.name');
  });

  it('answers a write to a missing profile at a non-zero version with 409', async () => {
    const res = await api.call('PUT', '/profiles/ghost', {
      body: named(web, 'ghost'),
      headers: { 'if-match': '"3"' },
    });
    expect(res.status).toBe(409);
  });
});

describe('reading profiles and versions', () => {
  beforeAll(async () => {
    await api.call('POST', '/profiles', { body: named(web, 'reader') });
    await api.call('PUT', '/profiles/reader', {
      body: named(webV2, 'reader'),
      headers: { 'if-match': '"1"' },
    });
  });

  it('gets the latest version with its record', async () => {
    const res = await api.call('GET', '/profiles/reader');
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"2"');
    expect(res.body.version.version).toBe(2);
    expect(res.body.profile.spec.packages.map((p: { name: string }) => p.name)).toContain('redis-server');
  });

  it('gets an older version exactly as it was written', async () => {
    const res = await api.call('GET', '/profiles/reader/versions/1');
    expect(res.status).toBe(200);
    expect(res.body.profile.spec.instance.size).toBe('m7i.large');
    expect(res.body.profile.observed.traitVector.traits['web-serving']).toBe(0.92);
  });

  it('lists versions newest first', async () => {
    const res = await api.call('GET', '/profiles/reader/versions');
    expect(res.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
  });

  it('answers 404 for a missing profile or version, and 400 for a bad version number', async () => {
    expect((await api.call('GET', '/profiles/nobody')).status).toBe(404);
    const missing = await api.call('GET', '/profiles/reader/versions/9');
    expect(missing.status).toBe(404);
    expect(missing.body.detail).toMatch(/latest is 2/);
    const bad = await api.call('GET', '/profiles/reader/versions/two');
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('params.version');
  });

  it('answers 400 naming the parameter for an invalid profile name', async () => {
    const res = await api.call('GET', '/profiles/Not_Valid!');
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('params.name');
  });
});

describe('GET /profiles', () => {
  it('pages through every profile exactly once', async () => {
    for (const n of ['page-a', 'page-b', 'page-c', 'page-d', 'page-e']) {
      await api.call('POST', '/profiles', { body: named(web, n) });
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await api.call(
        'GET',
        `/profiles?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((h: { name: string }) => h.name));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(['page-a', 'page-b', 'page-c', 'page-d', 'page-e']));
  });

  it('refuses a bad limit or a forged cursor with 400 naming it', async () => {
    const limit = await api.call('GET', '/profiles?limit=1000');
    expect(limit.status).toBe(400);
    expect(limit.body.issues[0].path).toBe('query.limit');
    const cursor = await api.call('GET', '/profiles?cursor=not-a-cursor');
    expect(cursor.status).toBe(400);
    expect(cursor.body.issues[0].path).toBe('cursor');
  });
});

describe('GET /profiles/{name}/diff', () => {
  beforeAll(async () => {
    await api.call('POST', '/profiles', { body: named(web, 'differ') });
    await api.call('PUT', '/profiles/differ', {
      body: named(webV2, 'differ'),
      headers: { 'if-match': '"1"' },
    });
  });

  it('returns the ordered Delta between two versions', async () => {
    const res = await api.call('GET', '/profiles/differ/diff?from=1&to=2');
    expect(res.status).toBe(200);
    const kinds = res.body.changes.map((c: { kind: string; key: string }) => `${c.kind} ${c.key}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'instance.resize instance',
        'package.upgrade apt:nginx-light',
        'package.install apt:redis-server',
        'user.add redis',
        'file.write /etc/nginx/nginx.conf',
        'sysctl.set net.core.somaxconn',
        'firewall.replace firewall',
        'service.add redis-server',
      ]),
    );
    // Applicable order: the user exists before the file it owns, the package before its service.
    const at = (k: string) => kinds.indexOf(k);
    expect(at('user.add redis')).toBeLessThan(at('file.write /etc/redis/redis.conf'));
    expect(at('package.install apt:redis-server')).toBeLessThan(at('service.add redis-server'));
  });

  it('defaults `to` to the latest version and finds nothing between a version and itself', async () => {
    const latest = await api.call('GET', '/profiles/differ/diff?from=2');
    expect(latest.status).toBe(200);
    expect(latest.body.changes).toEqual([]);
  });

  it('needs `from` (400 naming query.from) and existing versions (404)', async () => {
    const missing = await api.call('GET', '/profiles/differ/diff');
    expect(missing.status).toBe(400);
    expect(missing.body.issues[0].path).toBe('query.from');
    expect((await api.call('GET', '/profiles/differ/diff?from=1&to=7')).status).toBe(404);
  });
});

describe('the HTTP surface', () => {
  it('serves an OpenAPI 3.1 document describing every route', async () => {
    const res = await api.call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining([
        '/profiles',
        '/profiles/{name}',
        '/profiles/{name}/versions/{version}',
        '/profiles/{name}/diff',
      ]),
    );
    expect(res.body.components.schemas.Profile).toBeDefined();
    expect(res.body.components.schemas.Delta).toBeDefined();
    expect(res.body.paths['/profiles/{name}'].put.responses['409']).toBeDefined();
  });

  it('answers unknown routes with 404 and wrong methods with 405', async () => {
    expect((await api.call('GET', '/nowhere')).status).toBe(404);
    const res = await api.call('DELETE', '/profiles');
    expect(res.status).toBe(405);
  });
});
