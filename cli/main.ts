// `persona`: the command line. Talks to the API (the embedded runtime by default, or a
// deployed stage with --endpoint); `validate` works offline.
//
// Start-up is kept to what the command asked for needs: this module loads commander and the
// output conventions only, and the module that defines the command given is imported when it
// is known (the others are listed by name and description, for help and suggestions). So
// `persona --version` loads neither the AWS SDK nor ssh2, and `persona validate` only the
// profile parser.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS, PersonaClient } from './client.js';
import { ApiError, EXIT, exitCodeOf } from './errors.js';
import { colourWanted, FORMATS, pc, useColour } from './output.js';
import { isAwsHost } from './region.js';

const DEFAULT_ENDPOINT = 'http://127.0.0.1:8170';

interface GlobalOptions {
  endpoint: string;
  sigv4?: boolean;
  region?: string;
  timeout: number;
  retries: number;
}

export type ClientOf = (cmd: Command) => { api: PersonaClient };
type Registrar = (program: Command, client: ClientOf) => void;

// Each command's module, and what it registers besides (some define several top-level
// commands); `hosts` and `operations` gather subcommands from two modules, in this order.
const profilesModule = async () => (await import('./profiles.js')).registerProfileCommands;
const captureModule = async () => (await import('./capture.js')).registerCaptureCommands;
const cloneModule = async () => (await import('./clone.js')).registerCloneCommands;
const personasModule = async () => (await import('./personas.js')).registerPersonaCommands;
const agentModule = async () => (await import('./agent.js')).registerAgentCommands;
const morphModule = async () => (await import('./morph.js')).registerMorphCommands;
const snapshotModule = async () => {
  const { registerSnapshotCommands } = await import('./snapshot.js');
  return (program: Command) => registerSnapshotCommands(program);
};

export const COMMANDS: readonly {
  readonly name: string;
  readonly description: string;
  readonly modules: readonly (() => Promise<Registrar>)[];
}[] = [
  {
    name: 'validate',
    description: 'check profile files (JSON or YAML) without contacting the API',
    modules: [profilesModule],
  },
  { name: 'profiles', description: 'manage versioned profiles', modules: [profilesModule] },
  {
    name: 'snapshot',
    description: 'deduplicated, encrypted snapshots of file trees',
    modules: [snapshotModule],
  },
  {
    name: 'capture',
    description: "capture a host's complete persona: a Profile version and a snapshot of its configuration",
    modules: [captureModule],
  },
  { name: 'hosts', description: 'registered hosts', modules: [captureModule, personasModule] },
  {
    name: 'operations',
    description: 'operations: captures and other workflows',
    modules: [captureModule, cloneModule],
  },
  {
    name: 'plan',
    description: 'what a clone would change on a target, resolved and checked, without changing anything',
    modules: [cloneModule],
  },
  {
    name: 'clone',
    description:
      'reproduce a Profile on a target, prove it behaves like its source, or leave the target as it was',
    modules: [cloneModule],
  },
  {
    name: 'pools',
    description: 'bare-metal pools: machines clones take and give back',
    modules: [cloneModule],
  },
  {
    name: 'personas',
    description: 'personas: operational parameters and the criteria under which hosts take them on',
    modules: [personasModule],
  },
  {
    name: 'agent',
    description: 'the persona-agent on a host: its metrics and host-local persona parameters',
    modules: [agentModule],
  },
  {
    name: 'morph',
    description: 'move a host toward a target profile, watch it, and revert it when it gets worse',
    modules: [morphModule],
  },
];

/** The package's version, from the package.json above this file (cli/ or cli/dist/). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 3; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'persona' && pkg.version) return pkg.version;
    } catch {
      // not here: one folder up
    }
  }
  return 'unknown';
}

const seconds = (value: string) => {
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0)
    throw new InvalidArgumentError('--timeout must be a number of seconds > 0');
  return Number(value);
};
const retries = (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) > 10)
    throw new InvalidArgumentError('--retries must be a whole number, 0 to 10');
  return Number(value);
};

// Global options that take a value: skipped when looking for the command's name.
const VALUED = new Set(['--endpoint', '-o', '--output', '--region', '--timeout', '--retries']);

/** The top-level command named on the command line (`help X` names X), if any. */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return argv[i + 1];
    if (arg.startsWith('-')) {
      if (VALUED.has(arg)) i++;
      continue;
    }
    return arg === 'help' ? (argv.slice(i + 1).find((a) => !a.startsWith('-')) ?? arg) : arg;
  }
  return undefined;
}

