// A registered host: how to reach it and what to capture. Credentials are references.
import * as z from 'zod';
import { processNameProblem } from '../capture/process-name.js';
import { SecretRef } from '../profile/schema.js';
import { pathProblem } from '../transport/paths.js';
import { displayValue } from '../transport/shell.js';

/** A zod check from a grammar's problem function: the issue shows the value, escaped. */
function grammar(problem: (value: string) => string | undefined) {
  return (ctx: z.core.ParsePayload<string>) => {
    const found = problem(ctx.value);
    if (found !== undefined) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: `${displayValue(ctx.value)} ${found}` });
    }
  };
}

/** Limits on a host registration, documented in the README. */
export const HOST_LIMITS = {
  /** Bytes of the registration document (POST /hosts). */
  maxBytes: 64 * 1024,
  /** AWS allows 50 tags on a resource; a registration allows as many. */
  maxTags: 50,
  maxPaths: 256,
  maxProcesses: 256,
} as const;

const hostName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, 'expected lower-case letters, digits, ".", "_" or "-"');

export const HostRegistration = z
  .strictObject({
    name: hostName,
    platform: z.enum(['aws', 'azure', 'baremetal', 'local']),
    transport: z.enum(['ssh', 'ssm', 'local']),
    /** SSH: the address (IP or DNS name). */
    address: z
      .string()
      // No leading "-": an address is never to be read as an option of ssh or a tool like it.
      .regex(/^[A-Za-z0-9.:][A-Za-z0-9.:-]*$/, 'expected an IP address or host name')
      .optional(),
    port: z.number().int().min(1).max(65535).default(22),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]*$/, 'expected a user name')
      .default('root'),
    /** SSM: an EC2 instance (i-…) or a hybrid-activated machine (mi-…). */
    instanceId: z
      .string()
      .regex(/^(i|mi)-[0-9a-f]{8,17}$/, 'expected i-… or mi-…')
      .optional(),
    region: z
      .string()
      .regex(/^[a-z0-9-]{1,32}$/, 'expected a region name such as eu-west-1')
      .optional(),
    /** SSH: where the private key is kept. */
    credentialRef: SecretRef.optional(),
    /** SSH: the host key fingerprint to pin (SHA256:…); recorded on first capture when absent. */
    hostKeyFingerprint: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected an OpenSSH SHA256 fingerprint')
      .optional(),
    tags: z
      .record(z.string().min(1).max(128), z.string().max(256))
      .refine((t) => Object.keys(t).length <= HOST_LIMITS.maxTags, `at most ${HOST_LIMITS.maxTags} tags`)
      .default({}),
    /** Application trees to snapshot besides /etc, in the path grammar (core/transport/paths.ts). */
    paths: z
      .array(
        z
          .string()
          .check(grammar(pathProblem))
          .describe(
            'An absolute path in normal form (no empty, "." or ".." names, no trailing "/"), without control characters, whose first name does not start with "-", at most 4095 bytes',
          ),
      )
      .max(HOST_LIMITS.maxPaths, `at most ${HOST_LIMITS.maxPaths} paths`)
      .default([]),
    /** Processes (`comm` names) whose environment and allocations belong to the application. */
    processes: z
      .array(
        z
          .string()
          .check(grammar(processNameProblem))
          .describe(
            'A process name as the kernel shows it (comm), 1 to 64 characters, no control characters',
          ),
      )
      .max(HOST_LIMITS.maxProcesses, `at most ${HOST_LIMITS.maxProcesses} processes`)
      .default([]),
  })
  .superRefine((h, ctx) => {
    if (h.transport === 'ssh') {
      if (!h.address)
        ctx.addIssue({ code: 'custom', path: ['address'], message: 'an SSH host needs an address' });
      if (!h.credentialRef) {
        ctx.addIssue({
          code: 'custom',
          path: ['credentialRef'],
          message: 'an SSH host needs a credential reference',
        });
      }
    }
    // A registration is data from a request: its credential may name the host's own sealed
    // secrets only, never a file on the machine that runs Persona nor another host's secret.
    if (h.credentialRef?.provider === 'local') {
      if (!h.credentialRef.key.startsWith(`${h.name}/`))
        ctx.addIssue({
          code: 'custom',
          path: ['credentialRef', 'key'],
          message: `a local credential names one of host ${h.name}'s own sealed secrets, "${h.name}/…" (persona capture --key seals one as "${h.name}/credential/ssh")`,
        });
      else if (h.credentialRef.digest === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['credentialRef', 'digest'],
          message: 'a local credential pins the sealed value it means with its digest',
        });
    }
    if (h.transport === 'ssm' && !h.instanceId) {
      ctx.addIssue({
        code: 'custom',
        path: ['instanceId'],
        message: 'an SSM host needs an instance id (i-… or mi-…)',
      });
    }
  })
  .meta({ id: 'HostRegistration' });
export type HostRegistration = z.infer<typeof HostRegistration>;

export const HostRecord = z
  .object({
    registration: HostRegistration,
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
    lastCapture: z
      .object({
        operationId: z.string(),
        at: z.iso.datetime(),
        profileVersion: z.number().int().optional(),
        /**
         * The host's state fingerprint over these trees (core/clone/fingerprint.ts), taken
         * before and after that capture and equal both times: a re-clone that finds it unchanged
         * plans from this capture instead of capturing the host again.
         */
        state: z.object({ fingerprint: z.string(), paths: z.array(z.string()) }).optional(),
      })
      .optional(),
  })
  .meta({ id: 'HostRecord' });
export type HostRecord = z.infer<typeof HostRecord>;
