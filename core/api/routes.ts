// The v1 API's routes. API Gateway resources (infra/api.ts), the embedded HTTP server
// (local/http.ts) and the OpenAPI document (core/api/openapi.ts) are all built from this
// list. `handler` names the folder under functions/api/ that serves the route.

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

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
}

export const ROUTES = [
  { method: 'POST', path: '/profiles', handler: 'create-profile', summary: 'Create a profile (version 1)' },
  { method: 'GET', path: '/profiles', handler: 'list-profiles', summary: 'List profiles, a page at a time' },
  {
    method: 'GET',
    path: '/profiles/{name}',
    handler: 'get-profile',
    summary: 'Get the latest version of a profile',
  },
  {
    method: 'PUT',
    path: '/profiles/{name}',
    handler: 'put-profile',
    summary: 'Write a new version; If-Match names the version the caller read',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/versions',
    handler: 'list-versions',
    summary: 'List the versions of a profile, newest first',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/versions/{version}',
    handler: 'get-version',
    summary: 'Get one version of a profile',
  },
  {
    method: 'GET',
    path: '/profiles/{name}/diff',
    handler: 'diff-profiles',
    summary: 'The Delta that turns version `from` into version `to`',
  },
  { method: 'POST', path: '/personas', handler: 'create-persona', summary: 'Create a persona (version 1)' },
  { method: 'GET', path: '/personas', handler: 'list-personas', summary: 'List personas, a page at a time' },
  {
    method: 'GET',
    path: '/personas/{name}',
    handler: 'get-persona',
    summary: 'Get the latest version of a persona',
  },
  {
    method: 'PUT',
    path: '/personas/{name}',
    handler: 'put-persona',
    summary: 'Write a new version of a persona; If-Match names the version the caller read',
  },
  {
    method: 'DELETE',
    path: '/personas/{name}',
    handler: 'delete-persona',
    summary: 'Delete a persona and its versions; refused while a host has it',
  },
  {
    method: 'GET',
    path: '/personas/{name}/versions',
    handler: 'list-persona-versions',
    summary: 'List the versions of a persona, newest first',
  },
  {
    method: 'GET',
    path: '/personas/{name}/versions/{version}',
    handler: 'get-persona-version',
    summary: 'Get one version of a persona',
  },
  {
    method: 'POST',
    path: '/personas/{name}/activate',
    handler: 'activate-persona',
    summary:
      'Activate a persona on a host by hand until the next window edge: starts the switch (Idempotency-Key names it); follow it at /operations/{id}',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/persona',
    handler: 'get-host-persona',
    summary: "A host's persona: which, since when, a manual activation in force, why, and its history",
  },
  {
    method: 'POST',
    path: '/hosts',
    handler: 'register-host',
    summary: 'Register a host: how to reach it, what to capture',
  },
  {
    method: 'GET',
    path: '/hosts',
    handler: 'list-hosts',
    summary: 'List registered hosts, a page at a time',
  },
  { method: 'GET', path: '/hosts/{host}', handler: 'get-host', summary: 'One registered host' },
  {
    method: 'POST',
    path: '/hosts/{host}/capture',
    handler: 'start-capture',
    summary: 'Capture a host: starts an operation (Idempotency-Key names it); follow it at /operations/{id}',
  },
  {
    method: 'GET',
    path: '/operations/{id}',
    handler: 'get-operation',
    summary: 'An operation: its steps, progress and result',
  },
  {
    method: 'GET',
    path: '/operations',
    handler: 'list-operations',
    summary: 'Operations, newest first, a page at a time (filters: kind, status, host)',
  },
  {
    method: 'POST',
    path: '/operations/clone',
    handler: 'start-clone',
    summary: 'Clone a Profile onto a target, or only plan it: starts an operation (Idempotency-Key names it)',
  },
  {
    method: 'POST',
    path: '/operations/{id}/cancel',
    handler: 'cancel-operation',
    summary: 'Ask a running operation to stop: a clone rolls back at its next step',
  },
  {
    method: 'GET',
    path: '/operations/{id}/documents/{document}',
    handler: 'get-operation-document',
    summary: "A clone's plan, validation report or rollback record",
  },
  {
    method: 'POST',
    path: '/pools/{pool}/machines',
    handler: 'add-machine',
    summary: 'Add a registered host to a bare-metal pool, free for clones to take',
  },
  {
    method: 'GET',
    path: '/pools/{pool}/machines',
    handler: 'list-machines',
    summary: 'The machines of a pool, free or held by an operation',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/snapshots',
    handler: 'list-snapshots',
    summary: 'The snapshots of a host, oldest first',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/snapshots/{version}',
    handler: 'get-snapshot',
    summary: 'One snapshot record of a host: when, which manifest, sizes',
  },
  {
    method: 'POST',
    path: '/hosts/{host}/agent',
    handler: 'install-agent',
    summary: "Install (or reinstall) the host's persona-agent over its transport; answers the credential id",
  },
  {
    method: 'DELETE',
    path: '/hosts/{host}/agent',
    handler: 'revoke-agent',
    summary:
      "Revoke the host's agent credentials at once, and uninstall the agent when the host is reachable",
  },
  {
    method: 'POST',
    path: '/metrics',
    handler: 'post-metrics',
    summary: "A host's metric report, from its agent",
    auth: 'agent',
  },
  {
    method: 'GET',
    path: '/hosts/{host}/agent/assignment',
    handler: 'get-agent-assignment',
    summary: "The host-local parameters of the host's assigned persona, for its agent to apply",
    auth: 'agent',
  },
  {
    method: 'POST',
    path: '/hosts/{host}/agent/reports',
    handler: 'post-agent-report',
    summary: 'What the agent applied (or rolled back, or refused) of its assignment',
    auth: 'agent',
  },
  {
    method: 'POST',
    path: '/signals',
    handler: 'post-signal',
    summary: 'Post an external signal; the hosts whose personas name it are evaluated at once',
  },
  { method: 'GET', path: '/openapi.json', handler: 'get-openapi', summary: 'This API, as OpenAPI 3.1' },
] as const satisfies readonly Route[];

export type HandlerName = (typeof ROUTES)[number]['handler'];
