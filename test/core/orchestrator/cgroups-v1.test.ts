// The cgroup v1 meaning of a Profile's cgroup limits, without a host: weight and shares round
// trip (systemd's conversion), clamping at the kernel's ranges, "max" both ways, which
// hierarchy holds each controller in a mount table, capture reading v1 hierarchies wherever
// they are mounted into the same fields, and a switch comparing limits by value.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../core/delta/changes.js';
import {
  cgroupExecutor,
  fromV1,
  hierarchies,
  v1Contents,
} from '../../../core/orchestrator/executors/cgroups.js';
import {
  EMPTY_DEFAULTS,
  type HostParameters,
  type PlanOptions,
  planSwitch,
} from '../../../core/persona/parameters.js';
import { PersonaParameters } from '../../../core/persona/schema.js';
import { readBack } from '../../../core/persona/switch.js';
import { sharesToWeight, weightToShares } from '../../../core/profile/cgroup-v1.js';
import type { Transport } from '../../../core/transport/transport.js';
import { build, fixture, withSection } from '../capture/helpers.js';

describe('cpu.weight and cpu.shares', () => {
  it('converts as systemd does: the default weight 100 is the default 1024 shares', () => {
    expect(weightToShares(100)).toBe(1024);
    expect(weightToShares(1)).toBe(10);
    expect(weightToShares(10000)).toBe(102400);
    expect(weightToShares(300)).toBe(3072);
    expect(sharesToWeight(1024)).toBe(100);
    expect(sharesToWeight(1030)).toBe(101);
  });

  it('reads every weight it writes back as that weight', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10000 }), (w) => sharesToWeight(weightToShares(w)) === w),
    );
  });

  it('clamps to the kernel ranges: shares 2-262144, weights 1-10000', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(weightToShares(0)).toBe(2);
    expect(weightToShares(1_000_000)).toBe(262144);
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 262144 }), (s) => {
        const w = sharesToWeight(s);
        return w >= 1 && w <= 10000;
      }),
    );
  });
});

describe('v1 files of each limit', () => {
  it('writes cpu.max as quota and period, "max" as -1, lifting a quota before its period changes', () => {
    expect(v1Contents('cpuMax', '50000 100000')).toEqual([
      ['cpu.cfs_period_us', '100000'],
      ['cpu.cfs_quota_us', '50000'],
    ]);
    expect(v1Contents('cpuMax', 'max 100000')).toEqual([
      ['cpu.cfs_quota_us', '-1'],
      ['cpu.cfs_period_us', '100000'],
    ]);
    expect(v1Contents('cpuMax', '20000')).toEqual([['cpu.cfs_quota_us', '20000']]);
    expect(fromV1('cpuMax', { 'cpu.cfs_quota_us': '-1', 'cpu.cfs_period_us': '100000' })).toBe('max 100000');
    expect(fromV1('cpuMax', { 'cpu.cfs_quota_us': '30000', 'cpu.cfs_period_us': '50000' })).toBe(
      '30000 50000',
    );
  });

  it('writes memory "max" as -1 and reads the kernel’s page-rounded huge value as "max"', () => {
    expect(v1Contents('memoryMax', 'max')).toEqual([['memory.limit_in_bytes', '-1']]);
    expect(v1Contents('memoryMax', null)).toEqual([['memory.limit_in_bytes', '-1']]);
    expect(v1Contents('memoryMax', 268435456)).toEqual([['memory.limit_in_bytes', '268435456']]);
    expect(fromV1('memoryMax', { 'memory.limit_in_bytes': '9223372036854771712' })).toBe('max');
    expect(fromV1('memoryMax', { 'memory.limit_in_bytes': '268435456' })).toBe('268435456');
  });

  it('puts a dropped limit back to the kernel’s initial value', () => {
    expect(v1Contents('cpuWeight', null)).toEqual([['cpu.shares', '1024']]);
    expect(v1Contents('pidsMax', null)).toEqual([['pids.max', 'max']]);
    expect(v1Contents('ioWeight', null, 'blkio.weight')).toEqual([['blkio.weight', '500']]);
    expect(v1Contents('ioWeight', null, 'blkio.bfq.weight')).toEqual([['blkio.bfq.weight', '100']]);
  });

  it('says why an I/O weight has no v1 form: no weight file, or outside its range', () => {
    expect(v1Contents('ioWeight', 300)).toMatch(/neither blkio.weight nor blkio.bfq.weight/);
    expect(v1Contents('ioWeight', 5, 'blkio.weight')).toBe(
      "ioWeight 5 is outside blkio.weight's range 10-1000",
    );
    expect(v1Contents('ioWeight', 5, 'blkio.bfq.weight')).toEqual([['blkio.bfq.weight', '5']]);
    expect(v1Contents('ioWeight', 2000, 'blkio.bfq.weight')).toMatch(/outside/);
    expect(fromV1('ioWeight', { 'blkio.bfq.weight': '250' })).toBe('default 250');
  });
});

