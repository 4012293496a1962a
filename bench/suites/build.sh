#!/usr/bin/env bash
# Build the standard allocator suites from checkouts the user provides:
#   bench/suites/build.sh MIMALLOC_BENCH_DIR MIMALLOC_DIR [OUT]
# (or MIMALLOC_BENCH_DIR / MIMALLOC_DIR in the environment). Builds, into
# OUT (default build/suites):
#   - mimalloc-bench's self-contained programs (their sources are in its
#     bench/ directory): cfrac espresso barnes larson mstress rptest
#     alloc-test xmalloc-test cache-scratch cache-thrash glibc-simple
#     glibc-thread malloc-large
#   - mimalloc's test/test-stress.c, on the system malloc (USE_STD_MALLOC),
#     with its asserts on: they check the contents of every block
# Nothing is downloaded and nothing from the checkouts enters this tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mb=${1:-${MIMALLOC_BENCH_DIR:-}}
mi=${2:-${MIMALLOC_DIR:-}}
out=${3:-$root/build/suites}
if [ -z "$mb" ] || [ ! -f "$mb/bench/CMakeLists.txt" ]; then
  echo "usage: $0 MIMALLOC_BENCH_DIR MIMALLOC_DIR [OUT]  (a checkout of daanx/mimalloc-bench)" >&2
  exit 64
fi
if [ -z "$mi" ] || [ ! -f "$mi/test/test-stress.c" ]; then
  echo "usage: $0 MIMALLOC_BENCH_DIR MIMALLOC_DIR [OUT]  (a checkout of microsoft/mimalloc)" >&2
  exit 64
fi
mkdir -p "$out"
progs=(cfrac espresso barnes larson mstress rptest alloc-test xmalloc-test cache-scratch
       cache-thrash glibc-simple glibc-thread malloc-large)
# Compiled here with the flags of mimalloc-bench's bench/CMakeLists.txt
# (whose other targets need sources it downloads, so it is not used as is).
b=$mb/bench
w="-O3 -DNDEBUG -w"
cc_old="cc $w -std=gnu89 -Wno-implicit-function-declaration -Wno-implicit-int -Wno-int-conversion -Wno-incompatible-pointer-types"
build() { echo "  $1"; shift; "$@"; }
srcs() { local d=$1; shift; for f in "$@"; do printf '%s ' "$b/$d/$f"; done; }
build cfrac $cc_old -DNOMEMOPT=1 -o "$out/cfrac" $(srcs cfrac cfrac.c pops.c pconst.c pio.c pabs.c \
  pneg.c pcmp.c podd.c phalf.c padd.c psub.c pmul.c pdivmod.c psqrt.c ppowmod.c atop.c ptoa.c \
  itop.c utop.c ptou.c errorp.c pfloat.c pidiv.c pimod.c picmp.c primes.c pcfrac.c pgcd.c) -lm
build espresso $cc_old -o "$out/espresso" $(srcs espresso cofactor.c cols.c compl.c contain.c \
  cubestr.c cvrin.c cvrm.c cvrmisc.c cvrout.c dominate.c equiv.c espresso.c essen.c exact.c \
  expand.c gasp.c getopt.c gimpel.c globals.c hack.c indep.c irred.c main.c map.c matrix.c \
  mincov.c opo.c pair.c part.c primes.c reduce.c rows.c set.c setc.c sharp.c sminterf.c \
  solution.c sparse.c unate.c utility.c verify.c) -lm
build barnes $cc_old -o "$out/barnes" $(srcs barnes code.c code_io.c load.c grav.c getparam.c util.c) -lm
build larson c++ $w -std=c++17 -DCPP=1 -o "$out/larson" "$b/larson/larson.cpp" -lpthread
build alloc-test c++ $w -std=c++17 -DBENCH=4 -o "$out/alloc-test" "$b/alloc-test/test_common.cpp" \
  "$b/alloc-test/allocator_tester.cpp" -lpthread
build cache-scratch c++ $w -std=c++17 -o "$out/cache-scratch" "$b/cache-scratch/cache-scratch.cpp" -lpthread
build cache-thrash c++ $w -std=c++17 -o "$out/cache-thrash" "$b/cache-thrash/cache-thrash.cpp" -lpthread
build xmalloc-test cc $w -o "$out/xmalloc-test" "$b/xmalloc-test/xmalloc-test.c" -lpthread
build malloc-large c++ $w -std=c++17 -o "$out/malloc-large" "$b/malloc-large/malloc-large.cpp" -lpthread
build mstress cc $w -o "$out/mstress" "$b/mstress/mstress.c" -lpthread
build rptest cc $w -fpermissive -I"$b/rptest" -o "$out/rptest" "$b/rptest/rptest.c" "$b/rptest/thread.c" \
  "$b/rptest/timer.c" -lpthread -lm
build glibc-simple cc $w -o "$out/glibc-simple" "$b/glibc-bench/bench-malloc-simple.c" -lpthread
build glibc-thread cc $w -o "$out/glibc-thread" "$b/glibc-bench/bench-malloc-thread.c" -lpthread -lm
cp "$mb/bench/barnes/input" "$out/barnes.input"
cp "$mb/bench/espresso/largest.espresso" "$out/largest.espresso"
build test-stress cc -O2 -DUSE_STD_MALLOC -o "$out/test-stress" "$mi/test/test-stress.c" -lpthread
# Record what was built from what.
{
  echo "mimalloc-bench $(git -C "$mb" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "mimalloc $(git -C "$mi" rev-parse HEAD 2>/dev/null || echo unknown)"
} > "$out/SOURCES"
echo "suites built in $out: ${progs[*]} test-stress"
