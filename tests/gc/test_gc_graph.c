/* The seeded graphs (shr_graph_build, shr_graph_build_churn): the same
 * graphs as CPython's side of the benchmark (bench/gc/cpython_gc.py --digest
 * KIND:N gives the counts and digests pinned below, seed 42; one test runs
 * it now, with /usr/bin/python3, and compares every kind), their shapes,
 * which objects are garbage before and after the root goes, churn under
 * automatic collection, and bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_graph, .fini = fini, .timeout = 120);

static shr_heap_t *make_heap(void)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);   /* no automatic collection */
    return h;
}

static int64_t collect(shr_heap_t *h)
{
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect(h, 2, &r);
    cr_assert_geq(n, 0);
    cr_assert_eq(r.uncollectable, 0);
    return n;
}

struct expect { const char *kind; uint64_t n, live, garbage, edges, digest; };
/* From /usr/bin/python3 bench/gc/cpython_gc.py --digest KIND:N (lists, seed 42). */
static const struct expect expected[] = {
    {"live_flat", 1000, 1001, 0, 1000, 0x2ed4fc6d332f74d0ull},
    {"live_graph", 1000, 1001, 0, 1479, 0x191b9af86238e967ull},
    {"ring2", 1000, 0, 1000, 1000, 0x633f0979dd398a28ull},
    {"ring100", 1000, 0, 1000, 1000, 0x190d5f71560df9f0ull},
    {"mix", 1000, 801, 200, 1373, 0x435579c60f8d03eaull},
    {"mix", 100000, 80001, 20000, 140024, 0x6b488dc4124fd6f1ull},
    {"tree", 1000, 1001, 0, 1000, 0x0764c28cd738efc0ull},
    {"churn", 1000, 101, 485, 1715, 0xd4d02201be161eafull},
};

Test(gc_graph, same_graphs_as_cpython_and_their_garbage, .timeout = 300)
{
    shr_heap_t *h = make_heap();
    shr_ref_t warm;   /* this process's lease table first: the baseline */
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 0, 0, &warm), 0);
    shr_obj_release(h, warm);
    uint64_t base = shr_test_blocks_in_use(h);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const struct expect *e = &expected[i];
        shr_graph_info_t gi = {.size = sizeof gi};
        shr_ref_t root = {1};
        int kind = shr_graph_kind(e->kind);
        cr_assert_gt(kind, 0);
        cr_assert_str_eq(shr_graph_name(kind), e->kind);
        cr_assert_eq(shr_graph_build(h, kind, e->n, 42, &root, &gi), 0, "%s", e->kind);
        cr_assert_eq(gi.live, e->live, "%s live %llu", e->kind, (unsigned long long)gi.live);
        cr_assert_eq(gi.garbage, e->garbage, "%s garbage %llu", e->kind, (unsigned long long)gi.garbage);
        int churn = strcmp(e->kind, "churn") == 0;
        if (churn)   /* the table objects replaced were freed by counts */
            cr_assert_eq(gi.objects, 1 + (e->live - 1) + e->n);
        else
            cr_assert_eq(gi.objects, e->live + e->garbage);
        cr_assert_eq(gi.edges, e->edges, "%s edges %llu", e->kind, (unsigned long long)gi.edges);
        cr_assert_eq(gi.digest, e->digest, "%s digest %016llx", e->kind, (unsigned long long)gi.digest);
        cr_assert_eq(root.off != 0, e->live != 0);
        int64_t count[3];
        cr_assert_eq(shr_gc_get_count(h, count), 0);
        /* The garbage is exactly what the first collection frees; the live
         * part survives it and goes with its root. */
        cr_assert_eq(collect(h), (int64_t)e->garbage, "%s", e->kind);
        cr_assert_eq(collect(h), 0);
        if (root.off && churn) {
            /* Every live object holds the root: all of them are one cycle. */
            shr_obj_release(h, root);
            cr_assert_eq(collect(h), (int64_t)e->live);
        } else if (root.off) {
            if (strcmp(e->kind, "live_flat") == 0 || strcmp(e->kind, "tree") == 0) {
                cr_assert_eq(shr_obj_refcount(h, root), 1);   /* acyclic: freed at once */
                shr_obj_release(h, root);
                cr_assert_eq(collect(h), 0);
            } else {
                /* What the release frees by counts is not the collector's. */
                shr_obj_release(h, root);
                int64_t n = collect(h);
                cr_assert(n > 0 && n <= (int64_t)e->live, "%s: %lld", e->kind, (long long)n);
            }
        }
        cr_assert_eq(collect(h), 0);
        cr_assert_eq(shr_test_blocks_in_use(h), base, "%s leaves blocks", e->kind);
        cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    }
    shr_heap_close(h);
}

