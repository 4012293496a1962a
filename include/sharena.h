/* sharena: a pymalloc-style heap, refcounted objects and a shared list inside
 * one POSIX shared-memory segment, used directly by many processes and threads.
 *
 * This is the one public header. Conventions, as in libuv:
 *   - functions returning int return 0 or a negative code (-errno, or one of
 *     SHR_E* from <sharena/errors.h>); shr_strerror() names it;
 *   - out-parameters are written only on success;
 *   - allocation functions return NULL and set errno;
 *   - a NULL heap handle is an error, never a crash, and changes nothing:
 *     int functions return -EINVAL (shr_heap_close, _stat, _recover,
 *     _check, _collect, _stats, the roots...), allocation functions NULL
 *     with errno = EINVAL, shr_usable_size 0, shr_heap_name, shr_ptr and
 *     shr_off NULL or 0, and shr_free(NULL, p) does nothing (at no cost on
 *     the allocation fast paths: NULL never matches the thread's context,
 *     so it takes the slow path, which checks);
 *   - nothing stored in the segment is a pointer: shared references are
 *     shr_off_t offsets from the segment base, 0 meaning null. shr_ptr() and
 *     shr_off() convert in this process's mapping.
 */
#ifndef SHARENA_H
#define SHARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sharena/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHR_VERSION_MAJOR 0
#define SHR_VERSION_MINOR 1
#define SHR_VERSION_PATCH 0

/* An offset from the base of a heap's segment. 0 is the null offset. */
typedef uint64_t shr_off_t;

/* A process's handle on one attached heap. Private to the process; every
 * thread of the process may use it. */
typedef struct shr_heap shr_heap_t;

/* Longest heap name, in bytes, without the terminating NUL. */
#define SHR_NAME_MAX 255

/* Capacity used when the options leave it 0: reserved address space and a
 * sparse object, costing memory only for what is used. */
#define SHR_DEFAULT_CAPACITY ((size_t)1 << 30)
/* Largest capacity a heap may have. */
#define SHR_MAX_CAPACITY ((size_t)1 << 40)

/* Heap flags (shr_heap_options_t.flags). */
enum {
    /* Unlink the segment's name when the last live process detaches, or
     * when a closing process finds every other attached process dead. */
    SHR_HEAP_UNLINK_ON_LAST_CLOSE = 1u << 0,
    /* Debug layout: every block carries its size and guard bytes around it,
     * checked on free and by shr_heap_check (CPython's PYTHONMALLOC=debug). */
    SHR_HEAP_GUARDS = 1u << 1,
    /* A heap of this process alone, like ordinary process memory: no name
     * (create with name NULL; it cannot be attached), backed by an anonymous
     * file rather than /dev/shm, mapped copy-on-write so that a fork child
     * gets its own copy of every block, and gone when the process ends,
     * whatever the exit. Memory is taken when first written, as for malloc;
     * shr_heap_info.committed counts resident pages. */
    SHR_HEAP_PRIVATE = 1u << 2,
    /* Pools of 16 KiB for the small classes (1..512 bytes), 16 to an arena,
     * as CPython 3.10+ uses on 64-bit builds, instead of the default 4 KiB,
     * 63 to an arena. Fewer slow paths where many blocks of each class
     * come and go at once; up to 16 KiB per class held by each thread's
     * partly used pools instead of 4 KiB. docs/design/alloc.md §2.2. */
    SHR_HEAP_POOLS_16K = 1u << 3
};

/* Limits of a heap, chosen at creation (shr_heap_options_t): the number of
 * process entries (one per attachment; a fork child that uses the heap takes
 * one more) and of thread slots (one per thread per attachment). Their
 * tables are part of the heap's metadata: a process entry (about 192 bytes)
 * is committed when a process first takes it, a thread slot (832 bytes)
 * when a thread first uses the heap, so the limits cost address space only. */
#define SHR_DEFAULT_MAX_PROCS 128
#define SHR_DEFAULT_MAX_THREADS 512
#define SHR_LIMIT_MAX_PROCS 4096      /* largest max_procs a heap may have */
#define SHR_LIMIT_MAX_THREADS 65536   /* largest max_threads */
/* Longest wait for a heap lock before a call gives up with SHR_ELOCKTIMEOUT
 * (a holder that is stopped, hung, or a lock damaged in the segment). */
