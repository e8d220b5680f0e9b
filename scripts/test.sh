#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest three times: on the release
# build (with the short soak), under ASan+UBSan and under TSan; then replays the fuzz corpora and
# fuzzes each target for 30 s. The README's test command; .ci/run calls it. Under 40 minutes on
# 2 cores; scripts/check-all.sh adds longer fuzzing.
# The release pass runs the Python suites twice: under Debian's python3 (python.*) and under the
# virtualenv scripts/setup-venv.sh makes in build/venv (python-venv.*, with torch).
#   KILN_TEST_SANITIZERS=0 runs the release pass only (a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
jobs=$(nproc)

echo "== the Python suites' virtualenv"
venv_python=$PWD/$(scripts/setup-venv.sh build/venv)

echo "== release build and tests"
KILN_CMAKE_ARGS="${KILN_CMAKE_ARGS:-} -DKILN_VENV_PYTHON=$venv_python" scripts/build.sh release
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 300

if [[ "${KILN_TEST_SANITIZERS:-1}" != 0 ]]; then
  echo "== ASan+UBSan build and tests"
  scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 600

  echo "== TSan build and tests"
  scripts/build.sh tsan
  # report_signal_unsafe=0: the crash handler's stack trace is best effort by design (after the
  #   async-signal-safe first line it unwinds, then posix_spawns kiln-symbolize; PITFALLS.md).
  # atexit_sleep_ms=0: TSan otherwise sleeps a second in every exit, which would break the "gone
  #   within a second" checks without telling anything about races.
  # suppressions: the one thread leak that is by design (tests/tsan.supp says which and why).
  tsan_options=report_signal_unsafe=0:atexit_sleep_ms=0:halt_on_error=1
  TSAN_OPTIONS="$tsan_options:suppressions=$PWD/tests/tsan.supp" \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" --timeout 600

  echo "== fuzz corpora and 30 s of fuzzing per target"
  scripts/fuzz.sh 30
fi
