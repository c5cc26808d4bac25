// What a clone is asked to do: which Profile (and version) to reproduce, on which target, and how
// to prove the clone behaves like its source. A request is data from a caller: every field is
// checked here, before an operation is recorded, and what it names (hosts, pools, paths) is
// checked again where it is used.
import { z } from 'zod';
import { Plan } from '../plan/plan.js';
import { ProfileMetadata } from '../profile/schema.js';

/** The workflow's steps, in order, as the operation record lists them. */
export const CLONE_STEPS = [
  'validate',
  'provision',
  'baseline',
  'plan',
  'apply',
  'start',
  'verify',
  'record',
] as const;
export type CloneStep = (typeof CLONE_STEPS)[number];
/** A plan-only request stops after `plan`: nothing on the target changes. */
export const PLAN_STEPS = ['validate', 'provision', 'baseline', 'plan'] as const;

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected 1 to 128 letters, digits, ".", "_" or "-"');

export const CloneTarget = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('host'),
      host: name.describe(
        'A registered host (POST /hosts): how it is reached, its pinned key, its credential',
      ),
    }),
    z.strictObject({
      kind: z.literal('pool'),
      pool: name.describe('A bare-metal pool: a free machine is taken, and given back on rollback'),
    }),
    z.strictObject({
      kind: z.literal('aws'),
      parameters: z.record(z.string().max(128), z.string().max(1024)).describe('Subnet, instance type...'),
    }),
    z.strictObject({
      kind: z.literal('azure'),
      parameters: z.record(z.string().max(128), z.string().max(1024)).describe('Resource group, size...'),
    }),
  ])
  .meta({ id: 'CloneTarget' });
export type CloneTarget = z.infer<typeof CloneTarget>;

const port = z.number().int().min(1).max(65535);
const urlPath = z
  .string()
  .max(2048)
  .regex(/^\/[\x21-\x7e]*$/, 'expected an absolute request path of printable ASCII, no spaces');

export const CloneValidation = z
  .strictObject({
    healthChecks: z.boolean().default(true).describe("Run the Profile's health checks on the clone"),
    probes: z
      .strictObject({
        port: port.optional().describe('Default: 80 when the source listens on it'),
        scheme: z.enum(['http', 'https']).default('http'),
        paths: z.array(urlPath).min(1).max(100).default(['/']),
        repeat: z.number().int().min(1).max(10).default(2),
      })
      .optional()
      .describe('Differential probes: the same safe requests to source and clone, compared'),
    load: z
      .strictObject({
        port: port.optional(),
        scheme: z.enum(['http', 'https']).default('http'),
        path: urlPath.default('/'),
        ratePerSecond: z.number().min(1).max(500).default(50),
        durationMs: z.number().int().min(500).max(60_000).default(3000),
        maxRequests: z.number().int().min(1).max(30_000).default(1500),
        tolerances: z
          .strictObject({
            p99Ratio: z.number().positive().max(100).optional(),
            errorRateDelta: z.number().min(0).max(1).optional(),
          })
          .optional(),
      })
      .optional()
      .describe('A bounded open-model load test of both, at a fixed rate'),
  })
  .meta({ id: 'CloneValidation' });
export type CloneValidation = z.infer<typeof CloneValidation>;

export const CloneRequest = z
  .strictObject({
    profile: z.strictObject({
      name: ProfileMetadata.shape.name.describe('The Profile to reproduce (usually the source host)'),
      version: z.number().int().positive().optional().describe('Default: the latest'),
    }),
    target: CloneTarget,
    mode: z
      .enum(['clone', 'plan'])
      .default('clone')
      .describe('plan: stop after planning; the target is not changed'),
    plan: Plan.optional().describe(
      'Apply exactly this saved plan; refused when the target changed since it was made',
    ),
    acceptNewHostKey: z.boolean().default(false).describe("Record the target's host key on first contact"),
    validation: CloneValidation.default({ healthChecks: true }),
  })
  .superRefine((r, ctx) => {
    if (r.plan !== undefined && r.mode === 'plan')
      ctx.addIssue({ code: 'custom', path: ['plan'], message: 'a saved plan is applied, not planned again' });
    if (r.plan !== undefined && r.plan.source.name !== r.profile.name)
      ctx.addIssue({
        code: 'custom',
        path: ['plan', 'source', 'name'],
        message: `the plan reproduces ${r.plan.source.name}, not ${r.profile.name}`,
      });
    if (
      r.plan !== undefined &&
      r.profile.version !== undefined &&
      r.plan.source.version !== undefined &&
      r.plan.source.version !== r.profile.version
    )
      ctx.addIssue({
        code: 'custom',
        path: ['plan', 'source', 'version'],
        message: `the plan reproduces version ${r.plan.source.version}, not ${r.profile.version}`,
      });
  })
  .meta({ id: 'CloneRequest' });
export type CloneRequest = z.infer<typeof CloneRequest>;
export type CloneRequestInput = z.input<typeof CloneRequest>;