describe('which hierarchy holds each controller', () => {
  it('takes the unified hierarchy where it has the controller, else the v1 mount, wherever it is', () => {
    const { byController } = hierarchies(
      [
        'v2 rw /sys/fs/cgroup/unified hugetlb pids ',
        'v1 rw /sys/fs/cgroup/cpu,cpuacct rw,nosuid,relatime,cpu,cpuacct',
        'v1 rw /sys/fs/cgroup/cpuset rw,cpuset',
        'v1 ro /mnt/memory rw,memory',
        'v1 rw /sys/fs/cgroup/pids rw,pids',
      ].join('\n'),
    );
    expect(byController.cpu).toEqual({ version: 'v1', root: '/sys/fs/cgroup/cpu,cpuacct', writable: true });
    expect(byController.memory).toEqual({ version: 'v1', root: '/mnt/memory', writable: false });
    expect(byController.pids).toEqual({ version: 'v2', root: '/sys/fs/cgroup/unified', writable: true });
    expect(byController.io).toBeUndefined();
  });

  it('does not use a mount point with an escaped blank or a ".." in it', () => {
    const { any, byController } = hierarchies(
      ['v1 rw /sys/fs/cgroup/my\\040cpu rw,cpu', 'v1 rw /sys/fs/cgroup/../etc rw,memory'].join('\n'),
    );
    expect(any).toBe(true);
    expect(byController).toEqual({});
  });
});

describe('capturing v1 limits', () => {
  const debian = fixture('debian-12');
  const cgroups = (parts: [string, string][]) =>
    build(withSection(debian, 'cgroups', { parts })).valid.spec.resources.cgroups;

  it('reads each v1 hierarchy at its mount point into the fields a v2 host has', () => {
    expect(
      cgroups([
        ['v2 /sys/fs/cgroup/unified', ''],
        [
          'hierarchy /sys/fs/cgroup/cpu,cpuacct',
          [
            '/sys/fs/cgroup/cpu,cpuacct/cpu.shares:1024',
            '/sys/fs/cgroup/cpu,cpuacct/shop.service/cpu.shares:3072',
            '/sys/fs/cgroup/cpu,cpuacct/shop.service/cpu.cfs_quota_us:50000',
            '/sys/fs/cgroup/cpu,cpuacct/shop.service/cpu.cfs_period_us:100000',
            '/sys/fs/cgroup/cpu,cpuacct/idle.service/cpu.cfs_quota_us:-1',
            '/sys/fs/cgroup/cpu,cpuacct/idle.service/cpu.shares:1030',
          ].join('\n'),
        ],
        [
          'hierarchy /sys/fs/cgroup/memory',
          [
            '/sys/fs/cgroup/memory/shop.service/memory.limit_in_bytes:268435456',
            '/sys/fs/cgroup/memory/idle.service/memory.limit_in_bytes:9223372036854771712',
          ].join('\n'),
        ],
        ['hierarchy /sys/fs/cgroup/blkio', '/sys/fs/cgroup/blkio/shop.service/blkio.bfq.weight:250'],
        ['hierarchy /sys/fs/cgroup/pids', '/sys/fs/cgroup/pids/shop.service/pids.max:64'],
      ]),
    ).toEqual([
      { path: '/idle.service', cpuWeight: 101 },
      {
        path: '/shop.service',
        cpuMax: '50000 100000',
        cpuWeight: 300,
        memoryMax: 268435456,
        ioWeight: 250,
        pidsMax: 64,
      },
    ]);
  });

  it('takes the scheduler’s own default I/O weight for no limit', () => {
    expect(
      cgroups([
        [
          'hierarchy /sys/fs/cgroup/blkio',
          [
            '/sys/fs/cgroup/blkio/a.service/blkio.weight:500',
            '/sys/fs/cgroup/blkio/b.service/blkio.bfq.weight:100',
          ].join('\n'),
        ],
      ]),
    ).toEqual([]);
  });

  it('still reads an older capture’s single v1 part', () => {
    expect(
      cgroups([
        [
          'v1 /sys/fs/cgroup',
          [
            '/sys/fs/cgroup/cpu/shop.service/cpu.shares:2048',
            '/sys/fs/cgroup/memory/shop.service/memory.limit_in_bytes:1073741824',
          ].join('\n'),
        ],
      ]),
    ).toEqual([{ path: '/shop.service', cpuWeight: 200, memoryMax: 1073741824 }]);
  });
});

