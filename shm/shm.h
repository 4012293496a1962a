/* shm: the segment, its header, the registry of attached processes and
 * threads, the robust lock table, and commit/release of pages.
 *
 * This is the interface the layers above (alloc, gc, list) build on. The
 * layout is drawn byte by byte in docs/design/shm.md.
 *
 * Segment:
 *
 *   0        procs_off   threads_off   global_off[0]  eager_size   meta_size       capacity
 *   +--------+-----------+-------------+--------------+------------+---------------+
 *   | header | process   | thread      | layer        | layer      | chunks of     |
 *   |        | entries   | slots       | regions      | tables     | SHR_CHUNK_SIZE|
 *   +--------+-----------+-------------+--------------+------------+---------------+
 *
 * The header (seg_header_t) has a fixed size. The registry's tables follow
 * it, sized by the heap's limits (max_procs process entries, max_threads
 * thread slots, chosen at creation), then each layer's regions: one global
 * region per layer, one region per process entry, one per thread slot and,
 * last, one table with an entry per chunk of the capacity. Everything up to
 * the tables but the per-process and per-thread arrays and the lazy ends of
 * the global regions is committed at creation; a process entry or a thread
 * slot and its layers' regions are committed at its first claim
 * (registry.c, R6), and a layer commits its table as it uses it (a 1 TiB heap
 * would otherwise commit its whole chunk table, a heap of 512 thread slots
 * 400 KB of slots that one thread never uses).
 * The region sizes are given by the creator (shr__seg_params_t) and recorded
 * in the header; attach refuses a segment whose recorded sizes differ from
 * this build's (SHR_EVERSION).
 *
 * Regions (lib/heap.c heap_params fills the parameters in):
 *   alloc  global  alloc_global_t   (alloc/alloc.h)  chunk allocator, arenas, orphans, roots
 *   alloc  thread  alloc_tslot_t    (alloc/alloc.h)  used lists, pool cache, net counter
 *   alloc  table   chunk_t[nchunks] (alloc/alloc.h)  one entry per chunk
 *   gc     global  gc_global_t      (gc/)            dead-lease queue, the collector's state
 *   gc     proc    lease_area_t     (gc/)            a process entry's lease table and mutex
 *   gc     thread  gc_tslot_t       (gc/)            the collector's per-thread count
 *
 * Liveness (docs/design/shm.md, "Liveness"):
 *   - a process entry is alive while its `life` robust mutex is held. One
 *     anchor thread per process (per 1024 attachments) locks the `life` of
 *     every entry the process registers, and unlocks it at detach. Exit,
 *     SIGKILL and exec all end that thread, and the kernel then marks every
 *     mutex it held owner-dead, so trylock tells the truth: EBUSY live,
 *     EOWNERDEAD or 0 dead. No pid is involved, so pid reuse and zombies
 *     cannot fool it. A fork child gets an entry of its own on first use.
 *   - a thread slot belongs to a process entry. It is released by the
 *     thread's TLS destructor when the thread exits, by shr_heap_close, or by
 *     the sweep that reclaims its dead process.
 *
 * Locking: robust process-shared mutexes in the header's lock table, never
 * freed. Lock ids are also ranks: a thread takes locks in increasing id order
 * (K1, checked at SHR_DEBUG >= 2). Every wait is bounded by the heap's lock
 * timeout and ends in SHR_ELOCKTIMEOUT. The process-private `proc_mutex`
 * (registration, handle and context lists) is taken before any shared lock.
 * A process never unmaps the segment while it holds a shared lock.
 *
 * Every change to the segment's layout (a field added, moved, resized or
 * given another meaning, in the header, the registry or a layer's region)
 * bumps SHR_LAYOUT_VERSION; attach refuses other versions with SHR_EVERSION.
 */
#ifndef SHR_SHM_H
#define SHR_SHM_H

#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common.h"

/* ---- Layout constants ------------------------------------------------ */

