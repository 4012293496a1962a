/* Heap check
 *
 * shr_heap_check verifies every invariant it can see, with bounds-checked
 * walks (a list that leaves its pool, misaligns or cycles is reported, never
 * followed). Every index and offset read from the segment is bounds-checked
 * before use, starting with the bounds the walks rely on (check_globals):
 * a damaged heap is reported, never walked past its table. It takes the
 * registry lock for the free thread slots, 64 slots per hold, then the arena
 * lock (and the large lock for the large chunks) for each structure that
 * spans arenas (the chunk table and its run lists, each usable list, the
 * orphan lists, the large chunks) in steps of CHECK_STEP entries ("steps"
 * below), then the arena lock once per arena for its pools; between two
 * holds a waiter goes first (shr__unlock_step). No hold is longer than one
 * step or one arena, whatever the heap's size; pools owned by other live threads
 * change under it, so for those only a snapshot of header fields is checked
 * (state, owner, the remote-stack top and the geometry their freers trust).
 * Pools owned by the calling thread, orphans and empty pools are checked in
 * full (P1, P2). Each message starts with the invariant it breaks.
 *
 * What is checked:
 *   C1/C2  chunk table: kinds, run tags, free runs maximal and listed once
 *   A1     arenas: pool_address, freepools (all EMPTY), nfreepools
 *   A2     usable_arenas: exactly the arenas with a free pool, sorted by
 *          nfreepools, nfp2lasta[n] the rightmost with n
 *   P1-P3  pools (see alloc.h); orphan lists hold ORPHAN pools of their class;
 *          a FREE thread slot's allocator region is all zero
 *   LR1    large chunks: runs tile pages 1..63, tags agree, free runs listed,
 *          bitmap and free page counts agree, pages in use are committed,
 *          free committed pages add up to large_dirty
 *   H1     huge runs: tail chunks point back to their head
 *   G1     guard bytes of the blocks in fully checked pools (SHR_HEAP_GUARDS)
 *   RT1    roots: names terminated, offsets inside the heap
 *   RT2    a root holding a reference names an allocated block whose object
 *          passes its layer's check (list/: header, lengths, items)
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <string.h>

#include "alloc.h"

typedef struct checker {
    shr_heap_t *h;
    FILE *out;
    int errors;
    uint32_t me;        /* calling thread's owner id, 0 if none */
    bool no_guards;     /* a validator inside malloc: guards not yet written */
    uint8_t *listed;    /* per chunk: seen on a free run list / usable list */
    /* Steps (check_step): set by shr__alloc_check for the walks of what
     * spans arenas; a validator holds its lock throughout (stepping false). */
    bool stepping;      /* the walks may let the locks go between steps */
    bool large;         /* the large lock is held too (taken first) */
    bool locked;        /* the locks are held (false: a relock failed) */
    int lock_rc;        /* that failure */
    uint32_t visited;   /* entries visited in this hold */
} checker_t;

/* ---- steps ---------------------------------------------------------------------- *
 *
 * A walk of a structure that spans arenas (the chunk table, a free run list,
 * a usable list, an orphan list, the large chunks) lets its locks go every
 * CHECK_STEP entries (shr__unlock_step: a waiter goes first) and takes them
 * again. Whether anyone else held them meanwhile is read from the locks'
 * acquisition counts (shm_lock_t.nacquired, counted under the lock): if
 * nobody did, nothing changed and the walk goes on as if it had held them
 * throughout. If someone did, check_step says so: a walk of the table
 * resynchronises at the next run head (each run's checks are its own); a
 * walk of a list starts again from its head (a link read before the change
 * may lead anywhere), up to CHECK_TRIES times; and the checks that relate
 * one whole structure to another (every free run on one list, the usable
 * list holding exactly the arenas with a free pool, the counts of free large
 * runs and dirty pages) are made only over a walk that saw no change, and
 * skipped otherwise (nothing is reported from a walk the heap changed
 * under). So no hold is longer than CHECK_STEP entries, whatever the heap's
 * size, and a heap that changes all the time is checked entry by entry. */
#define CHECK_STEP 2048u
#define CHECK_TRIES 3
/* What a walk that reads a page of its own per entry (an orphan pool's
 * header, a large chunk's page map) counts per entry: 32 such pages per
 * hold, so that a process that has not touched them yet (the sharena tool)
 * takes at most 32 page faults inside one hold (measured: 256 of them held
 * the lock 0.86 ms). */
#define CHECK_PAGE_COST 64u

/* For tests: set the step (0: CHECK_STEP), process-wide. Declared here and
 * by the tests that use it. */
void shr__alloc_check_step(uint32_t n);
static _Atomic uint32_t check_step_entries = CHECK_STEP;
void shr__alloc_check_step(uint32_t n) { atomic_store(&check_step_entries, n ? n : CHECK_STEP); }

static bool globals_sound(checker_t *k);

static uint64_t nacquired(shr_heap_t *h, shr_lock_id_t id)
{
    return atomic_load_explicit(&h->hdr->locks[id].nacquired, memory_order_relaxed);
}

/* Count `cost` entries visited; at CHECK_STEP, let the locks go and take
 * them again. true: nothing changed (or no step was taken). false: the heap
 * changed meanwhile (the bounds are sound again: re-read them), or the
 * locks could not be had (k->locked false: stop). */