describe('a switch compares cgroup limits by value', () => {
  const OPTIONS: PlanOptions = { alarms: false, resizable: true, packageManager: 'apt', keepPorts: [22] };
  // As a capture gives them: keys sorted.
  const limit = { cpuMax: '50000 100000', cpuWeight: 300, path: '/shop.service' };
  const host: HostParameters = {
    sysctl: {},
    cgroups: { '/shop.service': limit },
    bandwidth: {},
    packages: {},
  };
  const persona = PersonaParameters.parse({
    cgroups: [{ path: '/shop.service', cpuWeight: 300, cpuMax: '50000 100000' }],
  });

  it('plans nothing when the host has the persona’s limits in another key order', () => {
    expect(planSwitch(host, EMPTY_DEFAULTS, { thresholds: [] }, persona, OPTIONS).changes).toEqual([]);
  });

  it('reads a limit back as held whatever the order of its keys', () => {
    const change = {
      kind: 'cgroup.set',
      section: 'cgroups',
      key: '/shop.service',
      from: null,
      to: { path: '/shop.service', cpuWeight: 300, cpuMax: '50000 100000' },
      disruptive: false,
    } as Change;
    expect(readBack({ delta: { changes: [change] } } as never, host)).toEqual([]);
    expect(
      readBack(
        { delta: { changes: [{ ...change, to: { ...limit, cpuWeight: 200 } } as Change] } } as never,
        host,
      ),
    ).toEqual(['cgroup /shop.service does not hold its limits']);
  });
});

describe('a cgroup whose folder is a symbolic link', () => {
  // cgroupfs itself holds no links; a host can still have one where a hierarchy's folder is
  // expected to be (a tmpfs under /sys/fs/cgroup). Its answers are scripted: no kernel makes one.
  it('leaves the Change unresolved naming the link, and writes nothing through it', async () => {
    const sent: string[] = [];
    const transport = {
      target: 'ssh://root@scripted:22',
      async run(command: string) {
        sent.push(command);
        const stdout = command.startsWith('while read')
          ? 'v1 rw /sys/fs/cgroup/memory rw,relatime,memory\n'
          : 'link /sys/fs/cgroup/memory/shop.slice\n';
        return { exitCode: 0, stdout, stderr: '', durationMs: 1 };
      },
    } as unknown as Transport;
    const change = {
      kind: 'cgroup.set',
      section: 'cgroups',
      key: '/shop.slice/app.service',
      from: null,
      to: { path: '/shop.slice/app.service', memoryMax: 268435456 },
      disruptive: false,
    } as Change;
    const ctx = { transport, operation: 'op', seq: 0, contents: { read: async () => new Uint8Array() } };
    expect(await cgroupExecutor.apply(ctx, change, null)).toEqual({
      status: 'unresolved',
      detail:
        '/shop.slice/app.service: /sys/fs/cgroup/memory/shop.slice is a symbolic link, not a cgroup; nothing is written through it',
    });
    expect(sent.some((c) => /mkdir|printf '%s\\n'/.test(c))).toBe(false);
  });
});
