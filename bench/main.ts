// npm run bench: Persona's profile operations on the profile of a big host, against the tools a
// user would reach for instead, on the same documents in the same run. Prints a markdown report
// (and keeps a copy in reports/bench.md, which git ignores).
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { applyDelta, revertDelta } from '../core/delta/apply.js';
import type { Delta } from '../core/delta/changes.js';
import { diff } from '../core/delta/diff.js';
import { COLLECTIONS, canonicalSpec, entriesOf } from '../core/profile/collections.js';
import { DOCUMENT_LIMITS, parseDocumentText, parseProfile, validateProfile } from '../core/profile/io.js';
import type { Profile } from '../core/profile/schema.js';
import { serializeProfile } from '../core/profile/service.js';
import { checkDefects } from './defects.js';
import { bigHost, nextRelease } from './generate.js';
import {
  hasCommand,
  hasGnuTime,
  interleaved,
  maxRssOf,
  mib,
  ms,
  perSecond,
  processTask,
  type Timing,
  time,
} from './measure.js';
import type { MemoryProbe } from './memory.js';
import {
  DOCUMENTS,
  type DocumentRole,
  documentPath,
  loadStored,
  OPERATIONS,
  type OperationName,
  schemaValidator,
  sha256,
} from './operations.js';
import { createReport } from './report.js';

const SEED = 20261120;
const { started, lines: out, say, progress, table } = createReport();
const range = (t: Timing) => `${ms(t.min)}–${ms(t.max)} (n=${t.runs})`;
const mbps = (bytes: number, t: Timing) => `${(perSecond(bytes, t.median) / 1024 / 1024).toFixed(1)} MiB/s`;
const packageVersion = (name: string): string =>
  (
    JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as {
      version: string;
    }
  ).version;

// ---------------------------------------------------------------- machine
const cpuModel =
  /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
  cpus()[0]?.model ??
  '?';
const diffVersion = hasCommand('diff');
const gitVersion = hasCommand('git');
const gnuTime = hasGnuTime();
// Other work on the machine shows up in the figures; the load average says how much there was.
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

say('# Persona benchmark');
say();
say(
  `Machine: ${availableParallelism()} CPUs (${cpuModel}), ${mib(totalmem())} RAM, Node ${process.version}, ` +
    `yaml ${packageVersion('yaml')}, ajv ${packageVersion('ajv')}, zod ${packageVersion('zod')}, ` +
    `${diffVersion ?? 'no GNU diff'}, ${gitVersion ?? 'no git'}. Load average at start: ${loadAverage()}.`,
);
say();

// ---------------------------------------------------------------- documents
progress('generating profiles');
const dir = mkdtempSync(join(tmpdir(), 'persona-bench-'));
const input1 = bigHost(SEED);
const input2 = nextRelease(input1, SEED + 1);
const v1 = validateProfile(input1, { source: 'generated v1' });
const v2 = validateProfile(input2, { source: 'generated v2' });
const canonical = (p: Profile) => JSON.parse(serializeProfile(p)) as unknown;
const texts: Record<DocumentRole, string> = {
  v1Yaml: stringify(canonical(v1), { lineWidth: 0 }),
  v2Yaml: stringify(canonical(v2), { lineWidth: 0 }),
  v1Json: serializeProfile(v1),
  v2Json: serializeProfile(v2),
  v1PrettyJson: `${JSON.stringify(canonical(v1), null, 2)}\n`,
  v2PrettyJson: `${JSON.stringify(canonical(v2), null, 2)}\n`,
};
for (const [role, text] of Object.entries(texts))
  writeFileSync(documentPath(dir, role as DocumentRole), text);
const path = (role: DocumentRole) => documentPath(dir, role);

