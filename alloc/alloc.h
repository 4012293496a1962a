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
 *              cut into 4 pools of 64 KiB (pymalloc's arena, two geometries);
 *              page 0 holds the arena's pool headers, dense (so a SMALL
 *              arena has 63 pools, and a MEDIUM arena's pool 0 starts its
 *              blocks at 4 KiB)
 *   pool     = one size class; blocks carved lazily, its header in page 0
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

#include <string.h>

#include "shm.h"

/* ---- Tunables (constraints checked below) ----------------------------- */

#define SHR_ALIGNMENT_SHIFT 4
#define SHR_ALIGNMENT (1u << SHR_ALIGNMENT_SHIFT)          /* 16 */
#define SHR_SMALL_REQUEST_THRESHOLD 512
#define SHR_NB_SMALL (SHR_SMALL_REQUEST_THRESHOLD / SHR_ALIGNMENT) /* 32 */
#define SHR_NB_MEDIUM 20
#define SHR_NB_CLASSES (SHR_NB_SMALL + SHR_NB_MEDIUM)
/* Pool classes: each size class twice, for ordinary blocks (0..51) and for
 * objects (SHR_OBJ_CLASS + 0..51): a pool holds one or the other, never both
 * (the cycle collector walks object pools; see "Object pools" below). */
#define SHR_OBJ_CLASS SHR_NB_CLASSES
#define SHR_NB_PCLASSES (2 * SHR_NB_CLASSES)
#define SHR_MEDIUM_REQUEST_THRESHOLD 16384
#define SHR_SMALL_POOL_SHIFT 12                        /* 4 KiB, the default */
#define SHR_SMALL_POOL_SHIFT_16K 14                    /* 16 KiB: SHR_HEAP_POOLS_16K */
#define SHR_MEDIUM_POOL_SHIFT 16                       /* 64 KiB */
#define SHR_ARENA_SIZE SHR_CHUNK_SIZE                  /* 256 KiB */
#define SHR_PAGE_SHIFT 12
#define SHR_PAGE_SIZE ((uint64_t)1 << SHR_PAGE_SHIFT)
#define SHR_PAGES_PER_CHUNK (SHR_CHUNK_SIZE >> SHR_PAGE_SHIFT) /* 64 */
#define SHR_LARGE_MAX_PAGES (SHR_PAGES_PER_CHUNK - 1)      /* page 0 is the chunk header */
#define SHR_LARGE_REQUEST_THRESHOLD (SHR_LARGE_MAX_PAGES * SHR_PAGE_SIZE)
#define SHR_POOL_OVERHEAD 64                           /* sizeof(pool_header_t) */
#define SHR_ARENA_META SHR_PAGE_SIZE                   /* page 0: the pool headers */
#define SHR_MAX_POOLS_IN_ARENA (SHR_ARENA_SIZE >> SHR_SMALL_POOL_SHIFT) /* 64 */
#define SHR_NRUNLISTS 48                               /* free chunk run lists */
#define SHR_ROOTS_MAX 1024
/* Per-thread cache of empty pools: at most CACHE_MAX, filled CACHE_FILL at a
 * time under one arena lock (a thread's first batches 1, 2, 4, ... pools:
 * alloc_tslot_t.nfills), drained to half when full. Bounds what a thread
 * holds: 128 KiB of small pools, 128 KiB of medium ones. */
#define SHR_CACHE_MAX_SMALL 32
#define SHR_CACHE_FILL_SMALL 8
#define SHR_CACHE_MAX_MEDIUM 2
#define SHR_CACHE_FILL_MEDIUM 1
/* Entirely free arenas kept committed per geometry before the next one that
 * empties is released (hysteresis: a loop whose working set swings by less
 * than this never releases and re-faults an arena); shr_heap_collect
 * releases all of them. 16 small arenas: 4 MiB. */
#define SHR_ARENA_KEEP_EMPTY 16
/* Arenas a thread slot records as touched before a full scan is needed to
 * reclaim it (alloc_tslot_t.touched): 64 arenas, 16 MiB of small pools. */
#define SHR_TOUCHED_MAX 64 /* a power of two */
/* Blocks carved per slow-path call (within one page). */
#define SHR_CARVE_BATCH 16

#if SHR_SMALL_REQUEST_THRESHOLD % SHR_ALIGNMENT != 0 || SHR_NB_SMALL != SHR_SMALL_CLASSES
#error "small classes must be multiples of SHR_ALIGNMENT and match the public count"
#endif
#if SHR_NB_MEDIUM != SHR_MEDIUM_CLASSES
#error "medium class count must match the public header"
#endif
#if SHR_CHUNK_SHIFT != 18 || SHR_SMALL_POOL_SHIFT > SHR_CHUNK_SHIFT || SHR_MEDIUM_POOL_SHIFT > SHR_CHUNK_SHIFT
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
    _Atomic uint32_t young;     /* arena: OR of its pools' young hints (Y1, "Object pools") */
    uint32_t pad;
} chunk_t;

