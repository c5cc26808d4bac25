// Keeping secrets out of a captured Profile. A capture sees credentials (process environments,
// password hashes, private keys); the Profile only ever holds references to them, and the values
// travel beside it for the caller to store encrypted.
import { createHmac } from 'node:crypto';
import { ABOUT_A_SECRET_WORDS, looksSensitive, type SecretRef } from '../profile/schema.js';

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

// What credentials look like, written once as POSIX extended regular expressions (matched
// case-insensitively) so that the capture script can run them with `grep -i -E` on the host and
// the control side can run the very same patterns here: what the host flags and what
// `holdsCredentialLines` says cannot drift apart. Only the dialect both understand is used:
// bracket expressions, `[[:space:]]`, groups, `|`, `?`, `*`, `+`, `{n,}` — no `\s`, `\b`, `\d`,
// lookaround or back-references.
const SP = '[[:space:]]';
const NC = '[a-z0-9_.-]';
// A key whose value is a credential, as configuration files spell it: `db_password`,
// `spring.datasource.password`, `api-key`, `MYSQL_PWD`, `REDIS_PASS`, `SENTRY_DSN`, `NPM_AUTH`,
// `keystorePass`, `requirepass`. Short words (pass, pwd, auth, dsn, key) only as the last word;
// after a long one, only words that keep it a credential (SECRET_KEY_BASE, PASSWORD_HASH,
// DB_PASSWORD_PROD), so that `git-credential-osxkeychain:` in a Makefile is no credential.
const KEY_WORD =
  '(passw(or)?d|passphrase|secret|token|api[_.-]?key|apikey|private[_.-]?key|access[_.-]?key|credential|webhook|authorization)s?';
const KEY_SUFFIX =
  '([_.-](key|keys|base|hash|value|salt|prod|production|dev|development|staging|stage|test|live|[0-9]+)){0,2}';
const KEY_NAME = `(${NC}*${KEY_WORD}${KEY_SUFFIX}|([a-z0-9]${NC}*[_.-])?(pass|passwd|pwd|auth|dsn)|[a-z0-9]${NC}*[_.-]key|${NC}*(require|master|store|key|db|root|admin)pass|masterauth)`;
// A last word that says the value is about a credential, not the credential (ABOUT_A_SECRET).
const ABOUT = `[_.-](${ABOUT_A_SECRET_WORDS.join('|').toLowerCase()})`;
// The start of an assignment line: shell (`export`), YAML lists, PHP/Perl sigils, quoted keys.
const LEAD = `^${SP}*(-${SP}+)?((export|set|setenv|readonly|declare|typeset)${SP}+(-[a-z]+${SP}+)?)?[$:@"']?`;
const ASSIGN = `["']?${SP}*(=|:=|:|=>|\\?=)${SP}*`;

