/* The object layer, white box: the collector's header bits (generations,
 * flagged garbage, types it cannot traverse), lease tables that grow and shrink with the
 * live references, a bounded wait on a stuck lease lock, and deaths stopped
 * at the leases' commit points (fault points, debug builds). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"
#include "list.h"

static void fini(void)
{
    shr_fault_disarm(NULL);
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    shr_test_cleanup();
}
TestSuite(gc_unit, .fini = fini, .timeout = 120);

#define NEED_FAULTS()                                                                  \
    do {                                                                               \
        if (!shr_fault_available()) cr_skip_test("fault points are compiled out");     \
    } while (0)

static shr_lease_stats_t stats(shr_heap_t *h)
{
    shr_lease_stats_t st;
    cr_assert_eq(shr_lease_stats(h, &st), 0);
    return st;
}

static uint64_t refcnt(shr_heap_t *h, shr_off_t off) { return obj_at(h, off)->refcnt; }

/* The offset of item i's object. */
static shr_off_t item_off(shr_list_t *l, uint64_t i)
{
    items_t *a = shr__ptr(shr_list_heap(l), l->obj->items);
    return a->it[i].val;
}

/* ---- size ---------------------------------------------------------------- */

Test(gc_unit, lease_table_grows_and_counts)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("x")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    static shr_value_t got[1000];
    for (int i = 0; i < 1000; i++) cr_assert_eq(shr_list_get(l, 0, &got[i]), 0);
    cr_assert_eq(shr__lease_count(h), 1001, "one entry, counted 1000 times, and the handle");
    strobj_t *s = shr__ptr(h, got[0].ref_);
    cr_assert_eq(s->ob.refcnt, 1001, "the list's reference and 1000 gets");
    for (int i = 0; i < 1000; i++) shr_value_release(h, &got[i]);
    cr_assert_eq(s->ob.refcnt, 1);
    cr_assert_eq(shr__lease_remove(h, 4096), -ENOENT, "removing what is not held is refused");
    shr_list_close(l);
    cr_assert_eq(shr__lease_count(h), 0);
    done(h);
}

Test(gc_unit, lease_table_shrinks_back_when_references_go)
{
    shr_heap_t *h = make_heap();
    enum { N = 20000 };
    shr_value_t *in = malloc(N * sizeof *in);
    char (*txt)[16] = malloc(N * sizeof *txt);
    for (int i = 0; i < N; i++) {
        snprintf(txt[i], sizeof txt[i], "s%d", i);
        in[i] = shr_str(txt[i]);
    }
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, N, &l), 0);
    uint64_t small = stats(h).table_entries;
    cr_assert_leq(small, LEASE_MIN, "one lease: the smallest table");
    shr_value_t *got = malloc(N * sizeof *got);
    for (int i = 0; i < N; i++) cr_assert_eq(shr_list_get(l, i, &got[i]), 0);
    shr_lease_stats_t peak = stats(h);
    cr_assert_eq(peak.leases, N + 1);
    cr_assert_geq(peak.table_entries, 2 * (N + 1), "LE1: at most half full");
    uint64_t blocks_peak = shr_test_blocks_in_use(h);
    for (int i = 0; i < N; i++) {
        shr_value_release(h, &got[i]);
        if (i % 97) continue; /* statistics walk the table: sample them */
        shr_lease_stats_t now = stats(h);
        uint64_t live = (uint64_t)(N - i); /* the handle and the gets not yet released */
        cr_assert_leq(now.table_entries, live * 8 > LEASE_MIN ? live * 8 : LEASE_MIN,
                      "LE4: %llu entries for %llu live leases", (unsigned long long)now.table_entries,
                      (unsigned long long)live);
    }
    cr_assert_eq(stats(h).leases, 1);
    cr_assert_eq(stats(h).table_entries, small, "back to the smallest table");
    cr_assert_eq(shr_test_blocks_in_use(h), blocks_peak, "the big table was replaced, not kept beside");
    shr_list_close(l);
    free(in);
    free(txt);
    free(got);
    done(h);
}

/* ---- a stuck lease lock ------------------------------------------------------ */

typedef struct {
    lease_area_t *a;
    shr_test_gate_t held, release;
} holder_t;

static void *hold_lease_lock(void *arg)
{
    holder_t *ho = arg;
    pthread_mutex_lock(&ho->a->mu);
    shr_test_gate_open(&ho->held);
    shr_test_gate_wait(&ho->release, 60000);
    pthread_mutex_unlock(&ho->a->mu);
    return NULL;
}

