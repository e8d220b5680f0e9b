#!/usr/bin/env bash
# Configures and builds Kiln on every core: scripts/build.sh [release|debug|asan|tsan]
#   release -> build/       (RelWithDebInfo: optimised, with symbols for crash traces)
#   debug   -> build-debug/
#   asan    -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer)
#   tsan    -> build-tsan/  (ThreadSanitizer)
# Each build folder has its own compile_commands.json; release's is linked at the top level.
# Every run configures with this build's options (and $KILN_CMAKE_ARGS, split on spaces), so a
# changed option takes effect in an existing folder instead of the first run's cache winning.
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
if [[ -f "$dir/CMakeCache.txt" ]]; then
  generator=()  # an existing folder keeps its generator; cmake refuses to change it
fi
read -r -a extra <<<"${KILN_CMAKE_ARGS:-}"
cmake -S . -B "$dir" "${generator[@]}" "${opts[@]}" "${extra[@]}" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$dir" -j "$(nproc)"
if [[ "$flavor" == release ]]; then ln -sfn build/compile_commands.json compile_commands.json; fi
