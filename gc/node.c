/* Nodes, user types and the public object API
 *
 * A node is the built-in container for graph experiments: nslots reference
 * slots and payload bytes (gc.h draws its layout). A user type is a layout
 * declared in the segment (gc_global_t.types: name, slots, payload) whose
 * objects are nodes with those sizes, so that every process traverses,
 * clears and frees them with the same functions, without code of its own.
 *
 * Every public call here runs inside the collector's gate (collect.c), and
 * checks the caller's shr_ref_t against this process's lease table before
 * it trusts it: a ref that is not held is -EINVAL and changes nothing.
 *
 * Orders (gc.h): a set increfs the child before the slot publishes it and
 * releases the old child after the exchange that unpublished it; a get
 * increfs under the node's lock and then leases; a release forgets the lease
 * and then decrefs; clear and dealloc exchange each slot with 0 before the
 * decref. A crash anywhere leaves counts too high (a leak), never too low.
 *
 * Locking: a node's lock is an owner word (gc.h), held only around one
 * slot's exchange or read + incref; a waiter takes it over from a dead
 * owner (no repair: a slot is never half changed). Declarations of user
 * types take the collector's mutex.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"

/* ---- the node's lock ------------------------------------------------------- */

#define NODE_SPINS_BEFORE_CHECK 1024

static shr_noinline int node_lock_slow(shr_heap_t *h, nodeobj_t *n, uint64_t me)
{
    uint64_t deadline = 0;
    for (unsigned spins = 1;; spins++) {
        uint64_t w = shr_load_relaxed(&n->lock);
        if (w == 0) {
            if (atomic_compare_exchange_weak_explicit(&n->lock, &w, me, memory_order_acquire,
                                                      memory_order_relaxed))
                return 0;
            continue;
        }
        if (spins % NODE_SPINS_BEFORE_CHECK) {
            __builtin_ia32_pause();
            continue;
        }
        if (shr__owner_gone(h, w) &&
            atomic_compare_exchange_strong_explicit(&n->lock, &w, me, memory_order_acquire, memory_order_relaxed))
            return 0; /* a dead owner: the slots are consistent, nothing to repair */
        if (deadline == 0) deadline = shr__lock_deadline(h);
        else if (shr__now_ns(CLOCK_MONOTONIC) > deadline) return SHR_ELOCKTIMEOUT;
        sched_yield();
    }
}

static int node_lock(shr_heap_t *h, nodeobj_t *n)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx) return -errno;
    uint64_t me = shr__owner_word(ctx), zero = 0;
    if (shr_likely(atomic_compare_exchange_strong_explicit(&n->lock, &zero, me, memory_order_acquire,
                                                           memory_order_relaxed)))
        return 0;
    return node_lock_slow(h, n, me);
}

static void node_unlock(nodeobj_t *n) { shr_store_release(&n->lock, 0); }

/* ---- the node types' functions ------------------------------------------------ */

static void node_traverse(shr_heap_t *h, obj_t *o, gc_visit_fn visit, void *arg)
{
    nodeobj_t *n = (nodeobj_t *)o;
    _Atomic uint64_t *s = node_slots(h, n);
    for (uint32_t i = 0; i < n->nslots; i++) {
        uint64_t c = shr_load_relaxed(&s[i]);
        if (c) visit(h, c, arg);
    }
}

/* Detach each child (exchange with 0), then release it: idempotent, and a
 * death in the middle leaks the rest instead of leaving the node pointing
 * at freed children. */
static void node_clear(shr_heap_t *h, obj_t *o)
{
    nodeobj_t *n = (nodeobj_t *)o;
    _Atomic uint64_t *s = node_slots(h, n);
    for (uint32_t i = 0; i < n->nslots; i++) {
        uint64_t c = atomic_exchange_explicit(&s[i], 0, memory_order_acq_rel);
        if (!c) continue;
        (void)SHR_FAULT(OBJ_DEALLOC); /* a crash point */
        shr__gc_release_child(h, c);
    }
}