#define SHR_DEFAULT_LOCK_TIMEOUT_MS 5000
/* The collector's event log (<sharena/gc.h>, shr_gc_log_read). */
#define SHR_DEFAULT_GC_LOG_RECORDS 4096u
#define SHR_GC_LOG_MAX (1u << 20)
#define SHR_GC_LOG_NONE 0xffffffffu

/* Options of a new heap. Zero in any field means its default, so a zeroed
 * struct is the defaults; shr_heap_options_init() writes them out. New
 * options take reserved words, with zero keeping today's behaviour, so the
 * struct keeps its size; reserved words must be zero (else -EINVAL). */
typedef struct shr_heap_options {
    size_t capacity;          /* bytes of address space to reserve; 0 = default */
    unsigned mode;            /* permission bits of the shm object; 0 = 0600 */
    unsigned flags;           /* SHR_HEAP_* */
    uint32_t max_procs;       /* 1..SHR_LIMIT_MAX_PROCS; 0 = SHR_DEFAULT_MAX_PROCS */
    uint32_t max_threads;     /* 1..SHR_LIMIT_MAX_THREADS; 0 = SHR_DEFAULT_MAX_THREADS */
    uint32_t lock_timeout_ms; /* bound of lock waits, stored in the heap; 0 = default.
                                 SHARENA_LOCK_TIMEOUT_MS in a process's environment
                                 overrides it for that process (0 there: no bound) */
    uint32_t gc_log_records;  /* records of the collector's event log (shr_gc_log_read; 64
                                 bytes each, committed with the heap's metadata), rounded up
                                 to a power of two, at most SHR_GC_LOG_MAX; 0 = default:
                                 SHR_DEFAULT_GC_LOG_RECORDS, fewer for a heap under 64 MiB
                                 (one per 16 KiB of capacity, at least 64);
                                 SHR_GC_LOG_NONE: no log */
    uint32_t reserved[6];     /* must be zero */
} shr_heap_options_t;

/* Fill *opts with the defaults. */
void shr_heap_options_init(shr_heap_options_t *opts);

/* Create a heap. name may be NULL for a generated one (shr_<pid>_<random>);
 * it has no leading slash. opts may be NULL for defaults. On success *out is
 * a handle attached to the new heap. Errors: SHR_ENAME, -ENAMETOOLONG, -EEXIST
 * (name taken), -EINVAL (bad capacity, flags, limits, a nonzero reserved
 * word, or a capacity too small for the metadata of those limits), -ENOMEM
 * (no room in /dev/shm), -EACCES, SHR_ESPAWN. */
int shr_heap_create(const char *name, const shr_heap_options_t *opts, shr_heap_t **out);

/* Attach an existing heap by name. Errors: -ENOENT, -EACCES, SHR_ENOTSHR
 * (also for a directory or anything that is not a heap), SHR_EVERSION,
 * SHR_ETRUNC, SHR_ECORRUPT, SHR_EPROCS, SHR_ELOCKTIMEOUT, SHR_ELOCK,
 * SHR_ESPAWN. */
int shr_heap_attach(const char *name, shr_heap_t **out);

/* Detach and unmap. The handle is freed even when an error is returned. Other
 * threads of this process must no longer use the heap. -EINVAL for NULL. */
int shr_heap_close(shr_heap_t *heap);

/* Remove a heap's name; processes attached keep using it until they close. */
int shr_heap_unlink(const char *name);

/* The heap's name, without a leading slash. */
const char *shr_heap_name(const shr_heap_t *heap);

/* Check a name as create and attach would: 0, SHR_ENAME (empty, a '/', an
 * embedded NUL) or -ENAMETOOLONG. len is the name's length in bytes. */
int shr_name_check(const char *name, size_t len);

/* Offset of ptr in the heap, or 0 when ptr is NULL or outside the segment. */
shr_off_t shr_off(const shr_heap_t *heap, const void *ptr);

/* Pointer for off in this process's mapping; NULL for 0 or out of range. */
void *shr_ptr(const shr_heap_t *heap, shr_off_t off);

/* Message for a code returned by any sharena function (negative errno or
 * SHR_E*). Never NULL. */
const char *shr_strerror(int code);

/* ---- Inspection ------------------------------------------------------- */