/* ---- Pools ------------------------------------------------------------- */

/* Pool states: every carved pool is in exactly one.
 *
 *   USED    owner != 0, on its owner slot's used[szidx] list; has local free
 *           blocks or untouched space
 *   FULL    no local free block, no untouched space; on no list. Owned:
 *           parked by its owner (REMOTE_PARKED set in `remote` until the
 *           first remote free, which hands its block to the owner's delayed
 *           stack instead); the owner's next free into it, local or through
 *           that stack, links it behind the current pool of its class.
 *           owner == 0 means given up at a thread's exit or death:
 *           REMOTE_UNOWNED is set, and the first thread to free into it
 *           adopts it (CAS on owner)
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
#define REMOTE_PARKED ((uint64_t)2)  /* full, owned, off every list: the first remote free wakes the owner */
#define DELAYED_CLOSED ((uint64_t)1) /* alloc_tslot_t.delayed of a slot that is going away */
#define REMOTE_FLAGS ((uint64_t)SHR_ALIGNMENT - 1)

typedef struct pool_header {
    _Atomic uint32_t nused;      /* +0  allocated blocks (owner), incl. uncollected remote frees */
    _Atomic uint16_t szidx;      /* +4  pool class (>= SHR_OBJ_CLASS: objects) */
    uint8_t shift;               /* +6  log2 of the pool size */
    _Atomic uint8_t young;       /* +7  young hint: SHR_OBJ_YOUNG0 | SHR_OBJ_YOUNG1 (Y1, "Object pools") */
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

_Static_assert(sizeof(pool_header_t) == SHR_POOL_OVERHEAD, "pool header size");
_Static_assert(SHR_MAX_POOLS_IN_ARENA * SHR_POOL_OVERHEAD == SHR_ARENA_META, "an arena's headers fill its page 0");

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
    page_entry_t page[SHR_PAGES_PER_CHUNK]; /* [0] unused */
} large_header_t;

/* Free pages of LARGE chunks stay committed (a free/alloc loop then makes no
 * system call) until this many are free and committed across the heap, then
 * all are released; shr_heap_collect releases them at once. */
#define SHR_LARGE_DIRTY_MAX 1024 /* pages: 4 MiB */

#define SHR_LARGE_MAGIC 0x6c617267655f6368ull /* "large_ch" */

/* ---- Global allocator state (the layer's global region) ---------------- */

/* Arena invariants (check.c; asserted at every relink at SHR_DEBUG >= 2,
 * validated after every arena change at 3):
 *   A1  each arena: pool_address in the chunk and pool-aligned; freepools
 *       holds only unowned EMPTY pools of the arena; nfreepools equals
 *       |freepools| plus the pools never carved
 *   A2  usable_arenas holds exactly the arenas of its class with a free pool,
 *       sorted by nfreepools ascending, back links right; nfp2lasta[n] is the
 *       rightmost arena with n free pools
 *   A3  nempty counts the arenas of the class whose every pool is free (all
 *       at the tail of usable_arenas), at most SHR_ARENA_KEEP_EMPTY */
typedef struct arena_class {
    uint64_t usable;                       /* head of usable_arenas: chunk + 1 */
    uint64_t nfp2lasta[SHR_MAX_POOLS_IN_ARENA + 1]; /* rightmost arena with n free pools */
    uint32_t npools;                       /* pools per arena */
    uint32_t shift;                        /* pool size shift */
    uint64_t narenas;                      /* arenas of this class now */
    uint64_t nempty;                       /* arenas with every pool free (A3) */
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
    uint64_t runs[SHR_NRUNLISTS];              /* free runs by length: chunk + 1 */
    arena_class_t ac[NB_ARENA_CLASSES];
    uint64_t orphans[SHR_NB_PCLASSES];         /* orphan pools by pool class (offsets) */
    /* large page runs, under the large lock */
    uint64_t large_runs[SHR_PAGES_PER_CHUNK];  /* free runs of n pages (offsets) */
    uint64_t large_bitmap;                 /* bit n set: large_runs[n] non-empty */
    uint64_t large_empty;                  /* a fully free LARGE chunk kept: chunk + 1 */
    uint64_t large_dirty;                  /* free pages still committed */
    /* statistics, relaxed atomics */
    _Atomic uint64_t arenas_allocated, arenas_released, arenas_highwater;
    _Atomic uint64_t large_blocks, large_bytes, huge_blocks, huge_bytes;
    _Atomic uint64_t dead_outstanding, dead_threads;
    /* roots, under the roots lock. The directory is committed entry by
     * entry, not at creation (shr__seg_params_t.global_lazy): entries at or
     * above roots_hwm were never used, their pages perhaps never committed,
     * and are never read. roots_hwm is raised, under the roots lock, only
     * after the pages of the entry below it are committed (RT3): a crash
     * between the two leaves committed zero pages above the mark, which the
     * next raise commits again. Read through shr__roots_hwm. */
    _Atomic uint32_t roots_hwm;
    uint32_t roots_pad;
    root_entry_t roots[SHR_ROOTS_MAX];
} alloc_global_t;

