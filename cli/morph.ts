// `persona morph`: which target profile a host is nearest (workload detection, with the
// evidence), and morphing it there through POST /hosts/{host}/morph, followed step by step.
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import type * as z from 'zod';
import type { MorphStartRequest } from '../core/api/schemas.js';
import type { Recommendation } from '../core/morph/similarity.js';
import type { Operation } from '../core/operation/schema.js';
import { follow, printOperation } from './capture.js';
import type { PersonaClient } from './client.js';
import { pc, structured } from './output.js';
import { emit, table, terminalText } from './render.js';

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
}
