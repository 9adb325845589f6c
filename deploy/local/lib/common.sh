# shellcheck shell=bash
# Shared helpers for deploy/local/services: logging, pid files, process
# identity checks, port checks, start/stop of one background service.
#
# Every JVM we launch carries two marker system properties:
#   -Dinboxflow.local.service=<kafka|cassandra>  -Dinboxflow.local.dir=<WORK>
# A process only counts as "ours" when its /proc/<pid>/cmdline contains both
# markers verbatim, so a recycled pid or another checkout's services are never
# signalled.

log() { printf '%s\n' "$*"; }
warn() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, and a "12.3" seconds rendering of a ms delta.
now_ms() { date +%s%3N; }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }

marker_service() { printf -- '-Dinboxflow.local.service=%s' "$1"; }
marker_dir() { printf -- '-Dinboxflow.local.dir=%s' "$WORK"; }
pid_file() { printf '%s/%s/%s.pid' "$WORK" "$1" "$1"; }

# is_ours PID SVC: true when PID is alive and is the SVC JVM of this WORK dir.
is_ours() {
  local pid=$1 svc=$2 args
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  grep -Fxq -- "$(marker_service "$svc")" <<<"$args" &&
    grep -Fxq -- "$(marker_dir)" <<<"$args"
}

# find_pids SVC: pids of all live SVC JVMs of this WORK dir (pid file or not).
find_pids() {
  local svc=$1 pid
  for pid in $(pgrep -f -- "inboxflow.local.service=$svc" || true); do
    if is_ours "$pid" "$svc"; then printf '%s\n' "$pid"; fi
  done
}

# svc_pid SVC: print the pid of the running SVC and succeed, or fail.
# Handles stale pid files (removed) and lost pid files (re-adopted).
svc_pid() {
  local svc=$1 file pid
  file=$(pid_file "$svc")
  if [[ -f $file ]]; then
    pid=$(<"$file")
    if is_ours "$pid" "$svc"; then printf '%s\n' "$pid"; return 0; fi
    rm -f "$file"                                  # stale: process is gone
  fi
  pid=$(find_pids "$svc" | head -n1)
  [[ -n $pid ]] || return 1
  printf '%s\n' "$pid" >"$file"                    # orphan: adopt it
  printf '%s\n' "$pid"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_ports_free SVC PORT...: refuse to start when a foreign process
# already listens on one of the ports (our own stopped service cannot).
require_ports_free() {
  local svc=$1 port; shift
  for port in "$@"; do
    port_open "$port" && die "$svc: port $port on 127.0.0.1 is already in use by another process"
  done
  return 0
}

# launch SVC OUTFILE CMD...: start CMD detached (own session, no tty, stdio to
# OUTFILE, cwd = $WORK/SVC so JVM crash files land there) and record its pid.
# `bash -c` writes its own pid and then execs the JVM, so the recorded pid is
# the JVM's whatever setsid decides to do.
launch() {
  local svc=$1 out=$2; shift 2
  local file; file=$(pid_file "$svc")
  rm -f "$file"
  printf '=== %s: starting %s\n' "$(date -Is)" "$svc" >>"$out"
  # shellcheck disable=SC2016  # $$, $0 and $@ belong to the inner bash
  nohup setsid bash -c 'cd "$1" || exit 1; echo $$ >"$0"; shift; exec "$@"' \
    "$file" "$WORK/$svc" "$@" </dev/null >>"$out" 2>&1 &
  for _ in $(seq 50); do [[ -s $file ]] && return 0; sleep 0.1; done
  die "$svc: launcher did not write $file"
}

# stop_svc SVC TIMEOUT_S: SIGTERM every SVC JVM of this WORK dir, wait up to
# TIMEOUT_S for exit, then SIGKILL the survivors. Always removes the pid file.
stop_svc() {
  local svc=$1 timeout=$2 pids pid t0
  svc_pid "$svc" >/dev/null || true               # drop a stale pid file
  pids=$(find_pids "$svc")
  if [[ -z $pids ]]; then rm -f "$(pid_file "$svc")"; log "$svc: not running"; return 0; fi
  t0=$(now_ms)
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  while (( $(now_ms) - t0 < timeout * 1000 )); do
    pids=$(for pid in $pids; do is_ours "$pid" "$svc" && echo "$pid"; done; true)
    [[ -z $pids ]] && break
    sleep 0.2
  done
  if [[ -n $pids ]]; then
    warn "$svc: still running after ${timeout}s, sending SIGKILL to $pids"
    for pid in $pids; do is_ours "$pid" "$svc" && kill -KILL "$pid" 2>/dev/null; done
    sleep 0.5
  fi
  rm -f "$(pid_file "$svc")"
  [[ -z $(find_pids "$svc") ]] || die "$svc: could not stop process(es) $(find_pids "$svc" | tr '\n' ' ')"
  log "$svc: stopped in $(secs_since "$t0") s"
}

# kill_svc SVC: SIGKILL the SVC JVM of this WORK dir (a crash, for fault
# tests: no shutdown hook runs, nothing is flushed) and wait until it is gone.
kill_svc() {
  local svc=$1 pid
  pid=$(svc_pid "$svc") || die "$svc: not running"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do is_ours "$pid" "$svc" || break; sleep 0.1; done
  is_ours "$pid" "$svc" && die "$svc: pid $pid survived SIGKILL"
  rm -f "$(pid_file "$svc")"
  wait_reaped "$pid"
  log "$svc: killed (SIGKILL, pid $pid)"
}

# wait_reaped PID...: our JVMs are re-parented to init, which reaps them only
# a moment (~1.5 s) after they exit; wait (at most 3 s) until no <defunct>
# entry is left, so that `pgrep` shows nothing of ours after `down`.
wait_reaped() {
  local pid
  for pid in "$@"; do
    for _ in $(seq 30); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
  done
}

# show_log_tail FILE...: last lines of each existing file, for failure reports.
show_log_tail() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf -- '----- last 30 lines of %s (cut at 300 columns) -----\n' "$f" >&2
    tail -n 30 "$f" | cut -c1-300 >&2
  done
}

