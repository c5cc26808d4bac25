// Ansible applying the same state as a clone plan: a playbook generated from the plan's Changes,
// one task per Change in the plan's order, with the modules a user would pick (apt with the
// same .deb files copied over, copy with owner and mode, user, group, sysctl, lineinfile, the
// nftables ruleset copied then loaded, service), run with ansible-playbook against one target
// over its SSH connection with pipelining on, the host key checked against a pinned file.
// Values from the plan reach the playbook only through the YAML writer, and the two shell tasks
// (route, sysctl without ansible.posix) only through the project's quoting helper.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Change } from '../../core/delta/changes.js';
import { envLine } from '../../core/orchestrator/executors/env.js';
import type { ConfigFile } from '../../core/profile/schema.js';
import { sh } from '../../core/transport/shell.js';
import { type ProcessRun, runProcess } from '../capture/process.js';
import type { StagedPackage } from './packages.js';

/** Where the playbook keeps the package files on the target, so a second run finds them there. */
const REMOTE_DEBS = '/var/cache/persona-bench/debs';
const SYSCTL_FILE = '/etc/sysctl.d/60-persona.conf';
const NFT_FILE = '/etc/nftables.conf';

type Task = Record<string, unknown>;

export interface Generated {
  readonly tasks: readonly Task[];
  /** Changes no task was written for, with why. */
  readonly leftOut: readonly { readonly change: Change; readonly why: string }[];
}

export interface GenerateOptions {
  /** The copy of the source's files that `copy` reads from. */
  readonly tree: string;
  readonly packages: ReadonlyMap<string, StagedPackage>;
  /** ansible.posix is installed (the `ansible` package brings it; `ansible-core` alone does not). */
  readonly posix: boolean;
}

