/* fuzz_alloc: sequences of malloc, calloc, realloc and free against a model.
 *
 * Each input is one fresh heap (32 MiB, with or without guard bytes) and a
 * program of up to 2048 steps on 32 slots. Every block is filled with a
 * pattern derived from its id and its size, and the pattern is verified
 * before the block is freed or reallocated and at the end, so a block that
 * overlaps another, moves without its contents or is handed out twice is
 * caught at the first step that can see it. A helper thread frees some
 * blocks, so remote frees (the CAS stack of a pool another thread owns) are
 * in the mix, and collects.
 *
 * Input:  [flags] then steps of [op] [operands...]
 *   flags  bit 0: SHR_HEAP_GUARDS
 *   op     low 3 bits the operation, high 5 bits the slot:
 *          0,1 malloc(size)   2 calloc(count, size)   3 realloc(size)
 *          4 free   5 free from the helper thread   6 collect (this thread
 *          or the helper)   7 shr_heap_check (at most 8 per input)
 *   size   one byte picks the range (small, medium, page run, chunk run,
 *          absurd), then two bytes the size within it.
 *
 * Checked after every step: the result is NULL only with errno ENOMEM (and
 * for realloc the old block is then intact), blocks are 16-byte aligned and
 * inside the heap, usable size covers the request, calloc's memory is zero.
 * At the end: no two live blocks overlap, the heap's statistics count
 * exactly the live blocks, shr_heap_check passes, and once everything is
 * freed, nothing is in use.
 */
#include <errno.h>
#include <pthread.h>

#include "fuzz_common.h"

#define NSLOTS 32
#define MAX_STEPS 2048
#define MAX_CHECKS 8
#define HEAP_CAPACITY ((size_t)32 << 20)

typedef struct slot {
    uint8_t *p;
    size_t size;
    uint32_t id;
} slot_t;

/* ---- content patterns ------------------------------------------------------ */

static inline uint8_t pat(uint32_t id, size_t i) { return (uint8_t)(id * 131u + i * 7u + (i >> 9)); }

/* Large blocks are filled and verified sparsely: the first and last 4 KiB
 * and one byte in every 512, enough to see a block overlap or move. */
#define DENSE_LIMIT 8192

static void fill(uint8_t *p, size_t n, uint32_t id)
{
    if (n <= DENSE_LIMIT) {
        for (size_t i = 0; i < n; i++) p[i] = pat(id, i);
        return;
    }
    for (size_t i = 0; i < 4096; i++) p[i] = pat(id, i);
    for (size_t i = 4096; i < n - 4096; i += 512) p[i] = pat(id, i);
    for (size_t i = n - 4096; i < n; i++) p[i] = pat(id, i);
}

/* Index of the first byte of p[0..n) that differs from the pattern that
 * fill(p, filled, id) wrote, or n (n <= filled: a realloc that shrank). */
static size_t verify(const uint8_t *p, size_t n, size_t filled, uint32_t id)
{
    if (filled <= DENSE_LIMIT) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(id, i)) return i;
        return n;
    }
    for (size_t i = 0; i < n && i < 4096; i++)
        if (p[i] != pat(id, i)) return i;
    for (size_t i = 4096; i < n && i < filled - 4096; i += 512)
        if (p[i] != pat(id, i)) return i;
    for (size_t i = filled - 4096; i < n; i++)
        if (p[i] != pat(id, i)) return i;
    return n;
}

/* ---- the helper thread: frees and collects when asked ------------------------ */

typedef struct helper {
    pthread_t t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int op;            /* 0 idle, 1 free, 2 collect */
    shr_heap_t *heap;
    void *ptr;
    int rc;
} helper_t;

static helper_t helper = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&helper.mu);
    for (;;) {
        while (helper.op == 0) pthread_cond_wait(&helper.cv, &helper.mu);
        if (helper.op == 1) shr_free(helper.heap, helper.ptr);
        else helper.rc = shr_heap_collect(helper.heap);
        helper.op = 0;
        pthread_cond_broadcast(&helper.cv);
    }
    return NULL;
}

/* Run op on the helper thread and wait for it. */
static int helper_run(int op, shr_heap_t *h, void *ptr)
{
    pthread_mutex_lock(&helper.mu);
    helper.heap = h;
    helper.ptr = ptr;
    helper.op = op;
    pthread_cond_broadcast(&helper.cv);
    while (helper.op != 0) pthread_cond_wait(&helper.cv, &helper.mu);
    int rc = helper.rc;
    pthread_mutex_unlock(&helper.mu);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_env_init();
    if (pthread_create(&helper.t, NULL, helper_main, NULL) != 0) abort();
    return 0;
}

