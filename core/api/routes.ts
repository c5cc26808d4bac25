// The v1 API's routes. API Gateway resources (infra/api.ts), the embedded HTTP server
// (local/http.ts) and the OpenAPI document (core/api/openapi.ts) are all built from this
// list. `handler` names the folder under functions/api/ that serves the route; the rest of a
// route says how it behaves (parameters, body, success responses, problems), and the OpenAPI
// document describes each route from that alone.
import type { ZodObject } from 'zod';
import type * as Schemas from './schemas.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Headers a success response carries: the version written or read, where the resource is. */
export type ResponseHeader = 'ETag' | 'Location';

/** Statuses of the problems (RFC 9457) a function answers of its own. */
export type ProblemStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 428 | 502;

// Parameter schemas are named (type-only: the route table stays free of zod and the schemas, so
// what imports it for its paths, like a function that needs only its own route, loads nothing).
type ObjectSchemaName = {
  [K in keyof typeof Schemas]: (typeof Schemas)[K] extends ZodObject ? K : never;
}[keyof typeof Schemas];

/** One success response as the handler answers it. */
export interface Reply {
  readonly description: string;
  /**
   * The body's schema by its component id (a zod schema's `.meta({ id })`); `*` for a JSON body
   * of no declared shape; absent for no body.
   */
  readonly schema?: string;
  readonly headers?: readonly ResponseHeader[];
  /** Also answered as text/plain when the caller asks for it. */
  readonly text?: boolean;
}

export interface Route {
  readonly method: HttpMethod;
  /** API Gateway path template: literal segments and `{param}` segments. */
  readonly path: string;
  readonly handler: string;
  readonly summary: string;
  /**
   * Who may call it: `iam` (the default) for operators, CI and AWS workloads signing with
   * SigV4; `agent` for a host's persona-agent presenting its own credential, accepted only for
   * that host (the agent authoriser, functions/authorizers/agent).
   */
  readonly auth?: 'iam' | 'agent';
  /** The path parameters' schema in schemas.ts; it names every `{param}` of the path. */
  readonly params?: ObjectSchemaName;
  /** The query parameters' schema in schemas.ts. */
  readonly query?: ObjectSchemaName;
  /** The request body: its schema's component id; `yaml` when YAML is read as well as JSON. */
  readonly body?: {
    readonly schema: string;
    readonly required: boolean;
    readonly yaml?: boolean;
    readonly description?: string;
  };
  /** The request's Idempotency-Key: what it names (the operation, the switch). */
  readonly idempotencyKey?: string;
  readonly ifMatch?: { readonly required: boolean; readonly description: string };
  /** Every success status the handler answers. */
  readonly ok: Readonly<Partial<Record<200 | 201 | 202 | 204, Reply>>>;
  /**
   * The problems the function answers of its own. Those of the edge are added to every route
   * (core/api/openapi.ts): 400 for any input, 413 and 415 for a body, 401/403 for its
   * authorisation, 422 for an Idempotency-Key reused, 429, and a default problem.
   */
  readonly problems?: readonly ProblemStatus[];
}

