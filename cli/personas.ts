// `persona personas` (apply, list, get, versions, delete, activate) and `persona hosts persona`:
// personas as files people keep beside their infrastructure, and why each host has the persona
// it has. Files are checked here first, with their lines, before anything is sent.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import type {
  ActivateRequest,
  ActivationResponse,
  HostPersonaResponse,
  PersonaList,
  PersonaVersionList,
  PersonaWriteResponse,
  VersionedPersonaResponse,
} from '../core/api/schemas.js';
import { InvalidInputError, isPersonaError, NotFoundError } from '../core/errors.js';
import type { Operation } from '../core/operation/schema.js';
import { type PersonaDocument, parsePersonaFile } from '../core/persona/io.js';
import type { Persona } from '../core/persona/schema.js';
import { formatIssues } from '../core/profile/io.js';
import { follow } from './capture.js';
import type { PersonaClient } from './client.js';
import { ApiError, EXIT, exitCodeOf } from './errors.js';
import { pc, structured } from './output.js';
import { ago, emit, table, terminalText, yamlText } from './render.js';

type ClientOf = (cmd: Command) => { api: PersonaClient };

type PersonaVersionRecord = z.output<typeof PersonaVersionList>['items'][number];
type PersonaHeadRecord = z.output<typeof PersonaList>['items'][number];
type WriteBody = z.output<typeof PersonaWriteResponse>;
type HostPersonaBody = z.output<typeof HostPersonaResponse>;
type DecisionBody = NonNullable<HostPersonaBody['why']>;

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};
const err = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const path = (name: string) => `/personas/${encodeURIComponent(name)}`;

const positiveInt = (label: string) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError(`${label} must be a whole number ≥ 1`);
  return Number(value);
};

