/* The seeded graphs (shr_graph_build): the same graphs as CPython's side of
 * the benchmark (bench/gc/cpython_gc.py --digest KIND:N gives the counts and
 * digests below, seed 42), their shapes, which objects are garbage before
 * and after the root goes, and bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

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
        if (root.off) {
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