static bool check_step(checker_t *k, uint32_t cost)
{
    if (!k->stepping || (k->visited += cost) < shr_load_relaxed(&check_step_entries)) return true;
    shr_heap_t *h = k->h;
    k->visited = 0;
    uint64_t na = nacquired(h, SHR_LOCK_ARENA), nl = k->large ? nacquired(h, SHR_LOCK_LARGE) : 0;
    shr__unlock_step(h, SHR_LOCK_ARENA);
    if (k->large) shr__unlock_step(h, SHR_LOCK_LARGE);
    if (k->large && (k->lock_rc = shr__lock(h, SHR_LOCK_LARGE)) != 0) {
        k->locked = false;
        return false;
    }
    if ((k->lock_rc = shr__lock(h, SHR_LOCK_ARENA)) != 0) {
        if (k->large) shr__unlock(h, SHR_LOCK_LARGE);
        k->locked = false;
        return false;
    }
    if (nacquired(h, SHR_LOCK_ARENA) == na + 1 && (!k->large || nacquired(h, SHR_LOCK_LARGE) == nl + 1))
        return true;
    if (!globals_sound(k)) {
        /* Bounds gone bad meanwhile: stop here (the next check reports it). */
        shr__unlock(h, SHR_LOCK_ARENA);
        if (k->large) shr__unlock(h, SHR_LOCK_LARGE);
        k->locked = false;
        k->lock_rc = 0;
    }
    return false;
}

__attribute__((format(printf, 2, 3))) static void fail(checker_t *k, const char *fmt, ...)
{
    k->errors++;
    if (!k->out) return;
    va_list ap;
    fprintf(k->out, "sharena check: ");
    va_start(ap, fmt);
    vfprintf(k->out, fmt, ap);
    va_end(ap);
    fputc('\n', k->out);
}

/* ---- the globals every walk below relies on ------------------------------------ */

/* The allocator's own copies of the header's geometry, and the arena class
 * shapes: every bound the walks use comes from here, so they are checked
 * first and nothing else is read when one is wrong. */
static bool check_globals(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    if (g->nchunks != h->capacity >> SHR_CHUNK_SHIFT || g->first_data != h->hdr->meta_size >> SHR_CHUNK_SHIFT) {
        fail(k, "C1: chunk count %" PRIu64 " or first data chunk %" PRIu64 " disagrees with the header",
             g->nchunks, g->first_data);
        return false;
    }
    if (hwm < g->first_data || hwm > g->nchunks || g->table_committed > g->nchunks || g->table_committed < hwm) {
        fail(k, "C1: high-water mark %" PRIu64 " or committed table %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]",
             hwm, g->table_committed, g->first_data, g->nchunks);
        return false;
    }
    /* The geometry the heap's flags choose (SHR_HEAP_POOLS_16K). */
    const uint32_t shifts[NB_ARENA_CLASSES] = {h->pool_shift[CHUNK_SMALL], h->pool_shift[CHUNK_MEDIUM]};
    for (int a = 0; a < NB_ARENA_CLASSES; a++)
        if (g->ac[a].shift != shifts[a] || g->ac[a].npools != arena_npools(shifts[a])) {
            fail(k, "A1: arena class %d: pool shift %u, %u pools per arena", a, g->ac[a].shift, g->ac[a].npools);
            return false;
        }
    return true;
}

/* Whether po names a carved pool: in a SMALL or MEDIUM chunk below the
 * high-water mark, on a pool boundary, below the arena's pool_address. */
static bool pool_ref_ok(checker_t *k, uint64_t po)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    if (po >= h->capacity) return false;
    uint64_t c = po >> SHR_CHUNK_SHIFT;
    if (c < g->first_data || c >= shr_load_relaxed(&g->hwm)) return false;
    chunk_t *a = &chunk_table(h)[c];
    uint32_t kind = shr_load_relaxed(&a->kind);
    if (kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) return false;
    /* A header in page 0, of a pool that has been carved. */
    uint64_t rel = po - chunk_off(c);
    if (rel >= SHR_ARENA_META || rel % SHR_POOL_OVERHEAD || (kind == CHUNK_SMALL && rel == 0)) return false;
    return pool_mem(po, arena_pool_shift(h, kind)) < a->pool_address;
}

/* ---- chunks ------------------------------------------------------------------- */

static bool is_run_tail(uint32_t kind)
{
    return kind == CHUNK_UNUSED || kind == CHUNK_FREE_TAIL || kind == CHUNK_HUGE_TAIL;
}

/* C2 over one unchanged span: every free run list, then every free run
 * head on exactly one. false: the heap changed (or the locks are gone)
 * before the end; what was reported holds, the rest was not checked. */
static bool check_run_lists(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&g->hwm), steps = 0;
    memset(k->listed, 0, (h->capacity >> SHR_CHUNK_SHIFT) + 1);
    for (int l = 0; l < SHR_NRUNLISTS; l++) {
        uint64_t prev = 0;
        for (uint64_t r = g->runs[l]; r; prev = r, r = chunk_at_ref(h, r)->next) {
            if (!check_step(k, 1)) return false;
            if (++steps > g->nchunks || r - 1 >= hwm) {
                fail(k, "C2: free run list %d broken", l);
                break;
            }
            uint64_t c = chunk_index(r);
            if (shr_load_relaxed(&t[c].kind) != CHUNK_FREE) fail(k, "C2: free run list %d holds chunk %" PRIu64 " of kind %u", l, c, shr_load_relaxed(&t[c].kind));
            if (t[c].prev != prev) fail(k, "C2: free run list %d: back link of chunk %" PRIu64 " wrong", l, c);
            if (k->listed[c]++) fail(k, "C2: chunk %" PRIu64 " listed twice", c);
        }
    }
    for (uint64_t c = g->first_data; c < hwm; c++) {
        if (!check_step(k, 1)) return false;
        if (shr_load_relaxed(&t[c].kind) == CHUNK_FREE && !k->listed[c]) fail(k, "C2: free run at chunk %" PRIu64 " on no list", c);
    }
    return true;
}

