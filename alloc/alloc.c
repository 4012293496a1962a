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
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#if SHR_ASAN
#include <sanitizer/asan_interface.h>
#endif


#define CLASS_SIZES                                                                         \
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,   192,   208,   224,     \
    240,  256,  272,  288,  304,  320,  336,  352,  368,  384,  400,  416,   432,   448,     \
    464,  480,  496,  512,  640,  768,  896,  1024, 1280, 1536, 1792, 2048, 2560,  3072,     \
    3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384
/* Twice: ordinary pool classes, then the object ones (SHR_OBJ_CLASS + c). */
const uint32_t shr__class_size[SHR_NB_PCLASSES] = {CLASS_SIZES, CLASS_SIZES};
#undef CLASS_SIZES

/* Medium class of a request, by 128-byte step: the first class that holds
 * (i + 1) * 128 bytes. Internal waste stays below 25% (513 -> 640 is 20%). */
#define M(i) (uint8_t)(i)
const uint8_t shr__medium_index[SHR_MEDIUM_REQUEST_THRESHOLD / 128] = {
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

/* Misuse the API cannot report as an error: aborts at debug level >= 1; at
 * level 0 the call is ignored (it changes nothing). */
static void misuse(const char *what, const void *p)
{
    if (SHR_DEBUG >= 1) SHR_PANIC("%s: %p", what, p);
}

/* ---- pools ---------------------------------------------------------------- */

/* The allocation from this thread's pool of class cls: pop its local free
 * list, else the slow path. The one pop of the fast and slow paths (the
 * slow path's own pop, after a carve or a collect, is pool_pop too). */
shr_inline void *pool_malloc_ctx(shr_heap_t *h, shr_tctx_t *ctx, unsigned cls)
{
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    uint64_t po = ts->used[cls];
    if (shr_unlikely(po == 0)) return shr__pool_alloc_slow(h, ctx, cls);
    pool_header_t *pool = pool_at(h, po);
    uint64_t bp = shr_load_relaxed(&pool->freeblock);
    if (shr_unlikely(bp == 0)) return shr__pool_alloc_slow(h, ctx, cls);
    pool_pop(h, pool, bp);
    shr_store_relaxed(&ts->net, shr_load_relaxed(&ts->net) + 1);
    return h->base + bp;
}

static void *pool_malloc(shr_heap_t *h, unsigned cls)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (shr_unlikely(!ctx)) return NULL;
    return pool_malloc_ctx(h, ctx, cls);
}

/* The free into a pool this thread owns: push on its local list; an emptied
 * pool that is not its class's only one goes to the slow path. */
shr_inline void pool_free_local(shr_heap_t *h, shr_tctx_t *ctx, pool_header_t *pool, uint64_t po,
                                uint64_t off)
{
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    uint32_t n;
    uint64_t old = pool_push(h, pool, off, &n);
    shr_store_relaxed(&ts->net, shr_load_relaxed(&ts->net) - 1);
    /* One test for both rare cases: the pool was without a free block (it
     * may be parked full), or it is now empty. */
    if (shr_unlikely((old == 0) | (n == 0)) &&
        ((old == 0 && shr_load_relaxed(&pool->state) == POOL_FULL) ||
         (n == 0 && !pool_is_class_only(ts, pool, po, shr_load_relaxed(&pool->szidx)))))
        return shr__pool_free_local_slow(h, ts, pool, n);
}

static bool in_local_list(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint32_t n = 0;
    for (uint64_t b = shr_load_relaxed(&pool->freeblock); b && n <= pool->capacity; n++) {
        if (b == off) return true;
        if (b >= h->capacity) break;
        b = block_next(h, b);
    }
    return false;
}

/* Whether off is a carved block of the pool: never a header, never past
 * nextoffset (untouched space), on a block boundary when exact. A pool's
 * nextoffset only grows while it holds blocks, so a relaxed read by a
 * thread that does not own it is a safe bound. */
