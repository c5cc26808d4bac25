// Network: interfaces with their addresses, routes, the firewall ruleset and DNS settings.
import type { z } from 'zod';
import { Dns, type Firewall, NetworkInterface, Route } from '../../profile/schema.js';
import { lines, partWith } from '../sections.js';
import { int, type ParseContext } from './context.js';

type InterfaceInput = z.input<typeof NetworkInterface>;
type RouteInput = z.input<typeof Route>;
type FirewallInput = z.input<typeof Firewall>;
type DnsInput = z.input<typeof Dns>;
type InterfaceType = NonNullable<InterfaceInput['type']>;

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const TUNNELS = new Set([
  'tun',
  'tap',
  'gre',
  'gretap',
  'ip6gre',
  'ipip',
  'sit',
  'ip6tnl',
  'vxlan',
  'geneve',
  'wireguard',
  'vti',
  'ip6_vti',
]);

export function interfaceType(kind: string | undefined, linkType: string | undefined): InterfaceType {
  if (linkType === 'loopback') return 'loopback';
  if (kind === 'veth' || kind === 'bridge' || kind === 'bond' || kind === 'vlan') return kind;
  if (kind !== undefined && TUNNELS.has(kind)) return 'tunnel';
  if (kind === undefined && linkType === 'ether') return 'ethernet';
  return 'other';
}

// IPv6 link-local addresses are derived from the MAC on every boot and every clone: listing
// them would make every copy of a host differ from its original.
const keepAddress = (family: string | undefined, scope: string | undefined): boolean =>
  !(family === 'inet6' && scope === 'link');

interface IpJsonLink {
  ifname?: string;
  flags?: string[];
  mtu?: number;
  link_type?: string;
  address?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

export function parseInterfaces(ctx: ParseContext): InterfaceInput[] {
  const section = ctx.section('interfaces');
  const found: InterfaceInput[] = [];
  const json = partWith(section, 'json');
  const text = partWith(section, 'text');
  const sysfs = partWith(section, 'sysfs');
  if (json) {
    let links: IpJsonLink[] = [];
    try {
      links = JSON.parse(json.text) as IpJsonLink[];
    } catch {
      ctx.unknown('interfaces', 'ip -j addr printed something that is not JSON');
    }
    for (const l of Array.isArray(links) ? links : []) {
      if (!l.ifname) continue;
      const mac = l.address?.toLowerCase();
      found.push({
        name: l.ifname,
        type: interfaceType(l.linkinfo?.info_kind, l.link_type),
        ...(mac && MAC.test(mac) ? { mac } : {}),
        ...(l.mtu === undefined ? {} : { mtu: l.mtu }),
        addresses: (l.addr_info ?? [])
          .filter((a) => a.local !== undefined && keepAddress(a.family, a.scope))
          .map((a) => (a.prefixlen === undefined ? `${a.local}` : `${a.local}/${a.prefixlen}`)),
        state: l.flags?.includes('UP') ? 'up' : 'down',
      });
    }
  } else if (text) {
    found.push(...ipAddrText(text.text));
  } else if (sysfs) {
    for (const line of lines(sysfs.text)) {
      const [name, mac, mtu, operstate] = line.split('\t');
      if (!name) continue;
      const m = mac?.toLowerCase();
      const n = int(mtu);
      found.push({
        name,
        type: name === 'lo' ? 'loopback' : 'other',
        ...(m && MAC.test(m) ? { mac: m } : {}),
        ...(n === undefined ? {} : { mtu: n }),
        addresses: [],
        state: operstate === 'down' ? 'down' : 'up',
      });
    }
  }
  return ctx.keep('interfaces', NetworkInterface, found, (i) => i.name, 'interface');
}

/** `ip addr show`, for iproute2 builds without JSON output. */
export function ipAddrText(text: string): InterfaceInput[] {
  const out: InterfaceInput[] = [];
  let current: InterfaceInput | undefined;
  for (const line of lines(text)) {
    const head = /^\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)>(.*)$/.exec(line);
    if (head?.[1]) {
      const flags = (head[2] ?? '').split(',');
      const mtu = int(/ mtu (\d+)/.exec(head[3] ?? '')?.[1]);
      current = {
        name: head[1],
        type: flags.includes('LOOPBACK') ? 'loopback' : 'other',
        ...(mtu === undefined ? {} : { mtu }),
        addresses: [],
        state: flags.includes('UP') ? 'up' : 'down',
      };
      out.push(current);
      continue;
    }
    if (!current) continue;
    const link = /^\s+link\/(\S+)(?: ([0-9a-f:]+))?/.exec(line);
    if (link) {
      if (link[1] === 'ether') current.type = 'ethernet';
      if (link[2] && MAC.test(link[2])) current.mac = link[2];
      continue;
    }
    const addr = /^\s+(inet6?) (\S+)(?:.* scope (\S+))?/.exec(line);
    if (addr?.[2] && keepAddress(addr[1], addr[3])) (current.addresses as string[]).push(addr[2]);
  }
  return out;
}

interface IpJsonRoute {
  type?: string;
  dst?: string;
  gateway?: string;
  dev?: string;
  metric?: number;
  table?: string;
}

