/* Large and huge blocks
 *
 *   large  16 KiB < size <= 252 KiB: a run of 4 KiB pages inside a LARGE
 *          chunk. Page 0 of the chunk is its header (large_header_t): a map
 *          with the run length and state at the head and tail page of every
 *          run. Free runs of n pages are on large_runs[n], found through a
 *          64-bit bitmap in O(1); freed runs coalesce with free neighbours
 *          through the tail/head tags. Pages are committed when a run is
 *          first taken (a bitmap in the header says which are), and a freed
 *          run's pages stay committed until SHR_LARGE_DIRTY_MAX free pages are,
 *          then all free pages are released (hole punched), so a free/alloc
 *          loop makes no system call while memory still follows live data
 *          within 4 MiB. A chunk whose 63 pages are all free goes back to
 *          the chunk allocator, except one kept to avoid thrashing.
 *   huge   above: a run of whole chunks (CHUNK_HUGE head, CHUNK_HUGE_TAIL
 *          for the rest). Only the pages the block needs are committed, so
 *          the memory wasted is under one page; the rest of the last chunk is
 *          reserved address space only.
 *
 * Waste: a large request is rounded up to whole pages: at most 4095 bytes on
 * at least 16385, under 25%; a huge one commits at most 4095 bytes more than
 * asked. Time per call is bounded: no list is walked.
 *
 * Locking: the large lock for page runs; the arena lock (taken inside it, by
 * rank) for the chunk allocator. Crash: the free lists and the bitmap are
 * derived from the page maps (shr__large_repair); a run's head entry is
 * written first (see tag_run).
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "fault.h"

static inline large_header_t *large_header(shr_heap_t *h, uint64_t c)
{
    return (large_header_t *)(h->base + chunk_off(c));
}

static inline uint64_t run_off(uint64_t c, uint32_t page) { return chunk_off(c) + ((uint64_t)page << SHR_PAGE_SHIFT); }

/* ---- free run lists (large lock held) ------------------------------------------ */

static page_entry_t *entry_of(shr_heap_t *h, uint64_t off)
{
    return &large_header(h, off >> SHR_CHUNK_SHIFT)->page[(off & (SHR_CHUNK_SIZE - 1)) >> SHR_PAGE_SHIFT];
}

static void runs_push(shr_heap_t *h, uint64_t off, uint32_t n)
{
    alloc_global_t *g = alloc_global(h);
    page_entry_t *e = entry_of(h, off);
    e->prev = 0;
    e->next = g->large_runs[n];
    if (e->next) entry_of(h, e->next)->prev = off;
    g->large_runs[n] = off;
    g->large_bitmap |= (uint64_t)1 << n;
}

static void runs_remove(shr_heap_t *h, uint64_t off, uint32_t n)
{
    alloc_global_t *g = alloc_global(h);
    page_entry_t *e = entry_of(h, off);
    if (e->prev) entry_of(h, e->prev)->next = e->next;
    else g->large_runs[n] = e->next;
    if (e->next) entry_of(h, e->next)->prev = e->prev;
    if (!g->large_runs[n]) g->large_bitmap &= ~((uint64_t)1 << n);
    e->next = e->prev = 0;
}

/* Tag pages [p, p+n) of a LARGE chunk as one run in `state`.
 *
 * Tricky: the head is written first; it is the commit point. A parse of the
 * map walks heads, so until the head changes the old head still covers the
 * region and whatever is being rewritten inside it is skipped; once it has
 * changed, the new run is whole. Writing it last would be wrong when runs
 * coalesce: clearing the interior erases the head of the run being merged
 * while the old head still points at it (found by the list kill storm).
 * Every caller tags the pieces of a split before the piece whose head is the
 * old head. The tail and the interior follow; repair rewrites them. */
static void tag_run(large_header_t *lh, uint32_t p, uint32_t n, uint32_t state)
{
    lh->page[p].state = state;
    lh->page[p].run = n;
    lh->page[p + n - 1].run = n;
    lh->page[p + n - 1].state = state;
    for (uint32_t i = p + 1; i + 1 < p + n; i++) lh->page[i].run = lh->page[i].state = 0;
}

