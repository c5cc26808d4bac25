// Environment variables: /etc/environment and the environment of the application processes
// the caller declared. Values that look like credentials become secret references.
import type { z } from 'zod';
import { EnvVar } from '../../profile/schema.js';
import { envLooksSensitive } from '../secrets.js';
import { lines } from '../sections.js';
import type { ParseContext } from './context.js';

type EnvInput = z.input<typeof EnvVar>;

/** The script writes a newline inside a value as the record separator (0x1e). */
const RS = String.fromCharCode(0x1e);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const unquote = (v: string): string => {
  const q = v[0];
  return (q === '"' || q === "'") && v.length >= 2 && v.endsWith(q) ? v.slice(1, -1) : v;
};

export function parseEnvironment(ctx: ParseContext, declared: readonly string[]): EnvInput[] {
  const section = ctx.section('environ');
  const found: EnvInput[] = [];
  const add = (scope: string, name: string, value: string) => {
    // A name the Profile cannot hold is reported by keep() below; its value goes nowhere.
    if (!ENV_NAME.test(name)) {
      found.push({ name, value: '', scope });
    } else if (envLooksSensitive(name, value)) {
      const ref = ctx.secrets.add('env', `${scope}/${name}`, value);
      found.push({ name, secretRef: ref, sensitive: true, scope });
    } else {
      found.push({ name, value, scope });
    }
  };

  // comm is cut at 15 characters, so "amazon-cloudwatch-agent" runs as "amazon-cloudwat".
  const scopeOf = (comm: string) => declared.find((d) => d.slice(0, 15) === comm) ?? comm;
  const firstPid = new Map<string, number>();
  const parts = (section?.parts ?? [])
    .map((p) => ({ p, m: /^pid (\d+) (.+)$/.exec(p.header) }))
    .filter((x) => x.m !== null)
    .sort((a, b) => Number(a.m?.[1]) - Number(b.m?.[1]));

  for (const part of section?.parts ?? []) {
    if (part.header !== 'file /etc/environment') continue;
    for (const line of lines(part.text)) {
      const m = /^= (?:export\s+)?([^=#\s][^=\s]*)=(.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined) add('/etc/environment', m[1], unquote(m[2].trim()));
    }
  }
  // Workers of one application share their master's environment: the oldest process speaks for
  // all, so that a worker's extra variables (set by the master at fork) do not mix in.
  for (const { p, m } of parts) {
    const pid = Number(m?.[1]);
    const scope = scopeOf(m?.[2] ?? '');
    if (firstPid.has(scope)) continue;
    firstPid.set(scope, pid);
    for (const line of lines(p.text)) {
      if (!line.startsWith('= ')) continue;
      const entry = line.slice(2);
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      add(scope, entry.slice(0, eq), entry.slice(eq + 1).replaceAll(RS, '\n'));
    }
  }
  // Processes of another user than the capture's: their environment is theirs and root's only.
  const denied = new Map<string, number>();
  for (const part of section?.parts ?? []) {
    const m = /^denied (\d+) (.+)$/.exec(part.header);
    if (!m?.[1] || !m[2]) continue;
    const scope = scopeOf(m[2]);
    const pid = Number(m[1]);
    if (!firstPid.has(scope) && (denied.get(scope) ?? Number.POSITIVE_INFINITY) > pid) denied.set(scope, pid);
  }
  for (const [scope, pid] of denied) {
    if (firstPid.has(scope)) continue;
    ctx.unknown(
      'environ',
      `the environment of application process "${scope}" (pid ${pid}) could not be read: permission denied (it runs as another user; capture as root or as that user)`,
    );
  }
  for (const d of declared) {
    if (!firstPid.has(d) && !denied.has(d))
      ctx.unknown('environ', `application process "${d}" is not running: its environment is unknown`);
  }
  if (declared.length === 0 && parts.length === 0) {
    ctx.unknown('environ', 'no application processes were declared, so no process environment was read');
  }
  return ctx.keep(
    'environ',
    EnvVar,
    found,
    (e) => (e.scope === undefined ? e.name : `${e.scope}:${e.name}`),
    'environment variable',
  );
}
