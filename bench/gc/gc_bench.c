/* bench_gc: sharena's cycle collector on the seeded graphs of
 * include/sharena/gc.h, the same graphs bench/gc/cpython_gc.py builds in
 * CPython (bench/run.sh runs both in one run; bench/report.py sets them
 * side by side). Public API only.
 *
 *   bench_gc [--sizes=100000,1000000] [--trials=3] [--seed=42]
 *            [--young-old=0,100000,1000000] [--growth=1000000]
 *            [--churn=1000000] [--churn-live=100000] [--churn-rate=50] [--churn-cycle=10]
 *
 * full:  for each graph and n, trials times: a fresh private heap with
 *        automatic collection off, the graph built, then a full collection
 *        timed (first: objects in generation 0), and for the graphs with a
 *        live part a second one (steady: everything in generation 2).
 *        Medians of the call's time, and of the pause and time to stop that
 *        shr_gc_result_t reports. Then the same graph in another fresh heap,
 *        collected by the backup mark-sweep (shr_gc_collect_with,
 *        SHR_GC_MARK_SWEEP): its median time and pause. Then again in a heap
 *        that selects Bacon and Rajan's algorithm before the build
 *        (shr_gc_set_algorithm: the build's decrefs buffer the roots):
 *        the median build time, collection time and pause, and the
 *        candidates it examined (bacon_rajan_*).
 * young: n_old live_graph nodes moved to generation 2, then 2,000 fresh
 *        garbage nodes (1,000 rings of 2) and collect(0), trials + 1 times
 *        (the first dropped); medians.
 * growth: a live_graph of --growth=N nodes grown one node at a time with
 *        the same draws (each new node stored into its parent at once, then
 *        the extra edges), automatic collection on at the heap's default
 *        thresholds; the time in the collector and the longest pause from
 *        shr_gc_get_stats (the world stopped), and from the callbacks
 *        (start to stop in the collecting thread, what CPython's side
 *        measures). --growth=0 skips it.
 * churn: shr_graph_build_churn's stream of --churn=N objects (--churn-live=S
 *        table slots, --churn-rate=P percent cyclic garbage in rings of
 *        --churn-cycle=L) with automatic collection on at the default
 *        thresholds: every collection's pause and call time (callbacks),
 *        their median, p99 and max, the time in the collector, and 20
 *        samples of the objects in the heap and the bytes in use as the
 *        stream goes (sampling time excluded from the totals). --churn=0
 *        skips it.
 * stop:  time to stop the world against the number of processes
 *        (--stop-procs=0,1,2,4,8): k attached processes set list items in a
 *        loop (each set passes the gate) while this one runs 40 collections
 *        of generation 0 on a small heap; the median and longest time to
 *        stop. Then with one more process stopped by SIGSTOP between two
 *        sets (outside the gate: the world stops without it), and one
 *        stopped inside a gated call (a visit of shr_list_get_with, holding
 *        the list's lock: the collection times out after
 *        SHARENA_GC_STOP_TIMEOUT_MS, set here to 200, and changes nothing). --stop-procs= (empty) skips it.
 * One JSON document on stdout, progress on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gc_common.h"

static int64_t collect(shr_heap_t *h, int gen, shr_gc_result_t *r)
{
    *r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect(h, gen, r);
    if (n < 0)
        die("shr_gc_collect", n);
    return n;
}

#define MAXT 32

static void full(int kind, uint64_t n, uint64_t seed, int trials, int first_row)
{
    uint64_t first[MAXT], fpause[MAXT], fttsp[MAXT], steady[MAXT], spause[MAXT], build[MAXT], ms[MAXT],
        mspause[MAXT], br[MAXT], brpause[MAXT], brbuild[MAXT];
    int64_t ms_found = 0, br_found = 0;
    uint64_t br_cand = 0;
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_gc_result_t r;
    int64_t found = 0;
    uint64_t cand = 0, scand = 0;
    int has_steady = 0;
    fprintf(stderr, "bench_gc: %s n=%llu\n", shr_graph_name(kind), (unsigned long long)n);
    for (int t = 0; t < trials; t++) {
        shr_heap_t *h = fresh_heap();
        shr_ref_t root;
        uint64_t t0 = now_ns();
        int rc = shr_graph_build(h, kind, n, seed, &root, &gi);
        if (rc)
            die("shr_graph_build", rc);
        build[t] = now_ns() - t0;
        found = collect(h, 2, &r);
        first[t] = r.total_ns;
        fpause[t] = r.pause_ns;
        fttsp[t] = r.ttsp_ns;
        cand = r.candidates;
        if (root.off) {
            collect(h, 2, &r);
            steady[t] = r.total_ns;
            spause[t] = r.pause_ns;
            scand = r.candidates;
            has_steady = 1;
            shr_obj_release(h, root);
        }
        shr_heap_close(h);
        /* The same graph again, collected by the backup mark-sweep. */
        h = fresh_heap();
        if ((rc = shr_graph_build(h, kind, n, seed, &root, &gi)) != 0)
            die("shr_graph_build", rc);
        r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
        ms_found = shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, &r);
        if (ms_found < 0)
            die("shr_gc_collect_with(SHR_GC_MARK_SWEEP)", ms_found);
        ms[t] = r.total_ns;
        mspause[t] = r.pause_ns;
        if (root.off)
            shr_obj_release(h, root);
        shr_heap_close(h);
        /* And by Bacon and Rajan's, on a heap that selects it before the
         * build (its decrefs buffer the roots; the selection's rescan is
         * run first, on the empty heap). */
        h = fresh_heap();
        if ((rc = shr_gc_set_algorithm(h, SHR_GC_BACON_RAJAN)) != 0)
            die("shr_gc_set_algorithm", rc);
        r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
        if ((rc = (int)shr_gc_collect_with(h, SHR_GC_BACON_RAJAN, 2, &r)) < 0)
            die("shr_gc_collect_with(SHR_GC_BACON_RAJAN)", rc);
        t0 = now_ns();
        if ((rc = shr_graph_build(h, kind, n, seed, &root, &gi)) != 0)
            die("shr_graph_build", rc);
        brbuild[t] = now_ns() - t0;
        r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
        br_found = shr_gc_collect_with(h, SHR_GC_BACON_RAJAN, 2, &r);
        if (br_found < 0)
            die("shr_gc_collect_with(SHR_GC_BACON_RAJAN)", br_found);
        br[t] = r.total_ns;
        brpause[t] = r.pause_ns;
        br_cand = r.candidates;
        if (root.off)
            shr_obj_release(h, root);
        shr_heap_close(h);
    }
    if (br_found != found)
        fprintf(stderr, "bench_gc: %s n=%llu: Bacon and Rajan freed %lld objects, trial deletion %lld\n",
                shr_graph_name(kind), (unsigned long long)n, (long long)br_found, (long long)found);
    if (ms_found != found)
        fprintf(stderr, "bench_gc: %s n=%llu: the mark-sweep freed %lld objects, trial deletion %lld\n",
                shr_graph_name(kind), (unsigned long long)n, (long long)ms_found, (long long)found);
    printf("%s\n  {\"kind\": \"%s\", \"n\": %llu, \"trials\": %d, \"objects\": %llu, \"live\": %llu, "
           "\"garbage\": %llu, \"edges\": %llu, \"digest\": \"0x%016llx\", \"collected\": %lld, "
           "\"candidates\": %llu, \"build_ns\": %llu, \"first_ns\": %llu, \"first_min_ns\": %llu, "
           "\"first_pause_ns\": %llu, \"first_ttsp_ns\": %llu",
           first_row ? "" : ",", shr_graph_name(kind), (unsigned long long)n, trials,
           (unsigned long long)gi.objects, (unsigned long long)gi.live, (unsigned long long)gi.garbage,
           (unsigned long long)gi.edges, (unsigned long long)gi.digest, (long long)found,
           (unsigned long long)cand, (unsigned long long)median(build, trials),
           (unsigned long long)median(first, trials), (unsigned long long)min_u64(first, trials),
           (unsigned long long)median(fpause, trials), (unsigned long long)median(fttsp, trials));
    printf(", \"marksweep_ns\": %llu, \"marksweep_pause_ns\": %llu, \"marksweep_collected\": %lld",
           (unsigned long long)median(ms, trials), (unsigned long long)median(mspause, trials), (long long)ms_found);
    printf(", \"bacon_rajan_ns\": %llu, \"bacon_rajan_pause_ns\": %llu, \"bacon_rajan_collected\": %lld, "
           "\"bacon_rajan_candidates\": %llu, \"bacon_rajan_build_ns\": %llu",
           (unsigned long long)median(br, trials), (unsigned long long)median(brpause, trials), (long long)br_found,
           (unsigned long long)br_cand, (unsigned long long)median(brbuild, trials));
    if (has_steady)
        printf(", \"steady_ns\": %llu, \"steady_pause_ns\": %llu, \"steady_candidates\": %llu",
               (unsigned long long)median(steady, trials), (unsigned long long)median(spause, trials),
               (unsigned long long)scand);
    printf("}");
    fflush(stdout);
}