Test(gc_unit, a_stuck_lease_lock_ends_in_a_timeout_and_changes_nothing)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("leased")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    shr_off_t s = item_off(l, 0);
    holder_t ho = {.a = shr__seg_proc_area(h, SHR_LAYER_GC, h->proc)};
    shr_test_gate_init(&ho.held);
    shr_test_gate_init(&ho.release);
    pthread_t t;
    pthread_create(&t, NULL, hold_lease_lock, &ho);
    cr_assert(shr_test_gate_wait(&ho.held, 10000));
    setenv("SHARENA_LOCK_TIMEOUT_MS", "200", 1);
    shr_value_t v = shr_int(-7);
    cr_assert_eq(shr_list_get(l, 0, &v), SHR_ELOCKTIMEOUT, "a get that must lease waits, then gives up");
    cr_assert_eq(v.type, 0, "no value handed out");
    cr_assert_eq(refcnt(h, s), 1, "the reference taken for the get was given back");
    cr_assert_eq(shr_list_pop(l, 0, &v), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_list_len(l), 1, "the pop changed nothing");
    cr_assert_eq(refcnt(h, s), 1);
    shr_list_t *l2;
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &l2), SHR_ELOCKTIMEOUT, "a handle cannot be leased");
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    shr_test_gate_open(&ho.release);
    pthread_join(t, NULL);
    cr_assert_eq(shr_list_get(l, 0, &v), 0, "once released, the lease lock works");
    shr_value_release(h, &v);
    cr_assert_eq(stats(h).leases, 1);
    shr_list_close(l);
    cr_assert_eq(shr_test_blocks_in_use(h), 1, "only the lease table is left");
    done(h);
}

/* ---- deaths at the leases' commit points --------------------------------------- */

typedef struct {
    shr_list_t *l;
    const char *point;
    uint64_t nth;
    int (*op)(shr_list_t *l);
} crash_t;

static int crash_child(void *arg)
{
    crash_t *c = arg;
    if (shr_fault_arm(c->point, c->nth, SHR_FAULT_KILL) != 0) return 2;
    c->op(c->l);
    return 1;
}

static void crash_in(shr_list_t *l, const char *point, uint64_t nth, int (*op)(shr_list_t *))
{
    crash_t c = {l, point, nth, op};
    cr_assert_eq(shr_test_wait(shr_test_fork(crash_child, &c)), 128 + SIGKILL, "killed at %s", point);
}

static int get_3_times(shr_list_t *l)
{
    shr_value_t v[3];
    for (int i = 0; i < 3; i++)
        if (shr_list_get(l, 0, &v[i]) != 0) return 3;
    return 0;
}

Test(gc_unit, a_death_after_recording_a_lease_releases_it)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("s")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    shr_off_t s = item_off(l, 0);
    uint64_t released = stats(h).released_for_dead;
    crash_in(l, "lease.record", 2, get_3_times); /* two gets recorded */
    shr_heap_recover(h);
    cr_assert_eq(stats(h).released_for_dead - released, 2, "both recorded references released");
    cr_assert_eq(refcnt(h, s), 1, "the list's reference only");
    shr_list_close(l);
    done(h);
}

static int get_and_release(shr_list_t *l)
{
    shr_value_t v;
    if (shr_list_get(l, 0, &v) != 0) return 3;
    shr_value_release(shr_list_heap(l), &v);
    return 0;
}

Test(gc_unit, a_death_between_forgetting_and_decref_leaks_and_never_frees_twice)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("s")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    shr_off_t s = item_off(l, 0);
    uint64_t released = stats(h).released_for_dead;
    crash_in(l, "lease.forget", 1, get_and_release);
    shr_heap_recover(h);
    cr_assert_eq(stats(h).released_for_dead, released, "the forgotten lease is not replayed");
    cr_assert_eq(refcnt(h, s), 2, "the reference in flight leaks: counts only err upwards");
    shr_list_close(l);
    done(h);
}

static int hold_3_and_stop(shr_list_t *l)
{
    if (get_3_times(l) != 0) return 3;
    raise(SIGKILL);
    return 0;
}

static int recover_heap(shr_list_t *l)
{
    shr_heap_recover(shr_list_heap(l));
    return 0;
}

Test(gc_unit, a_drainer_that_dies_leaves_the_rest_for_the_next)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("s")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    shr_off_t s = item_off(l, 0);
    cr_assert_eq(shr_test_wait(shr_test_fork((int (*)(void *))hold_3_and_stop, l)), 128 + SIGKILL);
    cr_assert_eq(refcnt(h, s), 4, "three leases of a dead process");
    /* A second child drains them and dies after lowering the second count,
     * before its decref. */
    crash_in(l, "lease.drain", 2, recover_heap);
    cr_assert_eq(refcnt(h, s), 3, "one released before the death");
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 2, "the next drainer releases the third; the one in flight leaks");
    shr_list_close(l);
    done(h);
}

