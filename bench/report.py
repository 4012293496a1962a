#!/usr/bin/env python3
"""Turn one run of bench/run.sh into docs/benchmarks.md and its plots.

    bench/report.py RESULTS_DIR [--md docs/benchmarks.md] [--png-dir docs/benchmarks]

RESULTS_DIR holds what run.sh wrote:

    meta.json                      date, command, rounds, repetitions, timings
    gb_<binary>_<kind>_r<k>.json   Google Benchmark JSON (aggregates only), one
                                   file per binary, kind (single|multi), round
    mem_<binary>.json              memory mode
    callgrind/cg_<binary>.*        callgrind dumps of count mode

A figure is the median over rounds of Google Benchmark's median over
repetitions; the spread is the min..max of the round medians. All figures of
a report come from one run. Prints the main table on stdout.
Python 3 standard library only; plots through gnuplot when it is installed.
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

SHARENA = "sharena"
PROC_ALLOCS = ["jemalloc", "glibc", "tcmalloc", "mimalloc"]
SHARED_ALLOCS = ["boost_rbtree", "boost_node"]
OTHERS = PROC_ALLOCS + SHARED_ALLOCS
ALL = [SHARENA] + OTHERS
HOST = "glibc"          # the binary that runs sharena and Boost in full
LABEL = {
    "sharena": "sharena",
    "jemalloc": "jemalloc",
    "glibc": "glibc",
    "tcmalloc": "tcmalloc",
    "mimalloc": "mimalloc",
    "boost_rbtree": "Boost rbtree",
    "boost_node": "Boost node",
}
COLOR = {
    "sharena": "#7b2cbf", "jemalloc": "#009e73", "glibc": "#56b4e9", "tcmalloc": "#e69f00",
    "mimalloc": "#c9b400", "boost_rbtree": "#0072b2", "boost_node": "#d55e00", "live": "#9a9a9a",
}
PAIR_SIZES = [16, 32, 64, 128, 256, 512, 1024, 4096]
SMALL_PAIR_SIZES = [16, 32, 64, 128, 256, 512]
# (workload, parameter, counter), title, unit
ROWS = (
    [(("pair", str(s), "ns"), f"pair {s} B", "ns/pair") for s in PAIR_SIZES]
    + [
        (("batch", None, "ns"), "batch 10k, 8..512 B", "ns/op"),
        (("trace", None, "ns"), "CPython-shaped trace", "ns/op"),
        (("realloc", None, "ns"), "realloc 16 B→64 KiB", "ns/growth"),
        (("prodcons", None, "ns"), "producer→consumer (wall)", "ns/block"),
        (("procs", "1", "ns"), "1 worker, pair 64 B (wall)", "ns/pair"),
        (("procs", "2", "ns"), "2 workers, pair 64 B (wall)", "ns/pair/worker"),
        (("procs", "1", "cpu_ns"), "1 worker, pair 64 B (CPU time)", "ns/pair"),
        (("procs", "2", "cpu_ns"), "2 workers, pair 64 B (CPU time)", "ns/pair/worker"),
    ]
)
TIME_UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
MALLOC_FAMILY = re.compile(r"^(malloc|free|calloc|realloc|__libc_(malloc|free|calloc|realloc)|"
                           r"tc_(malloc|free|calloc|realloc)|mi_(malloc|free|calloc|realloc))(@.*)?$")


# ---------------------------------------------------------------- loading

def bench_key(run_name):
    """'procs/sharena/2/iterations:12/real_time' -> ('procs', 'sharena', '2')."""
    parts = [p for p in run_name.split("/") if ":" not in p and p not in ("real_time", "manual_time")]
    workload, alloc = parts[0], parts[1]
    param = parts[2] if len(parts) > 2 else None
    return workload, alloc, param


class Results:
    def __init__(self, d):
        self.dir = d
        self.meta = {}
        if os.path.exists(os.path.join(d, "meta.json")):
            with open(os.path.join(d, "meta.json")) as f:
                self.meta = json.load(f)
        # (binary, workload, alloc, param) -> {counter: {round: median}}
        self.samples = defaultdict(lambda: defaultdict(dict))
        self.errors = []
        self.contexts = {}
        self.loads = []             # 1-minute load average as each binary started
        for path in sorted(glob.glob(os.path.join(d, "gb_*_r*.json"))):
            m = re.match(r"gb_(\w+?)_(single|multi)_r(\d+)\.json$", os.path.basename(path))
            if not m:
                continue
            binary, rnd = m.group(1), int(m.group(3))
            try:
                with open(path) as f:
                    data = json.load(f)
            except (OSError, ValueError) as e:
                self.errors.append(f"{os.path.basename(path)}: unreadable ({e})")
                continue
            ctx = data.get("context", {})
            self.contexts.setdefault(binary, ctx)
            if ctx.get("load_avg"):
                self.loads.append(ctx["load_avg"][0])
            for b in data.get("benchmarks", []):
                if b.get("error_occurred"):
                    self.errors.append(f"{binary}: {b.get('run_name', b.get('name'))}: "
                                       f"{b.get('error_message', 'error')}")
                    continue
                if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                    continue
                run_name = b.get("run_name", b["name"])
                key = (binary,) + bench_key(run_name)
                unit = TIME_UNIT_NS[b.get("time_unit", "ns")]
                ops = b.get("ops", 1.0) or 1.0
                # Single-thread workloads: the thread's CPU time (the wall clock
                # also counts other processes of this shared machine);
                # real_time where the benchmark asked for it.
                t = b["real_time"] if "/real_time" in run_name else b["cpu_time"]
                value = b["ns_per_op"] if "ns_per_op" in b else t * unit / ops
                self.samples[key]["ns"][rnd] = value
                for c, name in (("alloc_ns", "alloc_ns"), ("free_ns", "free_ns"), ("cpu_ns_per_op", "cpu_ns")):
                    if c in b:
                        self.samples[key][name][rnd] = b[c]
        self.memory = []
        for path in sorted(glob.glob(os.path.join(d, "mem_*.json"))):
            try:
                with open(path) as f:
                    self.memory.extend(json.load(f))
            except (OSError, ValueError) as e:
                self.errors.append(f"{os.path.basename(path)}: unreadable ({e})")
        self.counts, self.malloc_calls = load_callgrind(os.path.join(d, "callgrind"))

    def by_round(self, binary, workload, alloc, param, counter="ns"):
        return self.samples.get((binary, workload, alloc, param), {}).get(counter, {})

    def rounds(self, binary, workload, alloc, param, counter="ns"):
        return [v for _, v in sorted(self.by_round(binary, workload, alloc, param, counter).items())]

    def binary_for(self, alloc):
        return alloc if alloc in PROC_ALLOCS else HOST

    def value(self, workload, alloc, param=None, counter="ns", binary=None):
        v = self.rounds(binary or self.binary_for(alloc), workload, alloc, param, counter)
        return statistics.median(v) if v else None

    def spread(self, workload, alloc, param=None, counter="ns", binary=None):
        v = self.rounds(binary or self.binary_for(alloc), workload, alloc, param, counter)
        return (min(v), max(v), len(v)) if v else None


def load_callgrind(d):
    """label -> instructions per op; label -> calls into the malloc family."""
    counts, calls = {}, {}
    for path in sorted(glob.glob(os.path.join(d, "cg_*"))):
        label, total, ncalls, cfn = None, None, 0, None
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("desc: Trigger: Client Request: "):
                    label = line.split("Client Request: ", 1)[1].strip()
                elif line.startswith("totals:") or line.startswith("summary:"):
                    total = int(line.split()[1])
                elif line.startswith("cfn="):
                    cfn = line[4:].strip()
                elif line.startswith("calls=") and cfn is not None:
                    if MALLOC_FAMILY.match(cfn):
                        ncalls += int(line.split("=", 1)[1].split()[0])
                    cfn = None
        if not label or total is None:
            continue
        m = re.match(r"(.*) ops=(\d+)$", label)
        if not m:
            continue
        name, ops = m.group(1), int(m.group(2))
        counts[name] = total / ops
        calls[name] = ncalls
    return counts, calls


# ---------------------------------------------------------------- formatting

def fmt(x):
    if x is None:
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(r):
    if r is None:
        return "–"
    return f"{r:.3g}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def mib(x):
    return f"{x / 1048576:.2f}"


def md_table(header, rows, align=None):
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- tables

def main_table(R):
    header = ["workload", "unit", "**sharena**"] + [LABEL[a] for a in OTHERS]
    rows = []
    for (workload, param, counter), title, unit in ROWS:
        s = R.value(workload, SHARENA, param, counter)
        row = [title, unit, f"**{fmt(s)}**"]
        for a in OTHERS:
            v = R.value(workload, a, param, counter)
            if v is None:
                row.append("–")
            else:
                row.append(f"{fmt(v)} ({fmt_ratio(ratio(s, v))})")
        rows.append(row)
    for counter, what in (("ns", "wall"), ("cpu_ns", "CPU time")):
        row = [f"2 workers ÷ 1 worker ({what})", "ratio"]
        for a in ALL:
            r = ratio(R.value("procs", a, "2", counter), R.value("procs", a, "1", counter))
            row.append(f"**{fmt_ratio(r)}**" if a == SHARENA else fmt_ratio(r))
        rows.append(row)
    return md_table(header, rows, ["---", "---"] + ["--:"] * (len(header) - 2))


def control_note(R):
    one, two = R.value("procs", "none", "1"), R.value("procs", "none", "2")
    if one is None or two is None:
        return ""
    c1, c2 = R.value("procs", "none", "1", "cpu_ns"), R.value("procs", "none", "2", "cpu_ns")
    cpu = f" (CPU time: {fmt(c1)} and {fmt(c2)}, 2 ÷ 1 = {fmt_ratio(ratio(c2, c1))})" if c1 and c2 else ""
    return (f"Machine control, `procs/none` (the same 1- and 2-worker harness, no allocator; each "
            f"iteration stores one byte): {fmt(one)} and {fmt(two)} ns per iteration by the wall "
            f"clock, 2 ÷ 1 = {fmt_ratio(two / one)}{cpu}. It shows how much two busy vCPUs of this "
            f"host slow each other (they may share a physical core) and how much other processes "
            f"took during the windows; the wall/CPU-time gap of each allocator shows the latter.")


def procs_by_round(R):
    """2 workers ÷ 1 worker in each round, where both ran in the same binary run."""
    header = ["allocator", "clock"]
    rows, nrounds = [], 0
    for a in [SHARENA, "none"] + OTHERS:
        b = R.binary_for(a) if a != "none" else HOST
        for counter, what in (("ns", "wall"), ("cpu_ns", "CPU time")):
            one = R.by_round(b, "procs", a, "1", counter)
            two = R.by_round(b, "procs", a, "2", counter)
            common = sorted(set(one) & set(two))
            if not common:
                continue
            nrounds = max(nrounds, max(common))
            cells = {r: fmt_ratio(two[r] / one[r]) for r in common if one[r]}
            label = "no allocator (control)" if a == "none" else LABEL[a]
            rows.append([label, what] + [cells.get(r, "–") for r in range(1, nrounds + 1)])
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + ["–"] * (width - len(r)) for r in rows]
    header += [f"round {i}" for i in range(1, width - 1)]
    return md_table(header, rows, ["---", "---"] + ["--:"] * (width - 2))


def spread_table(R):
    header = ["workload"] + [LABEL[a] for a in ALL]
    rows = []
    for (workload, param, counter), title, _ in ROWS:
        row = [title]
        for a in ALL:
            sp = R.spread(workload, a, param, counter)
            row.append("–" if sp is None else f"{fmt(sp[0])}–{fmt(sp[1])} ({sp[2]})")
        rows.append(row)
    return md_table(header, rows)


def batch_phase_table(R):
    header = ["allocator", "all ops", "alloc half", "free half", "sharena ÷ it (all ops)"]
    s = R.value("batch", SHARENA)
    rows = []
    for a in ALL:
        v = R.value("batch", a)
        if v is None:
            continue
        rows.append([LABEL[a], fmt(v), fmt(R.value("batch", a, counter="alloc_ns")),
                     fmt(R.value("batch", a, counter="free_ns")), fmt_ratio(ratio(s, v))])
    return md_table(header, rows)


def targets(R):
    lines = []

    def status(ok):
        return "met" if ok else "not met"

    rs = [ratio(R.value("pair", SHARENA, str(n)), R.value("pair", "jemalloc", str(n)))
          for n in SMALL_PAIR_SIZES]
    g = geomean(rs)
    if g is not None:
        worst = max(r for r in rs if r)
        lines.append(["small pair (16–512 B) vs jemalloc", "≤ 1.0",
                      f"{fmt_ratio(g)} geomean (worst {fmt_ratio(worst)})",
                      status(worst <= 1.0)])
    s, j = R.value("batch", SHARENA), R.value("batch", "jemalloc")
    if s and j:
        ref = ", ".join(f"{LABEL[a]} {fmt(R.value('batch', a))}" for a in ("tcmalloc", "mimalloc")
                        if R.value("batch", a))
        lines.append(["batch vs jemalloc, per op", "≤ 1.0; ~6 ns/op as tcmalloc/mimalloc",
                      f"{fmt_ratio(s / j)} ({fmt(s)} ns/op; {ref})", status(s / j <= 1.0)])
    sp = geomean([ratio(R.value("pair", "boost_rbtree", str(n)), R.value("pair", SHARENA, str(n)))
                  for n in SMALL_PAIR_SIZES])
    sb = ratio(R.value("batch", "boost_rbtree"), R.value("batch", SHARENA))
    if sp and sb:
        lines.append(["faster than Boost.Interprocess default heap (rbtree_best_fit)", "≥ 15×",
                      f"pair {sp:.1f}× (geomean 16–512 B), batch {sb:.1f}×",
                      status(min(sp, sb) >= 15)])
    r = ratio(R.value("procs", SHARENA, "2"), R.value("procs", SHARENA, "1"))
    rc = ratio(R.value("procs", SHARENA, "2", "cpu_ns"), R.value("procs", SHARENA, "1", "cpu_ns"))
    if r:
        m = ratio(R.value("procs", "none", "2"), R.value("procs", "none", "1"))
        text = f"wall clock {fmt_ratio(r)}"
        one = R.by_round(HOST, "procs", SHARENA, "1")
        two = R.by_round(HOST, "procs", SHARENA, "2")
        per = [fmt_ratio(two[k] / one[k]) for k in sorted(set(one) & set(two)) if one[k]]
        if len(per) > 1:
            text += f" (by round: {', '.join(per)})"
        if rc:
            text += f"; by the workers' CPU time {fmt_ratio(rc)}"
        if m:
            text += f" (no-allocator control, wall: {fmt_ratio(m)})"
        st = status(r <= 1.2)
        if rc and (r <= 1.2) != (rc <= 1.2):
            st = f"{status(r <= 1.2)} by the wall clock, {status(rc <= 1.2)} by CPU time"
        lines.append(["2 processes on one heap vs 1 (ns per pair per process)", "≤ 1.2", text, st])
    if not lines:
        return "_No sharena results in this run._"
    return md_table(["target", "goal", "measured", "status"], lines, ["---", "---", "---", "---"])


def check_table(R):
    header = ["binary (process allocator)", "sharena pair 64 B", "its allocator's pair 64 B",
              "sharena ÷ it", "sharena batch", "its allocator's batch", "sharena ÷ it"]
    rows = []
    for b in PROC_ALLOCS:
        sp = R.value("pair", SHARENA, "64", binary=b)
        sb = R.value("batch", SHARENA, binary=b)
        if sp is None and sb is None:
            continue
        p, q = R.value("pair", b, "64", binary=b), R.value("batch", b, binary=b)
        rows.append([f"bench_{b}", fmt(sp), fmt(p), fmt_ratio(ratio(sp, p)),
                     fmt(sb), fmt(q), fmt_ratio(ratio(sb, q))])
    return md_table(header, rows)


def instruction_table(R):
    if not R.counts:
        return "_No callgrind results in this run._"
    names = [(("pair", str(s)), f"pair {s} B", "Ir/pair") for s in PAIR_SIZES]
    names += [(("batch", None), "batch", "Ir/op"), (("trace", None), "CPython-shaped trace", "Ir/op")]
    header = ["workload", "unit"] + [LABEL[a] for a in ALL]
    rows = []
    for (workload, param), title, unit in names:
        row = [title, unit]
        for a in ALL:
            name = f"{workload}/{a}" + (f"/{param}" if param else "")
            c = R.counts.get(name)
            t = R.value(workload, a, param)
            row.append("–" if c is None else f"{c:.0f} · {fmt(t)} ns")
        rows.append(row)
    return md_table(header, rows, ["---", "---"] + ["--:"] * len(ALL))


def malloc_call_note(R):
    calls = {k: v for k, v in R.malloc_calls.items() if f"/{SHARENA}" in k}
    if not calls:
        return ""
    total = sum(calls.values())
    return (f"Calls from sharena's measured regions into the process allocator "
            f"(malloc, free, calloc, realloc), counted by callgrind: **{total}** over "
            f"{len(calls)} regions.")


def memory_tables(R):
    """(tables of committed bytes, table of sources, tables of the second figure)."""
    if not R.memory:
        return "_No memory results in this run._", "", ""
    by_alloc = {m["allocator"]: m for m in R.memory}
    order = [a for a in ALL if a in by_alloc]
    main, second = [], []
    for scen, title in (("batch", "Batch (10,000 blocks of 8..512 B)"),
                        ("fragment", "Fragmenting workload")):
        scs = {a: s for a in order for s in by_alloc[a]["scenarios"] if s["name"] == scen}
        if not scs:
            continue
        ref = scs[next(iter(scs))]["points"]
        header = ["allocator", "empty heap"] + [f"{p['label']} (live {mib(p['live'])})" for p in ref]
        rows, alt_rows = [], []
        for a, sc in scs.items():
            row = [LABEL[a], mib(sc["base_committed"])]
            for p in sc["points"]:
                cell = mib(p["committed"])
                if p["live"]:
                    cell += f" ({p['committed'] / p['live']:.2f}×)"
                row.append(cell)
            rows.append(row)
            if not by_alloc[a]["alt_source"].startswith("none"):
                alt_rows.append([LABEL[a], mib(sc["base_alt"])] + [mib(p["alt"]) for p in sc["points"]])
        main.append(f"#### {title}\n\n" + md_table(header, rows))
        second.append(f"{title}:\n\n" + md_table(header, alt_rows))
    src = md_table(["allocator", "committed is", "second figure", "release call"],
                   [[LABEL[a], by_alloc[a]["committed_source"], by_alloc[a]["alt_source"],
                     by_alloc[a]["release_call"]] for a in order], ["---"] * 4)
    return "\n\n".join(main), src, "\n\n".join(second)


# ---------------------------------------------------------------- machine

def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    info = {}
    for line in run(["lscpu"]).splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    rows = [
        ["CPU", info.get("Model name", "?")],
        ["CPUs", f"{info.get('CPU(s)', '?')} ({info.get('Core(s) per socket', '?')} cores per socket, "
                 f"{info.get('Thread(s) per core', '?')} thread(s) per core)"],
        ["hypervisor", info.get("Hypervisor vendor", "none")],
        ["caches", ", ".join(f"{k} {info[k]}" for k in ("L1d cache", "L2 cache", "L3 cache") if k in info)],
        ["kernel", run(["uname", "-r"]).strip()],
    ]
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            rows.append(["Debian", f.read().strip()])
    cc = run(["c++", "--version"]).splitlines()
    if cc:
        rows.append(["compiler", cc[0]])
    return md_table(["", ""], rows, ["---", "---"])


PACKAGES = ["libc6", "libjemalloc2", "libjemalloc-dev", "libtcmalloc-minimal4", "libgoogle-perftools-dev",
            "libmimalloc2.0", "libmimalloc-dev", "libboost1.74-dev", "libbenchmark-dev", "valgrind",
            "gnuplot-nox", "g++", "cmake"]


def packages():
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"] + PACKAGES)
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    return md_table(["package", "version"], rows, ["---", "---"]) if rows else "_dpkg-query unavailable_"


# ---------------------------------------------------------------- plots

def gnuplot(script, png_dir, name):
    if not shutil.which("gnuplot"):
        return None
    path = os.path.join(png_dir, name)
    full = f'set terminal pngcairo size 900,520 font "DejaVu Sans,10"\nset output "{path}"\n' + script
    r = subprocess.run(["gnuplot"], input=full, text=True, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write(f"gnuplot {name}: {r.stderr}\n")
        return None
    return name


def write_dat(png_dir, name, lines):
    path = os.path.join(png_dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def plots(R, png_dir):
    os.makedirs(png_dir, exist_ok=True)
    made = []
    tmp = os.path.join(png_dir, ".data")
    os.makedirs(tmp, exist_ok=True)
    present = [a for a in ALL if any(R.value("pair", a, str(s)) for s in PAIR_SIZES)]
    # 1. pair cost against size
    if present:
        lines = ["# size " + " ".join(present)]
        for s in PAIR_SIZES:
            lines.append(f"{s} " + " ".join(f"{R.value('pair', a, str(s)) or 'NaN'}" for a in present))
        dat = write_dat(tmp, "pair.dat", lines)
        plot = ", ".join(f'"{dat}" using 1:{i + 2} with linespoints lw 2 pt 7 ps 0.8 '
                         f'lc rgb "{COLOR[a]}" title "{LABEL[a]}"' for i, a in enumerate(present))
        made.append(gnuplot(f"""set title "malloc+free pair (median, ns per pair; log scales)"
