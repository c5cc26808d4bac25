// Bad input is never a 5xx: forged cursors, oversized registrations, malformed encodings,
// documents that are not valid Unicode or nest without end, racing retries, and stored
// documents changed behind the API's back. All against the real embedded runtime.
import { readFileSync } from 'node:fs';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { HOST_LIMITS } from '../../core/host/schema.js';
import { LOCAL_BUCKET } from '../../local/runtime.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const web = parse(readFileSync('examples/web.yaml', 'utf8'));
const webV2 = parse(readFileSync('examples/web-v2.yaml', 'utf8'));
const named = (doc: any, name: string) => ({ ...structuredClone(doc), metadata: { ...doc.metadata, name } });

const host = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  platform: 'baremetal',
  transport: 'ssh',
  address: '10.0.0.2',
  credentialRef: { provider: 'aws-secretsmanager', secretId: `persona/ssh/${name}` },
  ...extra,
});

const cursorOf = (listing: string, key: unknown) =>
  Buffer.from(JSON.stringify({ l: listing, k: key })).toString('base64url');

let api: TestPersona;
let s3: S3Client;

/** The status and body of a request whose body is given as bytes, with its own headers. */
async function send(
  method: string,
  path: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
) {
  const res = await fetch(`${api.url}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  api = await startTestPersona();
  s3 = new S3Client({
    endpoint: api.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  for (const name of ['cur-a', 'cur-b', 'cur-c']) {
    await api.call('POST', '/profiles', { body: named(web, name) });
    await api.call('PUT', `/profiles/${name}`, { body: named(webV2, name), headers: { 'if-match': '"1"' } });
  }
  for (const name of ['host-a', 'host-b', 'host-c']) await api.call('POST', '/hosts', { body: host(name) });
});

afterAll(async () => {
  s3?.destroy();
  await api?.stop();
});

describe('pagination cursors', () => {
  it('pages through versions with the cursors the API hands out', async () => {
    const first = await api.call('GET', '/profiles/cur-a/versions?limit=1');
    expect(first.body.items.map((v: { version: number }) => v.version)).toEqual([2]);
    const next = await api.call(
      'GET',
      `/profiles/cur-a/versions?limit=1&cursor=${encodeURIComponent(first.body.nextCursor)}`,
    );
    expect(next.status).toBe(200);
    expect(next.body.items.map((v: { version: number }) => v.version)).toEqual([1]);
  });

  it("refuses another listing's cursor with 400 naming the cursor, on every listing", async () => {
    const versionsOfA = (await api.call('GET', '/profiles/cur-a/versions?limit=1')).body.nextCursor;
    const profiles = (await api.call('GET', '/profiles?limit=1')).body.nextCursor;
    const hosts = (await api.call('GET', '/hosts?limit=1')).body.nextCursor;
    expect([versionsOfA, profiles, hosts].every((c) => typeof c === 'string')).toBe(true);
    for (const [path, cursor] of [
      ['/profiles/cur-b/versions', versionsOfA],
      ['/profiles', versionsOfA],
      ['/hosts', profiles],
      ['/profiles', hosts],
      ['/profiles/cur-b/versions', hosts],
    ] as const) {
      const res = await api.call('GET', `${path}?cursor=${cursor}`);
      expect(res.status, `${path} with a foreign cursor`).toBe(400);
      expect(res.body.issues).toEqual([expect.objectContaining({ path: 'cursor' })]);
    }
  });

  it('refuses forged start keys that DynamoDB would reject or that point into another partition', async () => {
    const forged = [
      ['/profiles/cur-b/versions', cursorOf('profiles/cur-b/versions', { name: 'cur-a', version: 2 })],
      ['/profiles/cur-b/versions', cursorOf('profiles/cur-b/versions', { name: 'cur-b', version: 'x' })],
      ['/profiles/cur-b/versions', cursorOf('profiles/cur-b/versions', { name: 'cur-b' })],
      ['/profiles', cursorOf('profiles', { name: 'cur-a', version: 0 })],
      ['/profiles', cursorOf('profiles', { entity: 'host', name: 'cur-a', version: 0 })],
      ['/hosts', cursorOf('hosts', { name: 'host-a', extra: 1 })],
      ['/hosts', cursorOf('hosts', { name: { S: 'host-a' } })],
      // The shape the cursors had before they named their listing.
      ['/profiles/cur-b/versions', Buffer.from('{"name":"cur-a","version":1}').toString('base64url')],
      ['/hosts', Buffer.from('"host-a"').toString('base64url')],
      ['/profiles', 'x'.repeat(5000)],
    ] as const;
    for (const [path, cursor] of forged) {
      const res = await api.call('GET', `${path}?cursor=${cursor}`);
      expect(res.status, `${path} ${Buffer.from(cursor, 'base64url').toString()}`).toBe(400);
      expect(res.body.issues[0].path).toBe('cursor');
    }
  });

  it('accepts a well-formed start key of the listing itself: it is only a position', async () => {
    const res = await api.call('GET', `/hosts?cursor=${cursorOf('hosts', { name: 'host-a' })}`);
    expect(res.status).toBe(200);
  });
});

describe('host registration limits', () => {
  it(`refuses a registration over ${HOST_LIMITS.maxBytes} bytes with 413 naming the limit`, async () => {
    const big = host('big', {
      tags: { note: 'x'.repeat(200) },
      processes: ['a'.repeat(HOST_LIMITS.maxBytes)],
    });
    const res = await api.call('POST', '/hosts', { body: big });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ code: 'TOO_LARGE' });
    expect(res.body.detail).toContain(`the limit for a host registration is ${HOST_LIMITS.maxBytes} bytes`);
    expect((await api.call('GET', '/hosts/big')).status).toBe(404);
  });

  it('refuses too many tags, paths or processes with 400 naming the field and the limit', async () => {
    const tags = Object.fromEntries(
      Array.from({ length: HOST_LIMITS.maxTags + 1 }, (_, i) => [`k${i}`, 'v']),
    );
    const paths = Array.from({ length: HOST_LIMITS.maxPaths + 1 }, (_, i) => `/srv/app${i}`);
    const processes = Array.from({ length: HOST_LIMITS.maxProcesses + 1 }, (_, i) => `worker${i}`);
    const res = await api.call('POST', '/hosts', { body: host('many', { tags, paths, processes }) });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'tags', message: `at most ${HOST_LIMITS.maxTags} tags` }),
        expect.objectContaining({ path: 'paths', message: `at most ${HOST_LIMITS.maxPaths} paths` }),
        expect.objectContaining({
          path: 'processes',
          message: `at most ${HOST_LIMITS.maxProcesses} processes`,
        }),
      ]),
    );
    const atLimit = await api.call('POST', '/hosts', {
      body: host('at-limit', {
        tags: Object.fromEntries(Object.entries(tags).slice(0, HOST_LIMITS.maxTags)),
        paths: paths.slice(0, HOST_LIMITS.maxPaths),
      }),
    });
    expect(atLimit.status).toBe(201);
  });

  it('refuses a region that is not a region name', async () => {
    const res = await api.call('POST', '/hosts', { body: host('regioned', { region: 'x'.repeat(1000) }) });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('region');
  });
});

describe('percent-encoding', () => {
  it('answers malformed percent-encoding in a path or query with 400 naming the parameter', async () => {
    for (const [path, field] of [
      ['/profiles/%E0%A4%A', 'params.name'],
      ['/profiles/%zz', 'params.name'],
      ['/profiles/%ED%A0%80', 'params.name'],
      ['/profiles/web/versions/%C0%AF', 'params.version'],
      ['/profiles?cursor=%zz', 'query.cursor'],
      ['/profiles?limit=%ff', 'query.limit'],
      ['/hosts?%E0=1', 'query.%E0'],
    ] as const) {
      const res = await api.call('GET', path);
      expect(res.status, path).toBe(400);
      expect(res.body.issues[0].path, path).toBe(field);
    }
  });
});

describe('documents that are not valid text', () => {
  it('refuses a body that is not UTF-8 with 400 naming the byte, and writes nothing', async () => {
    const text = JSON.stringify(named(web, 'latin1'));
    const at = text.indexOf('nginx reverse proxy');
    const bytes = Buffer.concat([
      Buffer.from(text.slice(0, at)),
      Buffer.from([0xe9]),
      Buffer.from(text.slice(at)),
    ]);
    const res = await send('POST', '/profiles', bytes, { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([
      expect.objectContaining({ message: expect.stringMatching(`^invalid UTF-8 at byte ${at} `), line: 1 }),
    ]);
    expect((await api.call('GET', '/profiles/latin1')).status).toBe(404);
  });

  it('refuses a capture request body that is not UTF-8 with 400 naming the byte, and starts nothing', async () => {
    const res = await send('POST', '/hosts/host-a/capture', Buffer.from([0x7b, 0x20, 0xff, 0x7d]), {
      'content-type': 'application/json',
      'idempotency-key': 'not-utf8-capture',
    });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/^invalid UTF-8 at byte 2 /) }),
    ]);
    expect((await api.call('GET', '/operations/not-utf8-capture')).status).toBe(404);
  });

  it('refuses lone surrogates, escaped or raw, naming where', async () => {
    const escaped = JSON.stringify(named(web, 'lone')).replace('nginx reverse', 'nginx \\udc00 reverse');
    const res = await send('POST', '/profiles', escaped, { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([expect.objectContaining({ path: 'metadata.description' })]);
    const registration = JSON.stringify(host('lone-host', { tags: { k: 'v-SURROGATE' } })).replace(
      '-SURROGATE',
      '\\ud800',
    );
    const hostRes = await send('POST', '/hosts', registration, { 'content-type': 'application/json' });
    expect(hostRes.status).toBe(400);
    expect(hostRes.body.issues).toEqual([expect.objectContaining({ path: 'tags.k' })]);
  });

  it('reports a document nested 10,000 deep as the depth limit, never a 5xx', async () => {
    for (const raw of [
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      '['.repeat(10_000),
      `${'- '.repeat(10_000)}x`,
      `metadata: ${'{a: '.repeat(10_000)}`,
    ]) {
      for (const path of ['/profiles', '/hosts']) {
        const res = await send('POST', path, raw, { 'content-type': 'application/yaml' });
        expect(res.status, `${path} ${raw.slice(0, 8)}`).toBe(400);
        expect(res.body.issues[0].message).toBe('nested deeper than 32 levels');
      }
    }
    expect((await api.call('GET', '/openapi.json')).status).toBe(200);
  });
});

describe('concurrent identical retries', () => {
  it('gives every copy of a PUT that succeeded its result (one 201, the rest 200), not 409', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'retried') });
    const body = named(webV2, 'retried');
    const copies = await Promise.all(
      Array.from({ length: 8 }, () =>
        api.call('PUT', '/profiles/retried', { body, headers: { 'if-match': '"1"' } }),
      ),
    );
    expect(copies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    const hashes = new Set(copies.map((r) => r.body.version.hash));
    expect(hashes.size).toBe(1);
    expect(copies.every((r) => r.body.version.version === 2 && r.headers.get('etag') === '"2"')).toBe(true);
    const versions = await api.call('GET', '/profiles/retried/versions');
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);
  });

  it('gives every copy of a POST that created a profile its result', async () => {
    const body = named(web, 'created-once');
    const copies = await Promise.all(
      Array.from({ length: 8 }, () => api.call('POST', '/profiles', { body })),
    );
    expect(copies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(copies.map((r) => r.body.version.hash)).size).toBe(1);
  });

  it('still refuses concurrent different writers of one version with 409', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'rivals') });
    const writers = Array.from({ length: 4 }, (_, i) => {
      const doc = named(webV2, 'rivals');
      doc.metadata.description = `writer ${i}`;
      return api.call('PUT', '/profiles/rivals', { body: doc, headers: { 'if-match': '"1"' } });
    });
    expect((await Promise.all(writers)).map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
  });
});

describe('stored documents checked on every read', () => {
  it('answers a changed stored body with a CORRUPT problem naming the profile and version, not its content', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'tampered') });
    await api.call('PUT', '/profiles/tampered', {
      body: named(webV2, 'tampered'),
      headers: { 'if-match': '"1"' },
    });
    const v1 = (await api.call('GET', '/profiles/tampered/versions/1')).body.version;
    const evil = named(web, 'tampered');
    evil.spec.instance.size = 'x1e.32xlarge';
    await s3.send(
      new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: v1.bodyKey, Body: JSON.stringify(evil) }),
    );
    const res = await api.call('GET', '/profiles/tampered/versions/1');
    expect(res.status).toBe(502);
    expect(res.status).not.toBe(500);
    expect(res.body).toMatchObject({ code: 'CORRUPT', status: 502 });
    expect(res.body.detail).toMatch(/^profile tampered version 1 is damaged: /);
    expect(JSON.stringify(res.body)).not.toContain('x1e.32xlarge');
    const diff = await api.call('GET', '/profiles/tampered/diff?from=1&to=2');
    expect(diff.body).toMatchObject({ code: 'CORRUPT' });
    // The version that was not touched still reads.
    expect((await api.call('GET', '/profiles/tampered')).status).toBe(200);
  });

  it('answers a lost stored body the same way', async () => {
    await api.call('POST', '/profiles', { body: named(web, 'lost') });
    const v1 = (await api.call('GET', '/profiles/lost')).body.version;
    await s3.send(new DeleteObjectCommand({ Bucket: LOCAL_BUCKET, Key: v1.bodyKey }));
    const res = await api.call('GET', '/profiles/lost');
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ code: 'CORRUPT' });
    expect(res.body.detail).toMatch(/^profile lost version 1 is damaged: .* is missing/);
  });
});