/* Per thread slot: the slot's own pools, its cache of empty pools and its
 * net counter. Owner thread only (the reclaim of a dead slot aside). */
typedef struct alloc_tslot {
    uint64_t used[SHR_NB_PCLASSES];            /* head of the used list, by pool class (offset) */
    uint64_t cache[NB_ARENA_CLASSES];      /* empty pools kept by this thread (offsets) */
    uint32_t ncache[NB_ARENA_CLASSES];
    /* The arenas this slot has owned a pool in: a set of chunk refs (a hash
     * table, 0 = empty), each written, and ntouched then raised, before the
     * slot owns its first pool there (note_arena): a dead slot's pools are
     * found by reading only these arenas' pool headers, never the whole
     * heap. Past SHR_TOUCHED_MAX arenas (ntouched == SHR_TOUCHED_MAX + 1) the
     * reclaim scans every arena. */
    _Atomic uint32_t ntouched;
    uint32_t touched[SHR_TOUCHED_MAX];
    /* Pool blocks this thread allocated minus those it freed (locally or
     * remotely): what it leaves behind if it dies. One counter, not one per
     * class: per-class call counts cost ~1 ns per malloc/free pair
     * (measured), and the statistics get blocks in use per class from the
     * pools themselves. */
    _Atomic uint64_t net;
    /* Blocks freed by other threads into this slot's parked pools (one per
     * pool and parking: the free that clears REMOTE_PARKED), linked through
     * bytes 8..15; pushed with a CAS, taken whole by the owner with an
     * exchange (so no ABA), then freed again by it, which relinks their
     * pools. DELAYED_CLOSED once the slot is being released. */
    _Atomic uint64_t delayed;
    /* This slot's parked pools (FULL, owned), linked through nextpool and
     * prevpool: owner only, for its exit; a dead slot's are found by owner
     * id like its other pools. */
    uint64_t parked;
    /* Batches of empty pools this slot has taken from the arenas, by
     * geometry (acquire_pool): the batch doubles from one pool up to
     * SHR_CACHE_FILL_*, so that a thread that allocates a few blocks takes
     * (and commits) one pool, not eight. A hint: a wrong value changes only
     * a batch's size. Zeroed when the slot is released. */
    uint32_t nfills[NB_ARENA_CLASSES];
} alloc_tslot_t;


/* ---- The layout other processes rely on ---------------------------------
 *
 * Every struct above lives in the segment and is read by every process that
 * attaches it, whatever it was built with: its size and the offsets that
 * lock-free readers use are fixed here (none depends on pthread_mutex_t).
 * A change to any of them is a change of the segment's layout: bump
 * SHR_LAYOUT_VERSION (shm/shm.h). */
#define SHR__OFF(t, f, o) _Static_assert(offsetof(t, f) == (o), #t "." #f " at offset " #o)
_Static_assert(sizeof(chunk_t) == 64, "chunk_t: one 64-byte table entry per chunk");
SHR__OFF(chunk_t, kind, 0);          /* read without the lock by shr_free */
SHR__OFF(chunk_t, nfreepools, 4);
SHR__OFF(chunk_t, run, 16);
SHR__OFF(chunk_t, pool_address, 24);
SHR__OFF(chunk_t, next, 40);
SHR__OFF(chunk_t, prev, 48);
SHR__OFF(chunk_t, young, 56);        /* fetch_or by creators, without the lock */
SHR__OFF(pool_header_t, nused, 0);
SHR__OFF(pool_header_t, szidx, 4);
SHR__OFF(pool_header_t, shift, 6);
SHR__OFF(pool_header_t, young, 7);   /* fetch_or by creators; cleared by a collector, world stopped */
SHR__OFF(pool_header_t, freeblock, 8);
SHR__OFF(pool_header_t, nextpool, 16);
SHR__OFF(pool_header_t, prevpool, 24);
SHR__OFF(pool_header_t, nextoffset, 32);
SHR__OFF(pool_header_t, maxnextoffset, 36);
SHR__OFF(pool_header_t, owner, 40);  /* CAS by adopting freers */
SHR__OFF(pool_header_t, state, 44);
SHR__OFF(pool_header_t, remote, 48); /* CAS by remote freers */
SHR__OFF(pool_header_t, capacity, 56);
SHR__OFF(pool_header_t, block_size, 60);
_Static_assert(sizeof(page_entry_t) == 24, "page_entry_t size");
SHR__OFF(large_header_t, magic, 0);
SHR__OFF(large_header_t, committed, 16);
SHR__OFF(large_header_t, page, 24);
_Static_assert(sizeof(large_header_t) == 24 + 24 * SHR_PAGES_PER_CHUNK, "large_header_t size");
_Static_assert(sizeof(large_header_t) <= SHR_PAGE_SIZE, "a large chunk's header fits its page 0");
_Static_assert(sizeof(arena_class_t) == 552, "arena_class_t size");
_Static_assert(sizeof(root_entry_t) == SHR_ROOT_NAME_MAX + 1 + 16, "root_entry_t size");
SHR__OFF(root_entry_t, off, SHR_ROOT_NAME_MAX + 1);
SHR__OFF(alloc_global_t, runs, 32);
SHR__OFF(alloc_global_t, ac, 416);
SHR__OFF(alloc_global_t, orphans, 1520);
SHR__OFF(alloc_global_t, large_runs, 1520 + 8 * SHR_NB_PCLASSES);
SHR__OFF(alloc_global_t, arenas_allocated, 2056 + 8 * SHR_NB_PCLASSES);
SHR__OFF(alloc_global_t, roots_hwm, 2128 + 8 * SHR_NB_PCLASSES);
SHR__OFF(alloc_global_t, roots, 2136 + 8 * SHR_NB_PCLASSES);
_Static_assert(sizeof(alloc_global_t) == 2136 + 8 * SHR_NB_PCLASSES + SHR_ROOTS_MAX * sizeof(root_entry_t), "alloc_global_t size");
SHR__OFF(alloc_tslot_t, cache, 8 * SHR_NB_PCLASSES);
SHR__OFF(alloc_tslot_t, ntouched, 8 * SHR_NB_PCLASSES + 24);
SHR__OFF(alloc_tslot_t, touched, 8 * SHR_NB_PCLASSES + 28);
SHR__OFF(alloc_tslot_t, net, 8 * SHR_NB_PCLASSES + 32 + 4 * SHR_TOUCHED_MAX);
SHR__OFF(alloc_tslot_t, delayed, 8 * SHR_NB_PCLASSES + 40 + 4 * SHR_TOUCHED_MAX); /* CAS by remote freers */
SHR__OFF(alloc_tslot_t, nfills, 8 * SHR_NB_PCLASSES + 56 + 4 * SHR_TOUCHED_MAX);
_Static_assert(sizeof(alloc_tslot_t) == 8 * SHR_NB_PCLASSES + 64 + 4 * SHR_TOUCHED_MAX, "alloc_tslot_t size");
#undef SHR__OFF