/** The tasks for the Changes, in their order. */
export function generateTasks(changes: readonly Change[], options: GenerateOptions): Generated {
  const tasks: Task[] = [];
  const leftOut: { change: Change; why: string }[] = [];
  const name = (c: Change) => `${c.kind} ${c.key}`;
  let cache = false;
  for (const c of changes) {
    switch (c.kind) {
      case 'package.install':
      case 'package.upgrade': {
        const staged = options.packages.get(need(c.to).name);
        if (staged === undefined) {
          leftOut.push({ change: c, why: 'no package file was staged for it' });
          break;
        }
        const remote = `${REMOTE_DEBS}/${staged.entry.sha256}.deb`;
        if (!cache) {
          tasks.push({
            name: 'the package cache folder',
            'ansible.builtin.file': { path: REMOTE_DEBS, state: 'directory', mode: '0700' },
          });
          cache = true;
        }
        tasks.push(
          {
            name: `copy ${staged.entry.name}_${staged.entry.version}.deb`,
            'ansible.builtin.copy': { src: staged.file, dest: remote, mode: '0600' },
          },
          { name: name(c), 'ansible.builtin.apt': { deb: remote } },
        );
        break;
      }
      case 'file.write': {
        const f: ConfigFile = need(c.to);
        const owned = { owner: f.owner ?? 'root', group: f.group ?? 'root' };
        if (f.type === 'directory') {
          tasks.push({
            name: name(c),
            'ansible.builtin.file': { path: f.path, state: 'directory', ...owned, mode: f.mode ?? '0755' },
          });
        } else if (f.type === 'symlink') {
          tasks.push({
            name: name(c),
            'ansible.builtin.file': { path: f.path, src: f.target, state: 'link', force: true, ...owned },
          });
        } else {
          tasks.push({
            name: name(c),
            'ansible.builtin.copy': {
              src: join(options.tree, f.path),
              dest: f.path,
              ...owned,
              mode: f.mode ?? '0644',
            },
          });
        }
        break;
      }
      case 'file.delete':
        tasks.push({ name: name(c), 'ansible.builtin.file': { path: c.key, state: 'absent' } });
        break;
      case 'group.add': {
        const g = need(c.to);
        tasks.push({
          name: name(c),
          'ansible.builtin.group': {
            name: g.name,
            ...(g.gid === undefined ? {} : { gid: g.gid }),
            state: 'present',
          },
        });
        break;
      }
      case 'user.add': {
        const u = need(c.to);
        tasks.push({
          name: name(c),
          'ansible.builtin.user': {
            name: u.name,
            ...(u.uid === undefined ? {} : { uid: u.uid }),
            ...(u.gid === undefined ? {} : { group: String(u.gid) }),
            ...(u.home === undefined ? {} : { home: u.home }),
            ...(u.shell === undefined ? {} : { shell: u.shell }),
            ...(u.groups === undefined || u.groups.length === 0 ? {} : { groups: u.groups }),
            // As Persona's executor: the account, not a home folder.
            create_home: false,
            state: 'present',
          },
        });
        break;
      }
      case 'sysctl.set': {
        const value = need(c.to);
        tasks.push(
          options.posix
            ? {
                name: name(c),
                'ansible.posix.sysctl': {
                  name: c.key,
                  value,
                  sysctl_file: SYSCTL_FILE,
                  sysctl_set: true,
                  reload: false,
                },
              }
            : shellTask(
                name(c),
                [
                  sh`k=${c.key}; v=${value}; f=${SYSCTL_FILE}; changed=`,
                  '[ "$(sysctl -n -- "$k")" = "$v" ] || { sysctl -q -w -- "$k=$v"; changed=1; }',
                  'grep -qxF -- "$k = $v" "$f" 2>/dev/null || { touch -- "$f"; awk -v k="$k" \'$1 != k\' "$f" > "$f.new" && printf "%s = %s\\n" "$k" "$v" >> "$f.new" && mv -- "$f.new" "$f"; changed=1; }',
                  '[ -z "$changed" ] || echo changed',
                ].join('\n'),
              ),
        );
        break;
      }
      case 'env.set': {
        const v = need(c.to);
        const line = v.value === undefined ? undefined : envLine(v.name, v.value);
        if (line === undefined || v.scope === undefined || !v.scope.startsWith('/')) {
          leftOut.push({ change: c, why: 'not a plain value in an environment file' });
          break;
        }
        tasks.push({
          name: name(c),
          'ansible.builtin.lineinfile': {
            path: v.scope,
            regexp: `^\\s*(export\\s+)?${v.name}=`,
            line,
            create: true,
          },
        });
        break;
      }
      case 'firewall.replace': {
        const fw = need(c.to);
        if (fw.backend !== 'nftables') {
          leftOut.push({ change: c, why: `a ${fw.backend} ruleset` });
          break;
        }
        tasks.push(
          {
            name: `${name(c)}: the ruleset file`,
            'ansible.builtin.copy': {
              content: `flush ruleset\n${fw.ruleset}`,
              dest: NFT_FILE,
              owner: 'root',
              group: 'root',
              mode: '0644',
            },
            register: 'nft_ruleset',
          },
          {
            name: `${name(c)}: loaded`,
            'ansible.builtin.command': { argv: ['nft', '-f', NFT_FILE] },
            when: 'nft_ruleset.changed',
          },
        );
        break;
      }
      case 'route.add': {
        const r = need(c.to);
        const words = [
          'to',
          r.destination,
          ...(r.gateway === undefined ? [] : ['via', r.gateway]),
          ...(r.interface === undefined ? [] : ['dev', r.interface]),
          ...(r.metric === undefined ? [] : ['metric', r.metric]),
          ...(r.table === undefined ? [] : ['table', r.table]),
        ];
        tasks.push(
          shellTask(
            name(c),
            [
              sh`if [ -n "$(ip route show ${words})" ]; then :; else ip route replace ${words} && echo changed; fi`,
            ].join('\n'),
          ),
        );
        break;
      }
      case 'service.start':
      case 'service.stop':
        tasks.push({
          name: name(c),
          'ansible.builtin.service': {
            name: c.key,
            state: c.kind === 'service.start' ? 'started' : 'stopped',
          },
        });
        break;
      case 'service.enable':
      case 'service.disable':
        tasks.push({
          name: name(c),
          'ansible.builtin.service': { name: c.key, enabled: c.kind === 'service.enable' },
        });
        break;
      default:
        leftOut.push({ change: c, why: 'no task written for this kind' });
    }
  }
  return { tasks, leftOut };
}

