// Capture: run the script on a host in one round trip (two when discovery finds application
// trees to measure or programs the first did not resolve), split its output into sections, and build the Profile from them — with
// everything the host could not tell named as unknown, and every secret moved out of the Profile
// into a list of its own.
import { gzipSync } from 'node:zlib';
import type { z } from 'zod';
import { InvalidInputError } from '../errors.js';
import { issuesFromZod } from '../profile/issues.js';
import {
  API_VERSION,
  type Application,
  type ExecutionFlag,
  PROFILE_KIND,
  type ProfileInput,
  ProfileMetadata,
  type Resources,
  RuntimeDependency,
} from '../profile/schema.js';
import type { Transport } from '../transport/transport.js';
import { IncompleteCaptureError } from './errors.js';
import { type DiscoveredTree, discoveredTrees, type TreeCandidate, treeCandidates } from './parse/appdata.js';
import { ParseContext, type Unknown } from './parse/context.js';
import { parseEnvironment } from './parse/environment.js';
import { listedFiles, parseFiles } from './parse/files.js';
import { parseInstance } from './parse/instance.js';
import { parseModules } from './parse/modules.js';
import { parseMonitoringAgents } from './parse/monitoring.js';
import { parseDns, parseFirewall, parseInterfaces, parseRoutes } from './parse/network.js';
import { parseOs } from './parse/os.js';
import { parsePackages } from './parse/packages.js';
import { type ProcessInfo, parseProcessTable, processAllocations } from './parse/processes.js';
import {
  type DiscoveredProgram,
  discoveredPrograms,
  type ProgramCandidate,
  programCandidates,
  programFacts,
  scriptCommand,
} from './parse/programs.js';
import { parseResources } from './parse/resources.js';
import { parseLibraries, parseRuntimes } from './parse/runtimes.js';
import { parseSecurity } from './parse/security.js';
import { parseServices } from './parse/services.js';
import { parseSockets } from './parse/sockets.js';
import { parseStorage } from './parse/storage.js';
import { parseSysctl } from './parse/sysctl.js';
import { parseUsage } from './parse/usage.js';
import { CAPTURE_LIMITS, CAPTURE_SCRIPT, type CaptureParams, captureEnv } from './script.js';
import { type CapturedSecret, redactCommand, SecretCollector } from './secrets.js';
import { type CaptureSections, mergeSections, parseSections, partsWith } from './sections.js';
import { computeTraits } from './traits.js';

export type { CapturedSecret, Unknown };
export { parseSections };

type ApplicationInput = z.input<typeof Application>;
type ResourcesInput = z.input<typeof Resources>;

export interface BuildOptions {
  /** The Profile's name (metadata.name). */
  readonly name: string;
  readonly description?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** When the capture ran, ISO 8601; also stamps the trait vector. */
  readonly capturedAt: string;
  /**
   * The first part of every secret reference (`<host>/env/...`). Defaults to the host name the
   * capture saw, else the Profile's name.
   */
  readonly host?: string;
  readonly executionFlag?: z.infer<typeof ExecutionFlag>;
  /**
   * The store's key for the content hashes of files that hold credentials (`hmac-sha256:`, see
   * keyedContentHash): the same key for every capture of a store, so that an unchanged host
   * gives an unchanged Profile. Without it such files keep no content hash at all.
   */
  readonly contentHashKey?: Uint8Array;
  /** What the caller says the application is: its name, its trees, its processes. */
  readonly application?: {
    readonly name?: string;
    readonly paths?: readonly string[];
    /** Process names (comm) whose environment, start command and ports describe the application. */
    readonly processes?: readonly string[];
  };
  /**
   * Application data discovery (parse/appdata.ts): the trees listening and declared processes
   * run from or hold open, web server document roots and services' working directories join
   * `application.paths`, and so do the programs no package owns that processes and services run
   * (parse/programs.ts). On by default; the bounds default to CAPTURE_LIMITS.
   */
  readonly discovery?: DiscoveryOptions;
}

export interface DiscoveryOptions {
  readonly enabled?: boolean;
  readonly maxTrees?: number;
  readonly treeMaxBytes?: number;
  readonly treeDuTimeoutSeconds?: number;
  readonly maxPrograms?: number;
  readonly programMaxBytes?: number;
}

export interface CaptureResult {
  /** A Profile document (defaults not filled in) that `validateProfile` accepts. */
  readonly profile: ProfileInput;
  /** What the host could not tell, and why. */
  readonly unknowns: readonly Unknown[];
  /** Values the Profile refers to: the caller stores them encrypted under their `ref`. */
  readonly secrets: readonly CapturedSecret[];
}

