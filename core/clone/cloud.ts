// A clone's target provisioned in a cloud (EC2, Azure) rather than taken from a pool: Provision
// starts it through the platform's adaptor and records the handle before anything else can
// fail, so a rollback always knows what to terminate; Poll asks the adaptor until the host is
// up, then registers it as a host like any other (reached over SSM on EC2, over SSH with a key
// Persona made and sealed for it on Azure), so Baseline, Plan, Apply and the rest run unchanged.
// A rollback, or a plan-only clone once planned, terminates what was provisioned.
import { createHash } from 'node:crypto';
import { InvalidInputError, PersonaError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import { HostRegistration } from '../host/schema.js';
import type { Platform, PlatformAdaptor, ProvisionHandle, ProvisionRequest } from '../platform/platform.js';
import { shapeOf } from '../platform/shape.js';
import type { Profile } from '../profile/schema.js';
import type { SecretVault } from '../snapshot/secrets.js';
import type { CloneRequest, CloneTarget } from './request.js';

export type CloudKind = 'aws' | 'azure';
export type CloudTarget = Extract<CloneTarget, { kind: CloudKind }>;

/** The adaptors this deployment has, by the target kind a request names. */
export type CloudPlatforms = Partial<Record<CloudKind, PlatformAdaptor>>;

const PLATFORM_OF: Record<CloudKind, Platform> = { aws: 'ec2', azure: 'azure' };

/** What the target document keeps of a cloud target: enough to poll it, reach it and end it. */
export interface CloudRecord {
  readonly kind: CloudKind;
  readonly startedAt: string;
  /** Absent only while the adaptor's provision call has not answered. */
  readonly handle?: ProvisionHandle;
  /** The login key Persona made for the host, sealed in the store (Azure; EC2 uses SSM). */
  readonly credential?: { readonly key: string; readonly digest: string };
  /** Set once what was provisioned has been terminated. */
  readonly terminatedAt?: string;
}

export const isCloud = (target: CloneTarget): target is CloudTarget =>
  target.kind === 'aws' || target.kind === 'azure';

/** How long a host may take to come up before the clone gives up on it and rolls back. */
export const PROVISION_TIMEOUT_MS = 20 * 60_000;

/** The platform could not give the clone a host (it failed, or never became ready). */
export class ProvisioningFailedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'ProvisioningFailedError';
  }
}

export function adaptorFor(platforms: CloudPlatforms | undefined, kind: CloudKind): PlatformAdaptor {
  const adaptor = platforms?.[kind];
  if (adaptor === undefined) {
    throw new InvalidInputError(`this deployment has no ${kind === 'aws' ? 'AWS EC2' : 'Azure'} adaptor`, [
      {
        path: 'target.kind',
        message:
          kind === 'aws'
            ? 'EC2 is not reachable from here (the embedded runtime reaches AWS only through AWS_ENDPOINT_URL_EC2 and AWS_ENDPOINT_URL_SSM)'
            : 'Azure is not configured (PERSONA_AZURE_SUBSCRIPTION and credentials)',
      },
    ]);
  }
  return adaptor;
}

/**
 * The name the provisioned host is registered under: the source's name and a digest of the
 * operation, within the host name grammar, the same on every retry of the step.
 */
export function cloudHostName(source: string, operation: string): string {
  const digest = createHash('sha256').update(operation).digest('hex').slice(0, 10);
  const stem = source
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return `${stem || 'clone'}-clone-${digest}`;
}

/** Makes a fresh key pair in OpenSSH form (core/transport/ssh.ts: loginKeyPair). */
export type LoginKeys = (comment: string) => { readonly privateKey: string; readonly publicKey: string };

/** The adaptor's request from the clone's: the source's shape, the target's placement, tags. */
export function provisionRequest(
  operation: string,
  request: CloneRequest,
  target: CloudTarget,
  source: Profile,
  sshPublicKey?: string,
): ProvisionRequest {
  const tags = { ...(target.tags ?? {}) };
  const common = {
    operation,
    shape: shapeOf(source),
    // Azure keeps the persona- prefix for the adaptor's own tags; EC2 takes Persona's source tag.
    tags: target.kind === 'aws' ? { ...tags, 'persona:source': request.profile.name } : tags,
    ...(sshPublicKey ? { sshPublicKey } : {}),
  };
  if (target.kind === 'aws') {
    return {
      ...common,
      ...(target.instanceType ? { size: target.instanceType } : {}),
      ...(target.image ? { image: target.image } : {}),
      network: {
        subnet: target.subnet,
        ...(target.securityGroups?.length ? { securityGroups: target.securityGroups.join(',') } : {}),
      },
      parameters: {
        instanceProfile: target.instanceProfile,
        ...(target.ingressCidr ? { ingressCidr: target.ingressCidr } : {}),
      },
    };
  }
  return {
    ...common,
    ...(target.size ? { size: target.size } : {}),
    ...(target.image ? { image: target.image } : {}),
    network: { subnet: target.subnet },
    parameters: { resourceGroup: target.resourceGroup, location: target.location },
  };
}