/* ---- Size classes ------------------------------------------------------ */

/* Block size by pool class: an object class has its size class's size. */
extern const uint32_t shr__class_size[SHR_NB_PCLASSES];
extern const uint8_t shr__medium_index[SHR_MEDIUM_REQUEST_THRESHOLD / 128];

static inline unsigned size_to_class(size_t n)
{
    if (n <= SHR_SMALL_REQUEST_THRESHOLD) return n ? (unsigned)((n - 1) >> SHR_ALIGNMENT_SHIFT) : 0;
    return SHR_NB_SMALL + shr__medium_index[(n - 1) >> 7];
}

/* The arena class (AC_SMALL, AC_MEDIUM) of a pool class, and whether the
 * class is one of objects. */
static inline int class_acls(unsigned cls)
{
    unsigned c = cls >= SHR_OBJ_CLASS ? cls - SHR_OBJ_CLASS : cls;
    return c < SHR_NB_SMALL ? AC_SMALL : AC_MEDIUM;
}
static inline bool class_is_obj(unsigned cls) { return cls >= SHR_OBJ_CLASS; }

/* ---- Accessors --------------------------------------------------------- */

/* The handle keeps the chunk table and the globals in hot[] (set by
 * shr__alloc_open), so that the fast paths reach them in one load. */
static inline bool alloc_ready(const shr_heap_t *h) { return h->hot[1] != NULL; }
static inline alloc_global_t *alloc_global(const shr_heap_t *h) { return (alloc_global_t *)h->hot[1]; }
static inline chunk_t *chunk_table(const shr_heap_t *h) { return (chunk_t *)h->hot[0]; }
static inline pool_header_t *pool_at(const shr_heap_t *h, uint64_t off) { return (pool_header_t *)(h->base + off); }
static inline uint64_t chunk_off(uint64_t c) { return c << SHR_CHUNK_SHIFT; }

/* Pool headers are dense in page 0 of their arena: the header of pool i (the
 * pool whose memory is arena + i * pool size) is at arena + i * 64. A pool is
 * named by its header's offset (lists, owners, freepools); its memory is
 * found from that. Headers of hot pools then fall in different cache sets,
 * where headers at the start of 4 KiB-aligned pools all fell in one (0.6-0.7
 * conflict misses per operation in the batch benchmark). Page 0 itself is
 * no pool's memory: a SMALL arena's pools are 1..63, and pool 0 of a MEDIUM
 * arena starts its blocks at SHR_ARENA_META. */
/* The pool size shift of a SMALL or MEDIUM chunk: the heap's small pool
 * size (SHR_SMALL_POOL_SHIFT, or SHR_SMALL_POOL_SHIFT_16K in a heap made
 * with SHR_HEAP_POOLS_16K), or SHR_MEDIUM_POOL_SHIFT. A copy in the handle,
 * indexed by kind, so that shr_free finds it in one load. */
