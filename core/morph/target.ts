// A target profile: the partial Profile a host morphs toward ("web-server", "database-server"),
// with the trait vector that says what kind of host it suits. It is shipped as editable YAML
// (examples/targets/; the stack bundles them as JSON) and is data, never code: every field has a strict grammar, unknown keys
// are refused, a file it writes lives under /etc, carries no execute or set-id bit and lands
// nowhere a program is read from, and names that a command line receives never start with "-".
import * as z from 'zod';
import { TRAIT_WEIGHTS, type TraitName } from '../capture/traits.js';
import { InvalidInputError } from '../errors.js';
import { readDocumentText } from '../profile/document-text.js';
import { issuesFromZod } from '../profile/issues.js';

export const TRAIT_NAMES = Object.keys(TRAIT_WEIGHTS) as [TraitName, ...TraitName[]];

/** Target documents are small: a few sysctl keys, a few configuration files. */
export const TARGET_LIMITS = { maxBytes: 256 * 1024, maxFileBytes: 64 * 1024, maxEntries: 200 } as const;

const targetName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected lower-case letters, digits and "-", not starting with "-"');
const fraction = z.number().min(0).max(1);
const sysctlKey = z
  .string()
  .max(200)
  .regex(/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/, 'expected a sysctl key such as net.core.somaxconn');
const sysctlValue = z
  .string()
  .max(1024)
  .regex(/^[^\n\r\0]*$/, 'a sysctl value is one line');
export const serviceName = z
  .string()
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,254}$/,
    'expected letters, digits, "_", ".", "@", ":" or "-", not starting with "-"',
  );
const accountName = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,30}$/, 'expected a user or group name, not starting with "-"');

// Folders whose files a program executes or that grant privilege: a target never writes there.
const EXECUTABLE_FOLDERS =
  /^\/etc\/(init\.d|rc[0-6S]\.d|cron(\.[a-z]+|tab)?|profile\.d|sudoers(\.d)?|systemd|update-motd\.d|network\/if-[a-z-]+\.d|X11\/Xsession\.d|apt\/apt\.conf\.d|ld\.so\.(conf|preload)|pam\.d|security|ssh)(\/|$)/;

export const targetPath = z
  .string()
  .max(4096)
  .refine((p) => p.startsWith('/etc/'), 'a target writes configuration files under /etc/ only')
  .refine(
    (p) =>
      p
        .slice(1)
        .split('/')
        .every((s) => /^[A-Za-z0-9_@+][A-Za-z0-9._@+-]*$/.test(s) && s !== '.' && s !== '..'),
    'each segment is letters, digits, ".", "_", "@", "+" or "-", not "." or "..", not starting with "-" or "."',
  )
  .refine((p) => !EXECUTABLE_FOLDERS.test(p), 'a target does not write where programs are run from');

const fileMode = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'expected an octal mode such as 0644')
  .refine((m) => (Number.parseInt(m, 8) & 0o111) === 0, 'a target file is never executable');

export const TargetFile = z.strictObject({
  path: targetPath,
  content: z.string().max(TARGET_LIMITS.maxFileBytes),
  mode: fileMode.default('0644'),
  owner: accountName.default('root'),
  group: accountName.default('root'),
  /** The services that read this file: restarted when (and only when) the morph changes it. */
  restarts: z.array(serviceName).max(20).default([]),
});
export type TargetFile = z.infer<typeof TargetFile>;

export const TargetService = z.strictObject({
  name: serviceName,
  state: z.enum(['running', 'stopped']),
  enabled: z.boolean().optional(),
});
export type TargetService = z.infer<typeof TargetService>;

export const Probe = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('http'),
    port: z.number().int().min(1).max(65535),
    path: z
      .string()
      .max(512)
      .regex(/^\/[A-Za-z0-9._~/%?=&-]*$/, 'expected a URL path such as /health')
      .default('/'),
  }),
  z.strictObject({ kind: z.literal('load') }),
]);
export type Probe = z.infer<typeof Probe>;