static void young(uint64_t n_old, uint64_t seed, int trials, int first_row)
{
    uint64_t tot[MAXT + 1], pause[MAXT + 1], ttsp[MAXT + 1];
    shr_gc_result_t r;
    shr_ref_t root = {0}, none;
    shr_graph_info_t gi = {.size = sizeof gi};
    int64_t found = 0;
    fprintf(stderr, "bench_gc: young over %llu\n", (unsigned long long)n_old);
    shr_heap_t *h = fresh_heap();
    int rc;
    if (n_old && (rc = shr_graph_build(h, SHR_GRAPH_LIVE_GRAPH, n_old, seed, &root, &gi)) != 0)
        die("shr_graph_build", rc);
    collect(h, 2, &r);
    collect(h, 2, &r);
    for (int t = 0; t <= trials; t++) {
        if ((rc = shr_graph_build(h, SHR_GRAPH_RING2, 2000, seed, &none, NULL)) != 0)
            die("shr_graph_build", rc);
        found = collect(h, 0, &r);
        tot[t] = r.total_ns;
        pause[t] = r.pause_ns;
        ttsp[t] = r.ttsp_ns;
    }
    printf("%s\n  {\"n_old\": %llu, \"young\": 2000, \"trials\": %d, \"collected\": %lld, "
           "\"candidates\": %llu, \"gen0_ns\": %llu, \"gen0_pause_ns\": %llu, \"gen0_ttsp_ns\": %llu}",
           first_row ? "" : ",", (unsigned long long)n_old, trials, (long long)found,
           (unsigned long long)r.candidates, (unsigned long long)median(tot + 1, trials),
           (unsigned long long)median(pause + 1, trials), (unsigned long long)median(ttsp + 1, trials));
    fflush(stdout);
    if (root.off)
        shr_obj_release(h, root);
    shr_heap_close(h);
}

