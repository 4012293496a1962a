#!/usr/bin/python3
"""Instructions per get of sharena.ShareableList, counted by callgrind: a
noise-free figure for comparing two builds of the module on a shared
machine, where timings of a few tens of nanoseconds drift by a third.

    PYTHONPATH=build/release/python bench/list/python_ir.py [N] [--compact]

For each operation it runs /usr/bin/python3 under `valgrind --tool=callgrind`
twice, with 0 and with N repetitions (default 100,000; PYTHONHASHSEED=0, so
both runs start alike), and prints the difference divided by N: the
instructions of one get with the interpreter's loop around it. The list is
bench/list/python_bench.py's: a small int, a 16-byte str, 100 other 16-byte
strs, 898 ints; with --compact its first 102 items alone, which a compact
list holds (<sharena/solo.h>: the list in one page), without `iter`.

    get_int    sl[0]                     the lock-free read of an int
    get_str16  sl[1]                     the same str read again
    each       for i in range(2, 102): sl[i]   100 different strs in turn
    iter       for x in sl: pass         per item
"""
import os
import re
import subprocess
import sys

CHILD = r'''
import sys
import sharena
items = [7, "0123456789abcdef"] + [f"{i:016x}" for i in range(100)] + list(range(898))
op, n = sys.argv[1], int(sys.argv[2])
sl = sharena.ShareableList(items[:102] if sys.argv[3] == "compact" else items)
if op == "get_int":
    for _ in range(n): sl[0]
elif op == "get_str16":
    for _ in range(n): sl[1]
elif op == "each":
    for _ in range(n // 100):
        for i in range(2, 102): sl[i]
elif op == "iter":
    for _ in range(n // 1000):
        for x in sl: pass
sl.shm.close()
sl.shm.unlink()
'''


def instructions(op, n, kind):
    env = dict(os.environ, PYTHONHASHSEED="0")
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "/usr/bin/python3",
                        "-c", CHILD, op, str(n), kind], capture_output=True, text=True, env=env, timeout=3600)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if r.returncode != 0 or not m:
        sys.exit(f"callgrind run failed ({op}, {n}):\n{r.stderr[-2000:]}")
    return int(m.group(1))


def main():
    args = [a for a in sys.argv[1:] if a != "--compact"]
    kind = "compact" if "--compact" in sys.argv[1:] else "heap"
    n = int(args[0]) if args else 100_000
    for op in ("get_int", "get_str16", "each") + (("iter",) if kind == "heap" else ()):
        per = (instructions(op, n, kind) - instructions(op, 0, kind)) / n
        print(f"{op:10s} {per:8.0f} instructions per get ({kind})", flush=True)


if __name__ == "__main__":
    main()
