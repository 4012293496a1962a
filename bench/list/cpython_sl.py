#!/usr/bin/env python3
"""CPython's multiprocessing.shared_memory.ShareableList on the shared list's
operations, for scale: get and set of an int and of a 16-byte str, in one
process. Prints JSON: {"python": version, "ns": {operation: median ns}}."""
import json
import sys
import timeit
from multiprocessing.shared_memory import ShareableList

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]

def main():
    sl_int = ShareableList(list(range(1000)))
    sl_str = ShareableList(["0123456789abcdef"] * 1000)
    cases = {
        "get_int": ("sl[i % 1000]; i += 7", {"sl": sl_int}),
        "set_int": ("sl[i % 1000] = i; i += 7", {"sl": sl_int}),
        "get_str16": ("sl[i % 1000]; i += 7", {"sl": sl_str}),
        "set_str16": ("sl[i % 1000] = '0123456789abcdef'; i += 7", {"sl": sl_str}),
    }
    out = {}
    for name, (stmt, env) in cases.items():
        n = 20000
        runs = timeit.repeat(stmt, setup="i = 0", number=n, repeat=7, globals=env)
        out[name] = median(runs) / n * 1e9
    for sl in (sl_int, sl_str):
        sl.shm.close()
        sl.shm.unlink()
    print(json.dumps({"python": sys.version.split()[0], "ns": out}))

if __name__ == "__main__":
    main()
