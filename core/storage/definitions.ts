// The one description of Persona's tables and bucket. CDK builds the AWS resources from it
// (infra/storage.ts) and the embedded runtime creates the same tables in DynamoDB Local and
// the same bucket in the S3-protocol server (local/stand-ins.ts), so the two cannot drift.

export type AttributeType = 'S' | 'N' | 'B';

export interface KeyAttribute {
  readonly name: string;
  readonly type: AttributeType;
}

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  /** Attributes copied into the index besides the keys. */
  readonly projection: 'ALL' | 'KEYS_ONLY' | readonly string[];
}

export interface TableDefinition {
  /** Construct id in CDK and the default table name in the embedded runtime. */
  readonly id: string;
  /** Environment variable through which functions learn the table's name. */
  readonly env: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly globalSecondaryIndexes: readonly IndexDefinition[];
  readonly description: string;
  /**
   * A number attribute (epoch seconds) after which DynamoDB deletes the item. Deletion lags by
   * up to days, so readers also skip items whose time has passed.
   */
  readonly timeToLiveAttribute?: string;
}

export interface BucketDefinition {
  readonly id: string;
  readonly env: string;
  /** Key prefixes and what lives under them. */
  readonly prefixes: Readonly<Record<string, string>>;
}

/**
 * Profiles: one item per version (sk = version ≥ 1), immutable once written, plus one head
 * item per profile (sk = 0) carrying the latest version number. Writing a version is a
 * transaction that moves the head only if it still points at the version the writer read:
 * optimistic locking with nothing lost on a stale write.
 */
export const PROFILES_TABLE = {
  id: 'Profiles',
  env: 'PROFILES_TABLE',
  partitionKey: { name: 'name', type: 'S' },
  sortKey: { name: 'version', type: 'N' },
  globalSecondaryIndexes: [
    {
      // Only head items carry `entity`, so this sparse index lists each profile once, by name.
      indexName: 'byEntity',
      partitionKey: { name: 'entity', type: 'S' },
      sortKey: { name: 'name', type: 'S' },
      projection: 'ALL',
    },
  ],
  description: 'Profile heads and immutable profile versions',
} as const satisfies TableDefinition;

/**
 * Snapshots: one item per snapshot of a host (sk = version ≥ 1), written with a condition so
 * that two writers cannot take the same version. The manifest and content live in the bucket.
 */
export const SNAPSHOTS_TABLE = {
  id: 'Snapshots',
  env: 'SNAPSHOTS_TABLE',
  partitionKey: { name: 'host', type: 'S' },
  sortKey: { name: 'version', type: 'N' },
  globalSecondaryIndexes: [],
  description: 'Snapshot records per host; manifests and chunks are in the data bucket',
} as const satisfies TableDefinition;

/**
 * Locks over a snapshot store: snapshot writers share it, the garbage collector takes it
 * alone. Items expire unless their holder keeps refreshing them, so a killed holder does not
 * block the store for longer than the expiry.
 */
export const LOCKS_TABLE = {
  id: 'Locks',
  env: 'LOCKS_TABLE',
  partitionKey: { name: 'resource', type: 'S' },
  sortKey: { name: 'holder', type: 'S' },
  globalSecondaryIndexes: [],
  description: 'Shared and exclusive locks with expiry',
} as const satisfies TableDefinition;

/** Registered hosts: how to reach each one, what to capture, how it is tagged. */
export const HOSTS_TABLE = {
  id: 'Hosts',
  env: 'HOSTS_TABLE',
  partitionKey: { name: 'name', type: 'S' },
  globalSecondaryIndexes: [],
  description: 'Registered hosts',
} as const satisfies TableDefinition;

/**
 * Operations (capture, clone, ...): one item each, keyed by the operation id; beside them, one
 * item per Idempotency-Key claimed (`idempotency-key#<key>`: the request's fingerprint and the
 * operation it started), which expires. Operations carry no expiry and stay.
 */
export const OPERATIONS_TABLE = {
  id: 'Operations',
  env: 'OPERATIONS_TABLE',
  partitionKey: { name: 'id', type: 'S' },
  // Every operation carries listing = "operations": one partition, newest first, for
  // GET /operations (filters by kind, status and host apply to the page read).
  globalSecondaryIndexes: [
    {
      indexName: 'ByCreation',
      partitionKey: { name: 'listing', type: 'S' },
      sortKey: { name: 'createdAt', type: 'S' },
      projection: 'ALL',
    },
  ],
  description: 'Operations with their steps, progress and results',
  timeToLiveAttribute: 'expiresAt',
} as const satisfies TableDefinition;

/**
 * The bare-metal inventory: one item per machine of a pool (sk = machine name). A clone takes a
 * free machine with a conditional write, so two clones never take the same one, and its
 * rollback gives it back under a condition that it still holds it.
 */
export const INVENTORY_TABLE = {
  id: 'Inventory',
  env: 'INVENTORY_TABLE',
  partitionKey: { name: 'pool', type: 'S' },
  sortKey: { name: 'machine', type: 'S' },
  globalSecondaryIndexes: [],
  description: 'Bare-metal machines by pool, free or held by an operation',
} as const satisfies TableDefinition;

/**
 * The apply journal: one item per Change an operation applies (sk = its position, from 0),
 * written with a condition before the Change runs and marked applied after it, with what is
 * needed to revert it. Rollback reads it, in reverse, even after the control side died.
 */
