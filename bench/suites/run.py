#!/usr/bin/env python3
"""Run the standard allocator suites under several allocators, in rounds.

    bench/suites/run.py [--suites DIR] [--sharena LIB] [--rounds N]
                        [--allocators sys,je,tc,mi,sharena] [--only PROG,...]
                        [--out results.csv] [--report docs/benchmarks]

The programs are those bench/suites/build.sh built from the user's
checkouts of mimalloc-bench and mimalloc. Each (program, allocator) pair runs
once per round, allocators in turn within a round, so that drifts of a noisy
machine fall on all of them. Every run records its wall time, its peak
resident set (ru_maxrss, from wait4) and whether it was correct: exit status
0 and, for the deterministic programs, output identical to the same round's
glibc run (timing lines aside). Programs that measure throughput over a fixed
time report a "relative time" as mimalloc-bench does (larson, rptest,
xmalloc-test, glibc-thread); the time column is then that figure.

With --report DIR, writes DIR/suites.md (tables of medians, geometric means)
and DIR/suites-time.png, DIR/suites-rss.png (gnuplot, when installed).
Python 3 standard library only.
"""
import argparse
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
ALLOCATORS = {
    "sys": None,
    "je": LIBDIR + "/libjemalloc.so.2",
    "tc": LIBDIR + "/libtcmalloc_minimal.so.4",
    "mi": LIBDIR + "/libmimalloc.so.2",
    "sharena": os.path.join(ROOT, "build/release/malloc/libsharena-malloc.so"),
}
NAMES = {"sys": "glibc", "je": "jemalloc", "tc": "tcmalloc", "mi": "mimalloc", "sharena": "sharena"}

# name: (argv, stdin file or None, check, metric)
#   check  "same": output identical to glibc's (lines naming a time, a start
#          or an end dropped);
#          "exit": exit status 0 only
#   metric None: wall time; else a function of the output giving a time
def _rel(pattern, scale=None):
    def f(out):
        m = re.search(pattern, out)
        if not m:
            return None
        v = float(m.group(1))
        return scale / v if scale else v
    return f

# The arguments are mimalloc-bench's (bench.sh) for 2 threads, some scaled
# down so that a round of all five allocators fits a 2-core machine: cfrac
# factors a 33-digit number (bench.sh: 44 digits), larson runs 2 s (5),
# xmalloc-test 2 s (5), cache-scratch and cache-thrash 500000 rounds
# (2000000).
PROGRAMS = {
    "cfrac": (["./cfrac", "175451865205073170563711388363279"], None, "same", None),
    "espresso": (["./espresso", "largest.espresso"], None, "same", None),
    "barnes": (["./barnes"], "barnes.input", "same", None),
    "larsonN": (["./larson", "2", "8", "1000", "5000", "100", "4141", "2"], None, "exit",
                _rel(r"relative time: ([0-9.]+)")),
    "mstressN": (["./mstress", "2", "50", "25"], None, "exit", None),
    "rptestN": (["./rptest", "2", "0", "1", "2", "500", "1000", "100", "8", "16000"], None, "exit",
                _rel(r"\.\.\.([0-9]+) memory ops", 2000000.0)),
    "alloc-test1": (["./alloc-test", "1"], None, "exit", None),
    "xmalloc-testN": (["./xmalloc-test", "-w", "2", "-t", "2", "-s", "64"], None, "exit",
                      _rel(r"rtime: ([0-9.]+)")),
    "cache-scratch1": (["./cache-scratch", "1", "1000", "1", "500000", "2"], None, "exit", None),
    "cache-scratchN": (["./cache-scratch", "2", "1000", "1", "500000", "2"], None, "exit", None),
    "cache-thrashN": (["./cache-thrash", "2", "1000", "1", "500000", "2"], None, "exit", None),
    "glibc-simple": (["./glibc-simple"], None, "exit", None),
    "glibc-thread": (["./glibc-thread", "2"], None, "exit", _rel(r"^([0-9.]+)", 1e9)),
    "malloc-large": (["./malloc-large"], None, "exit", None),
    "test-stress": (["./test-stress", "4", "50", "20"], None, "exit", None),
}