const checkMetadata = (options: BuildOptions) => {
  const metadata = {
    name: options.name,
    ...(options.description === undefined ? {} : { description: options.description }),
    ...(options.labels === undefined ? {} : { labels: { ...options.labels } }),
  };
  const parsed = ProfileMetadata.safeParse(metadata);
  if (!parsed.success) {
    throw new InvalidInputError(
      'invalid profile metadata for a capture',
      issuesFromZod(parsed.error).map((i) => ({ ...i, path: i.path ? `metadata.${i.path}` : 'metadata' })),
    );
  }
  if (Number.isNaN(Date.parse(options.capturedAt))) {
    throw new InvalidInputError('invalid capture time', [
      { path: 'capturedAt', message: 'expected an ISO 8601 date-time' },
    ]);
  }
  return metadata;
};

/** The I/O class the kernel gives a process that never set one: best-effort, by its nice value. */
const defaultIo = (p: ProcessInfo | undefined): NonNullable<ResourcesInput['io']> => {
  if (p?.ioClass !== undefined) {
    return {
      class: p.ioClass,
      ...(p.ioPriority === undefined || p.ioClass === 'idle' ? {} : { priority: p.ioPriority }),
    };
  }
  const nice = p?.nice ?? 0;
  return { class: 'best-effort', priority: Math.min(7, Math.max(0, Math.floor((nice + 20) / 5))) };
};

/** Builds the Profile from a capture's sections. Throws only for a host Persona cannot describe. */
export function buildProfile(sections: CaptureSections, options: BuildOptions): CaptureResult {
  const metadata = checkMetadata(options);
  const capturedAt = new Date(options.capturedAt).toISOString();
  const probe = new ParseContext(sections, new SecretCollector(options.name), options.name);
  const os = parseOs(probe);
  const host = options.host ?? os.hostname ?? options.name;
  const ctx = new ParseContext(sections, new SecretCollector(host), host);
  for (const u of probe.unknowns) ctx.unknown(u.section, u.reason);
  const declared = [...(options.application?.processes ?? [])];

  const { packages, manager } = parsePackages(ctx);
  const table = parseProcessTable(ctx);
  const files = parseFiles(
    ctx,
    options.contentHashKey === undefined ? {} : { contentHashKey: options.contentHashKey },
  );
  const comms = new Set(table.processes.map((p) => p.comm));
  const services = parseServices(ctx, {
    runningCommands: comms,
    fileHash: files.hashOf,
    protect: files.protect,
  });
  const resources = parseResources(ctx);
  const storage = parseStorage(ctx);
  const sockets = parseSockets(ctx);
  const security = parseSecurity(ctx);
  const firewall = parseFirewall(ctx);
  const dns = parseDns(ctx);
  const { instance, baseImage } = parseInstance(ctx);

  const appProcesses = table.processes.filter((p) => declared.some((d) => d.slice(0, 15) === p.comm));
  const firstOf = (d: string) =>
    appProcesses.filter((p) => p.comm === d.slice(0, 15)).sort((a, b) => a.pid - b.pid)[0];
  // The application's I/O priority stands for the host's; without one, init's.
  const io = table.known
    ? defaultIo(firstOf(declared[0] ?? '') ?? table.processes.find((p) => p.pid === 1))
    : undefined;
  ctx.unknown(
    'resources',
    'bandwidth limits belong to the platform (instance type, traffic shaping) and are not read from the host',
  );
  ctx.unknown(
    'monitoring',
    'alarm thresholds live in the monitoring service (CloudWatch alarms, Azure Monitor), not on the host',
  );

  const trees = discoveredTrees(ctx, candidatesOf(ctx, options), boundsOf(options));
  const programs = programsOf(ctx, options, programCandidatesOf(ctx, options), trees);
  const application = describeApplication(declared, firstOf, sockets.listening, options, trees, programs);
  const appPorts = new Set(
    sockets.listening
      .filter((l) => appProcesses.some((p) => p.comm === l.process) && l.port !== undefined)
      .map((l) => l.port as number),
  );
  const activeSessions =
    declared.length === 0 || !sockets.withProcesses
      ? undefined
      : [...appPorts].reduce((n, port) => n + (sockets.establishedByLocalPort.get(port) ?? 0), 0);

  const { usage, rates } = parseUsage(ctx, {
    meminfo: resources.meminfo,
    established: sockets.known ? sockets.established : undefined,
    activeSessions,
  });

  const spec = {
    os,
    ...(instance === undefined ? {} : { instance }),
    ...(baseImage === undefined ? {} : { baseImage }),
    ...(options.executionFlag === undefined ? {} : { executionFlag: options.executionFlag }),
    packages,
    services,
    network: {
      interfaces: parseInterfaces(ctx),
      routes: parseRoutes(ctx),
      ...(firewall === undefined ? {} : { firewall }),
      ...(dns === undefined ? {} : { dns }),
    },
    storage: { volumes: storage.volumes, filesystems: storage.filesystems, mounts: storage.mounts },
    resources: { ...resources.resources, ...(io === undefined ? {} : { io }) },
    runtimeDependencies: ctx.keep(
      'runtimes',
      RuntimeDependency,
      [...parseRuntimes(ctx, manager), ...parseLibraries(ctx, manager)],
      (d) => `${d.type}:${d.name}`,
      'runtime dependency',
    ),
    configuration: {
      env: parseEnvironment(ctx, declared),
      files: files.files,
      sysctl: parseSysctl(ctx),
    },
    kernelModules: parseModules(ctx),
    security,
    monitoring: {
      agents: parseMonitoringAgents(ctx, {
        packages: new Map(packages.map((p) => [p.name, p.version])),
        processes: table.processes,
        hashOf: files.hashOf,
      }),
      thresholds: [],
    },
    processes: processAllocations(ctx, table, resources.cgroups, resources.onlineCpus, declared),
    application,
  } satisfies ProfileInput['spec'];

  const swapTotal = resources.meminfo.get('SwapTotal');
  const swapFree = resources.meminfo.get('SwapFree');
  const traitVector = computeTraits({
    spec,
    listening: sockets.listening,
    usage,
    ...(rates?.iowait === undefined ? {} : { iowait: rates.iowait }),
    ...(swapTotal && swapFree !== undefined ? { swapUsed: 1 - swapFree / swapTotal } : {}),
    computedAt: capturedAt,
  });

  const profile: ProfileInput = {
    apiVersion: API_VERSION,
    kind: PROFILE_KIND,
    metadata,
    spec,
    observed: {
      capturedAt,
      listening: sockets.listening,
      connections: sockets.connections,
      usage,
      traitVector,
      ...(trees.length + programs.length === 0
        ? {}
        : {
            applicationTrees: [
              ...trees.map((t) => ({ path: t.path, reasons: [...t.reasons], bytes: t.bytes })),
              ...programs.map((p) => ({
                path: p.path,
                reasons: [...p.reasons],
                ...(p.bytes === undefined ? {} : { bytes: p.bytes }),
              })),
            ],
          }),
    },
  };
  return { profile, unknowns: [...ctx.unknowns], secrets: ctx.secrets.list() };
}