Test(gc_graph, shapes)
{
    shr_heap_t *h = make_heap();
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_ref_t root, a, b;
    /* live_flat: the root holds n empty nodes, in order. */
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_LIVE_FLAT, 5, 1, &root, &gi), 0);
    cr_assert_eq(gi.objects, 6);
    for (uint32_t i = 0; i < 5; i++) {
        cr_assert_eq(shr_obj_get(h, root, i, &a), 0);
        cr_assert_neq(a.off, 0);
        cr_assert_eq(shr_obj_refcount(h, a), 2);   /* the slot and our reference */
        cr_assert_lt(shr_obj_get(h, a, 0, &b), 0);   /* no slots */
        shr_obj_release(h, a);
    }
    shr_obj_release(h, root);
    /* live_graph over 2 nodes: l_1 under l_0 (U(1) = 0); root = [l_0]. */
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_LIVE_GRAPH, 2, 42, &root, &gi), 0);
    cr_assert_eq(gi.objects, 3);
    cr_assert_eq(shr_obj_get(h, root, 0, &a), 0);
    cr_assert_eq(shr_obj_get(h, a, 0, &b), 0);
    cr_assert_neq(b.off, 0);
    shr_obj_release(h, b);
    shr_obj_release(h, a);
    shr_obj_release(h, root);
    collect(h);
    /* mix: live nodes carry 1000 + i. */
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_MIX, 10, 42, &root, &gi), 0);
    cr_assert_eq(gi.live, 9);
    cr_assert_eq(gi.garbage, 2);
    cr_assert_eq(shr_obj_get(h, root, 0, &a), 0);
    size_t len = 0;
    int64_t v;
    memcpy(&v, shr_obj_payload(h, a, &len), sizeof v);
    cr_assert_eq(len, 8);
    cr_assert_eq(v, 1000);
    shr_obj_release(h, a);
    cr_assert_eq(collect(h), 2);    /* the ring of 2 */
    shr_obj_release(h, root);
    collect(h);
    cr_assert_eq(collect(h), 0);
    /* tree: l_i holds l_{2i+1} and l_{2i+2}; 4 nodes: l_1 holds l_3 only. */
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_TREE, 4, 0, &root, &gi), 0);
    cr_assert_eq(gi.edges, 4);
    cr_assert_eq(shr_obj_get(h, root, 0, &a), 0);
    cr_assert_eq(shr_obj_get(h, a, 0, &b), 0);
    shr_ref_t c, x;
    cr_assert_eq(shr_obj_get(h, b, 0, &c), 0);
    cr_assert_neq(c.off, 0);
    cr_assert_lt(shr_obj_get(h, b, 1, &x), 0);   /* one slot: l_4 would be past n */
    shr_obj_release(h, c);
    shr_obj_release(h, b);
    shr_obj_release(h, a);
    shr_obj_release(h, root);
    cr_assert_eq(collect(h), 0);   /* acyclic: freed by counts */
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(gc_graph, splitmix64_is_vignas)
{
    uint64_t s = 42;
    cr_assert_eq(shr_graph_splitmix64(&s), 0xbdd732262feb6e95ull);
    cr_assert_eq(shr_graph_splitmix64(&s), 0x28efe333b266f103ull);
    cr_assert_eq(shr_graph_splitmix64(&s), 0x47526757130f9f52ull);
}

