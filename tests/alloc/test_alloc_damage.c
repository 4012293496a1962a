/* The allocator against damaged metadata and misuse, white box: one changed
 * field in the segment is reported by shr_heap_check (never followed), the
 * fields a later operation trusts are verified, a claimed slot trusts no
 * leftover, and a free of a block the pool never carved changes nothing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_damage, .fini = fini, .timeout = 120);

static pool_header_t *pool_of_ptr(shr_heap_t *h, void *p)
{
    uint64_t off = shr_off(h, p);
    uint32_t k = chunk_table(h)[off >> SHR_CHUNK_SHIFT].kind;
    return pool_at(h, pool_hdr_of(off, arena_pool_shift(h, k))); /* dense in page 0 */
}

/* Fill the first small arena so that a second one is on usable_arenas. */
static void **two_arenas(shr_heap_t *h, int *np)
{
    static void *p[64 * 64];
    int n = 0;
    while (n < 64 * 64 && alloc_global(h)->ac[AC_SMALL].narenas < 2) cr_assert_not_null(p[n++] = shr_malloc(h, 64));
    *np = n;
    return p;
}

/* A check of a damaged field: reported (SHR_ECORRUPT), no crash; then the
 * field is put back and the heap checks clean. */
#define EXPECT_REPORTED(h, field, bad)                                                   \
    do {                                                                                 \
        __typeof__(field) saved_ = (field);                                              \
        (field) = (bad);                                                                 \
        cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "%s = %s is reported", #field, #bad); \
        (field) = saved_;                                                                \
        cr_assert_eq(shr_heap_check(h), 0);                                              \
    } while (0)

Test(alloc_damage, check_reports_chunk_table_links_out_of_range_without_following_them)
{
    shr_heap_t *h = make_heap();
    int n;
    void **p = two_arenas(h, &n);
    alloc_global_t *g = alloc_global(h);
    arena_class_t *ac = &g->ac[AC_SMALL];
    chunk_t *head = chunk_at_ref(h, ac->usable);
    cr_assert_eq(shr_heap_check(h), 0);
    /* A next link past the table, the defect's byte. */
    EXPECT_REPORTED(h, head->next, (uint64_t)1 << 40);
    EXPECT_REPORTED(h, head->next, 0x7fffffffu);
    /* A free pool count that indexes past nfp2lasta. */
    EXPECT_REPORTED(h, head->nfreepools, 200u);
    EXPECT_REPORTED(h, head->nfreepools, UINT32_MAX);
    /* The list head itself. */
    EXPECT_REPORTED(h, ac->usable, (uint64_t)1 << 50);
    /* The bounds every walk uses. */
    EXPECT_REPORTED(h, g->nchunks, (uint64_t)1 << 60);
    EXPECT_REPORTED(h, g->first_data, (uint64_t)1 << 60);
    EXPECT_REPORTED(h, ac->shift, 200u);
    EXPECT_REPORTED(h, ac->npools, 1u << 30);
    /* A free run list entry, an orphan list head, a pool_address. */
    EXPECT_REPORTED(h, g->runs[3], (uint64_t)1 << 45);
    EXPECT_REPORTED(h, g->orphans[5], h->capacity + 4096);
    EXPECT_REPORTED(h, g->orphans[5], chunk_off(g->first_data) + 100);
    EXPECT_REPORTED(h, head->pool_address, (uint64_t)1 << 55);
    /* A free page run's back link, which the next large malloc writes
     * through (the list of 63-page runs holds the fresh large chunk). */
    void *big = shr_malloc(h, 20000);
    cr_assert_not_null(big);
    uint32_t nrun = 0;
    for (uint32_t r = 1; r < SHR_PAGES_PER_CHUNK; r++)
        if (g->large_runs[r]) nrun = r;
    cr_assert_neq(nrun, 0, "a free page run is listed");
    uint64_t roff = g->large_runs[nrun];
    page_entry_t *re = &((large_header_t *)(h->base + (roff & ~(SHR_CHUNK_SIZE - 1))))->page[(roff & (SHR_CHUNK_SIZE - 1)) >> SHR_PAGE_SHIFT];
    EXPECT_REPORTED(h, re->prev, (uint64_t)1 << 41);
    EXPECT_REPORTED(h, g->large_runs[nrun], roff + 8);
    shr_free(h, big);
    /* Statistics refuse the bounds they would walk past. */
    shr_alloc_stats_t st;
    uint64_t saved = g->nchunks;
    g->nchunks = (uint64_t)1 << 60;
    cr_assert_eq(shr_heap_stats(h, &st), SHR_ECORRUPT);
    g->nchunks = saved;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    for (int i = 0; i < n; i++) shr_free(h, p[i]);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

static void *alloc_and_exit(void *arg)
{
    shr_heap_t *h = arg;
    void *p = shr_malloc(h, 48);
    shr_free(h, p);
    return p; /* the thread's exit releases its slot */
}

Test(alloc_damage, free_slot_with_leftovers_is_reported_and_a_new_claim_does_not_trust_them)
{
    shr_heap_t *h = make_heap();
    void *mine = shr_malloc(h, 32); /* this thread holds slot 0 */
    uint32_t s = 1;
    cr_assert_eq(shr_load_relaxed(&shr__thread_slot(h, s)->state), SHR_ENTRY_FREE);
    alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, s);
    /* One byte in the allocator region of the unused slot. */
    ((uint8_t *)&ts->used[2])[5] = 0x5a;
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "a free slot's leftover is reported");
    ts->cache[AC_MEDIUM] = 0;
    /* The next thread takes that slot; its exit walks its lists. Before the
     * claim reset them, this walked the leftover and crashed under the
     * registry lock. */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, alloc_and_exit, h), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_free(h, mine);
    shr_heap_close(h);
}

