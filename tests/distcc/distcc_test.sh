#!/usr/bin/env bash
# Kiln's compile jobs on distcc hosts, end to end: test hosts in network namespaces of this test's
# own (tests/distcc/hosts.sh), a daemon started by kiln-exec with $KILN_DISTCC_HOSTS, and a small
# generated C build through kiln-exec under ninja.
#   distcc_test.sh BIN_DIR SCENARIO
#     build    three hosts: every object byte-identical to a local build, every host's log shows
#              compiles, stats shows each host's jobs; a link and a script run locally
#     kill     one host killed mid-build: the build completes, objects identical, host backed off
#     down     every host down: every job runs locally, the build passes, every host backed off
#     cleanup  a job on a host that times out, and one cancelled (its client killed): no distcc
#              client left, no partial object
# Needs root (ip netns) and distcc: without them it prints why and exits 77 (ctest: skipped).
# Everything it made is torn down by its trap, whatever happens.
set -euo pipefail

bin=$(cd "${1:?usage: distcc_test.sh BIN_DIR SCENARIO}" && pwd)
scenario=${2:?usage: distcc_test.sh BIN_DIR SCENARIO}
here=$(cd "$(dirname "$0")" && pwd)

if [[ $(id -u) -ne 0 ]]; then echo "SKIP: not root: cannot make network namespaces"; exit 77; fi
for tool in ip distcc distccd ninja cc; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

tmp=$(mktemp -d /tmp/kiln-distcc-test.XXXXXX)
chmod 0711 "$tmp"  # the hosts' distccd (user distccd) writes its log below it
export KILN_SOCKET=$tmp/kiln.sock
cleanup() {
  "$bin/kiln" shutdown --socket "$KILN_SOCKET" >/dev/null 2>&1 || true
  "$here/hosts.sh" down "$tmp/hosts" || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [[ -f "$KILN_SOCKET.log" ]] && tail -n 30 "$KILN_SOCKET.log" >&2
  "$bin/kiln" stats --socket "$KILN_SOCKET" 2>&1 | grep -A40 '"hosts"' >&2 || true
  exit 1
}

# Waits for `$@` to succeed: bounded (20 s), polling.
wait_for() {
  local tries=0
  until "$@"; do
    ((++tries <= 400)) || return 1
    sleep 0.05
  done
}

# N tiny C files, each a few functions, and a build.ninja compiling them through kiln-exec.
make_project() {
  local n=$1 src=$tmp/src i j
  mkdir -p "$src"
  for ((i = 0; i < n; i++)); do
    {
      echo "static int table$i[] = {$((i + 1)), $((i * 7)), $((i * 13))};"
      for ((j = 0; j < 12; j++)); do
        echo "int f${i}_$j(int x) { int s = 0; for (int k = 0; k < x; ++k) s += table$i[k % 3] * $j ^ k; return s; }"
      done
    } >"$src/f$i.c"
  done
  {
    echo "rule cc"
    echo "  command = $bin/kiln-exec cc -O2 -c \$in -o \$out"
    for ((i = 0; i < n; i++)); do echo "build $tmp/obj/f$i.o: cc $src/f$i.c"; done
  } >"$tmp/build.ninja"
  mkdir -p "$tmp/obj" "$tmp/ref"
  for ((i = 0; i < n; i++)); do cc -O2 -c "$src/f$i.c" -o "$tmp/ref/f$i.o"; done
}

check_objects() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    cmp -s "$tmp/obj/f$i.o" "$tmp/ref/f$i.o" || fail "f$i.o differs from the local build's"
  done
}

compiles_on() { grep -c COMPILE_OK "$tmp/hosts/host-$1.log" || true; }
# distccd logs a compile's summary after it has sent the object: wait for it.
compiled_on() { [[ $(compiles_on "$1") -ge "${2:-1}" ]]; }

stats() { "$bin/kiln" stats --socket "$KILN_SOCKET"; }

# The value of FIELD of host I in `kiln stats`.
host_field() {
  stats | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['hosts'][$1]['$2'])"
}

# The distcc client of the slow compile ("[d]": the pattern must not match its own command line).
client_runs() { pgrep -f "[d]istcc cc -O2 -c $tmp/slow.c" >/dev/null; }
no_client() { ! client_runs; }

