/* Young collections walk only the object pools whose young hint is set
 * (alloc.h, Y1; docs/design/gc.md §3). A hint missing for a pool that holds
 * a young object would leave that object unexamined: its cycles would leak
 * until a full collection. So: young cycles made by several threads and
 * processes, in pools that also hold old objects, are all freed by
 * collect(0); objects made after a collection cleared a pool's hint are
 * found; survivors of a young collection are found by the next collection
 * of generation 1; a creator killed between the hint and the commit leaves
 * nothing wrong (shr_gc_verify); and the walk of a young collection does
 * not enter the pools of old objects. White box (INTERNAL): the hints are
 * read, and a creation is stopped between them and the commit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"
#include "gc.h" /* obj_at, the gate, shr__obj_block_alloc_young, the pool headers */

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_young, .init = init, .fini = fini, .timeout = 300);

/* A heap with automatic collection off: only the test's collections. */
static shr_heap_t *quiet_heap(void)
{
    shr_heap_t *h = make_heap();
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);
    return h;
}

static shr_ref_t node(shr_heap_t *h)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 16, &r), 0);
    return r;
}

static int64_t collect(shr_heap_t *h, int gen, shr_gc_result_t *out)
{
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect(h, gen, &r);
    cr_assert_geq(n, 0, "collect(%d): %lld", gen, (long long)n);
    if (out) *out = r;
    return n;
}

/* The header of the pool that holds the block at off. */
static pool_header_t *pool_of(shr_heap_t *h, uint64_t off)
{
    uint32_t kind = chunk_table(h)[off >> SHR_CHUNK_SHIFT].kind;
    cr_assert(kind == CHUNK_SMALL || kind == CHUNK_MEDIUM, "an object pool's block");
    return pool_at(h, pool_hdr_of(off, arena_pool_shift(h, kind)));
}

static unsigned young_of(shr_heap_t *h, uint64_t off) { return pool_of(h, off)->young; }

static uint32_t gen_of(shr_heap_t *h, shr_ref_t r) { return obj_gen(obj_at(h, r.off)->flags); }

/* The pools a walk selecting by `mask` enters. */
static void count_pool(shr_heap_t *h, const shr__obj_pool_t *p, void *arg)
{
    (void)h;
    (void)p;
    ++*(size_t *)arg;
}
static void no_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)h;
    (void)off;
    (void)size;
    (void)arg;
}
static size_t pools_walked(shr_heap_t *h, unsigned mask)
{
    size_t n = 0;
    shr__obj_walk_young(h, mask, count_pool, no_visit, &n);
    return n;
}

/* A ring of two nodes, released: garbage for the next collection that
 * examines generation 0. Its nodes' offsets in out[0..1]. */
static void garbage_ring(shr_heap_t *h, uint64_t out[2])
{
    shr_ref_t a = node(h), b = node(h);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    out[0] = a.off;
    out[1] = b.off;
    shr_obj_release(h, a);
    shr_obj_release(h, b);
}

/* ---- one thread -------------------------------------------------------------------- */

