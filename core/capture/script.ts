// The capture script: one POSIX sh program that reads everything a Profile holds in a single
// round trip, so a capture costs one SSH exec or one SSM command however much it gathers. Only
// when application data discovery proposes trees beyond the given paths (or programs the first
// run did not resolve) does a second, short run of the same script (PERSONA_TREES, below)
// measure, list and hash them.
//
// Output format (version 1), parsed by parseSections (sections.ts):
//
//   @@persona:begin <nonce> <version>
//   @@persona:<nonce>:section <name>
//   ...the section's text...
//   @@persona:<nonce>:part <header>        splits a section's text (one per file, process, ...)
//   @@persona:<nonce>:missing <reason>     a tool or file the section needed is absent
//   @@persona:<nonce>:note <text>          anything else worth reporting
//   @@persona:<nonce>:stderr <line>        the first lines of the section's standard error
//   @@persona:<nonce>:end <name> <status> <uptime-start> <uptime-end>
//   ...
//   @@persona:<nonce>:done <uptime-start> <uptime-end>
//
// or, on a host that is not Linux, `@@persona:<nonce>:unsupported <uname -s>` and nothing else.
// Every marker is written after a newline, so it starts a line whatever the previous output
// ended with; the parser removes that one newline. The nonce is random per run: content read
// from the host (a file, an environment value) cannot forge a marker.
//
// Rules the script keeps:
// - It never aborts: no `set -e`; a missing tool or file is a `missing` marker in its section.
// - It never prints file content except for what a section is about (os-release, resolv.conf,
//   passwd, group, sudoers, authorized_keys, firewall rules): configuration file content goes to
//   the snapshot store through a separate tar stream.
// - It prints secrets only where the Profile needs a reference to them: /etc/environment, the
//   environment of the declared application processes, and the password field of /etc/shadow.
//   The control side moves them out of the Profile (secrets.ts). Files that look like
//   credentials are not even hashed (their names are excluded from hashing, using
//   SENSITIVE_FILE_GLOBS), and their content never passes through the script.
// - It works as any user. What that user may not read (/etc/shadow, another user's process
//   environment, a root-only file or directory, the firewall) is a `missing` or `note` marker
//   saying "permission denied", or a part naming the entries, never a silently shorter section.
// - Everything goes to a temporary file and is printed at the end, so the usage sample (network
//   bytes per second) does not count the capture's own output travelling back.
// - Sections run in lanes, background jobs alongside one another (see lane() below), each
//   section's output in a file of its own, printed in one fixed order whatever finished first:
//   the output is the same as if they had run one after another (PERSONA_SERIAL=1 does that).
//   The usage sample's two readings are the script's first and last act, around every lane:
//   its window is the whole run (at least a tenth of a second), never a wait of its own. On a
//   host with persona-agent, the agent's last reading (kept between its cycles) is printed too,
//   so that rates can span from it to the end of the capture (parse/usage.ts).
//
// Sections, and what each falls back to when its first choice is missing:
//   os, release     uname; /etc/os-release, else /usr/lib/os-release, else /etc/*-release
//   cloud           DMI (/sys/class/dmi/id) and cloud-init's instance-data.json
//   packages        dpkg-query, else rpm -qa, else apk info -v
//   services        systemctl (when systemd is PID 1), else OpenRC runlevels, else /etc/init.d
//   interfaces      ip -d -j addr, else ip addr, else /sys/class/net
//   routes          ip -j route (all tables, v4 and v6), else ip route, else /proc/net/route
//   firewall        nft list ruleset, else iptables-save
//   dns             /etc/resolv.conf
//   sockets         ss -tuanp and ss -xlp, else /proc/net/{tcp,tcp6,udp,udp6}
//   mounts, df      /proc/mounts; df -P -k
//   block           lsblk -J -b, else /proc/partitions and /sys/block
//   cgroups         cgroup limit files of every v2 and v1 (cpu/memory/pids/blkio) mount
//   cpu, memory     /proc/cpuinfo, nproc; /proc/meminfo
//   ionice          ionice -p for each user-space process (at most 400)
//   runtimes        node, python3, python, java (its release file), ruby, go, php, perl, dotnet
//   libraries       getconf GNU_LIBC_VERSION or the musl loader; ldconfig -p, else lib dirs
//   environ         /etc/environment and /proc/<pid>/environ of PERSONA_APP_PROCESSES
//   files, hashes   find -printf (else stat) and sha256sum of /etc and PERSONA_CONFIG_PATHS
//   privkeys        files under 64 KiB there with a PEM private key header
//   credfiles       files under 64 KiB there with credential lines (secrets.ts), by name only
//   sysctl          writable keys under /proc/sys; key names set in sysctl.d files
//   modules         /proc/modules and /sys/module/<name>/parameters
//   users, groups   /etc/passwd, login.defs; /etc/group
//   shadow          user name and password field of /etc/shadow
//   sudoers         /etc/sudoers and /etc/sudoers.d/* (as sudo reads them)
//   sshkeys         ~/.ssh/authorized_keys{,2} of every user in /etc/passwd
//   processes       ps (procps, else busybox) and /proc/<pid>/{comm,cgroup,status}
//   sample-start, sample-end, loadavg   /proc/uptime, stat, net/dev, diskstats; /proc/loadavg;
//                   persona-agent's last reading (/var/lib/persona-agent/sample) and /sys/block
//   du              file count and bytes of data directories by type, each walk bounded
//   appdata         where the application's data may live, as raw material for parse/appdata.ts:
//                   cwd and the folders of open regular files of listening processes (ss -tulpn,
//                   else /proc/net socket inodes) and of PERSONA_APP_PROCESSES; root and include
//                   lines of /etc/nginx, DocumentRoot and Include lines of /etc/apache2 and
//                   /etc/httpd (files resolving inside them only); WorkingDirectory= and
//                   ExecStart= of the services enabled in /etc/systemd/system/*.wants; the
//                   program (/proc/<pid>/exe) of every process, for parse/programs.ts
//   programs        every absolute path those programs, the processes' command lines and the
//                   ExecStart= lines name (not the capture's own), resolved (links, readlink -f,
//                   size) and asked of dpkg-query -S, else rpm -qf, else apk --who-owns, at once
//
// With PERSONA_TREES set (the trees the control side took from appdata, one a line), the script
// runs a second, short pass instead: `treesize` measures each tree with du -s (bounded in time)
// and says whether it fits PERSONA_TREE_MAX_BYTES, then files, hashes, privkeys and credfiles
// run over the trees that fit (a tree inside another one that fits is walked once). The same
// pass, given PERSONA_PROGRAMS (programs of processes and services, from appdata), resolves each
// and asks the package manager which it owns (`programs`); a third one, given PERSONA_FILES (the
// programs no package owns), lists and hashes those files alone.
import { randomBytes } from 'node:crypto';
import { InvalidInputError, type Issue } from '../errors.js';
import { pathProblem } from '../transport/paths.js';
import { displayValue, shellQuote } from '../transport/shell.js';
import { KEY_LIBRARIES } from './parse/runtimes.js';
import { processNameProblem } from './process-name.js';
import {
  CONFIGURATION_NAME_GLOBS,
  CREDENTIAL_LINE_MAX_BYTES,
  CREDENTIAL_LINE_RULES,
  CREDENTIAL_LINE_SKIP,
  CREDENTIAL_SCAN_MAX_BYTES,
  NOT_CONFIGURATION_GLOBS,
  PUBLIC_FILES,
  SENSITIVE_DIRS,
  SENSITIVE_FILE_GLOBS,
} from './secrets.js';

export const SCRIPT_VERSION = 1;

/** Bounds the script applies; each can be changed per capture through CaptureParams. */
export const CAPTURE_LIMITS = {
  /**
   * Total bytes of configuration files hashed per capture. An application path is hashed only
   * when its whole size (`du -sk`) fits in what is left of the budget; /etc (a few MiB) always
   * does. sha256sum runs at 400 MB/s or more, so 128 MiB is well under half a second.
   */
  hashBudgetBytes: 128 * 1024 * 1024,
  /** Files larger than this are not hashed by the script; their hash comes from the snapshot. */
  hashFileMaxBytes: 8 * 1024 * 1024,
  /** Entries listed under /etc and the application paths together. */
  maxFiles: 20_000,
  /** Seconds each data-footprint walk (one per directory) may take before it is cut short. */
  duTimeoutSeconds: 1,
  /**
   * Trees found by discovery (parse/appdata.ts) measured and snapshotted per capture; the
   * registration's own paths do not count. More candidates than this are named as unknown.
   */
  maxTrees: 32,
  /**
   * Disk usage (`du -s`) above which a discovered tree is named as unknown with its size instead
   * of being snapshotted: a data directory of hundreds of GiB is not something to find by
   * accident. A path given with --path has no such bound.
   */
  treeMaxBytes: 1024 * 1024 * 1024,
  /** Seconds `du -s` may take on one discovered tree; a tree that takes longer is not snapshotted. */
  treeDuTimeoutSeconds: 5,
  /**
   * Programs no package owns (parse/programs.ts) snapshotted per capture, links to them not
   * counted; more are named as unknown.
   */
  maxPrograms: 64,
  /** Bytes above which such a program is named as unknown instead of snapshotted. */
  programMaxBytes: 64 * 1024 * 1024,
} as const;

// `find` arguments that leave credential-looking files out of hashing.
const findExclusions = [
  ...SENSITIVE_FILE_GLOBS.map((g) => `! ${g.ci ? '-iname' : '-name'} '${g.glob}'`),
  ...SENSITIVE_DIRS.map((d) => `! -path '*/${d}/*'`),
].join(' ');

// Public files the exclusions above would skip by name (passwd matches *passw*).
const publicFilesToHash = [...PUBLIC_FILES].join(' ');

