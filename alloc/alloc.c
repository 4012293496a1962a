/* Allocation entry points
 *
 *   shr_malloc   size <= 16 KiB: this thread's pool of the class, pop its
 *                local free list (no lock, no atomic RMW); else the slow path
 *                (carve, collect remote frees, give up a full pool, adopt an
 *                orphan, take a pool from an arena). Above: large.c.
 *   shr_free     the chunk table says what the block is. Pool block owned by
 *                this thread: push on the local list; owned by another: one
 *                CAS onto the pool's remote stack. Above: large.c.
 *
 * Debug (SHR_DEBUG >= 1): fresh blocks are filled with 0xCD from byte 8 on,
 * freed blocks with 0xDD from byte 16 on. Bytes 0..7 are never written, not
 * even by the debug fill: they may hold an object's refcount, which must read
 * 0 from the free until the new object stores 1, or a concurrent try_incref
 * could bump a count that is about to be overwritten (found by the
 * try_incref test). Bytes 8..15 hold the free-list link. Double frees,
 * foreign pointers, pointers inside a block and offsets out of range abort
 * with a message. At level 0 only the cheap checks run on every free (outside
 * the heap, misaligned, in a chunk that holds no blocks, a pool header): such
 * a free is ignored. A pointer inside a block or a double free is not caught
 * at level 0 (that check costs a division per free); a double free that
 * makes a remote stack cycle is cut when the stack is spliced, leaking the
 * blocks after the cut instead of looping.
 *
 * Guards (heap flag SHR_HEAP_GUARDS, any build): each block is laid out as
 *
 *     [ size n : 8 ][ 0xFD x 8 ][ user data n ][ 0xFD x 8 ]
 *                               ^ returned pointer (16-byte aligned)
 *
 * as CPython's PYTHONMALLOC=debug; free and shr_heap_check verify the guard
 * bytes and abort (free) or report (check) when they are damaged.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"

#define CLEANBYTE 0xCD
#define DEADBYTE 0xDD
#define FORBIDDENBYTE 0xFD
#define GUARD_HEAD 16
#define GUARD_TAIL 8

const uint32_t shr__class_size[NB_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,   192,   208,   224,
    240,  256,  272,  288,  304,  320,  336,  352,  368,  384,  400,  416,   432,   448,
    464,  480,  496,  512,  640,  768,  896,  1024, 1280, 1536, 1792, 2048, 2560,  3072,
    3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
};

/* Medium class of a request, by 128-byte step: the first class that holds
 * (i + 1) * 128 bytes. Internal waste stays below 25% (513 -> 640 is 20%). */
#define M(i) (uint8_t)(i)
const uint8_t shr__medium_index[MEDIUM_REQUEST_THRESHOLD / 128] = {
    /* up to 512 (never used: small) */ M(0), M(0), M(0), M(0),
    /* 640 */ M(0), /* 768 */ M(1), /* 896 */ M(2), /* 1024 */ M(3),
    /* 1152..1280 */ M(4), M(4), /* ..1536 */ M(5), M(5), /* ..1792 */ M(6), M(6),
    /* ..2048 */ M(7), M(7),
    /* ..2560 */ M(8), M(8), M(8), M(8), /* ..3072 */ M(9), M(9), M(9), M(9),
    /* ..3584 */ M(10), M(10), M(10), M(10), /* ..4096 */ M(11), M(11), M(11), M(11),
    /* ..5120 */ M(12), M(12), M(12), M(12), M(12), M(12), M(12), M(12),
    /* ..6144 */ M(13), M(13), M(13), M(13), M(13), M(13), M(13), M(13),
    /* ..7168 */ M(14), M(14), M(14), M(14), M(14), M(14), M(14), M(14),
    /* ..8192 */ M(15), M(15), M(15), M(15), M(15), M(15), M(15), M(15),
    /* ..10240 */ M(16), M(16), M(16), M(16), M(16), M(16), M(16), M(16),
    M(16), M(16), M(16), M(16), M(16), M(16), M(16), M(16),
    /* ..12288 */ M(17), M(17), M(17), M(17), M(17), M(17), M(17), M(17),
    M(17), M(17), M(17), M(17), M(17), M(17), M(17), M(17),
    /* ..14336 */ M(18), M(18), M(18), M(18), M(18), M(18), M(18), M(18),
    M(18), M(18), M(18), M(18), M(18), M(18), M(18), M(18),
    /* ..16384 */ M(19), M(19), M(19), M(19), M(19), M(19), M(19), M(19),
    M(19), M(19), M(19), M(19), M(19), M(19), M(19), M(19),
};
#undef M

