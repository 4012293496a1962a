/* shm: the segment, its header, the registry of attached processes and
 * threads, the robust lock table, and commit/release of pages.
 *
 * This is the interface the layers above (alloc, gc, list) build on. The
 * layout is drawn byte by byte in docs/design/shm.md.
 *
 * Segment:
 *
 *   0            meta_size                                      capacity
 *   +------------+----------------------------------------------+
 *   | header     | chunks of SHR_CHUNK_SIZE, used by the layers  |
 *   | + layer    | above (arenas, large runs)                    |
 *   |   regions  |                                               |
 *   +------------+----------------------------------------------+
 *
 * The header is seg_header_t followed by each layer's regions: one global
 * region per layer, one region per process entry, one per thread slot and,
 * last, one table with an entry per chunk of the capacity. Everything up to
 * the tables is committed at creation; a layer commits its table as it uses
 * it (a 1 TiB heap would otherwise commit its whole chunk table).
 * Their sizes are given by the creator (shr__seg_params_t) and recorded in the
 * header; attach refuses a segment whose recorded sizes differ from this
 * build's (SHR_EVERSION).
 *
 * Liveness (docs/design/shm.md, "Liveness"):
 *   - a process entry is alive while its `life` robust mutex is held. An
 *     anchor thread of the attached process locks it at attach and unlocks it
 *     at detach. Exit, SIGKILL and exec all end that thread, and the kernel
 *     then marks the mutex owner-dead, so trylock tells the truth: EBUSY live,
 *     EOWNERDEAD or 0 dead. No pid is involved, so pid reuse and zombies
 *     cannot fool it. A fork child gets an entry of its own on first use.
 *   - a thread slot belongs to a process entry. It is released by the
 *     thread's TLS destructor when the thread exits, by shr_heap_close, or by
 *     the sweep that reclaims its dead process.
 *
 * Locking: robust process-shared mutexes in the header's lock table, never
 * freed. Lock ids are also ranks: a thread takes locks in increasing id order
 * (checked at SHR_DEBUG >= 2). The process-private `proc_mutex` (registration,
 * handle and context lists) is taken before any shared lock. A process never
 * unmaps the segment while it holds a shared lock.
 */
#ifndef SHR_SHM_H
#define SHR_SHM_H

#include <pthread.h>

#include "common.h"

/* ---- Layout constants ------------------------------------------------ */

#define SHR_LAYOUT_VERSION 3u /* 3: lease_table_t.live, the list lock word's waiter bit */
#define SHR_CHUNK_SHIFT 18
#define SHR_CHUNK_SIZE ((uint64_t)1 << SHR_CHUNK_SHIFT) /* 256 KiB */
#define SHR_MAX_PROCS 128
#define SHR_MAX_THREADS 512
#define SHR_SHM_DIR "/dev/shm"
#define SHR_CACHELINE 64

/* Layers above shm that own regions in the header. */
enum { SHR_LAYER_ALLOC, SHR_LAYER_GC, SHR_LAYER_LIST, SHR_NLAYERS };

/* Number of layout constants the layers record (arena size, pool size...). */
#define SHR_SEG_NCONSTS 16

/* Lock table. The id is the rank: take locks in increasing id order. */
typedef enum {
    SHR_LOCK_GC,       /* the cycle collector */
    SHR_LOCK_ROOTS,    /* the root directory */
    SHR_LOCK_REGISTRY, /* process entries and thread slots */
    SHR_LOCK_LARGE,    /* page runs of large blocks */
    SHR_LOCK_ARENA,    /* chunks, arenas, pools moving between owners, orphans */
    SHR_NLOCKS = 8     /* room for more without a layout change */
} shr_lock_id_t;

typedef struct shm_lock {
    pthread_mutex_t mu;              /* robust, process-shared */
    _Atomic int32_t owner_tid;       /* holder's tid, diagnostics only */
    _Atomic uint32_t owner_proc;     /* holder's process entry + 1, or 0 */
    _Atomic uint64_t nacquired;      /* statistics, relaxed */
    _Atomic uint64_t nrepaired;      /* EOWNERDEAD repairs done */
} __attribute__((aligned(SHR_CACHELINE))) shm_lock_t;

