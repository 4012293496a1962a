/* sharena: a pymalloc-style heap, refcounted objects and a shared list inside
 * one POSIX shared-memory segment, used directly by many processes and threads.
 *
 * This is the one public header. Conventions, as in libuv:
 *   - functions returning int return 0 or a negative code (-errno, or one of
 *     SHR_E* from <sharena/errors.h>); shr_strerror() names it;
 *   - out-parameters are written only on success;
 *   - allocation functions return NULL and set errno;
 *   - nothing stored in the segment is a pointer: shared references are
 *     shr_off_t offsets from the segment base, 0 meaning null. shr_ptr() and
 *     shr_off() convert in this process's mapping.
 */
#ifndef SHARENA_H
#define SHARENA_H

#include <stddef.h>
#include <stdint.h>

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
    SHR_HEAP_UNLINK_ON_LAST_CLOSE = 1u << 0
};

typedef struct shr_heap_options {
    size_t capacity;   /* bytes of address space to reserve; 0 = default */
    unsigned mode;     /* permission bits of the shm object; 0 = 0600 */
    unsigned flags;    /* SHR_HEAP_* */
} shr_heap_options_t;

/* Fill *opts with the defaults. */
void shr_heap_options_init(shr_heap_options_t *opts);

/* Create a heap. name may be NULL for a generated one (shr_<pid>_<random>);
 * it has no leading slash. opts may be NULL for defaults. On success *out is
 * a handle attached to the new heap. Errors: SHR_ENAME, -ENAMETOOLONG, -EEXIST
 * (name taken), -EINVAL (bad capacity or flags), -ENOMEM (no room in /dev/shm),
 * -EACCES. */
int shr_heap_create(const char *name, const shr_heap_options_t *opts, shr_heap_t **out);

/* Attach an existing heap by name. Errors: -ENOENT, -EACCES, SHR_ENOTSHR,
 * SHR_EVERSION, SHR_ETRUNC, SHR_ECORRUPT, SHR_EPROCS. */
int shr_heap_attach(const char *name, shr_heap_t **out);

/* Detach and unmap. The handle is freed even when an error is returned. Other
 * threads of this process must no longer use the heap. */
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

/* Read a heap's header and registry without attaching to it and without
 * changing it. procs may be NULL; at most max entries are written and
 * *nprocs (may be NULL) receives how many exist. Errors as shr_heap_attach. */
int shr_heap_inspect(const char *name, shr_heap_info_t *info,
                     shr_proc_info_t *procs, size_t max, size_t *nprocs);

/* Same for an attached heap; also reclaims entries found dead. */
int shr_heap_stat(shr_heap_t *heap, shr_heap_info_t *info,
                  shr_proc_info_t *procs, size_t max, size_t *nprocs);

/* Sweep the registry: every process or thread entry found dead is reclaimed
 * (its pools orphaned for adoption, its references released). Returns the
 * number of entries reclaimed, or a negative code. */
int shr_heap_recover(shr_heap_t *heap);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_H */