// Patterns that may start anywhere in a line start at a boundary (`://`, a quote, a character
// that cannot be part of a name): JavaScript's backtracking engine would otherwise try every
// position of a long run of letters, quadratic in a hostile 8 KiB line. grep is unaffected.
const B = '(^|[^a-z0-9_.-])';
const URL_CREDENTIALS_ERE = '://[^/[:space:]:@]*:[^/[:space:]@]+@';
// Values that betray a credential wherever they stand: a URL with a password or a key as its
// user (Sentry DSNs), a URL whose query carries a key, a webhook URL (the URL is the key), the
// formats of well-known tokens, a PEM private key, and `password=` inside a connection string
// or an option string.
const VALUE_RULES: readonly CredentialRule[] = [
  // Not a placeholder (`app:${DB_PASSWORD}@`), nor CVS's `:pserver:user@host`.
  {
    match: URL_CREDENTIALS_ERE,
    unless: '://[^/[:space:]:@]*:(\\$|%|\\{|<|\\*)|://:(pserver|ext|ssh|local|gserver|kserver):',
  },
  { match: '://[a-z0-9_-]{16,}@' },
  {
    match:
      '[?&](access_token|api[_-]?key|apikey|token|auth|secret|password|passwd|pwd|sig|signature|client_secret|key)=[^&[:space:]#"\']{8,}',
  },
  {
    match:
      'hooks\\.slack\\.com/(services|workflows|triggers)/|discord(app)?\\.com/api/webhooks/|webhook\\.office\\.com/webhook|/webhooks?/[^/[:space:]]*[a-z0-9_-]{24,}',
  },
  {
    match:
      '(akia|asia)[0-9a-z]{16}|gh[pousr]_[a-z0-9]{36}|github_pat_[a-z0-9_]{22,}|glpat-[a-z0-9_-]{20}|xox[abposr]-[a-z0-9-]{10,}|(sk|rk)_live_[a-z0-9]{16,}|aiza[0-9a-z_-]{35}|npm_[a-z0-9]{36}|(^|[^a-z0-9_-])eyj[a-z0-9_-]{10,}\\.eyj[a-z0-9_-]{10,}\\.[a-z0-9_-]{10,}',
  },
  { match: '-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY' },
  // An HTTP credential written out as a header (`proxy_set_header Authorization "Bearer ..."`).
  { match: `authorization["']?${SP}*:?${SP}*["']?(bearer|basic|token|digest)${SP}+[a-z0-9+/=._~-]{8,}` },
  {
    match: `(^|[;[:space:]"',_.-])(password|passwd|pwd|pass|accountkey|sharedaccesskey|sharedaccesssignature|secret|token|apikey|api_key|auth|authtoken|auth_token|access_token)${SP}*=${SP}*["']?[^[:space:]"';,$%{<*&/#]`,
    unless: `(password|passwd|pwd|pass|secret|token|auth)${SP}*=${SP}*(["']?(none|no|yes|true|false|on|off|null|0|1)([^a-z0-9_.-]|$)|[a-z_][a-z0-9_.]*${SP}*\\()`,
  },
];

/**
 * One way a line can hold a credential: it matches `match` and not `unless` (both POSIX EREs,
 * case-insensitive).
 */
export interface CredentialRule {
  readonly match: string;
  readonly unless?: string;
}

/**
 * The ways a line of a configuration file holds a credential: `DB_PASSWORD=...` in an env
 * file, `password = ...` in an ini file, `password: ...` in YAML, `"apiKey": "..."` in JSON,
 * `define('DB_PASSWORD', '...')` in PHP, `requirepass ...` for Redis, `keystorePass="..."` in
 * XML, and every value rule above. Values that only point at a credential (a path, `${VAR}`,
 * `{{ vault }}`, `%(x)s`, `<placeholder>`, `***`) or say yes or no are not credentials.
 */
