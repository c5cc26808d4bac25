// What a clone is asked to do: which Profile (and version) to reproduce, on which target, and how
// to prove the clone behaves like its source. A request is data from a caller: every field is
// checked here, before an operation is recorded, and what it names (hosts, pools, paths) is
// checked again where it is used.
import * as z from 'zod';
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

const cidr = z
  .string()
  .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'expected an IPv4 CIDR such as 10.0.0.0/16');
const tags = z
  .record(
    z.string().regex(/^[\w .:/=+@-]{1,127}$/, 'expected a tag key of letters, digits and _ .:/=+-@'),
    z.string().max(255),
  )
  .refine((t) => Object.keys(t).length <= 40, 'at most 40 tags')
  .describe("Tags for everything provisioned, besides Persona's own");

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
      subnet: z
        .string()
        .regex(/^subnet-[0-9a-f]{8,17}$/, 'expected a subnet id, subnet-…')
        .describe('The subnet the instance is launched in (its VPC is where its security group goes)'),
      securityGroups: z
        .array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'expected a security group id, sg-…'))
        .max(4)
        .optional()
        .describe('Groups to attach besides the one Persona makes for the clone'),
      instanceProfile: z
        .string()
        .regex(
          /^(arn:aws[a-z-]*:iam::\d{12}:instance-profile\/)?[\w+=,.@/-]{1,128}$/,
          'expected an instance profile name or ARN',
        )
        .describe(
          'An instance profile whose role has AmazonSSMManagedInstanceCore: Persona reaches the clone over SSM',
        ),
      instanceType: z
        .string()
        .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'expected an instance type such as m7i.large')
        .optional()
        .describe("Default: mapped from the source's processor and memory"),
      image: z
        .string()
        .regex(/^ami-[0-9a-f]{8,17}$/, 'expected an AMI id, ami-…')
        .optional()
        .describe("Default: the source's own AMI, else its distribution's official image"),
      ingressCidr: cidr.optional().describe("Who may reach the application's ports. Default: the VPC's CIDR"),
      tags: tags.optional(),
    }),
    z.strictObject({
      kind: z.literal('azure'),
      resourceGroup: z
        .string()
        .regex(/^[-\w._()]{1,90}$/, 'expected a resource group name')
        .describe('The resource group the VM, its disks, NIC and NSG go in'),
      location: z
        .string()
        .regex(/^[a-z0-9]{1,40}$/, 'expected a location such as westeurope')
        .describe('The Azure region'),
      subnet: z
        .string()
        .max(1024)
        .regex(
          /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i,
          'expected the resource id of a virtual network subnet',
        )
        .describe('The subnet the VM joins'),
      size: z
        .string()
        .regex(/^[A-Za-z0-9_]{1,64}$/, 'expected a VM size such as Standard_D2s_v5')
        .optional()
        .describe("Default: mapped from the source's processor and memory"),
      image: z
        .string()
        .regex(/^[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+$/, 'expected an image URN, publisher:offer:sku:version')
        .optional()
        .describe("Default: the source's distribution's image"),
      tags: tags.optional(),
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
