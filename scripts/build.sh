#!/usr/bin/env bash
# Configures and builds Kiln on every core: scripts/build.sh [release|debug|asan|tsan]
#   release -> build/       (RelWithDebInfo: optimised, with symbols for crash traces)
#   debug   -> build-debug/
#   asan    -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer)
#   tsan    -> build-tsan/  (ThreadSanitizer)
# Each build folder has its own compile_commands.json; release's is linked at the top level.
set -euo pipefail
cd "$(dirname "$0")/.."

flavor=${1:-release}
case "$flavor" in
  release) dir=build; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  debug) dir=build-debug; opts=(-DCMAKE_BUILD_TYPE=Debug) ;;
  asan) dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=Debug -DKILN_ASAN=ON) ;;
  tsan) dir=build-tsan; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_TSAN=ON) ;;
  -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build.sh: unknown build '$flavor' (release, debug, asan or tsan)" >&2; exit 2 ;;
esac

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$dir" "${generator[@]}" "${opts[@]}" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi
cmake --build "$dir" -j "$(nproc)"
if [[ "$flavor" == release ]]; then ln -sfn build/compile_commands.json compile_commands.json; fi
