/* gc: objects, types, refcounts, leases, roots that hold references.
 *
 * An object is a block of the allocator that starts with obj_t:
 *
 *   bytes 0..7    refcnt   atomic; 0 once dead (the allocator never writes
 *                          these bytes of a free block, so it stays 0)
 *   bytes 8..11   type     id, resolved through this process's type table
 *   bytes 12..15  flags    reserved for the cycle collector; 0
 *
 * The shared refcount counts references from shared objects, from roots and
 * from leases, and nothing else. A reference held in a process's private
 * memory is a lease: an entry in that process's lease table, in the segment,
 * so that when the process dies its references are released for it.
 *
 * Orders that make a crash leak instead of free too early:
 *   - incref before publishing (a slot, a root, a lease entry);
 *   - unpublish before decref;
 *   - a dealloc detaches each child (exchange with 0) before decref'ing it;
 *   - a lease is recorded after the incref it stands for and forgotten
 *     before the decref, so replaying a dead process's table can only
 *     release references that exist.
 */
#ifndef SHR_GC_H
#define SHR_GC_H

#include "alloc.h"

/* Built-in type ids. 0 is never a type. (A freed block's bytes 8..15, where
 * the type and flags were, hold the allocator's free-list link; only the
 * refcount at bytes 0..7 is left alone, and reads 0.) */
enum { SHR_TYPE_STR = 1, SHR_TYPE_BYTES = 2, SHR_TYPE_LIST = 3, SHR_TYPE_MAX = 64 };

typedef struct obj {
    _Atomic uint64_t refcnt;
    uint32_t type;
    uint32_t flags;   /* reserved for the cycle collector; 0 */
} obj_t;

/* A process's functions for one type. traverse visits each reference the
 * object holds (for the collector and for checks); dealloc detaches and
 * releases the children and frees the block. */
typedef void (*shr_visit_fn)(shr_heap_t *heap, shr_off_t child, void *arg);
typedef struct shr_type_ops {
    const char *name;
    void (*traverse)(shr_heap_t *heap, obj_t *o, shr_visit_fn visit, void *arg);
    void (*clear)(shr_heap_t *heap, obj_t *o);
    void (*dealloc)(shr_heap_t *heap, obj_t *o);
} shr_type_ops_t;

/* ---- object.c ------------------------------------------------------------ */

/* Install this process's functions for a type id (idempotent). */
int shr__type_register(uint32_t id, const shr_type_ops_t *ops);
const shr_type_ops_t *shr__type_ops(uint32_t id);

/* A new object of `size` bytes (header included) with refcount 1, owned by
 * the caller, who must publish it or release it. NULL with errno. */
obj_t *shr__obj_new(shr_heap_t *h, uint32_t type, size_t size);

static inline obj_t *OBJ(const shr_heap_t *h, shr_off_t off) { return (obj_t *)(h->base + off); }

static inline void shr__incref(obj_t *o)
{
    atomic_fetch_add_explicit(&o->refcnt, 1, memory_order_relaxed);
}

/* Drop a reference; the decrement that reaches zero deallocates. */
void shr__decref(shr_heap_t *h, obj_t *o);

/* Turn a borrowed offset read from *slot into a new reference, or return 0
 * when the slot is empty. The caller must guarantee that a block that held an
 * object is not reused for anything but objects while it may run (the list
 * takes its lock for that); the increment happens only if the count is not
 * zero, and the slot is read again afterwards (free-threaded CPython's
 * _Py_TryIncrefCompare). */
shr_off_t shr__try_incref(shr_heap_t *h, _Atomic uint64_t *slot);

/* ---- lease.c ------------------------------------------------------------- */

/* Record that this process holds one more reference to off (after the
 * incref), or one less (before the decref). */
int shr__lease_add(shr_heap_t *h, shr_off_t off);
int shr__lease_remove(shr_heap_t *h, shr_off_t off);
/* Release the references of processes found dead (queued by the registry's
 * reclaim hook, which cannot free under the registry lock). Returns how many
 * references were released. Takes no lock on entry. */
int shr__gc_drain_dead(shr_heap_t *h);
/* Leases this process holds (for tests and statistics). */
uint64_t shr__lease_count(shr_heap_t *h);
/* References released for dead processes, ever. */
uint64_t shr__gc_released(shr_heap_t *h);
/* At close: release what this process still holds. */
void shr__gc_close(shr_heap_t *h);

/* ---- the layer ------------------------------------------------------------ */

void shr__gc_params(shr__seg_params_t *p);
int shr__gc_init_segment(shr_heap_t *h);

#endif /* SHR_GC_H */
