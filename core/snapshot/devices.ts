// Linux's encoding of a device number (glibc's gnu_dev_makedev, gnu_dev_major, gnu_dev_minor):
// 12 bits of major and 20 of minor in the old layout's places, the rest above them.

export const makedev = (major: number, minor: number) =>
  Number(
    ((BigInt(major) & 0xfffn) << 8n) |
      ((BigInt(major) & ~0xfffn) << 32n) |
      (BigInt(minor) & 0xffn) |
      ((BigInt(minor) & ~0xffn) << 12n),
  );
export const majorOf = (rdev: number) =>
  Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
export const minorOf = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