/* Commit the pages of [p, p+n) that are not yet, in as few calls as there
 * are gaps. */
static int commit_pages(shr_heap_t *h, uint64_t c, large_header_t *lh, uint32_t p, uint32_t n)
{
    for (uint32_t i = p; i < p + n;) {
        if (lh->committed & ((uint64_t)1 << i)) {
            i++;
            continue;
        }
        uint32_t j = i;
        while (j < p + n && !(lh->committed & ((uint64_t)1 << j))) j++;
        int rc = shr__seg_commit(h, run_off(c, i), (uint64_t)(j - i) << SHR_PAGE_SHIFT);
        if (rc) return rc;
        for (uint32_t k = i; k < j; k++) lh->committed |= (uint64_t)1 << k;
        i = j;
    }
    return 0;
}

/* Free pages of [p, p+n) that are committed: how many. */
static uint32_t committed_in(const large_header_t *lh, uint32_t p, uint32_t n)
{
    uint64_t mask = (n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << p;
    return (uint32_t)__builtin_popcountll(lh->committed & mask);
}

void shr__large_purge(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    for (uint32_t n = 1; n < SHR_PAGES_PER_CHUNK; n++)
        for (uint64_t off = g->large_runs[n]; off; off = entry_of(h, off)->next) {
            uint64_t c = off >> SHR_CHUNK_SHIFT;
            large_header_t *lh = large_header(h, c);
            uint32_t p = (uint32_t)((off - chunk_off(c)) >> SHR_PAGE_SHIFT);
            if (!committed_in(lh, p, n)) continue;
            /* Bits first: a crash before the punch leaves committed pages
             * marked uncommitted (committed again, harmlessly, when used),
             * never holes marked committed. */
            lh->committed &= ~((((uint64_t)1 << n) - 1) << p);
            shr__seg_release(h, off, (uint64_t)n << SHR_PAGE_SHIFT);
        }
    g->large_dirty = 0;
}

/* A new LARGE chunk: its header page committed, pages 1..63 one free run. */
static bool large_chunk_new(shr_heap_t *h)
{
    chunk_t *t = chunk_table(h);
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return false;
    uint64_t ref = shr__chunk_alloc(h, 1), c = ref ? chunk_index(ref) : 0;
    if (ref && shr__seg_commit(h, chunk_off(c), SHR_PAGE_SIZE) != 0) {
        shr__chunk_free(h, c, 1);
        ref = 0;
    }
    if (ref) {
        large_header_t *lh = large_header(h, c);
        memset(lh, 0, sizeof *lh);
        lh->magic = SHR_LARGE_MAGIC;
        lh->free_pages = SHR_LARGE_MAX_PAGES;
        lh->committed = 1; /* the header page */
        tag_run(lh, 1, SHR_LARGE_MAX_PAGES, RUN_FREE);
        t[c].run = 1;
        shr_store_relaxed(&t[c].kind, CHUNK_LARGE);
    }
    shr__unlock(h, SHR_LOCK_ARENA);
    if (ref) runs_push(h, run_off(c, 1), SHR_LARGE_MAX_PAGES);
    return ref != 0;
}

static void *run_alloc(shr_heap_t *h, uint32_t n)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t fits = g->large_bitmap & ~(((uint64_t)1 << n) - 1);
    if (!fits) {
        if (!large_chunk_new(h)) return NULL;
        fits = g->large_bitmap & ~(((uint64_t)1 << n) - 1);
    }
    uint32_t len = (uint32_t)__builtin_ctzll(fits);
    uint64_t off = g->large_runs[len];
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    large_header_t *lh = large_header(h, c);
    uint32_t p = (uint32_t)((off - chunk_off(c)) >> SHR_PAGE_SHIFT);
    uint32_t dirty = committed_in(lh, p, n);
    if (commit_pages(h, c, lh, p, n) != 0) return NULL;
    g->large_dirty -= dirty < g->large_dirty ? dirty : g->large_dirty;
    runs_remove(h, off, len);
    if (len > n) {
        tag_run(lh, p + n, len - n, RUN_FREE);
        runs_push(h, run_off(c, p + n), len - n);
    }
    tag_run(lh, p, n, RUN_USED);
    if (g->large_empty == chunk_ref(c)) g->large_empty = 0;
    lh->free_pages -= n;
    return h->base + off;
}

