#!/usr/bin/env bash
# The main job: build in Release, run the comparison, regenerate the report
# and print the main table. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh bench
cmake --preset bench -G Ninja -DSHR_PYTHON=ON >/dev/null
cmake --build --preset bench -j "$(nproc)"
# The recovery experiment needs fault points: bench_gc_recover alone, against
# a Release library with SHR_DEBUG=1 (docs/gc-experiments.md).
cmake --preset bench-faults -G Ninja >/dev/null
cmake --build --preset bench-faults -j "$(nproc)"
if [ -x bench/run.sh ]; then
  exec bench/run.sh build/bench
fi
echo "sharena: the benchmark comparison is not built yet (see the benchmarks issue);"
echo "         the library and tools were built in build/bench."
