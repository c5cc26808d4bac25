// Request and response shapes of the v1 API. Handlers validate with them and the OpenAPI
// document is generated from them.
import * as z from 'zod';
import { HostRecord } from '../host/schema.js';
import { MorphPolicy, MorphPolicyRecord } from '../morph/policy.js';
import { WatchOverride } from '../morph/target.js';
import { IDEMPOTENCY_KEY_PATTERN } from '../operation/idempotency.js';
import { OPERATION_KINDS, OPERATION_STATUSES, Operation } from '../operation/schema.js';
import { DECISION_ACTIONS, MetricName, Persona, PersonaMetadata } from '../persona/schema.js';
import { PersonaHead, PersonaVersion } from '../persona/store.js';
import { Machine } from '../platform/baremetal.js';
import { Profile, ProfileMetadata } from '../profile/schema.js';
import { MAX_PAGE_SIZE } from '../profile/service.js';
import { ProfileHead, ProfileVersion } from '../profile/store.js';
import { SnapshotRecord } from '../snapshot/records.js';
import { PROBLEM_CODES, type ProblemCode } from './problems.js';

const profileName = ProfileMetadata.shape.name;
const versionNumber = z.coerce.number().int().positive();

export const NameParams = z.object({ name: profileName });
export const VersionParams = z.object({ name: profileName, version: versionNumber });

const hostName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'expected letters, digits, ".", "_" or "-"');
export const HostParams = z.object({ host: hostName });
export const HostVersionParams = z.object({ host: hostName, version: versionNumber });

export const CaptureRequest = z
  .strictObject({
    acceptNewHostKey: z
      .boolean()
      .default(false)
      .describe('Record the host key on first contact; otherwise an unknown host key fails the capture'),
  })
  .meta({ id: 'CaptureRequest' });

export const OperationParams = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'expected an operation id'),
});

export const OperationDocumentParams = OperationParams.extend({
  document: z.enum(['plan', 'report', 'rollback']).describe('Which document of the operation'),
});

export const OperationQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .optional()
    .describe(`Page size, 1 to ${MAX_PAGE_SIZE}`),
  cursor: z.string().min(1).optional().describe('The nextCursor of the previous page'),
  kind: z.enum(OPERATION_KINDS).optional(),
  status: z.enum(OPERATION_STATUSES).optional(),
  host: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'expected letters, digits, ".", "_" or "-"')
    .optional()
    .describe('The host (for a clone: the source Profile) it concerns'),
});

export const OperationList = z
  .object({ items: z.array(Operation), nextCursor: z.string().optional() })
  .meta({ id: 'OperationList' });

export const PoolParams = z.object({
  pool: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'expected a pool name'),
});

export const AddMachineRequest = z
  .strictObject({
    machine: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'expected a machine name')
      .optional()
      .describe('Default: the host name'),
    host: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected a registered host name')
      .describe('The registered host (POST /hosts) the machine is: its address, credential and pinned key'),
  })
  .meta({ id: 'AddMachineRequest' });

export const MachineList = z.object({ items: z.array(Machine) }).meta({ id: 'MachineList' });

export const HostList = z
  .object({ items: z.array(HostRecord), nextCursor: z.string().optional() })
  .meta({ id: 'HostList' });

export const SnapshotList = z.object({ items: z.array(SnapshotRecord) }).meta({ id: 'SnapshotList' });

export const PageQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .optional()
    .describe(`Page size, 1 to ${MAX_PAGE_SIZE}`),
  cursor: z.string().min(1).optional().describe('The nextCursor of the previous page'),
});

export const DiffQuery = z.object({
  from: versionNumber.describe('Version to start from'),
  to: versionNumber.optional().describe('Version to arrive at; the latest when omitted'),
});

