// `persona`: the command line. Talks to the API (the embedded runtime by default, or a
// deployed stage with --endpoint); `validate` works offline.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { InvalidInputError, type Issue, isPersonaError, NotFoundError } from '../core/errors.js';
import { formatIssues, parseProfile } from '../core/profile/io.js';
import type { Profile } from '../core/profile/schema.js';
import { registerAgentCommands } from './agent.js';
import { registerCaptureCommands } from './capture.js';
import { PersonaClient } from './client.js';
import { registerCloneCommands } from './clone.js';
import { ApiError, EXIT, exitCodeOf } from './errors.js';
import { registerPersonaCommands } from './personas.js';
import {
  ago,
  jsonText,
  type RenderableChange,
  renderDelta,
  table,
  terminalText,
  yamlText,
} from './render.js';
import { registerSnapshotCommands } from './snapshot.js';

const DEFAULT_ENDPOINT = 'http://127.0.0.1:8170';

interface GlobalOptions {
  endpoint: string;
  json?: boolean;
  sigv4?: boolean;
}

interface VersionRecord {
  name: string;
  version: number;
  hash: string;
  createdAt: string;
  description?: string;
  summary: { packages: number; services: number; files: number; users: number };
}
interface HeadRecord {
  name: string;
  latest: number;
  updatedAt: string;
  description?: string;
}
interface PageBody<T> {
  items: T[];
  nextCursor?: string;
}
interface WriteBody {
  version: VersionRecord;
  created: boolean;
}

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};
const printJson = (v: unknown): void => out(jsonText(v));

const positiveInt = (label: string) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError(`${label} must be a whole number ≥ 1`);
  return Number(value);
};
const nonNegativeInt = (label: string) => (value: string) => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${label} must be a whole number ≥ 0`);
  return Number(value);
};

function readProfileFile(file: string): Profile {
  // Bytes, not text: the parser refuses what is not UTF-8 instead of reading U+FFFD.
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (cause) {
    throw new NotFoundError(`cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, file, {
      cause,
    });
  }
  return parseProfile(text, { source: file });
}

function client(cmd: Command): { api: PersonaClient; opts: GlobalOptions } {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const sigv4 = opts.sigv4 ?? /\.amazonaws\.com(:\d+)?(\/|$)/.test(new URL(opts.endpoint).host);
  return { api: new PersonaClient({ endpoint: opts.endpoint, sigv4 }), opts };
}

async function allPages<T>(
  api: PersonaClient,
  path: string,
  limit: number | undefined,
): Promise<{ items: T[]; more: boolean }> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.request<PageBody<T>>('GET', path, {
      query: { cursor, limit: limit === undefined ? 100 : Math.min(100, limit - items.length) },
    });
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  return { items, more: cursor !== undefined };
}

