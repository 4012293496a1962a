/* Chunks
 *
 * The data area is cut into chunks of SHR_CHUNK_SIZE (256 KiB), one entry
 * each in the chunk table. Chunks are handed out as runs: one chunk for an
 * arena or a LARGE chunk, n for a huge block.
 *
 *   never used   index >= hwm; the table entry may not even be committed
 *   free run     head entry CHUNK_FREE with run = n; tail entry (n > 1)
 *                CHUNK_FREE_TAIL with run = n; on runs[run_list(n)]
 *   in use       any other kind
 *
 * Free runs are found without search in the common case: exact lists for
 * n < 32, power-of-two lists above; allocation takes the head of the first
 * list that must fit, and only when none does walks the one list whose runs
 * may or may not fit (a request of 32 chunks or more, 8 MiB and up).
 * Neighbouring free runs coalesce through the boundary tags. A freed run is
 * released with hole punching, so the segment's real size follows live data.
 *
 * Invariants (check.c):
 *   C1  every chunk below hwm belongs to exactly one run or object
 *   C2  free runs are maximal (no two adjacent) and on the list of their length
 * Locking: the arena lock guards the table's structure; `kind` is also read
 * without it by shr_free, which only ever sees kinds of blocks it owns.
 * Crash: the lists and tags are derived; shr__chunk_rebuild recomputes them
 * from the kinds.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "fault.h"

#define EXACT_RUNS 32

static unsigned run_list(uint64_t n)
{
    if (n < EXACT_RUNS) return (unsigned)n;
    unsigned lg = 63u - (unsigned)__builtin_clzll(n); /* n in [2^lg, 2^(lg+1)) */
    unsigned i = EXACT_RUNS + (lg - 5);
    return i < SHR_NRUNLISTS ? i : SHR_NRUNLISTS - 1;
}

/* Commit the table entries for chunks below `upto`. */
static int table_commit(shr_heap_t *h, uint64_t upto)
{
    alloc_global_t *g = alloc_global(h);
    if (upto <= g->table_committed) return 0;
    uint64_t base = h->hdr->table_off[SHR_LAYER_ALLOC];
    uint64_t from = SHR_ALIGN_DOWN(base + g->table_committed * sizeof(chunk_t), SHR_PAGE_SIZE);
    uint64_t to = SHR_ALIGN_UP(base + upto * sizeof(chunk_t), SHR_PAGE_SIZE);
    int rc = shr__seg_commit(h, from, to - from);
    if (rc) return rc;
    uint64_t entries = (to - base) / sizeof(chunk_t);
    g->table_committed = entries < g->nchunks ? entries : g->nchunks;
    return 0;
}

int shr__chunk_init(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    g->nchunks = h->capacity >> SHR_CHUNK_SHIFT;
    g->first_data = h->hdr->meta_size >> SHR_CHUNK_SHIFT;
    g->table_committed = 0;
    int rc = table_commit(h, g->first_data + 1);
    if (rc) return rc;
    for (uint64_t c = 0; c < g->first_data; c++) shr_store_relaxed(&t[c].kind, CHUNK_META);
    shr_store_relaxed(&g->hwm, g->first_data);
    return 0;
}

static void list_push(shr_heap_t *h, uint64_t c)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    unsigned l = run_list(t[c].run);
    SHR_ASSERT_INV("C2", shr_load_relaxed(&t[c].kind) == CHUNK_FREE && t[c].run > 0);
    t[c].prev = 0;
    t[c].next = g->runs[l];
    if (g->runs[l]) chunk_at_ref(h, g->runs[l])->prev = chunk_ref(c);
    g->runs[l] = chunk_ref(c);
}

static void list_remove(shr_heap_t *h, uint64_t c)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    if (t[c].prev) chunk_at_ref(h, t[c].prev)->next = t[c].next;
    else g->runs[run_list(t[c].run)] = t[c].next;
    if (t[c].next) chunk_at_ref(h, t[c].next)->prev = t[c].prev;
    SHR_ASSERT_INV("C2", t[c].prev || g->runs[run_list(t[c].run)] == t[c].next);
    t[c].next = t[c].prev = 0;
}

/* Mark chunks [c, c+n) a free run and list it. */
static void make_free_run(shr_heap_t *h, uint64_t c, uint64_t n)
{
    chunk_t *t = chunk_table(h);
    SHR_ASSERT_INV("C1", n > 0 && c >= alloc_global(h)->first_data && c + n <= shr_load_relaxed(&alloc_global(h)->hwm));
    t[c].run = n;
    shr_store_relaxed(&t[c].kind, CHUNK_FREE);
    if (n > 1) {
        t[c + n - 1].run = n;
        shr_store_relaxed(&t[c + n - 1].kind, CHUNK_FREE_TAIL);
    }
    list_push(h, c);
}