static inline unsigned arena_pool_shift(const shr_heap_t *h, uint32_t kind) { return h->pool_shift[kind & 15]; }
/* The first pool's memory in the arena at offset a: page 0 holds the
 * headers, so a pool of one page starts at the next; a larger pool 0 starts
 * at 0 and its blocks at SHR_ARENA_META (pool_first). */
static inline uint64_t arena_pools_start(uint64_t a, unsigned shift)
{
    return a + (((uint64_t)1 << shift) == SHR_ARENA_META ? SHR_ARENA_META : 0);
}
static inline uint32_t arena_npools(unsigned shift)
{
    return (uint32_t)(SHR_ARENA_SIZE >> shift) - (((uint64_t)1 << shift) == SHR_ARENA_META ? 1 : 0);
}
static inline uint64_t arena_base(uint64_t off) { return off & ~(SHR_ARENA_SIZE - 1); }
/* The header of the pool holding offset off (which is past page 0). */
shr_inline uint64_t pool_hdr_of(uint64_t off, unsigned shift)
{
    uint64_t rel = off & (SHR_ARENA_SIZE - 1);
    return off - rel + ((rel >> shift) << 6);
}
/* The memory of the pool whose header is at po. */
static inline uint64_t pool_mem(uint64_t po, unsigned shift)
{
    return arena_base(po) + (((po & (SHR_ARENA_META - 1)) >> 6) << shift);
}
/* Where the blocks of the pool whose memory starts at mem begin (from mem). */
static inline uint32_t pool_first(uint64_t mem) { return (mem & (SHR_ARENA_SIZE - 1)) ? 0 : (uint32_t)SHR_ARENA_META; }

/* Chunk references. A chunk is named two ways, never mixed in one variable:
 *   index  c      position in the chunk table (chunk_t *e = &t[c]);
 *   ref    c + 1  what the segment's lists store (usable arenas, free runs,
 *                 large_empty) and what shr__chunk_alloc returns: 0 = none.
 * Convert only with these. */
static inline uint64_t chunk_ref(uint64_t c) { return c + 1; }
static inline uint64_t chunk_index(uint64_t ref) { return ref - 1; }
static inline chunk_t *chunk_at_ref(const shr_heap_t *h, uint64_t ref) { return &chunk_table(h)[ref - 1]; }

/* ---- Blocks: the contract with gc/ ---------------------------------------
 *
 *   bytes 0..7    the object's (refcount); the allocator never writes them,
 *                 not even in a free block: a freed object's count reads 0
 *                 until the block's next object stores 1 (try_incref)
 *   bytes 8..15   the free-list link while the block is free (an offset,
 *                 0 = end); the object's type and flags while it is live
 *
 * Every read and write of the link goes through block_next/block_set_next.
 * In sanitizer builds a free block is poisoned from byte 8 on (see "Memory
 * checkers" below), so these two are the allocator's only exempt accesses. */
#define SHR_BLOCK_OBJ_BYTES 8 /* bytes 0..7: never written by the allocator */
#define SHR_BLOCK_LINK_OFF 8  /* bytes 8..15: the free-list link */
_Static_assert(SHR_BLOCK_LINK_OFF >= SHR_BLOCK_OBJ_BYTES, "the link never overlaps the refcount");
_Static_assert(SHR_BLOCK_LINK_OFF + 8 <= 16, "the link fits the smallest block");

#if defined(__SANITIZE_ADDRESS__)
#define SHR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHR_ASAN 1
#endif
#endif
#ifndef SHR_ASAN
#define SHR_ASAN 0
#endif
#ifndef SHR_VALGRIND
#define SHR_VALGRIND 0 /* set by the build (SHR_VALGRIND=ON) */
#endif
/* Nonzero when free pool blocks are poisoned for a memory checker. */
#define SHR_MEMCHECK (SHR_ASAN || SHR_VALGRIND)

#if SHR_ASAN
#define SHR_NO_ASAN static __attribute__((no_sanitize_address, noinline, unused))
#else
#define SHR_NO_ASAN shr_inline
#endif

#if SHR_VALGRIND
#include <valgrind/memcheck.h>
#define SHR__VG_QUIET_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define SHR__VG_QUIET_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define SHR__VG_QUIET_BEGIN() ((void)0)
#define SHR__VG_QUIET_END() ((void)0)
#endif

SHR_NO_ASAN uint64_t block_next(const shr_heap_t *h, uint64_t b)
{
    uint64_t v;
    SHR__VG_QUIET_BEGIN();
    v = *(const uint64_t *)(h->base + b + SHR_BLOCK_LINK_OFF);
    SHR__VG_QUIET_END();
    return v;
}

SHR_NO_ASAN void block_set_next(const shr_heap_t *h, uint64_t b, uint64_t next)
{
    SHR__VG_QUIET_BEGIN();
    *(uint64_t *)(h->base + b + SHR_BLOCK_LINK_OFF) = next;
    SHR__VG_QUIET_END();
}

