// A stand-in for AWS Systems Manager Run Command that really acts: an HTTP server speaking the
// SSM JSON protocol (AWS JSON 1.1) on loopback, whose managed nodes are test hosts. SendCommand
// runs AWS-RunShellScript's `commands` on the node as the SSM Agent does (a `_script.sh` in the
// command's orchestration folder, run by `sh` with the agent's bare environment), the invocation
// moves through Pending, InProgress and Success/Failed/TimedOut/Cancelled, GetCommandInvocation
// returns the output cut at the service's inline limits, and with an output bucket the node
// uploads its whole stdout and stderr to the S3-protocol server under SSM's key layout.
//
// SigV4 headers are required (as the service requires them) but not verified. See README.md.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, posix } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

/** What the stand-in needs of a test host (test/hosts/harness.ts). */
export interface SsmNodeHost {
  readonly hostname: string;
  /** The host's root filesystem as the control machine sees it. */
  readonly root: string;
  exec(
    command: string,
    options?: { readonly timeoutMs?: number },
  ): Promise<{ readonly exitCode: number; readonly stdout: string; readonly stderr: string }>;
}

export interface SsmStandInOptions {
  /** The S3-protocol server the nodes upload command output to, with credentials it accepts. */
  readonly s3: {
    readonly endpoint: string;
    readonly region?: string;
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /** Reported as the region of output URLs and in the nodes' `AWS_SSM_REGION_NAME`. Default `local`. */
  readonly region?: string;
  /**
   * How many GetCommandInvocation calls per command answer InvocationDoesNotExist before the
   * invocation is visible: the service is eventually consistent right after SendCommand. Default 1.
   */
  readonly invisiblePolls?: number;
}

/** One command as a node ran it, for assertions. */
export interface SsmExecution {
  readonly commandId: string;
  readonly instanceId: string;
  readonly script: string;
  readonly outputBucket?: string;
  readonly outputPrefix?: string;
  /** Bytes the command wrote to stdout, once it has ended. */
  stdoutBytes?: number;
}

export interface SsmStandIn {
  /** `http://127.0.0.1:<port>`, for `new SSMClient({ endpoint })`. */
  readonly endpoint: string;
  /**
   * Makes `host` the managed node `instanceId` (`i-...` for EC2, `mi-...` for a hybrid node).
   * With `registersAfterPolls`, DescribeInstanceInformation leaves the node out of that many of
   * its answers first, as a booting instance's agent registers a moment after the instance runs.
   */
  addNode(instanceId: string, host: SsmNodeHost, options?: { readonly registersAfterPolls?: number }): void;
  /** The node is no longer managed (its instance terminated): commands to it are InvalidInstanceId. */
  removeNode(instanceId: string): void;
  /** The next `times` calls of `operation` (e.g. `SendCommand`) fail with ThrottlingException. */
  throttle(operation: string, times: number): void;
  /** Whether the nodes' uploads fail, as they do when an instance profile lacks s3:PutObject. */
  failUploads(fail: boolean): void;
  /** Every command the nodes have run, in order. */
  readonly executions: readonly SsmExecution[];
  /** The API calls received, by operation name, in order. */
  readonly calls: readonly string[];
  /** Resolves when no command is running. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

const DOCUMENT = 'AWS-RunShellScript';
const PLUGIN = 'aws:runShellScript';
/** The plugin's folder: its name with the colon removed (the agent's fileutil.BuildS3Path). */
const PLUGIN_FOLDER = 'awsrunShellScript';
/** AWS-RunShellScript has one step; the agent names its folder `<index>.<plugin folder>`. */
const STEP_FOLDER = `0.${PLUGIN_FOLDER}`;
/** GetCommandInvocation: the first 24,000 characters of stdout and 8,000 of stderr. */
const INLINE_STDOUT = 24_000;
const INLINE_STDERR = 8_000;
/** ListCommandInvocations' CommandPlugins[].Output: the first 2,500 characters. */
const PLUGIN_OUTPUT = 2_500;
const STDOUT_CUT = '\n---Output truncated---';
const STDERR_CUT = '\n---Error truncated----';
const DEFAULT_EXECUTION_TIMEOUT = 3600;
const ACCOUNT = '123456789012';
/** systemd's default PATH: the agent's own environment, which the script inherits (no HOME). */
const AGENT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

type Status = 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';

interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  readonly comment: string;
  readonly requested: Date;
  readonly bucket: string;
  readonly prefix: string;
  status: Status;
  details: string;
  responseCode: number;
  started?: Date;
  ended?: Date;
  stdout: string;
  stderr: string;
  polls: number;
  /** Set by CancelCommand or the execution time-out: how the run was stopped. */
  stop?: 'Cancelled' | 'TimedOut';
  kill?: () => Promise<void>;
}

interface Command {
  readonly commandId: string;
  readonly input: SendCommandInput;
  readonly requested: Date;
  readonly invocations: Map<string, Invocation>;
}

interface SendCommandInput {
  readonly DocumentName?: unknown;
  readonly InstanceIds?: unknown;
  readonly Parameters?: Record<string, unknown>;
  readonly TimeoutSeconds?: unknown;
  readonly Comment?: unknown;
  readonly OutputS3BucketName?: unknown;
  readonly OutputS3KeyPrefix?: unknown;
}

/** An error the service answers with: `{"__type": name, "message": ...}` and its status. */
class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export async function startSsmStandIn(options: SsmStandInOptions): Promise<SsmStandIn> {
  const region = options.region ?? 'local';
  const invisiblePolls = options.invisiblePolls ?? 1;
  const s3 = new S3Client({
    endpoint: options.s3.endpoint,
    region: options.s3.region ?? region,
    credentials: options.s3.credentials,
    forcePathStyle: true,
  });
  const nodes = new Map<string, SsmNodeHost>();
  /** DescribeInstanceInformation answers that still leave a node out, by node. */
  const unregistered = new Map<string, number>();
  const commands = new Map<string, Command>();
  const throttles = new Map<string, number>();
  const executions: SsmExecution[] = [];
  const calls: string[] = [];
  const running = new Set<Promise<void>>();
  let uploadsFail = false;