/** `"3"`, `3` or `W/"3"`: the version the writer read. `"0"` asserts the profile is new. */
export const IfMatch = z
  .string()
  .transform((v) =>
    v
      .trim()
      .replace(/^W\//, '')
      .replace(/^"(.*)"$/, '$1'),
  )
  .pipe(z.string().regex(/^\d+$/))
  .transform(Number);

export const etag = (version: number): string => `"${version}"`;

export const VersionedProfileResponse = z
  .object({ version: ProfileVersion, profile: Profile })
  .meta({ id: 'VersionedProfile' });

export const WriteResponse = z
  .object({
    version: ProfileVersion,
    created: z
      .boolean()
      .describe('False when the document equalled the latest version and nothing was written'),
  })
  .meta({ id: 'WriteResult' });

export const ProfileList = z
  .object({ items: z.array(ProfileHead), nextCursor: z.string().optional() })
  .meta({ id: 'ProfileList' });

export const VersionList = z
  .object({ items: z.array(ProfileVersion), nextCursor: z.string().optional() })
  .meta({ id: 'VersionList' });

// --- Personas --------------------------------------------------------------------------------

const personaName = PersonaMetadata.shape.name;
export const PersonaNameParams = z.object({ name: personaName });
export const PersonaVersionParams = z.object({ name: personaName, version: versionNumber });

export const ActivateRequest = z
  .strictObject({
    host: hostName.describe('A registered host that the persona selects'),
    until: z.iso
      .datetime({ offset: true })
      .nullable()
      .optional()
      .describe(
        "When the activation ends. Left out: at the next window edge of the host's personas; null: until changed",
      ),
  })
  .meta({ id: 'ActivateRequest' });

export const DecisionRecord = z
  .object({
    host: z.string(),
    at: z.iso.datetime(),
    action: z.enum(DECISION_ACTIONS),
    from: z.string().nullable().describe('The persona the host had; null: its own parameters'),
    to: z.string().nullable(),
    mode: z.enum(['act', 'report']).describe('report: what would have been done, not done'),
    summary: z.string(),
    reasons: z.array(
      z.object({
        path: z.string().describe('Where in the persona\'s criteria: "/all/0/metric"'),
        holds: z.enum(['true', 'false', 'unknown']),
        detail: z.string(),
        values: z.record(z.string(), z.union([z.number(), z.string(), z.boolean(), z.null()])).optional(),
      }),
    ),
  })
  .meta({ id: 'Decision' });

export const PersonaWriteResponse = z
  .object({
    version: PersonaVersion,
    created: z
      .boolean()
      .describe('False when the document equalled the latest version and nothing was written'),
    warnings: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .describe('Accepted, but worth a look: another default persona for the same hosts'),
  })
  .meta({ id: 'PersonaWriteResult' });

export const VersionedPersonaResponse = z
  .object({ version: PersonaVersion, persona: Persona })
  .meta({ id: 'VersionedPersona' });

export const PersonaList = z
  .object({ items: z.array(PersonaHead), nextCursor: z.string().optional() })
  .meta({ id: 'PersonaList' });

export const PersonaVersionList = z
  .object({ items: z.array(PersonaVersion), nextCursor: z.string().optional() })
  .meta({ id: 'PersonaVersionList' });

export const ActivationResponse = z
  .object({
    host: z.string(),
    persona: z.object({ name: z.string(), version: z.number().int() }),
    manual: z.object({ at: z.iso.datetime(), until: z.iso.datetime().nullable() }),
    operationId: z.string().describe('The switch that applies it: follow it at /operations/{id}'),
    decision: DecisionRecord,
    recorded: z.boolean().describe('False for a retried request: the same activation was in force'),
  })
  .meta({ id: 'Activation' });

export const HostPersonaResponse = z
  .object({
    host: z.string(),
    current: z
      .string()
      .nullable()
      .describe(
        'The persona decided for the host; null: its own parameters. While `switching`, the host still has `applied`',
      ),
    currentVersion: z.number().int().optional(),
    applied: z
      .object({ persona: z.string(), version: z.number().int() })
      .nullable()
      .optional()
      .describe('What the last completed switch left on the host; null: its own parameters'),
    switching: z
      .literal(true)
      .optional()
      .describe('A switch to `current` is under way (or did not complete): the host has `applied`'),
    since: z.iso
      .datetime()
      .optional()
      .describe('When it took on `current`; absent for a host never switched'),
    falseSince: z.iso
      .datetime()
      .optional()
      .describe("When the current persona's criteria were first seen false"),
    manual: z
      .object({ persona: z.string().nullable(), at: z.iso.datetime(), until: z.iso.datetime().nullable() })
      .optional()
      .describe('A manual activation in force'),
    why: DecisionRecord.optional().describe(
      'The decision that moved the host to its persona (a switch, a revert, a manual activation), with its reasons',
    ),
    latest: DecisionRecord.optional().describe('The latest decision, when it is another (a stay, a hold)'),
    history: z.object({ items: z.array(DecisionRecord), nextCursor: z.string().optional() }),
  })
  .meta({ id: 'HostPersona' });

export const ProblemSchema = z
  .object({
    type: z.string().describe('urn:persona:problem:<code>'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z
      .enum(PROBLEM_CODES as [ProblemCode, ...ProblemCode[]])
      .describe("What went wrong, stable: a domain error's code, or API Gateway's response type"),
    issues: z
      .array(
        z.object({
          path: z.string().describe('The offending field, e.g. spec.packages[3].version or query.limit'),
          message: z.string(),
          line: z.number().int().optional(),
          column: z.number().int().optional(),
        }),
      )
      .optional(),
    current: z.number().int().optional().describe('On a conflict: the latest version'),
    message: z.string().optional().describe("API Gateway's own errors: its message, as it words it"),
  })
  .meta({
    id: 'Problem',
    description: 'RFC 9457 problem details',
    examples: [
      {
        type: 'urn:persona:problem:invalid-input',
        title: 'Bad Request',
        status: 400,
        detail: 'the request is not valid',
        code: 'INVALID_INPUT',
        issues: [{ path: 'query.limit', message: 'Too big: expected number to be <=100' }],
      },
    ],
  });

/** The Idempotency-Key header: what a client may choose (a UUID fits). */
export const IdempotencyKeyHeader = z
  .string()
  .regex(IDEMPOTENCY_KEY_PATTERN, 'expected 8 to 80 of [A-Za-z0-9_-]')
  .describe('8 to 80 letters, digits, "-" or "_"; a UUID fits');

export const AgentInstallRequest = z
  .strictObject({
    endpoint: z
      .string()
      .regex(/^https?:\/\/[A-Za-z0-9.:/_~%[\]-]+$/, 'expected an http(s) URL')
      .optional()
      .describe(
        "The API the agent calls. Default: in AWS the stage's own URL; in the embedded runtime a tunnel back over the host's SSH connection",
      ),
    intervalSeconds: z.number().int().min(5).max(3600).default(60).describe('How often the agent reports'),
  })
  .meta({ id: 'AgentInstallRequest' });

export const AgentInstallResult = z
  .object({
    host: z.string(),
    credentialId: z
      .string()
      .describe('The public id of the credential the agent holds; the secret is never answered'),
    issued: z.boolean().describe('False when the credential already on the host was kept'),
    endpoint: z.string(),
    intervalSeconds: z.number().int(),
    init: z.enum(['systemd', 'supervised']),
    cron: z.boolean(),
    http: z.enum(['curl', 'wget', 'nc', 'none']),
    revoked: z.array(z.string()).describe('Older credentials of the host, revoked by this install'),
  })
  .meta({ id: 'AgentInstallResult' });

export const AgentRevokeResult = z
  .object({
    host: z.string(),
    revoked: z.array(z.string()),
    uninstalled: z.boolean(),
    detail: z.string().optional().describe('Why the agent could not be removed from the host'),
  })
  .meta({ id: 'AgentRevokeResult' });

/** What POST /signals answers: the signal as stored and what evaluating its hosts decided. */
export const SignalAccepted = z
  .object({
    signal: z.string(),
    at: z.iso.datetime().describe('When it was stored: the time criteria see it posted at'),
    expiresAt: z.iso.datetime().optional().describe('From ttlSeconds: after this it reads as never posted'),
    evaluated: z.number().int().describe('How many hosts were evaluated'),
    hosts: z.array(
      z.object({
        host: z.string(),
        outcome: z
          .enum(['decided', 'superseded', 'unselected', 'failed'])
          .describe('superseded: another evaluation of the host came first, and its decision stands'),
        action: z.enum(DECISION_ACTIONS).optional(),
        from: z.string().nullable().optional(),
        to: z.string().nullable().optional(),
        mode: z.enum(['act', 'report']).optional(),
        summary: z.string().optional(),
        recorded: z.boolean().optional().describe('Whether the decision went into the host’s history'),
        operationId: z.string().optional().describe('The switch it started: follow it at /operations/{id}'),
        error: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'SignalAccepted' });

/** POST /hosts/{host}/morph: a target by name (or the recommended one), and how to watch it. */
export const MorphStartRequest = z
  .strictObject({
    target: z
      .union([z.literal('recommended'), z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/)])
      .describe('A target profile by name, or `recommended`: the one GET /hosts/{host}/recommendation names'),
    watch: WatchOverride.optional().describe(
      "Over the target's own watch: period, samples, probe, tolerance",
    ),
  })
  .meta({ id: 'MorphStartRequest' });

// --- Morph policies --------------------------------------------------------------------------

export const MorphPolicyNameParams = z.object({ name: MorphPolicy.shape.metadata.shape.name });

/** A stored morph policy: its record and its document (defaults filled). */
export const MorphPolicyResponse = MorphPolicyRecord.extend({ policy: MorphPolicy }).meta({
  id: 'StoredMorphPolicy',
});

export const MorphPolicyWriteResponse = MorphPolicyResponse.extend({
  created: z.boolean().describe('True when no policy of this name existed'),
  changed: z.boolean().describe('False when the document equalled the stored one and nothing was written'),
}).meta({ id: 'MorphPolicyWriteResult' });

export const MorphPolicyList = z
  .object({
    items: z.array(MorphPolicyRecord.extend({ target: z.string() })),
    nextCursor: z.string().optional(),
  })
  .meta({ id: 'MorphPolicyList' });

const TraitEvidenceSchema = z.object({
  trait: z.string(),
  host: z.number(),
  target: z.number(),
  importance: z.number(),
  contribution: z.number().describe("This trait's term of the similarity; the terms add up to it"),
  gap: z.number().describe('target − host: what the host lacks of the target'),
});

/** GET /hosts/{host}/recommendation: the nearest target profile and why. */
export const RecommendationResponse = z
  .object({
    host: z.string(),
    profile: z.object({ name: z.string(), version: z.number().int().optional() }),
    vector: z.record(z.string(), z.number()).describe("The host's trait vector, from its latest Profile"),
    recommended: z.string().nullable().describe('null: no target is at least 0.5 alike'),
    similarity: z.number(),
    margin: z.number().describe('How far ahead of the runner-up'),
    evidence: z.object({ pulledBy: z.array(TraitEvidenceSchema), lacking: z.array(TraitEvidenceSchema) }),
    ranked: z.array(z.object({ target: z.string(), similarity: z.number() })),
  })
  .meta({ id: 'Recommendation' });

// --- Forecasts ------------------------------------------------------------------------------

export const ForecastQuery = z.object({
  metric: MetricName.optional().describe(
    "One metric to forecast; left out: those the host's personas' predicted criteria name (cpu.utilization when none)",
  ),
});

/** GET /hosts/{host}/forecast: each metric's hourly forecast and its accuracy on held-out history. */
export const HostForecastResponse = z
  .object({
    host: z.string(),
    timezone: z
      .string()
      .describe(
        "The IANA zone the hours of the week are read in: the host's timezone tag, else its personas' first schedule's, else UTC",
      ),
    at: z.iso.datetime(),
    metrics: z.array(
      z.object({
        metric: z.string(),
        forecast: z
          .object({
            at: z.iso.datetime(),
            hours: z
              .array(z.object({ at: z.iso.datetime().describe('The hour it starts'), value: z.number() }))
              .describe('48 hourly values from the hour under way'),
            history: z.object({
              hours: z
                .number()
                .int()
                .describe('Hours with samples the model was fitted on (at most 14 days)'),
              from: z.iso.datetime(),
              to: z.iso.datetime(),
            }),
            model: z.object({
              seasonality: z
                .enum(['daily', 'weekly'])
                .describe('weekly once a week of history shows every hour of the week'),
              level: z.number(),
              slopePerHour: z.number(),
            }),
          })
          .nullable()
          .describe(
            'null: no forecast (reason says why: fewer than 24 hours with samples, none in the last day)',
          ),
        reason: z.string().optional(),
        accuracy: z
          .object({
            from: z.iso.datetime(),
            to: z.iso.datetime(),
            hours: z.number().int().describe('Held-out hours scored (hours with samples)'),
            mape: z.number().describe('Mean absolute percentage error of the forecast made 48 hours ago'),
            naiveMape: z
              .number()
              .nullable()
              .describe('The same of the naive forecast: the same local hour a week before'),
            naiveHours: z.number().int(),
            betterByPoints: z.number().nullable().describe('naiveMape − mape, in percentage points'),
          })
          .nullable(),
        accuracyReason: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'HostForecast' });