Test(gc_graph, bad_input_changes_nothing)
{
    shr_heap_t *h = make_heap();
    shr_graph_info_t gi = {.size = sizeof gi}, bad = {.size = 3};
    shr_ref_t root = {0};
    uint64_t before = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_graph_kind("nope"), -ENOENT);
    cr_assert_eq(shr_graph_kind(NULL), -EINVAL);
    cr_assert_null(shr_graph_name(0));
    cr_assert_null(shr_graph_name(99));
    cr_assert_null(shr_graph_name(SHR_GRAPH_CHURN + 1));
    cr_assert_str_eq(shr_graph_name(SHR_GRAPH_CHURN), "churn");
    cr_assert_eq(shr_graph_build(h, 0, 10, 1, &root, &gi), -ENOENT);
    cr_assert_eq(shr_graph_build(h, 99, 10, 1, &root, &gi), -ENOENT);
    cr_assert_eq(shr_graph_build(NULL, SHR_GRAPH_RING2, 10, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_RING2, 10, 1, NULL, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_RING2, 10, 1, &root, &bad), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_LIVE_FLAT, 0, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_LIVE_FLAT, (uint64_t)SHR_GRAPH_MAX_N + 1, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_RING100, 99, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_RING2, 1, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_MIX, 9, 1, &root, &gi), -EINVAL);
    cr_assert_eq(shr_test_blocks_in_use(h), before);
    cr_assert_eq(collect(h), 0);
    shr_heap_close(h);
}

/* ---- against CPython's side, run now --------------------------------------- */

/* Run cpython_gc.py --digest and read its JSON line's fields; 0, or -1 when
 * the run failed. */
static int py_digest(const char *spec, const char *extra, struct expect *out)
{
    char cmd[1024], line[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --digest %s --seed 42 %s", SHR_CPYTHON_GC_PY, spec, extra);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int got = fgets(line, sizeof line, p) != NULL;
    int st = pclose(p);
    if (!got || st != 0)
        return -1;
    unsigned long long live, garbage, edges, digest;
    const char *q = strstr(line, "\"live\": ");
    cr_assert(q && sscanf(q, "\"live\": %llu, \"garbage\": %llu, \"edges\": %llu, \"digest\": \"0x%llx\"", &live,
                          &garbage, &edges, &digest) == 4, "cannot read: %s", line);
    out->live = live;
    out->garbage = garbage;
    out->edges = edges;
    out->digest = digest;
    return 0;
}

/* Every kind, and churn with other parameters, built by both sides: the same
 * counts and edge digest. The table above pins the values; this compares
 * with the CPython side as it is in the tree now. */
Test(gc_graph, digests_equal_cpythons_side_run_now, .timeout = 300)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    cr_assert_eq(access(SHR_CPYTHON_GC_PY, R_OK), 0, "%s", SHR_CPYTHON_GC_PY);
    struct { const char *kind; uint64_t n; uint64_t live; uint32_t pct, cycle; } cases[] = {
        {"live_flat", 3000, 0, 0, 0}, {"live_graph", 5000, 0, 0, 0}, {"ring2", 3000, 0, 0, 0},
        {"ring100", 5000, 0, 0, 0},   {"mix", 5000, 0, 0, 0},        {"tree", 3000, 0, 0, 0},
        {"churn", 20000, 0, 50, 10},  {"churn", 20000, 37, 90, 1},   {"churn", 5000, 1, 0, 3},
        {"churn", 5000, 500, 100, 7}, {"churn", 999, 10, 25, 1000},
    };
    shr_heap_t *h = make_heap();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char spec[64], extra[128] = "";
        struct expect py;
        snprintf(spec, sizeof spec, "%s:%" PRIu64, cases[i].kind, cases[i].n);
        shr_graph_info_t gi = {.size = sizeof gi};
        shr_ref_t root;
        int churn = strcmp(cases[i].kind, "churn") == 0;
        if (churn) {
            shr_graph_churn_t c = SHR_GRAPH_CHURN_INIT;
            c.live = cases[i].live;
            c.garbage_pct = cases[i].pct;
            c.cycle = cases[i].cycle;
            snprintf(extra, sizeof extra, "--churn-live %" PRIu64 " --churn-rate %u --churn-cycle %u", c.live,
                     c.garbage_pct, c.cycle);
            cr_assert_eq(shr_graph_build_churn(h, cases[i].n, 42, &c, &root, &gi), 0, "%s %s", spec, extra);
        } else {
            cr_assert_eq(shr_graph_build(h, shr_graph_kind(cases[i].kind), cases[i].n, 42, &root, &gi), 0);
        }
        cr_assert_eq(py_digest(spec, extra, &py), 0, "cpython_gc.py --digest %s %s failed", spec, extra);
        cr_assert_eq(gi.live, py.live, "%s %s: live %llu, CPython %llu", spec, extra, (unsigned long long)gi.live,
                     (unsigned long long)py.live);
        cr_assert_eq(gi.garbage, py.garbage, "%s %s: garbage", spec, extra);
        cr_assert_eq(gi.edges, py.edges, "%s %s: edges", spec, extra);
        cr_assert_eq(gi.digest, py.digest, "%s %s: digest %016llx, CPython %016llx", spec, extra,
                     (unsigned long long)gi.digest, (unsigned long long)py.digest);
        if (root.off)
            shr_obj_release(h, root);
        collect(h);
    }
    cr_assert_eq(collect(h), 0);
    shr_heap_close(h);
}

