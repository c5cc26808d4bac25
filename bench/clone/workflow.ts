// Time from request to validated clone, by step: the clone workflow as a user runs it (`persona
// capture` of a web host, then `persona clone` onto a bare host with no route out, through the
// embedded runtime's API and the ASL it executes), read back from the operation's own step
// times. Goal: a web host cloned and validated in at most 60 s.
//
//   node --import tsx bench/clone/workflow.ts [runs]     (root: it makes test hosts)
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Operation } from '../../core/operation/schema.js';
import { createHost, destroyAllHosts } from '../../test/hosts/harness.js';
import { setUpWebHost } from '../../test/hosts/software.js';
import { runPersona } from '../../test/support/cli.js';
import { startTestPersona } from '../../test/support/local.js';
import { createReport } from '../report.js';

const runs = Number(process.argv[2] ?? 3);
const { say, table, lines, progress } = createReport();

const api = await startTestPersona();
const persona = (...args: string[]) => runPersona(api, ...args);

try {
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
  progress('making the source host');
  const web = await createHost({
    name: 'bwweb',
    hostname: 'web-a',
    setup: (h) => setUpWebHost(h, { page: '<h1>shop</h1>\n', secret: 'hunter2-in-a-file' }),
  });
  await persona(
    'capture',
    `ssh://root@${web.address}`,
    '--key',
    web.privateKeyPath,
    '--name',
    'web',
    '--accept-new-host-key',
  );
  const rows: string[][] = [];
  const byStep = new Map<string, number[]>();
  for (let i = 0; i < runs; i++) {
    const bare = await createHost({ name: `bwbare${i}`, hostname: `bare-${i}` });
    const requested = Date.now();
    progress(`clone ${i + 1} of ${runs}`);
    await persona(
      'clone',
      'web',
      '--to',
      `ssh://root@${bare.address}`,
      '--key',
      bare.privateKeyPath,
      '--target-name',
      `bare-${i}`,
      '--accept-new-host-key',
    );
    const list = (await (await fetch(`${api.url}/operations?kind=clone&limit=1`)).json()) as {
      items: Operation[];
    };
    const op = list.items[0] as Operation;
    const total = (Date.parse(op.updatedAt) - requested) / 1000;
    for (const s of op.steps) {
      if (!s.startedAt || !s.endedAt) continue;
      const seconds = (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000;
      byStep.set(s.name, [...(byStep.get(s.name) ?? []), seconds]);
    }
    rows.push([String(i + 1), op.status, String(op.result?.verdict ?? ''), total.toFixed(1)]);
  }
  say('# Request to validated clone');
  say();
  say(
    `Load average at start: ${load}. ${runs} clones of a Debian nginx web host onto fresh bare hosts with no route out.`,
  );
  say();
  table(['run', 'status', 'verdict', 'request to end, s'], rows, [3]);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  table(
    ['step', 'median s'],
    [...byStep].map(([name, xs]) => [name, median(xs).toFixed(2)]),
    [1],
  );
  mkdirSync('reports', { recursive: true });
  writeFileSync(join('reports', 'clone-workflow.md'), `${lines.join('\n')}\n`);
} finally {
  await destroyAllHosts();
  await api.stop();
}