static void check_chunks(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&g->hwm); /* bounds checked by check_globals */
    for (uint64_t c = 0; c < g->first_data; c++)
        if (shr_load_relaxed(&t[c].kind) != CHUNK_META) fail(k, "C1: chunk %" PRIu64 ": metadata chunk has kind %u", c, shr_load_relaxed(&t[c].kind));
    bool prev_free = false;
    for (uint64_t c = g->first_data; c < hwm;) {
        if (!check_step(k, 1)) {
            if (!k->locked) return;
            /* Changed meanwhile: the run c was in may be gone; go on from
             * the next run head, against the table as it is now. */
            hwm = shr_load_relaxed(&g->hwm);
            prev_free = false;
            while (c < hwm && is_run_tail(shr_load_relaxed(&t[c].kind))) c++;
            continue;
        }
        uint32_t kind = shr_load_relaxed(&t[c].kind);
        uint64_t n = 1;
        switch (kind) {
        case CHUNK_FREE:
            n = t[c].run;
            if (n == 0 || c + n > hwm) {
                fail(k, "C1: chunk %" PRIu64 ": free run of %" PRIu64 " chunks overruns", c, n);
                return;
            }
            if (prev_free) fail(k, "C1: chunk %" PRIu64 ": free run not coalesced with its left neighbour", c);
            if (n > 1 && (shr_load_relaxed(&t[c + n - 1].kind) != CHUNK_FREE_TAIL || t[c + n - 1].run != n))
                fail(k, "C1: chunk %" PRIu64 ": free run tail tag wrong", c);
            for (uint64_t i = c + 1; i + 1 < c + n; i++)
                if (shr_load_relaxed(&t[i].kind) != CHUNK_UNUSED) fail(k, "C1: chunk %" PRIu64 ": inside a free run but kind %u", i, shr_load_relaxed(&t[i].kind));
            k->visited += (uint32_t)(n < CHECK_STEP ? n : CHECK_STEP) - 1;
            break;
        case CHUNK_SMALL:
        case CHUNK_MEDIUM:
        case CHUNK_LARGE:
            break;
        case CHUNK_HUGE:
            n = t[c].run;
            if (n == 0 || c + n > hwm) {
                fail(k, "H1: chunk %" PRIu64 ": huge run of %" PRIu64 " chunks overruns", c, n);
                return;
            }
            if ((uint64_t)t[c].pages > n * SHR_PAGES_PER_CHUNK || t[c].pages == 0)
                fail(k, "H1: chunk %" PRIu64 ": huge block commits %u pages in %" PRIu64 " chunks", c, t[c].pages, n);
            for (uint64_t i = 1; i < n; i++)
                if (shr_load_relaxed(&t[c + i].kind) != CHUNK_HUGE_TAIL || t[c + i].run != i)
                    fail(k, "H1: chunk %" PRIu64 ": huge tail does not point back to %" PRIu64, c + i, c);
            k->visited += (uint32_t)(n < CHECK_STEP ? n : CHECK_STEP) - 1;
            break;
        default:
            fail(k, "C1: chunk %" PRIu64 ": kind %u below the high-water mark", c, kind);
        }
        prev_free = kind == CHUNK_FREE;
        c += n;
    }
    /* Every free run on exactly one list, each list entry a free run head:
     * over a span in which nothing changed. */
    for (int tries = 0; tries < CHECK_TRIES && k->locked; tries++) {
        int before = k->errors;
        if (check_run_lists(k) || k->errors != before) break;
    }
}

/* ---- pools ------------------------------------------------------------------ */

/* Whether block b is on the delayed stack of the pool's owner (alloc.h:
 * freed by another thread into a parked pool, linked through the bytes a
 * guarded block keeps its leading guard in). Bounded and defensive. */
static bool on_delayed_stack(shr_heap_t *h, const pool_header_t *p, uint64_t b)
{
    uint32_t ow = shr_load_relaxed(&((pool_header_t *)p)->owner);
    if (ow == 0 || ow > h->max_threads) return false;
    alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, ow - 1);
    uint64_t d = shr_load_acquire(&ts->delayed);
    for (uint32_t steps = 0; d && !(d & DELAYED_CLOSED) && d < h->capacity && steps < 1u << 20; steps++) {
        if (d == b) return true;
        d = block_next(h, d);
    }
    return false;
}

