// How a registered host is reached: its transport, its pinned host key, its credential.
import type { SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import type { SecretRef } from '../profile/schema.js';
import { SecretResolver, type SecretResolverDeps } from '../secret/resolve.js';
import type { HostKeyStore } from '../transport/host-keys.js';
import type { SsmOutputBucket } from '../transport/ssm.js';
import type { Transport } from '../transport/transport.js';

export interface CredentialResolver {
  /** The credential `ref` stands for, for `host` only (core/secret/resolve.ts). */
  resolve(ref: SecretRef, host: string): Promise<Uint8Array>;
}

/**
 * Credentials from Secrets Manager, SSM Parameter Store, KMS, or the host's own sealed secrets.
 * A registration is data: its reference can name neither a file here nor another host's secret.
 */
export class Credentials implements CredentialResolver {
  private readonly resolver: SecretResolver;

  constructor(deps: SecretResolverDeps) {
    this.resolver = new SecretResolver(deps);
  }

  /** Refuses a reference this runtime cannot resolve for `host`, naming the field. */
  check(ref: SecretRef, host: string): void {
    this.resolver.check({ ref, host, field: 'credentialRef' });
  }

  resolve(ref: SecretRef, host: string): Promise<Uint8Array> {
    return this.resolver.resolve({ ref, host, field: 'credentialRef' });
  }
}

/** Host keys pinned in the host's registration: recorded there on first contact when allowed. */
export class RegisteredHostKeys implements HostKeyStore {
  constructor(
    private readonly hosts: HostRegistry,
    private readonly name: string,
  ) {}

  async get(): Promise<string | undefined> {
    return (await this.hosts.get(this.name)).registration.hostKeyFingerprint;
  }

  async record(_host: string, _port: number, fingerprint: string): Promise<void> {
    const { registration } = await this.hosts.get(this.name);
    await this.hosts.save({ ...registration, hostKeyFingerprint: fingerprint }, new Date());
  }
}

export interface ReachDeps {
  readonly credentials: CredentialResolver;
  readonly hostKeys: (host: HostRegistration) => HostKeyStore;
  readonly ssm?: SSMClient;
  /**
   * Whether a host registered with `transport: local` may be captured: the machine running the
   * capture itself. Only where that machine is the user's own (the CLI, the embedded runtime).
   */
  readonly allowLocal?: boolean;
  /** Where SSM writes output over its inline limits; without it such output cannot be read. */
  readonly ssmOutput?: SsmOutputBucket;
}

export async function transportFor(
  deps: ReachDeps,
  host: HostRegistration,
  options: { readonly acceptNewHostKey: boolean },
): Promise<Transport> {
  // Each transport is loaded when a host first needs it: a function reaches hosts over one or two
  // of them, and never needs the others' code (ssh2 alone is a few hundred KB).
  switch (host.transport) {
    case 'local':
      if (!deps.allowLocal)
        throw new InvalidInputError(`host ${host.name} is local: this runtime does not capture itself`, [
          { path: 'transport', message: 'local is only for the CLI and the embedded runtime' },
        ]);
      return new (await import('../transport/local.js')).LocalTransport();
    case 'ssm': {
      if (!deps.ssm)
        throw new InvalidInputError(`host ${host.name} is reached over SSM, which this runtime cannot use`, [
          { path: 'transport', message: 'ssm needs the AWS deployment (or the CLI with AWS credentials)' },
        ]);
      const { SsmTransport } = await import('../transport/ssm.js');
      return new SsmTransport({
        ssm: deps.ssm,
        instanceId: host.instanceId as string,
        ...(deps.ssmOutput ? { output: deps.ssmOutput } : {}),
      });
    }
    case 'ssh': {
      if (!host.credentialRef) {
        throw new InvalidInputError(`host ${host.name} has no credential`, [
          { path: 'credentialRef', message: 'required for SSH' },
        ]);
      }
      const { SshTransport } = await import('../transport/ssh.js');
      return new SshTransport({
        host: host.address as string,
        port: host.port,
        username: host.user,
        privateKey: await deps.credentials.resolve(host.credentialRef, host.name),
        hostKeys: deps.hostKeys(host),
        acceptNewHostKey: options.acceptNewHostKey,
      });
    }
  }
}