// Program source and documentation are not scanned, unless named like configuration.
const configurationOnly = `\\( ! \\( ${NOT_CONFIGURATION_GLOBS.map((g) => `-name '${g}'`).join(' -o ')} \\) ${CONFIGURATION_NAME_GLOBS.map((g) => `-o -iname '${g}'`).join(' ')} \\)`;

// The credential-line rules of secrets.ts as grep arguments (`-e 'ere' ...`).
const greps = (patterns: readonly string[]): string => patterns.map((p) => `-e ${shellQuote(p)}`).join(' ');
const NEXT_LINE = '\n    ';
// Each rule with an exception: the numbers of the lines its match hits (m.N) and, only where
// there are any, of the lines its exception hits (u.N). The lines that hold a credential by it
// are the first less the second.
const credentialUnless = CREDENTIAL_LINE_RULES.filter((r) => r.unless !== undefined).map(
  (r, i) =>
    `grep -n -i -E ${greps([r.match])} lines >m.${i}; if [ -s m.${i} ]; then grep -n -i -E ${greps([r.unless ?? ''])} lines >u.${i}; else : >u.${i}; fi`,
);
const credentialUnlessFiles = credentialUnless.map((_r, i) => `m.${i} u.${i}`).join(' ');
const credentialPlain = greps(
  CREDENTIAL_LINE_RULES.filter((r) => r.unless === undefined).map((r) => r.match),
);

/**
 * Shell functions that print which files hold credential lines, by the rules of secrets.ts
 * (`holdsCredentialLines` gives the same answer for the same bytes): `cred_scan ROOT...` looks
 * at the files under the roots below CREDENTIAL_SCAN_MAX_BYTES that are not already credentials
 * by name. A first `grep -l` with every rule finds the candidates. Those that are not binary
 * are then read as the control side reads them, their lines cut and their comment lines
 * removed, into one file, a marker line between two files; each rule is then one grep over
 * that file. The number of processes does not grow with the number of candidates: a grep per
 * candidate and rule, then a copy per candidate, were most of a capture's time on the host.
 * Nothing of the content is printed, only the names of the files, in the order found. Needs $T.
 */
export const CREDENTIAL_SCAN_SH = String.raw`cred_check() {
  rm -rf "$T/cred"
  mkdir "$T/cred" || return 0
  : >"$T/cred/list"
  while IFS= read -r f; do if [ -f "$f" ] && [ -r "$f" ]; then printf '%s\n' "$f" >>"$T/cred/list"; fi; done
  if [ ! -s "$T/cred/list" ]; then rm -rf "$T/cred"; return 0; fi
  # Binary files (a NUL byte anywhere) are not scanned. GNU grep names them all in one run, in
  # which a probe, named first, says whether this grep can (-P); elsewhere each file's size is
  # compared with its size without NUL bytes.
  printf 'a\000b\n' >"$T/cred/probe"
  { printf '%s\000' "$T/cred/probe"; tr '\n' '\000' <"$T/cred/list"; } | xargs -0 grep -a -l -P '\x00' >"$T/cred/bin" 2>/dev/null
  if IFS= read -r f <"$T/cred/bin" && [ "$f" = "$T/cred/probe" ]; then
    grep -v -x -F -f "$T/cred/bin" "$T/cred/list" >"$T/cred/names"
  else
    : >"$T/cred/names"
    while IFS= read -r f; do
      a=$(wc -c < "$f" 2>/dev/null) || continue
      b=$(tr -d '\000' < "$f" | wc -c)
      [ $(( $a )) -eq $(( $b )) ] || continue
      printf '%s\n' "$f" >>"$T/cred/names"
    done <"$T/cred/list"
  fi
  # The marker between two files holds the run's nonce, as every marker does: no line of a
  # host's file can be it.
  _m="@@persona:$N:file"
  printf '%s\n' "$_m" >"$T/cred/sep"
  : >"$T/cred/lines"
  set --
  while IFS= read -r f; do
    set -- "$@" "$f" "$T/cred/sep"
    if [ $# -ge 512 ]; then
      cut -c -${CREDENTIAL_LINE_MAX_BYTES} -- "$@" 2>/dev/null | grep -v -i -E ${greps([CREDENTIAL_LINE_SKIP])} >>"$T/cred/lines"
      set --
    fi
  done <"$T/cred/names"
  if [ $# -gt 0 ]; then
    cut -c -${CREDENTIAL_LINE_MAX_BYTES} -- "$@" 2>/dev/null | grep -v -i -E ${greps([CREDENTIAL_LINE_SKIP])} >>"$T/cred/lines"
  fi
  (
    cd "$T/cred" || exit 0
    grep -n -i -E ${credentialPlain} lines >p
    ${credentialUnless.join(NEXT_LINE)}
    # A file holds credentials when one of its lines does: a line the plain rules hit, or one a
    # rule's match hits and its exception does not. Only line numbers are read from the greps.
    CRED_MARK=$_m awk '
      FILENAME == "p" { hit[$0 + 0] = 1; next }
      FILENAME ~ /^m\./ { m[substr(FILENAME, 3) SUBSEP ($0 + 0)] = 1; next }
      FILENAME ~ /^u\./ { u[substr(FILENAME, 3) SUBSEP ($0 + 0)] = 1; next }
      FILENAME == "lines" {
        if (!done) { for (k in m) if (!(k in u)) { split(k, a, SUBSEP); hit[a[2]] = 1 } done = 1 }
        if ($0 == ENVIRON["CRED_MARK"]) { f++; next }
        if (FNR in hit) held[f + 1] = 1
        next
      }
      FNR in held' p ${credentialUnlessFiles} lines names
  ) 2>/dev/null
  rm -rf "$T/cred"
}
cred_scan() {
  find "$@" -xdev -type f -size -${CREDENTIAL_SCAN_MAX_BYTES}c ${findExclusions} ${configurationOnly} -exec grep -l -i -E ${greps(CREDENTIAL_LINE_RULES.map((r) => r.match))} {} + 2>/dev/null | cred_check
}`;

const keyLibraryPattern = KEY_LIBRARIES.map((l) => l.replaceAll('+', '\\+')).join('|');

