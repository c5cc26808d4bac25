// The OpenAPI 3.1 document of the v1 API, generated from the route table and the same zod
// schemas the handlers validate with. OpenAPI 3.1 speaks JSON Schema 2020-12, which is what
// zod emits, so components need no translation.
import * as z from 'zod';
import { CloneRequest } from '../clone/request.js';
import { Delta } from '../delta/changes.js';
import { HostRegistration } from '../host/schema.js';
import { Operation } from '../operation/schema.js';
import { AgentAssignment, AgentReport } from '../persona/agent/assignment.js';
import { MetricReport, PersonaMetadata, Signal } from '../persona/schema.js';
import { Profile, ProfileMetadata } from '../profile/schema.js';
import { ROUTES, type Route } from './routes.js';
import {
  ActivateRequest,
  ActivationResponse,
  AddMachineRequest,
  AgentInstallRequest,
  AgentInstallResult,
  AgentRevokeResult,
  DiffQuery,
  HostList,
  HostParams,
  HostPersonaResponse,
  MachineList,
  OperationList,
  OperationQuery,
  PageQuery,
  PersonaList,
  PersonaVersionList,
  PersonaWriteResponse,
  ProblemSchema,
  ProfileList,
  SignalAccepted,
  SnapshotList,
  VersionedPersonaResponse,
  VersionedProfileResponse,
  VersionList,
  WriteResponse,
} from './schemas.js';

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** Every schema that has an id, as OpenAPI components. */
function components(): Record<string, unknown> {
  void [
    AgentAssignment,
    AgentReport,
    MetricReport,
    AgentInstallRequest,
    AgentInstallResult,
    AgentRevokeResult,
  ];
  // Touch the response schemas so that their ids are registered before the walk.
  void [
    Profile,
    HostRegistration,
    HostList,
    Operation,
    Delta,
    ProblemSchema,
    ProfileList,
    VersionList,
    VersionedProfileResponse,
    WriteResponse,
    SnapshotList,
    CloneRequest,
    OperationList,
    AddMachineRequest,
    MachineList,
    PersonaWriteResponse,
    VersionedPersonaResponse,
    PersonaList,
    PersonaVersionList,
    ActivateRequest,
    ActivationResponse,
    HostPersonaResponse,
    Signal,
    SignalAccepted,
  ];
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    uri: (id) => `#/components/schemas/${id}`,
    io: 'input',
    unrepresentable: 'any',
  }) as { schemas: Record<string, Record<string, unknown>> };
  const out: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _schema, $id: _id, ...rest } = schema;
    out[id] = rest;
  }
  return out;
}

function nameSchema() {
  const { $schema: _s, ...rest } = z.toJSONSchema(ProfileMetadata.shape.name) as Record<string, unknown>;
  return rest;
}

function personaNameSchema() {
  const { $schema: _s, ...rest } = z.toJSONSchema(PersonaMetadata.shape.name) as Record<string, unknown>;
  return rest;
}

function hostSchema() {
  const { $schema: _s, ...rest } = z.toJSONSchema(HostParams.shape.host) as Record<string, unknown>;
  return rest;
}