running_one() {
  [[ $(stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs_running"])') -ge 1 ]]
}

start_hosts() {
  KILN_DISTCC_HOSTS=$("$here/hosts.sh" up "$tmp/hosts" "$1" "$2" "${3:-2}")
  export KILN_DISTCC_HOSTS
}

case "$scenario" in
  build)
    start_hosts 3 0
    export KILN_WORKERS=1
    make_project 36
    ninja -C "$tmp" -j 8 >"$tmp/ninja.out" || fail "the build failed"
    grep -v "^\[" "$tmp/ninja.out" >&2 || true
    check_objects 36
    for i in 0 1 2; do
      wait_for compiled_on "$i" || fail "host $i compiled nothing"
      [[ $(host_field "$i" jobs) -ge 1 ]] || fail "stats shows no job for host $i"
      [[ $(host_field "$i" state) == up ]] || fail "host $i is not up"
    done
    # What distcc cannot distribute runs here: a link and a script, no host sees them.
    before=$(($(compiles_on 0) + $(compiles_on 1) + $(compiles_on 2)))
    "$bin/kiln-exec" cc "$tmp/obj/f0.o" "$tmp/obj/f1.o" -shared -o "$tmp/libf.so" ||
      fail "the link failed"
    printf 'echo scripted >"%s"\n' "$tmp/script.out" >"$tmp/script.sh"
    "$bin/kiln-exec" sh "$tmp/script.sh" || fail "the script failed"
    [[ $(cat "$tmp/script.out") == scripted ]] || fail "the script did not run"
    after=$(($(compiles_on 0) + $(compiles_on 1) + $(compiles_on 2)))
    [[ $before -eq $after ]] || fail "a link or a script went to a host"
    ;;
  kill)
    start_hosts 3 1
    export KILN_WORKERS=1
    make_project 48
    ninja -C "$tmp" -j 8 >/dev/null &
    build=$!
    wait_for compiled_on 0 || fail "host 0 compiled nothing"
    "$here/hosts.sh" kill "$tmp/hosts" 0
    wait "$build" || fail "the build failed after a host was killed"
    check_objects 48
    [[ $(host_field 0 failures) -ge 1 ]] || fail "host 0 shows no failure"
    [[ $(host_field 0 state) == backoff ]] || fail "host 0 is not backed off"
    host_field 0 reason | grep -q "distcc exit" || fail "host 0's reason is not distcc's"
    grep -q "distcc host .* failed job" "$KILN_SOCKET.log" || fail "the log does not say so"
    ;;
  down)
    start_hosts 3 2
    for i in 0 1 2; do "$here/hosts.sh" kill "$tmp/hosts" "$i"; done
    export KILN_WORKERS=2
    make_project 24
    ninja -C "$tmp" -j 8 >/dev/null || fail "the build failed with every host down"
    check_objects 24
    for i in 0 1 2; do
      [[ $(host_field "$i" state) == backoff ]] || fail "host $i is not backed off"
    done
    ;;
  cleanup)
    start_hosts 1 3 1
    export KILN_WORKERS=1
    # A compile that takes seconds: long enough to be timed out or cancelled on the host.
    {
      echo "int slow(int x) {"
      for ((j = 0; j < 6000; j++)); do echo "  x = x * $((j + 3)) + (x >> $((j % 7 + 1)));"; done
      echo "  return x; }"
    } >"$tmp/slow.c"
    # The one local slot busy, so that the compile goes to the host.
    "$bin/kiln-exec" sleep 60 &
    sleeper=$!
    wait_for running_one || fail "the sleep did not start"
    # Timed out on the host. An object there before (a stale one, or one distcc began to write)
    # must not be left either: the job's object is removed once its client is gone.
    echo stale >"$tmp/slow.o"
    status=0
    "$bin/kiln" run --socket "$KILN_SOCKET" <<JOB >"$tmp/run.out" || status=$?
{"argv": ["cc", "-O2", "-c", "$tmp/slow.c", "-o", "$tmp/slow.o"], "timeout_ms": 1500}
JOB
    [[ $status -ne 0 ]] || fail "kiln run said the timed-out job succeeded"
    grep -q '"timeout"' "$tmp/run.out" || fail "the job did not time out: $(cat "$tmp/run.out")"
    wait_for no_client || fail "a distcc client is left"
    [[ ! -e "$tmp/slow.o" ]] || fail "a partial object is left after the timeout"
    # Cancelled: its client (kiln-exec) is killed while distcc runs.
    echo stale >"$tmp/slow.o"
    "$bin/kiln-exec" cc -O2 -c "$tmp/slow.c" -o "$tmp/slow.o" &
    client=$!
    wait_for client_runs || fail "no distcc client ran"
    kill -9 "$client"
    wait "$client" 2>/dev/null || true
    wait_for no_client || fail "a distcc client is left"
    [[ ! -e "$tmp/slow.o" ]] || fail "a partial object is left after the cancel"
    kill "$sleeper" 2>/dev/null || true
    wait "$sleeper" 2>/dev/null || true
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
echo "distcc $scenario: 1 passed, 0 failed"