export function buildProgram(): Command {
  const program = new Command('persona')
    .description('Capture, version, diff and reproduce the complete personality of a host.')
    .version('0.1.0')
    .addOption(
      new Option('--endpoint <url>', 'Persona API endpoint')
        .env('PERSONA_ENDPOINT')
        .default(DEFAULT_ENDPOINT),
    )
    .option('--json', 'print machine-readable JSON')
    .option('--sigv4', 'sign requests with your AWS credentials (automatic for *.amazonaws.com)')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('validate')
    .description('check profile files (JSON or YAML) without contacting the API')
    .argument('<files...>', 'profile files')
    .action((files: string[], _opts, cmd: Command) => {
      const { json } = cmd.optsWithGlobals<GlobalOptions>();
      const results = files.map((file) => {
        try {
          const p = readProfileFile(file);
          return {
            file,
            valid: true,
            name: p.metadata.name,
            summary: {
              packages: p.spec.packages.length,
              services: p.spec.services.length,
              files: p.spec.configuration.files.length,
            },
            issues: [] as readonly Issue[],
          };
        } catch (e) {
          if (e instanceof InvalidInputError)
            return { file, valid: false, issues: e.issues, message: e.message };
          if (isPersonaError(e))
            return { file, valid: false, issues: [{ path: '', message: e.message }], message: e.message };
          throw e;
        }
      });
      if (json) printJson(results);
      else {
        for (const r of results) {
          if (r.valid && 'summary' in r && r.summary) {
            out(
              `${pc.green('✓')} ${terminalText(r.file)}: profile ${terminalText(r.name ?? '')} (${r.summary.packages} packages, ${r.summary.services} services, ${r.summary.files} files)`,
            );
          } else {
            process.stderr.write(`${pc.red('✗')} ${terminalText(r.file)}: not a valid profile\n`);
            for (const line of formatIssues(r.issues, r.file))
              process.stderr.write(`  ${terminalText(line)}\n`);
          }
        }
      }
      if (results.some((r) => !r.valid)) process.exitCode = EXIT.INVALID;
    });

  const profiles = program.command('profiles').description('manage versioned profiles');

  profiles
    .command('list')
    .description('list profiles')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'))
    .action(async (o: { limit?: number }, cmd: Command) => {
      const { api, opts } = client(cmd);
      const { items, more } = await allPages<HeadRecord>(api, '/profiles', o.limit);
      if (opts.json) return printJson({ items });
      if (items.length === 0) return out(pc.dim('no profiles yet: persona profiles apply -f FILE'));
      out(
        table(
          ['NAME', 'LATEST', 'UPDATED', 'DESCRIPTION'],
          items.map((h) => [h.name, String(h.latest), ago(h.updatedAt), h.description ?? '']),
        ),
      );
      if (more) out(pc.dim('(more: raise --limit)'));
    });

  profiles
    .command('get')
    .description('print a profile: the latest version, or the one given')
    .argument('<name>')
    .argument('[version]', 'a specific version', positiveInt('version'))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(async (name: string, version: number | undefined, o: { output: string }, cmd: Command) => {
      const { api, opts } = client(cmd);
      const base = `/profiles/${encodeURIComponent(name)}`;
      const path = version === undefined ? base : `${base}/versions/${version}`;
      const res = await api.request<{ version: VersionRecord; profile: Profile }>('GET', path);
      if (opts.json) return printJson(res.body);
      if (o.output === 'json') return printJson(res.body.profile);
      out(
        terminalText(
          `# ${name} version ${res.body.version.version} (${res.body.version.hash}, ${res.body.version.createdAt})`,
        ),
      );
      process.stdout.write(yamlText(res.body.profile));
    });

  profiles
    .command('apply')
    .description('create a profile, or write its next version, from a file')
    .requiredOption('-f, --file <file>', 'profile file (JSON or YAML)')
    .option(
      '--expected-version <n>',
      'refuse unless the latest version is this one (0: must not exist)',
      nonNegativeInt('--expected-version'),
    )
    .action(async (o: { file: string; expectedVersion?: number }, cmd: Command) => {
      const profile = readProfileFile(o.file);
      const { api, opts } = client(cmd);
      const name = profile.metadata.name;
      let expected = o.expectedVersion;
      if (expected === undefined) {
        try {
          const head = await api.request<{ version: VersionRecord }>(
            'GET',
            `/profiles/${encodeURIComponent(name)}`,
          );
          expected = head.body.version.version;
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
          expected = 0;
        }
      }
      const res =
        expected === 0
          ? await api.request<WriteBody>('POST', '/profiles', { body: profile })
          : await api.request<WriteBody>('PUT', `/profiles/${encodeURIComponent(name)}`, {
              body: profile,
              headers: { 'if-match': `"${expected}"` },
            });
      if (opts.json) return printJson(res.body);
      const v = res.body.version.version;
      const shown = terminalText(name);
      if (!res.body.created) out(`${pc.dim('=')} ${shown} unchanged at version ${v}`);
      else if (v === 1) out(`${pc.green('+')} ${shown} created at version 1`);
      else out(`${pc.yellow('~')} ${shown} version ${v} written (was ${v - 1})`);
    });

  profiles
    .command('history')
    .description('list the versions of a profile, newest first')
    .argument('<name>')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'))
    .action(async (name: string, o: { limit?: number }, cmd: Command) => {
      const { api, opts } = client(cmd);
      const { items, more } = await allPages<VersionRecord>(
        api,
        `/profiles/${encodeURIComponent(name)}/versions`,
        o.limit,
      );
      if (opts.json) return printJson({ items });
      out(
        table(
          ['VERSION', 'CREATED', 'HASH', 'PACKAGES', 'SERVICES', 'FILES', 'DESCRIPTION'],
          items.map((v) => [
            String(v.version),
            v.createdAt,
            v.hash.slice('sha256:'.length, 'sha256:'.length + 12),
            String(v.summary.packages),
            String(v.summary.services),
            String(v.summary.files),
            v.description ?? '',
          ]),
        ),
      );
      if (more) out(pc.dim('(more: raise --limit)'));
    });

  profiles
    .command('diff')
    .description('show the Delta between two versions of a profile')
    .argument('<name>')
    .requiredOption('--from <n>', 'version to start from', positiveInt('--from'))
    .option('--to <n>', 'version to arrive at (default: latest)', positiveInt('--to'))
    .action(async (name: string, o: { from: number; to?: number }, cmd: Command) => {
      const { api, opts } = client(cmd);
      const res = await api.request<{ changes: RenderableChange[] }>(
        'GET',
        `/profiles/${encodeURIComponent(name)}/diff`,
        {
          query: { from: o.from, to: o.to },
        },
      );
      if (opts.json) return printJson(res.body);
      out(renderDelta(res.body));
    });

  registerSnapshotCommands(program);
  registerCaptureCommands(program, client);
  registerCloneCommands(program, client);
  registerPersonaCommands(program, client);
  registerAgentCommands(program, client);
  return program;
}

// Messages quote stored values (names, paths, a server's problem detail): shown through
// terminalText like every other output.
function report(error: unknown): void {
  const json = process.argv.includes('--json');
  const say = (line: string) => process.stderr.write(`${terminalText(line)}\n`);
  const fail = (message: string) => process.stderr.write(`${pc.red('error')}: ${terminalText(message)}\n`);
  if (error instanceof ApiError) {
    if (json) process.stderr.write(`${jsonText(error.problem, 0)}\n`);
    else {
      fail(error.message);
      for (const line of formatIssues(error.problem.issues ?? [])) say(`  ${line}`);
    }
    return;
  }
  if (error instanceof InvalidInputError) {
    fail(error.message);
    for (const line of formatIssues(error.issues, error.source)) say(`  ${line}`);
    return;
  }
  fail((error as Error).message ?? String(error));
}

export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
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
    report(error);
    return exitCodeOf(error);
  }
}