typedef struct {
    shr_heap_t *h;
    void *block;
    shr_test_gate_t ready, go;
} holder_t;

static void *hold_a_pool(void *arg)
{
    holder_t *x = arg;
    x->block = shr_malloc(x->h, 96);
    shr_test_gate_open(&x->ready);
    shr_test_gate_wait(&x->go, 60000);
    shr_free(x->h, x->block);
    return NULL;
}

Test(alloc_damage, damaged_remote_stack_head_of_another_threads_pool_is_reported)
{
    shr_heap_t *h = make_heap();
    holder_t x = {.h = h};
    shr_test_gate_init(&x.ready);
    shr_test_gate_init(&x.go);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_a_pool, &x), 0);
    shr_test_gate_wait(&x.ready, 60000);
    pool_header_t *pool = pool_of_ptr(h, x.block);
    cr_assert_eq(shr_heap_check(h), 0);
    /* The owner's next splice (or its close) follows this word. */
    uint64_t po = shr__off(h, pool);
    EXPECT_REPORTED(h, pool->remote, (uint64_t)1 << 44);
    EXPECT_REPORTED(h, pool->remote, po + 8);                  /* inside the header */
    EXPECT_REPORTED(h, pool->remote, pool_mem(po, SHR_SMALL_POOL_SHIFT) + 32); /* off a block boundary */
    EXPECT_REPORTED(h, pool->block_size, 7u);                  /* what remote freers trust */
    EXPECT_REPORTED(h, pool->shift, (uint16_t)(SHR_SMALL_POOL_SHIFT + 64)); /* never used as a shift */
    /* A pool owned by a slot that is free: its next claimer would trust it. */
    uint32_t free_slot = 0;
    while (shr_load_relaxed(&shr__thread_slot(h, free_slot)->state) != SHR_ENTRY_FREE) free_slot++;
    EXPECT_REPORTED(h, pool->owner, free_slot + 1);
    EXPECT_REPORTED(h, pool->owner, 1u << 30);
    shr_test_gate_open(&x.go);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

static void *free_from_another_thread(void *arg)
{
    void **a = arg;
    shr_free(a[0], a[1]);
    return NULL;
}

/* At level 0 the free fast path (the caller's own pool) cannot afford the
 * check; every other free of a block the pool never carved (the slow path)
 * is refused and changes nothing. Level >= 1 aborts on it (test_alloc_death). */
