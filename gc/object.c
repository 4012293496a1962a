/* Objects
 *
 * Refcounted blocks with a type id. This file: the per-process type table,
 * creation, incref/decref with dealloc on zero, and try_incref.
 *
 * Tricky: try_incref. A reader that found an offset in a slot without
 * holding anything that keeps the object alive may race a writer that
 * replaces the slot and drops the last reference. A bare load + fetch_add
 * would resurrect a dead object (measured: millions of errors per second
 * under a hammering writer). Instead the increment is a CAS that refuses a
 * zero count, and the slot is read again after it: if it still holds the
 * same offset, the reference is good; if not, the increment is undone and
 * the read restarts. This is safe because (1) the allocator never writes
 * bytes 0..7 of a free block, so a dead object's count stays 0 until the
 * block is reused, and (2) the caller guarantees that the block is reused
 * only for another object meanwhile (then the CAS may bump that object's
 * count, and the failed re-check undoes it: an ABA that is harmless).
 *
 * Allocations: every allocation of a list or lease operation goes through
 * shr__obj_new (fault point obj.alloc) or the shr__gc_*alloc wrappers below
 * (list.alloc), so that a test can fail the nth one. The trashcan's own
 * process memory does not: its failure is not an error of any call (the
 * objects it could not park leak, never freed early).
 */
#include <errno.h>
#include <string.h>

#include "fault.h"
#include "gc.h"

static const gc_type_ops_t *types[SHR_TYPE_MAX];

int shr__type_register(uint32_t id, const gc_type_ops_t *ops)
{
    if (id == 0 || id >= SHR_TYPE_MAX || !ops || !ops->dealloc) return -EINVAL;
    types[id] = ops;
    return 0;
}

const gc_type_ops_t *shr__type_ops(uint32_t id) { return id < SHR_TYPE_MAX ? types[id] : NULL; }

