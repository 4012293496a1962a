/* Leases
 *
 * The references a process holds in its private memory (a list handle, a
 * string returned by a get) are recorded in its lease table, an open-
 * addressing hash set of {offset, count} in the segment (gc.h draws it and
 * states LE1-LE3), named from the process's entry. When the process dies,
 * the registry's reclaim hook queues the table on gc_global.dead; the first
 * gc operation after that (or shr_heap_recover) drains it: one decref per
 * reference, each entry's count lowered *before* its decref, so that a
 * drainer that dies too leaks rather than releasing twice. A process that
 * closes the heap with leases still held queues its own table the same way.
 *
 * Deferred references (gc.h): a str or bytes a list dropped while a lock-
 * free walk was under way is kept as a lease keyed off | LEASE_DEFERRED
 * until a grace period has passed. A table holding one is drained only
 * after a grace period (shr__grace_wait, below): a reader in another
 * process may still be inside the string. If one outlasts the wait, the
 * table stays queued for the next drain.
 *
 * Why queue instead of releasing in the hook: a decref may free objects, and
 * the hook may run under the registry lock (a sweep), which the allocator's
 * slow paths may need; the drain also needs the gc lock, which ranks below
 * the registry lock.
 *
 * Size: a table is rebuilt, live entries only, when an insert would break
 * LE1 (twice the size when it is a quarter full of live entries, else the
 * same size without its tombstones) and when a remove leaves fewer live
 * entries than an eighth of it (half the size or less). So its size, and the
 * cost of everything that walks it (lease statistics, close, the release
 * after a death), stays proportional to the live entries, whatever the peak
 * was; each rebuild is paid for by the inserts or removes since the last.
 * A shrink that cannot allocate keeps the big table: a remove never fails
 * for want of memory.
 *
 * Commit points: an entry is claimed by storing its count (0) and then its
 * offset; a reference is recorded by storing n + 1 (fault point
 * lease.record) and forgotten by storing n - 1, or for the last one n = 0
 * then the tombstone (lease.forget). A rebuilt table is published by one
 * store of lease_area_t.table; a crash before it leaks the new block, after
 * it the old one.
 *
 * Locking: the table of a live process is guarded by the robust mutex in its
 * proc area (threads of that process only), taken with a deadline; the dead
 * queue is a lock-free stack, pushed onto under the registry lock and
 * drained in place by the gc lock's holder.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"

static gc_global_t *gc_global(shr_heap_t *h) { return shr__seg_global(h, SHR_LAYER_GC); }

static lease_area_t *my_area(shr_heap_t *h)
{
    return shr__seg_proc_area(h, SHR_LAYER_GC, h->proc);
}

static lease_table_t *table_of(shr_heap_t *h, lease_area_t *a)
{
    uint64_t toff = shr_load_relaxed(&a->table);
    return toff ? shr__ptr(h, toff) : NULL;
}

static int area_lock(shr_heap_t *h, lease_area_t *a)
{
    if (!shr__mutex_sane(&a->mu)) return SHR_ECORRUPT; /* damaged: never locked */
    int rc = pthread_mutex_trylock(&a->mu);
    if (rc == EBUSY) rc = shr__mutex_lock_until(&a->mu, shr__lock_deadline(h));
    /* A thread of this process died holding it: the table's entries are
     * each committed by one store, so it is usable as it is. */
    if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(&a->mu);
    if (rc == ETIMEDOUT) return SHR_ELOCKTIMEOUT;
    return rc ? SHR_ELOCK : 0;
}

static void area_unlock(lease_area_t *a) { pthread_mutex_unlock(&a->mu); }

/* Fibonacci hashing: the top bits of the product, which depend on every
 * bit of the offset (the low bits would depend only on the low bits, and
 * blocks of one size class share those). */