/* ---- a dead process's lease table from a file nobody has checked --------- */

/* The word that names the dead child's table: its process entry's, before
 * the registry reclaims the entry, else the dead queue's top. */
static _Atomic uint64_t *dead_table_word(shr_heap_t *h)
{
    for (uint32_t p = 0; p < h->max_procs; p++) {
        lease_area_t *a = shr__seg_proc_area(h, SHR_LAYER_GC, p);
        if (p != h->proc && a->table) return &a->table;
    }
    gc_global_t *g = shr__seg_global(h, SHR_LAYER_GC);
    cr_assert_neq(g->dead, 0, "the dead child's table is somewhere");
    return &g->dead;
}

/* A child holds three leases on item 0 and dies; *sp is the item. */
static shr_list_t *dead_holds_3(shr_heap_t *h, shr_off_t *sp)
{
    shr_value_t in[] = {shr_str("s")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    *sp = item_off(l, 0);
    cr_assert_eq(shr_test_wait(shr_test_fork((int (*)(void *))hold_3_and_stop, l)), 128 + SIGKILL);
    cr_assert_eq(refcnt(h, *sp), 4, "three leases of a dead process");
    return l;
}

/* After the damage is put back (or leaked): the heap still works. */
static void still_works(shr_heap_t *h, shr_list_t *l)
{
    shr_value_t v;
    cr_assert_eq(shr_list_get(l, 0, &v), 0);
    shr_value_release(h, &v);
    void *p = shr_malloc(h, 100);
    cr_assert_not_null(p);
    shr_free(h, p);
    shr_list_close(l);
}

Test(gc_unit, a_dead_table_offset_that_is_not_a_table_is_leaked_not_followed)
{
    static const uint64_t bad[] = {8, 12345, 4096 * 3 + 64};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        shr_heap_t *h = make_heap();
        shr_off_t s;
        shr_list_t *l = dead_holds_3(h, &s);
        _Atomic uint64_t *w = dead_table_word(h);
        /* The segment's last word, a misaligned offset, a pool header. */
        *w = bad[i] == 8 ? h->capacity - 8 : bad[i];
        shr_heap_recover(h);
        cr_assert_eq(refcnt(h, s), 4, "nothing released through offset %llu", (unsigned long long)*w);
        still_works(h, l);
        shr_heap_close(h);
    }
}

Test(gc_unit, a_dead_table_with_a_damaged_cap_is_leaked_not_walked)
{
    shr_heap_t *h = make_heap();
    shr_off_t s;
    shr_list_t *l = dead_holds_3(h, &s);
    lease_table_t *t = shr__ptr(h, *dead_table_word(h));
    uint64_t cap = t->cap;
    t->cap = (uint64_t)1 << 40;
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 4, "nothing released through a table past its block");
    t->cap = cap + 1; /* not a power of two */
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 4);
    still_works(h, l);
    shr_heap_close(h);
}

Test(gc_unit, a_dead_table_in_a_damaged_pool_is_leaked_not_freed)
{
    shr_heap_t *h = make_heap();
    shr_off_t s;
    shr_list_t *l = dead_holds_3(h, &s);
    uint64_t toff = *dead_table_word(h);
    uint32_t k = chunk_table(h)[toff >> SHR_CHUNK_SHIFT].kind;
    pool_header_t *pool = pool_at(h, pool_hdr_of(toff, arena_pool_shift(h, k)));
    uint32_t next = pool->nextoffset;
    pool->nextoffset = pool_first(toff & ~(((uint64_t)1 << arena_pool_shift(h, k)) - 1)); /* the table's block was never carved */
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 4, "a table the allocator would refuse is not used");
    pool->nextoffset = next;
    still_works(h, l);
    shr_heap_close(h);
}

Test(gc_unit, a_dead_queue_that_loops_is_cut_and_each_table_freed_once)
{
    shr_heap_t *h = make_heap();
    shr_off_t s;
    shr_list_t *l = dead_holds_3(h, &s);
    _Atomic uint64_t *w = dead_table_word(h);
    gc_global_t *g = shr__seg_global(h, SHR_LAYER_GC);
    uint64_t toff = *w;
    *w = 0;
    ((lease_table_t *)shr__ptr(h, toff))->next = toff; /* the table points at itself */
    g->dead = toff;
    shr_heap_recover(h);
    cr_assert_eq(g->dead, 0);
    cr_assert_eq(refcnt(h, s), 1, "the three leases released once");
    still_works(h, l);
    done(h);
}

