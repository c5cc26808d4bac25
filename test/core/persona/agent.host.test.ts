// persona-agent on real test hosts: installed over SSH (a supervised loop: the test root
// filesystem has no systemd and no cron), installed again without a second process or a new
// credential, removed whole; and its apply of an assignment — sysctl, cgroup files and tc
// applied and read back, a failing entry rolling back the ones before it in reverse, hostile
// entries refused with nothing touched.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAgentCredentials } from '../../../core/persona/agent/credentials.js';
import {
  AGENT_PATHS,
  agentScript,
  installAgent,
  systemdUnits,
  uninstallAgent,
} from '../../../core/persona/agent/install.js';
import { AGENTS_TABLE } from '../../../core/storage/definitions.js';
import type { SshTransport } from '../../../core/transport/ssh.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

const exec = promisify(execFile);

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
let credentials: DynamoAgentCredentials;
let host: TestHost;
let transport: SshTransport;
// The test hosts mount no cgroup filesystem: this machine's cgroup v2 hierarchy is mounted in
// the host for these tests, and the agent writes real cgroup files of a group of their own,
// which the kernel checks.
const cgroupGroup = `/persona-agent-test-${process.pid}`;
const cgroupLent = `/sys/fs/cgroup/unified${cgroupGroup}`;
const shop = `${cgroupGroup}/shop.service`;
const TAB = '\t';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-agent-host-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: AGENTS_TABLE, name: 'agents' }],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
  );
  credentials = new DynamoAgentCredentials(ddb, 'agents');
  host = await createHost({ name: 'agent-a' });
  transport = sshTransportTo(host);
  mkdirSync(join(cgroupLent, 'shop.service'), { recursive: true });
  await exec('nsenter', [
    `--target=${host.pid}`,
    '--mount',
    '--',
    'mount',
    '-t',
    'cgroup2',
    'cgroup2',
    join(host.root, 'sys/fs/cgroup'),
  ]);
}, 300_000);