/* 3: registry tables sized per heap (max_procs, max_threads), lock timeout
 *    and timeout records in the header, fields before each mutex;
 *    alloc_tslot_t records the arenas a slot touched; lease_table_t.live;
 *    the list lock word's waiter bit.
 * 4: the lease table's hash (entries placed by another hash are not found).
 * 5: object pool classes: used[] and orphans[] per pool class (2 x 52).
 * 6: the cycle collector: gc_global_t grows (the gate's request word,
 *    generations, user types, the collector's mutex), a gc region per
 *    thread slot (gc_tslot_t), obj_t.flags holds TRACKED and the
 *    generation, containers live in object pools, list items may hold
 *    SHR_REF objects.
 * 7: thread slots and their layer regions committed at their first claim
 *    (below threads_hwm), not at creation: a build that expects them
 *    committed would touch uncommitted pages.
 * 8: process entries in state RECLAIM, named by proc_entry_t.reclaimer
 *    (a dead process reclaimed outside the registry lock).
 * 9: thread_slot_t.epoch announces list read sections (odd inside); the
 *    list frees retired arrays and shrinks after a grace period.
 * 10: SMALL arenas committed as their pools are carved (page 0 when the
 *     arena is made, then 4 KiB pools in doubling batches), not whole: a
 *     build that expects them committed would carve into uncommitted pages.
 * 11: gc_global_t ends with the collector's measurements (phase times,
 *    candidates, edges, bytes freed, pause histograms per generation) and
 *    the measuring window of shr_gc_stats_reset, then the event log's ring
 *    (seg_header_t.log_records records, the header word that was reserved0).
 * 12: young hints for the cycle collector: pool_header_t.young (byte 7,
 *     beside a one-byte shift) and chunk_t.young (byte 56), set before a
 *     container's commit, cleared by a collector with the world stopped.
 * 13: Bacon and Rajan's cycle collection: gc_global_t.algorithm and
 *     br_all (the old reserved word) and br_orphans (after the log words,
 *     in their line: sizeof unchanged), gc_tslot_t's
 *     br_n, br_busy and br_ring (reserved words before; still 64 bytes),
 *     obj_t.flags' OBJ_BUFFERED bit.
 * 14: never released (taken by work that landed as 16).
 * 15: a small heap has small metadata: the root directory
 *     (alloc_global_t.roots_hwm, RT3) and the gc event log's ring are
 *     committed as first used, not at creation (shr__seg_params_t.global_lazy);
 *     process entries and the layers' per-process regions at their first
 *     claim (R6; a lease area's mutex initialised then, gc_proc_claim);
 *     MEDIUM pools are committed as their blocks are carved, a MEDIUM
 *     arena's page 0 when it is made; alloc_tslot_t.nfills. A build that
 *     expects them committed would touch uncommitted pages.
 * 16: lists are walked without their lock (count, index): listobj_t.walkers
 *     (bytes 96..103), and a str or bytes a list drops while a walk is under
 *     way kept as a deferred lease (key off | 2^63) until a grace period has
 *     passed; a process of an older layout would free it under a walker.
 * 17: gc_global_t.flagging, the commit word of a collector's garbage flags
 *     (after br_orphans, in the log words' line: sizeof unchanged): a
 *     process of an older layout would trust a half-flagged set and free
 *     objects an unflagged member still names.
 * 18: a segment may begin with a compact list's page (seg_solo_head_t,
 *     lib/solo.c), its heap then starting at the page's heap_off; a process
 *     of an older layout would read that page as a heap's header. */
#define SHR_LAYOUT_VERSION 18u
#define SHR_CHUNK_SHIFT 18
#define SHR_CHUNK_SIZE ((uint64_t)1 << SHR_CHUNK_SHIFT) /* 256 KiB */
#define SHR_SHM_DIR "/dev/shm"
#define SHR_CACHELINE 64
#define SHR_OS_PAGE 4096u  /* granule of commit, release and table layout */

/* Layers above shm that own regions in the header. */
enum { SHR_LAYER_ALLOC, SHR_LAYER_GC, SHR_LAYER_LIST, SHR_NLAYERS };

/* The layout constants the layers record in the header (consts[]), one
 * named slot each, with the layer that owns it. Attach compares every slot
 * with this build's value. A new constant takes the next slot. */
enum shr_seg_const {
    /* alloc (alloc/alloc.c, shr__alloc_params) */
    SHR_CONST_ALIGNMENT = 0,    /* block alignment */
    SHR_CONST_SMALL_MAX = 1,    /* largest small request */
    SHR_CONST_NB_SMALL = 2,     /* small classes */
    SHR_CONST_NB_MEDIUM = 3,    /* medium classes */
    SHR_CONST_SMALL_POOL = 4,   /* small pool size */
    SHR_CONST_MEDIUM_POOL = 5,  /* medium pool size */
    SHR_CONST_ARENA_SIZE = 6,   /* arena size */
    SHR_CONST_POOL_HEADER = 7,  /* pool header overhead */
    SHR_CONST_CHUNK_ENTRY = 8,  /* sizeof(chunk_t) */
    SHR_CONST_LARGE_HEADER = 9, /* sizeof(large_header_t) */
    SHR_CONST_ROOTS_MAX = 10,   /* root directory entries */
    /* gc (gc/lease.c, shr__gc_params) */
    SHR_CONST_OBJ_SIZE = 11,    /* sizeof(obj_t) */
    SHR_CONST_LEASE_AREA = 12,  /* sizeof(lease_area_t) */
    SHR_CONST_NEXT_FREE = 13    /* first unassigned slot */
};
/* Slots in the header; room for more without a layout change of the header
 * itself (a new constant is still a layout change: bump the version). */
#define SHR_SEG_NCONSTS 16
_Static_assert(SHR_CONST_NEXT_FREE <= SHR_SEG_NCONSTS, "layout constant slots");

