// What a cloud platform needs to know of a Profile to provision a host it can become: the
// processor and memory to size it, the operating system to pick an image, the volumes, and the
// ports the application answers on (for the security group or network security group). Read
// from the Profile once, here, so that the EC2 and Azure adaptors size and open the same host.
import type { Profile } from '../profile/schema.js';

export interface HostShape {
  readonly arch: Profile['spec']['os']['arch'];
  readonly cpus?: number;
  readonly memoryBytes?: number;
  readonly os: { readonly distribution: string; readonly version: string; readonly codename?: string };
  /** The image the source was built from, with the platform it names one on (AMI id, image URN). */
  readonly baseImage?: { readonly ref: string; readonly platform?: string };
  /** The source's volumes in order, the first its root; sizes in bytes. */
  readonly volumes: readonly {
    readonly sizeBytes: number;
    readonly type?: string;
    readonly device?: string;
  }[];
  /**
   * Ports the source's application answers on from beyond the host: listening sockets on an
   * address other than loopback that its firewall does not drop, one entry per protocol and
   * port, in order.
   */
  readonly ingress: readonly { readonly protocol: 'tcp' | 'udp'; readonly port: number }[];
}

const LOOPBACK = /^(127\.|::1$|\[::1\]$|localhost$)/;

/**
 * Ports the source's own firewall turns away outright, as nftables prints a rule that does
 * (`tcp dport 9100 drop`, `udp dport { 53, 5353 } reject`): a cloud's firewall opens no more
 * than the host's did. Rules with other matches before them (an address, an interface) are
 * not read as closing the port for everyone.
 */
export function refusedPorts(profile: Profile): Set<string> {
  const refused = new Set<string>();
  const firewall = profile.spec.network.firewall;
  if (firewall?.backend !== 'nftables') return refused;
  const rule =
    /^\s*(tcp|udp)\s+dport\s+(\d{1,5}|\{[\d,\s]+\})\s+(?:counter\s+(?:packets\s+\d+\s+bytes\s+\d+\s+)?)?(drop|reject)\b/;
  for (const line of firewall.ruleset.split('\n')) {
    const m = rule.exec(line);
    if (!m) continue;
    const ports = (m[2] as string).replace(/[{}\s]/g, '').split(',');
    for (const p of ports) if (p !== '') refused.add(`${m[1]}/${Number(p)}`);
  }
  return refused;
}

export function shapeOf(profile: Profile): HostShape {
  const { spec } = profile;
  const seen = refusedPorts(profile);
  const ingress: { protocol: 'tcp' | 'udp'; port: number }[] = [];
  for (const socket of profile.observed?.listening ?? []) {
    if (socket.protocol === 'unix' || socket.port === undefined || LOOPBACK.test(socket.address)) continue;
    const protocol = socket.protocol.startsWith('tcp') ? 'tcp' : 'udp';
    const key = `${protocol}/${socket.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    ingress.push({ protocol, port: socket.port });
  }
  ingress.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
  return {
    arch: spec.os.arch,
    ...(spec.resources.cpu ? { cpus: spec.resources.cpu.count } : {}),
    ...(spec.resources.memory ? { memoryBytes: spec.resources.memory.bytes } : {}),
    os: {
      distribution: spec.os.distribution,
      version: spec.os.version,
      ...(spec.os.codename ? { codename: spec.os.codename } : {}),
    },
    ...(spec.baseImage
      ? {
          baseImage: {
            ref: spec.baseImage.ref,
            ...(spec.baseImage.platform ? { platform: spec.baseImage.platform } : {}),
          },
        }
      : {}),
    volumes: spec.storage.volumes.map((v) => ({
      sizeBytes: v.sizeBytes,
      ...(v.type ? { type: v.type } : {}),
      ...(v.device ? { device: v.device } : {}),
    })),
    ingress,
  };
}