afterAll(async () => {
  await transport?.close();
  await destroyAllHosts();
  for (const d of [join(cgroupLent, 'shop.service'), cgroupLent]) {
    try {
      rmdirSync(d);
    } catch {
      // Already gone, or never made.
    }
  }
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const settings = () => ({
  // Nothing listens there: these tests are about the host side; the e2e test posts for real.
  endpoint: 'http://127.0.0.1:9',
  host: 'agent-a',
  intervalSeconds: 30,
});
const deps = () => ({ transport, credentials, now: () => new Date() });

async function supervisors(): Promise<string[]> {
  const out = await host.run('pgrep -f "persona-agent[.]sh supervise" || true');
  return out.split('\n').filter((l) => l.trim() !== '');
}

async function fileList(): Promise<string> {
  return host.run(
    `find ${AGENT_PATHS.libDir} ${AGENT_PATHS.confDir} -type f -printf '%p %m %u:%g\\n' | sort`,
  );
}

describe('installing persona-agent', () => {
  it('checks as POSIX sh (dash)', async () => {
    const file = join(dir, 'persona-agent.sh');
    writeFileSync(file, agentScript());
    await expect(exec('dash', ['-n', file])).resolves.toBeDefined();
  });

  it('installs a supervised loop on a host without systemd, root-owned, the credential 0600', async () => {
    const result = await installAgent(deps(), settings());
    expect(result).toMatchObject({
      init: 'supervised',
      cron: false,
      http: 'curl',
      issued: true,
      revoked: [],
    });
    expect(await fileList()).toBe(
      [
        `${AGENT_PATHS.config} 600 root:root`,
        `${AGENT_PATHS.credential} 600 root:root`,
        `${AGENT_PATHS.script} 755 root:root`,
        '',
      ].join('\n'),
    );
    expect(await host.run(`stat -c '%a' ${AGENT_PATHS.confDir}`)).toBe('700\n');
    const token = (await host.readFile(AGENT_PATHS.credential)).trim();
    await expect(credentials.verify(token, new Date())).resolves.toMatchObject({
      host: 'agent-a',
      id: result.credentialId,
    });
    expect(await supervisors()).toHaveLength(1);
    const pid = (await host.readFile(AGENT_PATHS.pidfile)).trim();
    expect(await supervisors()).toEqual([pid]);
    // The token is in a file curl reads, never on a command line others can read.
    const cmdlines = await host.run('cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "');
    expect(cmdlines).not.toContain(token.split('.')[1]);
  }, 120_000);

  it('installs again with the same files, the same credential and one supervisor', async () => {
    const before = await fileList();
    const token = await host.readFile(AGENT_PATHS.credential);
    const first = (await host.readFile(AGENT_PATHS.pidfile)).trim();
    const again = await installAgent(deps(), settings());
    expect(again).toMatchObject({ issued: false, revoked: [] });
    expect(await fileList()).toBe(before);
    expect(await host.readFile(AGENT_PATHS.credential)).toBe(token);
    const running = await supervisors();
    expect(running).toHaveLength(1);
    // Restarted, so the new script runs.
    expect(running[0]).not.toBe(first);
  }, 120_000);

  it('issues a new credential and revokes the old one when the host’s no longer verifies', async () => {
    const old = (await host.readFile(AGENT_PATHS.credential)).trim();
    await credentials.revoke('agent-a', new Date());
    const result = await installAgent(deps(), settings());
    expect(result.issued).toBe(true);
    const fresh = (await host.readFile(AGENT_PATHS.credential)).trim();
    expect(fresh).not.toBe(old);
    await expect(credentials.verify(fresh, new Date())).resolves.toMatchObject({ host: 'agent-a' });
    await expect(credentials.verify(old, new Date())).rejects.toThrow();
    expect(await supervisors()).toHaveLength(1);
  }, 120_000);

  it('refuses settings an agent could misread, naming the field', async () => {
    await expect(
      installAgent(deps(), { ...settings(), endpoint: 'http://x/$(reboot)' }),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [expect.objectContaining({ path: 'endpoint' })],
    });
    await expect(installAgent(deps(), { ...settings(), intervalSeconds: 1 })).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'intervalSeconds' })],
    });
  });

  it('renders systemd units: a oneshot cycle and a timer every interval', () => {
    const units = systemdUnits(45);
    expect(units.service).toContain('Type=oneshot');
    expect(units.service).toContain(`ExecStart=/bin/sh ${AGENT_PATHS.script} once`);
    expect(units.timer).toContain('OnUnitActiveSec=45s');
    expect(units.timer).toContain('WantedBy=timers.target');
  });
});

/** Writes an assignment on the host and applies it with the installed agent. */
async function apply(lines: readonly string[]): Promise<{ exitCode: number; report: any; stderr: string }> {
  const text = `${['persona-assignment 1', `persona${TAB}peak${TAB}2${TAB}${Math.random().toString(16).slice(2, 14)}`, ...lines, 'end'].join('\n')}\n`;
  await transport.putFile('/tmp/assignment', Buffer.from(text), { mode: 0o600 });
  const result = await transport.run(`/bin/sh ${AGENT_PATHS.script} apply /tmp/assignment`, {
    timeoutMs: 60_000,
  });
  const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? 'null');
  return { exitCode: result.exitCode, report, stderr: result.stderr };
}