/* Lock table. The id is the rank: take locks in increasing id order. */
typedef enum {
    SHR_LOCK_GC,       /* the object layer: the drain of dead processes' leases */
    SHR_LOCK_ROOTS,    /* the root directory */
    SHR_LOCK_REGISTRY, /* process entries and thread slots */
    SHR_LOCK_LARGE,    /* page runs of large blocks */
    SHR_LOCK_ARENA,    /* chunks, arenas, pools moving between owners, orphans */
    SHR_NLOCKS = 8     /* room for more without a layout change */
} shr_lock_id_t;

/* One lock of the table. The fields other processes read come first, at
 * offsets that do not depend on the libc; the mutex sits on its own line.
 * Holder fields are diagnostics (the futex word is the truth); the timeout
 * record says who last gave up waiting and who held the lock then. */
typedef struct shm_lock {
    _Atomic int32_t owner_tid;           /*  0 holder's tid, 0 when free */
    _Atomic uint32_t owner_proc;         /*  4 holder's process entry + 1, or 0 */
    _Atomic uint64_t nacquired;          /*  8 statistics, relaxed */
    _Atomic uint64_t nrepaired;          /* 16 EOWNERDEAD repairs done */
    _Atomic uint64_t ntimeouts;          /* 24 waits that gave up */
    _Atomic uint64_t timeout_ns;         /* 32 CLOCK_REALTIME of the last give-up */
    _Atomic int32_t timeout_pid;         /* 40 the process that gave up */
    _Atomic int32_t timeout_holder_tid;  /* 44 the holder's tid then */
    _Atomic uint32_t timeout_holder_proc;/* 48 the holder's entry + 1 then, or 0 */
    uint32_t reserved[3];                /* 52 */
    pthread_mutex_t mu;                  /* 64 robust, process-shared */
} __attribute__((aligned(SHR_CACHELINE))) shm_lock_t;

/* Entry states (proc_entry_t.state, thread_slot_t.state). RECLAIM is for
 * process entries only: a dead process whose slots and layer state one
 * reclaimer (proc_entry_t.reclaimer) is releasing outside the registry lock
 * (registry.c, "Reclaim in steps"). */
enum { SHR_ENTRY_FREE = 0, SHR_ENTRY_LIVE = 1, SHR_ENTRY_RECLAIM = 2 };

typedef struct proc_entry {
    _Atomic uint32_t state;     /*  0 SHR_ENTRY_*; changes under the registry lock */
    _Atomic uint32_t gen;       /*  4 ++ on every claim: (index, gen) names one attachment */
    int32_t pid;                /*  8 diagnostics; never used to decide liveness */
    uint32_t nthreads;          /* 12 live thread slots; under the registry lock */
    uint64_t start_time;        /* 16 /proc/PID/stat starttime, clock ticks */
    uint64_t attach_ns;         /* 24 CLOCK_REALTIME at attach */
    /* 32 state RECLAIM: (index + 1) << 32 | gen of the reclaiming process's
     * entry; 0 when nobody reclaims it (any other state, or a reclaimer that
     * gave up). Written under the registry lock, cleared by its owner. */
    _Atomic uint64_t reclaimer;
    uint64_t reserved[3];       /* 40 */
    pthread_mutex_t life;       /* 64 held by the process's anchor thread */
} __attribute__((aligned(SHR_CACHELINE))) proc_entry_t;

typedef struct thread_slot {
    _Atomic uint32_t state;     /*  0 SHR_ENTRY_*; changes under the registry lock */
    _Atomic uint32_t gen;       /*  4 ++ on every claim */
    uint32_t proc;              /*  8 owning process entry */
    uint32_t proc_gen;          /* 12 that entry's gen when claimed */
    int32_t tid;                /* 16 diagnostics */
    _Atomic uint32_t in_heap;   /* 20 the cycle collector's gate: 1 inside an object call (gc/collect.c) */
    _Atomic uint64_t epoch;     /* 24 odd inside a list read section (list/list.c); its thread only */
} __attribute__((aligned(SHR_CACHELINE))) thread_slot_t;

/* The fixed header at offset 0. Fields up to `checksum` are written once at
 * creation and covered by the checksum; attach validates them all before
 * trusting anything else. */
