/* The allocator under threads of one process: cross-thread frees through a
 * shared mailbox, pool give-up and adoption, thread exit. Run under TSan. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_threads, .fini = fini, .timeout = 300);

enum { NTHREADS = 4, MAILBOX = 64, ITERS = 60000 };

typedef struct {
    shr_heap_t *h;
    _Atomic(uint8_t *) mailbox[MAILBOX];
    atomic_int errors;
    unsigned seed[NTHREADS];
} shared_t;

/* A block carries its size in its first 4 bytes and a pattern after. */
static uint8_t *make_block(shr_heap_t *h, unsigned *seed)
{
    uint32_t n = 8 + (uint32_t)(rand_r(seed) % (rand_r(seed) % 16 ? 300 : 5000));
    uint8_t *p = shr_malloc(h, n);
    if (!p) return NULL;
    memcpy(p, &n, 4);
    for (uint32_t i = 4; i < n; i++) p[i] = (uint8_t)(n + i);
    return p;
}

static bool block_ok(const uint8_t *p)
{
    uint32_t n;
    memcpy(&n, p, 4);
    for (uint32_t i = 4; i < n; i++)
        if (p[i] != (uint8_t)(n + i)) return false;
    return true;
}

static void *worker(void *arg)
{
    shared_t *s = ((void **)arg)[0];
    unsigned *seed = ((void **)arg)[1];
    uint8_t *mine[64] = {0};
    for (int it = 0; it < ITERS; it++) {
        unsigned r = (unsigned)rand_r(seed);
        unsigned i = r % 64;
        if (r & 0x100) {
            /* Trade with another thread: its block is freed here (remote). */
            unsigned m = (r >> 9) % MAILBOX;
            uint8_t *b = make_block(s->h, seed);
            if (!b) { atomic_fetch_add(&s->errors, 1); break; }
            uint8_t *got = atomic_exchange(&s->mailbox[m], b);
            if (got) {
                if (!block_ok(got)) atomic_fetch_add(&s->errors, 1);
                shr_free(s->h, got);
            }
        } else if (mine[i]) {
            if (!block_ok(mine[i])) atomic_fetch_add(&s->errors, 1);
            shr_free(s->h, mine[i]);
            mine[i] = NULL;
        } else {
            mine[i] = make_block(s->h, seed);
        }
    }
    for (int i = 0; i < 64; i++)
        if (mine[i]) shr_free(s->h, mine[i]);
    return NULL;
}

Test(alloc_threads, cross_thread_storm)
{
    static shared_t s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &s.h), 0);
    pthread_t t[NTHREADS];
    void *args[NTHREADS][2];
    for (int i = 0; i < NTHREADS; i++) {
        s.seed[i] = 1234u + (unsigned)i;
        args[i][0] = &s;
        args[i][1] = &s.seed[i];
        pthread_create(&t[i], NULL, worker, args[i]);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&s.errors), 0, "a block's contents changed");
    for (int m = 0; m < MAILBOX; m++) {
        uint8_t *b = atomic_load(&s.mailbox[m]);
        if (b) {
            cr_assert(block_ok(b));
            shr_free(s.h, b);
        }
    }
    shr_heap_collect(s.h);
    cr_assert_eq(shr_heap_check_report(s.h, stderr), 0);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(s.h, &st), 0);
    uint64_t in_use = 0;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) in_use += st.classes[c].blocks_in_use;
    cr_assert_eq(in_use, 0, "every block came back (%llu still in use)", (unsigned long long)in_use);
    cr_assert_eq(st.large_blocks, 0);
    shr_heap_close(s.h);
}

static void *alloc_and_exit(void *arg)
{
    shr_heap_t *h = arg;
    for (int i = 0; i < 1000; i++) shr_free(h, shr_malloc(h, (size_t)(i % 700) + 1));
    void *keep = shr_malloc(h, 200);
    return keep;
}

Test(alloc_threads, many_short_threads)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    void *kept[200];
    for (int round = 0; round < 200; round += 4) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, alloc_and_exit, h);
        for (int i = 0; i < 4; i++) pthread_join(t[i], &kept[round + i]);
    }
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_leq(info.nthreads, 1, "exited threads gave their slots back");
    for (int i = 0; i < 200; i++) shr_free(h, kept[i]);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