function readPersonaFile(file: string): PersonaDocument[] {
  // Bytes, not text: the parser refuses what is not UTF-8 instead of reading U+FFFD.
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (cause) {
    throw new NotFoundError(`cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, file, {
      cause,
    });
  }
  return parsePersonaFile(bytes, { source: file });
}

/** Creates the persona, or writes its next version on top of the latest. */
async function applyOne(api: PersonaClient, persona: Persona): Promise<WriteBody> {
  const name = persona.metadata.name;
  const head = await api.request<z.output<typeof VersionedPersonaResponse>>('GET', path(name), {
    allow: [404],
  });
  if (head.status === 404) return (await api.request<WriteBody>('POST', '/personas', { body: persona })).body;
  return (
    await api.request<WriteBody>('PUT', path(name), {
      body: persona,
      headers: { 'if-match': `"${head.body.version.version}"` },
    })
  ).body;
}

async function allPages<T>(api: PersonaClient, route: string, limit: number | undefined) {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.request<{ items: T[]; nextCursor?: string }>('GET', route, {
      query: { cursor, limit: limit === undefined ? 100 : Math.min(100, limit - items.length) },
    });
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  return { items, more: cursor !== undefined };
}

const reasonLine = (r: DecisionBody['reasons'][number]) => {
  const values =
    r.values === undefined
      ? ''
      : ` (${Object.entries(r.values)
          .map(([k, v]) => `${k}=${v === null ? 'none' : String(v)}`)
          .join(', ')})`;
  return `${r.holds.padEnd(7)} ${r.path || '/'}  ${r.detail}${values}`;
};

export function registerPersonaCommands(program: Command, client: ClientOf): void {
  const personas = program
    .command('personas')
    .description('personas: operational parameters and the criteria under which hosts take them on');

  personas
    .command('apply')
    .description('create personas, or write their next versions, from a file of one or more (YAML or JSON)')
    .requiredOption('-f, --file <file>', 'persona file; several documents separated by ---')
    .action(async (o: { file: string }, cmd: Command) => {
      const documents = readPersonaFile(o.file);
      const { api } = client(cmd);
      const json = structured(cmd);
      const results: unknown[] = [];
      let failed: unknown;
      for (const { persona } of documents) {
        const shown = terminalText(persona.metadata.name);
        try {
          const res = await applyOne(api, persona);
          results.push({ name: persona.metadata.name, ...res });
          if (json) continue;
          const v = res.version.version;
          if (!res.created) out(`${pc.dim('=')} ${shown} unchanged at version ${v}`);
          else if (v === 1) out(`${pc.green('+')} ${shown} created at version 1`);
          else out(`${pc.yellow('~')} ${shown} version ${v} written (was ${v - 1})`);
          for (const w of res.warnings)
            err(`  ${pc.yellow('warning')} ${terminalText(`${w.path}: ${w.message}`)}`);
        } catch (e) {
          // The others are still applied: one persona refused does not hold back the rest.
          failed ??= e;
          const message = e instanceof Error ? e.message : String(e);
          results.push({ name: persona.metadata.name, error: message });
          if (json) continue;
          err(`${pc.red('✗')} ${shown}: ${terminalText(message)}`);
          if (e instanceof ApiError)
            for (const line of formatIssues(e.problem.issues ?? [])) err(`  ${terminalText(line)}`);
        }
      }
      if (json) emit(cmd, results);
      if (failed !== undefined) process.exitCode = exitCodeOf(failed);
    });

  personas
    .command('validate')
    .description('check persona files (YAML or JSON) without contacting the API')
    .argument('<files...>', 'persona files')
    .action((files: string[], _o, cmd: Command) => {
      const results = files.map((file) => {
        try {
          const documents = readPersonaFile(file);
          return {
            file,
            valid: true,
            personas: documents.map((d) => ({ name: d.persona.metadata.name, line: d.line })),
          };
        } catch (e) {
          if (e instanceof InvalidInputError)
            return { file, valid: false, message: e.message, issues: e.issues };
          if (isPersonaError(e))
            return { file, valid: false, message: e.message, issues: [{ path: '', message: e.message }] };
          throw e;
        }
      });
      if (structured(cmd)) emit(cmd, results);
      else {
        for (const r of results) {
          if (r.valid && 'personas' in r) {
            for (const p of r.personas ?? [])
              out(`${pc.green('✓')} ${terminalText(`${r.file}:${p.line}`)}: persona ${terminalText(p.name)}`);
          } else {
            err(`${pc.red('✗')} ${terminalText(r.file)}: ${terminalText(r.message ?? 'not valid')}`);
            for (const line of formatIssues(r.issues ?? [], r.file)) err(`  ${terminalText(line)}`);
          }
        }
      }
      if (results.some((r) => !r.valid)) process.exitCode = EXIT.INVALID;
    });

  personas
    .command('list')
    .description('list personas')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'))
    .action(async (o: { limit?: number }, cmd: Command) => {
      const { api } = client(cmd);
      const { items, more } = await allPages<PersonaHeadRecord>(api, '/personas', o.limit);
      if (structured(cmd)) return emit(cmd, { items });
      if (items.length === 0) return out(pc.dim('no personas yet: persona personas apply -f FILE'));
      out(
        table(
          ['NAME', 'LATEST', 'PRIORITY', 'DEFAULT', 'MODE', 'UPDATED', 'DESCRIPTION'],
          items.map((h) => [
            h.name,
            String(h.latest),
            String(h.priority),
            h.default ? 'yes' : '',
            h.mode,
            ago(h.updatedAt),
            h.description ?? '',
          ]),
        ),
      );
      if (more) out(pc.dim('(more: raise --limit)'));
    });

  personas
    .command('get')
    .description('print a persona: the latest version, or the one given')
    .argument('<name>')
    // A positional version, as `profiles get` takes it: the program's own --version would
    // answer an option of that name wherever it stood.
    .argument('[version]', 'a specific version', positiveInt('version'))
    .action(async (name: string, version: number | undefined, _o, cmd: Command) => {
      const { api } = client(cmd);
      const route = version === undefined ? path(name) : `${path(name)}/versions/${version}`;
      const res = await api.request<z.output<typeof VersionedPersonaResponse>>('GET', route);
      // The document itself, as `personas apply -f` takes it back; its version record is in `versions`.
      if (structured(cmd)) return emit(cmd, res.body.persona);
      const v = res.body.version;
      out(terminalText(`# ${v.name} version ${v.version} (${v.hash}, ${v.createdAt})`));
      process.stdout.write(yamlText(res.body.persona));
    });

  personas
    .command('versions')
    .description('list the versions of a persona, newest first')
    .argument('<name>')
    .option('--limit <n>', 'at most this many', positiveInt('--limit'))
    .action(async (name: string, o: { limit?: number }, cmd: Command) => {
      const { api } = client(cmd);
      const { items, more } = await allPages<PersonaVersionRecord>(api, `${path(name)}/versions`, o.limit);
      if (structured(cmd)) return emit(cmd, { items });
      out(
        table(
          ['VERSION', 'CREATED', 'HASH', 'BYTES', 'DESCRIPTION'],
          items.map((v) => [
            String(v.version),
            v.createdAt,
            v.hash.slice('sha256:'.length, 'sha256:'.length + 12),
            String(v.sizeBytes),
            v.description ?? '',
          ]),
        ),
      );
      if (more) out(pc.dim('(more: raise --limit)'));
    });

  personas
    .command('delete')
    .description('delete a persona and all its versions (refused while a host has it)')
    .argument('<name>')
    .option(
      '--expected-version <n>',
      'refuse unless the latest version is this one',
      positiveInt('--expected-version'),
    )
    .action(async (name: string, o: { expectedVersion?: number }, cmd: Command) => {
      const { api } = client(cmd);
      await api.request('DELETE', path(name), {
        ...(o.expectedVersion === undefined ? {} : { headers: { 'if-match': `"${o.expectedVersion}"` } }),
      });
      if (structured(cmd)) return emit(cmd, { name, deleted: true });
      out(`${pc.red('-')} ${terminalText(name)} deleted`);
    });

  personas
    .command('activate')
    .description("put a host in a persona by hand, until the next window edge of the host's personas")
    .argument('<name>')
    .requiredOption('--host <host>', 'a registered host the persona selects')
    .option('--until <time>', 'when the activation ends (ISO 8601), instead of the next window edge')
    .option('--idempotency-key <key>', 'names the switch: a retry with the same key finds it')
    .option('--wait', 'follow the switch until it ends')
    .action(
      async (
        name: string,
        o: { host: string; until?: string; idempotencyKey?: string; wait?: boolean },
        cmd: Command,
      ) => {
        const { api } = client(cmd);
        const json = structured(cmd);
        const res = await api.request<z.output<typeof ActivationResponse>>('POST', `${path(name)}/activate`, {
          body: {
            host: o.host,
            ...(o.until === undefined ? {} : { until: o.until }),
          } satisfies z.input<typeof ActivateRequest>,
          headers: { 'idempotency-key': o.idempotencyKey ?? randomUUID() },
        });
        const a = res.body;
        if (!json) {
          const until = a.manual.until === null ? 'until changed' : `until ${a.manual.until}`;
          out(
            `${pc.green('→')} ${terminalText(o.host)} takes ${terminalText(`${a.persona.name} v${a.persona.version}`)} ${until}`,
          );
          out(
            pc.dim(
              `switch ${terminalText(a.operationId)}: persona operations show ${terminalText(a.operationId)}`,
            ),
          );
        }
        if (o.wait) {
          const first = await api.request<Operation>(
            'GET',
            `/operations/${encodeURIComponent(a.operationId)}`,
          );
          const op = await follow(api, first.body, json);
          if (json) emit(cmd, { activation: a, operation: op });
          if (op.status !== 'SUCCEEDED') process.exitCode = 1;
        } else if (json) emit(cmd, a);
      },
    );

  const hosts = program.commands.find((c) => c.name() === 'hosts') ?? program.command('hosts');
  hosts
    .command('persona')
    .description('the persona a host has, since when, why, and the decisions that led there')
    .argument('<host>')
    .option('--limit <n>', 'decisions of history to show (default 10)', positiveInt('--limit'))
    .action(async (host: string, o: { limit?: number }, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<HostPersonaBody>('GET', `/hosts/${encodeURIComponent(host)}/persona`, {
        query: { limit: o.limit ?? 10 },
      });
      const b = res.body;
      if (structured(cmd)) return emit(cmd, b);
      const current =
        b.current === null ? 'its own parameters (no persona)' : `${b.current} v${b.currentVersion ?? '?'}`;
      out(terminalText(`${b.host}: ${current}${b.since ? ` since ${b.since}` : ''}`));
      if (b.switching) {
        const has = b.applied ? `${b.applied.persona} v${b.applied.version}` : 'its own parameters';
        out(terminalText(`switching: the host still has ${has} until the switch completes`));
      }
      if (b.manual) {
        const until = b.manual.until === null ? 'until changed' : `until ${b.manual.until}`;
        out(
          terminalText(
            `manual: ${b.manual.persona ?? 'its own parameters'} ${until} (activated ${b.manual.at})`,
          ),
        );
      }
      if (b.why) {
        out(
          terminalText(
            `why: ${b.why.summary} (${b.why.action}, ${b.why.at}${b.why.mode === 'report' ? ', report only' : ''})`,
          ),
        );
        for (const r of b.why.reasons) out(`  ${terminalText(reasonLine(r))}`);
      }
      if (b.latest) out(terminalText(`latest: ${b.latest.summary} (${b.latest.action}, ${b.latest.at})`));
      if (b.history.items.length === 0) return out(pc.dim('no decisions recorded yet'));
      out('');
      out(
        table(
          ['AT', 'ACTION', 'FROM', 'TO', 'MODE', 'SUMMARY'],
          b.history.items.map((d) => [d.at, d.action, d.from ?? '-', d.to ?? '-', d.mode, d.summary]),
        ),
      );
      if (b.history.nextCursor) out(pc.dim('(older decisions: raise --limit)'));
    });
}
