#!/usr/bin/env bash
# Runs every example of README.md's "Five ways in" as written, from the top of the checkout:
# each ```sh block with bash -euo pipefail, each ```python block in the virtualenv the README
# tells a PyTorch user to make: $KILN_README_PYTHON (ctest passes scripts/setup-venv.sh's, which
# has Kiln installed), else build/venv/bin/python if it is there, else Debian's python3 with
# PYTHONPATH=python (as the README says it runs them too). ```bash blocks (installing) are not run.
# A private KILN_SOCKET keeps the launcher example off any daemon of the user's own.
#   tests/readme_test.sh [BUILD_DIR]   (a release build; default: build/ of the checkout)
# The examples name build/: for a build folder called otherwise they run in a view of the
# checkout, each of its entries linked, with build/ linked to BUILD_DIR.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$source_dir/build}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-readme.XXXXXX")
export KILN_SOCKET=$tmp/supervisor.sock
trap 'build/bin/kiln shutdown >/dev/null 2>&1 || true; rm -rf "$tmp" /tmp/hello-build' EXIT
if [[ "$build_dir" == "$source_dir/build" ]]; then
  cd "$source_dir"
else
  mkdir "$tmp/checkout"
  for entry in "$source_dir"/* "$source_dir"/.[!.]*; do
    [[ -e "$entry" && "$(basename "$entry")" != build ]] && ln -s "$entry" "$tmp/checkout/"
  done
  ln -s "$build_dir" "$tmp/checkout/build"
  cd "$tmp/checkout"
fi

# The compile database the compile-db example reads: scripts/demo.sh's configuration.
[[ -f build-demo/compile_commands.json ]] ||
  cmake -S . -B build-demo -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_BUILD_TESTS=OFF \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null

awk -v dir="$tmp" '
  /^## Five ways in/ { on = 1 } /^## The supervisor and its protocol/ { on = 0 }
  on && /^```(sh|python)$/ { n++; file = sprintf("%s/%02d.%s", dir, n, substr($0, 4)); next }
  on && file && /^```$/ { close(file); file = ""; next }
  file { print > file }
' README.md

python=${KILN_README_PYTHON:-}
[[ -n "$python" || ! -x build/venv/bin/python ]] || python=$PWD/build/venv/bin/python
python_env=()
[[ -n "$python" ]] || { python=/usr/bin/python3; python_env=(PYTHONPATH="$PWD/python"); }
echo "== README's Python examples run with $python"

count=0
for example in "$tmp"/*.sh "$tmp"/*.python; do
  [[ -e "$example" ]] || continue
  echo "== README example $(basename "$example"):"
  cat "$example"
  echo "-- output:"
  case "$example" in
    *.sh) bash -euo pipefail "$example" ;;
    *.python) env "${python_env[@]}" "$python" "$example" ;;
  esac
  count=$((count + 1))
done
[[ $count -ge 4 ]] || { echo "readme test: found only $count examples" >&2; exit 1; }
echo "readme test: $count examples ran"
