#!/usr/bin/env bash
# Kiln's compile jobs on distcc hosts against distcc's own usage, side by side in one run: a clean
# build of a generated C project (N files, a few hundred lines each) at -jN through kiln-exec on
# three test hosts (tests/distcc/hosts.sh: network namespaces of this machine, a distccd each),
# and the same build with CC="distcc cc" and ninja -jN on the same hosts; then the jobs per host
# against the hosts' limits, and a build with one host killed mid-build against one without.
# Prints rows of bench/RESULTS.md's table. Needs root (ip netns), distcc and ninja.
#   bench/distcc_bench.sh BIN_DIR [--rounds N] [--files N]
set -euo pipefail

bin=$(cd "${1:?usage: distcc_bench.sh BIN_DIR [--rounds N] [--files N]}" && pwd)
shift
rounds=3
files=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    *) echo "distcc_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
hosts_sh=$here/tests/distcc/hosts.sh
if [[ $(id -u) -ne 0 ]]; then echo "distcc_bench: needs root (ip netns)" >&2; exit 77; fi

tmp=$(mktemp -d /tmp/kiln-distcc-bench.XXXXXX)
chmod 0711 "$tmp"  # the hosts' distccd (user distccd) writes its log below it
export KILN_SOCKET=$tmp/kiln.sock
cleanup() {
  "$bin/kiln" shutdown --socket "$KILN_SOCKET" >/dev/null 2>&1 || true
  "$hosts_sh" down "$tmp/hosts" || true
  rm -rf "$tmp"
}
trap cleanup EXIT

local_slots=2
limit=2
hosts=$("$hosts_sh" up "$tmp/hosts" 3 0 "$limit")
jobs=$((local_slots + 3 * limit))

# The project: each file a few hundred lines of arithmetic, some 0.2 s of compile at -O2.
mkdir -p "$tmp/src"
for ((i = 0; i < files; i++)); do
  {
    for ((j = 0; j < 40; j++)); do
      echo "int f${i}_$j(int x) { int s = $i; for (int k = 0; k < x; ++k) { s = s * 31 + k;"
      echo "  if (s % 7 == $((j % 7))) s ^= x << $((j % 5)); } return s; }"
    done
  } >"$tmp/src/f$i.c"
done
ninja_file() {  # $1: the compiler command
  echo "rule cc"
  echo "  command = $1 -O2 -c \$in -o \$out"
  for ((i = 0; i < files; i++)); do echo "build obj/f$i.o: cc $tmp/src/f$i.c"; done
}
mkdir -p "$tmp/kiln" "$tmp/distcc"
ninja_file "$bin/kiln-exec cc" >"$tmp/kiln/build.ninja"
ninja_file "distcc cc" >"$tmp/distcc/build.ninja"

now() { date +%s.%N; }
clean() { rm -rf "$tmp/$1/obj" "$tmp/$1/.ninja_log" "$tmp/$1/.ninja_deps"; }

# One Kiln build with a fresh daemon: its wall time; `kill` kills host 0 after its first compile.
kiln_build() {
  clean kiln
  "$bin/kiln" shutdown --socket "$KILN_SOCKET" >/dev/null 2>&1 || true
  KILN_WORKERS=$local_slots "$bin/kiln" daemon start --socket "$KILN_SOCKET" --workers \
    "$local_slots" --distcc "$hosts" >/dev/null
  local t0 t1 before
  before=$(grep -c COMPILE_OK "$tmp/hosts/host-0.log" || true)
  t0=$(now)
  if [[ "${1:-}" == kill ]]; then
    ninja -C "$tmp/kiln" -j "$jobs" >/dev/null &
    local build=$! tries=0
    until [[ $(grep -c COMPILE_OK "$tmp/hosts/host-0.log" || true) -gt $before ]]; do
      ((++tries <= 2000)) || break
      sleep 0.01
    done
    "$hosts_sh" kill "$tmp/hosts" 0
    wait "$build"
  else
    ninja -C "$tmp/kiln" -j "$jobs" >/dev/null
  fi
  t1=$(now)
  "$bin/kiln" stats --socket "$KILN_SOCKET" >"$tmp/stats.json"
  echo "$t1 - $t0" | bc
}

