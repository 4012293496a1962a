/* Heap check
 *
 * shr_heap_check verifies every invariant it can see, with bounds-checked
 * walks (a list that leaves its pool, misaligns or cycles is reported, never
 * followed blindly). It takes the large and arena locks, so the structures
 * they guard are stable; pools owned by other live threads change under it,
 * so for those only the header fields are checked. Pools owned by the calling
 * thread, orphans and empty pools are checked in full (P1, P2).
 *
 * What is checked:
 *   C1/C2  chunk table: kinds, run tags, free runs maximal and listed once
 *   A1     arenas: pool_address, freepools (all EMPTY), nfreepools
 *   A2     usable_arenas: exactly the arenas with a free pool, sorted by
 *          nfreepools, nfp2lasta[n] the rightmost with n
 *   P1-P3  pools (see alloc.h); orphan lists hold ORPHAN pools of their class
 *   L1     large chunks: runs tile pages 1..63, tags agree, free runs listed,
 *          bitmap and free page counts agree, pages in use are committed,
 *          free committed pages add up to large_dirty
 *   H1     huge runs: tail chunks point back to their head
 *   G1     guard bytes of the blocks in fully checked pools (SHR_HEAP_GUARDS)
 *   R1     roots: names terminated, offsets inside the heap
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
} checker_t;

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

/* ---- chunks ------------------------------------------------------------------- */

static void check_chunks(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    uint64_t hwm = rd(&g->hwm);
    if (hwm < g->first_data || hwm > g->nchunks) {
        fail(k, "high-water mark %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", hwm, g->first_data, g->nchunks);
        return;
    }
    for (uint64_t c = 0; c < g->first_data; c++)
        if (rd(&t[c].kind) != CHUNK_META) fail(k, "chunk %" PRIu64 ": metadata chunk has kind %u", c, rd(&t[c].kind));
    bool prev_free = false;
    for (uint64_t c = g->first_data; c < hwm;) {
        uint32_t kind = rd(&t[c].kind);
        uint64_t n = 1;
        switch (kind) {
        case CHUNK_FREE:
            n = t[c].run;
            if (n == 0 || c + n > hwm) {
                fail(k, "chunk %" PRIu64 ": free run of %" PRIu64 " chunks overruns", c, n);
                return;
            }
            if (prev_free) fail(k, "chunk %" PRIu64 ": free run not coalesced with its left neighbour", c);
            if (n > 1 && (rd(&t[c + n - 1].kind) != CHUNK_FREE_TAIL || t[c + n - 1].run != n))
                fail(k, "chunk %" PRIu64 ": free run tail tag wrong", c);
            for (uint64_t i = c + 1; i + 1 < c + n; i++)
                if (rd(&t[i].kind) != CHUNK_UNUSED) fail(k, "chunk %" PRIu64 ": inside a free run but kind %u", i, rd(&t[i].kind));
            break;
        case CHUNK_SMALL:
        case CHUNK_MEDIUM:
        case CHUNK_LARGE:
            break;
        case CHUNK_HUGE:
            n = t[c].run;
            if (n == 0 || c + n > hwm) {
                fail(k, "chunk %" PRIu64 ": huge run of %" PRIu64 " chunks overruns", c, n);
                return;
            }
            if ((uint64_t)t[c].pages > n * PAGES_PER_CHUNK || t[c].pages == 0)
                fail(k, "chunk %" PRIu64 ": huge block commits %u pages in %" PRIu64 " chunks", c, t[c].pages, n);
            for (uint64_t i = 1; i < n; i++)
                if (rd(&t[c + i].kind) != CHUNK_HUGE_TAIL || t[c + i].run != i)
                    fail(k, "chunk %" PRIu64 ": huge tail does not point back to %" PRIu64, c + i, c);
            break;
        default:
            fail(k, "chunk %" PRIu64 ": kind %u below the high-water mark", c, kind);
        }
        prev_free = kind == CHUNK_FREE;
        c += n;
    }
    /* Every free run on exactly one list, each list entry a free run head. */
    uint64_t steps = 0;
    for (int l = 0; l < NRUNLISTS; l++) {
        uint64_t prev = 0;
        for (uint64_t r = g->runs[l]; r; prev = r, r = t[r - 1].next) {
            if (++steps > g->nchunks || r - 1 >= hwm) {
                fail(k, "free run list %d broken", l);
                break;
            }
            if (rd(&t[r - 1].kind) != CHUNK_FREE) fail(k, "free run list %d holds chunk %" PRIu64 " of kind %u", l, r - 1, rd(&t[r - 1].kind));
            if (t[r - 1].prev != prev) fail(k, "free run list %d: back link of chunk %" PRIu64 " wrong", l, r - 1);
            if (k->listed[r - 1]++) fail(k, "chunk %" PRIu64 " listed twice", r - 1);
        }
    }
    for (uint64_t c = g->first_data; c < hwm; c++)
        if (rd(&t[c].kind) == CHUNK_FREE && !k->listed[c]) fail(k, "free run at chunk %" PRIu64 " on no list", c);
}

