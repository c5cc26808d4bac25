import { Profile, type ProfileInput } from '../../../core/profile/schema.js';

type SpecInput = ProfileInput['spec'];

/** A parsed profile: a Debian host, plus whatever `spec` says. */
export function profile(spec: Partial<SpecInput> = {}, extra: Partial<ProfileInput> = {}): Profile {
  return Profile.parse({
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: { name: 'web-1' },
    ...extra,
    spec: {
      os: {
        family: 'linux',
        distribution: 'debian',
        version: '12',
        kernel: '6.1.0-18-amd64',
        arch: 'x86_64',
      },
      ...spec,
    },
  });
}

export const nginx = (version: string) => ({ name: 'nginx', version, manager: 'apt' as const });
