// route.add and route.remove: `ip route replace` and `ip route del`, one route of one table.
// The kernel keys a route by table, destination and metric: prepare reads the route holding
// that key (as `ip -j route show` prints it), so revert puts back the one a replace overwrote,
// or deletes the one an add made, or adds again the one a remove took away.
//
// `ip` takes its options before the object (`ip -j route ...`); after `route replace` every
// word is a keyword or its value, so there is no `--`. Each value is named by its keyword
// (`to`, `via`, `dev`) and checked against its grammar first, so no value can start with "-"
// or be read as a keyword.
import { isIP } from 'node:net';
import type { z } from 'zod';
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, type Issue } from '../../errors.js';
import type { Route } from '../../profile/schema.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, runOk, unchanged } from './executor.js';

type RouteEntry = z.infer<typeof Route>;
type RouteChange = Extract<Change, { section: 'routes' }>;

// Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no "/", ":" or white space; here
// also never starting with "-" or ".", so none is an option or a relative path in /sys.
const DEVICE = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$/;
const TABLES = ['main', 'local', 'default'] as const;
const U32 = 0xffff_ffff;
// What `ip -j route` prints as a route's protocol and scope, to put a replaced route back as it was.
const WORD = /^[a-z][a-z0-9_]{0,31}$/;

/** A route as this executor reads and writes it, every part checked. */
interface RouteSpec {
  readonly destination: string;
  readonly gateway?: string;
  readonly device?: string;
  readonly metric?: number;
  readonly table: string;
  readonly protocol?: string;
  readonly scope?: string;
  readonly source?: string;
}

function family(address: string): 4 | 6 | 0 {
  const slash = address.indexOf('/');
  const ip = slash < 0 ? address : address.slice(0, slash);
  const v = isIP(ip);
  return v === 4 ? 4 : v === 6 ? 6 : 0;
}

function destinationProblem(value: string): string | undefined {
  if (value === 'default') return undefined;
  const m = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/.exec(value);
  const v = m ? family(m[1] as string) : 0;
  if (!m || v === 0) return 'expected "default", an IP address or a prefix such as 198.51.100.0/24';
  if (m[2] !== undefined && Number(m[2]) > (v === 4 ? 32 : 128)) {
    return `the prefix length is more than ${v === 4 ? 32 : 128}`;
  }
  return undefined;
}

