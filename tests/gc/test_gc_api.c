/* Objects and the cycle collector through the public API: nodes, user
 * types, names, lists and nodes mixed, generations and thresholds, and bad
 * input that must change nothing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_api, .fini = fini, .timeout = 120);

static shr_ref_t node(shr_heap_t *h, uint32_t nslots, size_t payload)
{
    shr_ref_t r = {0};
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, nslots, payload, &r), 0);
    cr_assert_neq(r.off, 0);
    return r;
}

/* Blocks in use once this process has a lease table (made by its first
 * lease, kept at its smallest size after): what a test returns to. */
static uint64_t baseline(shr_heap_t *h)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &r), 0);
    shr_obj_release(h, r);
    return shr_test_blocks_in_use(h);
}

static int64_t collect(shr_heap_t *h, int gen)
{
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect(h, gen, &r);
    cr_assert_geq(n, 0, "collect(%d): %lld", gen, (long long)n);
    cr_assert_eq((int64_t)(r.collected + r.uncollectable), n);
    cr_assert_eq(r.generation, gen);
    return n;
}

Test(gc_api, node_slots_payload_and_refs)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 3, 100), b = node(h, 0, 0), got;
    size_t len = 1;
    char *p = shr_obj_payload(h, a, &len);
    cr_assert_not_null(p);
    cr_assert_eq(len, 100);
    for (int i = 0; i < 100; i++) cr_assert_eq(p[i], 0, "payload starts zeroed");
    memset(p, 'x', 100);
    cr_assert_not_null(shr_obj_payload(h, b, &len), "no payload: not NULL");
    cr_assert_eq(len, 0);
    cr_assert_eq(shr_obj_type(h, a), SHR_TYPE_NODE);
    cr_assert_eq(shr_obj_refcount(h, b), 1);
    cr_assert_eq(shr_obj_get(h, a, 1, &got), 0);
    cr_assert_eq(got.off, 0, "an empty slot");
    cr_assert_eq(shr_obj_set(h, a, 1, b), 0);
    cr_assert_eq(shr_obj_refcount(h, b), 2, "the slot holds one");
    cr_assert_eq(shr_obj_get(h, a, 1, &got), 0);
    cr_assert_eq(got.off, b.off);
    cr_assert_eq(shr_obj_refcount(h, b), 3);
    shr_obj_release(h, got);
    shr_ref_t d;
    cr_assert_eq(shr_obj_dup(h, a, &d), 0);
    cr_assert_eq(shr_obj_refcount(h, a), 2);
    shr_obj_release(h, d);
    shr_obj_release(h, b); /* the slot keeps it */
    cr_assert_eq(shr_obj_get(h, a, 1, &got), 0);
    cr_assert_eq(got.off, b.off);
    cr_assert_eq(shr_obj_set(h, a, 1, (shr_ref_t){0}), 0);
    cr_assert_eq(shr_obj_refcount(h, got), 1, "the slot let go");
    shr_obj_release(h, got);
    shr_obj_release(h, a);
    cr_assert_eq(collect(h, 2), 0, "nothing was cyclic");
    done(h);
}

