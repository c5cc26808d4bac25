// The SSH transport to a test host as Persona's control side reaches it: the host's own key pinned,
// so a test never accepts a key it was not given.
import { MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { SshTransport } from '../../core/transport/ssh.js';
import type { RunOptions, Transport } from '../../core/transport/transport.js';
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

/** A transport that records each command it runs, with the bytes out and back. */
export interface RecordingTransport extends Transport {
  readonly commands: string[];
  readonly sent: number[];
  readonly received: number[];
}

export function recording(inner: Transport): RecordingTransport {
  const commands: string[] = [];
  const sent: number[] = [];
  const received: number[] = [];
  return {
    target: inner.target,
    commands,
    sent,
    received,
    async run(command: string, options?: RunOptions) {
      commands.push(command);
      sent.push(Buffer.byteLength(command));
      const result = await inner.run(command, options);
      received.push(Buffer.byteLength(result.stdout));
      return result;
    },
    stream: (c, o) => inner.stream(c, o),
    putFile: (p, c, o) => inner.putFile(p, c, o),
    getFile: (p) => inner.getFile(p),
    close: () => inner.close(),
  };
}