obj_t *shr__obj_new(shr_heap_t *h, uint32_t type, size_t size)
{
    if (SHR_FAULT(OBJ_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    /* Inside the gate (every list call), a str or bytes of up to 16 KiB
     * comes from an object pool too, untracked: the backup mark-sweep
     * (gc/trace.c) finds it there if a dead process leaked it, which it
     * cannot do in an ordinary pool. Outside the gate (white-box tests), in
     * a guarded heap and above 16 KiB, an ordinary block. */
    bool pooled = shr__gate_depth > 0 && size <= SHR_MEDIUM_REQUEST_THRESHOLD && !(h->flags & SHR_HEAP_GUARDS);
    obj_t *o = pooled ? shr__obj_block_alloc(h, size) : shr_malloc(h, size);
    if (!o) return NULL;
    o->type = type;
    shr_store_relaxed(&o->flags, 0);
    atomic_store_explicit(&o->refcnt, 1, memory_order_release);
    return o;
}

obj_t *shr__obj_new_container(shr_heap_t *h, uint32_t type, size_t size, const void *init, size_t init_len)
{
    SHR_ASSERT(shr__gate_depth > 0 && size >= sizeof(obj_t) + init_len && size <= SHR_MEDIUM_REQUEST_THRESHOLD);
    if (SHR_FAULT(OBJ_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    /* A guarded heap (SHR_HEAP_GUARDS, a debug layout) keeps its containers
     * in ordinary, guarded blocks: the object pools have no guard layout.
     * They are not tracked, and the collector does not find them (gc.md
     * §9: their cycles leak). */
    bool tracked = !(h->flags & SHR_HEAP_GUARDS);
    /* A tracked one sets its pool's young hint (alloc.h, Y1) before the
     * commit below: a young collection walks that pool. */
    obj_t *o = tracked ? shr__obj_block_alloc_young(h, size) : shr_malloc(h, size);
    if (!o) return NULL;
    if (!tracked) shr_store_relaxed(&o->refcnt, 0);
    SHR_ASSERT(shr_load_relaxed(&o->refcnt) == 0); /* the object pools' guarantee */
    memset((char *)o + sizeof(obj_t), 0, size - sizeof(obj_t));
    if (init_len) memcpy((char *)o + sizeof(obj_t), init, init_len);
    o->type = type;
    shr_store_relaxed(&o->flags, tracked ? OBJ_TRACKED : 0); /* generation 0 */
    /* Commit: from here a collector's walk sees a complete, empty container. */
    atomic_store_explicit(&o->refcnt, 1, memory_order_release);
    if (tracked) shr__gc_count(h, +1);
    return o;
}

void shr__obj_free(shr_heap_t *h, obj_t *o)
{
    uint32_t f = shr_load_relaxed(&o->flags);
    /* B1 (gc.h): a buffered object's block stays, its dealloc done, as a
     * dying object for the collector that consumes its entry (it frees it,
     * running the dealloc again: every dealloc detaches before it
     * releases, so a second run releases nothing twice). Its bit was set by
     * a thread that held a reference, before that thread's decrement, so
     * the decrement that reached zero here made it visible. */
    if (shr_unlikely(f & OBJ_BUFFERED)) {
        shr_store_relaxed(&o->refcnt, OBJ_DYING);
        return;
    }
    if (f & OBJ_TRACKED) shr__gc_count(h, -1);
    shr_store_relaxed(&o->refcnt, 0); /* the object pools' rule: 0 when freed */
    shr_free(h, o);
}

void shr__gc_release_child(shr_heap_t *h, shr_off_t child)
{
    obj_t *c = obj_at(h, child);
    if (shr_load_relaxed(&c->flags) & OBJ_GARBAGE) return;
    shr__decref(h, c);
}

const gc_type_ops_t *shr__list_ops;
bool (*shr__list_unsettled)(shr_heap_t *h, obj_t *o);
void (*shr__list_settle)(shr_heap_t *h, obj_t *o);

void *shr__gc_alloc(shr_heap_t *h, size_t size)
{
    if (SHR_FAULT(LIST_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return shr_malloc(h, size);
}

void *shr__gc_zalloc(shr_heap_t *h, size_t size)
{
    if (SHR_FAULT(LIST_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return shr_calloc(h, 1, size);
}

void *shr__gc_priv_alloc(size_t size)
{
    if (SHR_FAULT(LIST_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(1, size);
}

void *shr__gc_priv_realloc(void *p, size_t size)
{
    if (SHR_FAULT(LIST_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size);
}

char *shr__gc_priv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = shr__gc_priv_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The trashcan (CPython's name for it): a dealloc releases its children,
 * which may dealloc theirs, so a long chain of nested lists would recurse as
 * deep as it is long. Past TRASH_DEPTH the objects to free are parked on a
 * per-thread stack and freed by the outermost dealloc, one level deep. If the
 * thread dies meanwhile they leak. */
#define TRASH_DEPTH 64
static _Thread_local int dealloc_depth;
static _Thread_local struct { shr_heap_t *h; obj_t *o; } *trash;
static _Thread_local size_t ntrash, trash_cap;

static void dealloc(shr_heap_t *h, obj_t *o)
{
    const gc_type_ops_t *ops = shr__type_ops_any(h, o->type);
    /* A type this process does not know cannot be released here: it leaks
     * rather than being freed without its children. */
    if (SHR_ALWAYS(ops != NULL)) ops->dealloc(h, o);
}

/* The decrement reached zero: the dealloc (out of line, so that the
 * decrement's fast path saves no register). */
static __attribute__((noinline)) void decref_dealloc(shr_heap_t *h, obj_t *o)
{
    /* A container's dealloc begins: mark it (OBJ_DYING), so that a death
     * before its block is freed leaves an object the mark-sweep can find and
     * finish, not a block with count 0 that nothing can tell from a free one. */
    if (shr_load_relaxed(&o->flags) & OBJ_TRACKED) shr_store_relaxed(&o->refcnt, OBJ_DYING);
    if (dealloc_depth >= TRASH_DEPTH) {
        if (ntrash == trash_cap) {
            size_t cap = trash_cap ? trash_cap * 2 : 64, size;
            void *p = __builtin_mul_overflow(cap, sizeof *trash, &size) ? NULL : realloc(trash, size);
            if (!p) return; /* leaks: never frees too early */
            trash = p;
            trash_cap = cap;
        }
        trash[ntrash].h = h;
        trash[ntrash++].o = o;
        return;
    }
    dealloc_depth++;
    dealloc(h, o);
    dealloc_depth--;
    if (dealloc_depth == 0)
        while (ntrash) {
            ntrash--;
            dealloc_depth++;
            dealloc(trash[ntrash].h, trash[ntrash].o);
            dealloc_depth--;
        }
}

/* On a heap that selects Bacon and Rajan's algorithm: the possible root
 * buffered before the decrement, while this reference still holds the
 * object (after it, another thread's decrement could free the block under
 * the buffering). */
static __attribute__((noinline)) void decref_buffering(shr_heap_t *h, obj_t *o)
{
    shr__gc_br_root(h, o);
    if (atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel) == 1) decref_dealloc(h, o);
}

void shr__decref(shr_heap_t *h, obj_t *o)
{
    /* Every other heap pays this one branch: the word shares its line with
     * the gate's request word, which the gate_enter around this call has
     * just read. */
    if (shr_unlikely(shr_load_relaxed(&shr__gc_global(h)->algorithm) == SHR_GC_BACON_RAJAN)) {
        decref_buffering(h, o);
        return;
    }
    if (atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel) != 1) return;
    decref_dealloc(h, o);
}

shr_off_t shr__try_incref(shr_heap_t *h, _Atomic uint64_t *slot)
{
    for (;;) {
        shr_off_t off = atomic_load_explicit(slot, memory_order_acquire);
        if (off == 0) return 0;
        obj_t *o = obj_at(h, off);
        uint64_t n = atomic_load_explicit(&o->refcnt, memory_order_relaxed);
        bool got = false;
        while (n != 0 && n != OBJ_DYING && !(got = atomic_compare_exchange_weak_explicit(
                               &o->refcnt, &n, n + 1, memory_order_acquire, memory_order_relaxed))) {
        }
        if (got) {
            if (atomic_load_explicit(slot, memory_order_acquire) == off) return off;
            shr__decref(h, o); /* the slot moved on: undo and read again */
        }
    }
}