static uint64_t slot_of(uint64_t off, uint64_t cap)
{
    return ((off >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - __builtin_ctzll(cap));
}

static bool is_live(uint64_t k) { return k > LEASE_TOMB; }

/* LE1-LE3 over the whole table (SHR_DEBUG >= 3, after a rebuild). */
static void validate(const lease_table_t *t, uint64_t live)
{
    uint64_t used = 0, n_live = 0;
    if (t->cap < LEASE_MIN || (t->cap & (t->cap - 1)) != 0 || t->used * 2 > t->cap)
        SHR_PANIC("LE1: lease table cap %llu used %llu", (unsigned long long)t->cap,
                  (unsigned long long)t->used);
    for (uint64_t i = 0; i < t->cap; i++) {
        uint64_t k = shr_load_relaxed(&t->e[i].off), n = shr_load_relaxed(&t->e[i].n);
        if (is_live(k) ? n == 0 : n != 0)
            SHR_PANIC("LE2: lease entry %llu off %llu n %llu", (unsigned long long)i,
                      (unsigned long long)k, (unsigned long long)n);
        used += k != 0;
        n_live += is_live(k);
    }
    if (used != t->used || n_live != live)
        SHR_PANIC("LE3: lease table used %llu counted %llu, live %llu counted %llu",
                  (unsigned long long)t->used, (unsigned long long)used, (unsigned long long)live,
                  (unsigned long long)n_live);
}

/* Claim entry e for off (n = 0): a free entry, or a tombstone (LE3). */
static lease_entry_t *claim_entry(lease_table_t *t, lease_entry_t *e, uint64_t off)
{
    if (shr_load_relaxed(&e->off) == 0) t->used++;
    t->live++;
    SHR_ASSERT(t->used * 2 <= t->cap); /* LE1: room was made first */
    shr_store_relaxed(&e->n, 0);
    shr_store_relaxed(&e->off, off); /* claimed: LE2 holds once n is stored */
    return e;
}

/* The entry for off, or NULL, in one probe; *slot receives where off would
 * go (the first tombstone on its path, else the free entry that ended it).
 * LE1 guarantees a free entry ends every probe. */
static lease_entry_t *probe(lease_table_t *t, uint64_t off, lease_entry_t **slot)
{
    uint64_t mask = t->cap - 1, i = slot_of(off, t->cap);
    lease_entry_t *tomb = NULL;
    for (uint64_t probes = 0; probes < t->cap; probes++, i = (i + 1) & mask) {
        uint64_t k = shr_load_relaxed(&t->e[i].off);
        if (k == off) return &t->e[i];
        if (k == LEASE_TOMB && !tomb) tomb = &t->e[i];
        if (k == 0) {
            *slot = tomb ? tomb : &t->e[i];
            return NULL;
        }
    }
    *slot = tomb; /* LE1 broken: a full table (NULL when not even a tombstone) */
    return NULL;
}

static lease_entry_t *find(lease_table_t *t, uint64_t off, bool insert)
{
    lease_entry_t *slot = NULL, *e = probe(t, off, &slot);
    if (e || !insert) return e;
    SHR_ASSERT(slot != NULL); /* LE1 */
    return slot ? claim_entry(t, slot, off) : NULL;
}

/* Smallest table that holds `live` entries a quarter full. */
static uint64_t cap_for(uint64_t live)
{
    uint64_t cap = LEASE_MIN;
    while (cap / 4 < live && cap < ((uint64_t)1 << 40)) cap *= 2;
    return cap;
}

/* Replace the table by one of `cap` entries holding its live entries.
 * Area lock held. -ENOMEM (nothing changed) when it cannot be allocated. */
static int rebuild(shr_heap_t *h, lease_area_t *a, lease_table_t *old, uint64_t cap)
{
    size_t size;
    if (!shr__gc_array_size(sizeof(lease_table_t), cap, sizeof(lease_entry_t), &size)) return -ENOMEM;
    lease_table_t *t = shr__gc_zalloc(h, size);
    if (!t) return -ENOMEM;
    t->cap = cap;
    uint64_t live = 0;
    for (uint64_t i = 0; old && i < old->cap; i++) {
        uint64_t k = shr_load_relaxed(&old->e[i].off), n = shr_load_relaxed(&old->e[i].n);
        if (is_live(k) && n) {
            shr_store_relaxed(&find(t, k, true)->n, n);
            live++;
        }
    }
    SHR_ASSERT(t->live == live); /* LE3 */
    if (SHR_DEBUG >= 3) validate(t, live);
    shr_store_relaxed(&a->table, shr__off(h, t)); /* commit point: the new table is complete */
    if (old) shr_free(h, old);
    return 0;
}

/* Make room for one more entry (LE1), creating the table on first use.
 * Area lock held. */
static int ensure_room(shr_heap_t *h, lease_area_t *a)
{
    lease_table_t *t = table_of(h, a);
    if (t && (t->used + 1) * 2 <= t->cap) return 0;
    return rebuild(h, a, t, cap_for((t ? t->live : 0) + 1));
}

int shr__lease_add(shr_heap_t *h, shr_off_t off)
{
    if (!shr__tctx(h)) return -errno; /* registers this process (fork child) */
    lease_area_t *a = my_area(h);
    int rc = area_lock(h, a);
    if (rc) return rc;
    /* One probe: an object already leased needs no new entry, hence no
     * room; a new one takes the probe's slot unless the table must grow. */
    lease_table_t *t = table_of(h, a);
    lease_entry_t *slot = NULL, *e = t ? probe(t, off, &slot) : NULL;
    if (!e && slot && (t->used + (shr_load_relaxed(&slot->off) == 0)) * 2 <= t->cap)
        e = claim_entry(t, slot, off);
    if (e || (rc = ensure_room(h, a)) == 0) {
        if (!e) e = find(table_of(h, a), off, true);
        shr_store_relaxed(&e->n, shr_load_relaxed(&e->n) + 1); /* commit: recorded */
        SHR_ASSERT(shr_load_relaxed(&e->n) >= 1); /* LE2 */
        (void)SHR_FAULT(LEASE_RECORD); /* a crash point */
    }
    area_unlock(a);
    return rc;
}

int shr__lease_remove(shr_heap_t *h, shr_off_t off)
{
    if (!shr__tctx(h)) return -errno;
    lease_area_t *a = my_area(h);
    int rc = area_lock(h, a);
    if (rc) return rc;
    lease_table_t *t = table_of(h, a);
    lease_entry_t *e = t ? find(t, off, false) : NULL;
    uint64_t n = e ? shr_load_relaxed(&e->n) : 0;
    if (n == 0) {
        rc = -ENOENT;
    } else if (n == 1) {
        shr_store_relaxed(&e->n, 0); /* commit: forgotten */
        shr_store_relaxed(&e->off, LEASE_TOMB); /* LE2: a tombstone holds nothing */
        if (t->live) t->live--;
        (void)SHR_FAULT(LEASE_FORGET); /* a crash point */
        /* LE4: shrink when well below capacity; on failure the table stays. */
        if (t->cap > LEASE_MIN && t->live * 8 < t->cap) rebuild(h, a, t, cap_for(t->live));
    } else {
        shr_store_relaxed(&e->n, n - 1); /* commit: forgotten */
        (void)SHR_FAULT(LEASE_FORGET); /* a crash point */
    }
    area_unlock(a);
    return rc;
}

bool shr__lease_held(shr_heap_t *h, shr_off_t off)
{
    if (!shr__proc_registered_here(h)) return false;
    lease_area_t *a = my_area(h);
    if (area_lock(h, a) != 0) return false;
    lease_table_t *t = table_of(h, a);
    lease_entry_t *e = t ? find(t, off, false) : NULL;
    bool held = e && shr_load_relaxed(&e->n) != 0;
    area_unlock(a);
    return held;
}

uint64_t shr__lease_released(shr_heap_t *h) { return shr_load_relaxed(&gc_global(h)->released); }

uint64_t shr__lease_count(shr_heap_t *h)
{
    if (!shr__proc_registered_here(h)) return 0;
    lease_area_t *a = my_area(h);
    uint64_t n = 0;
    if (area_lock(h, a) != 0) return 0;
    lease_table_t *t = table_of(h, a);
    for (uint64_t i = 0; t && i < t->cap; i++) {
        uint64_t k = shr_load_relaxed(&t->e[i].off);
        if (is_live(k) && !(k & LEASE_DEFERRED)) n += shr_load_relaxed(&t->e[i].n);
    }
    area_unlock(a);
    return n;
}

int shr__lease_defer(shr_heap_t *h, shr_off_t off) { return shr__lease_add(h, off | LEASE_DEFERRED); }
int shr__lease_undefer(shr_heap_t *h, shr_off_t off) { return shr__lease_remove(h, off | LEASE_DEFERRED); }

/* ---- grace periods (docs/design/objects.md §7.4) -----------------------------
 *
 * A reader of what a writer may free (a list's retired array, the tail of a
 * shrinking one, a str or bytes a list dropped) runs in a read section: its
 * thread slot's `epoch` is odd from before its first load until after its
 * last, even outside (list.c, rsect_enter). The reader's store of its epoch
 * and its loads, against the writer's stores and its loads of the epochs,
 * are a Dekker pair, ordered as the collector's gate orders its own pair
 * (gc.h): asymmetrically, a relaxed store and a compiler barrier on the
 * reader's side, and on the writer's side membarrier(GLOBAL_EXPEDITED)
 * (shr__gate_barrier), which runs a full barrier on every running thread of
 * every registered process; or symmetrically, a seq_cst store and a seq_cst
 * first load, where this process is not registered or under
 * ThreadSanitizer. The writer also makes a seq_cst read-modify-write of its
 * own epoch (a full barrier: the gate has none to give when the kernel has
 * no membarrier).
 *
 * A section is wait-free (a bounded number of loads, no lock), so a writer
 * that waits for one under a lock cannot deadlock. A reader stalled inside
 * one (preempted, stopped) makes the writer give up after GRACE_WAIT_NS and
 * keep what it would have freed for a later try; the thread remembers that
 * section and does not wait for it again. */
#define GRACE_WAIT_NS 1000000

/* The section this thread last gave up waiting for (a stalled reader). */
static _Thread_local struct {
    const shr_heap_t *h;
    uint32_t slot;
    uint64_t e;
} stalled;

bool shr__grace_wait(shr_heap_t *h)
{
    shr_tctx_t *me = shr__tctx(h);
    if (!me || shr__gate_barrier() != 0) return false;
    atomic_fetch_add_explicit(&me->ts->epoch, 0, memory_order_seq_cst); /* a full barrier */
    uint32_t hwm = shr_load_acquire(&h->hdr->threads_hwm);
    if (hwm > h->max_threads) hwm = h->max_threads;
    uint64_t deadline = 0;
    for (uint32_t s = 0; s < hwm; s++) {
        if (s == me->slot) continue;
        thread_slot_t *ts = shr__thread_slot(h, s);
        uint64_t e = atomic_load_explicit(&ts->epoch, memory_order_seq_cst);
        if (!(e & 1)) continue;
        uint32_t gen = shr_load_relaxed(&ts->gen);
        if (stalled.h == h && stalled.slot == s && stalled.e == e) { /* given up on before */
            if (shr__slot_gone(h, s, gen)) continue;                 /* died inside */
            return false;
        }
        unsigned round = 0;
        while (shr_load_acquire(&ts->epoch) == e && shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE &&
               shr_load_relaxed(&ts->gen) == gen) {
            if (!deadline) deadline = shr__now_ns(CLOCK_MONOTONIC) + GRACE_WAIT_NS;
            if (round % 64 == 63 && shr__slot_gone(h, s, gen)) break; /* died inside */
            if (shr__backoff(&round, deadline)) {
                stalled.h = h, stalled.slot = s, stalled.e = e;
                return false;
            }
        }
    }
    return true;
}

static lease_table_t *table_at(shr_heap_t *h, uint64_t off) { return shr__ptr(h, off); }

/* Whether off names a lease table that may be walked and freed: an
 * allocated block (shr__alloc_block_checked) that holds its header and its
 * cap entries, cap a power of two >= LEASE_MIN. A dead process's table, and
 * the dead queue, may come from a segment nobody has checked (a file being
 * attached; docs/design/reliability.md): a table that fails is never
 * followed, written or freed, only leaked. */
static bool table_ok(shr_heap_t *h, uint64_t off)
{
    if (off == 0 || (off & 7)) return false;
    size_t n = shr__alloc_block_checked(h, off);
    if (n < sizeof(lease_table_t)) return false;
    uint64_t cap = table_at(h, off)->cap;
    return cap >= LEASE_MIN && (cap & (cap - 1)) == 0 && cap <= (n - sizeof(lease_table_t)) / sizeof(lease_entry_t);
}

/* Queue a process's table for release. Called for the dead by the
 * registry's release hook (under the registry lock in a sweep, outside it in
 * a reclaim step, the entry RECLAIM: either way nobody else touches that
 * entry's area; re-runnable, as the table word is exchanged first), or by a
 * closing process for itself. */
static void queue_table(shr_heap_t *h, lease_area_t *a)
{
    gc_global_t *g = gc_global(h);
    uint64_t toff = atomic_exchange(&a->table, 0);
    /* Only bounds here (the allocator may be closed already: this runs in
     * the registry's release hook); the drain checks the table in full
     * (queue_sanitize) before it uses it. An offset out of bounds is leaked,
     * never written through. */
    if (!toff || (toff & 7) || toff >= h->capacity || h->capacity - toff < sizeof(lease_table_t)) return;
    lease_table_t *t = shr__ptr(h, toff);
    uint64_t top = shr_load_relaxed(&g->dead);
    do t->next = top;
    while (!atomic_compare_exchange_weak(&g->dead, &top, toff));
}

static void gc_proc_release(shr_heap_t *h, uint32_t proc, bool dead)
{
    (void)dead;
    queue_table(h, shr__seg_proc_area(h, SHR_LAYER_GC, proc));
}

/* Make the dead queue a finite list of tables that pass table_ok: cut it
 * before the first that fails, and where it runs longer than the segment
 * could hold distinct tables (a loop: the cut is inside it, so each table
 * stays on the list once). Under the gc lock: only its holder changes the
 * links below the top; pushers only add above. */
static void queue_sanitize(shr_heap_t *h, gc_global_t *g)
{
    uint64_t limit = h->capacity / (sizeof(lease_table_t) + LEASE_MIN * sizeof(lease_entry_t)) + 1;
    for (;;) {
        uint64_t top = shr_load_acquire(&g->dead);
        if (top == 0) return;
        if (!table_ok(h, top)) {
            uint64_t expect = top;
            if (atomic_compare_exchange_strong(&g->dead, &expect, 0)) return;
            continue; /* pushed onto meanwhile: look again from the new top */
        }
        uint64_t p = top, n = 1;
        for (;;) {
            lease_table_t *t = table_at(h, p);
            uint64_t next = t->next;
            if (next == 0) return;
            if (!table_ok(h, next) || ++n > limit) {
                t->next = 0; /* the rest is leaked */
                return;
            }
            p = next;
        }
    }
}

int shr__gc_drain_dead(shr_heap_t *h)
{
    gc_global_t *g = gc_global(h);
    int released = 0;
    if (shr_load_relaxed(&g->dead) == 0) return 0;
    /* Its decrefs free objects: inside the collector's gate (a collector
     * that drains before it stops the world passes its own request). */
    int grc = shr__gate_enter(h);
    if (grc) return grc;
    if (shr__lock(h, SHR_LOCK_GC) != 0) {
        shr__gate_exit(h);
        return SHR_ELOCK;
    }
    queue_sanitize(h, g);
    /* Each table is released where it lies on the queue and unlinked only
     * once empty: a drainer that dies part way leaves the rest for the next
     * one, and the counts lowered before each decref keep it from releasing
     * anything twice. Pushers only add at the top; only the gc lock's holder
     * removes, so a table's `next` is stable once it is on the queue. */
    uint64_t top;
    bool graced = false;
    while ((top = shr_load_acquire(&g->dead)) != 0) {
        lease_table_t *t = table_at(h, top);
        /* Deferred references (gc.h) are released after a grace period: a
         * lock-free reader in another process may still be reading the
         * object its list dropped. When one outlasts the wait, this table
         * and those below it stay queued for the next drain. */
        bool deferred = false;
        for (uint64_t i = 0; i < t->cap && !deferred && !graced; i++) {
            uint64_t k = shr_load_relaxed(&t->e[i].off);
            deferred = is_live(k) && (k & LEASE_DEFERRED) && shr_load_relaxed(&t->e[i].n) != 0;
        }
        if (deferred && !(graced = shr__grace_wait(h))) break;
        for (uint64_t i = 0; i < t->cap; i++) {
            uint64_t key = shr_load_relaxed(&t->e[i].off), off = key & ~LEASE_DEFERRED;
            /* Released only when off is an allocated block that holds an
             * object with references (a damaged entry is skipped: a leak). */
            if (!is_live(key) || off >= h->capacity || (off & 7) ||
                shr__alloc_block_checked(h, off) < sizeof(obj_t) ||
                shr_load_relaxed(&obj_at(h, off)->refcnt) == 0)
                continue;
            /* A damaged count stops where the object's references end. */
            for (uint64_t n; (n = shr_load_relaxed(&t->e[i].n)) != 0 &&
                             shr_load_relaxed(&obj_at(h, off)->refcnt) != 0;) {
                shr_store_relaxed(&t->e[i].n, n - 1); /* before the decref: a crash leaks */
                (void)SHR_FAULT(LEASE_DRAIN); /* a crash point */
                shr__decref(h, obj_at(h, off));
                released++;
            }
        }
        uint64_t expect = top;
        if (!atomic_compare_exchange_strong(&g->dead, &expect, t->next)) {
            /* Pushed onto meanwhile: unlink it from below the new top. */
            uint64_t p = expect;
            while (p && table_ok(h, p) && table_at(h, p)->next != top) p = table_at(h, p)->next;
            if (p) table_at(h, p)->next = t->next;
        }
        shr_free(h, t);
    }
    shr__unlock(h, SHR_LOCK_GC);
    shr__gate_exit(h);
    atomic_fetch_add_explicit(&g->released, (uint64_t)released, memory_order_relaxed);
    if (released) shr__gc_log(h, SHR_GC_EV_LEASES, -1, 0, (uint64_t)released, 0, 0, 0);
    return released;
}

/* Every lease of every process, for the tracing collector and the verifier
 * (gc/trace.c), with the world stopped: the table of each process entry
 * (live, or dead and not yet queued), then the tables queued on the dead
 * queue and not yet drained, each table once (a table queued while the scan
 * runs is seen in its area or on the queue, not both: `seen` dedupes). The
 * registry lock is held throughout, so no sweep moves a dead process's table;
 * each area's lock is held while its table is read, so no close moves it.
 * A reclaim step that runs outside the registry lock (an entry in state
 * RECLAIM) may move one table meanwhile: then the scan may miss it and
 * returns 1 ("incomplete": the caller must treat unexplained counts as
 * references). An area whose lock cannot be taken in time is skipped, also
 * 1. Returns 0 when every table was read, 1 when some may have been missed,
 * or a negative code (nothing scanned). fn(h, off, n, arg) for each live
 * entry: off a block offset checked against the heap's bounds, n >= 1. */
int shr__lease_scan(shr_heap_t *h, void (*fn)(shr_heap_t *h, uint64_t off, uint64_t n, void *arg), void *arg)
{
    uint64_t *seen = calloc(h->max_procs + 1, sizeof *seen);
    size_t nseen = 0, seen_cap = h->max_procs + 1;
    if (!seen) return -ENOMEM;
    int rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) {
        free(seen);
        return rc;
    }
    int incomplete = 0;
    gc_global_t *g = gc_global(h);
    for (int pass = 0; pass < 2; pass++) {
        uint64_t limit = h->capacity / (sizeof(lease_table_t) + LEASE_MIN * sizeof(lease_entry_t)) + 1, n = 0;
        uint64_t toff = pass ? shr_load_acquire(&g->dead) : 0;
        for (uint32_t p = 0; pass == 0 ? p < shr__procs_hwm(h) : toff != 0; p++) {
            lease_area_t *a = NULL;
            if (pass == 0) {
                if (shr_load_relaxed(&shr__proc_entry(h, p)->state) == SHR_ENTRY_RECLAIM) incomplete = 1;
                a = shr__seg_proc_area(h, SHR_LAYER_GC, p);
                if (shr_load_relaxed(&a->table) == 0) continue;
                if (area_lock(h, a) != 0) {
                    incomplete = 1;
                    continue;
                }
                toff = shr_load_relaxed(&a->table);
            } else if (!table_ok(h, toff) || ++n > limit) {
                break; /* a damaged queue: the rest is not followed */
            }
            bool dup = false;
            for (size_t i = 0; i < nseen && !dup; i++) dup = seen[i] == toff;
            if (toff && !dup && table_ok(h, toff)) {
                if (nseen == seen_cap) {
                    uint64_t *s2 = realloc(seen, 2 * seen_cap * sizeof *seen);
                    if (s2) {
                        seen = s2;
                        seen_cap *= 2;
                    }
                }
                if (nseen < seen_cap) seen[nseen++] = toff;
                lease_table_t *t = table_at(h, toff);
                for (uint64_t i = 0; i < t->cap; i++) {
                    uint64_t off = shr_load_relaxed(&t->e[i].off), k = shr_load_relaxed(&t->e[i].n);
                    /* A deferred reference is a reference all the same. */
                    if (is_live(off)) off &= ~LEASE_DEFERRED;
                    if (is_live(off) && k && off < h->capacity && !(off & 7)) fn(h, off, k, arg);
                }
            }
            if (pass == 0) area_unlock(a);
            else toff = table_at(h, toff)->next;
        }
    }
    shr__unlock(h, SHR_LOCK_REGISTRY);
    free(seen);
    return incomplete;
}

