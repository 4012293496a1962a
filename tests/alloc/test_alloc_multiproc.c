/* The allocator across processes: a producer and a consumer, two processes
 * of two threads trading blocks, and a short crash experiment. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "crash_storm.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_multiproc, .fini = fini, .timeout = 300);

Test(alloc_multiproc, producer_allocates_consumer_frees)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    enum { N = 5000 };
    uint64_t *arr = shr_malloc(h, (N + 1) * sizeof(uint64_t));
    arr[0] = N;
    for (int i = 0; i < N; i++) {
        size_t n = 16 + (size_t)(i * 7919) % 3000;
        uint8_t *b = shr_malloc(h, n);
        cr_assert_not_null(b);
        uint64_t off = shr_off(h, b);
        size_t u = shr_usable_size(h, b);
        for (size_t j = 16; j < u; j++) b[j] = (uint8_t)(off + j - 16);
        arr[1 + i] = off;
    }
    cr_assert_eq(shr_root_set(h, "work", shr_off(h, arr)), 0);
    cr_assert_eq(shr_test_run_peer("consume", shr_heap_name(h), "work", NULL), 0,
                 "the consumer saw every block intact and freed it");
    uint64_t in_use = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.large_blocks, 1, "the offset array (a large block) is left");
    cr_assert_eq(in_use, 1, "%llu blocks left besides the offset array", (unsigned long long)in_use - 1);
    shr_free(h, arr);
    shr_heap_close(h);
}

/* ---- 2 processes x 2 threads ------------------------------------------------ */

enum { SLOTS = 128, ITERS = 40000 };

typedef struct {
    shr_heap_t *h;
    _Atomic uint64_t *mailbox; /* in the heap: offsets of traded blocks */
    unsigned seed;
    int errors;
} storm_arg_t;

static uint8_t *new_block(shr_heap_t *h, unsigned *seed)
{
    uint32_t n = 8 + (uint32_t)(rand_r(seed) % 1000);
    uint8_t *p = shr_malloc(h, n);
    if (!p) return NULL;
    memcpy(p, &n, 4);
    for (uint32_t i = 4; i < n; i++) p[i] = (uint8_t)(n ^ i);
    return p;
}

static int block_ok(const uint8_t *p)
{
    uint32_t n;
    memcpy(&n, p, 4);
    if (n < 8 || n > 1008) return 0;
    for (uint32_t i = 4; i < n; i++)
        if (p[i] != (uint8_t)(n ^ i)) return 0;
    return 1;
}

static void *storm_thread(void *arg)
{
    storm_arg_t *a = arg;
    uint8_t *mine[32] = {0};
    for (int it = 0; it < ITERS && !a->errors; it++) {
        unsigned r = (unsigned)rand_r(&a->seed);
        if (r & 1) {
            uint8_t *b = new_block(a->h, &a->seed);
            if (!b) { a->errors++; break; }
            uint64_t got = atomic_exchange(&a->mailbox[(r >> 1) % SLOTS], shr_off(a->h, b));
            if (got) {
                uint8_t *g = shr_ptr(a->h, got);
                if (!block_ok(g)) a->errors++;
                shr_free(a->h, g);
            }
        } else {
            unsigned i = (r >> 1) % 32;
            if (mine[i]) {
                if (!block_ok(mine[i])) a->errors++;
                shr_free(a->h, mine[i]);
                mine[i] = NULL;
            } else {
                mine[i] = new_block(a->h, &a->seed);
            }
        }
    }
    for (int i = 0; i < 32; i++)
        if (mine[i]) shr_free(a->h, mine[i]);
    return NULL;
}

static int storm_process(void *arg)
{
    storm_arg_t *base = arg;
    storm_arg_t a[2] = {*base, *base};
    pthread_t t[2];
    a[0].seed = base->seed * 2 + (unsigned)getpid();
    a[1].seed = base->seed * 2 + 1 + (unsigned)getpid();
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, storm_thread, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    int errors = a[0].errors + a[1].errors;
    shr_heap_close(base->h);
    return errors ? 1 : 0;
}

