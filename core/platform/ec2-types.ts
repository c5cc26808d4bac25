// Which EC2 instance types can become a host of a given shape, in the order to try them. The
// mapping is documented in EC2.md; it is a pure function so that it can be read and tested apart
// from the API.
//
// Families are the current general purpose (m), compute optimised (c) and memory optimised (r)
// generation: Intel m7i/c7i/r7i for x86_64, Graviton3 m7g/c7g/r7g for aarch64. The family is the
// one whose memory per vCPU first covers the source's (c: 2 GiB, m: 4 GiB, r: 8 GiB), and the
// size the smallest of that family with at least the source's vCPUs and memory.

export type Ec2Arch = 'x86_64' | 'arm64';
export type FamilyClass = 'c' | 'm' | 'r';

export interface InstanceTypeSpec {
  readonly name: string;
  readonly arch: Ec2Arch;
  readonly vcpus: number;
  readonly memoryGiB: number;
}

/** Memory per vCPU of each class, in GiB: the same for the Intel and the Graviton families. */
const GIB_PER_VCPU: Readonly<Record<FamilyClass, number>> = { c: 2, m: 4, r: 8 };
const CLASSES: readonly FamilyClass[] = ['c', 'm', 'r'];

const FAMILIES: Readonly<Record<Ec2Arch, Readonly<Record<FamilyClass, string>>>> = {
  x86_64: { c: 'c7i', m: 'm7i', r: 'r7i' },
  arm64: { c: 'c7g', m: 'm7g', r: 'r7g' },
};

/** Sizes and their vCPUs (EC2 instance types documentation, "General purpose/Compute/Memory"). */
const INTEL_SIZES: readonly (readonly [string, number])[] = [
  ['large', 2],
  ['xlarge', 4],
  ['2xlarge', 8],
  ['4xlarge', 16],
  ['8xlarge', 32],
  ['12xlarge', 48],
  ['16xlarge', 64],
  ['24xlarge', 96],
  ['48xlarge', 192],
];
/** Graviton3 has a 1-vCPU `medium` and stops at 16xlarge. */
const GRAVITON_SIZES: readonly (readonly [string, number])[] = [
  ['medium', 1],
  ['large', 2],
  ['xlarge', 4],
  ['2xlarge', 8],
  ['4xlarge', 16],
  ['8xlarge', 32],
  ['12xlarge', 48],
  ['16xlarge', 64],
];

/** Every instance type of the mapping, smallest first within each family. */
export const INSTANCE_TYPES: readonly InstanceTypeSpec[] = (['x86_64', 'arm64'] as const).flatMap((arch) =>
  CLASSES.flatMap((cls) =>
    (arch === 'x86_64' ? INTEL_SIZES : GRAVITON_SIZES).map(([size, vcpus]) => ({
      name: `${FAMILIES[arch][cls]}.${size}`,
      arch,
      vcpus,
      memoryGiB: vcpus * GIB_PER_VCPU[cls],
    })),
  ),
);
const BY_NAME = new Map(INSTANCE_TYPES.map((t) => [t.name, t]));

/** A type of the mapping by name; undefined for any other (a valid type Persona does not know). */
export function instanceTypeSpec(name: string): InstanceTypeSpec | undefined {
  return BY_NAME.get(name);
}

/** EC2's name for a Profile's processor architecture; undefined where EC2 has no instances. */
export function ec2Arch(arch: string): Ec2Arch | undefined {
  if (arch === 'x86_64') return 'x86_64';
  if (arch === 'aarch64' || arch === 'arm64') return 'arm64';
  return undefined;
}

/**
 * The architecture of any instance type by its name: Graviton families carry a `g` among the
 * letters after their generation (m7g, c7gn, r6gd, t4g, im4gn, hpc7g), as do the first Graviton
 * (a1) and the Apple silicon Macs (mac2...). Undefined for a name that is not an instance type.
 */
export function typeArch(name: string): Ec2Arch | undefined {
  const family = /^([a-z]+)(\d+)([a-z-]*)\.[a-z0-9-]+$/.exec(name);
  if (family === null) return undefined;
  const [, series, generation, suffix] = family as unknown as [string, string, string, string];
  if (series === 'a' && generation === '1') return 'arm64';
  if (series === 'mac' && generation !== '1') return 'arm64';
  return suffix.includes('g') ? 'arm64' : 'x86_64';
}

export interface TypeRequest {
  readonly arch: Ec2Arch;
  /** The source's vCPUs; 2 when unknown (the smallest Intel size). */
  readonly cpus?: number;
  readonly memoryBytes?: number;
  /** An explicit type from the request: tried first, whatever the mapping says. */
  readonly size?: string;
  /**
   * Types to try after the mapped one, in order (an account's reserved or usual types). Those of
   * the other architecture are left out, and those of the mapping that are too small; others are
   * kept (their size is EC2's to check).
   */
  readonly preferred?: readonly string[];
}

const GIB = 1024 ** 3;

/** The class whose memory per vCPU first covers `gibPerVcpu`; r beyond 8 GiB per vCPU. */
function classFor(gibPerVcpu: number): FamilyClass {
  return CLASSES.find((cls) => gibPerVcpu <= GIB_PER_VCPU[cls]) ?? 'r';
}

/** The smallest type of the family that has `cpus` vCPUs and `memoryGiB`, if the family has one. */
function smallestFit(arch: Ec2Arch, cls: FamilyClass, cpus: number, memoryGiB: number): string | undefined {
  const family = `${FAMILIES[arch][cls]}.`;
  return INSTANCE_TYPES.find(
    (t) => t.arch === arch && t.name.startsWith(family) && t.vcpus >= cpus && t.memoryGiB >= memoryGiB,
  )?.name;
}

export function fits(spec: InstanceTypeSpec, arch: Ec2Arch, cpus: number, memoryGiB: number): boolean {
  return spec.arch === arch && spec.vcpus >= cpus && spec.memoryGiB >= memoryGiB;
}

/**
 * The instance types to try, in order, without repeats: the explicit size; the smallest type of
 * the mapped family that fits; the preferred types; then the smallest fitting type of each
 * family with more memory per vCPU (more memory than asked for, never less). Empty when no type
 * of the mapping is large enough and none was named. The caller moves to the next type when EC2
 * has no capacity for one (InsufficientInstanceCapacity) or does not offer it in the zone.
 */
export function instanceTypeCandidates(request: TypeRequest): string[] {
  const cpus = Math.max(1, Math.ceil(request.cpus ?? 2));
  const memoryGiB = request.memoryBytes === undefined ? 0 : request.memoryBytes / GIB;
  const primary = classFor(memoryGiB / cpus);
  const out: string[] = [];
  const add = (name: string | undefined) => {
    if (name !== undefined && !out.includes(name)) out.push(name);
  };
  add(request.size);
  add(smallestFit(request.arch, primary, cpus, memoryGiB));
  for (const name of request.preferred ?? []) {
    const spec = instanceTypeSpec(name);
    if (typeArch(name) !== request.arch) continue;
    if (spec === undefined || fits(spec, request.arch, cpus, memoryGiB)) add(name);
  }
  const larger = CLASSES.slice(CLASSES.indexOf(primary) + 1);
  for (const cls of larger) add(smallestFit(request.arch, cls, cpus, memoryGiB));
  return out;
}
