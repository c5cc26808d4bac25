// A capture as an operation: reach the host, collect its persona in one round trip, keep its
// secrets sealed, record the Profile version (only when the host changed) and snapshot its
// configuration. Each step is recorded on the operation so that callers can follow progress.
import type { Readable } from 'node:stream';
import { ConflictError, isPersonaError } from '../errors.js';
import type { HostRegistry } from '../host/registry.js';
import type { HostRegistration } from '../host/schema.js';
import type { OperationStore } from '../operation/store.js';
import { type ProfileDeps, recordProfile } from '../profile/service.js';
import { validateProfile } from '../profile/validate.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { relativeToRoot } from '../transport/paths.js';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import type { Unknown } from './collect.js';
import type { Exclusion } from './sealing.js';

export const CAPTURE_STEPS = ['connect', 'collect', 'secrets', 'profile', 'snapshot'] as const;

export interface CaptureDeps {
  readonly hosts: HostRegistry;
  readonly operations: OperationStore;
  readonly profiles: ProfileDeps;
  readonly snapshots: () => Promise<SnapshotStore>;
  readonly transportFor: (host: HostRegistration, options: CaptureParameters) => Promise<Transport>;
  readonly now?: () => Date;
  /** Told of every step as it starts and ends, for a progress display. */
  readonly onStep?: (name: string, status: 'RUNNING' | 'SUCCEEDED' | 'FAILED', detail?: string) => void;
}

export interface CaptureParameters {
  /** Record the host key on first contact instead of refusing an unknown host. */
  readonly acceptNewHostKey: boolean;
}

export interface CaptureSummary {
  readonly os: string;
  readonly packages: number;
  readonly services: number;
  readonly listeningPorts: readonly number[];
  readonly filesSnapshotted: number;
  readonly bytesNew: number;
  readonly unknowns: number;
  readonly secretsSealed: number;
  /** Trees discovery added to the registration's paths (spec.application.paths), snapshotted too. */
  readonly applicationTrees: readonly string[];
}

/** Starts (or finds, for a retried request) the operation that captures `host`. */
export async function startCapture(
  deps: Pick<CaptureDeps, 'hosts' | 'operations' | 'now'>,
  host: string,
  operationId: string,
  parameters: CaptureParameters = { acceptNewHostKey: false },
) {
  const at = (deps.now?.() ?? new Date()).toISOString();
  await deps.hosts.get(host);
  return deps.operations.start({
    id: operationId,
    kind: 'capture',
    host,
    status: 'PENDING',
    percent: 0,
    steps: CAPTURE_STEPS.map((name) => ({ name, status: 'PENDING' as const })),
    createdAt: at,
    updatedAt: at,
    parameters: { ...parameters },
    revision: 0,
  });
}

/**
 * The trees whose content the snapshot keeps, relative to "/": /etc and the application's own
 * (the registration's paths and those discovery found: the Profile's spec.application.paths).
 * The registration checked its paths and discovery its own; every one is checked again here.
 * A tree inside another one is left out: tar would archive its files twice.
 */
export function snapshotPaths(host: Pick<HostRegistration, 'paths'>): string[] {
  const all = ['etc', ...host.paths.map((p, i) => relativeToRoot(p, `paths[${i}]`))];
  return all.filter((p, i) => all.indexOf(p) === i && !all.some((q) => p.startsWith(`${q}/`)));
}

/** The command that streams the snapshot's trees from the host as one pax archive. */
export function snapshotCommand(host: Pick<HostRegistration, 'paths'>): string {
  return sh`tar --format=pax --numeric-owner -cf - -C / -- ${snapshotPaths(host)}`;
}

/**
 * The files tar could not read for want of permission, from its standard error (GNU tar:
 * `tar: etc/shadow: Cannot open: Permission denied`; BusyBox: `can't open 'etc/shadow'`), and
 * whether that is all it complained of. A capture by another user than root snapshots what it
 * can read and names the rest as unknown instead of failing.
 */
export function unreadableInTar(stderr: string): { readonly paths: string[]; readonly onlyThese: boolean } {
  const paths: string[] = [];
  let onlyThese = true;
  for (const line of stderr.split('\n')) {
    if (line.trim() === '' || /^tar: (Exiting with failure status|Removing leading)/.test(line)) continue;
    const m =
      /^tar: (.+): Cannot [a-z]+(?: dir)?: Permission denied$/.exec(line) ??
      /^tar: can't (?:open|read|stat) '(.+)': Permission denied$/.exec(line);
    if (m?.[1] === undefined) onlyThese = false;
    else paths.push(`/${m[1].replace(/^\/+/, '')}`);
  }
  return { paths, onlyThese };
}

