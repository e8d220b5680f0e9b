#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest twice, on the release
# build (with the short soak) and under ASan+UBSan, then replays the fuzz corpora and fuzzes each
# target for 30 s. The README's test command; .ci/run calls it. Under 20 minutes on 2 cores;
# scripts/check-all.sh adds the TSan pass and longer fuzzing, which do not fit.
#   KILN_TEST_SANITIZERS=0 runs the release pass only (a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
jobs=$(nproc)

echo "== release build and tests"
scripts/build.sh release
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 300

if [[ "${KILN_TEST_SANITIZERS:-1}" != 0 ]]; then
  echo "== ASan+UBSan build and tests"
  scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 600

  echo "== fuzz corpora and 30 s of fuzzing per target"
  scripts/fuzz.sh 30
fi