// Every document Persona will be asked to read must read back to the profile it came from.
const accepted = (role: DocumentRole): string => {
  try {
    const back = parseProfile(texts[role], { source: DOCUMENTS[role] });
    const expected = role.startsWith('v1') ? v1 : v2;
    return serializeProfile(back) === serializeProfile(expected) ? 'yes' : 'READ BACK DIFFERENTLY';
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
};

const entryCount = (p: Profile) =>
  Object.values(COLLECTIONS).reduce((n, d) => n + entriesOf(p.spec, d).length, 0) +
  Object.keys(p.spec.configuration.sysctl).length;
const counts = (p: Profile) =>
  [
    `${p.spec.packages.length} packages`,
    `${p.spec.services.length} services`,
    `${p.spec.configuration.files.length} files`,
    `${p.spec.configuration.env.length} env`,
    `${Object.keys(p.spec.configuration.sysctl).length} sysctl`,
    `${p.spec.kernelModules.length} kmods`,
    `${p.spec.security.users.length} users`,
    `${p.spec.security.groups.length} groups`,
    `${p.spec.network.routes.length} routes`,
    `${p.spec.storage.mounts.length} mounts`,
    `${p.spec.resources.cgroups.length} cgroups`,
    `${p.spec.runtimeDependencies.length} runtimes`,
  ].join(', ');

progress('checking the documents read back');
say('## Documents');
say();
say(`Generated deterministically (seed ${SEED}); written to a temporary directory.`);
say();
say(`- v1: ${counts(v1)} — ${entryCount(v1)} keyed entries in all.`);
say(
  `- v2 (a release later): ≈2% of packages upgraded, 20 installed, 10 removed; 150 files changed, ` +
    `30 added, 20 deleted; sysctl, env, services, users, groups, kernel module parameters, routes, a ` +
    `runtime and a cgroup limit changed — ${counts(v2)}.`,
);
say();
const lines = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
table(
  ['document', 'bytes', 'size', 'lines', `read by parseProfile (limit ${mib(DOCUMENT_LIMITS.maxBytes)})`],
  (Object.keys(DOCUMENTS) as DocumentRole[]).map((role) => [
    `\`${DOCUMENTS[role]}\`${role.endsWith('PrettyJson') ? ' (JSON.stringify, 2 spaces)' : role.endsWith('Json') ? ' (serializeProfile)' : ' (canonical, yaml.stringify)'}`,
    String(Buffer.byteLength(texts[role])),
    mib(Buffer.byteLength(texts[role])),
    String(lines(texts[role])),
    accepted(role),
  ]),
  [1, 2, 3],
);

// ---------------------------------------------------------------- validation
progress('validation');
const bytesYaml = Buffer.byteLength(texts.v1Yaml);
const bytesJson = Buffer.byteLength(texts.v1Json);
const validateSchema = schemaValidator();
const valueYaml = parseYaml(texts.v1Yaml) as unknown;
const validation = interleaved(
  {
    personaYaml: OPERATIONS['persona.parse.yaml'](dir),
    personaJson: OPERATIONS['persona.parse.json'](dir),
    ajvYaml: OPERATIONS['ajv.yaml'](dir),
    ajvJson: OPERATIONS['ajv.json'](dir),
    readJson: () => parseDocumentText(texts.v1Json),
    zod: () => validateProfile(valueYaml),
    jsonParse: () => JSON.parse(texts.v1Json) as unknown,
    ajv: () => validateSchema(valueYaml),
  },
  { warmup: 1, runs: 5 },
);
if (!validation.ajvYaml.result.valid || !validation.ajvJson.result.valid)
  throw new Error('the published JSON Schema refuses the generated profile');
const pYaml = validation.personaYaml;
const pJson = validation.personaJson;
const aYaml = validation.ajvYaml;
const aJson = validation.ajvJson;
const steps = Object.fromEntries(Object.entries(validation).map(([k, v]) => [k, v.timing])) as Record<
  keyof typeof validation,
  Timing
>;

say('## Results');
say();
say(
  'Median of n runs after warm-up, in milliseconds, in one process. External tools are timed as whole ' +
    'processes (spawn, run, exit, output read through a pipe), as a user or a CI step pays for them.',
);
say();
const rows: string[][] = [];
const row = (task: string, tool: string, t: Timing, throughput: string, notes: string) =>
  rows.push([task, tool, `**${ms(t.median)}**`, range(t), throughput, notes]);

row(
  'validate v1 (YAML)',
  'Persona `parseProfile`',
  pYaml.timing,
  mbps(bytesYaml, pYaml.timing),
  'all Persona checks, canonical result',
);
row(
  'validate v1 (YAML)',
  '`yaml.parse` + ajv 2020',
  aYaml.timing,
  mbps(bytesYaml, aYaml.timing),
  'JSON Schema only',
);
row(
  'validate v1 (JSON)',
  'Persona `parseProfile`',
  pJson.timing,
  mbps(bytesJson, pJson.timing),
  'JSON read as YAML 1.2: same checks',
);
row(
  'validate v1 (JSON)',
  '`JSON.parse` + ajv 2020',
  aJson.timing,
  mbps(bytesJson, aJson.timing),
  'JSON Schema only',
);
row(
  '  ↳ read JSON',
  'Persona `parseDocumentText`',
  steps.readJson,
  mbps(bytesJson, steps.readJson),
  'YAML 1.2 AST with positions, key/depth/tag checks, toJS',
);
row('  ↳ model checks', 'Persona `validateProfile`', steps.zod, '', 'zod + uniqueness + canonical form');
row('  ↳ read JSON', '`JSON.parse`', steps.jsonParse, mbps(bytesJson, steps.jsonParse), '');
row('  ↳ schema checks', 'ajv (compiled once)', steps.ajv, '', '');

// ---------------------------------------------------------------- diff
progress('diff');
const a = loadStored(dir, 'v1Json');
const b = loadStored(dir, 'v2Json');
interface TextDiff {
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
}
const textDiffs: TextDiff[] = [];
if (diffVersion !== undefined) {
  textDiffs.push(
    { label: '`diff -u` YAML', command: 'diff', args: ['-u', path('v1Yaml'), path('v2Yaml')] },
    {
      label: '`diff -u` pretty JSON',
      command: 'diff',
      args: ['-u', path('v1PrettyJson'), path('v2PrettyJson')],
    },
  );
}
if (gitVersion !== undefined) {
  const git = (...args: string[]) => [
    '-c',
    'core.quotepath=false',
    'diff',
    '--no-index',
    '--no-color',
    ...args,
  ];
  textDiffs.push(
    {
      label: '`git diff --no-index --stat` YAML',
      command: 'git',
      args: git('--stat', path('v1Yaml'), path('v2Yaml')),
    },
    {
      label: '`git diff --no-index --stat` pretty JSON',
      command: 'git',
      args: git('--stat', path('v1PrettyJson'), path('v2PrettyJson')),
    },
    { label: '`git diff --no-index` YAML', command: 'git', args: git(path('v1Yaml'), path('v2Yaml')) },
  );
}
const diffs = interleaved(
  {
    persona: () => diff(a, b),
    canonical: () => canonicalSpec(a.spec),
    ...(textDiffs.length === 0 ? {} : { floor: processTask('true', []) }),
    ...Object.fromEntries(textDiffs.map((d) => [d.label, processTask(d.command, d.args)])),
  } as Record<string, () => unknown>,
  { warmup: 2, runs: 9 },
);
const measured = (name: string) => {
  const m = diffs[name];
  if (m === undefined) throw new Error(`${name} was not measured`);
  return m;
};
const pDiff = measured('persona');
const delta = pDiff.result as Delta;
const entries = entryCount(v1) + entryCount(v2);
row(
  'diff v1 → v2',
  'Persona `diff`',
  pDiff.timing,
  `${(perSecond(entries, pDiff.timing.median) / 1000).toFixed(0)} k entries/s`,
  `${delta.summary.changes} typed changes, ${delta.summary.disruptive} disruptive, in apply order`,
);
row(
  '  ↳ canonical form of one side',
  'Persona `canonicalSpec`',
  measured('canonical').timing,
  '',
  'diff does this to both sides',
);
const outputOf = (d: TextDiff) => measured(d.label).result as SpawnSyncReturns<string>;
const patchStats = (text: string) => {
  const all = text.split('\n');
  return {
    hunks: all.filter((l) => l.startsWith('@@')).length,
    added: all.filter((l) => l.startsWith('+') && !l.startsWith('+++')).length,
    removed: all.filter((l) => l.startsWith('-') && !l.startsWith('---')).length,
    lines: lines(text),
    bytes: Buffer.byteLength(text),
  };
};
for (const d of textDiffs) {
  const output = outputOf(d);
  const s = patchStats(output.stdout);
  const what = d.args.includes('--stat')
    ? (output.stdout.trim().split('\n').at(-1)?.trim() ?? '')
    : `${s.hunks} hunks, +${s.added} −${s.removed} lines`;
  row('diff v1 → v2', d.label, measured(d.label).timing, '', `${what}; exit ${output.status}`);
}
if (textDiffs.length > 0)
  row(
    '(spawn floor)',
    '`true` as a process',
    measured('floor').timing,
    '',
    'cost of starting any process here',
  );

// ---------------------------------------------------------------- apply, revert, hash
progress('apply, revert, serialize');
const pApply = time(() => applyDelta(a, delta), { warmup: 2, runs: 7 });
const applied = pApply.result;
const pRevert = time(() => revertDelta(applied, delta), { warmup: 2, runs: 7 });
const reverted = pRevert.result;
const appliedOk = serializeProfile(applied) === serializeProfile(v2);
const revertedOk = serializeProfile(reverted) === serializeProfile(v1);
const twiceOk = serializeProfile(applyDelta(applied, delta)) === serializeProfile(v2);
if (!appliedOk || !revertedOk || !twiceOk)
  throw new Error('apply/revert did not give the expected profile back');
row(
  'apply Delta to v1',
  'Persona `applyDelta`',
  pApply.timing,
  `${(perSecond(delta.changes.length, pApply.timing.median) / 1000).toFixed(1)} k changes/s`,
  'result = v2 (checked); applying again changes nothing (checked)',
);
row(
  'revert Delta from v2',
  'Persona `revertDelta`',
  pRevert.timing,
  `${(perSecond(delta.changes.length, pRevert.timing.median) / 1000).toFixed(1)} k changes/s`,
  'result = v1 (checked)',
);
const pHash = time(() => sha256(serializeProfile(a)), { warmup: 2, runs: 9 });
row(
  '"unchanged?" check',
  'Persona `serializeProfile` + sha256',
  pHash.timing,
  mbps(Buffer.byteLength(texts.v1Json), pHash.timing),
  'canonical JSON of v1, then its hash',
);

// Cloning onto a fresh host is the Delta from a bare OS to the whole profile: every entry an addition.
progress('clone-sized Delta');
const bare = validateProfile({
  apiVersion: v1.apiVersion,
  kind: v1.kind,
  metadata: v1.metadata,
  spec: { os: v1.spec.os },
  ...(v1.observed === undefined ? {} : { observed: v1.observed }),
});
const pCloneDiff = time(() => diff(bare, a), { warmup: 1, runs: 5 });
const cloneDelta = pCloneDiff.result;
const pClone = time(() => applyDelta(bare, cloneDelta), { warmup: 0, runs: 3 });
if (serializeProfile(pClone.result) !== serializeProfile(v1))
  throw new Error('the clone Delta did not rebuild v1');
row(
  'diff bare OS → v1',
  'Persona `diff`',
  pCloneDiff.timing,
  '',
  `${cloneDelta.summary.changes} changes (what a clone applies)`,
);
row(
  'apply that Delta',
  'Persona `applyDelta`',
  pClone.timing,
  `${(perSecond(cloneDelta.changes.length, pClone.timing.median) / 1000).toFixed(1)} k changes/s`,
  'result = v1 (checked)',
);
table(['task', 'tool', 'median ms', 'min–max ms', 'throughput', 'notes'], rows, [2, 3, 4]);

// ---------------------------------------------------------------- what a text diff says
say('### What each diff says');
say();
const byKind = Object.entries(delta.summary.byKind)
  .sort(([, x], [, y]) => (y ?? 0) - (x ?? 0))
  .map(([k, n]) => `${k} ${n}`)
  .join(', ');
say(
  `- Persona: ${delta.summary.changes} Changes (${byKind}); ${delta.summary.disruptive} marked disruptive.`,
);
say(
  `  Teardown first, then build-up by layer; each Change carries the entry before and after, so it can be reverted on its own. ` +
    `As JSON the Delta is ${mib(Buffer.byteLength(JSON.stringify(delta)))}.`,
);
for (const d of textDiffs.filter((t) => !t.args.includes('--stat'))) {
  const s = patchStats(outputOf(d).stdout);
  say(
    `- ${d.label}: ${s.hunks} hunks, ${s.added} lines added and ${s.removed} removed, ${s.lines} lines ` +
      `(${mib(s.bytes)}) of output, in file order; no kinds, no order to apply, nothing marks what is disruptive.`,
  );
}
say();

// ---------------------------------------------------------------- memory
progress('memory (one process per operation)');
const probe = (operation: OperationName): MemoryProbe | string => {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', new URL('./memory.ts', import.meta.url).pathname, operation, dir],
    // `--import tsx` resolves from the working directory: the project's, whatever ours is.
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, cwd: new URL('..', import.meta.url).pathname },
  );
  if (child.status !== 0) return `failed: ${child.stderr.trim().split('\n').at(-1) ?? child.status}`;
  return JSON.parse(child.stdout) as MemoryProbe;
};
const signed = (bytes: number) => `${bytes < 0 ? '−' : '+'}${mib(Math.abs(bytes))}`;
const memRows: string[][] = [];
for (const operation of Object.keys(OPERATIONS) as OperationName[]) {
  const m = probe(operation);
  if (typeof m === 'string') {
    memRows.push([operation, m, '', '', '', '']);
    continue;
  }
  // If the operation never went above the process's earlier peak, its own peak is unknown but lower.
  const peak =
    m.peakRssAfter > m.peakRssBefore
      ? `+${mib(m.peakRssAfter - m.rssBefore)}`
      : `≤ +${mib(m.peakRssBefore - m.rssBefore)}`;
  memRows.push([
    operation,
    mib(m.rssBefore),
    peak,
    mib(m.peakRssAfter),
    signed(m.heapAfter - m.heapBefore),
    signed(m.heapRetained - m.heapBefore),
  ]);
}
if (gnuTime) {
  for (const d of textDiffs) {
    const rss = maxRssOf(d.command, d.args);
    memRows.push([d.label, '', '', rss === undefined ? '?' : mib(rss), '', '']);
  }
  const floor = maxRssOf('true', []);
  if (floor !== undefined) memRows.push(['`true`', '', '', mib(floor), '', '']);
}
say('### Memory');
say();
say(
  'Persona operations: each in a fresh `node --expose-gc` process (setup = reading its input; stored ' +
    'versions are loaded as Persona loads them, with JSON.parse). RSS before = after setup and a full GC; ' +
    'peak RSS is the process maximum (getrusage). Heap after = heap in use right after the operation, ' +
    'garbage included; retained = after a full GC with the result still held. The setup of apply+revert ' +
    'computes the Delta, which has already grown the heap: its RSS figures understate: read its heap figures.' +
    (gnuTime
      ? ' External tools: maximum RSS from GNU time.'
      : ' GNU time is not installed: no RSS figures for external tools.'),
);
say();
table(
  ['operation', 'RSS before', 'peak RSS − RSS before', 'peak RSS', 'heap after − before', 'retained'],
  memRows,
  [1, 2, 3, 4, 5],
);

