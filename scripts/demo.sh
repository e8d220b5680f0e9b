#!/usr/bin/env bash
# Installs what is missing, builds the release binaries, and runs the main job:
#  1. the worker's and the supervisor's sources of Kiln itself (a Debug configuration without
#     tests, in build-demo/, so build/ is untouched) compiled through a pool with
#     `kiln compile-db`: diagnostics per file, and a summary that sets the wall time against the
#     compiles' own times added up;
#  2. a worker crash costing exactly one job: its crash report, and the pool serving on.
# After the build, the main job takes about a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
if [[ -x build/bin/kiln ]]; then
  echo "== Building Kiln (release, in build/; up to date in seconds)"
else
  echo "== Building Kiln (release, in build/; about 4 minutes on 2 cores the first time)"
fi
scripts/build.sh release >/dev/null
for b in kiln-supervisor kiln-worker kiln; do build/bin/$b --version; done

# Without the statically linked binaries, whose libraries would compile every source a second time.
cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_BUILD_TESTS=OFF \
  -DKILN_STATIC_BINARIES=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
db=build-demo/compile_commands.json
filter='/(worker|supervisor)/'
count=$(grep -cE "\"file\": \".*$filter" "$db")
workers=$(nproc)

echo
echo "== 1. Compiling the $count sources of Kiln's worker and supervisor through a pool of" \
  "$workers workers (kiln compile-db; about a minute on 2 cores)"
build/bin/kiln compile-db --workers "$workers" --filter "$filter" "$db"

echo
echo "== 2. One crash costs one job: four jobs, the second crashes its worker (kiln run)"
printf '%s\n' \
  '{"kind": "echo", "payload": "before the crash"}' \
  '{"kind": "selftest", "payload": {"action": "crash"}}' \
  '{"argv": ["sh", "-c", "echo compiled on a replacement worker"]}' \
  '{"kind": "echo", "payload": "after the crash"}' |
  { build/bin/kiln run --workers 2 --enable-selftest --ordered - || true; } |
  /usr/bin/python3 -c '
import json, sys
for n, line in enumerate(sys.stdin, 1):
    r = json.loads(line)
    if r["ok"]:
        v = r["value"]
        shown = v["stdout"].strip() if isinstance(v, dict) else v
        print(f"job {n}: ok, {shown!r}")
    else:
        e = r["error"]
        print("job %d: %s: %s" % (n, e["code"], e["message"]))
        lines = e.get("detail", "").splitlines()
        print("  its crash report, as the client receives it in error.detail (its first lines:")
        print("  the signal, then the stack, the most recent call first):")
        for l in lines[:8] + (["..."] if len(lines) > 8 else []):
            print("    " + l)
'
echo
echo "Done. Next: README.md shows kiln exec as a compiler launcher, kiln run, and the Python client."