export const ROUTES = [
  {
    method: 'POST',
    path: '/profiles',
    handler: 'create-profile',
    body: {
      schema: 'Profile',
      required: true,
      yaml: true,
      description: 'A profile document (apiVersion persona/v1), as JSON or YAML',
    },
    ok: {
      201: { description: 'Created at version 1', schema: 'WriteResult', headers: ['ETag', 'Location'] },
      200: {
        description: 'The same document already exists; nothing written',
        schema: 'WriteResult',
        headers: ['ETag', 'Location'],
      },
    },
    problems: [409],
    summary: 'Create a profile (version 1)',
  },
  {
    method: 'GET',
    path: '/profiles',
    handler: 'list-profiles',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, by name', schema: 'ProfileList' } },
    summary: 'List profiles, a page at a time',
  },
  {
    method: 'GET',
    path: '/profiles/{name}',
    handler: 'get-profile',
    params: 'NameParams',
    ok: {
      200: {
        description: 'The profile and its version record',
        schema: 'VersionedProfile',
        headers: ['ETag'],
      },
    },
    problems: [404, 502],
    summary: 'Get the latest version of a profile',
  },
  {
    method: 'PUT',
    path: '/profiles/{name}',
    handler: 'put-profile',
    params: 'NameParams',
    ifMatch: {
      required: true,
      description: 'The version this write replaces, as returned in ETag ("0" for a new profile)',
    },
    body: {
      schema: 'Profile',
      required: true,
      yaml: true,
      description: 'A profile document (apiVersion persona/v1), as JSON or YAML',
    },
    ok: {
      201: { description: 'A new version was written', schema: 'WriteResult', headers: ['ETag'] },
      200: {
        description: 'Equal to the latest version; nothing written',
        schema: 'WriteResult',
        headers: ['ETag'],
      },
    },
    problems: [409, 428],
    summary: 'Write a new version; If-Match names the version the caller read',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/versions',
    handler: 'list-versions',
    params: 'NameParams',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, newest first', schema: 'VersionList' } },
    problems: [404],
    summary: 'List the versions of a profile, newest first',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/versions/{version}',
    handler: 'get-version',
    params: 'VersionParams',
    ok: {
      200: { description: 'The version and its document', schema: 'VersionedProfile', headers: ['ETag'] },
    },
    problems: [404, 502],
    summary: 'Get one version of a profile',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/diff',
    handler: 'diff-profiles',
    params: 'NameParams',
    query: 'DiffQuery',
    ok: { 200: { description: 'The ordered Changes', schema: 'Delta' } },
    problems: [404, 502],
    summary: 'The Delta that turns version `from` into version `to`',
  },
  {
    method: 'POST',
    path: '/personas',
    handler: 'create-persona',
    body: {
      schema: 'Persona',
      required: true,
      yaml: true,
      description: 'A persona document (apiVersion persona/v1, kind Persona), as JSON or YAML',
    },
    ok: {
      201: {
        description: 'Created at version 1',
        schema: 'PersonaWriteResult',
        headers: ['ETag', 'Location'],
      },
      200: {
        description: 'The same document already exists; nothing written',
        schema: 'PersonaWriteResult',
        headers: ['ETag', 'Location'],
      },
    },
    problems: [409],
    summary: 'Create a persona (version 1)',
  },
  {
    method: 'GET',
    path: '/personas',
    handler: 'list-personas',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, by name', schema: 'PersonaList' } },
    summary: 'List personas, a page at a time',
  },
  {
    method: 'GET',
    path: '/personas/{name}',
    handler: 'get-persona',
    params: 'PersonaNameParams',
    ok: {
      200: {
        description: 'The persona and its version record',
        schema: 'VersionedPersona',
        headers: ['ETag'],
      },
    },
    problems: [404, 502],
    summary: 'Get the latest version of a persona',
  },
  {
    method: 'PUT',
    path: '/personas/{name}',
    handler: 'put-persona',
    params: 'PersonaNameParams',
    ifMatch: {
      required: true,
      description: 'The version this write replaces, as returned in ETag ("0" for a new persona)',
    },
    body: {
      schema: 'Persona',
      required: true,
      yaml: true,
      description: 'A persona document (apiVersion persona/v1, kind Persona), as JSON or YAML',
    },
    ok: {
      201: { description: 'A new version was written', schema: 'PersonaWriteResult', headers: ['ETag'] },
      200: {
        description: 'Equal to the latest version; nothing written',
        schema: 'PersonaWriteResult',
        headers: ['ETag'],
      },
    },
    problems: [409, 428],
    summary: 'Write a new version of a persona; If-Match names the version the caller read',
  },
  {
    method: 'DELETE',
    path: '/personas/{name}',
    handler: 'delete-persona',
    params: 'PersonaNameParams',
    ifMatch: { required: false, description: 'Delete only if this is still the latest version' },
    ok: { 204: { description: 'Deleted, with every version' } },
    problems: [404, 409],
    summary: 'Delete a persona and its versions; refused while a host has it',
  },
  {
    method: 'GET',
    path: '/personas/{name}/versions',
    handler: 'list-persona-versions',
    params: 'PersonaNameParams',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, newest first', schema: 'PersonaVersionList' } },
    problems: [404],
    summary: 'List the versions of a persona, newest first',
  },
  {
    method: 'GET',
    path: '/personas/{name}/versions/{version}',
    handler: 'get-persona-version',
    params: 'PersonaVersionParams',
    ok: {
      200: { description: 'The version and its document', schema: 'VersionedPersona', headers: ['ETag'] },
    },
    problems: [404, 502],
    summary: 'Get one version of a persona',
  },
  {
    method: 'POST',
    path: '/personas/{name}/activate',
    handler: 'activate-persona',
    params: 'PersonaNameParams',
    idempotencyKey:
      'Names the switch: a retried request records nothing twice and finds the switch it started',
    body: { schema: 'ActivateRequest', required: true, yaml: true },
    ok: {
      202: {
        description: 'Recorded, and the switch started; follow it at the Location',
        schema: 'Activation',
        headers: ['Location'],
      },
    },
    problems: [404, 409],
    summary:
      'Activate a persona on a host by hand until the next window edge: starts the switch (Idempotency-Key names it); follow it at /operations/{id}',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/persona',
    handler: 'get-host-persona',
    params: 'HostParams',
    query: 'PageQuery',
    ok: {
      200: {
        description: 'The current persona, why, and a page of decisions, newest first',
        schema: 'HostPersona',
      },
    },
    problems: [404],
    summary: "A host's persona: which, since when, a manual activation in force, why, and its history",
  },
  {
    method: 'GET',
    path: '/hosts/{host}/forecast',
    handler: 'get-host-forecast',
    params: 'HostParams',
    query: 'ForecastQuery',
    ok: {
      200: {
        description:
          "Each metric's hourly forecast 48 hours ahead, and its accuracy (MAPE) on held-out history beside the naive same-hour-last-week",
        schema: 'HostForecast',
      },
    },
    problems: [404],
    summary: "A host's forecast of the metrics its personas predict, and how accurate it has been",
  },
  {
    method: 'POST',
    path: '/hosts',
    handler: 'register-host',
    body: { schema: 'HostRegistration', required: true, yaml: true },
    ok: {
      201: { description: 'Registered', schema: 'HostRecord', headers: ['Location'] },
      200: {
        description: 'Already registered with the same settings',
        schema: 'HostRecord',
        headers: ['Location'],
      },
    },
    problems: [409],
    summary: 'Register a host: how to reach it, what to capture',
  },
  {
    method: 'GET',
    path: '/hosts',
    handler: 'list-hosts',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, by name', schema: 'HostList' } },
    summary: 'List registered hosts, a page at a time',
  },
  {
    method: 'GET',
    path: '/hosts/{host}',
    handler: 'get-host',
    params: 'HostParams',
    ok: { 200: { description: 'The host', schema: 'HostRecord' } },
    problems: [404],
    summary: 'One registered host',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/recommendation',
    handler: 'get-host-recommendation',
    params: 'HostParams',
    ok: {
      200: {
        description: 'The nearest target, how alike, and the traits that pulled the host there',
        schema: 'Recommendation',
      },
    },
    // 404: the host is not registered, or has no Profile yet (capture it first).
    problems: [404],
    summary: "Workload detection: the target profile nearest the host's trait vector, with the evidence",
  },
  {
    method: 'POST',
    path: '/hosts/{host}/morph',
    handler: 'start-morph',
    params: 'HostParams',
    idempotencyKey: 'Names the morph: a retried request finds the morph it started',
    body: { schema: 'MorphStartRequest', required: true, yaml: true },
    ok: {
      202: {
        description: 'Started (or found, for a retried key); follow it at the Location',
        schema: 'Operation',
        headers: ['Location'],
      },
    },
    // 404: no such host, target or Profile; 409: `recommended` and no target is alike enough.
    problems: [404, 409],
    summary: 'Morph a host toward a target profile: starts an operation (Idempotency-Key names it)',
  },
  {
    method: 'PUT',
    path: '/morph-policies/{name}',
    handler: 'put-morph-policy',
    params: 'MorphPolicyNameParams',
    body: {
      schema: 'MorphPolicy',
      required: true,
      yaml: true,
      description: 'A morph policy document (apiVersion persona/v1, kind MorphPolicy), as JSON or YAML',
    },
    ok: {
      201: { description: 'Created', schema: 'MorphPolicyWriteResult' },
      200: { description: 'Replaced, or equal and nothing written', schema: 'MorphPolicyWriteResult' },
    },
    problems: [409],
    summary: 'Create or replace a morph policy: when a morph of the hosts it selects starts on its own',
  },
  {
    method: 'GET',
    path: '/morph-policies',
    handler: 'list-morph-policies',
    query: 'PageQuery',
    ok: { 200: { description: 'A page, by name', schema: 'MorphPolicyList' } },
    summary: 'List morph policies, a page at a time',
  },
  {
    method: 'GET',
    path: '/morph-policies/{name}',
    handler: 'get-morph-policy',
    params: 'MorphPolicyNameParams',
    ok: { 200: { description: 'The policy and its record', schema: 'StoredMorphPolicy' } },
    problems: [404],
    summary: 'One morph policy',
  },
  {
    method: 'DELETE',
    path: '/morph-policies/{name}',
    handler: 'delete-morph-policy',
    params: 'MorphPolicyNameParams',
    ok: { 204: { description: 'Deleted; a morph it started runs on' } },
    problems: [404],
    summary: 'Delete a morph policy',
  },
  {
    method: 'POST',
    path: '/hosts/{host}/capture',
    handler: 'start-capture',
    params: 'HostParams',
    idempotencyKey: 'Names the operation: a retried request finds the capture it started',
    body: { schema: 'CaptureRequest', required: false, yaml: true },
    ok: {
      202: {
        description: 'Started (or found, for a retried key); follow it at the Location',
        schema: 'Operation',
        headers: ['Location'],
      },
    },
    problems: [404],
    summary: 'Capture a host: starts an operation (Idempotency-Key names it); follow it at /operations/{id}',
  },
  {
    method: 'GET',
    path: '/operations/{id}',
    handler: 'get-operation',
    params: 'OperationParams',
    ok: { 200: { description: 'The operation', schema: 'Operation' } },
    problems: [404],
    summary: 'An operation: its steps, progress and result',
  },
  {
    method: 'GET',
    path: '/operations',
    handler: 'list-operations',
    query: 'OperationQuery',
    ok: { 200: { description: 'A page, newest first', schema: 'OperationList' } },
    summary: 'Operations, newest first, a page at a time (filters: kind, status, host)',
  },
  {
    method: 'POST',
    path: '/operations/clone',
    handler: 'start-clone',
    idempotencyKey: 'Names the operation: a retried request finds the clone it started',
    body: { schema: 'CloneRequest', required: true, yaml: true },
    ok: {
      202: {
        description: 'Started (or found, for a retried key); follow it at the Location',
        schema: 'Operation',
        headers: ['Location'],
      },
    },
    problems: [404, 409],
    summary: 'Clone a Profile onto a target, or only plan it: starts an operation (Idempotency-Key names it)',
  },
  {
    method: 'POST',
    path: '/operations/{id}/cancel',
    handler: 'cancel-operation',
    params: 'OperationParams',
    ok: {
      202: {
        description: 'Asked to stop; it rolls back at its next step',
        schema: 'Operation',
        headers: ['Location'],
      },
      200: { description: 'It had ended already', schema: 'Operation', headers: ['Location'] },
    },
    problems: [404],
    summary: 'Ask a running operation to stop: a clone rolls back at its next step',
  },
  {
    method: 'GET',
    path: '/operations/{id}/documents/{document}',
    handler: 'get-operation-document',
    params: 'OperationDocumentParams',
    ok: { 200: { description: 'The plan, validation report or rollback record', schema: '*' } },
    problems: [404],
    summary: "A clone's plan, validation report or rollback record",
  },
  {
    method: 'POST',
    path: '/pools/{pool}/machines',
    handler: 'add-machine',
    params: 'PoolParams',
    body: { schema: 'AddMachineRequest', required: true, yaml: true },
    ok: { 201: { description: 'Added, free', schema: 'Machine', headers: ['Location'] } },
    problems: [404, 409],
    summary: 'Add a registered host to a bare-metal pool, free for clones to take',
  },
  {
    method: 'GET',
    path: '/pools/{pool}/machines',
    handler: 'list-machines',
    params: 'PoolParams',
    ok: { 200: { description: 'The machines of the pool', schema: 'MachineList' } },
    summary: 'The machines of a pool, free or held by an operation',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/snapshots',
    handler: 'list-snapshots',
    params: 'HostParams',
    ok: { 200: { description: 'Snapshot records, oldest first', schema: 'SnapshotList' } },
    summary: 'The snapshots of a host, oldest first',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/snapshots/{version}',
    handler: 'get-snapshot',
    params: 'HostVersionParams',
    ok: { 200: { description: 'The record', schema: 'SnapshotRecord' } },
    problems: [404],
    summary: 'One snapshot record of a host: when, which manifest, sizes',
  },
  {
    method: 'POST',
    path: '/hosts/{host}/agent',
    handler: 'install-agent',
    params: 'HostParams',
    body: { schema: 'AgentInstallRequest', required: false, yaml: true },
    ok: {
      200: { description: 'Installed; the credential id, never its secret', schema: 'AgentInstallResult' },
    },
    problems: [404, 502],
    summary: "Install (or reinstall) the host's persona-agent over its transport; answers the credential id",
  },
  {
    method: 'DELETE',
    path: '/hosts/{host}/agent',
    handler: 'revoke-agent',
    params: 'HostParams',
    ok: { 200: { description: 'Revoked (and uninstalled when reachable)', schema: 'AgentRevokeResult' } },
    summary:
      "Revoke the host's agent credentials at once, and uninstall the agent when the host is reachable",
  },
  {
    method: 'POST',
    path: '/metrics',
    handler: 'post-metrics',
    body: { schema: 'MetricReport', required: true, yaml: true },
    ok: { 202: { description: 'Stored, and the host evaluated', schema: '*' } },
    summary: "A host's metric report, from its agent",
    auth: 'agent',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/agent/assignment',
    handler: 'get-agent-assignment',
    params: 'HostParams',
    ok: {
      200: {
        description: 'The host-local entries of the assigned persona; text/plain: the lines the agent reads',
        schema: 'AgentAssignment',
        headers: ['ETag'],
        text: true,
      },
    },
    summary: "The host-local parameters of the host's assigned persona, for its agent to apply",
    auth: 'agent',
  },
  {
    method: 'POST',
    path: '/hosts/{host}/agent/reports',
    handler: 'post-agent-report',
    params: 'HostParams',
    body: { schema: 'AgentReport', required: true, yaml: true },
    ok: { 202: { description: 'Recorded', schema: '*' } },
    summary: 'What the agent applied (or rolled back, or refused) of its assignment',
    auth: 'agent',
  },
  {
    method: 'POST',
    path: '/signals',
    handler: 'post-signal',
    body: {
      schema: 'Signal',
      required: true,
      yaml: true,
      description: 'The signal; it replaces the previous value of its name',
    },
    ok: {
      202: {
        description: 'Stored; the hosts whose personas name it were evaluated',
        schema: 'SignalAccepted',
      },
    },
    summary: 'Post an external signal; the hosts whose personas name it are evaluated at once',
  },
  {
    method: 'GET',
    path: '/openapi.json',
    handler: 'get-openapi',
    ok: { 200: { description: 'The OpenAPI 3.1 document of this API', schema: '*' } },
    summary: 'This API, as OpenAPI 3.1',
  },
] as const satisfies readonly Route[];

export type HandlerName = (typeof ROUTES)[number]['handler'];