/* ---- pools ------------------------------------------------------------------ */

static void check_guards(checker_t *k, pool_header_t *p)
{
    shr_heap_t *h = k->h;
    uint64_t po = shr__off(h, p);
    uint32_t next = rd(&p->nextoffset);
    /* Mark free blocks, then every other carved block is allocated. */
    uint8_t freemap[((1u << MEDIUM_POOL_SHIFT) / ALIGNMENT) / 8 + 1];
    memset(freemap, 0, sizeof freemap);
    for (uint64_t b = rd(&p->freeblock); b; b = *(uint64_t *)(h->base + b + 8)) {
        uint32_t i = (uint32_t)((b - po - POOL_OVERHEAD) / p->block_size);
        freemap[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    for (uint32_t off = POOL_OVERHEAD, i = 0; off < next; off += p->block_size, i++) {
        if (freemap[i / 8] & (1u << (i % 8))) continue;
        const uint8_t *b = h->base + po + off;
        uint64_t n;
        memcpy(&n, b, 8);
        bool ok = n <= p->block_size - 24;
        for (int j = 0; ok && j < 8; j++) ok = b[8 + j] == 0xFD && b[16 + n + (uint64_t)j] == 0xFD;
        if (!ok) fail(k, "block at offset %" PRIu64 ": guard bytes damaged", po + off);
    }
}

static void check_pool(checker_t *k, pool_header_t *p, uint64_t psize)
{
    shr_heap_t *h = k->h;
    uint64_t po = shr__off(h, p);
    uint32_t state = rd(&p->state), owner = rd(&p->owner), cls = rd(&p->szidx);
    if (state == POOL_EMPTY) {
        /* owner != 0: in that thread's cache of empty pools. */
        if (rd(&p->nused) != 0) fail(k, "pool %" PRIu64 ": empty with %u blocks in use", po, rd(&p->nused));
    } else if (state < POOL_EMPTY || state > POOL_ORPHAN) {
        fail(k, "pool %" PRIu64 ": state %u", po, state);
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
        uint32_t st = rd(&p->state), ow = rd(&p->owner);
        uint64_t r2 = atomic_load_explicit(&p->remote, memory_order_acquire);
        if (r1 != r2) return;
        if (cls >= NB_CLASSES && st != POOL_EMPTY) fail(k, "pool %" PRIu64 ": size class %u", po, cls);
        if (st == POOL_USED && ow == 0 && rd(&p->state) == POOL_USED && rd(&p->owner) == 0)
            fail(k, "pool %" PRIu64 ": used but owned by nobody", po);
        if (st == POOL_FULL && ow == 0 && !(r1 & REMOTE_UNOWNED))
            fail(k, "pool %" PRIu64 ": full and unowned without the unowned flag", po);
        return;
    }
    if (cls >= NB_CLASSES) {
        fail(k, "pool %" PRIu64 ": size class %u", po, cls);
        return;
    }
    if (p->block_size != shr__class_size[cls] || p->capacity != (psize - POOL_OVERHEAD) / p->block_size ||
        ((uint64_t)1 << p->shift) != psize) {
        fail(k, "pool %" PRIu64 ": geometry does not match class %u", po, cls);
        return;
    }
    uint32_t next = rd(&p->nextoffset);
    if (next < POOL_OVERHEAD || next > psize || (next - POOL_OVERHEAD) % p->block_size ||
        p->maxnextoffset != POOL_OVERHEAD + (p->capacity - 1) * p->block_size) {
        fail(k, "pool %" PRIu64 ": nextoffset %u out of range", po, next);
        return;
    }
    if (state == POOL_ORPHAN && owner != 0) fail(k, "pool %" PRIu64 ": orphan owned by %u", po, owner);
    if (state == POOL_USED && owner == 0) fail(k, "pool %" PRIu64 ": used but owned by nobody", po);
    if (state == POOL_FULL && owner == 0 && !(rd(&p->remote) & REMOTE_UNOWNED))
        fail(k, "pool %" PRIu64 ": full and unowned without the unowned flag", po);
    if (rd(&p->nused) > p->capacity) fail(k, "pool %" PRIu64 ": %u blocks in use of %u", po, rd(&p->nused), p->capacity);
    long nlocal = shr__pool_list_len(h, p, rd(&p->freeblock));
    if (nlocal < 0) {
        fail(k, "pool %" PRIu64 ": local free list leaves the pool, misaligns or cycles", po);
        return;
    }
    uint64_t r = atomic_load_explicit(&p->remote, memory_order_acquire) & ~REMOTE_FLAGS;
    long nremote = r ? shr__pool_list_len(h, p, r) : 0;
    if (nremote < 0) {
        fail(k, "pool %" PRIu64 ": remote free stack leaves the pool, misaligns or cycles", po);
        return;
    }
    uint32_t carved = (next - POOL_OVERHEAD) / p->block_size;
    if (state != POOL_EMPTY && carved - nlocal - nremote != rd(&p->nused) && r == 0)
        fail(k, "pool %" PRIu64 ": nused %u but %ld carved - %ld free", po, rd(&p->nused), (long)carved, nlocal);
    if (h->hdr->flags & SHR_HEAP_GUARDS && r == 0 && !k->no_guards) check_guards(k, p);
}

static void check_arena(checker_t *k, uint64_t c)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = AG(h);
    chunk_t *a = &CT(h)[c];
    int acls = rd(&a->kind) == CHUNK_SMALL ? AC_SMALL : AC_MEDIUM;
    arena_class_t *ac = &g->ac[acls];
    uint64_t psize = (uint64_t)1 << ac->shift, end = a->pool_address;
    if (end < chunk_off(c) || end > chunk_off(c + 1) || (end - chunk_off(c)) % psize) {
        fail(k, "arena %" PRIu64 ": pool_address %" PRIu64 " out of range", c, end);
        return;
    }
    if (a->ntotalpools != ac->npools) fail(k, "arena %" PRIu64 ": %u pools, expected %u", c, a->ntotalpools, ac->npools);
    uint32_t empty = 0;
    for (uint64_t po = a->freepools; po; po = POOL(h, po)->nextpool) {
        if (po < chunk_off(c) || po >= end || (po - chunk_off(c)) % psize || ++empty > ac->npools) {
            fail(k, "arena %" PRIu64 ": freepools list broken", c);
            break;
        }
        if (rd(&POOL(h, po)->state) != POOL_EMPTY || rd(&POOL(h, po)->owner) != 0)
            fail(k, "arena %" PRIu64 ": pool %" PRIu64 " on freepools is not empty and unowned", c, po);
    }
    uint32_t untouched = (uint32_t)((chunk_off(c + 1) - end) / psize);
    if (a->nfreepools != empty + untouched)
        fail(k, "arena %" PRIu64 ": nfreepools %u, but %u empty + %u untouched", c, a->nfreepools, empty, untouched);
    uint32_t nempty_state = 0;
    for (uint64_t po = chunk_off(c); po < end; po += psize) {
        check_pool(k, POOL(h, po), psize);
        nempty_state += rd(&POOL(h, po)->state) == POOL_EMPTY && rd(&POOL(h, po)->owner) == 0;
    }
    if (nempty_state != empty) fail(k, "arena %" PRIu64 ": %u empty pools, %u on freepools", c, nempty_state, empty);
}

static void check_usable(checker_t *k, int acls)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    arena_class_t *ac = &g->ac[acls];
    uint32_t want = acls == AC_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM;
    uint64_t steps = 0, prev = 0, hwm = rd(&g->hwm), count = 0;
    uint32_t last_nf = 0;
    for (uint64_t a = ac->usable; a; prev = a, a = t[a - 1].next) {
        if (a - 1 >= hwm || ++steps > g->nchunks || rd(&t[a - 1].kind) != want) {
            fail(k, "usable_arenas (class %d) broken at chunk %" PRIu64, acls, a - 1);
            return;
        }
        chunk_t *ar = &t[a - 1];
        if (ar->prev != prev) fail(k, "usable_arenas: back link of arena %" PRIu64 " wrong", a - 1);
        if (ar->nfreepools == 0) fail(k, "usable_arenas: arena %" PRIu64 " has no free pool", a - 1);
        if (ar->nfreepools < last_nf) fail(k, "usable_arenas not sorted at arena %" PRIu64, a - 1);
        uint64_t nx = ar->next;
        bool rightmost = !nx || t[nx - 1].nfreepools != ar->nfreepools;
        if (rightmost && ac->nfp2lasta[ar->nfreepools] != a)
            fail(k, "nfp2lasta[%u] is not arena %" PRIu64, ar->nfreepools, a - 1);
        last_nf = ar->nfreepools;
        count++;
    }
    uint64_t with_free = 0;
    for (uint64_t c = g->first_data; c < hwm; c++)
        if (rd(&t[c].kind) == want && t[c].nfreepools > 0) with_free++;
    if (with_free != count) fail(k, "usable_arenas (class %d) lists %" PRIu64 " of %" PRIu64 " arenas with free pools", acls, count, with_free);
}

