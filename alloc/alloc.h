/* alloc: arenas, pools, size classes, large blocks, roots, statistics, check.
 *
 * The structures of the allocator and the prototypes shared by its files.
 * docs/design/alloc.md draws them; the summary:
 *
 *   segment  = metadata chunks, then data chunks of SHR_CHUNK_SIZE (256 KiB)
 *   chunk    = one entry of the chunk table (chunk_t), indexed by off >> 18:
 *              FREE run, SMALL arena, MEDIUM arena, LARGE (page runs) or
 *              HUGE run (head and tail chunks)
 *   arena    = a SMALL chunk cut into 64 pools of 4 KiB, or a MEDIUM chunk
 *              cut into 4 pools of 64 KiB (pymalloc's arena, two geometries)
 *   pool     = one size class; header, then blocks carved lazily
 *   block    = 16-byte aligned; a free block links through bytes 8..15, so
 *              bytes 0..7 (an object's refcount) are never written by us
 *
 * Size classes:
 *   small   1..512        32 classes of 16 bytes        4 KiB pools
 *   medium  513..16384    20 classes, 4 per power of 2  64 KiB pools
 *   large   16385..258048 runs of 4 KiB pages inside a LARGE chunk
 *   huge    above         runs of whole chunks; only the pages used are committed
 *
 * Nothing here is a pointer: every link is an offset from the segment base
 * (0 = none), or a chunk index + 1 (0 = none).
 */
#ifndef SHR_ALLOC_H
#define SHR_ALLOC_H

#include "shm.h"

/* ---- Tunables (constraints checked below) ----------------------------- */

#define ALIGNMENT_SHIFT 4
#define ALIGNMENT (1u << ALIGNMENT_SHIFT)          /* 16 */
#define SMALL_REQUEST_THRESHOLD 512
#define NB_SMALL (SMALL_REQUEST_THRESHOLD / ALIGNMENT) /* 32 */
#define NB_MEDIUM 20
#define NB_CLASSES (NB_SMALL + NB_MEDIUM)
#define MEDIUM_REQUEST_THRESHOLD 16384
#define SMALL_POOL_SHIFT 12                        /* 4 KiB */
#define MEDIUM_POOL_SHIFT 16                       /* 64 KiB */
#define ARENA_SIZE SHR_CHUNK_SIZE                  /* 256 KiB */
#define PAGE_SHIFT 12
#define PAGE_SIZE ((uint64_t)1 << PAGE_SHIFT)
#define PAGES_PER_CHUNK (SHR_CHUNK_SIZE >> PAGE_SHIFT) /* 64 */
#define LARGE_MAX_PAGES (PAGES_PER_CHUNK - 1)      /* page 0 is the chunk header */
#define LARGE_REQUEST_THRESHOLD (LARGE_MAX_PAGES * PAGE_SIZE)
#define POOL_OVERHEAD 64                           /* sizeof(pool_header_t) */
#define MAX_POOLS_IN_ARENA (ARENA_SIZE >> SMALL_POOL_SHIFT) /* 64 */
#define NRUNLISTS 48                               /* free chunk run lists */
#define ROOTS_MAX 1024
/* Per-thread cache of empty pools: at most CACHE_MAX, filled CACHE_FILL at a
 * time under one arena lock, drained to half when full. Bounds what a thread
 * holds: 128 KiB of small pools, 128 KiB of medium ones. */
#define CACHE_MAX_SMALL 32
#define CACHE_FILL_SMALL 8
#define CACHE_MAX_MEDIUM 2
#define CACHE_FILL_MEDIUM 1
/* Blocks carved per slow-path call (within one page). */
#define CARVE_BATCH 16

#if SMALL_REQUEST_THRESHOLD % ALIGNMENT != 0 || NB_SMALL != SHR_SMALL_CLASSES
#error "small classes must be multiples of ALIGNMENT and match the public count"
#endif
#if NB_MEDIUM != SHR_MEDIUM_CLASSES
#error "medium class count must match the public header"
#endif
#if SHR_CHUNK_SHIFT != 18 || SMALL_POOL_SHIFT > SHR_CHUNK_SHIFT || MEDIUM_POOL_SHIFT > SHR_CHUNK_SHIFT
#error "an arena is one 256 KiB chunk and holds whole pools"
#endif

/* ---- Chunk table ------------------------------------------------------- */

