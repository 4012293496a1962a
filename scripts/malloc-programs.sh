#!/usr/bin/env bash
# Real programs under libsharena-malloc.so, each compared with the same run
# on glibc's malloc: their output must be identical.
#   scripts/malloc-programs.sh [--short] [LIB]
# LIB defaults to build/release/malloc/libsharena-malloc.so (built if
# missing). The full set:
#   python   /usr/bin/python3 -m test on a set of CPython's own test modules
#            (Debian's libpython3.11-testsuite): the verdict of every test
#   git      clone this repository, then log, grep, status, fsck, gc, log
#            again: every command's output
#   build    cmake + ninja + cc configuring and building this project: the
#            library's objects and the shared library, byte for byte
# --short (scripts/test.sh): git, and two python modules; under a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
short=0
if [ "${1:-}" = "--short" ]; then short=1; shift; fi
lib=${1:-$root/build/release/malloc/libsharena-malloc.so}
if [ ! -f "$lib" ]; then
  cmake --preset release -G Ninja >/dev/null
  cmake --build --preset release -j "$(nproc)" --target sharena_malloc >/dev/null
fi
lib=$(readlink -f "$lib")
tmp=$(mktemp -d /tmp/sharena-programs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0

# Run "$@" twice, on glibc and under the preload, and compare what the
# filter (stdin -> stdout, a shell snippet in $filter) keeps of the output.
compare() {
  local name=$1; shift
  local a="$tmp/$name.glibc" b="$tmp/$name.sharena"
  ( "$@" ) 2>&1 | eval "$filter" > "$a" || true
  ( export LD_PRELOAD="$lib"; "$@" ) 2>&1 | eval "$filter" > "$b" || true
  if [ ! -s "$a" ]; then
    echo "malloc-programs: $name: no output on glibc" >&2; fails=$((fails + 1))
  elif cmp -s "$a" "$b"; then
    echo "malloc-programs: $name: identical ($(wc -l < "$a") lines)"
  else
    echo "malloc-programs: $name: DIFFERS" >&2
    diff "$a" "$b" | head -20 >&2
    fails=$((fails + 1))
  fi
}

# ---- git ----------------------------------------------------------------
git_run() {
  local d=$1
  rm -rf "$d"
  git clone -q "$root" "$d"
  cd "$d"
  git log --stat --format='%H %s' | head -2000
  git grep -n 'shr_heap_create' | head -200
  git status --porcelain
  git fsck --full --strict 2>&1
  git gc --aggressive --quiet 2>&1
  git count-objects -v | grep -v size
  git log --format='%H %T %P' | sha256sum
  git rev-list --objects --all | sha256sum
}
filter=cat
compare git git_run "$tmp/clone"

# ---- python ---------------------------------------------------------------
modules="test_json test_re"
[ "$short" = 1 ] || modules="test_json test_re test_os test_threading test_subprocess test_collections
  test_dict test_set test_unicode test_bytes test_list test_tuple test_pickle test_itertools
  test_functools test_math test_io test_mmap test_gc test_weakref test_sqlite3 test_zlib"
py_run() { /usr/bin/python3 -m test -v $modules; }
# The verdict of each test (timings and skip reasons aside), sorted, then
# the summary line.
filter="{ tee $tmp/py.out | grep -aE ' \.\.\. (ok|FAIL|ERROR|skipped|expected failure|unexpected success)' | sed -E 's/ \.\.\. skipped.*/ ... skipped/' | sort; }"
compare python py_run

# ---- cmake, ninja, cc -------------------------------------------------------
if [ "$short" = 0 ]; then
  build_run() {
    local d=$tmp/build
    rm -rf "$d"
    cmake -S "$root" -B "$d" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHR_TESTS=ON -DSHR_CLI=ON \
      -DSHR_EXAMPLES=OFF >/dev/null
    cmake --build "$d" -j "$(nproc)" >/dev/null
    # The library's objects, byte for byte (no -g, no timestamps).
    find "$d" -name '*.o' -path '*shr_*' | sort | xargs sha256sum | sed "s|$d/||"
    sha256sum "$d/lib/libsharena.so.0.1.0" | sed "s|$d/||"
  }
  filter=cat
  compare build build_run
fi

if [ "$fails" -ne 0 ]; then
  echo "malloc-programs: $fails program(s) differ under $lib" >&2
  exit 1
fi
echo "malloc-programs: all programs identical under $lib"
