// The way back from a host's agent to the embedded runtime, whose API listens on loopback
// only: an SSH remote port forward on the host's own transport connection. The host's
// 127.0.0.1:<port> leads to the runtime's agents' listener (agent routes only, each checked
// against the agent's credential), and nothing else of the runtime is reachable from there.
// A tunnel lives while the runtime runs and is opened again when its connection drops.
import { connect } from 'node:net';
import { InvalidInputError } from '../core/errors.js';
import { AGENT_PATHS } from '../core/persona/agent/install.js';
import { LocalTransport } from '../core/transport/local.js';
import { SshTransport } from '../core/transport/ssh.js';
import type { Transport } from '../core/transport/transport.js';

export interface AgentTunnelOptions {
  /** A transport to the registered host (only SSH can carry a tunnel). */
  readonly connect: (host: string) => Promise<Transport>;
  /** The agents' listener forwarded connections go to (loopback). */
  readonly target: { readonly host: string; readonly port: number };
  /** Told when a tunnel opens, drops or cannot be opened. */
  readonly onEvent?: (event: { host: string; kind: 'open' | 'dropped' | 'failed'; detail: string }) => void;
  /** First wait before opening a dropped tunnel again; doubles to 30 s. Default 1 s. */
  readonly retryMs?: number;
}

interface Tunnel {
  readonly host: string;
  /** The host's port, fixed at the first opening: the agent's configuration names it. */
  port: number | undefined;
  transport: Transport | undefined;
  stop: (() => Promise<void>) | undefined;
  released: boolean;
  opening: Promise<string> | undefined;
  timer: NodeJS.Timeout | undefined;
  failures: number;
}

export class AgentTunnels {
  private readonly tunnels = new Map<string, Tunnel>();
  private closed = false;

  constructor(private readonly options: AgentTunnelOptions) {}

  /** The endpoint the host's agent calls, opening the tunnel if it is not open. */
  async endpointFor(host: string): Promise<string> {
    if (this.closed) throw new Error('the agent tunnels are closed');
    let tunnel = this.tunnels.get(host);
    if (tunnel === undefined) {
      tunnel = {
        host,
        port: undefined,
        transport: undefined,
        stop: undefined,
        released: false,
        opening: undefined,
        timer: undefined,
        failures: 0,
      };
      this.tunnels.set(host, tunnel);
    }
    tunnel.released = false;
    if (tunnel.stop !== undefined && tunnel.port !== undefined) return this.url(tunnel.port);
    return this.open(tunnel);
  }

  /** Whether the host's tunnel is open now. */
  isOpen(host: string): boolean {
    return this.tunnels.get(host)?.stop !== undefined;
  }

