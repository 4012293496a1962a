#!/usr/bin/env bash
# Install the Debian packages sharena needs, only those missing.
#   scripts/deps.sh [test|bench|all]     (default: all)
# Runs apt-get as root (or through sudo). Nothing is downloaded at build time.
set -euo pipefail

what=${1:-all}
common=(build-essential cmake ninja-build pkg-config clang util-linux)
test_pkgs=(libcriterion-dev python3-dev python3-pytest python3-venv libpython3.11-testsuite git
           valgrind libclang-rt-14-dev) # valgrind: memcheck.h and its test; libFuzzer: fuzz/
bench_pkgs=(libbenchmark-dev libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
            libboost-dev valgrind gnuplot-nox python3 time)
case "$what" in
  test) want=("${common[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${common[@]}" "${bench_pkgs[@]}") ;;
  all) want=("${common[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [test|bench|all]" >&2; exit 64 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "sharena: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
