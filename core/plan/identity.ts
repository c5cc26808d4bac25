// Identity is translated, not copied. A clone must behave like its source without becoming a
// second copy of it on the network: the target keeps its own hostname, interfaces, addresses,
// MACs, machine-id and SSH host keys, and routes through the source's own gateways are pointed
// at the target's. IDENTITY.md lists the same fields as the constants below; a test keeps the
// two in agreement.
import { BlockList, isIP } from 'node:net';
import * as z from 'zod';
import { sameValue, stableJson } from '../delta/sections.js';
import { routeKey } from '../profile/collections.js';
import { Profile } from '../profile/schema.js';
import { canonicalProfile } from '../profile/validate.js';
import { displayValue } from '../transport/shell.js';

type Spec = Profile['spec'];
type Interface = Spec['network']['interfaces'][number];
type Route = Spec['network']['routes'][number];
type ConfigFile = Spec['configuration']['files'][number];

/** Fields of a Profile whose value belongs to the host, not to what it runs. */
export const IDENTITY_FIELDS = [
  { field: 'spec.os.hostname', rule: "the target's (absent when the target has none)" },
  {
    field: 'spec.network.interfaces[].name',
    rule: "the target's; a source interface is matched to a target interface by name, then by position among the unmatched ones (of the same type, when both say it)",
  },
  { field: 'spec.network.interfaces[].type', rule: "the target's" },
  { field: 'spec.network.interfaces[].mac', rule: "the target's" },
  { field: 'spec.network.interfaces[].addresses', rule: "the target's" },
  {
    field: 'spec.network.routes[] with no gateway to an own subnet',
    rule: "the target's: they follow from the addresses (the kernel's connected routes)",
  },
  {
    field: 'spec.network.routes[].gateway in an own subnet',
    rule: "kept when it lies in the matching target subnet too; else the source's main gateway there (its default route's, else the first) maps to the target's main gateway in the matching subnet, or, where the target's routes name none there, to the address at the same position of a subnet of the same size; unresolved otherwise",
  },
  {
    field: 'spec.network.routes[].interface',
    rule: "mapped to the matching target interface's name; unresolved when the source interface has no match",
  },
  {
    field: 'spec.configuration.files[] at an identity path',
    rule: "the target's entry, or none when the target has none (the paths are listed below)",
  },
  {
    field: 'spec.configuration.files[] written by another section',
    rule: "the target's entry: the account files follow from users and groups, /etc/resolv.conf from spec.network.dns (DERIVED_FILES below)",
  },
  {
    field: 'spec.network.dns.nameservers[] in an own subnet',
    rule: "a server at the source's main gateway maps to the target's, one at any other address of the source's subnet is unresolved; servers elsewhere are kept",
  },
  {
    field: 'spec.storage',
    rule: "the target's: disks, filesystems and mounts belong to the machine (a cloud platform provisions them); a source mount the target lacks is listed as unresolved",
  },
  {
    field: 'spec.security.sshKeys[] the target has',
    rule: "kept: they are how the target is reached (Persona's own access included); the source's keys are added",
  },
] as const;

/**
 * Files another section's executor writes: copying the source's would undo the target's own
 * accounts (and the password hashes in them) or its resolver. The section's Changes carry the
 * difference; the file itself stays the target's.
 */
export const DERIVED_FILES = [
  { pattern: '/etc/passwd', from: 'spec.security.users' },
  { pattern: '/etc/passwd-', from: 'spec.security.users (backup)' },
  { pattern: '/etc/shadow', from: 'spec.security.users' },
  { pattern: '/etc/shadow-', from: 'spec.security.users (backup)' },
  { pattern: '/etc/group', from: 'spec.security.groups' },
  { pattern: '/etc/group-', from: 'spec.security.groups (backup)' },
  { pattern: '/etc/gshadow', from: 'spec.security.groups' },
  { pattern: '/etc/gshadow-', from: 'spec.security.groups (backup)' },
  { pattern: '/etc/subuid', from: 'spec.security.users (subordinate ids)' },
  { pattern: '/etc/subuid-', from: 'spec.security.users (backup)' },
  { pattern: '/etc/subgid', from: 'spec.security.users (subordinate ids)' },
  { pattern: '/etc/subgid-', from: 'spec.security.users (backup)' },
  { pattern: '/etc/resolv.conf', from: 'spec.network.dns' },
  {
    pattern: '/etc/sysctl.d/60-persona.conf',
    from: 'spec.configuration.sysctl (where Persona persists what it sets)',
  },
] as const;