// Routes the kernel makes by itself for local and broadcast addresses, and IPv6 link-local and
// multicast routes, come back on any host with the same addresses: they are not configuration.
const keepRoute = (r: { type?: string; table?: string; dst?: string }): boolean =>
  (r.type === undefined || r.type === 'unicast') &&
  r.table !== 'local' &&
  r.dst !== 'fe80::/64' &&
  !(r.dst ?? '').startsWith('ff00::');

const toRoute = (r: IpJsonRoute): RouteInput | undefined => {
  if (r.dst === undefined || !keepRoute(r)) return undefined;
  return {
    destination: r.dst,
    ...(r.gateway === undefined ? {} : { gateway: r.gateway }),
    ...(r.dev === undefined ? {} : { interface: r.dev }),
    ...(r.metric === undefined ? {} : { metric: r.metric }),
    ...(r.table === undefined || r.table === 'main' ? {} : { table: r.table }),
  };
};

/** One `ip route` line: `[type] dst [via gw] [dev if] [metric n] [table t] ...`. */
export function ipRouteLine(line: string): RouteInput | undefined {
  const words = line.trim().split(/\s+/);
  const types = new Set([
    'unicast',
    'local',
    'broadcast',
    'multicast',
    'anycast',
    'blackhole',
    'unreachable',
    'prohibit',
    'throw',
    'nat',
  ]);
  let type: string | undefined;
  if (words[0] !== undefined && types.has(words[0])) type = words.shift();
  const dst = words.shift();
  const r: IpJsonRoute = { ...(type === undefined ? {} : { type }), ...(dst === undefined ? {} : { dst }) };
  for (let i = 0; i < words.length - 1; i++) {
    const value = words[i + 1];
    if (value === undefined) continue;
    if (words[i] === 'via') r.gateway = value;
    else if (words[i] === 'dev') r.dev = value;
    else if (words[i] === 'metric') r.metric = Number(value);
    else if (words[i] === 'table') r.table = value;
  }
  return toRoute(r);
}

/** /proc/net/route stores addresses as little-endian hex. */
const hexIPv4 = (hex: string): string =>
  [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).join('.');

const maskBits = (hex: string): number =>
  Number.parseInt(hex, 16)
    .toString(2)
    .split('')
    .filter((b) => b === '1').length;

export function parseRoutes(ctx: ParseContext): RouteInput[] {
  const section = ctx.section('routes');
  const found: RouteInput[] = [];
  const json = partWith(section, 'json');
  const text = partWith(section, 'text');
  const proc = partWith(section, 'proc');
  if (json) {
    for (const line of lines(json.text)) {
      if (line.trim() === '') continue;
      try {
        for (const r of JSON.parse(line) as IpJsonRoute[]) {
          const route = toRoute(r);
          if (route) found.push(route);
        }
      } catch {
        ctx.unknown('routes', 'ip -j route printed something that is not JSON');
      }
    }
  } else if (text) {
    for (const line of lines(text.text)) {
      const route = ipRouteLine(line);
      if (route) found.push(route);
    }
  } else if (proc) {
    for (const line of lines(proc.text).slice(1)) {
      const [iface, dest, gateway, , , , metric, mask] = line.trim().split(/\s+/);
      if (!iface || !dest || !gateway || !mask) continue;
      const bits = maskBits(mask);
      found.push({
        destination: dest === '00000000' && bits === 0 ? 'default' : `${hexIPv4(dest)}/${bits}`,
        ...(gateway === '00000000' ? {} : { gateway: hexIPv4(gateway) }),
        interface: iface,
        ...(int(metric) ? { metric: Number(metric) } : {}),
      });
    }
  }
  return ctx.keep(
    'routes',
    Route,
    found,
    (r) =>
      [r.table ?? 'main', r.destination, r.gateway ?? '-', r.interface ?? '-', r.metric ?? '-'].join(' '),
    'route',
  );
}

export function parseFirewall(ctx: ParseContext): FirewallInput | undefined {
  const section = ctx.section('firewall');
  const nft = partWith(section, 'nftables');
  if (nft)
    return nft.text.trim() === ''
      ? { backend: 'none', ruleset: '' }
      : { backend: 'nftables', ruleset: nft.text };
  const ipt = partWith(section, 'iptables');
  if (ipt) {
    // iptables-save stamps its output with the time it ran; the ruleset is the rest.
    const ruleset = lines(ipt.text)
      .filter((l) => !/^# (Generated by|Completed on) /.test(l))
      .join('\n');
    return { backend: 'iptables', ruleset: ruleset === '' ? '' : `${ruleset}\n` };
  }
  return undefined;
}

export function parseDns(ctx: ParseContext): DnsInput | undefined {
  const section = ctx.section('dns');
  if (section?.status !== 0) return undefined;
  const dns = { nameservers: [] as string[], search: [] as string[], options: [] as string[] };
  for (const line of lines(section.text)) {
    const [key, ...values] = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (key === 'nameserver' && values[0]) dns.nameservers.push(values[0].replace(/%.*$/, ''));
    else if (key === 'search' || key === 'domain')
      dns.search.push(...values.filter((v) => !dns.search.includes(v)));
    else if (key === 'options') dns.options.push(...values);
  }
  const parsed = Dns.safeParse(dns);
  if (!parsed.success) {
    ctx.unknown('dns', `resolv.conf not understood: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return undefined;
  }
  return dns;
}
