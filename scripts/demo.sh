#!/usr/bin/env bash
# Installs what is missing, builds the release binaries, and runs the main job.
# Until the supervisor lands, the main job is showing each binary's version.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
scripts/build.sh release >/dev/null
for b in kiln-supervisor kiln-worker kiln; do
  build/bin/$b --version
done