export const CREDENTIAL_LINE_RULES: readonly CredentialRule[] = [
  {
    match: `${LEAD}${KEY_NAME}${ASSIGN}["']?[^[:space:]"'#;,]`,
    unless: [
      `${LEAD}${NC}*${ABOUT}${ASSIGN}`,
      // A public key is none; systemd's LoadCredential= and the like name a credential.
      `${LEAD}${NC}*public[_.-]?keys?${ASSIGN}`,
      `${LEAD}(load|import|condition|assert)credential(encrypted)?${ASSIGN}`,
      `${LEAD}${NC}*${ASSIGN}["']?(yes|no|true|false|on|off|none|null|nil|undef|disabled?|enabled?|required|optional|prompt|ask|0|1|-1)([^a-z0-9_.-]|$)`,
      // One character is a flag or a keyboard key (HTML's accesskey="n"), not a password.
      `${LEAD}${NC}*${ASSIGN}["']?[^[:space:]"'>=]["']?([[:space:];,>/]|$)`,
      // nsswitch.conf: `passwd: files systemd` names where the password database lives.
      `^${SP}*(passwd|shadow|gshadow)${SP}*:${SP}*(files|compat|db|nis|nisplus|ldap|sss|systemd|winbind|extrausers|cache)(${SP}|$)`,
      `${LEAD}${NC}*${ASSIGN}["']?(\\$[{(a-z_]|%\\(|%[a-z_]+%|\\{|\\[|<|@[a-z_]+@|\\*\\*\\*|xxx|\\.\\.\\.|enc\\(|vault:|!vault|!env|/|~/|\\./|file:|env:|x:)`,
      // Code reads it from somewhere: `password = os.getenv("DB_PASSWORD")`.
      `${LEAD}${NC}*${ASSIGN}[a-z_][a-z0-9_.]*${SP}*\\(`,
    ].join('|'),
  },
  { match: `^${SP}*(requirepass|masterauth)${SP}+["']?[^[:space:]"'#]` },
  { match: `define${SP}*\\(${SP}*["']${KEY_NAME}["']${SP}*,${SP}*["'][^"'$]` },
  {
    // An XML or HTML attribute needs four characters at least: accesskey="n" is a keyboard key.
    match: `"${KEY_NAME}"${SP}*:${SP}*"[^"$%{<*/0-9]|${B}${KEY_NAME}${SP}*=${SP}*"[^"$%{<*/][^"]{3,}"`,
    unless: `"${NC}*${ABOUT}"${SP}*:|${B}${NC}*${ABOUT}${SP}*=${SP}*"`,
  },
  { match: `<${KEY_NAME}>[^<[:space:]$%{/*][^<]*</`, unless: `<${NC}*${ABOUT}>` },
  // systemd units: Environment=NAME=value, several to a line, each possibly quoted.
  {
    match: `^${SP}*environment${SP}*=.*[[:space:]"'=]${KEY_NAME}=["']?[^[:space:]"'$]`,
    unless: `[[:space:]"'=]${NC}*${ABOUT}=`,
  },
  ...VALUE_RULES,
];

/**
 * Lines that are comments (`#`, `;`, `// `, `-- `, `!`, `*`, `/*`, `<!--`, `REM`): never
 * credentials. `//` needs a space after it: `//registry.npmjs.org/:_authToken=` is no comment.
 */
export const CREDENTIAL_LINE_SKIP = `^${SP}*(#|;|//(${SP}|$)|--${SP}|!|\\*|/\\*|<!--|rem${SP})`;

/** Files the capture scans for credential lines are below this size (as for private keys). */
export const CREDENTIAL_SCAN_MAX_BYTES = 64 * 1024;
/** Bytes of each line that are looked at, on the host (`cut -c`) and here alike. */
export const CREDENTIAL_LINE_MAX_BYTES = 8192;

/**
 * A POSIX ERE of the dialect above as a JavaScript RegExp, case-insensitive. `[:space:]` is the C
 * locale's six characters (JavaScript's `\\s` would also take U+00A0 and others).
 */
export const ereToRegExp = (ere: string): RegExp =>
  new RegExp(ere.replaceAll('[:space:]', ' \\t\\n\\v\\f\\r'), 'i');

const LINE_RULES = CREDENTIAL_LINE_RULES.map((r) => ({
  match: ereToRegExp(r.match),
  unless: r.unless === undefined ? undefined : ereToRegExp(r.unless),
}));
const LINE_SKIP = ereToRegExp(CREDENTIAL_LINE_SKIP);

const lineHoldsCredential = (line: string): boolean =>
  !LINE_SKIP.test(line) && LINE_RULES.some((r) => r.match.test(line) && !r.unless?.test(line));

/**
 * Whether a file's content holds credential lines (CREDENTIAL_LINE_RULES): such a file is a
 * secret, not configuration to keep in a general snapshot. Bytes are read one to a character,
 * as `grep` reads them in the C locale; binary content (a NUL byte) holds none. The capture
 * script runs the same rules on the host for files under CREDENTIAL_SCAN_MAX_BYTES.
 */
export function holdsCredentialLines(content: string | Uint8Array): boolean {
  const text = typeof content === 'string' ? content : Buffer.from(content).toString('latin1');
  if (text.includes('\0')) return false;
  for (const line of text.split('\n')) {
    if (lineHoldsCredential(line.slice(0, CREDENTIAL_LINE_MAX_BYTES))) return true;
  }
  return false;
}

