#!/usr/bin/env bash
# Run sharena's libFuzzer targets.
#
#   fuzz/run.sh [-t SECONDS] [TARGET...]     long runs (default 600 s each,
#                                            every target: segment list alloc
#                                            solo)
#   fuzz/run.sh --short                      what scripts/test.sh runs: a fixed
#                                            seed and count of inputs (~40 s)
#                                            each from the seeds, then the
#                                            regressions
#   fuzz/run.sh --regressions                run every reproducer in
#                                            <target>/regressions/ once
#
# Builds the `fuzz` preset (clang, libFuzzer, ASan + UBSan). A long run
# keeps its corpus in build/fuzz/corpus/TARGET (seeded from
# fuzz/TARGET/seeds) and its findings in build/fuzz/artifacts/TARGET; it
# prints, per target, the executions, executions per second, coverage and
# the crashes, timeouts and leaks found. Exit status 1 if any was found.
#
# Open defects listed in fuzz/KNOWN are steered around (SHARENA_FUZZ_KNOWN;
# set it yourself to override, "" to steer around none). Each reproducer is
# replayed with every other listed defect steered around and its own not:
# one named for a listed id is reported (and expected to fail); every other
# reproducer must pass.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(segment list alloc solo)
declare -A max_len=([segment]=512 [list]=2048 [alloc]=4096 [solo]=256)
# The short run (scripts/test.sh, CI) is the same every time: a fixed seed
# and a fixed number of inputs per target (about 40 s each on the reference
# machine; the time limit only cuts a slow machine's run short, to a prefix
# of the same sequence). A test that passed once then passes again: finding
# new defects is the long run's job.
declare -A short_runs=([segment]=5000 [list]=8000 [alloc]=3000 [solo]=3000)
extra=()
seconds=600
mode=long
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    --short) mode=short; seconds=40; shift ;;
    --regressions) mode=regressions; shift ;;
    -h|--help) sed -n 2,22p "$0"; exit 0 ;;
    segment|list|alloc|solo) targets+=("$1"); shift ;;
    *) echo "fuzz/run.sh: unknown argument '$1'" >&2; exit 64 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

if [ -z "${SHARENA_FUZZ_KNOWN+set}" ]; then
  SHARENA_FUZZ_KNOWN=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' fuzz/KNOWN | awk '{print $1}' | paste -sd, -)
fi
export SHARENA_FUZZ_KNOWN
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cmake --preset fuzz -G Ninja >/dev/null
cmake --build --preset fuzz -j "$(nproc)" >/dev/null
bin=build/fuzz/fuzz

# Heaps of runs that crashed: fz_<tag>_<pid>_<n> of pids that are gone.
sweep() {
  local f pid
  for f in /dev/shm/fz_*; do
    [ -e "$f" ] || continue
    pid=$(basename "$f" | awk -F_ '{print $3}')
    case "$pid" in ''|*[!0-9]*) continue ;; esac
    kill -0 "$pid" 2>/dev/null || rm -f "$f"
  done
}

# The ids in SHARENA_FUZZ_KNOWN that a reproducer is named for: its name is
# "ID", "ID-..." or, for one that needs several open defects, "ID+ID-...".
known_ids() {
  local part id best out=
  local IFS=+
  for part in $(basename "$1"); do
    best=
    for id in ${SHARENA_FUZZ_KNOWN//,/+}; do
      case "$part" in "$id"|"$id"-*) [ ${#id} -gt ${#best} ] && best=$id ;; esac
    done
    [ -n "$best" ] && out="$out${out:+,}$best"
  done
  echo "$out"
}

# A reproducer is replayed with the other open defects steered around, as
# when it was found, and its own not.
replay() { # target file own-ids
  local others
  others=$(tr ',' '\n' <<<"$SHARENA_FUZZ_KNOWN" | grep -vxF -f <(tr ',' '\n' <<<"${3:-}") | paste -sd, -)
  # In a subshell that waits (not exec), so that a reproducer killed by its
  # signal is reported to /dev/null, not to the terminal.
  (SHARENA_FUZZ_KNOWN=$others timeout 60 "$bin/fuzz_$1" -timeout=10 "$2"; exit $?) >/dev/null 2>&1
}

regressions() {
  local t f id bad=0 n=0 known=0
  for t in "${targets[@]}"; do
    for f in fuzz/$t/regressions/*; do
      [ -e "$f" ] || continue
      n=$((n + 1))
      id=$(known_ids "$f")
      if [ -n "$id" ]; then
        known=$((known + 1))
        if replay "$t" "$f" "$id"; then
          echo "fuzz: $t/$(basename "$f"): passes now: if $id is fixed, drop it from fuzz/KNOWN"
        else
          echo "fuzz: $t/$(basename "$f"): known open defect $id, still fails"
        fi
      elif replay "$t" "$f" ""; then
        echo "fuzz: $t/$(basename "$f"): ok"
      else
        echo "fuzz: $t/$(basename "$f"): FAILS (not in fuzz/KNOWN)"
        bad=$((bad + 1))
      fi
    done
  done
  sweep
  echo "fuzz: regressions: $n inputs, $known known open, $bad failing"
  return $((bad > 0))
}

run_target() { # target seconds corpus artifacts
  local t=$1 secs=$2 corpus=$3 art=$4 log
  mkdir -p "$corpus" "$art"
  log=$(mktemp)
  local t0=$SECONDS
  set +e
  "$bin/fuzz_$t" "$corpus" "fuzz/$t/seeds" "${extra[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
      -max_len="${max_len[$t]}" -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
  local rc=$?
  set -e
  sweep
  local execs rate cov found
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n1 | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec:' "$log" | tail -n1 | awk '{print $2}')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
  found=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'leak-*' -o -name 'oom-*' \) | wc -l)
  echo "fuzz: $t: ${execs:-?} executions in $((SECONDS - t0))s (${rate:-?}/s), coverage ${cov:-?} edges, $found findings in $art"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    grep -E 'ERROR|SUMMARY|fuzz check failed|^sharena:|runtime error' "$log" | head -n 8 | sed 's/^/fuzz:   /'
    local f
    for f in "$art"/crash-* "$art"/timeout-* "$art"/leak-* "$art"/oom-*; do
      [ -e "$f" ] && echo "fuzz:   reproduce: $bin/fuzz_$t $f"
    done
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

echo "fuzz: steering around known open defects: ${SHARENA_FUZZ_KNOWN:-none}"
status=0
case "$mode" in
  regressions) regressions || status=1 ;;
  short)
    # From the seeds only, into a scratch corpus: the tree is not touched.
    scratch=$(mktemp -d)
    for t in "${targets[@]}"; do
      extra=(-seed=1 -runs="${short_runs[$t]}")
      run_target "$t" "$((seconds * 2))" "$scratch/corpus-$t" "$scratch/artifacts-$t" || status=1
    done
    extra=()
    if [ "$status" -ne 0 ]; then
      for t in "${targets[@]}"; do
        mkdir -p "build/fuzz/artifacts/$t"
        cp "$scratch/artifacts-$t"/* "build/fuzz/artifacts/$t/" 2>/dev/null || true
      done
      echo "fuzz: findings copied to build/fuzz/artifacts/"
    fi
    rm -rf "$scratch"
    regressions || status=1
    ;;
  long)
    for t in "${targets[@]}"; do
      run_target "$t" "$seconds" "build/fuzz/corpus/$t" "build/fuzz/artifacts/$t" || status=1
    done
    ;;
esac
exit "$status"
