/* The allocator, white box: size classes, carving, pool transitions, arena
 * ordering and release, the chunk table, orphans, repair, fault injection. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_unit, .fini = fini, .timeout = 120);

/* The header of the pool holding p: dense in page 0 of its arena. */
static pool_header_t *pool_of_ptr(shr_heap_t *h, void *p)
{
    uint64_t off = shr_off(h, p);
    uint32_t k = chunk_table(h)[off >> SHR_CHUNK_SHIFT].kind;
    return pool_at(h, pool_hdr_of(off, arena_pool_shift(h, k)));
}

Test(alloc_unit, size_class_mapping)
{
    cr_assert_eq(size_to_class(1), 0);
    cr_assert_eq(size_to_class(16), 0);
    cr_assert_eq(size_to_class(17), 1);
    cr_assert_eq(size_to_class(512), 31);
    cr_assert_eq(size_to_class(513), 32);
    cr_assert_eq(shr__class_size[32], 640);
    cr_assert_eq(size_to_class(16384), SHR_NB_CLASSES - 1);
    for (size_t n = 1; n <= SHR_MEDIUM_REQUEST_THRESHOLD; n++) {
        unsigned c = size_to_class(n);
        cr_assert_lt(c, SHR_NB_CLASSES);
        cr_assert_geq(shr__class_size[c], n, "class %u too small for %zu", c, n);
        if (c > 0) cr_assert_lt(shr__class_size[c - 1], n, "%zu not in its smallest class", n);
        if (n > SHR_SMALL_REQUEST_THRESHOLD) cr_assert_leq(shr__class_size[c] - n, n / 4, "waste over 25%% at %zu", n);
        else cr_assert_lt(shr__class_size[c] - n, SHR_ALIGNMENT);
        cr_assert_eq(shr__class_size[c] % SHR_ALIGNMENT, 0);
    }
}

Test(alloc_unit, lazy_carving_and_free_list_link_at_bytes_8_to_15)
{
    shr_heap_t *h = make_heap();
    uint64_t *a = shr_malloc(h, 16);
    pool_header_t *pool = pool_of_ptr(h, a);
    cr_assert_eq(pool->nextoffset, SHR_CARVE_BATCH * 16, "a batch of blocks is carved (from offset 0: the header is in page 0)");
    cr_assert_eq(shr_off(h, a) % 4096, 0, "a small pool's first block starts its page");
    cr_assert_eq(arena_base(shr_off(h, pool)), arena_base(shr_off(h, a)), "the header is in the arena's page 0");
    cr_assert_lt(shr_off(h, pool) - arena_base(shr_off(h, a)), SHR_ARENA_META);
    cr_assert_eq(pool->freeblock, shr_off(h, a) + 16, "the rest of the batch is on the free list");
    cr_assert_eq(pool->nused, 1);
    cr_assert_eq(pool->state, POOL_USED);
    cr_assert_eq(pool->owner, shr__tctx(h)->slot + 1);
    uint64_t *b = shr_malloc(h, 16);
    cr_assert_eq((uint8_t *)b - (uint8_t *)a, 16);
    a[0] = 0; /* an object's refcount, dropped to zero before the free */
    shr_free(h, a);
    cr_assert_eq(a[0], 0, "the allocator never writes bytes 0..7 of a free block");
    cr_assert_eq(pool->freeblock, shr_off(h, a));
    cr_assert_eq(pool->nused, 1);
    cr_assert_eq(shr_malloc(h, 16), a, "the last freed block comes back first");
    shr_free(h, a);
    shr_free(h, b);
    /* A 64 KiB medium pool (the arena's pool 0, whose blocks start after
     * page 0): carving never passes the page's end. */
    void *m = shr_malloc(h, 600);
    pool_header_t *mp = pool_of_ptr(h, m);
    cr_assert_eq(mp->block_size, 640);
    cr_assert_eq(shr_off(h, m) - arena_base(shr_off(h, m)), SHR_ARENA_META);
    cr_assert_leq(mp->nextoffset, 2 * 4096 + 640, "carving touched a later page");
    cr_assert_gt(mp->nextoffset, SHR_ARENA_META + 640);
    shr_free(h, m);
    done(h);
}

/* Fill one pool of 16-byte blocks and take one more block (from a second
 * pool): the first is then parked. */
static pool_header_t *fill_and_park(shr_heap_t *h, void **p, uint32_t cap, void **extra)
{
    for (uint32_t i = 0; i < cap; i++) p[i] = shr_malloc(h, 16);
    pool_header_t *pool = pool_of_ptr(h, p[0]);
    cr_assert_eq(pool_of_ptr(h, p[cap - 1]), pool);
    cr_assert_eq(pool->nused, cap);
    *extra = shr_malloc(h, 16);
    cr_assert_neq(pool_of_ptr(h, *extra), pool);
    return pool;
}