/* ---- misuse --------------------------------------------------------------- */

static void misuse(const char *what, const void *p)
{
#if SHR_DEBUG >= 1
    SHR_PANIC("%s: %p", what, p);
#else
    (void)what;
    (void)p;
#endif
}

/* ---- pools ---------------------------------------------------------------- */

shr_inline void *pool_malloc(shr_heap_t *h, unsigned cls)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (shr_unlikely(!ctx)) return NULL;
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    uint64_t po = ts->used[cls];
    if (shr_likely(po != 0)) {
        pool_header_t *pool = POOL(h, po);
        uint64_t bp = rd(&pool->freeblock);
        if (shr_likely(bp != 0)) {
            wr(&pool->freeblock, *(uint64_t *)(h->base + bp + 8));
            wr(&pool->nused, rd(&pool->nused) + 1);
            wr(&ts->net, rd(&ts->net) + 1);
            return h->base + bp;
        }
    }
    return shr__pool_alloc_slow(h, ctx, cls);
}

#if SHR_DEBUG >= 1
static bool in_local_list(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint32_t n = 0;
    for (uint64_t b = rd(&pool->freeblock); b && n <= pool->capacity; n++) {
        if (b == off) return true;
        if (b >= h->capacity) break;
        b = *(uint64_t *)(h->base + b + 8);
    }
    return false;
}
#endif

#if SHR_DEBUG >= 1
/* Debug checks of a free into a pool: not a block, a double free (seen in
 * this thread's own pools), then the dead-byte fill. */
static void debug_free_checks(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint64_t rel = off - shr__off(h, pool);
    if (pool->block_size == 0 || rel < POOL_OVERHEAD || (rel - POOL_OVERHEAD) % pool->block_size ||
        rel >= rd(&pool->nextoffset) || rd(&pool->state) == POOL_EMPTY)
        SHR_PANIC("free of a pointer that is not a block: offset %llu", (unsigned long long)off);
    shr_tctx_t *ctx = shr__tl_ctx;
    if (ctx && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h &&
        rd(&pool->owner) == ctx->slot + 1 && in_local_list(h, pool, off))
        SHR_PANIC("double free: offset %llu", (unsigned long long)off);
    /* Past the link; in a guarded heap also past the user's bytes 0..7. */
    uint32_t keep = (h->flags & SHR_HEAP_GUARDS) ? GUARD_HEAD + 8 : 16;
    if (pool->block_size > keep) memset(h->base + off + keep, DEADBYTE, pool->block_size - keep);
}
#endif

shr_inline void pool_free(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
#if SHR_DEBUG >= 1
    debug_free_checks(h, pool, off);
#endif
    shr_tctx_t *ctx = shr__tl_ctx;
    if (shr_likely(ctx != NULL && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h &&
                   rd(&pool->owner) == ctx->slot + 1)) {
        alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
        unsigned cls = rd(&pool->szidx);
        *(uint64_t *)(h->base + off + 8) = rd(&pool->freeblock);
        wr(&pool->freeblock, off);
        uint32_t n = rd(&pool->nused) - 1;
        wr(&pool->nused, n);
        wr(&ts->net, rd(&ts->net) - 1);
        /* Emptied: give the pool back unless it is its class's only one
         * (kept so that a malloc/free loop never takes the arena lock). */
        if (shr_unlikely(n == 0) && (ts->used[cls] != shr__off(h, pool) || pool->nextpool != 0))
            shr__pool_free_local_slow(h, ts, pool);
        return;
    }
    ctx = shr__tctx(h);
    if (ctx) {
        alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
        wr(&ts->net, rd(&ts->net) - 1);
    }
    shr__pool_free_remote(h, pool, off);
}

