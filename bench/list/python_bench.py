#!/usr/bin/python3
"""sharena.ShareableList from Python, against the stdlib's ShareableList and
a plain list, in one run of one interpreter.

    PYTHONPATH=build/bench/python /usr/bin/python3 bench/list/python_bench.py [--rounds N] [--json]

Operations on lists of 1000 items: get and set of a small int (7) and of a
16-byte str, a get of each of 100 different 16-byte strs in turn (per get,
the loop included: a get that cannot return the object it made for the one
before), len, iteration over the 1000 items, and pickling (dumps of the
list, and loads, which for both shared lists means attaching by name and for
a plain list copying it). Each round times every operation of every kind
once with timeit (the kinds interleaved, so slow periods of a shared machine
fall on all of them); a figure is the median over rounds, in ns per
operation, timeit's loop included for every kind alike. Prints a table, or
JSON with --json: {"python": version, "rounds": N, "ns": {kind: {op: ns}}}.
"""
import argparse
import json
import pickle
import statistics
import sys
import timeit
from multiprocessing import shared_memory

import sharena

S16 = "0123456789abcdef"
S16B = "fedcba9876543210"
OPS = [
    # name, statement, timeit number for (sharena and list, stdlib), operations per statement
    ("get_int", "sl[0]", 200_000, 20_000, 1),
    ("set_int", "sl[0] = 7", 200_000, 20_000, 1),
    ("get_str16", "sl[1]", 200_000, 20_000, 1),
    ("get_str16_each", "for i in r: sl[i]", 2_000, 200, 100),
    ("set_str16", "sl[1] = s", 200_000, 20_000, 1),
    ("len", "len(sl)", 200_000, 100_000, 1),
    ("iter_1000", "for x in sl: pass", 500, 50, 1),
    ("pickle_dumps", "pickle.dumps(sl)", 20_000, 5_000, 1),
    ("pickle_loads", "pickle.loads(p)", 20_000, 2_000, 1),
]
EACH = range(2, 102)  # the items of get_str16_each: 100 different 16-byte strs
KINDS = ["sharena", "stdlib", "list"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # a small int (one of the interpreter's cached ints), the str, 100 other strs, ints
    items = [7, S16] + [f"{i:016x}" for i in range(100)] + list(range(898))
    lists = {
        "sharena": sharena.ShareableList(items),
        "stdlib": shared_memory.ShareableList(items),
        "list": list(items),
    }
    env = {k: {"sl": v, "s": S16B, "r": EACH, "pickle": pickle, "p": pickle.dumps(v)} for k, v in lists.items()}
    runs = {k: {op[0]: [] for op in OPS} for k in KINDS}
    try:
        for _ in range(args.rounds):
            for name, stmt, n_fast, n_std, per in OPS:
                for kind in KINDS:
                    n = n_std if kind == "stdlib" else n_fast
                    t = timeit.timeit(stmt, number=n, globals=env[kind])
                    runs[kind][name].append(t / (n * per) * 1e9)
    finally:
        for k in ("sharena", "stdlib"):
            lists[k].shm.close()
            lists[k].shm.unlink()
    ns = {k: {op: statistics.median(v) for op, v in runs[k].items()} for k in KINDS}
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                          "rounds": args.rounds, "ns": ns}))
        return
    print(f"python {sys.version.split()[0]} ({sys.executable}), {args.rounds} rounds, median ns/op")
    print(f"{'operation':14s} {'sharena':>10s} {'stdlib':>10s} {'list':>10s} {'stdlib/sharena':>15s} {'sharena/list':>13s}")
    for name, *_ in OPS:
        a, b, c = ns["sharena"][name], ns["stdlib"][name], ns["list"][name]
        print(f"{name:14s} {a:10.1f} {b:10.1f} {c:10.1f} {b / a:15.1f} {a / c:13.2f}")


if __name__ == "__main__":
    main()