/** Starts provisioning; the caller has recorded `record` (without a handle) already. */
export async function startProvisioning(
  adaptor: PlatformAdaptor,
  vault: SecretVault,
  loginKeys: LoginKeys | undefined,
  args: {
    readonly operation: string;
    readonly request: CloneRequest;
    readonly target: CloudTarget;
    readonly source: Profile;
    readonly host: string;
  },
): Promise<Pick<CloudRecord, 'handle' | 'credential'>> {
  let credential: CloudRecord['credential'];
  let publicKey: string | undefined;
  if (args.target.kind === 'azure') {
    // A key of its own for each clone, sealed like a key given to `persona capture --key`: the
    // registered host's credential. Nothing of it goes into the request, the handle or tags.
    if (loginKeys === undefined)
      throw new Error('this deployment cannot make login keys for provisioned hosts');
    const pair = loginKeys(`persona-${args.host}`);
    const key = `${args.host}/credential/ssh`;
    const sealed = await vault.put(key, pair.privateKey);
    credential = { key, digest: sealed.digest };
    publicKey = pair.publicKey;
  }
  const handle = await adaptor.provision(
    provisionRequest(args.operation, args.request, args.target, args.source, publicKey),
  );
  if (handle.platform !== PLATFORM_OF[args.target.kind])
    throw new Error(`the ${args.target.kind} adaptor answered for ${handle.platform}`);
  return { handle, ...(credential ? { credential } : {}) };
}

export type PollOutcome =
  | { readonly ready: false; readonly waitSeconds: number; readonly detail?: string }
  | { readonly ready: true; readonly registration: HostRegistration };

/** Where provisioning is; once ready, the registration the rest of the clone reaches it by. */
export async function pollProvisioning(
  adaptor: PlatformAdaptor,
  record: CloudRecord,
  args: { readonly host: string; readonly operation: string; readonly now: Date },
): Promise<PollOutcome> {
  if (record.handle === undefined)
    throw new ProvisioningFailedError('provisioning never answered with what it started');
  const status = await adaptor.poll(record.handle);
  if (status.state === 'failed') throw new ProvisioningFailedError(`provisioning failed: ${status.reason}`);
  if (status.state === 'pending') {
    const waited = args.now.getTime() - Date.parse(record.startedAt);
    if (waited > PROVISION_TIMEOUT_MS) {
      throw new ProvisioningFailedError(
        `the host was not ready after ${Math.round(waited / 60_000)} minutes${status.detail ? ` (${status.detail})` : ''}`,
      );
    }
    return {
      ready: false,
      waitSeconds: Math.min(60, Math.max(1, Math.ceil(status.retryAfterMs / 1000))),
      ...(status.detail ? { detail: status.detail } : {}),
    };
  }
  const { access } = status.host;
  const tags = { 'persona:operation': args.operation, 'persona:platform-id': status.host.id };
  const registration: HostRegistration =
    access.transport === 'ssm'
      ? {
          name: args.host,
          platform: record.kind,
          transport: 'ssm',
          instanceId: access.instanceId,
          ...(access.region ? { region: access.region } : {}),
          ...(access.address ? { address: access.address } : {}),
          port: 22,
          user: 'root',
          tags,
          paths: [],
          processes: [],
        }
      : {
          name: args.host,
          platform: record.kind,
          transport: 'ssh',
          address: access.address,
          port: access.port,
          user: access.user,
          ...(access.hostKeyFingerprint ? { hostKeyFingerprint: access.hostKeyFingerprint } : {}),
          ...(record.credential
            ? {
                credentialRef: {
                  provider: 'local',
                  key: record.credential.key,
                  digest: record.credential.digest,
                },
              }
            : {}),
          tags,
          paths: [],
          processes: [],
        };
  // What the platform answered is data: an address or id that is not one is refused here,
  // before it reaches the registry, a transport or a probe's URL.
  const checked = HostRegistration.safeParse(registration);
  if (!checked.success)
    throw new ProvisioningFailedError(
      `the platform's answer for ${record.handle.id} is not a host Persona can reach: ${checked.error.issues
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')}`,
    );
  return { ready: true, registration: checked.data };
}

/** Registers the provisioned host; a retried Poll finds it registered as it was. */
export async function registerProvisioned(
  hosts: HostRegistry,
  registration: HostRegistration,
  now: Date,
): Promise<void> {
  await hosts.register(registration, now);
}