/* Memory checkers (AddressSanitizer builds, and SHR_VALGRIND builds run
 * under memcheck). Shadow state is per process, and a block freed in one
 * process may be handed out again by another, so a process poisons only
 * blocks it will itself hand out again: the free blocks of pools its own
 * threads own (local frees and freshly carved blocks). A pool that leaves
 * this process's threads (given back to an arena, orphaned at thread exit)
 * is unpoisoned whole first; a remote free poisons nothing. Bytes 0..7 of a
 * free block stay accessible (the refcount word try_incref reads). */
void shr__mem_block_free(const shr_heap_t *h, uint64_t b, uint32_t size);
void shr__mem_block_alloc(const shr_heap_t *h, uint64_t b, uint32_t size);
void shr__mem_release(const shr_heap_t *h, uint64_t off, uint64_t len);
/* A free of p: an access the checker reports when p is already free here
 * (a double free, reported in the process that makes it). */
void shr__mem_probe_free(const shr_heap_t *h, const void *p);

/* ---- Debug fills and guards ----------------------------------------------
 *
 * Debug fills (SHR_DEBUG >= 1): fresh blocks from byte 8 on, freed blocks
 * from byte 16 on (24 in a guarded heap); bytes 0..7 never.
 *
 * Guards (heap flag SHR_HEAP_GUARDS, any build), CPython's PYTHONMALLOC=debug:
 *
 *     [ size n : 8 ][ SHR_GUARD_BYTE x 8 ][ user data n ][ SHR_GUARD_BYTE x 8 ]
 *                                         ^ returned pointer (16-byte aligned)
 *
 * written by guard_write and verified by guard_intact (free, shr_usable_size
 * and shr_heap_check, G1). */
#define SHR_CLEAN_BYTE 0xCD
#define SHR_DEAD_BYTE 0xDD
#define SHR_GUARD_BYTE 0xFD
#define SHR_GUARD_HEAD 16 /* size word + leading guard */
#define SHR_GUARD_TAIL 8

static inline void guard_write(uint8_t *b, uint64_t n)
{
    memcpy(b, &n, 8);
    memset(b + 8, SHR_GUARD_BYTE, SHR_GUARD_HEAD - 8);
    memset(b + SHR_GUARD_HEAD + n, SHR_GUARD_BYTE, SHR_GUARD_TAIL);
}

/* Whether the guards of the raw block b of `usable` bytes are intact; the
 * user's size in *np. */
static inline bool guard_intact(const uint8_t *b, uint64_t usable, uint64_t *np)
{
    uint64_t n;
    memcpy(&n, b, 8);
    if (usable < SHR_GUARD_HEAD + SHR_GUARD_TAIL || n > usable - SHR_GUARD_HEAD - SHR_GUARD_TAIL) return false;
    for (int i = 0; i < SHR_GUARD_HEAD - 8; i++)
        if (b[8 + i] != SHR_GUARD_BYTE) return false;
    for (int i = 0; i < SHR_GUARD_TAIL; i++)
        if (b[SHR_GUARD_HEAD + n + (uint64_t)i] != SHR_GUARD_BYTE) return false;
    *np = n;
    return true;
}

/* ---- Pool free lists: one pop and one push, for every path --------------- */

/* Pop the head of the pool's local free list (non-empty). Owner only; one
 * store commits it (the link is read first). */
shr_inline uint64_t pool_pop(const shr_heap_t *h, pool_header_t *pool, uint64_t bp)
{
    SHR_ASSERT_INV("P1", shr_load_relaxed(&pool->nused) < pool->capacity);
    shr_store_relaxed(&pool->freeblock, block_next(h, bp));
    shr_store_relaxed(&pool->nused, shr_load_relaxed(&pool->nused) + 1);
    if (SHR_MEMCHECK) shr__mem_block_alloc(h, bp, pool->block_size);
    return bp;
}

/* Push block off on the pool's local free list; returns the old head (0:
 * the pool had no free block, so it may be parked full) and the new nused
 * in *np. Owner only; the link is written before the head (the commit
 * point). */
shr_inline uint64_t pool_push(const shr_heap_t *h, pool_header_t *pool, uint64_t off, uint32_t *np)
{
    SHR_ASSERT_INV("P1", shr_load_relaxed(&pool->nused) > 0);
    if (SHR_MEMCHECK) shr__mem_block_free(h, off, pool->block_size);
    uint64_t old = shr_load_relaxed(&pool->freeblock);
    block_set_next(h, off, old);
    shr_store_relaxed(&pool->freeblock, off);
    uint32_t n = shr_load_relaxed(&pool->nused) - 1;
    shr_store_relaxed(&pool->nused, n);
    *np = n;
    return old;
}

/* The one rule for an emptied pool: it is kept, empty and owned, when it is
 * the only pool on its class's used list (so that a malloc/free loop never
 * takes the arena lock); otherwise it goes to the owner's cache of empty
 * pools (shr__pool_free_local_slow). */