static void check_guards(checker_t *k, pool_header_t *p)
{
    shr_heap_t *h = k->h;
    uint64_t po = pool_mem(shr__off(h, p), p->shift), first = pool_first(po); /* shift checked by the caller */
    uint32_t next = shr_load_relaxed(&p->nextoffset);
    /* Mark free blocks, then every other carved block is allocated. */
    uint8_t freemap[((1u << SHR_MEDIUM_POOL_SHIFT) / SHR_ALIGNMENT) / 8 + 1];
    memset(freemap, 0, sizeof freemap);
    for (uint64_t b = shr_load_relaxed(&p->freeblock); b; b = block_next(h, b)) {
        uint32_t i = (uint32_t)((b - po - first) / p->block_size);
        freemap[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (uint32_t off = (uint32_t)first, i = 0; off < next; off += p->block_size, i++) {
        if (freemap[i / 8] & (1u << (i % 8))) continue;
        uint64_t n;
        if (!guard_intact(h->base + po + off, p->block_size, &n) && !on_delayed_stack(h, p, po + off))
            fail(k, "G1: block at offset %" PRIu64 ": guard bytes damaged", po + off);
    }
}

/* An owned pool's owner is a LIVE thread slot. Arena lock held: a slot's
 * release orphans its pools under that lock before the slot goes FREE, so
 * a pool owned by a FREE slot (or by no slot at all) is damage, which the
 * slot's next claimer would trust. */
static void owner_is_live(checker_t *k, uint64_t po, uint32_t owner)
{
    if (owner == 0) return;
    if (owner > k->h->max_threads || shr_load_relaxed(&shr__thread_slot(k->h, owner - 1)->state) != SHR_ENTRY_LIVE)
        fail(k, "P3: pool %" PRIu64 ": owned by slot %u, which is not a live thread slot", po, owner - 1);
}

/* Whether a pool header's shift (a word from the segment) is psize's: range
 * checked before it is ever shifted by. */
static bool shift_is(uint16_t shift, uint64_t psize) { return shift < 64 && ((uint64_t)1 << shift) == psize; }

static void check_pool(checker_t *k, pool_header_t *p, uint64_t psize)
{
    shr_heap_t *h = k->h;
    uint64_t po = shr__off(h, p);
    /* The pool's memory and first block, from where its header sits. */
    uint64_t mem = pool_mem(po, (unsigned)__builtin_ctzll(psize));
    uint32_t first = pool_first(mem);
    uint32_t state = shr_load_relaxed(&p->state), owner = shr_load_relaxed(&p->owner), cls = shr_load_relaxed(&p->szidx);
    if (state == POOL_EMPTY) {
        /* owner != 0: in that thread's cache of empty pools. */
        if (shr_load_relaxed(&p->nused) != 0) fail(k, "P3: pool %" PRIu64 ": empty with %u blocks in use", po, shr_load_relaxed(&p->nused));
    } else if (state < POOL_EMPTY || state > POOL_ORPHAN) {
        fail(k, "P3: pool %" PRIu64 ": state %u", po, state);
        return;
    }
    if (cls == UINT16_MAX && state == POOL_EMPTY) return;
    /* Stable: nobody changes the pool under us (unowned and listed under the
     * arena lock we hold, or ours). Other owners re-initialise their pools
     * without a lock: only their atomic fields can be read. */
    bool stable = (owner == 0 && (state == POOL_EMPTY || state == POOL_ORPHAN)) ||
                  (owner != 0 && owner == k->me);
    if (!stable) {
        /* Live owners and adopters change these words without a lock: a rule
         * over several of them holds only for a snapshot, taken here as
         * remote, state, owner, remote again (every adoption and give-up
         * changes the remote word in between). */
        uint64_t r1 = atomic_load_explicit(&p->remote, memory_order_acquire);
        uint32_t st = shr_load_acquire(&p->state), ow = shr_load_relaxed(&p->owner);
        uint64_t r2 = atomic_load_explicit(&p->remote, memory_order_acquire);
        if (r1 != r2) return;
        owner_is_live(k, po, ow);
        cls = shr_load_relaxed(&p->szidx);
        if ((st == POOL_USED || st == POOL_FULL) && cls < SHR_NB_PCLASSES) {
            /* Written once when the pool got its class (before the release
             * store of USED): what remote freers and adopters trust. */
            uint32_t size = shr__class_size[cls];
            if (__atomic_load_n(&p->block_size, __ATOMIC_RELAXED) != size ||
                __atomic_load_n(&p->capacity, __ATOMIC_RELAXED) != (psize - first) / size ||
                !shift_is(p->shift, psize))
                fail(k, "P2: pool %" PRIu64 ": geometry does not match class %u", po, cls);
            /* The remote stack's top, which the owner's next splice follows. */
            uint64_t top = r1 & ~REMOTE_FLAGS;
            if (top && (top < mem + first || top - mem - first >= (uint64_t)size * ((psize - first) / size) ||
                        (top - mem - first) % size))
                fail(k, "P2: pool %" PRIu64 ": remote free stack starts at %" PRIu64 ", not a block of the pool", po, top);
        }
        if (cls >= SHR_NB_PCLASSES && st != POOL_EMPTY) fail(k, "P3: pool %" PRIu64 ": size class %u", po, cls);
        if (st == POOL_USED && ow == 0 && shr_load_relaxed(&p->state) == POOL_USED && shr_load_relaxed(&p->owner) == 0)
            fail(k, "P3: pool %" PRIu64 ": used but owned by nobody", po);
        if (st == POOL_FULL && ow == 0 && !(r1 & REMOTE_UNOWNED))
            fail(k, "P3: pool %" PRIu64 ": full and unowned without the unowned flag", po);
        return;
    }
    if (cls >= SHR_NB_PCLASSES) {
        fail(k, "P3: pool %" PRIu64 ": size class %u", po, cls);
        return;
    }
    if (p->block_size != shr__class_size[cls] || p->capacity != (psize - first) / p->block_size ||
        !shift_is(p->shift, psize)) {
        fail(k, "P2: pool %" PRIu64 ": geometry does not match class %u", po, cls);
        return;
    }
    uint32_t next = shr_load_relaxed(&p->nextoffset);
    if (next < first || next > psize || (next - first) % p->block_size ||
        p->maxnextoffset != first + (p->capacity - 1) * p->block_size) {
        fail(k, "P2: pool %" PRIu64 ": nextoffset %u out of range", po, next);
        return;
    }
    if (state == POOL_ORPHAN && owner != 0) fail(k, "P3: pool %" PRIu64 ": orphan owned by %u", po, owner);
    owner_is_live(k, po, owner);
    if (state == POOL_USED && owner == 0) fail(k, "P3: pool %" PRIu64 ": used but owned by nobody", po);
    if (state == POOL_FULL && owner == 0 && !(shr_load_relaxed(&p->remote) & REMOTE_UNOWNED))
        fail(k, "P3: pool %" PRIu64 ": full and unowned without the unowned flag", po);
    if (shr_load_relaxed(&p->nused) > p->capacity) fail(k, "P1: pool %" PRIu64 ": %u blocks in use of %u", po, shr_load_relaxed(&p->nused), p->capacity);
    long nlocal = shr__pool_list_len(h, p, shr_load_relaxed(&p->freeblock));
    if (nlocal < 0) {
        fail(k, "P2: pool %" PRIu64 ": local free list leaves the pool, misaligns or cycles", po);
        return;
    }
    uint64_t r = atomic_load_explicit(&p->remote, memory_order_acquire) & ~REMOTE_FLAGS;
    long nremote = r ? shr__pool_list_len(h, p, r) : 0;
    if (nremote < 0) {
        fail(k, "P2: pool %" PRIu64 ": remote free stack leaves the pool, misaligns or cycles", po);
        return;
    }
    /* O2: the free blocks of an object pool read 0 at bytes 0..7. */
    if (class_is_obj(cls))
        for (uint64_t b = shr_load_relaxed(&p->freeblock); b; b = block_next(h, b))
            if (*(const uint64_t *)(h->base + b) != 0) {
                fail(k, "O2: object pool %" PRIu64 ": free block %" PRIu64 " has a nonzero refcount word", po, b);
                break;
            }
    uint32_t carved = (next - first) / p->block_size;
    if (state != POOL_EMPTY && carved - nlocal - nremote != shr_load_relaxed(&p->nused) && r == 0)
        fail(k, "P1: pool %" PRIu64 ": nused %u but %ld carved - %ld free", po, shr_load_relaxed(&p->nused), (long)carved, nlocal);
    if (h->hdr->flags & SHR_HEAP_GUARDS && r == 0 && !k->no_guards) check_guards(k, p);
}

static void check_arena(checker_t *k, uint64_t c)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    chunk_t *a = &chunk_table(h)[c];
    int acls = shr_load_relaxed(&a->kind) == CHUNK_SMALL ? AC_SMALL : AC_MEDIUM;
    arena_class_t *ac = &g->ac[acls];
    uint64_t psize = (uint64_t)1 << ac->shift, end = a->pool_address;
    uint64_t start = arena_pools_start(chunk_off(c), ac->shift); /* the first pool's memory */
    if (end < start || end > chunk_off(c + 1) || (end - chunk_off(c)) % psize) {
        fail(k, "A1: arena %" PRIu64 ": pool_address %" PRIu64 " out of range", c, end);
        return;
    }
    if (a->ntotalpools != ac->npools) fail(k, "A1: arena %" PRIu64 ": %u pools, expected %u", c, a->ntotalpools, ac->npools);
    uint32_t empty = 0;
    for (uint64_t po = a->freepools; po; po = pool_at(h, po)->nextpool) {
        if (!pool_ref_ok(k, po) || po >> SHR_CHUNK_SHIFT != c || ++empty > ac->npools) {
            fail(k, "A1: arena %" PRIu64 ": freepools list broken", c);
            break;
        }
        if (shr_load_relaxed(&pool_at(h, po)->state) != POOL_EMPTY || shr_load_relaxed(&pool_at(h, po)->owner) != 0)
            fail(k, "A1: arena %" PRIu64 ": pool %" PRIu64 " on freepools is not empty and unowned", c, po);
    }
    uint32_t untouched = (uint32_t)((chunk_off(c + 1) - end) / psize);
    if (a->nfreepools != empty + untouched)
        fail(k, "A1: arena %" PRIu64 ": nfreepools %u, but %u empty + %u untouched", c, a->nfreepools, empty, untouched);
    uint32_t nempty_state = 0;
    for (uint64_t mem = start; mem < end; mem += psize) {
        uint64_t po = pool_hdr_of(mem, ac->shift);
        check_pool(k, pool_at(h, po), psize);
        nempty_state += shr_load_relaxed(&pool_at(h, po)->state) == POOL_EMPTY && shr_load_relaxed(&pool_at(h, po)->owner) == 0;
    }
    if (nempty_state != empty) fail(k, "A1: arena %" PRIu64 ": %u empty pools, %u on freepools", c, nempty_state, empty);
}

/* A2 over one span; false: changed before the end (see check_step). */
static bool usable_walk(checker_t *k, int acls)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    arena_class_t *ac = &g->ac[acls];
    uint32_t want = acls == AC_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM;
    uint64_t steps = 0, prev = 0, hwm = shr_load_relaxed(&g->hwm), count = 0, nempty = 0;
    uint32_t last_nf = 0;
    for (uint64_t a = ac->usable; a; prev = a, a = chunk_at_ref(h, a)->next) {
        if (!check_step(k, 1)) return false;
        if (a - 1 >= hwm || a - 1 < g->first_data || ++steps > g->nchunks ||
            shr_load_relaxed(&chunk_at_ref(h, a)->kind) != want) {
            fail(k, "A2: usable_arenas (class %d) broken at chunk %" PRIu64, acls, a - 1);
            return true;
        }
        chunk_t *ar = chunk_at_ref(h, a);
        if (ar->nfreepools == 0 || ar->nfreepools > ac->npools) {
            fail(k, "A2: usable_arenas (class %d): arena %" PRIu64 " has %u free pools of %u", acls, a - 1,
                 ar->nfreepools, ac->npools);
            return true;
        }
        if (ar->prev != prev) fail(k, "A2: usable_arenas: back link of arena %" PRIu64 " wrong", a - 1);
        if (ar->nfreepools < last_nf) fail(k, "A2: usable_arenas not sorted at arena %" PRIu64, a - 1);
        uint64_t nx = ar->next;
        if (nx && (nx - 1 >= hwm || nx - 1 < g->first_data)) {
            fail(k, "A2: usable_arenas (class %d): arena %" PRIu64 " links to chunk %" PRIu64 " outside the heap",
                 acls, a - 1, nx - 1);
            return true;
        }
        bool rightmost = !nx || chunk_at_ref(h, nx)->nfreepools != ar->nfreepools;
        if (rightmost && ac->nfp2lasta[ar->nfreepools] != a)
            fail(k, "A2: nfp2lasta[%u] is not arena %" PRIu64, ar->nfreepools, a - 1);
        last_nf = ar->nfreepools;
        count++;
        nempty += ar->nfreepools == ac->npools;
    }
    if (nempty != ac->nempty || nempty > SHR_ARENA_KEEP_EMPTY)
        fail(k, "A3: usable_arenas (class %d) holds %" PRIu64 " empty arenas, nempty says %" PRIu64 " (kept at most %d)",
             acls, nempty, ac->nempty, SHR_ARENA_KEEP_EMPTY);
    uint64_t with_free = 0;
    for (uint64_t c = g->first_data; c < hwm; c++) {
        if (!check_step(k, 1)) return false;
        if (shr_load_relaxed(&t[c].kind) == want && t[c].nfreepools > 0) with_free++;
    }
    if (with_free != count) fail(k, "A2: usable_arenas (class %d) lists %" PRIu64 " of %" PRIu64 " arenas with free pools", acls, count, with_free);
    return true;
}