async function hostState() {
  return {
    ttl: (await host.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim(),
    somaxconn: (await host.run('cat /proc/sys/net/core/somaxconn')).trim(),
    descendants: (await host.run(`cat /sys/fs/cgroup${shop}/cgroup.max.descendants`)).trim(),
    qdisc: (await host.run('tc qdisc show dev eth0 root')).trim(),
  };
}

describe("reporting the applications' own numbers", () => {
  it('reports request rate, data processed and custom metrics from their files, and nothing else', async () => {
    const dir = '/run/persona-agent/metrics';
    await host.run(
      [
        `mkdir -p ${dir} && cd ${dir}`,
        'echo 42.5 > requests.per_second',
        'echo 1200 > data.processed.bytes_per_second',
        'echo 7 > custom.queue_depth',
        // Hostile or stale: a value that is a command, a name outside the grammar, a link to
        // another file, a file last written an hour ago, a value on its second line.
        "echo '1;reboot' > custom.evil",
        'echo 3 > other',
        'ln -sf /etc/hostname custom.link',
        'echo 9 > custom.old && touch -d "1 hour ago" custom.old',
        "printf '\\n5\\n' > custom.second_line",
      ].join(' && '),
    );
    const result = await transport.run(`/bin/sh ${AGENT_PATHS.script} metrics`);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? 'null');
    expect(report.host).toBe('agent-a');
    const own = Object.fromEntries(
      Object.entries(report.values as Record<string, number>).filter(
        ([name]) => name.startsWith('custom.') || name.startsWith('requests.') || name.startsWith('data.'),
      ),
    );
    expect(own).toEqual({
      'requests.per_second': 42.5,
      'data.processed.bytes_per_second': 1200,
      'custom.queue_depth': 7,
    });
    expect(report.values['memory.utilization']).toBeGreaterThan(0);
    await host.run(`rm -r ${dir}`);
  });
});