shr_inline bool pool_is_class_only(const alloc_tslot_t *ts, const pool_header_t *pool, uint64_t po,
                                   unsigned cls)
{
    return ts->used[cls] == po && pool->nextpool == 0;
}

/* ---- chunk.c ----------------------------------------------------------- */

/* Reset an entry to CHUNK_UNUSED. `kind` is read without the lock, so it is
 * stored atomically, never memset. Arena lock held. */
static inline void shr__chunk_reset(chunk_t *e)
{
    shr_store_relaxed(&e->kind, CHUNK_UNUSED);
    e->nfreepools = e->ntotalpools = e->pages = 0;
    e->run = e->pool_address = e->freepools = e->next = e->prev = 0;
}

int shr__chunk_init(shr_heap_t *h);
/* Take n contiguous chunks; returns the first one's ref (chunk_index() of
 * it is the index), or 0 when none (ENOMEM). Arena lock held. The chunks are
 * not committed. */
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
/* The owner's free left the pool empty (n == 0) or found it without a free
 * block (old == 0: it may be parked full). */
void shr__pool_free_local_slow(shr_heap_t *h, alloc_tslot_t *ts, pool_header_t *pool, uint32_t n);
/* Free again, as this thread, the blocks other threads handed to it
 * through its delayed stack (alloc.c). */
void shr__alloc_drain_delayed(shr_heap_t *h, shr_tctx_t *ctx);
void shr__pool_collect(shr_heap_t *h, shr_tctx_t *ctx);
/* Release the entirely free arenas of every geometry beyond `keep` each.
 * Arena lock held. */
void shr__arena_release_empty(shr_heap_t *h, uint64_t keep);
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
/* Entries of the root directory ever used: a walk of it stops here (the
 * pages above may not be committed, and reading them would commit them).
 * A damaged mark reads as SHR_ROOTS_MAX. */
uint32_t shr__roots_hwm(shr_heap_t *h);

/* ---- check.c / stats.c / roots.c --------------------------------------- */

int shr__alloc_check(shr_heap_t *h, FILE *out);
/* The user size of the allocated block at offset uoff (the offset shr_malloc
 * returned), 0 when it is not one a free would take without complaint: an
 * exact block of a pool in use, not on its local free list, or a used page
 * run, guards intact in a guarded heap. Never panics, changes nothing: for
 * blocks named by data nobody has checked (a dead process's lease table). A
 * guarded block of size 0 answers 0 too. */
size_t shr__alloc_block_checked(shr_heap_t *h, uint64_t uoff);
/* What shr_heap_check asks of the object a ROOT_REF root names: NULL when
 * it and what it reaches directly are sound, else what is wrong (for the
 * report). Set once by the layer that owns the objects (list/), which this
 * one cannot see; unset, check verifies only that the root names a block. */
typedef const char *(*shr__root_check_fn)(shr_heap_t *h, uint64_t off);
void shr__alloc_set_root_check(shr__root_check_fn fn);
/* Level-3 validators: abort with a message when the class's usable_arenas
 * (A2) or the given pool (P1-P3, may be NULL) is broken. Arena lock held for
 * the first; the pool must be the caller's own. */
void shr__validate_arenas(shr_heap_t *h, int acls);
void shr__validate_pool(shr_heap_t *h, pool_header_t *pool);

/* ---- Object pools: for gc/ ------------------------------------------------
 *
 * The cycle collector must find every tracked container without a list in
 * the segment that a crash could leave half-spliced. It walks the pools
 * that hold objects instead, in address order. The allocator's side:
 *   O1  a pool holds objects (pool class >= SHR_OBJ_CLASS) or ordinary
 *       blocks, never both; its class changes only while it is empty
 *   O2  bytes 0..7 of every carved block of an object pool are 0 unless the
 *       block holds a live object: carve_batch zeroes them when it carves
 *       (so a pool re-carved for another class leaves no stale word at the
 *       new block boundaries), and an object's refcount is 0 when it is
 *       freed (gc's rule); the allocator never writes them otherwise
 *   O3  object pools are taken, carved and re-classed only by
 *       shr__obj_block_alloc, which object operations call behind the
 *       collector's gate; frees into them come from those operations too.
 *       So while the world is stopped no object pool changes but by
 *       remote frees and collect (free-list links, bytes 8..15) and
 *       ordinary allocations re-classing an EMPTY one, which the walk skips
 *   Y1  young hints, so that a young collection walks only the pools that
 *       may hold young objects (docs/design/gc.md §3). pool_header_t.young
 *       has SHR_OBJ_YOUNG0 (the pool may hold an object of generation 0)
 *       and SHR_OBJ_YOUNG1 (... of generation 0 or 1); chunk_t.young of an
 *       arena is (at least) the OR of its pools' hints. A bit may be set
 *       spuriously (that costs a walk of the pool), never missing for a
 *       pool that holds a young object:
 *         set    by the creating thread in shr__obj_block_alloc_young, the
 *                arena's bits, then the pool's (release), both before the
 *                object's commit point (its refcount store, in gc/): a
 *                creator that finds the pool's bits set (acquire) finds the
 *                arena's too, and a crash between a set and the commit
 *                leaves a spurious bit. Only object operations set them,
 *                behind the collector's gate (O3);
 *         clear  only by a collector, with the world stopped, after the
 *                walk and the promotion (shr__obj_young_clear): it clears a
 *                pool's bits when every object of those generations it
 *                walked there was promoted out of them, and an arena's when
 *                none of its pools keeps them.
 *       No object ever becomes younger but by its creation (promotion moves
 *       survivors to an older generation; unfreeze to generation 2), so a
 *       pool whose bits were cleared holds no young object until a creator
 *       sets them again. Creation sets both bits; a collection of
 *       generation 0 clears only YOUNG0 (its survivors are now generation
 *       1), one of 1 or 2 both: so YOUNG0 implies YOUNG1, and the pools a
 *       generation 1 walk selects include those of a generation 0 walk.
 *       Repair never clears a hint; pool_init leaves it (spurious).
 */
