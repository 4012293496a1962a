/* Arenas and pools
 *
 * pymalloc's machinery, in offsets, with pools owned by thread slots.
 *
 * Arenas (SMALL: 63 pools of 4 KiB, or 16 of 16 KiB with SHR_HEAP_POOLS_16K;
 * MEDIUM: 4 pools of 64 KiB; page 0 holds the headers) are on their
 * class's usable_arenas list while they have a free pool, sorted by
 * nfreepools ascending (the fullest first, so that nearly empty arenas can
 * drain), with nfp2lasta[n] naming the rightmost arena with n free pools so
 * that re-sorting after a free is O(1). Arenas whose every pool is free are
 * kept, up to SHR_ARENA_KEEP_EMPTY per class (hysteresis instead of
 * pymalloc's "at most one": a release costs a hole punch, and the next
 * taker re-commits and faults the arena back page by page, ~170 us here);
 * the next one to empty is released, and shr_heap_collect releases them all.
 * All of this is under the arena lock and happens once per pool, not per
 * block.
 *
 * Ownership (the fast path belongs to one thread):
 *   - a thread slot owns the pools on its used[] lists (state USED). Only the
 *     owner touches their local free list and nused: no lock, no atomic RMW.
 *   - any other thread frees into a pool by pushing onto its remote stack
 *     with one CAS. The owner takes the whole stack with one exchange when its
 *     local list runs dry, so the stack never suffers ABA.
 *   - a pool that fills up is parked: the owner sets REMOTE_PARKED in the
 *     remote word (CAS from 0, i.e. only if nothing is pending) and keeps it,
 *     off its used list, on its parked list. The owner's next free into it
 *     relinks it behind the class's current pool; the first remote free
 *     clears the flag and hands its block to the owner's delayed stack, which
 *     the owner drains (frees again as itself) before it takes a new pool.
 *   - pools of a thread that exits, or of a dead process, are orphaned: put
 *     on their class's orphan list, adopted by the next thread that needs a
 *     pool of that class; a full one is given up instead (REMOTE_UNOWNED,
 *     owner 0), and the first thread to free into it adopts it (CAS on owner).
 *
 * Tricky: the give-up at exit and the adoption race. A freer that pushes
 * while the pool is being given up sees either no REMOTE_UNOWNED (the CAS
 * from 0 then fails and the pool is orphaned instead), or the flag with
 * owner still set (its adoption CAS fails; orphan_pool, after clearing owner
 * with a seq_cst store, loads the stack with seq_cst and takes the pool back
 * if anything was pushed). Either way no block stays on the stack of a pool
 * nobody will adopt.
 *
 * Keeping empty pools: when the owner frees the last block of a pool that
 * is the only pool on its class list, the pool is kept (nused == 0, USED), so
 * that a malloc/free loop never leaves the fast path. Other pools that empty
 * go to the thread's cache of empty pools (state EMPTY, still owned), which
 * is filled from the arenas and drained back to them in batches, one arena
 * lock per batch instead of two per pool (measured: pool churn cost ~1300
 * robust lock round trips per round of the 10,000-block batch benchmark).
 * shr_heap_collect() and thread exit give all of them back.
 *
 * Crash consistency: every free-list change commits with one store (push:
 * write the link, then the head; pop: load the link, then store the head),
 * so a crash never links a block twice or loses the list; it leaks the
 * blocks in flight (one popped block, or a remote stack taken by exchange and
 * not yet spliced). nused, the used lists, freepools,
 * usable_arenas, nfp2lasta and the orphan lists are derived: the arena lock's
 * repair (shr__alloc_repair) rebuilds them from the pool headers (state,
 * owner, free lists, nextoffset) and the chunk table; the pools of a dead
 * thread are found by their owner id in the arenas its slot recorded as
 * touched before owning anything there (note_arena). This replaces the intent
 * records of the design: no multi-step change here needs more than that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fault.h"

#define OWNER_LOCKED UINT32_MAX /* pool being orphaned under the arena lock */

/* A pool's geometry comes from its arena's kind: a header word is never
 * trusted for an address. */
static inline unsigned pool_shift(const shr_heap_t *h, uint64_t po)
{
    return arena_pool_shift(h, shr_load_relaxed(&chunk_table(h)[po >> SHR_CHUNK_SHIFT].kind));
}
static inline uint64_t pool_size_of(const shr_heap_t *h, const pool_header_t *p)
{
    return (uint64_t)1 << pool_shift(h, shr__off(h, p));
}
/* The pool's memory (offset), and where its blocks begin in it. */
static inline uint64_t pool_mem_of(const shr_heap_t *h, const pool_header_t *p)
{
    uint64_t po = shr__off(h, p);
    return pool_mem(po, pool_shift(h, po));
}

/* ---- block lists ---------------------------------------------------------- */

long shr__pool_list_len(shr_heap_t *h, const pool_header_t *pool, uint64_t first)
{
    uint64_t mem = pool_mem_of(h, pool), start = mem + pool_first(mem);
    uint64_t size = pool->block_size, limit = mem + shr_load_relaxed(&((pool_header_t *)pool)->nextoffset);
    long n = 0;
    if (size == 0 || pool->capacity == 0) return first ? -1 : 0;
    for (uint64_t b = first; b; b = block_next(h, b)) {
        if (b < start || b >= limit || (b - start) % size) return -1;
        if (++n > (long)pool->capacity) return -1; /* a cycle */
    }
    return n;
}

/* Splice a list taken from the remote stack in front of the local list;
 * returns how many blocks it held. Owner only. */
static uint32_t splice_remote(shr_heap_t *h, pool_header_t *pool, uint64_t list)
{
    (void)SHR_FAULT(ALLOC_REMOTE_SPLICE);
    uint32_t n = 1;
    uint64_t last = list;
    for (uint64_t nx; (nx = block_next(h, last)) != 0; last = nx) {
        if (++n > pool->capacity) {
            /* Longer than the pool: a cycle, made by a double free of one
             * block by two threads. Cut it; the blocks after the cut leak. */
            if (SHR_DEBUG >= 1)
                SHR_PANIC("double free detected: remote free list of pool %llu cycles",
                          (unsigned long long)shr__off(h, pool));
            block_set_next(h, last, 0);
            /* The cut list may still repeat a block before the cut: count
             * what is really on it now. */
            n = 0;
            for (uint64_t b = list; b && n <= pool->capacity; b = block_next(h, b)) {
                n++;
                last = b;
            }
            break;
        }
    }
    block_set_next(h, last, shr_load_relaxed(&pool->freeblock));
    shr_store_relaxed(&pool->freeblock, list);
    SHR_ASSERT_INV("P1", shr_load_relaxed(&pool->nused) >= n);
    shr_store_relaxed(&pool->nused, shr_load_relaxed(&pool->nused) - n);
    return n;
}

/* Take the remote stack (and the UNOWNED flag with it); 0 if it was empty. */
static uint64_t take_remote(pool_header_t *pool)
{
    uint64_t r = atomic_exchange_explicit(&pool->remote, 0, memory_order_acquire);
    return r & ~REMOTE_FLAGS;
}

/* ---- arenas: pymalloc's usable_arenas ------------------------------------- */

/* A2 at one arena, after a relink (obmalloc's "verify that the swaps
 * worked"): its neighbours point back at it and keep the order. */
static void assert_linked(shr_heap_t *h, arena_class_t *ac, uint64_t ai)
{
    chunk_t *a = chunk_at_ref(h, ai);
    SHR_ASSERT_INV("A2", a->prev ? chunk_at_ref(h, a->prev)->next == ai : ac->usable == ai);
    SHR_ASSERT_INV("A2", !a->next || chunk_at_ref(h, a->next)->prev == ai);
    SHR_ASSERT_INV("A2", !a->prev || chunk_at_ref(h, a->prev)->nfreepools <= a->nfreepools);
    SHR_ASSERT_INV("A2", !a->next || chunk_at_ref(h, a->next)->nfreepools >= a->nfreepools);
    SHR_ASSERT_INV("A2", ac->nfp2lasta[a->nfreepools] != 0);
    (void)h, (void)ac, (void)a;
}

