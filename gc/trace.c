/* The trace from the roots and the leases
 *
 * Classic mark (McCarthy 1960; Jones, Hosking, Moss, The Garbage
 * Collection Handbook, ch. 2) over the shared heap, with the world stopped
 * by the collector's gate (collect.c). What the shared heap changes:
 *
 *   roots    the named roots that hold a reference (ROOT_REF), and every
 *            lease of every process: a process's private references are
 *            exactly its lease entries (gc.h), so no stack is scanned.
 *            The leases of a dead process not yet drained count too: the
 *            drain will release them, so they are references that exist.
 *            A plain root (shr_root_set, no reference) marks what it names
 *            but is not counted.
 *   objects  found by walking the object pools in address order
 *            (shr__obj_walk), which hold the containers and the str and
 *            bytes objects made inside the gate; an object outside them
 *            that a reference names (a str over 16 KiB) is added as
 *            T_EXTERN, its block checked first.
 *   counts   beside the mark, every reference from every traversable
 *            object (reachable or not), root and lease is counted per
 *            object: `known`. A count is never below it (every order in
 *            the library leaves crashes with counts too high); a count
 *            above it is references a dead thread had in flight.
 *   lists    a list whose lock a dead thread holds is repaired first, as
 *            the trial deletion does (C4): walk, settle, walk again.
 *
 * Nothing here writes the segment but the repair of such lists; everything
 * computed is private memory (tent_t, the index, the stack), proportional
 * to the objects: a dead tracer leaves nothing to undo.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

static size_t hash_of(uint64_t off, size_t icap)
{
    return (size_t)(((off >> 4) * 0x9E3779B97F4A7C15ull) >> 17) & (icap - 1);
}

static int index_grow(trace_t *t, size_t want)
{
    size_t icap = t->icap ? t->icap : 1024;
    while (icap < want * 2) icap *= 2;
    if (icap == t->icap) return 0;
    uint32_t *ix = calloc(icap, sizeof *ix);
    if (!ix) return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t k = hash_of(t->e[i].off, icap);
        while (ix[k]) k = (k + 1) & (icap - 1);
        ix[k] = (uint32_t)i + 1;
    }
    free(t->index);
    t->index = ix;
    t->icap = icap;
    return 0;
}

static tent_t *lookup(trace_t *t, uint64_t off)
{
    if (!t->icap) return NULL;
    for (size_t k = hash_of(off, t->icap);; k = (k + 1) & (t->icap - 1)) {
        uint32_t v = t->index[k];
        if (v == 0) return NULL;
        if (t->e[v - 1].off == off) return &t->e[v - 1];
    }
}

/* Append an entry (the index is built after the walk, and kept up to date
 * after it). NULL when out of memory. */
static tent_t *add(trace_t *t, const tent_t *v)
{
    if (t->nomem) return NULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        tent_t *p = cap < UINT32_MAX ? realloc(t->e, cap * sizeof *p) : NULL;
        if (!p) {
            t->nomem = true;
            return NULL;
        }
        t->e = p;
        t->cap = cap;
    }
    t->e[t->n] = *v;
    if (t->icap) {
        if ((t->n + 1) * 2 > t->icap && index_grow(t, t->n + 1) != 0) {
            t->nomem = true;
            return NULL;
        }
        size_t k = hash_of(v->off, t->icap);
        while (t->index[k]) k = (k + 1) & (t->icap - 1);
        t->index[k] = (uint32_t)t->n + 1;
    }
    return &t->e[t->n++];
}

static void walk_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    trace_t *t = arg;
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    if (rc == 0) return;
    tent_t v = {.off = off, .count = rc, .flags = f, .size = size};
    if (f & OBJ_TRACKED) {
        v.ops = shr__type_ops_any(h, o->type);
        if (!v.ops || !v.ops->traverse || !v.ops->clear) v.state |= T_UNTRAV;
        if (obj_gen(f) == 3) v.state |= T_FROZEN;
        if (o->type == SHR_TYPE_LIST && shr__list_unsettled && shr__list_unsettled(h, o)) {
            if (t->no_settle) {
                v.state |= T_UNTRAV; /* left as it is: its items look referenced */
            } else {
                if (t->nsettle == t->settle_cap) {
                    size_t cap = t->settle_cap ? t->settle_cap * 2 : 16;
                    uint64_t *p = realloc(t->settle, cap * sizeof *p);
                    if (!p) {
                        t->nomem = true;
                        return;
                    }
                    t->settle = p;
                    t->settle_cap = cap;
                }
                t->settle[t->nsettle++] = off;
            }
        }
    } else if (o->type == SHR_TYPE_STR || o->type == SHR_TYPE_BYTES) {
        v.state |= T_STR;
    } else {
        v.state |= T_UNTRAV; /* not an object this library makes there */
    }
    if (f & OBJ_GARBAGE) v.state |= T_FLAGGED;
    if (rc == OBJ_DYING && (f & OBJ_TRACKED) && !(v.state & T_UNTRAV)) {
        /* A dead thread's unfinished dealloc: its true count is 0 and it is
         * garbage for good, as a flagged object is. */
        v.state |= T_FLAGGED | T_DYING;
        v.count = 0;
    }
    if (v.state & T_UNTRAV) t->untraversable++;
    add(t, &v);
}

/* The entry for a referenced offset: a walked object, or one outside the
 * object pools (checked to be an allocated block holding a counted object
 * before its header is read). NULL, counted as dangling, for anything else. */