// ---------------------------------------------------------------- checks
progress('what each validation catches');
say('### What each validation route catches');
say();
say('`examples/web.yaml` with one defect at a time; ✔ = refused.');
say();
table(
  ['defect', 'Persona `parseProfile`', '`yaml.parse` + ajv (published schema)'],
  checkDefects().map((c) => [c.defect, c.persona ? '✔' : '✘ accepted', c.schema ? '✔' : '✘ accepted']),
);
say(
  'Both routes check types, required fields, enums, patterns and unknown fields (the schema is generated ' +
    'from the same zod model). Only Persona checks uniqueness of collection keys, the cross-field rules ' +
    '(secrets as references, a file needs a hash, a symlink a target), forbidden keys and custom tags, ' +
    `the document limits (${mib(DOCUMENT_LIMITS.maxBytes)}, ${DOCUMENT_LIMITS.maxDepth} levels, ` +
    `${DOCUMENT_LIMITS.maxAliasCount} alias expansions), reports every problem with line:column, and returns ` +
    'the canonical profile (defaults filled, collections sorted) ready to hash and diff. ajv is run with ' +
    '`strict: false` and without ajv-formats, so `format` (uri, date-time) is not checked.',
);
say();

const total = (performance.now() - started) / 1000;
say(`Run time: ${total.toFixed(0)} s; load average at the end: ${loadAverage()}.`);

try {
  mkdirSync(new URL('../reports/', import.meta.url), { recursive: true });
  writeFileSync(new URL('../reports/bench.md', import.meta.url), `${out.join('\n')}\n`);
} catch {
  // The report on stdout is the result; the copy is a convenience.
}
rmSync(dir, { recursive: true, force: true });
