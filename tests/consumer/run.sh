#!/usr/bin/env bash
# Consumer test: install sharena into a scratch prefix, then build and run a
# tiny program against the installed package twice, once through
# find_package(sharena) and once through pkg-config.
#   tests/consumer/run.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "${1:?build dir}"
build=$(cd "$1" && pwd)
prefix="$build/prefix"
rm -rf "$build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHR_TESTS=OFF \
      -DSHR_WERROR=ON -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
cmake --install "$build" >/dev/null

# 1. CMake package
cmake -S "$src/tests/consumer" -B "$build/consumer-cmake" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/consumer-cmake" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$build/consumer-cmake/consumer"

# 2. pkg-config
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
PKG_CONFIG_PATH="$libdir" cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/consumer.c" \
   -o "$build/consumer-pc" $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs sharena)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$build/consumer-pc"
echo "consumer: find_package and pkg-config builds both ran"
