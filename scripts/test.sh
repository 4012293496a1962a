#!/usr/bin/env bash
# The test suite: what CI runs and what the README's test command does.
#   1. install missing Debian packages;
#   2. dev build (debug level 3, warnings as errors) and the default tiers;
#   3. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the threaded suites under ThreadSanitizer;
#   5. a clang build (warnings as errors), and the consumer test against the
#      installed package.
# Stress tests are not in the default run: SHR_STRESS=1 adds them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

run() { echo "== $*"; "$@"; }

for preset in dev asan; do
  run cmake --preset "$preset" -G Ninja >/dev/null
  run cmake --build --preset "$preset" -j "$jobs"
  run ctest --preset "$preset" -j "$jobs"
done
if [ "${SHR_STRESS:-0}" = 1 ]; then
  run ctest --test-dir build/dev -L stress -j "$jobs"
fi

run cmake --preset tsan -G Ninja >/dev/null
run cmake --build --preset tsan -j "$jobs"
# TSan needs a non-randomised-enough address space on newer kernels.
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run setarch "$(uname -m)" -R ctest --preset tsan -j "$jobs"

run cmake --preset clang -G Ninja -DSHR_TESTS=OFF >/dev/null
run cmake --build --preset clang -j "$jobs"

run tests/consumer/run.sh build/release-install
echo "sharena: all test stages passed"