static void check_orphans(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = AG(h);
    for (unsigned cls = 0; cls < NB_CLASSES; cls++) {
        uint64_t steps = 0;
        for (uint64_t po = g->orphans[cls]; po; po = POOL(h, po)->nextpool) {
            uint32_t kind = po < h->capacity ? rd(&CT(h)[po >> SHR_CHUNK_SHIFT].kind) : 0;
            if ((kind != CHUNK_SMALL && kind != CHUNK_MEDIUM) || ++steps > g->nchunks * MAX_POOLS_IN_ARENA) {
                fail(k, "orphan list of class %u broken", cls);
                break;
            }
            pool_header_t *p = POOL(h, po);
            if (rd(&p->state) != POOL_ORPHAN || rd(&p->szidx) != cls)
                fail(k, "orphan list of class %u holds pool %" PRIu64 " (state %u, class %u)", cls, po, rd(&p->state), rd(&p->szidx));
        }
    }
}

static void check_own_lists(checker_t *k)
{
    shr_heap_t *h = k->h;
    shr_tctx_t *ctx = shr__tl_ctx;
    if (!ctx || atomic_load_explicit(&ctx->heap, memory_order_relaxed) != h) return;
    alloc_tslot_t *ts = ctx->layer[SHR_LAYER_ALLOC];
    for (unsigned cls = 0; cls < NB_CLASSES; cls++) {
        uint64_t steps = 0, prev = 0;
        for (uint64_t po = ts->used[cls]; po; prev = po, po = POOL(h, po)->nextpool) {
            if (po >= h->capacity || ++steps > AG(h)->nchunks * MAX_POOLS_IN_ARENA) {
                fail(k, "this thread's used list of class %u broken", cls);
                break;
            }
            pool_header_t *p = POOL(h, po);
            if (rd(&p->owner) != k->me || rd(&p->state) != POOL_USED || rd(&p->szidx) != cls || p->prevpool != prev)
                fail(k, "this thread's used list of class %u holds pool %" PRIu64 " wrongly", cls, po);
        }
    }
}