Test(gc_api, bad_input_changes_nothing)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 2, 8), out = {0};
    uint64_t before = shr_test_blocks_in_use(h); /* a's lease made the table */
    cr_assert_eq(shr_obj_new(h, SHR_INT, 1, 0, &out), SHR_ETYPE, "a value tag is not a type");
    cr_assert_eq(shr_obj_new(h, SHR_LIST, 1, 0, &out), SHR_ETYPE);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_USER_FIRST, 1, 0, &out), SHR_ETYPE, "not declared");
    cr_assert_eq(shr_obj_new(h, 0, 1, 0, &out), SHR_ETYPE);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, (1u << 24) + 1, 0, &out), -EINVAL);
    cr_assert_eq(shr_obj_new(NULL, SHR_TYPE_NODE, 1, 0, &out), -EINVAL);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, NULL), -EINVAL);
    cr_assert_eq(shr_obj_set(h, a, 2, a), SHR_EINDEX, "slot out of range");
    cr_assert_eq(shr_obj_get(h, a, 7, &out), SHR_EINDEX);
    shr_ref_t bogus = {a.off + 16}, wild = {12345}, far = {~0ull & ~15ull};
    cr_assert_eq(shr_obj_set(h, bogus, 0, a), -EINVAL, "not a reference this process holds");
    cr_assert_eq(shr_obj_set(h, wild, 0, a), -EINVAL);
    cr_assert_eq(shr_obj_set(h, far, 0, a), -EINVAL);
    cr_assert_eq(shr_obj_set(h, a, 0, bogus), -EINVAL, "nor is the child");
    cr_assert_eq(shr_obj_get(h, (shr_ref_t){0}, 0, &out), -EINVAL);
    cr_assert_eq(shr_obj_dup(h, bogus, &out), -EINVAL);
    cr_assert_null(shr_obj_payload(h, bogus, NULL));
    cr_assert_eq(shr_obj_type(h, bogus), 0);
    shr_obj_release(h, bogus); /* ignored */
    shr_obj_release(h, wild);
    cr_assert_eq(shr_obj_publish(h, "", a), -EINVAL);
    cr_assert_eq(shr_obj_publish(h, NULL, a), -EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert_eq(shr_obj_publish(h, longname, a), -ENAMETOOLONG);
    cr_assert_eq(shr_obj_publish(h, "x", bogus), -EINVAL);
    cr_assert_eq(shr_obj_lookup(h, "nope", &out), -ENOENT);
    cr_assert_eq(shr_obj_unpublish(h, "nope"), -ENOENT);
    cr_assert_eq(shr_root_set(h, "plain", 4096), 0);
    cr_assert_eq(shr_obj_lookup(h, "plain", &out), SHR_ETYPE, "a root that holds no object");
    cr_assert_eq(shr_obj_unpublish(h, "plain"), SHR_ETYPE);
    cr_assert_eq(shr_gc_collect(h, 3, NULL), -EINVAL);
    cr_assert_eq(shr_gc_collect(h, -1, NULL), -EINVAL);
    shr_gc_result_t r = {.size = 4};
    cr_assert_eq(shr_gc_collect(h, 0, &r), -EINVAL, "a result too small to hold the counts");
    /* A released reference is no longer this process's. */
    shr_ref_t b = node(h, 1, 0), b2;
    cr_assert_eq(shr_obj_dup(h, b, &b2), 0);
    shr_obj_release(h, b);
    shr_obj_release(h, b2);
    cr_assert_eq(shr_obj_set(h, b, 0, a), -EINVAL, "use after release");
    cr_assert_eq(shr_obj_refcount(h, a), 1);
    cr_assert_eq(shr_test_blocks_in_use(h), before, "nothing was allocated or freed");
    shr_obj_release(h, a);
    done(h);
}

Test(gc_api, a_cycle_of_nodes_is_collected)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    for (int k = 0; k < 50; k++) {
        shr_ref_t a = node(h, 2, 32), b = node(h, 2, 32), c = node(h, 1, 0);
        cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
        cr_assert_eq(shr_obj_set(h, b, 0, c), 0);
        cr_assert_eq(shr_obj_set(h, c, 0, a), 0);
        cr_assert_eq(shr_obj_set(h, a, 1, a), 0, "a self-loop too");
        shr_obj_release(h, a);
        shr_obj_release(h, b);
        shr_obj_release(h, c);
    }
    cr_assert_eq(collect(h, 2), 150);
    cr_assert_eq(collect(h, 2), 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "every block went back");
    done(h);
}

Test(gc_api, what_is_reachable_survives)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 1, 8), b = node(h, 1, 8), held = node(h, 1, 8), hb = node(h, 1, 8);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    cr_assert_eq(shr_obj_publish(h, "ring", a), 0);
    cr_assert_eq(shr_obj_publish(h, "ring", b), -EEXIST);
    cr_assert_eq(shr_obj_set(h, held, 0, hb), 0);
    cr_assert_eq(shr_obj_set(h, hb, 0, held), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    shr_obj_release(h, hb); /* held keeps its lease */
    memcpy(shr_obj_payload(h, held, NULL), "survivor", 8);
    cr_assert_eq(collect(h, 0), 0, "a root and a lease keep their rings");
    cr_assert_eq(collect(h, 2), 0);
    shr_ref_t r;
    cr_assert_eq(shr_obj_lookup(h, "ring", &r), 0);
    shr_ref_t nx;
    cr_assert_eq(shr_obj_get(h, r, 0, &nx), 0);
    cr_assert_eq(nx.off, b.off);
    shr_obj_release(h, nx);
    cr_assert_eq(memcmp(shr_obj_payload(h, held, NULL), "survivor", 8), 0);
    shr_list_t *l;
    cr_assert_eq(shr_list_attach(h, "ring", &l), SHR_ETYPE, "a node's name is not a list");
    cr_assert_eq(shr_obj_unpublish(h, "ring"), 0);
    shr_obj_release(h, r);
    shr_obj_release(h, held);
    cr_assert_eq(collect(h, 2), 4);
    done(h);
}

