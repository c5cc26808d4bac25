// The body middlewares every API function shares, through middy as a function runs them: a JSON
// body that fails its schema is refused with the line and column the YAML route gives (now found
// without it), a YAML body is still read, and duplicate keys are still refused by name.
import { readFileSync } from 'node:fs';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import * as z from 'zod';
import { parseYamlText } from '../../core/profile/yaml-text.js';
import { type ApiEvent, apiErrors, jsonBody, profileBody } from '../../functions/shared/http.js';
import { type PersonaEvent, personaBody } from '../../functions/shared/persona-http.js';

const Registration = z.strictObject({
  name: z.string(),
  tags: z.array(z.strictObject({ key: z.string(), value: z.string() })).default([]),
  labels: z.record(z.string(), z.string()).default({}),
});

type Read = { readonly name?: string; readonly tags?: unknown[] };

const echo = async (event: ApiEvent & { parsedBody?: Read }): Promise<APIGatewayProxyResult> => ({
  statusCode: 200,
  body: JSON.stringify(
    event.parsedBody ?? event.profile?.metadata ?? (event as PersonaEvent).persona?.metadata,
  ),
});

const registration = middy(echo).use(jsonBody(Registration)).use(apiErrors());
const profile = middy(echo).use(profileBody()).use(apiErrors());
const persona = middy(echo as never)
  .use(personaBody())
  .use(apiErrors());

function request(body: string, type = 'application/json'): APIGatewayProxyEvent {
  return {
    body,
    headers: { 'Content-Type': type },
    isBase64Encoded: false,
    httpMethod: 'POST',
    path: '/',
    pathParameters: null,
    queryStringParameters: null,
    multiValueHeaders: {},
    multiValueQueryStringParameters: null,
    stageVariables: null,
    resource: '/',
    requestContext: {} as APIGatewayProxyEvent['requestContext'],
  };
}

const context = { awsRequestId: 'test' } as Context;

type Handler = (event: never, context: Context) => Promise<APIGatewayProxyResult>;

async function call(fn: Handler, body: string, type?: string) {
  const res = await fn(request(body, type) as never, context);
  return { status: res.statusCode, body: JSON.parse(res.body) };
}

/** The positions the YAML route gives each issue's path, as bodies were positioned before. */
function yamlPositions(body: string, issues: { path: string }[], paths: PropertyKey[][]) {
  const locate = parseYamlText(body, {}).locate;
  return issues.map((issue, i) => ({ ...issue, ...locate(paths[i] as PropertyKey[]) }));
}

describe('jsonBody', () => {
  it('refuses a JSON body that fails its schema, each issue at the line and column the YAML route gives', async () => {
    const body = JSON.stringify(
      { name: 7, tags: [{ key: 'a', value: 'b' }, { key: 'c' }], labels: { 'te"am\\': 1 }, extra: true },
      null,
      2,
    );
    const res = await call(registration, body);
    expect(res.status).toBe(400);
    const issues = res.body.issues as { path: string; line: number; column: number }[];
    expect(issues.map((i) => i.path)).toEqual(['name', 'tags[1].value', 'labels["te\\"am\\\\"]', 'extra']);
    expect(issues).toEqual(
      yamlPositions(body, issues, [['name'], ['tags', 1, 'value'], ['labels', 'te"am\\'], ['extra']]),
    );
    // A missing field is at the map that lacks it.
    expect(issues[1]).toMatchObject({ line: 8, column: 5 });
  });

  it('reads a YAML body as it reads JSON', async () => {
    const res = await call(
      registration,
      'name: web-1\ntags:\n  - { key: role, value: web }\n',
      'application/yaml',
    );
    expect(res).toEqual({
      status: 200,
      body: { name: 'web-1', tags: [{ key: 'role', value: 'web' }], labels: {} },
    });
  });

  it('refuses a JSON body with a duplicate key, naming the key and where it is', async () => {
    const res = await call(registration, '{\n  "name": "a",\n  "name": "b"\n}');
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([
      { path: 'name', message: 'duplicate key "name" (first at line 2)', line: 3, column: 3 },
    ]);
  });
});

describe('profileBody and personaBody', () => {
  const web = parse(readFileSync('examples/web.yaml', 'utf8'));

  it('reads a profile in YAML or JSON, and positions a JSON profile that fails validation', async () => {
    const yaml = await call(profile, readFileSync('examples/web.yaml', 'utf8'), 'application/yaml');
    expect(yaml).toMatchObject({ status: 200, body: { name: 'web' } });
    const broken = structuredClone(web);
    broken.spec.packages[2].version = 1;
    delete broken.spec.os.arch;
    const body = JSON.stringify(broken, null, 2);
    const res = await call(profile, body);
    expect(res.status).toBe(400);
    const issues = res.body.issues as { path: string }[];
    expect(issues.map((i) => i.path)).toEqual(['spec.os.arch', 'spec.packages[2].version']);
    expect(issues).toEqual(
      yamlPositions(body, issues, [
        ['spec', 'os', 'arch'],
        ['spec', 'packages', 2, 'version'],
      ]),
    );
  });

  it('reads a persona in YAML or JSON, and refuses one with a duplicate key by name', async () => {
    // The first persona of the example file (a file of several, separated by ---).
    const [text = ''] = readFileSync('examples/personas/web.yaml', 'utf8').split(/^---$/m);
    expect(await call(persona, text, 'application/yaml')).toMatchObject({ status: 200 });
    const json = JSON.stringify(parse(text));
    expect(await call(persona, json)).toMatchObject({ status: 200 });
    const twice = json.replace('"metadata":{', '"metadata":{"name":"x",');
    const res = await call(persona, twice);
    expect(res.status).toBe(400);
    expect(res.body.issues).toContainEqual(
      expect.objectContaining({
        path: 'metadata.name',
        message: expect.stringMatching(/^duplicate key "name"/),
      }),
    );
  });
});
