#!/usr/bin/python3
"""CPython's side of sharena's collector benchmark (bench/gc/gc_bench.c).

Builds the graphs of include/sharena/gc.h ("seeded graphs") out of lists
with the same splitmix64 draws as sharena's shr_graph_build, in the same
order, and times gc.collect() on them, automatic collection off and the
interpreter's own objects frozen out of the scan. Each (graph, n) runs in a
fresh interpreter. One JSON document on stdout, progress on stderr.

  cpython_gc.py [--sizes 100000,1000000] [--trials 3] [--seed 42]
                [--young-old 0,100000,1000000] [--growth 1000000]
                [--churn 1000000] [--churn-live 100000] [--churn-rate 50]
                [--churn-cycle 10]
  cpython_gc.py --digest KIND:N   the graph's counts and edge digest (the
                                  fold of shr_graph_info_t), for the tests;
                                  churn takes --churn-live/-rate/-cycle
                                  (live 0: n / 10, as shr_graph_build)
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

M64 = (1 << 64) - 1
KINDS = ("live_flat", "live_graph", "ring2", "ring100", "mix")


class Rng:
    __slots__ = ("s",)

    def __init__(self, seed):
        self.s = seed & M64

    def u(self, k):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return (z ^ (z >> 31)) % k


class Digest:
    """The edge fold of shr_graph_info_t; edge(src, dst) in append order."""
    ROOT = M64

    def __init__(self):
        self.h = 0
        self.edges = 0

    def edge(self, src, dst):
        self.h = ((self.h ^ ((src * 0x9E3779B97F4A7C15 + dst) & M64)) * 0x100000001B3) & M64
        self.edges += 1


def live_flat(n, rng, d=None):
    root = [[] for _ in range(n)]
    if d:
        for i in range(n):
            d.edge(Digest.ROOT, i)
    return root, n + 1, 0


def live_graph(n, rng, d=None, payload=False):
    nodes = [[1000 + i] if payload else [] for i in range(n)]
    u = rng.u
    for i in range(1, n):
        p = u(i)
        nodes[p].append(nodes[i])
        if d:
            d.edge(p, i)
    for i in range(n):
        if u(2) == 0:
            t = u(n)
            nodes[i].append(nodes[t])
            if d:
                d.edge(i, t)
    if d:
        d.edge(Digest.ROOT, 0)
    return [nodes[0]], n + 1, 0


def rings(count, length, d=None):
    for r in range(count):
        ring = [[] for _ in range(length)]
        for k in range(length):
            ring[k].append(ring[(k + 1) % length])
            if d:
                d.edge(r * length + k, r * length + (k + 1) % length)
    return count * length


def ring2(n, rng, d=None):
    return None, 0, rings(n // 2, 2, d)


def ring100(n, rng, d=None):
    return None, 0, rings(n // 100, 100, d)


def mix(n, rng, d=None):
    n_live = n * 8 // 10
    g = n - n_live
    root, live, _ = live_graph(n_live, rng, d, payload=True)
    made = 0
    u = rng.u
    while made < g:
        L = min(2 + u(99), g - made)
        start = made
        ring = [[] for _ in range(L)]
        made += L
        for k in range(L):
            ring[k].append(ring[(k + 1) % L])
            if d:
                d.edge(n_live + start + k, n_live + start + (k + 1) % L)
        for k in range(L):
            if made < g and u(5) == 0:
                ring[k].append([])
                if d:
                    d.edge(n_live + start + k, n_live + made)
                made += 1
    return root, live, made


def tree(n, rng, d=None):
    nodes = [[] for _ in range(n)]
    for i in range(n):
        for c in (2 * i + 1, 2 * i + 2):
            if c < n:
                nodes[i].append(nodes[c])
                if d:
                    d.edge(i, c)
    if d:
        d.edge(Digest.ROOT, 0)
    return [nodes[0]], n + 1, 0


def churn(n, rng, d=None, live=0, pct=50, cycle=10, every=0, progress=None):
    """shr_graph_build_churn's stream (include/sharena/gc.h, "Churn"): a live
    table root = [x_0 .. x_{S-1}], x_j = [root]; then n new lists, each
    either cyclic garbage (U(100) < pct: joins the pending ring, linked and
    dropped when it has `cycle` members) or x = [root] stored in root[U(S)]
    (the list there freed by its count). progress(done) every `every`."""
    s = live or max(n // 10, 1)
    root = [None] * s
    u = rng.u
    for j in range(s):
        x = [root]
        root[j] = x
        if d:
            d.edge(j, Digest.ROOT)
            d.edge(Digest.ROOT - j, j)
    x = None
    m, idx = [], []
    garbage = 0

    def close():
        L = len(m)
        for k in range(L):
            m[k].append(m[(k + 1) % L])
            if d:
                d.edge(idx[k], idx[(k + 1) % L])
        m.clear()
        idx.clear()

    for i in range(n):
        if u(100) < pct:
            m.append([])
            idx.append(s + i)
            garbage += 1
            if len(m) == cycle:
                close()
        else:
            j = u(s)
            x = [root]
            root[j] = x
            if d:
                d.edge(s + i, Digest.ROOT)
                d.edge(Digest.ROOT - j, s + i)
            x = None
        if progress and every and (i + 1) % every == 0:
            progress(i + 1)
    if m:
        close()
    return root, s + 1, garbage


BUILD = {"tree": tree, "churn": churn, "live_flat": live_flat, "live_graph": live_graph, "ring2": ring2,
         "ring100": ring100, "mix": mix}


def ns():
    return time.perf_counter_ns()


def settle():
    gc.collect()
    gc.freeze()


def one(kind, n, seed, trials):
    """trials builds, each timed by its first full collection (and a second,
    steady one for the live graphs); medians."""
    gc.disable()
    first, steady, build = [], [], []
    found = 0
    for t in range(trials + 1):            # the first build is a warm-up
        settle()
        t0 = ns()
        root, live, garbage = BUILD[kind](n, Rng(seed))
        t1 = ns()
        found = gc.collect()
        t2 = ns()
        if root is not None:
            gc.collect()
        t3 = ns()
        if t:
            build.append(t1 - t0)
            first.append(t2 - t1)
            if root is not None:
                steady.append(t3 - t2)
        del root
        gc.collect()
        gc.unfreeze()
    out = {"kind": kind, "n": n, "trials": trials, "collected": found, "live": live,
           "garbage": garbage, "first_ns": statistics.median(first),
           "first_min_ns": min(first), "build_ns": statistics.median(build)}
    if steady:
        out["steady_ns"] = statistics.median(steady)
    return out


def young(n_old, seed, trials):
    """2,000 fresh garbage lists (1,000 2-rings) over n_old live_graph lists
    moved to the oldest generation; collect(0) in ns, median."""
    gc.disable()
    settle()
    root = live_graph(n_old, Rng(seed))[0] if n_old else None
    gc.collect()
    ts = []
    for _ in range(trials + 1):
        rings(1000, 2)
        t0 = ns()
        gc.collect(0)
        ts.append(ns() - t0)
        gc.collect()
    del root
    gc.collect()
    gc.unfreeze()
    return {"n_old": n_old, "young": 2000, "gen0_ns": statistics.median(ts[1:])}


def growth(n, seed):
    """A live_graph of n lists grown one list at a time with the same draws,
    automatic collection on at the interpreter's default thresholds; every
    collection's pause through gc.callbacks."""
    gc.disable()
    settle()
    pauses = {0: [], 1: [], 2: []}
    state = {}

    def cb(phase, info):
        if phase == "start":
            state["t"] = ns()
        else:
            pauses[info["generation"]].append(ns() - state["t"])

    gc.callbacks.append(cb)
    rng = Rng(seed)
    u = rng.u
    gc.enable()
    t0 = ns()
    nodes = [[]]
    for i in range(1, n):
        x = []
        nodes[u(i)].append(x)
        nodes.append(x)
    for i in range(n):
        if u(2) == 0:
            nodes[i].append(nodes[u(n)])
    total = ns() - t0
    gc.disable()
    gc.callbacks.remove(cb)
    res = {"n": n, "threshold": gc.get_threshold(), "total_ns": total,
           "gc_pause_ns": sum(sum(v) for v in pauses.values()),
           "max_pause_ns": max((max(v) for v in pauses.values() if v), default=0)}
    for g in (0, 1, 2):
        res["gen%d" % g] = {"collections": len(pauses[g]), "pause_ns_total": sum(pauses[g]),
                            "pause_ns_max": max(pauses[g], default=0)}
    return res


