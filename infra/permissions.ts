import type { HandlerName } from '../core/api/routes.js';
import {
  AGENTS_TABLE,
  type DATA_BUCKET,
  HOST_PERSONAS_TABLE,
  HOSTS_TABLE,
  INVENTORY_TABLE,
  JOURNAL_TABLE,
  LOCKS_TABLE,
  METRICS_TABLE,
  OPERATIONS_TABLE,
  PERSONAS_TABLE,
  PROFILES_TABLE,
  SIGNALS_TABLE,
  SNAPSHOTS_TABLE,
} from '../core/storage/definitions.js';

/** What a function does with a table. */
export type TableAccess = 'read' | 'read-write';

/**
 * What a function does with the objects under one prefix of the data bucket. Writing is
 * putting: no function deletes an object (garbage collection runs from the CLI, under the
 * operator's own credentials), so none is given s3:DeleteObject.
 */
export type ObjectAccess = 'read' | 'write' | 'read-write';

export type DataPrefix = keyof typeof DATA_BUCKET.prefixes;

/** The data one function works with; it is granted nothing else. */
export interface DataGrants {
  /** Tables by definition id (`Profiles`, ...). */
  readonly tables?: Readonly<Record<string, TableAccess>>;
  /**
   * Prefixes of the data bucket. Present, even empty, when the function is told the bucket's
   * name (the profile store is built with it, whether or not the function reads documents).
   */
  readonly objects?: Readonly<Partial<Record<DataPrefix, ObjectAccess>>>;
}

/**
 * Evaluating hosts (core/persona/service.ts), wherever it runs (POST /signals, the evaluate
 * function of the triggers): the personas, each host's registration (its labels), its state and
 * decisions, its metrics, the signals (alarms write theirs), and what starting a switch records:
 * its operation and request document.
 */
export const PERSONA_EVALUATION_GRANTS: DataGrants = {
  tables: {
    [PERSONAS_TABLE.id]: 'read',
    [HOSTS_TABLE.id]: 'read',
    [HOST_PERSONAS_TABLE.id]: 'read-write',
    [METRICS_TABLE.id]: 'read',
    [SIGNALS_TABLE.id]: 'read-write',
    [OPERATIONS_TABLE.id]: 'read-write',
  },
  objects: { 'operations/': 'write' },
};

/**
 * Agentless sampling: evaluation's grants, and it reads which hosts have a live agent, keeps
 * each host's last counters and what it saw of an operator's change (in HOST_PERSONAS_TABLE),
 * stores the reports it makes, and starts the switch that restores a change.
 */
export const PERSONA_SAMPLING_GRANTS: DataGrants = {
  ...PERSONA_EVALUATION_GRANTS,
  tables: {
    ...PERSONA_EVALUATION_GRANTS.tables,
    [AGENTS_TABLE.id]: 'read',
    [METRICS_TABLE.id]: 'read-write',
    // Morph policies (core/morph/evaluate.ts) run in the same round: each host's latest Profile
    // for its recommendation; the policies are in the personas table, the last morph of each
    // host and the morph it starts in the operations table, its request under operations/.
    [PROFILES_TABLE.id]: 'read',
  },
  objects: { ...PERSONA_EVALUATION_GRANTS.objects, 'profiles/': 'read' },
};

/**
 * What each API function may do with Persona's data. Keyed by handler so that a new route does
 * not compile until someone decides its permissions.
 */