Test(gc_api, lists_and_nodes_mix)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_list_t *l, *l2;
    cr_assert_eq(shr_list_create(h, "mixed", NULL, 0, &l), 0);
    shr_ref_t n = node(h, 1, 0), lr;
    cr_assert_eq(shr_list_ref(l, &lr), 0);
    cr_assert_eq(shr_obj_type(h, lr), SHR_OBJ_LIST);
    cr_assert_eq(shr_obj_set(h, n, 0, lr), 0, "a node holds a list");
    shr_value_t v = shr_refval(n);
    cr_assert_eq(shr_list_append(l, &v), 0, "a list holds a node");
    v = shr_int(7);
    cr_assert_eq(shr_list_append(l, &v), 0);
    shr_value_t got;
    cr_assert_eq(shr_list_get(l, 0, &got), 0);
    cr_assert_eq(got.type, SHR_REF);
    cr_assert_eq(got.u.ref.off, n.off);
    shr_value_release(h, &got);
    size_t cnt = 0, at = 9;
    v = shr_refval(n);
    cr_assert_eq(shr_list_count(l, &v, &cnt), 0);
    cr_assert_eq(cnt, 1);
    cr_assert_eq(shr_list_index(l, &v, &at), 0);
    cr_assert_eq(at, 0);
    char *s = shr_list_repr(l);
    cr_assert_not_null(s);
    char want[80];
    snprintf(want, sizeof want, "ShareableList([<sharena.node at 0x%llx>, 7], name='mixed')",
             (unsigned long long)n.off);
    cr_assert_str_eq(s, want);
    free(s);
    s = shr_list_format(l);
    cr_assert_str_eq(s, "Qq");
    free(s);
    /* A ref to a list is stored as the list. */
    v = shr_refval(lr);
    cr_assert_eq(shr_list_append(l, &v), 0);
    cr_assert_eq(shr_list_get(l, 2, &got), 0);
    cr_assert_eq(got.type, SHR_LIST);
    shr_value_release(h, &got);
    cr_assert_eq(shr_list_from_ref(h, lr, &l2), 0);
    cr_assert_eq(shr_list_len(l2), 3);
    cr_assert_eq(shr_list_close(l2), 0);
    cr_assert_eq(shr_list_from_ref(h, n, &l2), SHR_ETYPE, "a node is not a list");
    cr_assert_eq(shr_list_from_ref(h, (shr_ref_t){n.off + 16}, &l2), -EINVAL);
    cr_assert_eq(shr_obj_lookup(h, "mixed", &got.u.ref), 0, "a list's name gives its ref");
    cr_assert_eq(got.u.ref.off, lr.off);
    shr_obj_release(h, got.u.ref);
    /* Drop every outside reference: the list <-> node cycle is garbage. */
    shr_obj_release(h, n);
    shr_obj_release(h, lr);
    cr_assert_eq(shr_list_unlink(h, "mixed"), 0);
    cr_assert_eq(shr_list_close(l), 0);
    cr_assert_eq(collect(h, 2), 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

Test(gc_api, a_cycle_of_lists_is_collected)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    for (int k = 0; k < 20; k++) {
        shr_list_t *a, *b;
        cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &a), 0);
        cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &b), 0);
        shr_value_t va = shr_listval(a), vb = shr_listval(b), s = shr_str("a string item");
        cr_assert_eq(shr_list_append(a, &vb), 0);
        cr_assert_eq(shr_list_append(b, &va), 0);
        cr_assert_eq(shr_list_append(a, &s), 0);
        for (int i = 0; i < 20; i++) cr_assert_eq(shr_list_append(b, &vb), 0, "grows: retired arrays too");
        shr_list_close(a);
        shr_list_close(b);
    }
    cr_assert_eq(collect(h, 1), 40);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "the strings and item arrays went too");
    done(h);
}

