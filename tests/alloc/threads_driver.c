/* Threaded scenarios without Criterion, so that ThreadSanitizer can run them
 * (Criterion's runner does not start under TSan: Snaipe/Criterion#274).
 * Registered with CTest under the label `threads`; the tsan preset runs that
 * label. Prints "N passed, N failed" and exits non-zero on any failure.
 *
 *   storm        4 threads allocate, free and trade blocks through a mailbox
 *                (cross-thread frees, give-up and adoption); contents checked
 *   short_lived  threads that allocate, keep a block and exit (orphans,
 *                adoption, slot release)
 *   observers    stats, check and roots from one thread while others allocate
 *   list         threads set, get, append and pop on one shared list; every
 *                string read must carry its own checksum
 *   stepped_check  check and stats in steps of two entries while threads
 *                take and give back huge and large blocks: no false report
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sharena.h"

static int failures;
#define EXPECT(c, ...)                                                                 \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            failures++;                                                                \
        }                                                                              \
    } while (0)

enum { NTHREADS = 4, MAILBOX = 64, ITERS = 40000 };

static shr_heap_t *heap;
static _Atomic(uint8_t *) mailbox[MAILBOX];
static atomic_int errors, stop;

static uint8_t *make_block(unsigned *seed)
{
    uint32_t n = 8 + (uint32_t)(rand_r(seed) % (rand_r(seed) % 16 ? 300 : 5000));
    uint8_t *p = shr_malloc(heap, n);
    if (!p) return NULL;
    memcpy(p, &n, 4);
    for (uint32_t i = 4; i < n; i++) p[i] = (uint8_t)(n + i);
    return p;
}

static int block_ok(const uint8_t *p)
{
    uint32_t n;
    memcpy(&n, p, 4);
    for (uint32_t i = 4; i < n; i++)
        if (p[i] != (uint8_t)(n + i)) return 0;
    return 1;
}

static void *storm_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uint8_t *mine[64] = {0};
    for (int it = 0; it < ITERS; it++) {
        unsigned r = (unsigned)rand_r(&seed), i = r % 64;
        if (r & 0x100) {
            uint8_t *b = make_block(&seed);
            if (!b) {
                atomic_fetch_add(&errors, 1);
                break;
            }
            uint8_t *got = atomic_exchange(&mailbox[(r >> 9) % MAILBOX], b);
            if (got) {
                if (!block_ok(got)) atomic_fetch_add(&errors, 1);
                shr_free(heap, got);
            }
        } else if (mine[i]) {
            if (!block_ok(mine[i])) atomic_fetch_add(&errors, 1);
            shr_free(heap, mine[i]);
            mine[i] = NULL;
        } else {
            mine[i] = make_block(&seed);
        }
    }
    for (int i = 0; i < 64; i++)
        if (mine[i]) shr_free(heap, mine[i]);
    return NULL;
}

static uint64_t blocks_in_use(void)
{
    shr_alloc_stats_t st;
    uint64_t n = 0;
    if (shr_heap_stats(heap, &st) != 0) return UINT64_MAX;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) n += st.classes[c].blocks_in_use;
    return n + st.large_blocks;
}

static void scenario_storm(void)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, storm_worker, (void *)(uintptr_t)(1234 + i));
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    EXPECT(atomic_load(&errors) == 0, "storm: %d damaged blocks or failed allocations", atomic_load(&errors));
    for (int m = 0; m < MAILBOX; m++) {
        uint8_t *b = atomic_exchange(&mailbox[m], NULL);
        if (b) {
            EXPECT(block_ok(b), "storm: mailbox block damaged");
            shr_free(heap, b);
        }
    }
    shr_heap_collect(heap);
    EXPECT(shr_heap_check_report(heap, stderr) == 0, "storm: heap check");
    uint64_t n = blocks_in_use();
    EXPECT(n == 0, "storm: %llu blocks still in use", (unsigned long long)n);
}

static void *short_lived(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) shr_free(heap, shr_malloc(heap, (size_t)(i % 700) + 1));
    return shr_malloc(heap, 200);
}

static void scenario_short_lived(void)
{
    void *kept[64];
    for (int round = 0; round < 64; round += 4) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, short_lived, NULL);
        for (int i = 0; i < 4; i++) pthread_join(t[i], &kept[round + i]);
    }
    shr_heap_info_t info;
    EXPECT(shr_heap_stat(heap, &info, NULL, 0, NULL) == 0 && info.nthreads <= 1,
           "short_lived: exited threads kept %u slots", info.nthreads);
    for (int i = 0; i < 64; i++) shr_free(heap, kept[i]);
    shr_heap_collect(heap);
    EXPECT(shr_heap_check_report(heap, stderr) == 0, "short_lived: heap check");
    EXPECT(blocks_in_use() == 0, "short_lived: blocks left");
}

static void *observer(void *arg)
{
    (void)arg;
    shr_alloc_stats_t st;
    while (!atomic_load(&stop)) {
        EXPECT(shr_heap_stats(heap, &st) == 0, "observer: stats");
        EXPECT(shr_heap_check_report(heap, stderr) == 0, "observer: check while others allocate");
        void *p = shr_malloc(heap, 24);
        EXPECT(shr_root_set(heap, "observed", shr_off(heap, p)) == 0, "observer: root");
        shr_off_t off;
        EXPECT(shr_root_get(heap, "observed", &off) == 0 && off == shr_off(heap, p), "observer: root get");
        shr_root_delete(heap, "observed");
        shr_free(heap, p);
    }
    return NULL;
}

static void scenario_observers(void)
{
    pthread_t obs, t[3];
    atomic_store(&stop, 0);
    pthread_create(&obs, NULL, observer, NULL);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, storm_worker, (void *)(uintptr_t)(99 + i));
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(obs, NULL);
    for (int m = 0; m < MAILBOX; m++) {
        uint8_t *b = atomic_exchange(&mailbox[m], NULL);
        if (b) shr_free(heap, b);
    }
    shr_heap_collect(heap);
    EXPECT(shr_heap_check_report(heap, stderr) == 0, "observers: heap check");
    EXPECT(blocks_in_use() == 0, "observers: blocks left");
}

/* check.c: the step of the walks over what spans arenas (0: the default). */
void shr__alloc_check_step(uint32_t n);