/* Every collection this process runs, through the callbacks: the call's
 * time (start to stop, in the collecting thread) and the pause (the world
 * stopped: the growth of the stats' pause total). */
typedef struct recorder {
    uint64_t t0, pause_before, *call, *pause;
    size_t n, cap;
    uint64_t gens[3];
} recorder_t;

static uint64_t pause_total(shr_heap_t *h)
{
    shr_gc_stats_t st;
    if (shr_gc_get_stats(h, &st) != 0)
        return 0;
    return st.gen[0].pause_ns_total + st.gen[1].pause_ns_total + st.gen[2].pause_ns_total;
}

static void record(shr_heap_t *h, const char *phase, const shr_gc_info_t *info, void *arg)
{
    recorder_t *r = arg;
    if (strcmp(phase, "start") == 0) {
        r->pause_before = pause_total(h);
        r->t0 = now_ns();
        return;
    }
    uint64_t t = now_ns() - r->t0;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->call = realloc(r->call, r->cap * sizeof *r->call);
        r->pause = realloc(r->pause, r->cap * sizeof *r->pause);
        if (!r->call || !r->pause)
            die("realloc", -ENOMEM);
    }
    r->call[r->n] = t;
    r->pause[r->n++] = pause_total(h) - r->pause_before;
    if (info->generation >= 0 && info->generation < 3)
        r->gens[info->generation]++;
}

