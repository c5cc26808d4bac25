// What every function shares for the life of its execution environment: configuration read
// once from the environment, SDK clients built once and reused across invocations.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoHostRegistry, type HostRegistry } from '../../core/host/registry.js';
import { DynamoOperationStore, type OperationStore } from '../../core/operation/store.js';
import {
  type AgentAssignmentDeps,
  DynamoAgentReports,
  DynamoRecordedPersonas,
  personaAssignments,
} from '../../core/persona/agent/assignment.js';
import { type AgentCredentials, DynamoAgentCredentials } from '../../core/persona/agent/credentials.js';
import { MetricStore } from '../../core/persona/metrics.js';
import type { Persona } from '../../core/persona/schema.js';
import { DynamoSignalStore } from '../../core/persona/signals.js';
import { HostPersonaStore } from '../../core/persona/state.js';
import { PersonaStore } from '../../core/persona/store.js';
import {
  deletePersonaSchedules,
  SCHEDULE_ENV,
  type ScheduleTarget,
  syncPersonaSchedules,
} from '../../core/persona/triggers.js';
import { DynamoProfileStore } from '../../core/profile/dynamo-store.js';
import type { ProfileDeps } from '../../core/profile/service.js';
import { S3_CHECKSUMS } from '../../core/snapshot/object-store.js';
import { DynamoSnapshotRecords, type SnapshotRecords } from '../../core/snapshot/records.js';
import {
  AGENTS_TABLE,
  DATA_BUCKET,
  HOST_PERSONAS_TABLE,
  HOSTS_TABLE,
  METRICS_TABLE,
  OPERATIONS_TABLE,
  PERSONAS_TABLE,
  PROFILES_TABLE,
  SIGNALS_TABLE,
  SNAPSHOTS_TABLE,
} from '../../core/storage/definitions.js';
import { traced } from './observability.js';

export { logger, metrics, observability, traced, tracer } from './observability.js';

/** Fails at cold start with the variable's name, not at the first request that needs it. */
export function getRequiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`environment variable ${name} is not set`);
  return value;
}

/**
 * Makes a value once per execution environment and keeps it, but only once it was made: a
 * failed attempt (a store that could not be opened) is forgotten, and the next call tries
 * again instead of failing every invocation for the container's life. Calls made while an
 * attempt is under way share it.
 */
export function keepOnSuccess<T>(make: () => Promise<T>): () => Promise<T> {
  let kept: Promise<T> | undefined;
  return () => {
    if (kept === undefined) {
      const attempt = make();
      kept = attempt;
      attempt.catch(() => {
        if (kept === attempt) kept = undefined;
      });
    }
    return kept;
  };
}

let cached: ProfileDeps | undefined;
let records: SnapshotRecords | undefined;
let documentClient: DynamoDBDocumentClient | undefined;

export const ddb = (): DynamoDBDocumentClient => {
  documentClient ??= DynamoDBDocumentClient.from(traced(new DynamoDBClient({})), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
};

let hostRegistry: HostRegistry | undefined;
let operationStore: OperationStore | undefined;

export function hosts(): HostRegistry {
  hostRegistry ??= new DynamoHostRegistry(ddb(), getRequiredEnv(HOSTS_TABLE.env));
  return hostRegistry;
}

export function operations(): OperationStore {
  operationStore ??= new DynamoOperationStore(ddb(), getRequiredEnv(OPERATIONS_TABLE.env));
  return operationStore;
}

let personaStore: PersonaStore | undefined;
let hostPersonaStore: HostPersonaStore | undefined;

/** Each host's persona state and decisions. */
export function hostPersonas(): HostPersonaStore {
  hostPersonaStore ??= new HostPersonaStore(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env));
  return hostPersonaStore;
}

/** Personas and their versions; a persona a host has now is not deleted. */
export function personas(): PersonaStore {
  personaStore ??= new PersonaStore(ddb(), getRequiredEnv(PERSONAS_TABLE.env), {
    // Read when a delete asks which hosts have the persona: the other persona routes are not
    // given the host-persona table (infra/permissions.ts), and must not need its name.
    get hostPersonas() {
      return hostPersonas();
    },
  });
  return personaStore;
}

export function snapshotRecords(): SnapshotRecords {
  records ??= new DynamoSnapshotRecords(ddb(), getRequiredEnv(SNAPSHOTS_TABLE.env));
  return records;
}

export function stores(): ProfileDeps {
  if (cached === undefined) {
    const tableName = getRequiredEnv(PROFILES_TABLE.env);
    const bucketName = getRequiredEnv(DATA_BUCKET.env);
    // Endpoints come from the SDK's own AWS_ENDPOINT_URL_* variables; only the embedded
    // runtime sets them, and its S3-protocol server needs path-style addressing.
    const s3 = traced(
      new S3Client({ ...S3_CHECKSUMS, forcePathStyle: process.env.PERSONA_S3_PATH_STYLE === 'true' }),
    );
    cached = { profiles: new DynamoProfileStore(ddb(), s3, { tableName, bucketName }) };
  }
  return cached;
}

// --- the persona-agent's side of the API ---------------------------------------------------

