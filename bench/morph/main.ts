// Morph time by step and time to revert, on a real test host in the embedded runtime. Each
// cycle morphs the host to a tuned target (two sysctl keys and a service's configuration file,
// that service restarted), back to what it had, then to a target that makes the service 400 ms
// slower, which the watch finds worse than its baseline and Rollback reverts. Steps are read
// from the operation's own step times; the time to revert runs from the watch's verdict to the
// host back as it was (the rollback's end), through the state machine's Catch.
//
//   node --import tsx bench/morph/main.ts [cycles]     (root: it makes a test host; default 3)
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FolderTargetCatalog } from '../../core/morph/catalog.js';
import { MORPH_STEPS } from '../../core/morph/start.js';
import type { Operation } from '../../core/operation/schema.js';
import { useTargetCatalog } from '../../functions/shared/morph-targets.js';
import { morphDeps } from '../../functions/steps/morph/deps.js';
import { installMorphServices } from '../../test/e2e/morph-host.js';
import { createHost, destroyAllHosts } from '../../test/hosts/harness.js';
import { startTestPersona } from '../../test/support/local.js';
import { createReport } from '../report.js';

const cycles = Math.max(1, Math.min(10, Number(process.argv[2] ?? 3)));
const { say, table, lines, progress } = createReport();
const HOST = 'bench-morph';
const loadStart = loadavg();

const target = (name: string, spec: string) => `apiVersion: persona/v1
kind: TargetProfile
metadata: { name: ${name} }
spec:
  traits: { web-serving: 0.9, latency-sensitive: 0.9 }
${spec}
  watch:
    periodSeconds: 2
    samples: 5
    probe: { kind: http, port: 8080, path: / }
    tolerance: { latencyPercent: 50, errorRate: 0 }
`;
const web = (delay: number, extra = '') =>
  `    - path: /etc/morph-web.conf\n      content: "port=8080\\ndelay_ms=${delay}\\n${extra}"\n      restarts: [morph-web]\n`;