/* One lock of the heap's lock table, read without taking it. */
#define SHR_INFO_LOCKS 8
typedef struct shr_lock_info {
    char name[16];                 /* "registry", "arena", ...; "" for a spare entry */
    int held;                      /* someone holds it now, or died holding it */
    int holder_dead;               /* its holder died in it: the next locker repairs
                                      (the kernel has cleared the holder's tid) */
    int32_t holder_tid;            /* kernel tid of the holder, 0 when free */
    uint32_t holder_index;         /* holder's process entry + 1; 0 when unknown */
    int32_t holder_pid;            /* that entry's pid, 0 when unknown */
    int holder_alive;              /* that entry: 1 alive, 0 dead, -1 unknown */
    uint64_t nacquired, nrepaired; /* statistics */
    uint64_t ntimeouts;            /* waits that gave up (SHR_ELOCKTIMEOUT) */
    uint64_t last_timeout_ns;      /* CLOCK_REALTIME of the last, 0 if none */
    int32_t last_timeout_pid;      /* the process that gave up */
    int32_t last_timeout_holder_tid;   /* who held the lock then */
    uint32_t last_timeout_holder_index;/* and its entry + 1, 0 when unknown */
} shr_lock_info_t;

typedef struct shr_heap_info {
    char name[SHR_NAME_MAX + 1];
    uint32_t layout_version;
    uint32_t flags;                /* SHR_HEAP_* */
    uint64_t capacity;             /* bytes reserved */
    uint64_t committed;            /* bytes of memory the segment really uses */
    uint64_t meta_size;            /* bytes of header and metadata */
    uint64_t created_ns;           /* CLOCK_REALTIME at creation, ns */
    uint32_t nprocs;               /* live process entries */
    uint32_t nthreads;             /* thread slots in use by live processes */
    uint32_t max_procs;            /* the heap's limits */
    uint32_t max_threads;
    uint32_t lock_timeout_ms;      /* as created (the environment may override it) */
    uint32_t nlocks;               /* entries of locks[] in use */
    shr_lock_info_t locks[SHR_INFO_LOCKS];
} shr_heap_info_t;

typedef struct shr_proc_info {
    uint32_t index;                /* registry entry */
    uint32_t generation;           /* bumped on every claim of the entry */
    int32_t pid;
    int alive;                     /* 1 live, 0 dead and not yet reclaimed */
    uint64_t start_time;           /* /proc/PID/stat starttime, clock ticks */
    uint64_t attach_ns;            /* CLOCK_REALTIME at attach, ns */
    uint32_t nthreads;             /* thread slots it holds */
} shr_proc_info_t;

/* Read a heap's header and registry without attaching to it. Needs write
 * access: liveness is probed with a trylock on each entry's lifetime mutex
 * (a dead owner's mutex is left consistent and unlocked; the entry itself is
 * reclaimed only by an attached process). Takes no lock, so the report is a
 * snapshot, and it answers while a lock is stuck: info->locks[] says who
 * holds each lock (read from the lock word) and which waits timed out. procs may be NULL; at most max entries are written and *nprocs
 * (may be NULL) receives how many exist. Errors as shr_heap_attach. */
int shr_heap_inspect(const char *name, shr_heap_info_t *info,
                     shr_proc_info_t *procs, size_t max, size_t *nprocs);

/* Same for an attached heap; also reclaims entries found dead. */
int shr_heap_stat(shr_heap_t *heap, shr_heap_info_t *info,
                  shr_proc_info_t *procs, size_t max, size_t *nprocs);

/* Sweep the registry: every process or thread entry found dead is reclaimed
 * (its pools orphaned for adoption, its references released). Returns the
 * number of entries reclaimed, or a negative code. */
int shr_heap_recover(shr_heap_t *heap);

/* ---- Allocation -------------------------------------------------------
 *
 * Any thread of any attached process may call these; a block may be freed
 * by another thread or process than the one that allocated it. Blocks are
 * 16-byte aligned. Requests of 1..512 bytes come from pools of 32 size
 * classes (pymalloc), larger ones from medium pools, page runs and chunk runs
 * of the same segment. Failure: NULL with errno = ENOMEM (the heap stays
 * fully usable), also for a size no heap can hold. shr_malloc(heap, 0)
 * returns a minimal block, as malloc does. */

void *shr_malloc(shr_heap_t *heap, size_t size);
void *shr_calloc(shr_heap_t *heap, size_t count, size_t size);
/* Grows or shrinks in place when it can, else moves the contents. ptr NULL
 * acts as shr_malloc. On failure returns NULL and ptr is left untouched. */