set logscale xy 2
set xlabel "block size (bytes)"
set ylabel "ns per pair"
set key outside right
set grid
set xrange [12:5600]
set xtics (16,32,64,128,256,512,1024,4096)
plot {plot}
""", png_dir, "pair.png"))
    # 2. the other workloads, as clustered bars
    work = [("batch", None, "batch"), ("trace", None, "trace"), ("realloc", None, "realloc"),
            ("prodcons", None, "prod→cons"), ("procs", "1", "1 worker"), ("procs", "2", "2 workers")]
    if present:
        lines = []
        for w, p, t in work:
            lines.append(f'"{t}" ' + " ".join(f"{R.value(w, a, p) or 'NaN'}" for a in present))
        dat = write_dat(tmp, "workloads.dat", lines)
        cols = ", ".join((f'"{dat}" using {i + 2}:xtic(1)' if i == 0 else f'"" using {i + 2}')
                         + f' lc rgb "{COLOR[a]}" title "{LABEL[a]}"' for i, a in enumerate(present))
        made.append(gnuplot(f"""set title "Workloads (median ns per op, block, growth or pair; log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set ylabel "ns"
set key outside right
set grid ytics
plot {cols}
""", png_dir, "workloads.png"))
    # 3. memory, fragmenting workload
    by_alloc = {m["allocator"]: m for m in R.memory}
    order = [a for a in ALL if a in by_alloc]
    if order:
        first = next(s for s in by_alloc[order[0]]["scenarios"] if s["name"] == "fragment")
        labels = [p["label"] for p in first["points"]]
        lines = []
        for i, l in enumerate(labels):
            vals = []
            for a in order:
                sc = next(s for s in by_alloc[a]["scenarios"] if s["name"] == "fragment")
                vals.append(f"{sc['points'][i]['committed'] / 1048576:.3f}")
            tic = l.replace(" ", "\\n", 1)
            lines.append(f'"{tic}" {first["points"][i]["live"] / 1048576:.3f} ' + " ".join(vals))
        dat = write_dat(tmp, "memory.dat", lines)
        cols = [f'"{dat}" using 2:xtic(1) lc rgb "{COLOR["live"]}" title "live bytes"'] + \
               [f'"" using {i + 3} lc rgb "{COLOR[a]}" title "{LABEL[a]}"' for i, a in enumerate(order)]
        made.append(gnuplot(f"""set title "Fragmenting workload: MiB committed (growth since start) against live"
