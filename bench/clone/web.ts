// The hosts of the clone benchmark: a source set up as the clone test's web host (nginx serving
// a site, a user, an environment file holding a credential, a sysctl, an nftables rule, a route
// through its gateway, a running application process) and bare targets made from the same root
// filesystem. Every host gets the same site route through its own gateway, as hosts of one
// network would, so that identity translation has a gateway on the target to map the source's
// routes to. Python and python3-apt are baked in for Ansible's modules, rsync for rsync.
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CapturedSecret, captureHost, type HostCapture } from '../../core/capture/collect.js';
import type { ContentSource } from '../../core/orchestrator/executors/executor.js';
import { checkPath } from '../../core/transport/paths.js';
import type { Transport } from '../../core/transport/transport.js';
import { createHost, type TestHost } from '../../test/hosts/harness.js';
import {
  addNftRule,
  addRoute,
  addUser,
  installNginxSite,
  setSysctl,
  writeEnvironmentFile,
} from '../../test/hosts/software.js';

export const HOST_PACKAGES = ['python3', 'python3-apt', 'rsync'] as const;
export const DOCUMENT_ROOT = '/var/www/persona';
/** The trees rsync copies: what a user would rsync to make one host's files another's. */
export const TREES = ['/etc', DOCUMENT_ROOT] as const;
const SITE_ROUTE = '198.51.100.0/24';

export const APPLICATION = {
  name: 'web',
  processes: ['nginx', 'shop-api'],
  paths: [DOCUMENT_ROOT],
} as const;

export async function bareHost(name: string): Promise<TestHost> {
  return createHost({
    name,
    packages: HOST_PACKAGES,
    setup: (h) => addRoute(h, SITE_ROUTE),
  });
}

export async function webHost(name: string): Promise<TestHost> {
  return createHost({
    name,
    hostname: 'web-a',
    packages: HOST_PACKAGES,
    setup: async (h) => {
      await addRoute(h, SITE_ROUTE);
      await installNginxSite(h, { page: '<h1>shop</h1>\n' });
      await addUser(h, 'shop', { uid: 1001 });
      await writeEnvironmentFile(h, '/etc/default/shop-api', {
        PORT: '8080',
        DB_PASSWORD: 'hunter2-in-a-file',
      });
      await setSysctl(h, 'net.ipv4.ip_forward', 1);
      await addNftRule(h, { rule: 'tcp dport 9100 drop' });
      await addRoute(h, '192.0.2.0/24');
      await h.run('cp /bin/sleep /usr/local/bin/shop-api');
      await h.run(
        'cd / && DB_PASSWORD=hunter2-in-env PORT=8080 setsid /usr/local/bin/shop-api 100000 >/dev/null 2>&1 &',
      );
    },
  });
}

/** The small change an incremental re-clone carries: one page edited, a few small files added. */
/** Four files of the document root edited or added; `round` > 1 edits them again, differently. */
export async function changeSite(host: TestHost, round = 1): Promise<string[]> {
  const added = ['about.html', 'robots.txt', 'contact.html'].map((f) => `${DOCUMENT_ROOT}/${f}`);
  const again = round > 1 ? `<!-- round ${round} -->\n` : '';
  await host.writeFile(`${DOCUMENT_ROOT}/index.html`, `<h1>shop</h1>\n<p>Now open on Sundays.</p>\n${again}`);
  await host.writeFile(added[0] as string, `<h1>About the shop</h1>\n${again}`);
  await host.writeFile(
    added[1] as string,
    `User-agent: *\nDisallow: /basket\n${again ? `# round ${round}\n` : ''}`,
  );
  await host.writeFile(added[2] as string, `<h1>Contact</h1>\n<p>shop@example.org</p>\n${again}`);
  return [`${DOCUMENT_ROOT}/index.html`, ...added];
}

/** `state`: as the clone workflow captures a target (its baseline), without the usage sample. */
export function capture(
  transport: Transport,
  name: string,
  contentHashKey: Uint8Array,
  what: 'state' | 'profile' = 'profile',
): Promise<HostCapture> {
  return captureHost(transport, {
    ...(what === 'state' ? { params: { usageSample: false } } : {}),
    name,
    capturedAt: new Date().toISOString(),
    contentHashKey,
    application: { name: APPLICATION.name, processes: APPLICATION.processes, paths: APPLICATION.paths },
  });
}

/**
 * File contents from a copy of the source's files on the control machine (standing in for the
 * snapshot store, which a clone reads in the workflow), and the capture's secrets held in
 * memory. A path never leaves the copy, symlinks included.
 */
export function treeContents(tree: string, secrets: readonly CapturedSecret[]): ContentSource {
  const root = realpathSync(tree);
  const inside = (path: string, field: string) => {
    checkPath(path, field);
    const real = realpathSync(join(root, path));
    if (real !== root && !real.startsWith(`${root}/`)) throw new Error(`${path} leaves the source copy`);
    return real;
  };
  return {
    read: async (_hash, path) => new Uint8Array(await readFile(inside(path, 'path'))),
    async readSealed(ref, field) {
      const key = ref.provider === 'local' ? ref.key : undefined;
      const secret = secrets.find((s) => s.ref.provider === 'local' && s.ref.key === key);
      if (secret === undefined) throw new Error(`${field}: the source's capture holds no such secret`);
      if (secret.value !== undefined) return new TextEncoder().encode(secret.value);
      // A file's sealed content never passes through the capture: it is the file itself.
      return new Uint8Array(await readFile(inside(secret.source, field)));
    },
  };
}