Test(gc_young, a_young_cycle_in_a_pool_of_old_objects_is_freed_and_old_pools_are_not_walked)
{
    shr_heap_t *h = quiet_heap();
    enum { MAX = 1000 };
    static shr_ref_t old[MAX];
    int n = 0;
    /* Some hundreds, and then until the last three share a pool. */
    while (n < 400 || pool_of(h, old[n - 1].off) != pool_of(h, old[n - 3].off)) {
        cr_assert_lt(n, MAX);
        old[n++] = node(h);
    }
    cr_assert_geq(pools_walked(h, SHR_OBJ_YOUNG0), 1);
    cr_assert_eq(collect(h, 2, NULL), 0);
    for (int i = 0; i < n; i++) cr_assert_eq(gen_of(h, old[i]), 2);
    cr_assert_eq(young_of(h, old[0].off), 0, "a full collection clears the hints of what it promoted");
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0, "no young object anywhere: a young walk enters no pool");
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG1), 0);
    /* Free the last two old nodes: the ring takes their blocks, beside the
     * third last. */
    uint64_t hole[2] = {old[n - 1].off, old[n - 2].off};
    shr_obj_release(h, old[n - 1]);
    shr_obj_release(h, old[n - 2]);
    n -= 2;
    uint64_t ring[2];
    garbage_ring(h, ring);
    cr_assert(ring[0] == hole[1] || ring[0] == hole[0], "the ring reuses a freed block of the old pool");
    cr_assert_eq(pool_of(h, ring[0]), pool_of(h, old[n - 1].off), "beside an old object");
    cr_assert_eq(young_of(h, ring[0]), SHR_OBJ_YOUNG, "its creation set the pool's hint");
    cr_assert_eq(young_of(h, old[0].off), 0, "not that of the other pools");
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 1 + (pool_of(h, ring[1]) != pool_of(h, ring[0])));
    shr_gc_result_t r;
    cr_assert_eq(collect(h, 0, &r), 2, "the young ring, found in a pool of old objects");
    cr_assert_eq(r.candidates, 2);
    for (int i = 0; i < n; i++) cr_assert_eq(gen_of(h, old[i]), 2, "the old ones untouched");
    for (int i = 0; i < n; i++) shr_obj_release(h, old[i]);
    done(h);
}

Test(gc_young, objects_made_after_a_collection_cleared_their_pool_hint_are_found)
{
    shr_heap_t *h = quiet_heap();
    shr_ref_t keep = node(h);
    cr_assert_eq(collect(h, 0, NULL), 0);
    cr_assert_eq(gen_of(h, keep), 1);
    cr_assert_eq(young_of(h, keep.off), SHR_OBJ_YOUNG1, "generation 0 gone from the pool, generation 1 there");
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0);
    uint64_t ring[2];
    garbage_ring(h, ring);
    cr_assert_eq(pool_of(h, ring[0]), pool_of(h, keep.off), "the same pool");
    cr_assert_eq(young_of(h, ring[0]), SHR_OBJ_YOUNG, "set again by the creation");
    cr_assert_eq(collect(h, 0, NULL), 2);
    /* Again, several rounds: each collection clears, each creation sets. */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 10; i++) garbage_ring(h, ring);
        cr_assert_eq(collect(h, 0, NULL), 20, "round %d", round);
        /* A pool that held garbage keeps its hint (the garbage is young
         * until it is freed) until a walk finds nothing young there. */
        cr_assert_eq(collect(h, 0, NULL), 0);
        cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0);
    }
    cr_assert_eq(gen_of(h, keep), 1, "a young collection leaves generation 1 alone");
    shr_obj_release(h, keep);
    done(h);
}

/* A survivor of a young collection is in generation 1: its pool keeps
 * SHR_OBJ_YOUNG1, so a collection of generation 1 finds it, and its cycle
 * once it is garbage, though no young collection looks at it. */
Test(gc_young, survivors_of_a_young_collection_are_found_by_a_collection_of_generation_1)
{
    shr_heap_t *h = quiet_heap();
    shr_ref_t holder = node(h), a = node(h), b = node(h);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    cr_assert_eq(shr_obj_set(h, holder, 0, a), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(collect(h, 0, NULL), 0, "held");
    cr_assert_eq(gen_of(h, holder), 1);
    shr_obj_release(h, holder);
    cr_assert_eq(collect(h, 0, NULL), 0, "generation 1 is not a young collection's");
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0);
    cr_assert_geq(pools_walked(h, SHR_OBJ_YOUNG1), 1);
    shr_gc_result_t r;
    cr_assert_eq(collect(h, 1, &r), 2, "the ring, in generation 1");
    cr_assert_eq(collect(h, 1, &r), 0);
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG1), 0, "nothing of generation 0 or 1 left");
    done(h);
}

/* ---- several threads and processes ------------------------------------------------- */

enum { RINGS = 50, THREADS = 3, PROCS = 3 };

