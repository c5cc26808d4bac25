// Turning a secret reference back into its value, for one host and only for it. A reference comes
// from data (a Profile, a host registration), so what it may name is confined: a `local` key names
// an entry of Persona's own sealed secret store under the host's prefix — never a file, never
// another host's secret — and an `aws-kms` ciphertext opens only with the host named in its
// encryption context.
import { DecryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError } from '../errors.js';
import { localSecretKeyProblem, type SecretRef } from '../profile/schema.js';
import type { SecretVault } from '../snapshot/secrets.js';

/** The encryption context an `aws-kms` reference's ciphertext was made with: it names the host. */
export const kmsEncryptionContext = (host: string): Record<string, string> => ({ 'persona:host': host });

export interface SecretResolverDeps {
  /** The sealed secret store, where this runtime holds it: `local` references resolve there only. */
  readonly vault?: () => Promise<SecretVault>;
  readonly kms?: KMSClient;
  readonly secretsManager?: SecretsManagerClient;
  readonly ssm?: SSMClient;
}

export interface SecretResolution {
  readonly ref: SecretRef;
  /** The host the value is for: confines `local` keys and is the `aws-kms` encryption context. */
  readonly host: string;
  /** Where the reference sits in the document, for messages (`credentialRef`, `spec.users[2].passwordRef`). */
  readonly field?: string;
}

export class SecretResolver {
  constructor(private readonly deps: SecretResolverDeps) {}

  /**
   * Refuses, with an InvalidInputError naming the field, a reference this runtime could not or
   * may not resolve for `host`: before anything is stored or any host is reached.
   */
  check({ ref, host, field = 'secretRef' }: SecretResolution): void {
    const refuse = (path: string, message: string): never => {
      throw new InvalidInputError(`${field}: ${message}`, [{ path: `${field}.${path}`, message }]);
    };
    switch (ref.provider) {
      case 'local': {
        const problem = localSecretKeyProblem(ref.key);
        if (problem !== undefined) refuse('key', problem);
        if (!ref.key.startsWith(`${host}/`))
          refuse(
            'key',
            `a local secret reference of host ${host} names one of its own secrets, "${host}/…"; "${ref.key.slice(0, 80)}" is not one`,
          );
        if (ref.digest === undefined)
          refuse('digest', 'a local secret reference pins the value it means with its digest');
        if (!this.deps.vault) refuse('provider', 'local secrets are not available to this runtime');
        return;
      }
      case 'aws-kms':
        if (!this.deps.kms)
          refuse(
            'provider',
            'aws-kms references need AWS KMS, which this runtime does not have (the embedded runtime resolves local references only)',
          );
        return;
      case 'aws-secretsmanager':
        if (!this.deps.secretsManager)
          refuse('provider', 'aws-secretsmanager references cannot be read by this runtime');
        return;
      case 'aws-ssm':
        if (!this.deps.ssm) refuse('provider', 'aws-ssm references cannot be read by this runtime');
        return;
    }
  }

  /** The value `ref` stands for, for `host`; refused as `check` would refuse it. */
  async resolve(resolution: SecretResolution): Promise<Uint8Array> {
    this.check(resolution);
    const { ref, host } = resolution;
    switch (ref.provider) {
      case 'local': {
        const vault = await (this.deps.vault as () => Promise<SecretVault>)();
        return vault.get(ref.key, ref.digest as string);
      }
      case 'aws-kms': {
        const out = await (this.deps.kms as KMSClient).send(
          new DecryptCommand({
            CiphertextBlob: Buffer.from(ref.ciphertext, 'base64'),
            // Naming the key makes KMS refuse a ciphertext made under another key; the context
            // makes it refuse one made for another host.
            KeyId: ref.keyId,
            EncryptionContext: kmsEncryptionContext(host),
          }),
        );
        if (out.Plaintext === undefined)
          throw new InvalidInputError(`${resolution.field ?? 'secretRef'}: KMS returned no plaintext`, [
            { path: `${resolution.field ?? 'secretRef'}.ciphertext`, message: 'Decrypt returned nothing' },
          ]);
        return new Uint8Array(out.Plaintext);
      }
      case 'aws-secretsmanager': {
        const out = await (this.deps.secretsManager as SecretsManagerClient).send(
          new GetSecretValueCommand({
            SecretId: ref.secretId,
            ...(ref.versionId ? { VersionId: ref.versionId } : {}),
          }),
        );
        if (out.SecretBinary) return out.SecretBinary;
        const text = out.SecretString ?? '';
        if (ref.jsonKey === undefined) return Buffer.from(text, 'utf8');
        let value: unknown;
        try {
          value = (JSON.parse(text) as Record<string, unknown>)[ref.jsonKey];
        } catch {
          value = undefined;
        }
        if (typeof value !== 'string') {
          const field = resolution.field ?? 'secretRef';
          throw new InvalidInputError(`secret ${ref.secretId} has no string field ${ref.jsonKey}`, [
            { path: `${field}.jsonKey`, message: `not a field of ${ref.secretId}` },
          ]);
        }
        return Buffer.from(value, 'utf8');
      }
      case 'aws-ssm': {
        const name = ref.version === undefined ? ref.parameter : `${ref.parameter}:${ref.version}`;
        const out = await (this.deps.ssm as SSMClient).send(
          new GetParameterCommand({ Name: name, WithDecryption: true }),
        );
        return Buffer.from(out.Parameter?.Value ?? '', 'utf8');
      }
    }
  }
}