/** Checks every field of a route; the issues name the field under `at` (`to.gateway`). */
function checkRoute(route: RouteEntry, at: string): RouteSpec {
  const issues: Issue[] = [];
  const problem = destinationProblem(route.destination);
  if (problem !== undefined) issues.push({ path: `${at}.destination`, message: problem });
  if (route.gateway !== undefined) {
    const v = isIP(route.gateway);
    if (v === 0) issues.push({ path: `${at}.gateway`, message: 'expected an IP address, without a prefix' });
    else if (problem === undefined && route.destination !== 'default' && v !== family(route.destination)) {
      issues.push({ path: `${at}.gateway`, message: 'is not of the destination’s address family' });
    }
  }
  if (route.interface !== undefined && !DEVICE.test(route.interface)) {
    issues.push({
      path: `${at}.interface`,
      message:
        'expected an interface name: 1 to 15 letters, digits, "_", ".", "@" or "-", not starting with "-" or "."',
    });
  }
  if (
    route.metric !== undefined &&
    !(Number.isInteger(route.metric) && route.metric >= 0 && route.metric <= U32)
  ) {
    issues.push({ path: `${at}.metric`, message: 'expected an integer from 0 to 4294967295' });
  }
  const table = route.table ?? 'main';
  const numeric = /^[1-9][0-9]{0,9}$/.test(table) && Number(table) <= U32;
  if (!(TABLES as readonly string[]).includes(table) && !numeric) {
    issues.push({ path: `${at}.table`, message: 'expected main, local, default or a table number' });
  }
  if (route.gateway === undefined && route.interface === undefined) {
    issues.push({ path: at, message: 'a route needs a gateway or an interface' });
  }
  if (issues.length > 0) {
    throw new InvalidInputError(
      `route ${displayValue(route.destination)}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      issues,
    );
  }
  return {
    destination: route.destination,
    table,
    ...(route.gateway === undefined ? {} : { gateway: route.gateway }),
    ...(route.interface === undefined ? {} : { device: route.interface }),
    ...(route.metric === undefined ? {} : { metric: route.metric }),
  };
}

function routeChange(change: Change): { c: RouteChange; spec: RouteSpec } {
  if (change.section !== 'routes') throw new TypeError(`${change.kind} is not a route change`);
  const entry = change.kind === 'route.add' ? change.to : change.from;
  if (entry === null) throw new TypeError(`${change.kind} carries no route`);
  return { c: change, spec: checkRoute(entry, change.kind === 'route.add' ? 'to' : 'from') };
}

/**
 * The words after `ip route <verb>` that name the route's key: destination, metric, table. The
 * metric is always given (the kernel's default when the route has none): `ip route del`
 * without one would take the first route of that prefix, whatever its metric.
 */
function keyWords(spec: RouteSpec): string[] {
  return ['to', spec.destination, 'metric', String(spec.metric ?? defaultMetric(spec)), 'table', spec.table];
}

function routeWords(spec: RouteSpec): string[] {
  return [
    ...keyWords(spec),
    ...(spec.gateway === undefined ? [] : ['via', spec.gateway]),
    ...(spec.device === undefined ? [] : ['dev', spec.device]),
    ...(spec.protocol === undefined ? [] : ['proto', spec.protocol]),
    ...(spec.scope === undefined ? [] : ['scope', spec.scope]),
    ...(spec.source === undefined ? [] : ['src', spec.source]),
  ];
}

const familyFlag = (spec: RouteSpec) =>
  spec.destination === 'default'
    ? spec.gateway !== undefined && isIP(spec.gateway) === 6
      ? '-6'
      : '-4'
    : family(spec.destination) === 6
      ? '-6'
      : '-4';

/** The kernel's metric when none is given: 0 for IPv4, 1024 for IPv6. */
const defaultMetric = (spec: RouteSpec) => (familyFlag(spec) === '-6' ? 1024 : 0);

/** The same prefix as the kernel prints it: 10.0.0.1 is 10.0.0.1/32 to `ip route add`, and printed bare. */
function samePrefix(printed: string, wanted: string): boolean {
  if (printed === wanted) return true;
  const full = (p: string) => (p.includes('/') || p === 'default' ? p : `${p}/${isIP(p) === 6 ? 128 : 32}`);
  return full(printed).toLowerCase() === full(wanted).toLowerCase();
}

/**
 * The route with the spec's key as the host has it, or null. Only what `ip -j` prints is
 * read, and every part that would go back on a command line passes the grammar again.
 */
async function readRoute(transport: Transport, spec: RouteSpec): Promise<RouteSpec | null> {
  const flag = familyFlag(spec);
  const { stdout } = await runOk(
    transport,
    `reading route ${spec.destination}`,
    sh`ip ${flag} -j route show table ${spec.table} exact ${spec.destination}`,
  );
  let listed: unknown;
  try {
    listed = stdout.trim() === '' ? [] : JSON.parse(stdout);
  } catch {
    throw new HostStateConflictError(
      `ip -j route printed what is not JSON: ${displayValue(stdout, 200)}`,
      'route',
      spec.destination,
    );
  }
  if (!Array.isArray(listed)) return null;
  const metric = spec.metric ?? defaultMetric(spec);
  for (const item of listed as Record<string, unknown>[]) {
    const dst = typeof item.dst === 'string' ? item.dst : '';
    const m = typeof item.metric === 'number' ? item.metric : defaultMetric(spec);
    if (!samePrefix(dst, spec.destination) || m !== metric) continue;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const found = checkRoute(
      {
        destination: spec.destination,
        table: spec.table,
        ...(str(item.gateway) === undefined ? {} : { gateway: str(item.gateway) }),
        ...(str(item.dev) === undefined ? {} : { interface: str(item.dev) }),
        ...(typeof item.metric === 'number' ? { metric: item.metric } : {}),
      } as RouteEntry,
      'host',
    );
    const protocol = str(item.protocol);
    const scope = str(item.scope);
    const source = str(item.prefsrc);
    return {
      ...found,
      ...(protocol !== undefined && WORD.test(protocol) ? { protocol } : {}),
      ...(scope !== undefined && WORD.test(scope) ? { scope } : {}),
      ...(source !== undefined && isIP(source) !== 0 ? { source } : {}),
    };
  }
  return null;
}

/** The host's route goes where the spec says: the same gateway and, when named, device. */
const routesMatch = (host: RouteSpec, spec: RouteSpec) =>
  host.gateway === spec.gateway && (spec.device === undefined || host.device === spec.device);

const describeRoute = (s: RouteSpec) =>
  [
    s.destination,
    s.gateway && `via ${s.gateway}`,
    s.device && `dev ${s.device}`,
    s.table !== 'main' && `table ${s.table}`,
  ]
    .filter(Boolean)
    .join(' ');

interface RoutePrior {
  /** The route holding the same key before the Change, as the host had it; null when none. */
  readonly route: RouteSpec | null;
}

async function replace(transport: Transport, spec: RouteSpec): Promise<void> {
  await runOk(
    transport,
    `setting route ${describeRoute(spec)}`,
    sh`ip ${familyFlag(spec)} route replace ${routeWords(spec)}`,
  );
}

async function remove(transport: Transport, spec: RouteSpec): Promise<void> {
  await runOk(
    transport,
    `removing route ${describeRoute(spec)}`,
    sh`ip ${familyFlag(spec)} route del ${keyWords(spec)}`,
  );
}

export const routeExecutor: Executor = {
  kinds: ['route.add', 'route.remove'],

  async prepare(ctx, change) {
    const { spec } = routeChange(change);
    const prior: RoutePrior = { route: await readRoute(ctx.transport, spec) };
    return prior;
  },

  async apply(ctx, change) {
    const { c, spec } = routeChange(change);
    const now = await readRoute(ctx.transport, spec);
    if (c.kind === 'route.add') {
      if (now !== null && routesMatch(now, spec))
        return unchanged(`route ${describeRoute(spec)} is there already`);
      await replace(ctx.transport, spec);
      return changed(
        `route ${describeRoute(spec)}${now === null ? ' added' : ` replaces ${describeRoute(now)}`}`,
      );
    }
    if (now === null) return unchanged(`no route ${describeRoute(spec)} to remove`);
    await remove(ctx.transport, now);
    return changed(`route ${describeRoute(now)} removed`);
  },

  async revert(ctx, change, priorValue) {
    const { spec } = routeChange(change);
    const prior = priorValue as RoutePrior;
    // The prior is a journal document: its route passes the grammar again before it is used.
    const before =
      prior.route === null
        ? null
        : {
            ...checkRoute(
              {
                destination: prior.route.destination,
                table: prior.route.table,
                ...(prior.route.gateway === undefined ? {} : { gateway: prior.route.gateway }),
                ...(prior.route.device === undefined ? {} : { interface: prior.route.device }),
                ...(prior.route.metric === undefined ? {} : { metric: prior.route.metric }),
              } as RouteEntry,
              'prior.route',
            ),
            ...(prior.route.protocol !== undefined && WORD.test(prior.route.protocol)
              ? { protocol: prior.route.protocol }
              : {}),
            ...(prior.route.scope !== undefined && WORD.test(prior.route.scope)
              ? { scope: prior.route.scope }
              : {}),
            ...(prior.route.source !== undefined && isIP(prior.route.source) !== 0
              ? { source: prior.route.source }
              : {}),
          };
    const now = await readRoute(ctx.transport, before ?? spec);
    if (before === null) {
      if (now === null) return unchanged(`no route ${describeRoute(spec)}, as before`);
      await remove(ctx.transport, now);
      return changed(`route ${describeRoute(now)} removed again`);
    }
    if (now !== null && routesMatch(now, before) && now.device === before.device) {
      return unchanged(`route ${describeRoute(before)} is as it was`);
    }
    await replace(ctx.transport, before);
    return changed(`route ${describeRoute(before)} is back`);
  },
};