// Environment values: the value rules, and an HTTP credential as the whole value.
const SENSITIVE_VALUE = [
  ...VALUE_RULES.map((r) => ({
    match: ereToRegExp(r.match),
    unless: r.unless === undefined ? undefined : ereToRegExp(r.unless),
  })),
  { match: /^(Bearer|Basic|Token) [A-Za-z0-9+/=._~-]{8,}$/i, unless: undefined },
];

/** Whether an environment variable must become a reference: by its name or by its value. */
export const envLooksSensitive = (name: string, value: string): boolean =>
  looksSensitive(name) || SENSITIVE_VALUE.some((r) => r.match.test(value) && !r.unless?.test(value));

/**
 * The store's key for keyedContentHash, derived from its key for secret digests with a label of
 * its own (that key's other inputs start with "name\0" or "value\0", so none can collide).
 */
export function contentHashKeyOf(keys: { readonly secretIdKey: Uint8Array }): Uint8Array {
  return createHmac('sha256', keys.secretIdKey).update('persona/v1 file content hash').digest();
}

/**
 * The content hash a Profile keeps for a file that holds credentials: an HMAC under a key of the
 * store's, of the file's SHA-256 (which the host computed; the content never passes through the
 * capture). A bare SHA-256 of a short password file can be brute-forced by whoever reads the
 * Profile; this one only by whoever holds the key. The same file under the same store key gives
 * the same hash, so an unchanged host still makes no new Profile version.
 */
export function keyedContentHash(key: Uint8Array, sha256: string): string {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(sha256)?.[1];
  if (hex === undefined) throw new Error(`not a sha256 content hash: ${sha256.slice(0, 80)}`);
  const mac = createHmac('sha256', key)
    .update('persona/v1 file content\0')
    .update(Buffer.from(hex, 'hex'))
    .digest('hex');
  return `hmac-sha256:${mac}`;
}

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

/**
 * Program source and documentation, which mention passwords without holding them
 * (`self.password = password`, README examples): not scanned for credential lines, unless
 * their name says they configure something (settings.py, config.js, wp-config.php is scanned
 * anyway). `find -name` globs, used by the script and by credentialScanCovers alike.
 */
export const NOT_CONFIGURATION_GLOBS = [
  ...['*.py', '*.pyi', '*.pyc', '*.js', '*.mjs', '*.cjs', '*.jsx', '*.ts', '*.tsx', '*.map', '*.go'],
  ...['*.c', '*.h', '*.cc', '*.cpp', '*.hpp', '*.java', '*.kt', '*.rs', '*.rb', '*.pl', '*.pm', '*.cs'],
  ...['*.swift', '*.scala', '*.lua', '*.css', '*.svg', '*.md', '*.rst', '*.adoc', '*.html', '*.htm'],
] as const;
/** Names that make a file of the kinds above configuration after all (`-iname` globs). */
export const CONFIGURATION_NAME_GLOBS = ['*conf*', '*setting*'] as const;

const NOT_CONFIGURATION_RES = NOT_CONFIGURATION_GLOBS.map((g) => globToRegExp(g, false));
const CONFIGURATION_NAME_RES = CONFIGURATION_NAME_GLOBS.map((g) => globToRegExp(g, true));

/**
 * Whether the capture looks for credential lines in a file of this path, by its name: not when
 * its path alone already makes it a credential, nor when it is program source or documentation
 * not named like configuration. Its size must also be under CREDENTIAL_SCAN_MAX_BYTES.
 */
export function credentialScanCovers(path: string): boolean {
  // The public files among those named like credentials are left out of the scan with them.
  if (fileLooksSensitive(path) || PUBLIC_FILES.has(path)) return false;
  const base = path.split('/').pop() ?? '';
  return (
    !NOT_CONFIGURATION_RES.some((re) => re.test(base)) || CONFIGURATION_NAME_RES.some((re) => re.test(base))
  );
}

// Command lines carry secrets too (`--password=...`, `mysql -p<pass>`, `sshpass -p <pass>`,
// `curl -u user:pass`, `-H 'Authorization: Bearer ...'`, a URL with credentials, an environment
// passed as JSON). Process commands in a Profile are informational, so the values are masked
// rather than moved to the secret store, always with the same mask so that an unchanged host
// still gives an unchanged Profile.
const MASK = '<redacted>';

