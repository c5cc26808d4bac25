// What a cloud adaptor is told of a source: its ports from the sockets it listens on, less
// loopback ones and those its own firewall drops; its processor, memory, OS and volumes.
import { describe, expect, it } from 'vitest';
import { refusedPorts, shapeOf } from '../../../core/platform/shape.js';
import { Profile } from '../../../core/profile/schema.js';

const profile = (ruleset: string, listening: object[]): Profile =>
  Profile.parse({
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: { name: 'web' },
    spec: {
      os: { family: 'linux', distribution: 'debian', version: '12', kernel: '6.1.0', arch: 'x86_64' },
      network: { firewall: { backend: 'nftables', ruleset } },
      resources: { cpu: { count: 4 }, memory: { bytes: 8 * 1024 ** 3 }, cgroups: [] },
      storage: { volumes: [{ name: 'root', sizeBytes: 20 * 1024 ** 3, type: 'gp3' }] },
    },
    observed: { listening },
  }) as Profile;

const RULESET = `table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 9100 drop
\t\tudp dport { 53, 5353 } counter packets 0 bytes 0 reject
\t\tip saddr 10.0.0.0/8 tcp dport 8080 drop
\t}
}
`;

describe('shapeOf', () => {
  it('opens the ports the source listens on beyond loopback, less those its firewall drops for everyone', () => {
    const shape = shapeOf(
      profile(RULESET, [
        { protocol: 'tcp', address: '0.0.0.0', port: 80 },
        { protocol: 'tcp6', address: '::', port: 80 },
        { protocol: 'tcp', address: '0.0.0.0', port: 9100 },
        { protocol: 'udp', address: '0.0.0.0', port: 53 },
        { protocol: 'tcp', address: '0.0.0.0', port: 8080 },
        { protocol: 'tcp', address: '127.0.0.1', port: 5432 },
        { protocol: 'unix', address: '/run/app.sock' },
      ]),
    );
    // 8080 is dropped only for one source range: it stays open to the VPC.
    expect(shape.ingress).toEqual([
      { protocol: 'tcp', port: 80 },
      { protocol: 'tcp', port: 8080 },
    ]);
    expect(shape).toMatchObject({ arch: 'x86_64', cpus: 4, memoryBytes: 8 * 1024 ** 3 });
    expect(shape.volumes).toEqual([{ sizeBytes: 20 * 1024 ** 3, type: 'gp3' }]);
  });

  it('reads nothing as refused from a ruleset it does not parse, or a hostile one', () => {
    expect([...refusedPorts(profile('tcp dport 99999999 drop; rm -rf /', []))]).toEqual([]);
    expect([...refusedPorts(profile('chain x { tcp dport 22 accept }', []))]).toEqual([]);
  });
});