Test(alloc_unit, full_pool_is_parked_and_relinked_behind_the_current_one)
{
    shr_heap_t *h = make_heap();
    alloc_tslot_t *ts = shr__tctx(h)->layer[SHR_LAYER_ALLOC];
    uint32_t cap = 4096 / 16;
    void *p[1024], *extra;
    pool_header_t *pool = fill_and_park(h, p, cap, &extra);
    /* Full: parked, still ours, on no used list. */
    cr_assert_eq(pool->state, POOL_FULL);
    cr_assert_eq(pool->owner, shr__tctx(h)->slot + 1);
    cr_assert_eq(pool->remote, REMOTE_PARKED);
    cr_assert_eq(ts->parked, shr_off(h, pool));
    cr_assert_eq(ts->used[0], shr_off(h, pool_of_ptr(h, extra)));
    cr_assert_eq(pool_of_ptr(h, extra)->nextpool, 0);
    cr_assert_eq(shr_heap_check(h), 0);
    /* The owner's free relinks it behind the current pool. */
    shr_free(h, p[5]);
    cr_assert_eq(pool->state, POOL_USED);
    cr_assert_eq(pool->remote, 0);
    cr_assert_eq(ts->parked, 0);
    cr_assert_eq(ts->used[0], shr_off(h, pool_of_ptr(h, extra)), "the current pool stays in front");
    cr_assert_eq(pool_of_ptr(h, extra)->nextpool, shr_off(h, pool));
    void *q = shr_malloc(h, 16);
    cr_assert_eq(pool_of_ptr(h, q), pool_of_ptr(h, extra), "the next malloc is served by the current pool");
    cr_assert_eq(shr_heap_check(h), 0);
    for (uint32_t i = 0; i < cap; i++)
        if (i != 5) shr_free(h, p[i]);
    shr_free(h, q);
    shr_free(h, extra);
    done(h);
}

typedef struct { shr_heap_t *h; void **blocks; int n; } remote_free_arg_t;

static void *remote_free_thread(void *arg)
{
    remote_free_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) shr_free(a->h, a->blocks[i]);
    return NULL;
}

Test(alloc_unit, a_remote_free_into_a_parked_pool_wakes_its_owner)
{
    shr_heap_t *h = make_heap();
    alloc_tslot_t *ts = shr__tctx(h)->layer[SHR_LAYER_ALLOC];
    uint32_t cap = 4096 / 16;
    void *p[1024], *extra;
    pool_header_t *pool = fill_and_park(h, p, cap, &extra);
    /* Another thread frees two blocks: the first goes to this thread's
     * delayed stack and clears the flag, the second to the pool's stack. */
    void *two[2] = {p[7], p[9]};
    remote_free_arg_t a = {h, two, 2};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, remote_free_thread, &a), 0);
    pthread_join(t, NULL);
    cr_assert_eq(ts->delayed, shr_off(h, p[7]));
    cr_assert_eq(pool->remote & ~REMOTE_FLAGS, shr_off(h, p[9]));
    cr_assert_eq(pool->remote & REMOTE_PARKED, 0);
    cr_assert_eq(shr_heap_check(h), 0);
    /* The owner's next slow path drains it: the pool is in use again. */
    cr_assert_eq(shr_heap_collect(h), 0);
    cr_assert_eq(ts->delayed, 0);
    cr_assert_eq(pool->state, POOL_USED);
    cr_assert_eq(ts->parked, 0);
    cr_assert_eq(pool->nused, cap - 2);
    for (uint32_t i = 0; i < cap; i++)
        if (i != 7 && i != 9) shr_free(h, p[i]);
    shr_free(h, extra);
    done(h);
}

static void *park_and_exit_thread(void *arg)
{
    remote_free_arg_t *a = arg;
    void *extra;
    fill_and_park(a->h, a->blocks, (uint32_t)a->n, &extra);
    shr_free(a->h, extra);
    return NULL; /* the slot's release at exit gives the parked pool up */
}

Test(alloc_unit, a_parked_pool_is_given_up_at_exit_and_adopted_by_a_freer)
{
    shr_heap_t *h = make_heap();
    uint32_t cap = 4096 / 16;
    void *p[1024];
    remote_free_arg_t a = {h, p, (int)cap};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, park_and_exit_thread, &a), 0);
    pthread_join(t, NULL);
    pool_header_t *pool = pool_of_ptr(h, p[0]);
    cr_assert_eq(pool->state, POOL_FULL);
    cr_assert_eq(pool->owner, 0);
    cr_assert(pool->remote & REMOTE_UNOWNED);
    cr_assert_eq(shr_heap_check(h), 0);
    /* A free into it adopts it. */
    shr_free(h, p[5]);
    cr_assert_eq(pool->owner, shr__tctx(h)->slot + 1);
    cr_assert_eq(pool->state, POOL_USED);
    cr_assert_eq(pool->nused, cap - 1);
    cr_assert_eq(pool->remote, 0);
    for (uint32_t i = 0; i < cap; i++)
        if (i != 5) shr_free(h, p[i]);
    done(h);
}

