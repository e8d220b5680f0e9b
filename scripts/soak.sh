#!/usr/bin/env bash
# The long soak: builds release binaries and runs tests/soak.cc's driver against one supervisor
# in socket mode and then in pipe mode, JOBS jobs each (default 500,000: a million in all),
# with a random seed it prints (pass --seed S to replay). Prints each run's figures; exit status
# 0 only when both passed. ctest runs a short version (10,000 jobs per mode).
#
#   scripts/soak.sh [--jobs N] [--seed S] [--clients N] [--workers N]
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=500000
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --seed | --clients | --workers) args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; exit 2 ;;
  esac
done

scripts/setup-deps.sh
scripts/build.sh release >/dev/null
status=0
for mode in socket pipe; do
  build/bin/kiln_soak --mode "$mode" --jobs "$jobs" "${args[@]}" || status=1
done
exit $status
