// dns.set: /etc/resolv.conf written from the Profile's nameservers, search domains and options,
// every value checked against its own grammar (an address, a domain name, an option word) so
// that none can add a line of its own. The file is replaced atomically and the one it replaced
// is kept on the host for revert (files.ts). A resolv.conf that is a symbolic link belongs to
// whatever manages it (systemd-resolved, resolvconf): the Change is recorded unresolved and the
// link is left as it is.
import { isIP } from 'node:net';
import type { z } from 'zod';
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, type Issue } from '../../errors.js';
import type { Dns as DnsSchema } from '../../profile/schema.js';
import { displayValue, sh } from '../../transport/shell.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';
import { type FilePrior, prepareEntry, probeEntry, restoreFile, writeFile } from './files.js';

type Dns = z.infer<typeof DnsSchema>;

export const RESOLV_CONF = '/etc/resolv.conf';

type DnsChange = Extract<Change, { section: 'dns' }>;

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;
const OPTION = /^[a-z][a-z0-9-]*(:\d{1,4})?$/;

const isDomain = (name: string) => {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  return bare.length > 0 && bare.length <= 253 && bare.split('.').every((l) => LABEL.test(l));
};

/** The settings' problems, one issue per bad value, naming it (`dns.search[1]`). */
export function dnsProblems(dns: Dns): Issue[] {
  const issues: Issue[] = [];
  const check = (field: keyof Dns, ok: (v: string) => boolean, what: string) =>
    dns[field].forEach((value, i) => {
      if (!ok(value))
        issues.push({ path: `dns.${field}[${i}]`, message: `${displayValue(value)} is not ${what}` });
    });
  check('nameservers', (v) => isIP(v) !== 0, 'an IPv4 or IPv6 address');
  check('search', isDomain, 'a domain name');
  check('options', (v) => OPTION.test(v), 'a resolver option (a word such as rotate, or ndots:2)');
  return issues;
}

function checkedDns(dns: Dns): Dns {
  const issues = dnsProblems(dns);
  if (issues.length > 0) {
    throw new InvalidInputError(
      `dns: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}; resolv.conf not written`,
      issues,
    );
  }
  return dns;
}

/** resolv.conf for the settings: one nameserver line each, then search, then options. */
export function resolvConf(dns: Dns): string {
  const lines = [
    ...dns.nameservers.map((n) => `nameserver ${n}`),
    ...(dns.search.length > 0 ? [`search ${dns.search.join(' ')}`] : []),
    ...(dns.options.length > 0 ? [`options ${dns.options.join(' ')}`] : []),
  ];
  return lines.map((l) => `${l}\n`).join('');
}

/** The settings a resolv.conf holds, read as capture reads them (so equal means a capture sees no change). */
export function parseResolvConf(text: string): Dns {
  const dns = { nameservers: [] as string[], search: [] as string[], options: [] as string[] };
  for (const line of text.split('\n')) {
    const [key, ...values] = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (key === 'nameserver' && values[0]) dns.nameservers.push(values[0].replace(/%.*$/, ''));
    else if (key === 'search' || key === 'domain')
      dns.search.push(...values.filter((v) => !dns.search.includes(v)));
    else if (key === 'options') dns.options.push(...values);
  }
  return dns;
}

const sameDns = (a: Dns, b: Dns) =>
  JSON.stringify([a.nameservers, a.search, a.options]) ===
  JSON.stringify([b.nameservers, b.search, b.options]);

function dnsChange(change: Change): DnsChange {
  if (change.section !== 'dns') throw new TypeError(`${change.kind} is not a DNS change`);
  if (change.to !== null) checkedDns(change.to);
  return change;
}

export const dnsExecutor: Executor = {
  kinds: ['dns.set'],

  async prepare(ctx, change) {
    const c = dnsChange(change);
    const { state } = await probeEntry(ctx.transport, RESOLV_CONF, `${c.kind} ${c.key}`);
    // A link is not replaced, so there is nothing to keep; its state is all the prior holds.
    if (state.kind === 'symlink') return { path: RESOLV_CONF, state, createdDirs: [] } satisfies FilePrior;
    return prepareEntry(ctx, RESOLV_CONF, `${c.kind} ${c.key}`);
  },

  async apply(ctx, change) {
    const c = dnsChange(change);
    if (c.to === null) {
      return unresolved(`the Profile holds no DNS settings: ${RESOLV_CONF} is left as it is`);
    }
    const { state } = await probeEntry(ctx.transport, RESOLV_CONF, `${c.kind} ${c.key}`);
    if (state.kind === 'symlink') {
      return unresolved(
        `${RESOLV_CONF} is a symbolic link to ${displayValue(state.target)}, managed by a resolver service (systemd-resolved or resolvconf): left as it is`,
      );
    }
    if (state.kind !== 'absent' && state.kind !== 'file') {
      throw new HostStateConflictError(`${RESOLV_CONF} is not a file on the host`, c.kind, c.key);
    }
    const text =
      state.kind === 'file'
        ? (await runOk(ctx.transport, `reading ${RESOLV_CONF}`, sh`cat -- ${RESOLV_CONF}`)).stdout
        : '';
    if (state.kind === 'file' && sameDns(parseResolvConf(text), c.to))
      return unchanged(`${RESOLV_CONF} already holds those settings`);
    const attrs =
      state.kind === 'file'
        ? { mode: Number.parseInt(state.mode, 8), owner: state.owner, group: state.group }
        : { mode: 0o644, owner: 'root', group: 'root' };
    await writeFile(ctx.transport, RESOLV_CONF, Buffer.from(resolvConf(c.to), 'utf8'), attrs);
    return changed(
      `wrote ${RESOLV_CONF}: ${c.to.nameservers.length} nameservers, ${c.to.search.length} search domains, ${c.to.options.length} options`,
    );
  },

  async revert(ctx, change, prior) {
    const c = dnsChange(change);
    const was = prior as FilePrior;
    if (was.state.kind === 'symlink') return unchanged(`${RESOLV_CONF} was a link and was left as it is`);
    const result = await restoreFile(ctx.transport, was);
    return result === 'unchanged'
      ? unchanged(`${c.key}: ${RESOLV_CONF} is as it was`)
      : changed(`restored ${RESOLV_CONF}`);
  },
};
