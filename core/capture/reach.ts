// How a registered host is reached: its transport, its pinned host key, its credential.
import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import type { SecretRef } from '../profile/schema.js';
import type { HostKeyStore } from '../transport/host-keys.js';
import { LocalTransport } from '../transport/local.js';
import { SshTransport } from '../transport/ssh.js';
import { SsmTransport } from '../transport/ssm.js';
import type { Transport } from '../transport/transport.js';

export interface CredentialResolver {
  resolve(ref: SecretRef): Promise<Uint8Array>;
}

/** Credentials from Secrets Manager, SSM Parameter Store, a key file, or the store's own secrets. */
export class Credentials implements CredentialResolver {
  constructor(
    private readonly clients: {
      readonly secrets?: SecretsManagerClient;
      readonly ssm?: SSMClient;
      readonly sealed?: (name: string) => Promise<string>;
    },
  ) {}

  async resolve(ref: SecretRef): Promise<Uint8Array> {
    switch (ref.provider) {
      case 'aws-secretsmanager': {
        if (!this.clients.secrets) throw unsupported(ref.provider);
        const out = await this.clients.secrets.send(
          new GetSecretValueCommand({
            SecretId: ref.secretId,
            ...(ref.versionId ? { VersionId: ref.versionId } : {}),
          }),
        );
        if (out.SecretBinary) return out.SecretBinary;
        const text = out.SecretString ?? '';
        if (ref.jsonKey === undefined) return Buffer.from(text, 'utf8');
        const value = (JSON.parse(text) as Record<string, unknown>)[ref.jsonKey];
        if (typeof value !== 'string') {
          throw new InvalidInputError(`secret ${ref.secretId} has no string field ${ref.jsonKey}`, [
            { path: 'credentialRef.jsonKey', message: `not a field of ${ref.secretId}` },
          ]);
        }
        return Buffer.from(value, 'utf8');
      }
      case 'aws-ssm': {
        if (!this.clients.ssm) throw unsupported(ref.provider);
        const name = ref.version === undefined ? ref.parameter : `${ref.parameter}:${ref.version}`;
        const out = await this.clients.ssm.send(
          new GetParameterCommand({ Name: name, WithDecryption: true }),
        );
        return Buffer.from(out.Parameter?.Value ?? '', 'utf8');
      }
      case 'local':
        // `file:` names a key file on the machine that runs the capture (the CLI's machine).
        if (ref.key.startsWith('file:')) return readFile(ref.key.slice('file:'.length));
        if (!this.clients.sealed) throw unsupported('local');
        return Buffer.from(await this.clients.sealed(ref.key), 'utf8');
      default:
        throw unsupported(ref.provider);
    }
  }
}

const unsupported = (provider: string) =>
  new InvalidInputError(`credentials from ${provider} cannot be read here`, [
    { path: 'credentialRef.provider', message: `${provider} is not available to this runtime` },
  ]);

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
}

export async function transportFor(
  deps: ReachDeps,
  host: HostRegistration,
  options: { readonly acceptNewHostKey: boolean },
): Promise<Transport> {
  switch (host.transport) {
    case 'local':
      return new LocalTransport();
    case 'ssm':
      if (!deps.ssm) throw unsupported('ssm');
      return new SsmTransport({ ssm: deps.ssm, instanceId: host.instanceId as string });
    case 'ssh': {
      if (!host.credentialRef) {
        throw new InvalidInputError(`host ${host.name} has no credential`, [
          { path: 'credentialRef', message: 'required for SSH' },
        ]);
      }
      return new SshTransport({
        host: host.address as string,
        port: host.port,
        username: host.user,
        privateKey: await deps.credentials.resolve(host.credentialRef),
        hostKeys: deps.hostKeys(host),
        acceptNewHostKey: options.acceptNewHostKey,
      });
    }
  }
}
