/* Leases
 *
 * The references a process holds in its private memory (a list handle, a
 * string returned by a get) are recorded in its lease table, an open-
 * addressing hash set of {offset, count} in the segment, named from the
 * process's entry. When the process dies, the registry's reclaim hook queues
 * the table on gc_global.dead; the first gc operation after that (or
 * shr_heap_recover) drains it: one decref per reference, each entry's count
 * lowered *before* its decref, so that a drainer that dies too leaks rather
 * than releasing twice. A process that closes the heap with leases still
 * held queues its own table the same way.
 *
 * Why queue instead of releasing in the hook: a decref may free objects, and
 * the hook runs under the registry lock, which the allocator's slow paths
 * may need.
 *
 * Locking: the table of a live process is guarded by the robust mutex in its
 * proc area (threads of that process only); the dead queue is a lock-free
 * stack, pushed onto under the registry lock and drained in place by the gc
 * lock's holder.
 */
#include <errno.h>
#include <string.h>

#include "gc.h"

typedef struct lease_entry {
    _Atomic uint64_t off;   /* 0 free, LEASE_TOMB deleted */
    _Atomic uint64_t n;     /* references held */
} lease_entry_t;

typedef struct lease_table {
    uint64_t cap;           /* power of two */
    uint64_t used;          /* live + tombstones */
    uint64_t next;          /* link on the dead queue */
    uint64_t pad;
    lease_entry_t e[];
} lease_table_t;

#define LEASE_TOMB 1u
#define LEASE_MIN 64

typedef struct lease_area {
    pthread_mutex_t mu;
    _Atomic uint64_t table; /* offset of this process's lease_table_t */
} lease_area_t;

typedef struct gc_global {
    _Atomic uint64_t dead;       /* tables of dead processes, a stack */
    _Atomic uint64_t released;   /* references released for the dead */
} gc_global_t;

static gc_global_t *GG(shr_heap_t *h) { return shr__seg_global(h, SHR_LAYER_GC); }

static lease_area_t *my_area(shr_heap_t *h)
{
    return shr__seg_proc_area(h, SHR_LAYER_GC, h->proc);
}

static int area_lock(lease_area_t *a)
{
    int rc = pthread_mutex_lock(&a->mu);
    /* A thread of this process died holding it: the table's entries are
     * each committed by one store, so it is usable as it is. */
    if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&a->mu);
    return rc ? SHR_ELOCK : 0;
}

static uint64_t hash(uint64_t off) { return (off >> 4) * 0x9E3779B97F4A7C15ull; }

static lease_entry_t *find(lease_table_t *t, uint64_t off, bool insert)
{
    uint64_t mask = t->cap - 1, i = hash(off) & mask;
    lease_entry_t *tomb = NULL;
    for (uint64_t probes = 0; probes < t->cap; probes++, i = (i + 1) & mask) {
        uint64_t k = rd(&t->e[i].off);
        if (k == off) return &t->e[i];
        if (k == LEASE_TOMB && !tomb) tomb = &t->e[i];
        if (k == 0) {
            if (!insert) return NULL;
            lease_entry_t *e = tomb ? tomb : &t->e[i];
            if (!tomb) t->used++;
            wr(&e->n, 0);
            wr(&e->off, off);
            return e;
        }
    }
    if (insert && tomb) {
        wr(&tomb->n, 0);
        wr(&tomb->off, off);
        return tomb;
    }
    return NULL;
}

/* Grow (or create) the table so that one more entry fits. Area lock held. */
static int ensure_room(shr_heap_t *h, lease_area_t *a)
{
    uint64_t toff = rd(&a->table);
    lease_table_t *old = toff ? shr__ptr(h, toff) : NULL;
    if (old && (old->used + 1) * 2 <= old->cap) return 0;
    uint64_t cap = old ? old->cap * 2 : LEASE_MIN;
    lease_table_t *t = shr_calloc(h, 1, sizeof *t + cap * sizeof(lease_entry_t));
    if (!t) return -ENOMEM;
    t->cap = cap;
    for (uint64_t i = 0; old && i < old->cap; i++) {
        uint64_t k = rd(&old->e[i].off);
        if (k > LEASE_TOMB && rd(&old->e[i].n)) wr(&find(t, k, true)->n, rd(&old->e[i].n));
    }
    wr(&a->table, shr__off(h, t)); /* commit point: the new table is complete */
    if (old) shr_free(h, old);
    return 0;
}