  async release(host: string): Promise<void> {
    const tunnel = this.tunnels.get(host);
    if (!tunnel) return;
    tunnel.released = true;
    this.tunnels.delete(host);
    await this.shut(tunnel);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.tunnels.values()];
    this.tunnels.clear();
    for (const t of all) t.released = true;
    await Promise.all(all.map((t) => this.shut(t)));
  }

  private url(port: number): string {
    return `http://127.0.0.1:${port}`;
  }

  private open(tunnel: Tunnel): Promise<string> {
    tunnel.opening ??= this.establish(tunnel).finally(() => {
      tunnel.opening = undefined;
    });
    return tunnel.opening;
  }

  private async establish(tunnel: Tunnel): Promise<string> {
    const transport = await this.options.connect(tunnel.host);
    if (transport instanceof LocalTransport) {
      // The agent runs on this machine: the listener is its loopback already.
      tunnel.transport = transport;
      tunnel.port = this.options.target.port;
      tunnel.stop = async () => {};
      return this.url(this.options.target.port);
    }
    if (!(transport instanceof SshTransport)) {
      await transport.close();
      throw new InvalidInputError(
        `host ${tunnel.host} is reached over ${transport.target.split(':')[0]}, which carries no tunnel back: start the runtime with --agent-endpoint and an address the host can reach`,
        [{ path: 'endpoint', message: 'give an endpoint the host can reach' }],
      );
    }
    const { target } = this.options;
    const accept = (channel: NodeJS.ReadWriteStream & { destroy(): void }) => {
      const socket = connect(target.port, target.host);
      socket.on('error', () => channel.destroy());
      channel.on('error', () => socket.destroy());
      channel.on('close', () => socket.destroy());
      socket.on('close', () => channel.destroy());
      channel.pipe(socket).pipe(channel);
    };
    // The port the installed agent already calls (a runtime started again must bind the one
    // its agents know); else the listener's own number where the host has it free (easy to
    // follow in logs); else one the host picks, kept from then on.
    tunnel.port ??= await installedPort(transport);
    const wanted = tunnel.port ?? target.port;
    let forward: Awaited<ReturnType<SshTransport['forwardRemote']>>;
    try {
      forward = await forwardAgain(transport, wanted, accept, tunnel.port !== undefined);
    } catch (error) {
      if (tunnel.port !== undefined) {
        await transport.close();
        throw error;
      }
      forward = await transport.forwardRemote('127.0.0.1', 0, accept);
    }
    tunnel.transport = transport;
    tunnel.port = forward.port;
    tunnel.failures = 0;
    tunnel.stop = async () => {
      await forward.stop().catch(() => {});
      await transport.close();
    };
    this.options.onEvent?.({
      host: tunnel.host,
      kind: 'open',
      detail: `127.0.0.1:${forward.port} on the host`,
    });
    void forward.closed.then(() => {
      if (tunnel.transport !== transport) return;
      tunnel.stop = undefined;
      tunnel.transport = undefined;
      if (tunnel.released || this.closed) return;
      this.options.onEvent?.({ host: tunnel.host, kind: 'dropped', detail: 'the SSH connection ended' });
      this.retry(tunnel);
    });
    return this.url(forward.port);
  }

  private retry(tunnel: Tunnel): void {
    const wait = Math.min(30_000, (this.options.retryMs ?? 1000) * 2 ** Math.min(tunnel.failures, 5));
    tunnel.timer = setTimeout(() => {
      tunnel.timer = undefined;
      if (tunnel.released || this.closed) return;
      this.open(tunnel).catch((error: unknown) => {
        tunnel.failures++;
        this.options.onEvent?.({
          host: tunnel.host,
          kind: 'failed',
          detail: error instanceof Error ? error.message : String(error),
        });
        this.retry(tunnel);
      });
    }, wait);
    tunnel.timer.unref();
  }

  private async shut(tunnel: Tunnel): Promise<void> {
    if (tunnel.timer) clearTimeout(tunnel.timer);
    await tunnel.opening?.catch(() => {});
    const stop = tunnel.stop;
    tunnel.stop = undefined;
    tunnel.transport = undefined;
    await stop?.();
  }
}

/** The loopback port the host's installed agent calls, from its configuration, if any. */
async function installedPort(transport: Transport): Promise<number | undefined> {
  const text = await transport.getFile(AGENT_PATHS.config).then(
    (bytes) => Buffer.from(bytes).toString('utf8'),
    () => '',
  );
  const port = Number(/^endpoint=http:\/\/127\.0\.0\.1:(\d{1,5})$/m.exec(text)?.[1]);
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

/**
 * The forward on `port`, asked again for a few seconds while the host still holds it: the sshd
 * of a connection just closed (a revoke, a drop) releases its listener only once it has noticed,
 * and the port the agent knows is the one to bind. A port first tried (`known` false) is not
 * waited for: another is taken.
 */
async function forwardAgain(
  transport: SshTransport,
  port: number,
  accept: Parameters<SshTransport['forwardRemote']>[2],
  known: boolean,
): Promise<Awaited<ReturnType<SshTransport['forwardRemote']>>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await transport.forwardRemote('127.0.0.1', port, accept);
    } catch (error) {
      if (!known || attempt >= 10 || !/Unable to bind/.test(String((error as Error).cause ?? error)))
        throw error;
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
  }
}