export const JOURNAL_TABLE = {
  id: 'Journal',
  env: 'JOURNAL_TABLE',
  partitionKey: { name: 'operation', type: 'S' },
  sortKey: { name: 'seq', type: 'N' },
  globalSecondaryIndexes: [],
  description: 'Changes applied by each operation and how to revert them',
} as const satisfies TableDefinition;

/**
 * Personas: like profiles, one immutable item per version (sk = version ≥ 1) and one head
 * item per persona (sk = 0) with the latest version, moved under a condition.
 */
export const PERSONAS_TABLE = {
  id: 'Personas',
  env: 'PERSONAS_TABLE',
  partitionKey: { name: 'name', type: 'S' },
  sortKey: { name: 'version', type: 'N' },
  globalSecondaryIndexes: [
    {
      // Only head items carry `entity`: each persona once, by name.
      indexName: 'byEntity',
      partitionKey: { name: 'entity', type: 'S' },
      sortKey: { name: 'name', type: 'S' },
      projection: 'ALL',
    },
  ],
  description: 'Persona heads and immutable persona versions',
} as const satisfies TableDefinition;

/**
 * Each host's persona: one state item (sk = "state": the current persona, since when, a
 * manual activation in force) and its decisions (sk = "decision#<ISO time>#<seq>"), which
 * expire after their retention.
 */
export const HOST_PERSONAS_TABLE = {
  id: 'HostPersonas',
  env: 'HOST_PERSONAS_TABLE',
  partitionKey: { name: 'host', type: 'S' },
  sortKey: { name: 'sk', type: 'S' },
  globalSecondaryIndexes: [
    {
      // Only state items of a host that has a persona carry `currentPersona`: the hosts that
      // have a given persona now, without scanning every decision (a persona in use is not deleted).
      indexName: 'byCurrentPersona',
      partitionKey: { name: 'currentPersona', type: 'S' },
      sortKey: { name: 'host', type: 'S' },
      projection: 'KEYS_ONLY',
    },
  ],
  description: "Each host's current persona and the decisions that put it there",
  timeToLiveAttribute: 'expiresAt',
} as const satisfies TableDefinition;

/**
 * Host metrics as reported (POST /metrics) or sampled agentlessly: one item per report
 * (sk = epoch milliseconds), kept for as long as criteria durations and forecasts read back.
 */
export const METRICS_TABLE = {
  id: 'Metrics',
  env: 'METRICS_TABLE',
  partitionKey: { name: 'host', type: 'S' },
  sortKey: { name: 'at', type: 'N' },
  globalSecondaryIndexes: [],
  description: 'Host metric reports, by host and time, with a time to live',
  timeToLiveAttribute: 'expiresAt',
} as const satisfies TableDefinition;

/** External signals (POST /signals): the latest value of each, until it expires. */
export const SIGNALS_TABLE = {
  id: 'Signals',
  env: 'SIGNALS_TABLE',
  partitionKey: { name: 'name', type: 'S' },
  globalSecondaryIndexes: [],
  description: 'The latest value of each external signal',
  timeToLiveAttribute: 'expiresAt',
} as const satisfies TableDefinition;

/**
 * Agent credentials: one item per credential (pk = its id, the public half of the token),
 * holding only a hash of the secret half, the host it is scoped to, and when it was revoked.
 */
export const AGENTS_TABLE = {
  id: 'Agents',
  env: 'AGENTS_TABLE',
  partitionKey: { name: 'id', type: 'S' },
  globalSecondaryIndexes: [
    {
      indexName: 'byHost',
      partitionKey: { name: 'host', type: 'S' },
      projection: 'ALL',
    },
  ],
  description: 'Agent credentials (hashed), each scoped to one host, revocable',
} as const satisfies TableDefinition;

export const TABLES: readonly TableDefinition[] = [
  PROFILES_TABLE,
  SNAPSHOTS_TABLE,
  LOCKS_TABLE,
  HOSTS_TABLE,
  OPERATIONS_TABLE,
  INVENTORY_TABLE,
  JOURNAL_TABLE,
  PERSONAS_TABLE,
  HOST_PERSONAS_TABLE,
  METRICS_TABLE,
  SIGNALS_TABLE,
  AGENTS_TABLE,
];

export const DATA_BUCKET = {
  id: 'Data',
  env: 'DATA_BUCKET',
  prefixes: {
    'profiles/': 'Profile documents, content-addressed: profiles/<name>/<sha256>.json',
    'snapshots/': 'The snapshot store: config, packs, indexes, manifests (core/snapshot/FORMAT.md)',
    'operations/':
      "Each clone's documents: operations/<id>/{request,target,baseline,plan,applied,report,rollback}.json",
    'packages/': 'The package store: verified .deb and .rpm artifacts by content, and their index',
  },
} as const satisfies BucketDefinition;

/**
 * Where managed nodes write the complete output of SSM Run Command invocations whose output is
 * over the inline limits (the capture script's sections, the snapshot's tar archive). The node
 * writes under `<prefix>/<CommandId>/<InstanceId>/...` with its own credentials; the capture
 * function reads each object once and deletes it, and objects left behind expire in a day.
 */
export const SSM_OUTPUT_BUCKET = {
  id: 'SsmOutput',
  env: 'SSM_OUTPUT_BUCKET',
  prefixes: {
    'ssm/': 'Run Command output, one folder per command: ssm/<CommandId>/<InstanceId>/awsrunShellScript/...',
  },
} as const satisfies BucketDefinition;

/** The key prefix of SSM_OUTPUT_BUCKET, without its slash, as OutputS3KeyPrefix takes it. */
export const SSM_OUTPUT_PREFIX = 'ssm';