Test(alloc_unit, empty_pools_are_cached_then_go_back_to_the_arena)
{
    shr_heap_t *h = make_heap();
    uint32_t cap = 4096 / 32;
    void *p[600];
    for (uint32_t i = 0; i < 3 * cap; i++) p[i] = shr_malloc(h, 32);
    pool_header_t *first = pool_of_ptr(h, p[0]);
    pool_header_t *last = pool_of_ptr(h, p[3 * cap - 1]);
    for (uint32_t i = 0; i < cap; i++) shr_free(h, p[i]);
    cr_assert_eq(first->state, POOL_EMPTY, "an empty pool with siblings leaves the used list");
    cr_assert_eq(first->owner, shr__tctx(h)->slot + 1, "into this thread's cache of empty pools");
    alloc_tslot_t *ts = shr__tctx(h)->layer[SHR_LAYER_ALLOC];
    cr_assert_eq(ts->cache[AC_SMALL], shr_off(h, first));
    for (uint32_t i = cap; i < 3 * cap; i++) shr_free(h, p[i]);
    cr_assert_eq(last->state, POOL_USED, "the class's only pool is kept for the next malloc");
    cr_assert_eq(last->nused, 0);
    cr_assert_eq(shr_heap_check(h), 0);
    cr_assert_eq(shr_heap_collect(h), 0);
    cr_assert_eq(ts->used[size_to_class(32)], 0, "collect gives the kept pool back");
    cr_assert_eq(ts->ncache[AC_SMALL], 0, "and the cached ones");
    cr_assert_eq(alloc_global(h)->ac[AC_SMALL].narenas, 0, "then releases the arena they emptied");
    done(h);
}

Test(alloc_unit, arenas_sorted_and_released_by_collect)
{
    shr_heap_t *h = make_heap();
    alloc_global_t *g = alloc_global(h);
    /* 64-byte blocks: 63 per pool, 64 pools per arena. Fill 3 arenas. */
    enum { PER_POOL = 4096 / 64, N = PER_POOL * 64 * 3 };
    static void *p[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = shr_malloc(h, 64));
    cr_assert_geq(g->ac[AC_SMALL].narenas, 3);
    /* Free different amounts from each arena so their nfreepools differ;
     * check verifies the order and nfp2lasta after each step. */
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < PER_POOL * (10 + 20 * a); i++) {
            shr_free(h, p[a * PER_POOL * 64 + i]);
            p[a * PER_POOL * 64 + i] = NULL;
            if (i % PER_POOL == 0) cr_assert_eq(shr_heap_check_report(h, stderr), 0);
        }
    shr_heap_collect(h); /* the thread's cache of empty pools goes back */
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    uint64_t prev_nf = 0, count = 0;
    for (uint64_t a = g->ac[AC_SMALL].usable; a; a = chunk_table(h)[a - 1].next) {
        cr_assert_geq(chunk_table(h)[a - 1].nfreepools, prev_nf, "usable_arenas sorted by free pools");
        prev_nf = chunk_table(h)[a - 1].nfreepools;
        count++;
    }
    cr_assert_geq(count, 3);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    uint64_t released_before = st.arenas_released;
    for (int i = 0; i < N; i++) shr_free(h, p[i]);
    shr_heap_collect(h);
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_geq(st.arenas_released - released_before, 3, "empty arenas are released");
    cr_assert_eq(g->ac[AC_SMALL].narenas, 0, "collect releases every empty arena");
    done(h);
}

