#!/usr/bin/env bash
# Installs a build into a temporary prefix and checks that copy alone, as a user of the install
# would: scripts/smoke.sh PREFIX/bin, an outside CMake project built with find_package(Kiln) and
# run, pkg-config, the man pages, and the Python package imported with nothing else on its path.
#   tests/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
python=${KILN_PYTHON:-/usr/bin/python3}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/kiln-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

step() { echo "== install test: $*"; }

step "cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/kiln bin/kiln-exec bin/kiln-supervisor libexec/kiln/kiln-worker \
  libexec/kiln/kiln-symbolize; do
  [[ -x "$prefix/$f" ]] || { echo "missing: $f" >&2; exit 1; }
done
for page in kiln kiln-exec kiln-supervisor kiln-worker; do
  [[ -s "$prefix/share/man/man1/$page.1" ]] || { echo "missing man page: $page.1" >&2; exit 1; }
done
[[ ! -e "$prefix/bin/kiln-worker" ]] || { echo "kiln-worker belongs in libexec/kiln" >&2; exit 1; }

step "scripts/smoke.sh against the installed binaries"
"$src/scripts/smoke.sh" "$prefix/bin"

step "an outside CMake project: find_package(Kiln) -> Kiln::client"
cmake -S "$src/tests/install/consumer" -B "$prefix/consumer-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" >/dev/null
# No KILN_SUPERVISOR and a PATH without any kiln: the library finds the installed supervisor.
out=$(env -u KILN_SUPERVISOR PATH=/usr/bin:/bin "$prefix/consumer-build/consumer")
[[ "$out" == "echo ok=1 exec ok=1 workers=2" ]] || { echo "consumer said: $out" >&2; exit 1; }
echo "$out"

step "pkg-config kiln-client"
pc=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs kiln-client | xargs)
[[ "$pc" == "-I$prefix/lib/pkgconfig/../../include/kiln -std=c++20 -L$prefix/lib/pkgconfig/../../lib -lkiln-client" ]] ||
  { echo "pkg-config said: $pc" >&2; exit 1; }

step "the Python package, alone on its path"
pydir=$(cd "$prefix" && ls -d lib/python3*/dist-packages)
env -i PATH=/usr/bin:/bin PYTHONPATH="$prefix/$pydir" PYTHONDONTWRITEBYTECODE=1 "$python" -c '
import sys, kiln
assert kiln.__file__.startswith(sys.argv[1]), kiln.__file__
with kiln.Pool(workers=2) as pool:
    assert pool.submit("echo", {"x": b"y"}).result() == {"x": b"y"}
    r = pool.exec(["/bin/sh", "-c", "echo hi; exit 3"]).result()
    assert (r.exit_code, r.stdout) == (3, b"hi\n"), r
print("python: kiln from", kiln.__file__, "served 2 jobs")
' "$prefix"
echo "install test: passed"