/* ---- raw allocation (no guards) -------------------------------------------- */

/* keep: leading bytes the debug fill must not touch (8, or 24 for a
 * guarded block, whose user bytes 0..7 are block bytes 16..23). */
static void *raw_malloc(shr_heap_t *h, size_t size, size_t keep)
{
    void *p;
    if (shr_likely(size <= MEDIUM_REQUEST_THRESHOLD)) p = pool_malloc(h, size_to_class(size));
    else if (size <= (size_t)SHR_MAX_CAPACITY) p = shr__large_alloc(h, size);
    else {
        errno = ENOMEM;
        return NULL;
    }
#if SHR_DEBUG >= 1
    if (p && size > keep) memset((uint8_t *)p + keep, CLEANBYTE, size - keep);
#else
    (void)keep;
#endif
    return p;
}

/* What kind of block p is; 0 when it is not a block of this heap. */
static uint32_t block_kind(shr_heap_t *h, const void *p, uint64_t *offp)
{
    uint64_t off = (uint64_t)((const uint8_t *)p - h->base);
    alloc_global_t *g = AG(h);
    if (shr_unlikely(off >= h->capacity || (off & (ALIGNMENT - 1)) ||
                     (off >> SHR_CHUNK_SHIFT) >= rd(&g->hwm)))
        return 0;
    *offp = off;
    uint32_t k = rd(&CT(h)[off >> SHR_CHUNK_SHIFT].kind);
    return k == CHUNK_SMALL || k == CHUNK_MEDIUM || k == CHUNK_LARGE || k == CHUNK_HUGE ? k : 0;
}

static inline pool_header_t *pool_of(shr_heap_t *h, uint64_t off, uint32_t kind)
{
    uint64_t mask = kind == CHUNK_SMALL ? ((uint64_t)1 << SMALL_POOL_SHIFT) - 1
                                        : ((uint64_t)1 << MEDIUM_POOL_SHIFT) - 1;
    return POOL(h, off & ~mask);
}

static void raw_free(shr_heap_t *h, void *p)
{
    uint64_t off = 0;
    uint32_t kind = block_kind(h, p, &off);
    if (shr_likely(kind == CHUNK_SMALL || kind == CHUNK_MEDIUM)) pool_free(h, pool_of(h, off, kind), off);
    else if (kind) shr__large_free(h, off);
    else misuse("free of a pointer that is not a block of this heap", p);
}

static size_t raw_usable(shr_heap_t *h, const void *p)
{
    uint64_t off = 0;
    uint32_t kind = block_kind(h, p, &off);
    if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) return pool_of(h, off, kind)->block_size;
    if (kind) return shr__large_usable(h, off);
    return 0;
}

/* ---- guards ------------------------------------------------------------------ */

static inline bool guarded(const shr_heap_t *h) { return h->flags & SHR_HEAP_GUARDS; }

static void *guard_malloc(shr_heap_t *h, size_t size)
{
    if (size > SIZE_MAX - GUARD_HEAD - GUARD_TAIL) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *b = raw_malloc(h, size + GUARD_HEAD + GUARD_TAIL, GUARD_HEAD + 8);
    if (!b) return NULL;
    uint64_t n = size;
    memcpy(b, &n, 8);
    memset(b + 8, FORBIDDENBYTE, 8);
    memset(b + GUARD_HEAD + size, FORBIDDENBYTE, GUARD_TAIL);
    return b + GUARD_HEAD;
}