Test(alloc_unit, empty_arenas_are_kept_under_hysteresis)
{
    shr_heap_t *h = make_heap();
    alloc_global_t *g = alloc_global(h);
    enum { PER_POOL = 4096 / 64, PER_ARENA = PER_POOL * 64 };
    enum { N = PER_ARENA * (SHR_ARENA_KEEP_EMPTY + 8) };
    static void *p[N];
    /* A loop whose working set swings by a few arenas: once it is warm (the
     * first round leaves pools in this thread's cache, so the second may
     * take one arena more), no arena is released or taken again. */
    shr_alloc_stats_t st;
    uint64_t released = 0, allocated = 0;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < PER_ARENA * 6; i++) cr_assert_not_null(p[i] = shr_malloc(h, 64));
        for (int i = 0; i < PER_ARENA * 6; i++) shr_free(h, p[i]);
        cr_assert_eq(shr_heap_stats(h, &st), 0);
        if (round > 1) {
            cr_assert_eq(st.arenas_released, released, "round %d released an arena", round);
            cr_assert_eq(st.arenas_allocated, allocated, "round %d took a new arena", round);
        }
        released = st.arenas_released;
        allocated = st.arenas_allocated;
    }
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* A larger swing keeps at most SHR_ARENA_KEEP_EMPTY empty arenas. */
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = shr_malloc(h, 64));
    for (int i = 0; i < N; i++) shr_free(h, p[i]);
    cr_assert_leq(g->ac[AC_SMALL].nempty, SHR_ARENA_KEEP_EMPTY);
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_gt(st.arenas_released, released, "past the bound, emptied arenas are released");
    /* The rest: arenas holding a pool of this thread's cache (at most one
     * each). */
    cr_assert_leq(g->ac[AC_SMALL].narenas, SHR_ARENA_KEEP_EMPTY + SHR_CACHE_MAX_SMALL + 1);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(shr_heap_collect(h), 0);
    cr_assert_eq(g->ac[AC_SMALL].narenas, 0);
    cr_assert_eq(g->ac[AC_SMALL].nempty, 0);
    done(h);
}

Test(alloc_unit, chunk_table_huge_runs_coalesce)
{
    shr_heap_t *h = make_heap();
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    void *a = shr_malloc(h, 1u << 20); /* 4 chunks */
    void *b = shr_malloc(h, 1u << 20);
    uint64_t ca = shr_off(h, a) >> SHR_CHUNK_SHIFT, cb = shr_off(h, b) >> SHR_CHUNK_SHIFT;
    cr_assert_eq(t[ca].kind, CHUNK_HUGE);
    cr_assert_eq(t[ca].run, 4);
    cr_assert_eq(t[ca].pages, 256);
    for (int i = 1; i < 4; i++) cr_assert_eq(t[ca + i].kind, CHUNK_HUGE_TAIL);
    cr_assert_eq(cb, ca + 4, "the second run follows the first");
    shr_free(h, a);
    cr_assert_eq(t[ca].kind, CHUNK_FREE);
    cr_assert_eq(t[ca].run, 4);
    cr_assert_eq(t[ca + 3].kind, CHUNK_FREE_TAIL);
    shr_free(h, b);
    cr_assert_eq(t[ca].kind, CHUNK_FREE);
    cr_assert_eq(t[ca].run, 8, "neighbouring free runs coalesce");
    void *c = shr_malloc(h, 2u << 20);
    cr_assert_eq(shr_off(h, c) >> SHR_CHUNK_SHIFT, ca, "the coalesced run is reused");
    shr_free(h, c);
    cr_assert_lt(shr_load_relaxed(&g->hwm), ca + 20);
    /* Only the pages used are committed. */
    int64_t before = shr_test_shm_bytes(shr_heap_name(h));
    void *d = shr_malloc(h, 300000);
    int64_t after = shr_test_shm_bytes(shr_heap_name(h));
    cr_assert_leq(after - before, 300000 + 4096 + 4096);
    shr_free(h, d);
    done(h);
}

static void *exit_holding_blocks(void *arg)
{
    shr_heap_t *h = arg;
    void **keep = malloc(100 * sizeof *keep);
    for (int i = 0; i < 100; i++) keep[i] = shr_malloc(h, 48);
    return keep; /* the thread exits with its pools in use */
}

Test(alloc_unit, pools_of_an_exited_thread_are_orphaned_and_adopted)
{
    shr_heap_t *h = make_heap();
    pthread_t t;
    void **keep;
    pthread_create(&t, NULL, exit_holding_blocks, h);
    pthread_join(t, (void **)&keep);
    /* 85 blocks of 48 fill the first pool (parked full, then given up
     * unowned at exit); the other 15 are in a used pool, orphaned when the
     * thread exited. */
    pool_header_t *full = pool_of_ptr(h, keep[0]);
    cr_assert_eq(full->state, POOL_FULL);
    cr_assert_eq(full->owner, 0);
    pool_header_t *pool = pool_of_ptr(h, keep[99]);
    cr_assert_eq(pool->state, POOL_ORPHAN);
    cr_assert_eq(pool->owner, 0);
    cr_assert_eq(alloc_global(h)->orphans[size_to_class(48)], shr_off(h, pool));
    cr_assert_eq(shr_heap_check(h), 0);
    void *mine = shr_malloc(h, 48);
    cr_assert_eq(pool_of_ptr(h, mine), pool, "the next thread needing the class adopts it");
    cr_assert_eq(pool->owner, shr__tctx(h)->slot + 1);
    for (int i = 0; i < 100; i++) shr_free(h, keep[i]); /* now local frees */
    shr_free(h, mine);
    free(keep);
    done(h);
}