static void run_free(shr_heap_t *h, uint64_t off)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    large_header_t *lh = large_header(h, c);
    uint32_t p = (uint32_t)((off - chunk_off(c)) >> SHR_PAGE_SHIFT);
    uint32_t n = lh->page[p].run;
    g->large_dirty += committed_in(lh, p, n); /* released later, in bulk */
    lh->free_pages += n;
    /* Coalesce: left neighbour's tail, right neighbour's head. */
    if (p > 1 && lh->page[p - 1].state == RUN_FREE) {
        uint32_t ln = lh->page[p - 1].run;
        runs_remove(h, run_off(c, p - ln), ln);
        p -= ln;
        n += ln;
    }
    if (p + n < SHR_PAGES_PER_CHUNK && lh->page[p + n].state == RUN_FREE) {
        uint32_t rn = lh->page[p + n].run;
        runs_remove(h, run_off(c, p + n), rn);
        n += rn;
    }
    tag_run(lh, p, n, RUN_FREE);
    if (n == SHR_LARGE_MAX_PAGES && g->large_empty && g->large_empty != chunk_ref(c) &&
        shr__lock(h, SHR_LOCK_ARENA) == 0) {
        /* A second empty chunk: give it back (its header page goes with it). */
        uint32_t dirty = committed_in(lh, 1, SHR_LARGE_MAX_PAGES);
        g->large_dirty -= dirty < g->large_dirty ? dirty : g->large_dirty;
        shr__chunk_free(h, c, 1);
        shr__unlock(h, SHR_LOCK_ARENA);
        return;
    }
    if (n == SHR_LARGE_MAX_PAGES) g->large_empty = chunk_ref(c);
    runs_push(h, run_off(c, p), n);
    if (g->large_dirty > SHR_LARGE_DIRTY_MAX) shr__large_purge(h);
}

/* ---- huge ------------------------------------------------------------------ */

static void *huge_alloc(shr_heap_t *h, size_t size)
{
    chunk_t *t = chunk_table(h);
    uint64_t n = SHR_ALIGN_UP((uint64_t)size, SHR_CHUNK_SIZE) >> SHR_CHUNK_SHIFT;
    uint64_t pages = SHR_ALIGN_UP((uint64_t)size, SHR_PAGE_SIZE) >> SHR_PAGE_SHIFT;
    int rc = shr__lock(h, SHR_LOCK_ARENA);
    if (rc != 0) {
        errno = shr__errno_of(rc);
        return NULL;
    }
    uint64_t ref = shr__chunk_alloc(h, n), c = ref ? chunk_index(ref) : 0;
    if (ref && (SHR_FAULT(ALLOC_HUGE_COMMIT) || shr__seg_commit(h, chunk_off(c), pages << SHR_PAGE_SHIFT) != 0)) {
        shr__chunk_free(h, c, n);
        ref = 0;
    }
    if (ref) {
        for (uint64_t i = 1; i < n; i++) {
            t[c + i].run = i;
            shr_store_relaxed(&t[c + i].kind, CHUNK_HUGE_TAIL);
        }
        t[c].run = n;
        t[c].pages = (uint32_t)pages;
        (void)SHR_FAULT(ALLOC_HUGE_TAG);
        shr_store_relaxed(&t[c].kind, CHUNK_HUGE); /* commit point */
    }
    shr__unlock(h, SHR_LOCK_ARENA);
    return ref ? h->base + chunk_off(c) : NULL;
}

static void huge_free(shr_heap_t *h, uint64_t c)
{
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return;
    shr__chunk_free(h, c, chunk_table(h)[c].run);
    shr__unlock(h, SHR_LOCK_ARENA);
}

/* ---- entry points -------------------------------------------------------------- */

