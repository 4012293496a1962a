#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [RESULTS_DIR]
#
# The main job's run: every benchmark binary of BUILD_DIR/bench, in rounds,
# then memory mode, callgrind counts, the shared list and the growth
# benchmark (one function per section below); regenerates docs/benchmarks.md and
# docs/benchmarks/*.png from this run alone and prints the main table.
# scripts/bench.sh builds and calls it. See bench/README.md.
#
# Knobs (environment):
#   SHB_ROUNDS=5        rounds; each runs every binary once, in a rotated order
#   SHB_REPS=3          Google Benchmark repetitions per round (medians kept)
#   SHB_MIN_TIME=0.1    --benchmark_min_time, seconds
#   SHB_WINDOW_MS=20    length of one measuring window of the procs/ workload
#   SHB_CPU=N           CPU for the single-worker workloads (default: the last)
#   SHB_FILTER=REGEX    only benchmarks matching (default: all)
#   SHB_CALLGRIND=0     skip the instruction counts
#   SHB_GROWTH=0        skip the growth benchmark (bench_growth; its own knobs:
#                       SHB_GROWTH_MAX_MIB=2048, SHB_GROWTH_REPS=3,
#                       SHB_GROWTH_MAX_LIST=1000000, SHB_GROWTH_MAX_REFS=1000000)
#   SHB_GC=0            skip the cycle collector against CPython (bench_gc and
#                       bench/gc/cpython_gc.py; SHB_GC_SIZES=100000,1000000,
#                       SHB_GC_TRIALS=3, SHB_GC_YOUNG_OLD=0,100000,1000000,
#                       SHB_GC_GROWTH=1000000, 0 to skip the growth;
#                       SHB_GC_CHURN=1000000 stream objects, 0 to skip the
#                       churn, SHB_GC_CHURN_LIVE=100000, SHB_GC_CHURN_RATE=50,
#                       SHB_GC_CHURN_CYCLE=10)
#   SHB_GC_ORDER=0      skip the walk against list and address order
#                       (bench_gc_order; SHB_GC_ORDER_SIZES=10000,100000,1000000,
#                       SHB_GC_ORDER_TRIALS=3,3,1: one, or one per size)
#   SHB_GC_RECOVER=0    skip the recovery after a kill at each crash point
#                       (bench_gc_recover, from the fault-point build
#                       SHB_FAULTS_BUILD=BUILD_DIR/../bench-faults that
#                       scripts/bench.sh makes; SHB_GC_RECOVER_N=20000 objects,
#                       SHB_GC_RECOVER_HOLD=2000 references held by the victim,
#                       SHB_GC_RECOVER_NTH=mid, SHB_GC_RECOVER_REPEAT=3 kills each)
#                       (SHB_GC=0 skips these two as well; docs/gc-experiments.md)
#   SHB_REPORT_MD=PATH  where the report goes (default docs/benchmarks.md;
#                       the plots go to docs/benchmarks/ only with the default)
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1/bench" ]; then
  echo "usage: $0 BUILD_DIR [RESULTS_DIR]   (BUILD_DIR/bench must hold the bench_* binaries)" >&2
  exit 64
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "$1" && pwd)
bindir=$build/bench
out=${2:-$build/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

rounds=${SHB_ROUNDS:-5}
reps=${SHB_REPS:-3}
min_time=${SHB_MIN_TIME:-0.1}
cpu=${SHB_CPU:-$(($(nproc) - 1))}
filter=${SHB_FILTER:-.}
md=${SHB_REPORT_MD:-$root/docs/benchmarks.md}
png_dir=""
[ -z "${SHB_REPORT_MD:-}" ] && png_dir=$root/docs/benchmarks
binaries=(glibc jemalloc tcmalloc mimalloc sharena_static)
mem_binaries=(glibc jemalloc tcmalloc mimalloc)
for b in "${binaries[@]}"; do
  [ -x "$bindir/bench_$b" ] || { echo "sharena-bench: missing $bindir/bench_$b (build first)" >&2; exit 1; }
done

# Unique shm names for this run; whatever is left behind is removed on exit,
# however the run ends. Children run in the background so that a signal to
# this script is handled at once.
export SHB_SHM_PREFIX="shbench_$$_"
child=""
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  rm -f /dev/shm/"$SHB_SHM_PREFIX"* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
run_bg() {   # run_bg LOG CMD...: stdout to the caller's redirection, stderr to LOG
  local log=$1; shift
  "$@" 2>>"$log" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return $rc
}

pin=()
command -v taskset >/dev/null && pin=(taskset -c "$cpu")

# Wait (at most ~1 s) until the machine is at least 85% idle over 0.25 s:
# other jobs share this machine (a longer wait buys nothing when they run
# for minutes: the rounds and CPU-time figures absorb it).
cpu_idle_pct() {
  local a b
  read -r -a a < /proc/stat; sleep 0.25; read -r -a b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  [ "$total" -gt 0 ] && echo $(( 100 * idle / total )) || echo 100
}
quiet() {
  local n=0
  while [ "$(cpu_idle_pct)" -lt 85 ] && [ $n -lt 4 ]; do n=$((n + 1)); done
  [ $n -gt 0 ] && echo "$(date +%T) $1: waited $n x 0.25 s for an idle machine" >> "$out/quiet.log"
  return 0
}

failed=()
gb_flags=(--benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
          --benchmark_enable_random_interleaving=true --benchmark_min_time="$min_time"
          --benchmark_format=json)
start=$(date +%s)
date_iso=$(date -u +%Y-%m-%dT%H:%M:%SZ)
phase_t=$start
declare -A phases
phase_names=()
phase_done() { local now; now=$(date +%s); phases[$1]=$(( now - phase_t )); phase_names+=("$1"); phase_t=$now; }
say() { echo "sharena-bench: [$(( $(date +%s) - start )) s] $*" >&2; }

# The CPython trace, recorded by the build (bench/pytrace) in the build tree.
pytrace=$bindir/pytrace/cpython.trace
if [ -s "$pytrace" ]; then
  export SHB_PYTRACE=$pytrace
  "$bindir/bench_glibc" --mode=pytrace-info > "$out/pytrace.json" 2>>"$out/stderr.log" \
    || failed+=("reading the CPython trace")
else
  unset SHB_PYTRACE
  failed+=("no CPython trace in $pytrace (build the shb_pytrace target)")
fi

# Extra flags per binary: bench_sharena_static runs sharena's workloads only
# (linked statically: the second sharena row).
declare -A bin_flags=([sharena_static]="--proc=none --shared=sharena")
declare -A multi_filter=([sharena_static]="prodcons")

# ---- section: timing rounds ----------------------------------------------------
run_rounds() {
  local r i b extra
  say "$rounds rounds x ${#binaries[@]} binaries; results in $out"
  for ((r = 1; r <= rounds; r++)); do
    for ((i = 0; i < ${#binaries[@]}; i++)); do
      b=${binaries[$(( (i + r - 1) % ${#binaries[@]} ))]}
      read -r -a extra <<< "${bin_flags[$b]:-}"
      quiet "round $r $b single"
      run_bg "$out/stderr.log" "${pin[@]}" "$bindir/bench_$b" "${extra[@]}" "${gb_flags[@]}" \
        --benchmark_filter="^(pair|batch|trace|pytrace|realloc)/.*($filter)" > "$out/gb_${b}_single_r$r.json" \
        || failed+=("bench_$b single, round $r")
      quiet "round $r $b multi"
      run_bg "$out/stderr.log" "$bindir/bench_$b" "${extra[@]}" "${gb_flags[@]}" \
        --benchmark_filter="^(${multi_filter[$b]:-prodcons|procs})/.*($filter)" > "$out/gb_${b}_multi_r$r.json" \
        || failed+=("bench_$b multi, round $r")
    done
    say "round $r of $rounds done"
  done
}

# ---- section: memory mode --------------------------------------------------------
run_memory() {
  local b
  for b in "${mem_binaries[@]}"; do
    quiet "memory $b"
    run_bg "$out/stderr.log" "$bindir/bench_$b" --mode=memory --out="$out/mem_$b.json" \
      || failed+=("bench_$b memory mode")
  done
  say "memory mode done"
}

# ---- section: callgrind counts (instructions, simulated cache misses) -------------
run_callgrind() {
  [ "${SHB_CALLGRIND:-1}" != 0 ] && command -v valgrind >/dev/null || return 0
  local b extra
  mkdir -p "$out/callgrind"
  for b in "${binaries[@]}"; do
    read -r -a extra <<< "${bin_flags[$b]:-}"
    run_bg "$out/callgrind/valgrind.log" valgrind --tool=callgrind --collect-atstart=no \
      --cache-sim=yes --compress-strings=no --compress-pos=no \
      --callgrind-out-file="$out/callgrind/cg_$b.%p" \
      "$bindir/bench_$b" "${extra[@]}" --mode=count || failed+=("bench_$b under callgrind")
    say "callgrind: bench_$b done"
  done
}

# ---- section: the shared list (bench/list) -----------------------------------------
# sharena from one and two processes, and CPython's ShareableList for scale
# (Debian's /usr/bin/python3, as the Python module's comparison below).
run_list() {
  [ -x "$bindir/list/bench_list" ] || return 0
  quiet "list"
  run_bg "$out/stderr.log" "${pin[@]}" "$bindir/list/bench_list" --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_min_time="$min_time" --benchmark_format=json \
    > "$out/list.json" || failed+=("bench_list")
  run_bg "$out/stderr.log" /usr/bin/python3 "$here/list/cpython_sl.py" > "$out/cpython_sl.json" \
    || failed+=("CPython ShareableList timing")
  # From Python: the module sharena (built with SHR_PYTHON=ON) against the
  # stdlib's ShareableList and a plain list, with Debian's /usr/bin/python3.
  if [ -d "$build/python/sharena" ]; then
    quiet "python"
    run_bg "$out/stderr.log" env PYTHONPATH="$build/python" /usr/bin/python3 "$here/list/python_bench.py" \
      --json > "$out/python_sl.json" || failed+=("Python ShareableList comparison")
  fi
}

# ---- section: the cycle collector against CPython's (bench/gc) ---------------------
# The seeded graphs collected by sharena, and the same graphs built and collected
# by the machine's /usr/bin/python3, in the same run. Progress goes to stderr.
run_gc() {
  [ "${SHB_GC:-1}" != 0 ] && [ -x "$bindir/bench_gc" ] || return 0
  quiet "gc"
  local sizes=${SHB_GC_SIZES:-100000,1000000} trials=${SHB_GC_TRIALS:-3}
  local olds=${SHB_GC_YOUNG_OLD:-0,100000,1000000} grow=${SHB_GC_GROWTH:-1000000}
  local churn=${SHB_GC_CHURN:-1000000} clive=${SHB_GC_CHURN_LIVE:-100000}
  local crate=${SHB_GC_CHURN_RATE:-50} ccycle=${SHB_GC_CHURN_CYCLE:-10}
  say "gc: full collections at $sizes objects, young over $olds old, growth to $grow, churn of $churn" \
      "over $clive live ($crate% garbage in rings of $ccycle); sharena then CPython"
  local rc=0
  "${pin[@]}" "$bindir/bench_gc" --sizes="$sizes" --trials="$trials" --young-old="$olds" \
    --growth="$grow" --churn="$churn" --churn-live="$clive" --churn-rate="$crate" --churn-cycle="$ccycle" \
    > "$out/gc.json" 2> >(tee -a "$out/gc.log" >&2) &
  child=$!
  wait "$child" || rc=$?
  [ $rc -eq 0 ] || failed+=("bench_gc")
  rc=0
  "${pin[@]}" /usr/bin/python3 "$here/gc/cpython_gc.py" --sizes="$sizes" --trials="$trials" \
    --young-old="$olds" --growth="$grow" --churn="$churn" --churn-live="$clive" --churn-rate="$crate" \
    --churn-cycle="$ccycle" > "$out/cpython_gc.json" 2> >(tee -a "$out/gc.log" >&2) &
  child=$!
  wait "$child" || rc=$?
  child=""
  [ $rc -eq 0 ] || failed+=("CPython gc timing")
}

# ---- section: the collector's experiments (bench/gc, docs/gc-experiments.md) -------
# The walk against list order and address order (the Release build), and the
# recovery after a kill at each named crash point (the fault-point build: a
# Release library with SHR_DEBUG=1, the bench-faults preset). Progress to
# stderr and gc.log.
run_gc_experiments() {
  [ "${SHB_GC:-1}" != 0 ] || return 0
  local rc
  if [ "${SHB_GC_ORDER:-1}" != 0 ] && [ -x "$bindir/bench_gc_order" ]; then
    quiet "gc order"
    local osizes=${SHB_GC_ORDER_SIZES:-10000,100000,1000000} otrials=${SHB_GC_ORDER_TRIALS:-3,3,1}
    say "gc: the walk against list order and address order at $osizes objects ($otrials trials)"
    rc=0
    "${pin[@]}" "$bindir/bench_gc_order" --sizes="$osizes" --trials="$otrials" \
      > "$out/gc_order.json" 2> >(tee -a "$out/gc.log" >&2) &
    child=$!
    wait "$child" || rc=$?
    child=""
    [ $rc -eq 0 ] || failed+=("bench_gc_order (exit $rc)")
  fi
  [ "${SHB_GC_RECOVER:-1}" != 0 ] || return 0
  local fb=${SHB_FAULTS_BUILD:-$(dirname "$build")/bench-faults}
  local rbin=$fb/bench/bench_gc_recover
  if [ ! -x "$rbin" ]; then
    failed+=("no $rbin: the recovery experiment needs the fault-point build (cmake --preset bench-faults)")
    return 0
  fi
  quiet "gc recover"
  say "gc: recovery after a kill at each named crash point (${SHB_GC_RECOVER_N:-20000} objects, $rbin)"
  rc=0
  "${pin[@]}" "$rbin" --n="${SHB_GC_RECOVER_N:-20000}" --hold="${SHB_GC_RECOVER_HOLD:-2000}" \
    --nth="${SHB_GC_RECOVER_NTH:-mid}" --repeat="${SHB_GC_RECOVER_REPEAT:-3}" \
    > "$out/gc_recover.json" 2> >(tee -a "$out/gc.log" >&2) &
  child=$!
  wait "$child" || rc=$?
  child=""
  [ $rc -eq 0 ] || failed+=("bench_gc_recover (exit $rc: a row shows a bug, see gc_recover.json)")
}

# ---- section: growth (costs against heap size, processes, references, length) -----
# bench_growth prints its progress; it goes to the terminal and growth.log.
run_growth() {
  [ "${SHB_GROWTH:-1}" != 0 ] && [ -x "$bindir/bench_growth" ] || return 0
  quiet "growth"
  say "growth: heap up to ${SHB_GROWTH_MAX_MIB:-2048} MiB live, processes, dead peers, references, list length"
  local rc=0
  "$bindir/bench_growth" --out="$out/growth.json" 2> >(tee "$out/growth.log" >&2) &
  child=$!
  wait "$child" || rc=$?
  child=""
  [ $rc -eq 0 ] || failed+=("bench_growth")
}

run_rounds;    phase_done "timing rounds"
run_memory;    phase_done "memory mode"
run_callgrind; phase_done "callgrind counts"
run_list;      phase_done "shared list"
run_gc;        phase_done "cycle collector"
run_gc_experiments; phase_done "collector experiments"
run_growth;    phase_done "growth"

elapsed=$(( $(date +%s) - start ))
{
  printf '{\n  "date": "%s",\n  "command": "bench/run.sh %s",\n' "$date_iso" "$1"
  printf '  "rounds": %s, "repetitions": %s, "min_time": %s, "cpu": %s,\n' "$rounds" "$reps" "$min_time" "$cpu"
  printf '  "window_ms": %s, "elapsed_s": %s,\n' "${SHB_WINDOW_MS:-20}" "$elapsed"
  printf '  "phases": {'
  sep=""
  for k in "${phase_names[@]}"; do printf '%s"%s": %s' "$sep" "$k" "${phases[$k]}"; sep=", "; done
  printf '},\n  "failed": ['
  sep=""
  for f in "${failed[@]+"${failed[@]}"}"; do printf '%s"%s"' "$sep" "$f"; sep=", "; done
  printf ']\n}\n'
} > "$out/meta.json"

mkdir -p "$(dirname "$md")"
report=(python3 "$here/report.py" "$out" --md "$md")
[ -n "$png_dir" ] && report+=(--png-dir "$png_dir")
echo
echo "sharena benchmarks, $date_iso, main job ${elapsed} s (build excluded); report: $md"
echo "cells: median of that allocator; in parentheses sharena / it (below 1: sharena faster)"
echo
"${report[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "sharena-bench: failures (see $out/stderr.log):" >&2
  printf '  %s\n' "${failed[@]}" >&2
fi