/* A new arena of class acls; returns its chunk ref, or 0 when the segment
 * is full. The kind is the commit point: a crash before it leaves a chunk
 * taken but never tagged, which repair gives back. */
static uint64_t arena_new(shr_heap_t *h, int acls)
{
    alloc_global_t *g = alloc_global(h);
    arena_class_t *ac = &g->ac[acls];
    uint64_t ref = shr__chunk_alloc(h, 1);
    if (!ref) return 0;
    uint64_t c = chunk_index(ref);
    /* Arenas are committed as their pools are carved (arena_take_pool,
     * carve_batch); page 0, which holds the pool headers, now. */
    if (SHR_FAULT(ALLOC_ARENA_COMMIT) || shr__seg_commit(h, chunk_off(c), SHR_PAGE_SIZE) != 0) {
        shr__chunk_free(h, c, 1);
        return 0;
    }
    chunk_t *a = chunk_at_ref(h, ref);
    a->nfreepools = a->ntotalpools = ac->npools;
    /* Page 0 holds the headers: a SMALL arena's first pool is the next. */
    a->pool_address = arena_pools_start(chunk_off(c), ac->shift);
    a->freepools = 0;
    a->next = a->prev = 0;
    a->run = 1;
    shr_store_relaxed(&a->kind, acls == AC_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM); /* commit point */
    ac->narenas++;
    uint64_t n = atomic_fetch_add_explicit(&g->arenas_allocated, 1, memory_order_relaxed) + 1 -
                 shr_load_relaxed(&g->arenas_released);
    if (n > shr_load_relaxed(&g->arenas_highwater)) shr_store_relaxed(&g->arenas_highwater, n);
    return ref;
}

/* Commit the pages of the pool at mem, about to be carved from its arena: a
 * 16 KiB SMALL pool alone; 4 KiB SMALL pools in doubling batches, so that a heap
 * with a few small blocks commits a few pages and a full arena costs six
 * commits, not 63: carving pool k (1..63, in order) commits pools [k, 2k)
 * when k is a power of two, and nothing otherwise (the batch of the largest
 * power of two at most k holds it, and was carved first). A MEDIUM pool
 * (64 KiB) commits nothing here: its pages are committed as its blocks are
 * carved (carve_batch), so that one 1 KiB block costs a page, not 64 KiB.
 * Idempotent: a crash after the commit and before the carve's commit point
 * (pool_address) leaves the pages committed, and the next carve of the
 * same pool commits them again. 0, or -ENOMEM with nothing carved. */
static int pool_commit(shr_heap_t *h, uint64_t ai, uint64_t mem, unsigned shift)
{
    uint64_t base = chunk_off(chunk_index(ai));
    uint64_t len = (uint64_t)1 << shift;
    if (shift == SHR_MEDIUM_POOL_SHIFT) return 0;
    if (len == SHR_ARENA_META) { /* 4 KiB pools, 1..63 after the header page */
        uint64_t k = (mem - base) >> shift;
        if (k & (k - 1)) return 0;
        uint64_t end = mem + k * len, lim = base + SHR_ARENA_SIZE;
        len = (end < lim ? end : lim) - mem;
    }
    if (SHR_FAULT(ALLOC_ARENA_COMMIT) || shr__seg_commit(h, mem, len) != 0) return -ENOMEM;
    return 0;
}

/* Take an empty pool from the class's fullest arena. Arena lock held.
 * Returns the pool offset, or 0 when the segment is full. */
static uint64_t arena_take_pool(shr_heap_t *h, int acls)
{
    arena_class_t *ac = &alloc_global(h)->ac[acls];

    if (!ac->usable) {
        uint64_t ref = arena_new(h, acls);
        if (!ref) return 0;
        ac->nempty++; /* entirely free until the pool below is taken (A3) */
        ac->usable = ref;
        ac->nfp2lasta[chunk_at_ref(h, ref)->nfreepools] = ref;
    }
    uint64_t ai = ac->usable;
    chunk_t *a = chunk_at_ref(h, ai);
    SHR_ASSERT_INV("A2", a->prev == 0 && a->nfreepools > 0);
    uint64_t po;
    if (a->freepools) {
        po = a->freepools;
    } else {
        uint64_t mem = a->pool_address;
        if (pool_commit(h, ai, mem, ac->shift) != 0) return 0;
        po = pool_hdr_of(mem, ac->shift);
    }
    /* The head already has the fewest free pools: taking one keeps the order. */
    uint32_t nf = a->nfreepools;
    if (nf == a->ntotalpools) {
        SHR_ASSERT_INV("A3", ac->nempty > 0);
        ac->nempty--;
    }
    if (ac->nfp2lasta[nf] == ai) ac->nfp2lasta[nf] = 0;
    if (nf > 1) ac->nfp2lasta[nf - 1] = ai;

    pool_header_t *pool = pool_at(h, po);
    if (a->freepools) {
        SHR_ASSERT_INV("A1", shr_load_relaxed(&pool->state) == POOL_EMPTY && shr_load_relaxed(&pool->owner) == 0);
        a->freepools = pool->nextpool;
    } else {
        /* The header first, then pool_address (the commit point): a crash in
         * between leaves an uncarved pool with a header nobody reads. */
        pool->shift = (uint8_t)ac->shift;
        shr_store_relaxed(&pool->szidx, UINT16_MAX); /* never initialised */
        shr_store_relaxed(&pool->remote, 0);
        shr_store_relaxed(&pool->owner, 0);
        shr_store_relaxed(&pool->state, 0);
        (void)SHR_FAULT(ALLOC_POOL_CARVE);
        a->pool_address += (uint64_t)1 << ac->shift;
        SHR_ASSERT_INV("A1", a->pool_address <= chunk_off(chunk_index(ai) + 1));
    }
    if (--a->nfreepools == 0) {
        ac->usable = a->next;
        if (a->next) chunk_at_ref(h, a->next)->prev = 0;
        a->next = a->prev = 0;
    } else {
        assert_linked(h, ac, ai);
    }
    if (SHR_DEBUG >= 3) shr__validate_arenas(h, acls);
    return po;
}

static void arena_unlink(shr_heap_t *h, arena_class_t *ac, uint64_t ai)
{
    chunk_t *a = chunk_at_ref(h, ai);
    if (a->prev) chunk_at_ref(h, a->prev)->next = a->next;
    else ac->usable = a->next;
    if (a->next) chunk_at_ref(h, a->next)->prev = a->prev;
    SHR_ASSERT_INV("A2", !ac->usable || chunk_at_ref(h, ac->usable)->prev == 0);
    a->next = a->prev = 0;
}

/* Release an entirely free arena that is not counted in nempty, and whose
 * nfp2lasta entry no longer names it: unlinked, hole punched. */
static void arena_release(shr_heap_t *h, arena_class_t *ac, uint64_t ai)
{
    arena_unlink(h, ac, ai);
    ac->narenas--;
    atomic_fetch_add_explicit(&alloc_global(h)->arenas_released, 1, memory_order_relaxed);
    shr__chunk_free(h, chunk_index(ai), 1);
}

/* Give an empty pool back to its arena (pymalloc's insert_to_freepool), in
 * one of four cases. Arena lock held; A1 and A2 hold again on return. */
