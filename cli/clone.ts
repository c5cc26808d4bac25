// `persona plan`, `persona clone`, `persona operations list|cancel` and `persona pools`: clones
// go through the API (the clone workflow runs there, in AWS or in the embedded runtime); this
// command starts them, follows their steps and prints the plan and the verdict.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import type { AddMachineRequest, MachineList, OperationList } from '../core/api/schemas.js';
import type { CloneRequestInput, CloneTarget } from '../core/clone/request.js';
import { InvalidInputError } from '../core/errors.js';
import { HostRegistration } from '../core/host/schema.js';
import type { Operation } from '../core/operation/schema.js';
import { parsePlan, serializePlan } from '../core/plan/io.js';
import type { Plan } from '../core/plan/plan.js';
import type { Machine } from '../core/platform/baremetal.js';
import type { ValidationReport } from '../core/validation/report.js';
import { collect, follow, parseTarget, printOperation, sealCredential } from './capture.js';
import type { PersonaClient } from './client.js';
import { pc, structured } from './output.js';
import { emit, table, terminalText } from './render.js';

interface TargetOptions {
  to: string;
  key?: string;
  targetName?: string;
  acceptNewHostKey?: boolean;
  subnet?: string;
  securityGroup?: string[];
  instanceProfile?: string;
  size?: string;
  image?: string;
  ingressCidr?: string;
  resourceGroup?: string;
  location?: string;
  tag?: string[];
}