distcc_build() {
  clean distcc
  local t0 t1
  t0=$(now)
  DISTCC_HOSTS="localhost/$local_slots $hosts" ninja -C "$tmp/distcc" -j "$jobs" >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }

kiln_times=() distcc_times=() share_rows=()
for ((r = 0; r < rounds; r++)); do
  kiln_times+=("$(kiln_build)")
  per_host=$(/usr/bin/python3 -c "import json; print(' '.join(str(h['jobs']) for h in json.load(open('$tmp/stats.json'))['hosts']))")
  share_rows+=("$per_host")
  distcc_times+=("$(distcc_build)")
  echo "distcc_bench: round $r: kiln ${kiln_times[-1]} s (hosts: $per_host), distcc ${distcc_times[-1]} s" >&2
done
km=$(median "${kiln_times[@]}")
dm=$(median "${distcc_times[@]}")
ratio=$(echo "scale=3; $km / $dm" | bc)
met=$(echo "$ratio <= 1.02" | bc)
printf '| clean build of %d generated C files at -j%d, 3 test hosts (/%d each) and %d local slots, through kiln-exec | %.2f s (%s) | CC="distcc cc", ninja -j%d, same hosts and localhost/%d %.2f s (%s) | %.3fx | <= 1.02x | %s |\n' \
  "$files" "$jobs" "$limit" "$local_slots" "$km" "$(range "${kiln_times[@]}")" "$jobs" "$local_slots" \
  "$dm" "$(range "${distcc_times[@]}")" "$ratio" "$([[ $met == 1 ]] && echo yes || echo '**no**')"

# Jobs per host against the limits (equal here): the largest deviation from an equal share.
worst=0
for row in "${share_rows[@]}"; do
  # shellcheck disable=SC2086
  dev=$(/usr/bin/python3 -c "import sys; j=[int(x) for x in sys.argv[1:]]; m=sum(j)/len(j); print(f'{max(abs(x-m) for x in j)/m*100:.1f}' if m else '100')" $row)
  worst=$(echo "if ($dev > $worst) $dev else $worst" | bc)
done
printf '| jobs per host, each round (hosts %s) | %s | the hosts'"'"' limits, %d each (an equal share) | %s%% off at most | within 10%% | %s |\n' \
  "$hosts" "$(printf '%s; ' "${share_rows[@]}" | sed 's/; $//')" "$limit" "$worst" \
  "$([[ $(echo "$worst <= 10" | bc) == 1 ]] && echo yes || echo '**no**')"

# A host killed mid-build: extra wall time against the same build with none killed.
killed_time=$(kiln_build kill)
failures=$(/usr/bin/python3 -c "import json; h=json.load(open('$tmp/stats.json'))['hosts'][0]; print(h['failures'], h['state'])")
extra=$(echo "$killed_time - $km" | bc)
# Its in-flight jobs run again at once, side by side elsewhere: about one job's wall time (the
# build's wall time over its waves of jobs) at most, and no timeout waited.
one_job=$(echo "scale=3; $km * $jobs / $files" | bc)
printf '| a host killed mid-build (after its first compile): extra wall time | %.2f s (killed host: %s failures, %s) | the same build with no host killed %.2f s | %+.2f s | <= its in-flight jobs (%d) run again (one job'"'"'s wall time, %.2f s), no timeout waited | %s |\n' \
  "$killed_time" "${failures% *}" "${failures#* }" "$km" "$extra" "$limit" "$one_job" \
  "$([[ $(echo "$extra <= $one_job" | bc) == 1 ]] && echo yes || echo '**no**')"