static void arena_put_pool(shr_heap_t *h, pool_header_t *pool)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t po = shr__off(h, pool);
    uint64_t ai = chunk_ref(po >> SHR_CHUNK_SHIFT);
    chunk_t *a = chunk_at_ref(h, ai);
    int acls = shr_load_relaxed(&a->kind) == CHUNK_MEDIUM ? AC_MEDIUM : AC_SMALL;
    arena_class_t *ac = &g->ac[acls];

    /* It leaves this process's threads: no shadow state stays behind. */
    if (SHR_MEMCHECK) {
        uint64_t mem = pool_mem(po, ac->shift);
        shr__mem_release(h, mem + pool_first(mem), ((uint64_t)1 << ac->shift) - pool_first(mem));
    }
    shr_store_relaxed(&pool->owner, 0);
    shr_store_relaxed(&pool->state, POOL_EMPTY);
    pool->nextpool = a->freepools;
    a->freepools = po;
    uint32_t nf = a->nfreepools;
    SHR_ASSERT_INV("A1", nf < a->ntotalpools);
    uint64_t lastnf = ac->nfp2lasta[nf];
    if (lastnf == ai) {
        uint64_t p = a->prev;
        ac->nfp2lasta[nf] = (p && chunk_at_ref(h, p)->nfreepools == nf) ? p : 0;
    }
    a->nfreepools = ++nf;

    if (nf == a->ntotalpools && ac->nempty >= SHR_ARENA_KEEP_EMPTY) {
        /* Case 1: entirely free, and enough empty arenas are kept: release it. */
        arena_release(h, ac, ai);
        if (SHR_DEBUG >= 3) shr__validate_arenas(h, acls);
        return;
    }
    if (nf == a->ntotalpools) ac->nempty++; /* kept, at the tail (A3) */
    if (nf == 1) {
        /* Case 2: it was full, on no list: it has the fewest free pools. */
        a->next = ac->usable;
        a->prev = 0;
        if (ac->usable) chunk_at_ref(h, ac->usable)->prev = ai;
        ac->usable = ai;
        if (!ac->nfp2lasta[1]) ac->nfp2lasta[1] = ai;
        assert_linked(h, ac, ai);
    } else {
        if (!ac->nfp2lasta[nf]) ac->nfp2lasta[nf] = ai;
        if (lastnf != ai) {
            /* Case 3: move it just after the rightmost arena that had nf - 1. */
            arena_unlink(h, ac, ai);
            chunk_t *l = chunk_at_ref(h, lastnf);
            a->next = l->next;
            a->prev = lastnf;
            l->next = ai;
            if (a->next) chunk_at_ref(h, a->next)->prev = ai;
        } /* else case 4: still in order */
        assert_linked(h, ac, ai);
    }
    if (SHR_DEBUG >= 3) shr__validate_arenas(h, acls);
}

void shr__arena_release_empty(shr_heap_t *h, uint64_t keep)
{
    alloc_global_t *g = alloc_global(h);
    for (int acls = 0; acls < NB_ARENA_CLASSES; acls++) {
        arena_class_t *ac = &g->ac[acls];
        /* The empty arenas are the tail of usable_arenas (A2, A3). */
        while (ac->nempty > keep) {
            uint64_t ai = ac->nfp2lasta[ac->npools];
            SHR_ASSERT_INV("A3", ai != 0);
            if (!ai) break;
            chunk_t *a = chunk_at_ref(h, ai);
            uint64_t p = a->prev;
            ac->nfp2lasta[ac->npools] = (p && chunk_at_ref(h, p)->nfreepools == ac->npools) ? p : 0;
            ac->nempty--;
            arena_release(h, ac, ai);
        }
        if (SHR_DEBUG >= 3) shr__validate_arenas(h, acls);
    }
}

/* ---- pool setup and lists ---------------------------------------------- */

static void pool_init(shr_heap_t *h, pool_header_t *pool, unsigned cls)
{
    uint32_t size = shr__class_size[cls];
    uint64_t psize = pool_size_of(h, pool);
    uint32_t first = pool_first(pool_mem_of(h, pool));
    /* Relaxed atomic stores: a checker in another thread may read the
     * geometry of a pool its owner re-classes meanwhile (it then discards
     * what it read: check.c's snapshot). */
    uint32_t cap = (uint32_t)((psize - first) / size);
    __atomic_store_n(&pool->block_size, size, __ATOMIC_RELAXED);
    (void)SHR_FAULT(ALLOC_POOL_RECLASS); /* torn: recount starts an EMPTY pool afresh */
    __atomic_store_n(&pool->capacity, cap, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->maxnextoffset, (uint32_t)(first + (uint64_t)(cap - 1) * size), __ATOMIC_RELAXED);
    shr_store_relaxed(&pool->nextoffset, first);
    shr_store_relaxed(&pool->freeblock, 0);
    shr_store_relaxed(&pool->nused, 0);
    shr_store_relaxed(&pool->szidx, (uint16_t)cls);
}

static void used_push(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, unsigned cls)
{
    uint64_t po = shr__off(h, pool);
    SHR_ASSERT_INV("P3", shr_load_relaxed(&pool->state) == POOL_USED && shr_load_relaxed(&pool->owner) != 0 &&
                             shr_load_relaxed(&pool->szidx) == cls);
    pool->prevpool = 0;
    pool->nextpool = ts->used[cls];
    if (ts->used[cls]) pool_at(h, ts->used[cls])->prevpool = po;
    ts->used[cls] = po;
}

static void used_unlink(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, unsigned cls)
{
    SHR_ASSERT_INV("P3", pool->prevpool || ts->used[cls] == shr__off(h, pool));
    if (pool->prevpool) pool_at(h, pool->prevpool)->nextpool = pool->nextpool;
    else ts->used[cls] = pool->nextpool;
    if (pool->nextpool) pool_at(h, pool->nextpool)->prevpool = pool->prevpool;
    SHR_ASSERT_INV("P3", !ts->used[cls] || pool_at(h, ts->used[cls])->prevpool == 0);
    pool->nextpool = pool->prevpool = 0;
}

static inline uint32_t my_owner_id(const shr_tctx_t *ctx) { return ctx->slot + 1; }

/* Record that this slot is about to own a pool at offset po: its arena goes
 * into the slot's touched set before the ownership store or CAS, so that a
 * crash right after leaves the arena listed (a needless scan of 64 headers
 * at worst, never a pool missed). The set is a small open-addressing table
 * of chunk refs (0 = empty slot), probed from ref % SHR_TOUCHED_MAX, so that
 * the usual case (an arena already listed) is one compare. Owner only; an
 * entry is written before the count (release). */
static void note_arena(alloc_tslot_t *ts, uint64_t po)
{
    uint32_t ref = (uint32_t)chunk_ref(po >> SHR_CHUNK_SHIFT);
    uint32_t n = shr_load_relaxed(&ts->ntouched);
    if (n > SHR_TOUCHED_MAX) return; /* overflowed: the reclaim scans everything */
    for (uint32_t k = 0, i = ref % SHR_TOUCHED_MAX; k < SHR_TOUCHED_MAX; k++, i = (i + 1) % SHR_TOUCHED_MAX) {
        if (ts->touched[i] == ref) return;
        if (ts->touched[i] == 0) {
            ts->touched[i] = ref;
            atomic_store_explicit(&ts->ntouched, n + 1, memory_order_release);
            return;
        }
    }
    atomic_store_explicit(&ts->ntouched, SHR_TOUCHED_MAX + 1, memory_order_release); /* full */
}

/* ---- slow paths ------------------------------------------------------------ */

/* The cache bounds are in 4 KiB pools for the small classes: a heap of
 * 16 KiB pools keeps as many bytes, a quarter of the pools. */
static inline uint32_t cache_max(const shr_heap_t *h, int acls)
{
    return acls == AC_MEDIUM ? SHR_CACHE_MAX_MEDIUM
                             : SHR_CACHE_MAX_SMALL >> (h->pool_shift[CHUNK_SMALL] - SHR_SMALL_POOL_SHIFT);
}
/* The next batch of a slot that has taken `nfills` batches: 1, 2, 4, ...
 * up to the fill (a thread that allocates a few blocks commits one pool;
 * one that allocates many reaches the full batch after a few fills). */
static inline uint32_t cache_fill(const shr_heap_t *h, int acls, uint32_t nfills)
{
    uint32_t fill = acls == AC_MEDIUM ? SHR_CACHE_FILL_MEDIUM
                                      : SHR_CACHE_FILL_SMALL >> (h->pool_shift[CHUNK_SMALL] - SHR_SMALL_POOL_SHIFT);
    return nfills < 31 && (1u << nfills) < fill ? 1u << nfills : fill;
}