Test(gc_api, big_nodes_keep_their_slots_out_of_line)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t a = node(h, 5000, 100000), b = node(h, 3000, 0);
    size_t len;
    char *p = shr_obj_payload(h, a, &len);
    cr_assert_eq(len, 100000);
    memset(p, 1, len);
    cr_assert_eq(shr_obj_set(h, a, 4999, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 2999, a), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(collect(h, 0), 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

Test(gc_api, user_types)
{
    shr_heap_t *h = make_heap();
    uint32_t id, id2, ns;
    size_t pl;
    char name[SHR_TYPE_NAME_MAX + 1];
    cr_assert_eq(shr_obj_type_declare(h, "pair", 2, 24, &id), 0);
    cr_assert_geq(id, SHR_TYPE_USER_FIRST);
    cr_assert_eq(shr_obj_type_declare(h, "pair", 2, 24, &id2), 0);
    cr_assert_eq(id2, id, "the same layout: the same type");
    cr_assert_eq(shr_obj_type_declare(h, "pair", 3, 24, &id2), -EEXIST);
    cr_assert_eq(shr_obj_type_declare(h, "", 3, 24, &id2), -EINVAL);
    cr_assert_eq(shr_obj_type_declare(h, "a-name-longer-than-thirty-one-bytes", 1, 0, &id2), -ENAMETOOLONG);
    cr_assert_eq(shr_obj_type_lookup(h, "pair", &id2), 0);
    cr_assert_eq(id2, id);
    cr_assert_eq(shr_obj_type_lookup(h, "triple", &id2), -ENOENT);
    cr_assert_eq(shr_obj_type_info(h, id, name, &ns, &pl), 0);
    cr_assert_str_eq(name, "pair");
    cr_assert_eq(ns, 2);
    cr_assert_eq(pl, 24);
    cr_assert_eq(shr_obj_type_info(h, id + 1, name, &ns, &pl), SHR_ETYPE);
    shr_ref_t a, b, out;
    cr_assert_eq(shr_obj_new(h, id, 1, 24, &out), -EINVAL, "not the declared layout");
    cr_assert_eq(shr_obj_new(h, id, 2, 24, &a), 0);
    cr_assert_eq(shr_obj_new(h, id, 2, 24, &b), 0);
    cr_assert_eq(shr_obj_type(h, a), id);
    cr_assert_eq(shr_obj_set(h, a, 1, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &l), 0);
    shr_value_t v = shr_refval(a);
    cr_assert_eq(shr_list_append(l, &v), 0);
    char *s = shr_list_repr(l), want[80];
    snprintf(want, sizeof want, "ShareableList([<sharena.pair at 0x%llx>], name=None)", (unsigned long long)a.off);
    cr_assert_str_eq(s, want);
    free(s);
    shr_list_close(l);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(collect(h, 2), 2, "the list went with its handle; the pair is a cycle");
    done(h);
}

Test(gc_api, generations_counts_and_thresholds)
{
    shr_heap_t *h = make_heap();
    uint32_t t[3];
    int64_t c[3];
    cr_assert_eq(shr_gc_get_threshold(h, t), 0);
    cr_assert_eq(t[0], 2000, "CPython 3.13's defaults");
    cr_assert_eq(t[1], 10);
    cr_assert_eq(t[2], 10);
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0, "0 disables automatic collections");
    /* Counts are folded in batches of 64 per thread. */
    shr_ref_t keep = node(h, 1, 0);
    for (int i = 0; i < 640; i++) {
        shr_ref_t a = node(h, 1, 0), b = node(h, 1, 0);
        shr_obj_set(h, a, 0, b);
        shr_obj_set(h, b, 0, a);
        shr_obj_release(h, a);
        shr_obj_release(h, b);
    }
    cr_assert_eq(shr_gc_get_count(h, c), 0);
    cr_assert_geq(c[0], 1280 - 64, "count[0] lags by at most a batch");
    cr_assert_leq(c[0], 1281);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[0].collections + st.gen[1].collections + st.gen[2].collections, 0, "disabled");
    cr_assert_eq(collect(h, 0), 1280);
    cr_assert_eq(shr_gc_get_count(h, c), 0);
    cr_assert_eq(c[0], 0);
    cr_assert_eq(c[1], 1, "one collection of generation 0");
    cr_assert_eq(collect(h, 1), 0);
    cr_assert_eq(shr_gc_get_count(h, c), 0);
    cr_assert_eq(c[1], 0);
    cr_assert_eq(c[2], 1);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[0].collections, 1);
    cr_assert_eq(st.gen[0].collected, 1280);
    cr_assert_eq(st.gen[1].collections, 1);
    cr_assert_eq(st.long_lived_pending, 1, "keep reached generation 2");
    cr_assert_eq(collect(h, 2), 0);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.long_lived_total, 1);
    cr_assert_eq(st.long_lived_pending, 0);
    /* Automatic: a low threshold collects as the garbage is made. */
    uint32_t low[3] = {100, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, low), 0);
    uint64_t base = baseline(h);
    for (int i = 0; i < 2000; i++) {
        shr_ref_t a = node(h, 1, 0), b = node(h, 1, 0);
        shr_obj_set(h, a, 0, b);
        shr_obj_set(h, b, 0, a);
        shr_obj_release(h, a);
        shr_obj_release(h, b);
    }
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_geq(st.gen[0].collections, 10, "collections of generation 0: %llu",
                  (unsigned long long)st.gen[0].collections);
    cr_assert_geq(st.gen[1].collections, 1);
    cr_assert_geq(st.gen[0].collected + st.gen[1].collected + st.gen[2].collected, 4000 - 200);
    cr_assert_leq(shr_test_blocks_in_use(h), base + 1000, "the garbage did not pile up");
    shr_obj_release(h, keep);
    done(h);
}