void *shr_realloc(shr_heap_t *heap, void *ptr, size_t size);
void shr_free(shr_heap_t *heap, void *ptr);
/* Bytes usable in the block (at least the size asked). */
size_t shr_usable_size(shr_heap_t *heap, const void *ptr);

/* Verify every invariant of the heap with bounds-checked walks: 0 when all
 * hold, SHR_ECORRUPT otherwise. Safe to run while others use the heap (it
 * takes the allocator's locks and reads owned pools defensively). */
int shr_heap_check(shr_heap_t *heap);
/* Same, printing each violation found to out (may be NULL). */
int shr_heap_check_report(shr_heap_t *heap, FILE *out);

/* Give this thread's pools the frees other threads made into them, settle
 * those pending on orphaned pools, and return empty pools (this thread's
 * cache included) and arenas to the segment. Returns 0, or -errno when this
 * thread cannot get a slot in the heap. */
int shr_heap_collect(shr_heap_t *heap);

/* ---- Roots: names for offsets ----------------------------------------- */

#define SHR_ROOT_NAME_MAX 63

/* Map name to off (creating or replacing). -ENOSPC when the directory is
 * full, -EINVAL for a bad name or an offset outside the heap. */
int shr_root_set(shr_heap_t *heap, const char *name, shr_off_t off);
/* -ENOENT when the name is not set. */
int shr_root_get(shr_heap_t *heap, const char *name, shr_off_t *off);
int shr_root_delete(shr_heap_t *heap, const char *name);
/* Call fn for every root; stops early and returns fn's value if non-zero. */
typedef int (*shr_root_fn)(const char *name, shr_off_t off, void *arg);
int shr_root_list(shr_heap_t *heap, shr_root_fn fn, void *arg);

/* ---- Statistics --------------------------------------------------------- */

#define SHR_SMALL_CLASSES 32
#define SHR_MEDIUM_CLASSES 20
#define SHR_POOL_CLASSES (SHR_SMALL_CLASSES + SHR_MEDIUM_CLASSES)

typedef struct shr_class_stats {
    uint32_t block_size;       /* bytes */
    uint32_t pool_size;        /* bytes */
    uint64_t pools;            /* pools of this class (used or full) */
    uint64_t blocks_in_use;
    uint64_t blocks_free;      /* in those pools, carved or not */
} shr_class_stats_t;

typedef struct shr_alloc_stats {
    uint64_t capacity, committed, meta_size;   /* bytes */
    uint64_t chunks_total, chunks_used, chunks_free;
    uint64_t arenas, arenas_highwater;         /* small and medium arenas */
    uint64_t arenas_allocated, arenas_released;/* cumulative */
    uint64_t pools_empty;                      /* in arenas' freepools or threads' caches */
    uint64_t pools_untouched;                  /* never carved */
    uint64_t pools_orphaned;                   /* waiting for adoption */
    uint64_t large_blocks, large_bytes;        /* page runs and chunk runs in use */
    uint64_t large_free_pages;                 /* free pages inside large chunks */
    uint64_t dead_outstanding_blocks;          /* allocated by threads of dead processes
                                                  and not freed by them: leaked, unless
                                                  handed to others */
    uint64_t dead_threads;                     /* thread slots reclaimed from the dead */
    shr_class_stats_t classes[SHR_POOL_CLASSES];
} shr_alloc_stats_t;

int shr_heap_stats(shr_heap_t *heap, shr_alloc_stats_t *out);
/* A report in the shape of CPython's sys._debugmallocstats(). */
int shr_heap_stats_print(shr_heap_t *heap, FILE *out);

#ifdef __cplusplus
}
#endif

/* ---- Objects and the shared list ---------------------------------------- */

#include "sharena/gc.h"
#include "sharena/list.h"
#include "sharena/solo.h"
#include "sharena/fault.h"
#include "sharena/gc_points.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The references this process holds in its private memory (leases: list
 * handles, values returned by a get or pop), for tests and tools. Released
 * for it if it dies or closes the heap. */
typedef struct shr_lease_stats {
    uint64_t leases;            /* references this process holds */
    uint64_t released_for_dead; /* references released for dead processes, ever */
    uint64_t table_entries;     /* size of this process's lease table, in entries:
                                   grows and shrinks with the live leases */
} shr_lease_stats_t;
/* -EINVAL when heap or out is NULL. */
int shr_lease_stats(shr_heap_t *heap, shr_lease_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_H */