#define SHR_OBJ_YOUNG0 1u
#define SHR_OBJ_YOUNG1 2u
#define SHR_OBJ_YOUNG (SHR_OBJ_YOUNG0 | SHR_OBJ_YOUNG1)

/* A block of `size` bytes (1..SHR_MEDIUM_REQUEST_THRESHOLD) from an object
 * pool; its bytes 0..7 read 0. Freed with shr_free. NULL with errno set
 * (EINVAL for a bad size or handle, ENOMEM, ETIMEDOUT). */
void *shr__obj_block_alloc(shr_heap_t *h, size_t size);
/* The same for a tracked container of generation 0: its pool's and arena's
 * young hints are set (Y1) before it returns, so before the caller's
 * commit. Behind the collector's gate only. */
void *shr__obj_block_alloc_young(shr_heap_t *h, size_t size);
/* Visit, in address order, every carved block of every object pool whose
 * bytes 0..7 (the refcount) are nonzero: fn(h, off, block_size, arg). Valid
 * while no object operation runs (the world stopped at the gate, O3): no
 * lock is taken. */
typedef void (*shr__obj_visit_fn)(shr_heap_t *h, uint64_t off, uint32_t block_size, void *arg);
void shr__obj_walk(shr_heap_t *h, shr__obj_visit_fn fn, void *arg);
/* A pool the walk below enters: its header's offset, where its blocks
 * start (an offset), their size and how many are carved. */
typedef struct shr__obj_pool {
    uint64_t hdr;
    uint64_t first;
    uint32_t block_size;
    uint32_t nblocks;
    uint32_t shift; /* log2 of the pool size: the pool holding off is arena + ((off & (arena - 1)) >> shift) */
} shr__obj_pool_t;
typedef void (*shr__obj_pool_fn)(shr_heap_t *h, const shr__obj_pool_t *p, void *arg);
/* shr__obj_walk restricted to the object pools whose young hint has a bit
 * of `mask` (0: every object pool), in address order; pool_fn (may be NULL)
 * is called for each such pool before fn for its blocks. Same validity as
 * shr__obj_walk. */
void shr__obj_walk_young(shr_heap_t *h, unsigned mask, shr__obj_pool_fn pool_fn, shr__obj_visit_fn fn, void *arg);
/* For a collector, with the world stopped, after a shr__obj_walk_young of
 * `mask` and the promotion (Y1): clear `bits` in the hints of the pools
 * hdrs[0..n) (header offsets in address order, each entered by that walk,
 * whose objects of the generations `bits` names were all promoted out of
 * them), and every hint of the pools in the walk's arenas that are not
 * object pools in use (nothing young can be there); then set each such
 * arena's hint to the OR of its pools'. */
void shr__obj_young_clear(shr_heap_t *h, unsigned mask, const uint64_t *hdrs, size_t n, unsigned bits);
/* For the backup mark-sweep (gc/collect.c), with the world stopped: visit
 * every carved block of every unowned object pool (ORPHAN, or FULL given
 * up) that is allocated (on neither its free list nor its remote stack)
 * and whose bytes 0..7 read 0: no object is there, so it is a block a dead
 * thread took and never committed, or gave back and never freed. Such a
 * pool changes only under the arena lock (adoption, collect_orphans), which
 * the walk holds, or by frees of objects, which run behind the collector's
 * gate (O3). The calling thread's own object pools are visited too (its
 * delayed stack counted free): nothing else changes them while it walks.
 * fn must not allocate or free (collect, and free after). Pools another
 * live thread owns are not visited (its non-gated calls move blocks between
 * its free lists). */
void shr__obj_walk_strays(shr_heap_t *h, shr__obj_visit_fn fn, void *arg);

/* ---- the layer's hooks and parameters ---------------------------------- */

void shr__alloc_params(shr__seg_params_t *p);
int shr__alloc_init_segment(shr_heap_t *h);
int shr__alloc_open(shr_heap_t *h);
void shr__alloc_close(shr_heap_t *h);

#endif /* SHR_ALLOC_H */
