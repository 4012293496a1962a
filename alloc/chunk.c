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

#define EXACT_RUNS 32

static unsigned run_list(uint64_t n)
{
    if (n < EXACT_RUNS) return (unsigned)n;
    unsigned lg = 63u - (unsigned)__builtin_clzll(n); /* n in [2^lg, 2^(lg+1)) */
    unsigned i = EXACT_RUNS + (lg - 5);
    return i < NRUNLISTS ? i : NRUNLISTS - 1;
}

uint64_t shr__alloc_table_size(uint64_t capacity)
{
    return (capacity >> SHR_CHUNK_SHIFT) * sizeof(chunk_t);
}

/* Commit the table entries for chunks below `upto`. */
static int table_commit(shr_heap_t *h, uint64_t upto)
{
    alloc_global_t *g = AG(h);
    if (upto <= g->table_committed) return 0;
    uint64_t base = h->hdr->table_off[SHR_LAYER_ALLOC];
    uint64_t from = SHR_ALIGN_DOWN(base + g->table_committed * sizeof(chunk_t), 4096);
    uint64_t to = SHR_ALIGN_UP(base + upto * sizeof(chunk_t), 4096);
    int rc = shr__seg_commit(h, from, to - from);
    if (rc) return rc;
    uint64_t entries = (to - base) / sizeof(chunk_t);
    g->table_committed = entries < g->nchunks ? entries : g->nchunks;
    return 0;
}

int shr__chunk_init(shr_heap_t *h)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    g->nchunks = h->capacity >> SHR_CHUNK_SHIFT;
    g->first_data = h->hdr->meta_size >> SHR_CHUNK_SHIFT;
    g->table_committed = 0;
    int rc = table_commit(h, g->first_data + 1);
    if (rc) return rc;
    for (uint64_t c = 0; c < g->first_data; c++) wr(&t[c].kind, CHUNK_META);
    wr(&g->hwm, g->first_data);
    return 0;
}

static void list_push(shr_heap_t *h, uint64_t c)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    unsigned l = run_list(t[c].run);
    t[c].prev = 0;
    t[c].next = g->runs[l];
    if (g->runs[l]) t[g->runs[l] - 1].prev = c + 1;
    g->runs[l] = c + 1;
}

static void list_remove(shr_heap_t *h, uint64_t c)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    if (t[c].prev) t[t[c].prev - 1].next = t[c].next;
    else g->runs[run_list(t[c].run)] = t[c].next;
    if (t[c].next) t[t[c].next - 1].prev = t[c].prev;
    t[c].next = t[c].prev = 0;
}

/* Mark chunks [c, c+n) a free run and list it. */
static void make_free_run(shr_heap_t *h, uint64_t c, uint64_t n)
{
    chunk_t *t = CT(h);
    t[c].run = n;
    wr(&t[c].kind, CHUNK_FREE);
    if (n > 1) {
        t[c + n - 1].run = n;
        wr(&t[c + n - 1].kind, CHUNK_FREE_TAIL);
    }
    list_push(h, c);
}

uint64_t shr__chunk_alloc(shr_heap_t *h, uint64_t n)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    if (n == 0) return 0;
    for (unsigned l = run_list(n); l < NRUNLISTS; l++) {
        uint64_t head = g->runs[l];
        if (!head) continue;
        uint64_t c = head - 1;
        if (t[c].run < n) continue; /* only possible in the first inexact list */
        uint64_t len = t[c].run;
        list_remove(h, c);
        if (len > n) make_free_run(h, c + n, len - n);
        /* The caller sets the kind of the chunks it takes. */
        for (uint64_t i = c; i < c + n; i++) wr(&t[i].kind, CHUNK_UNUSED);
        return c;
    }
    /* The first inexact list may hold a fitting run behind a head that is
     * too small: walk it only now, when nothing else fits. */
    unsigned first = run_list(n);
    if (first >= EXACT_RUNS)
        for (uint64_t r = g->runs[first]; r; r = t[r - 1].next)
            if (t[r - 1].run >= n) {
                uint64_t c = r - 1, len = t[c].run;
                list_remove(h, c);
                if (len > n) make_free_run(h, c + n, len - n);
                for (uint64_t i = c; i < c + n; i++) wr(&t[i].kind, CHUNK_UNUSED);
                return c;
            }
    uint64_t hwm = rd(&g->hwm);
    if (n > g->nchunks - hwm) return 0;
    if (table_commit(h, hwm + n + 1) != 0) return 0;
    wr(&g->hwm, hwm + n);
    return hwm;
}

void shr__chunk_free(shr_heap_t *h, uint64_t c, uint64_t n)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    /* Kinds first, then the hole: a crash in between leaves free chunks
     * whose pages are still committed, never an arena of zeroed pages. */
    for (uint64_t i = c; i < c + n; i++) shr__chunk_reset(&t[i]);
    shr__seg_release(h, chunk_off(c), n * SHR_CHUNK_SIZE);
    /* Coalesce with the run on the left, then on the right. */
    if (c > g->first_data) {
        uint32_t k = rd(&t[c - 1].kind);
        if (k == CHUNK_FREE || k == CHUNK_FREE_TAIL) {
            uint64_t left = k == CHUNK_FREE ? c - 1 : c - t[c - 1].run;
            uint64_t len = t[left].run;
            list_remove(h, left);
            wr(&t[c - 1].kind, CHUNK_UNUSED);
            wr(&t[left].kind, CHUNK_UNUSED);
            c = left;
            n += len;
        }
    }
    uint64_t right = c + n;
    if (right < rd(&g->hwm) && rd(&t[right].kind) == CHUNK_FREE) {
        uint64_t len = t[right].run;
        list_remove(h, right);
        wr(&t[right].kind, CHUNK_UNUSED);
        if (len > 1) wr(&t[right + len - 1].kind, CHUNK_UNUSED);
        n += len;
    }
    make_free_run(h, c, n);
}

void shr__chunk_take_run(shr_heap_t *h, uint64_t c)
{
    chunk_t *t = CT(h);
    uint64_t n = t[c].run;
    list_remove(h, c);
    for (uint64_t i = c; i < c + n; i++) wr(&t[i].kind, CHUNK_UNUSED);
}

void shr__chunk_rebuild(shr_heap_t *h)
{
    alloc_global_t *g = AG(h);
    chunk_t *t = CT(h);
    uint64_t hwm = rd(&g->hwm);
    memset(g->runs, 0, sizeof g->runs);
    /* Free-like: free runs, chunks taken but never tagged, and huge tails no
     * head covers (a crash between writing the tails and the head, which is
     * the commit): heads skip their own tails below, so a tail met here is
     * uncovered. */
#define FREE_LIKE(k) ((k) == CHUNK_FREE || (k) == CHUNK_FREE_TAIL || (k) == CHUNK_UNUSED || (k) == CHUNK_HUGE_TAIL)
    for (uint64_t c = g->first_data; c < hwm;) {
        uint32_t k = rd(&t[c].kind);
        if (FREE_LIKE(k)) {
            uint64_t e = c;
            while (e < hwm && FREE_LIKE(rd(&t[e].kind))) shr__chunk_reset(&t[e++]);
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
