#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing Kiln need, and only those that are
# missing. Idempotent: silent when nothing is missing; `apt-get update` only when something must
# be installed. Without root and with packages missing, names them and exits 1.
# Installs with --no-install-recommends, so what is only recommended is listed here: clang's
# libFuzzer and sanitizer runtimes (libclang-rt-dev) are such a package. distcc and iproute2: the
# distcc tests (tests/distcc/), whose test hosts are network namespaces with a distccd each.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang clang-format
  libclang-rt-dev
  libuv1-dev libmsgpack-cxx-dev libspdlog-dev libcli11-dev
  libdw-dev libsodium-dev
  googletest libgtest-dev libgmock-dev nlohmann-json3-dev
  procps python3 python3-msgpack python3-cloudpickle python3-pytest python3-setuptools python3-pip
  python3-venv
  help2man dpkg-dev file
  distcc iproute2
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-deps: missing Debian packages: ${missing[*]}" >&2
  echo "setup-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "setup-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
