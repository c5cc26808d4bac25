// The state fingerprint on a real test host: the same while nothing changes, different after
// each kind of change it covers, one small command each time, and a path it is given is data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateFingerprint } from '../../../core/clone/fingerprint.js';
import { InvalidInputError } from '../../../core/errors.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { type RecordingTransport, recording, sshTransportTo } from '../../hosts/transport.js';

let host: TestHost;
let transport: RecordingTransport;

beforeAll(async () => {
  host = await createHost({ name: 'fprint' });
  await host.run("mkdir -p '/srv/a b' && printf 'x' > \"/srv/a b/it's\"");
  transport = recording(sshTransportTo(host));
}, 600_000);

afterAll(async () => {
  await transport?.close();
  await destroyAllHosts();
}, 120_000);

const PATHS = ['/etc', '/srv/a b'];

describe('stateFingerprint', () => {
  it('stays the same while nothing changes, in one command of a few KiB out and a digest back', async () => {
    const a = await stateFingerprint(transport, PATHS);
    const b = await stateFingerprint(transport, PATHS);
    expect(a).toMatch(/^v1:[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(transport.sent.every((n) => n < 4096)).toBe(true);
    expect(transport.received.every((n) => n < 100)).toBe(true);
    // Other trees, another fingerprint.
    expect(await stateFingerprint(transport, ['/etc'])).not.toBe(a);
  });

  it.each([
    ['a file’s mode', 'chmod 0600 /etc/hostname', 'chmod 0644 /etc/hostname'],
    ['a file’s content and time', "printf 'y' > \"/srv/a b/it's\"", ''],
    ['a new file', 'touch /etc/persona-new', 'rm -f /etc/persona-new'],
    ['the package database', 'touch /var/lib/dpkg/status', ''],
    ['the firewall ruleset', 'nft add table inet persona_fp', 'nft delete table inet persona_fp'],
    ['a route', 'ip route add 198.51.100.0/24 dev eth0', 'ip route del 198.51.100.0/24 dev eth0'],
    [
      'a sysctl Persona persisted, changed live',
      "mkdir -p /etc/sysctl.d && printf 'net.ipv4.ip_default_ttl = 64\\n' > /etc/sysctl.d/60-persona.conf && sysctl -qw net.ipv4.ip_default_ttl=64",
      '',
    ],
  ])('changes with %s', async (_what, change, undo) => {
    const before = await stateFingerprint(transport, PATHS);
    await host.run(change);
    const after = await stateFingerprint(transport, PATHS);
    expect(after).not.toBe(before);
    if (undo) await host.run(undo);
  });

  it('sees a persisted sysctl changed live, though no file changed', async () => {
    const before = await stateFingerprint(transport, PATHS);
    await host.run('sysctl -qw net.ipv4.ip_default_ttl=77');
    expect(await stateFingerprint(transport, PATHS)).not.toBe(before);
    await host.run('sysctl -qw net.ipv4.ip_default_ttl=64');
    expect(await stateFingerprint(transport, PATHS)).toBe(before);
  });

  it('is the same while a new IPv6 address is still tentative as once it is settled', async () => {
    // Duplicate address detection keeps a new address `tentative` for a second or so, then the
    // kernel adds its local route: neither is a change the host's owner made.
    await host.run('sysctl -qw net.ipv6.conf.eth0.dad_transmits=3 && ip addr add 2001:db8:5::7/64 dev eth0');
    try {
      expect(await host.run('ip -6 addr show dev eth0 tentative')).toContain('2001:db8:5::7');
      const tentative = await stateFingerprint(transport, PATHS);
      await host.run(
        'i=0; while ip -6 addr show dev eth0 tentative | grep -q inet6 && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
      );
      expect(await host.run('ip -6 addr show dev eth0 tentative')).not.toContain('inet6');
      expect(await stateFingerprint(transport, PATHS)).toBe(tentative);
    } finally {
      await host.run('ip addr del 2001:db8:5::7/64 dev eth0');
    }
  });

  it('refuses a path that is not one (a leading dash, a relative name) before sending anything', async () => {
    const sent = transport.sent.length;
    for (const bad of ['-delete', 'etc', '/etc/../root'])
      await expect(stateFingerprint(transport, [bad])).rejects.toBeInstanceOf(InvalidInputError);
    expect(transport.sent.length).toBe(sent);
  });
});
