// The usage window: rates over the capture script's own run, or from persona-agent's last
// reading to the end of the capture where the host has the agent.
import { describe, expect, it } from 'vitest';
import { build, fixture, reasons, withoutSection } from './helpers.js';

const RHEL = fixture('rhel-9');
const END_OF_START = '\n@@persona:rhel-fixture:end sample-start ';

/** The RHEL fixture with persona-agent's sample file (and /sys/block) in its first reading. */
const withAgent = (line: string, blocks = 'dm-0\nloop0\nnvme0n1\n') =>
  RHEL.replace(
    END_OF_START,
    `\n@@persona:rhel-fixture:part agent\n${line}\n\n@@persona:rhel-fixture:part blocks\n${blocks}${END_OF_START}`,
  );

// The fixture's end reading: CPU 96400 ticks, 81090 idle; ens5 2500000 rx, 5000000 tx bytes;
// disks as the agent counts them (nvme0n1 and dm-0, not the partition) 21750 operations; the
// script's own ticks 40.
const AGENT_31S = '4970.00 93400 78690 0 18600 2185000 4370000';

describe('the usage window', () => {
  it("is the script's own run, said in the Profile, when the host has no agent", () => {
    const usage = build(RHEL).valid.observed?.usage;
    expect(usage?.window).toEqual({ seconds: 1.5, source: 'capture' });
    expect(usage?.network).toMatchObject({ rxBytesPerSecond: 1000000, txBytesPerSecond: 2000000 });
  });

  it("starts at the agent's last reading when that is recent and from the same boot", () => {
    const built = build(withAgent(AGENT_31S));
    const usage = built.valid.observed?.usage;
    expect(usage?.window).toEqual({ seconds: 31.5, source: 'agent' });
    // (3000 ticks - 2400 idle - 40 of the capture's own) / 3000; 315000 bytes / 31.5 s;
    // 3150 operations / 31.5 s.
    expect(usage?.performance?.cpuUtilization).toBe(0.1867);
    expect(usage?.network).toMatchObject({ rxBytesPerSecond: 10000, txBytesPerSecond: 20000 });
    expect(usage?.performance?.diskIops).toBe(100);
    expect(reasons(built, 'usage')).not.toContain(
      'no usable pair of /proc samples: CPU, disk and network rates are unknown',
    );
  });

  it("keeps the script's own window when the agent's reading is stale, from before a reboot, or not numbers", () => {
    for (const line of [
      // 1031.5 s before the end: the agent has stopped.
      '3970.00 93400 78690 0 18600 2185000 4370000',
      // Uptime past the end's: the host rebooted since.
      '6000.00 93400 78690 0 18600 2185000 4370000',
      // Counters above the end's: not the same boot either.
      '4970.00 99999999 78690 0 18600 2185000 4370000',
      // Anything but seven numbers is not a reading, and never more than text to ignore.
      '4970.00 $(touch /tmp/persona-pwned) 1 2 3 4 5',
      '4970.00 93400 78690 0 18600 2185000',
    ]) {
      const usage = build(withAgent(line)).valid.observed?.usage;
      expect(usage?.window, line).toEqual({ seconds: 1.5, source: 'capture' });
      expect(usage?.network?.rxBytesPerSecond, line).toBe(1000000);
    }
  });

  it('says nothing of a window when the capture took no sample', () => {
    const state = withoutSection(withoutSection(withAgent(AGENT_31S), 'sample-start'), 'sample-end');
    const built = build(state);
    expect(built.valid.observed?.usage?.window).toBeUndefined();
    expect(built.valid.observed?.usage?.network).toBeUndefined();
  });
});
