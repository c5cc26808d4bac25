#!/bin/sh
# persona-agent: reports this host's metrics to Persona and applies the host-local parameters
# (sysctl, cgroup limit files, tc egress rates) of the persona assigned to it. POSIX sh and the
# host's own tools (awk, tc, curl or wget); installed and configured by Persona
# (core/persona/agent/install.ts), never edited by hand.
#
#   persona-agent.sh run          report and apply every interval, until stopped
#   persona-agent.sh once         one cycle (what the systemd timer runs)
#   persona-agent.sh supervise    run `run`, restarting it when it exits (hosts without systemd)
#   persona-agent.sh start|stop   start the supervisor if it is not running / stop it
#   persona-agent.sh apply FILE   apply an assignment file; print the report; post nothing
#   persona-agent.sh metrics      print this cycle's metric report; post nothing
#   persona-agent.sh check        print which entries of the assignment in PERSONA_ASSIGNMENT
#                                 no longer read as assigned; change nothing (hosts without an
#                                 agent: Persona runs it over their transport)
#
# Data is never code: the configuration is read line by line, never sourced; the assignment is
# lines of TAB-separated fields, each checked against a strict grammar (valid_*) before it is
# used, and used only as the content of a file or one argument of tc; the API's answers are
# never evaluated. An assignment with any entry that fails a grammar is refused whole.
#
# An operator's own change to an applied entry (found at the next cycle, when a value no longer
# reads as assigned) is governed by the persona's override: `enforced` restores the assigned
# value at once; `retain` keeps the operator's value, reports it once, and restores it at the
# window edge the assignment named when the change was first seen (or keeps it until the
# assignment changes, when it named none).
#
# Applying keeps the previous value of each entry in a journal before changing it, reads each
# value back, and on any failure restores what it changed, in reverse. A journal left without
# its last line (the agent died while applying) is rolled back on the next start.

set -u
set -f
umask 077
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

CONF_DIR=/etc/persona-agent
STATE_DIR=/var/lib/persona-agent
# Numbers the host's applications report themselves (request rate, data processed): one file
# per metric, written by root or by whom the operator lets write here.
METRICS_DIR=/run/persona-agent/metrics
PIDFILE=/run/persona-agent.pid
LOG=/var/log/persona-agent.log
SELF=/usr/local/lib/persona-agent/persona-agent.sh
TAB=$(printf '\t')
NL='
'

log() {
  printf '%s persona-agent: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# Text from the host or the API as it may appear in a log line or a JSON string: printable
# ASCII without quotes or backslashes, tabs as spaces, at most 300 characters.
clean() {
  printf '%s' "$1" | tr '\t\n' '  ' | tr -cd 'A-Za-z0-9 _.:,/+@%=()<>|-' | cut -c1-300
}

# --- configuration -------------------------------------------------------------------------

ENDPOINT=
HOST=
INTERVAL=60

read_conf() {
  [ -r "$CONF_DIR/agent.conf" ] || { log "no $CONF_DIR/agent.conf"; return 1; }
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      endpoint=*) ENDPOINT=${line#endpoint=} ;;
      host=*) HOST=${line#host=} ;;
      interval=*) INTERVAL=${line#interval=} ;;
      '' | '#'*) ;;
      *) log "ignoring a line of agent.conf: $(clean "$line")" ;;
    esac
  done <"$CONF_DIR/agent.conf"
  case $ENDPOINT in
    http://* | https://*) ;;
    *) log "endpoint is not an http(s) URL"; return 1 ;;
  esac
  case $ENDPOINT in
    *[!A-Za-z0-9.:/_~%[\]-]* | *//*//*) log "endpoint holds characters a URL of the API does not"; return 1 ;;
  esac
  case $HOST in
    '' | [.-]* | *[!A-Za-z0-9._-]*) log "host is not a host name"; return 1 ;;
  esac
  case $INTERVAL in
    '' | *[!0-9]* | 0*) log "interval is not a number of seconds"; return 1 ;;
  esac
  if [ "$INTERVAL" -lt 5 ] || [ "$INTERVAL" -gt 3600 ]; then log "interval must be 5 to 3600 s"; return 1; fi
  ENDPOINT=${ENDPOINT%/}
  [ -r "$CONF_DIR/credential" ] || { log "no $CONF_DIR/credential"; return 1; }
  TOKEN=$(head -n 1 "$CONF_DIR/credential")
  case $TOKEN in
    '' | *[!A-Za-z0-9_.-]*) log "the credential is not a token"; return 1 ;;
  esac
  mkdir -p "$STATE_DIR" && chmod 0700 "$STATE_DIR"
  # The token goes to curl in a file (-H @file), never on a command line other users can read.
  printf 'Authorization: Bearer %s\n' "$TOKEN" >"$STATE_DIR/auth.header"
  printf 'header = Authorization: Bearer %s\n' "$TOKEN" >"$STATE_DIR/wgetrc"
}

# --- HTTP ----------------------------------------------------------------------------------

# http METHOD PATH BODYFILE|- OUTFILE [ACCEPT]: sets STATUS to the HTTP status (000 when there
# was no answer). curl first, then wget, then (for a loopback endpoint only) nc.
STATUS=000
http() {
  method=$1 url=$ENDPOINT$2 body=$3 out=$4 accept=${5:-application/json}
  STATUS=000
  : >"$out"
  if command -v curl >/dev/null 2>&1; then
    if [ "$body" = - ]; then
      STATUS=$(curl -sS -g --max-time 20 -o "$out" -w '%{http_code}' -X "$method" \
        -H @"$STATE_DIR/auth.header" -H "Accept: $accept" -- "$url" 2>"$STATE_DIR/http.err")
    else
      STATUS=$(curl -sS -g --max-time 20 -o "$out" -w '%{http_code}' -X "$method" \
        -H @"$STATE_DIR/auth.header" -H "Accept: $accept" -H 'Content-Type: application/json' \
        --data-binary @"$body" -- "$url" 2>"$STATE_DIR/http.err")
    fi
  elif command -v wget >/dev/null 2>&1 && wget --version 2>/dev/null | grep -q 'GNU Wget'; then
    set -- --config="$STATE_DIR/wgetrc" -q -S -T 20 -t 1 -O "$out" --content-on-error --header="Accept: $accept"
    if [ "$body" != - ]; then
      set -- "$@" --method="$method" --header='Content-Type: application/json' --body-file="$body"
    elif [ "$method" != GET ]; then
      set -- "$@" --method="$method"
    fi
    wget "$@" -- "$url" 2>"$STATE_DIR/http.err"
    STATUS=$(awk '$1 ~ /^HTTP\// { s = $2 } END { print s ? s : "000" }' "$STATE_DIR/http.err")
  elif command -v nc >/dev/null 2>&1 && loopback_endpoint; then
    http_nc "$method" "$2" "$body" "$out" "$accept"
  else
    log "no HTTP client: install curl or wget (plain HTTP through nc is used for a loopback endpoint only)"
  fi
  case $STATUS in [0-9][0-9][0-9]) ;; *) STATUS=000 ;; esac
}