// In the template below `${...}` is TypeScript interpolation and `\${...}` is shell parameter
// expansion (the backslash is removed when the script is built).
const SCRIPT_SOURCE = String.raw`# Persona capture script, format ${SCRIPT_VERSION}. POSIX sh; see core/capture/script.ts.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\${PATH:+:$PATH}
export PATH
LC_ALL=C
export LC_ALL
umask 077
# Lists from the control side (application paths, process names) are one item a line: an item
# may hold spaces, quotes or wildcards, never a newline (captureEnv refuses control characters).
NL='
'
N=\${PERSONA_NONCE:-}
case $N in ''|*[!A-Za-z0-9-]*) N=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || echo "p$$-$(date +%s)") ;; esac
PERSONA_NONCE=$N
export PERSONA_NONCE
M="@@persona:$N"
printf '@@persona:begin %s %s\n' "$N" ${SCRIPT_VERSION}
S=$(uname -s 2>/dev/null)
if [ "$S" != Linux ]; then printf '\n%s:unsupported %s\n' "$M" "\${S:-unknown}"; exit 0; fi

T=$(mktemp -d 2>/dev/null)
if [ -z "$T" ] || [ ! -d "$T" ]; then
  T=/tmp/persona.$$
  mkdir -m 700 "$T" 2>/dev/null || { printf '\n%s:fatal cannot create a temporary directory\n' "$M"; exit 1; }
fi
trap 'rm -rf "$T"' EXIT
trap 'exit 130' HUP INT TERM
exec 3>&1 >"$T/out"

HASHKB=$(( \${PERSONA_HASH_BUDGET_BYTES:-${CAPTURE_LIMITS.hashBudgetBytes}} / 1024 ))
FILEKB=$(( \${PERSONA_HASH_FILE_MAX_BYTES:-${CAPTURE_LIMITS.hashFileMaxBytes}} / 1024 ))
MAXF=\${PERSONA_MAX_FILES:-${CAPTURE_LIMITS.maxFiles}}
DUT=\${PERSONA_DU_TIMEOUT:-${CAPTURE_LIMITS.duTimeoutSeconds}}

up() { read -r U _ < /proc/uptime; }
mark() { printf '\n%s:%s\n' "$M" "$*"; }
missing() { mark "missing $*"; }
note() { mark "note $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
TO=""
if have timeout; then TO="timeout"; fi
# A file of the kernel's (/proc: small, every line ended) printed without a process of its own.
rd() { while IFS= read -r _l; do printf '%s\n' "$_l"; done <"$1"; }
# A small text file printed exactly as cat would (a last line without its newline kept so), by
# the shell; fails as cat does when the file cannot be opened.
rdx() {
  {
    while IFS= read -r _l; do printf '%s\n' "$_l"; done
    if [ -n "$_l" ]; then printf '%s' "$_l"; fi
  } <"$1"
}
# The first 15 bytes of $1 (as comm holds a name) in _w, without a process.
w15() { _w=$1; while [ \${#_w} -gt 15 ]; do _w=\${_w%?}; done; }
# command -v without a subshell: the first executable regular file of that name in PATH, in P.
inpath() {
  P=""
  _o=$IFS
  IFS=:
  set -f
  for _d in $PATH; do
    case $_d in /*) ;; *) continue ;; esac
    if [ -f "$_d/$1" ] && [ -x "$_d/$1" ]; then P="$_d/$1"; break; fi
  done
  IFS=$_o
  set +f
  [ -n "$P" ]
}
# Runs a command under timeout(1) when the host has it.
bounded() { _s=$1; shift; if [ -n "$TO" ]; then timeout "$_s" "$@"; else "$@"; fi; }
sec() {
  _n=$1
  shift
  up
  _t=$U
  mark "section $_n"
  "$@" 2>"$T/err.$_n"
  _r=$?
  if [ -s "$T/err.$_n" ]; then head -n 5 "$T/err.$_n" | while IFS= read -r _l; do mark "stderr $_l"; done; fi
  up
  mark "end $_n $_r $_t $U"
}

# Set in the second pass, which hashes only what it was given.
P2=
FP=0
if find / -maxdepth 0 -printf '' >/dev/null 2>&1; then FP=1; fi
ROOTS=/etc
while IFS= read -r p; do
  if [ -n "$p" ] && [ -e "$p" ]; then ROOTS="$ROOTS$NL$p"; fi
done <<EOF
\${PERSONA_CONFIG_PATHS:-}
EOF
# Between these, an unquoted list expands to one word per line, each taken as it is (no globbing).
split_on() { IFS=$NL; set -f; }
split_off() { IFS=$OIFS; set +f; }
OIFS=$IFS
ME=$(id -u 2>/dev/null)
${CREDENTIAL_SCAN_SH}

AGENT_SAMPLE=/var/lib/persona-agent/sample
f_sample() {
  IFS= read -r _u </proc/uptime
  printf '%s\n' "$_u"
  # The window is measured from this reading (the lane runs in the script's own shell).
  if [ "$1" = start ]; then S0=\${_u%% *}; fi
  mark "part self"
  rd /proc/$$/stat
  mark "part stat"
  while IFS= read -r _l; do case $_l in "cpu "*) printf '%s\n' "$_l"; break ;; esac; done </proc/stat
  mark "part net"
  rd /proc/net/dev
  mark "part disk"
  rd /proc/diskstats
  # The agent counts disks by the names /sys/block lists: the end reading is measured against
  # the agent's the same way. Its file is one line of numbers: anything else, or a link (to
  # whatever file), is not printed at all.
  if [ "$1" = start ] && [ -f "$AGENT_SAMPLE" ] && [ ! -L "$AGENT_SAMPLE" ] && [ -r "$AGENT_SAMPLE" ]; then
    mark "part agent"
    head -n 1 "$AGENT_SAMPLE" | cut -c -256 | grep -E '^[0-9][0-9. ]*$'
    mark "part blocks"
    ls /sys/block 2>/dev/null
  fi
  return 0
}

f_os() {
  # One uname: it prints what it is asked in its own order, none of it with a blank.
  read -r un ur um <<EOF
$(uname -n -r -m)
EOF
  printf 'kernel=%s\n' "$ur"
  printf 'machine=%s\n' "$um"
  printf 'hostname=%s\n' "$un"
  printf 'uid=%s\n' "$ME"
  printf 'user=%s\n' "$(id -un 2>/dev/null)"
  if [ -r /etc/timezone ]; then printf 'timezone=%s\n' "$(head -n 1 /etc/timezone)"
  elif [ -L /etc/localtime ]; then printf 'localtime=%s\n' "$(readlink /etc/localtime)"; fi
  for f in /etc/default/locale /etc/locale.conf; do
    if [ -r "$f" ]; then sed -n 's/^LANG=/lang=/p' "$f"; fi
  done
  return 0
}

f_release() {
  for f in /etc/os-release /usr/lib/os-release; do
    if [ -r "$f" ]; then rdx "$f"; return 0; fi
  done
  missing "no /etc/os-release"
  for f in /etc/alpine-release /etc/debian_version /etc/redhat-release /etc/system-release; do
    if [ -r "$f" ]; then mark "part $f"; head -n 1 "$f"; fi
  done
  return 1
}

f_packages() {
  if have dpkg-query; then
    if have apt-get; then mark "part dpkg apt"; else mark "part dpkg dpkg"; fi
    dpkg-query -W -f='\${binary:Package}\t\${Version}\t\${Architecture}\t\${db:Status-Abbrev}\n'
  elif have rpm; then
    m=rpm
    if have dnf; then m=dnf; elif have yum; then m=yum; elif have zypper; then m=zypper; fi
    mark "part rpm $m"
    rpm -qa --queryformat '%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n'
  elif have apk; then
    mark "part apk apk"
    apk info -v 2>/dev/null
  else
    missing "no package manager found (dpkg-query, rpm, apk)"
    return 127
  fi
}

f_services() {
  if [ -d /run/systemd/system ] && have systemctl; then
    mark "part systemd units"
    systemctl list-units --type=service --all --no-legend --plain --no-pager
    mark "part systemd unit-files"
    systemctl list-unit-files --type=service --no-legend --no-pager
    mark "part systemd unit-hashes"
    set --
    for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
      for f in "$d"/*.service; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
    done
    if [ $# -gt 0 ] && have sha256sum; then sha256sum "$@"; fi
    return 0
  fi
  if [ -d /run/openrc ] || have openrc; then
    mark "part openrc"
    for f in /etc/init.d/*; do
      [ -x "$f" ] || continue
      s=\${f##*/}; e=0; r=0
      for l in /etc/runlevels/*/"$s"; do if [ -e "$l" ]; then e=1; fi; done
      if [ -e "/run/openrc/started/$s" ]; then r=1; fi
      printf '%s\t%s\t%s\n' "$s" "$e" "$r"
    done
    return 0
  fi
  if [ -d /etc/init.d ]; then
    mark "part sysvinit"
    for f in /etc/init.d/*; do
      [ -x "$f" ] || continue
      s=\${f##*/}; e=0; r=-
      case $s in README|skeleton|rc|rcS|functions|halt|reboot|single) continue ;; esac
      for l in /etc/rc[2345S].d/S[0-9][0-9]"$s"; do if [ -e "$l" ]; then e=1; fi; done
      for p in "/run/$s.pid" "/var/run/$s.pid" "/run/$s/$s.pid"; do
        if [ -r "$p" ]; then
          read -r q < "$p"
          if [ -n "$q" ] && [ -d "/proc/$q" ]; then r=1; else r=0; fi
          break
        fi
      done
      printf '%s\t%s\t%s\n' "$s" "$e" "$r"
    done
    return 0
  fi
  missing "no service manager found (systemd, openrc, /etc/init.d)"
  return 127
}

f_interfaces() {
  if have ip; then
    if ip -d -j addr show >"$T/ipj" 2>/dev/null && [ -s "$T/ipj" ]; then mark "part json"; cat "$T/ipj"; return 0; fi
    mark "part text"
    ip addr show
    return
  fi
  missing "ip not found: interfaces read from /sys/class/net, without addresses"
  mark "part sysfs"
  for d in /sys/class/net/*; do
    [ -e "$d" ] || continue
    printf '%s\t%s\t%s\t%s\n' "\${d##*/}" "$(cat "$d/address" 2>/dev/null)" "$(cat "$d/mtu" 2>/dev/null)" "$(cat "$d/operstate" 2>/dev/null)"
  done
  return 0
}

f_routes() {
  if have ip; then
    if ip -4 -j route show table all >"$T/r4" 2>/dev/null; then
      mark "part json"
      cat "$T/r4"
      echo
      ip -6 -j route show table all 2>/dev/null
      return 0
    fi
    mark "part text"
    ip -4 route show table all
    ip -6 route show table all 2>/dev/null
    return 0
  fi
  missing "ip not found: IPv4 routes read from /proc/net/route"
  mark "part proc"
  cat /proc/net/route
}

f_firewall() {
  if have nft; then
    if nft list ruleset >"$T/nft" 2>"$T/nfterr"; then mark "part nftables"; cat "$T/nft"; return 0; fi
    if [ "$ME" != 0 ]; then note "nft list ruleset failed: permission denied (capture as root): $(head -n 1 "$T/nfterr")"
    else note "nft list ruleset failed: $(head -n 1 "$T/nfterr")"; fi
  fi
  if have iptables-save; then
    if [ "$ME" != 0 ]; then missing "iptables-save needs root: permission denied (capture as root): the firewall ruleset is unknown"; return 1; fi
    mark "part iptables"; iptables-save; return
  fi
  if have nft; then return 1; fi
  missing "neither nft nor iptables-save found"
  return 127
}

f_dns() {
  if [ -r /etc/resolv.conf ]; then rdx /etc/resolv.conf; return 0; fi
  missing "no /etc/resolv.conf"
  return 1
}

SS_OK=0
f_sockets() {
  if have ss && ss -tuanp >"$T/ss" 2>/dev/null; then
    SS_OK=1
    if [ "$ME" != 0 ]; then note "the processes behind other users' sockets are hidden from this user: permission denied (capture as root)"; fi
    mark "part ss"
    cat "$T/ss"
    mark "part ss-unix"
    ss -xlp 2>/dev/null
    return 0
  fi
  if have ss; then note "ss failed: sockets read from /proc/net"; else missing "ss not found: sockets read from /proc/net, without process names"; fi
  for p in tcp tcp6 udp udp6; do
    if [ -r "/proc/net/$p" ]; then mark "part proc $p"; cat "/proc/net/$p"; fi
  done
  return 0
}

f_mounts() { rd /proc/mounts; }

f_block() {
  if have lsblk; then
    for o in NAME,KNAME,PATH,TYPE,SIZE,FSTYPE,UUID,LABEL,MOUNTPOINT,SERIAL,MODEL,ROTA,TRAN NAME,KNAME,TYPE,SIZE,FSTYPE,UUID,LABEL,MOUNTPOINT; do
      if lsblk -J -b -o "$o" >"$T/lsblk" 2>/dev/null; then mark "part lsblk"; cat "$T/lsblk"; return 0; fi
    done
    note "lsblk -J failed: volumes read from /proc/partitions"
  else
    missing "lsblk not found: volumes read from /proc/partitions"
  fi
  mark "part partitions"
  cat /proc/partitions
  mark "part sysblock"
  ls /sys/block 2>/dev/null
  return 0
}

f_df() { bounded 2 df -P -k; }

f_cgroups() {
  found=0 seen=
  # Every cgroup hierarchy the host mounts, wherever it is (v1 controllers are not always at
  # /sys/fs/cgroup/<name>); a mount point with a blank (an octal escape here) is not read.
  while read -r dev mp type opts rest; do
    case $mp in *\\*) continue ;; esac
    case $type in
      cgroup2)
        [ -f "$mp/cgroup.controllers" ] || continue
        found=1
        mark "part v2 $mp"
        find "$mp" -maxdepth 3 -type f \( -name cpu.max -o -name cpu.weight -o -name memory.max -o -name io.weight -o -name pids.max \) -exec grep -H '' {} + 2>/dev/null
        ;;
      cgroup)
        found=1
        case ",$opts," in *,cpu,* | *,memory,* | *,pids,* | *,blkio,*) ;; *) continue ;; esac
        # A hierarchy mounted twice is read once.
        case " $seen " in *" $opts "*) continue ;; esac
        seen="$seen $opts"
        mark "part hierarchy $mp"
        find "$mp" -maxdepth 3 -type f \( -name cpu.cfs_quota_us -o -name cpu.cfs_period_us -o -name cpu.shares -o -name memory.limit_in_bytes -o -name pids.max -o -name blkio.weight -o -name blkio.bfq.weight \) -exec grep -H '' {} + 2>/dev/null
        ;;
    esac
  done </proc/self/mounts
  [ "$found" = 1 ] && return 0
  missing "no cgroup filesystem mounted"
  return 1
}

f_cpu() {
  printf 'online=%s\n' "$(grep -c '^processor' /proc/cpuinfo)"
  if have nproc; then printf 'nproc=%s\n' "$(nproc)"; fi
  grep -m 1 -E '^(model name|Hardware|cpu model|cpu)[[:space:]]*:' /proc/cpuinfo | sed 's/^[^:]*:[[:space:]]*/model=/'
  return 0
}

f_memory() { rd /proc/meminfo; }

f_ionice() {
  if ! have ionice; then missing "ionice not found: I/O priorities unknown"; return 127; fi
  i=0
  for d in /proc/[0-9]*; do
    [ -e "$d/exe" ] || continue
    i=$((i + 1))
    if [ $i -gt 400 ]; then note "I/O priority read for the first 400 processes only"; break; fi
    p=\${d#/proc/}
    if o=$(ionice -p "$p" 2>/dev/null); then printf '%s %s\n' "$p" "$o"; fi
  done
  return 0
}

f_runtimes() {
  for r in node python3 python java ruby go php perl dotnet; do
    inpath "$r" || continue
    p=$P
    real=$(readlink -f "$p" 2>/dev/null || echo "$p")
    mark "part $r $p $real"
    case $r in
      node) bounded 2 "$p" --version ;;
      python3|python) bounded 2 "$p" --version 2>&1 ;;
      java)
        h=\${real%/bin/java}
        if [ -r "$h/release" ]; then grep '^JAVA_VERSION=' "$h/release"; else bounded 3 "$p" -version 2>&1 | head -n 1; fi ;;
      ruby) bounded 2 "$p" --version ;;
      go) bounded 2 "$p" version ;;
      php) bounded 2 "$p" -v 2>/dev/null | head -n 1 ;;
      perl) bounded 2 "$p" -e 'printf "%vd\n", $^V' ;;
      dotnet) bounded 3 "$p" --list-runtimes 2>/dev/null | head -n 3 ;;
    esac
  done
  return 0
}

f_libraries() {
  if have getconf && v=$(getconf GNU_LIBC_VERSION 2>/dev/null); then
    printf 'libc %s\n' "$v"
  else
    for l in /lib/ld-musl-*.so.1; do
      if [ -e "$l" ]; then printf 'libc musl %s\n' "$("$l" 2>&1 | sed -n 's/^Version //p')"; fi
    done
  fi
  if have ldconfig && ldconfig -p >"$T/ld" 2>/dev/null; then
    mark "part ldconfig"
    grep -E '^[[:space:]]+(${keyLibraryPattern})\.so' "$T/ld"
    return 0
  fi
  mark "part ls"
  for d in /lib /usr/lib /usr/local/lib /lib64 /usr/lib64 /lib/*-linux-gnu /usr/lib/*-linux-gnu; do
    if [ -d "$d" ]; then ls "$d" 2>/dev/null | grep -E '^(${keyLibraryPattern})\.so' | sed "s|^|$d/|"; fi
  done
  return 0
}

f_environ() {
  if [ -r /etc/environment ]; then mark "part file /etc/environment"; sed 's/^/= /' /etc/environment; fi
  [ -n "\${PERSONA_APP_PROCESSES:-}" ] || return 0
  # comm holds the first 15 bytes of a name.
  W=""
  split_on
  for w in $PERSONA_APP_PROCESSES; do w15 "$w"; W="$W$NL$_w"; done
  split_off
  for d in /proc/[0-9]*; do
    IFS= read -r c 2>/dev/null < "$d/comm" || continue
    split_on
    for w in $W; do
      [ "$c" = "$w" ] || continue
      # Another user's process keeps its environment from all but root: say so, by pid.
      if ! tr '\n\0' '\036\n' < "$d/environ" >"$T/env" 2>/dev/null; then
        if [ -d "$d" ]; then mark "part denied \${d#/proc/} $c"; fi
        break
      fi
      if grep -qxF "PERSONA_NONCE=$N" "$T/env"; then break; fi
      mark "part pid \${d#/proc/} $c"
      sed 's/^/= /' "$T/env"
      break
    done
    split_off
  done
  return 0
}

f_files() {
  if [ "$FP" = 1 ]; then
    mark "part printf $MAXF"
    split_on
    find $ROOTS -xdev \( -type f -o -type d -o -type l \) -printf '%y\t%m\t%u\t%g\t%s\t%l\t%p\n' 2>/dev/null | head -n $((MAXF + 1))
    split_off
  elif have stat; then
    mark "part stat $MAXF"
    split_on
    find $ROOTS -xdev \( -type f -o -type d -o -type l \) -exec stat -c '%F	%a	%U	%G	%s	%N' {} + 2>/dev/null | head -n $((MAXF + 1))
    split_off
  else
    missing "neither find -printf nor stat: file metadata unknown"
    return 127
  fi
  # Not root: name the files that cannot be read and the directories that cannot be listed,
  # so that the Profile says what it is missing instead of being silently shorter.
  if [ "$ME" != 0 ]; then
    mark "part unreadable"
    split_on
    find $ROOTS -xdev \( -type f -o -type d \) -exec sh -c 'for f do if [ -d "$f" ]; then { [ -r "$f" ] && [ -x "$f" ]; } || printf "d\t%s\n" "$f"; elif [ ! -r "$f" ]; then printf "f\t%s\n" "$f"; fi; done' sh {} + 2>/dev/null
    split_off
  fi
  return 0
}

f_hashes() {
  if ! have sha256sum; then missing "sha256sum not found: configuration files have no content hash"; return 127; fi
  left=$HASHKB
  split_on
  for r in $ROOTS; do
    kb=$(du -sk -- "$r" 2>/dev/null | cut -f1)
    kb=\${kb:-0}
    if [ "$kb" -gt "$left" ]; then note "hash budget exhausted: $r ($kb KiB) not hashed"; continue; fi
    left=$((left - kb))
    find "$r" -xdev -type f -size -"$FILEKB"k ${findExclusions} -print0 2>/dev/null | xargs -0 -r sha256sum 2>/dev/null
  done
  split_off
  if [ -z "$P2" ]; then
    # One sha256sum for all of them: its lines are the same as one run per file.
    set --
    for f in ${publicFilesToHash}; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
    if [ $# -gt 0 ]; then sha256sum "$@"; fi
  fi
  # What is left of the budget, for the pass over the trees discovery finds.
  mark "part left $left"
  return 0
}

f_privkeys() {
  split_on
  find $ROOTS -xdev -type f -size -64k -exec grep -l -E -e '-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY' {} + 2>/dev/null
  split_off
  return 0
}

f_credfiles() {
  split_on
  cred_scan $ROOTS
  split_off
  return 0
}

f_sysctl() {
  if [ ! -d /proc/sys ]; then missing "no /proc/sys"; return 1; fi
  mark "part live"
  find /proc/sys -xdev -type f -perm -600 ! -name stable_secret ! -name tcp_fastopen_key -exec grep -H '' {} + 2>"$T/syserr"
  n=$(grep -c 'Permission denied' "$T/syserr")
  if [ "$n" -gt 0 ]; then note "$n kernel parameters could not be read: permission denied (capture as root)"; fi
  mark "part configured"
  set --
  for f in /etc/sysctl.conf /etc/sysctl.d/*.conf /run/sysctl.d/*.conf /usr/local/lib/sysctl.d/*.conf /usr/lib/sysctl.d/*.conf /lib/sysctl.d/*.conf; do
    if [ -r "$f" ]; then set -- "$@" "$f"; fi
  done
  if [ $# -gt 0 ]; then sed -n 's/^[[:space:]]*-\{0,1\}\([A-Za-z0-9_][A-Za-z0-9_./*-]*\)[[:space:]]*=.*/\1/p' "$@"; fi
  return 0
}

f_modules() {
  if [ ! -r /proc/modules ]; then missing "no /proc/modules: the kernel has no loadable module support, or hides it from this host"; return 127; fi
  rd /proc/modules
  mark "part parameters"
  set --
  while read -r m _; do
    for p in /sys/module/"$m"/parameters/*; do if [ -r "$p" ]; then set -- "$@" "$p"; fi; done
  done < /proc/modules
  if [ $# -gt 0 ]; then grep -H '' "$@" 2>/dev/null; fi
  return 0
}

f_users() {
  rdx /etc/passwd || return 1
  mark "part login.defs"
  grep -E '^[[:space:]]*(UID_MIN|SYS_UID_MAX)[[:space:]]' /etc/login.defs 2>/dev/null
  return 0
}

f_groups() { rdx /etc/group; }

f_shadow() {
  if [ -r /etc/shadow ]; then cut -d: -f1,2 /etc/shadow; return 0; fi
  if [ -e /etc/shadow ]; then missing "cannot read /etc/shadow: permission denied (capture as root): password states unknown"
  else missing "no /etc/shadow: password states unknown"; fi
  return 1
}

f_sudoers() {
  set --
  if [ -f /etc/sudoers ]; then set -- /etc/sudoers; fi
  for f in /etc/sudoers.d/*; do
    case \${f##*/} in *.*|*~) continue ;; esac
    if [ -f "$f" ]; then set -- "$@" "$f"; fi
  done
  for f in "$@"; do
    if [ ! -r "$f" ]; then missing "cannot read $f: permission denied (capture as root): its sudo rules are unknown"; continue; fi
    mark "part $f"
    rdx "$f"
  done
  if [ -d /etc/sudoers.d ] && { [ ! -r /etc/sudoers.d ] || [ ! -x /etc/sudoers.d ]; }; then
    missing "cannot list /etc/sudoers.d: permission denied (capture as root): its sudo rules are unknown"
  fi
  return 0
}

f_sshkeys() {
  while IFS=: read -r u _ _ _ _ h _; do
    [ -n "$h" ] || continue
    # A home or ~/.ssh this user cannot enter hides whether keys are there at all.
    if { [ -d "$h" ] && [ ! -x "$h" ]; } || { [ -d "$h/.ssh" ] && [ ! -x "$h/.ssh" ]; }; then
      note "cannot read the authorized keys of $u ($h): permission denied (capture as root)"
      continue
    fi
    for k in "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"; do
      if [ -f "$k" ] && [ ! -r "$k" ]; then note "cannot read $k: permission denied (capture as root)"; continue; fi
      if [ -f "$k" ]; then mark "part $u $k"; rdx "$k"; fi
    done
  done < /etc/passwd
  return 0
}

f_processes() {
  mark "part self"
  {
    grep -l -F "PERSONA_NONCE=$N" /proc/[0-9]*/environ 2>/dev/null
    # The shells the transport wrapped the capture in (SSM's agent runs it from a script of its
    # own, without the nonce) are the capture's too: the chain of shells right above it.
    _p=$$
    while :; do
      # The parent is the second field after the command name, which ends at the last ") ".
      _st=""
      IFS= read -r _st 2>/dev/null <"/proc/$_p/stat"
      _st=\${_st##*) }
      _st=\${_st#* }
      _p=\${_st%% *}
      case "$_p" in ''|0|1|*[!0-9]*) break ;; esac
      _c=""
      IFS= read -r _c 2>/dev/null <"/proc/$_p/comm"
      case "$_c" in
        sh|dash|bash|ash|busybox|env) echo "/proc/$_p/environ" ;;
        *) break ;;
      esac
    done
  } | tee "$T/pself"
  # The rows of the capture's own processes named above are left out: each lane is a copy of
  # the script's shell, whose command line is the whole script. A copy forked after the scan
  # above (a lane, or a subshell of one: a copy of the script whose parent is one of them; a
  # host process cannot have the capture's shell as its parent) keeps its row with the script
  # cut from it, so that its children (a grep it runs, alive or exiting) are still found as the
  # capture's by their parent (parse/processes.ts).
  psown() { awk 'FILENAME == ARGV[1] { sub(/^\/proc\//, ""); sub(/\/environ$/, ""); self[$0] = 1; next } $1 in self { next } { i = index($0, "# Persona capture script, format "); if (i > 0 && ($2 in self)) $0 = substr($0, 1, i - 1) "-"; print }' "$T/pself" "$T/ps"; }
  if ps -eo pid=,ppid=,user:32=,ni=,pcpu=,rss=,args= >"$T/ps" 2>/dev/null; then
    mark "part ps procps"
    psown
  elif ps -o pid,ppid,user,nice,rss,args >"$T/ps" 2>/dev/null; then
    mark "part ps busybox"
    psown
  else
    missing "ps not usable: processes unknown"
    return 127
  fi
  mark "part comm"
  grep -H '' /proc/[0-9]*/comm 2>/dev/null
  mark "part cgroup"
  grep -H '' /proc/[0-9]*/cgroup 2>/dev/null
  mark "part affinity"
  grep -H '^Cpus_allowed_list' /proc/[0-9]*/status 2>/dev/null
  return 0
}

# Where the application's data may live: raw material only. Every path printed here is checked,
# reduced and bounded by the control side (parse/appdata.ts) before anything uses it.
f_appdata() {
  : >"$T/apids"
  : >"$T/akept"
  # What the programs section (first pass) takes its paths from: the processes' programs and
  # the services' ExecStart= words.
  : >"$T/aexe"
  : >"$T/awords"
  # The sockets section's listing (ss -tuanp) holds the listening sockets: ss -p walks every
  # process's descriptors, so it runs again only when that listing is not there.
  if [ "$SS_OK" = 1 ] || { have ss && ss -tuanp >"$T/ss" 2>/dev/null; }; then
    # Every pid= of a listening line (ss names each process that holds the socket).
    awk '$2 == "LISTEN" || $2 == "UNCONN" {
      s = $0
      while (match(s, /pid=[0-9]+/)) { print substr(s, RSTART + 4, RLENGTH - 4) " listening"; s = substr(s, RSTART + RLENGTH) }
    }' "$T/ss" >>"$T/apids"
    if [ "$ME" != 0 ]; then note "the processes behind other users' listening sockets are hidden from this user: permission denied (capture as root): the trees they run from are not looked for"; fi
  else
    # Listening TCP sockets and unconnected UDP ones, by inode, found among each process's descriptors.
    awk 'FNR > 1 && ($4 == "0A" || $4 == "07") { print "socket:[" $10 "]" }' /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | sort -u >"$T/ainodes"
    if [ -s "$T/ainodes" ]; then
      for d in /proc/[0-9]*; do
        if ls -l "$d/fd" 2>/dev/null | grep -q -F -f "$T/ainodes"; then printf '%s listening\n' "\${d#/proc/}" >>"$T/apids"; fi
      done
    fi
  fi
  if [ -n "\${PERSONA_APP_PROCESSES:-}" ]; then
    W=""
    split_on
    for w in $PERSONA_APP_PROCESSES; do w15 "$w"; W="$W$NL$_w"; done
    split_off
    for d in /proc/[0-9]*; do
      IFS= read -r c 2>/dev/null < "$d/comm" || continue
      split_on
      for w in $W; do if [ "$c" = "$w" ]; then printf '%s application\n' "\${d#/proc/}" >>"$T/apids"; break; fi; done
      split_off
    done
  fi
  # One line per process, with every reason it was picked.
  awk '!($1 in w) { o[++n] = $1; w[$1] = $2; next } index("," w[$1] ",", "," $2 ",") == 0 { w[$1] = w[$1] "," $2 } END { for (i = 1; i <= n; i++) print o[i], w[o[i]] }' "$T/apids" | sort -n >"$T/apids.u"
  # The capture's own processes among them, by a first look at every environment in one grep;
  # only those it names are looked at entry by entry.
  set --
  while read -r p why; do if [ $# -le 256 ]; then set -- "$@" "/proc/$p/environ"; fi; done <"$T/apids.u"
  aself=""
  if [ $# -gt 0 ]; then aself=$(grep -l -F "PERSONA_NONCE=$N" "$@" 2>/dev/null); fi
  n=0
  denied=0
  while read -r p why; do
    [ -d "/proc/$p" ] || continue
    case "$NL$aself$NL" in *"$NL/proc/$p/environ$NL"*) s=1 ;; *) s=0 ;; esac
    if [ $s = 1 ] && tr '\000' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qxF "PERSONA_NONCE=$N"; then continue; fi
    n=$((n + 1))
    if [ $n -gt 256 ]; then note "the trees of the first 256 listening and application processes only are looked for"; break; fi
    # Written straight out: a path may end in a newline, which $(...) would take away.
    if ! readlink "/proc/$p/cwd" >"$T/acwd" 2>/dev/null; then denied=$((denied + 1)); continue; fi
    mark "part cwd $p $why"
    cat "$T/acwd"
    # With find -printf, the open files of every process are read at once, below.
    if [ "$FP" = 1 ]; then printf '%s %s\n' "$p" "$why" >>"$T/akept"; continue; fi
    : >"$T/afd"
    i=0
    for f in "/proc/$p/fd"/*; do
      i=$((i + 1))
      if [ $i -gt 1024 ]; then break; fi
      if [ -f "$f" ]; then printf '%s\000' "$(readlink "$f" 2>/dev/null)" >>"$T/afd"; fi
    done
    c=$(tr -cd '\000' < "$T/afd" | wc -c)
    c=$((c))
    if [ "$c" -gt 0 ]; then
      # The folders of the open files, each once: ten thousand files in one folder are one line.
      # A newline in a name becomes \036, which the control side refuses with the path.
      mark "part fd $p $why $c"
      tr '\n\000' '\036\n' < "$T/afd" | sed 's|/[^/]*$||' | sort -u | head -n 65
    fi
  done <"$T/apids.u"
  if [ -s "$T/akept" ]; then
    # One find for every process kept above, then, for each in the same order, how many
    # regular files it holds open and their folders, each once, sorted, at most 65: as one
    # process at a time gave them. A newline in a name becomes \036.
    set --
    while read -r p why; do set -- "$@" "/proc/$p/fd"; done <"$T/akept"
    find "$@" -mindepth 1 -maxdepth 1 -xtype f -printf '%h\t%l\000' 2>/dev/null | tr '\n\000' '\036\n' |
      AC="$T/acount" awk '{
        i = index($0, "\t")
        p = substr($0, 7, i - 10)
        f = substr($0, i + 1)
        sub(/\/[^\/]*$/, "", f)
        c[p]++
        print p "\t" f
      } END { for (p in c) print p, c[p] > ENVIRON["AC"] }' | sort -u >"$T/afold"
    if [ -s "$T/afold" ]; then
      AM=$M awk 'FILENAME == ARGV[1] { k[++n] = $1; why[$1] = $2; next }
        FILENAME == ARGV[2] { c[$1] = $2; next }
        {
          i = index($0, "\t")
          p = substr($0, 1, i - 1)
          if (++m[p] <= 65) f[p] = f[p] substr($0, i + 1) "\n"
        }
        END {
          for (j = 1; j <= n; j++) {
            p = k[j]
            if (c[p] > 0) printf "\n%s:part fd %s %s %s\n%s", ENVIRON["AM"], p, why[p], c[p], f[p]
          }
        }' "$T/akept" "$T/acount" "$T/afold"
    fi
  fi
  if [ $denied -gt 0 ]; then note "$denied listening or application processes of other users hide their working directories and open files from this user: permission denied (capture as root)"; fi
  # The program each process runs, as the kernel resolved it (parse/programs.ts picks the
  # long-lived and listening ones): pid and path, a newline in a path written as \036.
  mark "part exe"
  if [ "$FP" = 1 ]; then
    find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/exe' -printf '%h\t%l\000' 2>/dev/null | tr '\n\000' '\036\n' |
      AE="$T/aexe" awk '{ sub(/^\/proc\//, ""); print; print > ENVIRON["AE"] } NR == 4096 { exit }'
  else
    for d in /proc/[0-9]*; do
      if [ -L "$d/exe" ]; then printf '%s\t%s\000' "\${d#/proc/}" "$(readlink "$d/exe" 2>/dev/null)"; fi
    done | tr '\n\000' '\036\n' | head -n 4096 | tee "$T/aexe"
  fi
  # Web server configuration: only files that resolve inside the server's own directory.
  for a in nginx:/etc/nginx apache:/etc/apache2 apache:/etc/httpd; do
    k=\${a%%:*}
    a=\${a#*:}
    [ -d "$a" ] || continue
    find "$a" -xdev \( -type f -o -type l \) ${findExclusions} 2>/dev/null | sort | head -n 1000 >"$T/aconf"
    # Below a directory that is its own real path, a file find reached without following links
    # is where it says: only links need resolving.
    real=0
    if [ "$(readlink -f "$a" 2>/dev/null)" = "$a" ]; then real=1; fi
    # Each file kept, then where to read it, a line each: one awk for all of them, not one a
    # file. A real path with a newline in it is read through the name find gave, which leads to
    # the same file.
    : >"$T/alist"
    while IFS= read -r f; do
      if [ $real = 1 ] && [ ! -L "$f" ]; then r=$f; else r=$(readlink -f "$f" 2>/dev/null) || continue; fi
      case $r in "$a"/*) ;; *) continue ;; esac
      [ -f "$r" ] || continue
      case $r in *"$NL"*) r=$f ;; esac
      printf '%s\n%s\n' "$f" "$r" >>"$T/alist"
    done <"$T/aconf"
    [ -s "$T/alist" ] || continue
    # For each: its part, then the first 1000 such lines, each cut at 4096 bytes.
    AM=$M AK=$k awk 'NR % 2 == 1 { f = $0; next }
      {
        printf "\n%s:part %s %s\n", ENVIRON["AM"], ENVIRON["AK"], f
        n = 0
        while ((getline l < $0) > 0) {
          if (ENVIRON["AK"] == "nginx") { if (l !~ /(^|[[:space:];{}])(root|include)[[:space:]]/) continue }
          else if (tolower(l) !~ /^[[:space:]]*(documentroot|include|includeoptional|serverroot)[[:space:]]/) continue
          print substr(l, 1, 4096)
          if (++n == 1000) break
        }
        close($0)
      }' "$T/alist" 2>/dev/null
  done
  # Services enabled by an administrator, read from their unit files: systemd need not run.
  for w in /etc/systemd/system/*.wants/*.service; do
    if [ -e "$w" ] || [ -L "$w" ]; then printf '%s\n' "\${w##*/}"; fi
  done | sort -u | head -n 500 >"$T/aunits"
  while IFS= read -r u; do
    t=$u
    case $u in *@*.service) t="\${u%%@*}@.service" ;; esac
    set --
    for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
      if [ $# -eq 0 ]; then
        if [ -f "$d/$u" ]; then set -- "$d/$u"; elif [ -f "$d/$t" ]; then set -- "$d/$t"; fi
      fi
    done
    [ $# -gt 0 ] || continue
    for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
      if [ "$t" != "$u" ]; then for f in "$d/$t.d"/*.conf; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done; fi
      for f in "$d/$u.d"/*.conf; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done
    done
    mark "part unit $u"
    # One awk, not grep | cut | head; every path here starts with / (never an awk assignment).
    # The words of ExecStart= that are absolute paths, without quotes and systemd's prefixes,
    # go to the programs section.
    AW="$T/awords" awk 'BEGIN { q = sprintf("%c%c", 34, 39) }
      /^[[:space:]]*(WorkingDirectory|ExecStart)[[:space:]]*=/ {
        print substr($0, 1, 4096)
        if ($0 ~ /^[[:space:]]*ExecStart/) {
          v = substr($0, index($0, "=") + 1)
          k = split(v, w, /[[:space:]]+/)
          for (j = 1; j <= k && j <= 64; j++) {
            x = w[j]
            gsub("^[-@:+!" q "]+|[" q "]+$", "", x)
            if (x ~ /^\//) print x >> ENVIRON["AW"]
          }
        }
        if (++n == 100) exit
      }' "$@" 2>/dev/null
  done <"$T/aunits"
  return 0
}

# The second pass: each tree of PERSONA_TREES measured at once, each walk bounded in time, and
# ROOTS set to those that fit, a tree inside another one that fits left out (walked once).
f_treesize() {
  TMAXKB=$(( \${PERSONA_TREE_MAX_BYTES:-${CAPTURE_LIMITS.treeMaxBytes}} / 1024 ))
  TDT=\${PERSONA_TREE_DU_TIMEOUT:-${CAPTURE_LIMITS.treeDuTimeoutSeconds}}
  i=0
  w=""
  split_on
  for p in $PERSONA_TREES; do
    i=$((i + 1))
    (
      s=ok
      k=0
      if [ -L "$p" ]; then s=symlink
      elif [ ! -d "$p" ]; then s=missing
      elif [ "$ME" != 0 ] && { [ ! -r "$p" ] || [ ! -x "$p" ]; }; then s=denied
      else
        bounded "$TDT" du -sk -x -- "$p" >"$T/ts.$i.du" 2>/dev/null
        r=$?
        k=$(cut -f1 < "$T/ts.$i.du")
        case $k in
          ''|*[!0-9]*) k=0; if [ "$r" = 124 ] || [ "$r" -ge 128 ]; then s=timeout; else s=unmeasured; fi ;;
          *) if [ "$k" -gt "$TMAXKB" ]; then s=over; fi ;;
        esac
      fi
      printf '%s\t%s\t%s\n' "$s" "$k" "$p"
    ) </dev/null >"$T/ts.$i" &
    w="$w $!"
  done
  split_off
  # Its own walks only: the programs section may be running alongside.
  wait $w
  F=""
  j=0
  while [ $j -lt $i ]; do
    j=$((j + 1))
    [ -s "$T/ts.$j" ] || continue
    cat "$T/ts.$j"
    IFS= read -r l < "$T/ts.$j"
    case $l in "ok	"*) ;; *) continue ;; esac
    l=\${l#*	}
    F="$F$NL\${l#*	}"
  done
  ROOTS=""
  split_on
  for r in $F; do
    o=1
    for q in $F; do case $r in "$q"/*) o=0; break ;; esac; done
    if [ $o = 1 ]; then ROOTS="$ROOTS$NL$r"; fi
  done
  split_off
  return 0
}

# A path for the package manager's one query: a path with a newline is never asked about.
pq_add() { case $1 in ''|*"$NL"*) ;; *) printf '%s\n' "$1" >>"$T/pq" ;; esac; }

# The first pass's programs: every process's program (the capture's own left out), every word of
# their command lines and of the enabled services' ExecStart= lines that is an absolute path,
# outside /proc, /sys and /dev, each once, at most 256. What parse/programs.ts proposes is among
# them but for what it reads otherwise (a quoted ExecStart= word with a space, say): a second
# pass resolves those.
prog_list() {
  # The processes are listed before their environments are read: a copy of the script forked
  # by a lane after the list is not in it, one forked before carries the nonce. (Read the other
  # way round, a lane forked in between was taken for a host process, the script's own words
  # for its programs.)
  _procs=""
  for d in /proc/[0-9]*; do _procs="$_procs$d$NL"; done
  set --
  for d in $_procs; do set -- "$@" "$d/environ"; done
  _self=""
  if [ $# -gt 0 ]; then _self=$(grep -l -F "PERSONA_NONCE=$N" -- "$@" 2>/dev/null); fi
  set --
  for d in $_procs; do
    case "$NL$_self$NL" in *"$NL$d/environ$NL"*) continue ;; esac
    set -- "$@" "$d/cmdline"
  done
  if [ $# -eq 0 ]; then set -- /dev/null; fi
  # Each argument a record (-z): the words that start one, or follow a blank, with a slash.
  grep -a -z -o -h -E '(^|[[:space:]])/[^[:space:]]+' -- "$@" 2>/dev/null | tr '\000' '\n' |
    PSELF=$_self PEXE="$T/aexe" awk '
      BEGIN {
        n = split(ENVIRON["PSELF"], s, "\n")
        for (i = 1; i <= n; i++) { p = s[i]; sub(/^\/proc\//, "", p); sub(/\/environ$/, "", p); self[p] = 1 }
      }
      FILENAME == ENVIRON["PEXE"] {
        i = index($0, "\t")
        if (i == 0 || (substr($0, 1, i - 1) in self)) next
        p = substr($0, i + 1)
        sub(/ \(deleted\)$/, "", p)
      }
      FILENAME != ENVIRON["PEXE"] { p = $0; sub(/^[[:space:]]+/, "", p) }
      p ~ /^\// && p !~ /^\/(proc|sys|dev)(\/|$)/ && index(p, "\036") == 0 && !(p in seen) && k < 256 {
        seen[p] = 1
        k++
        print p
      }' - "$T/aexe" "$T/awords" >"$T/plist"
}

# Programs (PERSONA_PROGRAMS in the second pass, prog_list's in the first, one a line): for each,
# the links on the way (each where it lies, its folder's real path, at most 8), where it ends
# (readlink -f) and what is there; then every one of those paths, with its other name where /bin
# is /usr/bin, asked of the package manager in one query. Facts only: parse/programs.ts decides
# what is captured. A path is printed exactly (a trailing newline kept), each in a part of its
# own. Where each ends and the sizes are one readlink and one wc for all of them; a program
# those cannot answer for (busybox takes one file, a path with a newline) gets its own.
f_programs() {
  : >"$T/pq"
  if [ -n "$P2" ]; then printf '%s\n' "$PERSONA_PROGRAMS" >"$T/plist"; else prog_list; fi
  # $T after each: it resolves to nothing else, so a program that does not resolve leaves a
  # gap, never a shift; its own real path comes first.
  set -- "$T"
  while IFS= read -r p; do set -- "$@" "$p" "$T"; done <"$T/plist"
  readlink -f -- "$@" >"$T/preal" 2>/dev/null
  exec 4<"$T/preal"
  ok=0
  if IFS= read -r RT <&4 && [ -n "$RT" ]; then ok=1; fi
  set --
  _fl=""
  i=0
  while IFS= read -r p; do
    i=$((i + 1))
    q=$p
    j=0
    while [ -L "$q" ] && [ $j -lt 8 ]; do
      j=$((j + 1))
      d=\${q%/*}
      d=$(readlink -f -- "\${d:-/}" 2>/dev/null; echo x)
      d=\${d%x}
      d=\${d%"$NL"}
      [ -n "$d" ] || break
      l="\${d%/}/\${q##*/}"
      mark "part prog-link $i"
      printf '%s' "$l"
      pq_add "$l"
      t=$(readlink -- "$q" 2>/dev/null; echo x)
      t=\${t%x}
      t=\${t%"$NL"}
      case $t in '') break ;; /*) q=$t ;; *) q="\${d%/}/$t" ;; esac
    done
    r=""
    if [ $ok = 1 ]; then
      if ! IFS= read -r l <&4; then ok=0
      elif [ "$l" != "$RT" ]; then
        r=$l
        if ! IFS= read -r l <&4 || [ "$l" != "$RT" ]; then ok=0; fi
      fi
    fi
    if [ $ok = 0 ]; then
      r=$(readlink -f -- "$p" 2>/dev/null; echo x)
      r=\${r%x}
      r=\${r%"$NL"}
    fi
    s=missing
    if [ -z "$r" ] || [ -L "$r" ]; then s=missing
    elif [ -f "$r" ]; then
      if [ -r "$r" ]; then
        s='file'
        case $r in *"$NL"*) ;; *) set -- "$@" "$r"; _fl="$_fl $i" ;; esac
      else s=denied; fi
    elif [ -d "$r" ]; then s=dir
    elif [ -e "$r" ]; then s=other
    fi
    mark "part prog $i $s 0"
    printf '%s' "$p"
    mark "part prog-real $i"
    printf '%s' "$r"
    pq_add "$p"
    pq_add "$r"
    case $s:$r in file:*"$NL"*) mark "part prog-bytes $i $(wc -c < "$r" 2>/dev/null | tr -cd 0-9)" ;; esac
  done <"$T/plist"
  exec 4<&-
  # Sizes: wc's line for each file names it, so a line that is not the next file's is not taken.
  if [ $# -gt 0 ]; then
    wc -c -- "$@" >"$T/pwc" 2>/dev/null
    exec 4<"$T/pwc"
    ok=1
    for i in $_fl; do
      r=$1
      shift
      b=""
      if [ $ok = 1 ]; then
        if IFS=' ' read -r b l <&4 && [ "$l" = "$r" ]; then :; else ok=0; b=""; fi
      fi
      if [ $ok = 0 ]; then b=$(wc -c < "$r" 2>/dev/null | tr -cd 0-9); fi
      case $b in ''|*[!0-9]*) b=0 ;; esac
      mark "part prog-bytes $i $b"
    done
    exec 4<&-
  fi
  awk '{ print } /^\/usr\/(s?bin|lib|lib32|lib64|libx32)\// { print substr($0, 5) } /^\/(s?bin|lib|lib32|lib64|libx32)\// { print "/usr" $0 }' "$T/pq" | sort -u >"$T/pqa"
  if [ ! -s "$T/pqa" ]; then mark "part owners none"; return 0; fi
  if have dpkg-query; then
    # A literal lookup for every path: dpkg-query reads *, ?, [ and \ as a pattern's.
    sed 's/[][*?\\]/\\&/g' "$T/pqa" | tr '\n' '\000' | xargs -0 dpkg-query -S -- >"$T/po" 2>"$T/poerr"
    if grep -v -q 'no path found matching pattern' "$T/poerr"; then
      note "dpkg-query -S failed: $(grep -v 'no path found matching pattern' "$T/poerr" | head -n 1 | cut -c -200)"
      mark "part owners failed dpkg"
      return 0
    fi
    mark "part owners dpkg"
    cat "$T/po"
  elif have rpm; then
    tr '\n' '\000' <"$T/pqa" | xargs -0 rpm -qf -- >"$T/po" 2>&1
    mark "part owners rpm"
    cat "$T/po"
  elif have apk; then
    tr '\n' '\000' <"$T/pqa" | xargs -0 apk info --who-owns -- >"$T/po" 2>&1
    mark "part owners apk"
    cat "$T/po"
  else
    missing "no package manager found (dpkg-query, rpm, apk): which programs packages own is unknown"
    mark "part owners none"
  fi
  return 0
}

f_du() {
  # One walk per directory, all at once, each cut short after DUT seconds (status 124).
  i=0
  : >"$T/du.jobs"
  : >"$T/du.meta"
  # "type path", the path taken whole: it may hold spaces, even at its end.
  while IFS= read -r l; do
    t=\${l%% *}
    p=\${l#* }
    [ -d "$p" ] || continue
    if [ "$ME" != 0 ] && { [ ! -r "$p" ] || [ ! -x "$p" ]; }; then note "cannot read $p: permission denied (capture as root): its size is unknown"; continue; fi
    i=$((i + 1))
    if [ "$FP" = 1 ]; then
      # The walk itself in the background (no shell of its own): its sizes are summed below.
      if [ -n "$TO" ]; then
        timeout "$DUT" find "$p" -xdev -type f -printf '%s\n' 2>"$T/du.$i.err" >"$T/du.$i.list" </dev/null &
      else
        find "$p" -xdev -type f -printf '%s\n' 2>"$T/du.$i.err" >"$T/du.$i.list" </dev/null &
      fi
      printf '%s %s %s %s\n' "$i" "$!" "$t" "$p" >>"$T/du.jobs"
      continue
    fi
    (
      k=$(bounded "$DUT" du -sk -x -- "$p" 2>/dev/null | cut -f1)
      n=$(bounded "$DUT" find "$p" -xdev -type f 2>/dev/null | wc -l)
      printf '%s\t%s\t%s\t%s\tk\n' "$t" "$p" "$n" "\${k:-0}"
    ) </dev/null >"$T/du.$i" &
  done <<EOF
logs /var/log
database /var/lib/mysql
database /var/lib/postgresql
database /var/lib/pgsql
database /var/lib/mongodb
database /var/lib/redis
database /var/lib/cassandra
database /var/lib/elasticsearch
database /var/lib/influxdb
database /var/lib/clickhouse
web /var/www
web /srv/www
web /usr/share/nginx/html
mail /var/mail
mail /var/vmail
cache /var/cache
containers /var/lib/docker
containers /var/lib/containerd
containers /var/lib/containers
home /home
$(printf '%s\n' "$ROOTS" | sed '1d; s/^/application /')
EOF
  if [ "$FP" = 1 ]; then
    # Each walk's status, then one awk for the count and bytes of every walk, in order.
    set --
    while IFS= read -r l; do
      i=\${l%% *}
      l=\${l#* }
      wait "\${l%% *}"
      s=$?
      l=\${l#* }
      # Parts of the tree this user may not enter: what was counted is a lower bound.
      if [ "$s" = 1 ] && grep -q 'Permission denied' "$T/du.$i.err"; then s=denied; fi
      printf '%s %s\n' "$s" "$l" >>"$T/du.meta"
      set -- "$@" "$T/du.$i.list"
    done <"$T/du.jobs"
    # The type and path, read whole from the line (never -v: awk would read backslashes in a
    # path as escapes), after the status.
    if [ $# -gt 0 ]; then
      awk 'BEGIN { for (a = 2; a < ARGC; a++) w[ARGV[a]] = a - 1 }
        FILENAME == ARGV[1] { m[++k] = $0; next }
        { n[w[FILENAME]]++; b[w[FILENAME]] += $1 }
        END {
          for (i = 1; i <= k; i++) {
            l = m[i]
            s = substr(l, 1, index(l, " ") - 1); l = substr(l, index(l, " ") + 1)
            t = substr(l, 1, index(l, " ") - 1); p = substr(l, index(l, " ") + 1)
            printf "%s\t%s\t%d\t%.0f\t%s\n", t, p, n[i], b[i], s
          }
        }' "$T/du.meta" "$@"
    fi
    return 0
  fi
  wait
  for f in "$T"/du.[0-9]*; do if [ -f "$f" ]; then cat "$f"; fi; done
  return 0
}

f_cloud() {
  for k in sys_vendor product_name product_version board_vendor board_asset_tag chassis_asset_tag bios_vendor; do
    if [ -r "/sys/class/dmi/id/$k" ]; then printf 'dmi.%s=%s\n' "$k" "$(cat "/sys/class/dmi/id/$k" 2>/dev/null)"; fi
  done
  if [ -r /run/cloud-init/instance-data.json ]; then
    mark "part cloud-init"
    head -c 262144 /run/cloud-init/instance-data.json
  fi
  return 0
}

f_loadavg() { rd /proc/loadavg; }

# Sections run in lanes: each lane is a background job running its sections one after another,
# each section's output going to a file of its own, and the files are printed afterwards in the
# order of ORDER, so the output reads as if the sections had run one after another. A section
# that needs another's result runs after it in the same lane (appdata reads the listing sockets
# left in $T/ss). PERSONA_SERIAL=1 runs every lane in the foreground, one after another.
lane() {
  for _s in "$@"; do
    case $_s in
      sample-*) sec "$_s" f_sample "\${_s#sample-}" ;;
      *) sec "$_s" "f_$_s" ;;
    esac >"$T/o.$_s"
  done
}
if [ "\${PERSONA_SERIAL:-0}" = 1 ]; then spawn() { lane "$@"; }; else spawn() { lane "$@" & }; fi
# The sections' files that exist, in ORDER, printed after the done marker's time is taken.
finish() {
  set --
  for _s in $ORDER; do if [ -f "$T/o.$_s" ]; then set -- "$@" "$T/o.$_s"; fi; done
  up
  mark "done $START $U"
  exec 1>&3 3>&-
  cat "$@" "$T/out"
  exit 0
}

up
START=$U
S0=$U
if [ -n "\${PERSONA_TREES:-}\${PERSONA_PROGRAMS:-}\${PERSONA_FILES:-}" ]; then
  P2=1
  ROOTS=""
  ORDER="treesize programs files hashes privkeys credfiles"
  if [ -n "\${PERSONA_PROGRAMS:-}" ]; then spawn programs; fi
  if [ -n "\${PERSONA_TREES:-}" ]; then lane treesize; fi
  # Single files (the programs parse/programs.ts chose), listed and hashed as they are.
  split_on
  for p in \${PERSONA_FILES:-}; do if [ -e "$p" ] || [ -L "$p" ]; then ROOTS="$ROOTS$NL$p"; fi; done
  split_off
  if [ -n "$ROOTS" ]; then
    spawn credfiles
    spawn hashes
    spawn files privkeys
  fi
  wait
  finish
fi
ORDER="sample-start os release cloud packages services interfaces routes firewall dns sockets mounts block df cgroups cpu memory libraries environ files hashes privkeys credfiles sysctl modules users groups shadow sudoers sshkeys processes appdata programs sample-end loadavg du ionice runtimes"
SAMPLE=\${PERSONA_SAMPLE:-1}
if [ "$SAMPLE" = 1 ]; then lane sample-start; fi
# Disk usage is observation, not state: a capture of state only does not walk the trees.
if [ "$SAMPLE" = 1 ]; then spawn du; fi
spawn runtimes ionice
spawn credfiles
spawn sockets appdata programs
spawn hashes privkeys
spawn files sysctl processes
lane os release cloud packages services interfaces routes firewall dns mounts block df cgroups cpu memory libraries environ modules users groups shadow sudoers sshkeys
wait
# The usage sample's window is the run itself. Only a run shorter than a tenth of a second waits
# out the rest: at the kernel's 100 ticks a second, fewer ticks than that say nothing of CPU use.
# A capture asked for state only (a clone's baseline) takes no sample and does not wait.
if [ "$SAMPLE" = 1 ]; then
  up
  _e=$(( (\${U%.*} - \${S0%.*}) * 100 + 1\${U#*.} - 1\${S0#*.} ))
  if [ "$_e" -lt 1 ]; then
    sleep 0.1 2>/dev/null || sleep 1
  elif [ "$_e" -lt 10 ]; then
    sleep "0.0$((10 - _e))" 2>/dev/null || sleep 1
  fi
  lane sample-end
fi
lane loadavg
finish
`;