static void cache_push(shr_heap_t *h, alloc_tslot_t *ts, int acls, pool_header_t *pool)
{
    SHR_ASSERT_INV("P3", shr_load_relaxed(&pool->owner) != 0 && shr_load_relaxed(&pool->nused) == 0);
    shr_store_relaxed(&pool->state, POOL_EMPTY);
    pool->prevpool = 0;
    pool->nextpool = ts->cache[acls];
    ts->cache[acls] = shr__off(h, pool);
    ts->ncache[acls]++;
}

static pool_header_t *cache_pop(shr_heap_t *h, alloc_tslot_t *ts, int acls)
{
    uint64_t po = ts->cache[acls];
    if (!po) return NULL;
    pool_header_t *pool = pool_at(h, po);
    ts->cache[acls] = pool->nextpool;
    ts->ncache[acls]--;
    return pool;
}

/* Give cached pools back to their arenas until `keep` remain. Arena lock held. */
static void cache_drain(shr_heap_t *h, alloc_tslot_t *ts, int acls, uint32_t keep)
{
    while (ts->ncache[acls] > keep) arena_put_pool(h, cache_pop(h, ts, acls));
}

/* Get a pool for class cls for this thread: from its cache of empty pools,
 * else an orphan, else a batch of empty pools from the arenas. NULL with
 * errno = ENOMEM when the segment is full, or ETIMEDOUT when the arena or
 * registry lock was not released in time. */
static pool_header_t *acquire_pool(shr_heap_t *h, shr_tctx_t *ctx, unsigned cls)
{
    alloc_global_t *g = alloc_global(h);
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    int acls = class_acls(cls);
    pool_header_t *pool = cache_pop(h, ts, acls);
    int lock_rc = 0; /* a lock that failed: its errno, not ENOMEM */

    for (int attempt = 0; attempt < 2 && !pool; attempt++) {
        if ((lock_rc = shr__lock(h, SHR_LOCK_ARENA)) != 0) break;
        uint64_t po = g->orphans[cls];
        if (po) {
            pool = pool_at(h, po);
            g->orphans[cls] = pool->nextpool;
            note_arena(ts, po);
            shr_store_relaxed(&pool->owner, my_owner_id(ctx));
            (void)SHR_FAULT(ALLOC_POOL_ADOPT);
            uint64_t list = take_remote(pool);
            if (list) splice_remote(h, pool, list);
            shr_store_relaxed(&pool->state, POOL_USED); /* under the lock: check sees no gap */
        } else {
            uint32_t fill = cache_fill(h, acls, ts->nfills[acls]);
            if (ts->nfills[acls] < UINT32_MAX) ts->nfills[acls]++;
            for (uint32_t i = 0; i < fill; i++) {
                if ((po = arena_take_pool(h, acls)) == 0) break;
                note_arena(ts, po);
                shr_store_relaxed(&pool_at(h, po)->owner, my_owner_id(ctx));
                cache_push(h, ts, acls, pool_at(h, po));
            }
        }
        shr__unlock(h, SHR_LOCK_ARENA);
        if (!pool) pool = cache_pop(h, ts, acls);
        if (!pool && attempt == 0) {
            /* Full: the dead may hold pools and chunks; reclaim and retry. */
            if ((lock_rc = shr__lock(h, SHR_LOCK_REGISTRY)) != 0) break;
            int n = shr__registry_sweep_locked(h);
            shr__unlock(h, SHR_LOCK_REGISTRY);
            if (n == 0) break;
        }
    }
    if (!pool) {
        errno = lock_rc ? shr__errno_of(lock_rc) : ENOMEM;
        return NULL;
    }
    if (shr_load_relaxed(&pool->state) == POOL_EMPTY) {
        /* An empty pool of the same class keeps its free list. */
        if (shr_load_relaxed(&pool->szidx) != cls || pool->block_size != shr__class_size[cls]) pool_init(h, pool, cls);
        /* An empty pool has no block in use, so nobody can have freed into
         * it: its remote stack is empty, and the claim trusts no leftover. */
        shr_store_relaxed(&pool->remote, 0);
        shr_store_release(&pool->state, POOL_USED); /* the geometry before it (check reads it) */
    }
    used_push(h, ts, pool, cls);
    return pool;
}

/* The owner parks its full pool: REMOTE_PARKED set in the remote word (CAS
 * from 0: only if no remote free is pending, else the caller collects it),
 * then off the used list, still owned, on the slot's parked list. */
static void park_full(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, unsigned cls)
{
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&pool->remote, &expected, REMOTE_PARKED, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    used_unlink(h, ts, pool, cls);
    shr_store_relaxed(&pool->state, POOL_FULL);
    uint64_t po = shr__off(h, pool);
    pool->prevpool = 0;
    pool->nextpool = ts->parked;
    if (ts->parked) pool_at(h, ts->parked)->prevpool = po;
    ts->parked = po;
}

/* Lazy carving, a few blocks at a time: carve the next untouched block and
 * link up to SHR_CARVE_BATCH - 1 more onto the (empty) local list, never
 * past the 4 KiB page it starts on (no page is touched before it is needed),
 * so that the next allocations take the fast path. Returns the block, or 0
 * when the pool has no untouched space, or CARVE_NOMEM when a MEDIUM pool's
 * pages for the batch could not be committed (nothing carved). Owner only;
 * nextoffset is the commit point (the links are written first).
 *
 * A MEDIUM pool's pages are committed here, those the batch's blocks span,
 * before any of them is written (pool_commit commits none): the pages of a
 * medium pool below its nextoffset are committed. Idempotent, like every
 * commit: a crash after it leaves committed pages above nextoffset, which
 * the next carve commits again, and so does the carve of a pool re-classed
 * (pool_init) over pages it committed before. */
#define CARVE_NOMEM UINT64_MAX
static uint64_t carve_batch(shr_heap_t *h, pool_header_t *pool)
{
    uint64_t po = pool_mem_of(h, pool); /* offsets below are from the pool's memory */
    uint32_t next = shr_load_relaxed(&pool->nextoffset), size = pool->block_size;
    if (next > pool->maxnextoffset) return 0;
    SHR_ASSERT_INV("P1", shr_load_relaxed(&pool->freeblock) == 0);
    uint32_t first = next + size, o = first;
    uint32_t limit = (uint32_t)SHR_ALIGN_UP(first, SHR_PAGE_SIZE);
    if (limit > first + (SHR_CARVE_BATCH - 1) * size) limit = first + (SHR_CARVE_BATCH - 1) * size;
    if (limit > pool->maxnextoffset + 1) limit = pool->maxnextoffset + 1;
    if (pool->shift == SHR_MEDIUM_POOL_SHIFT) {
        /* Only blocks that end in first's page are linked, so that the batch
         * commits no page beyond the one its first linked block needs. */
        uint32_t pend = (uint32_t)SHR_ALIGN_UP(first, SHR_PAGE_SIZE);
        if (pend - first >= size && limit > pend - size + 1) limit = pend - size + 1;
        /* The blocks carved below: next, then first, first + size, ... while
         * below limit; the last ends at the first such offset at or past it. */
        uint32_t end = limit > first ? first + (limit - first + size - 1) / size * size : first;
        if (SHR_FAULT(ALLOC_ARENA_COMMIT) || shr__seg_commit(h, po + next, end - next) != 0) return CARVE_NOMEM;
    }
    /* An object pool's carved blocks read 0 at bytes 0..7 (O2), the
     * returned one included. */
    bool obj = class_is_obj(shr_load_relaxed(&pool->szidx));
    /* A memory checker may still hold the old blocks' poisoned tails where
     * the new ones start: unpoison before the store. */
    if (obj && SHR_MEMCHECK) shr__mem_block_alloc(h, po + next, size);
    if (obj) *(uint64_t *)(h->base + po + next) = 0;
    for (; o < limit; o += size) {
        if (obj && SHR_MEMCHECK) shr__mem_block_alloc(h, po + o, size);
        if (obj) *(uint64_t *)(h->base + po + o) = 0;
        block_set_next(h, po + o, o + size < limit ? po + o + size : 0);
        if (SHR_MEMCHECK) shr__mem_block_free(h, po + o, size);
    }
    if (o > first) shr_store_relaxed(&pool->freeblock, po + first);
    shr_store_relaxed(&pool->nextoffset, o);
    shr_store_relaxed(&pool->nused, shr_load_relaxed(&pool->nused) + 1);
    if (SHR_MEMCHECK) shr__mem_block_alloc(h, po + next, size);
    return po + next;
}

