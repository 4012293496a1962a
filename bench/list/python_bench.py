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
JSON with --json: {"python": version, "rounds": N, "ns": {kind: {op: ns}},
"memory": {kind: {...}}}.

The kind "compact" is a sharena.ShareableList of the first 102 items alone
(the int, the str and the 100 strs), which is a compact list: the whole
list in one page of its segment (docs/design/solo.md); it has no
iteration row. "memory" is tests/python/limits_probe.py's measure of a
thousand lists of one int each, for sharena and the stdlib, each in a
fresh interpreter: threads, descriptors, resident and /dev/shm bytes.
"""
import argparse
import json
import pickle
import os
import statistics
import subprocess
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
KINDS = ["sharena", "compact", "stdlib", "list"]
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python", "limits_probe.py")


def memory():
    """A thousand lists of one int each, for sharena and the stdlib."""
    out = {}
    for kind in ("sharena", "stdlib"):
        r = subprocess.run([sys.executable, PROBE, kind, "1000"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            sys.exit(f"limits_probe.py {kind} failed:\n{r.stderr[-2000:]}")
        out[kind] = json.loads(r.stdout)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # a small int (one of the interpreter's cached ints), the str, 100 other strs, ints
    items = [7, S16] + [f"{i:016x}" for i in range(100)] + list(range(898))
    lists = {
        "sharena": sharena.ShareableList(items),
        "compact": sharena.ShareableList(items[:102]),
        "stdlib": shared_memory.ShareableList(items),
        "list": list(items),
    }
    env = {k: {"sl": v, "s": S16B, "r": EACH, "pickle": pickle, "p": pickle.dumps(v)} for k, v in lists.items()}
    runs = {k: {op[0]: [] for op in OPS} for k in KINDS}
    try:
        for _ in range(args.rounds):
            for name, stmt, n_fast, n_std, per in OPS:
                for kind in KINDS:
                    if kind == "compact" and name == "iter_1000":
                        continue  # it holds 102 items
                    n = n_std if kind == "stdlib" else n_fast
                    t = timeit.timeit(stmt, number=n, globals=env[kind])
                    runs[kind][name].append(t / (n * per) * 1e9)
    finally:
        for k in ("sharena", "compact", "stdlib"):
            lists[k].shm.close()
            lists[k].shm.unlink()
    ns = {k: {op: statistics.median(v) for op, v in runs[k].items() if v} for k in KINDS}
    mem = memory()
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                          "rounds": args.rounds, "ns": ns, "memory": mem}))
        return
    print(f"python {sys.version.split()[0]} ({sys.executable}), {args.rounds} rounds, median ns/op")
    print(f"{'operation':14s} {'sharena':>10s} {'compact':>10s} {'stdlib':>10s} {'list':>10s} "
          f"{'stdlib/sharena':>15s} {'sharena/list':>13s}")
    for name, *_ in OPS:
        a, b, c = ns["sharena"][name], ns["stdlib"][name], ns["list"][name]
        k = ns["compact"].get(name)
        ks = f"{k:10.1f}" if k else f"{'-':>10s}"
        print(f"{name:14s} {a:10.1f} {ks} {b:10.1f} {c:10.1f} {b / a:15.1f} {a / c:13.2f}")
    for kind, m in mem.items():
        print(f"1000 lists, {kind}: {m['threads']} threads, {m['fds']} fds, "
              f"{m['rss'] / 1e6:.1f} MB resident + {m['shm'] / 1e6:.1f} MB /dev/shm")


if __name__ == "__main__":
    main()
