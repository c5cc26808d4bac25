// `persona capture`, `persona hosts` and `persona operations`: read a live host's persona. The capture runs here,
// beside the CLI, against the data of the embedded runtime or of AWS (see connect.ts).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import type { CaptureRequest, HostList } from '../core/api/schemas.js';
import type { CaptureSummary } from '../core/capture/operation.js';
import { InvalidInputError } from '../core/errors.js';
import { type HostRecord, HostRegistration } from '../core/host/schema.js';
import { isFinished, type Operation } from '../core/operation/schema.js';
import type { SecretRef } from '../core/profile/schema.js';
import type { PersonaClient } from './client.js';
import type { Connection } from './connect.js';
import { pc, structured } from './output.js';
import { emit, table, terminalText, yamlText } from './render.js';

interface Target {
  transport: 'ssh' | 'local';
  user?: string;
  address?: string;
  port?: number;
}

/** `ssh://root@10.0.0.2:22`, `root@10.0.0.2`, or `local`. */
export function parseTarget(value: string): Target {
  if (value === 'local') return { transport: 'local' };
  const m =
    /^(?:ssh:\/\/)?(?:([a-z_][a-z0-9_-]*)@)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(
      value,
    );
  if (!m) throw new InvalidArgumentError('expected ssh://USER@HOST[:PORT] or local');
  return {
    transport: 'ssh',
    user: m[1] ?? 'root',
    address: (m[2] as string).replace(/^\[|\]$/g, ''),
    port: m[3] ? Number(m[3]) : 22,
  };
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

const bytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;

function printSummary(name: string, s: CaptureSummary, result: Record<string, unknown>): void {
  const profile = result.profile as { name: string; version: number; created: boolean };
  const snapshot = result.snapshot as { version: number };
  const out = (l: string) => process.stdout.write(`${l}\n`);
  // The OS line and the profile name come from the host.
  out(`${pc.green('✓')} captured ${pc.bold(terminalText(name))}`);
  out(`  os         ${terminalText(s.os)}`);
  out(`  packages   ${s.packages}`);
  out(`  services   ${s.services}`);
  out(`  listening  ${s.listeningPorts.join(', ') || 'none'}`);
  out(`  snapshot   ${snapshot.version}: ${s.filesSnapshotted} files, ${bytes(s.bytesNew)} new`);
  // Trees found on the host (document roots, working directories, open files), not given with --path.
  if (s.applicationTrees.length > 0) out(`  found      ${s.applicationTrees.map(terminalText).join(', ')}`);
  out(
    `  profile    ${terminalText(profile.name)} version ${profile.version}${profile.created ? '' : ' (unchanged)'}`,
  );
  if (s.secretsSealed > 0) out(`  secrets    ${s.secretsSealed} sealed, none stored in clear`);
  if (s.unknowns > 0) out(pc.dim(`  ${s.unknowns} facts unknown on this host (see --json)`));
}

/** Seals an SSH private key as `<host>/credential/ssh` and returns the reference that pins it. */
export async function sealCredential(conn: Connection, host: string, keyFile: string): Promise<SecretRef> {
  const key = `${host}/credential/ssh`;
  const sealed = await (await conn.snapshots()).secrets.put(key, readFileSync(keyFile));
  return { provider: 'local', key, digest: sealed.digest };
}

export function registerCaptureCommands(
  program: Command,
  client: (cmd: Command) => { api: PersonaClient },
): void {
  program
    .command('capture')
    .description("capture a host's complete persona: a Profile version and a snapshot of its configuration")
    .argument('<target>', 'ssh://USER@HOST[:PORT], or local for this machine')
    .requiredOption('--name <name>', 'the host (and profile) name')
    .option('--key <file>', 'SSH private key')
    .option(
      '--accept-new-host-key',
      'record the host key on first contact (otherwise an unknown host is refused)',
    )
    .option('--path <path>', 'an application tree to snapshot besides /etc (repeatable)', collect, [])
    .option('--process <name>', 'an application process (repeatable)', collect, [])
    .option('--platform <platform>', 'aws, azure, baremetal or local', 'baremetal')
    .action(
      async (
        targetText: string,
        o: {
          name: string;
          key?: string;
          acceptNewHostKey?: boolean;
          path: string[];
          process: string[];
          platform: string;
        },
        cmd: Command,
      ) => {
        const json = structured(cmd);
        const target = parseTarget(targetText);
        if (target.transport === 'ssh' && !o.key) {
          throw new InvalidInputError('an SSH capture needs --key', [
            { path: '--key', message: 'the private key file' },
          ]);
        }
        const keyFile = o.key ? resolve(o.key) : undefined;
        // The capture itself, the transports and the store's AWS clients are loaded only here:
        // `hosts` and `operations` live in this module too, and talk to the API alone.
        const [
          { runCapture, startCapture },
          { FileHostKeyStore },
          { LocalTransport },
          { SshTransport },
          { connect },
        ] = await Promise.all([
          import('../core/capture/operation.js'),
          import('../core/transport/host-keys.js'),
          import('../core/transport/local.js'),
          import('../core/transport/ssh.js'),
          import('./connect.js'),
        ]);
        const conn = await connect();
        // The key is sealed as the host's own secret: the registration refers to it, and a
        // capture started later through the API reaches the host without reading any file.
        const credentialRef = keyFile ? await sealCredential(conn, o.name, keyFile) : undefined;
        const parsed = HostRegistration.safeParse({
          name: o.name,
          platform: target.transport === 'local' ? 'local' : o.platform,
          transport: target.transport,
          ...(target.address ? { address: target.address, port: target.port, user: target.user } : {}),
          ...(credentialRef ? { credentialRef } : {}),
          paths: o.path,
          processes: o.process,
        });
        if (!parsed.success) {
          throw new InvalidInputError(
            'the host cannot be registered',
            parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
          );
        }
        const hosts = conn.hosts();
        await hosts.save(parsed.data, new Date());
        const tty = !json && process.stderr.isTTY;
        const id = randomUUID();
        await startCapture({ hosts, operations: conn.operations() }, o.name, id, {
          acceptNewHostKey: o.acceptNewHostKey === true,
        });
        const summary = await runCapture(
          {
            hosts,
            operations: conn.operations(),
            profiles: conn.profiles(),
            snapshots: () => conn.snapshots(),
            transportFor: async (host, parameters) => {
              if (host.transport === 'local') return new LocalTransport();
              if (!keyFile)
                throw new InvalidInputError('no SSH key for this host', [
                  { path: '--key', message: 'required' },
                ]);
              return new SshTransport({
                host: host.address as string,
                port: host.port,
                username: host.user,
                privateKey: readFileSync(keyFile),
                hostKeys: new FileHostKeyStore(join(conn.home, 'known_hosts.json')),
                acceptNewHostKey: parameters.acceptNewHostKey,
              });
            },
            onStep: (name, status, detail) => {
              if (json) return;
              const mark =
                status === 'RUNNING' ? pc.dim('…') : status === 'SUCCEEDED' ? pc.green('✓') : pc.red('✗');
              if (status !== 'RUNNING' || tty)
                process.stderr.write(
                  `${mark} ${terminalText(name)}${detail ? pc.dim(`  ${terminalText(detail)}`) : ''}\n`,
                );
            },
          },
          id,
        );
        const op = await conn.operations().get(id);
        if (json) emit(cmd, op);
        else printSummary(o.name, summary, op.result ?? {});
      },
    );

  const hostsCmd = program.command('hosts').description('registered hosts');
  hostsCmd
    .command('list')
    .description('list registered hosts')
    .action(async (_o, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<z.output<typeof HostList>>('GET', '/hosts', { query: { limit: 100 } });
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(
        `${table(
          ['NAME', 'PLATFORM', 'TRANSPORT', 'ADDRESS', 'LAST CAPTURE'],
          res.body.items.map((h) => [
            h.registration.name,
            h.registration.platform,
            h.registration.transport,
            h.registration.address ?? h.registration.instanceId ?? '',
            h.lastCapture ? `${h.lastCapture.at} (profile v${h.lastCapture.profileVersion ?? '?'})` : '',
          ]),
        )}\n`,
      );
    });
  hostsCmd
    .command('show')
    .description('one registered host: how it is reached, what is captured, its last capture')
    .argument('<name>')
    .action(async (name: string, _o, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<z.output<typeof HostRecord>>('GET', `/hosts/${encodeURIComponent(name)}`);
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(yamlText(res.body));
    });
  hostsCmd
    .command('capture')
    .description('capture a registered host through the API: starts the capture workflow and follows it')
    .argument('<name>')
    .option('--accept-new-host-key', 'record the host key on first contact')
    .option('--idempotency-key <key>', 'names the operation: a retry with the same key finds it')
    .option('--no-wait', 'print the operation and return without following it')
    .action(
      async (
        name: string,
        o: { acceptNewHostKey?: boolean; idempotencyKey?: string; wait: boolean },
        cmd: Command,
      ) => {
        const { api } = client(cmd);
        const json = structured(cmd);
        const started = await api.request<Operation>('POST', `/hosts/${encodeURIComponent(name)}/capture`, {
          body: { acceptNewHostKey: o.acceptNewHostKey === true } satisfies z.input<typeof CaptureRequest>,
          headers: { 'idempotency-key': o.idempotencyKey ?? randomUUID() },
        });
        const op = o.wait ? await follow(api, started.body, json) : started.body;
        if (json) emit(cmd, op);
        else if (!o.wait) process.stdout.write(`${terminalText(op.id)} ${op.status}\n`);
        if (op.status === 'FAILED') process.exitCode = 1;
      },
    );
  hostsCmd
    .command('add')
    .description('register a host from a JSON or YAML file (see POST /hosts)')
    .requiredOption('-f, --file <file>')
    .option(
      '--key <file>',
      "SSH private key, sealed as the host's own secret and referred to as its credentialRef",
    )
    .action(async (o: { file: string; key?: string }, cmd: Command) => {
      const { api } = client(cmd);
      const { parseDocumentText } = await import('../core/profile/io.js');
      const { value } = parseDocumentText(readFileSync(o.file), { source: o.file });
      const name = (value as { name?: unknown } | null)?.name;
      if (o.key !== undefined && typeof value === 'object' && value !== null && typeof name === 'string') {
        const { connect } = await import('./connect.js');
        const credentialRef = await sealCredential(await connect(), name, resolve(o.key));
        Object.assign(value, { credentialRef });
      }
      const res = await api.request<z.output<typeof HostRecord>>('POST', '/hosts', { body: value });
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(
        `${res.status === 201 ? pc.green('+') : pc.dim('=')} ${terminalText(res.body.registration.name)} registered\n`,
      );
    });

  const operationsCmd = program.command('operations').description('operations: captures and other workflows');
  operationsCmd
    .command('show')
    .description('an operation: its steps, progress and result, or the step that failed and why')
    .argument('<id>')
    .option('--wait', 'follow it until it ends')
    .action(async (id: string, o: { wait?: boolean }, cmd: Command) => {
      const { api } = client(cmd);
      const json = structured(cmd);
      const first = (await api.request<Operation>('GET', `/operations/${encodeURIComponent(id)}`)).body;
      const op = o.wait ? await follow(api, first, json) : first;
      if (json) emit(cmd, op);
      else if (!o.wait) printOperation(op);
      if (op.status === 'FAILED' || op.status === 'ROLLED_BACK') process.exitCode = 1;
    });
}

export function printOperation(op: Operation): void {
  const out = (l: string) => process.stdout.write(`${l}\n`);
  out(
    `${terminalText(op.kind)} of ${terminalText(op.host)}  ${op.status}  ${op.percent}%  (${terminalText(op.id)})`,
  );
  for (const step of op.steps)
    out(
      `  ${stepMark(step.status)} ${terminalText(step.name)}${step.detail ? pc.dim(`  ${terminalText(step.detail)}`) : ''}`,
    );
  if (op.error) out(pc.red(`  ${terminalText(op.error.code)}: ${terminalText(op.error.message)}`));
  if (op.result) out(pc.dim(`  result: ${terminalText(JSON.stringify(op.result))}`));
}

const stepMark = (status: Operation['steps'][number]['status']) =>
  status === 'SUCCEEDED'
    ? pc.green('✓')
    : status === 'FAILED'
      ? pc.red('✗')
      : status === 'RUNNING'
        ? pc.yellow('…')
        : pc.dim('·');

/** Polls an operation until it ends, printing each step as it finishes (to stderr, unless JSON). */
export async function follow(api: PersonaClient, first: Operation, json: boolean): Promise<Operation> {
  let op = first;
  const shown = new Set<string>();
  const show = () => {
    if (json) return;
    for (const step of op.steps)
      if ((step.status === 'SUCCEEDED' || step.status === 'FAILED') && !shown.has(step.name)) {
        shown.add(step.name);
        process.stderr.write(
          `${stepMark(step.status)} ${terminalText(step.name)}${step.detail ? pc.dim(`  ${terminalText(step.detail)}`) : ''}\n`,
        );
      }
  };
  // Bounded: a capture ends well within its workflow's own time-outs.
  const deadline = Date.now() + 30 * 60_000;
  while (!isFinished(op.status)) {
    show();
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
    op = (await api.request<Operation>('GET', `/operations/${encodeURIComponent(op.id)}`)).body;
  }
  show();
  if (!json) printOperation(op);
  return op;
}