  const outputKey = (inv: Invocation, stream: 'stdout' | 'stderr') =>
    // path.Join semantics, as the agent builds the key: no doubled or trailing slashes.
    posix.join(inv.prefix, inv.commandId, inv.instanceId, PLUGIN_FOLDER, STEP_FOLDER, stream);
  const outputUrl = (inv: Invocation, stream: 'stdout' | 'stderr') =>
    inv.bucket ? `${options.s3.endpoint}/${inv.bucket}/${outputKey(inv, stream)}` : '';

  async function execute(
    inv: Invocation,
    host: SsmNodeHost,
    script: string,
    timeoutSeconds: number,
    execution: SsmExecution,
  ) {
    // The agent's layout on the node: the script and its output side by side in the command's
    // orchestration folder, which is also the working directory.
    const dir = posix.join(
      '/var/lib/amazon/ssm',
      inv.instanceId,
      'document/orchestration',
      inv.commandId,
      PLUGIN_FOLDER,
      STEP_FOLDER,
    );
    const local = join(host.root, dir);
    mkdirSync(local, { recursive: true, mode: 0o700 });
    writeFileSync(join(local, '_script.sh'), script, { mode: 0o700 });
    inv.status = 'InProgress';
    inv.details = 'InProgress';
    inv.started = new Date();
    // Its own session, so that a time-out or a cancel stops every process the script started.
    const env = `env -i PATH=${AGENT_PATH} AWS_SSM_INSTANCE_ID=${inv.instanceId} AWS_SSM_REGION_NAME=${region}`;
    const wrapper = [
      `cd '${dir}' || exit 125`,
      `setsid -w sh -c 'echo $$ > pid; exec ${env} sh -c ./_script.sh' < /dev/null > stdout 2> stderr`,
    ].join('\n');
    inv.kill = async () => {
      await host.exec(`kill -s KILL -- "-$(cat '${dir}/pid')" 2>/dev/null`, { timeoutMs: 30_000 });
    };
    const timer = setTimeout(() => {
      inv.stop ??= 'TimedOut';
      void inv.kill?.();
    }, timeoutSeconds * 1000);
    let exitCode: number;
    try {
      exitCode = (await host.exec(wrapper, { timeoutMs: timeoutSeconds * 1000 + 60_000 })).exitCode;
    } finally {
      clearTimeout(timer);
    }
    const stdout = readFileSync(join(local, 'stdout'));
    const stderr = readFileSync(join(local, 'stderr'));
    execution.stdoutBytes = stdout.length;
    if (inv.bucket) {
      // The node uploads with its own (instance profile) credentials; a failed upload is only
      // logged by the agent, so the command still succeeds and the object is simply absent.
      for (const [stream, body] of [
        ['stdout', stdout],
        ['stderr', stderr],
      ] as const) {
        if (body.length === 0 || uploadsFail) continue;
        await s3.send(new PutObjectCommand({ Bucket: inv.bucket, Key: outputKey(inv, stream), Body: body }));
      }
    }
    inv.stdout = stdout.toString('utf8');
    inv.stderr = stderr.toString('utf8');
    inv.ended = new Date();
    if (inv.stop === 'TimedOut') {
      inv.status = 'TimedOut';
      inv.details = 'ExecutionTimedOut';
      inv.responseCode = exitCode;
    } else if (inv.stop === 'Cancelled') {
      inv.status = 'Cancelled';
      inv.details = 'Cancelled';
      inv.responseCode = -1;
    } else {
      inv.status = exitCode === 0 ? 'Success' : 'Failed';
      inv.details = inv.status;
      inv.responseCode = exitCode;
    }
  }