static bool is_carved_block(const shr_heap_t *h, const pool_header_t *pool, uint64_t off, bool exact)
{
    /* The pool's memory from where its header sits (a valid arena), never
     * from off: off may be any word (a free-list link read while its owner
     * reuses the block), and must be judged by arithmetic alone. */
    uint64_t po = shr__off(h, pool);
    unsigned shift = arena_pool_shift(h, shr_load_relaxed(&chunk_table(h)[po >> SHR_CHUNK_SHIFT].kind));
    uint64_t mem = pool_mem(po, shift), rel = off - mem, first = pool_first(mem);
    uint32_t size = pool->block_size;
    if (rel < first || rel >= shr_load_relaxed(&((pool_header_t *)pool)->nextoffset)) return false;
    return !exact || (size != 0 && (rel - first) % size == 0);
}

/* Debug checks of a free into a pool (level >= 1): not a block, a double
 * free (seen in this thread's own pools), then the dead-byte fill. */
static void debug_free_checks(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    if (!is_carved_block(h, pool, off, true) || shr_load_relaxed(&pool->state) == POOL_EMPTY)
        SHR_PANIC("free of a pointer that is not a block: offset %llu", (unsigned long long)off);
    shr_tctx_t *ctx = shr__tl_ctx;
    if (ctx && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h &&
        shr_load_relaxed(&pool->owner) == ctx->slot + 1 && in_local_list(h, pool, off))
        SHR_PANIC("double free: offset %llu", (unsigned long long)off);
    /* Past the link; in a guarded heap also past the user's bytes 0..7. */
    uint32_t keep = (h->flags & SHR_HEAP_GUARDS) ? SHR_GUARD_HEAD + 8 : 16;
    if (pool->block_size > keep) memset(h->base + off + keep, SHR_DEAD_BYTE, pool->block_size - keep);
}

/* The slow path's free into a pool: this thread's own pool (the fast path
 * declined it: a guarded heap, a debug build), or another's (one CAS onto
 * its remote stack). A block the pool never carved is refused at every
 * level (pushing it would hand it out twice). */
static void pool_free(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    if (SHR_DEBUG >= 1) debug_free_checks(h, pool, off);
    if (shr_unlikely(!is_carved_block(h, pool, off, false))) {
        misuse("free of a pointer that is not a carved block", h->base + off);
        return;
    }
    shr_tctx_t *ctx = shr__tl_ctx;
    if (shr_likely(ctx != NULL && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h &&
                   shr_load_relaxed(&pool->owner) == ctx->slot + 1)) {
        pool_free_local(h, ctx, pool, shr__off(h, pool), off);
        return;
    }
    ctx = shr__tctx(h);
    if (ctx) {
        alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
        shr_store_relaxed(&ts->net, shr_load_relaxed(&ts->net) - 1);
    }
    shr__pool_free_remote(h, pool, off);
}

void shr__alloc_drain_delayed(shr_heap_t *h, shr_tctx_t *ctx)
{
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    uint64_t b = atomic_exchange_explicit(&ts->delayed, 0, memory_order_acquire);
    while (b && !(b & DELAYED_CLOSED)) {
        uint64_t next = block_next(h, b); /* before the free rewrites it */
        uint32_t kind = shr_load_relaxed(&chunk_table(h)[b >> SHR_CHUNK_SHIFT].kind);
        if (kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) break; /* cannot be: pushed by our free path */
        pool_header_t *pool = pool_at(h, pool_hdr_of(b, arena_pool_shift(h, kind)));
        if (shr_load_relaxed(&pool->owner) == ctx->slot + 1) {
            pool_free_local(h, ctx, pool, shr__off(h, pool), b);
            /* pool_free_local counted a free this thread did not make. */
            shr_store_relaxed(&ts->net, shr_load_relaxed(&ts->net) + 1);
        } else {
            shr__pool_free_remote(h, pool, b); /* the slot changed hands since */
        }
        b = next;
    }
}