static void node_dealloc(shr_heap_t *h, obj_t *o)
{
    nodeobj_t *n = (nodeobj_t *)o;
    node_clear(h, o);
    /* A collector may die here and its successor dealloc this node again
     * (collect.c C3): no slots, then no out-of-line part, then free it. */
    uint64_t ext = n->ext;
    n->nslots = 0;
    n->ext = 0;
    if (ext) shr_free(h, shr__ptr(h, ext));
    shr__obj_free(h, o);
}

static const gc_type_ops_t node_ops = {
    .name = "node", .traverse = node_traverse, .clear = node_clear, .dealloc = node_dealloc};

static const gc_type_decl_t *decl_of(shr_heap_t *h, uint32_t id)
{
    if (id < SHR_TYPE_USER_FIRST || id >= SHR_TYPE_USER_FIRST + SHR_TYPE_USER_MAX) return NULL;
    const gc_type_decl_t *d = &shr__gc_global(h)->types[id - SHR_TYPE_USER_FIRST];
    return shr_load_acquire(&d->state) == 1 ? d : NULL;
}

const gc_type_ops_t *shr__type_ops_any(shr_heap_t *h, uint32_t id)
{
    if (id < SHR_TYPE_MAX) return shr__type_ops(id);
    if (id == SHR_TYPE_NODE || decl_of(h, id)) return &node_ops;
    return NULL;
}

void shr__node_types_register(void) {}

/* ---- checks ----------------------------------------------------------------- */

const char *shr__node_problem(shr_heap_t *h, uint64_t off)
{
    if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1))) return "offset not a block";
    size_t bn = shr__alloc_block_checked(h, off);
    if (bn < sizeof(nodeobj_t)) return "not an allocated block of a node";
    nodeobj_t *n = (nodeobj_t *)obj_at(h, off);
    if (shr_load_relaxed(&n->ob.refcnt) == 0) return "no references";
    if (!shr__is_node_type(n->ob.type)) return "wrong type";
    if (n->nslots > NODE_MAX_SLOTS) return "slot count out of range";
    size_t body = (size_t)n->nslots * 8 + n->payload;
    if (n->ext) {
        if (n->ext >= h->capacity || (n->ext & (SHR_ALIGNMENT - 1))) return "out-of-line part not a block";
        if (shr__alloc_block_checked(h, n->ext) < body) return "out-of-line part smaller than its slots";
    } else if (bn - sizeof(nodeobj_t) < body) {
        return "slots past the block";
    }
    return NULL;
}

/* ---- references from the caller ------------------------------------------------ */

/* The object a caller's ref names, if this process holds it; NULL otherwise. */
static obj_t *held(shr_heap_t *h, shr_ref_t r)
{
    if (r.off == 0 || r.off >= h->capacity || (r.off & (SHR_ALIGNMENT - 1))) return NULL;
    return shr__lease_held(h, r.off) ? obj_at(h, r.off) : NULL;
}

static nodeobj_t *held_node(shr_heap_t *h, shr_ref_t r, int *rc)
{
    obj_t *o = held(h, r);
    if (!o) *rc = -EINVAL;
    else if (!shr__is_node_type(o->type)) *rc = SHR_ETYPE;
    else return (nodeobj_t *)o;
    return NULL;
}

/* A reference taken (counted) becomes the caller's: a lease. On failure it
 * is given back. */
static int hand_out(shr_heap_t *h, obj_t *o, shr_ref_t *out)
{
    int rc = shr__lease_add(h, shr__off(h, o));
    if (rc) {
        shr__decref(h, o);
        return rc;
    }
    out->off = shr__off(h, o);
    return 0;
}

/* ---- the public calls ---------------------------------------------------------- */

