// Keeping secrets out of a captured Profile. A capture sees credentials (process environments,
// password hashes, private keys); the Profile only ever holds references to them, and the values
// travel beside it for the caller to store encrypted.
import { looksSensitive, type SecretRef } from '../profile/schema.js';

export const SECRET_KINDS = ['env', 'password-hash', 'file', 'ssh-public-key'] as const;
export type SecretKind = (typeof SECRET_KINDS)[number];

/** A value the Profile refers to instead of holding it. */
export interface CapturedSecret {
  /** The reference the Profile holds; the caller stores the value under it. */
  readonly ref: SecretRef;
  readonly kind: SecretKind;
  /** What it came from: `scope:NAME` for a variable, a path for a file, a user name. */
  readonly source: string;
  /**
   * The value itself. Absent for files: their content never passes through the capture script;
   * the caller reads it from the host (getFile) and stores it encrypted, and the snapshot of the
   * host's files must not carry it in clear.
   */
  readonly value?: string;
}

/**
 * Collects secrets as the parsers meet them and hands out their references. Keys are
 * `<host>/<kind>/<source>` (`web-a/file/etc/ssl/private/web.key`, `web-a/env/node/DB_PASSWORD`), so that a host's secrets sit together in the secret store and a
 * second capture of the same host writes to the same keys.
 */
export class SecretCollector {
  private readonly found = new Map<string, CapturedSecret>();

  constructor(private readonly host: string) {}

  add(kind: SecretKind, source: string, value?: string): SecretRef {
    const ref: SecretRef = {
      provider: 'local',
      key: `${this.host}/${KEY_PREFIX[kind]}/${source.replace(/^\/+/, '')}`,
    };
    if (!this.found.has(ref.key)) {
      this.found.set(ref.key, { ref, kind, source, ...(value === undefined ? {} : { value }) });
    }
    return ref;
  }

  list(): CapturedSecret[] {
    return [...this.found.values()];
  }
}

const KEY_PREFIX: Readonly<Record<SecretKind, string>> = {
  env: 'env',
  'password-hash': 'password',
  file: 'file',
  'ssh-public-key': 'ssh',
};

// A value can betray a credential whatever its variable is called: a URL with a password in
// it, a PEM block, a bearer token.
const SENSITIVE_VALUE = [
  /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i,
  /-----BEGIN [A-Z0-9 ]*(PRIVATE KEY|CERTIFICATE REQUEST)/,
  /^(Bearer|Basic) [A-Za-z0-9+/=._-]{8,}$/,
];

/** Whether an environment variable must become a reference: by its name or by its value. */
export const envLooksSensitive = (name: string, value: string): boolean =>
  looksSensitive(name) || SENSITIVE_VALUE.some((re) => re.test(value));

/**
 * File names that hold credentials, as `find -name` globs (`-iname` when `ci`). The capture
 * script uses the same list to leave these files out of its hashing, and `fileLooksSensitive`
 * uses it on the control side; both come from here so the two cannot drift apart.
 */
export const SENSITIVE_FILE_GLOBS: readonly { readonly glob: string; readonly ci?: boolean }[] = [
  { glob: 'shadow' },
  { glob: 'shadow-' },
  { glob: 'gshadow' },
  { glob: 'gshadow-' },
  { glob: 'opasswd' },
  { glob: '*.key' },
  { glob: '*_key' },
  { glob: 'id_rsa' },
  { glob: 'id_dsa' },
  { glob: 'id_ecdsa' },
  { glob: 'id_ed25519' },
  { glob: 'id_ecdsa_sk' },
  { glob: 'id_ed25519_sk' },
  { glob: '*.p12' },
  { glob: '*.pfx' },
  { glob: '*.jks' },
  { glob: '*.keystore' },
  { glob: '*.kdbx' },
  { glob: '.env' },
  { glob: '.env.*' },
  { glob: '.netrc' },
  { glob: '.pgpass' },
  { glob: '.my.cnf' },
  { glob: '*passw*', ci: true },
  { glob: '*secret*', ci: true },
  { glob: '*token*', ci: true },
  { glob: '*credential*', ci: true },
];

/** Directories whose files are all treated as credentials (`/etc/ssl/private`, `/run/secrets`). */
export const SENSITIVE_DIRS = ['private', 'secrets'] as const;

/**
 * Well-known public files whose names happen to match a pattern above. They are configuration,
 * not credentials, and the Profile keeps their hashes.
 */
export const PUBLIC_FILES: ReadonlySet<string> = new Set([
  '/etc/passwd',
  '/etc/passwd-',
  '/etc/pam.d/passwd',
  '/etc/pam.d/chpasswd',
  '/etc/pam.d/common-password',
  '/etc/pam.d/password-auth',
  '/etc/security/pwquality.conf',
]);

const globToRegExp = (glob: string, ci: boolean): RegExp =>
  new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*')
      .replaceAll('?', '.')}$`,
    ci ? 'i' : '',
  );

const SENSITIVE_FILE_RES = SENSITIVE_FILE_GLOBS.map((g) => globToRegExp(g.glob, g.ci === true));

/** Whether a file's path alone says it holds credentials. */
export function fileLooksSensitive(path: string): boolean {
  if (PUBLIC_FILES.has(path)) return false;
  const parts = path.split('/');
  const base = parts[parts.length - 1] ?? '';
  if (SENSITIVE_FILE_RES.some((re) => re.test(base))) return true;
  return parts.slice(0, -1).some((dir) => (SENSITIVE_DIRS as readonly string[]).includes(dir));
}

// Command lines carry secrets too (`--password=...`, `-p<pass>`, a URL with credentials, an
// environment passed as JSON). Process commands in a Profile are informational, so the values
// are masked rather than moved to the secret store.
const MASK = '<redacted>';
const SENSITIVE_OPTION =
  /(--?[A-Za-z0-9_-]*(passw(or)?d|secret|token|api[_-]?key|credential)[A-Za-z0-9_-]*)([= ])(\S+)/gi;
const SENSITIVE_ASSIGNMENT = /\b([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g;
const SENSITIVE_JSON = /"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^/\s@]+@/gi;

/** A command line with the values of sensitive-looking options and assignments masked. */
export function redactCommand(command: string): string {
  return command
    .replace(SENSITIVE_OPTION, (_m, option: string, _w, _o, sep: string) => `${option}${sep}${MASK}`)
    .replace(SENSITIVE_ASSIGNMENT, (m, name: string) => (looksSensitive(name) ? `${name}=${MASK}` : m))
    .replace(SENSITIVE_JSON, (m, name: string) => (looksSensitive(name) ? `"${name}": "${MASK}"` : m))
    .replace(URL_CREDENTIALS, `$1${MASK}@`);
}