loopback_endpoint() {
  case $ENDPOINT in http://127.* | http://localhost:* | http://localhost | 'http://[::1]'*) return 0 ;; esac
  return 1
}

# Plain HTTP/1.0 over nc, for a loopback endpoint (a tunnel back to the embedded runtime).
http_nc() {
  hostport=${ENDPOINT#http://}
  hostport=${hostport%%/*}
  prefix=${ENDPOINT#http://"$hostport"}
  addr=${hostport%:*}
  port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=80
  addr=${addr#[}
  addr=${addr%]}
  {
    printf '%s %s%s HTTP/1.0\r\nHost: %s\r\nAccept: %s\r\n' "$1" "$prefix" "$2" "$hostport" "$5"
    printf 'Authorization: Bearer %s\r\n' "$TOKEN"
    if [ "$3" != - ]; then
      printf 'Content-Type: application/json\r\nContent-Length: %s\r\n\r\n' "$(wc -c <"$3" | tr -d ' ')"
      cat "$3"
    else
      printf '\r\n'
    fi
  } | nc -w 20 "$addr" "$port" >"$STATE_DIR/http.raw" 2>"$STATE_DIR/http.err"
  STATUS=$(head -n 1 "$STATE_DIR/http.raw" | awk '{ print $2 }')
  awk 'body { print } /^\r?$/ { body = 1 }' "$STATE_DIR/http.raw" >"$4"
}

# Says why a call was refused, once per distinct answer in a row.
LAST_REFUSAL=
refused() {
  what=$1
  case $STATUS in
    401 | 403)
      detail=$(awk -F'"detail":"' 'NF > 1 { split($2, a, "\""); print a[1] }' "$STATE_DIR/http.out" 2>/dev/null)
      log "$what refused with HTTP $STATUS: the credential is revoked or not valid for host $HOST ($(clean "$detail"))"
      ;;
    000) log "$what: no answer from $ENDPOINT ($(clean "$(cat "$STATE_DIR/http.err" 2>/dev/null)"))" ;;
    *) log "$what: HTTP $STATUS ($(clean "$(head -c 300 "$STATE_DIR/http.out" 2>/dev/null)"))" ;;
  esac
}

# --- metrics -------------------------------------------------------------------------------

# One sample of the counters rates are made from: uptime, CPU jiffies (total, idle), disk
# bytes and operations, network bytes received and sent.
sample() {
  # Kernel block device names (no spaces, no newlines); globbing is off (set -f).
  # shellcheck disable=SC2012
  disks=$(ls /sys/block 2>/dev/null | tr '\n' ' ')
  awk -v disks=" $disks" '
    FILENAME == "/proc/uptime" { up = $1 }
    FILENAME == "/proc/stat" && $1 == "cpu" {
      for (i = 2; i <= 9 && i <= NF; i++) total += $i
      idle = $5 + $6
    }
    FILENAME == "/proc/diskstats" {
      name = $3
      if (name ~ /^(loop|ram|zram|sr|fd)/) next
      if (disks != " ") { if (index(disks, " " name " ") == 0) next }
      else if (name ~ /^(sd|vd|xvd|hd)[a-z]+[0-9]+$/ || name ~ /p[0-9]+$/) next
      ops += $4 + $8
      bytes += ($6 + $10) * 512
    }
    FILENAME == "/proc/net/dev" && index($0, ":") {
      line = $0; sub(/^[ \t]*/, "", line)
      split(line, parts, ":")
      if (parts[1] == "lo") next
      n = split(parts[2], f, " ")
      rx += f[1]; tx += f[9]
    }
    END { printf "%s %.0f %.0f %.0f %.0f %.0f %.0f\n", up, total, idle, bytes, ops, rx, tx }
  ' /proc/uptime /proc/stat /proc/diskstats /proc/net/dev 2>/dev/null
}

# The applications' own numbers as JSON members (",name":value...): files of METRICS_DIR named
# requests.per_second, data.processed.bytes_per_second or custom.<name>, each holding one
# decimal number, written within the last two intervals. A name, link or value outside that
# grammar is skipped: the content is only ever a number in the report.
app_metrics() {
  [ -d "$METRICS_DIR" ] || return 0
  now_s=$(date +%s)
  # File names without newlines are all this reads (ls -1 of a folder; globbing is off).
  # shellcheck disable=SC2012
  ls -1 "$METRICS_DIR" 2>/dev/null | while IFS= read -r name; do
    case $name in
      requests.per_second | data.processed.bytes_per_second) ;;
      custom.*)
        case ${name#custom.} in
          '' | *[!a-z0-9_.]* | .* | *. | *..*) continue ;;
        esac
        [ ${#name} -le 128 ] || continue
        ;;
      *) continue ;;
    esac
    file=$METRICS_DIR/$name
    if [ -L "$file" ] || [ ! -f "$file" ]; then continue; fi
    written=$(stat -c %Y -- "$file" 2>/dev/null) || continue
    [ $((now_s - written)) -le $((2 * INTERVAL)) ] || continue
    head -c 64 -- "$file" 2>/dev/null | head -n 1 | awk -v name="$name" '
      $0 ~ /^-?[0-9]+(\.[0-9]+)?$/ { printf ",\"%s\":%.6f", name, $0 + 0 }'
  done
}

