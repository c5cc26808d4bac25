// The OpenAPI 3.1 document of the v1 API, generated from the route table and the same zod
// schemas the handlers validate with. OpenAPI 3.1 speaks JSON Schema 2020-12, which is what
// zod emits, so components need no translation. Each operation is built from its route's
// declaration alone (core/api/routes.ts): a route added there is described with its parameters,
// body, success responses and problems without a line here.
import * as z from 'zod';
import { CloneRequest } from '../clone/request.js';
import { Delta } from '../delta/changes.js';
import { HostRegistration } from '../host/schema.js';
import { IDEMPOTENCY_KEY_TTL_SECONDS } from '../operation/idempotency.js';
import { Operation } from '../operation/schema.js';
import { AgentAssignment, AgentReport } from '../persona/agent/assignment.js';
import { MetricReport, Signal } from '../persona/schema.js';
import { Profile } from '../profile/schema.js';
import { PROBLEM_MEDIA_TYPE } from './problems.js';
import { type ProblemStatus, type Reply, ROUTES, type Route } from './routes.js';
import * as schemas from './schemas.js';

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** Every schema that has an id, as OpenAPI components. */
function components(): Record<string, unknown> {
  // Bodies and responses name their schemas by id; touching the modules that declare them
  // registers the ids before the walk (schemas.ts is imported whole, below).
  void [
    AgentAssignment,
    AgentReport,
    MetricReport,
    Profile,
    HostRegistration,
    Operation,
    Delta,
    CloneRequest,
    Signal,
    schemas.ProblemSchema,
  ];
  const { schemas: all } = z.toJSONSchema(z.globalRegistry, {
    uri: (id) => `#/components/schemas/${id}`,
    io: 'input',
    unrepresentable: 'any',
  }) as { schemas: Record<string, Record<string, unknown>> };
  const out: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(all)) {
    const { $schema: _schema, $id: _id, ...rest } = schema;
    out[id] = rest;
  }
  return out;
}

/** A field's JSON Schema as a parameter carries it: no `$schema`, its description lifted out. */
function parameterSchema(field: z.ZodType, io: 'input' | 'output') {
  const {
    $schema: _s,
    description,
    ...schema
  } = z.toJSONSchema(field, {
    io,
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return { schema, description: description as string | undefined };
}

const described = (description: string | undefined) => (description === undefined ? {} : { description });

/** The `{param}` names of a route's path, in order. */
export const pathParameterNames = (path: string): string[] =>
  [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);

function pathParameters(route: Route) {
  const shape = route.params ? (schemas[route.params] as z.ZodObject).shape : {};
  return pathParameterNames(route.path).map((name) => {
    const field = shape[name] as z.ZodType | undefined;
    // Path parameters are strings on the wire; the schema says what they must read as (a
    // version is an integer), which is what the handler checks after coercion.
    const { schema, description } = field ? parameterSchema(field, 'output') : { schema: { type: 'string' } };
    return { name, in: 'path', required: true, ...described(description), schema };
  });
}

function queryParameters(route: Route) {
  if (!route.query) return [];
  return Object.entries((schemas[route.query] as z.ZodObject).shape).map(([name, field]) => {
    const { schema, description } = parameterSchema(field as z.ZodType, 'output');
    return {
      name,
      in: 'query',
      required: !(field as z.ZodType).safeParse(undefined).success,
      ...described(description),
      schema,
    };
  });
}

function headerParameters(route: Route) {
  const out: Record<string, unknown>[] = [];
  if (route.idempotencyKey !== undefined) {
    out.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description: `${route.idempotencyKey}. The same key with the same request answers the first request's result; with another route, host or body it is refused (422). Keys expire after ${IDEMPOTENCY_KEY_TTL_SECONDS / 3600} hours.`,
      schema: parameterSchema(schemas.IdempotencyKeyHeader, 'input').schema,
    });
  }
  if (route.ifMatch) {
    out.push({
      name: 'If-Match',
      in: 'header',
      required: route.ifMatch.required,
      description: route.ifMatch.description,
      schema: { type: 'string', examples: ['"3"'] },
    });
  }
  return out;
}