/* ---- raw allocation (no guards) -------------------------------------------- */

/* keep: leading bytes the debug fill must not touch (8, or 24 for a
 * guarded block, whose user bytes 0..7 are block bytes 16..23). */
static void *raw_malloc(shr_heap_t *h, size_t size, size_t keep)
{
    void *p;
    if (shr_likely(size <= SHR_MEDIUM_REQUEST_THRESHOLD)) p = pool_malloc(h, size_to_class(size));
    else if (size <= (size_t)SHR_MAX_CAPACITY) p = shr__large_alloc(h, size);
    else {
        errno = ENOMEM;
        return NULL;
    }
    if (SHR_DEBUG >= 1 && p && size > keep) memset((uint8_t *)p + keep, SHR_CLEAN_BYTE, size - keep);
    return p;
}

/* What kind of block p is; 0 when it is not a block of this heap. */
static uint32_t block_kind(shr_heap_t *h, const void *p, uint64_t *offp)
{
    uint64_t off = (uint64_t)((const uint8_t *)p - h->base);
    alloc_global_t *g = alloc_global(h);
    if (shr_unlikely(off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) ||
                     (off >> SHR_CHUNK_SHIFT) >= shr_load_relaxed(&g->hwm)))
        return 0;
    *offp = off;
    uint32_t k = shr_load_relaxed(&chunk_table(h)[off >> SHR_CHUNK_SHIFT].kind);
    return k == CHUNK_SMALL || k == CHUNK_MEDIUM || k == CHUNK_LARGE || k == CHUNK_HUGE ? k : 0;
}

/* The header of the pool that holds block off, in a chunk of kind SMALL or
 * MEDIUM. */
static inline pool_header_t *pool_of(shr_heap_t *h, uint64_t off, uint32_t kind)
{
    return pool_at(h, pool_hdr_of(off, arena_pool_shift(h, kind)));
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
    if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) {
        pool_header_t *pool = pool_of(h, off, kind);
        return is_carved_block(h, pool, off, false) ? pool->block_size : 0;
    }
    if (kind) return shr__large_usable(h, off);
    return 0;
}

/* ---- guards ------------------------------------------------------------------ */

static inline bool guarded(const shr_heap_t *h) { return h->flags & SHR_HEAP_GUARDS; }

static void *guard_malloc(shr_heap_t *h, size_t size)
{
    if (size > SIZE_MAX - SHR_GUARD_HEAD - SHR_GUARD_TAIL) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *b = raw_malloc(h, size + SHR_GUARD_HEAD + SHR_GUARD_TAIL, SHR_GUARD_HEAD + 8);
    if (!b) return NULL;
    guard_write(b, size);
    return b + SHR_GUARD_HEAD;
}

/* 0 when the guards of the block around user pointer u are intact. */
static int guard_verify(shr_heap_t *h, const uint8_t *u, size_t *sizep)
{
    const uint8_t *b = u - SHR_GUARD_HEAD;
    size_t usable = raw_usable(h, b);
    uint64_t n;
    if (!guard_intact(b, usable, &n)) return -1;
    *sizep = n;
    return 0;
}

/* 0 with the user's size in *np when u is a guarded block with intact
 * guards (the size may be 0); -1 otherwise. */
static int guard_size(shr_heap_t *h, const void *u, size_t *np)
{
    uint64_t off = 0;
    if (!block_kind(h, (const uint8_t *)u - SHR_GUARD_HEAD, &off)) return -1;
    return guard_verify(h, u, np);
}

static void guard_free(shr_heap_t *h, void *p)
{
    size_t n;
    uint64_t off = 0;
    if (!block_kind(h, (uint8_t *)p - SHR_GUARD_HEAD, &off)) {
        misuse("free of a pointer that is not a block of this heap", p);
        return;
    }
    if (guard_verify(h, p, &n) != 0)
        SHR_PANIC("guard bytes around block %p damaged (write out of bounds)", p);
    /* Leave the user's first 8 bytes (a refcount reads as it was left). */
    if (n > 8) memset((uint8_t *)p + 8, SHR_DEAD_BYTE, n - 8);
    raw_free(h, (uint8_t *)p - SHR_GUARD_HEAD);
}