function client(cmd: Command): { api: PersonaClient } {
  const o = cmd.optsWithGlobals<GlobalOptions>();
  const sigv4 = o.sigv4 ?? isAwsHost(new URL(o.endpoint));
  return {
    api: new PersonaClient({
      endpoint: o.endpoint,
      sigv4,
      region: o.region,
      timeoutMs: o.timeout * 1000,
      retries: o.retries,
    }),
  };
}

export function baseProgram(): Command {
  return new Command('persona')
    .description('Capture, version, diff and reproduce the complete personality of a host.')
    .version(packageVersion())
    .addOption(
      new Option('--endpoint <url>', 'Persona API endpoint')
        .env('PERSONA_ENDPOINT')
        .default(DEFAULT_ENDPOINT),
    )
    .addOption(
      new Option('-o, --output <format>', 'print the result as json, yaml, or a table for people')
        .choices(FORMATS)
        .conflicts('json'),
    )
    .option('--json', 'the same as -o json')
    .option('--no-color', 'no colours (also: NO_COLOR, or when output is not a terminal)')
    .option('--sigv4', 'sign requests with your AWS credentials (automatic for *.amazonaws.com)')
    .option(
      '--region <region>',
      "the region to sign for (default: the endpoint's, else AWS_REGION or profile)",
    )
    .addOption(
      new Option('--timeout <seconds>', 'how long one request may wait for its answer')
        .env('PERSONA_TIMEOUT')
        .argParser(seconds)
        .default(DEFAULT_TIMEOUT_MS / 1000),
    )
    .addOption(
      new Option('--retries <n>', 'retries of a throttled or failed request that is safe to repeat')
        .argParser(retries)
        .default(DEFAULT_RETRIES),
    )
    .showHelpAfterError()
    .exitOverride();
}

/** The program with the named command's modules loaded (every module when `all`). */
export async function buildProgram(name: string | undefined, all = false): Promise<Command> {
  const program = baseProgram();
  const loaded = new Set<() => Promise<Registrar>>();
  for (const c of COMMANDS) {
    if (!all && c.name !== name) continue;
    for (const load of c.modules) {
      if (loaded.has(load)) continue;
      // Before any schema is built: zod reads the setting as each schema is made.
      if (loaded.size === 0) await import('./zod-config.js');
      loaded.add(load);
      (await load())(program, client);
    }
  }
  for (const c of COMMANDS)
    if (!program.commands.some((p) => p.name() === c.name))
      program
        .command(c.name)
        .description(c.description)
        .allowUnknownOption()
        .allowExcessArguments()
        .action(() => {
          // Listed for help only: a command given on the command line has its module loaded.
          throw new Error(`persona ${c.name} was not loaded (its name was not found on the command line)`);
        });
  program
    .command('completion')
    .description('print a shell completion script: source <(persona completion bash)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action(async (shell: string) => {
      const { completionScript } = await import('./completion.js');
      process.stdout.write(completionScript(shell, await buildProgram(undefined, true)));
    });
  return program;
}

// Messages quote stored values (names, paths, a server's problem detail): shown through
// terminalText like every other output.
async function report(error: unknown, argv: readonly string[]): Promise<void> {
  const { terminalText } = await import('./render.js');
  const structuredErrors =
    argv.includes('--json') ||
    argv.some((a, i) => /^(-o|--output)$/.test(argv[i - 1] ?? '') && a !== 'table');
  const say = (line: string) => process.stderr.write(`${terminalText(line)}\n`);
  const fail = (message: string) => process.stderr.write(`${pc.red('error')}: ${terminalText(message)}\n`);
  const { formatIssues } = await import('../core/profile/io.js');
  if (error instanceof ApiError) {
    if (structuredErrors) process.stderr.write(`${JSON.stringify(error.document())}\n`);
    else {
      fail(error.message);
      for (const line of formatIssues(error.problem.issues ?? [])) say(`  ${line}`);
    }
    return;
  }
  const { InvalidInputError } = await import('../core/errors.js');
  if (error instanceof InvalidInputError) {
    fail(error.message);
    for (const line of formatIssues(error.issues, error.source)) say(`  ${line}`);
    return;
  }
  fail((error as Error).message ?? String(error));
}

export async function run(argv: readonly string[]): Promise<number> {
  useColour(colourWanted(argv));
  try {
    const program = await buildProgram(commandOf(argv));
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.exitCode === 0
        ? EXIT.OK
        : EXIT.USAGE;
    }
    await report(error, argv);
    return exitCodeOf(error);
  }
}