def quantiles(v):
    """Total, median, p99 and max (nearest rank), as bench_gc prints them."""
    v = sorted(v)
    if not v:
        return 0, 0, 0, 0
    def q(p):
        k = max(int(p * len(v) + 0.999999), 1)
        return v[k - 1]
    return sum(v), q(0.5), q(0.99), v[-1]


def churn_run(n, live, pct, cycle, seed):
    """shr_graph_build_churn's stream with automatic collection on at the
    interpreter's default thresholds: each collection's time through
    gc.callbacks, and 20 samples of the tracked objects (len(gc.get_objects()))
    and the interpreter's allocated blocks (sys.getallocatedblocks()) beyond
    what was there before, sampling time excluded."""
    gc.disable()
    settle()
    calls, gens, state, samples = [], [0, 0, 0], {"excluded": 0}, []

    def cb(phase, info):
        if phase == "start":
            state["t"] = ns()
        else:
            calls.append(ns() - state["t"])
            gens[info["generation"]] += 1

    o0, b0 = len(gc.get_objects()), sys.getallocatedblocks()

    def progress(done):
        t = ns()
        objs = len(gc.get_objects()) - o0
        samples.append({"done": done, "ns": t - state["t0"] - state["excluded"], "objects": objs,
                        "blocks": sys.getallocatedblocks() - b0})
        state["excluded"] += ns() - t

    gc.callbacks.append(cb)
    gc.enable()
    state["t0"] = ns()
    root, live_n, garbage = churn(n, Rng(seed), None, live, pct, cycle, max(n // 20, 1), progress)
    total = ns() - state["t0"] - state["excluded"]
    gc.disable()
    gc.callbacks.remove(cb)
    tot, med, p99, mx = quantiles(calls)
    res = {"n": n, "live": live_n - 1, "rate_pct": pct, "cycle": cycle, "threshold": gc.get_threshold(),
           "garbage": garbage, "total_ns": total, "collections": len(calls), "gen": gens,
           "call_ns_total": tot, "call_ns_median": med, "call_ns_p99": p99, "call_ns_max": mx,
           "samples": samples}
    del root
    gc.collect()
    return res


def child(args):
    out = subprocess.check_output([sys.executable, os.path.abspath(__file__)] + args)
    return json.loads(out.decode().strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--young-old", default="0,100000,1000000")
    ap.add_argument("--digest")
    ap.add_argument("--one")
    ap.add_argument("--young")
    ap.add_argument("--growth", default="1000000")
    ap.add_argument("--grow-one")
    ap.add_argument("--churn", default="1000000", help="stream objects of the churn experiment (0: skip)")
    ap.add_argument("--churn-live", type=int, default=0, help="the live table's slots (0: n / 10)")
    ap.add_argument("--churn-rate", type=int, default=50, help="percent of the stream made cyclic garbage")
    ap.add_argument("--churn-cycle", type=int, default=10, help="members of each garbage ring")
    ap.add_argument("--churn-one")
    a = ap.parse_args()
    if a.digest:
        kind, n = a.digest.split(":")
        d = Digest()
        kw = {"live": a.churn_live, "pct": a.churn_rate, "cycle": a.churn_cycle} if kind == "churn" else {}
        root, live, garbage = BUILD[kind](int(float(n)), Rng(a.seed), d, **kw)
        print(json.dumps({"kind": kind, "n": int(float(n)), "live": live, "garbage": garbage,
                          "edges": d.edges, "digest": "0x%016x" % d.h}))
        return
    if a.one:
        kind, n = a.one.split(":")
        print(json.dumps(one(kind, int(float(n)), a.seed, a.trials)))
        return
    if a.grow_one:
        print(json.dumps(growth(int(float(a.grow_one)), a.seed)))
        return
    if a.young:
        print(json.dumps(young(int(float(a.young)), a.seed, a.trials)))
        return
    if a.churn_one:
        print(json.dumps(churn_run(int(float(a.churn_one)), a.churn_live, a.churn_rate, a.churn_cycle, a.seed)))
        return
    res = {"python": sys.version.split()[0], "executable": sys.executable,
           "threshold": gc.get_threshold(), "seed": a.seed, "trials": a.trials,
           "full": [], "young": []}
    for n in [int(float(x)) for x in a.sizes.split(",") if x]:
        for kind in KINDS:
            print("cpython_gc: %s n=%d" % (kind, n), file=sys.stderr, flush=True)
            res["full"].append(child(["--one", "%s:%d" % (kind, n), "--trials", str(a.trials),
                                      "--seed", str(a.seed)]))
    for n_old in [int(float(x)) for x in a.young_old.split(",") if x]:
        print("cpython_gc: young over %d" % n_old, file=sys.stderr, flush=True)
        res["young"].append(child(["--young", str(n_old), "--trials", str(max(a.trials, 5)),
                                   "--seed", str(a.seed)]))
    if int(float(a.growth)):
        print("cpython_gc: growth to %s with automatic collection" % a.growth, file=sys.stderr, flush=True)
        res["growth"] = child(["--grow-one", a.growth, "--seed", str(a.seed)])
    if int(float(a.churn)):
        print("cpython_gc: churn of %s objects" % a.churn, file=sys.stderr, flush=True)
        res["churn"] = child(["--churn-one", a.churn, "--churn-live", str(a.churn_live or 100000),
                              "--churn-rate", str(a.churn_rate), "--churn-cycle", str(a.churn_cycle),
                              "--seed", str(a.seed)])
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
