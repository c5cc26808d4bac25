// A cloud adaptor built on its first call: nothing is loaded or read for operations that never
// reach that cloud, a build that failed is tried again, and a built one is built only once.
import { describe, expect, it } from 'vitest';
import { lazyAdaptor } from '../../../core/platform/lazy.js';
import type { PlatformAdaptor, ProvisionHandle } from '../../../core/platform/platform.js';

const handle: ProvisionHandle = { platform: 'azure', operation: 'op-1', id: 'vm-1', scope: 'rg-1' };

function fakeAdaptor(calls: string[]): PlatformAdaptor {
  const no = () => Promise.reject(new Error('not used here'));
  return {
    platform: 'azure',
    provision: no,
    poll: async (h) => {
      calls.push(`poll ${h.id}`);
      return { state: 'pending', detail: 'starting' } as never;
    },
    snapshot: no,
    restore: no,
    resize: no,
    terminate: async (h) => {
      calls.push(`terminate ${h.id}`);
    },
    transport: no,
  };
}

describe('lazyAdaptor', () => {
  it('builds nothing until a call needs it, then builds once', async () => {
    const calls: string[] = [];
    let builds = 0;
    const adaptor = lazyAdaptor('azure', async () => {
      builds++;
      return fakeAdaptor(calls);
    });
    expect(adaptor.platform).toBe('azure');
    expect(builds).toBe(0);
    await adaptor.poll(handle);
    await adaptor.terminate(handle);
    expect(builds).toBe(1);
    expect(calls).toEqual(['poll vm-1', 'terminate vm-1']);
  });

  it('fails the call whose build failed, and builds again at the next', async () => {
    const calls: string[] = [];
    let builds = 0;
    const adaptor = lazyAdaptor('azure', async () => {
      builds++;
      if (builds === 1) throw new Error('the Azure credentials secret has no clientSecret');
      return fakeAdaptor(calls);
    });
    await expect(adaptor.terminate(handle)).rejects.toThrow(/no clientSecret/);
    await adaptor.terminate(handle);
    expect(builds).toBe(2);
    expect(calls).toEqual(['terminate vm-1']);
  });
});
