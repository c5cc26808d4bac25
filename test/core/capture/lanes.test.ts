// The capture script's lanes on a real test host: sections run as background jobs alongside one
// another must give what they gave run one after another (PERSONA_SERIAL=1), in the same order,
// over all three passes (the host has an application tree to discover and a program no package
// owns), and the capture's own concurrent processes must not show up as the host's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureHost, type HostCapture } from '../../../core/capture/collect.js';
import { parseSections } from '../../../core/capture/sections.js';
import { validateProfile } from '../../../core/profile/validate.js';
import type { RunOptions, Transport } from '../../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { installNginxSite, writeEnvironmentFile } from '../../hosts/software.js';
import { sshTransportTo } from '../../hosts/transport.js';

const SHOP_API = `#!/usr/bin/perl
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) { close $c; }
`;

let host: TestHost;

beforeAll(async () => {
  host = await createHost({
    name: 'lanes',
    setup: async (h) => {
      await installNginxSite(h, { page: '<h1>lanes</h1>\n' });
      await writeEnvironmentFile(h, '/etc/environment', { API_TOKEN: 'lanes-token-3c1f' }, 0o644);
      await h.writeFile('/usr/local/bin/shop-api', SHOP_API, 0o755);
      await h.run(
        'cd / && setsid /usr/local/bin/shop-api </dev/null >/dev/null 2>&1 &\n' +
          "for i in $(seq 1 300); do ss -ltn | grep -q ':8080 ' && exit 0; sleep 0.1; done; exit 1",
      );
    },
  });
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
}, 120_000);

interface Run {
  readonly capture: HostCapture;
  /** Each pass's raw output. */
  readonly outputs: string[];
}

/** A capture over SSH, every pass of the script run with `env` added. */
async function capture(env: Record<string, string>): Promise<Run> {
  const ssh = sshTransportTo(host);
  const outputs: string[] = [];
  const transport: Transport = {
    target: ssh.target,
    async run(command: string, options?: RunOptions) {
      const result = await ssh.run(command, { ...options, env: { ...options?.env, ...env } });
      outputs.push(result.stdout);
      return result;
    },
    stream: (command, options) => ssh.stream(command, options),
    putFile: (path, content, options) => ssh.putFile(path, content, options),
    getFile: (path) => ssh.getFile(path),
    close: () => ssh.close(),
  };
  try {
    const result = await captureHost(transport, {
      name: 'lanes',
      capturedAt: '2026-01-01T00:00:00Z',
      application: { processes: ['nginx'], paths: [] },
    });
    return { capture: result, outputs };
  } finally {
    await ssh.close();
  }
}

/** Sections of each pass in the order printed, with their exit status. */
const sectionList = (outputs: readonly string[]) =>
  outputs.map((o) => [...parseSections(o).values()].map((s) => `${s.name} ${s.status}`));

describe('the capture script run in lanes', () => {
  it('gives the Profile the same sections run one after another give, in the same order', async () => {
    const serial = await capture({ PERSONA_SERIAL: '1' });
    const lanes = await capture({});

    // All three passes ran: the nginx tree and the unowned program were found and listed.
    expect(serial.outputs).toHaveLength(3);
    expect(lanes.outputs).toHaveLength(3);
    expect(sectionList(lanes.outputs)).toEqual(sectionList(serial.outputs));

    const a = validateProfile(serial.capture.profile);
    const b = validateProfile(lanes.capture.profile);
    expect(b.spec.application.paths).toEqual(
      expect.arrayContaining(['/var/www/persona', '/usr/local/bin/shop-api']),
    );
    expect(b.spec).toEqual(a.spec);
    expect(b.observed?.listening).toEqual(a.observed?.listening);
    expect(lanes.capture.unknowns).toEqual(serial.capture.unknowns);
    expect(lanes.capture.secrets.map((s) => s.ref)).toEqual(serial.capture.secrets.map((s) => s.ref));
  }, 120_000);

  it("does not take the capture's own concurrent commands for the host's processes", async () => {
    const { capture: c, outputs } = await capture({});
    // Each lane is a copy of the script's shell, its command line the whole script: those rows
    // are left out of the listing rather than sent back once a lane.
    const ps = parseSections(outputs[0] ?? '')
      .get('processes')
      ?.parts.find((p) => p.header.startsWith('ps '));
    expect(ps?.text).toContain('nginx');
    expect(ps?.text).not.toContain('Persona capture script');
    const names = validateProfile(c.profile).spec.processes.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['nginx']));
    for (const tool of ['find', 'grep', 'awk', 'sha256sum', 'du', 'ionice', 'sh', 'dash', 'cat', 'ps']) {
      expect(names).not.toContain(tool);
    }
  }, 120_000);
});
