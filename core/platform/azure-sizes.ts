// Which Azure VM size and which Marketplace image a clone of a host gets: pure functions of the
// source's shape, documented in AZURE.md, so that the adaptor and its tests agree on one mapping.
import { InvalidInputError } from '../errors.js';
import { displayValue } from '../transport/shell.js';
import type { HostShape } from './shape.js';

const GIB = 1024 ** 3;

export interface VmSize {
  readonly name: string;
  readonly vcpus: number;
  readonly memoryGiB: number;
  readonly arch: 'x86_64' | 'aarch64';
}

/** A series of sizes sharing one memory-per-vCPU ratio: `Standard_D{n}s_v5` and its vCPU counts. */
interface Series {
  readonly arch: 'x86_64' | 'aarch64';
  readonly memoryPerVcpuGiB: number;
  readonly vcpus: readonly number[];
  readonly name: (vcpus: number) => string;
}

// Current general-purpose (D, 4 GiB per vCPU), memory-optimised (E, 8 GiB) and compute-optimised
// (F, 2 GiB) series with premium storage (the `s`), and their Ampere Altra (`p`) counterparts.
// Fsv2 is the compute-optimised Intel series every region offers; Dplsv5 is the 2 GiB Arm one.
const SERIES: readonly Series[] = [
  {
    arch: 'x86_64',
    memoryPerVcpuGiB: 2,
    vcpus: [2, 4, 8, 16, 32, 48, 64, 72],
    name: (n) => `Standard_F${n}s_v2`,
  },
  {
    arch: 'x86_64',
    memoryPerVcpuGiB: 4,
    vcpus: [2, 4, 8, 16, 32, 48, 64, 96],
    name: (n) => `Standard_D${n}s_v5`,
  },
  {
    arch: 'x86_64',
    memoryPerVcpuGiB: 8,
    vcpus: [2, 4, 8, 16, 20, 32, 48, 64, 96],
    name: (n) => `Standard_E${n}s_v5`,
  },
  {
    arch: 'aarch64',
    memoryPerVcpuGiB: 2,
    vcpus: [2, 4, 8, 16, 32, 48, 64],
    name: (n) => `Standard_D${n}pls_v5`,
  },
  {
    arch: 'aarch64',
    memoryPerVcpuGiB: 4,
    vcpus: [2, 4, 8, 16, 32, 48, 64],
    name: (n) => `Standard_D${n}ps_v5`,
  },
  {
    arch: 'aarch64',
    memoryPerVcpuGiB: 8,
    vcpus: [2, 4, 8, 16, 20, 32],
    name: (n) => `Standard_E${n}ps_v5`,
  },
];

/** Every size the mapping knows, smallest first within each series. */
export const VM_SIZES: readonly VmSize[] = SERIES.flatMap((s) =>
  s.vcpus.map((vcpus) => ({
    name: s.name(vcpus),
    vcpus,
    memoryGiB: vcpus * s.memoryPerVcpuGiB,
    arch: s.arch,
  })),
);

/** How many sizes a request tries before it gives up on capacity. */
export const MAX_SIZE_CANDIDATES = 4;

/**
 * The sizes to try for a host of this shape, best first: an explicit size, then the sizes of the
 * architecture with at least the source's vCPUs and memory, the cheapest first (fewest vCPUs,
 * then least memory), so that the first is the smallest that fits and the next ones are what a
 * capacity error falls back to. A shape without CPU or memory counts as 2 vCPUs and 4 GiB.
 */
export function sizeCandidates(shape: HostShape | undefined, explicit?: string): string[] {
  const arch = shape?.arch ?? 'x86_64';
  if (arch !== 'x86_64' && arch !== 'aarch64') {
    throw new InvalidInputError(`Azure has no VM sizes for ${displayValue(arch)} processors`, [
      { path: 'shape.arch', message: 'Azure VMs are x86_64 or aarch64' },
    ]);
  }
  const cpus = Math.max(1, shape?.cpus ?? 2);
  const memoryGiB = (shape?.memoryBytes ?? 4 * GIB) / GIB;
  const fitting = VM_SIZES.filter((s) => s.arch === arch && s.vcpus >= cpus && s.memoryGiB >= memoryGiB).sort(
    (a, b) => a.vcpus - b.vcpus || a.memoryGiB - b.memoryGiB,
  );
  const names = [...(explicit === undefined ? [] : [explicit]), ...fitting.map((s) => s.name)];
  const unique = [...new Set(names)].slice(0, MAX_SIZE_CANDIDATES);
  if (unique.length === 0) {
    throw new InvalidInputError(
      `no Azure ${arch} VM size has ${cpus} vCPUs and ${memoryGiB.toFixed(1)} GiB of memory; give a size`,
      [{ path: 'size', message: 'required when the source is larger than every mapped size' }],
    );
  }
  return unique;
}