/* Chunks change all the time: huge and large blocks taken and given back. */
static void *chunk_churner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *held[16] = {0};
    while (!atomic_load(&stop)) {
        unsigned r = (unsigned)rand_r(&seed), i = r % 16;
        if (held[i]) {
            shr_free(heap, held[i]);
            held[i] = NULL;
        } else {
            size_t n = r & 0x100 ? (size_t)(260u << 10) + (r % 4) * (200u << 10) : 5000 + r % 60000;
            held[i] = shr_malloc(heap, n);
            if (!held[i]) atomic_fetch_add(&errors, 1);
        }
    }
    for (int i = 0; i < 16; i++) shr_free(heap, held[i]);
    return NULL;
}

static void scenario_stepped_check(void)
{
    pthread_t t[3];
    atomic_store(&stop, 0);
    atomic_store(&errors, 0);
    shr__alloc_check_step(2); /* every walk lets the locks go every two entries */
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, chunk_churner, (void *)(uintptr_t)(7 + i));
    for (int i = 0; i < 40; i++) {
        EXPECT(shr_heap_check_report(heap, stderr) == 0, "stepped_check: check while chunks change");
        shr_alloc_stats_t st;
        EXPECT(shr_heap_stats(heap, &st) == 0, "stepped_check: stats");
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    shr__alloc_check_step(0);
    EXPECT(atomic_load(&errors) == 0, "stepped_check: %d failed allocations", atomic_load(&errors));
    shr_heap_collect(heap);
    EXPECT(shr_heap_check_report(heap, stderr) == 0, "stepped_check: heap check");
    EXPECT(blocks_in_use() <= 1, "stepped_check: blocks left (the list scenario's lease table may remain)");
}

/* ---- list ------------------------------------------------------------------- */

static shr_list_t *shared_list;

static uint32_t sum32(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static void *list_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[128];
    for (int it = 0; it < 20000; it++) {
        unsigned r = (unsigned)rand_r(&seed);
        int64_t idx = (int64_t)(r % 32);
        if (r & 1) {
            size_t n = 9 + (size_t)(r >> 8) % 100;
            for (size_t i = 8; i < n; i++) buf[i] = (char)('a' + (r + i) % 26);
            uint32_t c = sum32(buf + 8, n - 8);
            memcpy(buf, &c, 4);
            memcpy(buf + 4, &c, 4);
            shr_value_t v = shr_bytes(buf, n);
            /* Two threads may both see len > 32 and both pop: an index
             * below 32 can then be out of range for a moment. */
            int rc = shr_list_set(shared_list, idx, &v);
            EXPECT(rc == 0 || rc == SHR_EINDEX, "list: set: %s", shr_strerror(rc));
        } else if (r & 2) {
            shr_value_t v;
            int rc = shr_list_get(shared_list, idx, &v);
            EXPECT(rc == 0 || rc == SHR_EINDEX, "list: get: %s", shr_strerror(rc));
            if (rc) continue;
            if (v.type == SHR_BYTES) {
                uint32_t c;
                memcpy(&c, v.u.s.data, 4);
                if (c != sum32(v.u.s.data + 8, v.u.s.len - 8)) atomic_fetch_add(&errors, 1);
            }
            shr_value_release(heap, &v);
        } else if (r & 4) {
            shr_value_t v = shr_int(it);
            EXPECT(shr_list_append(shared_list, &v) == 0, "list: append");
        } else if (shr_list_len(shared_list) > 32) {
            shr_list_pop(shared_list, -1, NULL);
        }
    }
    return NULL;
}

static void scenario_list(void)
{
    shr_value_t init[32];
    for (int i = 0; i < 32; i++) init[i] = shr_int(i);
    atomic_store(&errors, 0);
    EXPECT(shr_list_create(heap, "tsan_list", init, 32, &shared_list) == 0, "list: create");
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, list_worker, (void *)(uintptr_t)(7 + i));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    EXPECT(atomic_load(&errors) == 0, "list: %d strings failed their checksum", atomic_load(&errors));
    shr_list_close(shared_list);
    EXPECT(shr_list_unlink(heap, "tsan_list") == 0, "list: unlink");
    shr_heap_collect(heap);
    EXPECT(shr_heap_check_report(heap, stderr) == 0, "list: heap check");
    EXPECT(blocks_in_use() <= 1, "list: blocks left (the lease table may remain)");
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "t_%d_threads", (int)getpid());
    int rc = shr_heap_create(name, NULL, &heap);
    if (rc) {
        fprintf(stderr, "create: %s\n", shr_strerror(rc));
        return 1;
    }
    shr_heap_unlink(name); /* nothing left behind, even if a sanitizer aborts us */
    struct { const char *name; void (*fn)(void); } scenarios[] = {
        {"storm", scenario_storm}, {"short_lived", scenario_short_lived}, {"observers", scenario_observers},
        {"list", scenario_list}, {"stepped_check", scenario_stepped_check}};
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int before = failures;
        scenarios[i].fn();
        if (failures == before) passed++;
        else failed++;
        printf("%s: %s\n", scenarios[i].name, failures == before ? "ok" : "FAILED");
    }
    shr_heap_close(heap);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
