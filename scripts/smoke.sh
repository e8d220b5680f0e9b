#!/usr/bin/env bash
# Smoke test of a built or installed Kiln, for packagers and for anyone checking a machine.
#
#   scripts/smoke.sh [BIN_DIR]
#
# BIN_DIR holds kiln and kiln-supervisor, with kiln-worker beside them (a build tree) or in
# BIN_DIR/../libexec/kiln (an install) (default: $KILN_BIN, else the directory of `kiln` on PATH,
# else this checkout's build/bin). Starts a daemon on a temporary socket, runs jobs through
# `kiln run`, `kiln exec` and `kiln-exec`, crashes a worker and SIGKILLs another and checks that
# the next jobs still run, shuts the daemon down, and checks with ps that nothing is left. One
# line per check, `N passed, N failed` last; exit status 0 only when every check passed.
set -uo pipefail

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0"
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) echo "smoke: unknown option $1" >&2; usage >&2; exit 2 ;;
esac

bin=${1:-${KILN_BIN:-}}
if [[ -z "$bin" ]]; then
  if command -v kiln >/dev/null; then
    bin=$(dirname "$(command -v kiln)")
  else
    bin=$(cd "$(dirname "$0")/.." && pwd)/build/bin
  fi
fi
for b in kiln kiln-supervisor; do
  if [[ ! -x "$bin/$b" ]]; then
    echo "smoke: $bin/$b is missing or not executable (build first, or pass BIN_DIR)" >&2
    exit 2
  fi
done
if [[ ! -x "$bin/kiln-worker" && ! -x "$bin/../libexec/kiln/kiln-worker" ]]; then
  echo "smoke: no kiln-worker in $bin or $bin/../libexec/kiln (build first, or pass BIN_DIR)" >&2
  exit 2
fi
kiln=$bin/kiln

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-smoke.XXXXXX")
sock=$tmp/kiln.sock
daemon=
daemon_pid=  # kept after shutdown, for the last check
cleanup() {
  [[ -n "$daemon" ]] && kill -KILL "$daemon" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
# check NAME COMMAND...: runs the command, its output kept aside and shown only if it fails.
check() {
  local name=$1
  shift
  if "$@" >"$tmp/check.out" 2>&1; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    sed 's/^/       /' "$tmp/check.out" | tail -n 20
    failed=$((failed + 1))
  fi
}

# wait_for SECONDS COMMAND...: true once the command succeeds, false after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.05
  done
}

# Processes (pid and command line) whose command line contains $1. The ps in the pipeline does
# not match itself: its own arguments never contain the pattern.
processes_with() {
  local all
  all=$(ps -eo pid=,args=)
  while read -r line; do
    [[ "$line" == *"$1"* ]] && echo "$line"
  done <<<"$all"
  return 0
}
none_with() { [[ -z "$(processes_with "$1")" ]]; }
gone() { ! ps -p "$1" >/dev/null; }
workers() { ps -o pid= --ppid "$daemon" | tr -d ' '; }
worker_count_is() { [[ $(workers | wc -l) -eq $1 ]]; }

# expect_output WANT COMMAND...: the command succeeds and its stdout contains WANT.
expect_output() {
  local want=$1 out
  shift
  out=$("$@") || { echo "exit status $?: $out"; return 1; }
  [[ "$out" == *"$want"* ]] || { echo "wanted: $want"; echo "got:    $out"; return 1; }
}

# expect_status STATUS COMMAND...
expect_status() {
  local want=$1 status
  shift
  "$@"
  status=$?
  [[ $status -eq $want ]] || { echo "exit status $status, wanted $want"; return 1; }
}

start_daemon() {
  "$bin/kiln-supervisor" --listen "$sock" --workers 2 --enable-selftest --grace-ms 300 \
    --log-file "$tmp/daemon.log" &
  daemon=$!
  daemon_pid=$daemon
  wait_for 10 test -S "$sock" && wait_for 10 worker_count_is 2 || { cat "$tmp/daemon.log"; return 1; }
  [[ $(stat -c %a "$sock") == 600 ]] || { echo "socket mode $(stat -c %a "$sock")"; return 1; }
}