static uint64_t sum_u64(const uint64_t *v, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Sorts v. The q-quantile by the nearest rank. */
static uint64_t quantile(uint64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t k = (size_t)(q * (double)n + 0.999999);
    return v[k ? k - 1 : 0];
}

static void print_dist(const char *name, uint64_t *v, size_t n)
{
    printf(", \"%s_ns_total\": %llu, \"%s_ns_median\": %llu, \"%s_ns_p99\": %llu, \"%s_ns_max\": %llu", name,
           (unsigned long long)sum_u64(v, n), name, (unsigned long long)quantile(v, n, 0.5), name,
           (unsigned long long)quantile(v, n, 0.99), name, (unsigned long long)quantile(v, n, 1.0));
}

typedef struct sampler {
    uint64_t t0, excluded;
    int nsamples;
    struct { uint64_t done, ns, objects, bytes, blocks; } s[64];
} sampler_t;

/* Bytes and blocks handed out by the heap's allocator now. */
static uint64_t bytes_in_use(shr_heap_t *h, uint64_t *blocks)
{
    shr_alloc_stats_t st;
    if (shr_heap_stats(h, &st) != 0)
        return 0;
    uint64_t b = st.large_bytes, n = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) {
        b += st.classes[c].blocks_in_use * st.classes[c].block_size;
        n += st.classes[c].blocks_in_use;
    }
    if (blocks)
        *blocks = n;
    return b;
}

static void sample(shr_heap_t *h, uint64_t done, void *arg)
{
    sampler_t *sp = arg;
    uint64_t t = now_ns();
    if (sp->nsamples < 64) {
        int64_t objs = shr_gc_get_objects(h, -1, NULL, 0);
        sp->s[sp->nsamples].done = done;
        sp->s[sp->nsamples].ns = t - sp->t0 - sp->excluded;
        sp->s[sp->nsamples].objects = objs < 0 ? 0 : (uint64_t)objs;
        sp->s[sp->nsamples].bytes = bytes_in_use(h, &sp->s[sp->nsamples].blocks);
        sp->nsamples++;
    }
    sp->excluded += now_ns() - t;
}

