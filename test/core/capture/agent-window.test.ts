// The usage window on a real test host: the capture script's own run, or from persona-agent's
// last reading (its state file) to the end of the capture; and a state file that is not the
// agent's reading (a link to another file, text) is never printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost } from '../../../core/capture/collect.js';
import { CAPTURE_SCRIPT, captureEnv } from '../../../core/capture/script.js';
import type { SshTransport } from '../../../core/transport/ssh.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

const SAMPLE = '/var/lib/persona-agent/sample';

// The host's counters as persona-agent.sh's sample() writes them ("uptime total idle bytes ops
// rx tx"), the uptime set back by 20 s and the counters by a little: a reading of 20 s ago.
const EARLIER = String.raw`awk '
  FILENAME == "/proc/uptime" { up = $1 }
  FILENAME == "/proc/stat" && $1 == "cpu" { for (i = 2; i <= 9; i++) total += $i; idle = $5 + $6 }
  FILENAME == "/proc/net/dev" && index($0, ":") { line = $0; sub(/^[ \t]*/, "", line); split(line, p, ":")
    if (p[1] == "lo") next; split(p[2], f, " "); rx += f[1]; tx += f[9] }
  END { printf "%.2f %.0f %.0f 0 0 %.0f %.0f\n", up - 20, total - 400, idle - 300, rx - 2000, tx - 4000 }
' /proc/uptime /proc/stat /proc/net/dev`;

let host: TestHost;
let ssh: SshTransport;

beforeAll(async () => {
  host = await createHost({ name: 'agentwin' });
  ssh = sshTransportTo(host);
}, 600_000);

afterAll(async () => {
  await ssh?.close();
  await destroyAllHosts();
});

const capture = () =>
  captureHost(ssh, {
    name: 'agentwin',
    capturedAt: new Date().toISOString(),
    discovery: { enabled: false },
  });

describe('the usage window on a host', () => {
  it("is the script's own run on a host without the agent", async () => {
    await host.run(`rm -rf /var/lib/persona-agent`);
    const c = await capture();
    expect(c.profile.observed?.usage?.window?.source).toBe('capture');
    expect(c.profile.observed?.usage?.window?.seconds).toBeGreaterThanOrEqual(0.1);
  });

  it("starts at the agent's last reading where the agent keeps one", async () => {
    await host.run(`mkdir -p -m 700 /var/lib/persona-agent && ${EARLIER} > ${SAMPLE}`);
    const c = await capture();
    const window = c.profile.observed?.usage?.window;
    expect(window?.source).toBe('agent');
    expect(window?.seconds).toBeGreaterThanOrEqual(20);
    expect(window?.seconds).toBeLessThan(900);
    expect(c.profile.observed?.usage?.network?.rxBytesPerSecond).toBeGreaterThan(0);
  });

  it('prints nothing of a state file that is a link to another file, or is not numbers', async () => {
    for (const plant of [`ln -s /etc/shadow ${SAMPLE}`, `head -n 1 /etc/shadow > ${SAMPLE}`]) {
      await host.run(`rm -f ${SAMPLE} && ${plant}`);
      const shadow = (await host.run('head -n 1 /etc/shadow')).trim();
      const raw = await ssh.run(CAPTURE_SCRIPT, { env: captureEnv({}), timeoutMs: 60_000 });
      expect(raw.exitCode, plant).toBe(0);
      expect(raw.stdout, plant).not.toContain(shadow);
      const c = await capture();
      expect(c.profile.observed?.usage?.window?.source, plant).toBe('capture');
    }
  });
});