run_echo() {
  printf '{"kind": "echo", "payload": {"smoke": [1, "two"]}}\n' | "$kiln" run --socket "$sock"
}
run_exec() {
  printf '{"argv": ["sh", "-c", "echo compiled"]}\n' | "$kiln" run --socket "$sock"
}
exec_relays() {
  local out err
  out=$("$kiln" exec --socket "$sock" -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 7' \
    2>"$tmp/exec.err")
  local status=$?
  err=$(<"$tmp/exec.err")
  [[ $status -eq 7 && "$out" == to-stdout && "$err" == to-stderr ]] ||
    { echo "status $status, stdout '$out', stderr '$err'"; return 1; }
}
kiln_exec_relays() {
  local out
  out=$(KILN_SOCKET=$sock "$bin/kiln-exec" sh -c 'echo launched; exit 5')
  local status=$?
  [[ $status -eq 5 && "$out" == launched ]] || { echo "status $status, stdout '$out'"; return 1; }
}
crash_a_worker() {
  local out
  out=$(printf '{"kind": "selftest", "payload": {"action": "crash"}}\n' |
    "$kiln" run --socket "$sock")
  local status=$?
  [[ $status -eq 1 && "$out" == *'"code":"worker_crashed"'* && "$out" == *kiln_selftest_crash* ]] ||
    { echo "status $status: $out"; return 1; }
}
kill_a_worker() {
  local victim
  victim=$(workers | head -n 1)
  [[ -n "$victim" ]] || { echo "no worker to kill"; return 1; }
  kill -KILL "$victim" || return 1
  wait_for 10 gone "$victim" || { echo "worker $victim still there"; return 1; }
  wait_for 10 worker_count_is 2 || { echo "workers: $(workers | xargs)"; return 1; }
}
job_leaves_nothing() {
  # A command that leaves a background child: the job must take it along when it ends.
  printf 'sleep 300\n' >"$tmp/marker.sh"
  expect_output started "$kiln" exec --socket "$sock" -- sh -c "sh $tmp/marker.sh & echo started" ||
    return 1
  wait_for 10 none_with "$tmp/marker" || { processes_with "$tmp/marker"; return 1; }
}
shut_down() {
  expect_status 0 "$kiln" shutdown --socket "$sock" || return 1
  wait "$daemon"
  local status=$?
  daemon=
  [[ $status -eq 0 ]] || { echo "daemon exit status $status"; return 1; }
  [[ ! -e "$sock" ]] || { echo "socket file left behind"; return 1; }
}
nothing_left() {
  local left
  left=$(processes_with "--parent $daemon_pid"; processes_with "$sock"; processes_with "$tmp/marker")
  [[ -z "$left" ]] || { echo "still running:"; echo "$left"; return 1; }
}

echo "kiln smoke test of $bin ($("$kiln" --version))"
check "daemon starts with 2 workers on a socket of mode 0600" start_daemon
if [[ -n "$daemon" ]]; then
  check "kiln run: an echo job" expect_output '"ok":true,"queue_us":' run_echo
  check "kiln run: the echo value comes back" expect_output '"value":{"smoke":[1,"two"]}' run_echo
  check "kiln run: an exec job" expect_output '"stdout":"compiled\n"' run_exec
  check "kiln exec: output relayed, exit code 7 returned" exec_relays
  check "kiln-exec (the launcher binary): the same, on the same daemon" kiln_exec_relays
  check "selftest crash: worker_crashed with its stack trace" crash_a_worker
  check "after the crash: the next job runs" expect_output crash-survived \
    "$kiln" exec --socket "$sock" -- echo crash-survived
  check "SIGKILL of a worker from outside: it is replaced" kill_a_worker
  check "after the SIGKILL: the next job runs" expect_output kill-survived \
    "$kiln" exec --socket "$sock" -- echo kill-survived
  check "a job's background child dies with the job" job_leaves_nothing
  check "kiln shutdown: the daemon exits 0 and removes its socket" shut_down
  check "ps: no kiln process and no job command left" nothing_left
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
