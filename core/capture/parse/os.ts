// The operating system: os-release for the distribution, uname for kernel, architecture and
// host name, /etc/timezone or the /etc/localtime link, the default locale.
import type { z } from 'zod';
import type { OperatingSystem } from '../../profile/schema.js';
import { IncompleteCaptureError, UnsupportedHostError } from '../errors.js';
import { lines } from '../sections.js';
import { keyValues, type ParseContext } from './context.js';

type Os = z.input<typeof OperatingSystem>;
type Arch = Os['arch'];

// `uname -m` spellings of the architectures the schema knows.
const ARCH: Readonly<Record<string, Arch>> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
  armv7l: 'armv7l',
  armv8l: 'armv7l',
  i386: 'i686',
  i486: 'i686',
  i586: 'i686',
  i686: 'i686',
  ppc64le: 'ppc64le',
  s390x: 's390x',
};

export function mapArch(machine: string): Arch {
  const arch = ARCH[machine];
  if (arch === undefined) {
    throw new UnsupportedHostError(
      `the host's architecture ${machine} is not one a Profile can describe (${[...new Set(Object.values(ARCH))].join(', ')})`,
      machine,
    );
  }
  return arch;
}

// Release files of distributions without os-release, and what they are called.
const RELEASE_FILES: readonly [string, string][] = [
  ['/etc/alpine-release', 'alpine'],
  ['/etc/debian_version', 'debian'],
  ['/etc/redhat-release', 'rhel'],
  ['/etc/system-release', 'linux'],
];

export function parseOs(ctx: ParseContext): Os {
  const section = ctx.section('os');
  if (!section) {
    throw new IncompleteCaptureError(
      'the capture output has no os section: the kernel and architecture are unknown',
    );
  }
  const uname = keyValues(section.text);
  const kernel = uname.get('kernel');
  const machine = uname.get('machine');
  if (!kernel || !machine) {
    throw new IncompleteCaptureError('the os section does not name the kernel release and the architecture');
  }

  const release = ctx.section('release');
  const osRelease = keyValues(release?.parts[0]?.text ?? '');
  let distribution = osRelease.get('ID');
  let version = osRelease.get('VERSION_ID') ?? osRelease.get('BUILD_ID');
  const codename = osRelease.get('VERSION_CODENAME');
  if (distribution === undefined) {
    for (const [file, id] of RELEASE_FILES) {
      const part = release?.parts.find((p) => p.header === file);
      if (!part) continue;
      distribution = id;
      version = /(\d+(\.\d+)*)/.exec(part.text)?.[1] ?? lines(part.text)[0]?.trim();
      break;
    }
  }
  // Debian testing and unstable have no VERSION_ID; debian_version says "trixie/sid".
  if (distribution !== undefined && version === undefined && codename !== undefined) version = codename;
  if (distribution === undefined)
    ctx.unknown('release', 'the distribution is unknown: no os-release or release file');
  if (version === undefined) ctx.unknown('release', 'the distribution version is unknown');

  // A capture by another user than root still works; what only root may read is named, section
  // by section, as unknown with the reason, and this says why there are such entries at all.
  const uid = uname.get('uid');
  if (uid !== undefined && uid !== '' && uid !== '0') {
    const who = uname.get('user');
    ctx.unknown(
      'capture',
      `captured as ${who ? `${who} (uid ${uid})` : `uid ${uid}`}, not root: what only root may read is unknown (permission denied)`,
    );
  }

  const hostname = uname.get('hostname');
  const zone = uname.get('timezone') ?? /zoneinfo\/(.+)$/.exec(uname.get('localtime') ?? '')?.[1];
  const locale = uname.get('lang');
  return {
    family: 'linux',
    distribution: distribution || 'unknown',
    version: version || 'unknown',
    ...(codename ? { codename } : {}),
    kernel,
    arch: mapArch(machine),
    ...(hostname ? { hostname } : {}),
    ...(zone ? { timezone: zone } : {}),
    ...(locale ? { locale } : {}),
  };
}
