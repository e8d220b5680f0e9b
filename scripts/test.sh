#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest: first the release build,
# then the same tests under ASan+UBSan. The README's test command; .ci/run calls it.
#   KILN_TEST_SANITIZERS=0 skips the sanitizer pass (for a quick local run).
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
fi