set bmargin 4
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set ylabel "MiB"
set key outside right
set grid ytics
plot {", ".join(cols)}
""", png_dir, "memory.png"))
    shutil.rmtree(tmp, ignore_errors=True)
    return [m for m in made if m]


# ---------------------------------------------------------------- the report

def list_table(d):
    """The shared list's table from list.json and cpython_sl.json, or ''."""
    path = os.path.join(d, "list.json")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        gb = json.load(f)
    med = {}
    for b in gb.get("benchmarks", []):
        if b.get("aggregate_name", "median") != "median":
            continue
        name = b.get("run_name", b["name"])
        med[name] = b["real_time"] * TIME_UNIT_NS.get(b.get("time_unit", "ns"), 1.0)
    py = {}
    pyver = "?"
    ppath = os.path.join(d, "cpython_sl.json")
    if os.path.exists(ppath):
        try:
            with open(ppath) as f:
                pj = json.load(f)
            py, pyver = pj.get("ns", {}), pj.get("python", "?")
        except (OSError, ValueError):
            pass
    rows = []
    for op, title in (("get_int", "get of an int"), ("get_str16", "get of a 16-byte str (+ release)"),
                      ("set_int", "set of an int"), ("set_str16", "set of a 16-byte str")):
        one = med.get(f"BM_list/{op}/procs:1")
        two = med.get(f"BM_list/{op}/procs:2")
        p = py.get(op)
        rows.append([title, fmt(one) if one else "–", fmt(two) if two else "–",
                     fmt(p) if p else "–", fmt_ratio(ratio(one, p)) if one and p else "–"])
    for key, title in (("BM_list_append", "append of an int"), ("BM_list_count_1000", "count over 1000 items")):
        v = med.get(key)
        rows.append([title, fmt(v) if v else "–", "–", "–", "–"])
    table = md_table(["operation", "sharena, 1 process (ns)", "sharena, 2 processes (ns, per op of the measured one)",
                      f"CPython {pyver} ShareableList (ns)", "sharena ÷ CPython"], rows)
    goals = []
    gi, ss = med.get("BM_list/get_int/procs:1"), med.get("BM_list/set_str16/procs:1")
    if gi:
        goals.append(f"get of an int: {fmt(gi)} ns (goal ≤ 10 ns: {'met' if gi <= 10 else 'not met'})")
    if ss:
        goals.append(f"set of a 16-byte str: {fmt(ss)} ns (goal ≤ 100 ns: {'met' if ss <= 100 else 'not met'})")
    return table + ("\n\n" + "; ".join(goals) + "." if goals else "")