/* ---- public API ---------------------------------------------------------------- */

/* Everything but a pop from this thread's pool: a thread's first call, an
 * empty free list, large sizes, guards, debug fills, a NULL handle. */
static shr_noinline void *malloc_slow(shr_heap_t *heap, size_t size)
{
    if (shr_unlikely(!heap)) {
        errno = EINVAL;
        return NULL;
    }
    if (guarded(heap)) return guard_malloc(heap, size);
    return raw_malloc(heap, size, 8);
}

/* The fast path is written so that every rare case leaves through a tail
 * call: the compiler then needs no stack frame for it (measured: the frame,
 * three pushes and three pops, was a tenth of a malloc/free pair).
 * tests/alloc/frameless.cmake checks the release build's code for it. */
static inline void *malloc_fast(shr_heap_t *heap, size_t size)
{
    /* The context first: a NULL handle never matches one (a closed context
     * holds SHR__CTX_CLOSED), so NULL reaches malloc_slow before anything
     * reads the handle, at no cost here. */
    shr_tctx_t *ctx = shr__tl_ctx;
    /* One compare for three rare cases: size 0 (wraps), above the pool
     * classes, a guarded heap (fast_max 0). */
    if (shr_unlikely(ctx == NULL || atomic_load_explicit(&ctx->heap, memory_order_relaxed) != heap ||
                     size - 1 >= heap->fast_max))
        return malloc_slow(heap, size);
    return pool_malloc_ctx(heap, ctx, size_to_class(size));
}

void *shr_malloc(shr_heap_t *heap, size_t size)
{
    if (SHR_DEBUG >= 1) {
        /* The same fast path, then the fill (the slow paths fill their own). */
        void *p = malloc_fast(heap, size);
        if (p && size <= SHR_MEDIUM_REQUEST_THRESHOLD && !(heap->flags & SHR_HEAP_GUARDS) && size > 8)
            memset((uint8_t *)p + 8, SHR_CLEAN_BYTE, size - 8);
        return p;
    }
    return malloc_fast(heap, size);
}

void *shr_calloc(shr_heap_t *heap, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = heap ? ENOMEM : EINVAL;
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
    if (!ptr || !heap) return;
    if (shr_unlikely(guarded(heap))) {
        guard_free(heap, ptr);
        return;
    }
    uint64_t off = 0;
    uint32_t kind = block_kind(heap, ptr, &off);
    if (shr_likely(kind == CHUNK_SMALL || kind == CHUNK_MEDIUM)) {
        pool_free(heap, pool_of(heap, off, kind), off);
        return;
    }
    if (kind) shr__large_free(heap, off);
    else misuse("free of a pointer that is not a block of this heap", ptr);
}

/* Debug builds check a free fully before the fast path takes it: a pointer
 * that is not a block, a double free, then the dead-byte fill. */
static void free_debug(shr_heap_t *heap, void *ptr)
{
    uint64_t off = 0;
    uint32_t kind = ptr && heap && !guarded(heap) ? block_kind(heap, ptr, &off) : 0;
    if (kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) return; /* free_slow checks the rest */
    pool_header_t *pool = pool_of(heap, off, kind);
    if ((off & (SHR_ARENA_SIZE - 1)) >= SHR_ARENA_META) debug_free_checks(heap, pool, off);
}