/** The capture script, ready to run with `sh`. Parameters come from the environment. */
export const CAPTURE_SCRIPT: string = SCRIPT_SOURCE.replaceAll('\\${', '${');

/** What a capture is asked to look at beyond the host itself. */
export interface CaptureParams {
  /**
   * Names of the application's processes (as `comm` shows them, e.g. `nginx`, `node`,
   * `java`): their environment becomes the Profile's environment variables.
   */
  readonly appProcesses?: readonly string[];
  /** Application trees whose files are listed and hashed alongside /etc. */
  readonly configPaths?: readonly string[];
  /**
   * The second pass: trees discovery found (parse/appdata.ts), measured and, those that fit
   * treeMaxBytes, listed and hashed. The script then runs nothing else.
   */
  readonly trees?: readonly string[];
  readonly treeMaxBytes?: number;
  readonly treeDuTimeoutSeconds?: number;
  /**
   * The second pass: programs processes and services run (parse/programs.ts), each resolved on
   * the host and asked of its package manager, all in one query.
   */
  readonly programs?: readonly string[];
  /** A later pass: single files (the programs chosen) listed and hashed as they are. */
  readonly files?: readonly string[];
  readonly hashBudgetBytes?: number;
  readonly hashFileMaxBytes?: number;
  readonly maxFiles?: number;
  readonly duTimeoutSeconds?: number;
  /**
   * Take the usage sample (CPU, disk and network rates over the script's run, or from the agent's
   * last reading where the host has persona-agent). Default true;
   * false for a capture that needs the host's state only, such as a clone's baseline.
   */
  readonly usageSample?: boolean;
}