/* 0 when the guards of the block around user pointer u are intact. */
static int guard_verify(shr_heap_t *h, const uint8_t *u, size_t *sizep)
{
    const uint8_t *b = u - GUARD_HEAD;
    uint64_t n;
    memcpy(&n, b, 8);
    size_t usable = raw_usable(h, b);
    if (usable < GUARD_HEAD + GUARD_TAIL || n > usable - GUARD_HEAD - GUARD_TAIL) return -1;
    for (int i = 0; i < 8; i++)
        if (b[8 + i] != FORBIDDENBYTE || u[n + (size_t)i] != FORBIDDENBYTE) return -1;
    *sizep = n;
    return 0;
}

static void guard_free(shr_heap_t *h, void *p)
{
    size_t n;
    uint64_t off = 0;
    if (!block_kind(h, (uint8_t *)p - GUARD_HEAD, &off)) {
        misuse("free of a pointer that is not a block of this heap", p);
        return;
    }
    if (guard_verify(h, p, &n) != 0)
        SHR_PANIC("guard bytes around block %p damaged (write out of bounds)", p);
    /* Leave the user's first 8 bytes (a refcount reads as it was left). */
    if (n > 8) memset((uint8_t *)p + 8, DEADBYTE, n - 8);
    raw_free(h, (uint8_t *)p - GUARD_HEAD);
}

/* ---- public API ---------------------------------------------------------------- */

/* Everything but a pop from this thread's pool: a thread's first call, an
 * empty free list, large sizes, guards, debug fills. */
static shr_noinline void *malloc_slow(shr_heap_t *heap, size_t size)
{
    if (guarded(heap)) return guard_malloc(heap, size);
    return raw_malloc(heap, size, 8);
}

/* The fast path is written so that every rare case leaves through a tail
 * call: the compiler then needs no stack frame for it (measured: the frame,
 * three pushes and three pops, was a tenth of a malloc/free pair). */
static inline void *malloc_fast(shr_heap_t *heap, size_t size)
{
    if (shr_unlikely(size > MEDIUM_REQUEST_THRESHOLD || (heap->flags & SHR_HEAP_GUARDS)))
        return malloc_slow(heap, size);
    unsigned cls = size_to_class(size);
    shr_tctx_t *ctx = shr__tl_ctx;
    if (shr_unlikely(ctx == NULL || atomic_load_explicit(&ctx->heap, memory_order_relaxed) != heap))
        return malloc_slow(heap, size);
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    uint64_t po = ts->used[cls];
    if (shr_unlikely(po == 0)) return shr__pool_alloc_slow(heap, ctx, cls);
    pool_header_t *pool = POOL(heap, po);
    uint64_t bp = rd(&pool->freeblock);
    if (shr_unlikely(bp == 0)) return shr__pool_alloc_slow(heap, ctx, cls);
    wr(&pool->freeblock, *(uint64_t *)(heap->base + bp + 8));
    wr(&pool->nused, rd(&pool->nused) + 1);
    wr(&ts->net, rd(&ts->net) + 1);
    return heap->base + bp;
}

void *shr_malloc(shr_heap_t *heap, size_t size)
{
#if SHR_DEBUG >= 1
    /* The same fast path, then the fill (the slow paths fill their own). */
    void *p = malloc_fast(heap, size);
    if (p && size <= MEDIUM_REQUEST_THRESHOLD && !(heap->flags & SHR_HEAP_GUARDS) && size > 8)
        memset((uint8_t *)p + 8, CLEANBYTE, size - 8);
    return p;
#else
    return malloc_fast(heap, size);
#endif
}

void *shr_calloc(shr_heap_t *heap, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = shr_malloc(heap, n);
    if (p) memset(p, 0, n);
    return p;
}

/* Everything but a free into a pool this thread owns: NULL, guards, large
 * and huge blocks, misuse, frees into other threads' pools, debug checks. */
