// Runtime dependencies: language runtimes on the PATH and the shared libraries applications
// most often link against.
import type { z } from 'zod';
import type { RuntimeDependency } from '../../profile/schema.js';
import { lines, partsWith } from '../sections.js';
import type { ParseContext } from './context.js';

type Dependency = z.input<typeof RuntimeDependency>;

/**
 * Libraries worth naming in a Profile: the ones whose major version decides whether an
 * application binary runs on a clone (TLS, C++ runtime, compression, database clients, XML,
 * regular expressions). `ldconfig -p` lists a thousand more; they come with the packages.
 */
export const KEY_LIBRARIES = [
  'libssl',
  'libcrypto',
  'libstdc++',
  'libz',
  'libcurl',
  'libpq',
  'libmysqlclient',
  'libmariadb',
  'libxml2',
  'libpcre',
  'libpcre2-8',
  'libsqlite3',
  'libffi',
  'libyaml-0',
  'libgnutls',
  'libuv',
  'libsasl2',
  'libldap',
  'libgssapi_krb5',
  'libjpeg',
  'libpng16',
] as const;

const RUNTIME_NAMES: Readonly<Record<string, string>> = {
  node: 'node',
  python3: 'python',
  python: 'python',
  java: 'java',
  ruby: 'ruby',
  go: 'go',
  php: 'php',
  perl: 'perl',
  dotnet: 'dotnet',
};

const VERSION_PATTERNS: Readonly<Record<string, RegExp>> = {
  node: /^v?(\d+\.\d+\.\d+\S*)/m,
  python: /Python (\d+\.\d+\.\d+\S*)/,
  java: /(?:JAVA_VERSION="|version ")([^"]+)"/,
  ruby: /ruby (\d+\.\d+\.\d+\S*)/,
  go: /go version go(\d+(?:\.\d+)+\S*)/,
  php: /PHP (\d+\.\d+\.\d+\S*)/,
  perl: /^v?(\d+\.\d+\.\d+)/m,
  dotnet: /Microsoft\.NETCore\.App (\d+\.\d+\.\d+\S*)/,
};

/**
 * How a runtime was installed, from where it lives: version managers keep their trees in the
 * user's home, packages install under /usr, hand-installed ones go to /usr/local or /opt.
 */
export function managerOf(path: string, packageManager: string | undefined): string | undefined {
  const byTree: [string, string][] = [
    ['/.nvm/', 'nvm'],
    ['/.pyenv/', 'pyenv'],
    ['/.sdkman/', 'sdkman'],
    ['/.rbenv/', 'rbenv'],
    ['/.asdf/', 'asdf'],
    ['/.volta/', 'volta'],
    ['/.cargo/', 'cargo'],
    ['/snap/', 'snap'],
    ['/nix/store/', 'nix'],
  ];
  for (const [tree, manager] of byTree) if (path.includes(tree)) return manager;
  if (path.startsWith('/usr/local/') || path.startsWith('/opt/')) return 'tarball';
  if (/^\/(usr\/)?(s?bin|lib\d*)\//.test(path)) return packageManager;
  return undefined;
}

export function parseRuntimes(ctx: ParseContext, packageManager: string | undefined): Dependency[] {
  const section = ctx.section('runtimes');
  const found: Dependency[] = [];
  for (const part of section?.parts ?? []) {
    const [command, path, real] = part.header.split(' ');
    const generic = command === undefined ? undefined : RUNTIME_NAMES[command];
    if (generic === undefined || path === undefined) continue;
    const pattern = VERSION_PATTERNS[generic];
    const version = pattern?.exec(part.text)?.[1];
    if (version === undefined) {
      ctx.unknown(
        'runtimes',
        `${command} at ${path}: version not recognised in "${part.text.trim().slice(0, 80)}"`,
      );
      continue;
    }
    const name = generic === 'python' && version.startsWith('2.') ? 'python2' : generic;
    const manager = managerOf(real ?? path, packageManager) ?? managerOf(path, packageManager);
    found.push({ type: 'language', name, version, path, ...(manager === undefined ? {} : { manager }) });
  }
  return found;
}

/** The name's soname version: `libssl.so.1.1` → `1.1`; undefined for an unversioned `.so`. */
const sonameVersion = (soname: string): string | undefined => /\.so\.(\d[\w.]*)$/.exec(soname)?.[1];

export function parseLibraries(ctx: ParseContext, packageManager: string | undefined): Dependency[] {
  const section = ctx.section('libraries');
  if (!section) return [];
  const found: Dependency[] = [];
  const head = section.parts.find((p) => p.header === '')?.text ?? '';
  for (const line of lines(head)) {
    const m = /^libc (glibc|musl) (\S+)/.exec(line);
    if (m?.[1] && m[2]) found.push({ type: 'library', name: m[1], version: m[2] });
  }

  // soname → [path, flags]; where both a 64-bit and a 32-bit copy exist, the native one wins:
  // ldconfig marks it with the ABI after a comma, e.g. "(libc6,x86-64)".
  const bySoname = new Map<string, { path: string; native: boolean }>();
  for (const part of partsWith(section, 'ldconfig')) {
    for (const line of lines(part.text)) {
      const m = /^\s+(\S+) \(([^)]*)\)(?: => (\S+))?/.exec(line);
      if (!m?.[1] || !m[3]) continue;
      const native = (m[2] ?? '').includes(',');
      const prev = bySoname.get(m[1]);
      if (!prev || (!prev.native && native)) bySoname.set(m[1], { path: m[3], native });
    }
  }
  // Without ldconfig the library directories list both the soname link (libz.so.1) and the
  // file it points to (libz.so.1.3.1): the soname is the shorter of the two.
  for (const part of partsWith(section, 'ls')) {
    const paths = lines(part.text);
    const names = new Set(paths.map((p) => p.slice(p.lastIndexOf('/') + 1)));
    for (const path of paths) {
      const soname = path.slice(path.lastIndexOf('/') + 1);
      const shorter = [...names].some((n) => n !== soname && soname.startsWith(`${n}.`));
      if (!shorter && !bySoname.has(soname)) bySoname.set(soname, { path, native: true });
    }
  }
  for (const [soname, { path }] of [...bySoname].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const version = sonameVersion(soname);
    if (version === undefined) continue;
    const manager = managerOf(path, packageManager);
    found.push({
      type: 'library',
      name: soname,
      version,
      ...(path.startsWith('/') ? { path } : {}),
      ...(manager === undefined ? {} : { manager }),
    });
  }
  return found;
}