/** The state a Change applies; only a removal carries none. */
function need<T>(to: T | null): T {
  if (to === null) throw new TypeError('the Change carries no state to apply');
  return to;
}

/** A shell task that reports changed when its script prints `changed`. */
function shellTask(name: string, script: string): Task {
  return {
    name,
    'ansible.builtin.shell': { cmd: script, executable: '/bin/sh' },
    register: 'out',
    changed_when: "'changed' in out.stdout",
  };
}

export interface AnsibleTarget {
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyPath: string;
  /** known_hosts lines for the address. */
  readonly knownHosts: string;
}

export interface PlaybookRun extends ProcessRun {
  /** The PLAY RECAP's counts for the host. */
  readonly recap: Readonly<Record<string, number>>;
}

export function ansibleVersion(): string | undefined {
  const run = spawnSync('ansible-playbook', ['--version'], {
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_HOME: '/nonexistent/persona-bench' },
  });
  if (run.error || run.status !== 0) return undefined;
  return run.stdout.split('\n')[0]?.trim();
}

/** Whether the ansible.posix collection is there (ansible-doc finds its sysctl module). */
export function hasPosix(): boolean {
  const run = spawnSync('ansible-doc', ['-t', 'module', 'ansible.posix.sysctl'], {
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_HOME: '/nonexistent/persona-bench' },
  });
  return run.status === 0 && run.stdout.includes('sysctl');
}

/** One target, its playbook, and a directory of its own for Ansible's files. */
export class AnsiblePlaybook {
  private readonly controlDir: string;
  private readonly playbookPath: string;
  private readonly inventoryPath: string;
  private readonly knownHostsPath: string;

  constructor(
    private readonly target: AnsibleTarget,
    tasks: readonly Task[],
    private readonly dir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.controlDir = join(dir, 'cp');
    this.knownHostsPath = join(dir, 'known_hosts');
    this.playbookPath = join(dir, 'clone.yml');
    this.inventoryPath = join(dir, 'inventory.yml');
    writeFileSync(this.knownHostsPath, target.knownHosts);
    writeFileSync(
      this.playbookPath,
      stringify([{ name: 'clone', hosts: 'all', gather_facts: false, tasks: [...tasks] }]),
    );
    writeFileSync(
      this.inventoryPath,
      stringify({
        all: {
          hosts: {
            target: {
              ansible_host: target.address,
              ansible_port: target.port,
              ansible_user: target.user,
              ansible_ssh_private_key_file: target.privateKeyPath,
              ansible_ssh_common_args: `-o UserKnownHostsFile=${this.knownHostsPath} -o StrictHostKeyChecking=yes`,
              ansible_python_interpreter: '/usr/bin/python3',
            },
          },
        },
      }),
    );
  }

  get playbook(): string {
    return this.playbookPath;
  }

  async run(): Promise<PlaybookRun> {
    const run = await runProcess('ansible-playbook', ['-i', this.inventoryPath, this.playbookPath], {
      cwd: this.dir,
      timeoutMs: 900_000,
      env: {
        ...process.env,
        ANSIBLE_PIPELINING: 'True',
        ANSIBLE_HOST_KEY_CHECKING: 'True',
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_RETRY_FILES_ENABLED: 'False',
        ANSIBLE_SSH_RETRIES: '0',
        ANSIBLE_HOME: join(this.dir, 'home'),
        ANSIBLE_SSH_CONTROL_PATH_DIR: this.controlDir,
      },
    });
    const line = /^target\s+:\s+(.*)$/m.exec(run.stdout)?.[1] ?? '';
    const recap = Object.fromEntries(
      [...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1] as string, Number(m[2])]),
    );
    return { ...run, recap };
  }

  /** Ends the ControlPersist master (`ssh -O exit`) so no connection outlives the run. */
  close(): void {
    if (existsSync(this.controlDir)) {
      for (const socket of readdirSync(this.controlDir)) {
        spawnSync(
          'ssh',
          ['-O', 'exit', '-o', `ControlPath=${join(this.controlDir, socket)}`, this.target.address],
          {
            encoding: 'utf8',
            timeout: 5000,
          },
        );
      }
    }
    rmSync(join(this.dir, 'home'), { recursive: true, force: true });
  }
}