void *shr__pool_alloc_slow(shr_heap_t *h, shr_tctx_t *ctx, unsigned cls)
{
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    for (;;) {
        uint64_t po = ts->used[cls];
        if (!po && shr_load_relaxed(&ts->delayed)) {
            /* Frees into parked pools first: they may give this class a pool. */
            shr__alloc_drain_delayed(h, ctx);
            po = ts->used[cls];
        }
        pool_header_t *pool = po ? pool_at(h, po) : acquire_pool(h, ctx, cls);
        if (!pool) return NULL;
        uint64_t bp = shr_load_relaxed(&pool->freeblock);
        if (bp) {
            pool_pop(h, pool, bp);
        } else if ((bp = carve_batch(h, pool)) == CARVE_NOMEM) {
            errno = ENOMEM;
            return NULL;
        } else if (bp == 0) {
            uint64_t list = take_remote(pool);
            if (!list) {
                park_full(h, ts, pool, cls);
                continue;
            }
            splice_remote(h, pool, list);
            bp = pool_pop(h, pool, shr_load_relaxed(&pool->freeblock));
        }
        shr_store_relaxed(&ts->net, shr_load_relaxed(&ts->net) + 1);
        if (SHR_DEBUG >= 3) shr__validate_pool(h, pool);
        return h->base + bp;
    }
}

/* Unlink a pool from the slot's parked list. Owner only. */
static void parked_unlink(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool)
{
    if (pool->prevpool) pool_at(h, pool->prevpool)->nextpool = pool->nextpool;
    else ts->parked = pool->nextpool;
    if (pool->nextpool) pool_at(h, pool->nextpool)->prevpool = pool->prevpool;
    pool->nextpool = pool->prevpool = 0;
}

/* The owner's first free into its parked pool: the pool goes back on its
 * class's used list, behind the current pool (which keeps serving mallocs:
 * relinked in front, the pool would fill again at once and be parked again,
 * every other operation). Remote frees from now on go to its remote stack. */
static void unpark(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, unsigned cls)
{
    uint64_t r = shr_load_relaxed(&pool->remote);
    while ((r & REMOTE_PARKED) &&
           !atomic_compare_exchange_weak_explicit(&pool->remote, &r, r & ~REMOTE_PARKED, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
    }
    parked_unlink(h, ts, pool);
    shr_store_relaxed(&pool->state, POOL_USED);
    uint64_t head = ts->used[cls];
    if (!head) {
        used_push(h, ts, pool, cls);
        return;
    }
    uint64_t po = shr__off(h, pool);
    pool_header_t *hp = pool_at(h, head);
    pool->prevpool = head;
    pool->nextpool = hp->nextpool;
    if (hp->nextpool) pool_at(h, hp->nextpool)->prevpool = po;
    hp->nextpool = po;
}

/* The owner freed into a pool that had no free block (it may be parked), or
 * freed its last block: an empty pool goes into the thread's cache of empty
 * pools, unless it is its class's only one (pool_is_class_only); when the
 * cache is full, half of it goes back to the arenas under one lock. */
void shr__pool_free_local_slow(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, uint32_t n)
{
    unsigned cls = shr_load_relaxed(&pool->szidx);
    int acls = class_acls(cls);
    if (shr_load_relaxed(&pool->state) == POOL_FULL) unpark(h, ts, pool, cls);
    if (n != 0 || pool_is_class_only(ts, pool, shr__off(h, pool), cls)) return;
    used_unlink(h, ts, pool, cls);
    cache_push(h, ts, acls, pool);
    if (ts->ncache[acls] > cache_max(h, acls) && shr__lock(h, SHR_LOCK_ARENA) == 0) {
        cache_drain(h, ts, acls, cache_max(h, acls) / 2);
        shr__unlock(h, SHR_LOCK_ARENA);
    }
}

/* Hand block off, freed into a parked pool, to the pool's owner: a push on
 * its slot's delayed stack. False when there is no owner to hand it to (the
 * slot is going away): the caller pushes it on the pool's remote stack. */
static bool delayed_push(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint32_t ow = shr_load_relaxed(&pool->owner);
    if (ow == 0 || ow == OWNER_LOCKED || ow > h->max_threads) return false;
    alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, ow - 1);
    uint64_t d = shr_load_relaxed(&ts->delayed);
    do {
        if (d & DELAYED_CLOSED) return false;
        block_set_next(h, off, d);
    } while (!atomic_compare_exchange_weak_explicit(&ts->delayed, &d, off, memory_order_release, memory_order_relaxed));
    return true;
}

/* Push on the remote stack, whatever its flags. */
static uint64_t remote_push(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint64_t old = shr_load_relaxed(&pool->remote);
    do block_set_next(h, off, old & ~REMOTE_FLAGS);
    while (!atomic_compare_exchange_weak_explicit(&pool->remote, &old, off | (old & REMOTE_FLAGS),
                                                  memory_order_seq_cst, memory_order_relaxed));
    return old;
}

