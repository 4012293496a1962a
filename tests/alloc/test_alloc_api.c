/* The allocator through the public API. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_api, .fini = fini, .timeout = 120);

static shr_heap_t *make_heap(size_t capacity, unsigned flags)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    if (capacity) o.capacity = capacity;
    o.flags = flags;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    return h;
}

static void done(shr_heap_t *h)
{
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "heap check after the test");
    shr_heap_close(h);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 31 + i);
}

static bool intact(const uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed * 31 + i)) return false;
    return true;
}

Test(alloc_api, every_size_is_aligned_usable_and_distinct)
{
    shr_heap_t *h = make_heap(0, 0);
    static size_t sizes[] = {0,    1,    15,   16,    17,    100,   511,   512,    513,
                             640,  641,  1000, 4096,  4097,  16383, 16384, 16385,  20000,
                             65536, 258048, 258049, 300000, 1 << 20, (1 << 20) + 1, 5 << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    uint8_t *p[N];
    for (unsigned i = 0; i < N; i++) {
        p[i] = shr_malloc(h, sizes[i]);
        cr_assert_not_null(p[i], "malloc(%zu)", sizes[i]);
        cr_assert_eq((uintptr_t)p[i] % 16, 0, "malloc(%zu) not 16-byte aligned", sizes[i]);
        size_t u = shr_usable_size(h, p[i]);
        cr_assert_geq(u, sizes[i] ? sizes[i] : 1, "usable %zu < %zu", u, sizes[i]);
        if (sizes[i] > 512) cr_assert_leq(u - sizes[i], sizes[i] / 4 + 1, "waste over 25%% for %zu: %zu", sizes[i], u);
        fill(p[i], sizes[i], i);
    }
    for (unsigned i = 0; i < N; i++) cr_assert(intact(p[i], sizes[i], i), "block %u overwritten", i);
    for (unsigned i = 0; i < N; i++) shr_free(h, p[i]);
    shr_free(h, NULL);
    done(h);
}

Test(alloc_api, waste_is_bounded_for_every_size)
{
    shr_heap_t *h = make_heap(0, 0);
    for (size_t n = 1; n <= 300000; n += (n < 20000 ? 1 : 997)) {
        void *p = shr_malloc(h, n);
        cr_assert_not_null(p);
        size_t u = shr_usable_size(h, p);
        cr_assert_geq(u, n);
        /* Above the small classes waste stays under 25% (small sizes round to
         * 16 bytes, as in pymalloc). */
        if (n > 512) cr_assert_leq((double)(u - n) / (double)n, 0.25 + 1e-9, "size %zu usable %zu", n, u);
        else cr_assert_leq(u - n, 15, "size %zu usable %zu", n, u);
        shr_free(h, p);
    }
    done(h);
}

Test(alloc_api, calloc_zeroes_and_checks_overflow)
{
    shr_heap_t *h = make_heap(0, 0);
    uint8_t *p = shr_malloc(h, 256);
    memset(p, 0xab, 256);
    shr_free(h, p);
    uint8_t *q = shr_calloc(h, 16, 16);
    cr_assert_not_null(q);
    for (int i = 0; i < 256; i++) cr_assert_eq(q[i], 0);
    shr_free(h, q);
    errno = 0;
    cr_assert_null(shr_calloc(h, SIZE_MAX / 2, 3));
    cr_assert_eq(errno, ENOMEM);
    done(h);
}

