// The Azure size and image mapping (core/platform/AZURE.md): the smallest size that fits, the
// fallbacks in order, images by distribution, version and processor, and disks.
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../core/errors.js';
import {
  CAPACITY_ERRORS,
  diskSizeGiB,
  diskSkuFor,
  imageFor,
  MAX_SIZE_CANDIDATES,
  sizeCandidates,
  VM_SIZES,
} from '../../core/platform/azure-sizes.js';
import type { HostShape } from '../../core/platform/shape.js';

const GIB = 1024 ** 3;
const shape = (over: Partial<HostShape> = {}): HostShape => ({
  arch: 'x86_64',
  os: { distribution: 'debian', version: '12' },
  volumes: [],
  ingress: [],
  ...over,
});

describe('sizeCandidates', () => {
  it('picks the smallest size with enough vCPUs and memory first, by the family of its memory per vCPU', () => {
    expect(sizeCandidates(shape({ cpus: 2, memoryBytes: 4 * GIB }))[0]).toBe('Standard_F2s_v2');
    expect(sizeCandidates(shape({ cpus: 2, memoryBytes: 8 * GIB }))[0]).toBe('Standard_D2s_v5');
    expect(sizeCandidates(shape({ cpus: 4, memoryBytes: 32 * GIB }))[0]).toBe('Standard_E4s_v5');
    // 3 vCPUs and 7.5 GiB round up to the next real size, never down.
    expect(sizeCandidates(shape({ cpus: 3, memoryBytes: 7.5 * GIB }))[0]).toBe('Standard_F4s_v2');
    expect(sizeCandidates(shape({ cpus: 8, memoryBytes: 60 * GIB }))[0]).toBe('Standard_E8s_v5');
  });

  it('lists the fallbacks after it, cheapest first, at most a few', () => {
    expect(sizeCandidates(shape({ cpus: 2, memoryBytes: 4 * GIB }))).toEqual([
      'Standard_F2s_v2',
      'Standard_D2s_v5',
      'Standard_E2s_v5',
      'Standard_F4s_v2',
    ]);
    expect(sizeCandidates(shape({ cpus: 2, memoryBytes: 4 * GIB })).length).toBeLessThanOrEqual(
      MAX_SIZE_CANDIDATES,
    );
  });

  it('maps aarch64 hosts to the Arm series only', () => {
    const arm = sizeCandidates(shape({ arch: 'aarch64', cpus: 4, memoryBytes: 16 * GIB }));
    expect(arm[0]).toBe('Standard_D4ps_v5');
    expect(arm.every((s) => /p(l)?s_v5$/.test(s))).toBe(true);
    expect(sizeCandidates(shape({ arch: 'aarch64', cpus: 2, memoryBytes: 16 * GIB }))[0]).toBe(
      'Standard_E2ps_v5',
    );
  });

  it('tries an explicit size first, once', () => {
    const sizes = sizeCandidates(shape({ cpus: 2, memoryBytes: 8 * GIB }), 'Standard_D2s_v5');
    expect(sizes[0]).toBe('Standard_D2s_v5');
    expect(sizes.filter((s) => s === 'Standard_D2s_v5')).toHaveLength(1);
    expect(sizeCandidates(shape({ cpus: 2 }), 'Standard_NC6s_v3')[0]).toBe('Standard_NC6s_v3');
  });

  it('sizes a shape without resources as 2 vCPUs and 4 GiB', () => {
    expect(sizeCandidates(undefined)[0]).toBe('Standard_F2s_v2');
  });

  it('refuses a host larger than every mapped size, naming size, and an architecture Azure lacks', () => {
    const tooBig = () => sizeCandidates(shape({ cpus: 512, memoryBytes: 4096 * GIB }));
    expect(tooBig).toThrow(InvalidInputError);
    expect(() => tooBig()).toThrow(/give a size/);
    expect(() => sizeCandidates(shape({ arch: 's390x' }))).toThrow(/s390x/);
  });

  it('knows only sizes that match their series', () => {
    for (const size of VM_SIZES) expect(size.name).toMatch(/^Standard_[DEF]\d+(p|pl)?s_v[25]$/);
    expect([...CAPACITY_ERRORS].sort()).toEqual([
      'AllocationFailed',
      'OverconstrainedAllocationRequest',
      'SkuNotAvailable',
      'ZonalAllocationFailed',
    ]);
  });
});