const HEADERS = {
  ETag: { description: 'The version, quoted: send it back as If-Match', schema: { type: 'string' } },
  Location: { description: 'Where the resource (or the operation) is', schema: { type: 'string' } },
} as const;

function successResponse(reply: Reply) {
  const headers =
    reply.headers && reply.headers.length > 0
      ? { headers: Object.fromEntries(reply.headers.map((h) => [h, { $ref: `#/components/headers/${h}` }])) }
      : {};
  if (reply.schema === undefined) return { description: reply.description, ...headers };
  const schema = reply.schema === '*' ? { type: 'object' } : ref(reply.schema);
  return {
    description: reply.description,
    ...headers,
    content: {
      'application/json': { schema },
      ...(reply.text ? { 'text/plain': { schema: { type: 'string' } } } : {}),
    },
  };
}

/** The problem responses, by status: what each means at this API. */
const PROBLEM_RESPONSES: Readonly<Record<ProblemStatus | 429, { name: string; description: string }>> = {
  400: { name: 'BadRequest', description: 'The request is not valid: `issues` names each field' },
  401: { name: 'Unauthorized', description: 'No valid agent credential' },
  403: {
    name: 'Forbidden',
    description:
      'Refused: IAM denied the signature (API Gateway: code ACCESS_DENIED, MISSING_AUTHENTICATION_TOKEN, INVALID_SIGNATURE), or the caller acts beyond its scope',
  },
  404: { name: 'NotFound', description: 'No such resource: `detail` names it' },
  409: { name: 'Conflict', description: 'The state does not allow it (`current`: the latest version)' },
  413: { name: 'ContentTooLarge', description: 'The body is over its limit' },
  415: { name: 'UnsupportedMediaType', description: 'The body is not a JSON or YAML document (UTF-8)' },
  422: {
    name: 'IdempotencyKeyReused',
    description:
      'The Idempotency-Key was first sent with another request (another route, host or body): code IDEMPOTENCY_KEY_REUSED',
  },
  428: { name: 'PreconditionRequired', description: 'The write must say which version it read (If-Match)' },
  429: {
    name: 'TooManyRequests',
    description: 'Throttled by API Gateway (THROTTLED, QUOTA_EXCEEDED): retry later',
  },
  502: {
    name: 'BadGateway',
    description:
      'What the function depends on failed: CORRUPT (stored data fails its hash) or TRANSPORT (a host)',
  },
};

const problemContent = { [PROBLEM_MEDIA_TYPE]: { schema: ref('Problem') } };

function problemComponents() {
  const out: Record<string, unknown> = {};
  for (const { name, description } of Object.values(PROBLEM_RESPONSES))
    out[name] = { description, content: problemContent };
  out.Problem = {
    description:
      'Any other error, as a problem: a 5xx is the service failing (INTERNAL, INTEGRATION_TIMEOUT)',
    content: problemContent,
  };
  return out;
}

/**
 * The problems a route can answer: its own, and those of the edge in front of every function
 * (parameters, bodies, authorisation, keys, throttling).
 */
export function problemStatuses(route: Route): (ProblemStatus | 429)[] {
  const statuses = new Set<ProblemStatus | 429>(route.problems ?? []);
  // Any route: a malformed percent-encoding or query, refused before the function runs.
  statuses.add(400);
  statuses.add(403);
  statuses.add(429);
  if (route.auth === 'agent') statuses.add(401);
  if (route.body) {
    statuses.add(413);
    statuses.add(415);
  }
  if (route.idempotencyKey !== undefined) statuses.add(422);
  return [...statuses].sort((a, b) => a - b);
}

const TAGS: Readonly<Record<string, string>> = {
  profiles: 'Profiles: versioned descriptions of hosts, and their diffs',
  personas: 'Personas: parameter sets a host takes on when their criteria hold',
  hosts: 'Registered hosts: capture, snapshots, personas and agents',
  operations: 'Operations: captures, clones and switches, their steps and results',
  pools: 'Bare-metal pools: the machines clones take',
  metrics: "Hosts' agents: metric reports",
  signals: 'External signals that personas name',
  'openapi.json': 'This document',
};