/**
 * Files that hold the host's identity or are derived from it. `*` matches within one path
 * segment; a pattern ending in `/**` matches everything beneath that directory.
 */
export const IDENTITY_FILES = [
  { pattern: '/etc/hostname', holds: 'the hostname' },
  { pattern: '/etc/mailname', holds: 'the hostname, for mail' },
  {
    pattern: '/etc/hosts',
    holds:
      "the host's own address and hostname; the Profile records its hash, not its lines, so the whole file is the target's",
  },
  { pattern: '/etc/machine-id', holds: 'the machine-id' },
  { pattern: '/var/lib/dbus/machine-id', holds: 'the machine-id, for D-Bus' },
  { pattern: '/etc/ssh/ssh_host_*', holds: 'the SSH host keys and their certificates' },
  { pattern: '/etc/network/interfaces', holds: 'static addresses (ifupdown)' },
  { pattern: '/etc/network/interfaces.d/**', holds: 'static addresses (ifupdown)' },
  { pattern: '/etc/netplan/**', holds: 'static addresses (netplan)' },
  { pattern: '/etc/systemd/network/**', holds: 'static addresses and MAC matches (systemd-networkd)' },
  {
    pattern: '/etc/sysconfig/network-scripts/ifcfg-*',
    holds: 'static addresses and MACs (RHEL family)',
  },
  {
    pattern: '/etc/NetworkManager/system-connections/**',
    holds: 'static addresses and MACs (NetworkManager)',
  },
  { pattern: '/var/lib/dhcp/**', holds: 'DHCP leases (dhclient)' },
  { pattern: '/var/lib/dhclient/**', holds: 'DHCP leases (dhclient, RHEL family)' },
  { pattern: '/var/lib/NetworkManager/**', holds: 'DHCP leases and state (NetworkManager)' },
  { pattern: '/run/systemd/netif/leases/**', holds: 'DHCP leases (systemd-networkd)' },
] as const;

const patternRegex = (pattern: string): RegExp => {
  const glob = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*');
  return pattern.endsWith('/**')
    ? new RegExp(`^${glob(pattern.slice(0, -3))}/.+$`)
    : new RegExp(`^${glob(pattern)}$`);
};
const IDENTITY_FILE_REGEXES = [...IDENTITY_FILES, ...DERIVED_FILES].map((f) => patternRegex(f.pattern));

/**
 * Whether a file of a Profile holds the host's identity or is written by another section
 * (IDENTITY_FILES, DERIVED_FILES): either way the target keeps its own. The path grammar lets
 * a document say `/etc//hostname` or `/etc/hostname/`; they name the same file.
 */
export const isIdentityFile = (path: string): boolean => {
  const normal = path.replace(/\/{2,}/g, '/').replace(/(.)\/+$/, '$1');
  return IDENTITY_FILE_REGEXES.some((r) => r.test(normal));
};

export const UNRESOLVED_KINDS = ['identity', 'package', 'runtime', 'other'] as const;

/** Something of the source the plan cannot reproduce on the target, listed before anything changes. */
export const Unresolved = z
  .strictObject({
    kind: z.enum(UNRESOLVED_KINDS),
    field: z
      .string()
      .min(1)
      .max(1024)
      .describe('Where it is in the source Profile, in canonical (stored) order: spec.network.routes[2]'),
    reason: z.string().min(1).max(4096),
  })
  .meta({ id: 'Unresolved' });
export type Unresolved = z.infer<typeof Unresolved>;

export interface Translation {
  /** The Profile the target should become: the source, with the target's identity. */
  readonly profile: Profile;
  readonly unresolved: readonly Unresolved[];
}