Test(alloc_api, realloc_keeps_contents_and_grows_in_place)
{
    shr_heap_t *h = make_heap(0, 0);
    uint8_t *p = shr_realloc(h, NULL, 16);
    cr_assert_not_null(p);
    fill(p, 16, 7);
    size_t n = 16;
    while (n < (1u << 20)) {
        size_t next = n * 2;
        p = shr_realloc(h, p, next);
        cr_assert_not_null(p);
        cr_assert(intact(p, n, 7), "contents lost growing to %zu", next);
        fill(p, next, 7);
        n = next;
    }
    /* Shrinking a little stays in place (pymalloc's rule), a lot moves. */
    uint8_t *s = shr_malloc(h, 512);
    cr_assert_eq(shr_realloc(h, s, 400), s);
    uint8_t *m = shr_realloc(h, s, 16);
    cr_assert_not_null(m);
    shr_free(h, m);
    /* A large run grows into the free pages that follow it. */
    uint8_t *a = shr_malloc(h, 20000);
    fill(a, 20000, 3);
    uint8_t *b = shr_realloc(h, a, 60000);
    cr_assert_eq(b, a, "large run did not grow in place");
    cr_assert(intact(b, 20000, 3));
    /* A huge block grows in place within its last chunk. */
    uint8_t *c = shr_malloc(h, 300000);
    cr_assert_eq(shr_realloc(h, c, 400000), c, "huge block did not grow in place");
    /* And shrinks in place by any amount, its chunks past the new size given
     * back (it used to be copied below three quarters of its chunks). */
    shr_alloc_stats_t before, after;
    uint8_t *d = shr_malloc(h, 8u << 20);
    cr_assert_not_null(d);
    fill(d, 300000, 5);
    cr_assert_eq(shr_heap_stats(h, &before), 0);
    /* A size no heap holds fails, whatever rounding it would wrap to (found
     * by fuzz_alloc: SIZE_MAX - 661 rounded to 0 pages "shrank" the block
     * away), and leaves the block as it was. */
    errno = 0;
    cr_assert_null(shr_realloc(h, d, SIZE_MAX - 661));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(intact(d, 300000, 5), "the block is untouched");
    cr_assert_eq(shr_heap_check(h), 0);
    cr_assert_eq(shr_realloc(h, d, 300000), d, "a huge block shrinks in place");
    cr_assert(intact(d, 300000, 5));
    cr_assert_eq(shr_heap_stats(h, &after), 0);
    cr_assert_leq(after.large_bytes + (7u << 20), before.large_bytes, "its bytes counted down");
    cr_assert_leq(after.chunks_used + 30, before.chunks_used, "its chunks past 300000 bytes are free (%llu -> %llu)",
                  (unsigned long long)before.chunks_used, (unsigned long long)after.chunks_used);
    shr_free(h, d);
    shr_free(h, b);
    shr_free(h, c);
    shr_free(h, p);
    done(h);
}

Test(alloc_api, exhaustion_is_enomem_and_recoverable)
{
    shr_heap_t *h = make_heap(8u << 20, 0);
    void *blocks[100000];
    size_t n = 0;
    errno = 0;
    while (n < 100000 && (blocks[n] = shr_malloc(h, 4000)) != NULL) n++;
    cr_assert_lt(n, 100000, "an 8 MiB heap never filled");
    cr_assert_eq(errno, ENOMEM);
    cr_assert_null(shr_malloc(h, 1u << 20));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(shr_heap_check(h), 0, "a full heap is still sound");
    for (size_t i = 0; i < n; i += 2) shr_free(h, blocks[i]);
    void *again = shr_malloc(h, 4000);
    cr_assert_not_null(again, "freed space is usable again");
    shr_free(h, again);
    for (size_t i = 1; i < n; i += 2) shr_free(h, blocks[i]);
    cr_assert_not_null(shr_malloc(h, 1u << 20), "everything freed coalesces into a large run");
    done(h);
}

Test(alloc_api, committed_memory_follows_live_data)
{
    shr_heap_t *h = make_heap(1u << 30, 0);
    const char *name = shr_heap_name(h);
    int64_t base = shr_test_shm_bytes(name);
    enum { N = 60000 };
    static void *p[N];
    size_t total = 0;
    srand(42);
    for (int i = 0; i < N; i++) {
        size_t n = (i % 50 == 0) ? 20000 + (size_t)rand() % 200000 : 16 + (size_t)rand() % 1500;
        p[i] = shr_malloc(h, n);
        cr_assert_not_null(p[i]);
        memset(p[i], 1, n);
        total += n;
    }
    cr_assert_gt(total, (size_t)100 << 20, "about 100 MB live (%zu)", total);
    int64_t full = shr_test_shm_bytes(name);
    cr_assert_gt(full - base, (int64_t)total * 9 / 10);
    for (int i = 0; i < N; i++) shr_free(h, p[(i * 7919) % N]);
    cr_assert_eq(shr_heap_collect(h), 0);
    int64_t after = shr_test_shm_bytes(name);
    /* Kept: one empty arena per arena class, one empty large chunk. */
    cr_assert_lt(after - base, (int64_t)2 << 20, "committed %lld bytes above the header after freeing all",
                 (long long)(after - base));
    done(h);
}