/** A module being loaded, its failure left to whoever awaits it (none, when the capture ends first). */
function loading<T>(module: Promise<T>): Promise<T> {
  module.catch(() => undefined);
  return module;
}

/** Runs every step of a started capture; the operation ends SUCCEEDED or FAILED, never half-way. */
export async function runCapture(deps: CaptureDeps, operationId: string): Promise<CaptureSummary> {
  const now = () => deps.now?.() ?? new Date();
  const op = await deps.operations.get(operationId);
  if (op.status === 'SUCCEEDED' || op.status === 'FAILED') {
    // A redelivered task: the capture already ran to its end.
    throw new ConflictError(
      `operation ${operationId} has already ${op.status === 'SUCCEEDED' ? 'succeeded' : 'failed'}`,
    );
  }
  const host = (await deps.hosts.get(op.host)).registration;
  // What runs once the host answers (the parsers, the sealing of secrets, the tar reader) is
  // loaded while it is being reached: a cold start evaluates it alongside the connection's
  // handshake instead of before the handler runs. A failed load fails the step that needs it.
  const collecting = loading(import('./collect.js'));
  const sealing = loading(import('./sealing.js'));
  const archiving = loading(import('../snapshot/tar.js'));
  let current: string = CAPTURE_STEPS[0];
  const step = async <T>(
    name: (typeof CAPTURE_STEPS)[number],
    work: () => Promise<T>,
    detail?: (t: T) => string,
  ) => {
    current = name;
    await deps.operations.step(operationId, name, 'RUNNING', now());
    deps.onStep?.(name, 'RUNNING');
    const value = await work();
    const said = detail?.(value);
    await deps.operations.step(operationId, name, 'SUCCEEDED', now(), said);
    deps.onStep?.(name, 'SUCCEEDED', said);
    return value;
  };
  let transport: Transport | undefined;
  try {
    transport = await step(
      'connect',
      async () => {
        const t = await deps.transportFor(host, {
          acceptNewHostKey: op.parameters?.acceptNewHostKey === true,
        });
        const probe = await t.run('uname -s', { timeoutMs: 30_000 });
        if (probe.exitCode !== 0) throw new Error(`the host did not run a command: ${probe.stderr.trim()}`);
        return t;
      },
      (t) => t.target,
    );
    const reached = transport;
    // Opened first: files that hold credentials keep a content hash keyed by the store.
    const store = await deps.snapshots();
    const captured = await step(
      'collect',
      async () =>
        (await collecting).captureHost(reached, {
          name: host.name,
          capturedAt: now().toISOString(),
          host: host.name,
          application: { paths: host.paths, processes: host.processes },
          contentHashKey: (await import('./secrets.js')).contentHashKeyOf(store.keys),
        }),
      (c) => `${c.unknowns.length} unknown, ${c.roundTripMs} ms`,
    );
    const sealed = await step(
      'secrets',
      async () => (await sealing).sealSecrets(store.secrets, reached, captured.secrets),
      (s) => `${s.sealed.length} sealed`,
    );
    // Each reference pins the value sealed now: a changed secret is a changed spec (a new Profile
    // version, its diff naming the secret by key and digest only), and older versions keep theirs.
    const { pinSecretRefs, withoutSecretFiles } = await sealing;
    const profile = validateProfile(pinSecretRefs(captured.profile, sealed.digests), {
      source: `capture of ${host.name}`,
    });
    const written = await step(
      'profile',
      () => recordProfile(deps.profiles, profile),
      (w) => `${w.version.name} version ${w.version.version}${w.created ? '' : ' (unchanged)'}`,
    );
    const exclusion: Exclusion = { excluded: [], unlisted: [] };
    const snapshotUnknowns: Unknown[] = [];
    const snapshot = await step(
      'snapshot',
      async () => {
        // tar says 1 when a file changed while it was read: the snapshot still holds a whole file.
        // What the Profile names, discovered trees included, so that a host captured without
        // --path still has its application's content in the snapshot.
        const { tarSource } = await archiving;
        const tar = await reached.stream(snapshotCommand({ paths: profile.spec.application.paths }));
        tar.stdin.end();
        // Files that hold secrets are sealed, not snapshotted (FORMAT.md, "Secrets").
        const source = withoutSecretFiles(
          tarSource(tar.stdout as Readable, `${host.name}:/`),
          sealed.files,
          exclusion,
          async (path, content) => {
            await store.secrets.put(`${host.name}/file/${path.replace(/^\/+/, '')}`, content);
          },
        );
        const record = await store.create(source, {
          host: host.name,
          profile: { name: written.version.name, version: written.version.version },
        });
        const ended = await tar.done;
        const denied = unreadableInTar(ended.stderr);
        if (ended.exitCode > 1 && !(ended.exitCode === 2 && denied.onlyThese && denied.paths.length > 0))
          throw new Error(`tar on the host failed: ${ended.stderr.trim().slice(0, 300)}`);
        if (denied.paths.length > 0)
          snapshotUnknowns.push({
            section: 'snapshot',
            reason: `${denied.paths.length} ${denied.paths.length === 1 ? 'file or directory' : 'files or directories'} could not be read for the snapshot: permission denied (capture as root): ${denied.paths.slice(0, 3).join(', ')}${denied.paths.length > 3 ? ', ...' : ''}`,
          });
        return record;
      },
      (r) =>
        `snapshot ${r.version}: ${r.stats.files} files, ${r.stats.newBytes} bytes new, ${exclusion.excluded.length} holding secrets left out`,
    );
    const summary: CaptureSummary = {
      os: `${profile.spec.os.distribution} ${profile.spec.os.version} (${profile.spec.os.kernel}, ${profile.spec.os.arch})`,
      packages: profile.spec.packages.length,
      services: profile.spec.services.length,
      listeningPorts: [
        ...new Set(
          (profile.observed?.listening ?? []).flatMap((l) => (l.port === undefined ? [] : [l.port])),
        ),
      ].sort((a, b) => a - b),
      filesSnapshotted: snapshot.stats.files,
      bytesNew: snapshot.stats.newBytes,
      unknowns: captured.unknowns.length + snapshotUnknowns.length,
      secretsSealed: sealed.sealed.length + exclusion.unlisted.length,
      applicationTrees: (profile.observed?.applicationTrees ?? []).map((t) => t.path),
    };
    await deps.operations.finish(
      operationId,
      {
        status: 'SUCCEEDED',
        result: {
          profile: { name: written.version.name, version: written.version.version, created: written.created },
          snapshot: { host: snapshot.host, version: snapshot.version },
          summary,
          unknowns: [
            ...captured.unknowns,
            ...sealed.unsealed.map((u) => ({
              section: 'secrets',
              reason: `${u.path} holds secrets and ${u.reason}: it is neither sealed nor in the snapshot`,
            })),
            ...snapshotUnknowns,
            ...(exclusion.unlisted.length === 0
              ? []
              : [
                  {
                    section: 'files',
                    reason: `${exclusion.unlisted.length} files that hold secrets are not in the Profile's file list: sealed and left out of the snapshot (${exclusion.unlisted.slice(0, 3).join(', ')}${exclusion.unlisted.length > 3 ? ', ...' : ''})`,
                  },
                ]),
          ],
        },
      },
      now(),
    );
    await deps.hosts.recordCapture(host.name, {
      operationId,
      at: now().toISOString(),
      profileVersion: written.version.version,
    });
    return summary;
  } catch (error) {
    const code = isPersonaError(error) ? error.code : 'INTERNAL';
    await deps.operations
      .step(operationId, current, 'FAILED', now(), (error as Error).message)
      .catch(() => {});
    await deps.operations.finish(
      operationId,
      { status: 'FAILED', error: { code, message: (error as Error).message } },
      now(),
    );
    throw error;
  } finally {
    await transport?.close();
  }
}

/** Marks a capture failed when its workflow caught an error the capture could not record. */
export async function recordCaptureFailure(
  deps: Pick<CaptureDeps, 'operations' | 'now'>,
  operationId: string,
  error: { readonly Error?: string | undefined; readonly Cause?: string | undefined },
): Promise<void> {
  const op = await deps.operations.get(operationId);
  if (op.status === 'SUCCEEDED' || op.status === 'FAILED') return;
  await deps.operations.finish(
    operationId,
    {
      status: 'FAILED',
      error: { code: error.Error ?? 'INTERNAL', message: error.Cause ?? 'the workflow failed' },
    },
    deps.now?.() ?? new Date(),
  );
}