/**
 * The error codes Azure answers when it has no capacity for a size (synchronously for
 * SkuNotAvailable, as the create's failed status for the others): another size may succeed.
 */
export const CAPACITY_ERRORS: ReadonlySet<string> = new Set([
  'SkuNotAvailable',
  'AllocationFailed',
  'ZonalAllocationFailed',
  'OverconstrainedAllocationRequest',
]);

export interface ImageReference {
  readonly publisher: string;
  readonly offer: string;
  readonly sku: string;
  readonly version: string;
}

const URN =
  /^([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9._-]*)$/;

export function parseUrn(urn: string): ImageReference | undefined {
  const m = URN.exec(urn);
  if (!m) return undefined;
  return { publisher: m[1] as string, offer: m[2] as string, sku: m[3] as string, version: m[4] as string };
}

/** Marketplace images by distribution and major version (Ubuntu: `22.04`), x86_64 then arm64. */
const IMAGES: Readonly<Record<string, Readonly<Record<string, { x86_64: string; aarch64?: string }>>>> = {
  debian: {
    '11': { x86_64: 'Debian:debian-11:11-gen2:latest' },
    '12': { x86_64: 'Debian:debian-12:12-gen2:latest', aarch64: 'Debian:debian-12:12-arm64:latest' },
  },
  ubuntu: {
    '22.04': {
      x86_64: 'Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest',
      aarch64: 'Canonical:0001-com-ubuntu-server-jammy:22_04-lts-arm64:latest',
    },
    '24.04': {
      x86_64: 'Canonical:ubuntu-24_04-lts:server:latest',
      aarch64: 'Canonical:ubuntu-24_04-lts:server-arm64:latest',
    },
  },
  rhel: {
    '8': { x86_64: 'RedHat:RHEL:8-lvm-gen2:latest' },
    '9': { x86_64: 'RedHat:RHEL:9-lvm-gen2:latest' },
  },
};

const DISTRIBUTION_ALIASES: Readonly<Record<string, string>> = {
  redhat: 'rhel',
  'red hat enterprise linux': 'rhel',
  'red hat enterprise linux server': 'rhel',
};

/**
 * The image a host of this shape is created from: the explicit URN, else the source's base image
 * when it names an Azure image, else the distribution's official image for its version and
 * processor. Anything else is an error naming the distribution: no guessed image.
 */
export function imageFor(shape: HostShape | undefined, explicit?: string): ImageReference {
  if (explicit !== undefined) {
    const image = parseUrn(explicit);
    if (!image) {
      throw new InvalidInputError(`image ${displayValue(explicit)} is not an Azure image URN`, [
        { path: 'image', message: 'expected publisher:offer:sku:version' },
      ]);
    }
    return image;
  }
  if (shape === undefined) {
    throw new InvalidInputError('an Azure target needs an image or the source host shape', [
      { path: 'image', message: 'required without a source shape' },
    ]);
  }
  const base = shape.baseImage;
  if (base !== undefined && (base.platform === undefined || base.platform === 'azure')) {
    const image = parseUrn(base.ref);
    if (image) return image;
  }
  const raw = shape.os.distribution.toLowerCase();
  const distribution = DISTRIBUTION_ALIASES[raw] ?? raw;
  const versions = IMAGES[distribution];
  const version = shape.os.version;
  const key = distribution === 'ubuntu' ? /^(\d+\.\d+)/.exec(version)?.[1] : /^(\d+)/.exec(version)?.[1];
  const entry = versions !== undefined && key !== undefined ? versions[key] : undefined;
  const urn = entry === undefined ? undefined : shape.arch === 'aarch64' ? entry.aarch64 : entry.x86_64;
  if (urn === undefined) {
    throw new InvalidInputError(
      `no Azure image is mapped for ${displayValue(shape.os.distribution)} ${displayValue(version)} on ${shape.arch}; give an image URN`,
      [
        {
          path: 'shape.os.distribution',
          message: `${shape.os.distribution} ${version} (${shape.arch}) has no mapped image`,
        },
      ],
    );
  }
  return parseUrn(urn) as ImageReference;
}

export type DiskSku = 'Premium_LRS' | 'StandardSSD_LRS';

/** Premium SSD for what the source ran on fast storage, Standard SSD for the rest. */
export function diskSkuFor(type: string | undefined): DiskSku {
  if (type === undefined) return 'Premium_LRS';
  const t = type.toLowerCase();
  if (/hdd|standard|magnetic|sc1|st1|rotational/.test(t)) return 'StandardSSD_LRS';
  return 'Premium_LRS';
}

/** Managed disks are sized in whole GiB, at least `minimum`: a volume is rounded up. */
export function diskSizeGiB(sizeBytes: number, minimum = 1): number {
  return Math.max(minimum, Math.ceil(sizeBytes / GIB));
}
