// `persona snapshot …`: the snapshot store, worked on directly (a local directory cannot be
// sent through an API function). The store is found through the running embedded runtime,
// or in AWS through PERSONA_BUCKET, PERSONA_SNAPSHOTS_TABLE, PERSONA_LOCKS_TABLE and
// PERSONA_KMS_KEY_ID with the usual AWS credentials.
import { createReadStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { InvalidInputError } from '../core/errors.js';
import { writeTarWithSecrets } from '../core/secret/files.js';
import type { SnapshotRecord } from '../core/snapshot/records.js';
import type { Progress, SnapshotStore } from '../core/snapshot/store.js';
import { tarSource, writeTar } from '../core/snapshot/tar.js';
import { DirectoryTarget, directorySource } from '../core/snapshot/tree.js';
import { connect } from './connect.js';
import { EXIT } from './errors.js';
import { pc, structured } from './output.js';
import { emit, table, terminalText } from './render.js';

/** Opens the snapshot store the environment points at. */
export async function openStore(): Promise<SnapshotStore> {
  return (await connect()).snapshots();
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function bytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** One line, rewritten in place on a terminal; silent otherwise (logs stay clean). */
function progressLine(enabled: boolean): { update: (p: Progress) => void; done: () => void } {
  const tty = enabled && process.stderr.isTTY;
  return {
    update: (p) => {
      if (!tty) return;
      const rate = p.elapsedMs > 0 ? `${bytes((p.bytes / p.elapsedMs) * 1000)}/s` : '';
      const line = `${p.phase}: ${p.files} files, ${bytes(p.bytes)}${p.phase === 'snapshot' ? `, ${bytes(p.newBytes)} new` : ''}, ${rate}`;
      process.stderr.write(`\r\x1b[2K${pc.dim(line)}`);
    },
    done: () => {
      if (tty) process.stderr.write('\r\x1b[2K');
    },
  };
}

const positive = (label: string) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new InvalidArgumentError(`${label} must be a whole number ≥ 1`);
  return Number(v);
};

const profileRef = (v: string) => {
  const m = /^([a-z0-9]([a-z0-9._-]*[a-z0-9])?)@(\d+)$/.exec(v);
  if (!m || Number(m[3]) < 1) throw new InvalidArgumentError('expected NAME@VERSION, e.g. web@3');
  return { name: m[1] as string, version: Number(m[3]) };
};

// Paths come from hosts: control characters in them are shown escaped, never sent to a terminal.
const printable = terminalText;

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

function recordRow(r: SnapshotRecord): string[] {
  return [
    String(r.version),
    r.createdAt,
    String(r.stats.files),
    bytes(r.stats.bytes),
    bytes(r.stats.newBytes),
    bytes(r.stats.storedBytes),
    r.profile ? `${r.profile.name}@${r.profile.version}` : '',
  ];
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command('snapshot').description('deduplicated, encrypted snapshots of file trees');

  snapshot
    .command('create')
    .description('snapshot a directory, or a tar stream with --tar (- for standard input)')
    .argument('[dir]')
    .requiredOption('--host <name>', 'the host the tree belongs to')
    .option('--tar <file>', 'read the tree from a tar archive instead of a directory')
    .option(
      '--allow-empty',
      'with --tar: accept a stream with no entries (refused by default: a failed tar upstream leaves one)',
    )
    .option('--profile <name@version>', 'the profile version this snapshot belongs to', profileRef)
    .option('--rehash', 'read every file, even those the previous snapshot saw unchanged')
    .action(
      async (
        dir: string | undefined,
        o: {
          host: string;
          tar?: string;
          allowEmpty?: boolean;
          profile?: { name: string; version: number };
          rehash?: boolean;
        },
        cmd: Command,
      ) => {
        if ((dir === undefined) === (o.tar === undefined)) {
          throw new InvalidInputError('give a directory or --tar, not both', [
            { path: dir === undefined ? 'dir' : '--tar', message: 'a directory or --tar FILE' },
          ]);
        }
        const store = await openStore();
        const progress = progressLine(!structured(cmd));
        const skipped: string[] = [];
        const source =
          o.tar !== undefined
            ? tarSource(o.tar === '-' ? process.stdin : createReadStream(o.tar), o.tar, {
                allowEmpty: o.allowEmpty === true,
              })
            : directorySource(resolve(dir as string), { onSkip: (p) => skipped.push(p) });
        const record = await store.create(source, {
          host: o.host,
          ...(o.profile ? { profile: o.profile } : {}),
          onProgress: progress.update,
        });
        progress.done();
        if (structured(cmd)) return emit(cmd, record);
        const s = record.stats;
        out(
          `${pc.green('+')} ${o.host} snapshot ${record.version}: ${s.files} files, ${bytes(s.bytes)} — ${bytes(s.newBytes)} new in ${s.newChunks} chunks, ${bytes(s.storedBytes)} stored`,
        );
        if (skipped.length > 0) out(pc.dim(`skipped ${skipped.length} sockets`));
      },
    );

  snapshot
    .command('list')
    .description('snapshots of a host')
    .requiredOption('--host <name>')
    .action(async (o: { host: string }, cmd: Command) => {
      const records = await (await openStore()).list(o.host);
      if (structured(cmd)) return emit(cmd, { items: records });
      if (records.length === 0) return out(pc.dim(`${o.host} has no snapshots`));
      out(table(['VERSION', 'CREATED', 'FILES', 'SIZE', 'NEW', 'STORED', 'PROFILE'], records.map(recordRow)));
    });

  snapshot
    .command('show')
    .description('one snapshot: its record and entries')
    .requiredOption('--host <name>')
    .argument('[version]', 'default: the latest', positive('version'))
    .action(async (version: number | undefined, o: { host: string }, cmd: Command) => {
      const store = await openStore();
      const record = await store.record(o.host, version);
      const manifest = await store.manifest(record);
      if (structured(cmd)) return emit(cmd, { record, manifest });
      out(table(['VERSION', 'CREATED', 'FILES', 'SIZE', 'NEW', 'STORED', 'PROFILE'], [recordRow(record)]));
      for (const e of manifest.entries) {
        out(
          `${e.mode.toString(8).padStart(4, '0')} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${e.type.padEnd(8)} ${printable(e.path)}${e.target ? ` → ${printable(e.target)}` : ''}`,
        );
      }
    });

  snapshot
    .command('diff')
    .description('paths added, removed and changed between two snapshots')
    .requiredOption('--host <name>')
    .argument('<from>', 'version', positive('from'))
    .argument('<to>', 'version', positive('to'))
    .action(async (from: number, to: number, o: { host: string }, cmd: Command) => {
      const d = await (await openStore()).diff(o.host, from, to);
      if (structured(cmd)) return emit(cmd, d);
      for (const p of d.added) out(`${pc.green('+')} ${printable(p)}`);
      for (const p of d.removed) out(`${pc.red('-')} ${printable(p)}`);
      for (const p of d.changed) out(`${pc.yellow('~')} ${printable(p)}`);
      for (const p of d.metadata) out(`${pc.dim('m')} ${printable(p)}`);
      out(
        pc.dim(
          `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.metadata.length} metadata only`,
        ),
      );
    });

  snapshot
    .command('restore')
    .description('restore a snapshot into a directory')
    .requiredOption('--host <name>')
    .argument('<dir>', 'target directory')
    .argument('[version]', 'default: the latest', positive('version'))
    .option('--incremental', 'write only what differs from what the directory holds')
    .option('--delete', 'with --incremental: remove what the snapshot does not have')
    .action(
      async (
        dir: string,
        version: number | undefined,
        o: { host: string; incremental?: boolean; delete?: boolean },
        cmd: Command,
      ) => {
        const store = await openStore();
        const record = await store.record(o.host, version);
        const target = resolve(dir);
        const existing =
          o.incremental && existsSync(target) ? await store.scan(directorySource(target)) : undefined;
        const progress = progressLine(!structured(cmd));
        const stats = await store.restore(record, new DirectoryTarget(target), {
          ...(existing ? { existing } : {}),
          deleteExtra: o.delete === true,
          onProgress: progress.update,
        });
        progress.done();
        // What could not be restored is named, and the command fails: a damaged snapshot (7)
        // or anything else (1). Everything else was restored.
        if (stats.failed.length > 0)
          process.exitCode = stats.failed.some((f) => f.damaged) ? EXIT.CORRUPT : EXIT.FAILURE;
        if (structured(cmd)) return emit(cmd, { record, stats });
        for (const f of stats.failed)
          process.stderr.write(`${pc.red('✗')} ${printable(f.path)}: ${printable(f.reason)}\n`);
        out(
          `${stats.failed.length > 0 ? pc.red('✗') : pc.green('✓')} ${o.host} snapshot ${record.version} → ${target}: ${stats.written} written, ${stats.metadataOnly} metadata only, ${stats.unchanged} unchanged, ${stats.removed} removed (${bytes(stats.bytes)})${stats.failed.length > 0 ? `; ${stats.failed.length} not restored` : ''}`,
        );
      },
    );

  snapshot
    .command('export')
    .description(
      'write a snapshot as a tar stream to standard output (pipe it to a host: ssh HOST tar -xpf - -C /)',
    )
    .requiredOption('--host <name>')
    .argument('[version]', 'default: the latest', positive('version'))
    .option(
      '--include-secrets',
      'also write the files that hold secrets (shadow, keys, credential files), which the snapshot keeps sealed apart',
    )
    .action(async (version: number | undefined, o: { host: string; includeSecrets?: boolean }) => {
      const conn = await connect();
      const store = await conn.snapshots();
      const record = await store.record(o.host, version);
      // Secrets leave the store only when asked for by name.
      if (o.includeSecrets === true) {
        const { skipped } = await writeTarWithSecrets(
          { store, profiles: conn.profiles() },
          record,
          process.stdout,
        );
        if (skipped.length > 0)
          process.stderr.write(
            terminalText(
              `left out ${skipped.length} files the capture could not seal: ${skipped.join(', ')}\n`,
            ),
          );
      } else await writeTar(store, record, process.stdout);
    });

  snapshot
    .command('forget')
    .description('forget snapshots a retention policy does not keep (gc frees their data)')
    .requiredOption('--host <name>')
    .option('--keep-last <n>', 'the newest N', positive('--keep-last'))
    .option('--keep-daily <n>', 'the newest of each of the last N days', positive('--keep-daily'))
    .option('--keep-weekly <n>', 'the newest of each of the last N weeks', positive('--keep-weekly'))
    .action(
      async (
        o: { host: string; keepLast?: number; keepDaily?: number; keepWeekly?: number },
        cmd: Command,
      ) => {
        const result = await (await openStore()).forget(o.host, {
          ...(o.keepLast ? { keepLast: o.keepLast } : {}),
          ...(o.keepDaily ? { keepDaily: o.keepDaily } : {}),
          ...(o.keepWeekly ? { keepWeekly: o.keepWeekly } : {}),
        });
        if (structured(cmd)) return emit(cmd, result);
        out(`kept ${result.kept.join(', ') || 'none'}; forgot ${result.removed.join(', ') || 'none'}`);
      },
    );

  snapshot
    .command('gc')
    .description('delete data no snapshot refers to')
    .action(async (_o, cmd: Command) => {
      const report = await (await openStore()).gc();
      if (structured(cmd)) return emit(cmd, report);
      out(
        `deleted ${report.packsDeleted} packs (${bytes(report.bytesFreed)}), ${report.manifestsDeleted} manifests, ${report.listingsDeleted} listing chunks; kept ${report.packsKept} packs`,
      );
    });

  snapshot
    .command('check')
    .description('verify the store; --read-data also reads and verifies every chunk')
    .option('--read-data', 'download and verify every pack')
    .action(async (o: { readData?: boolean }, cmd: Command) => {
      const report = await (await openStore()).check({ readData: o.readData === true });
      if (structured(cmd)) emit(cmd, report);
      else {
        for (const p of report.problems)
          process.stderr.write(
            `${pc.red('✗')} ${printable(p.object)}${p.chunk ? ` chunk ${p.chunk}` : ''}: ${printable(p.problem)}\n`,
          );
        out(
          `${report.ok ? pc.green('✓ no problems') : pc.red(`${report.problems.length} problems`)}: ${report.snapshots} snapshots, ${report.indexes} indexes, ${report.packs} packs, ${report.chunks} chunks${o.readData ? ' (data read)' : ''}`,
        );
      }
      if (!report.ok) process.exitCode = 7;
    });
}