typedef struct seg_header {
    char magic[8];                      /* "SHARENA\0" */
    uint32_t layout_version;            /* SHR_LAYOUT_VERSION */
    uint32_t header_size;               /* sizeof(seg_header_t) */
    uint32_t byte_order;                /* 0x01020304 as written */
    uint32_t chunk_size;                /* SHR_CHUNK_SIZE */
    uint32_t max_procs, max_threads;    /* the heap's limits, chosen at creation */
    uint32_t nlocks;                    /* SHR_NLOCKS */
    uint32_t sizeof_mutex;              /* sizeof(pthread_mutex_t): same libc */
    uint32_t sizeof_proc, sizeof_thread;/* sizeof(proc_entry_t), sizeof(thread_slot_t) */
    uint32_t flags;                     /* SHR_HEAP_* */
    uint32_t mode;                      /* permission bits at creation */
    uint32_t consts[SHR_SEG_NCONSTS];   /* the layers' layout constants (shr_seg_const) */
    uint64_t capacity;                  /* bytes, multiple of SHR_CHUNK_SIZE */
    uint64_t meta_size;                 /* bytes before the first data chunk */
    uint64_t created_ns;                /* CLOCK_REALTIME */
    uint64_t global_off[SHR_NLAYERS];   /* layer global regions */
    uint64_t global_size[SHR_NLAYERS];
    uint64_t proc_off[SHR_NLAYERS];     /* layer per-process arrays */
    uint64_t proc_size[SHR_NLAYERS];    /*   (stride of one entry) */
    uint64_t thread_off[SHR_NLAYERS];   /* layer per-thread arrays */
    uint64_t thread_size[SHR_NLAYERS];  /*   (stride of one entry) */
    uint64_t table_off[SHR_NLAYERS];    /* layer per-chunk tables (last in */
    uint64_t table_size[SHR_NLAYERS];   /*   the metadata, committed lazily) */
    uint64_t eager_size;                /* end of the regions; committed at creation
                                           but the per-thread arrays (R6) */
    uint64_t procs_off;                 /* proc_entry_t[max_procs] */
    uint64_t threads_off;               /* thread_slot_t[max_threads] */
    uint32_t lock_timeout_ms;           /* bound of every lock wait */
    uint32_t log_records;               /* the gc event log's records (0, or a power of two up to
                                           SHR_GC_LOG_MAX): each layer's global region has
                                           global_per_record[l] bytes more per record */
    char name[SHR_NAME_MAX + 1];        /* name given at creation */
    uint64_t checksum;                  /* FNV-1a of all fields above */

    /* Mutable part. */
    _Atomic uint64_t nattach;           /* attachments ever, statistics */
    /* Entries at or above these indices have never been claimed (they are
     * FREE and zero); scans stop there. Raised under the registry lock. */
    _Atomic uint32_t procs_hwm;
    _Atomic uint32_t threads_hwm;
    /* No FREE slot below this index (a hint, checked before use): claims
     * start here, so that claiming n slots costs O(n), not O(n^2). */
    _Atomic uint32_t threads_free_hint;
    shm_lock_t locks[SHR_NLOCKS];
} seg_header_t;

/* The offsets other processes (and other builds of the tools) rely on, and
 * the sizes that do not depend on the libc's pthread_mutex_t. */
_Static_assert(offsetof(seg_header_t, magic) == 0, "layout");
_Static_assert(offsetof(seg_header_t, layout_version) == 8, "layout: the version is read first");
_Static_assert(offsetof(seg_header_t, header_size) == 12, "layout");
_Static_assert(offsetof(seg_header_t, max_procs) == 24 && offsetof(seg_header_t, max_threads) == 28,
               "layout");
_Static_assert(offsetof(seg_header_t, sizeof_proc) == 40, "layout");
_Static_assert(offsetof(seg_header_t, consts) == 56, "layout");
_Static_assert(offsetof(seg_header_t, capacity) == 120, "layout");
_Static_assert(offsetof(seg_header_t, eager_size) == 336, "layout");
_Static_assert(offsetof(seg_header_t, procs_off) == 344 && offsetof(seg_header_t, threads_off) == 352,
               "layout");
_Static_assert(offsetof(seg_header_t, lock_timeout_ms) == 360, "layout");
_Static_assert(offsetof(seg_header_t, name) == 368, "layout");
_Static_assert(offsetof(seg_header_t, checksum) == 368 + SHR_NAME_MAX + 1,
               "layout: no padding inside the checksummed part");
_Static_assert(offsetof(seg_header_t, nattach) == offsetof(seg_header_t, checksum) + 8, "layout");
_Static_assert(offsetof(seg_header_t, locks) % SHR_CACHELINE == 0, "layout");
_Static_assert(offsetof(shm_lock_t, ntimeouts) == 24 && offsetof(shm_lock_t, timeout_holder_proc) == 48,
               "layout");
_Static_assert(offsetof(shm_lock_t, mu) == 64, "layout: the mutex on a line of its own");
_Static_assert(offsetof(proc_entry_t, start_time) == 16 && offsetof(proc_entry_t, reclaimer) == 32 &&
                   offsetof(proc_entry_t, life) == 64,
               "layout");
_Static_assert(sizeof(thread_slot_t) == 64 && offsetof(thread_slot_t, epoch) == 24, "layout");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "a mutex fits the line reserved for it");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "atomics in the segment must be lock-free to work across processes");

/* A segment made for one list of its own (lib/solo.c, <sharena/solo.h>)
 * begins with a page of its own format, whose first 64 bytes are this head;
 * its heap, once the list has become one, starts at heap_off in the same
 * object and is an ordinary heap from there on (base = mapping + heap_off).
 * Fields up to checksum are written once at creation; `state` says whether
 * the heap exists: attach by name (open_validated) follows heap_off only
 * when it reads SHR_SOLO_HEAP, and refuses a compact list with
 * SHR_ECOMPACT. */