/**
 * How the morph is watched: `samples` probes over `periodSeconds` after the apply, compared with
 * as many taken before it. Degraded: the median latency (or load) is more than `latencyPercent`
 * above the baseline's, or more than `errorRate` of the probes failed.
 */
export const Watch = z.strictObject({
  // One task invocation samples the whole period: Lambda's 15 minutes, less the probes' time.
  periodSeconds: z.number().int().min(0).max(840).default(60),
  samples: z.number().int().min(1).max(120).default(10),
  probe: Probe.default({ kind: 'load' }),
  tolerance: z
    .strictObject({
      latencyPercent: z.number().min(0).max(10_000).default(50),
      errorRate: fraction.default(0),
    })
    .default({ latencyPercent: 50, errorRate: 0 }),
});
export type Watch = z.infer<typeof Watch>;

/** What a morph request may say of its watch, over the target's: nothing here has a default. */
export const WatchOverride = z
  .strictObject({
    periodSeconds: Watch.shape.periodSeconds.unwrap().optional(),
    samples: Watch.shape.samples.unwrap().optional(),
    probe: Probe.optional(),
    tolerance: z
      .strictObject({ latencyPercent: z.number().min(0).max(10_000), errorRate: fraction })
      .partial()
      .optional(),
  })
  .meta({ id: 'WatchOverride' });
export type WatchOverride = z.infer<typeof WatchOverride>;
export type WatchInput = z.input<typeof Watch>;

export const TargetProfile = z
  .strictObject({
    apiVersion: z.literal('persona/v1'),
    kind: z.literal('TargetProfile'),
    metadata: z.strictObject({
      name: targetName,
      description: z.string().max(500).optional(),
    }),
    spec: z.strictObject({
      traits: z
        .partialRecord(z.enum(TRAIT_NAMES), fraction)
        .refine((t) => Object.keys(t).length > 0, 'a target names at least one trait'),
      /** How much each trait counts in the similarity (default 1). */
      importance: z.partialRecord(z.enum(TRAIT_NAMES), z.number().min(0).max(10)).default({}),
      sysctl: z
        .record(sysctlKey, sysctlValue)
        .refine((s) => Object.keys(s).length <= TARGET_LIMITS.maxEntries, 'too many sysctl keys')
        .default({}),
      files: z.array(TargetFile).max(TARGET_LIMITS.maxEntries).default([]),
      services: z.array(TargetService).max(TARGET_LIMITS.maxEntries).default([]),
      watch: Watch.optional(),
    }),
  })
  .superRefine((t, ctx) => {
    const seen = new Set<string>();
    t.spec.files.forEach((f, i) => {
      if (seen.has(f.path))
        ctx.addIssue({ code: 'custom', path: ['spec', 'files', i, 'path'], message: 'a path appears twice' });
      seen.add(f.path);
    });
    const names = new Set<string>();
    t.spec.services.forEach((s, i) => {
      if (names.has(s.name))
        ctx.addIssue({
          code: 'custom',
          path: ['spec', 'services', i, 'name'],
          message: 'a service appears twice',
        });
      names.add(s.name);
    });
  })
  .meta({ id: 'TargetProfile', description: 'A partial Profile a host can morph toward, with its traits' });
export type TargetProfile = z.infer<typeof TargetProfile>;

/**
 * Reads and checks a target document (YAML or JSON), naming the field of every problem. The YAML
 * parser is loaded only for a YAML target: the stack ships the targets as JSON (infra/morph.ts).
 */
export async function readTarget(text: string | Uint8Array, source = 'target'): Promise<TargetProfile> {
  const located = await readDocumentText(text, {
    source,
    maxBytes: TARGET_LIMITS.maxBytes,
    kind: 'a target',
  });
  const result = TargetProfile.safeParse(located.value);
  if (!result.success)
    throw new InvalidInputError(
      `${source} is not a valid target profile`,
      issuesFromZod(result.error, located.locate),
      { source },
    );
  return result.data;
}