void shr__pool_free_remote(shr_heap_t *h, pool_header_t *pool, uint64_t off)
{
    uint64_t old = shr_load_relaxed(&pool->remote);
    /* A parked pool: the first remote free clears the flag and wakes the
     * owner with its block; later ones push on the stack as usual. */
    while (shr_unlikely(old & REMOTE_PARKED)) {
        if (!atomic_compare_exchange_weak_explicit(&pool->remote, &old, old & ~REMOTE_PARKED, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        if (delayed_push(h, pool, off)) return;
        old = shr_load_relaxed(&pool->remote);
    }
    old = remote_push(h, pool, off);
    if (!(old & REMOTE_UNOWNED)) return;
    /* The pool was given up full: the first freer adopts it. */
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx) return;
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    note_arena(ts, shr__off(h, pool));
    uint32_t zero = 0;
    if (!atomic_compare_exchange_strong(&pool->owner, &zero, my_owner_id(ctx))) return;
    unsigned cls = shr_load_relaxed(&pool->szidx);
    uint64_t list = take_remote(pool);
    if (list) splice_remote(h, pool, list);
    shr_store_relaxed(&pool->state, POOL_USED);
    used_push(h, ts, pool, cls);
    if (shr_load_relaxed(&pool->nused) == 0) shr__pool_free_local_slow(h, ts, pool, 0);
}

/* Settle the remote frees pending on orphan pools, and give back those that
 * became empty. Arena lock held (orphans are adopted only under it, so their
 * stacks are ours to take). */
static void collect_orphans(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    for (unsigned cls = 0; cls < SHR_NB_PCLASSES; cls++) {
        uint64_t *link = &g->orphans[cls];
        while (*link) {
            pool_header_t *pool = pool_at(h, *link);
            uint64_t list = take_remote(pool);
            if (list) splice_remote(h, pool, list);
            if (shr_load_relaxed(&pool->nused) == 0) {
                *link = pool->nextpool;
                arena_put_pool(h, pool);
            } else {
                link = &pool->nextpool;
            }
        }
    }
}

void shr__pool_collect(shr_heap_t *h, shr_tctx_t *ctx)
{
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    shr__alloc_drain_delayed(h, ctx);
    if (shr__lock(h, SHR_LOCK_ARENA) == 0) {
        collect_orphans(h);
        shr__unlock(h, SHR_LOCK_ARENA);
    }
    for (unsigned cls = 0; cls < SHR_NB_PCLASSES; cls++) {
        for (uint64_t po = ts->used[cls], next; po; po = next) {
            pool_header_t *pool = pool_at(h, po);
            next = pool->nextpool;
            uint64_t list = take_remote(pool);
            if (list) splice_remote(h, pool, list);
            if (shr_load_relaxed(&pool->nused) == 0) {
                used_unlink(h, ts, pool, cls);
                cache_push(h, ts, class_acls(cls), pool);
            }
        }
    }
    if (shr__lock(h, SHR_LOCK_ARENA) == 0) {
        for (int acls = 0; acls < NB_ARENA_CLASSES; acls++) cache_drain(h, ts, acls, 0);
        shr__arena_release_empty(h, 0);
        shr__unlock(h, SHR_LOCK_ARENA);
    }
    if (shr__lock(h, SHR_LOCK_LARGE) == 0) {
        shr__large_purge(h);
        shr__unlock(h, SHR_LOCK_LARGE);
    }
}

/* ---- orphans ---------------------------------------------------------------- */

/* Put a pool that has free blocks or untouched space on its class's orphan
 * list (state ORPHAN, unowned: P3). Arena lock held. */
static void orphan_push(shr_heap_t *h, pool_header_t *pool, unsigned cls)
{
    alloc_global_t *g = alloc_global(h);
    SHR_ASSERT_INV("P3", cls < SHR_NB_PCLASSES && shr_load_relaxed(&pool->nused) > 0);
    shr_store_relaxed(&pool->state, POOL_ORPHAN);
    pool->prevpool = 0;
    pool->nextpool = g->orphans[cls];
    g->orphans[cls] = shr__off(h, pool);
    shr_store_relaxed(&pool->owner, 0);
}

/* Recompute nused from the lists (P1), for a pool whose owner died. A list
 * that does not validate is dropped: its blocks leak, the pool stays sound. */
static void recount(shr_heap_t *h, pool_header_t *pool)
{
    uint32_t next = shr_load_relaxed(&pool->nextoffset);
    uint32_t first = pool_first(pool_mem_of(h, pool));
    if (shr_load_relaxed(&pool->state) == POOL_EMPTY) {
        /* Empty: no block of it is in use, whatever its words say. Its owner
         * may have died inside pool_init re-classing it (acquire_pool), the
         * geometry half the new class's and szidx still the old one: counted
         * from those words it could look in use and go on an orphan list
         * with a size that is not its class's. Start afresh. */
        unsigned cls = shr_load_relaxed(&pool->szidx);
        pool_init(h, pool, cls < SHR_NB_PCLASSES ? cls : 0);
        return;
    }
    if (shr_load_relaxed(&pool->szidx) >= SHR_NB_PCLASSES || pool->block_size == 0 || next < first ||
        next > pool_size_of(h, pool)) {
        /* Never initialised (died right after taking it): start afresh. */
        pool_init(h, pool, 0);
        return;
    }
    uint32_t carved = (next - first) / pool->block_size;
    long nfree = shr__pool_list_len(h, pool, shr_load_relaxed(&pool->freeblock));
    if (nfree < 0) {
        shr_store_relaxed(&pool->freeblock, 0);
        nfree = 0;
    }
    shr_store_relaxed(&pool->nused, carved - (uint32_t)nfree);
}

/* Hand a pool whose owner is gone to whoever comes next. Arena lock held;
 * the pool is marked OWNER_LOCKED so that no freer adopts it meanwhile. */
static void orphan_pool(shr_heap_t *h, pool_header_t *pool, bool dead)
{
    /* Leaves this process's threads (at a thread's exit or close): no shadow
     * state stays behind (a dead process's went with it). */
    if (SHR_MEMCHECK && !dead) {
        uint64_t mem = pool_mem_of(h, pool);
        shr__mem_release(h, mem + pool_first(mem), pool_size_of(h, pool) - pool_first(mem));
    }
    shr_store_relaxed(&pool->owner, OWNER_LOCKED);
    if (dead) recount(h, pool);
    for (;;) {
        uint64_t list = take_remote(pool);
        if (list) splice_remote(h, pool, list);
        unsigned cls = shr_load_relaxed(&pool->szidx);
        if (shr_load_relaxed(&pool->nused) == 0) {
            arena_put_pool(h, pool);
            return;
        }
        if (shr_load_relaxed(&pool->freeblock) || shr_load_relaxed(&pool->nextoffset) <= pool->maxnextoffset) {
            orphan_push(h, pool, cls);
            return;
        }
        /* Full: give it up as its owner would have. */
        uint64_t zero = 0;
        if (!atomic_compare_exchange_strong(&pool->remote, &zero, REMOTE_UNOWNED)) continue;
        shr_store_relaxed(&pool->state, POOL_FULL);
        atomic_store(&pool->owner, 0);
        if ((atomic_load(&pool->remote) & ~REMOTE_FLAGS) == 0) return;
        uint32_t z = 0;
        if (!atomic_compare_exchange_strong(&pool->owner, &z, OWNER_LOCKED)) return;
    }
}

typedef void (*pool_visit_fn)(shr_heap_t *, pool_header_t *, void *);

/* Visit every carved pool of arena c (any chunk index: one that is not an
 * arena below the high-water mark is skipped). Arena lock held. fn may
 * release the arena: the walk re-checks the chunk's kind before each pool. */
static void for_arena_pools(shr_heap_t *h, uint64_t c, pool_visit_fn fn, void *arg)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    if (c < g->first_data || c >= shr_load_relaxed(&g->hwm)) return;
    uint32_t k = shr_load_relaxed(&t[c].kind);
    if (k != CHUNK_SMALL && k != CHUNK_MEDIUM) return;
    unsigned shift = arena_pool_shift(h, k);
    uint64_t psize = (uint64_t)1 << shift;
    uint64_t end = t[c].pool_address;
    if (end < chunk_off(c) || end > chunk_off(c + 1)) end = chunk_off(c + 1);
    /* Pool memory in address order (a SMALL arena's page 0 is no pool). */
    for (uint64_t mem = arena_pools_start(chunk_off(c), shift); mem < end && shr_load_relaxed(&t[c].kind) == k;
         mem += psize)
        fn(h, pool_at(h, pool_hdr_of(mem, shift)), arg);
}

/* Visit every carved pool of every arena. Arena lock held. */
static void for_each_pool(shr_heap_t *h, pool_visit_fn fn, void *arg)
{
    uint64_t hwm = shr_load_relaxed(&alloc_global(h)->hwm);
    for (uint64_t c = alloc_global(h)->first_data; c < hwm; c++) for_arena_pools(h, c, fn, arg);
}

static void orphan_if_owned(shr_heap_t *h, pool_header_t *pool, void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    if (shr_load_relaxed(&pool->owner) == id) orphan_pool(h, pool, true);
}

/* The blocks on a released slot's delayed stack go to their pools' remote
 * stacks (from which orphan_pool, an adopter or the owner takes them), and
 * the stack is closed: a freer that finds it closed pushes on the pool's
 * stack itself. A dead slot's stack is read defensively: a link that is not
 * a block of a pool ends the walk (the rest leaks). */
static void delayed_flush(shr_heap_t *h, alloc_tslot_t *ts)
{
    uint64_t b = atomic_exchange_explicit(&ts->delayed, DELAYED_CLOSED, memory_order_acquire);
    uint64_t hwm = shr_load_relaxed(&alloc_global(h)->hwm);
    for (uint64_t steps = 0; b && !(b & DELAYED_CLOSED) && steps < ((uint64_t)1 << 24); steps++) {
        if (b >= h->capacity || (b & (SHR_ALIGNMENT - 1)) || (b >> SHR_CHUNK_SHIFT) >= hwm) break;
        uint32_t kind = shr_load_relaxed(&chunk_table(h)[b >> SHR_CHUNK_SHIFT].kind);
        if (kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) break;
        if ((b & (SHR_ARENA_SIZE - 1)) < SHR_ARENA_META) break;
        uint64_t next = block_next(h, b);
        remote_push(h, pool_at(h, pool_hdr_of(b, arena_pool_shift(h, kind))), b);
        b = next;
    }
}

