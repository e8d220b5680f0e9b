#!/usr/bin/env bash
# Everything scripts/test.sh runs, plus what does not fit its budget on 2 cores: each fuzz target
# for SECONDS (default 300) instead of 30.
#
#   scripts/check-all.sh [FUZZ_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test.sh

echo "== fuzzing, ${1:-300} s per target"
scripts/fuzz.sh "${1:-300}"