interface Subnet {
  readonly iface: string;
  /** The interface address with its prefix, as the Profile says it: 172.31.20.15/20. */
  readonly cidr: string;
  readonly family: 'ipv4' | 'ipv6';
  /** Position among the interface's addresses of the same family. */
  readonly index: number;
  readonly contains: (address: string) => boolean;
  readonly prefix: number;
}

const familyOf = (address: string): 'ipv4' | 'ipv6' | undefined => {
  const f = isIP(address);
  return f === 4 ? 'ipv4' : f === 6 ? 'ipv6' : undefined;
};

function subnetsOf(iface: Interface): Subnet[] {
  const counts = { ipv4: 0, ipv6: 0 };
  const out: Subnet[] = [];
  for (const cidr of iface.addresses) {
    const [address = '', bits] = cidr.split('/');
    const family = familyOf(address);
    // An address without a prefix names no subnet: nothing can route through it.
    if (family === undefined || bits === undefined) continue;
    const prefix = Number(bits);
    if (prefix > (family === 'ipv4' ? 32 : 128)) continue;
    const list = new BlockList();
    list.addSubnet(address, prefix, family);
    out.push({
      iface: iface.name,
      cidr,
      family,
      index: counts[family]++,
      prefix,
      contains: (a) => familyOf(a) === family && list.check(a, family),
    });
  }
  return out;
}

/** A destination that is exactly `subnet` (any address of it, with the same prefix). */
function isSubnetItself(destination: string, subnet: Subnet): boolean {
  const [address = '', bits] = destination.split('/');
  return bits !== undefined && Number(bits) === subnet.prefix && subnet.contains(address);
}

/**
 * Source interface name → target interface, by name first, then by position (canonical order)
 * among the interfaces neither side has matched yet, skipping pairs whose types disagree.
 */
function matchInterfaces(source: readonly Interface[], target: readonly Interface[]): Map<string, Interface> {
  const matched = new Map<string, Interface>();
  const byName = new Map(target.map((i) => [i.name, i]));
  for (const s of source) {
    const t = byName.get(s.name);
    if (t !== undefined) matched.set(s.name, t);
  }
  const taken = new Set([...matched.values()].map((t) => t.name));
  const free = target.filter((t) => !taken.has(t.name));
  for (const s of source) {
    if (matched.has(s.name)) continue;
    const at = free.findIndex((t) => s.type === undefined || t.type === undefined || s.type === t.type);
    if (at < 0) continue;
    const [t] = free.splice(at, 1);
    if (t !== undefined) matched.set(s.name, t);
  }
  return matched;
}

const withoutUndefined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

const ipv4ToInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const intToIpv4 = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/**
 * The address at the same position in `theirs` as `address` has in `own`, for IPv4 subnets of
 * the same size: the first host of a link is the first host of the other. Undefined when the
 * sizes differ or the position is the target's own address.
 */
function samePositionIn(address: string, own: Subnet, theirs: Subnet): string | undefined {
  if (own.family !== 'ipv4' || theirs.family !== 'ipv4' || own.prefix !== theirs.prefix) return undefined;
  const size = 2 ** (32 - own.prefix);
  const offset = ipv4ToInt(address) % size;
  const [theirAddress = ''] = theirs.cidr.split('/');
  const candidate = intToIpv4(ipv4ToInt(theirAddress) - (ipv4ToInt(theirAddress) % size) + offset);
  return candidate === theirAddress ? undefined : candidate;
}

/** The main gateway `routes` go through in `subnet`: the default route's, else the first. */
function gatewayIn(subnet: Subnet, routes: readonly Route[]): string | undefined {
  const via = routes.filter((r) => r.gateway !== undefined && subnet.contains(r.gateway));
  return (via.find((r) => r.destination === 'default') ?? via[0])?.gateway;
}

/**
 * The Profile `baseline` (a capture of the target) should become to behave like `source`:
 * everything follows the source except the identity fields (IDENTITY_FIELDS), which keep the
 * target's values. What cannot be mapped is returned as unresolved, with the reason, and left
 * out of the result rather than copied with the source's identity.
 */