/* ---- decoding ---------------------------------------------------------------- */

static size_t decode_size(fz_in_t *in)
{
    uint8_t r = fz_u8(in);
    uint16_t v = fz_u16(in);
    switch (r & 7) {
    case 0: case 1: case 2: return v % 513u;                    /* small classes */
    case 3: return 513u + v % (64u << 10);                      /* medium pools */
    case 4: return (64u << 10) + (size_t)v * 3u;                /* page runs */
    case 5: return (256u << 10) + (size_t)v * 32u;              /* chunk runs, to ~2.3 MiB */
    case 6: return (size_t)v % 64u * 4096u + (v >> 14);         /* page boundaries */
    default:                                                    /* nothing can hold these */
        return (v & 1) ? SIZE_MAX - (v >> 1) : HEAP_CAPACITY + ((size_t)v << 12);
    }
}

/* ---- the program ------------------------------------------------------------ */

typedef struct run {
    shr_heap_t *h;
    slot_t s[NSLOTS];
    uint32_t next_id;
    int step;
    bool guards;
} run_t;

static void check_block(run_t *r, const slot_t *s, const char *what)
{
    uint8_t *base = (uint8_t *)shr_ptr(r->h, 1) - 1;
    FZ_CHECK(((uintptr_t)s->p & 15) == 0, "step %d %s: block %p not 16-byte aligned", r->step, what, (void *)s->p);
    FZ_CHECK(s->p > base && s->p + s->size <= base + HEAP_CAPACITY, "step %d %s: block outside the heap",
             r->step, what);
    FZ_CHECK(shr_usable_size(r->h, s->p) >= s->size, "step %d %s: usable size %zu < %zu", r->step, what,
             shr_usable_size(r->h, s->p), s->size);
}

static void verify_kept(run_t *r, const slot_t *s, size_t n, const char *what)
{
    size_t bad = verify(s->p, n, s->size, s->id);
    FZ_CHECK(bad == n, "step %d %s: block %u of %zu bytes changed at byte %zu", r->step, what, s->id,
             s->size, bad);
}

static void verify_slot(run_t *r, const slot_t *s, const char *what)
{
    size_t bad = verify(s->p, s->size, s->size, s->id);
    FZ_CHECK(bad == s->size, "step %d %s: block %u of %zu bytes changed at byte %zu", r->step, what, s->id,
             s->size, bad);
}

static void release_slot(run_t *r, slot_t *s, bool remote)
{
    if (!s->p) return;
    verify_slot(r, s, "free");
    if (remote) helper_run(1, r->h, s->p);
    else shr_free(r->h, s->p);
    s->p = NULL;
}

static void do_malloc(run_t *r, slot_t *s, size_t size, bool zero, size_t count)
{
    release_slot(r, s, false);
    errno = 0;
    uint8_t *p = zero ? shr_calloc(r->h, count, size) : shr_malloc(r->h, size);
    size_t n;
    bool ovf = zero && __builtin_mul_overflow(count, size, &n);
    if (!zero) n = size;
    if (!p) {
        FZ_CHECK(errno == ENOMEM, "step %d: allocation of %zu failed with errno %d", r->step, size, errno);
        return;
    }
    FZ_CHECK(!ovf, "step %d: calloc(%zu, %zu) overflows but succeeded", r->step, count, size);
    s->p = p;
    s->size = n;
    s->id = r->next_id++;
    check_block(r, s, "malloc");
    if (zero)
        for (size_t i = 0; i < n; i += (n > DENSE_LIMIT ? 509 : 1))
            FZ_CHECK(p[i] == 0, "step %d: calloc'ed byte %zu is %u", r->step, i, p[i]);
    fill(p, n, s->id);
}

static void do_realloc(run_t *r, slot_t *s, size_t size)
{
    if (!s->p || (s->size == 0 && r->guards && fz_known("guarded-realloc-empty"))) {
        do_malloc(r, s, size, false, 0);
        return;
    }
    verify_slot(r, s, "realloc (before)");
    errno = 0;
    uint8_t *p = shr_realloc(r->h, s->p, size);
    if (!p) {
        FZ_CHECK(errno == ENOMEM, "step %d: realloc to %zu failed with errno %d", r->step, size, errno);
        verify_slot(r, s, "failed realloc");
        return;
    }
    /* The old contents up to the smaller size moved with the block. */
    slot_t moved = {.p = p, .size = s->size, .id = s->id};
    verify_kept(r, &moved, size < s->size ? size : s->size, "realloc (after)");
    s->p = p;
    s->size = size;
    s->id = r->next_id++;
    check_block(r, s, "realloc");
    fill(p, size, s->id);
}

