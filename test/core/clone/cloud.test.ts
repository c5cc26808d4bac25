// A cloud target's host as the platform answers for it: registered only when what came back is
// a host Persona can reach, the adaptor's wait honoured within bounds, failures named.
import { describe, expect, it } from 'vitest';
import { cloudHostName, ProvisioningFailedError, pollProvisioning } from '../../../core/clone/cloud.js';
import type { PlatformAdaptor, ProvisionStatus } from '../../../core/platform/platform.js';

const handle = { platform: 'azure' as const, operation: 'op-1', id: 'vm-1', scope: 'rg' };
const record = { kind: 'azure' as const, startedAt: '2026-12-01T10:00:00.000Z', handle };
const now = new Date('2026-12-01T10:01:00.000Z');

function answering(status: ProvisionStatus): PlatformAdaptor {
  return { poll: async () => status } as unknown as PlatformAdaptor;
}
const ready = (address: string): ProvisionStatus => ({
  state: 'ready',
  host: { ...handle, access: { transport: 'ssh', address, port: 22, user: 'root' } },
});

describe('pollProvisioning', () => {
  it('registers a ready host reached over SSH with the sealed login key', async () => {
    const out = await pollProvisioning(
      answering(ready('10.0.0.7')),
      { ...record, credential: { key: 'web-clone-x/credential/ssh', digest: 'a'.repeat(64) } },
      { host: 'web-clone-x', operation: 'op-1', now },
    );
    expect(out).toMatchObject({
      ready: true,
      registration: { name: 'web-clone-x', transport: 'ssh', address: '10.0.0.7', platform: 'azure' },
    });
  });

  it('refuses an answer whose address could be read as an option or hold a command', async () => {
    for (const address of ['-oProxyCommand=touch /tmp/x', '10.0.0.7; reboot', ''])
      await expect(
        pollProvisioning(
          answering(ready(address)),
          {
            ...record,
            credential: { key: 'web-clone-x/credential/ssh', digest: 'a'.repeat(64) },
          },
          { host: 'web-clone-x', operation: 'op-1', now },
        ),
      ).rejects.toBeInstanceOf(ProvisioningFailedError);
  });

  it('asks the workflow to wait between 1 and 60 s, and gives up after 20 minutes', async () => {
    const pending = answering({ state: 'pending', retryAfterMs: 500_000 });
    expect(await pollProvisioning(pending, record, { host: 'h', operation: 'op-1', now })).toEqual({
      ready: false,
      waitSeconds: 60,
    });
    const late = new Date('2026-12-01T10:21:00.000Z');
    await expect(
      pollProvisioning(pending, record, { host: 'h', operation: 'op-1', now: late }),
    ).rejects.toThrow(/not ready after 21 minutes/);
    await expect(
      pollProvisioning(answering({ state: 'failed', reason: 'AllocationFailed' }), record, {
        host: 'h',
        operation: 'op-1',
        now,
      }),
    ).rejects.toThrow(/provisioning failed: AllocationFailed/);
  });
});

describe('cloudHostName', () => {
  it('is a host name of the grammar, the same for the same operation, whatever the source is called', () => {
    expect(cloudHostName('Web_Shop', 'op-1')).toBe(cloudHostName('Web_Shop', 'op-1'));
    expect(cloudHostName('Web_Shop', 'op-1')).toMatch(/^web-shop-clone-[0-9a-f]{10}$/);
    expect(cloudHostName('--', 'op-2')).toMatch(/^clone-clone-[0-9a-f]{10}$/);
    expect(cloudHostName('a', 'op-1')).not.toBe(cloudHostName('a', 'op-2'));
  });
});
