// `persona validate` (offline) and `persona profiles …`: versioned profiles through the API.
import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import type {
  ProfileList,
  VersionedProfileResponse,
  VersionList,
  WriteResponse,
} from '../core/api/schemas.js';
import type { Delta } from '../core/delta/changes.js';
import { InvalidInputError, type Issue, isPersonaError, NotFoundError } from '../core/errors.js';
import { formatIssues, parseProfile } from '../core/profile/io.js';
import type { Profile } from '../core/profile/schema.js';
import type { PersonaClient } from './client.js';
import { ApiError, EXIT } from './errors.js';
import { pc, structured } from './output.js';
import { ago, emit, renderDelta, table, terminalText, yamlText } from './render.js';

type ClientOf = (cmd: Command) => { api: PersonaClient };

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

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

/** Every page of a list route, or as many items as `limit` asks for. */
export async function allPages<T>(
  api: PersonaClient,
  path: string,
  limit: number | undefined,
): Promise<{ items: T[]; more: boolean }> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.request<{ items: T[]; nextCursor?: string | undefined }>('GET', path, {
      query: { cursor, limit: limit === undefined ? 100 : Math.min(100, limit - items.length) },
    });
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  return { items, more: cursor !== undefined };
}

type ProfileHead = z.output<typeof ProfileList>['items'][number];
type ProfileVersion = z.output<typeof VersionList>['items'][number];

export function registerProfileCommands(program: Command, client: ClientOf): void {
  program
    .command('validate')
    .description('check profile files (JSON or YAML) without contacting the API')
    .argument('<files...>', 'profile files')
    .action((files: string[], _opts, cmd: Command) => {
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
      if (structured(cmd)) emit(cmd, results);
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
      const { api } = client(cmd);
      const { items, more } = await allPages<ProfileHead>(api, '/profiles', o.limit);
      if (structured(cmd)) return emit(cmd, { items });
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
    .description(
      'print a profile: the latest version, or the one given (-o json|yaml: the profile document alone)',
    )
    .argument('<name>')
    .argument('[version]', 'a specific version', positiveInt('version'))
    .action(async (name: string, version: number | undefined, _o, cmd: Command) => {
      const { api } = client(cmd);
      const base = `/profiles/${encodeURIComponent(name)}`;
      const path = version === undefined ? base : `${base}/versions/${version}`;
      const res = await api.request<z.output<typeof VersionedProfileResponse>>('GET', path);
      // The document itself, as `profiles apply -f` takes it back; its version record is in `history`.
      if (structured(cmd)) return emit(cmd, res.body.profile);
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
      const { api } = client(cmd);
      const name = profile.metadata.name;
      let expected = o.expectedVersion;
      if (expected === undefined) {
        try {
          const head = await api.request<z.output<typeof VersionedProfileResponse>>(
            'GET',
            `/profiles/${encodeURIComponent(name)}`,
          );
          expected = head.body.version.version;
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
          expected = 0;
        }
      }
      type Written = z.output<typeof WriteResponse>;
      const res =
        expected === 0
          ? await api.request<Written>('POST', '/profiles', { body: profile })
          : await api.request<Written>('PUT', `/profiles/${encodeURIComponent(name)}`, {
              body: profile,
              headers: { 'if-match': `"${expected}"` },
            });
      if (structured(cmd)) return emit(cmd, res.body);
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
      const { api } = client(cmd);
      const { items, more } = await allPages<ProfileVersion>(
        api,
        `/profiles/${encodeURIComponent(name)}/versions`,
        o.limit,
      );
      if (structured(cmd)) return emit(cmd, { items });
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
      const { api } = client(cmd);
      // The diff route answers core/delta's Delta schema (core/api/schemas.ts has no copy of its own).
      const res = await api.request<z.output<typeof Delta>>(
        'GET',
        `/profiles/${encodeURIComponent(name)}/diff`,
        {
          query: { from: o.from, to: o.to },
        },
      );
      if (structured(cmd)) return emit(cmd, res.body);
      out(renderDelta(res.body));
    });
}