Test(alloc_damage, free_of_an_uncarved_block_on_the_slow_path_changes_nothing)
{
    if (SHR_DEBUG >= 1) cr_skip_test("debug builds abort on it (test_alloc_death)");
    shr_heap_t *h = make_heap();
    void *a = shr_malloc(h, 64);
    pool_header_t *pool = pool_of_ptr(h, a);
    uint32_t next = shr_load_relaxed(&pool->nextoffset), nused = shr_load_relaxed(&pool->nused);
    uint64_t freeblock = shr_load_relaxed(&pool->freeblock);
    void *uncarved = (uint8_t *)pool + next + 64; /* a block boundary past nextoffset */
    cr_assert_lt(next + 64, 4096);
    void *args[2] = {h, uncarved};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_from_another_thread, args), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(shr_load_relaxed(&pool->remote), 0, "nothing pushed on the remote stack");
    cr_assert_eq(shr_load_relaxed(&pool->nused), nused, "nused unchanged");
    cr_assert_eq(shr_load_relaxed(&pool->freeblock), freeblock, "the free list unchanged");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* Nothing is handed out twice. */
    void *b[64];
    for (int i = 0; i < 64; i++) {
        b[i] = shr_malloc(h, 64);
        for (int j = 0; j < i; j++) cr_assert_neq(b[i], b[j]);
    }
    for (int i = 0; i < 64; i++) shr_free(h, b[i]);
    shr_free(h, a);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(alloc_damage, pool_shift_out_of_range_is_reported_not_used_as_a_shift)
{
    shr_heap_t *h = make_heap();
    void *p = shr_malloc(h, 64);
    cr_assert_not_null(p);
    pool_header_t *pool = pool_of_ptr(h, p);
    cr_assert_eq(shr_heap_check(h), 0);
    EXPECT_REPORTED(h, pool->shift, (uint16_t)(SHR_SMALL_POOL_SHIFT + 64));
    EXPECT_REPORTED(h, pool->shift, (uint16_t)200);
    EXPECT_REPORTED(h, pool->shift, (uint16_t)(SHR_SMALL_POOL_SHIFT + 1));
    shr_free(h, p);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* check.c: the step of the walks over what spans arenas (0: the default). */
void shr__alloc_check_step(uint32_t n);

static uint64_t arena_acquisitions(shr_heap_t *h)
{
    return atomic_load(&h->hdr->locks[SHR_LOCK_ARENA].nacquired);
}

Test(alloc_damage, check_walks_the_chunk_table_in_steps_and_still_reports_damage)
{
    shr_heap_t *h = make_heap();
    alloc_global_t *g = alloc_global(h);
    /* Chunks of every kind: huge runs with free runs between them, a large
     * chunk, arenas. */
    void *huge[48];
    for (int i = 0; i < 48; i++) cr_assert_not_null(huge[i] = shr_malloc(h, 300u << 10));
    for (int i = 0; i < 48; i += 2) shr_free(h, huge[i]);
    void *big = shr_malloc(h, 20000), *small = shr_malloc(h, 64);
    cr_assert_not_null(big);
    cr_assert_not_null(small);
    uint64_t chunks = shr_load_relaxed(&g->hwm) - g->first_data;
    cr_assert_gt(chunks, 64);
    cr_assert_eq(shr_heap_check(h), 0);
    uint64_t whole = arena_acquisitions(h);
    cr_assert_eq(shr_heap_check(h), 0);
    whole = arena_acquisitions(h) - whole;
    /* Steps of 4 entries: the table walk alone lets the lock go a quarter
     * as many times as there are chunks. */
    shr__alloc_check_step(4);
    uint64_t stepped = arena_acquisitions(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "a stepped walk of a quiet heap is clean");
    stepped = arena_acquisitions(h) - stepped;
    cr_assert_geq(stepped, whole + chunks / 4, "%llu acquisitions stepped, %llu in default steps, %llu chunks",
                  (unsigned long long)stepped, (unsigned long long)whole, (unsigned long long)chunks);
    /* Damage is still found across steps: a free run not on its list, a
     * huge tail that does not point back, a list entry out of range, a
     * large chunk's free page count. */
    uint64_t free_head = 0, huge_head = 0;
    chunk_t *t = chunk_table(h);
    for (uint64_t c = g->first_data + chunks / 2; c < shr_load_relaxed(&g->hwm) && (!free_head || !huge_head); c++) {
        if (!free_head && t[c].kind == CHUNK_FREE) free_head = c;
        if (!huge_head && t[c].kind == CHUNK_HUGE && t[c].run > 1) huge_head = c;
    }
    cr_assert(free_head && huge_head, "a free run and a huge run past the first steps");
    EXPECT_REPORTED(h, t[free_head].kind, (uint32_t)CHUNK_SMALL + 77);
    EXPECT_REPORTED(h, t[huge_head + 1].run, 9u);
    int l;
    for (l = 0; l < SHR_NRUNLISTS && !g->runs[l]; l++) {
    }
    cr_assert_lt(l, SHR_NRUNLISTS);
    EXPECT_REPORTED(h, g->runs[l], (uint64_t)1 << 45);
    large_header_t *lh = (large_header_t *)(h->base + SHR_ALIGN_DOWN(shr_off(h, big), SHR_CHUNK_SIZE));
    EXPECT_REPORTED(h, lh->free_pages, lh->free_pages + 1);
    shr__alloc_check_step(0);
    shr_free(h, big);
    shr_free(h, small);
    for (int i = 1; i < 48; i += 2) shr_free(h, huge[i]);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