function queryParameters(schema: z.ZodObject) {
  return Object.entries(schema.shape).map(([name, field]) => {
    const json = z.toJSONSchema(field as z.ZodType, { io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    const { $schema: _s, description, ...rest } = json;
    return {
      name,
      in: 'query',
      required: !(field as z.ZodType).safeParse(undefined).success,
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

const problems = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((s) => [
      String(s),
      { description: 'Problem', content: { 'application/problem+json': { schema: ref('Problem') } } },
    ]),
  );

const ok = (status: number, id: string, description: string) => ({
  [String(status)]: { description, content: { 'application/json': { schema: ref(id) } } },
});

const profileBody = {
  required: true,
  description: 'A profile document (apiVersion persona/v1), as JSON or YAML',
  content: { 'application/json': { schema: ref('Profile') }, 'application/yaml': { schema: ref('Profile') } },
};

const personaBody = {
  required: true,
  description: 'A persona document (apiVersion persona/v1, kind Persona), as JSON or YAML',
  content: { 'application/json': { schema: ref('Persona') }, 'application/yaml': { schema: ref('Persona') } },
};

const etagHeader = {
  description: 'The version, quoted: send it back as If-Match',
  schema: { type: 'string' },
};

const ifMatch = (description: string, required: boolean) => ({
  name: 'If-Match',
  in: 'header',
  required,
  description,
  schema: { type: 'string' },
});

function operation(route: Route) {
  const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema:
      m[1] === 'version'
        ? { type: 'integer', minimum: 1 }
        : m[1] === 'host'
          ? hostSchema()
          : m[1] === 'id' || m[1] === 'pool'
            ? { type: 'string' }
            : m[1] === 'document'
              ? { type: 'string', enum: ['plan', 'report', 'rollback'] }
              : nameSchema(),
  }));
  // Persona names are their own grammar (at most 128 characters).
  const personaParams = pathParams.map((p) =>
    p.name === 'name' && route.path.startsWith('/personas') ? { ...p, schema: personaNameSchema() } : p,
  );
  const base = {
    operationId: route.handler.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
    summary: route.summary,
    // Agent routes take the host agent's bearer credential (the agent authoriser); every
    // other route a SigV4 signature.
    ...(route.auth === 'agent'
      ? { security: [{ agentCredential: [] }] }
      : { 'x-amazon-apigateway-auth': { type: 'AWS_IAM' } }),
  };
  switch (route.handler) {
    case 'create-profile':
      return {
        ...base,
        requestBody: profileBody,
        responses: {
          ...ok(201, 'WriteResult', 'Created at version 1'),
          ...ok(200, 'WriteResult', 'The same document already exists; nothing written'),
          ...problems(400, 409, 413, 415),
        },
      };
    case 'put-profile':
      return {
        ...base,
        parameters: [
          ...pathParams,
          {
            name: 'If-Match',
            in: 'header',
            required: true,
            description: 'The version this write replaces, as returned in ETag ("0" for a new profile)',
            schema: { type: 'string' },
          },
        ],
        requestBody: profileBody,
        responses: {
          ...ok(201, 'WriteResult', 'A new version was written'),
          ...ok(200, 'WriteResult', 'Equal to the latest version; nothing written'),
          ...problems(400, 409, 413, 415, 428),
        },
      };
    case 'list-profiles':
      return {
        ...base,
        parameters: queryParameters(PageQuery),
        responses: { ...ok(200, 'ProfileList', 'A page'), ...problems(400) },
      };
    case 'list-versions':
      return {
        ...base,
        parameters: [...pathParams, ...queryParameters(PageQuery)],
        responses: { ...ok(200, 'VersionList', 'A page, newest first'), ...problems(400, 404) },
      };
    case 'get-profile':
    case 'get-version':
      return {
        ...base,
        parameters: pathParams,
        responses: {
          ...ok(200, 'VersionedProfile', 'The profile and its version record'),
          // 502 CORRUPT: the stored document does not match the hash recorded for the version.
          ...problems(400, 404, 502),
        },
      };
    case 'register-host':
      return {
        ...base,
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('HostRegistration') } },
        },
        responses: {
          ...ok(201, 'HostRecord', 'Registered'),
          ...ok(200, 'HostRecord', 'Already registered with the same settings'),
          ...problems(400, 409, 413, 415),
        },
      };
    case 'list-hosts':
      return {
        ...base,
        parameters: queryParameters(PageQuery),
        responses: { ...ok(200, 'HostList', 'A page'), ...problems(400) },
      };
    case 'get-host':
      return {
        ...base,
        parameters: pathParams,
        responses: { ...ok(200, 'HostRecord', 'The host'), ...problems(400, 404) },
      };
    case 'get-operation':
      return {
        ...base,
        parameters: pathParams.map((p) => ({ ...p, schema: { type: 'string' } })),
        responses: { ...ok(200, 'Operation', 'The operation'), ...problems(400, 404) },
      };
    case 'list-operations':
      return {
        ...base,
        parameters: queryParameters(OperationQuery),
        responses: { ...ok(200, 'OperationList', 'A page, newest first'), ...problems(400) },
      };
    case 'start-clone':
      return {
        ...base,
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description: 'Names the operation: a retried request finds the clone it started',
            schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,80}$' },
          },
        ],
        requestBody: { required: true, content: { 'application/json': { schema: ref('CloneRequest') } } },
        responses: {
          '202': {
            description: 'Started; follow it at the Location',
            headers: { Location: { schema: { type: 'string' } } },
            content: { 'application/json': { schema: ref('Operation') } },
          },
          ...problems(400, 404, 409, 413, 415),
        },
      };
    case 'cancel-operation':
      return {
        ...base,
        parameters: pathParams,
        responses: {
          ...ok(202, 'Operation', 'Asked to stop; it rolls back at its next step'),
          ...ok(200, 'Operation', 'It had ended already'),
          ...problems(400, 404),
        },
      };
    case 'get-operation-document':
      return {
        ...base,
        parameters: pathParams,
        responses: {
          '200': {
            description: 'The plan, validation report or rollback record',
            content: { 'application/json': {} },
          },
          ...problems(400, 404),
        },
      };
    case 'add-machine':
      return {
        ...base,
        parameters: pathParams,
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('AddMachineRequest') } },
        },
        responses: { ...ok(201, 'Machine', 'Added, free'), ...problems(400, 404, 409) },
      };
    case 'list-machines':
      return {
        ...base,
        parameters: pathParams,
        responses: { ...ok(200, 'MachineList', 'The machines of the pool'), ...problems(400) },
      };
    case 'list-snapshots':
      return {
        ...base,
        parameters: pathParams,
        responses: { ...ok(200, 'SnapshotList', 'Snapshot records, oldest first'), ...problems(400) },
      };
    case 'get-snapshot':
      return {
        ...base,
        parameters: pathParams,
        responses: { ...ok(200, 'SnapshotRecord', 'The record'), ...problems(400, 404) },
      };
    case 'post-signal':
      return {
        ...base,
        requestBody: {
          required: true,
          description: 'The signal; it replaces the previous value of its name',
          content: {
            'application/json': { schema: ref('Signal') },
            'application/yaml': { schema: ref('Signal') },
          },
        },
        responses: {
          ...ok(202, 'SignalAccepted', 'Stored; the hosts whose personas name it were evaluated'),
          ...problems(400, 413, 415),
        },
      };
    case 'diff-profiles':
      return {
        ...base,
        parameters: [...pathParams, ...queryParameters(DiffQuery)],
        responses: { ...ok(200, 'Delta', 'The ordered Changes'), ...problems(400, 404, 502) },
      };
    case 'create-persona':
      return {
        ...base,
        requestBody: personaBody,
        responses: {
          '201': {
            description: 'Created at version 1',
            headers: { ETag: etagHeader, Location: { schema: { type: 'string' } } },
            content: { 'application/json': { schema: ref('PersonaWriteResult') } },
          },
          '200': {
            description: 'The same document already exists; nothing written',
            headers: { ETag: etagHeader, Location: { schema: { type: 'string' } } },
            content: { 'application/json': { schema: ref('PersonaWriteResult') } },
          },
          // 400 names the field (criteria nested past MAX_CRITERIA_DEPTH among them).
          ...problems(400, 409, 413, 415),
        },
      };
    case 'put-persona':
      return {
        ...base,
        parameters: [
          ...personaParams,
          ifMatch('The version this write replaces, as returned in ETag ("0" for a new persona)', true),
        ],
        requestBody: personaBody,
        responses: {
          '201': {
            description: 'A new version was written',
            headers: { ETag: etagHeader },
            content: { 'application/json': { schema: ref('PersonaWriteResult') } },
          },
          '200': {
            description: 'Equal to the latest version; nothing written',
            headers: { ETag: etagHeader },
            content: { 'application/json': { schema: ref('PersonaWriteResult') } },
          },
          // 409: If-Match is not the latest version (`current` says which is).
          ...problems(400, 409, 413, 415, 428),
        },
      };
    case 'get-persona':
    case 'get-persona-version':
      return {
        ...base,
        parameters: personaParams,
        responses: {
          '200': {
            description: 'The persona and its version record',
            headers: { ETag: etagHeader },
            content: { 'application/json': { schema: ref('VersionedPersona') } },
          },
          // 502 CORRUPT: the stored document does not match the hash recorded for the version.
          ...problems(400, 404, 502),
        },
      };
    case 'list-personas':
      return {
        ...base,
        parameters: queryParameters(PageQuery),
        responses: { ...ok(200, 'PersonaList', 'A page, by name'), ...problems(400) },
      };
    case 'list-persona-versions':
      return {
        ...base,
        parameters: [...personaParams, ...queryParameters(PageQuery)],
        responses: { ...ok(200, 'PersonaVersionList', 'A page, newest first'), ...problems(400, 404) },
      };
    case 'delete-persona':
      return {
        ...base,
        parameters: [...personaParams, ifMatch('Delete only if this is still the latest version', false)],
        responses: {
          '204': { description: 'Deleted, with every version' },
          // 409: a host has the persona now, or If-Match is not the latest version.
          ...problems(400, 404, 409),
        },
      };
    case 'activate-persona':
      return {
        ...base,
        parameters: [
          ...personaParams,
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description:
              'Names the switch: a retried request records nothing twice and finds the switch it started',
            schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,80}$' },
          },
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: ref('ActivateRequest') },
            'application/yaml': { schema: ref('ActivateRequest') },
          },
        },
        responses: {
          '202': {
            description: 'Recorded, and the switch started; follow it at the Location',
            headers: { Location: { schema: { type: 'string' } } },
            content: { 'application/json': { schema: ref('Activation') } },
          },
          // 404: no such persona or registered host; 409: the persona does not select the host.
          ...problems(400, 404, 409, 413, 415),
        },
      };
    case 'get-host-persona':
      return {
        ...base,
        parameters: [...pathParams, ...queryParameters(PageQuery)],
        responses: {
          ...ok(200, 'HostPersona', 'The current persona, why, and a page of decisions, newest first'),
          // 404: the host is not registered.
          ...problems(400, 404),
        },
      };
    case 'install-agent':
      return {
        ...base,
        parameters: pathParams,
        requestBody: {
          required: false,
          content: { 'application/json': { schema: ref('AgentInstallRequest') } },
        },
        responses: {
          ...ok(200, 'AgentInstallResult', 'Installed; the credential id, never its secret'),
          // 502 TRANSPORT: the host could not be reached or refused a step of the install.
          ...problems(400, 404, 415, 502),
        },
      };
    case 'revoke-agent':
      return {
        ...base,
        parameters: pathParams,
        responses: {
          ...ok(200, 'AgentRevokeResult', 'Revoked (and uninstalled when reachable)'),
          ...problems(400),
        },
      };
    case 'post-metrics':
      return {
        ...base,
        requestBody: { required: true, content: { 'application/json': { schema: ref('MetricReport') } } },
        responses: {
          '202': { description: 'Stored, and the host evaluated', content: { 'application/json': {} } },
          // 403 FORBIDDEN: the report is of another host than the agent's own.
          ...problems(400, 401, 403, 413, 415),
        },
      };
    case 'get-agent-assignment':
      return {
        ...base,
        parameters: pathParams,
        responses: {
          '200': {
            description:
              'The host-local entries of the assigned persona; text/plain: the lines the agent reads',
            content: {
              'application/json': { schema: ref('AgentAssignment') },
              'text/plain': { schema: { type: 'string' } },
            },
          },
          ...problems(400, 401, 403),
        },
      };
    case 'post-agent-report':
      return {
        ...base,
        parameters: pathParams,
        requestBody: { required: true, content: { 'application/json': { schema: ref('AgentReport') } } },
        responses: {
          '202': { description: 'Recorded', content: { 'application/json': {} } },
          ...problems(400, 401, 403, 413, 415),
        },
      };
    default:
      return {
        ...base,
        responses: { '200': { description: 'This document', content: { 'application/json': {} } } },
      };
  }
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Persona API',
      version: '1',
      description:
        'Profiles of hosts with versions and diffs. In AWS every operation is authorised with IAM (SigV4).',
    },
    servers: [{ url: '/', description: 'The stage URL (API Gateway) or the embedded runtime' }],
    paths,
    components: {
      schemas: components(),
      securitySchemes: {
        agentCredential: {
          type: 'http',
          scheme: 'bearer',
          description: "A host agent's own credential (issued at install, scoped to its host, revocable)",
        },
      },
    },
  };
}