  function sendCommand(input: SendCommandInput) {
    if (input.DocumentName !== DOCUMENT) {
      if (typeof input.DocumentName !== 'string')
        throw new ServiceError('ValidationException', 'DocumentName is required');
      throw new ServiceError('InvalidDocument', `Document with name ${input.DocumentName} does not exist.`);
    }
    const ids = input.InstanceIds;
    if (
      !Array.isArray(ids) ||
      ids.length === 0 ||
      ids.length > 50 ||
      !ids.every((i) => typeof i === 'string')
    ) {
      throw new ServiceError('InvalidInstanceId', 'InstanceIds must name 1 to 50 managed nodes');
    }
    const missing = ids.filter((id) => !nodes.has(id));
    if (missing.length > 0) {
      throw new ServiceError(
        'InvalidInstanceId',
        `Instances [[${missing.join(', ')}]] not in a valid state for account ${ACCOUNT}`,
      );
    }
    const params = input.Parameters ?? {};
    const lines = params.commands;
    if (!Array.isArray(lines) || lines.length === 0 || !lines.every((l) => typeof l === 'string')) {
      throw new ServiceError(
        'InvalidParameters',
        'Parameter "commands" is required and must be a list of strings.',
      );
    }
    for (const name of Object.keys(params)) {
      if (!['commands', 'executionTimeout', 'workingDirectory'].includes(name)) {
        throw new ServiceError(
          'InvalidParameters',
          `Parameter "${name}" is not defined in document ${DOCUMENT}.`,
        );
      }
    }
    const timeoutText =
      (params.executionTimeout as unknown[] | undefined)?.[0] ?? String(DEFAULT_EXECUTION_TIMEOUT);
    const executionTimeout = Number(timeoutText);
    if (!/^\d+$/.test(String(timeoutText)) || executionTimeout < 1 || executionTimeout > 172_800) {
      throw new ServiceError(
        'InvalidParameters',
        `Parameter "executionTimeout" "${String(timeoutText)}" does not match the allowed pattern ([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800).`,
      );
    }
    const delivery = input.TimeoutSeconds ?? 3600;
    if (typeof delivery !== 'number' || delivery < 30 || delivery > 2_592_000) {
      throw new ServiceError(
        'ValidationException',
        `1 validation error detected: Value '${String(delivery)}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000`,
      );
    }
    const bucket = typeof input.OutputS3BucketName === 'string' ? input.OutputS3BucketName : '';
    const prefix = typeof input.OutputS3KeyPrefix === 'string' ? input.OutputS3KeyPrefix : '';
    const commandId = randomUUID();
    const requested = new Date();
    const command: Command = { commandId, input, requested, invocations: new Map() };
    commands.set(commandId, command);
    const script = (lines as string[]).join('\n');
    for (const instanceId of ids as string[]) {
      const inv: Invocation = {
        commandId,
        instanceId,
        comment: typeof input.Comment === 'string' ? input.Comment : '',
        requested,
        bucket,
        prefix,
        status: 'Pending',
        details: 'Pending',
        responseCode: -1,
        stdout: '',
        stderr: '',
        polls: 0,
      };
      command.invocations.set(instanceId, inv);
      const execution: SsmExecution = {
        commandId,
        instanceId,
        script,
        ...(bucket ? { outputBucket: bucket } : {}),
        ...(prefix ? { outputPrefix: prefix } : {}),
      };
      executions.push(execution);
      const host = nodes.get(instanceId) as SsmNodeHost;
      // The agent picks the command up a moment later: SendCommand answers while it is Pending.
      const run = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => (inv.stop ? undefined : execute(inv, host, script, executionTimeout, execution)))
        .catch((error: unknown) => {
          inv.status = 'Failed';
          inv.details = 'Failed';
          inv.responseCode = 1;
          inv.stderr = `stand-in could not run the command: ${String(error)}`;
          inv.ended = new Date();
        })
        .finally(() => running.delete(run));
      running.add(run);
    }
    return { Command: commandShape(command) };
  }