#define SHR_SOLO_MAGIC "SHRSOLO"            /* 8 bytes with the NUL */
#define SHR_SOLO_PAGE SHR_OS_PAGE           /* the compact list's page */
#define SHR_SOLO_HEAP_OFF SHR_CHUNK_SIZE    /* where its heap starts in the object */
enum { SHR_SOLO_COMPACT = 1, SHR_SOLO_PROMOTING = 2, SHR_SOLO_HEAP = 3 };
typedef struct seg_solo_head {
    char magic[8];                      /*  0 SHR_SOLO_MAGIC */
    uint32_t layout_version;            /*  8 SHR_LAYOUT_VERSION, at the heap header's offset */
    uint32_t page_size;                 /* 12 SHR_SOLO_PAGE */
    uint32_t sizeof_mutex;              /* 16 sizeof(pthread_mutex_t): same libc */
    uint32_t mode;                      /* 20 permission bits at creation */
    uint64_t heap_off;                  /* 24 SHR_SOLO_HEAP_OFF */
    uint64_t file_size;                 /* 32 heap_off + the heap's capacity */
    uint64_t created_ns;                /* 40 CLOCK_REALTIME */
    uint64_t checksum;                  /* 48 FNV-1a of the 48 bytes above */
    _Atomic uint32_t state;             /* 56 SHR_SOLO_*: the commit word of the heap's creation */
    uint32_t reserved;                  /* 60 */
} seg_solo_head_t;
_Static_assert(sizeof(seg_solo_head_t) == 64 && offsetof(seg_solo_head_t, layout_version) == 8 &&
                   offsetof(seg_solo_head_t, state) == 56,
               "layout: the compact page's head");

/* Hard limits of the per-heap limits (the table sizes a header may record). */
#define SHR__PROCS_LIMIT SHR_LIMIT_MAX_PROCS
#define SHR__THREADS_LIMIT SHR_LIMIT_MAX_THREADS

/* What the layers ask of a new segment, and what attach must find. */
typedef struct shr__seg_params {
    uint32_t consts[SHR_SEG_NCONSTS];
    uint64_t global_size[SHR_NLAYERS];
    uint64_t proc_size[SHR_NLAYERS];
    uint64_t thread_size[SHR_NLAYERS];
    uint64_t table_size[SHR_NLAYERS];   /* bytes per chunk; the layer commits it */
    /* Bytes a layer's global region grows by per record of the heap's
     * event log (seg_header_t.log_records, an option of the creator). */
    uint64_t global_per_record[SHR_NLAYERS];
    /* Bytes at the end of global_size that the layer commits itself, as it
     * first uses them, instead of at creation (a directory used entry by
     * entry). The per-record part after them is the layer's to commit as
     * well: creation commits [global_off, global_off + global_size -
     * global_lazy), rounded up to a page, and nothing else of the region. */
    uint64_t global_lazy[SHR_NLAYERS];
    /* Called for every new handle, after validation and before the process
     * registers (a registration sweep runs the layers' hooks), to set up the
     * layers' process-private state. May be NULL. */
    int (*open)(shr_heap_t *heap);
    /* Called on a new segment, after open, before it gets its name, to
     * initialise the layers' regions. May be NULL. */
    int (*init)(shr_heap_t *heap);
    /* Called when a handle is freed, after the process unregistered. */
    void (*close)(shr_heap_t *heap);
} shr__seg_params_t;

/* A context whose heap was closed holds this instead of a heap: an address
 * no handle has, and not NULL, so that a NULL handle never matches any
 * context (the allocation fast paths rely on it to send NULL to their slow
 * paths at no cost). */
#define SHR__CTX_CLOSED ((shr_heap_t *)(uintptr_t)1)

/* A thread's context for one heap: process-private. */
typedef struct shr_tctx {
    _Atomic(shr_heap_t *) heap;         /* SHR__CTX_CLOSED once the heap is closed */
    uint32_t slot;                      /* index in the thread slots */
    uint32_t gen;                       /* slot gen when claimed */
    thread_slot_t *ts;
    void *layer[SHR_NLAYERS];           /* the slot's layer regions */
    struct shr_tctx *next_in_thread;
    struct shr_tctx *next_in_heap;      /* under proc_mutex */
} shr_tctx_t;

struct shr__anchor; /* registry.c: the thread that holds this process's `life` mutexes */