const tagOf = (route: Route) => route.path.split('/')[1] ?? '';

/** The operation object of one route, from its declaration alone. */
export function operation(route: Route) {
  const parameters = [...pathParameters(route), ...queryParameters(route), ...headerParameters(route)];
  const body = route.body;
  const ok = Object.entries(route.ok) as [string, Reply][];
  return {
    operationId: route.handler.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
    summary: route.summary,
    tags: [tagOf(route)],
    // Agent routes take the host agent's own credential (the agent authoriser); every other
    // route the document's default, a SigV4 signature.
    ...(route.auth === 'agent' ? { security: [{ agentCredential: [] }] } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(body
      ? {
          requestBody: {
            required: body.required,
            ...described(body.description),
            content: {
              'application/json': { schema: ref(body.schema) },
              ...(body.yaml ? { 'application/yaml': { schema: ref(body.schema) } } : {}),
            },
          },
        }
      : {}),
    responses: {
      ...Object.fromEntries(ok.map(([status, reply]) => [status, successResponse(reply)])),
      ...Object.fromEntries(
        problemStatuses(route).map((s) => [
          String(s),
          { $ref: `#/components/responses/${PROBLEM_RESPONSES[s].name}` },
        ]),
      ),
      default: { $ref: '#/components/responses/Problem' },
    },
  };
}

/** The `#/components/schemas/<id>` ids a value refers to, at any depth. */
function schemaRefs(node: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(node)) for (const n of node) schemaRefs(n, out);
  else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/'))
        out.add(v.slice('#/components/schemas/'.length));
      else schemaRefs(v, out);
    }
  }
  return out;
}

/**
 * The schemas the operations use, and those they use in turn: the registry also holds schemas of
 * files no route takes (a target profile of the morph catalogue), which would be dead weight here.
 */
function reachable(all: Record<string, unknown>, roots: unknown): Record<string, unknown> {
  const seen = new Set<string>();
  let next = [...schemaRefs(roots, new Set())];
  while (next.length > 0) {
    const id = next.pop() as string;
    if (seen.has(id) || !(id in all)) continue;
    seen.add(id);
    next = [...next, ...schemaRefs(all[id], new Set())];
  }
  return Object.fromEntries(Object.entries(all).filter(([id]) => seen.has(id)));
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES as readonly Route[]) {
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] = operation(route);
  }
  const tags = [...new Set((ROUTES as readonly Route[]).map(tagOf))].map((name) => ({
    name,
    description: TAGS[name] ?? `Routes under /${name}`,
  }));
  return {
    openapi: '3.1.0',
    info: {
      title: 'Persona API',
      version: '1',
      summary: 'Capture, version, diff and reproduce hosts',
      description:
        "Profiles of hosts with versions and diffs, captures, clones and personas. In AWS every route is authorised with IAM (SigV4), but for the routes of hosts' agents, which take the agent's own credential. Every error is an RFC 9457 problem (application/problem+json) with a stable `code`, from the functions and from API Gateway alike.",
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [
      {
        url: 'https://{restApiId}.execute-api.{region}.amazonaws.com/{stage}',
        description: 'A deployed stage (API Gateway)',
        variables: {
          restApiId: { default: 'restApiId', description: 'The REST API id (the stack output)' },
          region: { default: 'eu-west-1' },
          stage: { default: 'v1' },
        },
      },
      {
        url: 'http://127.0.0.1:{port}',
        description: 'The embedded runtime (npm start)',
        variables: { port: { default: '8080' } },
      },
    ],
    security: [{ sigv4: [] }],
    tags,
    paths,
    components: {
      schemas: reachable(components(), [paths, problemComponents()]),
      responses: problemComponents(),
      headers: HEADERS,
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description:
            'AWS Signature Version 4 (IAM): sign for service execute-api in the region of the endpoint; the caller needs execute-api:Invoke on the route',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
        agentCredential: {
          type: 'http',
          scheme: 'bearer',
          description:
            "A host agent's own credential (issued at install, scoped to its host, revocable), checked by the agent authoriser",
        },
      },
    },
  };
}