Test(alloc_api, roots_map_names_to_offsets)
{
    shr_heap_t *h = make_heap(0, 0);
    void *p = shr_malloc(h, 64);
    shr_off_t off = shr_off(h, p), got = 0;
    char longname[SHR_ROOT_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert_eq(shr_root_get(h, "a", &got), -ENOENT);
    cr_assert_eq(shr_root_set(h, "a", off), 0);
    cr_assert_eq(shr_root_get(h, "a", &got), 0);
    cr_assert_eq(got, off);
    cr_assert_eq(shr_root_set(h, "a", off + 16), 0, "replace");
    cr_assert_eq(shr_root_get(h, "a", &got), 0);
    cr_assert_eq(got, off + 16);
    cr_assert_eq(shr_root_set(h, "", off), -EINVAL);
    cr_assert_eq(shr_root_set(h, longname, off), -ENAMETOOLONG);
    cr_assert_eq(shr_root_set(h, "b", 0), -EINVAL);
    cr_assert_eq(shr_root_set(h, "b", SHR_DEFAULT_CAPACITY), -EINVAL);
    cr_assert_eq(shr_root_get(h, "b", &got), -ENOENT, "failed sets change nothing");
    cr_assert_eq(shr_root_delete(h, "a"), 0);
    cr_assert_eq(shr_root_delete(h, "a"), -ENOENT);
    /* Fill the directory. */
    char name[32];
    int i;
    for (i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "root%d", i);
        int rc = shr_root_set(h, name, off);
        if (rc == -ENOSPC) break;
        cr_assert_eq(rc, 0);
    }
    cr_assert_gt(i, 100);
    cr_assert_lt(i, 5000, "the directory is bounded and says so");
    cr_assert_eq(shr_root_delete(h, "root0"), 0);
    cr_assert_eq(shr_root_set(h, "again", off), 0, "a deleted slot is reused");
    shr_free(h, p);
    done(h);
}

static int count_root(const char *name, shr_off_t off, void *arg)
{
    (void)off;
    if (strcmp(name, "stop") == 0) return 7;
    (*(int *)arg)++;
    return 0;
}

Test(alloc_api, root_list)
{
    shr_heap_t *h = make_heap(0, 0);
    void *p = shr_malloc(h, 16);
    cr_assert_eq(shr_root_set(h, "one", shr_off(h, p)), 0);
    cr_assert_eq(shr_root_set(h, "two", shr_off(h, p)), 0);
    int n = 0;
    cr_assert_eq(shr_root_list(h, count_root, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(shr_root_set(h, "stop", shr_off(h, p)), 0);
    cr_assert_eq(shr_root_list(h, count_root, &n), 7, "the callback's value stops the walk");
    shr_free(h, p);
    done(h);
}

Test(alloc_api, statistics_count_blocks)
{
    shr_heap_t *h = make_heap(0, 0);
    shr_alloc_stats_t st;
    void *p[1000];
    for (int i = 0; i < 1000; i++) p[i] = shr_malloc(h, 64);
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.classes[3].block_size, 64);
    cr_assert_eq(st.classes[3].blocks_in_use, 1000);
    cr_assert_geq(st.classes[3].pools, 1000 / ((4096 - 64) / 64));
    cr_assert_geq(st.arenas, 1);
    for (int i = 0; i < 1000; i++) shr_free(h, p[i]);
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    cr_assert_eq(st.classes[3].blocks_in_use, 0);
    done(h);
}

/* The report's byte lines sum to arenas x SHR_ARENA_SIZE (the identity of
 * CPython's _debugmallocstats). */
Test(alloc_api, stats_report_identity)
{
    shr_heap_t *h = make_heap(0, 0);
    void *p[3000];
    for (int i = 0; i < 3000; i++) p[i] = shr_malloc(h, (size_t)(1 + (i * 37) % 9000));
    for (int i = 0; i < 3000; i += 3) shr_free(h, p[i]);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(shr_heap_stats_print(h, f), 0);
    fclose(f);
    unsigned long long arenas_bytes = 0, sum = 0, total = 0, v;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        char digits[64];
        int j = 0;
        for (char *c = eq + 1; *c && j < 63; c++)
            if (*c >= '0' && *c <= '9') digits[j++] = *c;
        digits[j] = 0;
        v = strtoull(digits, NULL, 10);
        if (strstr(line, "bytes/arena")) arenas_bytes = v;
        else if (strncmp(line, "Total", 5) == 0) total = v;
        else if (strstr(line, "# bytes in allocated") || strstr(line, "# bytes in available") ||
                 strstr(line, "unused pools") || strstr(line, "pool headers") ||
                 strstr(line, "quantization") || strstr(line, "arena alignment"))
            sum += v;
    }
    free(buf);
    cr_assert_gt(arenas_bytes, 0);
    cr_assert_eq(sum, arenas_bytes, "byte lines %llu != arenas %llu", sum, arenas_bytes);
    cr_assert_eq(total, arenas_bytes);
    for (int i = 1; i < 3000; i++)
        if (i % 3) shr_free(h, p[i]);
    done(h);
}