  function commandShape(command: Command) {
    const { input } = command;
    const invocations = [...command.invocations.values()];
    const done = invocations.filter((i) => i.ended);
    const status = invocations.every((i) => i.status === 'Success')
      ? 'Success'
      : invocations.some((i) => i.status === 'Pending' || i.status === 'InProgress')
        ? invocations.some((i) => i.status === 'InProgress')
          ? 'InProgress'
          : 'Pending'
        : (invocations.find((i) => i.status !== 'Success')?.status ?? 'Failed');
    const delivery = typeof input.TimeoutSeconds === 'number' ? input.TimeoutSeconds : 3600;
    return {
      CommandId: command.commandId,
      DocumentName: DOCUMENT,
      DocumentVersion: '$DEFAULT',
      Comment: typeof input.Comment === 'string' ? input.Comment : '',
      ExpiresAfter: command.requested.getTime() / 1000 + delivery,
      Parameters: input.Parameters ?? {},
      InstanceIds: invocations.map((i) => i.instanceId),
      Targets: [],
      RequestedDateTime: command.requested.getTime() / 1000,
      Status: status,
      StatusDetails: status,
      OutputS3Region: region,
      OutputS3BucketName: typeof input.OutputS3BucketName === 'string' ? input.OutputS3BucketName : '',
      OutputS3KeyPrefix: typeof input.OutputS3KeyPrefix === 'string' ? input.OutputS3KeyPrefix : '',
      MaxConcurrency: '50',
      MaxErrors: '0',
      TargetCount: invocations.length,
      CompletedCount: done.length,
      ErrorCount: done.filter((i) => i.status !== 'Success').length,
      DeliveryTimedOutCount: 0,
      ServiceRole: '',
      NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
      TimeoutSeconds: delivery,
      TriggeredAlarms: [],
    };
  }

  function invocationOf(commandId: unknown, instanceId: unknown): Invocation {
    const inv =
      typeof commandId === 'string' && typeof instanceId === 'string'
        ? commands.get(commandId)?.invocations.get(instanceId)
        : undefined;
    if (!inv) throw new ServiceError('InvocationDoesNotExist', '');
    return inv;
  }

  const finished = (inv: Invocation) => inv.status !== 'Pending' && inv.status !== 'InProgress';
  const elapsed = (inv: Invocation) =>
    inv.started
      ? `PT${(((inv.ended ?? new Date()).getTime() - inv.started.getTime()) / 1000).toFixed(3)}S`
      : '';

