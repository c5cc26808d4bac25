// What each tool gathered: leaf counts of its output, and area by area whether the output holds
// the thing at all, read from the documents the run produced (not from either tool's docs), so a
// change on either side shows up here.
import type { ProfileInput } from '../../core/profile/schema.js';

/** Ansible's three fact sets, as the ad-hoc runs printed them. */
export interface AnsibleFacts {
  /** `ansible_facts` of `-m setup`. */
  readonly setup: Record<string, unknown>;
  /** `ansible_facts.packages` of `-m package_facts`: name → installed versions. */
  readonly packages: Record<string, unknown[]>;
  /** `ansible_facts.services` of `-m service_facts`: name → {name, state, status?, source}. */
  readonly services: Record<string, Record<string, unknown>>;
}

/**
 * Values that are not objects or arrays: each string, number, boolean or null counts once,
 * wherever it sits. Empty objects and arrays count nothing: they say nothing about the host.
 */
export function leafCount(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + leafCount(v), 0);
  if (value !== null && typeof value === 'object')
    return Object.values(value).reduce((n: number, v) => n + leafCount(v), 0);
  return value === undefined ? 0 : 1;
}

/** The leaf counts, by where they come from, for the fields table. */
export function leafBreakdown(
  ansible: AnsibleFacts,
  profile: ProfileInput,
): { ansible: [string, number][]; persona: [string, number][] } {
  const spec = profile.spec as Record<string, unknown>;
  return {
    ansible: [
      ['`setup` (ansible_facts)', leafCount(ansible.setup)],
      ['`package_facts` (packages)', leafCount(ansible.packages)],
      ['`service_facts` (services)', leafCount(ansible.services)],
    ],
    persona: [
      ...Object.keys(spec)
        .sort()
        .map((k): [string, number] => [`spec.${k}`, leafCount(spec[k])]),
      ['observed', leafCount(profile.observed)],
    ],
  };
}

export interface AreaRow {
  readonly area: string;
  readonly ansible: string;
  readonly persona: string;
}

const yes = (what: string) => `✔ ${what}`;
const no = (what = '') => (what ? `✘ ${what}` : '✘');
const partly = (what: string) => `◐ ${what}`;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const obj = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');

/**
 * Area by area (the Profile's parts, plus what Ansible has that the Profile does not), what each
 * tool's output holds on this host. ✔ gathered, ◐ in part (the note says which part), ✘ absent.
 */
