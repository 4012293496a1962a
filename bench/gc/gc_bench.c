/* bench_gc: sharena's cycle collector on the seeded graphs of
 * include/sharena/gc.h, the same graphs bench/gc/cpython_gc.py builds in
 * CPython (bench/run.sh runs both in one run; bench/report.py sets them
 * side by side). Public API only.
 *
 *   bench_gc [--sizes=100000,1000000] [--trials=3] [--seed=42]
 *            [--young-old=0,100000,1000000] [--growth=1000000]
 *
 * full:  for each graph and n, trials times: a fresh private heap with
 *        automatic collection off, the graph built, then a full collection
 *        timed (first: objects in generation 0), and for the graphs with a
 *        live part a second one (steady: everything in generation 2).
 *        Medians of the call's time, and of the pause and time to stop that
 *        shr_gc_result_t reports.
 * young: n_old live_graph nodes moved to generation 2, then 2,000 fresh
 *        garbage nodes (1,000 rings of 2) and collect(0), trials + 1 times
 *        (the first dropped); medians.
 * growth: a live_graph of --growth=N nodes grown one node at a time with
 *        the same draws (each new node stored into its parent at once, then
 *        the extra edges), automatic collection on at the heap's default
 *        thresholds; the time in the collector and the longest pause from
 *        shr_gc_get_stats. --growth=0 skips it.
 * One JSON document on stdout, progress on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sharena.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, int64_t rc)
{
    fprintf(stderr, "bench_gc: %s: %s (%lld)\n", what, shr_strerror((int)rc), (long long)rc);
    exit(1);
}

static shr_heap_t *fresh_heap(void)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags |= SHR_HEAP_PRIVATE;
    o.capacity = (size_t)8 << 30;
    int rc = shr_heap_create(NULL, &o, &h);
    if (rc)
        die("shr_heap_create", rc);
    uint32_t off[3] = {0, 10, 10};
    if ((rc = shr_gc_set_threshold(h, off)) != 0)
        die("shr_gc_set_threshold", rc);
    return h;
}

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
    uint64_t first[MAXT], fpause[MAXT], fttsp[MAXT], steady[MAXT], spause[MAXT], build[MAXT];
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
    }
    printf("%s\n  {\"kind\": \"%s\", \"n\": %llu, \"trials\": %d, \"objects\": %llu, \"live\": %llu, "
           "\"garbage\": %llu, \"edges\": %llu, \"digest\": \"0x%016llx\", \"collected\": %lld, "
           "\"candidates\": %llu, \"build_ns\": %llu, \"first_ns\": %llu, \"first_min_ns\": %llu, "
           "\"first_pause_ns\": %llu, \"first_ttsp_ns\": %llu",
           first_row ? "" : ",", shr_graph_name(kind), (unsigned long long)n, trials,
           (unsigned long long)gi.objects, (unsigned long long)gi.live, (unsigned long long)gi.garbage,
           (unsigned long long)gi.edges, (unsigned long long)gi.digest, (long long)found,
           (unsigned long long)cand, (unsigned long long)median(build, trials),
           (unsigned long long)median(first, trials), (unsigned long long)first[0],
           (unsigned long long)median(fpause, trials), (unsigned long long)median(fttsp, trials));
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
    printf(", \"gc_pause_ns\": %llu, \"max_pause_ns\": %llu, \"max_ttsp_ns\": %llu}",
           (unsigned long long)in_gc, (unsigned long long)maxp, (unsigned long long)maxttsp);
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

static int parse_list(const char *s, uint64_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return -1;
        out[n++] = (uint64_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    uint64_t sizes[8] = {100000, 1000000}, olds[8] = {0, 100000, 1000000}, seed = 42;
    uint64_t grow = 1000000;
    int nsizes = 2, nolds = 3, trials = 3;
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
        else if (strncmp(a, "--seed=", 7) == 0)
            seed = strtoull(a + 7, NULL, 0);
        else {
            fprintf(stderr, "usage: %s [--sizes=N,..] [--trials=T] [--seed=S] [--young-old=N,..] [--growth=N]\n", argv[0]);
            return 64;
        }
    }
    if (nsizes < 0 || nolds < 0 || trials < 1 || trials > MAXT || grow > UINT32_MAX) {
        fprintf(stderr, "bench_gc: bad --sizes, --young-old or --trials (1..%d)\n", MAXT);
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
    printf("}\n");
    return 0;
}