/* The process-private handle. */
struct shr_heap {
    uint8_t *base;                      /* the heap's first byte: map + map_off */
    uint8_t *map;                       /* the mapping, unmapped when the handle is freed: */
    uint64_t map_len;                   /*   the capacity, or a compact list's page and */
                                        /*   its heap (seg_solo_head_t) */
    seg_header_t *hdr;                  /* == base */
    uint64_t capacity;
    proc_entry_t *procs;                /* base + hdr->procs_off */
    thread_slot_t *threads;             /* base + hdr->threads_off */
    uint32_t max_procs, max_threads;    /* validated copies of the header's */
    int fd;                             /* -1: a named heap's fd is closed once mapped;
                                           a segment kind that needs one keeps it here */
    dev_t dev;                          /* the shm object, for unlink_if_ours */
    ino_t ino;                          /*   and shr__seg_committed */
    char name[SHR_NAME_MAX + 1];
    /* registration of this process; under proc_mutex */
    uint32_t proc;                      /* process entry index */
    uint32_t proc_gen;
    uint64_t fork_epoch;                /* epoch at registration; see registry.c */
    bool registered;
    struct shr__anchor *anchor;         /* holds procs[proc].life while registered */
    shr_tctx_t *ctxs;                   /* contexts of this process's threads */
    void *layer_priv[SHR_NLAYERS];      /* layers' process-private state */
    void (*layer_close)(shr_heap_t *);  /* params->close */
    /* Copies for the hot paths, so that they need no dependent loads. */
    uint32_t flags;                     /* hdr->flags */
    uint32_t fast_max;                  /* the allocator's: largest size its malloc fast
                                           path serves (0 in a guarded heap) */
    uint8_t pool_shift[16];             /* the allocator's: pool size shift by chunk kind */
    void *hot[2];                       /* the allocator's chunk table and globals */
};

/* ---- segment.c ------------------------------------------------------- */

int shr__seg_create(const char *name, const shr_heap_options_t *opts,
                    const shr__seg_params_t *params, shr_heap_t **out);
int shr__seg_attach(const char *name, const shr__seg_params_t *params, shr_heap_t **out);
/* The heap of a compact list's segment (seg_solo_head_t), at heap_off in a
 * mapping of the whole object, [0, heap_off + capacity), that the call
 * takes over (the new handle's, or unmapped on failure). `st` identifies
 * the object (fstat, or the dev and ino its creator recorded). Create writes
 * a new heap there (its pages committed through the mapping; no name is
 * published: the caller's state word does that); attach validates the one
 * that is there, as shr__seg_attach does. */
int shr__seg_create_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                       const char *name, const shr_heap_options_t *opts,
                       const shr__seg_params_t *params, shr_heap_t **out);
int shr__seg_attach_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                       const char *name, const shr__seg_params_t *params, shr_heap_t **out);
/* Validate a compact list's head as read from an object of `size` bytes:
 * 0, SHR_ENOTSHR, SHR_EVERSION, SHR_ETRUNC or SHR_ECORRUPT. */
int shr__solo_head_validate(const seg_solo_head_t *head, uint64_t size);
uint64_t shr__solo_head_checksum(const seg_solo_head_t *head);
int shr__seg_close(shr_heap_t *heap);
/* Unlink the heap's name if it still names this segment. Called under the
 * registry lock by the last process to detach from an unlink-on-last-close
 * heap, so that no attacher can slip in between the decision and the act. */
void shr__seg_unlink_if_ours(shr_heap_t *heap);
/* shr_heap_stat for the segment: sweeps, then reports. */
int shr__seg_stat(shr_heap_t *heap, shr_heap_info_t *info, shr_proc_info_t *procs,
                  size_t max, size_t *nprocs);
/* Commit [off, off + len) before any access: -ENOMEM when the shm mount is
 * full (nothing newly committed is kept then). Release gives pages back. */
int shr__seg_commit(shr_heap_t *heap, uint64_t off, uint64_t len);
int shr__seg_release(shr_heap_t *heap, uint64_t off, uint64_t len);
/* Commit thread slot `slot`'s pages: its thread_slot_t and each layer's
 * thread region. The registry calls it before a slot's first claim (the
 * slot at threads_hwm): slots below threads_hwm are committed (R6). */
int shr__seg_commit_thread(shr_heap_t *heap, uint32_t slot);
/* Commit process entry `proc`'s pages: its proc_entry_t and each layer's
 * per-process region. The registry calls it before an entry's first claim
 * (the entry at procs_hwm): entries below procs_hwm are committed (R6). */
int shr__seg_commit_proc(shr_heap_t *heap, uint32_t proc);
/* Is the page holding p committed? A reader of what may never have been
 * committed (a checker's walk of the thread slots above threads_hwm) asks
 * first, since reading an uncommitted page of a shared mapping commits it. */
bool shr__seg_resident(const shr_heap_t *heap, const void *p);
uint64_t shr__seg_committed(const shr_heap_t *heap);
/* Fault injection for tests: the nth commit from now fails with -ENOMEM
 * (0 disables). Process-wide. */
void shr__seg_fail_commit_after(uint64_t n);

/* Registry tables. Indices come from the caller's own state or are checked
 * against max_procs / max_threads first. */
static inline proc_entry_t *shr__proc_entry(const shr_heap_t *h, uint32_t p)
{
    SHR_ASSERT(p < h->max_procs);
    return &h->procs[p];
}
/* Process entries ever claimed: entries at or above it are FREE, zero, and
 * perhaps not committed (R6); a walk of the entries stops here. */
