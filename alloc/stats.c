/* Statistics
 *
 * Per size class and per arena, the figures come from a scan of the arenas,
 * one arena per hold of the arena lock (the fast paths never take it, and a
 * slow path waits for one arena's walk at most): pools, blocks in use and
 * free per class, unused pools per arena.
 * Each thread slot keeps one net counter of blocks it allocated minus those
 * it freed, folded into dead_outstanding when its process dies.
 *
 * The report has the shape of CPython's sys._debugmallocstats(); its byte
 * lines sum exactly to arenas x SHR_ARENA_SIZE:
 *   allocated blocks + available blocks + unused pools + pool headers
 *   + quantization == arenas * SHR_ARENA_SIZE
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "alloc.h"

/* Chunk table entries read per hold of the large lock (a few µs). */
#define STATS_STEP 1024

typedef struct scan {
    shr_alloc_stats_t *st;
    uint64_t bytes_used, bytes_avail, bytes_unused, bytes_headers, bytes_quant;
    uint64_t arenas, pools_small_unused, pools_medium_unused;
} scan_t;

/* One chunk's share of the figures. Arena lock held (for this chunk only:
 * collect takes it once per chunk). */
static void scan_chunk(shr_heap_t *h, scan_t *s, uint64_t c)
{
    chunk_t *t = chunk_table(h);
    uint32_t k = shr_load_relaxed(&t[c].kind);
    if (k == CHUNK_FREE) {
        s->st->chunks_free += t[c].run;
        return;
    }
    if (k != CHUNK_SMALL && k != CHUNK_MEDIUM) return;
    s->arenas++;
    uint32_t shift = arena_pool_shift(h, k);
    uint64_t psize = (uint64_t)1 << shift, end = t[c].pool_address;
    uint64_t start = arena_pools_start(chunk_off(c), shift); /* the first pool's memory */
    if (end < start || end > chunk_off(c + 1)) end = chunk_off(c + 1); /* damaged */
    /* Page 0 holds the arena's pool headers: the rest is pools. */
    s->bytes_headers += SHR_ARENA_META;
    uint64_t untouched = (chunk_off(c + 1) - end) >> shift;
    s->st->pools_untouched += untouched;
    s->bytes_unused += chunk_off(c + 1) - (end > chunk_off(c) + SHR_ARENA_META ? end : chunk_off(c) + SHR_ARENA_META);
    for (uint64_t mem = start; mem < end; mem += psize) {
        pool_header_t *p = pool_at(h, pool_hdr_of(mem, shift));
        uint32_t first = pool_first(mem);
        uint32_t state = shr_load_relaxed(&p->state), cls = shr_load_relaxed(&p->szidx);
        if (state == POOL_EMPTY || cls >= SHR_NB_PCLASSES) {
            s->st->pools_empty++;
            s->bytes_unused += psize - first;
            continue;
        }
        /* Geometry from the class, not from fields an owner may be
         * rewriting without a lock. */
        shr_class_stats_t *cs = &s->st->classes[class_is_obj(cls) ? cls - SHR_OBJ_CLASS : cls];
        uint64_t size = shr__class_size[cls], capacity = (psize - first) / size;
        uint64_t nused = shr_load_relaxed(&p->nused);
        if (nused > capacity) nused = capacity; /* a live owner mid-update */
        cs->pools++;
        cs->blocks_in_use += nused;
        cs->blocks_free += capacity - nused;
        if (state == POOL_ORPHAN) s->st->pools_orphaned++;
        s->bytes_used += nused * size;
        s->bytes_avail += (capacity - nused) * size;
        s->bytes_quant += psize - first - capacity * size;
    }
}

static int collect(shr_heap_t *h, shr_alloc_stats_t *st, scan_t *s)
{
    alloc_global_t *g = alloc_global(h);
    memset(st, 0, sizeof *st);
    memset(s, 0, sizeof *s);
    s->st = st;
    for (unsigned c = 0; c < SHR_NB_CLASSES; c++) {
        st->classes[c].block_size = shr__class_size[c];
        st->classes[c].pool_size = 1u << arena_pool_shift(h, c < SHR_NB_SMALL ? CHUNK_SMALL : CHUNK_MEDIUM);
    }
    /* The walks trust these bounds: a damaged heap is reported by check,
     * never walked past its table. */
    uint64_t hwm = shr_load_relaxed(&g->hwm);
    if (g->nchunks != h->capacity >> SHR_CHUNK_SHIFT || g->first_data != h->hdr->meta_size >> SHR_CHUNK_SHIFT ||
        hwm < g->first_data || hwm > g->nchunks)
        return SHR_ECORRUPT;
    /* The arena lock for one chunk at a time: no allocator slow path waits
     * for more than one arena's walk (the figures are a snapshot per arena). */
    for (uint64_t c = g->first_data;; c++) {
        int rc = shr__lock(h, SHR_LOCK_ARENA);
        if (rc) return rc;
        hwm = shr_load_relaxed(&g->hwm);
        bool more = c < hwm && c < g->nchunks;
        if (more) scan_chunk(h, s, c);
        shr__unlock_step(h, SHR_LOCK_ARENA); /* a waiter goes first */
        if (!more) break;
    }
    st->chunks_total = g->nchunks - g->first_data;
    st->chunks_used = hwm - g->first_data - st->chunks_free;
    st->capacity = h->capacity;
    st->committed = shr__seg_committed(h);
    st->meta_size = h->hdr->meta_size;
    st->arenas = s->arenas;
    st->arenas_highwater = shr_load_relaxed(&g->arenas_highwater);
    st->arenas_allocated = shr_load_relaxed(&g->arenas_allocated);
    st->arenas_released = shr_load_relaxed(&g->arenas_released);
    st->large_blocks = shr_load_relaxed(&g->large_blocks) + shr_load_relaxed(&g->huge_blocks);
    st->large_bytes = shr_load_relaxed(&g->large_bytes) + shr_load_relaxed(&g->huge_bytes);
    st->dead_outstanding_blocks = shr_load_relaxed(&g->dead_outstanding);
    st->dead_threads = shr_load_relaxed(&g->dead_threads);
    /* Free pages of the large chunks: the large lock for STATS_STEP chunks
     * at a time (each chunk's count is read whole under it). */
    for (uint64_t c = g->first_data;;) {
        int rc = shr__lock(h, SHR_LOCK_LARGE);
        if (rc) return rc;
        uint64_t end = c + STATS_STEP, top = shr_load_relaxed(&g->hwm);
        if (top > g->nchunks) top = g->nchunks;
        if (end > top) end = top;
        for (; c < end; c++)
            if (shr_load_relaxed(&chunk_table(h)[c].kind) == CHUNK_LARGE)
                st->large_free_pages += ((large_header_t *)(h->base + chunk_off(c)))->free_pages;
        shr__unlock_step(h, SHR_LOCK_LARGE);
        if (c >= top) break;
    }
    return 0;
}

