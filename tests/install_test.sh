#!/usr/bin/env bash
# Installs a build into a temporary prefix and checks that copy alone, as a user of the install
# would: scripts/smoke.sh PREFIX/bin, an outside CMake project built with find_package(Kiln) and
# run, pkg-config, the man pages, and the Python package imported with nothing else on its path.
# Then `pip install ./python` (not editable) into a fresh virtualenv, whose package finds the
# supervisor in the checkout's build tree, through $KILN_SUPERVISOR, and on PATH (a cmake --install
# prefix) when it was built from a copy without build trees. The venv takes msgpack, cloudpickle
# and setuptools from the interpreter's own packages (Debian's python3-* by default), so that the
# test needs no package index.
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
step "pip install ./python into a fresh virtualenv"
# Debian's python3 -m venv needs python3-venv; --system-site-packages lends the venv its
# msgpack, cloudpickle and setuptools.
"$python" -m venv --system-site-packages "$prefix/venv"
pip=("$prefix/venv/bin/python" -m pip --disable-pip-version-check -q)
# In the checkout's tree (pip builds a local directory in place): setup.py records that checkout.
"${pip[@]}" install --no-build-isolation --no-index "$src/python" >/dev/null
venv_check() {  # venv_check WHERE_IT_MUST_FIND_THE_SUPERVISOR [env assignments...]
  local want=$1; shift
  (cd / && env -i HOME="$prefix" PYTHONDONTWRITEBYTECODE=1 "$@" "$prefix/venv/bin/python" -c '
import os, sys, kiln, kiln._supervisor as s
venv = sys.argv[1]
assert kiln.__file__.startswith(venv + "/lib/"), kiln.__file__
found = s._find_supervisor(None)
assert os.path.realpath(found) == os.path.realpath(sys.argv[2]), (found, sys.argv[2])
with kiln.Executor(max_workers=1) as ex:
    assert ex.submit(pow, 2, 10).result(timeout=60) == 1024
    assert ex.submit(lambda: sys.executable).result() == sys.executable
print("pip-installed kiln found", found, "and ran a job on it")
' "$prefix/venv" "$want")
}
checkout_sup=
for tree in build build-debug build-asan build-tsan; do  # the package's order
  [[ -x "$src/$tree/bin/kiln-supervisor" ]] && { checkout_sup=$src/$tree/bin/kiln-supervisor; break; }
done
[[ -n "$checkout_sup" ]] || { echo "no build tree of the checkout has kiln-supervisor" >&2; exit 1; }
venv_check "$checkout_sup" PATH=/usr/bin:/bin
venv_check "$prefix/bin/kiln-supervisor" PATH=/usr/bin:/bin KILN_SUPERVISOR="$prefix/bin/kiln-supervisor"
# Built from a copy without build trees: the supervisor of the cmake --install prefix, on PATH.
mkdir "$prefix/copy" && cp -r "$src/python" "$prefix/copy/python"
rm -rf "$prefix/copy/python/build" "$prefix/copy/python/"*.egg-info
"${pip[@]}" install --no-build-isolation --no-index --force-reinstall --no-deps \
  "$prefix/copy/python" >/dev/null
venv_check "$prefix/bin/kiln-supervisor" PATH="$prefix/bin:/usr/bin:/bin"
echo "install test: passed"