static int by_address(const void *a, const void *b)
{
    const slot_t *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void final_checks(run_t *r, uint64_t base_blocks)
{
    slot_t live[NSLOTS];
    size_t n = 0;
    for (int i = 0; i < NSLOTS; i++)
        if (r->s[i].p) {
            verify_slot(r, &r->s[i], "final");
            live[n++] = r->s[i];
        }
    qsort(live, n, sizeof live[0], by_address);
    for (size_t i = 1; i < n; i++)
        FZ_CHECK(live[i - 1].p + live[i - 1].size <= live[i].p, "blocks %u and %u overlap", live[i - 1].id,
                 live[i].id);

    /* The statistics count exactly the live blocks, once the remote frees
     * are settled by both threads. */
    FZ_CHECK(helper_run(2, r->h, NULL) == 0, "helper collect");
    FZ_CHECK(shr_heap_collect(r->h) == 0, "collect");
    shr_alloc_stats_t st;
    FZ_CHECK(shr_heap_stats(r->h, &st) == 0, "stats");
    uint64_t in_use = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) in_use += st.classes[c].blocks_in_use;
    FZ_CHECK(in_use == base_blocks + n, "statistics count %llu blocks in use, the model %zu (+%llu at start)",
             (unsigned long long)in_use, n, (unsigned long long)base_blocks);
    FZ_CHECK(shr_heap_check_report(r->h, stderr) == 0, "heap check with %zu live blocks", n);

    for (int i = 0; i < NSLOTS; i++) release_slot(r, &r->s[i], i & 1);
    FZ_CHECK(helper_run(2, r->h, NULL) == 0, "helper collect");
    FZ_CHECK(shr_heap_collect(r->h) == 0, "collect");
    FZ_CHECK(shr_heap_stats(r->h, &st) == 0, "stats");
    in_use = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) in_use += st.classes[c].blocks_in_use;
    FZ_CHECK(in_use == base_blocks, "%llu blocks in use after every block was freed (%llu at start)",
             (unsigned long long)in_use, (unsigned long long)base_blocks);
    FZ_CHECK(shr_heap_check_report(r->h, stderr) == 0, "heap check after freeing everything");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = HEAP_CAPACITY;
    o.flags = (fz_u8(&in) & 1) ? SHR_HEAP_GUARDS : 0;
    run_t r = {.next_id = 1, .guards = o.flags != 0};
    const char *name = fz_name("alloc");
    int rc = shr_heap_create(name, &o, &r.h);
    FZ_CHECK(rc == 0, "create: %s", shr_strerror(rc));
    shr_heap_unlink(name); /* nothing else needs the name; a crash leaves none */
    shr_alloc_stats_t st;
    FZ_CHECK(shr_heap_stats(r.h, &st) == 0, "stats");
    uint64_t base_blocks = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) base_blocks += st.classes[c].blocks_in_use;

    int checks = 0;
    for (r.step = 0; r.step < MAX_STEPS && fz_more(&in); r.step++) {
        uint8_t op = fz_u8(&in);
        slot_t *s = &r.s[(op >> 3) % NSLOTS];
        switch (op & 7) {
        case 0: case 1: do_malloc(&r, s, decode_size(&in), false, 0); break;
        case 2: {
            size_t count = fz_u8(&in);
            if (count == 255) count = SIZE_MAX / 2 + fz_u8(&in);
            do_malloc(&r, s, decode_size(&in) / (count ? count : 1) + 1, true, count);
            break;
        }
        case 3: do_realloc(&r, s, decode_size(&in)); break;
        case 4: release_slot(&r, s, false); break;
        case 5: release_slot(&r, s, true); break;
        case 6:
            if (op & 8) FZ_CHECK(helper_run(2, r.h, NULL) == 0, "helper collect");
            else FZ_CHECK(shr_heap_collect(r.h) == 0, "collect");
            break;
        default:
            if (checks++ < MAX_CHECKS)
                FZ_CHECK(shr_heap_check_report(r.h, stderr) == 0, "heap check at step %d", r.step);
            break;
        }
    }
    final_checks(&r, base_blocks);
    rc = shr_heap_close(r.h);
    FZ_CHECK(rc == 0, "close: %s", shr_strerror(rc));
    return 0;
}