export const API_HANDLER_GRANTS: Readonly<Record<HandlerName, DataGrants>> = {
  // Writing a version puts its document; it reads records, not documents.
  'create-profile': { tables: { [PROFILES_TABLE.id]: 'read-write' }, objects: { 'profiles/': 'write' } },
  'put-profile': { tables: { [PROFILES_TABLE.id]: 'read-write' }, objects: { 'profiles/': 'write' } },
  'get-profile': { tables: { [PROFILES_TABLE.id]: 'read' }, objects: { 'profiles/': 'read' } },
  'get-version': { tables: { [PROFILES_TABLE.id]: 'read' }, objects: { 'profiles/': 'read' } },
  'diff-profiles': { tables: { [PROFILES_TABLE.id]: 'read' }, objects: { 'profiles/': 'read' } },
  // Lists are records only.
  'list-profiles': { tables: { [PROFILES_TABLE.id]: 'read' }, objects: {} },
  'list-versions': { tables: { [PROFILES_TABLE.id]: 'read' }, objects: {} },
  // Records only: showing a snapshot needs neither its manifest nor its key.
  'list-snapshots': { tables: { [SNAPSHOTS_TABLE.id]: 'read' } },
  'get-snapshot': { tables: { [SNAPSHOTS_TABLE.id]: 'read' } },
  'register-host': { tables: { [HOSTS_TABLE.id]: 'read-write' } },
  'list-hosts': { tables: { [HOSTS_TABLE.id]: 'read' } },
  'get-host': { tables: { [HOSTS_TABLE.id]: 'read' } },
  'get-operation': { tables: { [OPERATIONS_TABLE.id]: 'read' } },
  // Checks the host exists and records the operation; the workflow's own functions capture.
  'start-capture': { tables: { [HOSTS_TABLE.id]: 'read', [OPERATIONS_TABLE.id]: 'read-write' } },
  'list-operations': { tables: { [OPERATIONS_TABLE.id]: 'read' } },
  // Records the operation and its request document; the workflow's own function clones.
  'start-clone': { tables: { [OPERATIONS_TABLE.id]: 'read-write' }, objects: { 'operations/': 'write' } },
  'cancel-operation': { tables: { [OPERATIONS_TABLE.id]: 'read-write' } },
  'get-operation-document': { tables: { [OPERATIONS_TABLE.id]: 'read' }, objects: { 'operations/': 'read' } },
  'add-machine': { tables: { [HOSTS_TABLE.id]: 'read', [INVENTORY_TABLE.id]: 'read-write' } },
  'list-machines': { tables: { [INVENTORY_TABLE.id]: 'read' } },
  // Stores the signal, then evaluates the hosts whose personas name it.
  'post-signal': PERSONA_EVALUATION_GRANTS,
  // Personas are whole documents in their items: reading one reads its table only.
  'create-persona': { tables: { [PERSONAS_TABLE.id]: 'read-write' } },
  'put-persona': { tables: { [PERSONAS_TABLE.id]: 'read-write' } },
  'get-persona': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  'get-persona-version': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  'list-personas': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  'list-persona-versions': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  // Refused while a host has the persona: reads the index of hosts by current persona.
  'delete-persona': { tables: { [PERSONAS_TABLE.id]: 'read-write', [HOST_PERSONAS_TABLE.id]: 'read' } },
  // Records the manual activation and its decision, and starts the switch: its operation and
  // request document (the switch's own task does the rest).
  'activate-persona': {
    tables: {
      [PERSONAS_TABLE.id]: 'read',
      [HOSTS_TABLE.id]: 'read',
      [HOST_PERSONAS_TABLE.id]: 'read-write',
      [OPERATIONS_TABLE.id]: 'read-write',
    },
    objects: { 'operations/': 'write' },
  },
  'get-host-persona': { tables: { [HOSTS_TABLE.id]: 'read', [HOST_PERSONAS_TABLE.id]: 'read' } },
  // The host's personas (for the metrics they predict and their zone) and two weeks of its metrics.
  'get-host-forecast': {
    tables: { [HOSTS_TABLE.id]: 'read', [PERSONAS_TABLE.id]: 'read', [METRICS_TABLE.id]: 'read' },
  },
  // The host's latest Profile against the target profiles bundled with the function.
  'get-host-recommendation': {
    tables: { [HOSTS_TABLE.id]: 'read', [PROFILES_TABLE.id]: 'read' },
    objects: { 'profiles/': 'read' },
  },
  // Records the operation, its request (the target's document) and the host's last morph
  // (an item of the operations table); the morph task morphs.
  'start-morph': {
    tables: { [HOSTS_TABLE.id]: 'read', [PROFILES_TABLE.id]: 'read', [OPERATIONS_TABLE.id]: 'read-write' },
    objects: { 'profiles/': 'read', 'operations/': 'write' },
  },
  // Morph policies are items of the personas table (key prefix morph-policy#): their document is in the item.
  'put-morph-policy': { tables: { [PERSONAS_TABLE.id]: 'read-write' } },
  'get-morph-policy': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  'list-morph-policies': { tables: { [PERSONAS_TABLE.id]: 'read' } },
  'delete-morph-policy': { tables: { [PERSONAS_TABLE.id]: 'read-write' } },
  // Built from the route list and schemas compiled into the bundle: touches no data.
  'get-openapi': {},
  // The agent routes: each reads the caller's credential (the authoriser did too, but the
  // handler is given the table it needs and nothing more).
  // Stores the report, then evaluates the host against it (and may start its switch).
  'post-metrics': {
    tables: { ...PERSONA_EVALUATION_GRANTS.tables, [METRICS_TABLE.id]: 'read-write' },
    objects: { ...PERSONA_EVALUATION_GRANTS.objects },
  },
  'get-agent-assignment': { tables: { [HOST_PERSONAS_TABLE.id]: 'read', [PERSONAS_TABLE.id]: 'read' } },
  'post-agent-report': { tables: { [HOST_PERSONAS_TABLE.id]: 'read-write' } },
  // Issues (and revokes older) credentials and reaches the host as a capture does.
  'install-agent': { tables: { [HOSTS_TABLE.id]: 'read', [AGENTS_TABLE.id]: 'read-write' } },
  'revoke-agent': { tables: { [HOSTS_TABLE.id]: 'read', [AGENTS_TABLE.id]: 'read-write' } },
};

/**
 * The clone task: what a capture needs (baseline and record capture the target), the journal,
 * the inventory, the clone's documents and the package store.
 */
export const CLONE_TASK_GRANTS: DataGrants = {
  tables: {
    [HOSTS_TABLE.id]: 'read-write',
    [OPERATIONS_TABLE.id]: 'read-write',
    [PROFILES_TABLE.id]: 'read-write',
    [SNAPSHOTS_TABLE.id]: 'read-write',
    [LOCKS_TABLE.id]: 'read-write',
    [JOURNAL_TABLE.id]: 'read-write',
    [INVENTORY_TABLE.id]: 'read-write',
  },
  objects: {
    'profiles/': 'read-write',
    'snapshots/': 'read-write',
    'operations/': 'read-write',
    'packages/': 'read-write',
  },
};

/** The capture task: every store a capture writes, and the snapshot store's objects (no deletes). */
export const CAPTURE_TASK_GRANTS: DataGrants = {
  tables: {
    // The host key is pinned in the registration on first contact; the last capture recorded.
    [HOSTS_TABLE.id]: 'read-write',
    [OPERATIONS_TABLE.id]: 'read-write',
    [PROFILES_TABLE.id]: 'read-write',
    [SNAPSHOTS_TABLE.id]: 'read-write',
    [LOCKS_TABLE.id]: 'read-write',
  },
  // Profile documents are read back by what compares a capture with the version before it.
  objects: { 'profiles/': 'read-write', 'snapshots/': 'read-write' },
};

/** The workflow's failure path: it ends the operation, nothing else. */
export const FAIL_OPERATION_TASK_GRANTS: DataGrants = {
  tables: { [OPERATIONS_TABLE.id]: 'read-write' },
};
