// What capture tests set up inside a test host, so that they can assert capture found it:
// a web server with its own site, a user, an environment file, a kernel parameter, a
// firewall rule, a route. Each helper changes only the host (its files, its network
// namespace), never the control machine.
import { shellQuote as q } from '../../core/transport/shell.js';
import type { TestHost } from './harness.js';

export interface NginxSite {
  /** The body of index.html. */
  readonly page: string;
  readonly port?: number;
  /** The site's name: /etc/nginx/sites-available/<name>, /var/www/<name>. */
  readonly name?: string;
}

export interface InstalledSite {
  /** Where the site answers, from the control machine. */
  readonly url: string;
  readonly configPath: string;
  readonly documentRoot: string;
}

/**
 * Installs nginx-light, replaces the default site by one serving `page`, and starts nginx
 * inside the host (package scripts do not start it: see installPackages).
 */
export async function installNginxSite(host: TestHost, site: NginxSite): Promise<InstalledSite> {
  const name = site.name ?? 'persona';
  const port = site.port ?? 80;
  const documentRoot = `/var/www/${name}`;
  const configPath = `/etc/nginx/sites-available/${name}`;
  await host.installPackages(['nginx-light']);
  await host.writeFile(`${documentRoot}/index.html`, site.page);
  await host.writeFile(
    configPath,
    `server {\n\tlisten ${port} default_server;\n\tserver_name ${host.hostname};\n\troot ${documentRoot};\n\tindex index.html;\n}\n`,
  );
  await host.run(
    `rm -f /etc/nginx/sites-enabled/default
ln -sfn ../sites-available/${name} /etc/nginx/sites-enabled/${name}
nginx -t -q
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload; else nginx; fi`,
  );
  return { url: `http://${host.address}:${port}/`, configPath, documentRoot };
}

export interface UserOptions {
  readonly shell?: string;
  readonly uid?: number;
  /** Supplementary groups, created when missing. */
  readonly groups?: readonly string[];
  /** A public key line for ~/.ssh/authorized_keys. */
  readonly authorizedKey?: string;
}

export async function addUser(host: TestHost, name: string, options: UserOptions = {}): Promise<void> {
  const groups = options.groups ?? [];
  const args = [
    '--create-home',
    `--shell ${q(options.shell ?? '/bin/bash')}`,
    options.uid === undefined ? '' : `--uid ${options.uid}`,
    groups.length === 0 ? '' : `--groups ${q(groups.join(','))}`,
  ].filter(Boolean);
  await host.run(
    [
      ...groups.map((g) => `getent group ${q(g)} >/dev/null || groupadd ${q(g)}`),
      `useradd ${args.join(' ')} ${q(name)}`,
    ].join('\n'),
  );
  if (options.authorizedKey !== undefined) {
    const dir = `/home/${name}/.ssh`;
    await host.writeFile(`${dir}/authorized_keys`, `${options.authorizedKey.trim()}\n`, 0o600);
    await host.run(`chmod 700 ${q(dir)} && chown -R ${q(name)}: ${q(dir)}`);
  }
}

/**
 * Writes `KEY=value` lines as /etc/default files and systemd's EnvironmentFile= read them
 * (values quoted when they need it). Returns the file's content.
 */
export async function writeEnvironmentFile(
  host: TestHost,
  path: string,
  variables: Readonly<Record<string, string>>,
  mode = 0o640,
): Promise<string> {
  const content = Object.entries(variables)
    .map(([key, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
        throw new Error(`${key} is not an environment variable name`);
      return /^[A-Za-z0-9_./:@%+,=-]*$/.test(value)
        ? `${key}=${value}`
        : `${key}="${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
    })
    .join('\n');
  await host.writeFile(path, `${content}\n`, mode);
  return `${content}\n`;
}

/**
 * Sets a kernel parameter of the host, live and in /etc/sysctl.d (unless `persist` is
 * false). Only net.* parameters belong to a network namespace; every other one is the
 * control machine's own, so they are refused here (and read-only inside the host).
 */
export async function setSysctl(
  host: TestHost,
  key: string,
  value: string | number,
  options: { readonly persist?: boolean } = {},
): Promise<void> {
  if (!/^net\.[A-Za-z0-9_./-]+$/.test(key)) {
    throw new Error(`${key}: only net.* parameters are per host; any other would change the control machine`);
  }
  await host.run(`sysctl -q -w ${q(`${key}=${value}`)}`);
  if (options.persist !== false) {
    await host.run(`echo ${q(`${key} = ${value}`)} >> /etc/sysctl.d/90-persona-test.conf`);
  }
}

export interface NftRule {
  /** An nft rule statement, e.g. `tcp dport 8080 drop`. */
  readonly rule: string;
  readonly family?: 'inet' | 'ip' | 'ip6';
  readonly table?: string;
  readonly chain?: string;
  /** The hook of a chain created here; `input` when absent. */
  readonly hook?: 'input' | 'output' | 'forward';
}

/** Adds a rule to the host's own ruleset (nftables state is per network namespace). */
export async function addNftRule(host: TestHost, spec: NftRule): Promise<void> {
  const family = spec.family ?? 'inet';
  const table = spec.table ?? 'persona_test';
  const chain = spec.chain ?? 'input';
  const hook = spec.hook ?? 'input';
  await host.run(
    `nft add table ${family} ${table}
nft ${q(`add chain ${family} ${table} ${chain} { type filter hook ${hook} priority 0; policy accept; }`)}
nft add rule ${family} ${table} ${chain} ${spec.rule}`,
  );
}

/** Adds a route to the host's routing table, via its gateway unless told otherwise. */
export async function addRoute(
  host: TestHost,
  destination: string,
  options: { readonly via?: string; readonly metric?: number } = {},
): Promise<void> {
  const metric = options.metric === undefined ? '' : ` metric ${options.metric}`;
  await host.run(
    `ip route add ${q(destination)} via ${q(options.via ?? host.gateway)} dev ${host.interface}${metric}`,
  );
}

export interface WebHostOptions {
  readonly page: string;
  /** A credential in the application's environment file, which a capture seals. */
  readonly secret: string;
}

/**
 * The web host clones are tried on: nginx serving a site (run by its init script, as on a real
 * host, so a clone that starts it the same way runs the same command line), a user, an
 * environment file holding a credential, a sysctl, an nftables rule and a route through the
 * host's gateway.
 */
export async function setUpWebHost(host: TestHost, options: WebHostOptions): Promise<void> {
  await installNginxSite(host, { page: options.page });
  await host.run(
    'nginx -s quit; while [ -s /run/nginx.pid ]; do sleep 0.1; done; service nginx start >/dev/null',
  );
  await addUser(host, 'shop', { uid: 1001 });
  await writeEnvironmentFile(host, '/etc/default/shop-api', { PORT: '8080', DB_PASSWORD: options.secret });
  await setSysctl(host, 'net.ipv4.ip_forward', 1);
  await addNftRule(host, { rule: 'tcp dport 9100 drop' });
  await addRoute(host, '192.0.2.0/24');
}