def run_one_rusage(suites, prog, alloc_lib, timeout):
    """Run under /usr/bin/time, as mimalloc-bench does: the peak RSS is then
    the program's own, not inflated by a large parent's pages (ru_maxrss
    counts a process's memory from before its exec)."""
    argv, stdin, _, _ = PROGRAMS[prog]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    tfile = os.path.join(suites, ".time.out")
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", tfile, "/usr/bin/env"]
    if alloc_lib:
        cmd.append("LD_PRELOAD=" + alloc_lib)
    cmd += argv
    fin = open(os.path.join(suites, stdin), "rb") if stdin else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=suites, env=env, stdin=fin, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        rc = -9
    wall = time.monotonic() - t0
    if stdin:
        fin.close()
    rss = 0
    try:
        with open(tfile) as f:
            last = f.read().strip().splitlines()[-1].split()
            wall, rss = float(last[0]), int(last[1])
    except (OSError, ValueError, IndexError):
        pass
    return wall, rss, rc, out.decode("latin-1")


TIMING = re.compile(r"time|start|end", re.I)  # barnes: COMPUTESTART, TRACKTIME, ...


def normalise(out):
    return "\n".join(l for l in out.splitlines() if not TIMING.search(l))


def measure(args):
    allocs = [a for a in args.allocators.split(",") if a]
    progs = [p for p in (args.only.split(",") if args.only else PROGRAMS)]
    libs = dict(ALLOCATORS)
    libs["sharena"] = args.sharena
    for a in allocs:
        if libs[a] and not os.path.exists(libs[a]):
            sys.exit(f"run.py: {NAMES[a]} not found at {libs[a]}")
    rows = []
    with open(args.out, "w", newline="") as f:
        wcsv = csv.writer(f)
        wcsv.writerow(["program", "allocator", "round", "seconds", "rss_kb", "correct", "note"])
        for rnd in range(1, args.rounds + 1):
            for prog in progs:
                ref = None
                order = ["sys"] + [a for a in allocs if a != "sys"] if "sys" in allocs else allocs
                for a in order:
                    wall, rss, rc, out = run_one_rusage(args.suites, prog, libs[a], args.timeout)
                    _, _, check, metric = PROGRAMS[prog]
                    note = ""
                    ok = rc == 0
                    if not ok:
                        note = f"exit {rc}"
                    if a == "sys":
                        ref = normalise(out)
                    elif ok and check == "same" and ref is not None and normalise(out) != ref:
                        ok, note = False, "output differs from glibc's"
                    t = wall
                    if metric and ok:
                        m = metric(out)
                        if m is None:
                            ok, note = False, "no result line"
                        else:
                            t = m
                    row = [prog, a, rnd, f"{t:.4f}", rss, int(ok), note]
                    wcsv.writerow(row)
                    f.flush()
                    rows.append(row)
                    print(f"round {rnd} {prog:15s} {NAMES[a]:9s} {t:9.3f} s {rss:9d} KiB "
                          f"{'ok' if ok else 'FAILED ' + note}", flush=True)
    return rows