PY_OPS = (("get_int", "get of a small int `sl[0]`"), ("set_int", "set of a small int `sl[0] = 7`"),
          ("get_str16", "get of a 16-byte str `sl[1]`"), ("set_str16", "set of a 16-byte str `sl[1] = s`"),
          ("len", "`len(sl)`"), ("iter_1000", "iteration over 1000 items"),
          ("pickle_dumps", "`pickle.dumps(sl)`"), ("pickle_loads", "`pickle.loads(p)` (attach; a list: copy)"))


def python_table(d):
    """sharena.ShareableList from Python (python_sl.json), or ''."""
    path = os.path.join(d, "python_sl.json")
    if not os.path.exists(path):
        return ""
    try:
        with open(path) as f:
            pj = json.load(f)
        ns = pj["ns"]
    except (OSError, ValueError, KeyError):
        return ""
    rows = []
    for op, title in PY_OPS:
        a, b, c = (ns.get(k, {}).get(op) for k in ("sharena", "stdlib", "list"))
        rows.append([title, fmt(a) if a else "–", fmt(b) if b else "–", fmt(c) if c else "–",
                     fmt_ratio(ratio(b, a)) if a and b else "–", fmt_ratio(ratio(a, c)) if a and c else "–"])
    table = md_table(["operation", "sharena (ns)", "stdlib ShareableList (ns)", "list (ns)",
                      "stdlib ÷ sharena", "sharena ÷ list"], rows)
    goals = []
    for op, title in PY_OPS[:4]:
        a, b = ns.get("sharena", {}).get(op), ns.get("stdlib", {}).get(op)
        if a and b:
            goals.append(f"{title.split(' `')[0]}: {b / a:.0f}× the stdlib (goal ≥ 30×: "
                         f"{'met' if b / a >= 30 else 'not met'})")
    a, c = ns.get("sharena", {}).get("get_int"), ns.get("list", {}).get("get_int")
    if a and c:
        goals.append(f"get of a small int: {a / c:.2f}× a list (goal ≤ 2×: {'met' if a / c <= 2 else 'not met'})")
    head = (f"Python {pj.get('python', '?')} (`{pj.get('executable', '?')}`), {pj.get('rounds', '?')} rounds; "
            "median ns per operation, `timeit`'s loop included alike for every kind.")
    return head + "\n\n" + table + ("\n\n" + "; ".join(goals) + "." if goals else "")