export { PROCESS_NAME_MAX, processNameProblem } from './process-name.js';

/**
 * The script's environment for these parameters, with a fresh nonce. Paths obey the path
 * grammar (core/transport/paths.ts); each list goes one item a line.
 */
export function captureEnv(params: CaptureParams = {}): Record<string, string> {
  const issues: Issue[] = [];
  (params.appProcesses ?? []).forEach((p, i) => {
    const problem = processNameProblem(p);
    if (problem) issues.push({ path: `appProcesses[${i}]`, message: `${displayValue(p)} ${problem}` });
  });
  for (const field of ['configPaths', 'trees', 'programs', 'files'] as const) {
    (params[field] ?? []).forEach((p, i) => {
      const problem = pathProblem(p);
      if (problem) issues.push({ path: `${field}[${i}]`, message: `${displayValue(p)} ${problem}` });
    });
  }
  const counts: [keyof CaptureParams, number | undefined][] = [
    ['hashBudgetBytes', params.hashBudgetBytes],
    ['hashFileMaxBytes', params.hashFileMaxBytes],
    ['maxFiles', params.maxFiles],
    ['duTimeoutSeconds', params.duTimeoutSeconds],
    ['treeMaxBytes', params.treeMaxBytes],
    ['treeDuTimeoutSeconds', params.treeDuTimeoutSeconds],
  ];
  for (const [name, value] of counts) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      issues.push({ path: name, message: 'expected a positive integer' });
    }
  }
  if (issues.length > 0) throw new InvalidInputError('invalid capture parameters', issues);

  const env: Record<string, string> = { PERSONA_NONCE: randomBytes(16).toString('hex') };
  if (params.appProcesses?.length) env.PERSONA_APP_PROCESSES = params.appProcesses.join('\n');
  if (params.configPaths?.length) env.PERSONA_CONFIG_PATHS = params.configPaths.join('\n');
  if (params.hashBudgetBytes !== undefined) env.PERSONA_HASH_BUDGET_BYTES = String(params.hashBudgetBytes);
  if (params.hashFileMaxBytes !== undefined)
    env.PERSONA_HASH_FILE_MAX_BYTES = String(params.hashFileMaxBytes);
  if (params.maxFiles !== undefined) env.PERSONA_MAX_FILES = String(params.maxFiles);
  if (params.duTimeoutSeconds !== undefined) env.PERSONA_DU_TIMEOUT = String(params.duTimeoutSeconds);
  if (params.trees?.length) env.PERSONA_TREES = params.trees.join('\n');
  if (params.programs?.length) env.PERSONA_PROGRAMS = params.programs.join('\n');
  if (params.files?.length) env.PERSONA_FILES = params.files.join('\n');
  if (params.treeMaxBytes !== undefined) env.PERSONA_TREE_MAX_BYTES = String(params.treeMaxBytes);
  if (params.treeDuTimeoutSeconds !== undefined)
    env.PERSONA_TREE_DU_TIMEOUT = String(params.treeDuTimeoutSeconds);
  if (params.usageSample === false) env.PERSONA_SAMPLE = '0';
  return env;
}