let agentCredentialStore: AgentCredentials | undefined;
let metricStore: MetricStore | undefined;
let agentAssignments: AgentAssignmentDeps | undefined;

export function agentCredentials(): AgentCredentials {
  agentCredentialStore ??= new DynamoAgentCredentials(ddb(), getRequiredEnv(AGENTS_TABLE.env));
  return agentCredentialStore;
}

export function metricsStore(): MetricStore {
  metricStore ??= new MetricStore(ddb(), getRequiredEnv(METRICS_TABLE.env));
  return metricStore;
}

/**
 * Where an agent's assignment comes from (the persona the host's last completed switch
 * recorded) and where its reports go.
 */
let recorded: DynamoRecordedPersonas | undefined;

/** The persona each host's last completed switch recorded (HOST_PERSONAS_TABLE, sk "default"). */
export function recordedPersonas(): DynamoRecordedPersonas {
  recorded ??= new DynamoRecordedPersonas(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env));
  return recorded;
}

export function assignments(): AgentAssignmentDeps {
  agentAssignments ??= {
    personas: personaAssignments(
      recordedPersonas(),
      // Opened at the first assignment asked for: POST /agent/report records reports only and is
      // not given the personas table.
      { getVersion: (name, version) => personas().getVersion(name, version) },
    ),
    reports: new DynamoAgentReports(ddb(), getRequiredEnv(HOST_PERSONAS_TABLE.env)),
  };
  return agentAssignments;
}

/** Replaces where assignments come from (tests that assign a persona without a switch). */
export function useAssignments(deps: AgentAssignmentDeps | undefined): void {
  agentAssignments = deps;
}

/**
 * What POST /metrics does after storing a report: evaluate the host's personas against it.
 * The evaluation service registers itself here; until it does, reports are only stored.
 */
export type MetricsEvaluation = (host: string, now: number) => Promise<unknown>;
let metricsEvaluation: MetricsEvaluation | undefined;
export function useMetricsEvaluation(evaluate: MetricsEvaluation | undefined): void {
  metricsEvaluation = evaluate;
}
export function evaluationAfterMetrics(): MetricsEvaluation | undefined {
  return metricsEvaluation;
}

/**
 * How an agent installed from this runtime reaches the API back. The embedded runtime
 * registers its tunnels here (local/agent-tunnel.ts); in AWS there is none and agents call the
 * stage URL.
 */
export interface AgentEndpoints {
  /** Opens (or finds) the way back from `host` and answers the endpoint its agent calls. */
  endpointFor(host: string): Promise<string>;
  /** The host's agent is gone: close its way back. */
  release(host: string): Promise<void>;
}
let agentEndpoints: AgentEndpoints | undefined;
export function useAgentEndpoints(endpoints: AgentEndpoints | undefined): void {
  agentEndpoints = endpoints;
}
export function registeredAgentEndpoints(): AgentEndpoints | undefined {
  return agentEndpoints;
}

// --- persona evaluation and what wakes it -------------------------------------------------

let signals: DynamoSignalStore | undefined;

/** External signals (POST /signals) and the per-host signals alarms become. */
export function signalStore(): DynamoSignalStore {
  signals ??= new DynamoSignalStore(ddb(), getRequiredEnv(SIGNALS_TABLE.env));
  return signals;
}

// What evaluation works with is in ./evaluation.ts: only the functions that evaluate import it.

/** What a persona write or delete tells the triggers. */
export interface PersonaTriggerSync {
  /** The persona's window-edge schedules are made to match its windows. */
  personaWritten(persona: Persona): Promise<void>;
  /** Its schedules are deleted. */
  personaDeleted(name: string): Promise<void>;
}

const NO_TRIGGERS: PersonaTriggerSync = { personaWritten: async () => {}, personaDeleted: async () => {} };
let triggerSync: PersonaTriggerSync | undefined;

/** The embedded runtime's timer registers itself here (local/persona-ticker.ts). */
export function useTriggerSync(sync: PersonaTriggerSync | undefined): void {
  triggerSync = sync;
}

/**
 * How persona writes keep the triggers current: in AWS, the persona's Scheduler schedules in
 * the group infra/personas.ts made (PERSONA_SCHEDULE_GROUP and the target and role beside
 * it); in the embedded runtime, its timer re-reads the personas; with triggers off, nothing.
 */
export function personaTriggers(): PersonaTriggerSync {
  if (triggerSync !== undefined) return triggerSync;
  const group = process.env[SCHEDULE_ENV.group];
  if (group === undefined || group === '') return NO_TRIGGERS;
  const target: ScheduleTarget = {
    groupName: group,
    targetArn: getRequiredEnv(SCHEDULE_ENV.target),
    roleArn: getRequiredEnv(SCHEDULE_ENV.role),
  };
  const scheduler = traced(new SchedulerClient({}));
  triggerSync = {
    async personaWritten(persona) {
      await syncPersonaSchedules(scheduler, target, persona);
    },
    async personaDeleted(name) {
      await deletePersonaSchedules(scheduler, target, name);
    },
  };
  return triggerSync;
}