static void churn(uint64_t n, uint64_t live, uint32_t rate, uint32_t cycle, uint64_t seed)
{
    fprintf(stderr, "bench_gc: churn of %llu objects over a table of %llu, %u%% garbage in rings of %u\n",
            (unsigned long long)n, (unsigned long long)live, rate, cycle);
    shr_heap_t *h = fresh_heap();
    uint32_t thr[3] = {2000, 10, 10};   /* the defaults (fresh_heap turned them off) */
    recorder_t rec = {0};
    sampler_t *sp = calloc(1, sizeof *sp);
    shr_graph_churn_t c = SHR_GRAPH_CHURN_INIT;
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_ref_t root;
    int rc;
    if (!sp)
        die("calloc", -ENOMEM);
    c.live = live;
    c.garbage_pct = rate;
    c.cycle = cycle;
    c.every = n / 20 ? n / 20 : 1;
    c.progress = sample;
    c.arg = sp;
    uint64_t blocks0, b0 = bytes_in_use(h, &blocks0);
    if ((rc = shr_gc_set_threshold(h, thr)) != 0 || (rc = shr_gc_callback_add(h, record, &rec)) != 0)
        die("setup", rc);
    sp->t0 = now_ns();
    if ((rc = shr_graph_build_churn(h, n, seed, &c, &root, &gi)) != 0)
        die("shr_graph_build_churn", rc);
    uint64_t total = now_ns() - sp->t0 - sp->excluded;
    shr_gc_callback_remove(h, record, &rec);
    printf(",\n \"churn\": {\"n\": %llu, \"live\": %llu, \"rate_pct\": %u, \"cycle\": %u, "
           "\"threshold\": [%u, %u, %u], \"objects\": %llu, \"garbage\": %llu, \"digest\": \"0x%016llx\", "
           "\"total_ns\": %llu, \"collections\": %zu, \"gen\": [%llu, %llu, %llu], \"bytes_before\": %llu, "
           "\"blocks_before\": %llu",
           (unsigned long long)n, (unsigned long long)(gi.live - 1), rate, cycle, thr[0], thr[1], thr[2],
           (unsigned long long)gi.objects, (unsigned long long)gi.garbage, (unsigned long long)gi.digest,
           (unsigned long long)total, rec.n, (unsigned long long)rec.gens[0], (unsigned long long)rec.gens[1],
           (unsigned long long)rec.gens[2], (unsigned long long)b0, (unsigned long long)blocks0);
    print_dist("call", rec.call, rec.n);
    print_dist("pause", rec.pause, rec.n);
    printf(", \"samples\": [");
    for (int i = 0; i < sp->nsamples; i++)
        printf("%s{\"done\": %llu, \"ns\": %llu, \"objects\": %llu, \"bytes\": %llu, \"blocks\": %llu}",
               i ? ", " : "", (unsigned long long)sp->s[i].done, (unsigned long long)sp->s[i].ns,
               (unsigned long long)sp->s[i].objects, (unsigned long long)sp->s[i].bytes,
               (unsigned long long)sp->s[i].blocks);
    printf("]}");
    fflush(stdout);
    shr_obj_release(h, root);
    free(rec.call);
    free(rec.pause);
    free(sp);
    shr_heap_close(h);
}

