#!/usr/bin/env bash
# Builds release binaries, runs every benchmark in bench/ and writes bench/RESULTS.md: one table
# of figures, each Kiln's against its floor or its comparison measured in the same run, with the
# ratio and the target; then the machine's CPU count and load, and bench/NOTES.md.
#
#   scripts/bench.sh [--rounds N]     (default 5; each figure is the median over the rounds)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
case "${1:-}" in
  --rounds) rounds=${2:?--rounds needs a number} ;;
  -h | --help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "bench: unknown argument $1" >&2; exit 2 ;;
esac

scripts/setup-deps.sh
scripts/build.sh release >/dev/null
bin=build/bin
log=$(mktemp /tmp/kiln-bench.XXXXXX)
trap 'rm -f "$log"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
run() {
  echo "bench: $*" >&2
  "$@" 2>&1 | tee -a "$log" | grep -v '^|' >&2 || true
}
run "$bin/echo_bench" --rounds "$rounds"
run taskset -c 0 "$bin/echo_bench" --rounds "$rounds" --label "all on one CPU"
run "$bin/exec_bench" --rounds "$(( rounds < 3 ? rounds : 3 ))"
run "$bin/compile_bench" --rounds "$(( rounds < 3 ? rounds : 3 ))"
run "$bin/pool_bench" --rounds "$rounds"
run "$bin/worker_idle_rss" --workers 8
run "$bin/decode_bench" --rounds "$(( rounds < 3 ? rounds : 3 ))"
run /usr/bin/python3 bench/executor_bench.py --rounds "$rounds" --supervisor "$bin/kiln-supervisor"
run /usr/bin/python3 bench/launcher_bench.py --rounds "$(( rounds < 3 ? rounds : 3 ))" --bin "$bin"
# torch's pools: in the virtualenv that has torch (pinned by setup-venv.sh).
venv_python=$(scripts/setup-venv.sh)
run "$venv_python" bench/torch_warmth_bench.py --rounds "$(( rounds < 3 ? rounds : 3 ))" \
  --supervisor "$bin/kiln-supervisor"
# Compile jobs on distcc test hosts (network namespaces): root only; skipped otherwise.
[[ $(id -u) -eq 0 ]] && run bench/distcc_bench.sh "$bin" --rounds "$(( rounds < 3 ? rounds : 3 ))"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# Benchmark results"
  echo
  echo "Written by \`scripts/bench.sh\` on $started: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "load average $load_before before and $load_after after, release build (RelWithDebInfo)."
  echo "Each figure is the median over $rounds rounds (3 for exec and compile) with the rounds' range in"
  echo "parentheses; each comparison ran in the same rounds, interleaved. The machine is shared and"
  echo "noisy: read the ratios, not the absolute times."
  echo
  echo "| figure | Kiln | comparison | ratio | target | met |"
  echo "| --- | --- | --- | --- | --- | --- |"
  grep '^|' "$log"
  echo
  cat bench/NOTES.md
} >bench/RESULTS.md
echo "bench: wrote bench/RESULTS.md" >&2
