import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ec2Arch,
  INSTANCE_TYPES,
  instanceTypeCandidates,
  instanceTypeSpec,
  typeArch,
} from '../../core/platform/ec2-types.js';

const GIB = 1024 ** 3;

describe('instanceTypeCandidates', () => {
  it('picks the family by memory per vCPU and the smallest size that fits', () => {
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 2, memoryBytes: 4 * GIB })[0]).toBe('c7i.large');
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 2, memoryBytes: 8 * GIB })[0]).toBe('m7i.large');
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 2, memoryBytes: 9 * GIB })[0]).toBe('r7i.large');
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 4, memoryBytes: 15.6 * GIB })[0]).toBe(
      'm7i.xlarge',
    );
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 3, memoryBytes: 6 * GIB })[0]).toBe('c7i.xlarge');
    expect(instanceTypeCandidates({ arch: 'x86_64', cpus: 2, memoryBytes: 64 * GIB })[0]).toBe('r7i.2xlarge');
    expect(instanceTypeCandidates({ arch: 'arm64', cpus: 1, memoryBytes: 2 * GIB })[0]).toBe('c7g.medium');
    expect(instanceTypeCandidates({ arch: 'arm64', cpus: 16, memoryBytes: 64 * GIB })[0]).toBe('m7g.4xlarge');
  });

  it('sizes a source of unknown resources as two vCPUs of the compute family', () => {
    expect(instanceTypeCandidates({ arch: 'x86_64' })).toEqual(['c7i.large', 'm7i.large', 'r7i.large']);
    expect(instanceTypeCandidates({ arch: 'arm64' })[0]).toBe('c7g.large');
  });

  it('tries an explicit size first, then the mapped type, the preferred types, and the roomier families', () => {
    expect(
      instanceTypeCandidates({
        arch: 'x86_64',
        cpus: 2,
        memoryBytes: 4 * GIB,
        size: 'm6i.large',
        preferred: ['t3.large', 'm7i.large', 'm7g.large', 'c7i.large', 'm5.xlarge'],
      }),
    ).toEqual(['m6i.large', 'c7i.large', 't3.large', 'm7i.large', 'm5.xlarge', 'r7i.large']);
  });

  it('leaves out preferred types of the other architecture or too small for the source', () => {
    expect(
      instanceTypeCandidates({
        arch: 'arm64',
        cpus: 4,
        memoryBytes: 16 * GIB,
        preferred: ['m7g.large', 't4g.xlarge', 'm7i.xlarge', 'c7g.xlarge', 'r7g.xlarge'],
      }),
    ).toEqual(['m7g.xlarge', 't4g.xlarge', 'r7g.xlarge']);
  });

  it('is empty when nothing of the mapping is large enough and no size is named', () => {
    expect(instanceTypeCandidates({ arch: 'arm64', cpus: 96, memoryBytes: 96 * GIB })).toEqual([]);
    expect(instanceTypeCandidates({ arch: 'arm64', cpus: 96, size: 'c8g.24xlarge' })).toEqual([
      'c8g.24xlarge',
    ]);
  });

  it('never offers a type of the mapping with fewer vCPUs or less memory than the source, or of another arch', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('x86_64' as const, 'arm64' as const),
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0.1, max: 2000, noNaN: true }),
        (arch, cpus, memoryGiB) => {
          for (const name of instanceTypeCandidates({ arch, cpus, memoryBytes: memoryGiB * GIB })) {
            const spec = instanceTypeSpec(name);
            expect(spec).toBeDefined();
            expect(spec?.arch).toBe(arch);
            expect(spec?.vcpus).toBeGreaterThanOrEqual(cpus);
            expect(spec?.memoryGiB).toBeGreaterThanOrEqual(memoryGiB);
          }
        },
      ),
    );
  });

  it('has the documented sizes of the current families', () => {
    expect(instanceTypeSpec('m7i.large')).toEqual({
      name: 'm7i.large',
      arch: 'x86_64',
      vcpus: 2,
      memoryGiB: 8,
    });
    expect(instanceTypeSpec('c7i.48xlarge')).toEqual({
      name: 'c7i.48xlarge',
      arch: 'x86_64',
      vcpus: 192,
      memoryGiB: 384,
    });
    expect(instanceTypeSpec('r7g.16xlarge')).toEqual({
      name: 'r7g.16xlarge',
      arch: 'arm64',
      vcpus: 64,
      memoryGiB: 512,
    });
    expect(instanceTypeSpec('m7g.medium')).toEqual({
      name: 'm7g.medium',
      arch: 'arm64',
      vcpus: 1,
      memoryGiB: 4,
    });
    expect(instanceTypeSpec('m7i.medium')).toBeUndefined();
    expect(INSTANCE_TYPES).toHaveLength(9 * 3 + 8 * 3);
  });
});

describe('typeArch and ec2Arch', () => {
  it('reads the architecture from a type name', () => {
    for (const name of [
      'm7g.large',
      'c7gn.xlarge',
      'r6gd.large',
      't4g.micro',
      'im4gn.large',
      'a1.large',
      'mac2.metal',
    ])
      expect(typeArch(name)).toBe('arm64');
    for (const name of [
      'm7i.large',
      'c6a.large',
      't3.large',
      'm5zn.large',
      'g5.xlarge',
      'mac1.metal',
      'x2iedn.xlarge',
    ])
      expect(typeArch(name)).toBe('x86_64');
    expect(typeArch('m7i large; reboot')).toBeUndefined();
  });

  it('maps the Profile architectures EC2 runs and no others', () => {
    expect(ec2Arch('x86_64')).toBe('x86_64');
    expect(ec2Arch('aarch64')).toBe('arm64');
    expect(ec2Arch('armv7l')).toBeUndefined();
    expect(ec2Arch('s390x')).toBeUndefined();
  });
});
