/* The trace from the roots and the leases (gc/trace.c): the core of the
 * verifier (shr_gc_verify) and of the backup mark-sweep
 * (shr_gc_collect_with(..., SHR_GC_MARK_SWEEP, ...)). Private memory only;
 * run with the world stopped (collect.c). docs/design/gc.md §10.
 */
#ifndef SHR_GC_TRACE_H
#define SHR_GC_TRACE_H

#include "gc.h"

/* One object: a committed block of an object pool (a container, or a str
 * or bytes made inside the gate), or an object outside the object pools
 * that a reference names (T_EXTERN: a str over 16 KiB, say). */
typedef struct tent {
    uint64_t off;
    uint64_t count;   /* its refcount, read with the world stopped */
    uint64_t known;   /* references found: from every traversable object
                         (reachable or not), ROOT_REF roots, leases */
    const gc_type_ops_t *ops;
    uint32_t flags;   /* the header's flags */
    uint32_t state;   /* T_* */
    uint32_t size;    /* block size (0 for T_EXTERN) */
    uint32_t pad;
} tent_t;

enum {
    T_MARKED = 1,   /* reachable */
    T_EXTERN = 2,   /* not in an object pool: never freed by the sweep */
    T_UNTRAV = 4,   /* may hold references this process cannot see */
    T_ROOT = 8,     /* named by a root or a lease */
    T_FROZEN = 16,  /* the permanent generation */
    T_FLAGGED = 32, /* OBJ_GARBAGE: garbage for good (collect.c C3) */
    T_STR = 64,     /* str or bytes: holds no reference, freed by its block */
    T_DYING = 128,  /* OBJ_DYING: a dead thread's unfinished dealloc (count read as 0) */
};

typedef struct trace {
    shr_heap_t *h;
    tent_t *e;
    size_t n, cap;      /* entries; the first nwalked are the walk's */
    size_t nwalked;
    uint32_t *index;    /* open addressing: entry + 1, 0 empty */
    size_t icap;
    size_t *stack;
    size_t sn, scap;
    uint64_t *settle;   /* lists a dead thread holds, repaired between walks */
    size_t nsettle, settle_cap;
    bool no_settle;
    bool nomem;
    int lease_incomplete; /* shr__lease_scan's 1, or its error */
    uint64_t edges, root_refs, lease_refs;
    uint64_t dangling;  /* references to blocks that hold no object: a bug */
    uint64_t untraversable;
    uint64_t below;     /* objects whose count is below `known`: a bug */
} trace_t;

/* With the world stopped: the walk (repairing lists a dead thread holds,
 * then walking again), the references from every object, root and lease,
 * and the mark from the roots and the leases. 0, or -ENOMEM (t->nomem). */
int shr__trace_run(shr_heap_t *h, trace_t *t);
/* Whether every reference in the heap was seen: no object this process
 * cannot traverse, every lease table read, nothing dangling, no count
 * below what was found, not a guarded heap. Then an object no root or
 * lease reaches is unreachable by anything that can still run, and a
 * count above `known` is references nobody holds. */
bool shr__trace_exact(const trace_t *t);
/* Mark further, for the sweep: from the frozen objects, and (when not
 * exact) from every object whose count exceeds the references found. */
void shr__trace_mark_more(trace_t *t, bool unexplained);
void shr__trace_free(trace_t *t);

#endif /* SHR_GC_TRACE_H */