# The MetricReport of this cycle as JSON into $1; rates against the previous cycle's sample.
metrics_report() {
  now=$(sample)
  previous=$(cat "$STATE_DIR/sample" 2>/dev/null || true)
  # `metrics` shows a report without moving the agent's own rate baseline.
  if [ "${SHOW_ONLY:-0}" != 1 ]; then printf '%s\n' "$now" >"$STATE_DIR/sample"; fi
  at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  extra=$(app_metrics)
  awk -v now="$now" -v prev="$previous" -v host="$HOST" -v at="$at" -v interval="$INTERVAL" -v extra="$extra" '
    FILENAME == "/proc/meminfo" && $1 == "MemTotal:" { mt = $2 }
    FILENAME == "/proc/meminfo" && $1 == "MemAvailable:" { ma = $2 }
    FILENAME == "/proc/loadavg" { load = $1 }
    END {
      out = ""
      if (mt > 0) out = out sprintf("\"memory.utilization\":%.2f", 100 * (mt - ma) / mt)
      if (load != "") out = out (out == "" ? "" : ",") sprintf("\"load.average1\":%s", load + 0)
      split(now, n, " "); split(prev, p, " ")
      dt = n[1] - p[1]
      if (prev != "" && dt > 0 && n[2] >= p[2]) {
        dtot = n[2] - p[2]; didle = n[3] - p[3]
        if (dtot > 0) out = out sprintf(",\"cpu.utilization\":%.2f", 100 * (dtot - didle) / dtot)
        if (n[4] >= p[4]) out = out sprintf(",\"disk.io.bytes_per_second\":%.2f", (n[4] - p[4]) / dt)
        if (n[5] >= p[5]) out = out sprintf(",\"disk.io.operations_per_second\":%.2f", (n[5] - p[5]) / dt)
        if (n[6] >= p[6]) out = out sprintf(",\"network.rx.bytes_per_second\":%.2f", (n[6] - p[6]) / dt)
        if (n[7] >= p[7]) out = out sprintf(",\"network.tx.bytes_per_second\":%.2f", (n[7] - p[7]) / dt)
      }
      if (out == "") extra = substr(extra, 2)
      printf "{\"host\":\"%s\",\"at\":\"%s\",\"intervalSeconds\":%d,\"values\":{%s%s}}\n", host, at, interval, out, extra
    }
  ' /proc/meminfo /proc/loadavg >"$1"
}

# --- grammars ------------------------------------------------------------------------------
# The same as core/persona/agent/assignment.ts. Each answers 0 (valid) or 1.