enum chunk_kind {
    CHUNK_UNUSED = 0, /* above the high-water mark: never used */
    CHUNK_META,       /* holds the header and metadata */
    CHUNK_FREE,       /* head of a free run (run = length) */
    CHUNK_FREE_TAIL,  /* last chunk of a free run longer than 1 (run = length) */
    CHUNK_SMALL,      /* arena of 4 KiB pools */
    CHUNK_MEDIUM,     /* arena of 64 KiB pools */
    CHUNK_LARGE,      /* page runs */
    CHUNK_HUGE,       /* head of a huge block (run = chunks, pages = pages committed) */
    CHUNK_HUGE_TAIL,  /* other chunks of a huge block (run = chunks back to the head) */
};

/* Arena geometry: the two kinds of arena share all of pymalloc's machinery. */
enum { AC_SMALL, AC_MEDIUM, NB_ARENA_CLASSES };

/* One entry per chunk: the arena_object of pymalloc, plus what a chunk is.
 * Changes under the arena lock; `kind` is written last when a chunk changes
 * kind (the commit point), and read without the lock by shr_free. */
typedef struct chunk {
    _Atomic uint32_t kind;      /* enum chunk_kind */
    uint32_t nfreepools;        /* arena: empty pools + never-carved pools */
    uint32_t ntotalpools;       /* arena: 64 or 4 */
    uint32_t pages;             /* huge head: pages committed */
    uint64_t run;               /* free/huge run length in chunks (see kinds) */
    uint64_t pool_address;      /* arena: offset of the next pool to carve */
    uint64_t freepools;         /* arena: singly linked empty pools (offsets) */
    uint64_t next;              /* usable_arenas / free run list: chunk index + 1 */
    uint64_t prev;
    uint64_t pad;
} chunk_t;

/* ---- Pools ------------------------------------------------------------- */

/* Pool states: every carved pool is in exactly one.
 *
 *   USED    owner != 0, on its owner slot's used[szidx] list; has local free
 *           blocks or untouched space
 *   FULL    no local free block, no untouched space; on no list. owner == 0
 *           means given up: REMOTE_UNOWNED is set in `remote`, and the first
 *           thread to free into it adopts it (CAS on owner)
 *   EMPTY   nused == 0; owner == 0 on its arena's freepools list, or
 *           owner != 0 in that thread's cache of empty pools (taken from and
 *           given back to the arenas in batches, one lock per batch)
 *   ORPHAN  owner died or exited with the pool in use; owner == 0, on the
 *           orphan list of its class, adopted by the next thread that needs a
 *           pool of that class
 *
 * Invariants (check.c; at SHR_DEBUG >= 3 a pool is also validated after each
 * slow-path allocation):
 *   P1  nused == carved blocks - |local free list| (blocks on the remote
 *       stack count as in use until the owner collects them)
 *   P2  every free-list and remote-stack offset lies in the pool, on a block
 *       boundary, below nextoffset, and each list is acyclic
 *   P3  state and list membership agree: USED pools are owned and on their
 *       owner's list; EMPTY pools are unowned on freepools or owned in their
 *       owner's cache; ORPHAN pools are unowned on an orphan list; FULL pools
 *       are owned, or unowned with REMOTE_UNOWNED set
 */
enum pool_state { POOL_EMPTY = 1, POOL_USED, POOL_FULL, POOL_ORPHAN };

#define REMOTE_UNOWNED ((uint64_t)1) /* low bit of `remote`: pool given up full */
#define REMOTE_FLAGS ((uint64_t)ALIGNMENT - 1)

typedef struct pool_header {
    _Atomic uint32_t nused;      /* +0  allocated blocks (owner), incl. uncollected remote frees */
    _Atomic uint16_t szidx;      /* +4  class index */
    uint16_t shift;              /* +6  log2 of the pool size */
    _Atomic uint64_t freeblock;  /* +8  local free list (offset); owner only */
    uint64_t nextpool;           /* +16 list link (offset), by state */
    uint64_t prevpool;           /* +24 */
    _Atomic uint32_t nextoffset; /* +32 offset in pool of the next untouched block */
    uint32_t maxnextoffset;      /* +36 last offset a block may start at */
    _Atomic uint32_t owner;      /* +40 thread slot + 1, or 0 */
    _Atomic uint32_t state;      /* +44 enum pool_state */
    _Atomic uint64_t remote;     /* +48 remote-free stack: top offset | flags */
    uint32_t capacity;           /* +56 blocks per pool of this class */
    uint32_t block_size;         /* +60 bytes */
} pool_header_t;

_Static_assert(sizeof(pool_header_t) == POOL_OVERHEAD, "pool header size");

/* ---- Large chunks: page runs --------------------------------------------
 *
 * Page 0 of a LARGE chunk is its header: a map of the other 63 pages. A run
 * of n pages starting at page p has map entries at p (head) and p+n-1 (tail)
 * holding n and its state; free runs are also on the global list of their
 * length, linked by run offset. Free pages are released (hole punched). */
enum { RUN_FREE = 1, RUN_USED = 2 };