static int scribble_and_die(void *arg)
{
    shr_heap_t *h = arg;
    alloc_global_t *g = alloc_global(h);
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return 1;
    /* Half an update: every derived list wiped. */
    g->ac[AC_SMALL].usable = 0;
    memset(g->ac[AC_SMALL].nfp2lasta, 0, sizeof g->ac[AC_SMALL].nfp2lasta);
    memset(g->runs, 0, sizeof g->runs);
    memset(g->orphans, 0, sizeof g->orphans);
    _exit(0);
}

static void *leave_orphans(void *arg)
{
    shr_heap_t *h = arg;
    for (int i = 0; i < 10; i++) shr_malloc(h, 96);
    return NULL;
}

Test(alloc_unit, repair_after_death_holding_the_arena_lock)
{
    shr_heap_t *h = make_heap();
    void *p[4000];
    for (int i = 0; i < 4000; i++) p[i] = shr_malloc(h, 16 + (i % 30) * 16);
    for (int i = 0; i < 4000; i += 2) shr_free(h, p[i]);
    void *huge = shr_malloc(h, 2u << 20);
    shr_free(h, huge); /* a free chunk run to lose */
    pthread_t t;
    pthread_create(&t, NULL, leave_orphans, h);
    pthread_join(t, NULL);
    cr_assert_eq(shr_heap_check(h), 0);
    cr_assert_eq(shr_test_wait(shr_test_fork(scribble_and_die, h)), 0);
    /* The next lock of the arena gets EOWNERDEAD and rebuilds. */
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(h->hdr->locks[SHR_LOCK_ARENA].nrepaired, 1);
    cr_assert_neq(alloc_global(h)->runs[0] | alloc_global(h)->runs[8] | alloc_global(h)->runs[SHR_NRUNLISTS - 1] | shr_load_relaxed(&alloc_global(h)->hwm), 0);
    for (int i = 1; i < 4000; i += 2) shr_free(h, p[i]);
    void *again = shr_malloc(h, 2u << 20);
    cr_assert_not_null(again);
    shr_free(h, again);
    done(h);
}

/* A small heap has small metadata (layout version 15): the root directory
 * and the collector's event log are committed as used, a thread's first
 * small block commits one pool (not a batch of eight), and a medium block
 * the pages its carve spans (not its 64 KiB pool). */
Test(alloc_unit, a_small_heap_commits_what_it_uses)
{
    shr_heap_t *h = make_heap();
    const uint64_t page = SHR_OS_PAGE;
    uint64_t c0 = shr__seg_committed(h);
    /* Header, process entries, the layers' fixed regions, the creator's
     * thread slot and a chunk-table page: the directory (80 KiB) and the log
     * (256 KiB by default) are not among them. */
    cr_assert_lt(c0, 80 * 1024, "created: %" PRIu64 " bytes", c0);
    cr_assert_not_null(shr__tctx(h), "this thread's slot, committed at its first claim");
    c0 = shr__seg_committed(h);
    void *a = shr_malloc(h, 64);
    cr_assert_not_null(a);
    uint64_t c1 = shr__seg_committed(h);
    /* The arena's header page and one pool (the first batch of eight pools
     * was 16 pages). */
    cr_assert_leq(c1 - c0, 2 * page, "the arena's header page and one pool: %" PRIu64, c1 - c0);
    void *b = shr_malloc(h, 1280);
    cr_assert_not_null(b);
    uint64_t c2 = shr__seg_committed(h);
    cr_assert_leq(c2 - c1, 2 * page, "the medium arena's header page and the block's page: %" PRIu64, c2 - c1);
    cr_assert_eq(shr_root_set(h, "r", shr__off(h, a)), 0);
    cr_assert_eq(shr_root_set(h, "s", shr__off(h, b)), 0);
    cr_assert_leq(shr__seg_committed(h) - c2, page, "two roots: at most their page");
    shr_off_t off;
    cr_assert_eq(shr_root_get(h, "s", &off), 0);
    cr_assert_eq(off, shr__off(h, b));
    cr_assert_eq(shr_root_delete(h, "r"), 0);
    cr_assert_eq(shr_root_set(h, "t", shr__off(h, a)), 0, "a freed entry below the mark is taken again");
    cr_assert_eq(shr_load_relaxed(&alloc_global(h)->roots_hwm), 2);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_free(h, a);
    shr_free(h, b);
    done(h);
}

/* The directory fills entry by entry, committing as it goes, up to its 1024
 * entries; then -ENOSPC, and every name is still found. */