void shr_free(shr_heap_t *heap, void *ptr)
{
    if (SHR_MEMCHECK && heap && ptr) shr__mem_probe_free(heap, ptr); /* the checker's report first */
    if (SHR_DEBUG >= 1) free_debug(heap, ptr);
    /* The context first, as in malloc_fast: a NULL handle goes to free_slow
     * before anything reads it. */
    shr_tctx_t *ctx = shr__tl_ctx;
    if (shr_unlikely(ctx == NULL || atomic_load_explicit(&ctx->heap, memory_order_relaxed) != heap))
        return free_slow(heap, ptr);
    /* A NULL ptr lands in free_slow too: its offset is past the capacity. */
    /* off below the capacity is implied by the high-water test (hwm <=
     * nchunks = capacity >> SHR_CHUNK_SHIFT), a pointer below the base
     * included (off wraps). */
    uint64_t off = (uint64_t)((uint8_t *)ptr - heap->base);
    if (shr_unlikely((off & (SHR_ALIGNMENT - 1)) || (heap->flags & SHR_HEAP_GUARDS) ||
                     (off >> SHR_CHUNK_SHIFT) >= shr_load_relaxed(&alloc_global(heap)->hwm)))
        return free_slow(heap, ptr);
    uint32_t kind = shr_load_relaxed(&chunk_table(heap)[off >> SHR_CHUNK_SHIFT].kind);
    if (shr_unlikely(kind != CHUNK_SMALL && kind != CHUNK_MEDIUM)) return free_slow(heap, ptr);
    /* The pool's header, dense in the arena's page 0. */
    uint64_t rel = off & (SHR_ARENA_SIZE - 1);
    uint64_t po = off - rel + ((rel >> heap->pool_shift[kind & 15]) << 6); /* arena_pool_shift */
    pool_header_t *pool = pool_at(heap, po);
    /* Page 0, the headers, is refused here (one compare with a constant);
     * space the pool never carved only on the slow path and at debug level
     * >= 1: refusing it here would cost a load per free
     * (docs/design/alloc.md §7.4). */
    if (shr_unlikely(rel < SHR_ARENA_META || shr_load_relaxed(&pool->owner) != ctx->slot + 1))
        return free_slow(heap, ptr);
    return pool_free_local(heap, ctx, pool, po, off);
}

size_t shr_usable_size(shr_heap_t *heap, const void *ptr)
{
    if (!ptr || !heap) return 0;
    if (guarded(heap)) {
        size_t n;
        uint64_t off = 0;
        if (!block_kind(heap, (const uint8_t *)ptr - SHR_GUARD_HEAD, &off)) return 0;
        return guard_verify(heap, ptr, &n) == 0 ? n : 0;
    }
    return raw_usable(heap, ptr);
}

void *shr_realloc(shr_heap_t *heap, void *ptr, size_t size)
{
    if (!heap) {
        errno = EINVAL;
        return NULL;
    }
    if (!ptr) return shr_malloc(heap, size);
    size_t old = shr_usable_size(heap, ptr);
    /* A guarded block's size is the size asked for, 0 for shr_malloc(h, 0):
     * only a block whose guards fail is refused. */
    bool is_block = old != 0 || (guarded(heap) && guard_size(heap, ptr, &old) == 0);
    if (!is_block) {
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
        } else if (size > SHR_MEDIUM_REQUEST_THRESHOLD && shr__large_resize(heap, off, size)) {
            return ptr;
        }
    }
    void *p = shr_malloc(heap, size);
    if (!p) return NULL;
    memcpy(p, ptr, old < size ? old : size);
    shr_free(heap, ptr);
    return p;
}