typedef struct page_entry {
    uint32_t run;   /* run length in pages (head and tail entries) */
    uint32_t state; /* RUN_FREE / RUN_USED; 0 inside a run */
    uint64_t next;  /* free list links: run offsets (head entry only) */
    uint64_t prev;
} page_entry_t;

typedef struct large_header {
    uint64_t magic;
    uint32_t free_pages;
    uint32_t pad;
    uint64_t committed;                 /* bit i: page i is committed (page 0 always) */
    page_entry_t page[PAGES_PER_CHUNK]; /* [0] unused */
} large_header_t;

/* Free pages of LARGE chunks stay committed (a free/alloc loop then makes no
 * system call) until this many are free and committed across the heap, then
 * all are released; shr_heap_collect releases them at once. */
#define LARGE_DIRTY_MAX 1024 /* pages: 4 MiB */

#define LARGE_MAGIC 0x6c617267655f6368ull /* "large_ch" */

/* ---- Global allocator state (the layer's global region) ---------------- */

typedef struct arena_class {
    uint64_t usable;                       /* head of usable_arenas: chunk + 1 */
    uint64_t nfp2lasta[MAX_POOLS_IN_ARENA + 1]; /* rightmost arena with n free pools */
    uint32_t npools;                       /* pools per arena */
    uint32_t shift;                        /* pool size shift */
    uint64_t narenas;                      /* arenas of this class now */
    uint64_t nempty;                       /* arenas with every pool free */
} arena_class_t;

typedef struct root_entry {
    char name[SHR_ROOT_NAME_MAX + 1];      /* "" = free slot */
    _Atomic uint64_t off;
    uint64_t flags;                        /* ROOT_REF: holds a reference (gc layer) */
} root_entry_t;

#define ROOT_REF 1u

typedef struct alloc_global {
    /* chunk allocator, under the arena lock */
    uint64_t nchunks;                      /* capacity >> CHUNK_SHIFT */
    uint64_t first_data;                   /* first chunk after the metadata */
    _Atomic uint64_t hwm;                  /* chunks >= hwm were never used */
    uint64_t table_committed;              /* chunk table entries committed */
    uint64_t runs[NRUNLISTS];              /* free runs by length: chunk + 1 */
    arena_class_t ac[NB_ARENA_CLASSES];
    uint64_t orphans[NB_CLASSES];          /* orphan pools by class (offsets) */
    /* large page runs, under the large lock */
    uint64_t large_runs[PAGES_PER_CHUNK];  /* free runs of n pages (offsets) */
    uint64_t large_bitmap;                 /* bit n set: large_runs[n] non-empty */
    uint64_t large_empty;                  /* a fully free LARGE chunk kept: chunk + 1 */
    uint64_t large_dirty;                  /* free pages still committed */
    /* statistics, relaxed atomics */
    _Atomic uint64_t arenas_allocated, arenas_released, arenas_highwater;
    _Atomic uint64_t large_blocks, large_bytes, huge_blocks, huge_bytes;
    _Atomic uint64_t dead_outstanding, dead_threads;
    /* roots, under the roots lock */
    root_entry_t roots[ROOTS_MAX];
} alloc_global_t;

/* Per thread slot: the slot's own pools, its cache of empty pools and its
 * net counter. Owner thread only (the reclaim of a dead slot aside). */
typedef struct alloc_tslot {
    uint64_t used[NB_CLASSES];             /* head of the used list (offset) */
    uint64_t cache[NB_ARENA_CLASSES];      /* empty pools kept by this thread (offsets) */
    uint32_t ncache[NB_ARENA_CLASSES];
    /* Pool blocks this thread allocated minus those it freed (locally or
     * remotely): what it leaves behind if it dies. One counter, not one per
     * class: per-class call counts cost ~1 ns per malloc/free pair
     * (measured), and the statistics get blocks in use per class from the
     * pools themselves. */
    _Atomic uint64_t net;
} alloc_tslot_t;


/* ---- Size classes ------------------------------------------------------ */

extern const uint32_t shr__class_size[NB_CLASSES];
extern const uint8_t shr__medium_index[MEDIUM_REQUEST_THRESHOLD / 128];

static inline unsigned size_to_class(size_t n)
{
    if (n <= SMALL_REQUEST_THRESHOLD) return n ? (unsigned)((n - 1) >> ALIGNMENT_SHIFT) : 0;
    return NB_SMALL + shr__medium_index[(n - 1) >> 7];
}

/* ---- Accessors --------------------------------------------------------- */

#define rd(p) atomic_load_explicit((p), memory_order_relaxed)
#define wr(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

/* The handle keeps the chunk table and the globals in hot[] (set by
 * shr__alloc_open), so that the fast paths reach them in one load. */
