/* bench_gc_order: the collector's walk against the objects' placement.
 *
 * sharena's collectors offer no choice of walk order: trial deletion finds
 * its candidates by walking the object pools in address order (gc/collect.c,
 * shr__obj_walk), and then follows references (subtract, mark, clear) in the
 * order the objects hold them; the mark-sweep traces from the roots and the
 * leases in reference order. So this program varies the other side: the same
 * graph, linked in the same logical order ("list order": object k holds
 * object k + 1), placed so that list order is address order ("sequential":
 * object k is the k-th allocated) or not ("shuffled": object k is the
 * perm[k]-th allocated, perm a seeded Fisher-Yates permutation). Every
 * collection does the same work on both; what differs is where each
 * reference lands in memory (the object's header, and the scratch entry the
 * collector keeps for it), which is the locality effect a researcher wants
 * to see.
 *
 *   bench_gc_order [--sizes=10000,100000,1000000] [--trials=3] [--seed=42]
 *                  [--shapes=chain,ring,flat] [--algorithms=0,1,2]
 *
 * --trials is a count per size, in order, the last one also for the sizes
 * beyond (so one count is every size's; the main job runs 3,3,1: a build of
 * 10^6 takes about half a second); counts beyond the sizes are ignored.
 *
 * Shapes (n nodes, each allocated by shr_obj_new in one run, a fresh
 * private heap per graph, automatic collection off):
 *   chain  live: object k holds k + 1 in its one slot; this process holds a
 *          reference to object 0 only. A collection examines all n, the
 *          marking follows the chain.
 *   ring   garbage: the chain closed (n - 1 holds 0), every reference
 *          released. A collection frees all n (its clear and free walk the
 *          candidates in address order and release each one's successor).
 *   flat   live: a root node with n slots holding the n objects in list
 *          order (each an empty node), the root held by this process.
 * Algorithms: 0 trial deletion (shr_gc_collect, generation 2), 2 the backup
 * mark-sweep (shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2)), 1 Bacon and
 * Rajan's (SHR_GC_BACON_RAJAN) when shr_gc_collect_with accepts it: the
 * program asks once and leaves its rows out (saying so in "skipped") when
 * the library refuses it with -EINVAL. On the live shapes, one build serves
 * every algorithm: trial deletion's first collection (everything young),
 * then its steady one (everything old), then each other algorithm; on the
 * ring, each algorithm collects a build of its own.
 *
 * Each row: the medians over trials of the collection's time, pause and
 * phases (shr_gc_result_t), and the placement measured on the built graph
 * (the median distance in bytes between the objects k and k + 1, and the
 * share of steps that go up in address). A wrong result (a live object
 * freed, garbage kept, candidates or freed counts other than the graph's)
 * exits 1 after saying what. One JSON document on stdout, progress on
 * stderr. Public API only. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gc_common.h"


enum { CHAIN, RING, FLAT, NSHAPES };
static const char *const shape_names[NSHAPES] = {"chain", "ring", "flat"};
static void wrong(const char *fmt_what, unsigned long long got, unsigned long long want)
{
    fprintf(stderr, "bench_gc_order: WRONG RESULT: %s: %llu, expected %llu\n", fmt_what, got, want);
    exit(1);
}

/* One built graph: what this process holds, and its placement. */
typedef struct graph {
    shr_ref_t held;          /* object 0 (chain), the root (flat), none (ring) */
    uint64_t objects;        /* containers made */
    uint64_t step_median;    /* |addr(k + 1) - addr(k)|, bytes, median over k */
    double up_share;         /* share of the steps k -> k + 1 that go up */
    uint64_t build_ns;
} graph_t;

/* Objects are allocated in index order 0..n-1 (addresses ascending in a
 * fresh heap: the placement figures say whether they were); logical object
 * k is the allocated one at[k]: at[k] = k (sequential) or perm[k]. Each new
 * object is parked in a slot of a holder node (flat: in the root's slot of
 * its logical index), so that this process holds a few references at a
 * time, not n; the holder is released at the end (its count frees it). */