void *shr__large_alloc(shr_heap_t *h, size_t size)
{
    alloc_global_t *g = alloc_global(h);
    void *p;
    if (size <= SHR_LARGE_REQUEST_THRESHOLD) {
        uint32_t n = (uint32_t)(SHR_ALIGN_UP((uint64_t)size, SHR_PAGE_SIZE) >> SHR_PAGE_SHIFT);
        int rc = shr__lock(h, SHR_LOCK_LARGE);
        if (rc != 0) {
            errno = shr__errno_of(rc); /* ETIMEDOUT: the lock was not released in time */
            return NULL;
        }
        p = run_alloc(h, n);
        shr__unlock(h, SHR_LOCK_LARGE);
        if (!p) errno = ENOMEM;
        if (p) {
            atomic_fetch_add_explicit(&g->large_blocks, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&g->large_bytes, (uint64_t)n << SHR_PAGE_SHIFT, memory_order_relaxed);
        }
    } else {
        errno = ENOMEM; /* huge_alloc sets its own errno when its lock fails */
        p = huge_alloc(h, size);
        if (p) {
            atomic_fetch_add_explicit(&g->huge_blocks, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&g->huge_bytes, shr__large_usable(h, shr__off(h, p)),
                                      memory_order_relaxed);
        }
    }
    return p;
}

/* Is off the start of a live large or huge block? */
static bool large_valid(shr_heap_t *h, uint64_t off)
{
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    uint32_t kind = shr_load_relaxed(&chunk_table(h)[c].kind);
    if (kind == CHUNK_HUGE) return off == chunk_off(c);
    if (kind != CHUNK_LARGE || (off & (SHR_PAGE_SIZE - 1))) return false;
    uint32_t p = (uint32_t)((off - chunk_off(c)) >> SHR_PAGE_SHIFT);
    large_header_t *lh = large_header(h, c);
    return p >= 1 && lh->magic == SHR_LARGE_MAGIC && lh->page[p].state == RUN_USED &&
           lh->page[p].run >= 1 && p + lh->page[p].run <= SHR_PAGES_PER_CHUNK;
}

void shr__large_free(shr_heap_t *h, uint64_t off)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    if (shr_load_relaxed(&chunk_table(h)[c].kind) == CHUNK_HUGE) {
        if (!large_valid(h, off)) goto bad;
        uint64_t bytes = shr__large_usable(h, off);
        huge_free(h, c);
        atomic_fetch_sub_explicit(&g->huge_blocks, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&g->huge_bytes, bytes, memory_order_relaxed);
        return;
    }
    if (shr__lock(h, SHR_LOCK_LARGE) != 0) return;
    if (!large_valid(h, off)) {
        shr__unlock(h, SHR_LOCK_LARGE);
        goto bad;
    }
    uint64_t bytes = (uint64_t)entry_of(h, off)->run << SHR_PAGE_SHIFT;
    run_free(h, off);
    shr__unlock(h, SHR_LOCK_LARGE);
    atomic_fetch_sub_explicit(&g->large_blocks, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g->large_bytes, bytes, memory_order_relaxed);
    return;
bad:
    if (SHR_DEBUG >= 1)
        SHR_PANIC("free of a pointer that is not a live block (double free?): offset %llu",
                  (unsigned long long)off);
}

size_t shr__large_usable(shr_heap_t *h, uint64_t off)
{
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    chunk_t *t = chunk_table(h);
    if (shr_load_relaxed(&t[c].kind) == CHUNK_HUGE) return off == chunk_off(c) ? (size_t)t[c].pages << SHR_PAGE_SHIFT : 0;
    if (shr_load_relaxed(&t[c].kind) != CHUNK_LARGE || (off & (SHR_PAGE_SIZE - 1))) return 0;
    page_entry_t *e = entry_of(h, off);
    return e->state == RUN_USED ? (size_t)e->run << SHR_PAGE_SHIFT : 0;
}

/* Resize a page run in place: shrink by freeing the tail, grow into a free
 * run that follows. */