static shr_noinline void free_slow(shr_heap_t *heap, void *ptr)
{
    if (!ptr) return;
    if (shr_unlikely(guarded(heap))) {
        guard_free(heap, ptr);
        return;
    }
    uint64_t off = 0;
    uint32_t kind = block_kind(heap, ptr, &off);
    if (shr_likely(kind == CHUNK_SMALL || kind == CHUNK_MEDIUM)) {
        pool_header_t *pool = pool_of(heap, off, kind);
        if (shr_likely(off - shr__off(heap, pool) >= POOL_OVERHEAD)) pool_free(heap, pool, off);
        else misuse("free of a pool header", ptr);
        return;
    }
    if (kind) shr__large_free(heap, off);
    else misuse("free of a pointer that is not a block of this heap", ptr);
}

#if SHR_DEBUG >= 1
/* Debug builds check a free fully before the fast path takes it: a pointer
 * that is not a block, a double free, then the dead-byte fill. */
static void free_debug(shr_heap_t *heap, void *ptr)
{
    uint64_t off = 0;
    uint32_t kind = ptr && !guarded(heap) ? block_kind(heap, ptr, &off) : 0;
    if (kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) return; /* free_slow checks the rest */
    pool_header_t *pool = pool_of(heap, off, kind);
    if (off - shr__off(heap, pool) >= POOL_OVERHEAD) debug_free_checks(heap, pool, off);
}
#endif

void shr_free(shr_heap_t *heap, void *ptr)
{
#if SHR_DEBUG >= 1
    free_debug(heap, ptr);
#endif
    /* NULL lands here too: its offset is past the capacity. */
    uint64_t off = (uint64_t)((uint8_t *)ptr - heap->base);
    if (shr_unlikely(off >= heap->capacity || (off & (ALIGNMENT - 1)) ||
                                       (heap->flags & SHR_HEAP_GUARDS) ||
                                       (off >> SHR_CHUNK_SHIFT) >= rd(&AG(heap)->hwm)))
        return free_slow(heap, ptr);
    uint32_t kind = rd(&CT(heap)[off >> SHR_CHUNK_SHIFT].kind);
    if (shr_unlikely(kind != CHUNK_SMALL && kind != CHUNK_MEDIUM)) return free_slow(heap, ptr);
    uint64_t po = off & ~(kind == CHUNK_SMALL ? ((uint64_t)1 << SMALL_POOL_SHIFT) - 1
                                              : ((uint64_t)1 << MEDIUM_POOL_SHIFT) - 1);
    pool_header_t *pool = POOL(heap, po);
    shr_tctx_t *ctx = shr__tl_ctx;
    if (shr_unlikely(off - po < POOL_OVERHEAD || ctx == NULL ||
                     atomic_load_explicit(&ctx->heap, memory_order_relaxed) != heap ||
                     rd(&pool->owner) != ctx->slot + 1))
        return free_slow(heap, ptr);
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    *(uint64_t *)(heap->base + off + 8) = rd(&pool->freeblock);
    wr(&pool->freeblock, off);
    uint32_t n = rd(&pool->nused) - 1;
    wr(&pool->nused, n);
    wr(&ts->net, rd(&ts->net) - 1);
    /* Emptied: give the pool back unless it is its class's only one (kept so
     * that a malloc/free loop never takes the arena lock). */
    if (shr_unlikely(n == 0) && (ts->used[rd(&pool->szidx)] != po || pool->nextpool != 0))
        return shr__pool_free_local_slow(heap, ts, pool);
}

size_t shr_usable_size(shr_heap_t *heap, const void *ptr)
{
    if (!ptr) return 0;
    if (guarded(heap)) {
        size_t n;
        uint64_t off = 0;
        if (!block_kind(heap, (const uint8_t *)ptr - GUARD_HEAD, &off)) return 0;
        return guard_verify(heap, ptr, &n) == 0 ? n : 0;
    }
    return raw_usable(heap, ptr);
}