size_t shr__alloc_block_checked(shr_heap_t *h, uint64_t uoff)
{
    if (!alloc_ready(h)) return 0;
    uint64_t head = guarded(h) ? SHR_GUARD_HEAD : 0;
    if (uoff < head || uoff >= h->capacity) return 0;
    uint64_t off = 0;
    uint32_t kind = block_kind(h, h->base + (uoff - head), &off);
    size_t usable;
    if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) {
        pool_header_t *pool = pool_of(h, off, kind);
        uint32_t st = shr_load_relaxed(&pool->state);
        uint16_t cls = shr_load_relaxed(&pool->szidx);
        if (st != POOL_USED && st != POOL_FULL && st != POOL_ORPHAN) return 0;
        if (cls >= SHR_NB_PCLASSES || pool->block_size != shr__class_size[cls]) return 0;
        if (!is_carved_block(h, pool, off, true)) return 0;
        /* Not on the local free list; a link that leaves the pool's carved
         * blocks (damage) answers 0 too. A live owner pops and pushes at
         * the head while we walk, and a block it pops gets user data where
         * its link was: when the walk fails and the head has moved, the
         * list changed under us, and the walk starts again. A damaged list
         * fails twice from the same head (a pop and a push of one block in
         * between would restore the head: that needs the same race twice). */
        uint64_t failed_from = UINT64_MAX;
        for (int tries = 0;; tries++) {
            uint64_t top = shr_load_acquire(&pool->freeblock);
            uint32_t steps = 0;
            bool found = false;
            for (uint64_t b = top; b; b = block_next(h, b)) {
                if (b == off || ++steps > pool->capacity || !is_carved_block(h, pool, b, true)) {
                    found = true;
                    break;
                }
            }
            if (!found) break;
            if (tries >= 64 || top == failed_from) return 0;
            failed_from = shr_load_acquire(&pool->freeblock) == top ? top : UINT64_MAX;
        }
        usable = pool->block_size;
    } else if (kind) {
        usable = shr__large_usable(h, off);
    } else {
        return 0;
    }
    if (usable == 0 || off + usable > h->capacity) return 0;
    if (!head) return usable;
    uint64_t n;
    return guard_intact(h->base + off, usable, &n) ? (size_t)n : 0;
}

/* ---- object pools (alloc.h, O1-O3) ------------------------------------------- */

shr_inline void *obj_block_alloc(shr_heap_t *h, size_t size, unsigned *clsp)
{
    if (shr_unlikely(!h || size == 0 || size > SHR_MEDIUM_REQUEST_THRESHOLD)) {
        errno = EINVAL;
        return NULL;
    }
    shr_tctx_t *ctx = shr__tctx(h);
    if (shr_unlikely(!ctx)) return NULL;
    unsigned cls = SHR_OBJ_CLASS + size_to_class(size);
    *clsp = cls;
    void *p = pool_malloc_ctx(h, ctx, cls);
    /* Bytes 0..7 are the object's and read 0 (O2); the fill starts past them. */
    if (SHR_DEBUG >= 1 && p && size > 8) memset((uint8_t *)p + 8, SHR_CLEAN_BYTE, size - 8);
    return p;
}

void *shr__obj_block_alloc(shr_heap_t *h, size_t size)
{
    unsigned cls;
    return obj_block_alloc(h, size, &cls);
}

/* Y1: the arena's hint first, then the pool's, with release (a creator
 * whose acquire load finds the pool's set finds the arena's too). */
static void obj_young_note(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    atomic_fetch_or_explicit(&chunk_table(h)[off >> SHR_CHUNK_SHIFT].young, SHR_OBJ_YOUNG, memory_order_relaxed);
    atomic_fetch_or_explicit(&pool->young, SHR_OBJ_YOUNG, memory_order_release);
}

void *shr__obj_block_alloc_young(shr_heap_t *h, size_t size)
{
    unsigned cls;
    uint8_t *p = obj_block_alloc(h, size, &cls);
    if (shr_unlikely(!p)) return NULL;
    /* The pool's header, from the class's geometry (the header the pop just
     * used: in cache). Usually both bits are set already: one load. */
    uint64_t off = (uint64_t)(p - h->base);
    unsigned shift = h->pool_shift[class_acls(cls) == AC_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM];
    pool_header_t *pool = pool_at(h, pool_hdr_of(off, shift));
    if (shr_unlikely((atomic_load_explicit(&pool->young, memory_order_acquire) & SHR_OBJ_YOUNG) != SHR_OBJ_YOUNG))
        obj_young_note(h, pool, off);
    return p;
}