static bool run_resize(shr_heap_t *h, uint64_t off, uint32_t want)
{
    alloc_global_t *g = alloc_global(h);
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    large_header_t *lh = large_header(h, c);
    uint32_t p = (uint32_t)((off - chunk_off(c)) >> SHR_PAGE_SHIFT);
    uint32_t n = lh->page[p].run;
    if (want == n) return true;
    if (want < n) {
        tag_run(lh, p + want, n - want, RUN_USED); /* inside the old run: the tail piece first */
        tag_run(lh, p, want, RUN_USED);
        run_free(h, run_off(c, p + want));
        atomic_fetch_sub_explicit(&g->large_bytes, (uint64_t)(n - want) << SHR_PAGE_SHIFT, memory_order_relaxed);
        return true;
    }
    uint32_t q = p + n;
    if (q >= SHR_PAGES_PER_CHUNK || lh->page[q].state != RUN_FREE || n + lh->page[q].run < want) return false;
    uint32_t fn = lh->page[q].run, extra = want - n;
    uint32_t dirty = committed_in(lh, q, extra);
    if (commit_pages(h, c, lh, q, extra) != 0) return false;
    g->large_dirty -= dirty < g->large_dirty ? dirty : g->large_dirty;
    runs_remove(h, run_off(c, q), fn);
    if (fn > extra) {
        tag_run(lh, q + extra, fn - extra, RUN_FREE);
        runs_push(h, run_off(c, q + extra), fn - extra);
    }
    tag_run(lh, p, want, RUN_USED);
    lh->free_pages -= extra;
    if (g->large_empty == chunk_ref(c)) g->large_empty = 0;
    atomic_fetch_add_explicit(&g->large_bytes, (uint64_t)extra << SHR_PAGE_SHIFT, memory_order_relaxed);
    return true;
}

/* Resize a huge block in place: within its last chunk by committing or
 * releasing pages, or into free chunks that follow. */
static bool huge_resize(shr_heap_t *h, uint64_t c, size_t size)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    /* No heap holds more than its capacity: refused before any rounding,
     * which would wrap (a size near SIZE_MAX rounds up to 0 pages, and a
     * shrink to 0 pages would free the block's own chunks). */
    if (size > h->capacity || size == 0) return false;
    uint64_t pages = SHR_ALIGN_UP((uint64_t)size, SHR_PAGE_SIZE) >> SHR_PAGE_SHIFT;
    uint64_t need = SHR_ALIGN_UP((uint64_t)size, SHR_CHUNK_SIZE) >> SHR_CHUNK_SHIFT;
    uint64_t have = t[c].run, old_pages = t[c].pages;
    bool ok = false;
    if (shr__lock(h, SHR_LOCK_ARENA) != 0) return false;
    if (pages <= old_pages) {
        /* Shrinking, by any amount, in place: the pages past the new size go
         * back to the system, and the chunks past it to the free runs (the
         * head's run shrinks first, so a crash leaves tails no head covers,
         * freed by the rebuild). Cannot fail: a release error only leaves
         * pages committed. Before, a shrink kept every chunk of the run and
         * was refused below three quarters of it, so a list's array shrank
         * once by a fifth and then never again. */
        uint64_t kept = need * SHR_PAGES_PER_CHUNK, end = old_pages < kept ? old_pages : kept;
        if (end > pages) /* the pages past `kept` go with their chunks */
            shr__seg_release(h, chunk_off(c) + (pages << SHR_PAGE_SHIFT), (end - pages) << SHR_PAGE_SHIFT);
        if (need < have) {
            t[c].run = need;
            shr__chunk_free(h, c + need, have - need);
        }
        ok = true;
    } else if (need <= have && need * 4 > have * 3) {
        ok = shr__seg_commit(h, chunk_off(c) + (old_pages << SHR_PAGE_SHIFT),
                             (pages - old_pages) << SHR_PAGE_SHIFT) == 0;
    } else if (need > have) {
        uint64_t r = c + have;
        if (r < shr_load_relaxed(&g->hwm) && shr_load_relaxed(&t[r].kind) == CHUNK_FREE && have + t[r].run >= need &&
            shr__seg_commit(h, chunk_off(c) + (old_pages << SHR_PAGE_SHIFT),
                            (pages - old_pages) << SHR_PAGE_SHIFT) == 0) {
            /* Take the whole free run, give back what is not needed. */
            uint64_t rn = t[r].run;
            shr__chunk_take_run(h, r);
            for (uint64_t i = have; i < have + rn; i++) {
                t[c + i].run = i;
                shr_store_relaxed(&t[c + i].kind, CHUNK_HUGE_TAIL);
            }
            t[c].run = have + rn;
            if (have + rn > need) {
                /* Return the surplus chunks: the head's run shrinks first, so
                 * a crash leaves tails no head covers (freed by the rebuild). */
                t[c].run = need;
                shr__chunk_free(h, c + need, have + rn - need);
            }
            ok = true;
        }
    }
    if (ok) t[c].pages = (uint32_t)pages;
    shr__unlock(h, SHR_LOCK_ARENA);
    if (ok)
        atomic_fetch_add_explicit(&g->huge_bytes, (pages - old_pages) << SHR_PAGE_SHIFT,
                                  memory_order_relaxed);
    return ok;
}

