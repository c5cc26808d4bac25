// Ansible's fact gathering as a user runs it against one host over SSH: the `ansible` and
// `ansible-playbook` commands with their default settings (so OpenSSH's ControlPersist master
// is kept between runs, as it would be for a user), the host key checked against a pinned
// known_hosts file, no retries, no colour.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnsibleFacts } from './fields.js';
import { type ProcessRun, runProcess } from './process.js';

export const FACT_MODULES = ['setup', 'package_facts', 'service_facts'] as const;
export type FactModule = (typeof FACT_MODULES)[number];

export interface AnsibleTarget {
  readonly address: string;
  readonly user: string;
  readonly privateKeyPath: string;
  /** known_hosts lines for the address. */
  readonly knownHosts: string;
}

// Fact gathering first (gather_facts), then the two modules: what one playbook run collects.
const PLAYBOOK = `- hosts: all
  gather_facts: true
  tasks:
    - name: Installed packages
      ansible.builtin.package_facts:
    - name: Services
      ansible.builtin.service_facts:
`;

export class Ansible {
  private readonly knownHostsPath: string;
  private readonly playbookPath: string;
  /** ControlPath directories this run made; their masters are ended by close(). */
  private readonly controlDirs = new Set<string>();
  private fresh = 0;

  constructor(
    private readonly target: AnsibleTarget,
    /** A directory of this run's own: known_hosts, the playbook, SSH control sockets, Ansible's local temp. */
    private readonly dir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.knownHostsPath = join(dir, 'known_hosts');
    writeFileSync(this.knownHostsPath, target.knownHosts);
    this.playbookPath = join(dir, 'facts.yml');
    writeFileSync(this.playbookPath, PLAYBOOK);
  }

  static version(): string | undefined {
    // A home of its own, so that asking for the version leaves no ~/.ansible behind.
    const home = mkdtempSync(join(tmpdir(), 'persona-capbench-ansible-'));
    const run = spawnSync('ansible', ['--version'], {
      encoding: 'utf8',
      env: { ...process.env, ANSIBLE_HOME: home },
    });
    rmSync(home, { recursive: true, force: true });
    if (run.error || run.status !== 0) return undefined;
    return run.stdout.split('\n')[0]?.trim();
  }

  /**
   * The environment a careful user would set: the host key checked (against our pinned file,
   * passed below), no colour codes, no SSH retries. Ansible's home (local temp, control sockets)
   * is in our directory, so that the masters can be found and ended and nothing is left in
   * ~/.ansible; the built-in modules used here do not come from it.
   */
  private env(controlDir: string): NodeJS.ProcessEnv {
    this.controlDirs.add(controlDir);
    return {
      ...process.env,
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_SSH_RETRIES: '0',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
      ANSIBLE_HOME: join(this.dir, 'home'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
    };
  }

  private commonArgs(verbose: boolean): string[] {
    return [
      '-i',
      `${this.target.address},`,
      '-u',
      this.target.user,
      '--private-key',
      this.target.privateKeyPath,
      '-e',
      `ansible_ssh_common_args='-o UserKnownHostsFile=${this.knownHostsPath}'`,
      ...(verbose ? ['-vvv'] : []),
    ];
  }

  private controlDir(cold: boolean): string {
    return cold ? join(this.dir, `cp-cold-${this.fresh++}`) : join(this.dir, 'cp');
  }

  /** Whether a ControlPersist master from an earlier run is there to be reused. */
  masterAlive(): boolean {
    const dir = join(this.dir, 'cp');
    return existsSync(dir) && readdirSync(dir).length > 0;
  }

  /**
   * `ansible all -m MODULE`. `cold` starts without a master connection (a directory of its own),
   * as the first run against a host does. `verbose` (-vvv) is for counting SSH invocations.
   */
  async adHoc(module: FactModule, options: { cold?: boolean; verbose?: boolean } = {}): Promise<ProcessRun> {
    const control = this.controlDir(options.cold === true);
    const run = await runProcess(
      'ansible',
      ['all', ...this.commonArgs(options.verbose === true), '-m', module],
      { env: this.env(control), cwd: this.dir },
    );
    if (options.cold) this.endMasters(control);
    return run;
  }

  /** `ansible-playbook` with gather_facts, package_facts and service_facts. */
  async playbook(options: { cold?: boolean; verbose?: boolean } = {}): Promise<ProcessRun> {
    const control = this.controlDir(options.cold === true);
    const run = await runProcess(
      'ansible-playbook',
      [...this.commonArgs(options.verbose === true), this.playbookPath],
      { env: this.env(control), cwd: this.dir },
    );
    if (options.cold) this.endMasters(control);
    return run;
  }

  /** Ends the ControlPersist masters this run started (`ssh -O exit`), then removes the directory. */
  close(): void {
    for (const dir of this.controlDirs) this.endMasters(dir);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private endMasters(dir: string): void {
    if (!existsSync(dir)) return;
    for (const socket of readdirSync(dir)) {
      spawnSync('ssh', ['-O', 'exit', '-o', `ControlPath=${join(dir, socket)}`, this.target.address], {
        encoding: 'utf8',
        timeout: 5000,
      });
    }
  }
}

/** The JSON an ad-hoc run printed after `ADDRESS | SUCCESS =>` (the default "minimal" output). */
export function adHocResult(stdout: string): Record<string, unknown> {
  const start = stdout.indexOf('=> {');
  if (!/\| SUCCESS =>/.test(stdout) || start < 0)
    throw new Error(`ansible did not succeed:\n${stdout.slice(0, 2000)}`);
  return JSON.parse(stdout.slice(start + 3)) as Record<string, unknown>;
}

/** The three fact sets from the ad-hoc runs' output. */
export function factsOf(outputs: Readonly<Record<FactModule, string>>): AnsibleFacts {
  const facts = (m: FactModule) => (adHocResult(outputs[m]).ansible_facts ?? {}) as Record<string, unknown>;
  return {
    setup: facts('setup'),
    packages: (facts('package_facts').packages ?? {}) as AnsibleFacts['packages'],
    services: (facts('service_facts').services ?? {}) as AnsibleFacts['services'],
  };
}

/** SSH and SFTP invocations in -vvv output: each is a round trip over the (shared) connection. */
export function sshInvocations(verboseOutput: string): number {
  return verboseOutput.split('\n').filter((l) => /SSH: EXEC (ssh|sftp|scp) /.test(l)).length;
}