/* Close: whatever this process still holds is released as if it had died. */
void shr__gc_close(shr_heap_t *h)
{
    shr__gc_priv_free(h); /* this process's collector state (collect.c) */
    if (!shr__proc_registered_here(h)) return;
    lease_area_t *a = my_area(h);
    if (area_lock(h, a) != 0) return;
    queue_table(h, a);
    area_unlock(a);
    shr__gc_drain_dead(h);
}

int shr_lease_stats(shr_heap_t *heap, shr_lease_stats_t *out)
{
    if (!heap || !out) return -EINVAL;
    memset(out, 0, sizeof *out);
    out->leases = shr__lease_count(heap);
    out->released_for_dead = shr__lease_released(heap);
    if (shr__proc_registered_here(heap)) {
        lease_area_t *a = my_area(heap);
        if (area_lock(heap, a) == 0) {
            lease_table_t *t = table_of(heap, a);
            out->table_entries = t ? t->cap : 0;
            area_unlock(a);
        }
    }
    return 0;
}

/* A FREE entry's table word is 0 in a sound heap (queue_table took it);
 * anything else is a leftover of a damaged file: leaked, never trusted. */
static void gc_proc_claim(shr_heap_t *h, uint32_t proc)
{
    lease_area_t *a = shr__seg_proc_area(h, SHR_LAYER_GC, proc);
    /* An area is zero until its entry's first claim (the registry commits
     * it then, shm.h R6): its mutex is initialised here, once; a sane one
     * is never initialised again (a dead holder's is repaired by its
     * next locker). An initialisation that fails leaves it refused by
     * area_lock. */
    if (!shr__mutex_sane(&a->mu)) (void)shr__robust_mutex_init(&a->mu);
    shr_store_relaxed(&a->table, 0);
}

static const shr__layer_hooks_t gc_hooks = {
    .thread_release = shr__gc_thread_release, .proc_release = gc_proc_release, .proc_claim = gc_proc_claim};

void shr__gc_params(shr__seg_params_t *p)
{
    p->global_size[SHR_LAYER_GC] = sizeof(gc_global_t);
    p->global_per_record[SHR_LAYER_GC] = sizeof(gc_logrec_t); /* the event log's ring (log.c) */
    p->proc_size[SHR_LAYER_GC] = sizeof(lease_area_t);
    p->thread_size[SHR_LAYER_GC] = sizeof(gc_tslot_t);
    p->consts[SHR_CONST_OBJ_SIZE] = sizeof(obj_t);
    p->consts[SHR_CONST_LEASE_AREA] = sizeof(lease_area_t);
    shr__registry_set_hooks(SHR_LAYER_GC, &gc_hooks);
}

int shr__gc_init_segment(shr_heap_t *h)
{
    /* The lease areas are initialised at their entries' first claim
     * (gc_proc_claim), not here: a heap used by one process touches one. */
    return shr__gc_collect_init(h);
}