static void check_usable(checker_t *k, int acls)
{
    for (int tries = 0; tries < CHECK_TRIES; tries++) {
        int before = k->errors;
        if (usable_walk(k, acls) || !k->locked || k->errors != before) return;
    }
}


static void check_orphans(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    for (unsigned cls = 0; cls < SHR_NB_PCLASSES && k->locked; cls++) {
        uint64_t steps = 0;
        int tries = 0;
    again:
        steps = 0;
        for (uint64_t po = g->orphans[cls]; po; po = pool_at(h, po)->nextpool) {
            if (!check_step(k, CHECK_PAGE_COST)) { /* a pool header each: a page fault when cold */
                if (k->locked && ++tries < CHECK_TRIES) goto again;
                break;
            }
            if (!pool_ref_ok(k, po) || ++steps > g->nchunks * SHR_MAX_POOLS_IN_ARENA) {
                fail(k, "P3: orphan list of class %u broken at offset %" PRIu64, cls, po);
                break;
            }
            pool_header_t *p = pool_at(h, po);
            if (shr_load_relaxed(&p->state) != POOL_ORPHAN || shr_load_relaxed(&p->szidx) != cls)
                fail(k, "P3: orphan list of class %u holds pool %" PRIu64 " (state %u, class %u)", cls, po, shr_load_relaxed(&p->state), shr_load_relaxed(&p->szidx));
        }
    }
}

