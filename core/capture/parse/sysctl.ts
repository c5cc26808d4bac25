// Kernel parameters. The script reads every writable key under /proc/sys; the Profile keeps
// those that are configuration, which is most of them, but not all:
// - keys that hold state or secrets rather than settings (VOLATILE) are never kept;
// - keys whose default the kernel computes from the machine's memory or CPU count
//   (SIZE_DERIVED) are kept only when a sysctl.d file sets them. Copied blindly from a small
//   host to a large one they would cripple it (fs.file-max, tcp_mem, conntrack tables).
import { Configuration } from '../../profile/schema.js';
import { lines, partWith } from '../sections.js';
import { count, type ParseContext, sample } from './context.js';

const VOLATILE: readonly RegExp[] = [
  /^kernel\.random\./,
  /^kernel\.(ns_last_pid|hostname|domainname|tainted|perf_event_max_sample_rate)$/,
  /^vm\.(drop_caches|compact_memory|stat_refresh)$/,
  /^fs\.binfmt_misc\./,
  /\.stable_secret$/,
  /^net\.ipv4\.tcp_fastopen_key$/,
  /^net\.(ipv4|ipv6)\.route\.flush$/,
];

const SIZE_DERIVED: readonly RegExp[] = [
  /^vm\.(min_free_kbytes|user_reserve_kbytes|admin_reserve_kbytes|watermark_scale_factor)$/,
  /^net\.ipv4\.(tcp_mem|udp_mem|tcp_rmem|tcp_wmem|tcp_max_orphans|tcp_max_tw_buckets|tcp_max_syn_backlog|inet_peer_threshold)$/,
  /^net\.sctp\.sctp_(mem|rmem|wmem)$/,
  /^fs\.(file-max|inotify\.max_user_watches|epoll\.max_user_watches)$/,
  /^kernel\.(pid_max|threads-max|watchdog_cpumask)$/,
  /^kernel\.sched_domain\./,
  /^user\.max_/,
  /^net\.(netfilter\.)?nf_conntrack_(max|buckets|expect_max)$/,
];

const KEY = Configuration.shape.sysctl.unwrap().keyType;

/**
 * /proc/sys/net/ipv4/conf/eth0.100/rp_filter → net.ipv4.conf.eth0/100.rp_filter: dots inside a
 * path component become slashes, as sysctl(8) writes them.
 */
export const sysctlKey = (path: string): string =>
  path
    .replace(/^\/proc\/sys\//, '')
    .split('/')
    .map((part) => part.replaceAll('.', '/'))
    .join('.');

/** A sysctl.d key: either separator may be used, and the first one decides (sysctl.d(5)). */
const configuredKey = (key: string): string => {
  const dot = key.indexOf('.');
  const slash = key.indexOf('/');
  if (slash !== -1 && (dot === -1 || slash < dot)) {
    return key.replace(/[./]/g, (c) => (c === '/' ? '.' : '/'));
  }
  return key;
};

const globMatcher = (key: string): RegExp =>
  new RegExp(`^${key.replace(/[.+^${}()|[\]\\/]/g, '\\$&').replaceAll('*', '[^.]*')}$`);

export function parseSysctl(ctx: ParseContext): Record<string, string> {
  const section = ctx.section('sysctl');
  const live = partWith(section, 'live');
  if (!live) return {};

  const values = new Map<string, string>();
  for (const line of lines(live.text)) {
    const m = /^(\/proc\/sys\/[^:]+):(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const key = sysctlKey(m[1]);
    const value = m[2].replace(/\t/g, ' ');
    const prev = values.get(key);
    values.set(key, prev === undefined ? value : `${prev}\n${value}`);
  }

  const configured = lines(partWith(section, 'configured')?.text ?? '').map((k) => configuredKey(k.trim()));
  const exact = new Set(configured.filter((k) => !k.includes('*')));
  const globs = configured.filter((k) => k.includes('*')).map(globMatcher);
  const isConfigured = (key: string) => exact.has(key) || globs.some((g) => g.test(key));

  const out: Record<string, string> = {};
  const invalid: string[] = [];
  for (const key of [...values.keys()].sort()) {
    if (VOLATILE.some((re) => re.test(key))) continue;
    if (SIZE_DERIVED.some((re) => re.test(key)) && !isConfigured(key)) continue;
    if (!KEY.safeParse(key).success) {
      invalid.push(key);
      continue;
    }
    out[key] = values.get(key) ?? '';
  }
  if (invalid.length > 0) {
    ctx.unknown(
      'sysctl',
      `${count(invalid.length, 'key')} with names a Profile cannot hold left out: ${sample(invalid)}`,
    );
  }
  for (const key of exact) {
    if (!values.has(key) && !VOLATILE.some((re) => re.test(key))) {
      ctx.unknown('sysctl', `${key} is set in a sysctl.d file but the running kernel has no such key`);
    }
  }
  return out;
}