/* ---- churn ----------------------------------------------------------------- */

struct progress { uint64_t calls, last; int64_t max_objects; int bad; };

static void on_progress(shr_heap_t *h, uint64_t done, void *arg)
{
    struct progress *p = arg;
    if (done != p->last + 1000)
        p->bad = 1;
    p->last = done;
    p->calls++;
    int64_t n = shr_gc_get_objects(h, -1, NULL, 0);   /* the heap may be used here */
    if (n < 0)
        p->bad = 1;
    if (n > p->max_objects)
        p->max_objects = n;
}

Test(gc_graph, churn_stream_and_its_garbage)
{
    shr_heap_t *h = make_heap();
    shr_ref_t root, a, b;
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_graph_churn_t c = SHR_GRAPH_CHURN_INIT;
    struct progress pr = {0};
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 0, 0, &a), 0);   /* the lease table first */
    shr_obj_release(h, a);
    uint64_t base = shr_test_blocks_in_use(h);
    /* All garbage, rings of 3: 10,000 objects, 3,334 rings (the last of 1). */
    c.live = 5;
    c.garbage_pct = 100;
    c.cycle = 3;
    c.every = 1000;
    c.progress = on_progress;
    c.arg = &pr;
    cr_assert_eq(shr_graph_build_churn(h, 10000, 7, &c, &root, &gi), 0);
    cr_assert(pr.calls == 10 && !pr.bad && pr.last == 10000, "progress: %llu calls", (unsigned long long)pr.calls);
    cr_assert_eq(pr.max_objects, 6 + 10000, "automatic collection off: nothing freed during the build");
    cr_assert_eq(gi.objects, 6 + 10000);
    cr_assert_eq(gi.live, 6);
    cr_assert_eq(gi.garbage, 10000);
    cr_assert_eq(gi.edges, 2 * 5 + 10000);
    cr_assert_eq(collect(h), 10000);
    /* The table: x_j = [root], root[j] = x_j. */
    cr_assert_eq(shr_obj_get(h, root, 4, &a), 0);
    cr_assert_eq(shr_obj_get(h, a, 0, &b), 0);
    cr_assert_eq(b.off, root.off);
    shr_obj_release(h, b);
    shr_obj_release(h, a);
    shr_obj_release(h, root);
    cr_assert_eq(collect(h), 6);
    /* No garbage: the replaced table objects go by counts; cycle 1: a node
     * that holds itself. */
    c = (shr_graph_churn_t)SHR_GRAPH_CHURN_INIT;
    c.live = 100;
    c.garbage_pct = 0;
    cr_assert_eq(shr_graph_build_churn(h, 5000, 7, &c, &root, &gi), 0);
    cr_assert_eq(gi.garbage, 0);
    cr_assert_eq(shr_gc_get_objects(h, -1, NULL, 0), 101, "only the table is left");
    shr_obj_release(h, root);
    cr_assert_eq(collect(h), 101);
    c.garbage_pct = 100;
    c.cycle = 1;
    c.live = 1;
    cr_assert_eq(shr_graph_build_churn(h, 10, 7, &c, &root, &gi), 0);
    cr_assert_eq(gi.edges, 2 + 10);
    cr_assert_eq(collect(h), 10);
    shr_obj_release(h, root);
    cr_assert_eq(collect(h), 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* With automatic collection on, the collector keeps the garbage bounded:
 * the objects in the heap never exceed the live table plus a few young
 * generations' worth, however long the stream. */
Test(gc_graph, churn_with_automatic_collection_stays_bounded, .timeout = 300)
{
    shr_heap_t *h = make_heap();
    uint32_t thr[3] = {2000, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, thr), 0);
    shr_gc_stats_t st;
    shr_ref_t root;
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_graph_churn_t c = SHR_GRAPH_CHURN_INIT;
    struct progress pr = {0};
    c.live = 1000;
    c.garbage_pct = 80;
    c.cycle = 10;
    c.every = 1000;
    c.progress = on_progress;
    c.arg = &pr;
    cr_assert_eq(shr_graph_build_churn(h, 200000, 3, &c, &root, &gi), 0);
    cr_assert(!pr.bad);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_gt(st.gen[0].collections, 50, "automatic young collections ran");
    cr_assert_gt(st.gen[0].collected + st.gen[1].collected + st.gen[2].collected, 150000);
    /* 160,000 garbage objects made; never more than the table and some
     * thresholds' worth present at once. */
    cr_assert_lt(pr.max_objects, 1001 + 4 * 2000, "objects in the heap: %lld", (long long)pr.max_objects);
    shr_obj_release(h, root);
    cr_assert_eq(shr_gc_set_threshold(h, (uint32_t[3]){0, 10, 10}), 0);
    collect(h);
    cr_assert_eq(shr_gc_get_objects(h, -1, NULL, 0), 0);
    shr_heap_close(h);
}