static inline uint32_t shr__procs_hwm(const shr_heap_t *h)
{
    uint32_t n = atomic_load_explicit(&h->hdr->procs_hwm, memory_order_acquire);
    return n < h->max_procs ? n : h->max_procs;
}
static inline thread_slot_t *shr__thread_slot(const shr_heap_t *h, uint32_t s)
{
    SHR_ASSERT(s < h->max_threads);
    return &h->threads[s];
}

/* ---- private.c: SHR_HEAP_PRIVATE segments ----------------------------- */

/* An anonymous file of capacity bytes, mapped copy-on-write at a
 * chunk-aligned address. */
int shr__private_map(uint64_t capacity, int *fdp, uint8_t **basep);
/* Track a private heap for the fork handlers; forget it when it is freed. */
int shr__private_register(shr_heap_t *heap);
void shr__private_forget(shr_heap_t *heap);
int shr__private_release(shr_heap_t *heap, uint64_t off, uint64_t len);
uint64_t shr__private_committed(const shr_heap_t *heap);
/* Called by the registry's atfork handlers, under proc_mutex. */
void shr__private_fork_prepare(void);
void shr__private_fork_parent(void);
void shr__private_fork_child(void);

/* Layer regions. */
static inline void *shr__seg_global(const shr_heap_t *h, int layer)
{
    return h->base + h->hdr->global_off[layer];
}
static inline void *shr__seg_proc_area(const shr_heap_t *h, int layer, uint32_t proc)
{
    return h->base + h->hdr->proc_off[layer] + (uint64_t)proc * h->hdr->proc_size[layer];
}
static inline void *shr__seg_table(const shr_heap_t *h, int layer)
{
    return h->base + h->hdr->table_off[layer];
}
static inline void *shr__seg_thread_area(const shr_heap_t *h, int layer, uint32_t slot)
{
    return h->base + h->hdr->thread_off[layer] + (uint64_t)slot * h->hdr->thread_size[layer];
}

/* Unchecked conversions for internal use: the caller knows the offset is in
 * range (it came from our own metadata, validated where it was read). */
static inline void *shr__ptr(const shr_heap_t *h, shr_off_t off) { return h->base + off; }
static inline shr_off_t shr__off(const shr_heap_t *h, const void *p)
{
    return (shr_off_t)((const uint8_t *)p - h->base);
}

/* ---- lock.c ---------------------------------------------------------- */

typedef int (*shr__repair_fn)(shr_heap_t *heap);

/* Take a lock of the table, waiting at most the heap's lock timeout. On
 * EOWNERDEAD the lock's repair hook runs before the lock is made
 * consistent. Returns 0, SHR_ELOCKTIMEOUT (the holder did not release it in
 * time: recorded in the lock's timeout fields) or SHR_ELOCK (unrecoverable). */
int shr__lock(shr_heap_t *heap, shr_lock_id_t id);
void shr__unlock(shr_heap_t *heap, shr_lock_id_t id);
/* Unlock between two steps of a walk (stats, check): when another thread
 * waits for the lock, let it take the lock before returning (for 0.2 ms at
 * most), so that it waits for one step, never for the walk. */
void shr__unlock_step(shr_heap_t *heap, shr_lock_id_t id);
/* Install the process-wide repair hook for a lock (idempotent). */
void shr__lock_set_repair(shr_lock_id_t id, shr__repair_fn fn);
int shr__lock_init_all(seg_header_t *hdr);
int shr__robust_mutex_init(pthread_mutex_t *mu);
/* Whether mu, a robust process-shared mutex in the segment, still has the
 * kind it was initialised with: a damaged one is never locked (attach
 * refuses the heap with SHR_ECORRUPT; a damaged life mutex reads alive). */
bool shr__mutex_sane(const pthread_mutex_t *mu);

/* The wait primitive, for every wait on something another process holds
 * (the heap's locks, a layer's own robust mutex, a spin on an owner word).
 *
 *   uint64_t dl = shr__lock_deadline(h);           // once, before waiting
 *   rc = shr__mutex_lock_until(&mu, dl);           // pthread codes: 0,
 *                                                  // EOWNERDEAD, ETIMEDOUT, ...
 *   for (unsigned n = 0; !try_take(); n++)         // a spin on a word
 *       if (shr__backoff(&n, dl)) return SHR_ELOCKTIMEOUT;
 *
 * Deadlines are CLOCK_MONOTONIC ns; UINT64_MAX never passes (a heap whose
 * lock timeout is 0). A change of the wall clock does not shorten or
 * lengthen a wait. */
uint64_t shr__lock_deadline(const shr_heap_t *heap);
int shr__mutex_lock_until(pthread_mutex_t *mu, uint64_t deadline_ns);
/* One step of a spin wait: spins, then yields, then sleeps up to 1 ms.
 * Returns true once the deadline has passed. */
