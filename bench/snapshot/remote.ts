// Restore onto a host: restoreToHost (the snapshot streamed as tar over SSH, then verified on
// the host) against `tar -c | ssh host tar -x` of the same tree to the same test host, one run
// each, into fresh directories. Bounded: a generated tree of --mib MiB (64 by default).
//
//   node --import tsx bench/snapshot/remote.ts [--mib=64]
//
// Needs root (the test hosts are network namespaces and a real sshd) and openssh-client.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { restoreToHost, verifyOnHost } from '../../core/snapshot/remote.js';
import { directorySource } from '../../core/snapshot/tree.js';
import { MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { SshTransport } from '../../core/transport/ssh.js';
import { createHost, destroyAllHosts } from '../../test/hosts/harness.js';
import { bytesFrom, startTestStore } from '../../test/support/snapshot-store.js';

const MiB = 1024 * 1024;
const arg = (name: string, fallback: number) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.slice(name.length + 3)) : fallback;
};
const TOTAL = Math.max(1, Math.min(arg('mib', 64), 1024)) * MiB;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Half the bytes in 4 MiB files, half in files of 4–64 KiB, 50 to a directory. */
function generate(root: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  let seed = 1;
  const put = (size: number) => {
    const dir = join(root, `d${Math.floor(files / 50)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${files}`), bytesFrom(seed++, size));
    files++;
    bytes += size;
  };
  while (bytes < TOTAL / 2) put(4 * MiB);
  while (bytes < TOTAL) put(4096 + ((seed * 7919) % (60 * 1024)));
  return { files, bytes };
}

async function main(): Promise<void> {
  const atStart = load();
  const ts = await startTestStore();
  const host = await createHost({ name: 'bench-restore' });
  try {
    const src = join(ts.dir, 'tree');
    const tree = generate(src);
    const store = await ts.open();
    const record = await store.create(directorySource(src), { host: 'bench-remote' });
    const ssh = new SshTransport({
      host: host.address,
      port: host.port,
      username: host.user,
      privateKey: host.privateKey,
      hostKeys: new MemoryHostKeyStore({ [`[${host.address}]:${host.port}`]: host.hostKeyFingerprint }),
    });
    console.log(`# Restore onto a test host: ${tree.files} files, ${(tree.bytes / MiB).toFixed(1)} MiB`);
    console.log(`load average at start: ${atStart}`);

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const persona = await restoreToHost(await ts.open(), record, ssh, { target: '/srv/bench-persona' });
    const personaSeconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // The verification alone, again, to say how much of the time it is.
    const t2 = performance.now();
    const again = await verifyOnHost(ssh, '/srv/bench-persona', persona.expected);
    const verifySeconds = (performance.now() - t2) / 1000;
    await ssh.close();
    if (again.length > 0) throw new Error(`verifyOnHost found: ${JSON.stringify(again.slice(0, 5))}`);
    if (persona.failed.length > 0)
      throw new Error(`restoreToHost failed: ${JSON.stringify(persona.failed.slice(0, 5))}`);

    const knownHosts = join(ts.dir, 'known_hosts');
    writeFileSync(knownHosts, host.knownHosts);
    const sshArgs = [
      '-i',
      host.privateKeyPath,
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      `root@${host.address}`,
      'mkdir -p /srv/bench-tar && tar -x -f - -C /srv/bench-tar',
    ];
    const t1 = performance.now();
    const plain = spawnSync(
      'bash',
      ['-c', 'set -o pipefail; src=$1; shift; tar -c -f - -C "$src" . | ssh "$@"', 'bench', src, ...sshArgs],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const tarSeconds = (performance.now() - t1) / 1000;
    if (plain.status !== 0) throw new Error(`tar | ssh tar failed with ${plain.status}`);

    console.log('');
    console.log('| | seconds | bytes sent |');
    console.log('| --- | ---: | ---: |');
    console.log(
      `| restoreToHost (stream, then verify on the host) | ${personaSeconds.toFixed(2)} | ${(persona.sentBytes / MiB).toFixed(1)} MiB |`,
    );
    console.log(
      `| of which verification on the host (measured again alone) | ${verifySeconds.toFixed(2)} | |`,
    );
    console.log(`| tar -c \\| ssh host tar -x | ${tarSeconds.toFixed(2)} | |`);
    console.log('');
    console.log(
      `ratio ${(personaSeconds / tarSeconds).toFixed(2)}× (goal ≤ 1.2×); Persona CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s on the control side`,
    );
    const atEnd = load();
    console.log(`load average at end: ${atEnd}`);
    if (Number(atStart.split(' ')[0]) >= 0.5)
      console.log('the machine was busy at the start (load ≥ 0.5): these figures are not for comparison');
  } finally {
    await destroyAllHosts();
    await ts.stop();
  }
}

await main();