Test(alloc_multiproc, two_processes_two_threads_trade_blocks)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    _Atomic uint64_t *mailbox = shr_calloc(h, SLOTS, sizeof *mailbox);
    storm_arg_t arg = {.h = h, .mailbox = mailbox, .seed = 77};
    pid_t p1 = shr_test_fork(storm_process, &arg);
    arg.seed = 78;
    pid_t p2 = shr_test_fork(storm_process, &arg);
    cr_assert_eq(shr_test_wait(p1), 0, "process 1 saw a damaged block");
    cr_assert_eq(shr_test_wait(p2), 0, "process 2 saw a damaged block");
    for (int i = 0; i < SLOTS; i++) {
        uint64_t off = atomic_load(&mailbox[i]);
        if (!off) continue;
        cr_assert(block_ok(shr_ptr(h, off)));
        shr_free(h, shr_ptr(h, off));
    }
    shr_free(h, (void *)mailbox);
    uint64_t in_use = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(in_use, 0, "%llu blocks still in use", (unsigned long long)in_use);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.dead_threads, 0, "clean exits are not deaths");
    shr_heap_close(h);
}

Test(alloc_multiproc, kill_storm_short) { crash_storm(12, 3, 7); }

/* ---- a dead thread's pools, found in the arenas it touched ------------------ */

typedef struct {
    shr_heap_t *h;
    _Atomic uint64_t *box; /* in the heap: [0] the child's slot + 1 */
    long nblocks;
} toucher_t;

static int touch_and_die(void *arg)
{
    toucher_t *t = arg;
    for (long i = 0; i < t->nblocks; i++)
        if (!shr_malloc(t->h, 16 + (size_t)(i % 4) * 16)) return 2;
    shr_tctx_t *ctx = shr__tctx(t->h);
    atomic_store(&t->box[0], ctx->slot + 1);
    kill(getpid(), SIGKILL);
    return 3;
}

static uint64_t pools_owned_by(shr_heap_t *h, uint32_t id)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t n = 0;
    for (uint64_t c = g->first_data; c < g->hwm; c++) {
        chunk_t *a = &chunk_table(h)[c];
        if (a->kind != CHUNK_SMALL && a->kind != CHUNK_MEDIUM) continue;
        unsigned shift = arena_pool_shift(h, a->kind);
        for (uint64_t mem = arena_pools_start(chunk_off(c), shift); mem < a->pool_address;
             mem += (uint64_t)1 << shift)
            n += pool_at(h, pool_hdr_of(mem, shift))->owner == id;
    }
    return n;
}

static void dead_pools_reclaimed(long nblocks, bool overflow)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    /* The parent fills arenas of its own first, so that the child's are a
     * few among many. */
    for (int i = 0; i < 20 * 64 * 60; i++) cr_assert_not_null(shr_malloc(h, 64));
    _Atomic uint64_t *box = shr_calloc(h, 1, sizeof *box);
    toucher_t t = {h, box, nblocks};
    cr_assert_eq(shr_test_wait(shr_test_fork(touch_and_die, &t)), 128 + SIGKILL);
    uint32_t id = (uint32_t)atomic_load(&box[0]);
    cr_assert_neq(id, 0);
    alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, id - 1);
    uint32_t n = ts->ntouched;
    if (overflow) cr_assert_eq(n, SHR_TOUCHED_MAX + 1, "more arenas than the list holds: %u", n);
    else cr_assert(n >= 1 && n <= 4, "the child touched %u arenas", n);
    cr_assert_gt(pools_owned_by(h, id), 0, "the dead child owns pools");
    cr_assert_geq(shr_heap_recover(h), 1);
    cr_assert_eq(pools_owned_by(h, id), 0, "every pool of the dead slot was orphaned");
    cr_assert_eq(ts->ntouched, 0, "the slot's record is reset");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(alloc_multiproc, dead_threads_pools_are_found_in_the_arenas_it_touched) { dead_pools_reclaimed(3000, false); }
Test(alloc_multiproc, dead_thread_that_touched_many_arenas_is_reclaimed_by_a_scan)
{
    dead_pools_reclaimed(2 * 63L * 64 * (SHR_TOUCHED_MAX + 4), true);
}