static tent_t *referent(trace_t *t, uint64_t off)
{
    tent_t *e = lookup(t, off);
    if (e || t->nomem) return e;
    shr_heap_t *h = t->h;
    if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) ||
        shr__alloc_block_checked(h, off) < sizeof(obj_t) || shr_load_relaxed(&obj_at(h, off)->refcnt) == 0) {
        t->dangling++;
        return NULL;
    }
    obj_t *o = obj_at(h, off);
    tent_t v = {.off = off, .count = shr_load_relaxed(&o->refcnt), .flags = shr_load_relaxed(&o->flags),
                .state = T_EXTERN};
    if (o->type == SHR_TYPE_STR || o->type == SHR_TYPE_BYTES) {
        v.state |= T_STR;
    } else {
        v.state |= T_UNTRAV; /* a container outside the object pools (a guarded heap): not followed */
        t->untraversable++;
    }
    return add(t, &v);
}

static void visit_edge(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    trace_t *t = arg;
    t->edges++;
    tent_t *e = referent(t, child);
    if (e) e->known++;
}

static void visit_lease(shr_heap_t *h, uint64_t off, uint64_t n, void *arg)
{
    (void)h;
    trace_t *t = arg;
    t->lease_refs += n;
    tent_t *e = referent(t, off);
    if (e) {
        e->known += n;
        e->state |= T_ROOT;
    }
}

static void push(trace_t *t, tent_t *e)
{
    if (e->state & (T_MARKED | T_FLAGGED)) return; /* flagged: garbage for good (C3) */
    e->state |= T_MARKED;
    if (t->sn == t->scap) {
        size_t cap = t->scap ? t->scap * 2 : 1024;
        size_t *p = realloc(t->stack, cap * sizeof *p);
        if (!p) {
            t->nomem = true; /* marked, not followed: the caller frees nothing */
            return;
        }
        t->stack = p;
        t->scap = cap;
    }
    t->stack[t->sn++] = (size_t)(e - t->e);
}

static void visit_mark(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    trace_t *t = arg;
    tent_t *e = lookup(t, child);
    if (e) push(t, e);
}

static void mark_from(trace_t *t, tent_t *e)
{
    push(t, e);
    while (t->sn) {
        tent_t *c = &t->e[t->stack[--t->sn]];
        if (c->ops && c->ops->traverse && !(c->state & (T_UNTRAV | T_EXTERN)))
            c->ops->traverse(t->h, obj_at(t->h, c->off), visit_mark, t);
    }
}

int shr__trace_run(shr_heap_t *h, trace_t *t)
{
    memset(t, 0, sizeof *t);
    t->h = h;
    shr__obj_walk(h, walk_visit, t);
    if (!t->nomem && t->nsettle) {
        /* A repair may free objects: between walks, never during one. */
        for (size_t i = 0; i < t->nsettle; i++) shr__list_settle(h, obj_at(h, t->settle[i]));
        t->n = 0;
        t->untraversable = 0;
        t->no_settle = true;
        shr__obj_walk(h, walk_visit, t);
    }
    t->nwalked = t->n;
    if (t->nomem || index_grow(t, t->n + 1) != 0) return t->nomem = true, -ENOMEM;

    /* References from every traversable object, reachable or not. */
    for (size_t i = 0; i < t->nwalked && !t->nomem; i++) {
        tent_t e = t->e[i]; /* a copy: referent() may move the array */
        if (e.ops && e.ops->traverse && !(e.state & T_UNTRAV)) e.ops->traverse(h, obj_at(h, e.off), visit_edge, t);
    }
    /* The roots, under their lock (non-gated calls may take it). */
    if (!t->nomem && shr__root_lock(h) == 0) {
        alloc_global_t *ag = alloc_global(h);
        for (int i = 0; i < (int)shr__roots_hwm(h) && !t->nomem; i++) {
            root_entry_t *r = &ag->roots[i];
            if (!r->name[0]) continue;
            uint64_t off = shr_load_relaxed(&r->off);
            tent_t *e = (r->flags & ROOT_REF) ? referent(t, off) : lookup(t, off);
            if (!e) continue;
            if (r->flags & ROOT_REF) {
                e->known++;
                t->root_refs++;
            }
            e->state |= T_ROOT;
        }
        shr__root_unlock(h);
    } else {
        t->lease_incomplete = -1; /* the roots could not be read: nothing is exact */
    }
    /* The leases of every process, live or dead and not yet drained. */
    if (!t->nomem) {
        int rc = shr__lease_scan(h, visit_lease, t);
        if (rc != 0) t->lease_incomplete = rc;
    }
    if (t->nomem) return -ENOMEM;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].count < t->e[i].known) t->below++;
    for (size_t i = 0; i < t->n && !t->nomem; i++)
        if (t->e[i].state & T_ROOT) mark_from(t, &t->e[i]);
    return t->nomem ? -ENOMEM : 0;
}

bool shr__trace_exact(const trace_t *t)
{
    return !(t->h->flags & SHR_HEAP_GUARDS) && !t->nomem && t->untraversable == 0 && t->lease_incomplete == 0 &&
           t->dangling == 0 && t->below == 0;
}

void shr__trace_mark_more(trace_t *t, bool unexplained)
{
    for (size_t i = 0; i < t->n && !t->nomem; i++) {
        tent_t *e = &t->e[i];
        if ((e->state & (T_FROZEN | T_UNTRAV)) || (unexplained && e->count > e->known)) mark_from(t, e);
    }
}

void shr__trace_free(trace_t *t)
{
    free(t->e);
    free(t->index);
    free(t->stack);
    free(t->settle);
    memset(t, 0, sizeof *t);
}