const api = await startTestPersona();
const folder = mkdtempSync(join(tmpdir(), 'persona-bench-targets-'));
try {
  progress('making the test host');
  const host = await createHost({ name: HOST });
  await installMorphServices(host);
  const deps = await morphDeps();
  const key = `${HOST}/credential/ssh`;
  const sealed = await (await deps.snapshots()).secrets.put(key, readFileSync(host.privateKeyPath));
  const registered = await api.call('POST', '/hosts', {
    body: {
      name: HOST,
      platform: 'baremetal',
      transport: 'ssh',
      address: host.address,
      credentialRef: { provider: 'local', key, digest: sealed.digest },
    },
  });
  if (registered.status !== 201) throw new Error(JSON.stringify(registered.body));
  const ended = async (id: string): Promise<Operation> => {
    for (;;) {
      const op = (await api.call('GET', `/operations/${id}`)).body as Operation;
      if (['SUCCEEDED', 'FAILED', 'ROLLED_BACK'].includes(op.status)) return op;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const captured = await ended(
    (await api.call('POST', `/hosts/${HOST}/capture`, { body: { acceptNewHostKey: true } })).body.id,
  );
  if (captured.status !== 'SUCCEEDED') throw new Error(`capture ended ${captured.status}`);
  const sysctl = async (k: string) => (await host.run(`sysctl -n ${k}`)).trim();
  const somaxconn = await sysctl('net.core.somaxconn');
  const fin = await sysctl('net.ipv4.tcp_fin_timeout');
  writeFileSync(
    join(folder, 'bench-tuned.yaml'),
    target(
      'bench-tuned',
      `  sysctl: { net.core.somaxconn: "2048", net.ipv4.tcp_fin_timeout: "20" }\n  files:\n${web(0, 'backlog=2048\\n')}`,
    ),
  );
  writeFileSync(
    join(folder, 'bench-original.yaml'),
    target(
      'bench-original',
      `  sysctl: { net.core.somaxconn: "${somaxconn}", net.ipv4.tcp_fin_timeout: "${fin}" }\n  files:\n${web(0)}`,
    ),
  );
  writeFileSync(
    join(folder, 'bench-slow.yaml'),
    target('bench-slow', `  sysctl: { net.ipv4.tcp_fin_timeout: "25" }\n  files:\n${web(400)}`),
  );
  useTargetCatalog(new FolderTargetCatalog(folder));

  interface Row {
    readonly kind: string;
    readonly op: Operation;
    readonly revert?: { fromVerdict: number; rollback: number };
  }
  const rows: Row[] = [];
  const morph = async (name: string): Promise<Operation> => {
    const res = await api.call('POST', `/hosts/${HOST}/morph`, { body: { target: name } });
    if (res.status !== 202) throw new Error(JSON.stringify(res.body));
    return ended(res.body.id);
  };
  for (let c = 0; c < cycles; c++) {
    progress(`cycle ${c + 1} of ${cycles}: tuned`);
    const tuned = await morph('bench-tuned');
    if (tuned.status !== 'SUCCEEDED')
      throw new Error(`tuned morph ended ${tuned.status}: ${tuned.error?.message}`);
    rows.push({ kind: 'tuned', op: tuned });
    progress(`cycle ${c + 1} of ${cycles}: back`);
    const back = await morph('bench-original');
    if (back.status !== 'SUCCEEDED')
      throw new Error(`morph back ended ${back.status}: ${back.error?.message}`);
    rows.push({ kind: 'back', op: back });
    progress(`cycle ${c + 1} of ${cycles}: slower, reverted`);
    const slow = await morph('bench-slow');
    if (slow.status !== 'ROLLED_BACK')
      throw new Error(`the slow morph ended ${slow.status}, not ROLLED_BACK`);
    const report = (await api.call('GET', `/operations/${slow.id}/documents/report`)).body;
    const rollback = (await api.call('GET', `/operations/${slow.id}/documents/rollback`)).body;
    rows.push({
      kind: 'slower → reverted',
      op: slow,
      revert: {
        fromVerdict: Date.parse(rollback.endedAt) - Date.parse(report.judgedAt),
        rollback: Date.parse(rollback.endedAt) - Date.parse(rollback.startedAt),
      },
    });
  }
  const loadEnd = loadavg();

  const stepMs = (op: Operation, name: string) => {
    const s = op.steps.find((x) => x.name === name);
    return s?.startedAt && s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : undefined;
  };
  const whole = (op: Operation) => Date.parse(op.updatedAt) - Date.parse(op.createdAt);
  const cell = (v: number | undefined) => (v === undefined ? '-' : String(v));
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? undefined : (s[Math.floor((s.length - 1) / 2)] as number);
  };
  const quiet = (l: number[]) =>
    (l[0] as number) < 1
      ? 'quiet (< 1)'
      : `NOT quiet (${(l[0] as number).toFixed(1)} on ${2} CPUs): other work shared the machine, the figures are slower than on a quiet one`;

  say('# Morph time by step, and time to revert');
  say();
  say(
    `Load average at the start: ${loadStart.map((l) => l.toFixed(2)).join(' / ')}; at the end: ${loadEnd.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min). The machine was ${quiet(loadStart)}.`,
  );
  say();
  say(
    `${cycles} cycles on one real test host (network namespace, sshd, sysvinit services) in the embedded runtime, through POST /hosts/{host}/morph and statemachines/morph.asl.json: to a tuned target (2 sysctl keys, 1 configuration file, its service restarted), back, then to a target making the service 400 ms slower, which Watch finds worse than its baseline and Rollback reverts. Watch probes HTTP 5 times over 2 s (a stated period: it is the same on any machine). Milliseconds, from the operation's own step times; "whole" from the operation's creation to its end. A reverted morph's watch step is marked failed by Rollback, so its time includes the revert.`,
  );
  say();
  const head = [...MORPH_STEPS, 'whole'];
  table(
    ['run', 'morph', ...head, 'status'],
    rows.map((r, i) => [
      String(Math.floor(i / 3) + 1),
      r.kind,
      ...MORPH_STEPS.map((s) => cell(stepMs(r.op, s))),
      cell(whole(r.op)),
      r.op.status,
    ]),
    head.map((_, i) => i + 2),
  );
  const ok = rows.filter((r) => r.op.status === 'SUCCEEDED');
  table(
    ['step (successful morphs)', 'median ms', 'max ms'],
    head.map((h) => {
      const xs = ok
        .map((r) => (h === 'whole' ? whole(r.op) : stepMs(r.op, h)))
        .filter((v): v is number => v !== undefined);
      return [h, cell(median(xs)), cell(xs.length ? Math.max(...xs) : undefined)];
    }),
    [1, 2],
  );
  const reverts = rows.flatMap((r) => (r.revert ? [r.revert] : []));
  table(
    ['time to revert', 'median ms', 'max ms'],
    [
      [
        "watch's verdict → host back",
        cell(median(reverts.map((r) => r.fromVerdict))),
        cell(Math.max(...reverts.map((r) => r.fromVerdict))),
      ],
      [
        'Rollback itself',
        cell(median(reverts.map((r) => r.rollback))),
        cell(Math.max(...reverts.map((r) => r.rollback))),
      ],
    ],
    [1, 2],
  );
  mkdirSync('reports', { recursive: true });
  writeFileSync(join('reports', 'morph-bench.md'), `${lines.join('\n')}\n`);
} finally {
  useTargetCatalog(undefined);
  rmSync(folder, { recursive: true, force: true });
  await destroyAllHosts();
  await api.stop();
}