static graph_t build(shr_heap_t *h, int shape, uint64_t n, int shuffled, uint64_t seed)
{
    graph_t g = {0};
    uint32_t *at = malloc(n * sizeof *at), *inv = malloc(n * sizeof *inv);
    uint64_t *steps = malloc(n * sizeof *steps);
    if (!at || !inv || !steps)
        die("malloc", -ENOMEM);
    for (uint64_t i = 0; i < n; i++)
        at[i] = (uint32_t)i;
    if (shuffled) {
        uint64_t s = seed;
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = shr_graph_splitmix64(&s) % (i + 1);
            uint32_t t = at[i];
            at[i] = at[j];
            at[j] = t;
        }
    }
    for (uint64_t k = 0; k < n; k++)
        inv[at[k]] = (uint32_t)k;
    uint64_t t0 = now_ns();
    int rc;
    shr_ref_t park; /* the holder, or flat's root */
    if ((rc = shr_obj_new(h, SHR_TYPE_NODE, (uint32_t)n, 0, &park)) != 0)
        die("shr_obj_new(holder)", rc);
    uint64_t *off = steps; /* each allocated object's offset, then the steps */
    for (uint64_t i = 0; i < n; i++) {
        shr_ref_t o;
        if ((rc = shr_obj_new(h, SHR_TYPE_NODE, shape == FLAT ? 0 : 1, 0, &o)) != 0)
            die("shr_obj_new", rc);
        off[i] = o.off;
        if ((rc = shr_obj_set(h, park, shape == FLAT ? inv[i] : (uint32_t)i, o)) != 0)
            die("shr_obj_set", rc);
        shr_obj_release(h, o);
    }
    uint64_t up = 0, *d = malloc(n * sizeof *d);
    if (!d)
        die("malloc", -ENOMEM);
    for (uint64_t k = 0; k + 1 < n; k++) {
        uint64_t a = off[at[k]], b = off[at[k + 1]];
        d[k] = b > a ? b - a : a - b;
        up += b > a;
    }
    if (shape == FLAT) {
        g.held = park;
    } else {
        shr_ref_t cur, next;
        if ((rc = shr_obj_get(h, park, at[0], &cur)) != 0)
            die("shr_obj_get", rc);
        if (shape == CHAIN && (rc = shr_obj_dup(h, cur, &g.held)) != 0)
            die("shr_obj_dup", rc);
        for (uint64_t k = 0; k < n; k++) {
            if (k + 1 == n && shape != RING)
                break;
            if ((rc = shr_obj_get(h, park, at[(k + 1) % n], &next)) != 0 || (rc = shr_obj_set(h, cur, 0, next)) != 0)
                die("shr_obj_get/set", rc);
            shr_obj_release(h, cur);
            cur = next;
        }
        shr_obj_release(h, cur);
        shr_obj_release(h, park); /* its count frees it; the chain or ring holds the objects */
    }
    g.build_ns = now_ns() - t0;
    g.objects = n + (shape == FLAT);
    if (n > 1) {
        qsort(d, n - 1, sizeof *d, cmp_u64);
        g.step_median = d[(n - 1) / 2];
        g.up_share = (double)up / (double)(n - 1);
    }
    free(d);
    free(at);
    free(inv);
    free(steps);
    return g;
}

#define MAXT 32

/* The medians of one (shape, order, n, algorithm, which) cell. */
typedef struct cell {
    uint64_t total[MAXT], pause[MAXT], phase[SHR_GC_NPHASES][MAXT];
    uint64_t candidates, edges, collected;
    int n;
} cell_t;

static void add(cell_t *c, const shr_gc_result_t *r, int64_t found)
{
    c->total[c->n] = r->total_ns;
    c->pause[c->n] = r->pause_ns;
    for (int p = 0; p < SHR_GC_NPHASES; p++)
        c->phase[p][c->n] = r->phase_ns[p];
    c->candidates = r->candidates;
    c->edges = r->edges;
    c->collected = (uint64_t)found;
    c->n++;
}