/** `--tag KEY=VALUE`, repeatable. */
function tagsOf(list: readonly string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const tags: Record<string, string> = {};
  for (const t of list) {
    const eq = t.indexOf('=');
    if (eq < 1) throw new InvalidArgumentError(`--tag ${t}: expected KEY=VALUE`);
    tags[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return tags;
}

/**
 * `aws` or `azure`: a host provisioned for the clone, placed by the options (checked by the API,
 * which names the field of a wrong one); nothing is sent for an option not given.
 */
function cloudTarget(o: TargetOptions): CloneTarget {
  const tags = tagsOf(o.tag);
  const given = <T>(key: string, value: T | undefined) => (value === undefined ? {} : { [key]: value });
  if (o.to === 'aws') {
    return {
      kind: 'aws',
      subnet: o.subnet ?? '',
      instanceProfile: o.instanceProfile ?? '',
      ...given('securityGroups', o.securityGroup?.length ? o.securityGroup : undefined),
      ...given('instanceType', o.size),
      ...given('image', o.image),
      ...given('ingressCidr', o.ingressCidr),
      ...given('tags', tags),
    } as CloneTarget;
  }
  return {
    kind: 'azure',
    resourceGroup: o.resourceGroup ?? '',
    location: o.location ?? '',
    subnet: o.subnet ?? '',
    ...given('size', o.size),
    ...given('image', o.image),
    ...given('tags', tags),
  } as CloneTarget;
}

/** `host:NAME`, `pool:NAME`, `aws`, `azure`, or `ssh://USER@HOST[:PORT]` (registered on the way, with --key). */
async function cloneTarget(api: PersonaClient, o: TargetOptions): Promise<CloneTarget> {
  if (o.to === 'aws' || o.to === 'azure') return cloudTarget(o);
  const named = /^(host|pool):(.+)$/.exec(o.to);
  if (named) {
    return named[1] === 'host'
      ? { kind: 'host', host: named[2] as string }
      : { kind: 'pool', pool: named[2] as string };
  }
  const target = parseTarget(o.to);
  if (target.transport !== 'ssh') throw new InvalidArgumentError('a clone target is reached over SSH');
  if (!o.key)
    throw new InvalidInputError('an SSH target needs --key', [
      { path: '--key', message: 'the private key file' },
    ]);
  const name = o.targetName ?? `target-${(target.address as string).replace(/[^A-Za-z0-9.-]/g, '-')}`;
  // Registered like `persona capture` registers a host: the key sealed as the target's own secret.
  const { connect } = await import('./connect.js');
  const credentialRef = await sealCredential(await connect(), name, resolve(o.key));
  const parsed = HostRegistration.safeParse({
    name,
    platform: 'baremetal',
    transport: 'ssh',
    address: target.address,
    port: target.port,
    user: target.user,
    credentialRef,
  });
  if (!parsed.success)
    throw new InvalidInputError(
      'the target cannot be registered',
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  await api.request('POST', '/hosts', { body: parsed.data, allow: [409] });
  return { kind: 'host', host: name };
}

function profileRef(value: string): { name: string; version?: number } {
  const m = /^([^@]+)(?:@(\d+))?$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected NAME or NAME@VERSION');
  return { name: m[1] as string, ...(m[2] ? { version: Number(m[2]) } : {}) };
}

function printPlan(plan: Plan): void {
  const out = (l = '') => process.stdout.write(`${l}\n`);
  out(
    `plan ${terminalText(plan.source.name)}${plan.source.version ? ` version ${plan.source.version}` : ''} onto ${terminalText(plan.target.name)}${plan.target.address ? ` (${terminalText(plan.target.address)})` : ''}`,
  );
  out(`  ${plan.delta.summary.changes} changes, ${plan.delta.summary.disruptive} disruptive`);
  for (const [kind, n] of Object.entries(plan.delta.summary.byKind))
    out(`    ${terminalText(kind).padEnd(20)} ${n}`);
  const resolution = plan.resolution ?? [];
  if (resolution.length > 0) {
    out();
    out(
      table(
        ['PACKAGE', 'WANTED', 'RESOLVED', 'FROM', 'NOTE'],
        resolution.map((r) => [
          r.package.name,
          r.package.version,
          r.status === 'unresolvable' ? pc.red('unresolvable') : `${r.version ?? ''} (${r.status})`,
          r.source ?? '',
          r.reason ?? '',
        ]),
      ),
    );
  }
  if (plan.unresolved.length > 0) {
    out();
    out(pc.yellow(`  ${plan.unresolved.length} unresolved (not reproduced):`));
    for (const u of plan.unresolved) out(`    ${terminalText(u.field)}: ${terminalText(u.reason)}`);
  }
}

async function getDocument<T>(api: PersonaClient, id: string, document: string): Promise<T | undefined> {
  const res = await api.request<T>('GET', `/operations/${encodeURIComponent(id)}/documents/${document}`, {
    allow: [404],
  });
  return res.status === 200 ? res.body : undefined;
}

function targetOptions(cmd: Command): Command {
  return cmd
    .requiredOption(
      '--to <target>',
      'ssh://USER@HOST[:PORT] (with --key), host:NAME (registered), pool:NAME, aws or azure',
    )
    .option('--key <file>', 'SSH private key of an ssh:// target')
    .option('--target-name <name>', 'the name an ssh:// target is registered as')
    .option('--accept-new-host-key', "record the target's host key on first contact")
    .option('--subnet <id>', 'aws: subnet-…; azure: the subnet resource id')
    .option('--security-group <id>', 'aws: a security group to attach too (repeatable)', collect, [])
    .option('--instance-profile <name>', 'aws: an instance profile with AmazonSSMManagedInstanceCore')
    .option('--size <size>', "aws/azure: the instance type or VM size (default: mapped from the source's)")
    .option('--image <image>', 'aws: ami-…; azure: publisher:offer:sku:version')
    .option('--ingress-cidr <cidr>', "aws: who may reach the application's ports (default: the VPC)")
    .option('--resource-group <name>', 'azure: the resource group')
    .option('--location <region>', 'azure: the region, e.g. westeurope')
    .option('--tag <key=value>', 'aws/azure: a tag for what is provisioned (repeatable)', collect, [])
    .option('--idempotency-key <key>', 'names the operation: a retry with the same key finds it');
}

async function run(
  api: PersonaClient,
  request: CloneRequestInput,
  idempotencyKey: string | undefined,
  json: boolean,
): Promise<Operation> {
  const started = await api.request<Operation>('POST', '/operations/clone', {
    body: request,
    headers: { 'idempotency-key': idempotencyKey ?? randomUUID() },
  });
  if (!json) process.stderr.write(pc.dim(`operation ${terminalText(started.body.id)}\n`));
  return follow(api, started.body, json);
}

export function registerCloneCommands(
  program: Command,
  client: (cmd: Command) => { api: PersonaClient },
): void {
  targetOptions(
    program
      .command('plan')
      .description('what a clone would change on a target, resolved and checked, without changing anything')
      .argument('<profile>', 'NAME or NAME@VERSION'),
  )
    .option('--save <file>', 'write the plan to a file, for `persona clone --plan`')
    .action(
      async (
        profile: string,
        o: TargetOptions & { save?: string; idempotencyKey?: string },
        cmd: Command,
      ) => {
        const { api } = client(cmd);
        const json = structured(cmd);
        const target = await cloneTarget(api, o);
        const op = await run(
          api,
          {
            profile: profileRef(profile),
            target,
            mode: 'plan',
            acceptNewHostKey: o.acceptNewHostKey === true,
          },
          o.idempotencyKey,
          json,
        );
        const plan = await getDocument<Plan>(api, op.id, 'plan');
        if (plan && o.save) writeFileSync(o.save, serializePlan(plan));
        if (json) emit(cmd, { operation: op, plan });
        else if (plan) printPlan(plan);
        if (op.status !== 'SUCCEEDED') process.exitCode = 1;
      },
    );

  targetOptions(
    program
      .command('clone')
      .description(
        'reproduce a Profile on a target, prove it behaves like its source, or leave the target as it was',
      )
      .argument('<profile>', 'NAME or NAME@VERSION'),
  )
    .option('--plan <file>', 'apply exactly this saved plan (refused if the target changed since)')
    .option(
      '--probe <path>',
      'a request path probed on source and clone (repeatable)',
      (v, p: string[] = []) => [...p, v],
    )
    .option('--probe-port <port>', 'the port probed (default 80 when the source listens on it)', Number)
    .option('--load <rate>', 'also a bounded load test of both at this many requests per second', Number)
    .action(
      async (
        profile: string,
        o: TargetOptions & {
          plan?: string;
          idempotencyKey?: string;
          probe?: string[];
          probePort?: number;
          load?: number;
        },
        cmd: Command,
      ) => {
        const { api } = client(cmd);
        const json = structured(cmd);
        const target = await cloneTarget(api, o);
        const plan = o.plan ? parsePlan(readFileSync(o.plan), { source: o.plan }) : undefined;
        const op = await run(
          api,
          {
            profile: profileRef(profile),
            target,
            acceptNewHostKey: o.acceptNewHostKey === true,
            ...(plan ? { plan } : {}),
            validation: {
              healthChecks: true,
              ...(o.probe || o.probePort
                ? { probes: { paths: o.probe ?? ['/'], ...(o.probePort ? { port: o.probePort } : {}) } }
                : {}),
              ...(o.load
                ? { load: { ratePerSecond: o.load, ...(o.probePort ? { port: o.probePort } : {}) } }
                : {}),
            },
          },
          o.idempotencyKey,
          json,
        );
        const report = await getDocument<ValidationReport>(api, op.id, 'report');
        // The rollback record has no schema in the API: shown as it is.
        const rollback = await getDocument<Record<string, unknown>>(api, op.id, 'rollback');
        if (json) emit(cmd, { operation: op, report, rollback });
        else {
          if (report) {
            const mark =
              report.verdict === 'passed'
                ? pc.green('✓')
                : report.verdict === 'failed'
                  ? pc.red('✗')
                  : pc.yellow('?');
            process.stdout.write(`${mark} validation ${report.verdict}\n`);
            for (const r of report.reasons) process.stdout.write(`    ${terminalText(r)}\n`);
          }
          if (op.status === 'ROLLED_BACK')
            process.stdout.write(
              pc.yellow(
                `↺ rolled back: the target is as it was (${terminalText(JSON.stringify(rollback ?? {}))})\n`,
              ),
            );
        }
        if (op.status !== 'SUCCEEDED') process.exitCode = 1;
      },
    );

  const operations = program.commands.find((c) => c.name() === 'operations') ?? program.command('operations');
  operations
    .command('list')
    .description('operations, newest first')
    .option('--kind <kind>', 'capture, clone, ...')
    .option('--status <status>', 'RUNNING, SUCCEEDED, FAILED, ROLLED_BACK, ...')
    .option('--host <host>', 'the host (for a clone: its source)')
    .option('--limit <n>', 'at most this many', Number, 50)
    .action(async (o: { kind?: string; status?: string; host?: string; limit: number }, cmd: Command) => {
      const { api } = client(cmd);
      const query: Record<string, string | number> = { limit: o.limit };
      for (const k of ['kind', 'status', 'host'] as const) if (o[k]) query[k] = o[k] as string;
      const res = await api.request<z.output<typeof OperationList>>('GET', '/operations', { query });
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(
        `${table(
          ['ID', 'KIND', 'HOST', 'STATUS', '%', 'CREATED', 'ERROR'],
          res.body.items.map((op) => [
            op.id,
            op.kind,
            op.host,
            op.status,
            String(op.percent),
            op.createdAt,
            op.error?.message.slice(0, 60) ?? '',
          ]),
        )}\n`,
      );
    });
  operations
    .command('cancel')
    .description('ask a running operation to stop: a clone rolls back and ends ROLLED_BACK')
    .argument('<id>')
    .option('--wait', 'follow it until it ends')
    .action(async (id: string, o: { wait?: boolean }, cmd: Command) => {
      const { api } = client(cmd);
      const json = structured(cmd);
      const asked = (await api.request<Operation>('POST', `/operations/${encodeURIComponent(id)}/cancel`))
        .body;
      const op = o.wait ? await follow(api, asked, json) : asked;
      if (json) emit(cmd, op);
      else if (!o.wait) printOperation(op);
    });

  const pools = program.command('pools').description('bare-metal pools: machines clones take and give back');
  pools
    .command('add')
    .description('add a registered host to a pool, free')
    .argument('<pool>')
    .argument('<host>', 'a registered host (persona hosts add / persona capture)')
    .option('--machine <name>', "the machine's name in the pool (default: the host's)")
    .action(async (pool: string, host: string, o: { machine?: string }, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<Machine>('POST', `/pools/${encodeURIComponent(pool)}/machines`, {
        body: { host, ...(o.machine ? { machine: o.machine } : {}) } satisfies z.input<
          typeof AddMachineRequest
        >,
      });
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(
        `${pc.green('+')} ${terminalText(String(res.body.machine))} in ${terminalText(pool)}\n`,
      );
    });
  pools
    .command('list')
    .description('the machines of a pool')
    .argument('<pool>')
    .action(async (pool: string, _o, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<z.output<typeof MachineList>>(
        'GET',
        `/pools/${encodeURIComponent(pool)}/machines`,
      );
      if (structured(cmd)) return emit(cmd, res.body);
      process.stdout.write(
        `${table(
          ['MACHINE', 'HOST', 'ADDRESS', 'STATE', 'HELD BY'],
          res.body.items.map((m) => [m.machine, m.host ?? '', m.address, m.state, m.holder ?? '']),
        )}\n`,
      );
    });
}
