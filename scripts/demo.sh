#!/usr/bin/env bash
# Installs what is missing, builds the release binaries, and runs the main job: every source of
# Kiln compiled through a Kiln pool with `kiln compile-db`, diagnostics and a summary printed,
# then the same commands one after another (a pool of one worker) for comparison.
# The compiles use a Debug configuration of their own in build-demo/, so your build/ is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
scripts/build.sh release >/dev/null
for b in kiln-supervisor kiln-worker kiln; do build/bin/$b --version; done

cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  >/dev/null
db=build-demo/compile_commands.json
count=$(grep -c '"file"' "$db")
workers=$(nproc)

echo
echo "== Compiling Kiln's $count sources through a pool of $workers workers"
build/bin/kiln compile-db --workers "$workers" "$db"

echo
echo "== The same $count commands one after another (a pool of one worker)"
build/bin/kiln compile-db --workers 1 "$db"
