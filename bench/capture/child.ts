// One Persona capture in a process of its own, as a user's `persona capture` pays for it: Node
// and tsx start, the capture modules load, the capture runs over SSH with the host key pinned,
// the Profile is validated. (The CLI also registers the host and snapshots /etc into the store;
// the snapshot benchmark measures that part.)
//
//   node --import tsx bench/capture/child.ts '<ChildJob as JSON>'
//
// Prints one line of JSON (ChildResult).
import { readFileSync } from 'node:fs';
import { captureHost } from '../../core/capture/collect.js';
import { validateProfile } from '../../core/profile/validate.js';
import { MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { SshTransport } from '../../core/transport/ssh.js';

export interface ChildJob {
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyPath: string;
  /** `SHA256:…`: the only host key the capture accepts. */
  readonly hostKeyFingerprint: string;
  readonly name: string;
  readonly processes: readonly string[];
  readonly paths: readonly string[];
}

export interface ChildResult {
  /** Milliseconds from process start until this module's body runs: Node, tsx and the imports. */
  readonly importMs: number;
  /** Connect, capture, validate, disconnect. */
  readonly captureMs: number;
  /** Of which validateProfile, the first in the process (its schemas compile on first use). */
  readonly validateMs: number;
  readonly packages: number;
}

// Static imports are evaluated before this line, so this is start-up plus module loading.
const importMs = performance.now();
const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
const hostKeys = new MemoryHostKeyStore();
await hostKeys.record(job.address, job.port, job.hostKeyFingerprint);
const started = performance.now();
const transport = new SshTransport({
  host: job.address,
  port: job.port,
  username: job.user,
  privateKey: readFileSync(job.privateKeyPath),
  hostKeys,
});
try {
  const capture = await captureHost(transport, {
    name: job.name,
    capturedAt: new Date().toISOString(),
    application: { processes: job.processes, paths: job.paths },
  });
  const validating = performance.now();
  const profile = validateProfile(capture.profile);
  const validateMs = performance.now() - validating;
  await transport.close();
  const result: ChildResult = {
    importMs,
    captureMs: performance.now() - started,
    validateMs,
    packages: profile.spec.packages.length,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await transport.close();
}