bool shr__large_resize(shr_heap_t *h, uint64_t off, size_t size)
{
    uint64_t c = off >> SHR_CHUNK_SHIFT;
    uint32_t kind = shr_load_relaxed(&chunk_table(h)[c].kind);
    if (kind == CHUNK_HUGE) return size > SHR_LARGE_REQUEST_THRESHOLD && huge_resize(h, c, size);
    if (size > SHR_LARGE_REQUEST_THRESHOLD) return false;
    uint32_t want = (uint32_t)(SHR_ALIGN_UP((uint64_t)size, SHR_PAGE_SIZE) >> SHR_PAGE_SHIFT);
    if (shr__lock(h, SHR_LOCK_LARGE) != 0) return false;
    bool ok = large_valid(h, off) && run_resize(h, off, want);
    shr__unlock(h, SHR_LOCK_LARGE);
    return ok;
}

/* ---- repair ---------------------------------------------------------------- */

/* Rebuild the free run lists, the bitmap, each chunk's free page count and
 * the count of free committed pages from the page maps. Where no head is
 * found (a merge a dead process left half done), the pages up to the next
 * whole run become free. Large lock held. */
int shr__large_repair(shr_heap_t *h)
{
    if (!alloc_ready(h)) return 0;
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    memset(g->large_runs, 0, sizeof g->large_runs);
    g->large_bitmap = 0;
    g->large_empty = 0;
    g->large_dirty = 0;
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    for (uint64_t c = g->first_data; c < hwm; c++) {
        if (shr_load_relaxed(&t[c].kind) != CHUNK_LARGE) continue;
        large_header_t *lh = large_header(h, c);
        lh->free_pages = 0;
        for (uint32_t p = 1; p < SHR_PAGES_PER_CHUNK;) {
            uint32_t n = lh->page[p].run, st = lh->page[p].state;
            if (n == 0 || p + n > SHR_PAGES_PER_CHUNK || (st != RUN_FREE && st != RUN_USED)) {
                /* No head here: pages a dead process was merging into a free
                 * run. Free up to the next entry that is a whole run. */
                uint32_t q = p + 1;
                while (q < SHR_PAGES_PER_CHUNK) {
                    page_entry_t *e = &lh->page[q];
                    if (e->run && q + e->run <= SHR_PAGES_PER_CHUNK && (e->state == RUN_FREE || e->state == RUN_USED) &&
                        lh->page[q + e->run - 1].run == e->run && lh->page[q + e->run - 1].state == e->state)
                        break;
                    q++;
                }
                n = q - p;
                st = RUN_FREE;
                tag_run(lh, p, n, RUN_FREE);
            }
            /* Merge consecutive free runs a crash may have left apart. */
            if (st == RUN_FREE) {
                uint32_t q = p + n;
                while (q < SHR_PAGES_PER_CHUNK && lh->page[q].state == RUN_FREE && lh->page[q].run &&
                       q + lh->page[q].run <= SHR_PAGES_PER_CHUNK)
                    q += lh->page[q].run;
                n = q - p;
                tag_run(lh, p, n, RUN_FREE);
                lh->page[p].next = lh->page[p].prev = 0;
                runs_push(h, run_off(c, p), n);
                lh->free_pages += n;
                g->large_dirty += committed_in(lh, p, n);
                if (n == SHR_LARGE_MAX_PAGES) g->large_empty = chunk_ref(c);
            } else {
                tag_run(lh, p, n, RUN_USED);
            }
            p += n;
        }
    }
    return 0;
}