int shr_heap_stats(shr_heap_t *heap, shr_alloc_stats_t *out)
{
    scan_t s;
    shr_alloc_stats_t st;
    if (!heap || !out) return -EINVAL;
    int rc = collect(heap, &st, &s);
    if (rc == 0) *out = st;
    return rc;
}

static void line(FILE *out, const char *label, uint64_t v)
{
    char num[32], grouped[48];
    int n = snprintf(num, sizeof num, "%" PRIu64, v), j = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) grouped[j++] = ',';
        grouped[j++] = num[i];
    }
    grouped[j] = 0;
    fprintf(out, "%-40s= %21s\n", label, grouped);
}

int shr_heap_stats_print(shr_heap_t *heap, FILE *out)
{
    scan_t s;
    shr_alloc_stats_t *st = malloc(sizeof *st);
    char label[64];
    if (!heap || !out || !st) {
        free(st);
        return !st ? -ENOMEM : -EINVAL;
    }
    int rc = collect(heap, st, &s);
    if (rc) {
        free(st);
        return rc;
    }
    fprintf(out, "Small block threshold = %d, in %d size classes.\n", SHR_SMALL_REQUEST_THRESHOLD, SHR_NB_SMALL);
    fprintf(out, "Medium block threshold = %d, in %d size classes.\n\n", SHR_MEDIUM_REQUEST_THRESHOLD,
            SHR_NB_MEDIUM);
    fprintf(out, "class   size   num pools   blocks in use  avail blocks\n");
    fprintf(out, "-----   ----   ---------   -------------  ------------\n");
    for (unsigned c = 0; c < SHR_NB_CLASSES; c++) {
        shr_class_stats_t *cs = &st->classes[c];
        if (!cs->pools) continue;
        fprintf(out, "%5u %6u %11" PRIu64 " %15" PRIu64 " %13" PRIu64 "\n", c, cs->block_size,
                cs->pools, cs->blocks_in_use, cs->blocks_free);
    }
    fputc('\n', out);
    line(out, "# arenas allocated total", st->arenas_allocated);
    line(out, "# arenas reclaimed", st->arenas_released);
    line(out, "# arenas highwater mark", st->arenas_highwater);
    line(out, "# arenas allocated current", s.arenas);
    snprintf(label, sizeof label, "%" PRIu64 " arenas * %d bytes/arena", s.arenas, (int)SHR_ARENA_SIZE);
    line(out, label, s.arenas * SHR_ARENA_SIZE);
    fputc('\n', out);
    line(out, "# bytes in allocated blocks", s.bytes_used);
    line(out, "# bytes in available blocks", s.bytes_avail);
    snprintf(label, sizeof label, "%" PRIu64 " unused pools (empty or never carved)",
             st->pools_empty + st->pools_untouched);
    line(out, label, s.bytes_unused);
    line(out, "# bytes lost to pool headers", s.bytes_headers);
    line(out, "# bytes lost to quantization", s.bytes_quant);
    line(out, "# bytes lost to arena alignment", 0);
    line(out, "Total", s.bytes_used + s.bytes_avail + s.bytes_unused + s.bytes_headers + s.bytes_quant);
    fputc('\n', out);
    line(out, "# orphaned pools", st->pools_orphaned);
    line(out, "# large and huge blocks", st->large_blocks);
    line(out, "# bytes in large and huge blocks", st->large_bytes);
    line(out, "# free pages in large chunks", st->large_free_pages);
    line(out, "# chunks used", st->chunks_used);
    line(out, "# chunks free (coalesced runs)", st->chunks_free);
    line(out, "# dead threads reclaimed", st->dead_threads);
    line(out, "# blocks outstanding from the dead", st->dead_outstanding_blocks);
    line(out, "# bytes of metadata", st->meta_size);
    line(out, "# bytes committed", st->committed);
    line(out, "# bytes reserved (capacity)", st->capacity);
    free(st);
    return 0;
}