int shr_heap_collect(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    shr_tctx_t *ctx = shr__tctx(heap);
    if (!ctx) return -errno;
    (void)shr__registry_reclaim(heap, UINT32_MAX); /* the dead's pools, in steps */
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
    p->consts[SHR_CONST_ALIGNMENT] = SHR_ALIGNMENT;
    p->consts[SHR_CONST_SMALL_MAX] = SHR_SMALL_REQUEST_THRESHOLD;
    p->consts[SHR_CONST_NB_SMALL] = SHR_NB_SMALL;
    p->consts[SHR_CONST_NB_MEDIUM] = SHR_NB_MEDIUM;
    p->consts[SHR_CONST_SMALL_POOL] = 1u << SHR_SMALL_POOL_SHIFT;
    p->consts[SHR_CONST_MEDIUM_POOL] = 1u << SHR_MEDIUM_POOL_SHIFT;
    p->consts[SHR_CONST_ARENA_SIZE] = (uint32_t)SHR_ARENA_SIZE;
    p->consts[SHR_CONST_POOL_HEADER] = SHR_POOL_OVERHEAD;
    p->consts[SHR_CONST_CHUNK_ENTRY] = sizeof(chunk_t);
    p->consts[SHR_CONST_LARGE_HEADER] = sizeof(large_header_t);
    p->consts[SHR_CONST_ROOTS_MAX] = SHR_ROOTS_MAX;
    p->global_size[SHR_LAYER_ALLOC] = sizeof(alloc_global_t);
    p->global_lazy[SHR_LAYER_ALLOC] = sizeof(alloc_global_t) - offsetof(alloc_global_t, roots); /* roots.c */
    p->thread_size[SHR_LAYER_ALLOC] = sizeof(alloc_tslot_t);
    p->table_size[SHR_LAYER_ALLOC] = sizeof(chunk_t);
    shr__registry_set_hooks(SHR_LAYER_ALLOC, &alloc_hooks);
    shr__lock_set_repair(SHR_LOCK_ARENA, shr__alloc_repair);
    shr__lock_set_repair(SHR_LOCK_LARGE, shr__large_repair);
}

/* ---- memory checkers (see alloc.h) ------------------------------------------- */

void shr__mem_block_free(const shr_heap_t *h, uint64_t b, uint32_t size)
{
    uint8_t *p = h->base + b + SHR_BLOCK_OBJ_BYTES;
    size_t n = size - SHR_BLOCK_OBJ_BYTES;
#if SHR_ASAN
    ASAN_POISON_MEMORY_REGION(p, n);
#endif
#if SHR_VALGRIND
    VALGRIND_MAKE_MEM_NOACCESS(p, n);
#endif
    (void)p, (void)n;
}

void shr__mem_block_alloc(const shr_heap_t *h, uint64_t b, uint32_t size)
{
    uint8_t *p = h->base + b;
#if SHR_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if SHR_VALGRIND
    /* Bytes 0..7 keep what they held (a refcount reads 0 until set). */
    VALGRIND_MAKE_MEM_UNDEFINED(p + SHR_BLOCK_OBJ_BYTES, size - SHR_BLOCK_OBJ_BYTES);
#endif
    (void)p, (void)size;
}

void shr__mem_release(const shr_heap_t *h, uint64_t off, uint64_t len)
{
    uint8_t *p = h->base + off;
#if SHR_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, len);
#endif
#if SHR_VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(p, len);
#endif
    (void)p, (void)len;
}

void shr__mem_probe_free(const shr_heap_t *h, const void *p)
{
    /* An ordinary (checked) read of byte 8: poisoned only when the block is
     * already free in this process, so the checker reports a double free
     * here, in the process that makes it, with this stack. */
    if ((uint64_t)((const uint8_t *)p - h->base) < h->capacity) (void)*(const volatile uint8_t *)((const uint8_t *)p + 8);
}