/** KiB of the hash budget the last pass left (its `left` part), undefined when none said. */
const lastHashBudgetLeftKiB = (sections: CaptureSections): number | undefined => {
  const left = partsWith(sections.get('hashes'), 'left').at(-1);
  const kib = Number(left?.header.split(' ')[1]);
  return left !== undefined && Number.isSafeInteger(kib) && kib >= 0 ? kib : undefined;
};

const boundsOf = (options: BuildOptions) => ({
  treeMaxBytes: options.discovery?.treeMaxBytes ?? CAPTURE_LIMITS.treeMaxBytes,
  treeDuTimeoutSeconds: options.discovery?.treeDuTimeoutSeconds ?? CAPTURE_LIMITS.treeDuTimeoutSeconds,
});

/** The programs discovery proposes from the first pass, none when it is switched off. */
const programCandidatesOf = (ctx: ParseContext, options: BuildOptions): ProgramCandidate[] =>
  options.discovery?.enabled === false
    ? []
    : programCandidates(ctx, {
        given: options.application?.paths ?? [],
        declared: options.application?.processes ?? [],
        table: parseProcessTable(ctx),
      });

/** The programs kept once the second pass resolved them: none inside /etc, a given or a found tree. */
const programsOf = (
  ctx: ParseContext,
  options: BuildOptions,
  candidates: readonly ProgramCandidate[],
  trees: readonly DiscoveredTree[],
): DiscoveredProgram[] =>
  discoveredPrograms(
    ctx,
    candidates,
    ['/etc', ...(options.application?.paths ?? []), ...trees.map((t) => t.path)],
    {
      maxPrograms: options.discovery?.maxPrograms ?? CAPTURE_LIMITS.maxPrograms,
      programMaxBytes: options.discovery?.programMaxBytes ?? CAPTURE_LIMITS.programMaxBytes,
    },
  );