bool shr__backoff(unsigned *round, uint64_t deadline_ns);
/* The lock timeout of a heap created with timeout_ms: SHARENA_LOCK_TIMEOUT_MS
 * when set (0: no bound), else timeout_ms (0: the default). Read at each
 * wait's start (shr__lock_deadline). */
uint64_t shr__lock_timeout_ns(uint32_t timeout_ms);
/* Who holds mu, read from its futex word without touching the lock:
 * 0 free, else the holder's tid; *owner_died set when the kernel marked the
 * holder dead. glibc's layout (the futex word first), as every process of a
 * heap must use the same libc. */
int32_t shr__mutex_holder(const pthread_mutex_t *mu, bool *owner_died);
/* errno for a failed allocation path: SHR_ELOCKTIMEOUT -> ETIMEDOUT,
 * SHR_ELOCK -> ENOTRECOVERABLE, SHR_EPROCS/ETHREADS/ESPAWN -> EAGAIN,
 * -errno -> errno. */
int shr__errno_of(int rc);

/* ---- registry.c ------------------------------------------------------ */

/* Reclaim hooks: for a thread slot being released (its thread exited, its
 * heap closed, or its process died) and for a process entry being released.
 * `dead` tells a crash from a clean exit. With dead = false they run under
 * the registry lock; with dead = true, either under it (a sweep) or outside
 * it with the entry in state RECLAIM, owned by the one reclaimer that runs
 * them (shr__registry_reclaim): no other thread touches that process's slots
 * or regions meanwhile, and slots stay LIVE until the hooks are done. Every
 * hook must be re-runnable: a reclaimer that dies part way is taken over and
 * the hooks run again from the start. */
typedef struct shr__layer_hooks {
    void (*thread_release)(shr_heap_t *heap, uint32_t slot, bool dead);
    void (*proc_release)(shr_heap_t *heap, uint32_t proc, bool dead);
    /* A FREE process entry being claimed, before it reads LIVE: the layer
     * resets what of its region the new owner would trust (a file being
     * attached may have left anything there). */
    void (*proc_claim)(shr_heap_t *heap, uint32_t proc);
} shr__layer_hooks_t;

/* hooks must live as long as the process (a static table): it is kept, not
 * copied. */
void shr__registry_set_hooks(int layer, const shr__layer_hooks_t *hooks);
/* Initialise the tables of a new segment (h->procs, h->threads set). */
int shr__registry_init(shr_heap_t *heap);
int shr__proc_register(shr_heap_t *heap);
/* Detach this process; unlinks the name when it was the last live process
 * of an unlink-on-last-close heap. */
void shr__proc_unregister(shr_heap_t *heap);
/* Reclaim every dead entry at once, the layers' hooks included; caller
 * holds the registry lock. Returns the count (entries and slots). For when
 * memory has run out, for repair, and for what no step takes (slots a dead
 * claim left): everywhere else, shr__registry_reclaim (a full table of
 * entries or slots is reclaimed one dead process at a time). */
int shr__registry_sweep_locked(shr_heap_t *heap);
/* Reclaim up to max dead processes, each in a step of its own whose layer
 * work runs outside the registry lock (registry.c, "Reclaim in steps").
 * Takes no lock on entry; the caller holds none of the heap's. Returns the
 * number of entries and slots reclaimed, or a negative code. */
int shr__registry_reclaim(shr_heap_t *heap, uint32_t max);
/* Dead processes reclaimed per step-taking call: a thread's first use of a
 * heap, a close. */
#define SHR__RECLAIM_STEPS 1u
/* Verify the registry's fields that later operations trust (R1-R5 in
 * registry.c), printing each violation to out (may be NULL). Takes the
 * registry lock. Returns the number of violations, or a negative code. */
int shr__registry_check(shr_heap_t *heap, FILE *out);
/* Is the handle registered by this very process (not a fork parent)? */
bool shr__proc_registered_here(const shr_heap_t *heap);
/* This thread's kernel tid, cached (reset in a fork child). */
int32_t shr__gettid(void);
/* 1 live, 0 dead, for an entry in state LIVE. Does not reclaim. */
int shr__proc_alive(const shr_heap_t *heap, uint32_t proc);
/* Is the thread that claimed `slot` at generation `gen` gone (its slot
 * released or claimed again, or its process dead)? For owner words that
 * name a slot: any slot number is accepted. */
bool shr__slot_gone(const shr_heap_t *heap, uint32_t slot, uint32_t gen);

shr_noinline shr_tctx_t *shr__tctx_slow(shr_heap_t *heap);
extern _Thread_local shr_tctx_t *shr__tl_ctx __attribute__((tls_model("initial-exec")));

/* This thread's context for heap: its slot, claimed on first use. NULL with
 * errno set when no slot can be had. */
shr_inline shr_tctx_t *shr__tctx(shr_heap_t *heap)
{
    shr_tctx_t *c = shr__tl_ctx;
    if (shr_likely(c != NULL && shr_load_relaxed(&c->heap) == heap)) return c;
    return shr__tctx_slow(heap);
}

#endif /* SHR_SHM_H */