int shr_obj_new(shr_heap_t *heap, uint32_t type, uint32_t nslots, size_t payload, shr_ref_t *out)
{
    if (!heap || !out) return -EINVAL;
    if (type != SHR_TYPE_NODE) {
        const gc_type_decl_t *d = decl_of(heap, type);
        if (!d) return SHR_ETYPE;
        if (nslots != d->nslots || payload != d->payload) return -EINVAL;
    }
    if (nslots > NODE_MAX_SLOTS || payload > UINT32_MAX) return -EINVAL;
    size_t body = (size_t)nslots * 8 + payload, size = sizeof(nodeobj_t) + body;
    int rc = shr__gate_enter(heap);
    if (rc) return rc;
    shr__gc_drain_dead(heap);
    void *ext = NULL;
    if (size > SHR_MEDIUM_REQUEST_THRESHOLD) { /* the big part out of line */
        if (!(ext = shr__gc_zalloc(heap, body))) {
            shr__gate_exit(heap);
            return -ENOMEM;
        }
        size = sizeof(nodeobj_t);
    }
    struct { uint32_t nslots, pad; uint64_t payload, ext; } init = {nslots, 0, payload, ext ? shr__off(heap, ext) : 0};
    obj_t *o = shr__obj_new_container(heap, type, size, &init, sizeof init);
    if (!o) {
        if (ext) shr_free(heap, ext);
        shr__gate_exit(heap);
        return -ENOMEM;
    }
    rc = hand_out(heap, o, out); /* the creator's reference (freed if it cannot be leased) */
    shr__gate_exit(heap);
    return rc;
}

int shr_obj_set(shr_heap_t *heap, shr_ref_t obj, uint32_t slot, shr_ref_t child)
{
    if (!heap) return -EINVAL;
    int rc = shr__gate_enter(heap);
    if (rc) return rc;
    nodeobj_t *n = held_node(heap, obj, &rc);
    obj_t *c = NULL;
    if (n && slot >= n->nslots) rc = SHR_EINDEX;
    else if (n && child.off && !(c = held(heap, child))) rc = -EINVAL;
    if (rc == 0) {
        if (c) shr__incref(c); /* the slot's reference, before the slot publishes it */
        if ((rc = node_lock(heap, n)) != 0) {
            if (c) shr__decref(heap, c);
        } else {
            (void)SHR_FAULT(OBJ_SET); /* a crash point */
            uint64_t old = atomic_exchange_explicit(&node_slots(heap, n)[slot], child.off, memory_order_acq_rel);
            node_unlock(n);
            if (old) shr__decref(heap, obj_at(heap, old)); /* unpublished: now release it */
        }
    }
    shr__gate_exit(heap);
    return rc;
}

int shr_obj_get(shr_heap_t *heap, shr_ref_t obj, uint32_t slot, shr_ref_t *out)
{
    if (!heap || !out) return -EINVAL;
    int rc = shr__gate_enter(heap);
    if (rc) return rc;
    nodeobj_t *n = held_node(heap, obj, &rc);
    if (n && slot >= n->nslots) rc = SHR_EINDEX;
    if (rc == 0 && (rc = node_lock(heap, n)) == 0) {
        uint64_t c = shr_load_acquire(&node_slots(heap, n)[slot]);
        if (c) shr__incref(obj_at(heap, c)); /* under the lock: the slot keeps it alive */
        node_unlock(n);
        if (c) rc = hand_out(heap, obj_at(heap, c), out);
        else out->off = 0;
    }
    shr__gate_exit(heap);
    return rc;
}

int shr_obj_dup(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out)
{
    if (!heap || !out) return -EINVAL;
    int rc = shr__gate_enter(heap);
    if (rc) return rc;
    (void)SHR_FAULT(OBJ_GATE); /* a crash point: inside the gate */
    obj_t *o = held(heap, ref);
    if (!o) {
        rc = -EINVAL;
    } else {
        shr__incref(o); /* our lease keeps it alive meanwhile */
        (void)SHR_FAULT(OBJ_INCREF); /* a crash point: counted, not yet leased (a leak) */
        rc = hand_out(heap, o, out);
    }
    shr__gate_exit(heap);
    return rc;
}

void shr_obj_release(shr_heap_t *heap, shr_ref_t ref)
{
    if (!heap || ref.off == 0 || ref.off >= heap->capacity || (ref.off & (SHR_ALIGNMENT - 1))) return;
    if (shr__gate_enter(heap) != 0) return;
    if (shr__lease_remove(heap, ref.off) == 0) shr__decref(heap, obj_at(heap, ref.off)); /* forget, then release */
    shr__gate_exit(heap);
}