/* A fork child inherits its parent's shadow state, but not its pools (its
 * threads get slots of their own): every heap this process has open is
 * unpoisoned in the child, so that blocks the parent frees and hands out
 * again never look free to the child. */
#define MEM_HEAPS_MAX 64
static pthread_mutex_t mem_mu = PTHREAD_MUTEX_INITIALIZER;
static shr_heap_t *mem_heaps[MEM_HEAPS_MAX];
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;

static void mem_prepare(void) { pthread_mutex_lock(&mem_mu); }
static void mem_parent(void) { pthread_mutex_unlock(&mem_mu); }
/* Unpoison every chunk that may hold a poisoned block: those below the
 * high-water mark (the capacity beyond it may be a terabyte of address
 * space whose shadow was never touched). */
static void mem_release_all(shr_heap_t *h)
{
    uint64_t meta = h->hdr->meta_size, end = chunk_off(shr_load_relaxed(&alloc_global(h)->hwm));
    if (end > h->capacity) end = h->capacity;
    if (end > meta) shr__mem_release(h, meta, end - meta);
}

static void mem_child(void)
{
    for (int i = 0; i < MEM_HEAPS_MAX; i++)
        if (mem_heaps[i]) mem_release_all(mem_heaps[i]);
    pthread_mutex_unlock(&mem_mu);
}
static void mem_init(void) { pthread_atfork(mem_prepare, mem_parent, mem_child); }

static void mem_track(shr_heap_t *h, bool add)
{
    pthread_once(&mem_once, mem_init);
    pthread_mutex_lock(&mem_mu);
    for (int i = 0; i < MEM_HEAPS_MAX; i++)
        if (mem_heaps[i] == (add ? NULL : h)) {
            mem_heaps[i] = add ? h : NULL;
            break;
        }
    pthread_mutex_unlock(&mem_mu);
}

int shr__alloc_open(shr_heap_t *h)
{
    h->hot[0] = shr__seg_table(h, SHR_LAYER_ALLOC);
    h->hot[1] = shr__seg_global(h, SHR_LAYER_ALLOC);
    h->fast_max = (h->flags & SHR_HEAP_GUARDS) ? 0 : SHR_MEDIUM_REQUEST_THRESHOLD;
    memset(h->pool_shift, 0, sizeof h->pool_shift);
    h->pool_shift[CHUNK_SMALL] = (h->flags & SHR_HEAP_POOLS_16K) ? SHR_SMALL_POOL_SHIFT_16K : SHR_SMALL_POOL_SHIFT;
    h->pool_shift[CHUNK_MEDIUM] = SHR_MEDIUM_POOL_SHIFT;
    /* The free fast path relies on it to bound offsets (shr_free). */
    if (shr_load_relaxed(&alloc_global(h)->hwm) > alloc_global(h)->nchunks ||
        alloc_global(h)->nchunks > (h->capacity >> SHR_CHUNK_SHIFT))
        return SHR_ECORRUPT;
    if (SHR_MEMCHECK) mem_track(h, true);
    return 0;
}

void shr__alloc_close(shr_heap_t *h)
{
    if (SHR_MEMCHECK) {
        mem_track(h, false);
        /* The mapping goes away; an address it reused must not look free. */
        if (h->hot[1]) mem_release_all(h);
    }
    h->hot[0] = h->hot[1] = NULL;
}

int shr__alloc_init_segment(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    unsigned small = h->pool_shift[CHUNK_SMALL]; /* the heap's choice (shr__alloc_open) */
    g->ac[AC_SMALL].npools = arena_npools(small);
    g->ac[AC_SMALL].shift = small;
    g->ac[AC_MEDIUM].npools = arena_npools(SHR_MEDIUM_POOL_SHIFT);
    g->ac[AC_MEDIUM].shift = SHR_MEDIUM_POOL_SHIFT;
    return shr__chunk_init(h);
}