static void growth(uint64_t n, uint64_t seed)
{
    fprintf(stderr, "bench_gc: growth to %llu with automatic collection\n", (unsigned long long)n);
    shr_heap_t *h = fresh_heap();
    uint32_t thr[3];
    shr_gc_stats_t before, after;
    uint32_t *parent = malloc(n * sizeof *parent), *extra = malloc(n * sizeof *extra);
    uint32_t *deg = calloc(n, sizeof *deg), *fill = calloc(n, sizeof *fill);
    shr_ref_t *nodes = calloc(n, sizeof *nodes);
    uint64_t rng = seed;
    int rc;
    if (!parent || !extra || !deg || !fill || !nodes)
        die("malloc", -ENOMEM);
    for (uint64_t i = 1; i < n; i++) {
        parent[i] = (uint32_t)(shr_graph_splitmix64(&rng) % i);
        deg[parent[i]]++;
    }
    for (uint64_t i = 0; i < n; i++) {
        extra[i] = UINT32_MAX;
        if (shr_graph_splitmix64(&rng) % 2 == 0) {
            extra[i] = (uint32_t)(shr_graph_splitmix64(&rng) % n);
            deg[i]++;
        }
    }
    shr_gc_get_threshold(h, thr);
    thr[0] = 2000;   /* the default (fresh_heap turned it off) */
    if ((rc = shr_gc_set_threshold(h, thr)) != 0)
        die("shr_gc_set_threshold", rc);
    recorder_t rec = {0};
    if ((rc = shr_gc_callback_add(h, record, &rec)) != 0)
        die("shr_gc_callback_add", rc);
    shr_gc_get_stats(h, &before);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = shr_obj_new(h, SHR_TYPE_NODE, deg[i], 0, &nodes[i])) != 0)
            die("shr_obj_new", rc);
        if (i && (rc = shr_obj_set(h, nodes[parent[i]], fill[parent[i]]++, nodes[i])) != 0)
            die("shr_obj_set", rc);
    }
    for (uint64_t i = 0; i < n; i++)
        if (extra[i] != UINT32_MAX && (rc = shr_obj_set(h, nodes[i], fill[i]++, nodes[extra[i]])) != 0)
            die("shr_obj_set", rc);
    uint64_t total = now_ns() - t0;
    shr_gc_get_stats(h, &after);
    shr_gc_callback_remove(h, record, &rec);
    uint64_t in_gc = 0, maxp = 0, maxttsp = 0;
    printf(",\n \"growth\": {\"n\": %llu, \"threshold\": [%u, %u, %u], \"total_ns\": %llu",
           (unsigned long long)n, thr[0], thr[1], thr[2], (unsigned long long)total);
    for (int g = 0; g < 3; g++) {
        shr_gc_gen_stats_t *a = &after.gen[g], *b = &before.gen[g];
        in_gc += a->pause_ns_total - b->pause_ns_total;
        if (a->pause_ns_max > maxp)
            maxp = a->pause_ns_max;
        if (a->ttsp_ns_max > maxttsp)
            maxttsp = a->ttsp_ns_max;
        printf(", \"gen%d\": {\"collections\": %llu, \"collected\": %llu, \"pause_ns_total\": %llu, "
               "\"pause_ns_max\": %llu}", g, (unsigned long long)(a->collections - b->collections),
               (unsigned long long)(a->collected - b->collected),
               (unsigned long long)(a->pause_ns_total - b->pause_ns_total), (unsigned long long)a->pause_ns_max);
    }
    printf(", \"gc_pause_ns\": %llu, \"max_pause_ns\": %llu, \"max_ttsp_ns\": %llu, \"gc_call_ns\": %llu, "
           "\"max_call_ns\": %llu}", (unsigned long long)in_gc, (unsigned long long)maxp,
           (unsigned long long)maxttsp, (unsigned long long)sum_u64(rec.call, rec.n),
           (unsigned long long)quantile(rec.call, rec.n, 1.0));
    free(rec.call);
    free(rec.pause);
    fflush(stdout);
    for (uint64_t i = 0; i < n; i++)
        shr_obj_release(h, nodes[i]);
    free(parent);
    free(extra);
    free(deg);
    free(fill);
    free(nodes);
    shr_heap_close(h);
}


/* ---- time to stop against the number of processes ------------------------------ */

#define STOP_ROUNDS 40

static void sleep_us(long us)
{
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

static int stop_in_visit(const shr_value_t *v, void *arg)
{
    (void)v, (void)arg;
    raise(SIGSTOP);
    return 0;
}

/* A mutator (mode 0): set items of the list "stop" until killed. Mode 1:
 * one set, then it waits outside any call (so that a SIGSTOP finds it
 * outside the gate). Mode 2: it stops itself inside a gated call that holds the
 * list's lock (a visit of shr_list_get_with). Each dies with its parent. */
static void mutator(const char *name, int mode, int ready_fd)
{
    shr_heap_t *h;
    shr_list_t *l;
    if (shr_heap_attach(name, &h) != 0 || shr_list_attach(h, "stop", &l) != 0)
        _exit(3);
    shr_value_t v = shr_int(1);
    if (shr_list_set(l, 1, &v) != 0) /* the slot is claimed, the list warm */
        _exit(4);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1)
        _exit(6);
    if (mode == 2) /* stop inside a gated call that holds the list's lock */
        _exit(shr_list_get_with(l, 0, stop_in_visit, NULL) == 0 ? 0 : 5);
    if (mode == 1) /* between two calls, for good: the SIGSTOP finds it outside the gate */
        for (;;) pause();
    for (uint64_t i = 0;; i++) {
        v = shr_int((int64_t)i);
        shr_list_set(l, (int64_t)(1 + i % 63), &v); /* item 0 stays a str */
    }
}