/* Entry states (proc_entry_t.state, thread_slot_t.state). */
enum { SHR_ENTRY_FREE = 0, SHR_ENTRY_LIVE = 1 };

typedef struct proc_entry {
    pthread_mutex_t life;       /* held by the process's anchor thread */
    _Atomic uint32_t state;     /* SHR_ENTRY_*; changes under the registry lock */
    _Atomic uint32_t gen;       /* ++ on every claim: (index, gen) names one attachment */
    int32_t pid;                /* diagnostics; never used to decide liveness */
    uint32_t nthreads;          /* live thread slots; under the registry lock */
    uint64_t start_time;        /* /proc/PID/stat starttime, clock ticks */
    uint64_t attach_ns;         /* CLOCK_REALTIME at attach */
} __attribute__((aligned(SHR_CACHELINE))) proc_entry_t;

typedef struct thread_slot {
    _Atomic uint32_t state;     /* SHR_ENTRY_*; changes under the registry lock */
    _Atomic uint32_t gen;       /* ++ on every claim */
    uint32_t proc;              /* owning process entry */
    uint32_t proc_gen;          /* that entry's gen when claimed */
    int32_t tid;                /* diagnostics */
    _Atomic uint32_t in_heap;   /* stop-the-world gate (gc) */
    _Atomic uint64_t epoch;     /* reclamation epoch announcement */
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
    uint32_t max_procs, max_threads;    /* SHR_MAX_PROCS, SHR_MAX_THREADS */
    uint32_t nlocks;                    /* SHR_NLOCKS */
    uint32_t sizeof_mutex;              /* sizeof(pthread_mutex_t): same libc */
    uint32_t sizeof_proc, sizeof_thread;/* sizeof(proc_entry_t), sizeof(thread_slot_t) */
    uint32_t flags;                     /* SHR_HEAP_* */
    uint32_t mode;                      /* permission bits at creation */
    uint32_t consts[SHR_SEG_NCONSTS];   /* the layers' layout constants */
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
    uint64_t eager_size;                /* bytes committed at creation */
    char name[SHR_NAME_MAX + 1];        /* name given at creation */
    uint64_t checksum;                  /* FNV-1a of all fields above */

    /* Mutable part. */
    _Atomic uint64_t nattach;           /* attachments ever, statistics */
    shm_lock_t locks[SHR_NLOCKS];
    proc_entry_t procs[SHR_MAX_PROCS];
    thread_slot_t threads[SHR_MAX_THREADS];
} seg_header_t;