void *shr_obj_payload(shr_heap_t *heap, shr_ref_t ref, size_t *len)
{
    if (!heap) {
        errno = EINVAL;
        return NULL;
    }
    obj_t *o = held(heap, ref);
    if (!o || !shr__is_node_type(o->type)) {
        errno = EINVAL;
        return NULL;
    }
    nodeobj_t *n = (nodeobj_t *)o;
    if (len) *len = n->payload;
    return (void *)(node_slots(heap, n) + n->nslots);
}

uint32_t shr_obj_type(shr_heap_t *heap, shr_ref_t ref)
{
    obj_t *o = heap ? held(heap, ref) : NULL;
    if (!o) return 0;
    return o->type == SHR_TYPE_LIST ? SHR_OBJ_LIST : o->type;
}

uint64_t shr_obj_refcount(shr_heap_t *heap, shr_ref_t ref)
{
    obj_t *o = heap ? held(heap, ref) : NULL;
    return o ? shr_load_relaxed(&o->refcnt) : 0;
}

/* ---- names --------------------------------------------------------------------- */

/* What is wrong with a root's object (node or list), NULL if nothing. */
static const char *root_obj_problem(shr_heap_t *h, uint64_t off)
{
    if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) ||
        shr__alloc_block_checked(h, off) < sizeof(obj_t))
        return "not a block";
    uint32_t t = obj_at(h, off)->type;
    if (shr__is_node_type(t)) return shr__node_problem(h, off);
    if (t == SHR_TYPE_LIST && shr__list_ops) return NULL; /* list/ checks its own (attach by name) */
    return "not an object this process knows";
}

int shr_obj_publish(shr_heap_t *heap, const char *name, shr_ref_t ref)
{
    size_t len;
    int rc;
    if (!heap) return -EINVAL;
    if ((rc = shr__root_name_check(name, &len)) != 0) return rc;
    if ((rc = shr__gate_enter(heap)) != 0) return rc;
    obj_t *o = held(heap, ref);
    if (!o) rc = -EINVAL;
    else if ((rc = shr__root_lock(heap)) == 0) {
        if (shr__root_find(heap, name)) {
            rc = -EEXIST;
        } else {
            shr__incref(o); /* the root's reference, before the root publishes it */
            if (!shr__root_new(heap, name, ref.off, ROOT_REF)) {
                shr__decref(heap, o); /* our lease still holds it: cannot free */
                rc = -ENOSPC;
            } else {
                (void)SHR_FAULT(OBJ_PUBLISH); /* a crash point: published, the roots lock held */
            }
        }
        shr__root_unlock(heap);
    }
    shr__gate_exit(heap);
    return rc;
}

/* The root named name that holds an object reference, and the object's
 * offset. Roots lock held. -ENOENT, SHR_ETYPE (a root of another kind, a
 * named list), SHR_ECORRUPT (it names no sound object). */
static int find_obj_root(shr_heap_t *heap, const char *name, root_entry_t **ep, uint64_t *offp)
{
    root_entry_t *e = shr__root_find(heap, name);
    if (!e) return -ENOENT;
    if (!(e->flags & ROOT_REF)) return SHR_ETYPE;
    uint64_t off = shr_load_relaxed(&e->off);
    if (root_obj_problem(heap, off)) return SHR_ECORRUPT;
    *ep = e;
    *offp = off;
    return 0;
}

int shr_obj_lookup(shr_heap_t *heap, const char *name, shr_ref_t *out)
{
    size_t len;
    int rc;
    if (!heap || !out) return -EINVAL;
    if ((rc = shr__root_name_check(name, &len)) != 0) return rc;
    if ((rc = shr__gate_enter(heap)) != 0) return rc;
    shr__gc_drain_dead(heap);
    uint64_t off = 0;
    if ((rc = shr__root_lock(heap)) == 0) {
        root_entry_t *e = NULL;
        if ((rc = find_obj_root(heap, name, &e, &off)) == 0)
            shr__incref(obj_at(heap, off)); /* under the roots lock: the root keeps it alive */
        shr__root_unlock(heap);
    }
    if (rc == 0) rc = hand_out(heap, obj_at(heap, off), out);
    shr__gate_exit(heap);
    return rc;
}