  function getCommandInvocation(input: Record<string, unknown>) {
    const inv = invocationOf(input.CommandId, input.InstanceId);
    if (input.PluginName !== undefined && input.PluginName !== PLUGIN) {
      throw new ServiceError(
        'InvalidPluginName',
        `Plugin ${String(input.PluginName)} is not in the document.`,
      );
    }
    if (inv.polls++ < invisiblePolls) throw new ServiceError('InvocationDoesNotExist', '');
    // Output is reported once the plugin has finished, never part-way.
    const done = finished(inv);
    return {
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      Comment: inv.comment,
      DocumentName: DOCUMENT,
      DocumentVersion: '$DEFAULT',
      PluginName: PLUGIN,
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: inv.started?.toISOString() ?? '',
      ExecutionElapsedTime: elapsed(inv),
      ExecutionEndDateTime: inv.ended?.toISOString() ?? '',
      Status: inv.status,
      StatusDetails: inv.details,
      StandardOutputContent: done ? cut(inv.stdout, INLINE_STDOUT, STDOUT_CUT) : '',
      StandardOutputUrl: done ? outputUrl(inv, 'stdout') : '',
      StandardErrorContent: done ? cut(inv.stderr, INLINE_STDERR, STDERR_CUT) : '',
      StandardErrorUrl: done ? outputUrl(inv, 'stderr') : '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  function listCommandInvocations(input: Record<string, unknown>) {
    const selected = [...commands.values()]
      .filter((c) => input.CommandId === undefined || c.commandId === input.CommandId)
      .flatMap((c) => [...c.invocations.values()])
      .filter((i) => input.InstanceId === undefined || i.instanceId === input.InstanceId);
    return {
      CommandInvocations: selected.map((inv) => ({
        CommandId: inv.commandId,
        InstanceId: inv.instanceId,
        InstanceName: nodes.get(inv.instanceId)?.hostname ?? '',
        Comment: inv.comment,
        DocumentName: DOCUMENT,
        DocumentVersion: '$DEFAULT',
        RequestedDateTime: inv.requested.getTime() / 1000,
        Status: inv.status,
        StatusDetails: inv.details,
        TraceOutput: '',
        StandardOutputUrl: finished(inv) ? outputUrl(inv, 'stdout') : '',
        StandardErrorUrl: finished(inv) ? outputUrl(inv, 'stderr') : '',
        ServiceRole: '',
        NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
        CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
        ...(input.Details === true
          ? {
              CommandPlugins: [
                {
                  Name: PLUGIN,
                  Status: inv.status,
                  StatusDetails: inv.details,
                  ResponseCode: inv.responseCode,
                  ...(inv.started ? { ResponseStartDateTime: inv.started.getTime() / 1000 } : {}),
                  ...(inv.ended ? { ResponseFinishDateTime: inv.ended.getTime() / 1000 } : {}),
                  Output: finished(inv) ? pluginOutput(inv.stdout, inv.stderr) : '',
                  StandardOutputUrl: finished(inv) ? outputUrl(inv, 'stdout') : '',
                  StandardErrorUrl: finished(inv) ? outputUrl(inv, 'stderr') : '',
                  OutputS3Region: region,
                  OutputS3BucketName: inv.bucket,
                  OutputS3KeyPrefix: inv.bucket
                    ? posix.join(inv.prefix, inv.commandId, inv.instanceId, PLUGIN_FOLDER)
                    : '',
                },
              ],
            }
          : {}),
      })),
    };
  }

  async function cancelCommand(input: Record<string, unknown>) {
    const command = typeof input.CommandId === 'string' ? commands.get(input.CommandId) : undefined;
    if (!command) throw new ServiceError('InvalidCommandId', '');
    const ids = Array.isArray(input.InstanceIds)
      ? (input.InstanceIds as string[])
      : [...command.invocations.keys()];
    for (const id of ids) {
      const inv = command.invocations.get(id);
      if (!inv || finished(inv)) continue;
      inv.stop = 'Cancelled';
      if (inv.status === 'Pending') {
        inv.status = 'Cancelled';
        inv.details = 'Cancelled';
        inv.ended = new Date();
      } else {
        await inv.kill?.();
      }
    }
    return {};
  }

  function describeInstanceInformation(input: Record<string, unknown>) {
    const wanted = [
      ...((input.InstanceInformationFilterList as { key?: string; valueSet?: string[] }[] | undefined) ?? [])
        .filter((f) => f.key === 'InstanceIds')
        .flatMap((f) => f.valueSet ?? []),
      ...((input.Filters as { Key?: string; Values?: string[] }[] | undefined) ?? [])
        .filter((f) => f.Key === 'InstanceIds')
        .flatMap((f) => f.Values ?? []),
    ];
    const now = Date.now() / 1000;
    const registered = (id: string) => {
      const left = unregistered.get(id) ?? 0;
      if (left <= 0) return true;
      unregistered.set(id, left - 1);
      return false;
    };
    return {
      InstanceInformationList: [...nodes]
        .filter(([id]) => wanted.length === 0 || wanted.includes(id))
        .filter(([id]) => registered(id))
        .map(([id, host]) => ({
          InstanceId: id,
          PingStatus: 'Online',
          LastPingDateTime: now,
          AgentVersion: '3.3.0.0',
          IsLatestVersion: true,
          PlatformType: 'Linux',
          PlatformName: 'Debian GNU/Linux',
          PlatformVersion: '12',
          ResourceType: id.startsWith('mi-') ? 'ManagedInstance' : 'EC2Instance',
          ComputerName: host.hostname,
        })),
    };
  }

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    SendCommand: (input) => sendCommand(input as SendCommandInput),
    GetCommandInvocation: getCommandInvocation,
    ListCommandInvocations: listCommandInvocations,
    CancelCommand: cancelCommand,
    DescribeInstanceInformation: describeInstanceInformation,
  };

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const requestId = randomUUID();
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': requestId,
        ...(status >= 400 ? { 'x-amzn-errortype': (body as { __type: string }).__type } : {}),
      });
      res.end(text);
    };
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      if (req.method !== 'POST' || req.url !== '/') {
        throw new ServiceError('UnknownOperationException', 'only POST / is served', 404);
      }
      const target = String(req.headers['x-amz-target'] ?? '');
      const [service, operation = ''] = target.split('.');
      const run = operations[operation];
      if (service !== 'AmazonSSM' || !run) {
        throw new ServiceError('UnknownOperationException', `unknown operation ${target}`);
      }
      calls.push(operation);
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
        throw new ServiceError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
      }
      const left = throttles.get(operation) ?? 0;
      if (left > 0) {
        throttles.set(operation, left - 1);
        throw new ServiceError('ThrottlingException', 'Rate exceeded');
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new ServiceError('SerializationException', 'the request body is not JSON');
      }
      reply(200, await run(input));
    } catch (error) {
      if (error instanceof ServiceError) reply(error.status, { __type: error.type, message: error.message });
      else reply(500, { __type: 'InternalServerError', message: String(error) });
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    addNode(instanceId, host, options) {
      if (!/^(i-[0-9a-f]{8}([0-9a-f]{9})?|mi-[0-9a-f]{17})$/.test(instanceId)) {
        throw new Error(`${instanceId} is not an EC2 instance id or a managed node id`);
      }
      nodes.set(instanceId, host);
      unregistered.set(instanceId, options?.registersAfterPolls ?? 0);
    },
    removeNode(instanceId) {
      nodes.delete(instanceId);
      unregistered.delete(instanceId);
    },
    throttle(operation, times) {
      throttles.set(operation, times);
    },
    failUploads(fail) {
      uploadsFail = fail;
    },
    executions,
    calls,
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    async stop() {
      for (const command of commands.values()) {
        for (const inv of command.invocations.values())
          if (!finished(inv)) await inv.kill?.().catch(() => {});
      }
      await Promise.all([...running]);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      s3.destroy();
    },
  };
}

/** The service's inline cut: the first `limit` characters, the agent's trailer marking the cut. */
function cut(text: string, limit: number, trailer: string): string {
  return text.length > limit ? `${text.slice(0, limit - trailer.length)}${trailer}` : text;
}

/** ListCommandInvocations' plugin Output: stdout, then stderr under a title, cut at 2,500 characters. */
function pluginOutput(stdout: string, stderr: string): string {
  const text = stderr ? `${stdout}\n----------ERROR-------\n${stderr}` : stdout;
  return cut(text, PLUGIN_OUTPUT, STDOUT_CUT);
}