/* What the layers ask of a new segment, and what attach must find. */
typedef struct shr__seg_params {
    uint32_t consts[SHR_SEG_NCONSTS];
    uint64_t global_size[SHR_NLAYERS];
    uint64_t proc_size[SHR_NLAYERS];
    uint64_t thread_size[SHR_NLAYERS];
    uint64_t table_size[SHR_NLAYERS];   /* bytes per chunk; the layer commits it */
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

/* A thread's context for one heap: process-private. */
typedef struct shr_tctx {
    _Atomic(shr_heap_t *) heap;         /* NULL once the heap is closed */
    uint32_t slot;                      /* index in threads[] */
    uint32_t gen;                       /* slot gen when claimed */
    thread_slot_t *ts;
    void *layer[SHR_NLAYERS];           /* the slot's layer regions */
    struct shr_tctx *next_in_thread;
    struct shr_tctx *next_in_heap;      /* under proc_mutex */
} shr_tctx_t;

/* The process-private handle. */
struct shr_heap {
    uint8_t *base;                      /* mapping of the whole capacity */
    seg_header_t *hdr;                  /* == base */
    uint64_t capacity;
    int fd;                             /* kept open: commit, release, stat */
    char name[SHR_NAME_MAX + 1];
    /* registration of this process; under proc_mutex */
    uint32_t proc;                      /* process entry index */
    uint32_t proc_gen;
    uint64_t fork_epoch;                /* epoch at registration; see registry.c */
    bool registered;
    pthread_t anchor;
    pthread_mutex_t anchor_mu;          /* private: anchor handshake */
    pthread_cond_t anchor_cv;
    int anchor_state;                   /* 0 starting, 1 holding, 2 stop asked, -1 failed */
    shr_tctx_t *ctxs;                   /* contexts of this process's threads */
    void *layer_priv[SHR_NLAYERS];      /* layers' process-private state */
    void (*layer_close)(shr_heap_t *);  /* params->close */
    /* Copies for the hot paths, so that they need no dependent loads. */
    uint32_t flags;                     /* hdr->flags */
    void *hot[2];                       /* the allocator's chunk table and globals */
};

/* ---- segment.c ------------------------------------------------------- */

int shr__seg_create(const char *name, const shr_heap_options_t *opts,
                    const shr__seg_params_t *params, shr_heap_t **out);
int shr__seg_attach(const char *name, const shr__seg_params_t *params, shr_heap_t **out);
int shr__seg_close(shr_heap_t *heap);
/* Unlink the heap's name if it still names this segment. Called under the
 * registry lock by the last process to detach from an unlink-on-last-close
 * heap, so that no attacher can slip in between the decision and the act. */
void shr__seg_unlink_if_ours(shr_heap_t *heap);
/* shr_heap_stat for the segment: sweeps, then reports. */
int shr__seg_stat(shr_heap_t *heap, shr_heap_info_t *info, shr_proc_info_t *procs,
                  size_t max, size_t *nprocs);
int shr__seg_commit(shr_heap_t *heap, uint64_t off, uint64_t len);
int shr__seg_release(shr_heap_t *heap, uint64_t off, uint64_t len);
uint64_t shr__seg_committed(const shr_heap_t *heap);
/* Fault injection for tests: the nth commit from now fails with -ENOMEM
 * (0 disables). Process-wide. */
void shr__seg_fail_commit_after(uint64_t n);

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

/* Take a lock of the table. On EOWNERDEAD the lock's repair hook runs before
 * the lock is made consistent. Returns 0, or SHR_ELOCK when the lock is
 * unrecoverable. */
int shr__lock(shr_heap_t *heap, shr_lock_id_t id);
void shr__unlock(shr_heap_t *heap, shr_lock_id_t id);
/* Install the process-wide repair hook for a lock (idempotent). */
void shr__lock_set_repair(shr_lock_id_t id, shr__repair_fn fn);
int shr__lock_init_all(seg_header_t *hdr);
int shr__robust_mutex_init(pthread_mutex_t *mu);

/* ---- registry.c ------------------------------------------------------ */

/* Reclaim hooks, called under the registry lock: for a thread slot being
 * released (its thread exited, its heap closed, or its process died) and for
 * a process entry being released. `dead` tells a crash from a clean exit. */
typedef struct shr__layer_hooks {
    void (*thread_release)(shr_heap_t *heap, uint32_t slot, bool dead);
    void (*proc_release)(shr_heap_t *heap, uint32_t proc, bool dead);
} shr__layer_hooks_t;

void shr__registry_set_hooks(int layer, const shr__layer_hooks_t *hooks);
int shr__registry_init(seg_header_t *hdr);
int shr__proc_register(shr_heap_t *heap);
/* Detach this process; unlinks the name when it was the last live process
 * of an unlink-on-last-close heap. */
void shr__proc_unregister(shr_heap_t *heap);
/* Reclaim dead entries; caller holds the registry lock. Returns the count. */
int shr__registry_sweep_locked(shr_heap_t *heap);
/* Is the handle registered by this very process (not a fork parent)? */
bool shr__proc_registered_here(const shr_heap_t *heap);
/* This thread's kernel tid, cached (reset in a fork child). */
int32_t shr__gettid(void);
/* 1 live, 0 dead, for an entry in state LIVE. Does not reclaim. */
int shr__proc_alive(seg_header_t *hdr, uint32_t proc);

shr_noinline shr_tctx_t *shr__tctx_slow(shr_heap_t *heap);
extern _Thread_local shr_tctx_t *shr__tl_ctx __attribute__((tls_model("initial-exec")));

/* This thread's context for heap: its slot, claimed on first use. NULL with
 * errno set when no slot can be had. */
shr_inline shr_tctx_t *shr__tctx(shr_heap_t *heap)
{
    shr_tctx_t *c = shr__tl_ctx;
    if (shr_likely(c != NULL && atomic_load_explicit(&c->heap, memory_order_relaxed) == heap))
        return c;
    return shr__tctx_slow(heap);
}

#endif /* SHR_SHM_H */