Test(gc_api, result_and_generation_bits)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 1, 0);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 0, &r), 0);
    cr_assert_eq(r.candidates, 1, "one container in generation 0");
    cr_assert_eq(shr_gc_collect(h, 0, &r), 0);
    cr_assert_eq(r.candidates, 0, "it moved to generation 1");
    cr_assert_eq(shr_gc_collect(h, 1, &r), 0);
    cr_assert_eq(r.candidates, 1);
    cr_assert_eq(shr_gc_collect(h, 1, &r), 0);
    cr_assert_eq(r.candidates, 0, "generation 2 now");
    cr_assert_eq(shr_gc_collect(h, 2, &r), 0);
    cr_assert_eq(r.candidates, 1);
    cr_assert_lt(r.ttsp_ns, r.pause_ns + 1);
    cr_assert_leq(r.pause_ns, r.total_ns);
    /* A caller that knows fewer fields gets only those. */
    struct { size_t size; int generation, reserved0; uint64_t collected, uncollectable, tail; } small;
    memset(&small, 0xab, sizeof small);
    small.size = offsetof(shr_gc_result_t, candidates);
    cr_assert_eq(shr_gc_collect(h, 2, (shr_gc_result_t *)&small), 0);
    cr_assert_eq(small.collected, 0);
    cr_assert_eq(small.tail, 0xababababababababull, "nothing written past its size");
    shr_obj_release(h, a);
    done(h);
}

Test(gc_api, a_guarded_heap_keeps_its_containers_in_guarded_blocks)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_GUARDS;
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    shr_list_t *l, *again;
    cr_assert_eq(shr_list_create(h, "guarded", NULL, 0, &l), 0);
    shr_ref_t a = node(h, 1, 8);
    shr_value_t v = shr_refval(a);
    cr_assert_eq(shr_list_append(l, &v), 0);
    cr_assert_eq(shr_list_attach(h, "guarded", &again), 0, "the named list checks as a list");
    shr_list_close(again);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "every container has its guards");
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 2, &r), 0);
    cr_assert_eq(r.candidates, 0, "not in object pools: the collector does not see them");
    shr_obj_release(h, a);
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "guarded"), 0);
    done(h);
}
