#!/usr/bin/env bash
# Makes the virtualenv that the Python suites run in beside Debian's interpreter, the way a
# PyTorch user runs Kiln: scripts/setup-venv.sh [DIR] (default build/venv).
#   Python: $KILN_VENV_BASE_PYTHON, else the first python3.11 on PATH (pyenv's on the project's
#   machines), else Debian's /usr/bin/python3 (python3-venv, which setup-deps.sh installs).
#   Packages from PyPI: torch pinned to $KILN_TORCH_VERSION (default 2.13.0, the CPU wheel the
#   machines hold; any other version is a multi-GB CUDA download), msgpack, cloudpickle, numpy, pytest.
#   Kiln's own package is installed editable (pip install -e python), so the suites test the
#   checkout. Idempotent: an up-to-date venv costs one pip check; prints the venv's python path.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-build/venv}
torch_version=${KILN_TORCH_VERSION:-2.13.0}
base=${KILN_VENV_BASE_PYTHON:-}
if [[ -z "$base" ]]; then
  base=$(command -v python3.11 || true)
  [[ -n "$base" ]] || base=/usr/bin/python3
fi

stamp="$dir/.kiln-venv"
want="torch==$torch_version msgpack cloudpickle numpy pytest base=$base"
if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$dir/bin/python"
  exit 0
fi

echo "setup-venv: making $dir with $base (torch $torch_version)" >&2
rm -rf "$dir"
"$base" -m venv "$dir"
pip=("$dir/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install "torch==$torch_version" "msgpack>=1.0" "cloudpickle>=2.0" numpy pytest setuptools >&2
"${pip[@]}" install --no-build-isolation --no-deps -e python >&2
"$dir/bin/python" -c "import torch, msgpack, cloudpickle, kiln" >&2
echo "$want" >"$stamp"
echo "$dir/bin/python"