def sources(csv_path):
    """The checkouts' commits: build.sh's SOURCES beside the results, or a
    copy named like them (results.csv -> results-sources.txt)."""
    for path in (os.path.splitext(csv_path)[0] + "-sources.txt",
                 os.path.join(os.path.dirname(csv_path), "SOURCES")):
        try:
            with open(path) as f:
                return ", ".join(f"{l.split()[0]} at `{l.split()[1][:12]}`" for l in f if l.strip())
        except OSError:
            pass
    return "sources not recorded"


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def report(csv_path, outdir):
    data = {}
    correct = {}
    progs, allocs = [], []
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            p, a = r["program"], r["allocator"]
            if p not in progs:
                progs.append(p)
            if a not in allocs:
                allocs.append(a)
            d = data.setdefault((p, a), {"t": [], "rss": []})
            ok = r["correct"] == "1"
            correct[(p, a)] = correct.get((p, a), True) and ok
            if ok:
                d["t"].append(float(r["seconds"]))
                d["rss"].append(int(r["rss_kb"]))
    med = {k: (statistics.median(v["t"]) if v["t"] else None,
               statistics.median(v["rss"]) if v["rss"] else None) for k, v in data.items()}
    os.makedirs(outdir, exist_ok=True)
    lines = ["## The standard suites", "",
             "mimalloc-bench's self-contained programs and mimalloc's `test-stress`, each run "
             "unchanged under every allocator with `LD_PRELOAD` (glibc: none), by "
             "`bench/suites/run.py` from checkouts built by `bench/suites/build.sh` "
             f"({sources(csv_path)}). Correct: exit status 0 and, for cfrac, espresso and barnes, "
             "output identical to glibc's; `test-stress` checks every block's contents itself. "
             "larson, rptest, xmalloc-test and glibc-thread run for a fixed time: their figure is "
             "mimalloc-bench's relative time (work done, inverted). sharena is "
             "`build/release/malloc/libsharena-malloc.so` in its default private mode.", "",
             "![time relative to glibc](benchmarks/suites-time.png)", "",
             "![peak RSS relative to glibc](benchmarks/suites-rss.png)", ""]
    head = "| program | " + " | ".join(NAMES[a] for a in allocs) + " |"
    sep = "| --- |" + " ---: |" * len(allocs)
    lines.append("Time (median over rounds, seconds; relative to glibc in brackets; "
                 "FAIL = a run was not correct):\n")
    lines += [head, sep]
    rel = {a: [] for a in allocs}
    for p in progs:
        base = med.get((p, "sys"), (None, None))[0]
        cells = []
        for a in allocs:
            t = med.get((p, a), (None, None))[0]
            if not correct.get((p, a), False) or t is None:
                cells.append("FAIL")
                continue
            r = t / base if base else None
            if r:
                rel[a].append(r)
            cells.append(f"{t:.3f}" + (f" ({r:.2f})" if r else ""))
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("| **geometric mean, relative to glibc** | " +
                 " | ".join(f"**{geomean(rel[a]):.3f}**" for a in allocs) + " |")
    lines.append("\nPeak resident set (median, MiB; relative to glibc in brackets):\n")
    lines += [head, sep]
    rrel = {a: [] for a in allocs}
    for p in progs:
        base = med.get((p, "sys"), (None, None))[1]
        cells = []
        for a in allocs:
            m = med.get((p, a), (None, None))[1]
            if not correct.get((p, a), False) or m is None:
                cells.append("FAIL")
                continue
            r = m / base if base else None
            if r:
                rrel[a].append(r)
            cells.append(f"{m / 1024:.1f}" + (f" ({r:.2f})" if r else ""))
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("| **geometric mean, relative to glibc** | " +
                 " | ".join(f"**{geomean(rrel[a]):.3f}**" for a in allocs) + " |")
    ncorrect = sum(1 for p in progs if correct.get((p, "sharena"), False))
    lines.append(f"\nCorrect under sharena: {ncorrect} of {len(progs)} programs.")
    notes = os.path.join(outdir, "suites-notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", f.read().rstrip()]
    with open(os.path.join(outdir, "suites.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(progs, allocs, med, correct, outdir)


def plot(progs, allocs, med, correct, outdir):
    if not shutil.which("gnuplot"):
        print("run.py: gnuplot not installed; no plot", file=sys.stderr)
        return
    for what, idx, fname, title in ((0, 0, "suites-time.png", "time relative to glibc (lower is better)"),
                                    (1, 1, "suites-rss.png", "peak RSS relative to glibc (lower is better)")):
        dat = os.path.join(outdir, fname + ".dat")
        with open(dat, "w") as f:
            f.write("program " + " ".join(NAMES[a] for a in allocs) + "\n")
            for p in progs:
                base = med.get((p, "sys"), (None, None))[idx]
                vals = []
                for a in allocs:
                    v = med.get((p, a), (None, None))[idx]
                    vals.append(f"{v / base:.4f}" if base and v and correct.get((p, a)) else "NaN")
                f.write(p + " " + " ".join(vals) + "\n")
        script = f"""
set terminal pngcairo size 1200,520 noenhanced
set output '{os.path.join(outdir, fname)}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top left
set grid ytics
set yrange [0:*]
set xtics rotate by -35
set ylabel 'relative to glibc'
plot for [i=2:{len(allocs) + 1}] '{dat}' using i:xtic(1) title columnhead
"""
        subprocess.run(["gnuplot"], input=script.encode(), check=False)
        os.remove(dat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default=os.path.join(ROOT, "build/suites"))
    ap.add_argument("--sharena", default=ALLOCATORS["sharena"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--allocators", default="sys,je,tc,mi,sharena")
    ap.add_argument("--only", default="")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out", default=os.path.join(ROOT, "build/suites/results.csv"))
    ap.add_argument("--report", default="")
    ap.add_argument("--report-only", action="store_true", help="tables and plots from --out")
    args = ap.parse_args()
    if not args.report_only:
        measure(args)
    if args.report:
        report(args.out, args.report)


if __name__ == "__main__":
    main()