Test(gc_graph, churn_bad_parameters_change_nothing)
{
    shr_heap_t *h = make_heap();
    shr_graph_info_t gi = {.size = sizeof gi};
    shr_graph_churn_t ok = SHR_GRAPH_CHURN_INIT, c;
    shr_ref_t root = {0};
    uint64_t before = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, NULL, &root, &gi), -EINVAL);
    c = ok, c.size = 8;
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &c, &root, &gi), -EINVAL);
    c = ok, c.garbage_pct = 101;
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &c, &root, &gi), -EINVAL);
    c = ok, c.cycle = 0;
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &c, &root, &gi), -EINVAL);
    c = ok, c.cycle = SHR_GRAPH_CYCLE_MAX + 1;
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &c, &root, &gi), -EINVAL);
    c = ok, c.live = (uint64_t)SHR_GRAPH_MAX_N + 1;
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &c, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build_churn(h, 0, 1, &ok, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build_churn(h, ((uint64_t)1 << 32) + 1, 1, &ok, &root, &gi), -EINVAL);
    cr_assert_eq(shr_graph_build_churn(h, 10, 1, &ok, NULL, &gi), -EINVAL);
    /* The default table for n = 2^32 would be above SHR_GRAPH_MAX_N slots. */
    cr_assert_eq(shr_graph_build(h, SHR_GRAPH_CHURN, (uint64_t)1 << 32, 1, &root, &gi), -EINVAL);
    cr_assert_eq(root.off, 0);
    cr_assert_eq(shr_test_blocks_in_use(h), before);
    cr_assert_eq(collect(h), 0);
    shr_heap_close(h);
}