/* One collection, and its result checked against the graph. */
static int64_t collect_checked(shr_heap_t *h, int alg, int shape, const graph_t *g, shr_gc_result_t *r)
{
    *r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
    int64_t found = shr_gc_collect_with(h, alg, 2, r);
    if (found < 0)
        die("shr_gc_collect_with", found);
    uint64_t want = shape == RING ? g->objects : 0;
    if ((uint64_t)found != want) {
        fprintf(stderr, "bench_gc_order: %s, %s: ", shape_names[shape], alg_name(alg));
        wrong("objects freed", (unsigned long long)found, (unsigned long long)want);
    }
    if (alg == SHR_GC_TRIAL_DELETION && r->candidates < g->objects) {
        fprintf(stderr, "bench_gc_order: %s: ", shape_names[shape]);
        wrong("candidates of a full collection", (unsigned long long)r->candidates,
              (unsigned long long)g->objects);
    }
    return found;
}

static int row_first = 1;

static void print_cell(int shape, int shuffled, uint64_t n, int alg, const char *which, const cell_t *c,
                       const graph_t *g, uint64_t build_ns)
{
    printf("%s\n  {\"shape\": \"%s\", \"order\": \"%s\", \"n\": %llu, \"algorithm\": %d, \"algorithm_name\": \"%s\", "
           "\"collection\": \"%s\", \"trials\": %d, \"objects\": %llu, \"collected\": %llu, \"candidates\": %llu, "
           "\"edges\": %llu, \"step_median_bytes\": %llu, \"up_share\": %.4f, \"build_ns\": %llu, "
           "\"total_ns\": %llu, \"pause_ns\": %llu, \"phase_ns\": {",
           row_first ? "" : ",", shape_names[shape], shuffled ? "shuffled" : "sequential", (unsigned long long)n,
           alg, alg_name(alg), which, c->n, (unsigned long long)g->objects, (unsigned long long)c->collected,
           (unsigned long long)c->candidates, (unsigned long long)c->edges, (unsigned long long)g->step_median,
           g->up_share, (unsigned long long)build_ns, (unsigned long long)median(c->total, c->n),
           (unsigned long long)median(c->pause, c->n));
    for (int p = 0; p < SHR_GC_NPHASES; p++)
        printf("%s\"%s\": %llu", p ? ", " : "", shr_gc_phase_name(p), (unsigned long long)median(c->phase[p], c->n));
    printf("}}");
    fflush(stdout);
    row_first = 0;
}