describe('imageFor', () => {
  it('takes an explicit URN, then the base image when it is an Azure URN', () => {
    expect(imageFor(shape(), 'Canonical:ubuntu-24_04-lts:server:24.04.202401010')).toEqual({
      publisher: 'Canonical',
      offer: 'ubuntu-24_04-lts',
      sku: 'server',
      version: '24.04.202401010',
    });
    expect(
      imageFor(shape({ baseImage: { ref: 'MyCorp:golden:web:1.2.3', platform: 'azure' } })),
    ).toMatchObject({ publisher: 'MyCorp', offer: 'golden' });
    // An AMI is not an Azure image: the distribution decides.
    expect(imageFor(shape({ baseImage: { ref: 'ami-0abc', platform: 'ec2' } }))).toMatchObject({
      publisher: 'Debian',
      sku: '12-gen2',
    });
  });

  it('maps Debian 12, Ubuntu 22.04/24.04 and RHEL 8/9 by version, with arm64 variants', () => {
    const urn = (s: HostShape) => Object.values(imageFor(s)).join(':');
    expect(urn(shape({ os: { distribution: 'debian', version: '12.5' } }))).toBe(
      'Debian:debian-12:12-gen2:latest',
    );
    expect(urn(shape({ arch: 'aarch64', os: { distribution: 'debian', version: '12' } }))).toBe(
      'Debian:debian-12:12-arm64:latest',
    );
    expect(urn(shape({ os: { distribution: 'ubuntu', version: '22.04' } }))).toBe(
      'Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest',
    );
    expect(urn(shape({ arch: 'aarch64', os: { distribution: 'Ubuntu', version: '24.04.1' } }))).toBe(
      'Canonical:ubuntu-24_04-lts:server-arm64:latest',
    );
    expect(urn(shape({ os: { distribution: 'rhel', version: '9.4' } }))).toBe(
      'RedHat:RHEL:9-lvm-gen2:latest',
    );
    expect(urn(shape({ os: { distribution: 'redhat', version: '8.10' } }))).toBe(
      'RedHat:RHEL:8-lvm-gen2:latest',
    );
  });

  it('refuses what it has no image for, naming the distribution, and a URN that is not one', () => {
    expect(() => imageFor(shape({ os: { distribution: 'gentoo', version: '2.15' } }))).toThrow(/gentoo/);
    expect(() => imageFor(shape({ os: { distribution: 'ubuntu', version: '20.04' } }))).toThrow(
      /ubuntu.*20\.04/,
    );
    expect(() => imageFor(shape({ arch: 'aarch64', os: { distribution: 'rhel', version: '9' } }))).toThrow(
      /aarch64/,
    );
    expect(() => imageFor(shape(), 'Debian:debian-12:12; reboot:latest')).toThrow(InvalidInputError);
    expect(() => imageFor(undefined)).toThrow(InvalidInputError);
  });
});

describe('disks', () => {
  it('rounds a volume up to whole GiB, with a minimum', () => {
    expect(diskSizeGiB(8 * GIB)).toBe(8);
    expect(diskSizeGiB(8 * GIB + 1)).toBe(9);
    expect(diskSizeGiB(1)).toBe(1);
    expect(diskSizeGiB(8 * GIB, 30)).toBe(30);
  });

  it('gives premium SSD unless the volume was slow storage', () => {
    expect(diskSkuFor(undefined)).toBe('Premium_LRS');
    expect(diskSkuFor('nvme')).toBe('Premium_LRS');
    expect(diskSkuFor('gp3')).toBe('Premium_LRS');
    expect(diskSkuFor('hdd')).toBe('StandardSSD_LRS');
    expect(diskSkuFor('Standard_LRS')).toBe('StandardSSD_LRS');
    expect(diskSkuFor('st1')).toBe('StandardSSD_LRS');
  });
});