export function areaRows(ansible: AnsibleFacts, profile: ProfileInput): AreaRow[] {
  const f = ansible.setup;
  const spec = profile.spec;
  const observed = profile.observed ?? {};
  const rows: AreaRow[] = [];
  const add = (area: string, a: string, p: string) => rows.push({ area, ansible: a, persona: p });
  const factKeys = Object.keys(f);
  const hasFact = (pattern: RegExp) => factKeys.some((k) => pattern.test(k));

  add(
    'OS: distribution, version, kernel, arch',
    yes(
      `${str(f.ansible_distribution)} ${str(f.ansible_distribution_version)}, ${str(f.ansible_kernel)}, ${str(f.ansible_architecture)}`,
    ),
    yes(`${spec.os.distribution} ${spec.os.version}, ${spec.os.kernel}, ${spec.os.arch}`),
  );
  add(
    'hostname, timezone, locale',
    f.ansible_hostname === undefined
      ? no()
      : yes(`${str(f.ansible_hostname)}, ${str(obj(f.ansible_date_time).tz) || 'no timezone'}, no locale`),
    yes(
      [spec.os.hostname, spec.os.timezone, spec.os.locale].filter((x) => x !== undefined).join(', ') ||
        'none',
    ),
  );

  const ansiblePackages = Object.keys(ansible.packages).length;
  const withVersion = Object.values(ansible.packages).filter((vs) =>
    vs.some((v) => str(obj(v).version) !== ''),
  ).length;
  add(
    'packages with versions',
    ansiblePackages === 0
      ? no('(package_facts found no manager)')
      : yes(`${ansiblePackages} (${withVersion} with version), \`package_facts\``),
    yes(`${spec.packages?.length ?? 0} (manager ${spec.packages?.[0]?.manager ?? '?'})`),
  );

  const ansibleServices = Object.values(ansible.services);
  const ansibleEnabled = ansibleServices.filter((s) => s.status !== undefined).length;
  const services = spec.services ?? [];
  add(
    'services: state, enabled at boot, unit file hash',
    ansibleServices.length === 0
      ? no()
      : (ansibleEnabled > 0 ? yes : partly)(
          `${ansibleServices.length}, state${ansibleEnabled > 0 ? ', enabled' : ' only (no enabled flag outside systemd)'}, no unit hash`,
        ),
    yes(
      `${services.length}, ${plural(services.filter((s) => s.state === 'running').length, 'running', 'running')}, enabled, ${services.filter((s) => s.unitHash).length} unit hashes`,
    ),
  );

  const interfaces = Array.isArray(f.ansible_interfaces) ? f.ansible_interfaces.length : 0;
  add(
    'network interfaces and addresses',
    interfaces > 0 ? yes(`${interfaces} (MAC, MTU, addresses, features)`) : no(),
    yes(`${spec.network?.interfaces?.length ?? 0} (type, MAC, MTU, addresses, state)`),
  );
  const defaultRoute = obj(f.ansible_default_ipv4).gateway;
  add(
    'routes',
    defaultRoute
      ? partly('the default route only (`ansible_default_ipv4`)')
      : no('(Ansible reports the default route only, and this host has none)'),
    yes(plural(spec.network?.routes?.length ?? 0, 'route')),
  );
  const firewall = spec.network?.firewall;
  add(
    'firewall ruleset',
    hasFact(/nft|iptables|firewall/) ? yes('') : no(),
    firewall
      ? yes(
          `${firewall.backend}, ${plural(firewall.ruleset.split('\n').filter((l) => l.trim()).length, 'line')}`,
        )
      : no(),
  );
  const dns = obj(f.ansible_dns);
  add(
    'DNS resolvers',
    Array.isArray(dns.nameservers) ? yes(plural(dns.nameservers.length, 'nameserver')) : no(),
    spec.network?.dns ? yes(plural(spec.network.dns.nameservers?.length ?? 0, 'nameserver')) : no(),
  );
  add(
    'listening sockets, established connections',
    hasFact(/listen|connection|socket/) ? yes('') : no('(`listen_ports_facts` is a separate module)'),
    yes(
      `${plural(observed.listening?.length ?? 0, 'listening socket')}, ${plural(observed.connections?.length ?? 0, 'connection')}, with processes`,
    ),
  );

  const mounts = Array.isArray(f.ansible_mounts) ? f.ansible_mounts.length : 0;
  const devices = Object.keys(obj(f.ansible_devices)).length;
  const storage = spec.storage ?? {};
  add(
    'storage: block devices, filesystems, mounts',
    yes(
      `${plural(devices, 'device')}, ${plural(mounts, 'mount')} (with sizes and usage)${mounts === 0 ? ' — Ansible lists only mounts of device paths and network shares, and the root here is an overlay' : ''}, LVM`,
    ),
    yes(
      `${plural(storage.volumes?.length ?? 0, 'volume')}, ${plural(storage.filesystems?.length ?? 0, 'filesystem')}, ${plural(storage.mounts?.length ?? 0, 'mount')} (with options)`,
    ),
  );
  const cpu = spec.resources?.cpu;
  add(
    'CPU and memory',
    yes(`${str(f.ansible_processor_vcpus)} vCPUs, ${str(f.ansible_memtotal_mb)} MB, swap`),
    cpu || spec.resources?.memory
      ? yes(
          `${cpu?.count ?? '?'} CPUs, ${Math.round((spec.resources?.memory?.bytes ?? 0) / 1024 / 1024)} MB, swap, I/O class`,
        )
      : no(),
  );
  add(
    'cgroup limits (CPU, memory, I/O, pids)',
    hasFact(/cgroup/) ? yes('') : no(),
    yes(
      `${plural(spec.resources?.cgroups?.length ?? 0, 'limit')}${(spec.resources?.cgroups?.length ?? 0) === 0 ? ' here (no cgroup filesystem in the test host: recorded as unknown)' : ''}`,
    ),
  );

  const runtimes = (spec.runtimeDependencies ?? []).filter((d) => d.type === 'language');
  const libraries = (spec.runtimeDependencies ?? []).filter((d) => d.type === 'library');
  const python = obj(f.ansible_python).version;
  add(
    'language runtimes',
    python
      ? partly(
          `the Python Ansible runs on (${[obj(python).major, obj(python).minor, obj(python).micro].join('.')})`,
        )
      : no(),
    yes(runtimes.map((r) => `${r.name} ${r.version}`).join(', ') || 'none here'),
  );
  add(
    'shared libraries',
    no(),
    yes(`${plural(libraries.length, 'library', 'libraries')} (${libraries.map((l) => l.name).join(', ')})`),
  );

  const env = spec.configuration?.env ?? [];
  const ansibleEnv = Object.keys(obj(f.ansible_env)).length;
  add(
    'environment variables',
    ansibleEnv > 0
      ? partly(`${ansibleEnv}, of Ansible's own SSH session (not the application's), values in clear`)
      : no(),
    yes(
      `${env.length} (/etc/environment and the application's processes), ${plural(env.filter((e) => e.secretRef).length, 'secret reference')}`,
    ),
  );
  const files = spec.configuration?.files ?? [];
  add(
    'configuration files with content hashes',
    no(),
    yes(
      `${files.length} entries under /etc and the application's paths, ${files.filter((x) => x.hash).length} hashed, ${files.filter((x) => x.secretRef).length} sensitive (reference only)`,
    ),
  );
  const sysctl = Object.keys(spec.configuration?.sysctl ?? {}).length;
  add('sysctl', hasFact(/sysctl/) ? yes('') : no(), yes(plural(sysctl, 'key')));
  const modules = spec.kernelModules?.length ?? 0;
  add(
    'kernel modules (load order, parameters)',
    hasFact(/^ansible_(kernel_)?modules?$/) ? yes('') : no('(only the kernel command line)'),
    yes(
      `${modules}${modules === 0 ? ' here (/proc/modules hidden in the test host: recorded as unknown)' : ''}`,
    ),
  );

  const security = spec.security ?? {};
  add(
    'users and groups',
    f.ansible_user_id ? partly(`only the connecting user (${str(f.ansible_user_id)})`) : no(),
    yes(
      `${plural(security.users?.length ?? 0, 'user')} (no password hashes: references), ${plural(security.groups?.length ?? 0, 'group')}`,
    ),
  );
  add('sudoers', no(), yes(plural(security.sudoers?.length ?? 0, 'principal')));
  const hostKeys = factKeys.filter((k) => /^ansible_ssh_host_key_.*_public$/.test(k)).length;
  add(
    'SSH: authorised keys / host keys',
    hostKeys > 0 ? partly(`host public keys only (${hostKeys})`) : no(),
    yes(
      `${plural(security.sshKeys?.length ?? 0, 'authorised key')} by fingerprint; host keys as /etc files (private ones by reference)`,
    ),
  );
  add(
    'processes with resource allocations',
    no(),
    yes(plural(spec.processes?.length ?? 0, 'process', 'processes')),
  );
  const application = spec.application;
  add(
    'application: start commands, health checks',
    no(),
    yes(
      `${plural(application?.startCommands?.length ?? 0, 'start command')}, ${plural(application?.healthChecks?.length ?? 0, 'health check')}`,
    ),
  );
  add('monitoring agents', no(), yes(`${spec.monitoring?.agents?.length ?? 0} here`));
  const usage = observed.usage;
  add(
    'usage: CPU/memory use, load, traffic, data footprint',
    f.ansible_loadavg || f.ansible_memory_mb ? partly('load average, memory in use, uptime') : no(),
    usage
      ? yes(`load, CPU and memory use, IOPS, rx/tx bytes/s, ${plural(usage.data?.length ?? 0, 'data type')}`)
      : no(),
  );
  add(
    'trait vector',
    no(),
    observed.traitVector ? yes(plural(Object.keys(observed.traitVector.traits).length, 'trait')) : no(),
  );

  // What Ansible reports and the Profile does not hold.
  const product = str(f.ansible_product_name);
  const virtualization = str(f.ansible_virtualization_type);
  add(
    'hardware: DMI (BIOS, board, product), virtualization type',
    product === 'NA' && virtualization === 'NA'
      ? yes('the fields, all "NA" here (the test host shows no DMI)')
      : yes(`${product || 'product ?'}, virtualization ${virtualization || '?'}`),
    spec.instance
      ? partly(`platform and size (${spec.instance.platform}, ${spec.instance.size})`)
      : partly('cloud platform and size only, from DMI and cloud-init (none here: not a cloud VM)'),
  );
  add(
    'SELinux / AppArmor status, FIPS, capabilities',
    yes(
      `SELinux ${str(obj(f.ansible_selinux).status) || '?'}, AppArmor ${str(obj(f.ansible_apparmor).status) || '?'}, FIPS ${String(f.ansible_fips)}`,
    ),
    no(),
  );
  add(
    'date and time, uptime, machine id',
    yes('date/time, uptime, machine id'),
    partly('capture time and timezone'),
  );
  return rows;
}