static void check_own_lists(checker_t *k)
{
    shr_heap_t *h = k->h;
    shr_tctx_t *ctx = shr__tl_ctx;
    if (!ctx || atomic_load_explicit(&ctx->heap, memory_order_relaxed) != h) return;
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    for (unsigned cls = 0; cls < SHR_NB_PCLASSES; cls++) {
        uint64_t steps = 0, prev = 0;
        for (uint64_t po = ts->used[cls]; po; prev = po, po = pool_at(h, po)->nextpool) {
            if (!pool_ref_ok(k, po) || ++steps > alloc_global(h)->nchunks * SHR_MAX_POOLS_IN_ARENA) {
                fail(k, "P3: this thread's used list of class %u broken at offset %" PRIu64, cls, po);
                break;
            }
            pool_header_t *p = pool_at(h, po);
            if (shr_load_relaxed(&p->owner) != k->me || shr_load_relaxed(&p->state) != POOL_USED || shr_load_relaxed(&p->szidx) != cls || p->prevpool != prev)
                fail(k, "P3: this thread's used list of class %u holds pool %" PRIu64 " wrongly", cls, po);
        }
    }
}

/* FREE thread slots' allocator regions are all zero: thread_release resets
 * them, and the next claim starts from what is there. Slots [from, to).
 * Registry lock held (claims and releases happen under it, so the regions
 * are stable). */
#define CHECK_SLOT_STEP 64u

static void check_free_slots(checker_t *k, uint32_t from, uint32_t to)
{
    shr_heap_t *h = k->h;
    static const alloc_tslot_t zero;
    for (uint32_t s = from; s < to; s++) {
        /* A slot never claimed may be uncommitted (zero): reading would
         * commit it (shm.h, shr__seg_resident). */
        if (!shr__seg_resident(h, shr__thread_slot(h, s))) continue;
        if (shr_load_relaxed(&shr__thread_slot(h, s)->state) != SHR_ENTRY_FREE) continue;
        alloc_tslot_t *ts = shr__seg_thread_area(h, SHR_LAYER_ALLOC, s);
        if (!shr__seg_resident(h, ts) || !shr__seg_resident(h, (const char *)(ts + 1) - 1)) continue;
        /* The atomic counter is read on its own, the rest as bytes. */
        if (shr_load_relaxed(&ts->net) != 0 || memcmp(ts, &zero, offsetof(alloc_tslot_t, net)) != 0)
            fail(k, "P3: thread slot %u is free but its allocator region was not reset", s);
    }
}

/* ---- large ------------------------------------------------------------------- */

