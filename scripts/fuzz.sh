#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan) into build-fuzz/, replays
# each target's corpus (tests/fuzz/corpus/<target>/, the regression cases), then fuzzes each for
# SECONDS (default 60), two at a time. New inputs go to a scratch directory; a crash stops with
# its input saved in build-fuzz/crashes/ and a non-zero exit. Add such an input to the corpus as
# regression-<what> once it is fixed.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
targets=(frame client_decode worker_decode job_line compile_db)

scripts/setup-deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKILN_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
(cd build-fuzz && ctest --output-on-failure -R '^fuzz\.')

[[ "$seconds" -eq 0 ]] && exit 0
mkdir -p build-fuzz/crashes
scratch=$(mktemp -d /tmp/kiln-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
fuzz() {
  local t=$1
  mkdir -p "$scratch/$t"
  if build-fuzz/bin/fuzz_"$t" "$scratch/$t" "tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashes/$t-" >"$scratch/$t.log" 2>&1; then
    echo "fuzz: $t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" |
      grep -o '[0-9]*$') runs in ${seconds}s, no crash"
  else
    echo "fuzz: $t: FAILED; its log:" >&2
    tail -n 60 "$scratch/$t.log" >&2
    return 1
  fi
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do
    fuzz "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