# Readiness clients: kcat from Debian's packages, cqlsh from PyPI at a pinned
# version in a venv under $TOOLS_DIR (shared by every work folder: it is a
# tool, not service data).
# Why these and not a `wait-ready` command of our own binaries: `services up`
# runs before (and without) a cargo build, in CI as on a clean clone, and both
# are maintained clients speaking the real protocols.
CQLSH_VERSION=6.2.2
TOOLS_DIR=${INBOXFLOW_TOOLS_DIR:-$HERE/.work/tools}
CQLSH_VENV=$TOOLS_DIR/cqlsh-$CQLSH_VERSION
CQLSH=$CQLSH_VENV/bin/cqlsh

# ensure_kcat: kcat is on PATH (all that Kafka's readiness needs).
ensure_kcat() { command -v kcat >/dev/null || die "kcat not found (apt-get install kcat)"; }

# ensure_tools: kcat is on PATH, and cqlsh $CQLSH_VERSION is installed (from
# PyPI, once; `.installed` marks a complete install).
ensure_tools() {
  ensure_kcat
  [[ -f $CQLSH_VENV/.installed ]] && return 0
  local log_file="$WORK/logs/cqlsh-install.log" t0
  log "cqlsh: installing cqlsh==$CQLSH_VERSION into $CQLSH_VENV ..."
  t0=$(now_ms)
  rm -rf "$CQLSH_VENV"
  mkdir -p "$TOOLS_DIR"
  { python3 -m venv "$CQLSH_VENV" &&
    "$CQLSH_VENV/bin/pip" install -q --disable-pip-version-check "cqlsh==$CQLSH_VERSION"; } \
    >"$log_file" 2>&1 ||
    { show_log_tail "$log_file"; die "cqlsh: install failed (needs python3-venv and PyPI)"; }
  touch "$CQLSH_VENV/.installed"
  log "cqlsh: installed ($(secs_since "$t0") s)"
}