void shr__alloc_thread_release(shr_heap_t *h, uint32_t slot, bool dead)
{
    if (!alloc_ready(h)) return;
    alloc_global_t *g = alloc_global(h);
    alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, slot);
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return;
    delayed_flush(h, ts);
    if (dead) {
        /* Its lists may be half-spliced: find its pools by owner id, in the
         * arenas it touched (or everywhere, when it touched too many). */
        void *id = (void *)(uintptr_t)(slot + 1);
        if (atomic_load_explicit(&ts->ntouched, memory_order_acquire) > SHR_TOUCHED_MAX)
            for_each_pool(h, orphan_if_owned, id);
        else
            for (uint32_t i = 0; i < SHR_TOUCHED_MAX; i++)
                if (ts->touched[i]) for_arena_pools(h, chunk_index(ts->touched[i]), orphan_if_owned, id);
    } else {
        for (unsigned cls = 0; cls < SHR_NB_PCLASSES; cls++)
            for (uint64_t po = ts->used[cls], next; po; po = next) {
                next = pool_at(h, po)->nextpool;
                orphan_pool(h, pool_at(h, po), false);
            }
        for (uint64_t po = ts->parked, next; po; po = next) {
            next = pool_at(h, po)->nextpool;
            orphan_pool(h, pool_at(h, po), false);
        }
        for (int acls = 0; acls < NB_ARENA_CLASSES; acls++) cache_drain(h, ts, acls, 0);
    }
    for (int acls = 0; acls < NB_ARENA_CLASSES; acls++) {
        ts->cache[acls] = 0;
        ts->ncache[acls] = 0;
        ts->nfills[acls] = 0;
    }
    memset(ts->touched, 0, sizeof ts->touched);
    shr_store_relaxed(&ts->ntouched, 0);
    ts->parked = 0; /* delayed stays closed until the next owner's first drain */
    shr__unlock(h, SHR_LOCK_ARENA);
    int64_t outstanding = (int64_t)shr_load_relaxed(&ts->net);
    for (unsigned cls = 0; cls < SHR_NB_PCLASSES; cls++) ts->used[cls] = 0;
    shr_store_relaxed(&ts->net, 0);
    if (dead) {
        if (outstanding > 0)
            atomic_fetch_add_explicit(&g->dead_outstanding, (uint64_t)outstanding, memory_order_relaxed);
        atomic_fetch_add_explicit(&g->dead_threads, 1, memory_order_relaxed);
    }
}

/* ---- object pools (alloc.h, O1-O3, Y1) --------------------------------------------- */

typedef struct obj_walk {
    shr__obj_visit_fn fn;
    shr__obj_pool_fn pool_fn;
    void *arg;
    unsigned mask; /* young hint bits a pool must have one of; 0: every pool */
} obj_walk_t;

/* An object pool in use: USED, FULL or ORPHAN, of an object class. */
static bool obj_pool_in_use(uint32_t st, unsigned cls)
{
    return (st == POOL_USED || st == POOL_FULL || st == POOL_ORPHAN) && class_is_obj(cls) && cls < SHR_NB_PCLASSES;
}

/* No lock: the caller has stopped every object operation (O3). A pool being
 * re-classed by an ordinary allocation is EMPTY or already carries its new
 * class when its state reads USED (acquire_pool stores the state last, with
 * release), so an object pool in use is never confused with another. */
static void obj_walk_pool(shr_heap_t *h, pool_header_t *pool, void *arg)
{
    const obj_walk_t *w = arg;
    if (w->mask && !(shr_load_relaxed(&pool->young) & w->mask)) return;
    uint32_t st = atomic_load_explicit(&pool->state, memory_order_acquire);
    unsigned cls = shr_load_relaxed(&pool->szidx);
    if (!obj_pool_in_use(st, cls)) return;
    uint32_t size = shr__class_size[cls], end = shr_load_relaxed(&pool->nextoffset);
    uint64_t mem = pool_mem_of(h, pool);
    uint32_t first = pool_first(mem);
    if (end > pool_size_of(h, pool)) end = (uint32_t)pool_size_of(h, pool);
    if (w->pool_fn) {
        shr__obj_pool_t p = {shr__off(h, pool), mem + first, size, end > first ? (end - first) / size : 0,
                             pool_shift(h, shr__off(h, pool))};
        w->pool_fn(h, &p, w->arg);
    }
    for (uint32_t o = first; o + size <= end; o += size)
        if (shr_load_relaxed((_Atomic uint64_t *)(h->base + mem + o)) != 0) w->fn(h, mem + o, size, w->arg);
}

void shr__obj_walk_young(shr_heap_t *h, unsigned mask, shr__obj_pool_fn pool_fn, shr__obj_visit_fn fn, void *arg)
{
    if (!alloc_ready(h) || !fn) return;
    obj_walk_t w = {fn, pool_fn, arg, mask & SHR_OBJ_YOUNG};
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&alloc_global(h)->hwm);
    for (uint64_t c = alloc_global(h)->first_data; c < hwm; c++)
        if (!w.mask || (shr_load_relaxed(&t[c].young) & w.mask)) for_arena_pools(h, c, obj_walk_pool, &w);
}

void shr__obj_walk(shr_heap_t *h, shr__obj_visit_fn fn, void *arg) { shr__obj_walk_young(h, 0, NULL, fn, arg); }

typedef struct young_clear {
    const uint64_t *hdrs;
    size_t n, k;
    uint8_t bits;
    uint8_t any; /* the OR of the arena's pools' hints */
} young_clear_t;

static void young_clear_pool(shr_heap_t *h, pool_header_t *pool, void *arg)
{
    young_clear_t *y = arg;
    uint64_t po = shr__off(h, pool);
    uint8_t v = shr_load_relaxed(&pool->young), nv = v;
    while (y->k < y->n && y->hdrs[y->k] < po) y->k++;
    if (y->k < y->n && y->hdrs[y->k] == po)
        nv = (uint8_t)(v & ~y->bits);
    else if (!obj_pool_in_use(shr_load_relaxed(&pool->state), shr_load_relaxed(&pool->szidx)))
        nv = 0; /* holds no object: a stale hint (only gated object operations, stopped, make one of it) */
    if (nv != v) shr_store_relaxed(&pool->young, nv);
    y->any |= nv;
}

void shr__obj_young_clear(shr_heap_t *h, unsigned mask, const uint64_t *hdrs, size_t n, unsigned bits)
{
    if (!alloc_ready(h)) return;
    mask &= SHR_OBJ_YOUNG;
    young_clear_t y = {hdrs, n, 0, (uint8_t)(bits & SHR_OBJ_YOUNG), 0};
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&alloc_global(h)->hwm);
    for (uint64_t c = alloc_global(h)->first_data; c < hwm; c++) {
        uint32_t k = shr_load_relaxed(&t[c].kind), v = shr_load_relaxed(&t[c].young);
        if ((k != CHUNK_SMALL && k != CHUNK_MEDIUM) || (mask && !(v & mask))) continue; /* the walk's arenas */
        y.any = 0;
        for_arena_pools(h, c, young_clear_pool, &y);
        if (v != y.any) shr_store_relaxed(&t[c].young, y.any);
    }
}

/* Allocated blocks without an object in unowned object pools, and in the
 * calling thread's own (alloc.h). */
typedef struct stray_walk {
    shr__obj_visit_fn fn;
    void *arg;
    uint32_t me;          /* the caller's owner id: its pools are frozen too */
    size_t ndelayed;
    uint64_t delayed[256]; /* the caller's delayed stack (at most one block per parked pool) */
} stray_walk_t;