export function translateIdentity(source: Profile, baseline: Profile): Translation {
  const src = canonicalProfile(source).spec;
  const base = canonicalProfile(baseline).spec;
  const unresolved: Unresolved[] = [];
  // Names and keys come from the profiles: shown escaped, so that one cannot rewrite the
  // terminal a plan is printed on.
  const identity = (field: string, reason: string) => unresolved.push({ kind: 'identity', field, reason });

  // Interfaces: the target's own, each with the non-identity settings of its source match.
  const matched = matchInterfaces(src.network.interfaces, base.network.interfaces);
  const sourceOf = new Map([...matched].map(([s, t]) => [t.name, s]));
  const interfaces = base.network.interfaces.map((t) => {
    const s = src.network.interfaces.find((i) => i.name === sourceOf.get(t.name));
    if (s === undefined) return t;
    return withoutUndefined({ ...s, name: t.name, type: t.type, mac: t.mac, addresses: t.addresses });
  });
  src.network.interfaces.forEach((s, i) => {
    if (!matched.has(s.name))
      identity(
        `spec.network.interfaces[${i}]`,
        `interface ${displayValue(s.name)} has no counterpart on the target (by name or position); its addresses and MAC are the source's own, so it is not created`,
      );
  });

  // Routes: connected routes follow the addresses; gateways in own subnets are mapped.
  const sourceSubnets = src.network.interfaces.flatMap(subnetsOf);
  const targetSubnets = base.network.interfaces.flatMap(subnetsOf);
  const isConnected = (r: Route, subnets: readonly Subnet[]) =>
    r.gateway === undefined && subnets.some((n) => isSubnetItself(r.destination, n));
  const counterpart = (n: Subnet): Subnet | undefined => {
    const t = matched.get(n.iface);
    if (t === undefined) return undefined;
    const same = targetSubnets.filter((m) => m.iface === t.name && m.family === n.family);
    return same.find((m) => m.index === n.index) ?? same[0];
  };
  const routes: Route[] = base.network.routes.filter((r) => isConnected(r, targetSubnets));
  src.network.routes.forEach((r, i) => {
    const field = `spec.network.routes[${i}]`;
    const shown = `route ${displayValue(routeKey(r))}`;
    if (isConnected(r, sourceSubnets)) return;
    let route: Route = r;
    if (r.interface !== undefined && src.network.interfaces.some((s) => s.name === r.interface)) {
      const t = matched.get(r.interface);
      if (t === undefined) {
        identity(
          field,
          `${shown} goes through interface ${displayValue(r.interface)}, which has no counterpart on the target`,
        );
        return;
      }
      route = { ...route, interface: t.name };
    }
    const gateway = r.gateway;
    const own = gateway === undefined ? undefined : sourceSubnets.find((n) => n.contains(gateway));
    if (own !== undefined) {
      const theirs = counterpart(own);
      if (theirs === undefined) {
        identity(
          field,
          `${shown}: gateway ${gateway} is in the source's own subnet ${own.cidr} (${displayValue(own.iface)}), which has no counterpart on the target`,
        );
        return;
      }
      // The same subnet on both sides (a clone in the source's own network): the gateway is
      // the target's as much as the source's.
      if (theirs.contains(gateway as string)) {
        routes.push(route);
        return;
      }
      const mapped = gatewayIn(theirs, base.network.routes);
      const main = gatewayIn(own, src.network.routes);
      if (mapped !== undefined && gateway !== main) {
        identity(
          field,
          `${shown}: gateway ${gateway} is in the source's own subnet ${own.cidr} (${displayValue(own.iface)}) but is not its main gateway there (${main}); only that one maps to the target's (${mapped})`,
        );
        return;
      }
      // A target whose routes name no gateway there (a fresh link): the gateway at the same
      // position of a subnet of the same size, the first host for the first host.
      const placed = mapped ?? samePositionIn(gateway as string, own, theirs);
      if (placed === undefined) {
        identity(
          field,
          `${shown}: gateway ${gateway} is in the source's own subnet ${own.cidr} (${displayValue(own.iface)}); the target's subnet ${theirs.cidr} (${displayValue(theirs.iface)}) has no gateway its routes go through, and is not of the same size to place it at the same position`,
        );
        return;
      }
      route = { ...route, gateway: placed };
    }
    routes.push(route);
  });
  const uniqueRoutes = [...new Map(routes.map((r) => [routeKey(r), r])).values()];

  // Files: the target's identity files, the source's others.
  const sourceHosts = src.configuration.files.find((f) => f.path === '/etc/hosts');
  const targetHosts = base.configuration.files.find((f) => f.path === '/etc/hosts');
  if (sourceHosts !== undefined && !sameValue(sourceHosts, targetHosts ?? null)) {
    identity(
      `spec.configuration.files[${src.configuration.files.indexOf(sourceHosts)}]`,
      "/etc/hosts differs from the target's; it names the source's own address and hostname, so the target's is kept and any other lines the source has are not carried over",
    );
  }
  const files: ConfigFile[] = [
    ...src.configuration.files.filter((f) => !isIdentityFile(f.path)),
    ...base.configuration.files.filter((f) => isIdentityFile(f.path)),
  ];

  // DNS servers: one at the source's main gateway is the target's main gateway; another one in
  // the source's own subnet is an address of that network, which the target's cannot have.
  let dns = src.network.dns;
  if (dns !== undefined) {
    const nameservers: string[] = [];
    dns.nameservers.forEach((server, i) => {
      const own = sourceSubnets.find((n) => n.contains(server));
      if (own === undefined) {
        nameservers.push(server);
        return;
      }
      const theirs = counterpart(own);
      if (theirs?.contains(server)) {
        nameservers.push(server);
        return;
      }
      const main = gatewayIn(own, src.network.routes);
      const mapped =
        theirs === undefined
          ? undefined
          : (gatewayIn(theirs, base.network.routes) ?? samePositionIn(server, own, theirs));
      if (mapped !== undefined && server === main) {
        nameservers.push(mapped);
        return;
      }
      identity(
        `spec.network.dns.nameservers[${i}]`,
        `name server ${displayValue(server)} is in the source's own subnet ${own.cidr} and is not its gateway there, so the target has no counterpart`,
      );
    });
    dns = { ...dns, nameservers: [...new Set(nameservers)] };
  }

  // Storage belongs to the machine; a mount the target lacks cannot be made by copying.
  src.storage.mounts.forEach((m, i) => {
    if (!base.storage.mounts.some((t) => t.target === m.target))
      unresolved.push({
        kind: 'other',
        field: `spec.storage.mounts[${i}]`,
        reason: `mount ${displayValue(m.target)} (${displayValue(m.fstype ?? 'unknown type')}) is not on the target: its disk is the platform's to provision`,
      });
  });

  // SSH keys: the target's stay (they are how it is reached); the source's are added.
  const keyOf = (k: Spec['security']['sshKeys'][number]) => `${k.user}:${k.fingerprint}`;
  const sshKeys = [
    ...base.security.sshKeys,
    ...src.security.sshKeys.filter((k) => !base.security.sshKeys.some((t) => keyOf(t) === keyOf(k))),
  ];

  const os = withoutUndefined({ ...src.os, hostname: base.os.hostname });
  const spec: Spec = {
    ...src,
    os,
    network: withoutUndefined({ ...src.network, interfaces, routes: uniqueRoutes, dns }),
    configuration: { ...src.configuration, files },
    storage: base.storage,
    security: { ...src.security, sshKeys },
  };
  const { observed: _seen, ...rest } = source;
  const profile = canonicalProfile(Profile.parse({ ...rest, spec }));
  return { profile, unresolved };
}

/**
 * Every identity value a Profile holds, as `field=value` strings: what a translation must take
 * from the target and never from the source.
 */
export function identityValues(profile: Profile): Set<string> {
  const spec = profile.spec;
  const out = new Set<string>();
  if (spec.os.hostname !== undefined) out.add(`hostname=${spec.os.hostname}`);
  for (const i of spec.network.interfaces) {
    out.add(`interface=${i.name}`);
    if (i.mac !== undefined) out.add(`mac=${i.mac}`);
    for (const a of i.addresses) out.add(`address=${a}`);
  }
  for (const f of spec.configuration.files) if (isIdentityFile(f.path)) out.add(`file=${stableJson(f)}`);
  return out;
}