/* LR1 over one span; false: changed before the end (see check_step). */
static bool large_walk(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&g->hwm), nfree_runs = 0, dirty = 0;
    for (uint64_t c = g->first_data; c < hwm; c++) {
        if (!check_step(k, 1)) return false;
        if (shr_load_relaxed(&t[c].kind) != CHUNK_LARGE) continue;
        k->visited += CHECK_PAGE_COST; /* a page map: a page fault when cold */
        large_header_t *lh = (large_header_t *)(h->base + chunk_off(c));
        if (lh->magic != SHR_LARGE_MAGIC) {
            fail(k, "LR1: large chunk %" PRIu64 ": bad magic", c);
            continue;
        }
        uint32_t free_pages = 0;
        bool prev_free = false;
        for (uint32_t p = 1; p < SHR_PAGES_PER_CHUNK;) {
            page_entry_t *e = &lh->page[p];
            if (e->run == 0 || p + e->run > SHR_PAGES_PER_CHUNK || (e->state != RUN_FREE && e->state != RUN_USED)) {
                fail(k, "LR1: large chunk %" PRIu64 ": page map broken at page %u", c, p);
                break;
            }
            page_entry_t *tail = &lh->page[p + e->run - 1];
            if (tail->run != e->run || tail->state != e->state)
                fail(k, "LR1: large chunk %" PRIu64 ": run at page %u has a wrong tail tag", c, p);
            uint64_t mask = (e->run >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << e->run) - 1)) << p;
            if (e->state == RUN_USED && (lh->committed & mask) != mask)
                fail(k, "LR1: large chunk %" PRIu64 ": run at page %u in use but not committed", c, p);
            if (e->state == RUN_FREE) dirty += (uint64_t)__builtin_popcountll(lh->committed & mask);
            if (e->state == RUN_FREE) {
                if (prev_free) fail(k, "LR1: large chunk %" PRIu64 ": free runs not coalesced at page %u", c, p);
                free_pages += e->run;
                nfree_runs++;
                if (!(g->large_bitmap & ((uint64_t)1 << e->run)))
                    fail(k, "LR1: large chunk %" PRIu64 ": free run of %u pages but its list is marked empty", c, e->run);
            }
            prev_free = e->state == RUN_FREE;
            p += e->run;
        }
        if (free_pages != lh->free_pages) fail(k, "LR1: large chunk %" PRIu64 ": %u free pages counted, %u recorded", c, free_pages, lh->free_pages);
    }
    uint64_t listed = 0;
    for (uint32_t n = 1; n < SHR_PAGES_PER_CHUNK; n++) {
        bool nonempty = g->large_runs[n] != 0;
        if (nonempty != !!(g->large_bitmap & ((uint64_t)1 << n))) fail(k, "LR1: large bitmap disagrees with list %u", n);
        uint64_t steps = 0, prev = 0;
        for (uint64_t off = g->large_runs[n]; off; prev = off, off = ((large_header_t *)(h->base + SHR_ALIGN_DOWN(off, SHR_CHUNK_SIZE)))->page[(off & (SHR_CHUNK_SIZE - 1)) >> SHR_PAGE_SHIFT].next) {
            if (!check_step(k, 1)) return false;
            uint64_t c = off >> SHR_CHUNK_SHIFT;
            if (off >= h->capacity || off % SHR_PAGE_SIZE || c >= hwm || shr_load_relaxed(&t[c].kind) != CHUNK_LARGE ||
                off == chunk_off(c) || ++steps > g->nchunks * SHR_PAGES_PER_CHUNK) {
                fail(k, "LR1: large free list %u broken", n);
                break;
            }
            page_entry_t *e = &((large_header_t *)(h->base + chunk_off(c)))->page[(off - chunk_off(c)) >> SHR_PAGE_SHIFT];
            if (e->state != RUN_FREE || e->run != n) fail(k, "LR1: large free list %u holds a run of %u pages (state %u)", n, e->run, e->state);
            /* The back link, which the next take of a run writes through. */
            if (e->prev != prev) fail(k, "LR1: large free list %u: back link of the run at %" PRIu64 " wrong", n, off);
            listed++;
        }
    }
    if (listed != nfree_runs) fail(k, "LR1: %" PRIu64 " free large runs, %" PRIu64 " listed", nfree_runs, listed);
    if (dirty != g->large_dirty)
        fail(k, "LR1: %" PRIu64 " free large pages committed, %" PRIu64 " counted", dirty, g->large_dirty);
    return true;
}

static void check_large(checker_t *k)
{
    for (int tries = 0; tries < CHECK_TRIES; tries++) {
        int before = k->errors;
        if (large_walk(k) || !k->locked || k->errors != before) return;
    }
}


static _Atomic(shr__root_check_fn) root_check;

void shr__alloc_set_root_check(shr__root_check_fn fn) { atomic_store(&root_check, fn); }

/* RT1, and RT2: a root that holds a reference names an allocated block,
 * and the object there passes its layer's check (shr__root_check_fn); RT3:
 * the directory's mark is within it. */
static void check_roots(checker_t *k)
{
    alloc_global_t *g = alloc_global(k->h);
    shr__root_check_fn fn = atomic_load(&root_check);
    uint32_t hwm = shr__roots_hwm(k->h); /* RT3: nothing is used above it */
    if (shr_load_relaxed(&g->roots_hwm) > SHR_ROOTS_MAX) fail(k, "RT3: roots_hwm %u above %d", shr_load_relaxed(&g->roots_hwm), SHR_ROOTS_MAX);
    for (int i = 0; i < (int)hwm; i++) {
        root_entry_t *e = &g->roots[i];
        uint64_t off = shr_load_relaxed(&e->off);
        if (!memchr(e->name, 0, sizeof e->name)) fail(k, "RT1: root %d: name not terminated", i);
        else if (e->name[0] && (off == 0 || off >= k->h->capacity))
            fail(k, "RT1: root '%s': offset %" PRIu64 " outside the heap", e->name, off);
        else if (e->name[0] && (e->flags & ROOT_REF)) {
            const char *why = NULL;
            if ((off & (SHR_ALIGNMENT - 1)) || shr__alloc_block_checked(k->h, off) == 0)
                why = "not an allocated block";
            else if (fn)
                why = fn(k->h, off);
            /* Unlinked and released meanwhile: not damage. */
            if (why && (shr_load_acquire(&e->off) != off || !e->name[0])) why = NULL;
            if (why) fail(k, "RT2: root '%s': object at %" PRIu64 ": %s", e->name, off, why);
        }
    }
}