int shr__lease_add(shr_heap_t *h, shr_off_t off)
{
    if (!shr__tctx(h)) return -errno; /* registers this process (fork child) */
    lease_area_t *a = my_area(h);
    int rc = area_lock(a);
    if (rc) return rc;
    if ((rc = ensure_room(h, a)) == 0) {
        lease_entry_t *e = find(shr__ptr(h, rd(&a->table)), off, true);
        wr(&e->n, rd(&e->n) + 1);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int shr__lease_remove(shr_heap_t *h, shr_off_t off)
{
    if (!shr__tctx(h)) return -errno;
    lease_area_t *a = my_area(h);
    int rc = area_lock(a);
    if (rc) return rc;
    uint64_t toff = rd(&a->table);
    lease_entry_t *e = toff ? find(shr__ptr(h, toff), off, false) : NULL;
    if (!e || rd(&e->n) == 0) rc = -ENOENT;
    else if (rd(&e->n) == 1) {
        wr(&e->n, 0);
        wr(&e->off, LEASE_TOMB);
    } else {
        wr(&e->n, rd(&e->n) - 1);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

uint64_t shr__gc_released(shr_heap_t *h) { return rd(&GG(h)->released); }

uint64_t shr__lease_count(shr_heap_t *h)
{
    if (!shr__proc_registered_here(h)) return 0;
    lease_area_t *a = my_area(h);
    uint64_t n = 0;
    if (area_lock(a) != 0) return 0;
    uint64_t toff = rd(&a->table);
    lease_table_t *t = toff ? shr__ptr(h, toff) : NULL;
    for (uint64_t i = 0; t && i < t->cap; i++)
        if (rd(&t->e[i].off) > LEASE_TOMB) n += rd(&t->e[i].n);
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Queue a process's table for release. Called under the registry lock for
 * the dead, or by a closing process for itself. */
static void queue_table(shr_heap_t *h, lease_area_t *a)
{
    gc_global_t *g = GG(h);
    uint64_t toff = atomic_exchange(&a->table, 0);
    if (!toff) return;
    lease_table_t *t = shr__ptr(h, toff);
    uint64_t top = rd(&g->dead);
    do t->next = top;
    while (!atomic_compare_exchange_weak(&g->dead, &top, toff));
}

static void gc_proc_release(shr_heap_t *h, uint32_t proc, bool dead)
{
    (void)dead;
    queue_table(h, shr__seg_proc_area(h, SHR_LAYER_GC, proc));
}

int shr__gc_drain_dead(shr_heap_t *h)
{
    gc_global_t *g = GG(h);
    int released = 0;
    if (rd(&g->dead) == 0) return 0;
    if (shr__lock(h, SHR_LOCK_GC) != 0) return SHR_ELOCK;
    /* Each table is released where it lies on the queue and unlinked only
     * once empty: a drainer that dies part way leaves the rest for the next
     * one, and the counts lowered before each decref keep it from releasing
     * anything twice. Pushers only add at the top; only the gc lock's holder
     * removes, so a table's `next` is stable once it is on the queue. */
    uint64_t top;
    while ((top = atomic_load_explicit(&g->dead, memory_order_acquire)) != 0) {
        lease_table_t *t = shr__ptr(h, top);
        for (uint64_t i = 0; i < t->cap; i++) {
            uint64_t off = rd(&t->e[i].off);
            if (off <= LEASE_TOMB || off >= h->capacity) continue;
            for (uint64_t n; (n = rd(&t->e[i].n)) != 0;) {
                wr(&t->e[i].n, n - 1); /* before the decref: a crash leaks */
                shr__decref(h, OBJ(h, off));
                released++;
            }
        }
        uint64_t expect = top;
        if (!atomic_compare_exchange_strong(&g->dead, &expect, t->next)) {
            /* Pushed onto meanwhile: unlink it from below the new top. */
            uint64_t p = expect;
            while (p && ((lease_table_t *)shr__ptr(h, p))->next != top) p = ((lease_table_t *)shr__ptr(h, p))->next;
            if (p) ((lease_table_t *)shr__ptr(h, p))->next = t->next;
        }
        shr_free(h, t);
    }
    shr__unlock(h, SHR_LOCK_GC);
    atomic_fetch_add_explicit(&g->released, (uint64_t)released, memory_order_relaxed);
    return released;
}

/* Close: whatever this process still holds is released as if it had died. */
void shr__gc_close(shr_heap_t *h)
{
    if (!shr__proc_registered_here(h)) return;
    lease_area_t *a = my_area(h);
    if (area_lock(a) != 0) return;
    queue_table(h, a);
    pthread_mutex_unlock(&a->mu);
    shr__gc_drain_dead(h);
}

static const shr__layer_hooks_t gc_hooks = {.proc_release = gc_proc_release};

void shr__gc_params(shr__seg_params_t *p)
{
    p->global_size[SHR_LAYER_GC] = sizeof(gc_global_t);
    p->proc_size[SHR_LAYER_GC] = sizeof(lease_area_t);
    p->consts[SHR_CONST_OBJ_SIZE] = sizeof(obj_t);
    p->consts[SHR_CONST_LEASE_AREA] = sizeof(lease_area_t);
    shr__registry_set_hooks(SHR_LAYER_GC, &gc_hooks);
}

int shr__gc_init_segment(shr_heap_t *h)
{
    for (uint32_t p = 0; p < h->max_procs; p++) {
        int rc = shr__robust_mutex_init(&((lease_area_t *)shr__seg_proc_area(h, SHR_LAYER_GC, p))->mu);
        if (rc) return rc;
    }
    return 0;
}