Test(alloc_unit, the_root_directory_fills_to_its_end)
{
    shr_heap_t *h = make_heap();
    char name[32];
    for (int i = 0; i < SHR_ROOTS_MAX; i++) {
        snprintf(name, sizeof name, "root%d", i);
        cr_assert_eq(shr_root_set(h, name, (shr_off_t)(4096 + 16 * i)), 0, "%s", name);
    }
    cr_assert_eq(shr_root_set(h, "one_more", 4096), -ENOSPC);
    for (int i = 0; i < SHR_ROOTS_MAX; i += 97) {
        snprintf(name, sizeof name, "root%d", i);
        shr_off_t off = 0;
        cr_assert_eq(shr_root_get(h, name, &off), 0);
        cr_assert_eq(off, (shr_off_t)(4096 + 16 * i));
    }
    cr_assert_eq(shr_heap_check(h), 0);
    done(h);
}

/* RT3: a mark beyond the directory is reported, and lookups stay within
 * the table. */
Test(alloc_unit, a_damaged_root_mark_is_reported_and_bounded)
{
    shr_heap_t *h = make_heap();
    cr_assert_eq(shr_root_set(h, "r", 4096), 0);
    alloc_global_t *g = alloc_global(h);
    shr_store_relaxed(&g->roots_hwm, 5000);
    cr_assert_eq(shr__roots_hwm(h), SHR_ROOTS_MAX);
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "RT3");
    shr_off_t off = 0;
    cr_assert_eq(shr_root_get(h, "r", &off), 0);
    cr_assert_eq(off, 4096);
    shr_store_relaxed(&g->roots_hwm, 1);
    cr_assert_eq(shr_heap_check(h), 0);
    done(h);
}

Test(alloc_unit, commit_failure_is_enomem_and_harmless)
{
    shr_heap_t *h = make_heap();
    uint64_t before = shr__seg_committed(h);
    void *a = shr_malloc(h, 64);
    /* An arena is committed as its pools are carved (doubling batches of
     * 4 KiB pools), not whole: one block commits a few pools. */
    cr_assert_lt(shr__seg_committed(h) - before, SHR_ARENA_SIZE / 2);
    /* The next commit (a batch of pools of this arena, or the next arena)
     * fails: ENOMEM, and nothing is harmed. */
    uint32_t cap = 4096 / 64;
    static void *p[2 * 64 * 64];
    int n = 0;
    /* Armed before each call: pools taken in a batch with the one whose
     * arena failed may serve a few more calls first. */
    errno = 0;
    for (; n < 2 * 64 * 64; n++) {
        shr__seg_fail_commit_after(1);
        if ((p[n] = shr_malloc(h, 64)) == NULL) break;
    }
    shr__seg_fail_commit_after(0);
    cr_assert_lt(n, 2 * 64 * 64);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_geq(n, (int)cap - 1, "the committed pools were used before failing");
    cr_assert_eq(shr_heap_check(h), 0);
    void *b = shr_malloc(h, 64);
    cr_assert_not_null(b, "only the injected commit failed");
    for (int i = 0; i < n; i++) shr_free(h, p[i]);
    shr_free(h, a);
    shr_free(h, b);
    /* Large and huge paths fail cleanly too. */
    shr__seg_fail_commit_after(1);
    cr_assert_null(shr_malloc(h, 100000));
    shr__seg_fail_commit_after(1);
    cr_assert_null(shr_malloc(h, 1u << 20));
    shr__seg_fail_commit_after(0);
    cr_assert_not_null(b = shr_malloc(h, 100000));
    shr_free(h, b);
    done(h);
}

Test(alloc_unit, large_runs_split_and_coalesce)
{
    shr_heap_t *h = make_heap();
    uint8_t *a = shr_malloc(h, 5 * 4096);
    uint8_t *b = shr_malloc(h, 7 * 4096);
    uint8_t *c = shr_malloc(h, 5 * 4096);
    cr_assert_eq(b - a, 5 * 4096, "runs are carved in order");
    cr_assert_eq(c - b, 7 * 4096);
    large_header_t *lh = (large_header_t *)(h->base + SHR_ALIGN_DOWN(shr_off(h, a), SHR_CHUNK_SIZE));
    cr_assert_eq(lh->free_pages, SHR_LARGE_MAX_PAGES - 17);
    shr_free(h, b);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_free(h, a); /* coalesces with b's run */
    uint8_t *d = shr_malloc(h, 12 * 4096);
    cr_assert_eq(d, a, "the coalesced 12-page run is reused");
    shr_free(h, c);
    shr_free(h, d);
    cr_assert_eq(lh->free_pages, SHR_LARGE_MAX_PAGES);
    done(h);
}

/* ---- crash windows found by review and by the kill storms ------------------ */

static int die_mid_huge_alloc(void *arg)
{
    shr_heap_t *h = arg;
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return 1;
    uint64_t c = shr__chunk_alloc(h, 4);
    if (!c) return 2;
    /* Tails written, head not yet: the commit never happened. */
    for (uint64_t i = 1; i < 4; i++) {
        chunk_table(h)[c + i].run = i;
        chunk_table(h)[c + i].kind = CHUNK_HUGE_TAIL;
    }
    _exit(0);
}