/* One part of the pass over what spans arenas, in a hold of its own. */
typedef void (*check_part_fn)(checker_t *k);

static void part_usable_small(checker_t *k) { check_usable(k, AC_SMALL); }
static void part_usable_medium(checker_t *k) { check_usable(k, AC_MEDIUM); }
static void part_orphans(checker_t *k)
{
    check_orphans(k);
    check_own_lists(k);
}

/* The bounds every walk trusts, read again before each part (they may have
 * moved since the last; a failure was reported by the first part). */
static bool globals_sound(checker_t *k)
{
    checker_t quiet = {.h = k->h};
    return check_globals(&quiet);
}

int shr__alloc_check(shr_heap_t *h, FILE *out)
{
    alloc_global_t *g = alloc_global(h);
    checker_t k = {.h = h, .out = out};
    shr_tctx_t *ctx = shr__tl_ctx;
    if (ctx && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h) k.me = ctx->slot + 1;
    k.listed = calloc((h->capacity >> SHR_CHUNK_SHIFT) + 1, 1); /* not g->nchunks: checked below */
    if (!k.listed) return -ENOMEM;
    /* FREE slots, CHECK_SLOT_STEP per hold of the registry lock (claims and
     * releases happen under it). */
    for (uint32_t s0 = 0; s0 < h->max_threads; s0 += CHECK_SLOT_STEP) {
        if (shr__lock(h, SHR_LOCK_REGISTRY) != 0) {
            free(k.listed);
            return SHR_ELOCK;
        }
        check_free_slots(&k, s0, s0 + CHECK_SLOT_STEP < h->max_threads ? s0 + CHECK_SLOT_STEP : h->max_threads);
        shr__unlock_step(h, SHR_LOCK_REGISTRY);
    }
    /* What spans arenas, one structure per part, each consistent in itself
     * (none of these checks relates two of them), each walked in steps
     * (check_step): the globals and the chunk table with its run lists, each
     * usable list, the orphan lists and this thread's used lists (the arena
     * lock), then the large chunks and their lists (the large and arena
     * locks). */
    static const check_part_fn parts[] = {NULL /* check_chunks, after the globals */, part_usable_small,
                                          part_usable_medium, part_orphans};
    bool table_ok = true;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] + 1 && table_ok; i++) {
        bool large = i == sizeof parts / sizeof parts[0];
        if (large && shr__lock(h, SHR_LOCK_LARGE) != 0) {
            free(k.listed);
            return SHR_ELOCK;
        }
        if (shr__lock(h, SHR_LOCK_ARENA) != 0) {
            if (large) shr__unlock(h, SHR_LOCK_LARGE);
            free(k.listed);
            return SHR_ELOCK;
        }
        k.stepping = k.locked = true;
        k.large = large;
        k.visited = 0;
        if (i == 0) {
            /* First, and reported: the bounds the walks rely on. */
            table_ok = check_globals(&k);
            if (table_ok) check_chunks(&k);
            table_ok = table_ok && k.errors == 0;
        } else if (globals_sound(&k)) {
            if (large) check_large(&k);
            else parts[i](&k);
        }
        if (!k.locked) {
            /* A relock failed, or the bounds went bad between two steps. */
            if (k.lock_rc) {
                free(k.listed);
                return SHR_ELOCK;
            }
            table_ok = false;
            continue;
        }
        shr__unlock_step(h, SHR_LOCK_ARENA);
        if (large) shr__unlock_step(h, SHR_LOCK_LARGE);
    }
    k.stepping = false;
    /* Then each arena and its pools in a hold of its own (A1, P1-P3, G1), so
     * that no allocator slow path waits for more than one arena's check. An
     * arena released or taken in between is checked as it is then. */
    for (uint64_t c = g->first_data; table_ok; c++) {
        if (shr__lock(h, SHR_LOCK_ARENA) != 0) {
            free(k.listed);
            return SHR_ELOCK;
        }
        uint64_t hwm = shr_load_relaxed(&g->hwm);
        bool more = c < hwm && c < g->nchunks;
        if (more) {
            uint32_t kind = shr_load_relaxed(&chunk_table(h)[c].kind);
            if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) check_arena(&k, c);
        }
        shr__unlock_step(h, SHR_LOCK_ARENA);
        if (!more) break;
    }
    check_roots(&k);
    free(k.listed);
    return k.errors ? SHR_ECORRUPT : 0;
}

int shr_heap_check(shr_heap_t *heap) { return shr_heap_check_report(heap, NULL); }

int shr_heap_check_report(shr_heap_t *heap, FILE *out)
{
    int reg = heap ? shr__registry_check(heap, out) : -EINVAL;
    if (reg < 0) return reg;
    int rc = shr__alloc_check(heap, out);
    return rc ? rc : reg ? SHR_ECORRUPT : 0;
}

void shr__validate_arenas(shr_heap_t *h, int acls)
{
    checker_t k = {.h = h, .out = stderr};
    check_usable(&k, acls);
    if (k.errors) SHR_PANIC("validator: usable_arenas of class %d broken", acls);
}

void shr__validate_pool(shr_heap_t *h, pool_header_t *pool)
{
    checker_t k = {.h = h, .out = stderr, .no_guards = true};
    shr_tctx_t *ctx = shr__tl_ctx;
    if (ctx && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h) k.me = ctx->slot + 1;
    check_pool(&k, pool, (uint64_t)1 << pool->shift);
    if (k.errors) SHR_PANIC("validator: pool %llu broken", (unsigned long long)shr__off(h, pool));
}