static void stray_pool(shr_heap_t *h, pool_header_t *pool, void *arg)
{
    const stray_walk_t *w = arg;
    uint32_t st = shr_load_relaxed(&pool->state), owner = shr_load_relaxed(&pool->owner);
    bool mine = owner != 0 && owner == w->me;
    if (mine ? st != POOL_USED && st != POOL_FULL : owner != 0 || (st != POOL_ORPHAN && st != POOL_FULL)) return;
    unsigned cls = shr_load_relaxed(&pool->szidx);
    if (!class_is_obj(cls) || cls >= SHR_NB_PCLASSES || pool->block_size != shr__class_size[cls]) return;
    uint64_t mem = pool_mem_of(h, pool), size = pool->block_size, first = pool_first(mem);
    uint64_t end = shr_load_relaxed(&pool->nextoffset);
    if (end > pool_size_of(h, pool)) end = pool_size_of(h, pool);
    if (end <= first) return;
    uint64_t n = (end - first) / size, bits[64] = {0};
    if (n > 64 * 64) return;
    /* The free blocks: the local free list and the remote stack. A link out
     * of the pool's carved blocks or a cycle (damage): the pool is skipped. */
    uint64_t heads[2] = {shr_load_relaxed(&pool->freeblock), shr_load_relaxed(&pool->remote) & ~REMOTE_FLAGS};
    for (int k = 0; k < 2; k++) {
        uint64_t steps = 0;
        for (uint64_t b = heads[k]; b; b = block_next(h, b)) {
            if (b < mem + first || b >= mem + first + n * size || (b - mem - first) % size || ++steps > n) return;
            uint64_t i = (b - mem - first) / size;
            bits[i / 64] |= (uint64_t)1 << (i % 64);
        }
    }
    /* This thread's own pool: a block on its delayed stack is free too. */
    for (size_t k = 0; mine && k < w->ndelayed; k++) {
        uint64_t b = w->delayed[k];
        if (b >= mem + first && b < mem + first + n * size && (b - mem - first) % size == 0) {
            uint64_t i = (b - mem - first) / size;
            bits[i / 64] |= (uint64_t)1 << (i % 64);
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = mem + first + i * size;
        if (!(bits[i / 64] & ((uint64_t)1 << (i % 64))) && shr_load_relaxed((_Atomic uint64_t *)(h->base + off)) == 0)
            w->fn(h, off, (uint32_t)size, w->arg);
    }
}

void shr__obj_walk_strays(shr_heap_t *h, shr__obj_visit_fn fn, void *arg)
{
    if (!alloc_ready(h) || !fn) return;
    stray_walk_t *w = calloc(1, sizeof *w);
    if (!w) return;
    w->fn = fn;
    w->arg = arg;
    shr_tctx_t *ctx = shr__tctx(h);
    if (ctx) {
        alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
        w->me = my_owner_id(ctx);
        for (uint64_t b = shr_load_relaxed(&ts->delayed) & ~REMOTE_FLAGS; b; b = block_next(h, b))
            if (w->ndelayed == 256) { /* longer than it can be: its own pools are left alone */
                w->me = 0;
                break;
            } else {
                w->delayed[w->ndelayed++] = b;
            }
    }
    if (shr__lock(h, SHR_LOCK_ARENA) == 0) {
        for_each_pool(h, stray_pool, w);
        shr__unlock(h, SHR_LOCK_ARENA);
    }
    free(w);
}

/* ---- repair ------------------------------------------------------------------ */

/* Repair visitor: link unowned pools into the list their state names, and
 * settle pools a crash left in between (taken from an arena but not yet
 * owned, half orphaned, half given up). Owned pools belong to live threads
 * or are found by the dead thread's reclaim. */
static void rebuild_pool(shr_heap_t *h, pool_header_t *pool, void *arg)
{
    (void)arg;
    chunk_t *a = &chunk_table(h)[shr__off(h, pool) >> SHR_CHUNK_SHIFT];
    uint32_t owner = shr_load_relaxed(&pool->owner);
    uint32_t state = shr_load_relaxed(&pool->state);
    uint64_t po = shr__off(h, pool);

    if (owner != 0 && owner != OWNER_LOCKED) return;
    uint32_t want_shift = arena_pool_shift(h, shr_load_relaxed(&a->kind));
    if (pool->shift != want_shift || (state != 0 && shr_load_relaxed(&pool->szidx) >= SHR_NB_PCLASSES)) {
        /* A header a crash left unwritten (or zeroed): an empty pool. */
        pool->shift = (uint8_t)want_shift;
        shr_store_relaxed(&pool->szidx, UINT16_MAX);
        shr_store_relaxed(&pool->remote, 0);
        shr_store_relaxed(&pool->nused, 0);
        state = 0;
    }
    if (owner == 0 && state == POOL_FULL && (shr_load_relaxed(&pool->remote) & REMOTE_UNOWNED)) return;
    if (state != 0 && state != POOL_EMPTY) {
        recount(h, pool);
        uint64_t list = take_remote(pool);
        if (list) splice_remote(h, pool, list);
    }
    if (state == 0 || state == POOL_EMPTY || shr_load_relaxed(&pool->nused) == 0) {
        shr_store_relaxed(&pool->state, POOL_EMPTY);
        shr_store_relaxed(&pool->owner, 0);
        pool->nextpool = a->freepools;
        a->freepools = po;
        a->nfreepools++;
        return;
    }
    unsigned cls = shr_load_relaxed(&pool->szidx);
    if (shr_load_relaxed(&pool->freeblock) || shr_load_relaxed(&pool->nextoffset) <= pool->maxnextoffset) {
        orphan_push(h, pool, cls);
        return;
    }
    /* Full: nobody pushes onto it while owner is 0 and no flag is set, but a
     * pusher may race this store; then the next free adopts it. */
    shr_store_relaxed(&pool->state, POOL_FULL);
    atomic_fetch_or(&pool->remote, REMOTE_UNOWNED);
    atomic_store(&pool->owner, 0);
}

/* Rebuild every list the arena lock guards from the truths: chunk kinds,
 * pool headers, pool_address. Idempotent. */
int shr__alloc_repair(shr_heap_t *h)
{
    if (!alloc_ready(h)) return 0;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    shr__chunk_rebuild(h);
    memset(g->orphans, 0, sizeof g->orphans);
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    for (int k = 0; k < NB_ARENA_CLASSES; k++) {
        g->ac[k].usable = 0;
        g->ac[k].narenas = 0;
        g->ac[k].nempty = 0;
        memset(g->ac[k].nfp2lasta, 0, sizeof g->ac[k].nfp2lasta);
    }
    for (uint64_t c = g->first_data; c < hwm; c++) {
        uint32_t k = shr_load_relaxed(&t[c].kind);
        if (k != CHUNK_SMALL && k != CHUNK_MEDIUM) continue;
        arena_class_t *ac = &g->ac[k == CHUNK_SMALL ? AC_SMALL : AC_MEDIUM];
        uint64_t end = t[c].pool_address;
        uint64_t start = arena_pools_start(chunk_off(c), ac->shift); /* the first pool */
        if (end < start || end > chunk_off(c + 1) || (end - chunk_off(c)) % ((uint64_t)1 << ac->shift))
            end = chunk_off(c + 1); /* cannot trust it: treat all as carved */
        t[c].pool_address = end;
        t[c].ntotalpools = ac->npools;
        t[c].nfreepools = (uint32_t)((chunk_off(c + 1) - end) >> ac->shift);
        t[c].freepools = 0;
        t[c].next = t[c].prev = 0;
        ac->narenas++;
    }
    for_each_pool(h, rebuild_pool, NULL);
    /* usable_arenas: every arena with a free pool, sorted by nfreepools. */
    for (int k = 0; k < NB_ARENA_CLASSES; k++) {
        arena_class_t *ac = &g->ac[k];
        uint32_t want = k == AC_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM;
        uint64_t tail = 0;
        for (uint32_t nf = 1; nf <= ac->npools; nf++) {
            for (uint64_t c = g->first_data; c < hwm; c++) {
                if (shr_load_relaxed(&t[c].kind) != want || t[c].nfreepools != nf) continue;
                t[c].prev = tail;
                t[c].next = 0;
                if (tail) chunk_at_ref(h, tail)->next = chunk_ref(c);
                else ac->usable = chunk_ref(c);
                tail = chunk_ref(c);
                ac->nfp2lasta[nf] = chunk_ref(c);
                if (nf == ac->npools) ac->nempty++;
            }
        }
    }
    shr__arena_release_empty(h, SHR_ARENA_KEEP_EMPTY); /* A3 */
    return 0;
}