def write_report(R, md_path, png_dir):
    meta = R.meta
    pngs = plots(R, png_dir) if png_dir else []
    rel = os.path.relpath(png_dir, os.path.dirname(os.path.abspath(md_path))) if png_dir else ""
    mem, mem_src, mem_alt = memory_tables(R)
    threads_note = ("For glibc, jemalloc, tcmalloc and mimalloc the two workers of `procs` and the "
                    "consumer of `prodcons` are **threads** of one process (their heaps are private); "
                    "for sharena and Boost they are **processes** attached to one shared heap.")
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/report.py from one run of bench/run.sh; do not edit by hand. -->",
        "",
        f"Run of **{meta.get('date', '?')}**: `{meta.get('command', 'bench/run.sh')}`, "
        f"{meta.get('rounds', '?')} rounds × {meta.get('repetitions', '?')} repetitions "
        f"(min time {meta.get('min_time', '?')} s each), single-worker workloads pinned to CPU "
        f"{meta.get('cpu', '?')}; the main job took {meta.get('elapsed_s', '?')} s "
        f"(build excluded). Workloads and method: [bench/README.md](../bench/README.md).",
        "",
        "Every figure is the median over rounds of Google Benchmark's median over repetitions; "
        "rounds rotate the order of the binaries, so slow and fast periods of this shared "
        "machine fall on every allocator. All figures and ratios come from this one run. "
        "Time base: the single-thread workloads (pair, batch, trace, realloc) use the benchmark "
        "thread's CPU time, which other processes of this shared machine cannot inflate; "
        "producer→consumer uses the wall clock (it measures a pipeline); the 1- and 2-worker "
        "rows give both.",
        "",
        "## Main table",
        "",
        "Each cell: that allocator's median; in parentheses **sharena ÷ it** (below 1: sharena "
        "is faster). Lower is better. " + threads_note,
        "",
        main_table(R),
        "",
        control_note(R),
        "",
        "## Targets",
        "",
        "The report states the targets; it asserts nothing.",
        "",
        targets(R),
        "",
    ]
    lt = list_table(R.dir)
    if lt:
        lines += [
            "## The shared list",
            "",
            "Median ns per operation (`bench/list/list_bench.cpp`, Google Benchmark, wall clock), "
            "on a list of 1000 items. \"2 processes\": a second process does the same operation "
            "on the same list in a loop while the first is measured. CPython's "
            "`multiprocessing.shared_memory.ShareableList` timed with `timeit` in the same run "
            "(`bench/list/cpython_sl.py`), for scale. Reads of None, bool, int and float take no "
            "lock (a seqlock); a get of a str takes the list's lock and a reference (a lease).",
            "",
            lt,
            "",
        ]
    pt = python_table(R.dir)
    if pt:
        lines += [
            "## The shared list from Python",
            "",
            "`sharena.ShareableList` (the extension module, `python/`) against the stdlib's "
            "`multiprocessing.shared_memory.ShareableList` and a plain `list`, each holding the same "
            "1000 items, timed in one interpreter with the kinds interleaved "
            "(`bench/list/python_bench.py`).",
            "",
            pt,
            "",
        ]
    if "pair.png" in pngs:
        lines += ["![pair](" + os.path.join(rel, "pair.png") + ")", ""]
    if "workloads.png" in pngs:
        lines += ["![workloads](" + os.path.join(rel, "workloads.png") + ")", ""]
    lines += [
        "## Batch: allocation and free halves",
        "",
        "ns per op of each half of a round (timed inside the round).",
        "",
        batch_phase_table(R),
        "",
        "## Instructions (callgrind)",
        "",
        "Instructions executed per op, counted by `valgrind --tool=callgrind` in count mode "
        "(fixed iteration counts, warmed up, only the measured region collected): the noise-free "
        "column. Each cell: instructions · median ns from the main table.",
        "",
        instruction_table(R),
        "",
        malloc_call_note(R),
        "",
        "## Memory",
        "",
        "MiB committed, as growth since the scenario started (column \"empty heap\": what "
        "was committed before it); in parentheses committed ÷ live. Below 1×: the allocator "
        "reused memory it had committed before the scenario started.",
        "",
        mem,
        "",
    ]
    if "memory.png" in pngs:
        lines += ["![memory](" + os.path.join(rel, "memory.png") + ")", ""]
    lines += [
        "How each figure is measured:",
        "",
        mem_src,
        "",
        "The second figure (MiB, same layout), a cross-check of the first:",
        "",
        mem_alt,
        "",
        "## sharena next to each process allocator",
        "",
        "sharena's pair 64 B and batch measured again inside every binary, interleaved with "
        "that binary's own allocator: sharena does not call malloc on its paths, so its "
        "figures should not depend on the allocator linked next to it (differences here are "
        "the machine's noise), and the ratio inside one process is the least noisy comparison.",
        "",
        check_table(R),
        "",
        "## Two workers against one, round by round",
        "",
        "2 ÷ 1 within each round (both measured in the same binary run, minutes apart at "
        "most). Rounds in which the control stays near 1 show the allocator's own scaling; "
        "in the others the machine was busy.",
        "",
        procs_by_round(R),
        "",
        "## Spread",
        "",
        "min–max of the round medians (number of rounds).",
        "",
        spread_table(R),
        "",
        "## Machine and packages",
        "",
        machine(),
        "",
        packages(),
        "",
    ]
    if R.errors:
        lines += ["## Errors in this run", ""] + [f"- {e}" for e in R.errors] + [""]
    if meta.get("phases"):
        lines += ["## Timings of the run", "",
                  md_table(["phase", "seconds"], [[k, v] for k, v in meta["phases"].items()]), ""]
    if R.loads:
        lines += [f"1-minute load average as each benchmark binary started: min {min(R.loads):.2f}, "
                  f"median {statistics.median(R.loads):.2f}, max {max(R.loads):.2f} "
                  f"({len(R.loads)} starts; 2 CPUs). Waits for an idle machine: `quiet.log` "
                  f"in the results directory.", ""]
    lib = {c.get("library_build_type") for c in R.contexts.values()} - {None}
    if lib:
        lines += [f"Debian's Google Benchmark library reports its own build type as "
                  f"`{', '.join(sorted(lib))}`; the measured loops are inline code of the benchmarks "
                  f"(built `-O3`), so this does not touch the figures.", ""]
    with open(md_path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--md", default=None, help="write the report here")
    ap.add_argument("--png-dir", default=None, help="write the plots here")
    args = ap.parse_args()
    R = Results(args.results)
    if args.md:
        write_report(R, args.md, args.png_dir)
    print(main_table(R))
    print()
    note = control_note(R)
    if note:
        print(note)
        print()
    print(targets(R))
    lt = list_table(R.dir)
    if lt:
        print()
        print("shared list (ns per operation):")
        print(lt)
    pt = python_table(R.dir)
    if pt:
        print()
        print("shared list from Python (ns per operation):")
        print(pt)
    if R.errors:
        print("\nerrors:", *R.errors, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