/* Take run c (its head, of length len) off its list for an object of n
 * chunks: the rest is split off as a free run, the n chunks left UNUSED for
 * the caller to tag (C1 holds again once it has). Returns c's ref. */
static uint64_t take_from_run(shr_heap_t *h, uint64_t c, uint64_t n)
{
    chunk_t *t = chunk_table(h);
    uint64_t len = t[c].run;
    SHR_ASSERT_INV("C2", shr_load_relaxed(&t[c].kind) == CHUNK_FREE && len >= n);
    list_remove(h, c);
    if (len > n) make_free_run(h, c + n, len - n);
    for (uint64_t i = c; i < c + n; i++) shr_store_relaxed(&t[i].kind, CHUNK_UNUSED);
    return chunk_ref(c);
}

uint64_t shr__chunk_alloc(shr_heap_t *h, uint64_t n)
{
    alloc_global_t *g = alloc_global(h);
    if (n == 0) return 0;
    for (unsigned l = run_list(n); l < SHR_NRUNLISTS; l++) {
        uint64_t head = g->runs[l];
        if (!head) continue;
        if (chunk_at_ref(h, head)->run < n) continue; /* only possible in the first inexact list */
        return take_from_run(h, chunk_index(head), n);
    }
    /* The first inexact list may hold a fitting run behind a head that is
     * too small: walk it only now, when nothing else fits. */
    unsigned first = run_list(n);
    if (first >= EXACT_RUNS)
        for (uint64_t r = g->runs[first]; r; r = chunk_at_ref(h, r)->next)
            if (chunk_at_ref(h, r)->run >= n) return take_from_run(h, chunk_index(r), n);
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    if (n > g->nchunks - hwm) return 0;
    if (table_commit(h, hwm + n + 1) != 0) return 0;
    shr_store_relaxed(&g->hwm, hwm + n);
    return chunk_ref(hwm);
}

void shr__chunk_free(shr_heap_t *h, uint64_t c, uint64_t n)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    /* Kinds first, then the hole: a crash in between leaves free chunks
     * whose pages are still committed, never an arena of zeroed pages. */
    for (uint64_t i = c; i < c + n; i++) shr__chunk_reset(&t[i]);
    if (!SHR_FAULT(ALLOC_CHUNK_RELEASE)) shr__seg_release(h, chunk_off(c), n * SHR_CHUNK_SIZE);
    /* Coalesce with the run on the left, then on the right. */
    if (c > g->first_data) {
        uint32_t k = shr_load_relaxed(&t[c - 1].kind);
        if (k == CHUNK_FREE || k == CHUNK_FREE_TAIL) {
            uint64_t left = k == CHUNK_FREE ? c - 1 : c - t[c - 1].run;
            uint64_t len = t[left].run;
            list_remove(h, left);
            shr_store_relaxed(&t[c - 1].kind, CHUNK_UNUSED);
            shr_store_relaxed(&t[left].kind, CHUNK_UNUSED);
            c = left;
            n += len;
        }
    }
    uint64_t right = c + n;
    if (right < shr_load_relaxed(&g->hwm) && shr_load_relaxed(&t[right].kind) == CHUNK_FREE) {
        uint64_t len = t[right].run;
        list_remove(h, right);
        shr_store_relaxed(&t[right].kind, CHUNK_UNUSED);
        if (len > 1) shr_store_relaxed(&t[right + len - 1].kind, CHUNK_UNUSED);
        n += len;
    }
    make_free_run(h, c, n);
}

void shr__chunk_take_run(shr_heap_t *h, uint64_t c)
{
    chunk_t *t = chunk_table(h);
    uint64_t n = t[c].run;
    list_remove(h, c);
    for (uint64_t i = c; i < c + n; i++) shr_store_relaxed(&t[i].kind, CHUNK_UNUSED);
}

void shr__chunk_rebuild(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    chunk_t *t = chunk_table(h);
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    memset(g->runs, 0, sizeof g->runs);
    /* Free-like: free runs, chunks taken but never tagged, and huge tails no
     * head covers (a crash between writing the tails and the head, which is
     * the commit): heads skip their own tails below, so a tail met here is
     * uncovered. */
#define FREE_LIKE(k) ((k) == CHUNK_FREE || (k) == CHUNK_FREE_TAIL || (k) == CHUNK_UNUSED || (k) == CHUNK_HUGE_TAIL)
    for (uint64_t c = g->first_data; c < hwm;) {
        uint32_t k = shr_load_relaxed(&t[c].kind);
        if (FREE_LIKE(k)) {
            uint64_t e = c;
            while (e < hwm && FREE_LIKE(shr_load_relaxed(&t[e].kind))) shr__chunk_reset(&t[e++]);
            make_free_run(h, c, e - c);
            c = e;
        } else if (k == CHUNK_HUGE) {
            uint64_t n = t[c].run;
            if (n == 0 || c + n > hwm) n = 1;
            c += n;
        } else {
            c++;
        }
    }
#undef FREE_LIKE
}