Test(alloc_unit, huge_tails_without_a_head_are_freed_by_repair)
{
    shr_heap_t *h = make_heap();
    void *keep = shr_malloc(h, 64);
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_huge_alloc, h)), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "repair freed the headless tails");
    void *big = shr_malloc(h, 1u << 20);
    cr_assert_not_null(big);
    shr_free(h, big);
    shr_free(h, keep);
    done(h);
}

typedef struct { shr_heap_t *h; uint8_t *a, *b; } pair_t;

static int die_mid_merge(void *arg)
{
    pair_t *pr = arg;
    shr_heap_t *h = pr->h;
    if (shr__lock(h, SHR_LOCK_LARGE) != 0) return 1;
    /* Freeing b, which coalesces with the free run after it: interior
     * entries cleared (b's head with them), the new head never written. */
    uint64_t off = shr_off(h, pr->b);
    large_header_t *lh = (large_header_t *)(h->base + SHR_ALIGN_DOWN(off, SHR_CHUNK_SIZE));
    uint32_t p = (uint32_t)((off & (SHR_CHUNK_SIZE - 1)) >> SHR_PAGE_SHIFT);
    for (uint32_t i = p; i < p + 10; i++) lh->page[i].run = lh->page[i].state = 0;
    _exit(0);
}

Test(alloc_unit, page_map_half_merged_by_a_dead_process_is_repaired)
{
    shr_heap_t *h = make_heap();
    pair_t pr = {h, shr_malloc(h, 5 * 4096), shr_malloc(h, 6 * 4096)};
    cr_assert_not_null(pr.a);
    cr_assert_not_null(pr.b);
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_merge, &pr)), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "the repair parsed past the erased head");
    cr_assert_eq(h->hdr->locks[SHR_LOCK_LARGE].nrepaired, 1);
    uint8_t *c = shr_malloc(h, 20 * 4096);
    cr_assert_not_null(c);
    shr_free(h, pr.a);
    shr_free(h, c);
    done(h);
}

static int die_mid_carve(void *arg)
{
    shr_heap_t *h = arg;
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return 1;
    /* An arena whose next pool was counted carved, its header never
     * written: what the old order (pool_address first) could leave. */
    alloc_global_t *g = alloc_global(h);
    uint64_t ai = g->ac[AC_SMALL].usable;
    if (!ai) return 2;
    chunk_t *a = &chunk_table(h)[ai - 1];
    memset(h->base + a->pool_address, 0, 4096);
    a->pool_address += 4096;
    a->nfreepools--;
    _exit(0);
}

Test(alloc_unit, pool_counted_carved_without_a_header_is_repaired)
{
    shr_heap_t *h = make_heap();
    void *keep = shr_malloc(h, 64);
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_carve, h)), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* The pool is usable for any class afterwards. */
    static void *p[3000];
    for (int i = 0; i < 3000; i++) cr_assert_not_null(p[i] = shr_malloc(h, (size_t)(16 + (i % 8) * 16)));
    for (int i = 0; i < 3000; i++) shr_free(h, p[i]);
    shr_free(h, keep);
    done(h);
}

/* The contract between gc/ and alloc/ (alloc.h, "Blocks"): an object's
 * refcount is bytes 0..7 of its block, which the allocator never writes, and
 * its type and flags sit where a free block's link is. */
#include "gc.h"
_Static_assert(offsetof(obj_t, refcnt) == 0 && sizeof(((obj_t *)0)->refcnt) == SHR_BLOCK_OBJ_BYTES,
               "the refcount is the bytes the allocator never writes");
_Static_assert(offsetof(obj_t, type) == SHR_BLOCK_LINK_OFF, "type and flags overlay the free-list link");
_Static_assert(sizeof(obj_t) <= 16, "an object header fits the smallest block");

/* ---- object pools (alloc.h O1-O3) ---------------------------------------- */

typedef struct { uint64_t off[64]; uint32_t size[64]; int n; } obj_seen_t;

static void obj_record(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)h;
    obj_seen_t *s = arg;
    cr_assert_lt(s->n, 64);
    if (s->n) cr_assert_gt(off, s->off[s->n - 1], "the walk goes in address order");
    s->off[s->n] = off;
    s->size[s->n++] = size;
}

