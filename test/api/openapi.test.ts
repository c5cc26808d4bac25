import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { z } from 'zod';
import { openApiDocument, operation, pathParameterNames, problemStatuses } from '../../core/api/openapi.js';
import { ROUTES, type Route } from '../../core/api/routes.js';
import * as schemas from '../../core/api/schemas.js';

type Json = Record<string, any>;
const doc = openApiDocument() as Json;
const routes = ROUTES as readonly Route[];

/** Follows a local `$ref` (`#/components/...`) to what it names. */
function resolve(node: Json): Json {
  if (typeof node.$ref !== 'string') return node;
  const target = (node.$ref as string)
    .replace(/^#\//, '')
    .split('/')
    .reduce<Json | undefined>((at, key) => at?.[key], doc);
  if (target === undefined) throw new Error(`unresolved ${node.$ref}`);
  return resolve(target);
}

function refsIn(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) refsIn(n, out);
  else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refsIn(v, out);
    }
  }
  return out;
}

const operationOf = (route: Route): Json => doc.paths[route.path][route.method.toLowerCase()];

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document, and each of its schemas a valid JSON Schema 2020-12', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    ajv.addFormat('media-range', true);
    // Schema Objects are `$dynamicRef: '#meta'`, which Ajv resolves to the enclosing object
    // instead of the anchor; pointed at the anchor's definition itself, the schema says the same
    // (an object or a boolean), and each Schema Object is checked against 2020-12 below.
    const oas = parse(
      readFileSync(join(import.meta.dirname, 'oas-3.1.schema.yaml'), 'utf8').replaceAll(
        "$dynamicRef: '#meta'",
        "$ref: '#/$defs/schema'",
      ),
    );
    const validate = ajv.compile(oas);
    expect(validate(doc), JSON.stringify(validate.errors?.slice(0, 5), null, 1)).toBe(true);

    // The components as one schema resource, so that their $refs to each other resolve.
    ajv.addSchema({ $id: 'https://persona.invalid/openapi', components: doc.components });
    for (const id of Object.keys(doc.components.schemas)) {
      expect(ajv.validateSchema(doc.components.schemas[id]), id).toBe(true);
      expect(
        () => ajv.compile({ $ref: `https://persona.invalid/openapi#/components/schemas/${id}` }),
        id,
      ).not.toThrow();
    }
  });

  it('resolves every $ref it makes, and has no schema it does not use', () => {
    const refs = new Set(refsIn(doc));
    expect(refs.size).toBeGreaterThan(20);
    for (const r of refs) expect(() => resolve({ $ref: r }), r).not.toThrow();
    // And carries no schema nothing refers to (the registry holds schemas of files too).
    for (const id of Object.keys(doc.components.schemas))
      expect(refs.has(`#/components/schemas/${id}`), `${id} is used`).toBe(true);
  });

  it('describes every declared route with its path parameters, success statuses, problems and headers', () => {
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      const op = operationOf(route);
      expect(op, name).toBeDefined();
      expect(op.operationId, name).toMatch(/^[a-z][A-Za-z0-9]+$/);
      expect(op.summary, name).toBe(route.summary);
      expect(op.tags, name).toHaveLength(1);

      const params: Json[] = (op.parameters ?? []).map(resolve);
      const inPath = pathParameterNames(route.path);
      expect(
        params.filter((p) => p.in === 'path').map((p) => p.name),
        name,
      ).toEqual(inPath);
      for (const p of params.filter((p) => p.in === 'path'))
        expect(p.required, `${name} ${p.name}`).toBe(true);
      // The declared schema is the one the handler validates with: it names every {param}.
      if (inPath.length > 0) {
        expect(route.params, `${name} declares its params`).toBeDefined();
        const keys = Object.keys((schemas[route.params as keyof typeof schemas] as z.ZodObject).shape);
        expect(keys.sort(), name).toEqual([...inPath].sort());
      }
      if (route.query) {
        const keys = Object.keys((schemas[route.query as keyof typeof schemas] as z.ZodObject).shape);
        expect(
          params.filter((p) => p.in === 'query').map((p) => p.name),
          name,
        ).toEqual(keys);
      }
      const headerNames = params.filter((p) => p.in === 'header').map((p) => p.name);
      expect(headerNames.includes('Idempotency-Key'), `${name} Idempotency-Key`).toBe(
        route.idempotencyKey !== undefined,
      );
      expect(headerNames.includes('If-Match'), `${name} If-Match`).toBe(route.ifMatch !== undefined);
      expect(op.requestBody !== undefined, `${name} body`).toBe(route.body !== undefined);

      const statuses = Object.keys(op.responses);
      const ok = Object.keys(route.ok);
      expect(ok.length, `${name} declares its success`).toBeGreaterThan(0);
      expect(
        statuses.filter((s) => /^[23]/.test(s)),
        name,
      ).toEqual(ok);
      for (const [status, reply] of Object.entries(route.ok)) {
        const response = resolve(op.responses[status]);
        for (const h of reply?.headers ?? [])
          expect(response.headers?.[h], `${name} ${status} ${h}`).toBeDefined();
        if (reply?.schema !== undefined)
          expect(response.content['application/json'].schema, `${name} ${status}`).toBeDefined();
      }

      const problems = [...(route.problems ?? []), 400, 403, 429];
      if (route.body) problems.push(413, 415);
      if (route.idempotencyKey !== undefined) problems.push(422);
      if (route.auth === 'agent') problems.push(401);
      for (const status of [...problems.map(String), 'default']) {
        expect(op.responses[status], `${name} ${status}`).toBeDefined();
        const response = resolve(op.responses[status]);
        expect(resolve(response.content['application/problem+json'].schema), `${name} ${status}`).toBe(
          doc.components.schemas.Problem,
        );
      }
      for (const status of statuses.filter((s) => /^[45]/.test(s)))
        expect(problems.map(String), `${name} answers ${status} undeclared`).toContain(status);
    }
  });

  it('describes POST /hosts/{host}/capture as it behaves, not as this document', () => {
    const op = doc.paths['/hosts/{host}/capture'].post;
    expect(op.parameters.map((p: Json) => [p.name, p.in])).toEqual([
      ['host', 'path'],
      ['Idempotency-Key', 'header'],
    ]);
    expect(op.parameters[0].schema.pattern).toBeDefined();
    expect(Object.keys(op.responses)).toEqual([
      '202',
      '400',
      '403',
      '404',
      '413',
      '415',
      '422',
      '429',
      'default',
    ]);
    expect(resolve(op.responses['202']).headers.Location).toBeDefined();
    expect(resolve(op.responses['202']).content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Operation',
    });
    expect(op.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/CaptureRequest',
    });
    expect(JSON.stringify(doc.paths)).not.toContain('This document"');
  });

  it('describes a route it has never seen from its declaration alone', () => {
    const forecast: Route = {
      method: 'POST',
      path: '/hosts/{host}/forecasts/{window}',
      handler: 'start-forecast',
      summary: 'Forecast a host',
      params: 'HostParams',
      idempotencyKey: 'Names the forecast',
      body: { schema: 'CaptureRequest', required: true },
      ok: { 202: { description: 'Started', schema: 'Operation', headers: ['Location'] } },
      problems: [404],
    };
    const op = operation(forecast) as Json;
    expect(op.operationId).toBe('startForecast');
    expect(op.parameters.map((p: Json) => p.name)).toEqual(['host', 'window', 'Idempotency-Key']);
    // A parameter its schema does not name is still described, as a string.
    expect(op.parameters[1].schema).toEqual({ type: 'string' });
    expect(Object.keys(op.responses)).toEqual([
      '202',
      '400',
      '403',
      '404',
      '413',
      '415',
      '422',
      '429',
      'default',
    ]);
    const { body: _b, idempotencyKey: _k, ...read } = forecast;
    expect(problemStatuses(read)).toEqual([400, 403, 404, 429]);
  });

  it('gives every problem its code: the Problem schema requires it and lists the gateway codes', () => {
    const problem = doc.components.schemas.Problem;
    expect(problem.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail', 'code']));
    expect(problem.properties.code.enum).toEqual(
      expect.arrayContaining([
        'INVALID_INPUT',
        'IDEMPOTENCY_KEY_REUSED',
        'INTERNAL',
        'THROTTLED',
        'ACCESS_DENIED',
      ]),
    );
  });

  it('describes its security: SigV4 for every route but the agents, which take their own credential', () => {
    expect(doc.security).toEqual([{ sigv4: [] }]);
    expect(doc.components.securitySchemes.sigv4).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'Authorization',
      'x-amazon-apigateway-authtype': 'awsSigv4',
    });
    expect(doc.components.securitySchemes.agentCredential).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const route of routes) {
      const op = operationOf(route);
      if (route.auth === 'agent') expect(op.security, route.path).toEqual([{ agentCredential: [] }]);
      else expect(op.security, route.path).toBeUndefined();
    }
  });

  it("passes redocly lint's recommended ruleset with no error", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'persona-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(doc));
      const run = await promisify(execFile)(
        join(import.meta.dirname, '../../node_modules/.bin/redocly'),
        ['lint', '--extends=recommended', '--format=stylish', file],
        // Redocly reports usage to its servers unless told not to: nothing leaves this machine.
        { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
      ).catch((e: { stdout: string; stderr: string; code: number }) => e);
      expect('code' in run ? run.code : 0, `${run.stdout}${run.stderr}`).toBe(0);
      expect(run.stdout + run.stderr).toMatch(/valid/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