Test(alloc_api, guards_catch_overruns)
{
    shr_heap_t *h = make_heap(0, SHR_HEAP_GUARDS);
    uint8_t *p = shr_malloc(h, 100);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 16, 0);
    cr_assert_eq(shr_usable_size(h, p), 100, "a guarded block knows its size");
    memset(p, 7, 100);
    cr_assert_eq(shr_heap_check(h), 0);
    p[100] = 1; /* one byte past the end */
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT);
    p[100] = 0xFD;
    cr_assert_eq(shr_heap_check(h), 0);
    shr_free(h, p);
    uint8_t *big = shr_malloc(h, 100000);
    cr_assert_not_null(big);
    shr_free(h, big);
    done(h);
}

Test(alloc_api, bad_frees_are_ignored_in_release_builds)
{
#if SHR_DEBUG >= 1
    cr_skip_test("debug builds abort instead (see the death suite)");
#else
    shr_heap_t *h = make_heap(0, 0);
    int local;
    shr_free(h, &local);
    shr_free(h, (uint8_t *)shr_ptr(h, 8));
    done(h);
#endif
}

static int count_root_null(const char *name, shr_off_t off, void *arg)
{
    (void)name, (void)off;
    ++*(int *)arg;
    return 0;
}

/* The rule for a NULL handle (sharena.h): an error, never a crash, and
 * nothing changes. */
Test(alloc_api, a_null_heap_handle_is_an_error_everywhere)
{
    shr_heap_t *h = make_heap(0, 0);
    void *p = shr_malloc(h, 40);
    errno = 0;
    cr_assert_null(shr_malloc(NULL, 16));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(shr_malloc(NULL, 100000));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(shr_calloc(NULL, 4, 4));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(shr_realloc(NULL, p, 80));
    cr_assert_eq(errno, EINVAL);
    shr_free(NULL, p); /* ignored: p is still live */
    shr_free(NULL, NULL);
    cr_assert_eq(shr_usable_size(NULL, p), 0);
    cr_assert_eq(shr_heap_check(NULL), -EINVAL);
    cr_assert_eq(shr_heap_check_report(NULL, stderr), -EINVAL);
    cr_assert_eq(shr_heap_collect(NULL), -EINVAL);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(NULL, &st), -EINVAL);
    cr_assert_eq(shr_heap_stats_print(NULL, stdout), -EINVAL);
    shr_off_t off = 0;
    cr_assert_eq(shr_root_set(NULL, "r", shr_off(h, p)), -EINVAL);
    cr_assert_eq(shr_root_get(NULL, "r", &off), -EINVAL);
    cr_assert_eq(shr_root_delete(NULL, "r"), -EINVAL);
    int n = 0;
    cr_assert_eq(shr_root_list(NULL, count_root_null, &n), -EINVAL);
    cr_assert_eq(n, 0);
    /* Nothing changed: p is live and usable, the heap whole. */
    cr_assert_geq(shr_usable_size(h, p), 40);
    memset(p, 7, 40);
    shr_free(h, p);
    cr_assert_eq(shr_test_blocks_in_use(h), 0);
    done(h);
}

Test(alloc_api, guarded_realloc_of_an_empty_block_grows_it)
{
    shr_heap_t *h = make_heap(0, SHR_HEAP_GUARDS);
    uint8_t *p = shr_malloc(h, 0);
    cr_assert_not_null(p);
    uint8_t *q = shr_realloc(h, p, 40);
    cr_assert_not_null(q, "a block of size 0 is a block: realloc takes it");
    memset(q, 5, 40);
    cr_assert_eq(shr_usable_size(h, q), 40);
    cr_assert_eq(shr_heap_check(h), 0);
    uint8_t *z = shr_realloc(h, q, 0);
    cr_assert_not_null(z);
    cr_assert_not_null(z = shr_realloc(h, z, 0), "and back to 0 and again");
    shr_free(h, z);
    done(h);
}