Test(alloc_unit, object_pools_hold_only_objects_and_walk_what_is_live)
{
    shr_heap_t *h = make_heap();
    /* Ordinary blocks of the same size class never share a pool with objects. */
    uint64_t *plain = shr_malloc(h, 40);
    *plain = 0x1111;
    uint64_t *o[10];
    for (int i = 0; i < 10; i++) {
        o[i] = shr__obj_block_alloc(h, 40);
        cr_assert_not_null(o[i]);
        cr_assert_eq(*o[i], 0, "an object block reads 0 at bytes 0..7");
        cr_assert_neq(pool_of_ptr(h, o[i]), pool_of_ptr(h, plain));
        cr_assert_eq(shr_usable_size(h, o[i]), 48);
    }
    for (int i = 0; i < 10; i += 3) *o[i] = 1; /* live objects: 0, 3, 6, 9 */
    obj_seen_t s = {0};
    shr__obj_walk(h, obj_record, &s);
    cr_assert_eq(s.n, 4);
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(s.off[j], shr_off(h, o[3 * j]));
        cr_assert_eq(s.size[j], 48);
    }
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* Freed objects (count 0) drop out; re-carving the emptied pool for
     * another object class leaves no stale word at the new boundaries. */
    for (int i = 0; i < 10; i++) {
        *o[i] = 0;
        shr_free(h, o[i]);
    }
    cr_assert_eq(shr_heap_collect(h), 0);
    memset(&s, 0, sizeof s);
    shr__obj_walk(h, obj_record, &s);
    cr_assert_eq(s.n, 0);
    uint64_t *big[8];
    for (int i = 0; i < 8; i++) {
        big[i] = shr__obj_block_alloc(h, 200);
        cr_assert_eq(*big[i], 0);
        memset(big[i] + 1, 0xab, 200 - 8);
    }
    shr__obj_walk(h, obj_record, &s);
    cr_assert_eq(s.n, 0, "data past bytes 0..7 is not an object");
    *big[5] = 3;
    shr__obj_walk(h, obj_record, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.off[0], shr_off(h, big[5]));
    *big[5] = 0;
    for (int i = 0; i < 8; i++) shr_free(h, big[i]);
    /* Bad sizes are refused. */
    errno = 0;
    cr_assert_null(shr__obj_block_alloc(h, 0));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(shr__obj_block_alloc(h, SHR_MEDIUM_REQUEST_THRESHOLD + 1));
    cr_assert_null(shr__obj_block_alloc(NULL, 16));
    shr_free(h, plain);
    done(h);
}

Test(alloc_unit, check_reports_a_free_object_block_with_a_count)
{
    shr_heap_t *h = make_heap();
    uint64_t *keep = shr__obj_block_alloc(h, 64);
    uint64_t *o = shr__obj_block_alloc(h, 64);
    *keep = 1;
    shr_free(h, o); /* bytes 0..7 read 0: sound */
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    *o = 7; /* a count written into a free block (a use after free) */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_neq(shr_heap_check_report(h, f), 0);
    fclose(f);
    cr_assert(strstr(buf, "O2") != NULL, "report: %s", buf);
    free(buf);
    *o = 0;
    *keep = 0;
    shr_free(h, keep);
    done(h);
}

/* ---- 16 KiB small pools (SHR_HEAP_POOLS_16K) ------------------------------ */

Test(alloc_unit, pools_of_16k_hold_four_times_the_blocks)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_POOLS_16K;
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    alloc_global_t *g = alloc_global(h);
    cr_assert_eq(g->ac[AC_SMALL].shift, SHR_SMALL_POOL_SHIFT_16K);
    cr_assert_eq(g->ac[AC_SMALL].npools, 16, "16 pools of 16 KiB; pool 0's blocks start after page 0");
    /* Pools of 1024 blocks, or 768 in an arena's pool 0 (blocks from 4 KiB). */
    enum { N = 3 * 1024 };
    static void *p[N];
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = shr_malloc(h, 16));
    pool_header_t *p0 = pool_of_ptr(h, p[0]);
    for (int i = 0; i < N; i++) {
        uint64_t off = shr_off(h, p[i]), mem = off & ~(uint64_t)16383;
        pool_header_t *pi = pool_of_ptr(h, p[i]);
        cr_assert_eq(pi->capacity, (16384 - pool_first(mem)) / 16);
        cr_assert_geq(off - mem, pool_first(mem));
    }
    cr_assert_eq(p0->state, POOL_FULL, "parked");
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.classes[0].pool_size, 16384);
    cr_assert_eq(st.classes[0].blocks_in_use, N);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* Another process sees the same geometry. */
    shr_heap_t *h2;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &h2), 0);
    cr_assert_eq(h2->pool_shift[CHUNK_SMALL], SHR_SMALL_POOL_SHIFT_16K);
    cr_assert_eq(shr_heap_check_report(h2, stderr), 0);
    shr_heap_close(h2);
    for (int i = 0; i < N; i++) shr_free(h, p[i]);
    cr_assert_eq(shr_heap_collect(h), 0);
    cr_assert_eq(g->ac[AC_SMALL].narenas, 0);
    done(h);
}