valid_sysctl_key() {
  case $1 in
    '' | *[!a-z0-9_.-]* | [.-]* | *. | *..* | *.-*) return 1 ;;
    *.*) [ ${#1} -le 200 ] ;;
    *) return 1 ;;
  esac
}
valid_sysctl_value() {
  case $1 in
    '' | *[!A-Za-z0-9_.:,/+"$TAB"\ -]* | ["$TAB"\ ]* | *["$TAB"\ ]) return 1 ;;
  esac
  [ ${#1} -le 256 ]
}
valid_cgroup_path() {
  case $1 in
    / ) return 0 ;;
    '' | [!/]* | *[!A-Za-z0-9_.@:/-]* | *//* | */ | */.* | */-*) return 1 ;;
  esac
  [ ${#1} -le 2048 ]
}
valid_cgroup_file() {
  case $1 in
    cpu.max | cpu.weight | memory.max | memory.high | io.weight | pids.max | cgroup.max.descendants | cgroup.max.depth) return 0 ;;
  esac
  return 1
}
valid_cgroup_value() {
  case $1 in
    '' | [!a-z0-9]* | *[!a-z0-9\ ]*) return 1 ;;
  esac
  [ ${#1} -le 64 ]
}
valid_interface() {
  case $1 in
    '' | . | .. | [!A-Za-z0-9]* | *[!A-Za-z0-9_.:-]*) return 1 ;;
  esac
  [ ${#1} -le 15 ]
}
valid_rate() {
  case $1 in
    '' | 0* | *[!0-9]*) return 1 ;;
  esac
  [ ${#1} -le 10 ]
}

# --- reading and writing each kind of entry ------------------------------------------------

# Values compare with runs of blanks as one space (multi-value sysctls read back with tabs).
norm() { printf '%s' "$1" | tr '\t' ' ' | tr -s ' '; }

sysctl_file() { printf '/proc/sys/%s' "$(printf '%s' "$1" | tr . /)"; }

# current KIND TARGET...: prints the entry's present value; fails with a reason on stderr.
read_sysctl() {
  f=$(sysctl_file "$1")
  [ -f "$f" ] || { echo "no such sysctl key" >&2; return 1; }
  v=$(cat "$f") || return 1
  case $v in *"$NL"*) echo "the present value spans lines" >&2; return 1 ;; esac
  printf '%s' "$v"
}
write_sysctl() {
  printf '%s\n' "$2" >"$(sysctl_file "$1")"
}
# The hierarchy that holds a cgroup file's controller, as CG_VER (v1 or v2) and CG_ROOT, from
# /proc/self/mounts: the unified hierarchy where it has the controller (cgroup.* files are the
# unified hierarchy's own), else the v1 hierarchy mounted for it, wherever that is.
cgroup_hierarchy() { # file
  ctl=${1%%.*}
  case $ctl in
    cgroup) ctl='' v1ctl='' ;;
    io) v1ctl=blkio ;;
    cpu | memory | pids) v1ctl=$ctl ;;
    *) echo "no controller provides $1" >&2; return 1 ;;
  esac
  CG_VER='' CG_ROOT='' v1root=''
  while read -r _dev mp type opts _rest; do
    # A mount point with a blank (an octal escape in this file) is not used.
    case $mp in *\\*) continue ;; esac
    case $type in
      cgroup2)
        if [ -z "$CG_ROOT" ] && [ -f "$mp/cgroup.controllers" ]; then
          if [ -z "$ctl" ] || grep -qw -- "$ctl" "$mp/cgroup.controllers"; then CG_VER=v2 CG_ROOT=$mp; fi
        fi
        ;;
      cgroup)
        if [ -n "$v1ctl" ] && [ -z "$v1root" ]; then
          case ",$opts," in *",$v1ctl,"*) v1root=$mp ;; esac
        fi
        ;;
    esac
  done </proc/self/mounts
  if [ -z "$CG_ROOT" ] && [ -n "$v1root" ]; then CG_VER=v1 CG_ROOT=$v1root; fi
  [ -n "$CG_ROOT" ] || { echo "no cgroup hierarchy on the host holds the controller of $1" >&2; return 1; }
}
# The group's folder in that hierarchy as CG_DIR: every folder on the way is a folder, none a
# symbolic link (the path's grammar already keeps out "..", "." and a leading "-").
cgroup_group() { # path
  CG_DIR=$CG_ROOT
  [ "$CG_DIR" = / ] && CG_DIR=
  rest=${1#/}
  while [ -n "$rest" ]; do
    CG_DIR=$CG_DIR/${rest%%/*}
    if [ -L "$CG_DIR" ]; then echo "$CG_DIR is a symbolic link, not a cgroup" >&2; return 1; fi
    [ -d "$CG_DIR" ] || { echo "no cgroup $1 under $CG_ROOT" >&2; return 1; }
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
  done
  [ -n "$CG_DIR" ] || CG_DIR=/
}
cg_file() { # name: the group's file, a file and not a link
  f=$CG_DIR/$1
  if [ ! -f "$f" ] || [ -L "$f" ]; then echo "no file $1 in cgroup $CG_DIR" >&2; return 1; fi
}
cg_line() { cg_file "$1" && head -n 1 "$f"; }
cg_put() { cg_file "$1" && printf '%s\n' "$2" >"$f"; }
cg_number() { # value max-digits
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ ${#1} -le "$2" ]
}
# The v1 I/O weight file a group has: CFQ's blkio.weight, else BFQ's blkio.bfq.weight.
cg_io_file() {
  for io in blkio.weight blkio.bfq.weight; do
    if [ -f "$CG_DIR/$io" ] && [ ! -L "$CG_DIR/$io" ]; then return 0; fi
  done
  echo "cgroup $CG_DIR has neither blkio.weight nor blkio.bfq.weight (no CFQ or BFQ I/O scheduler)" >&2
  return 1
}
# Entries name cgroup v2 files. Where the controller is on a v1 hierarchy the agent reads and
# writes the v1 files instead, in the v2 file's terms (the conversions of
# core/profile/cgroup-v1.ts): cpu.max as cpu.cfs_quota_us and cpu.cfs_period_us, cpu.weight as
# cpu.shares (shares = weight x 1024 / 100; shares no weight stands for read as "shares N", so
# that a rollback restores them exactly), memory.max as memory.limit_in_bytes, io.weight as
# blkio.weight or blkio.bfq.weight, pids.max as itself.
read_cgroup() {
  cgroup_hierarchy "$2" || return 1
  cgroup_group "$1" || return 1
  [ "$CG_VER" = v2 ] && { cg_line "$2"; return; }
  case $2 in
    cpu.max)
      q=$(cg_line cpu.cfs_quota_us) || return 1
      p=$(cg_line cpu.cfs_period_us) || return 1
      case $q in -*) q=max ;; esac
      printf '%s %s' "$q" "$p"
      ;;
    cpu.weight)
      s=$(cg_line cpu.shares) || return 1
      cg_number "$s" 7 || { echo "cpu.shares reads $(clean "$s")" >&2; return 1; }
      w=$(((s * 100 + 512) / 1024))
      [ "$w" -lt 1 ] && w=1
      [ "$w" -gt 10000 ] && w=10000
      if [ $(((w * 1024 + 50) / 100)) -eq "$s" ]; then printf '%s' "$w"; else printf 'shares %s' "$s"; fi
      ;;
    memory.max)
      b=$(cg_line memory.limit_in_bytes) || return 1
      cg_number "$b" 19 || { echo "memory.limit_in_bytes reads $(clean "$b")" >&2; return 1; }
      # The kernel keeps "no limit" as its largest page-rounded value.
      if [ "$b" -ge 4611686018427387904 ]; then printf 'max'; else printf '%s' "$b"; fi
      ;;
    io.weight)
      cg_io_file || return 1
      v=$(cg_line "$io") || return 1
      printf 'default %s' "$v"
      ;;
    pids.max) cg_line pids.max ;;
    *) echo "$2 has no cgroup v1 file" >&2; return 1 ;;
  esac
}
write_cgroup() {
  cgroup_hierarchy "$2" || return 1
  cgroup_group "$1" || return 1
  [ "$CG_VER" = v2 ] && { cg_put "$2" "$3"; return; }
  case $2 in
    cpu.max)
      q=${3%% *} p=
      case $3 in *' '*) p=${3#* } ;; esac
      [ "$q" = max ] && q=-1
      { [ "$q" = -1 ] || cg_number "$q" 19; } || { echo "cpu.max quota is not a number" >&2; return 1; }
      [ -z "$p" ] || cg_number "$p" 19 || { echo "cpu.max period is not a number" >&2; return 1; }
      # A quota is checked against the period in force: lifting it goes first, setting it last.
      if [ "$q" = -1 ]; then
        cg_put cpu.cfs_quota_us -1 && { [ -z "$p" ] || cg_put cpu.cfs_period_us "$p"; }
      else
        { [ -z "$p" ] || cg_put cpu.cfs_period_us "$p"; } && cg_put cpu.cfs_quota_us "$q"
      fi
      ;;
    cpu.weight)
      case $3 in
        'shares '*)
          s=${3#shares }
          if ! { cg_number "$s" 6 && [ "$s" -ge 2 ] && [ "$s" -le 262144 ]; }; then
            echo "cpu.shares $(clean "$s") is outside 2-262144" >&2
            return 1
          fi
          ;;
        *)
          if ! { cg_number "$3" 5 && [ "$3" -ge 1 ] && [ "$3" -le 10000 ]; }; then
            echo "cpu.weight $(clean "$3") is outside 1-10000" >&2
            return 1
          fi
          s=$((($3 * 1024 + 50) / 100))
          ;;
      esac
      cg_put cpu.shares "$s"
      ;;
    memory.max)
      b=$3
      [ "$b" = max ] && b=-1
      { [ "$b" = -1 ] || cg_number "$b" 19; } || { echo "memory.max is not a number of bytes" >&2; return 1; }
      cg_put memory.limit_in_bytes "$b"
      ;;
    io.weight)
      cg_io_file || return 1
      v=${3#default }
      lo=10
      [ "$io" = blkio.bfq.weight ] && lo=1
      if ! { cg_number "$v" 4 && [ "$v" -ge "$lo" ] && [ "$v" -le 1000 ]; }; then
        echo "io.weight $(clean "$v") is outside the range $lo-1000 of $io" >&2
        return 1
      fi
      cg_put "$io" "$v"
      ;;
    pids.max) cg_put pids.max "$3" ;;
    *) echo "$2 has no cgroup v1 file" >&2; return 1 ;;
  esac
}
# A cgroup value as written compares with what the file reads back: "max" reads "max 100000".
cgroup_matches() {
  want=$(norm "$1") got=$(norm "$2")
  [ "$want" = "$got" ] && return 0
  case $want in *' '*) return 1 ;; esac
  [ "${got%% *}" = "$want" ]
}
# The root egress rate Persona manages on an interface, in kbit/s: a tbf under Persona's own
# handle (9e50:, as the server-side switch uses), or "none" for the kernel's default qdisc
# (handle 0:). Any other root qdisc is someone else's, and left alone.
QDISC_HANDLE=9e50:
read_tc() {
  [ -e "/sys/class/net/$1" ] || { echo "no interface $1" >&2; return 1; }
  command -v tc >/dev/null 2>&1 || { echo "tc is not installed" >&2; return 1; }
  line=$(tc qdisc show dev "$1" root 2>&1 | head -n 1) || { echo "$line" >&2; return 1; }
  # Split into words on purpose (globbing is off): "qdisc tbf 9e50: root refcnt 2 rate ...".
  # shellcheck disable=SC2086
  set -- $line
  if [ "${3:-}" = "0:" ] || [ "${3:-}" = "" ]; then
    printf 'none'
    return 0
  fi
  if [ "${2:-}" != tbf ] || [ "${3:-}" != "$QDISC_HANDLE" ]; then
    echo "root qdisc ${2:-?} ${3:-} is not Persona's to replace" >&2
    return 1
  fi
  while [ $# -gt 0 ]; do
    if [ "$1" = rate ] && [ $# -ge 2 ]; then
      printf '%s' "$2" | awk '{
        v = $0; u = v; sub(/^[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
        m = (u == "bit") ? 0.001 : (u == "Kbit") ? 1 : (u == "Mbit") ? 1000 : (u == "Gbit") ? 1000000 : -1
        if (m < 0) exit 1
        printf "%.0f", v * m
      }'
      return
    fi
    shift
  done
  echo "no rate on the root tbf qdisc" >&2
  return 1
}
write_tc() {
  if [ "$2" = none ]; then
    tc qdisc del dev "$1" root
  else
    # A burst of 10 ms at the rate, at least 16 KiB (the server-side switch uses the same).
    burst=$((($2 * 5 + 3) / 4))
    [ "$burst" -lt 16384 ] && burst=16384
    tc qdisc replace dev "$1" root handle "$QDISC_HANDLE" tbf rate "${2}kbit" burst "$burst" latency 50ms
  fi
}

# --- applying an assignment ----------------------------------------------------------------

ENTRIES_JSON=
add_entry() { # index kind target from to status detail
  e=$(printf '{"index":%s,"kind":"%s","target":"%s","status":"%s"' "$1" "$2" "$(clean "$3")" "$6")
  [ -n "$4" ] && e="$e,\"from\":\"$(clean "$4")\""
  [ -n "$5" ] && e="$e,\"to\":\"$(clean "$5")\""
  [ -n "$7" ] && e="$e,\"detail\":\"$(clean "$7")\""
  ENTRIES_JSON="${ENTRIES_JSON:+$ENTRIES_JSON,}$e}"
}

# Reads entry i of the checked list into KIND A B C (C the value; B empty when the kind has
# two fields).
split_entry() {
  KIND=${1%%"$TAB"*}
  rest=${1#*"$TAB"}
  A=${rest%%"$TAB"*}
  rest=${rest#*"$TAB"}
  if [ "$KIND" = cgroup ]; then
    B=${rest%%"$TAB"*}
    C=${rest#*"$TAB"}
  else
    B=
    C=$rest
  fi
}

target_of() { if [ "$KIND" = cgroup ]; then printf '%s/%s' "$A" "$B"; else printf '%s' "$A"; fi; }

read_entry() {
  case $KIND in
    sysctl) read_sysctl "$A" ;;
    cgroup) read_cgroup "$A" "$B" ;;
    tc) read_tc "$A" ;;
  esac
}
write_entry() { # value
  case $KIND in
    sysctl) write_sysctl "$A" "$1" ;;
    cgroup) write_cgroup "$A" "$B" "$1" ;;
    tc) write_tc "$A" "$1" ;;
  esac
}
entry_matches() { # want got
  case $KIND in
    cgroup) cgroup_matches "$1" "$2" ;;
    *) [ "$(norm "$1")" = "$(norm "$2")" ] ;;
  esac
}

# Restores, newest first, every entry of the journal in $1 that was begun; marks the journal.
rollback_journal() {
  journal=$1
  failures=0
  awk -F'\t' '$1 == "change" { lines[n++] = $0 } END { for (i = n - 1; i >= 0; i--) print lines[i] }' \
    "$journal" >"$STATE_DIR/journal.reverse"
  while IFS= read -r jl || [ -n "$jl" ]; do
    jl=${jl#change"$TAB"}
    index=${jl%%"$TAB"*}
    jl=${jl#*"$TAB"}
    # change <index> <kind> <a> [<b>] <value wanted> <previous value>
    KIND=${jl%%"$TAB"*}
    jl=${jl#*"$TAB"}
    A=${jl%%"$TAB"*}
    jl=${jl#*"$TAB"}
    B=
    if [ "$KIND" = cgroup ]; then
      B=${jl%%"$TAB"*}
      jl=${jl#*"$TAB"}
    fi
    wanted=${jl%%"$TAB"*}
    previous=${jl#*"$TAB"}
    target=$(target_of)
    if write_entry "$previous" 2>"$STATE_DIR/entry.err" && got=$(read_entry 2>>"$STATE_DIR/entry.err") &&
      entry_matches "$previous" "$got"; then
      add_entry "$index" "$KIND" "$target" "$wanted" "$previous" reverted ""
    else
      failures=$((failures + 1))
      add_entry "$index" "$KIND" "$target" "$wanted" "$previous" not-reverted "$(cat "$STATE_DIR/entry.err")"
      log "could not restore $(clean "$target") to $(clean "$previous"): $(clean "$(cat "$STATE_DIR/entry.err")")"
    fi
  done <"$STATE_DIR/journal.reverse"
  printf 'rolled-back\t%s\n' "$failures" >>"$journal"
  return "$failures"
}

# apply_file FILE: applies an assignment; leaves the report's JSON in $STATE_DIR/report.json
# and sets OUTCOME.
OUTCOME=failed
MODE=cycle
# parse_file FILE: reads an assignment into PERSONA VERSION REVISION OVERRIDE UNTIL, the entries
# that pass their grammars into $STATE_DIR/entries, and sets detail (why the document itself is
# not an assignment), refusals (entries that failed) and ended (the end line was read).
parse_file() {
  file=$1
  PERSONA=- VERSION=0 REVISION=- OVERRIDE=retain UNTIL=0 FORMAT=
  : >"$STATE_DIR/entries"
  n=0 refusals=0 ended=0 line_no=0 detail=
  while IFS= read -r line; do
    line_no=$((line_no + 1))
    if [ "$ended" = 1 ]; then detail="lines after end"; refusals=$((refusals + 1)); break; fi
    if [ "$line_no" = 1 ]; then
      case $line in
        "persona-assignment 1") FORMAT=1 ;;
        "persona-assignment 2") FORMAT=2 ;;
        *) detail="not an assignment (format persona-assignment 1 or 2)"; break ;;
      esac
      continue
    fi
    # Format 2: the override policy, on the line after the persona line.
    if [ "$line_no" = 3 ] && [ "$FORMAT" = 2 ]; then
      IFS=$TAB read -r tag o u <<EOF
$line
EOF
      case $tag in override) ;; *) detail="no override line"; break ;; esac
      case $o in retain | enforced) ;; *) detail="override is neither retain nor enforced"; break ;; esac
      case $u in '' | *[!0-9]*) detail="the retain time is not a number of seconds"; break ;; esac
      [ "${#u}" -gt 12 ] && { detail="the retain time is not a number of seconds"; break; }
      OVERRIDE=$o UNTIL=$u
      continue
    fi
    if [ "$line_no" = 2 ]; then
      IFS=$TAB read -r tag p v r <<EOF
$line
EOF
      case $tag in persona) ;; *) detail="no persona line"; break ;; esac
      case $p in - | [a-z0-9]*) ;; *) p='?' ;; esac
      case $p in *[!a-z0-9._-]*) detail="persona name is not a name"; break ;; esac
      case $v in '' | *[!0-9]*) detail="persona version is not a number"; break ;; esac
      case $r in '' | *[!0-9a-f]*) detail="revision is not a hash"; break ;; esac
      PERSONA=$p VERSION=$v REVISION=$r
      continue
    fi
    [ "$line" = end ] && { ended=1; continue; }
    split_entry "$line"
    reason=
    case $KIND in
      sysctl)
        valid_sysctl_key "$A" || reason="sysctl key is not a key (letters, digits, _ and - in dot-separated names)"
        [ -z "$reason" ] && { valid_sysctl_value "$C" || reason="sysctl value holds characters or a length a value may not have"; }
        ;;
      cgroup)
        valid_cgroup_path "$A" || reason="cgroup path is not a path of cgroup names"
        [ -z "$reason" ] && { valid_cgroup_file "$B" || reason="cgroup file is not a limit file the agent writes"; }
        [ -z "$reason" ] && { valid_cgroup_value "$C" || reason="cgroup value is not a limit value"; }
        ;;
      tc)
        valid_interface "$A" || reason="interface is not an interface name"
        [ -z "$reason" ] && { valid_rate "$C" || reason="rate is not a number of kbit/s"; }
        ;;
      refused) reason="refused by the API: $C" ;;
      *) reason="unknown entry kind" ;;
    esac
    if [ -n "$reason" ]; then
      refusals=$((refusals + 1))
      kind=$KIND
      case $kind in sysctl | cgroup | tc) ;; *) kind=unknown ;; esac
      # The refused value is not echoed: it is hostile or broken, and the report is data too.
      add_entry "$n" "$kind" "" "" "" refused "$reason"
      log "refused entry $n ($kind): $reason"
    else
      printf '%s\n' "$line" >>"$STATE_DIR/entries"
    fi
    n=$((n + 1))
  done <"$file"
}

apply_file() {
  ENTRIES_JSON=
  OUTCOME=failed
  parse_file "$1"
  # A revision that was refused or rolled back is not tried again every cycle (that would
  # change and restore the host's values each interval): only a new revision is.
  if [ "$MODE" = cycle ] && [ "$REVISION" != - ] && [ "$(cat "$STATE_DIR/failed" 2>/dev/null)" = "$REVISION" ]; then
    OUTCOME=unchanged
    write_report
    return
  fi
  if [ -n "$detail" ] || [ "$ended" != 1 ]; then
    [ -z "$detail" ] && detail="the assignment ended early (no end line)"
    [ "$refusals" -gt 0 ] && OUTCOME=refused
    add_entry 0 unknown "" "" "" refused "$detail"
    log "assignment not applied: $detail"
    write_report
    return
  fi
  if [ "$refusals" -gt 0 ]; then
    OUTCOME=refused
    log "assignment $REVISION refused: $refusals entries failed their grammar; nothing applied"
    write_report
    return
  fi
  # Applied in this boot: a reboot puts the kernel's sysctl and tc values back, so a revision
  # applied before it is applied again (the state folder outlives the boot). Applied already,
  # the entries are read again: one that no longer reads as assigned was changed by hand.
  CHANGED_DETAIL=
  if [ "$(cat "$STATE_DIR/applied" 2>/dev/null)" = "$REVISION $(boot_id)" ]; then
    if ! drifted; then
      rm -f "$STATE_DIR/retained"
      OUTCOME=unchanged
      write_report
      return
    fi
    if [ "$MODE" = cycle ] && [ "$OVERRIDE" = retain ]; then
      now=$(date +%s)
      kept_revision= kept=0
      [ -f "$STATE_DIR/retained" ] && read -r kept_revision kept <"$STATE_DIR/retained"
      if [ "$kept_revision" != "$REVISION" ]; then
        # First seen: kept until the window edge the assignment names now, reported once.
        printf '%s %s\n' "$REVISION" "$UNTIL" >"$STATE_DIR/retained"
        ENTRIES_JSON=$DRIFT_JSON
        OUTCOME=retained
        log "an operator's change to $DRIFTED entries is retained$(until_text "$UNTIL")"
        write_report
        return
      fi
      case $kept in '' | *[!0-9]*) kept=0 ;; esac
      if [ "$kept" = 0 ] || [ "$now" -lt "$kept" ]; then
        OUTCOME=unchanged
        write_report
        return
      fi
      CHANGED_DETAIL="changed by an operator, retained until the window edge, now restored"
    elif [ "$MODE" = cycle ]; then
      CHANGED_DETAIL="changed by an operator, undone (override: enforced)"
    else
      CHANGED_DETAIL="changed since the last apply, undone (persona-agent apply)"
    fi
    rm -f "$STATE_DIR/retained"
    log "$CHANGED_DETAIL ($DRIFTED entries)"
  fi

  journal=$STATE_DIR/journal
  printf 'begin\t%s\t%s\t%s\n' "$REVISION" "$PERSONA" "$VERSION" >"$journal"
  i=0 failed=
  while IFS= read -r line; do
    split_entry "$line"
    target=$(target_of)
    if ! current=$(read_entry 2>"$STATE_DIR/entry.err"); then
      failed="$(cat "$STATE_DIR/entry.err")"
      add_entry "$i" "$KIND" "$target" "" "$C" failed "$failed"
      break
    fi
    if entry_matches "$C" "$current"; then
      add_entry "$i" "$KIND" "$target" "$current" "$C" unchanged ""
      i=$((i + 1))
      continue
    fi
    # The previous value is in the journal before the host is touched. It is the last field
    # (it may hold tabs); the wanted value, kept for the report only, has its tabs as spaces.
    if [ "$KIND" = cgroup ]; then
      printf 'change\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$KIND" "$A" "$B" "$(norm "$C")" "$current" >>"$journal"
    else
      printf 'change\t%s\t%s\t%s\t%s\t%s\n' "$i" "$KIND" "$A" "$(norm "$C")" "$current" >>"$journal"
    fi
    if ! write_entry "$C" 2>"$STATE_DIR/entry.err"; then
      failed="$(cat "$STATE_DIR/entry.err")"
      [ -z "$failed" ] && failed="the write failed"
    elif ! got=$(read_entry 2>"$STATE_DIR/entry.err"); then
      failed="read back failed: $(cat "$STATE_DIR/entry.err")"
    elif ! entry_matches "$C" "$got"; then
      failed="read back $(norm "$got") instead"
    fi
    if [ -n "$failed" ]; then
      add_entry "$i" "$KIND" "$target" "$current" "$C" failed "$failed"
      break
    fi
    add_entry "$i" "$KIND" "$target" "$current" "$C" changed "$CHANGED_DETAIL"
    i=$((i + 1))
  done <"$STATE_DIR/entries"
  if [ -n "$failed" ]; then
    log "entry $i ($(clean "$target")) failed: $(clean "$failed"); rolling back"
    rollback_journal "$journal" || true
    OUTCOME=rolled-back
  else
    printf 'done\n' >>"$journal"
    printf '%s %s\n' "$REVISION" "$(boot_id)" >"$STATE_DIR/applied"
    OUTCOME=applied
    log "assignment $REVISION applied (persona $PERSONA version $VERSION)"
  fi
  write_report
}

# Whether an entry of the checked list no longer reads as assigned: sets DRIFTED (how many) and
# DRIFT_JSON (their report entries, status retained). An entry that cannot be read counts as
# drifted: the apply that follows reports why.
drifted() {
  DRIFTED=0 DRIFT_JSON= saved=$ENTRIES_JSON
  ENTRIES_JSON=
  j=0
  while IFS= read -r line; do
    split_entry "$line"
    got=
    if ! got=$(read_entry 2>/dev/null) || ! entry_matches "$C" "$got"; then
      DRIFTED=$((DRIFTED + 1))
      add_entry "$j" "$KIND" "$(target_of)" "$got" "$C" retained "changed on the host since it was applied"
    fi
    j=$((j + 1))
  done <"$STATE_DIR/entries"
  DRIFT_JSON=$ENTRIES_JSON
  ENTRIES_JSON=$saved
  [ "$DRIFTED" -gt 0 ]
}

until_text() {
  if [ "$1" = 0 ]; then printf ' until the assignment changes'; return; fi
  printf ' until %s' "$(date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || printf '%s' "$1")"
}

boot_id() { head -c 64 /proc/sys/kernel/random/boot_id 2>/dev/null | tr -cd 'a-f0-9-'; }

# A journal whose last line is neither done nor rolled-back: the agent died while applying.
recover() {
  journal=$STATE_DIR/journal
  [ -f "$journal" ] || return 0
  last=$(tail -n 1 "$journal")
  case $last in done | rolled-back*) return 0 ;; esac
  ENTRIES_JSON=
  IFS=$TAB read -r _ REVISION PERSONA VERSION <"$journal"
  log "an apply of $REVISION was interrupted; restoring what it changed"
  rollback_journal "$journal" || true
  OUTCOME=rolled-back
  write_report
  # Interrupted is not refused: the next cycle tries the revision again.
  rm -f "$STATE_DIR/failed"
  post_report
}

write_report() {
  case $OUTCOME in refused | rolled-back) printf '%s\n' "$REVISION" >"$STATE_DIR/failed" ;; esac
  persona=null
  [ "$PERSONA" != - ] && persona="\"$PERSONA\""
  printf '{"host":"%s","revision":"%s","persona":%s,"version":%s,"outcome":"%s","at":"%s","entries":[%s]}\n' \
    "$HOST" "$REVISION" "$persona" "$VERSION" "$OUTCOME" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ENTRIES_JSON" \
    >"$STATE_DIR/report.json"
}

post_report() {
  http POST "/hosts/$HOST/agent/reports" "$STATE_DIR/report.json" "$STATE_DIR/http.out"
  case $STATUS in 2??) ;; *) refused "the apply report" ;; esac
}

# --- the cycle -----------------------------------------------------------------------------

# One apply at a time on a host (the supervised loop, a timer's run, an operator's apply): a
# lock directory holding its owner's pid; one left by a process that died is taken over.
lock() {
  tries=0
  while ! mkdir "$STATE_DIR/lock" 2>/dev/null; do
    owner=$(cat "$STATE_DIR/lock/pid" 2>/dev/null || true)
    case $owner in
      '' | *[!0-9]*) ;;
      *) if ! kill -0 "$owner" 2>/dev/null; then rm -rf "$STATE_DIR/lock"; continue; fi ;;
    esac
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ]; then log "another apply holds $STATE_DIR/lock"; return 1; fi
    sleep 0.1
  done
  printf '%s\n' $$ >"$STATE_DIR/lock/pid"
}
unlock() { rm -rf "$STATE_DIR/lock"; }

cycle() {
  metrics_report "$STATE_DIR/metrics.json"
  http POST /metrics "$STATE_DIR/metrics.json" "$STATE_DIR/http.out"
  case $STATUS in
    2??) [ -n "$LAST_REFUSAL" ] && log "metrics accepted again"; LAST_REFUSAL= ;;
    *) refused "the metrics report"; LAST_REFUSAL=$STATUS ;;
  esac
  http GET "/hosts/$HOST/agent/assignment" - "$STATE_DIR/assignment" 'text/plain; format=2'
  case $STATUS in
    200)
      if lock; then
        apply_file "$STATE_DIR/assignment"
        unlock
        [ "$OUTCOME" != unchanged ] && post_report
      fi
      ;;
    *) refused "the assignment" ;;
  esac
}

run() {
  read_conf || exit 78
  if lock; then
    recover
    unlock
  fi
  log "reporting to $ENDPOINT every $INTERVAL s as host $HOST"
  trap 'log "stopping"; exit 0' TERM INT
  while :; do
    cycle
    sleep "$INTERVAL" &
    wait $! || true
  done
}

# --- supervision (hosts without systemd) ---------------------------------------------------

running_pid() {
  [ -r "$PIDFILE" ] || return 1
  pid=$(head -n 1 "$PIDFILE")
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  # The pid may have been reused since: it is ours only if it runs this script's supervisor.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "persona-agent.sh supervise" || return 1
  printf '%s' "$pid"
}

supervise() {
  if other=$(running_pid) && [ "$other" != $$ ]; then
    log "a supervisor already runs (pid $other)"
    exit 0
  fi
  printf '%s\n' $$ >"$PIDFILE"
  child=
  trap '[ -n "$child" ] && kill "$child" 2>/dev/null; rm -f "$PIDFILE"; exit 0' TERM INT
  while :; do
    if [ -f "$LOG" ] && [ "$(wc -c <"$LOG")" -gt 1048576 ]; then mv -f "$LOG" "$LOG.1"; fi
    "$SELF" run >>"$LOG" 2>&1 &
    child=$!
    wait "$child"
    status=$?
    child=
    log "the agent exited ($status); restarting in 5 s" >>"$LOG" 2>&1
    sleep 5 &
    wait $! || true
  done
}

start() {
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    return 0
  fi
  setsid "$SELF" supervise </dev/null >>"$LOG" 2>&1 &
  i=0
  while [ $i -lt 50 ]; do
    running_pid >/dev/null && return 0
    sleep 0.1
    i=$((i + 1))
  done
  log "the supervisor did not start"
  return 1
}

stop() {
  pid=$(running_pid) || return 0
  # The supervisor leads its own session and process group: TERM reaches the agent and its sleep too.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  i=0
  while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$PIDFILE"
  return 0
}

case ${1:-} in
  run) run ;;
  once)
    read_conf || exit 78
    if lock; then
      recover
      unlock
    fi
    cycle
    ;;
  supervise) supervise ;;
  start) start ;;
  stop) stop ;;
  apply)
    [ $# -eq 2 ] || { echo "usage: persona-agent.sh apply FILE" >&2; exit 64; }
    HOST=$(sed -n 's/^host=//p' "$CONF_DIR/agent.conf" 2>/dev/null | head -n 1)
    case $HOST in '' | [.-]* | *[!A-Za-z0-9._-]*) HOST=unknown ;; esac
    mkdir -p "$STATE_DIR"
    MODE=apply
    lock || exit 75
    apply_file "$2"
    unlock
    cat "$STATE_DIR/report.json"
    case $OUTCOME in applied | unchanged) exit 0 ;; *) exit 1 ;; esac
    ;;
  check)
    # What Persona runs on a host without an agent, each sampling round: which entries of the
    # assignment in PERSONA_ASSIGNMENT no longer read as assigned. Reads only; the state
    # folder is a temporary one, gone when it ends.
    STATE_DIR=$(mktemp -d) || exit 70
    trap 'rm -rf -- "$STATE_DIR"' EXIT
    a=${PERSONA_ASSIGNMENT:-}
    printf '%s\n' "${a%"$NL"}" >"$STATE_DIR/assignment"
    ENTRIES_JSON=
    parse_file "$STATE_DIR/assignment" 2>/dev/null
    if [ -n "$detail" ] || [ "$ended" != 1 ] || [ "$refusals" -gt 0 ]; then
      [ -z "$detail" ] && [ "$ended" != 1 ] && detail="the assignment ended early (no end line)"
      [ -z "$detail" ] && detail="$refusals entries failed their grammar"
      printf '{"outcome":"refused","revision":"%s","detail":"%s","entries":[%s]}\n' \
        "$REVISION" "$(clean "$detail")" "$ENTRIES_JSON"
      exit 65
    fi
    if drifted; then
      printf '{"outcome":"drifted","revision":"%s","entries":[%s]}\n' "$REVISION" "$DRIFT_JSON"
    else
      printf '{"outcome":"unchanged","revision":"%s","entries":[]}\n' "$REVISION"
    fi
    ;;
  metrics)
    read_conf || exit 78
    SHOW_ONLY=1
    metrics_report "$STATE_DIR/metrics.show" && cat "$STATE_DIR/metrics.show"
    ;;
  *)
    echo "usage: persona-agent.sh run|once|supervise|start|stop|apply FILE|check|metrics" >&2
    exit 64
    ;;
esac