// Programs whose short options take a password, by what ps shows as their name.
type Program = 'mysql' | 'sshpass' | 'redis-cli' | 'curl' | 'mongo' | 'ldap' | 'openssl';
const PROGRAMS: readonly (readonly [RegExp, Program])[] = [
  [/^(mysql(dump|admin|import|check|show|slap|pump|binlog|_upgrade)?|mariadb(-[a-z]+)?)$/, 'mysql'],
  [/^sshpass$/, 'sshpass'],
  [/^redis-cli$/, 'redis-cli'],
  [/^curl$/, 'curl'],
  [/^mongo(sh|dump|restore|export|import|stat|top|files)?$/, 'mongo'],
  [/^ldap(search|add|modify|delete|whoami|passwd|compare|modrdn|exop|url)$/, 'ldap'],
  [/^openssl$/, 'openssl'],
];
const programOf = (word: string): Program | undefined => {
  const base =
    word
      .replace(/^["']+|["']+$/g, '')
      .split('/')
      .pop() ?? '';
  return PROGRAMS.find(([re]) => re.test(base))?.[1];
};

/** Short options that take a password, per program (`-p` means a port to most others). */
const PASSWORD_OPTIONS: Readonly<Record<Program, { readonly attached: RegExp; readonly alone?: RegExp }>> = {
  // `mysql -p secret` prompts and takes `secret` as the database: only `-psecret` is a password.
  mysql: { attached: /^(-p)(.+)$/ },
  sshpass: { attached: /^(-p)(.+)$/, alone: /^-p$/ },
  'redis-cli': { attached: /^(-a)(.+)$/, alone: /^-a$/ },
  mongo: { attached: /^(-p)(.+)$/, alone: /^-p$/ },
  ldap: { attached: /^(-w)(.+)$/, alone: /^-w$/ },
  openssl: { attached: /^(-(?:passin|passout|pass|k)=)(.+)$/, alone: /^-(passin|passout|pass|k)$/ },
  curl: {
    attached: /^(-[uU]|--(?:proxy-)?user=)(.+)$/,
    alone: /^(-[uU]|--(?:proxy-)?user|--oauth2-bearer)$/,
  },
};

/**
 * The masked form of an option's value. A path or a pointer (`env:NAME`, `file:/x`, `fd:3`) is
 * not the secret and stays, so that `--password-file`-like uses read as they are; openssl's
 * `pass:` and curl's `user:` keep their prefix.
 */
function maskValue(value: string, program?: Program): string {
  if (/^(env|file|fd|stdin)(:|$)/.test(value) || value.startsWith('/')) return value;
  if (/^pass:/.test(value)) return `pass:${MASK}`;
  if (program === 'curl') {
    const colon = value.indexOf(':');
    return colon === -1 ? value : `${value.slice(0, colon + 1)}${MASK}`;
  }
  return MASK;
}

const LONG_OPTION = /^(--?)([A-Za-z][A-Za-z0-9_.-]+)(?:(=)(.*))?$/;

function redactWords(command: string): string {
  const words = command.split(/(\s+)/);
  let program: Program | undefined;
  let next: ((word: string) => string) | undefined;
  for (let i = 0; i < words.length; i += 2) {
    const word = words[i] ?? '';
    if (word === '') continue;
    if (next !== undefined) {
      if (!word.startsWith('-')) words[i] = next(word);
      next = undefined;
      if (!word.startsWith('-')) continue;
    }
    const named = programOf(word);
    if (named !== undefined) {
      program = named;
      continue;
    }
    const own = program === undefined ? undefined : PASSWORD_OPTIONS[program];
    const p = program;
    if (own?.alone?.test(word)) {
      next = (w) => maskValue(w, p);
      continue;
    }
    const attached = own?.attached.exec(word);
    if (attached?.[1] !== undefined && attached[2] !== undefined) {
      words[i] = `${attached[1]}${maskValue(attached[2], p)}`;
      continue;
    }
    const option = LONG_OPTION.exec(word);
    // `-xzf` is a cluster of short flags, not a name; a long name is two letters or more.
    if (option?.[2] !== undefined && (option[1] === '--' || option[2].length >= 3)) {
      if (!looksSensitive(option[2])) continue;
      // mysql's `--password` alone prompts; the next word is the database.
      if (program === 'mysql' && option[3] !== '=') continue;
      if (option[3] === '=') words[i] = `${option[1]}${option[2]}=${maskValue(option[4] ?? '')}`;
      else next = (w) => maskValue(w);
    }
  }
  return words.join('');
}

const ASSIGNMENT = /\b([A-Za-z_][A-Za-z0-9_]*)=/g;
const VALUE_END = /[\s;&'"]/;

/**
 * `NAME=value` with the value masked where NAME looks sensitive, wherever it stands: alone,
 * inside an option (`--env=DB_PASSWORD=...`) or a connection string (`Server=db;Password=...`).
 * A value that is not masked is looked into, not skipped, since it may hold the next assignment.
 */
function redactAssignments(text: string): string {
  let out = '';
  let last = 0;
  ASSIGNMENT.lastIndex = 0;
  for (let m = ASSIGNMENT.exec(text); m !== null; m = ASSIGNMENT.exec(text)) {
    if (m[1] === undefined || !looksSensitive(m[1])) continue;
    const start = m.index + m[0].length;
    let end = start;
    while (end < text.length && !VALUE_END.test(text[end] ?? ' ')) end++;
    out += `${text.slice(last, start)}${MASK}`;
    last = end;
    ASSIGNMENT.lastIndex = end;
  }
  return out + text.slice(last);
}
const SENSITIVE_JSON = /"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
const URL_CREDENTIALS = /(:\/\/[^/\s:@]*:)[^/\s@]+@/gi;
const URL_KEY_USER = /(:\/\/)[A-Za-z0-9_-]{16,}@/gi;
// Headers that carry a credential, as `curl -H` and `wget --header` take them.
const CREDENTIAL_HEADER =
  /(\b(?:Proxy-)?Authorization\s*:\s*(?:(?:Bearer|Basic|Digest|Token|Bot|Negotiate)\s+)?|\b(?:X-[A-Za-z0-9-]{0,40}(?:Api-?Key|Token|Auth[A-Za-z-]{0,40}|Secret)|Private-Token|Api-Key)\s*:\s*)[^\s'"]+/gi;
const WEBHOOK =
  /(hooks\.slack\.com\/(?:services|workflows|triggers)\/|discord(?:app)?\.com\/api\/webhooks\/)[^\s'"]+/gi;
const TOKEN_FORMATS = ereToRegExp(VALUE_RULES.find((r) => r.match.startsWith('(akia|asia)'))?.match ?? '$^');
// The boundary before a JWT becomes a look-behind here, so that masking keeps that character.
const TOKENS = new RegExp(TOKEN_FORMATS.source.replace('(^|[^a-z0-9_-])', '(?<![a-z0-9_-])'), 'gi');

/**
 * A command line with its credentials masked: values of sensitive-looking options
 * (`--db-password=`, `--requirepass`, `-storepass`), the password options of mysql, sshpass,
 * redis-cli, mongo, ldap tools, openssl and curl, sensitive `NAME=value` assignments and JSON
 * fields, credential headers, URL passwords and keys, webhook URLs and well-known token formats.
 * Masking is idempotent and everything else is left exactly as it was.
 */
export function redactCommand(command: string): string {
  return redactAssignments(redactWords(command))
    .replace(SENSITIVE_JSON, (m, name: string) => (looksSensitive(name) ? `"${name}": "${MASK}"` : m))
    .replace(CREDENTIAL_HEADER, (_m, head: string) => `${head}${MASK}`)
    .replace(URL_CREDENTIALS, `$1${MASK}@`)
    .replace(URL_KEY_USER, `$1${MASK}@`)
    .replace(WEBHOOK, `$1${MASK}`)
    .replace(TOKENS, MASK);
}
