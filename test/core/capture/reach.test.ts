import { SSMClient } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import { type ReachDeps, transportFor } from '../../../core/capture/reach.js';
import { HostRegistration } from '../../../core/host/schema.js';
import { LocalTransport } from '../../../core/transport/local.js';
import { SsmTransport } from '../../../core/transport/ssm.js';

const deps = (extra: Partial<ReachDeps> = {}): ReachDeps => ({
  credentials: {
    resolve: () => Promise.reject(new Error('no credential is needed here')),
  },
  hostKeys: () => ({ get: async () => undefined, record: async () => {} }),
  ...extra,
});

const local = HostRegistration.parse({ name: 'self', platform: 'local', transport: 'local' });
const ssm = HostRegistration.parse({
  name: 'ec2-a',
  platform: 'aws',
  transport: 'ssm',
  instanceId: 'i-0123456789abcdef0',
});

describe('transportFor', () => {
  it('refuses to capture the machine it runs on unless the runtime is the user’s own', async () => {
    await expect(transportFor(deps(), local, { acceptNewHostKey: false })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [{ path: 'transport' }],
    });
    await expect(
      transportFor(deps({ allowLocal: true }), local, { acceptNewHostKey: false }),
    ).resolves.toBeInstanceOf(LocalTransport);
  });

  it('refuses an SSM host, by name, where the runtime has no SSM client (the embedded runtime)', async () => {
    await expect(transportFor(deps(), ssm, { acceptNewHostKey: false })).rejects.toThrow(
      /ec2-a is reached over SSM/,
    );
    await expect(
      transportFor(deps({ ssm: new SSMClient({ region: 'eu-west-1' }) }), ssm, { acceptNewHostKey: false }),
    ).resolves.toBeInstanceOf(SsmTransport);
  });
});