static inline bool alloc_ready(const shr_heap_t *h) { return h->hot[1] != NULL; }
static inline alloc_global_t *AG(const shr_heap_t *h) { return (alloc_global_t *)h->hot[1]; }
static inline chunk_t *CT(const shr_heap_t *h) { return (chunk_t *)h->hot[0]; }
static inline pool_header_t *POOL(const shr_heap_t *h, uint64_t off) { return (pool_header_t *)(h->base + off); }
static inline uint64_t chunk_off(uint64_t c) { return c << SHR_CHUNK_SHIFT; }

/* ---- chunk.c ----------------------------------------------------------- */

/* Reset an entry to CHUNK_UNUSED. `kind` is read without the lock, so it is
 * stored atomically, never memset. Arena lock held. */
static inline void shr__chunk_reset(chunk_t *e)
{
    wr(&e->kind, CHUNK_UNUSED);
    e->nfreepools = e->ntotalpools = e->pages = 0;
    e->run = e->pool_address = e->freepools = e->next = e->prev = 0;
}

uint64_t shr__alloc_table_size(uint64_t capacity);
int shr__chunk_init(shr_heap_t *h);
/* Take n contiguous chunks; returns the first index, or 0 when none (ENOMEM).
 * Arena lock held. The chunks are not committed. */
uint64_t shr__chunk_alloc(shr_heap_t *h, uint64_t n);
/* Give back n chunks starting at c: released (hole punched) and coalesced.
 * Arena lock held. */
void shr__chunk_free(shr_heap_t *h, uint64_t c, uint64_t n);
/* Take the whole free run whose head is c off the lists; its chunks become
 * CHUNK_UNUSED for the caller to tag. Arena lock held. */
void shr__chunk_take_run(shr_heap_t *h, uint64_t c);
/* Rebuild the free run lists from the table (repair). Arena lock held. */
void shr__chunk_rebuild(shr_heap_t *h);

/* ---- pool.c ------------------------------------------------------------ */

int shr__alloc_repair(shr_heap_t *h);
void *shr__pool_alloc_slow(shr_heap_t *h, shr_tctx_t *ctx, unsigned cls);
void shr__pool_free_remote(shr_heap_t *h, pool_header_t *pool, uint64_t off);
void shr__pool_free_local_slow(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool);
void shr__pool_collect(shr_heap_t *h, shr_tctx_t *ctx);
void shr__alloc_thread_release(shr_heap_t *h, uint32_t slot, bool dead);
/* Walk a block list defensively; returns its length or -1 if it leaves the
 * pool, is misaligned or cycles. */
long shr__pool_list_len(shr_heap_t *h, const pool_header_t *pool, uint64_t first);

/* ---- large.c ----------------------------------------------------------- */

void *shr__large_alloc(shr_heap_t *h, size_t size);
void shr__large_free(shr_heap_t *h, uint64_t off);
size_t shr__large_usable(shr_heap_t *h, uint64_t off);
/* Try to resize in place; returns true on success. */
bool shr__large_resize(shr_heap_t *h, uint64_t off, size_t size);
int shr__large_repair(shr_heap_t *h);
/* Release every free page of LARGE chunks that is still committed. */
void shr__large_purge(shr_heap_t *h);

/* ---- roots.c: for the object layer ------------------------------------- */

/* The roots lock, and lookups under it. Names are checked by the caller with
 * shr__root_name_check. */
int shr__root_lock(shr_heap_t *h);
void shr__root_unlock(shr_heap_t *h);
int shr__root_name_check(const char *name, size_t *len);
root_entry_t *shr__root_find(shr_heap_t *h, const char *name);
/* A new entry (off written before the name commits it); NULL when full. */
root_entry_t *shr__root_new(shr_heap_t *h, const char *name, uint64_t off, uint64_t flags);

/* ---- check.c / stats.c / roots.c --------------------------------------- */

int shr__alloc_check(shr_heap_t *h, FILE *out);
#if SHR_DEBUG >= 3
/* Level-3 validators: abort with a message when the class's usable_arenas
 * (A2) or the given pool (P1-P3, may be NULL) is broken. Arena lock held for
 * the first; the pool must be the caller's own. */
void shr__validate_arenas(shr_heap_t *h, int acls);
void shr__validate_pool(shr_heap_t *h, pool_header_t *pool);
#endif

/* ---- the layer's hooks and parameters ---------------------------------- */

void shr__alloc_params(shr__seg_params_t *p);
int shr__alloc_init_segment(shr_heap_t *h);
int shr__alloc_open(shr_heap_t *h);
void shr__alloc_close(shr_heap_t *h);

#endif /* SHR_ALLOC_H */