/* ---- large ------------------------------------------------------------------- */

static void check_large(checker_t *k)
{
    shr_heap_t *h = k->h;
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    uint64_t hwm = rd(&g->hwm), nfree_runs = 0, dirty = 0;
    for (uint64_t c = g->first_data; c < hwm; c++) {
        if (rd(&t[c].kind) != CHUNK_LARGE) continue;
        large_header_t *lh = (large_header_t *)(h->base + chunk_off(c));
        if (lh->magic != LARGE_MAGIC) {
            fail(k, "large chunk %" PRIu64 ": bad magic", c);
            continue;
        }
        uint32_t free_pages = 0;
        bool prev_free = false;
        for (uint32_t p = 1; p < PAGES_PER_CHUNK;) {
            page_entry_t *e = &lh->page[p];
            if (e->run == 0 || p + e->run > PAGES_PER_CHUNK || (e->state != RUN_FREE && e->state != RUN_USED)) {
                fail(k, "large chunk %" PRIu64 ": page map broken at page %u", c, p);
                break;
            }
            page_entry_t *tail = &lh->page[p + e->run - 1];
            if (tail->run != e->run || tail->state != e->state)
                fail(k, "large chunk %" PRIu64 ": run at page %u has a wrong tail tag", c, p);
            uint64_t mask = (e->run >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << e->run) - 1)) << p;
            if (e->state == RUN_USED && (lh->committed & mask) != mask)
                fail(k, "large chunk %" PRIu64 ": run at page %u in use but not committed", c, p);
            if (e->state == RUN_FREE) dirty += (uint64_t)__builtin_popcountll(lh->committed & mask);
            if (e->state == RUN_FREE) {
                if (prev_free) fail(k, "large chunk %" PRIu64 ": free runs not coalesced at page %u", c, p);
                free_pages += e->run;
                nfree_runs++;
                if (!(g->large_bitmap & ((uint64_t)1 << e->run)))
                    fail(k, "large chunk %" PRIu64 ": free run of %u pages but its list is marked empty", c, e->run);
            }
            prev_free = e->state == RUN_FREE;
            p += e->run;
        }
        if (free_pages != lh->free_pages) fail(k, "large chunk %" PRIu64 ": %u free pages counted, %u recorded", c, free_pages, lh->free_pages);
    }
    uint64_t listed = 0;
    for (uint32_t n = 1; n < PAGES_PER_CHUNK; n++) {
        bool nonempty = g->large_runs[n] != 0;
        if (nonempty != !!(g->large_bitmap & ((uint64_t)1 << n))) fail(k, "large bitmap disagrees with list %u", n);
        uint64_t steps = 0;
        for (uint64_t off = g->large_runs[n]; off; off = ((large_header_t *)(h->base + SHR_ALIGN_DOWN(off, SHR_CHUNK_SIZE)))->page[(off & (SHR_CHUNK_SIZE - 1)) >> PAGE_SHIFT].next) {
            uint64_t c = off >> SHR_CHUNK_SHIFT;
            if (off >= h->capacity || c >= hwm || rd(&t[c].kind) != CHUNK_LARGE || ++steps > g->nchunks * PAGES_PER_CHUNK) {
                fail(k, "large free list %u broken", n);
                break;
            }
            page_entry_t *e = &((large_header_t *)(h->base + chunk_off(c)))->page[(off - chunk_off(c)) >> PAGE_SHIFT];
            if (e->state != RUN_FREE || e->run != n) fail(k, "large free list %u holds a run of %u pages (state %u)", n, e->run, e->state);
            listed++;
        }
    }
    if (listed != nfree_runs) fail(k, "%" PRIu64 " free large runs, %" PRIu64 " listed", nfree_runs, listed);
    if (dirty != g->large_dirty)
        fail(k, "%" PRIu64 " free large pages committed, %" PRIu64 " counted", dirty, g->large_dirty);
}