static void *ring_thread(void *p)
{
    shr_heap_t *h = p;
    for (int i = 0; i < RINGS; i++) {
        shr_ref_t a, b;
        if (shr_obj_new(h, SHR_TYPE_NODE, 2, 16, &a) || shr_obj_new(h, SHR_TYPE_NODE, 2, 16, &b)) return (void *)1;
        if (shr_obj_set(h, a, 0, b) || shr_obj_set(h, b, 0, a)) return (void *)2;
        shr_obj_release(h, a);
        shr_obj_release(h, b);
    }
    return NULL;
}

static int ring_proc(void *p)
{
    /* Two threads in this process: the main one, and another. */
    pthread_t t;
    if (pthread_create(&t, NULL, ring_thread, p) != 0) return 40;
    void *a = ring_thread(p), *b;
    pthread_join(t, &b);
    return a || b ? 41 : 0;
}

/* Old nodes made by a thread that then exits: its pools, old objects in
 * them, are orphaned, and the next thread that needs a pool of their class
 * (of any process) adopts one and makes its young objects beside them. */
typedef struct old_arg {
    shr_heap_t *h;
    shr_ref_t *old;
    int n;
} old_arg_t;

static void *old_thread(void *p)
{
    old_arg_t *o = p;
    for (int i = 0; i < o->n; i++)
        if (shr_obj_new(o->h, SHR_TYPE_NODE, 2, 16, &o->old[i]) != 0) return (void *)1;
    /* Holes in every pool: the references go to the main thread's leases. */
    return NULL;
}

Test(gc_young, young_cycles_of_several_threads_and_processes_beside_old_objects_are_all_freed)
{
    shr_heap_t *h = quiet_heap();
    enum { N = 600 };
    static shr_ref_t old[N];
    old_arg_t oa = {h, old, N};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, old_thread, &oa), 0);
    void *rv;
    cr_assert_eq(pthread_join(t, &rv), 0);
    cr_assert_null(rv);
    /* The references are the exited thread's leases... its process's: the
     * main thread releases every third, leaving holes in the orphaned pools. */
    for (int i = 0; i < N; i += 3) shr_obj_release(h, old[i]);
    cr_assert_eq(collect(h, 2, NULL), 0);
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0);
    uint64_t old_pools[N];
    size_t nold = 0;
    for (int i = 1; i < N; i += 3) old_pools[nold++] = shr__off(h, pool_of(h, old[i].off));

    pid_t pid[PROCS];
    for (int p = 0; p < PROCS; p++) pid[p] = shr_test_fork(ring_proc, h);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) cr_assert_eq(pthread_create(&th[i], NULL, ring_thread, h), 0);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(pthread_join(th[i], &rv), 0);
        cr_assert_null(rv);
    }
    for (int p = 0; p < PROCS; p++) cr_assert_eq(shr_test_wait(pid[p]), 0);

    /* Some young pool is one of the old ones (an orphan adopted). */
    size_t young_beside_old = 0;
    for (size_t k = 0; k < nold; k++)
        if (pool_at(h, old_pools[k])->young & SHR_OBJ_YOUNG0) young_beside_old++;
    cr_assert_geq(young_beside_old, 1, "a pool of old objects holds young ones");
    shr_gc_result_t r;
    int64_t want = 2 * RINGS * (THREADS + 2 * PROCS);
    cr_assert_eq(collect(h, 0, &r), want, "every young ring: %lld of %lld", (long long)r.collected, (long long)want);
    cr_assert_eq(r.candidates, (uint64_t)want);
    for (int i = 0; i < N; i++)
        if (i % 3) cr_assert_eq(gen_of(h, old[i]), 2);
    cr_assert_eq(collect(h, 0, NULL), 0);
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0, "every hint of generation 0 cleared");
    for (int i = 0; i < N; i++)
        if (i % 3) shr_obj_release(h, old[i]);
    cr_assert_eq(collect(h, 2, NULL), 0);
    done(h);
}

/* ---- a creator killed between the hint and the commit ------------------------------- */

/* Inside the gate, as shr__obj_new_container: the block, its hint set, the
 * header written but for the count (the commit), and then the death. */
