#!/usr/bin/env bash
# Everything scripts/test.sh runs, plus what does not fit its 15-minute budget on 2 cores: the
# whole suite under ThreadSanitizer, and each fuzz target for SECONDS (default 300) instead of 30.
#
#   scripts/check-all.sh [FUZZ_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test.sh

echo "== TSan build and tests"
scripts/build.sh tsan
# report_signal_unsafe=0: the crash handler's stack trace is best effort by design (after the
#   async-signal-safe first line it unwinds, then posix_spawns kiln-symbolize; PITFALLS.md).
# atexit_sleep_ms=0: TSan otherwise sleeps a second in every exit, which would break the "gone
#   within a second" checks without telling anything about races.
TSAN_OPTIONS=report_signal_unsafe=0:atexit_sleep_ms=0:halt_on_error=1 \
  ctest --test-dir build-tsan --output-on-failure -j "$(nproc)" --timeout 600

echo "== fuzzing, ${1:-300} s per target"
scripts/fuzz.sh "${1:-300}"