int main(int argc, char **argv)
{
    gcb_prog = "bench_gc_order";
    uint64_t sizes[8] = {10000, 100000, 1000000}, seed = 42, algs_in[8] = {0, 1, 2};
    uint64_t tlist[8] = {3};
    int nsizes = 3, ntrials = 1, nalgs_in = 3;
    int shapes[NSHAPES] = {1, 1, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--sizes=", 8) == 0)
            nsizes = parse_list(a + 8, sizes, 8);
        else if (strncmp(a, "--trials=", 9) == 0)
            ntrials = parse_list(a + 9, tlist, 8);
        else if (strncmp(a, "--seed=", 7) == 0)
            seed = strtoull(a + 7, NULL, 0);
        else if (strncmp(a, "--algorithms=", 13) == 0)
            nalgs_in = parse_list(a + 13, algs_in, 8);
        else if (strncmp(a, "--shapes=", 9) == 0) {
            memset(shapes, 0, sizeof shapes);
            char buf[64];
            snprintf(buf, sizeof buf, "%s", a + 9);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int k = 0;
                while (k < NSHAPES && strcmp(t, shape_names[k]) != 0) k++;
                if (k == NSHAPES) {
                    fprintf(stderr, "bench_gc_order: unknown shape %s (chain, ring, flat)\n", t);
                    return 64;
                }
                shapes[k] = 1;
            }
        } else {
            fprintf(stderr, "usage: %s [--sizes=N,..] [--trials=T|T1,T2,..] [--seed=S] [--shapes=chain,ring,flat]\n"
                            "          [--algorithms=0,1,2]\n", argv[0]);
            return 64;
        }
    }
    if (nsizes < 1 || nalgs_in < 1 || ntrials < 1) {
        fprintf(stderr, "bench_gc_order: bad --sizes, --algorithms or --trials\n");
        return 64;
    }
    int trials_of[8];
    for (int s = 0; s < nsizes; s++) {
        uint64_t t = tlist[s < ntrials ? s : ntrials - 1];
        if (t < 1 || t > MAXT) {
            fprintf(stderr, "bench_gc_order: --trials must be 1..%d\n", MAXT);
            return 64;
        }
        trials_of[s] = (int)t;
    }
    for (int s = 0; s < nsizes; s++)
        if (sizes[s] < 2 || sizes[s] > SHR_GRAPH_MAX_N) {
            fprintf(stderr, "bench_gc_order: a size must be 2..%u\n", SHR_GRAPH_MAX_N);
            return 64;
        }
    int algs[8], nalgs = 0;
    printf("{\"seed\": %llu, \"skipped\": [", (unsigned long long)seed);
    for (int i = 0, sk = 0; i < nalgs_in; i++) {
        int a = (int)algs_in[i];
        if (a != SHR_GC_TRIAL_DELETION && a != SHR_GC_MARK_SWEEP && a != SHR_GC_BACON_RAJAN) {
            fprintf(stderr, "bench_gc_order: unknown algorithm %d (0, 1, 2)\n", a);
            return 64;
        }
        if (supported(a))
            algs[nalgs++] = a;
        else {
            fprintf(stderr, "bench_gc_order: this library refuses algorithm %d (%s): its rows are left out\n", a,
                    alg_name(a));
            printf("%s{\"algorithm\": %d, \"algorithm_name\": \"%s\", \"reason\": \"-EINVAL\"}", sk++ ? ", " : "",
                   a, alg_name(a));
        }
    }
    printf("],\n \"rows\": [");
    for (int s = 0; s < nsizes; s++) {
        uint64_t n = sizes[s];
        int trials = trials_of[s];
        for (int shape = 0; shape < NSHAPES; shape++) {
            if (!shapes[shape])
                continue;
            for (int shuffled = 0; shuffled <= 1; shuffled++) {
                fprintf(stderr, "bench_gc_order: %s n=%llu %s\n", shape_names[shape], (unsigned long long)n,
                        shuffled ? "shuffled" : "sequential");
                static cell_t first[8], steady;
                memset(first, 0, sizeof first);
                memset(&steady, 0, sizeof steady);
                uint64_t build_ns[MAXT];
                graph_t g = {0};
                shr_gc_result_t r;
                for (int t = 0; t < trials; t++) {
                    if (shape == RING) {
                        for (int a = 0; a < nalgs; a++) {
                            shr_heap_t *h = fresh_heap();
                            g = build(h, shape, n, shuffled, seed + (uint64_t)t);
                            build_ns[t] = g.build_ns;
                            add(&first[a], &r, collect_checked(h, algs[a], shape, &g, &r));
                            shr_heap_close(h);
                        }
                        continue;
                    }
                    shr_heap_t *h = fresh_heap();
                    g = build(h, shape, n, shuffled, seed + (uint64_t)t);
                    build_ns[t] = g.build_ns;
                    for (int a = 0; a < nalgs; a++) {
                        add(&first[a], &r, collect_checked(h, algs[a], shape, &g, &r));
                        if (algs[a] == SHR_GC_TRIAL_DELETION)
                            add(&steady, &r, collect_checked(h, algs[a], shape, &g, &r));
                    }
                    /* The live part was whole: released, its counts free all of it (no cycle). */
                    shr_obj_release(h, g.held);
                    int64_t left = shr_gc_get_objects(h, -1, NULL, 0);
                    if (left != 0) {
                        fprintf(stderr, "bench_gc_order: %s after its release: ", shape_names[shape]);
                        wrong("objects left", (unsigned long long)left, 0);
                    }
                    shr_heap_close(h);
                }
                uint64_t b = median(build_ns, trials);
                for (int a = 0; a < nalgs; a++) {
                    int live = shape != RING;
                    print_cell(shape, shuffled, n, algs[a],
                               live && algs[a] == SHR_GC_TRIAL_DELETION ? "first" : "only", &first[a], &g, b);
                    if (live && algs[a] == SHR_GC_TRIAL_DELETION)
                        print_cell(shape, shuffled, n, algs[a], "steady", &steady, &g, b);
                }
            }
        }
    }
    printf("]}\n");
    return 0;
}