int shr_obj_unpublish(shr_heap_t *heap, const char *name)
{
    size_t len;
    int rc;
    if (!heap) return -EINVAL;
    if ((rc = shr__root_name_check(name, &len)) != 0) return rc;
    if ((rc = shr__gate_enter(heap)) != 0) return rc;
    uint64_t off = 0;
    if ((rc = shr__root_lock(heap)) == 0) {
        root_entry_t *e = NULL;
        if ((rc = find_obj_root(heap, name, &e, &off)) == 0) e->name[0] = 0; /* unpublish, then release */
        shr__root_unlock(heap);
    }
    if (rc == 0) shr__decref(heap, obj_at(heap, off));
    shr__gate_exit(heap);
    return rc;
}

/* ---- user types ------------------------------------------------------------------ */

static int decl_lock(shr_heap_t *h)
{
    gc_global_t *g = shr__gc_global(h);
    if (!shr__mutex_sane(&g->mu)) return SHR_ECORRUPT;
    int rc = shr__mutex_lock_until(&g->mu, shr__lock_deadline(h));
    if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&g->mu);
    if (rc == ETIMEDOUT) return SHR_ELOCKTIMEOUT;
    return rc ? SHR_ELOCK : 0;
}

int shr_obj_type_declare(shr_heap_t *heap, const char *name, uint32_t nslots, size_t payload, uint32_t *id)
{
    if (!heap || !name || !id || !*name) return -EINVAL;
    size_t len = strnlen(name, SHR_TYPE_NAME_MAX + 1);
    if (len > SHR_TYPE_NAME_MAX) return -ENAMETOOLONG;
    if (nslots > NODE_MAX_SLOTS || payload > UINT32_MAX) return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    int rc = decl_lock(heap);
    if (rc) return rc;
    int free_i = -1;
    rc = -ENOSPC;
    for (uint32_t i = 0; i < SHR_TYPE_USER_MAX; i++) {
        gc_type_decl_t *d = &g->types[i];
        if (shr_load_relaxed(&d->state) != 1) {
            if (free_i < 0) free_i = (int)i;
            continue;
        }
        if (strncmp(d->name, name, sizeof d->name) != 0) continue;
        rc = d->nslots == nslots && d->payload == payload ? 0 : -EEXIST;
        if (rc == 0) *id = SHR_TYPE_USER_FIRST + i;
        free_i = -2;
        break;
    }
    if (free_i >= 0) {
        gc_type_decl_t *d = &g->types[free_i];
        memset(d->name, 0, sizeof d->name);
        memcpy(d->name, name, len);
        d->nslots = nslots;
        d->payload = payload;
        shr_store_release(&d->state, 1); /* commit */
        *id = SHR_TYPE_USER_FIRST + (uint32_t)free_i;
        rc = 0;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

int shr_obj_type_lookup(shr_heap_t *heap, const char *name, uint32_t *id)
{
    if (!heap || !name || !id) return -EINVAL;
    for (uint32_t i = 0; i < SHR_TYPE_USER_MAX; i++) {
        const gc_type_decl_t *d = decl_of(heap, SHR_TYPE_USER_FIRST + i);
        if (d && strncmp(d->name, name, sizeof d->name) == 0) {
            *id = SHR_TYPE_USER_FIRST + i;
            return 0;
        }
    }
    return -ENOENT;
}

int shr_obj_type_info(shr_heap_t *heap, uint32_t id, char *name, uint32_t *nslots, size_t *payload)
{
    if (!heap) return -EINVAL;
    const gc_type_decl_t *d = decl_of(heap, id);
    if (!d) return SHR_ETYPE;
    if (name) {
        memcpy(name, d->name, SHR_TYPE_NAME_MAX);
        name[SHR_TYPE_NAME_MAX] = 0;
    }
    if (nslots) *nslots = d->nslots;
    if (payload) *payload = d->payload;
    return 0;
}