describe('applying an assignment', () => {
  it('applies sysctl, cgroup and tc entries, reads each back, and leaves equal ones alone', async () => {
    const before = await hostState();
    expect(before.qdisc).toMatch(/ 0: root/);
    const { exitCode, report } = await apply([
      `sysctl${TAB}net.ipv4.ip_default_ttl${TAB}77`,
      `sysctl${TAB}net.core.somaxconn${TAB}${before.somaxconn}`,
      `cgroup${TAB}${shop}${TAB}cgroup.max.descendants${TAB}12`,
      `tc${TAB}eth0${TAB}20000`,
    ]);
    expect(exitCode, JSON.stringify(report)).toBe(0);
    expect(report).toMatchObject({ host: 'agent-a', persona: 'peak', version: 2, outcome: 'applied' });
    expect(report.entries.map((e: { status: string }) => e.status)).toEqual([
      'changed',
      'unchanged',
      'changed',
      'changed',
    ]);
    expect(report.entries[0]).toMatchObject({
      target: 'net.ipv4.ip_default_ttl',
      from: before.ttl,
      to: '77',
    });
    expect(report.entries[3]).toMatchObject({ target: 'eth0', from: 'none', to: '20000' });
    const after = await hostState();
    expect(after.ttl).toBe('77');
    expect(after.descendants).toBe('12');
    expect(after.qdisc).toMatch(/^qdisc tbf 9e50: root .*rate 20Mbit/);
    // The journal holds what each value was before it was changed.
    const journal = await host.readFile(`${AGENT_PATHS.stateDir}/journal`);
    expect(journal).toContain(
      `change${TAB}0${TAB}sysctl${TAB}net.ipv4.ip_default_ttl${TAB}77${TAB}${before.ttl}\n`,
    );
    expect(journal.trim().split('\n').at(-1)).toBe('done');
  }, 120_000);

  it('rolls back, in reverse, what it changed before an entry the kernel refuses', async () => {
    const before = await hostState();
    const { exitCode, report } = await apply([
      `sysctl${TAB}net.core.somaxconn${TAB}1000`,
      `cgroup${TAB}${shop}${TAB}cgroup.max.descendants${TAB}5`,
      `tc${TAB}eth0${TAB}8000`,
      // The kernel takes a default TTL of 1 to 255 only.
      `sysctl${TAB}net.ipv4.ip_default_ttl${TAB}300`,
    ]);
    expect(exitCode).toBe(1);
    expect(report.outcome).toBe('rolled-back');
    expect(report.entries.map((e: { index: number; status: string }) => `${e.index}:${e.status}`)).toEqual([
      '0:changed',
      '1:changed',
      '2:changed',
      '3:failed',
      // Journaled before its write, so put back too: a write the kernel refused may have half landed.
      '3:reverted',
      '2:reverted',
      '1:reverted',
      '0:reverted',
    ]);
    expect(await hostState()).toEqual(before);
    const journal = await host.readFile(`${AGENT_PATHS.stateDir}/journal`);
    expect(journal.trim().split('\n').at(-1)).toBe(`rolled-back${TAB}0`);
  }, 120_000);

  it('refuses an assignment with hostile entries, applies none of it, and does not echo them', async () => {
    const before = await hostState();
    await host.run('rm -f /tmp/pwned');
    const hostile = [
      `sysctl${TAB}net.ipv4.ip_default_ttl${TAB}99`, // valid, but the assignment is refused whole
      `sysctl${TAB}../../../etc/hostname${TAB}pwned`,
      `sysctl${TAB}-w${TAB}1`,
      `sysctl${TAB}net.core.somaxconn${TAB}1;touch /tmp/pwned`,
      `sysctl${TAB}net.core.somaxconn${TAB}$(touch /tmp/pwned)`,
      `cgroup${TAB}/../../etc${TAB}cpu.max${TAB}max`,
      `cgroup${TAB}${shop}${TAB}cgroup.procs${TAB}1`,
      `cgroup${TAB}${shop}${TAB}cgroup.max.descendants${TAB}-1`,
      `tc${TAB}-eth0${TAB}100`,
      `tc${TAB}eth0${TAB}100 ; touch /tmp/pwned`,
      `exec${TAB}touch /tmp/pwned`,
    ];
    const { exitCode, report } = await apply(hostile);
    expect(exitCode).toBe(1);
    expect(report.outcome).toBe('refused');
    expect(report.entries.map((e: { index: number }) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(report.entries.every((e: { status: string }) => e.status === 'refused')).toBe(true);
    expect(JSON.stringify(report)).not.toContain('pwned');
    expect(await hostState()).toEqual(before);
    expect(await host.run('ls /tmp/pwned 2>/dev/null || echo absent')).toBe('absent\n');
    expect((await host.readFile('/etc/hostname')).trim()).toBe('agent-a');
  }, 120_000);

  it('takes over the apply lock of an agent process that died', async () => {
    // A pid that no longer runs: a finished process's.
    const dead = (await host.run("sh -c 'echo $$'")).trim();
    await host.run(
      `mkdir -p ${AGENT_PATHS.stateDir}/lock && echo ${dead} > ${AGENT_PATHS.stateDir}/lock/pid`,
    );
    const { exitCode, report } = await apply([`sysctl${TAB}net.ipv4.ip_default_ttl${TAB}64`]);
    expect(exitCode, JSON.stringify(report)).toBe(0);
    expect(await host.run(`ls ${AGENT_PATHS.stateDir}/lock 2>/dev/null || echo released`)).toBe('released\n');
  }, 60_000);

  it('refuses an assignment cut short (no end line)', async () => {
    await transport.putFile(
      '/tmp/cut',
      Buffer.from(
        `persona-assignment 1\npersona${TAB}peak${TAB}2${TAB}abc\nsysctl${TAB}net.ipv4.ip_default_ttl${TAB}64\n`,
      ),
    );
    const result = await transport.run(`/bin/sh ${AGENT_PATHS.script} apply /tmp/cut`);
    expect(result.exitCode).toBe(1);
    expect(JSON.parse(result.stdout).entries[0].detail).toContain('no end line');
  });

  it('reads format 2, and an apply of the same revision again restores a value changed by hand since', async () => {
    const revision = Math.random().toString(16).slice(2, 14);
    const text = `${[
      'persona-assignment 2',
      `persona${TAB}peak${TAB}3${TAB}${revision}`,
      `override${TAB}retain${TAB}0`,
      `sysctl${TAB}net.ipv4.ip_default_ttl${TAB}71`,
      `sysctl${TAB}net.core.somaxconn${TAB}1536`,
      'end',
    ].join('\n')}\n`;
    await transport.putFile('/tmp/v2', Buffer.from(text), { mode: 0o600 });
    const applyV2 = async () => {
      const r = await transport.run(`/bin/sh ${AGENT_PATHS.script} apply /tmp/v2`, { timeoutMs: 60_000 });
      return { exitCode: r.exitCode, report: JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null') };
    };
    const first = await applyV2();
    expect(first.exitCode, JSON.stringify(first.report)).toBe(0);
    expect(first.report).toMatchObject({ version: 3, outcome: 'applied' });
    // Nothing changed since: nothing to do.
    expect((await applyV2()).report.outcome).toBe('unchanged');
    await host.run('sysctl -qw net.ipv4.ip_default_ttl=42');
    const again = await applyV2();
    expect(again.report.outcome).toBe('applied');
    expect(again.report.entries).toEqual([
      expect.objectContaining({
        target: 'net.ipv4.ip_default_ttl',
        from: '42',
        to: '71',
        status: 'changed',
        detail: 'changed since the last apply, undone (persona-agent apply)',
      }),
      expect.objectContaining({ target: 'net.core.somaxconn', status: 'unchanged' }),
    ]);
    expect((await host.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe('71');
  }, 120_000);

  it.each([
    [
      'an override that is neither retain nor enforced',
      `override${TAB}ignore${TAB}0`,
      'neither retain nor enforced',
    ],
    ['a retain time that is not a number', `override${TAB}retain${TAB}$(reboot)`, 'not a number of seconds'],
    [
      'a retain time too long to be one',
      `override${TAB}retain${TAB}${'9'.repeat(30)}`,
      'not a number of seconds',
    ],
    ['no override line', `sysctl${TAB}net.ipv4.ip_default_ttl${TAB}64`, 'no override line'],
  ])('refuses format 2 with %s, touching nothing', async (_what, third, reason) => {
    const before = await hostState();
    const text = `persona-assignment 2\npersona${TAB}peak${TAB}3${TAB}abc123\n${third}\nsysctl${TAB}net.ipv4.ip_default_ttl${TAB}88\nend\n`;
    await transport.putFile('/tmp/bad-v2', Buffer.from(text), { mode: 0o600 });
    const result = await transport.run(`/bin/sh ${AGENT_PATHS.script} apply /tmp/bad-v2`);
    expect(result.exitCode).toBe(1);
    expect(JSON.parse(result.stdout).entries[0].detail).toContain(reason);
    expect(await hostState()).toEqual(before);
  });

  it('rolls back an apply that was interrupted, on the agent’s next start', async () => {
    const before = (await host.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim();
    // What a killed apply leaves: a change begun, no end marker.
    await host.run('echo 33 > /proc/sys/net/ipv4/ip_default_ttl');
    await host.writeFile(
      `${AGENT_PATHS.stateDir}/journal`,
      `begin${TAB}abc${TAB}peak${TAB}2\nchange${TAB}0${TAB}sysctl${TAB}net.ipv4.ip_default_ttl${TAB}33${TAB}${before}\n`,
      0o600,
    );
    const result = await transport.run(`/bin/sh ${AGENT_PATHS.script} once`, { timeoutMs: 60_000 });
    expect(result.stderr).toContain('was interrupted; restoring what it changed');
    expect((await host.run('cat /proc/sys/net/ipv4/ip_default_ttl')).trim()).toBe(before);
  }, 120_000);
});

describe('removing persona-agent', () => {
  it('stops the supervisor and removes every file it installed', async () => {
    await uninstallAgent(transport);
    expect(await supervisors()).toEqual([]);
    expect(
      await host.run(
        `ls -d ${AGENT_PATHS.libDir} ${AGENT_PATHS.confDir} ${AGENT_PATHS.stateDir} ${AGENT_PATHS.pidfile} 2>/dev/null || echo gone`,
      ),
    ).toBe('gone\n');
    // Removing again is a no-op.
    await uninstallAgent(transport);
  }, 60_000);
});
