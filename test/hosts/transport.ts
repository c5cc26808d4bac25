// The SSH transport to a test host as Persona's control side reaches it: the host's own key pinned,
// so a test never accepts a key it was not given.
import { MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { SshTransport } from '../../core/transport/ssh.js';
import type { TestHost } from './harness.js';

export function sshTransportTo(host: TestHost): SshTransport {
  return new SshTransport({
    host: host.address,
    port: host.port,
    username: host.user,
    privateKey: host.privateKey,
    hostKeys: new MemoryHostKeyStore({ [`[${host.address}]:${host.port}`]: host.hostKeyFingerprint }),
  });
}
