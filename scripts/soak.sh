#!/usr/bin/env bash
# Soak: processes x threads of mixed allocator and list work on one heap,
# SIGKILLed at random and respawned, the heap checked after every kill.
#   scripts/soak.sh [MINUTES]          (default 10)
# Environment: SOAK_PROCS (4), SOAK_THREADS (2), SOAK_SEED (time), SOAK_PRESET
# (release: the fast paths as users run them; dev adds the level-3
# validators). Prints a progress line every 10 s and ends with one summary
# line, "soak: PASS ..." or "soak: FAIL ..." (exit status 0 or 1).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-10}
case "$minutes" in ''|*[!0-9.]*) echo "usage: $0 [MINUTES]" >&2; exit 64 ;; esac
preset=${SOAK_PRESET:-release}
procs=${SOAK_PROCS:-4}
threads=${SOAK_THREADS:-2}
seed=${SOAK_SEED:-$(date +%s)}

scripts/deps.sh test
cmake --preset "$preset" -G Ninja >/dev/null
cmake --build --preset "$preset" -j "$(nproc)" --target shr_soak >/dev/null
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
echo "soak: ${minutes} min, $procs procs x $threads threads, seed $seed, build/$preset"
exec "build/$preset/tests/shr_soak" --seconds "$seconds" --procs "$procs" --threads "$threads" \
     --seed "$seed" --progress 10
