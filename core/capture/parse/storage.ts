// Storage: block devices as volumes, the filesystems on them, and what is mounted where.
import type { z } from 'zod';
import { Filesystem, Mount, Volume } from '../../profile/schema.js';
import { lines, partWith } from '../sections.js';
import { int, type ParseContext, unescapeOctal } from './context.js';

type VolumeInput = z.input<typeof Volume>;
type FilesystemInput = z.input<typeof Filesystem>;
type MountInput = z.input<typeof Mount>;

export interface ParsedStorage {
  readonly volumes: VolumeInput[];
  readonly filesystems: FilesystemInput[];
  readonly mounts: MountInput[];
  /** df: bytes in total and used, by mount point. */
  readonly usage: ReadonlyMap<string, { size: number; used: number }>;
}

// Filesystems the kernel and init mount on every host; they are not configuration.
const PSEUDO = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'cgroup',
  'cgroup2',
  'securityfs',
  'pstore',
  'bpf',
  'debugfs',
  'tracefs',
  'mqueue',
  'hugetlbfs',
  'configfs',
  'fusectl',
  'autofs',
  'binfmt_misc',
  'rpc_pipefs',
  'nsfs',
  'efivarfs',
  'selinuxfs',
]);
const SYSTEM_TREES = ['/proc', '/sys', '/dev'];
const under = (path: string, tree: string): boolean => path === tree || path.startsWith(`${tree}/`);

export function keepMount(target: string, fstype: string): boolean {
  if (PSEUDO.has(fstype) || fstype.startsWith('fuse.gvfs')) return false;
  if (SYSTEM_TREES.some((t) => under(target, t))) return false;
  return !(fstype === 'tmpfs' && under(target, '/run'));
}

// Virtual block devices: memory-backed or file-backed, not volumes a platform provides.
const VIRTUAL_DISK = /^(zram|ram|loop|nbd)\d*/;

interface BlockDevice {
  name?: string;
  kname?: string;
  path?: string;
  type?: string;
  size?: number | string;
  fstype?: string | null;
  uuid?: string | null;
  label?: string | null;
  serial?: string | null;
  tran?: string | null;
  children?: BlockDevice[];
}

const devicePath = (d: BlockDevice): string =>
  d.path ?? `/dev/${d.type === 'crypt' || d.type === 'lvm' ? `mapper/${d.name}` : (d.kname ?? d.name)}`;

/** EBS volumes show their id as the NVMe serial without its dash: vol0123… is vol-0123…. */
const volumeName = (d: BlockDevice): string => {
  const serial = d.serial?.trim();
  if (serial) return /^vol[0-9a-f]{8,}$/.test(serial) ? `vol-${serial.slice(3)}` : serial;
  return d.kname ?? d.name ?? 'unknown';
};

const descendants = (d: BlockDevice): BlockDevice[] =>
  (d.children ?? []).flatMap((c) => [c, ...descendants(c)]);

export function parseStorage(ctx: ParseContext): ParsedStorage {
  const block = ctx.section('block');
  const volumes: VolumeInput[] = [];
  const filesystems: FilesystemInput[] = [];

  const lsblk = partWith(block, 'lsblk');
  if (lsblk) {
    let devices: BlockDevice[] = [];
    try {
      devices = (JSON.parse(lsblk.text) as { blockdevices?: BlockDevice[] }).blockdevices ?? [];
    } catch {
      ctx.unknown('block', 'lsblk -J printed something that is not JSON');
    }
    for (const d of devices) {
      const size = int(String(d.size ?? ''));
      if (
        d.type === 'disk' &&
        !VIRTUAL_DISK.test(d.kname ?? d.name ?? '') &&
        size !== undefined &&
        size > 0
      ) {
        const encrypted = descendants(d).some((c) => c.type === 'crypt');
        volumes.push({
          name: volumeName(d),
          device: devicePath(d),
          sizeBytes: size,
          ...(d.tran === 'nvme' ? { type: 'nvme' } : {}),
          ...(encrypted ? { encryption: { enabled: true } } : {}),
        });
      }
      for (const node of [d, ...descendants(d)]) {
        if (!node.fstype) continue;
        const bytes = int(String(node.size ?? ''));
        filesystems.push({
          device: devicePath(node),
          type: node.fstype,
          ...(node.uuid ? { uuid: node.uuid } : {}),
          ...(node.label ? { label: node.label } : {}),
          ...(bytes === undefined ? {} : { sizeBytes: bytes }),
        });
      }
    }
  } else {
    const disks = new Set(lines(partWith(block, 'sysblock')?.text ?? '').map((l) => l.trim()));
    for (const line of lines(partWith(block, 'partitions')?.text ?? '')) {
      const [, , blocks, name] = line.trim().split(/\s+/);
      const kib = int(blocks);
      if (!name || kib === undefined || !disks.has(name) || VIRTUAL_DISK.test(name) || kib === 0) continue;
      volumes.push({ name, device: `/dev/${name}`, sizeBytes: kib * 1024 });
    }
  }

  const usage = new Map<string, { size: number; used: number }>();
  for (const line of lines(ctx.section('df')?.text ?? '').slice(1)) {
    const m = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+(.+)$/.exec(line);
    if (m?.[5]) usage.set(m[5], { size: Number(m[2]) * 1024, used: Number(m[3]) * 1024 });
  }

  // The last mount on a target is the one in effect; earlier ones are hidden beneath it.
  const byTarget = new Map<string, MountInput>();
  const mounts = ctx.section('mounts');
  for (const line of lines(mounts?.text ?? '')) {
    const [source, target, fstype, options] = line.split(' ');
    if (!source || !target || !fstype) continue;
    const t = unescapeOctal(target);
    if (!keepMount(t, fstype)) continue;
    byTarget.delete(t);
    byTarget.set(t, {
      target: t,
      source: unescapeOctal(source),
      fstype,
      options: (options ?? '').split(',').filter(Boolean),
    });

    // A mounted device lsblk could not describe (no udev data in a container) is still a filesystem.
    if (source.startsWith('/dev/') && !filesystems.some((f) => f.device === source)) {
      const size = usage.get(t)?.size;
      filesystems.push({ device: source, type: fstype, ...(size === undefined ? {} : { sizeBytes: size }) });
    }
  }

  return {
    volumes: ctx.keep('block', Volume, volumes, (v) => v.name, 'volume'),
    filesystems: ctx.keep('block', Filesystem, filesystems, (f) => f.device, 'filesystem'),
    mounts: ctx.keep('mounts', Mount, [...byTarget.values()], (m) => m.target, 'mount'),
    usage,
  };
}
