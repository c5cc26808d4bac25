// `persona morph`: which target profile a host is nearest (workload detection, with the
// evidence), morphing it there through POST /hosts/{host}/morph, followed step by step, and the
// morph policies that start morphs on their own (`persona morph policies`).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type * as z from 'zod';
import type {
  MorphPolicyList,
  MorphPolicyResponse,
  MorphPolicyWriteResponse,
  MorphStartRequest,
} from '../core/api/schemas.js';
import { NotFoundError } from '../core/errors.js';
import { validateMorphPolicy } from '../core/morph/policy.js';
import type { Recommendation } from '../core/morph/similarity.js';
import type { Operation } from '../core/operation/schema.js';
import { parseDocumentText } from '../core/profile/io.js';
import { follow, printOperation } from './capture.js';
import type { PersonaClient } from './client.js';
import { pc, structured } from './output.js';
import { ago, emit, table, terminalText, yamlText } from './render.js';

type ClientOf = (cmd: Command) => { api: PersonaClient };

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

const seconds = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 840) throw new Error('expected whole seconds from 0 to 840');
  return n;
};

export function registerMorphCommands(program: Command, client: ClientOf): void {
  const morph = program
    .command('morph')
    .description('move a host toward a target profile, watch it, and revert it when it gets worse');

  morph
    .command('recommend')
    .description('the target profile nearest the host, how alike, and the traits that pulled it there')
    .argument('<host>')
    .action(async (host: string, _o: unknown, cmd: Command) => {
      const { api } = client(cmd);
      const rec = (
        await api.request<Recommendation>('GET', `/hosts/${encodeURIComponent(host)}/recommendation`)
      ).body;
      if (structured(cmd)) return emit(cmd, rec);
      out(
        rec.recommended === null
          ? `${terminalText(host)}: no target is alike enough (nearest at ${rec.similarity})`
          : `${terminalText(host)} → ${pc.bold(terminalText(rec.recommended))}  similarity ${rec.similarity}, ${rec.margin} ahead of the next`,
      );
      out(
        table(
          ['target', 'similarity'],
          rec.ranked.map((r) => [terminalText(r.target), String(r.similarity)]),
        ),
      );
      out(
        table(
          ['pulled by', 'host', 'target', 'contribution'],
          rec.evidence.pulledBy.map((e) => [
            e.trait,
            String(e.host),
            String(e.target),
            String(e.contribution),
          ]),
        ),
      );
      if (rec.evidence.lacking.length > 0)
        out(
          `lacking: ${rec.evidence.lacking.map((e) => `${e.trait} (${e.host} of ${e.target})`).join(', ')}`,
        );
    });

  morph
    .command('start')
    .description('morph a host to a target (or the recommended one) and follow it until it ends')
    .argument('<host>')
    .requiredOption('-t, --target <name>', 'a target profile, or `recommended`')
    .option('--watch-seconds <s>', "how long the watch probes after the apply (over the target's)", seconds)
    .option('--idempotency-key <key>', 'names the morph: a retry finds the morph it started')
    .option('--no-wait', 'print the operation and return')
    .action(
      async (
        host: string,
        o: { target: string; watchSeconds?: number; idempotencyKey?: string; wait: boolean },
        cmd: Command,
      ) => {
        const { api } = client(cmd);
        const json = structured(cmd);
        const body: z.input<typeof MorphStartRequest> = {
          target: o.target,
          ...(o.watchSeconds === undefined ? {} : { watch: { periodSeconds: o.watchSeconds } }),
        };
        const started = (
          await api.request<Operation>('POST', `/hosts/${encodeURIComponent(host)}/morph`, {
            body,
            headers: { 'idempotency-key': o.idempotencyKey ?? randomUUID() },
          })
        ).body;
        const op = o.wait ? await follow(api, started, json) : started;
        if (json) emit(cmd, op);
        else printOperation(op);
        if (op.status === 'FAILED' || op.status === 'ROLLED_BACK') process.exitCode = 1;
      },
    );

  registerPolicyCommands(morph, client);
}

const policyPath = (name: string) => `/morph-policies/${encodeURIComponent(name)}`;

/** A policy file, YAML or JSON, checked here with its lines before anything is sent. */
function readPolicyFile(file: string) {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (cause) {
    throw new NotFoundError(`cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, file, {
      cause,
    });
  }
  const { value, locate } = parseDocumentText(bytes, {
    source: file,
    maxBytes: 64 * 1024,
    kind: 'a morph policy document',
  });
  return validateMorphPolicy(value, { source: file, locate });
}

function registerPolicyCommands(morph: Command, client: ClientOf): void {
  const policies = morph
    .command('policies')
    .description('morph policies: when a morph of the hosts they select starts on its own');

  policies
    .command('apply')
    .description('create or replace a morph policy from a file (YAML or JSON)')
    .requiredOption('-f, --file <file>', 'a morph policy document (kind MorphPolicy)')
    .action(async (o: { file: string }, cmd: Command) => {
      const policy = readPolicyFile(o.file);
      const { api } = client(cmd);
      const res = await api.request<z.output<typeof MorphPolicyWriteResponse>>(
        'PUT',
        policyPath(policy.metadata.name),
        { body: policy },
      );
      if (structured(cmd)) return emit(cmd, res.body);
      const shown = terminalText(policy.metadata.name);
      if (res.body.created) out(`${pc.green('+')} ${shown} created`);
      else if (res.body.changed) out(`${pc.yellow('~')} ${shown} replaced (revision ${res.body.revision})`);
      else out(`${pc.dim('=')} ${shown} unchanged`);
    });

  policies
    .command('list')
    .description('list morph policies')
    .action(async (_o: unknown, cmd: Command) => {
      const { api } = client(cmd);
      const items: z.output<typeof MorphPolicyList>['items'] = [];
      let cursor: string | undefined;
      do {
        const page = await api.request<z.output<typeof MorphPolicyList>>('GET', '/morph-policies', {
          query: { cursor, limit: 100 },
        });
        items.push(...page.body.items);
        cursor = page.body.nextCursor;
      } while (cursor !== undefined);
      if (structured(cmd)) return emit(cmd, { items });
      if (items.length === 0)
        return out(pc.dim('no morph policies yet: persona morph policies apply -f FILE'));
      out(
        table(
          ['NAME', 'TARGET', 'REVISION', 'UPDATED'],
          items.map((p) => [
            terminalText(p.name),
            terminalText(p.target),
            String(p.revision),
            ago(p.updatedAt),
          ]),
        ),
      );
    });

  policies
    .command('get')
    .description('print a morph policy, as `apply -f` takes it back')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { api } = client(cmd);
      const res = await api.request<z.output<typeof MorphPolicyResponse>>('GET', policyPath(name));
      if (structured(cmd)) return emit(cmd, res.body.policy);
      out(
        terminalText(
          `# ${res.body.name} revision ${res.body.revision} (${res.body.hash}, ${res.body.updatedAt})`,
        ),
      );
      process.stdout.write(yamlText(res.body.policy));
    });

  policies
    .command('delete')
    .description('delete a morph policy (a morph it started runs on)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { api } = client(cmd);
      await api.request('DELETE', policyPath(name));
      if (!structured(cmd)) out(`${pc.red('-')} ${terminalText(name)} deleted`);
    });
}
