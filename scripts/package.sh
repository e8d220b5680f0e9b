#!/usr/bin/env bash
# Builds the Debian package kiln_<version>_amd64.deb with CPack (packaging/CMakeLists.txt): a
# release build without tests, installed under /usr, its Depends found by dpkg-shlibdeps.
#   scripts/package.sh [OUT_DIR]   (default: dist/)
# Install it with `apt install ./dist/kiln_*.deb`; check it with `scripts/smoke.sh /usr/bin`.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h | --help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)

scripts/setup-deps.sh
dir=build-package
echo "== package: release build under /usr, without tests (about 2 minutes on 2 cores)"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DKILN_BUILD_TESTS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)"
(cd "$dir" && cpack -G DEB -B "$out" >/dev/null)
rm -rf "$out/_CPack_Packages"
deb=$(ls "$out"/kiln_*_amd64.deb)
echo "== package: $deb"
dpkg-deb --field "$deb" Package Version Architecture Depends
