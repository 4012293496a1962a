#!/usr/bin/env bash
# The test suite: what CI runs and what the README's test command does.
#   1. install missing Debian packages;
#   2. dev build (debug level 3, warnings as errors) and the default tiers;
#   3. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the threaded suites under ThreadSanitizer;
#   5. the release build (debug level 0) and the default tiers;
#      (dev and release also build the Python module and run its pytest
#      suite, tests/python, as the ctest test test_python)
#   6. a clang build (warnings as errors), and the consumer test against the
#      installed package;
#   7. the fuzzers, 40 s each from their seed corpora (clang, libFuzzer,
#      ASan + UBSan: the fuzz preset), and their regression inputs
#      (fuzz/run.sh --short; long runs: fuzz/run.sh);
#   8. real programs under libsharena-malloc.so (git, a few CPython test
#      modules), their output compared with glibc's (scripts/malloc-programs.sh
#      --short; the full set is that script without --short).
# Stress tests are not in the default run: SHR_STRESS=1 adds them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

run() { echo "== $*"; "$@"; }

# Run ctest, keep its summary for the closing line.
passed=0
failed=0
ctest_run() {
  local log
  log=$(mktemp)
  echo "== ctest $*"
  set +e
  ${CTEST_WRAP:-} ctest "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n1)
  rm -f "$log"
  if [ -n "$line" ]; then
    local f t
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
  fi
  if [ "$rc" -ne 0 ]; then
    echo "sharena: ctest $* failed"
    echo "tests: $passed passed, $failed failed"
    exit "$rc"
  fi
}

# The Python module (SHR_PYTHON) is built and its pytest suite run by ctest
# in the dev and release builds, and compiled by clang; a sanitized module
# cannot load into /usr/bin/python3.
for preset in dev asan; do
  py=()
  [ "$preset" = dev ] && py=(-DSHR_PYTHON=ON)
  run cmake --preset "$preset" -G Ninja "${py[@]}" >/dev/null
  run cmake --build --preset "$preset" -j "$jobs"
  ctest_run --preset "$preset" -j "$jobs"
done
if [ "${SHR_STRESS:-0}" = 1 ]; then
  ctest_run --test-dir build/dev -L stress -j "$jobs"
fi

run cmake --preset tsan -G Ninja >/dev/null
run cmake --build --preset tsan -j "$jobs"
# TSan's shadow memory needs a less randomised address space on this kernel:
# run it under setarch -R (no ASLR).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
CTEST_WRAP="setarch $(uname -m) -R" ctest_run --preset tsan -j "$jobs"

# The release build: the fast paths are compiled without the debug checks
# that the builds above run before them.
run cmake --preset release -G Ninja -DSHR_PYTHON=ON >/dev/null
run cmake --build --preset release -j "$jobs"
ctest_run --test-dir build/release -LE stress -j "$jobs"

run cmake --preset clang -G Ninja -DSHR_TESTS=OFF -DSHR_PYTHON=ON >/dev/null
run cmake --build --preset clang -j "$jobs"

run tests/consumer/run.sh build/release-install
passed=$((passed + 1)) # the consumer test

if ! run fuzz/run.sh --short; then
  echo "sharena: the fuzzers found a defect (fuzz/README.md says how to reproduce it)"
  echo "tests: $passed passed, $((failed + 1)) failed"
  exit 1
fi
passed=$((passed + 1)) # the fuzzers
run scripts/malloc-programs.sh --short build/release/malloc/libsharena-malloc.so
passed=$((passed + 1)) # the real programs under the preload
echo "sharena: all test stages passed"
echo "tests: $passed passed, $failed failed"