static pid_t spawn_mutator(const char *name, int mode)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe", -errno);
    fflush(stdout);
    pid_t p = fork();
    if (p < 0)
        die("fork", -errno);
    if (p == 0) {
        close(fd[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        mutator(name, mode, fd[1]);
    }
    close(fd[1]);
    char c;
    if (read(fd[0], &c, 1) != 1) {
        int st = 0;
        waitpid(p, &st, 0);
        fprintf(stderr, "bench_gc: a mutator did not start (exit status %d)\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        exit(1);
    }
    close(fd[0]);
    return p;
}

static void reap_all(pid_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        kill(p[i], SIGKILL);
        waitpid(p[i], NULL, 0);
    }
}

static void stop_row(int k, int extra, int first_row)
{
    char name[64];
    snprintf(name, sizeof name, "shb_gcstop_%d", (int)getpid());
    shr_heap_unlink(name);
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)256 << 20;
    shr_heap_t *h;
    int rc = shr_heap_create(name, &o, &h);
    if (rc)
        die("shr_heap_create", rc);
    uint32_t off[3] = {0, 10, 10};
    shr_gc_set_threshold(h, off);
    shr_value_t in[64];
    for (int i = 0; i < 64; i++) in[i] = shr_int(i);
    in[0] = shr_str("visited under the lock"); /* a str: shr_list_get_with visits it inside the gate */
    shr_list_t *l;
    if ((rc = shr_list_create(h, "stop", in, 64, &l)) != 0)
        die("shr_list_create", rc);
    pid_t p[40];
    int np = 0;
    for (int i = 0; i < k; i++) p[np++] = spawn_mutator(name, 0);
    if (extra == 1) {
        p[np] = spawn_mutator(name, 1); /* made its set, waits outside the gate */
        kill(p[np++], SIGSTOP);
    } else if (extra == 2) {
        p[np++] = spawn_mutator(name, 2); /* stops itself inside a visit */
        sleep_us(20000);
    }
    uint64_t ttsp[STOP_ROUNDS], pause[STOP_ROUNDS], wall[STOP_ROUNDS];
    int ok = 0, timeouts = 0;
    uint64_t stopped = 0;
    for (int i = 0; i < (extra == 2 ? 3 : STOP_ROUNDS); i++) {
        shr_gc_result_t r = SHR_GC_RESULT_INIT;
        uint64_t t0 = now_ns();
        int64_t n = shr_gc_collect(h, 0, &r);
        uint64_t t = now_ns() - t0;
        if (n == -ETIMEDOUT || n == SHR_ELOCKTIMEOUT) {
            timeouts++;
            wall[ok] = t; /* the time it waited before giving up */
            ttsp[ok] = t;
            pause[ok++] = 0;
            continue;
        }
        if (n < 0)
            die("shr_gc_collect", n);
        ttsp[ok] = r.ttsp_ns;
        pause[ok] = r.pause_ns;
        wall[ok++] = t;
        if (r.stopped_threads > stopped) stopped = r.stopped_threads;
    }
    reap_all(p, np);
    shr_list_close(l);
    shr_heap_close(h);
    shr_heap_unlink(name);
    uint64_t mx = 0;
    for (int i = 0; i < ok; i++) mx = ttsp[i] > mx ? ttsp[i] : mx;
    printf("%s\n  {\"procs\": %d, \"stopped\": \"%s\", \"rounds\": %d, \"timeouts\": %d, \"ttsp_ns\": %llu, "
           "\"ttsp_max_ns\": %llu, \"pause_ns\": %llu, \"call_ns\": %llu, \"threads_waited_for\": %llu}",
           first_row ? "" : ",", k, extra == 0 ? "none" : extra == 1 ? "outside" : "inside", ok, timeouts,
           (unsigned long long)median(ttsp, ok), (unsigned long long)mx, (unsigned long long)median(pause, ok),
           (unsigned long long)median(wall, ok), (unsigned long long)stopped);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    gcb_prog = "bench_gc";
    uint64_t sizes[8] = {100000, 1000000}, olds[8] = {0, 100000, 1000000}, seed = 42;
    uint64_t grow = 1000000, churn_n = 1000000, churn_live = 100000;
    uint32_t churn_rate = 50, churn_cycle = 10;
    uint64_t stops[8] = {0, 1, 2, 4, 8};
    int nsizes = 2, nolds = 3, trials = 3, nstops = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--sizes=", 8) == 0)
            nsizes = parse_list(a + 8, sizes, 8);
        else if (strncmp(a, "--young-old=", 12) == 0)
            nolds = parse_list(a + 12, olds, 8);
        else if (strncmp(a, "--trials=", 9) == 0)
            trials = atoi(a + 9);
        else if (strncmp(a, "--growth=", 9) == 0)
            grow = (uint64_t)strtod(a + 9, NULL);
        else if (strncmp(a, "--churn=", 8) == 0)
            churn_n = (uint64_t)strtod(a + 8, NULL);
        else if (strncmp(a, "--churn-live=", 13) == 0)
            churn_live = (uint64_t)strtod(a + 13, NULL);
        else if (strncmp(a, "--churn-rate=", 13) == 0)
            churn_rate = (uint32_t)atoi(a + 13);
        else if (strncmp(a, "--churn-cycle=", 14) == 0)
            churn_cycle = (uint32_t)atoi(a + 14);
        else if (strncmp(a, "--stop-procs=", 13) == 0)
            nstops = a[13] ? parse_list(a + 13, stops, 8) : 0;
        else if (strncmp(a, "--seed=", 7) == 0)
            seed = strtoull(a + 7, NULL, 0);
        else {
            fprintf(stderr, "usage: %s [--sizes=N,..] [--trials=T] [--seed=S] [--young-old=N,..] [--growth=N]\n"
                            "          [--churn=N] [--churn-live=S] [--churn-rate=P] [--churn-cycle=L] [--stop-procs=K,..]\n",
                    argv[0]);
            return 64;
        }
    }
    if (nsizes < 0 || nolds < 0 || nstops < 0 || trials < 1 || trials > MAXT || grow > UINT32_MAX || churn_n > UINT32_MAX ||
        churn_live < 1 || churn_live > SHR_GRAPH_MAX_N || churn_rate > 100 || churn_cycle < 1 ||
        churn_cycle > SHR_GRAPH_CYCLE_MAX) {
        fprintf(stderr, "bench_gc: bad --sizes, --young-old, --trials (1..%d) or --churn-*\n", MAXT);
        return 64;
    }
    printf("{\"seed\": %llu, \"trials\": %d,\n \"full\": [", (unsigned long long)seed, trials);
    int row = 1;
    for (int s = 0; s < nsizes; s++)
        for (int k = SHR_GRAPH_LIVE_FLAT; k <= SHR_GRAPH_MIX; k++, row = 0)
            full(k, sizes[s], seed, trials, row);
    printf("],\n \"young\": [");
    for (int s = 0; s < nolds; s++)
        young(olds[s], seed, trials < 5 ? 5 : trials, s == 0);
    printf("]");
    if (grow)
        growth(grow, seed);
    if (churn_n)
        churn(churn_n, churn_live, churn_rate, churn_cycle, seed);
    if (nstops > 0) {
        setenv("SHARENA_GC_STOP_TIMEOUT_MS", "200", 1);
        fprintf(stderr, "bench_gc: time to stop against processes\n");
        printf(",\n \"stop\": [");
        for (int i = 0; i < nstops; i++)
            stop_row((int)(stops[i] > 32 ? 32 : stops[i]), 0, i == 0);
        int kmax = (int)(stops[nstops - 1] > 32 ? 32 : stops[nstops - 1]);
        stop_row(kmax, 1, 0);
        stop_row(kmax, 2, 0);
        printf("]");
    }
    printf("}\n");
    return 0;
}