static void check_roots(checker_t *k)
{
    alloc_global_t *g = AG(k->h);
    for (int i = 0; i < ROOTS_MAX; i++) {
        root_entry_t *e = &g->roots[i];
        if (!memchr(e->name, 0, sizeof e->name)) fail(k, "root %d: name not terminated", i);
        else if (e->name[0] && (rd(&e->off) == 0 || rd(&e->off) >= k->h->capacity))
            fail(k, "root '%s': offset %" PRIu64 " outside the heap", e->name, rd(&e->off));
    }
}

int shr__alloc_check(shr_heap_t *h, FILE *out)
{
    alloc_global_t *g = AG(h);
    checker_t k = {.h = h, .out = out};
    shr_tctx_t *ctx = shr__tl_ctx;
    if (ctx && atomic_load_explicit(&ctx->heap, memory_order_relaxed) == h) k.me = ctx->slot + 1;
    k.listed = calloc(g->nchunks ? g->nchunks : 1, 1);
    if (!k.listed) return -ENOMEM;
    if (shr__lock(h, SHR_LOCK_LARGE) != 0) {
        free(k.listed);
        return SHR_ELOCK;
    }
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) {
        shr__unlock(h, SHR_LOCK_LARGE);
        free(k.listed);
        return SHR_ELOCK;
    }
    check_chunks(&k);
    if (k.errors == 0) {
        uint64_t hwm = rd(&g->hwm);
        for (uint64_t c = g->first_data; c < hwm; c++) {
            uint32_t kind = rd(&CT(h)[c].kind);
            if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) check_arena(&k, c);
        }
        check_usable(&k, AC_SMALL);
        check_usable(&k, AC_MEDIUM);
        check_orphans(&k);
        check_own_lists(&k);
        check_large(&k);
    }
    shr__unlock(h, SHR_LOCK_ARENA);
    shr__unlock(h, SHR_LOCK_LARGE);
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

#if SHR_DEBUG >= 3
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
#endif
