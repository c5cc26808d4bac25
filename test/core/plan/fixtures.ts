import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseProfile } from '../../../core/profile/io.js';
import { Profile, type ProfileInput } from '../../../core/profile/schema.js';

const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));

export const hash = (c: string) => `sha256:${c.repeat(64)}`;
export const file = (path: string, c: string) => ({
  path,
  hash: hash(c),
  mode: '0644',
  owner: 'root',
  group: 'root',
});

/** examples/web.yaml, with the identity files a real capture of it would also hold. */
export function webSource(): Profile {
  const web = parseProfile(readFileSync(`${examples}web.yaml`), { source: 'web.yaml' });
  return Profile.parse({
    ...web,
    spec: {
      ...web.spec,
      configuration: {
        ...web.spec.configuration,
        files: [
          ...web.spec.configuration.files,
          file('/etc/hostname', 'a'),
          file('/etc/machine-id', 'a'),
          file('/etc/hosts', 'a'),
          file('/etc/ssh/ssh_host_ed25519_key', 'a'),
          file('/etc/ssh/ssh_host_ed25519_key.pub', 'a'),
          file('/etc/netplan/50-cloud-init.yaml', 'a'),
        ],
      },
    },
  });
}

/** A bare Debian host on 10.0.0.0/24 behind 10.0.0.1: the target. */
export function bareTarget(spec: Partial<ProfileInput['spec']> = {}): Profile {
  return Profile.parse({
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: { name: 'clone-1' },
    spec: {
      os: {
        family: 'linux',
        distribution: 'debian',
        version: '12',
        kernel: '6.1.0-27-amd64',
        arch: 'x86_64',
        hostname: 'clone-1',
      },
      network: {
        interfaces: [
          { name: 'lo', type: 'loopback', addresses: ['127.0.0.1/8', '::1/128'] },
          { name: 'eth0', type: 'ethernet', mac: '52:54:00:12:34:56', mtu: 1500, addresses: ['10.0.0.3/24'] },
        ],
        routes: [
          { destination: 'default', gateway: '10.0.0.1', interface: 'eth0' },
          { destination: '10.0.0.0/24', interface: 'eth0' },
        ],
      },
      configuration: {
        files: [
          file('/etc/hostname', 'b'),
          file('/etc/machine-id', 'b'),
          file('/etc/hosts', 'b'),
          file('/etc/ssh/ssh_host_ed25519_key', 'b'),
          file('/etc/ssh/ssh_host_ed25519_key.pub', 'b'),
          file('/etc/ssh/sshd_config', 'b'),
        ],
      },
      // The same disk layout as the source's, on its own devices: storage is the machine's.
      storage: {
        mounts: [
          { target: '/', source: '/dev/vda1', fstype: 'ext4', options: ['rw', 'relatime'] },
          { target: '/srv/data', source: '/dev/vdb', fstype: 'xfs', options: ['rw', 'noatime'] },
        ],
      },
      ...spec,
    },
  });
}