Test(gc_unit, a_dead_lease_entry_that_is_not_an_object_is_skipped)
{
    shr_heap_t *h = make_heap();
    shr_off_t s;
    shr_list_t *l = dead_holds_3(h, &s);
    lease_table_t *t = shr__ptr(h, *dead_table_word(h));
    uint64_t i = 0;
    while (t->e[i].off != s) i++;
    t->e[i].off = s + 8; /* inside the object, not one */
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 4, "nothing released through a damaged entry");
    still_works(h, l);
    shr_heap_close(h);
}

Test(gc_unit, a_free_process_entry_left_with_a_table_word_is_not_trusted_by_its_next_claimer)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("s")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    shr_off_t s = item_off(l, 0);
    for (uint32_t p = 0; p < h->max_procs; p++)
        if (p != h->proc) ((lease_area_t *)shr__seg_proc_area(h, SHR_LAYER_GC, p))->table = 12345;
    /* The child claims a free entry and records leases in its own table. */
    cr_assert_eq(shr_test_wait(shr_test_fork((int (*)(void *))get_and_release, l)), 0);
    shr_heap_recover(h);
    cr_assert_eq(refcnt(h, s), 1);
    for (uint32_t p = 0; p < h->max_procs; p++)
        if (p != h->proc) ((lease_area_t *)shr__seg_proc_area(h, SHR_LAYER_GC, p))->table = 0;
    still_works(h, l);
    done(h);
}

/* ---- the cycle collector's header bits ------------------------------------ */

static shr_ref_t unode(shr_heap_t *h)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &r), 0);
    return r;
}

static uint32_t flags_of(shr_heap_t *h, shr_ref_t r) { return obj_at(h, r.off)->flags; }

Test(gc_unit, generation_bits_move_with_each_collection)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = unode(h);
    cr_assert_eq(flags_of(h, a), OBJ_TRACKED, "a new container: tracked, generation 0");
    cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    cr_assert_eq(flags_of(h, a), OBJ_TRACKED | 1u << OBJ_GEN_SHIFT);
    cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    cr_assert_eq(obj_gen(flags_of(h, a)), 1, "a young collection leaves generation 1 alone");
    cr_assert_eq(shr_gc_collect(h, 1, NULL), 0);
    cr_assert_eq(obj_gen(flags_of(h, a)), 2);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 0);
    cr_assert_eq(obj_gen(flags_of(h, a)), 2, "2 stays 2");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &l), 0);
    shr_value_t s = shr_str("untracked");
    cr_assert_eq(shr_list_append(l, &s), 0);
    cr_assert_eq(obj_at(h, item_off(l, 0))->flags, 0, "a str is not a container");
    cr_assert_eq(obj_at(h, l->off)->flags, OBJ_TRACKED);
    shr_list_close(l);
    shr_obj_release(h, a);
    done(h);
}

/* What a collector killed in the middle of a clear leaves: both objects
 * flagged garbage, one slot detached without its release (b's count one
 * too high). The next collection frees them whatever their counts, in any
 * generation. */
Test(gc_unit, flagged_garbage_is_freed_whatever_its_count)
{
    shr_heap_t *h = make_heap();
    shr_ref_t warm = unode(h);
    shr_obj_release(h, warm);
    uint64_t base = shr_test_blocks_in_use(h);
    shr_ref_t a = unode(h), b = unode(h);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    nodeobj_t *na = (nodeobj_t *)obj_at(h, a.off);
    obj_at(h, a.off)->flags = OBJ_TRACKED | 2u << OBJ_GEN_SHIFT | OBJ_GARBAGE;
    obj_at(h, b.off)->flags = OBJ_TRACKED | 2u << OBJ_GEN_SHIFT | OBJ_GARBAGE;
    cr_assert_eq(atomic_exchange(&na->slot[0], 0), b.off); /* detached, never released */
    cr_assert_eq(obj_at(h, b.off)->refcnt, 1, "one too high: nothing refers to b any more");
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 0, &r), 2, "a young collection finishes a dead one's garbage");
    cr_assert_eq(r.candidates, 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

Test(gc_unit, a_type_this_process_cannot_traverse_keeps_what_it_holds)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = unode(h), b = unode(h), c = unode(h);
    cr_assert_eq(shr_obj_set(h, b, 0, c), 0);
    cr_assert_eq(shr_obj_set(h, c, 0, b), 0); /* a ring a holds */
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    shr_obj_release(h, b);
    shr_obj_release(h, c);
    obj_at(h, a.off)->type = SHR_TYPE_USER_FIRST + 7; /* never declared */
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 2, &r), 0, "what it holds looks referenced: kept");
    cr_assert_eq(r.untraversable, 1);
    cr_assert_eq(r.candidates, 2);
    obj_at(h, a.off)->type = SHR_TYPE_NODE;
    shr_obj_release(h, a);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2, "the ring, once its holder is gone");
    done(h);
}