static int die_before_commit(void *p)
{
    shr_heap_t *h = p;
    if (shr__gate_enter(h) != 0) return 50;
    obj_t *o = shr__obj_block_alloc_young(h, 48);
    if (!o) return 51;
    if (!(pool_of(h, shr__off(h, o))->young & SHR_OBJ_YOUNG0)) return 52;
    memset((char *)o + sizeof(obj_t), 0, 48 - sizeof(obj_t));
    o->type = SHR_TYPE_NODE;
    shr_store_relaxed(&o->flags, OBJ_TRACKED);
    raise(SIGKILL);
    return 53;
}

Test(gc_young, a_creator_killed_between_the_hint_and_the_commit_leaves_nothing_wrong)
{
    shr_heap_t *h = quiet_heap();
    shr_ref_t keep = node(h);
    cr_assert_eq(collect(h, 2, NULL), 0);
    for (int k = 0; k < 3; k++) {
        pid_t pid = shr_test_fork(die_before_commit, h);
        cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    }
    cr_assert_geq(pools_walked(h, SHR_OBJ_YOUNG0), 1, "a hint set with no object: spurious");
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    cr_assert_eq(shr_gc_verify(h, &v), 0, "below %llu dangling %llu", (unsigned long long)v.below,
                 (unsigned long long)v.dangling);
    cr_assert_eq(v.below, 0);
    cr_assert_eq(v.live, 1, "the one node kept; the uncommitted blocks are no objects");
    shr_gc_result_t r;
    cr_assert_eq(collect(h, 0, &r), 0);
    cr_assert_eq(r.candidates, 0);
    cr_assert_eq(pools_walked(h, SHR_OBJ_YOUNG0), 0, "the spurious hints cleared by the walk that found nothing");
    /* The pools work on: a young ring made now is found. */
    uint64_t ring[2];
    garbage_ring(h, ring);
    cr_assert_eq(collect(h, 0, NULL), 2);
    /* The blocks the dead left are strays: the mark-sweep frees them. */
    shr_gc_result_t ms = SHR_GC_RESULT_INIT;
    cr_assert_geq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, &ms), 0);
    cr_assert_eq(ms.strays, 3, "the three blocks taken and never committed");
    cr_assert_eq(shr_gc_verify(h, &v), 0);
    shr_obj_release(h, keep);
    done(h);
}

/* Creators SIGKILLed at random moments while they make young cycles beside
 * old objects: after each kill, no count below its true value, and every
 * young cycle that was complete is freed by young collections alone. */
static int ring_forever(void *p)
{
    shr_heap_t *h = p;
    for (;;)
        if (ring_thread(h)) return 60;
}

Test(gc_young, creators_killed_at_random_leave_no_young_cycle_behind)
{
    shr_heap_t *h = quiet_heap();
    enum { N = 300 };
    static shr_ref_t old[N];
    for (int i = 0; i < N; i++) old[i] = node(h);
    for (int i = 0; i < N; i += 2) shr_obj_release(h, old[i]);
    cr_assert_eq(collect(h, 2, NULL), 0);
    srand(12345);
    for (int k = 0; k < 8; k++) {
        pid_t pid = shr_test_fork(ring_forever, h);
        shr_test_sleep_ms(5 + (unsigned)(rand() % 20));
        kill(pid, SIGKILL);
        cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
        shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
        cr_assert_eq(shr_gc_verify(h, &v), 0, "kill %d: below %llu", k, (unsigned long long)v.below);
        collect(h, 0, NULL);
        /* What young collections left must be explained by the kills: at
         * most the ring each was making (a count too high), never a
         * complete young cycle they did not see. */
        cr_assert_eq(shr_gc_verify(h, &v), 0);
        cr_assert_leq(v.unreachable, 2u * (unsigned)(k + 1), "kill %d: %llu unreachable after collect(0)", k,
                      (unsigned long long)v.unreachable);
    }
    for (int i = 1; i < N; i += 2) shr_obj_release(h, old[i]);
    cr_assert_geq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, NULL), 0);
    done(h);
}