/** The trees discovery proposes from the first pass, none when it is switched off. */
const candidatesOf = (ctx: ParseContext, options: BuildOptions): TreeCandidate[] =>
  options.discovery?.enabled === false
    ? []
    : treeCandidates(ctx, {
        given: options.application?.paths ?? [],
        maxTrees: options.discovery?.maxTrees ?? CAPTURE_LIMITS.maxTrees,
      });

/**
 * The application as the caller declared it, with what the capture saw of it: each process's
 * command line as its start command, and health checks that the process runs and that its
 * TCP ports accept connections.
 */
function describeApplication(
  declared: readonly string[],
  firstOf: (name: string) => ProcessInfo | undefined,
  listening: readonly {
    protocol: string;
    address: string;
    port?: number | undefined;
    process?: string | undefined;
  }[],
  options: BuildOptions,
  discovered: readonly DiscoveredTree[],
  programs: readonly DiscoveredProgram[],
): ApplicationInput {
  const startCommands: NonNullable<ApplicationInput['startCommands']> = [];
  const healthChecks: NonNullable<ApplicationInput['healthChecks']> = [];
  for (const name of declared) {
    const p = firstOf(name);
    if (!p) continue;
    startCommands.push({
      name,
      // A script started by its path runs the same way again, not through its interpreter,
      // which would give the process the interpreter's name instead of the script's.
      command: redactCommand(scriptCommand(p.args, p.comm) ?? p.args).trim() || p.comm,
      ...(p.user ? { user: p.user } : {}),
    });
    healthChecks.push({ type: 'process', name: `${name}-running`, process: name });
    const ports = new Set<number>();
    for (const l of listening) {
      if (l.process !== p.comm || l.port === undefined || !l.protocol.startsWith('tcp') || ports.has(l.port))
        continue;
      ports.add(l.port);
      const wildcard = l.address === '0.0.0.0' || l.address === '::' || l.address === '*';
      healthChecks.push({
        type: 'tcp',
        name: `${name}-tcp-${l.port}`,
        host: wildcard ? '127.0.0.1' : l.address,
        port: l.port,
      });
    }
  }
  return {
    ...(options.application?.name === undefined ? {} : { name: options.application.name }),
    // The given paths first, as given; the discovered ones are never inside them, and the
    // programs (single files and links to them) never inside a tree.
    paths: [
      ...(options.application?.paths ?? []),
      ...discovered.map((t) => t.path),
      ...programs.map((p) => p.path),
    ],
    startCommands,
    healthChecks,
  };
}

export interface CaptureOptions extends BuildOptions {
  /**
   * Limits for the script; the application's processes and paths come from `application`, the
   * discovered trees and their bounds from `discovery`.
   */
  readonly params?: Omit<
    CaptureParams,
    'appProcesses' | 'configPaths' | 'trees' | 'treeMaxBytes' | 'treeDuTimeoutSeconds'
  >;
  /** How long the script may run. Default 60 s: it takes one to two seconds on a typical host. */
  readonly timeoutMs?: number;
}

export interface HostCapture extends CaptureResult {
  /** Seconds the script ran on the host, by the host's clock. */
  readonly scriptSeconds: number | undefined;
  /** Milliseconds the whole round trip took, as the transport measured it. */
  readonly roundTripMs: number;
}

// The script goes compressed, as standard input, to be unpacked and run by the host's own sh:
// a quarter of the bytes of every capture (a clone's baseline and checks included). Unpacked
// whole before it runs, so the script's commands see standard input at its end as before.
const PACKED_SCRIPT = gzipSync(Buffer.from(CAPTURE_SCRIPT, 'utf8'), { level: 9 });
/** The unpacker's own exit when the host has no gzip: the plain script is sent instead. */
const NO_GZIP = 97;
const UNPACK = `command -v gzip >/dev/null 2>&1 || exit ${NO_GZIP}; s=$(gzip -dc) || exit ${NO_GZIP}; exec sh -c "$s" sh`;

async function runPacked(transport: Transport, env: Record<string, string>, timeoutMs: number) {
  const packed = await transport.run(UNPACK, { env, timeoutMs, stdin: PACKED_SCRIPT });
  if (packed.exitCode !== NO_GZIP || packed.stdout !== '') return packed;
  return transport.run(CAPTURE_SCRIPT, { env, timeoutMs });
}