void *shr_realloc(shr_heap_t *heap, void *ptr, size_t size)
{
    if (!ptr) return shr_malloc(heap, size);
    size_t old = shr_usable_size(heap, ptr);
    if (old == 0) {
        misuse("realloc of a pointer that is not a block of this heap", ptr);
        errno = EINVAL;
        return NULL;
    }
    if (!guarded(heap)) {
        uint64_t off = 0;
        uint32_t kind = block_kind(heap, ptr, &off);
        if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) {
            /* pymalloc's rule: stay unless shrinking by at least a quarter. */
            if (size <= old && 4 * (uint64_t)size > 3 * (uint64_t)old) return ptr;
        } else if (size > MEDIUM_REQUEST_THRESHOLD && shr__large_resize(heap, off, size)) {
            return ptr;
        }
    }
    void *p = shr_malloc(heap, size);
    if (!p) return NULL;
    memcpy(p, ptr, old < size ? old : size);
    shr_free(heap, ptr);
    return p;
}

int shr_heap_collect(shr_heap_t *heap)
{
    shr_tctx_t *ctx = shr__tctx(heap);
    if (!ctx) return -errno;
    shr__pool_collect(heap, ctx);
    return 0;
}

/* ---- the layer: parameters, segment init, open, hooks ---------------------- */

static const shr__layer_hooks_t alloc_hooks = {
    .thread_release = shr__alloc_thread_release,
    .proc_release = NULL,
};

void shr__alloc_params(shr__seg_params_t *p)
{
    p->consts[SHR_CONST_ALIGNMENT] = ALIGNMENT;
    p->consts[SHR_CONST_SMALL_MAX] = SMALL_REQUEST_THRESHOLD;
    p->consts[SHR_CONST_NB_SMALL] = NB_SMALL;
    p->consts[SHR_CONST_NB_MEDIUM] = NB_MEDIUM;
    p->consts[SHR_CONST_SMALL_POOL] = 1u << SMALL_POOL_SHIFT;
    p->consts[SHR_CONST_MEDIUM_POOL] = 1u << MEDIUM_POOL_SHIFT;
    p->consts[SHR_CONST_ARENA_SIZE] = (uint32_t)ARENA_SIZE;
    p->consts[SHR_CONST_POOL_HEADER] = POOL_OVERHEAD;
    p->consts[SHR_CONST_CHUNK_ENTRY] = sizeof(chunk_t);
    p->consts[SHR_CONST_LARGE_HEADER] = sizeof(large_header_t);
    p->consts[SHR_CONST_ROOTS_MAX] = ROOTS_MAX;
    p->global_size[SHR_LAYER_ALLOC] = sizeof(alloc_global_t);
    p->thread_size[SHR_LAYER_ALLOC] = sizeof(alloc_tslot_t);
    p->table_size[SHR_LAYER_ALLOC] = sizeof(chunk_t);
    shr__registry_set_hooks(SHR_LAYER_ALLOC, &alloc_hooks);
    shr__lock_set_repair(SHR_LOCK_ARENA, shr__alloc_repair);
    shr__lock_set_repair(SHR_LOCK_LARGE, shr__large_repair);
}

int shr__alloc_open(shr_heap_t *h)
{
    h->hot[0] = shr__seg_table(h, SHR_LAYER_ALLOC);
    h->hot[1] = shr__seg_global(h, SHR_LAYER_ALLOC);
    return 0;
}

void shr__alloc_close(shr_heap_t *h)
{
    h->hot[0] = h->hot[1] = NULL;
}

int shr__alloc_init_segment(shr_heap_t *h)
{
    alloc_global_t *g = AG(h);
    g->ac[AC_SMALL].npools = (uint32_t)(ARENA_SIZE >> SMALL_POOL_SHIFT);
    g->ac[AC_SMALL].shift = SMALL_POOL_SHIFT;
    g->ac[AC_MEDIUM].npools = (uint32_t)(ARENA_SIZE >> MEDIUM_POOL_SHIFT);
    g->ac[AC_MEDIUM].shift = MEDIUM_POOL_SHIFT;
    return shr__chunk_init(h);
}
