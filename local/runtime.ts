// The whole of Persona on one machine: the stand-ins, the tables and bucket from the shared
// definitions, and the API functions behind a local HTTP server.

import { rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'aws-lambda';
import { ROUTES, type Route } from '../core/api/routes.js';
import { DATA_BUCKET, TABLES } from '../core/storage/definitions.js';
import { AgentTunnels } from './agent-tunnel.js';
import { type ApiHandler, createApiServer, type LocalApiOptions } from './http.js';
import { startPersonaTicker } from './persona-ticker.js';
import { findInterrupted, type Recovered, recoverInterrupted } from './recovery.js';
import { freePort, LOCAL_CREDENTIALS, LOCAL_REGION, startStandIns } from './stand-ins.js';
import { localWorkflows } from './workflows.js';

export interface LocalOptions {
  /** Where DynamoDB Local and the S3-protocol server keep their data. */
  readonly dataDir?: string;
  /** HTTP port of the API; 0 picks a free one. */
  readonly port?: number;
  /** A loopback address to listen on (default 127.0.0.1); nothing else is accepted. */
  readonly host?: string;
  readonly onRequest?: LocalApiOptions['onRequest'];
  /** Cloud platform adaptors to clone onto (built by the caller), instead of none. */
  readonly platforms?: import('../functions/shared/clone.js').PlatformsFactory;
  /**
   * An address hosts' agents reach the runtime at (`--agent-endpoint http://10.0.0.5:8171`):
   * the runtime listens there too, for the agent routes only. Without it, agents reach the
   * runtime back through an SSH tunnel on their host's own transport connection.
   */
  readonly agentEndpoint?: string;
  /**
   * How often hosts without an agent are sampled (over their transport) for the metric
   * criteria that select them: every minute by default, as the stack's schedule does; 0 never.
   */
  readonly samplingIntervalMs?: number;
}

export interface LocalPersona {
  readonly url: string;
  /** The agents' listener on loopback (agent routes only), where tunnels from hosts lead. */
  readonly agentUrl: string;
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  /**
   * Operations an earlier run left open, ended or restarted (local/recovery.ts); settles once
   * each has been, in the background of a runtime that already answers.
   */
  readonly recovered: Promise<readonly Recovered[]>;
  stop(): Promise<void>;
}

export const DEFAULT_PORT = 8170;
export const ENDPOINTS_FILE = 'endpoints.json';

/** Where a running embedded runtime's stand-ins are. */
export interface LocalEndpoints {
  readonly api: string;
  readonly region: string;
  readonly dynamoEndpoint: string;
  readonly s3Endpoint: string;
  readonly bucket: string;
  /** Table names by their environment variable (PROFILES_TABLE, ...). */
  readonly tables: Readonly<Record<string, string>>;
  /** Where the local key provider keeps its key-encryption key. */
  readonly keysDir: string;
}
export const LOCAL_BUCKET = 'persona-data';

type StepHandler = (event: unknown, context: Context) => Promise<unknown>;

/**
 * The embedded runtime has no authentication of its own: what keeps other machines out is
 * that nothing of it is reachable from them.
 */
function loopbackHost(host: string): string {
  const loopback = (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (!loopback) {
    throw new Error(`the embedded runtime listens on loopback only (127.0.0.0/8 or ::1), not on ${host}`);
  }
  return host;
}

export async function startLocal(options: LocalOptions = {}): Promise<LocalPersona> {
  const host = loopbackHost(options.host ?? '127.0.0.1');
  // Refused before anything starts.
  if (options.agentEndpoint !== undefined) agentEndpointUrl(options.agentEndpoint);
  const dataDir = resolve(options.dataDir ?? '.persona/data');
  const tables = TABLES.map((definition) => ({ definition, name: `persona-${definition.id.toLowerCase()}` }));
  const standIns = await startStandIns({ dataDir, tables, buckets: [LOCAL_BUCKET] });
  try {
    // The handlers read their configuration from the environment exactly as in Lambda; the
    // SDK's own AWS_ENDPOINT_URL_* variables point them at the stand-ins.
    Object.assign(process.env, {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: standIns.dynamoEndpoint,
      AWS_ENDPOINT_URL_S3: standIns.s3Endpoint,
      PERSONA_S3_PATH_STYLE: 'true',
      [DATA_BUCKET.env]: LOCAL_BUCKET,
      POWERTOOLS_SERVICE_NAME: 'persona',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
      POWERTOOLS_DEV: 'true',
      PERSONA_RUNTIME: 'embedded',
    });
    delete process.env.AWS_PROFILE;
    for (const t of tables) process.env[t.definition.env] = t.name;

    process.env.PERSONA_KEYS_DIR = join(dataDir, 'keys');
    // EventBridge has no stand-in: the clone workflow's events are appended here instead.
    process.env.PERSONA_EVENTS_FILE = join(dataDir, 'events.jsonl');
    const shared = await import('../functions/shared/workflows.js');
    const workflows = localWorkflows({ root: fileURLToPath(new URL('..', import.meta.url)) });
    shared.useWorkflowStarter(workflows);
    (await import('../functions/shared/clone.js')).useClonePlatforms(options.platforms);

    const handlers: Record<string, ApiHandler> = {};
    for (const route of ROUTES) {
      const module = (await import(`../functions/api/${route.handler}/handler.ts`)) as { main: ApiHandler };
      handlers[route.handler] = module.main;
    }
    const runtime = await import('../functions/shared/runtime.js');
    const { authenticateAgent } = await import('../core/persona/agent/credentials.js');
    const agentAuth = (authorization: string | undefined) =>
      authenticateAgent(runtime.agentCredentials(), authorization, new Date());
    // EventBridge Scheduler has no stand-in: a timer wakes evaluation at window edges instead,
    // and persona writes re-arm it rather than syncing schedules.
    const service = await import('../core/persona/service.js');
    const { personaEvaluation } = await import('../functions/shared/evaluation.js');
    const ticker = startPersonaTicker({
      load: async () => service.compileAll(await runtime.personas().loadAll()),
      evaluate: async (due, now) => {
        for (const p of due) await service.evaluatePersonaHosts(personaEvaluation(), p.name, now);
      },
      onError: (error) => runtime.logger.warn('window-edge evaluation failed', { error: error as Error }),
    });
    // Hosts without an agent: the stack's sampling schedule, as a timer.
    const { handler: sample } = await import('../functions/events/persona-sample/handler.js');
    const samplingMs = options.samplingIntervalMs ?? 60_000;
    let sampling: Promise<unknown> = Promise.resolve();
    const sampler =
      samplingMs > 0
        ? setInterval(() => {
            sampling = sample({}).catch((error) =>
              runtime.logger.warn('agentless sampling failed', { error: error as Error }),
            );
          }, samplingMs)
        : undefined;
    sampler?.unref();
    runtime.useTriggerSync({
      personaWritten: async () => ticker.poke(),
      personaDeleted: async () => ticker.poke(),
    });

    const server = createApiServer({
      handlers,
      host,
      agentAuth,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
    });
    // Read before the API answers: an operation a request starts from now on is this run's own.
    const interrupted = await findInterrupted(runtime.operations());
    const port = options.port === 0 ? await freePort() : (options.port ?? DEFAULT_PORT);
    await listen(server, port, host);
    // An earlier run's executions died with it: their operations are ended (or started) now,
    // behind the API rather than before it, since a rollback waits on the hosts it reaches.
    const recovered = recoverInterrupted(
      {
        operations: runtime.operations(),
        workflows,
        task: async (fn) =>
          ((await import(`../functions/steps/${fn}/handler.ts`)) as { main: StepHandler }).main,
      },
      interrupted,
    ).then(
      (done) => {
        const failed = done.filter((r) => r.outcome === 'failed');
        if (done.length > 0) runtime.logger.warn('operations left open by an earlier run', { done });
        if (failed.length > 0) runtime.logger.error('operations not recovered', { failed });
        return done;
      },
      (error: unknown) => {
        runtime.logger.error('recovering open operations failed', { error: error as Error });
        return [];
      },
    );
    const agents = await startAgentListeners({
      handlers,
      host,
      agentAuth,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
      ...(options.agentEndpoint ? { agentEndpoint: options.agentEndpoint } : {}),
    });
    // Commands that work on data directly (snapshots of a local directory) find the
    // stand-ins through this file.
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const endpoints: LocalEndpoints = {
      api: `http://${urlHost}:${port}`,
      region: LOCAL_REGION,
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      bucket: LOCAL_BUCKET,
      tables: Object.fromEntries(tables.map((t) => [t.definition.env, t.name])),
      keysDir: join(dataDir, 'keys'),
    };
    writeFileSync(join(dataDir, ENDPOINTS_FILE), `${JSON.stringify(endpoints, null, 2)}\n`, { mode: 0o600 });
    return {
      url: `http://${urlHost}:${port}`,
      dynamoEndpoint: standIns.dynamoEndpoint,
      s3Endpoint: standIns.s3Endpoint,
      agentUrl: agents.url,
      recovered,
      async stop() {
        await recovered;
        rmSync(join(dataDir, ENDPOINTS_FILE), { force: true });
        await agents.stop();
        await ticker.stop();
        if (sampler !== undefined) clearInterval(sampler);
        await sampling;
        runtime.useTriggerSync(undefined);
        await workflows.idle();
        await new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        await standIns.stop();
      },
    };
  } catch (e) {
    await standIns.stop();
    throw e;
  }
}

/**
 * The agents' side of the runtime: a listener serving the agent routes only (every one of
 * them checks the agent's credential), on loopback for tunnels and, when the user opts in,
 * on the address given; the tunnels; and the endpoint each install gives its agent.
 */
async function startAgentListeners(options: {
  readonly handlers: Record<string, ApiHandler>;
  readonly host: string;
  readonly agentAuth: NonNullable<LocalApiOptions['agentAuth']>;
  readonly onRequest?: LocalApiOptions['onRequest'];
  readonly agentEndpoint?: string;
}): Promise<{ url: string; stop(): Promise<void> }> {
  const routes = ROUTES.filter((r: Route) => r.auth === 'agent');
  const make = (host: string) =>
    createApiServer({
      handlers: options.handlers,
      host,
      routes,
      agentAuth: options.agentAuth,
      anyPort: true,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
    });
  const loopback = make(options.host);
  const port = await freePort();
  await listen(loopback, port, options.host);
  const servers = [loopback];
  const runtime = await import('../functions/shared/runtime.js');
  const { captureDeps } = await import('../functions/shared/capture.js');
  let tunnels: AgentTunnels | undefined;
  if (options.agentEndpoint) {
    const url = agentEndpointUrl(options.agentEndpoint);
    const opted = make(url.hostname.replace(/^\[|\]$/g, ''));
    await listen(opted, Number(url.port), url.hostname.replace(/^\[|\]$/g, ''));
    servers.push(opted);
    const endpoint = url.origin;
    runtime.useAgentEndpoints({ endpointFor: async () => endpoint, release: async () => {} });
  } else {
    tunnels = new AgentTunnels({
      connect: async (name) => {
        const record = await runtime.hosts().get(name);
        return captureDeps().transportFor(record.registration, { acceptNewHostKey: false });
      },
      target: { host: options.host, port },
      onEvent: (e) => {
        if (e.kind !== 'open') console.error(`agent tunnel to ${e.host}: ${e.kind}: ${e.detail}`);
      },
    });
    runtime.useAgentEndpoints(tunnels);
    // Agents installed before this runtime started are reached back again, in the background.
    const opening = tunnels;
    void runtime
      .agentCredentials()
      .liveHosts()
      .then((names) => Promise.allSettled(names.map((n) => opening.endpointFor(n))))
      .catch(() => {});
  }
  const urlHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${urlHost}:${port}`,
    async stop() {
      runtime.useAgentEndpoints(undefined);
      await tunnels?.close();
      for (const s of servers) {
        await new Promise<void>((r) => s.close(() => r()));
        s.closeAllConnections();
      }
    },
  };
}

function agentEndpointUrl(value: string): URL {
  const url = URL.parse(value);
  if (url === null || url.protocol !== 'http:' || url.port === '' || url.pathname !== '/' || url.search) {
    throw new Error(
      `--agent-endpoint ${JSON.stringify(value)} must be http://ADDRESS:PORT, an address of this machine that the hosts reach`,
    );
  }
  if (isIP(url.hostname.replace(/^\[|\]$/g, '')) === 0) {
    throw new Error(`--agent-endpoint names ${url.hostname}; give an IP address of this machine`);
  }
  return url;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE' ? new Error(`port ${port} is in use; set PERSONA_PORT to another one`) : e,
      ),
    );
    server.listen(port, host, () => resolvePromise());
  });
}