/** One run of the script over the transport, split into its sections. */
async function runScript(
  transport: Transport,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ sections: CaptureSections; durationMs: number }> {
  const result = await runPacked(transport, env, timeoutMs);
  if (result.truncated) {
    throw new IncompleteCaptureError(
      `the capture output from ${transport.target} came back truncated: the transport must fetch large output whole`,
      transport.target,
    );
  }
  try {
    return { sections: parseSections(result.stdout), durationMs: result.durationMs };
  } catch (error) {
    if (error instanceof IncompleteCaptureError && result.stderr.trim() !== '') {
      throw new IncompleteCaptureError(
        `${error.message} (exit status ${result.exitCode}; stderr: ${result.stderr.trim().slice(0, 200)})`,
        transport.target,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Captures a host: one run of the script over the transport, then buildProfile. The first run
 * resolves the programs its processes and services name and asks the package manager about
 * them. When discovery proposes trees beyond the given paths, or programs the first run did not
 * resolve, a second, short run measures the trees (listing and hashing those that fit, within
 * what the first run left of the file and hash bounds) and resolves those programs, asking the
 * package manager about all of them at once; a further run lists and hashes the programs no
 * package owns, when there are any.
 */
export async function captureHost(transport: Transport, options: CaptureOptions): Promise<HostCapture> {
  checkMetadata(options);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const env = captureEnv({
    ...options.params,
    ...(options.application?.processes ? { appProcesses: options.application.processes } : {}),
    ...(options.application?.paths ? { configPaths: options.application.paths } : {}),
  });
  const first = await runScript(transport, env, timeoutMs);
  let sections = first.sections;
  let roundTripMs = first.durationMs;
  const probe = new ParseContext(sections, new SecretCollector(options.name), options.name);
  const candidates = candidatesOf(probe, options);
  const programs = programCandidatesOf(probe, options);
  // The first pass resolved the programs its processes and services name: only the others
  // need a pass of their own.
  const resolved = programFacts(sections.get('programs')).byPath;
  const unresolved = programs.filter((c) => !resolved.has(c.path));
  const maxFiles = options.params?.maxFiles ?? CAPTURE_LIMITS.maxFiles;
  const budget = options.params?.hashBudgetBytes ?? CAPTURE_LIMITS.hashBudgetBytes;
  const listing = (): Pick<CaptureParams, 'maxFiles' | 'hashBudgetBytes' | 'hashFileMaxBytes'> => {
    const leftKiB = lastHashBudgetLeftKiB(sections);
    return {
      maxFiles: Math.max(1, maxFiles - listedFiles(sections)),
      // At least 1 byte (captureEnv's rule): a budget spent on /etc hashes nothing more.
      hashBudgetBytes: Math.max(1, leftKiB === undefined ? budget : leftKiB * 1024),
      ...(options.params?.hashFileMaxBytes === undefined
        ? {}
        : { hashFileMaxBytes: options.params.hashFileMaxBytes }),
    };
  };
  if (candidates.length > 0 || unresolved.length > 0) {
    const second = await runScript(
      transport,
      captureEnv({
        trees: candidates.map((c) => c.path),
        programs: unresolved.map((c) => c.path),
        ...listing(),
        ...(options.discovery?.treeMaxBytes === undefined
          ? {}
          : { treeMaxBytes: options.discovery.treeMaxBytes }),
        ...(options.discovery?.treeDuTimeoutSeconds === undefined
          ? {}
          : { treeDuTimeoutSeconds: options.discovery.treeDuTimeoutSeconds }),
      }),
      timeoutMs,
    );
    sections = mergeSections(sections, second.sections);
    roundTripMs += second.durationMs;
  }
  if (programs.length > 0) {
    // Decided as buildProfile decides, from the same sections.
    const ctx = new ParseContext(sections, new SecretCollector(options.name), options.name);
    const trees = discoveredTrees(ctx, candidates, boundsOf(options));
    const kept = programsOf(ctx, options, programs, trees);
    if (kept.length > 0) {
      const third = await runScript(
        transport,
        captureEnv({ files: kept.map((p) => p.path), ...listing() }),
        timeoutMs,
      );
      sections = mergeSections(sections, third.sections);
      roundTripMs += third.durationMs;
    }
  }
  return {
    ...buildProfile(sections, options),
    scriptSeconds: sections.seconds,
    roundTripMs,
  };
}
