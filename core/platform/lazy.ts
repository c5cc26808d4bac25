// An adaptor built on its first call: a workflow task's cold start need not load a cloud's
// client code (or read its credentials) for the many operations that never touch that cloud.
import type { Platform, PlatformAdaptor } from './platform.js';

export function lazyAdaptor(platform: Platform, build: () => Promise<PlatformAdaptor>): PlatformAdaptor {
  let built: Promise<PlatformAdaptor> | undefined;
  const adaptor = () => {
    // A failed build (a secret not readable yet) is tried again at the next call.
    built ??= build().catch((error: unknown) => {
      built = undefined;
      throw error;
    });
    return built;
  };
  return {
    platform,
    provision: async (request) => (await adaptor()).provision(request),
    poll: async (handle) => (await adaptor()).poll(handle),
    snapshot: async (host, scope) => (await adaptor()).snapshot(host, scope),
    restore: async (host, snapshot) => (await adaptor()).restore(host, snapshot),
    resize: async (host, size, options) => (await adaptor()).resize(host, size, options),
    terminate: async (handle) => (await adaptor()).terminate(handle),
    transport: async (host) => (await adaptor()).transport(host),
  };
}
