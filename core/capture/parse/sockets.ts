// Listening sockets and connections, from ss or, without it, /proc/net.
import type { z } from 'zod';
import type { Connection, ListeningSocket } from '../../profile/schema.js';
import { lines, partsWith } from '../sections.js';
import type { ParseContext } from './context.js';

type Listening = z.input<typeof ListeningSocket>;
type ConnectionInput = z.input<typeof Connection>;

/** Connections listed in the Profile; busy hosts have tens of thousands, the count says how many. */
export const MAX_CONNECTIONS = 1000;

export interface Sockets {
  readonly listening: Listening[];
  readonly connections: ConnectionInput[];
  /** Established connections, all of them, including those beyond MAX_CONNECTIONS. */
  readonly established: number;
  /** Established connections by local port, for the application's active sessions. */
  readonly establishedByLocalPort: ReadonlyMap<number, number>;
  readonly known: boolean;
  /** Whether sockets name their processes (ss does; /proc/net does not). */
  readonly withProcesses: boolean;
}

/** "0.0.0.0:22", "[::]:22", "*:22", "127.0.0.53%lo:53" → address and port. */
export function splitEndpoint(endpoint: string): { address: string; port: number | undefined } {
  const colon = endpoint.lastIndexOf(':');
  const host = colon === -1 ? endpoint : endpoint.slice(0, colon);
  const portText = colon === -1 ? '*' : endpoint.slice(colon + 1);
  const address = host.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const port = /^\d+$/.test(portText) ? Number(portText) : undefined;
  return { address, port };
}

const isV6 = (address: string): boolean => address.includes(':') || address === '*';

// ss writes states its own way; the Profile uses the names netstat and the kernel use.
const stateName = (s: string): string => (s === 'ESTAB' ? 'ESTABLISHED' : s.replaceAll('-', '_'));

const processOf = (column: string | undefined): string | undefined =>
  /users:\(\("([^"]+)"/.exec(column ?? '')?.[1];

// /proc/net/tcp state codes (include/net/tcp_states.h).
const TCP_STATES: Readonly<Record<string, string>> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** A /proc/net address: little-endian 32-bit words in hex, then the port in hex. */
export function procEndpoint(hex: string): { address: string; port: number } {
  const [addr = '', port = '0'] = hex.split(':');
  const words = addr.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [6, 4, 2, 0].map((i) => Number.parseInt(w.slice(i, i + 2), 16)));
  let address: string;
  if (bytes.length === 4) {
    address = bytes.join('.');
  } else {
    const groups: string[] = [];
    for (let i = 0; i < bytes.length; i += 2)
      groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
    address = groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  }
  return { address, port: Number.parseInt(port, 16) };
}

export function parseSockets(ctx: ParseContext): Sockets {
  const section = ctx.section('sockets');
  const listening: Listening[] = [];
  const connections: ConnectionInput[] = [];
  const byPort = new Map<number, number>();
  let established = 0;
  let total = 0;
  const seen = new Set<string>();
  const listen = (l: Listening) => {
    const key = `${l.protocol} ${l.address} ${l.port ?? ''} ${l.process ?? ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    listening.push(l);
  };
  const connect = (c: ConnectionInput, localPort: number | undefined) => {
    total++;
    if (c.state === 'ESTABLISHED') {
      established++;
      if (localPort !== undefined) byPort.set(localPort, (byPort.get(localPort) ?? 0) + 1);
    }
    if (connections.length < MAX_CONNECTIONS) connections.push(c);
  };

  const ss = partsWith(section, 'ss').find((p) => p.header === 'ss');
  const ssUnix = partsWith(section, 'ss-unix')[0];
  const proc = partsWith(section, 'proc');
  if (ss) {
    for (const line of lines(ss.text)) {
      const [netid, state, , , local, peer, ...rest] = line.trim().split(/\s+/);
      if (!netid || !state || !local || !peer || netid === 'Netid') continue;
      if (netid !== 'tcp' && netid !== 'udp') continue;
      const l = splitEndpoint(local);
      const process = processOf(rest.join(' '));
      const protocol = isV6(l.address) ? (`${netid}6` as const) : netid;
      if (state === 'LISTEN' || (netid === 'udp' && state === 'UNCONN')) {
        listen({
          protocol,
          address: l.address,
          ...(l.port === undefined ? {} : { port: l.port }),
          ...(process ? { process } : {}),
        });
      } else {
        connect(
          { protocol, local, remote: peer, state: stateName(state), ...(process ? { process } : {}) },
          l.port,
        );
      }
    }
    for (const line of lines(ssUnix?.text ?? '')) {
      const words = line.trim().split(/\s+/);
      // With one socket type ss leaves out the Netid column: State Recv-Q Send-Q Path Inode Peer...
      const offset = words[0] === 'u_str' || words[0] === 'u_seq' || words[0] === 'u_dgr' ? 1 : 0;
      const state = words[offset];
      const path = words[offset + 3];
      if (state !== 'LISTEN' || !path || path === '*') continue;
      const process = processOf(words.slice(offset + 6).join(' '));
      listen({ protocol: 'unix', address: path, ...(process ? { process } : {}) });
    }
  } else if (proc.length > 0) {
    ctx.unknown('sockets', 'sockets read from /proc/net: the processes that own them are unknown');
    for (const part of proc) {
      const kind = part.header.split(' ')[1] ?? '';
      const protocol = kind as Listening['protocol'];
      const udp = kind.startsWith('udp');
      for (const line of lines(part.text).slice(1)) {
        const [, local, remote, st] = line.trim().split(/\s+/);
        if (!local || !remote || !st) continue;
        const l = procEndpoint(local);
        const r = procEndpoint(remote);
        const state = TCP_STATES[st] ?? st;
        if ((udp && st === '07') || (!udp && st === '0A')) {
          listen({ protocol, address: l.address, port: l.port });
        } else if (!udp || st === '01') {
          const fmt = (e: { address: string; port: number }) =>
            e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
          connect(
            { protocol: protocol as ConnectionInput['protocol'], local: fmt(l), remote: fmt(r), state },
            l.port,
          );
        }
      }
    }
  } else {
    return {
      listening,
      connections,
      established,
      establishedByLocalPort: byPort,
      known: false,
      withProcesses: false,
    };
  }
  if (total > connections.length) {
    ctx.unknown('sockets', `${total} connections, of which the first ${connections.length} are listed`);
  }
  return {
    listening,
    connections,
    established,
    establishedByLocalPort: byPort,
    known: true,
    withProcesses: ss !== undefined,
  };
}
