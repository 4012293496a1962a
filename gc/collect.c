/* The cycle collector
 *
 * CPython's generational trial deletion over a heap that many processes
 * mutate, any of which (the collector included) may die at any instruction.
 * docs/design/gc.md tells the whole story; in brief:
 *
 *   gate     every object or list call runs with its thread slot's in_heap
 *            set (gc.h, shr__gate_enter); a collector stores its owner word
 *            in gc_global.requested and waits until no live slot but its
 *            own is in_heap. A thread that enters meanwhile sees the request
 *            and waits at the gate, outside any call, until it is withdrawn
 *            or its collector is gone.
 *   find     with the world stopped, the collector walks the object pools
 *            in address order (shr__obj_walk): every block there with a
 *            refcount is a container, its generation in its header flags.
 *   collect  copy each candidate's refcount into private scratch, subtract
 *            the references candidates hold to each other (traverse), mark
 *            what is reachable from those left above zero, and the rest is
 *            cyclic garbage. The survivors move to the next generation, one
 *            store of their flags each.
 *   restart  the request is withdrawn: the pause ends here.
 *   free     garbage is unreachable, so no thread can touch it: each is
 *            flagged OBJ_GARBAGE (one store), then each is cleared (every
 *            reference it holds detached, and released unless it names
 *            flagged garbage), then each is freed (its dealloc, which finds
 *            nothing left to release).
 *
 * Crash rules (why they hold: docs/design/gc.md §5):
 *   C1  nothing of a collection is in the segment but the request word,
 *       the generation bits (each valid after every store) and the
 *       statistics: the scratch counts and sets are private memory.
 *   C2  a dead collector's request is withdrawn by whoever finds it gone:
 *       a thread waiting at the gate, or the next collector (its mutex is
 *       robust). A mutator never waits for a dead collector.
 *   C3  a collector that dies while freeing leaves garbage that is still
 *       unreachable. What it flagged is garbage for good (nothing can reach
 *       it again), so the next collector treats every flagged object as
 *       garbage whatever its count says (a clear that died between a
 *       detach and its release may have left a count too high) and
 *       finishes the clear and the frees. No flagged object is freed before
 *       every one is cleared, so no slot of garbage ever names a freed
 *       block that a survivor's decref could reach.
 *       That holds of a set flagged whole: a garbage set is closed (every
 *       reference to a member comes from a member), so once all of it is
 *       flagged, whoever names a flagged object is flagged and freed with
 *       it. A set half flagged is not: an unflagged member the next
 *       collection does not examine (an older generation than it collects)
 *       may name a flagged one, which would be freed under it, and its
 *       clear would later decrement a free block (O2) or another object.
 *       So the flags have a commit point, gc_global_t.flagging: set before
 *       the first flag, reset after the last (flagging_begin, _commit).
 *       A collection that finds it set, its mutex held and the world
 *       stopped, drops every OBJ_GARBAGE (one store each, a walk of every
 *       object pool), then resets it (flags_repair: re-runnable, a death
 *       midway leaves the word set). The dead collector cleared nothing
 *       (clears follow the commit), so its set keeps exact counts and
 *       whole slots, and is found garbage again by trial deletion; a set
 *       committed earlier whose clears a death interrupted loses its flags
 *       too, and may leak (a count too high), never be freed early.
 *   C4  the counts a collection relies on are never too low: every crash
 *       leaves them too high (gc.h's orders), which keeps objects, never
 *       frees them. Lists whose lock a dead thread holds are repaired
 *       before they are traversed, so that no item is seen twice.
 *
 * Locking: gc_global.mu (robust) serialises collections and declarations;
 * taken before SHR_LOCK_GC and the registry lock (the sweep and drain of
 * dead processes), never inside the gate.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gc.h"
#include "trace.h"

_Thread_local uint32_t shr__gate_depth __attribute__((tls_model("initial-exec")));
_Thread_local thread_slot_t *shr__gate_ts __attribute__((tls_model("initial-exec")));
_Thread_local shr_heap_t *shr__gc_pending __attribute__((tls_model("initial-exec")));
static _Thread_local bool collecting; /* this thread runs a collection */
static _Thread_local bool in_callback; /* this thread runs a gc callback */
static _Thread_local bool br_due; /* Bacon and Rajan: this thread's ring fills, collect at the gate's exit */

/* This process's part of the collector, per heap handle (h->layer_priv):
 * enabled, the debug flags, the callbacks, the garbage SAVEALL kept (each a
 * lease of this process). Allocated on first use, freed at close. */
typedef struct gc_cb {
    shr_gc_callback_fn fn;
    void *arg;
} gc_cb_t;
typedef struct gc_priv {
    pid_t pid;                    /* the process it belongs to (a fork child's copy is fixed up) */
    pthread_mutex_t mu;           /* the callbacks and the garbage */
    _Atomic bool disabled;
    _Atomic unsigned debug;
    gc_cb_t cb[SHR_GC_CALLBACKS_MAX];
    size_t ncb;
    uint64_t *garbage;
    size_t ngarbage, garbage_cap;
} gc_priv_t;

static gc_priv_t *priv_get(shr_heap_t *h, bool create)
{
    gc_priv_t *p = __atomic_load_n((gc_priv_t **)&h->layer_priv[SHR_LAYER_GC], __ATOMIC_ACQUIRE);
    if (p && p->pid != getpid()) {
        /* A fork child's copy, first used by the child's first thread: the
         * garbage is the parent's leases, not this process's (dropped); the
         * mutex may have been copied held. Enabled, debug and the
         * callbacks carry over, as CPython's do. */
        pthread_mutex_init(&p->mu, NULL);
        p->ngarbage = 0;
        p->pid = getpid();
    }
    if (p || !create) return p;
    gc_priv_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->pid = getpid();
    pthread_mutex_init(&n->mu, NULL);
    gc_priv_t *expected = NULL;
    if (__atomic_compare_exchange_n((gc_priv_t **)&h->layer_priv[SHR_LAYER_GC], &expected, n, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return n;
    pthread_mutex_destroy(&n->mu);
    free(n);
    return expected;
}

void shr__gc_priv_free(shr_heap_t *h)
{
    gc_priv_t *p = priv_get(h, false);
    if (!p) return;
    h->layer_priv[SHR_LAYER_GC] = NULL;
    pthread_mutex_destroy(&p->mu);
    free(p->garbage); /* the references are leases: the close releases them */
    free(p);
}

static unsigned debug_of(shr_heap_t *h)
{
    gc_priv_t *p = priv_get(h, false);
    return p ? atomic_load_explicit(&p->debug, memory_order_relaxed) : 0;
}

/* This process's callbacks, copied at a collection's start: the same ones
 * get "start" and "stop", whatever is added or removed in between (by a
 * callback or another thread). */
static size_t callbacks_copy(shr_heap_t *h, gc_cb_t cb[SHR_GC_CALLBACKS_MAX])
{
    gc_priv_t *p = priv_get(h, false);
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    size_t n = p->ncb;
    memcpy(cb, p->cb, n * sizeof *cb);
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void run_callbacks(shr_heap_t *h, const gc_cb_t *cb, size_t n, const char *phase, const shr_gc_info_t *info)
{
    if (n == 0) return;
    in_callback = true;
    for (size_t i = 0; i < n; i++) cb[i].fn(h, phase, info, cb[i].arg);
    in_callback = false;
}

#define GC_STOP_TIMEOUT_MS 1000

/* ---- the asymmetric gate (gc.h) ------------------------------------------------ */

_Atomic bool shr__gate_asym;
static bool membarrier_ok; /* the kernel has MEMBARRIER_CMD_GLOBAL_EXPEDITED */
static pthread_once_t gate_once = PTHREAD_ONCE_INIT;

static long sys_membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

static void gate_register(void)
{
    shr__gate_asym = membarrier_ok && sys_membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
}

/* A fork child registers itself again (the parent's registration is not
 * relied on); until that returns it takes the symmetric gate. */
static void gate_fork_child(void)
{
    shr__gate_asym = false;
    gate_register();
}

static void gate_setup(void)
{
    long q = sys_membarrier(MEMBARRIER_CMD_QUERY);
    membarrier_ok = q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
                    (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
    gate_register();
    pthread_atfork(NULL, NULL, gate_fork_child);
}

void shr__gate_init(void) { pthread_once(&gate_once, gate_setup); }

/* The collector's half of the asymmetric gate: after its store of the
 * request, a barrier on every thread that may have read no request. 0, or
 * -errno (then the request must be withdrawn: a registered thread may not
 * have seen it). Without the membarrier no process registered: nothing to
 * do. */
static int gate_barrier(void)
{
    shr__gate_init(); /* membarrier_ok is this kernel's: the same for every process */
    if (!membarrier_ok) return 0;
    return sys_membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ? 0 : -errno;
}

int shr__gate_barrier(void) { return gate_barrier(); }

static uint64_t stop_timeout_ns(void)
{
    const char *s = getenv("SHARENA_GC_STOP_TIMEOUT_MS");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == 0 && v < 3600000ull) return (uint64_t)v * 1000000u;
    }
    return (uint64_t)GC_STOP_TIMEOUT_MS * 1000000u;
}

/* ---- the gate ---------------------------------------------------------------- */

int shr__gate_slow(shr_heap_t *h)
{
    gc_global_t *g = shr__gc_global(h);
    thread_slot_t *ts = shr__gate_ts;
    shr_tctx_t *ctx = shr__tctx(h);
    uint64_t me = ctx ? shr__owner_word(ctx) : 0, deadline = 0;
    unsigned round = 0;
    for (;;) {
        uint64_t w = atomic_load_explicit(&g->requested, memory_order_seq_cst);
        if (w == 0 || w == me) return 0; /* none, or this thread's own collection */
        atomic_store_explicit(&ts->in_heap, 0, memory_order_seq_cst);
        /* Park outside any call until the request goes, or its collector. */
        for (;;) {
            uint64_t now = atomic_load_explicit(&g->requested, memory_order_seq_cst);
            if (now != w) break;
            if (round % 64 == 63 && shr__owner_gone(h, w)) {
                uint64_t dead = w;
                if (atomic_compare_exchange_strong(&g->requested, &w, 0)) /* C2 */
                    shr__gc_log(h, SHR_GC_EV_RECOVERED, -1, 0, dead, 1, 0, 0);
                break;
            }
            if (deadline == 0) deadline = shr__lock_deadline(h);
            if (shr__backoff(&round, deadline)) {
                shr__gate_depth = 0;
                return SHR_ELOCKTIMEOUT;
            }
        }
        atomic_store_explicit(&ts->in_heap, 1, memory_order_seq_cst);
    }
}

static int64_t collect(shr_heap_t *h, int gen, int algo, shr_gc_result_t *res, bool automatic);
static gc_br_ring_t *br_ring_at(shr_heap_t *h, uint64_t off);

/* The automatic collection: CPython's collect_generations. */
void shr__gate_exit_slow(shr_heap_t *h)
{
    bool due = shr__gc_pending == h;
    shr__gc_pending = NULL;
    if (collecting || in_callback || !due) return;
    gc_priv_t *p = priv_get(h, false);
    if (p && atomic_load_explicit(&p->disabled, memory_order_relaxed)) return; /* this process's disable */
    gc_global_t *g = shr__gc_global(h);
    uint32_t t0 = shr_load_relaxed(&g->gen[0].threshold);
    bool ring_full = br_due;
    br_due = false;
    if (t0 == 0) return;
    int algo = (int)shr_load_relaxed(&g->algorithm);
    if (algo != SHR_GC_BACON_RAJAN && algo != SHR_GC_MARK_SWEEP) algo = SHR_GC_TRIAL_DELETION;
    for (int i = 2; i >= 0; i--) {
        if (shr_load_relaxed(&g->gen[i].count) <= (int64_t)shr_load_relaxed(&g->gen[i].threshold)) continue;
        if (i == 2 && shr_load_relaxed(&g->long_lived_pending) < shr_load_relaxed(&g->long_lived_total) / 4)
            continue; /* the long-lived rule */
        shr__gc_log(h, SHR_GC_EV_THRESHOLD, i, 0, (uint64_t)shr_load_relaxed(&g->gen[i].count),
                    shr_load_relaxed(&g->gen[i].threshold), 0, 0);
        int64_t rc = collect(h, algo == SHR_GC_MARK_SWEEP ? 2 : i, algo, NULL, true);
        if (rc == -ETIMEDOUT || rc == SHR_ELOCKTIMEOUT)
            atomic_fetch_add_explicit(&g->auto_failures, 1, memory_order_relaxed);
        return;
    }
    /* Bacon and Rajan's other trigger: this thread's ring is filling. */
    if (ring_full && algo == SHR_GC_BACON_RAJAN) {
        shr__gc_log(h, SHR_GC_EV_THRESHOLD, 0, 0, (uint64_t)shr_load_relaxed(&g->gen[0].count),
                    shr_load_relaxed(&g->gen[0].threshold), GC_BR_RING, 0);
        int64_t rc = collect(h, 0, algo, NULL, true);
        if (rc == -ETIMEDOUT || rc == SHR_ELOCKTIMEOUT)
            atomic_fetch_add_explicit(&g->auto_failures, 1, memory_order_relaxed);
    }
}

/* ---- counts -------------------------------------------------------------------- */

static void fold(gc_global_t *g, int64_t v)
{
    int64_t c = shr_load_relaxed(&g->gen[0].count), n;
    do n = c + v < 0 ? 0 : c + v; /* as CPython: the count does not go below 0 */
    while (!atomic_compare_exchange_weak_explicit(&g->gen[0].count, &c, n, memory_order_relaxed,
                                                  memory_order_relaxed));
}

void shr__gc_count(shr_heap_t *h, int d)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx || !ctx->layer[SHR_LAYER_GC]) return;
    gc_tslot_t *t = ctx->layer[SHR_LAYER_GC];
    int64_t v = shr_load_relaxed(&t->delta) + d;
    if (v < GC_FOLD && v > -GC_FOLD) {
        shr_store_relaxed(&t->delta, v);
        return;
    }
    gc_global_t *g = shr__gc_global(h);
    shr_store_relaxed(&t->delta, 0);
    fold(g, v);
    uint32_t t0 = shr_load_relaxed(&g->gen[0].threshold);
    if (d > 0 && t0 && shr_load_relaxed(&g->gen[0].count) > (int64_t)t0 && !collecting) shr__gc_pending = h;
}

void shr__gc_thread_release(shr_heap_t *h, uint32_t slot, bool dead)
{
    (void)dead;
    if (!h->hdr->thread_size[SHR_LAYER_GC]) return;
    gc_tslot_t *t = shr__seg_thread_area(h, SHR_LAYER_GC, slot);
    int64_t v = shr_load_relaxed(&t->delta);
    shr_store_relaxed(&t->delta, 0);
    if (v > -GC_FOLD && v < GC_FOLD && v != 0) fold(shr__gc_global(h), v); /* a damaged word is dropped */
    /* Bacon and Rajan's ring is zeroed at the slot's next claim: its
     * entries are dropped and their bits (and a killed thread's bit
     * without an entry) left to the rescan (B2). The flag is stored before
     * the ring is cleared, so a collector reading the ring meanwhile (the
     * registry sweep needs no stopped world) misses nothing the rescan
     * does not find. */
    gc_global_t *g = shr__gc_global(h);
    if (atomic_exchange_explicit(&t->br_busy, 0, memory_order_relaxed))
        atomic_store_explicit(&g->br_all, 1, memory_order_seq_cst);
    uint64_t ro = shr_load_relaxed(&t->br_ring);
    gc_br_ring_t *ring = ro ? br_ring_at(h, ro) : NULL;
    /* The slot forgets its ring first: a death before the push leaks the
     * ring (and leaves its bits to the next rescan or mark-sweep), a ring
     * is never pushed twice. The count is exchanged, as a collector
     * emptying the rings meanwhile exchanges it (br_flush). */
    shr_store_relaxed(&t->br_ring, 0);
    uint32_t n = atomic_exchange_explicit(&t->br_n, 0, memory_order_acquire);
    if (ro && !ring) {
        atomic_store_explicit(&g->br_all, 1, memory_order_seq_cst); /* a damaged word: dropped */
    } else if (ring) {
        shr_store_relaxed(&ring->n, n <= GC_BR_RING ? n : 0);
        if (n > GC_BR_RING) atomic_store_explicit(&g->br_all, 1, memory_order_seq_cst);
        uint64_t head = shr_load_relaxed(&g->br_orphans);
        do shr_store_relaxed(&ring->next, head);
        while (!atomic_compare_exchange_weak_explicit(&g->br_orphans, &head, ro, memory_order_release,
                                                      memory_order_relaxed));
    }
}

int shr__gc_collect_init(shr_heap_t *h)
{
    gc_global_t *g = shr__gc_global(h);
    static const uint32_t defaults[3] = {2000, 10, 10}; /* CPython 3.13 */
    for (int i = 0; i < 3; i++) shr_store_relaxed(&g->gen[i].threshold, defaults[i]);
    shr_store_relaxed(&g->window_start_ns, shr__now_ns(CLOCK_REALTIME));
    shr__gc_log_init(h);
    return shr__robust_mutex_init(&g->mu);
}

/* ---- the collector's mutex -------------------------------------------------------- */

static int gc_lock(shr_heap_t *h, bool try_only)
{
    gc_global_t *g = shr__gc_global(h);
    if (!shr__mutex_sane(&g->mu)) return SHR_ECORRUPT;
    int rc = pthread_mutex_trylock(&g->mu);
    if (rc == EBUSY) {
        if (try_only) return -EBUSY;
        rc = shr__mutex_lock_until(&g->mu, shr__lock_deadline(h));
    }
    if (rc == EOWNERDEAD) {
        /* A collector died: its request, if still up, goes (C2); nothing
         * else of it is in the segment (C1). */
        uint64_t w = shr_load_relaxed(&g->requested);
        bool gone = w && shr__owner_gone(h, w);
        shr__gc_log(h, SHR_GC_EV_DIED, -1, 0, gone ? w : 0, 0, 0, 0);
        uint64_t dead = w;
        if (gone && atomic_compare_exchange_strong(&g->requested, &w, 0))
            shr__gc_log(h, SHR_GC_EV_RECOVERED, -1, 0, dead, 0, 0, 0);
        rc = pthread_mutex_consistent(&g->mu);
    }
    if (rc == ETIMEDOUT) return SHR_ELOCKTIMEOUT;
    return rc ? SHR_ELOCK : 0;
}

static void gc_unlock(shr_heap_t *h) { pthread_mutex_unlock(&shr__gc_global(h)->mu); }

/* Reclaim the dead (registry sweep) and release their references. */
static void reclaim_dead(shr_heap_t *h)
{
    if (shr__lock(h, SHR_LOCK_REGISTRY) == 0) {
        shr__registry_sweep_locked(h);
        shr__unlock(h, SHR_LOCK_REGISTRY);
    }
    shr__gc_drain_dead(h);
}

/* ---- stopping the world --------------------------------------------------------------- */

/* Ask every thread to stop and wait for each live slot that is inside a
 * call. Dead ones are reclaimed (their references released) and skipped.
 * 0, or -ETIMEDOUT with the request withdrawn. */
static _Thread_local uint64_t stop_t0; /* this thread's last stop request, for RESTARTED */
static _Thread_local int stop_gen;     /* ... and its generation (-1: not a collection) */

static int stop_world(shr_heap_t *h, shr_tctx_t *me, shr_gc_result_t *r)
{
    gc_global_t *g = shr__gc_global(h);
    uint32_t hwm0 = shr_load_acquire(&h->hdr->threads_hwm);
    stop_gen = r->generation;
    shr__gc_log(h, SHR_GC_EV_STOP, stop_gen, 0, hwm0 < h->max_threads ? hwm0 : h->max_threads, 0, 0, 0);
    stop_t0 = shr__now_ns(CLOCK_MONOTONIC);
    atomic_store_explicit(&g->requested, shr__owner_word(me), memory_order_seq_cst);
    int brc = gate_barrier();
    if (brc) {
        atomic_store_explicit(&g->requested, 0, memory_order_seq_cst);
        return brc;
    }
    uint64_t deadline = shr__now_ns(CLOCK_MONOTONIC) + stop_timeout_ns();
    uint32_t hwm = shr_load_acquire(&h->hdr->threads_hwm);
    if (hwm > h->max_threads) hwm = h->max_threads;
    for (uint32_t s = 0; s < hwm; s++) {
        if (s == me->slot) continue;
        thread_slot_t *ts = shr__thread_slot(h, s);
        if (atomic_load_explicit(&ts->in_heap, memory_order_seq_cst) == 0) continue;
        r->stopped_threads++;
        unsigned round = 0;
        while (atomic_load_explicit(&ts->in_heap, memory_order_seq_cst) != 0 &&
               shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE) {
            uint32_t gen = shr_load_relaxed(&ts->gen);
            if (round % 16 == 15 && shr__slot_gone(h, s, gen)) {
                /* Dead: its references are released before it is skipped. */
                r->dead_skipped++;
                r->stopped_threads--;
                reclaim_dead(h);
                break;
            }
            if (shr__backoff(&round, deadline)) {
                atomic_store_explicit(&g->requested, 0, memory_order_seq_cst);
                shr__gc_log(h, SHR_GC_EV_TIMEOUT, stop_gen, 0, shr__now_ns(CLOCK_MONOTONIC) - stop_t0, s,
                            (uint64_t)(uint32_t)ts->tid, 0);
                return -ETIMEDOUT;
            }
        }
    }
    shr__gc_log(h, SHR_GC_EV_STOPPED, stop_gen, 0, shr__now_ns(CLOCK_MONOTONIC) - stop_t0, r->stopped_threads,
                r->dead_skipped, 0);
    return 0;
}

static void restart_world(shr_heap_t *h)
{
    atomic_store_explicit(&shr__gc_global(h)->requested, 0, memory_order_seq_cst);
    shr__gc_log(h, SHR_GC_EV_RESTARTED, stop_gen, 0, shr__now_ns(CLOCK_MONOTONIC) - stop_t0, 0, 0, 0);
}

/* ---- trial deletion (private scratch) --------------------------------------------------- */

enum { C_REACHABLE = 1, C_FLAGGED = 2 };

typedef struct cand {
    uint64_t off;
    int64_t refs;       /* gc_refs: refcount minus references from candidates */
    const gc_type_ops_t *ops;
    uint32_t state;
    uint32_t gen;
} cand_t;

/* A pool the walk entered (alloc.h, Y1): its header, its first candidate,
 * and whether it keeps a young object the collection leaves young. */
typedef struct wpool {
    uint64_t hdr;
    size_t cand;
    bool keep;
} wpool_t;

/* A walked pool's part of the index: its first slot, where its blocks
 * start in the arena, their extent, and 2^32 / block size rounded up (a
 * block's slot is (rel - start) * recip >> 32, exact for extents below
 * 2^16 and sizes up to 16 KiB). span 0: not walked. */
typedef struct pent {
    uint32_t base, recip, start, span;
} pent_t;

typedef struct scratch {
    shr_heap_t *h;
    int gen;
    cand_t *c;
    size_t n, cap;
    unsigned mask;      /* the young hints the walk selects pools by; 0: every pool */
    wpool_t *pools;     /* the pools walked, in address order */
    size_t npools, pools_cap;
    bool saw_flagged;   /* a partial walk met garbage a dead collector flagged */
    /* The index from an offset to its candidate (lookup): per walked arena
     * 64 pool entries, per pool entry a run of `slots` (one per carved
     * block: candidate + 1, 0 none), and a map from chunk to arena. */
    pent_t *pent;       /* narenas * SHR_MAX_POOLS_IN_ARENA */
    size_t narenas, pent_cap;
    uint64_t *achunk;   /* each walked arena's chunk index and pool shift: c << 8 | shift */
    uint32_t *slots;
    size_t nslots, slots_cap;
    pent_t *cur;        /* the pool being walked */
    uint32_t *cmap;     /* chunk - cmin -> (arena + 1) << 5 | shift, 0 none */
    uint64_t cmin, ncmap;
    size_t *stack;
    size_t sn;
    uint64_t untraversable;
    uint64_t gencount[4]; /* tracked objects in each generation, the permanent one last */
    uint64_t *settle;   /* lists a dead thread holds, to repair between walks */
    size_t nsettle, settle_cap;
    bool no_settle;     /* the second walk: such a list is not traversed */
    bool nomem;
    uint64_t edges;     /* references the subtract phase visited (shr_gc_result_t.edges) */
    uint64_t t_subtracted; /* the clock when find_garbage's subtract phase ended */
} scratch_t;

static void walk_pool(shr_heap_t *h, const shr__obj_pool_t *p, void *arg)
{
    (void)h;
    scratch_t *s = arg;
    s->cur = NULL;
    if (s->npools == s->pools_cap) {
        size_t cap = s->pools_cap ? s->pools_cap * 2 : 256;
        wpool_t *q = realloc(s->pools, cap * sizeof *q);
        if (!q) {
            s->nomem = true;
            return;
        }
        s->pools = q;
        s->pools_cap = cap;
    }
    s->pools[s->npools++] = (wpool_t){.hdr = p->hdr, .cand = s->n};
    /* Its index entry: a new arena's 64 entries when the walk enters one
     * (arenas come in address order). */
    uint64_t c = p->hdr >> SHR_CHUNK_SHIFT;
    if (s->narenas == 0 || (s->achunk[s->narenas - 1] >> 8) != c) {
        if (s->narenas == s->pent_cap) {
            size_t cap = s->pent_cap ? s->pent_cap * 2 : 16;
            pent_t *q = realloc(s->pent, cap * SHR_MAX_POOLS_IN_ARENA * sizeof *q);
            uint64_t *a = q ? realloc(s->achunk, cap * sizeof *a) : NULL;
            if (q) s->pent = q;
            if (!a) {
                s->nomem = true;
                return;
            }
            s->achunk = a;
            s->pent_cap = cap;
        }
        memset(&s->pent[s->narenas * SHR_MAX_POOLS_IN_ARENA], 0, SHR_MAX_POOLS_IN_ARENA * sizeof *s->pent);
        s->achunk[s->narenas++] = c << 8 | p->shift;
    }
    if (s->nslots + p->nblocks >= UINT32_MAX) {
        s->nomem = true;
        return;
    }
    if (s->nslots + p->nblocks > s->slots_cap) {
        size_t cap = s->slots_cap ? s->slots_cap : 4096;
        while (cap < s->nslots + p->nblocks) cap *= 2;
        uint32_t *q = realloc(s->slots, cap * sizeof *q);
        if (!q) {
            s->nomem = true;
            return;
        }
        s->slots = q;
        s->slots_cap = cap;
    }
    pent_t *e = &s->pent[(s->narenas - 1) * SHR_MAX_POOLS_IN_ARENA + ((p->hdr & (SHR_ARENA_META - 1)) >> 6)];
    *e = (pent_t){.base = (uint32_t)s->nslots, .recip = (uint32_t)(0xFFFFFFFFu / p->block_size) + 1,
                  .start = (uint32_t)(p->first & (SHR_ARENA_SIZE - 1)), .span = p->nblocks * p->block_size};
    memset(&s->slots[s->nslots], 0, p->nblocks * sizeof *s->slots);
    s->nslots += p->nblocks;
    s->cur = e;
}

static inline uint32_t pent_slot(const pent_t *e, uint32_t d) { return (uint32_t)(((uint64_t)d * e->recip) >> 32); }

/* The pool being walked keeps its young hint: an object of the generations
 * it names stays there (not examined, or left as it is). */
static void keep_young(scratch_t *s, uint32_t f)
{
    if ((f & OBJ_TRACKED) && obj_gen(f) <= (uint32_t)(s->gen < 1 ? s->gen : 1) && s->npools)
        s->pools[s->npools - 1].keep = true;
}

static void walk_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    scratch_t *s = arg;
    (void)size;
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    if (rc == OBJ_DYING) { /* a dead thread's unfinished dealloc: the mark-sweep's */
        keep_young(s, f);
        return;
    }
    if ((f & OBJ_TRACKED) && rc) s->gencount[obj_gen(f)]++;
    /* Garbage a dead collector flagged is examined whatever its generation,
     * all of it at once (C3): a partial walk that meets some walks again. */
    if ((f & OBJ_TRACKED) && rc && (f & OBJ_GARBAGE) && s->mask) s->saw_flagged = true;
    if (!(f & OBJ_TRACKED) || rc == 0 || ((int)obj_gen(f) > s->gen && !(f & OBJ_GARBAGE))) return;
    const gc_type_ops_t *ops = shr__type_ops_any(h, o->type);
    if (!ops || !ops->traverse || !ops->clear) {
        s->untraversable++; /* referenced from outside, as far as we can tell */
        keep_young(s, f);
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        cand_t *p = realloc(s->c, cap * sizeof *p);
        if (!p) {
            s->nomem = true;
            return;
        }
        s->c = p;
        s->cap = cap;
    }
    if (o->type == SHR_TYPE_LIST && shr__list_unsettled && shr__list_unsettled(h, o)) { /* C4 */
        if (s->no_settle) {
            s->untraversable++; /* left as it is: kept, its items look referenced */
            keep_young(s, f);
            return;
        }
        if (s->nsettle == s->settle_cap) {
            size_t cap = s->settle_cap ? s->settle_cap * 2 : 16;
            uint64_t *p = realloc(s->settle, cap * sizeof *p);
            if (!p) {
                s->nomem = true;
                return;
            }
            s->settle = p;
            s->settle_cap = cap;
        }
        s->settle[s->nsettle++] = off;
    }
    if (s->cur) s->slots[s->cur->base + pent_slot(s->cur, (uint32_t)(off & (SHR_ARENA_SIZE - 1)) - s->cur->start)] =
        (uint32_t)s->n + 1;
    s->c[s->n++] = (cand_t){.off = off, .refs = (int64_t)rc, .ops = ops, .gen = obj_gen(f),
                            .state = f & OBJ_GARBAGE ? C_FLAGGED : 0};
}

/* The map from chunk to walked arena, and the mark stack. */
static int build_index(scratch_t *s)
{
    s->stack = malloc((s->n ? s->n : 1) * sizeof *s->stack);
    if (!s->stack || s->n >= UINT32_MAX) return -ENOMEM;
    if (s->narenas == 0) return 0;
    s->cmin = s->achunk[0] >> 8;
    s->ncmap = (s->achunk[s->narenas - 1] >> 8) - s->cmin + 1;
    s->cmap = calloc(s->ncmap, sizeof *s->cmap);
    if (!s->cmap) return -ENOMEM;
    for (size_t a = 0; a < s->narenas; a++)
        s->cmap[(s->achunk[a] >> 8) - s->cmin] = (uint32_t)(a + 1) << 5 | (uint32_t)(s->achunk[a] & 31);
    return 0;
}

/* The candidate at off, or NULL: arithmetic on the offset to its arena's
 * and pool's entries, then the block's slot. The walk collected the
 * candidates in address order, so the references of neighbouring objects
 * (a list's items, a ring) land on neighbouring slots. */
static inline cand_t *lookup(scratch_t *s, uint64_t off)
{
    uint64_t c = (off >> SHR_CHUNK_SHIFT) - s->cmin;
    if (c >= s->ncmap) return NULL;
    uint32_t m = s->cmap[c];
    if (m == 0) return NULL;
    uint32_t rel = (uint32_t)(off & (SHR_ARENA_SIZE - 1));
    const pent_t *e = &s->pent[((m >> 5) - 1) * SHR_MAX_POOLS_IN_ARENA + (rel >> (m & 31))];
    uint32_t d = rel - e->start;
    if (d >= e->span) return NULL;
    uint32_t v = s->slots[e->base + pent_slot(e, d)];
    if (v == 0) return NULL;
    cand_t *cd = &s->c[v - 1];
    return cd->off == off ? cd : NULL;
}

static void visit_subtract(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    ((scratch_t *)arg)->edges++;
    cand_t *c = lookup(arg, child);
    if (c && SHR_ALWAYS(c->refs > 0)) c->refs--;
}

static void visit_mark(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    scratch_t *s = arg;
    cand_t *c = lookup(s, child);
    if (c && !(c->state & (C_REACHABLE | C_FLAGGED))) { /* flagged: garbage for good (C3) */
        c->state |= C_REACHABLE;
        s->stack[s->sn++] = (size_t)(c - s->c);
    }
}

/* Trial deletion: what stays unmarked is garbage. */
static void find_garbage(scratch_t *s)
{
    shr_heap_t *h = s->h;
    for (size_t i = 0; i < s->n; i++) s->c[i].ops->traverse(h, obj_at(h, s->c[i].off), visit_subtract, s);
    s->t_subtracted = shr__now_ns(CLOCK_MONOTONIC); /* SHR_GC_PHASE_SUBTRACT ends */
    (void)SHR_FAULT(GC_SUBTRACT); /* a crash point */
    for (size_t i = 0; i < s->n; i++)
        if (s->c[i].refs > 0 && !(s->c[i].state & (C_REACHABLE | C_FLAGGED))) {
            s->c[i].state |= C_REACHABLE;
            s->stack[s->sn++] = i;
            while (s->sn) {
                cand_t *c = &s->c[s->stack[--s->sn]];
                c->ops->traverse(h, obj_at(h, c->off), visit_mark, s);
            }
        }
}

static void walk(shr_heap_t *h, scratch_t *s)
{
    s->n = 0;
    s->npools = 0;
    s->narenas = 0;
    s->nslots = 0;
    s->cur = NULL;
    s->untraversable = 0;
    s->saw_flagged = false;
    memset(s->gencount, 0, sizeof s->gencount);
    shr__obj_walk_young(h, s->mask, walk_pool, walk_visit, s);
}

/* The walk, and, if it found lists a dead thread holds, their repair and a
 * second walk: a repair may free objects, which must not happen during a
 * walk, nor leave freed blocks among the candidates.
 *
 * A collection of generation 0 walks the pools whose young hint has
 * SHR_OBJ_YOUNG0, one of 1 those with SHR_OBJ_YOUNG1 (alloc.h, Y1: every
 * pool that holds an object of those generations), one of 2 every pool. So
 * does a young one that meets garbage a dead collector flagged (all of it is
 * cleared before any is freed, C3), or whose debug statistics count every
 * generation. */
static void find_candidates(shr_heap_t *h, scratch_t *s, bool count_all)
{
    s->mask = count_all || s->gen >= 2 ? 0 : s->gen == 0 ? SHR_OBJ_YOUNG0 : SHR_OBJ_YOUNG1;
    walk(h, s);
    if (!s->nomem && s->mask && s->saw_flagged) {
        s->mask = 0;
        s->nsettle = 0;
        walk(h, s);
    }
    if (s->nomem || s->nsettle == 0) return;
    for (size_t i = 0; i < s->nsettle; i++) shr__list_settle(h, obj_at(h, s->settle[i]));
    s->no_settle = true;
    walk(h, s);
}

/* After the promotion, the world still stopped: the young hints of the
 * walked pools that keep no object of the collected young generations, and
 * none of garbage (left young until it is freed), are cleared (alloc.h, Y1).
 * Without memory for the list, none is: a hint set needlessly costs only a
 * walk. */
static void young_clear(shr_heap_t *h, scratch_t *s)
{
    uint64_t *hdrs = malloc((s->npools ? s->npools : 1) * sizeof *hdrs);
    if (!hdrs) return;
    size_t m = 0;
    for (size_t k = 0; k < s->npools; k++) {
        bool keep = s->pools[k].keep;
        size_t end = k + 1 < s->npools ? s->pools[k + 1].cand : s->n;
        for (size_t i = s->pools[k].cand; i < end && !keep; i++)
            if (!(s->c[i].state & C_REACHABLE)) keep = true;
        if (!keep) hdrs[m++] = s->pools[k].hdr;
    }
    shr__obj_young_clear(h, s->mask, hdrs, m, s->gen == 0 ? SHR_OBJ_YOUNG0 : SHR_OBJ_YOUNG);
    free(hdrs);
}

static void scratch_free(scratch_t *s)
{
    free(s->pools);
    free(s->pent);
    free(s->achunk);
    free(s->slots);
    free(s->cmap);
    free(s->settle);
    free(s->c);
    free(s->stack);
}

/* ---- a collection ------------------------------------------------------------------------ */

/* The log2 bucket of a pause (SHR_GC_HIST_BUCKETS). */
static unsigned hist_bucket(uint64_t ns)
{
    unsigned b = ns ? 63u - (unsigned)__builtin_clzll(ns) : 0;
    return b < SHR_GC_HIST_BUCKETS ? b : SHR_GC_HIST_BUCKETS - 1;
}

/* Add one collection to its generation's statistics (under the collector's
 * mutex; everything but total_ns and phase FREE's end is known). */
static void record(gc_global_t *g, int gen, const shr_gc_result_t *r)
{
    gc_meas_t *M = &g->meas[gen];
    for (int i = 0; i < SHR_GC_NPHASES; i++)
        atomic_fetch_add_explicit(&M->phase_ns[i], r->phase_ns[i], memory_order_relaxed);
    atomic_fetch_add_explicit(&M->candidates, r->candidates, memory_order_relaxed);
    atomic_fetch_add_explicit(&M->edges, r->edges, memory_order_relaxed);
    atomic_fetch_add_explicit(&M->bytes_freed, r->bytes_freed, memory_order_relaxed);
    atomic_fetch_add_explicit(&M->total_ns, r->total_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&M->hist[hist_bucket(r->pause_ns)], 1, memory_order_relaxed);
    gc_gen_t *G = &g->gen[gen];
    atomic_fetch_add_explicit(&G->collections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&G->collected, r->collected, memory_order_relaxed);
    atomic_fetch_add_explicit(&G->uncollectable, r->uncollectable, memory_order_relaxed);
    atomic_fetch_add_explicit(&G->pause_ns_total, r->pause_ns, memory_order_relaxed);
    if (r->pause_ns > shr_load_relaxed(&G->pause_ns_max)) shr_store_relaxed(&G->pause_ns_max, r->pause_ns);
    if (r->ttsp_ns > shr_load_relaxed(&G->ttsp_ns_max)) shr_store_relaxed(&G->ttsp_ns_max, r->ttsp_ns);
}

/* ---- the flags' commit (C3) -------------------------------------------------------------- */

/* Before the first OBJ_GARBAGE of a set: the collection's epoch in
 * gc_global_t.flagging (the collector's mutex held). The compiler keeps
 * the flags' stores after it (a kill stops the code as emitted). */
static void flagging_begin(shr_heap_t *h)
{
    gc_global_t *g = shr__gc_global(h);
    uint64_t e = shr_load_relaxed(&g->epoch);
    atomic_store_explicit(&g->flagging, e ? e : 1, memory_order_seq_cst);
    atomic_signal_fence(memory_order_seq_cst);
}

/* After the last: the commit point of the set (release: every flag before). */
static void flagging_commit(shr_heap_t *h)
{
    atomic_store_explicit(&shr__gc_global(h)->flagging, 0, memory_order_release);
}

static void unflag_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    if (!(f & OBJ_GARBAGE)) return;
    shr_store_relaxed(&o->flags, f & ~OBJ_GARBAGE);
    (*(uint64_t *)arg)++;
}

/* A collector died flagging its garbage (the word still set): every flag
 * goes, then the word (the repair's commit). The collector's mutex held,
 * the world stopped: nobody else writes flags. Returns the flags dropped. */
static uint64_t flags_repair(shr_heap_t *h)
{
    gc_global_t *g = shr__gc_global(h);
    if (atomic_load_explicit(&g->flagging, memory_order_acquire) == 0) return 0;
    uint64_t n = 0;
    shr__obj_walk(h, unflag_visit, &n);
    flagging_commit(h);
    return n;
}

/* Free the garbage (the world running): flag each, clear each, free each
 * (C3). Returns how many were freed; *bytes their blocks' bytes. */
static uint64_t free_garbage(shr_heap_t *h, scratch_t *s, uint64_t *bytes)
{
    size_t ng = 0;
    flagging_begin(h);
    for (size_t i = 0; i < s->n; i++) {
        if (s->c[i].state & C_REACHABLE) continue;
        obj_t *o = obj_at(h, s->c[i].off);
        *bytes += shr_usable_size(h, o);
        /* Every ring was emptied before (br_flush): a bit left is a stale
         * one (B2), cleared so that its free is not deferred. */
        shr_store_relaxed(&o->flags, (shr_load_relaxed(&o->flags) | OBJ_GARBAGE) & ~OBJ_BUFFERED);
        s->stack[ng++] = i;
        (void)SHR_FAULT(GC_FLAG); /* a crash point: the flags not all stored */
    }
    flagging_commit(h); /* the set is garbage for good from here */
    (void)SHR_FAULT(GC_FLAGGED); /* a crash point: every garbage object flagged */
    for (size_t k = 0; k < ng; k++) {
        cand_t *c = &s->c[s->stack[k]];
        c->ops->clear(h, obj_at(h, c->off));
        (void)SHR_FAULT(GC_CLEAR); /* a crash point */
    }
    for (size_t k = 0; k < ng; k++) {
        cand_t *c = &s->c[s->stack[k]];
        c->ops->dealloc(h, obj_at(h, c->off)); /* nothing left to release: frees it */
        (void)SHR_FAULT(GC_FREE); /* a crash point */
    }
    return ng;
}

/* CPython's debug_cycle: "gc: collectable <TYPE 0xOFFSET>". */
static void type_name(shr_heap_t *h, uint32_t t, char name[SHR_TYPE_NAME_MAX + 1])
{
    if (t == SHR_TYPE_NODE) strcpy(name, "node");
    else if (t == SHR_TYPE_LIST) strcpy(name, "list");
    else if (shr_obj_type_info(h, t, name, NULL, NULL) != 0) strcpy(name, "object");
}

static void debug_garbage(shr_heap_t *h, scratch_t *s, const char *what)
{
    char name[SHR_TYPE_NAME_MAX + 1];
    for (size_t i = 0; i < s->n; i++) {
        if (s->c[i].state & C_REACHABLE) continue;
        type_name(h, obj_at(h, s->c[i].off)->type, name);
        fprintf(stderr, "gc: %s <%s 0x%" PRIx64 ">\n", what, name, s->c[i].off);
    }
}

/* SAVEALL: keep each garbage object, a lease of this process in its
 * garbage list, instead of freeing it. Nothing else can reach garbage, so
 * the incref cannot race a free; an object that cannot be kept (no memory)
 * is left as it is, for the next collection. Returns how many were kept. */
static uint64_t save_garbage(shr_heap_t *h, scratch_t *s)
{
    gc_priv_t *p = priv_get(h, true);
    if (!p) return 0;
    uint64_t kept = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < s->n; i++) {
        if (s->c[i].state & C_REACHABLE) continue;
        if (p->ngarbage == p->garbage_cap) {
            size_t cap = p->garbage_cap ? p->garbage_cap * 2 : 64;
            uint64_t *a = realloc(p->garbage, cap * sizeof *a);
            if (!a) break;
            p->garbage = a;
            p->garbage_cap = cap;
        }
        obj_t *o = obj_at(h, s->c[i].off);
        shr__incref(o);
        if (shr__lease_add(h, s->c[i].off) != 0) {
            shr__decref(h, o); /* back to the count it had: unreachable, not freed */
            break;
        }
        p->garbage[p->ngarbage++] = s->c[i].off;
        kept++;
    }
    pthread_mutex_unlock(&p->mu);
    return kept;
}

/* ---- the backup mark-sweep (trace.c; docs/design/gc.md §10) ------------------------------- */

/* Free what the trace left unmarked (the world running, inside this
 * thread's gate), by trial deletion's three passes (C3): flag each, clear
 * each container, then free each. A str or bytes holds no reference: its
 * count is set to 0 and its block freed. Returns how many were freed; 0 when
 * the list of them cannot be allocated (all left for the next collection). */
static uint64_t ms_free(shr_heap_t *h, trace_t *t, uint64_t *bytes)
{
    size_t ng = 0;
    for (size_t i = 0; i < t->nwalked; i++)
        if (!(t->e[i].state & (T_MARKED | T_UNTRAV | T_FROZEN | T_EXTERN))) ng++;
    if (ng == 0) return 0;
    size_t *g = malloc(ng * sizeof *g);
    if (!g) return 0;
    ng = 0;
    flagging_begin(h);
    for (size_t i = 0; i < t->nwalked; i++) {
        tent_t *e = &t->e[i];
        if (e->state & (T_MARKED | T_UNTRAV | T_FROZEN | T_EXTERN)) continue;
        obj_t *o = obj_at(h, e->off);
        shr_store_relaxed(&o->flags, (shr_load_relaxed(&o->flags) | OBJ_GARBAGE) & ~OBJ_BUFFERED); /* as free_garbage */
        *bytes += e->size;
        g[ng++] = i;
        (void)SHR_FAULT(GC_FLAG); /* a crash point: the flags not all stored */
    }
    flagging_commit(h);
    (void)SHR_FAULT(GC_FLAGGED); /* a crash point: every garbage object flagged */
    for (size_t k = 0; k < ng; k++) {
        tent_t *e = &t->e[g[k]];
        if (e->state & T_STR) continue;
        e->ops->clear(h, obj_at(h, e->off));
        (void)SHR_FAULT(GC_CLEAR); /* a crash point */
    }
    for (size_t k = 0; k < ng; k++) {
        tent_t *e = &t->e[g[k]];
        obj_t *o = obj_at(h, e->off);
        if (e->state & T_STR) {
            shr_store_relaxed(&o->refcnt, 0); /* the object pools' rule: 0 when freed */
            shr_free(h, o);
        } else {
            e->ops->dealloc(h, o); /* nothing left to release: frees it */
        }
        (void)SHR_FAULT(GC_FREE); /* a crash point */
    }
    free(g);
    return ng;
}

typedef struct stray {
    uint64_t *off;
    size_t n, cap;
} stray_t;

static void stray_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)h;
    (void)size;
    stray_t *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *p = realloc(s->off, cap * sizeof *p);
        if (!p) return; /* left for the next mark-sweep */
        s->off = p;
        s->cap = cap;
    }
    s->off[s->n++] = off;
}

/* The mark-sweep's part of a collection, from the world stopped to the
 * garbage freed (the collector's mutex held by the caller). With
 * SHR_GC_REPAIR and an exact trace, the counts of reachable objects above
 * their true value are set to it before the restart. */
static int mark_sweep(shr_heap_t *h, int algo, shr_gc_result_t *r, uint64_t t_stop, uint64_t t_stopped)
{
    gc_global_t *g = shr__gc_global(h);
    trace_t t;
    int rc = shr__trace_run(h, &t);
    uint64_t t_walked = shr__now_ns(CLOCK_MONOTONIC);
    shr__gc_log(h, SHR_GC_EV_PHASE, 2, SHR_GC_PHASE_WALK, t_walked - t_stopped, t.nwalked, t.edges, 0);
    (void)SHR_FAULT(GC_WALK); /* a crash point: traced, nothing changed */
    bool exact = rc == 0 && shr__trace_exact(&t);
    if (rc == 0) shr__trace_mark_more(&t, !exact); /* frozen, and what unseen references may hold */
    if (rc == 0 && t.nomem) rc = -ENOMEM;
    if (rc) {
        restart_world(h);
        shr__trace_free(&t);
        return rc; /* nothing freed (a dead thread's list may have been repaired) */
    }
    r->candidates = t.nwalked;
    r->untraversable = t.untraversable;
    r->edges = t.edges;
    r->exact = exact;
    if ((algo & SHR_GC_REPAIR) && exact)
        for (size_t i = 0; i < t.n; i++) {
            tent_t *e = &t.e[i];
            if (!(e->state & T_MARKED) || e->known == 0 || e->count <= e->known) continue;
            uint64_t c = e->count; /* the world is stopped: nobody else changes it */
            if (atomic_compare_exchange_strong(&obj_at(h, e->off)->refcnt, &c, e->known)) {
                r->repaired++;
                r->repaired_refs += e->count - e->known;
            }
        }
    uint64_t t_marked = shr__now_ns(CLOCK_MONOTONIC);
    shr__gc_log(h, SHR_GC_EV_PHASE, 2, SHR_GC_PHASE_MARK, t_marked - t_walked, 0, 0, 0);
    (void)SHR_FAULT(GC_MARK); /* a crash point: counts repaired, nothing promoted */
    /* A full collection: the survivors go to generation 2, one store each (C1). */
    uint64_t survivors = 0;
    for (size_t i = 0; i < t.nwalked; i++) {
        tent_t *e = &t.e[i];
        if (!(e->state & T_MARKED) || !(e->flags & OBJ_TRACKED) || (e->state & (T_FROZEN | T_UNTRAV))) continue;
        survivors++;
        if (obj_gen(e->flags) != 2) {
            obj_t *o = obj_at(h, e->off);
            shr_store_relaxed(&o->flags, (shr_load_relaxed(&o->flags) & OBJ_BUFFERED) | OBJ_TRACKED |
                                             2u << OBJ_GEN_SHIFT);
            (void)SHR_FAULT(GC_PROMOTE); /* a crash point */
        }
    }
    for (int i = 0; i <= 2; i++) shr_store_relaxed(&g->gen[i].count, 0);
    shr_store_relaxed(&g->long_lived_pending, 0);
    shr_store_relaxed(&g->long_lived_total, survivors);
    /* Blocks of object pools a dead thread left allocated with no object in
     * them (alloc.h, shr__obj_walk_strays): with the world stopped no live
     * thread is between taking such a block and committing its object, nor
     * between a count's 0 and its free (both happen only behind the gate),
     * so each is a dead thread's, and nothing names it (exact: no dangling
     * reference). Freed after the restart, with the garbage. */
    stray_t strays = {0};
    if (exact) shr__obj_walk_strays(h, stray_visit, &strays);
    uint64_t t_promoted = shr__now_ns(CLOCK_MONOTONIC);
    shr__gc_log(h, SHR_GC_EV_PHASE, 2, SHR_GC_PHASE_PROMOTE, t_promoted - t_marked, survivors, 0, 0);
    restart_world(h);
    uint64_t t_restarted = shr__now_ns(CLOCK_MONOTONIC);
    r->pause_ns = t_restarted - t_stop;
    r->phase_ns[SHR_GC_PHASE_WALK] = t_walked - t_stopped;
    r->phase_ns[SHR_GC_PHASE_MARK] = t_marked - t_walked;
    r->phase_ns[SHR_GC_PHASE_PROMOTE] = t_promoted - t_marked;
    r->phase_ns[SHR_GC_PHASE_RESTART] = t_restarted - t_promoted;

    uint64_t garbage = 0;
    for (size_t i = 0; i < t.nwalked; i++)
        if (!(t.e[i].state & (T_MARKED | T_UNTRAV | T_FROZEN | T_EXTERN))) garbage++;
    if (shr__gate_enter(h) == 0) {
        r->collected = ms_free(h, &t, &r->bytes_freed);
        for (size_t i = 0; i < strays.n; i++) {
            shr_free(h, shr__ptr(h, strays.off[i])); /* bytes 0..7 read 0 already (O2) */
            r->strays++;
        }
        shr__gate_exit(h);
    }
    free(strays.off);
    r->uncollectable = garbage - r->collected;
    r->phase_ns[SHR_GC_PHASE_FREE] = shr__now_ns(CLOCK_MONOTONIC) - t_restarted;
    shr__gc_log(h, SHR_GC_EV_PHASE, 2, SHR_GC_PHASE_FREE, r->phase_ns[SHR_GC_PHASE_FREE], r->collected,
                r->bytes_freed, 0);
    r->total_ns = shr__now_ns(CLOCK_MONOTONIC) - r->total_ns; /* the caller stored its start there */
    record(g, 2, r);
    shr__trace_free(&t);
    return 0;
}

/* ---- Bacon and Rajan (docs/design/gc.md §14) ----------------------------------------------
 *
 * Bacon and Rajan, "Concurrent Cycle Collection in Reference Counted
 * Systems" (ECOOP 2001), the synchronous algorithm of its §3: a container
 * whose count a decrement leaves above zero is a possible root, buffered
 * once (purple, its buffered bit set); a collection marks gray from each
 * root, subtracting the references among the gray (MarkRoots), makes black
 * again what a gray object with a count left reaches and the rest white
 * (ScanRoots), and frees the white (CollectRoots). What the shared heap
 * changes:
 *   - the buffer is per thread, a ring named by the thread's gc slot area
 *     (gc_tslot_t.br_ring, allocated at its first root), written inside
 *     the gate only by its thread; at the slot's release it goes to the
 *     heap's orphan list, consumed by the next collection. A full ring, a
 *     thread outside any call, a ring that cannot be allocated or is
 *     lost, or a thread killed between the bit and its entry (br_busy)
 *     set the heap-wide rescan flag (br_all): the next consumption walks
 *     every container, every one a root, and clears every bit (B2);
 *   - the bit is set before the decrement, while the reference is held
 *     (after it, the block could be freed under the buffering); a buffered
 *     object whose count then reaches zero is left dying for the collector
 *     (B1), as in the paper's Release, which frees only what is not
 *     buffered;
 *   - the colours and the trial counts are private memory (C1): the counts
 *     in the headers are never written, so a collector killed at any point
 *     leaves nothing to undo but the rings it had emptied (their roots
 *     dropped: a cycle waits for the next full or rescanning collection);
 *   - the world is stopped by the gate for the three phases; the garbage
 *     is freed after the restart as trial deletion frees it (C3).
 * Every collection, whichever its algorithm, empties the rings with the
 * world stopped before it frees anything (br_flush), so that no entry can
 * outlive its object.
 */

/* Is anything buffered: a ring entry, a thread killed mid-buffer, the
 * rescan flag? */
static bool br_any(shr_heap_t *h)
{
    if (shr_load_relaxed(&shr__gc_global(h)->br_all)) return true;
    if (!h->hdr->thread_size[SHR_LAYER_GC]) return false;
    uint32_t hwm = shr_load_acquire(&h->hdr->threads_hwm);
    if (hwm > h->max_threads) hwm = h->max_threads;
    if (shr_load_relaxed(&shr__gc_global(h)->br_orphans)) return true;
    /* Under the registry lock: a claim zeroes a slot's region with a
     * plain memset (outside the gate, so while the world is stopped too). */
    bool locked = shr__lock(h, SHR_LOCK_REGISTRY) == 0, any = false;
    for (uint32_t s = 0; s < hwm && !any; s++) {
        gc_tslot_t *t = shr__seg_thread_area(h, SHR_LAYER_GC, s);
        any = shr_load_relaxed(&t->br_n) || shr_load_relaxed(&t->br_busy);
    }
    if (locked) shr__unlock(h, SHR_LOCK_REGISTRY);
    return any;
}

/* A ring offset read from the segment: an allocated block big enough. */
static gc_br_ring_t *br_ring_at(shr_heap_t *h, uint64_t off)
{
    if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) ||
        shr__alloc_block_checked(h, off) < sizeof(gc_br_ring_t))
        return NULL;
    return (gc_br_ring_t *)shr__ptr(h, off);
}

static void br_set_all(gc_global_t *g)
{
    if (!shr_load_relaxed(&g->br_all)) shr_store_relaxed(&g->br_all, 1);
}

void shr__gc_br_root(shr_heap_t *h, obj_t *o)
{
    uint32_t f = shr_load_relaxed(&o->flags);
    if ((f & (OBJ_TRACKED | OBJ_BUFFERED | OBJ_GARBAGE)) != OBJ_TRACKED || obj_gen(f) == 3) return;
    uint64_t n = shr_load_relaxed(&o->refcnt);
    if (n <= 1 || n == OBJ_DYING) return; /* this decrement frees it: not a possible root */
    gc_global_t *g = shr__gc_global(h);
    shr_tctx_t *ctx = shr__gate_depth ? shr__tctx(h) : NULL;
    gc_tslot_t *t = ctx ? ctx->layer[SHR_LAYER_GC] : NULL;
    if (!t) { /* outside any call: a collector may be reading the rings */
        br_set_all(g);
        return;
    }
    uint64_t ro = shr_load_relaxed(&t->br_ring);
    if (shr_unlikely(ro == 0)) {
        /* The thread's first root: its ring (the store is the commit). */
        void *p = shr_malloc(h, sizeof(gc_br_ring_t));
        if (!p) {
            br_set_all(g);
            return;
        }
        ro = shr__off(h, p);
        shr_store_release(&t->br_ring, ro);
    }
    gc_br_ring_t *ring = (gc_br_ring_t *)shr__ptr(h, ro);
    uint32_t k = shr_load_relaxed(&t->br_n);
    if (k >= GC_BR_RING) {
        br_set_all(g);
        br_due = true;
        shr__gc_pending = h;
        return;
    }
    shr_store_relaxed(&t->br_busy, 1);
    if (atomic_fetch_or_explicit(&o->flags, OBJ_BUFFERED, memory_order_relaxed) & OBJ_BUFFERED) {
        shr_store_relaxed(&t->br_busy, 0); /* another thread buffered it */
        return;
    }
    (void)SHR_FAULT(GC_BR_BUFFER); /* a crash point: the bit set, its entry not committed */
    shr_store_relaxed(&ring->off[k], shr__off(h, o));
    shr_store_release(&t->br_n, k + 1); /* the entry's commit point */
    shr_store_release(&t->br_busy, 0);
    if (k + 1 >= GC_BR_RING * 3 / 4) {
        br_due = true;
        shr__gc_pending = h;
    }
}

/* What a consumption of the rings found: the roots (purple, bit now
 * clear), and the buffered objects whose count reached zero meanwhile
 * (their deallocs done but the free, B1), to be freed after the restart. */
typedef struct broots {
    uint64_t *off;
    size_t n, cap;
    uint64_t *dying;
    size_t nd, dcap;
    bool all;           /* every container is a root (the rescan) */
    bool keep_dying;    /* the caller frees the dying (else: the mark-sweep's trace does) */
    uint64_t *rings;    /* released slots' rings taken off the orphan list: freed after the restart */
    size_t nr, rcap;
    uint64_t entries;   /* ring entries read */
} broots_t;

static bool push_off(uint64_t **a, size_t *n, size_t *cap, uint64_t off)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        uint64_t *p = realloc(*a, c * sizeof *p);
        if (!p) return false;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = off;
    return true;
}

/* One buffered object, world stopped: its bit cleared (so a second entry
 * naming it is skipped), kept as a root or a dying object. One that cannot
 * be recorded keeps its bit and sets the rescan flag. */
static void br_take(shr_heap_t *h, broots_t *b, uint64_t off, bool from_ring)
{
    if (from_ring && (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) ||
                      shr__alloc_block_checked(h, off) < sizeof(obj_t)))
        return; /* a damaged entry: dropped (B2 holds: the rescan is only needed for a bit) */
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    if (!(f & OBJ_BUFFERED) || !(f & OBJ_TRACKED) || rc == 0) return;
    bool ok = true;
    if (rc == OBJ_DYING) {
        if (b->keep_dying) ok = push_off(&b->dying, &b->nd, &b->dcap, off);
    } else if (!b->all && !(f & OBJ_GARBAGE) && obj_gen(f) != 3) {
        ok = push_off(&b->off, &b->n, &b->cap, off);
    }
    if (!ok) {
        br_set_all(shr__gc_global(h));
        return;
    }
    shr_store_relaxed(&o->flags, f & ~OBJ_BUFFERED);
}

static void br_take_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    br_take(h, arg, off, false);
}

/* Empty every ring (the world stopped), and walk every container when the
 * rescan flag is up or a thread died between a bit and its entry. */
static void br_flush(shr_heap_t *h, broots_t *b)
{
    gc_global_t *g = shr__gc_global(h);
    /* Exchanged first: a release that sets it after this (a registry
     * sweep of another process runs with the world stopped) leaves it for
     * the next consumption. */
    if (atomic_exchange_explicit(&g->br_all, 0, memory_order_relaxed)) b->all = true;
    if (h->hdr->thread_size[SHR_LAYER_GC]) {
        /* Under the registry lock, as br_any (a lock that cannot be had is
         * done without: the exchanges below still consume each entry once). */
        bool locked = shr__lock(h, SHR_LOCK_REGISTRY) == 0;
        uint32_t hwm = shr_load_acquire(&h->hdr->threads_hwm);
        if (hwm > h->max_threads) hwm = h->max_threads;
        for (uint32_t s = 0; s < hwm; s++) {
            gc_tslot_t *t = shr__seg_thread_area(h, SHR_LAYER_GC, s);
            /* Exchanged, as the slot's release exchanges them (a registry
             * sweep runs with the world stopped): each entry is consumed
             * here or handed to the orphan list, never both. */
            if (!shr_load_relaxed(&t->br_n) && !shr_load_relaxed(&t->br_busy)) continue;
            uint32_t n = atomic_exchange_explicit(&t->br_n, 0, memory_order_acquire);
            if (atomic_exchange_explicit(&t->br_busy, 0, memory_order_relaxed)) b->all = true; /* a dead thread's (B2) */
            gc_br_ring_t *ring = n ? br_ring_at(h, shr_load_relaxed(&t->br_ring)) : NULL;
            if (n && (n > GC_BR_RING || !ring)) {
                b->all = true; /* a damaged word: its entries are not trusted */
                n = 0;
            }
            for (uint32_t i = 0; i < n; i++) br_take(h, b, shr_load_relaxed(&ring->off[i]), true);
            b->entries += n;
        }
        if (locked) shr__unlock(h, SHR_LOCK_REGISTRY);
    }
    /* The rings of released slots: consumed, then freed after the restart
     * (taken whole: a release pushing meanwhile leaves its ring for the
     * next consumption). */
    uint64_t ro = atomic_exchange_explicit(&g->br_orphans, 0, memory_order_acquire);
    for (unsigned guard = 0; ro && guard < (1u << 20); guard++) {
        gc_br_ring_t *ring = br_ring_at(h, ro);
        if (!ring) {
            b->all = true; /* the rest of the list is lost: the rescan finds their bits */
            break;
        }
        uint64_t n = shr_load_relaxed(&ring->n);
        if (n > GC_BR_RING) {
            b->all = true;
            n = 0;
        }
        for (uint64_t i = 0; i < n; i++) br_take(h, b, shr_load_relaxed(&ring->off[i]), true);
        b->entries += n;
        if (!push_off(&b->rings, &b->nr, &b->rcap, ro)) b->all = true; /* leaked, not lost */
        ro = shr_load_relaxed(&ring->next);
    }
    if (b->all) shr__obj_walk(h, br_take_visit, b);
}

static void broots_free(broots_t *b)
{
    free(b->off);
    free(b->dying);
    free(b->rings);
}

/* After the restart, inside the gate: the dying buffered objects, their
 * deallocs run again (releasing what a killed thread's dealloc had not, and
 * then the free, their bits clear). */
static void br_free_dying(shr_heap_t *h, broots_t *b)
{
    for (size_t i = 0; i < b->nr; i++) shr_free(h, shr__ptr(h, b->rings[i]));
    b->nr = 0;
    for (size_t i = 0; i < b->nd; i++) {
        obj_t *o = obj_at(h, b->dying[i]);
        const gc_type_ops_t *ops = shr__type_ops_any(h, o->type);
        if (ops) ops->dealloc(h, o); /* unknown here: left dying, for the mark-sweep */
    }
}

enum { BR_BLACK = 0, BR_GRAY, BR_WHITE };

typedef struct bent {
    uint64_t off;
    int64_t rc;         /* the trial count: the header's, minus the references from gray objects */
    const gc_type_ops_t *ops;
    uint32_t color;
    uint32_t garbage;   /* OBJ_GARBAGE: a dead collector's garbage, white for good (C3) */
} bent_t;

typedef struct brs {
    shr_heap_t *h;
    bent_t *e;
    size_t n, cap;
    uint32_t *ix;       /* open addressing: entry + 1 */
    size_t icap;
    size_t *stack;
    size_t sn, scap;
    size_t cur;         /* the entry whose children are visited */
    bool nomem;
    bool all;           /* every container a root */
    uint64_t edges, untraversable;
} brs_t;

static size_t br_hash(uint64_t off, size_t icap) { return (size_t)(((off >> 4) * 0x9E3779B97F4A7C15ull) >> 17) & (icap - 1); }

static bent_t *br_lookup(brs_t *s, uint64_t off)
{
    if (!s->icap) return NULL;
    for (size_t k = br_hash(off, s->icap);; k = (k + 1) & (s->icap - 1)) {
        uint32_t v = s->ix[k];
        if (v == 0) return NULL;
        if (s->e[v - 1].off == off) return &s->e[v - 1];
    }
}

static bool br_spush(brs_t *s, size_t i)
{
    if (s->sn == s->scap) {
        size_t c = s->scap ? s->scap * 2 : 1024;
        size_t *p = realloc(s->stack, c * sizeof *p);
        if (!p) {
            s->nomem = true;
            return false;
        }
        s->stack = p;
        s->scap = c;
    }
    s->stack[s->sn++] = i;
    return true;
}

/* Can o be gray? A live tracked container, not frozen, of a type this
 * process traverses, not a list a dead writer left half changed (C4: kept
 * as it is, as trial deletion's second walk keeps it). Else it is black for
 * good and its references are never subtracted. */
static const gc_type_ops_t *br_eligible(brs_t *s, obj_t *o, uint32_t f, uint64_t rc)
{
    if (!(f & OBJ_TRACKED) || rc == 0 || rc == OBJ_DYING || obj_gen(f) == 3) return NULL;
    /* A dead collector's garbage: all of it is freed at once or none
     * (C3), so only a walk of every container makes it gray. */
    if ((f & OBJ_GARBAGE) && !s->all) return NULL;
    const gc_type_ops_t *ops = shr__type_ops_any(s->h, o->type);
    if (!ops || !ops->traverse || !ops->clear ||
        (o->type == SHR_TYPE_LIST && shr__list_unsettled && shr__list_unsettled(s->h, o))) {
        s->untraversable++;
        return NULL;
    }
    return ops;
}

/* The entry for off, added gray (its trial count its header's) and pushed
 * for MarkGray when new; NULL when it cannot be gray or memory ran out. */
static bent_t *br_gray(brs_t *s, uint64_t off)
{
    bent_t *e = br_lookup(s, off);
    if (e || s->nomem) return e;
    obj_t *o = obj_at(s->h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    const gc_type_ops_t *ops = br_eligible(s, o, f, rc);
    if (!ops) return NULL;
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 1024;
        bent_t *p = c < UINT32_MAX ? realloc(s->e, c * sizeof *p) : NULL;
        if (!p) {
            s->nomem = true;
            return NULL;
        }
        s->e = p;
        s->cap = c;
    }
    if ((s->n + 1) * 2 > s->icap) {
        size_t icap = s->icap ? s->icap * 2 : 2048;
        uint32_t *ix = calloc(icap, sizeof *ix);
        if (!ix) {
            s->nomem = true;
            return NULL;
        }
        for (size_t i = 0; i < s->n; i++) {
            size_t k = br_hash(s->e[i].off, icap);
            while (ix[k]) k = (k + 1) & (icap - 1);
            ix[k] = (uint32_t)i + 1;
        }
        free(s->ix);
        s->ix = ix;
        s->icap = icap;
    }
    size_t k = br_hash(off, s->icap);
    while (s->ix[k]) k = (k + 1) & (s->icap - 1);
    s->ix[k] = (uint32_t)s->n + 1;
    s->e[s->n] = (bent_t){.off = off, .rc = (int64_t)rc, .ops = ops, .color = BR_GRAY,
                          .garbage = (f & OBJ_GARBAGE) != 0};
    if (!br_spush(s, s->n)) return NULL;
    return &s->e[s->n++];
}

/* MarkGray's edge: every reference from a gray object is subtracted from
 * its referent's trial count, which turns gray if it was not. */
static void br_visit_gray(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    brs_t *s = arg;
    s->edges++;
    if (child == 0) return;
    bent_t *e = br_gray(s, child);
    if (e) e->rc--;
}

static void br_mark_gray(brs_t *s)
{
    while (s->sn && !s->nomem) {
        bent_t *e = &s->e[s->stack[--s->sn]];
        e->ops->traverse(s->h, obj_at(s->h, e->off), br_visit_gray, s);
    }
}

/* ScanBlack's edge: the reference counts again; what was not black turns
 * black and is followed. */
static void br_visit_black(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    brs_t *s = arg;
    bent_t *e = br_lookup(s, child);
    if (!e) return;
    e->rc++;
    if (e->color != BR_BLACK && !e->garbage) {
        e->color = BR_BLACK;
        br_spush(s, (size_t)(e - s->e));
    }
}

static void br_scan_black(brs_t *s, size_t i)
{
    s->e[i].color = BR_BLACK;
    size_t base = s->sn;
    br_spush(s, i);
    while (s->sn > base) {
        bent_t *e = &s->e[s->stack[--s->sn]];
        e->ops->traverse(s->h, obj_at(s->h, e->off), br_visit_black, s);
    }
}

/* Scan's edge: the gray children are scanned in turn. */
typedef struct brscan {
    brs_t *s;
    size_t *st;
    size_t n, cap;
    bool nomem;
} brscan_t;

static bool br_qpush(brscan_t *q, size_t i)
{
    if (q->n == q->cap) {
        size_t c = q->cap ? q->cap * 2 : 1024;
        size_t *p = realloc(q->st, c * sizeof *p);
        if (!p) {
            q->nomem = true;
            return false;
        }
        q->st = p;
        q->cap = c;
    }
    q->st[q->n++] = i;
    return true;
}

static void br_visit_scan(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    brscan_t *q = arg;
    bent_t *e = br_lookup(q->s, child);
    if (e && e->color == BR_GRAY) br_qpush(q, (size_t)(e - q->s->e));
}

/* ScanRoots over every gray object (all came from the roots): a gray one
 * with a count left is referenced from outside, and it and what it reaches
 * become black again (their counts restored); a gray one at zero turns
 * white and its children are scanned. What a dead collector flagged stays
 * white (C3). */
static void br_scan(brs_t *s, const size_t *roots, size_t nroots)
{
    brscan_t q = {.s = s};
    for (size_t r = 0; r < nroots && !s->nomem && !q.nomem; r++) {
        if (s->e[roots[r]].color != BR_GRAY || !br_qpush(&q, roots[r])) continue;
        while (q.n && !s->nomem && !q.nomem) {
            size_t i = q.st[--q.n];
            bent_t *e = &s->e[i];
            if (e->color != BR_GRAY) continue;
            if (e->rc > 0 && !e->garbage) {
                br_scan_black(s, i);
            } else {
                e->color = BR_WHITE;
                e->ops->traverse(s->h, obj_at(s->h, e->off), br_visit_scan, &q);
            }
        }
    }
    if (q.nomem) s->nomem = true;
    free(q.st);
}

static void brs_free(brs_t *s)
{
    free(s->e);
    free(s->ix);
    free(s->stack);
}

/* Free the white (the world running, inside the gate): flag each, clear
 * each, free each, as free_garbage (C3). */
static uint64_t br_free_white(shr_heap_t *h, brs_t *s, uint64_t garbage, uint64_t *bytes)
{
    if (garbage == 0) return 0;
    size_t *gl = malloc(garbage * sizeof *gl);
    if (!gl) { /* all left; the rescan finds them again */
        br_set_all(shr__gc_global(h));
        return 0;
    }
    size_t ng = 0;
    flagging_begin(h);
    for (size_t i = 0; i < s->n; i++) {
        bent_t *e = &s->e[i];
        if (e->color != BR_WHITE) continue;
        obj_t *o = obj_at(h, e->off);
        *bytes += shr_usable_size(h, o);
        shr_store_relaxed(&o->flags, shr_load_relaxed(&o->flags) | OBJ_GARBAGE);
        gl[ng++] = i;
        (void)SHR_FAULT(GC_FLAG); /* a crash point: the flags not all stored */
    }
    flagging_commit(h);
    (void)SHR_FAULT(GC_FLAGGED); /* a crash point: every garbage object flagged */
    for (size_t k = 0; k < ng; k++) {
        bent_t *e = &s->e[gl[k]];
        e->ops->clear(h, obj_at(h, e->off));
        (void)SHR_FAULT(GC_CLEAR); /* a crash point */
    }
    for (size_t k = 0; k < ng; k++) {
        bent_t *e = &s->e[gl[k]];
        e->ops->dealloc(h, obj_at(h, e->off)); /* nothing left to release: frees it */
        (void)SHR_FAULT(GC_FREE); /* a crash point */
    }
    free(gl);
    return ng;
}

static void br_all_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    broots_t *b = arg;
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    if ((f & OBJ_TRACKED) && rc != 0 && rc != OBJ_DYING && obj_gen(f) != 3 &&
        !push_off(&b->off, &b->n, &b->cap, off))
        b->all = false; /* marks the failure (see bacon_rajan) */
}

/* Bacon and Rajan's part of a collection, from the world stopped to the
 * garbage freed (the collector's mutex held by the caller). */
static int bacon_rajan(shr_heap_t *h, int gen, shr_gc_result_t *r, uint64_t t_stop, uint64_t t_stopped)
{
    gc_global_t *g = shr__gc_global(h);
    broots_t b = {.keep_dying = true};
    brs_t s = {.h = h};
    br_flush(h, &b);
    /* A heap that does not select the algorithm buffers nothing: a call of
     * it there takes every container for a root. */
    if (shr_load_relaxed(&g->algorithm) != SHR_GC_BACON_RAJAN) b.all = true;
    if (b.all) { /* every container is a root: the walk collects them */
        b.n = 0;
        shr__obj_walk(h, br_all_visit, &b);
        if (!b.all) s.nomem = true;
        s.all = true;
    }
    /* The roots turn gray (MarkRoots' start); offsets become entries. */
    size_t *roots = malloc((b.n ? b.n : 1) * sizeof *roots);
    size_t nroots = 0;
    if (!roots) s.nomem = true;
    uint64_t t_walked = shr__now_ns(CLOCK_MONOTONIC);
    (void)SHR_FAULT(GC_WALK); /* a crash point: the rings emptied, nothing marked */
    for (size_t i = 0; i < b.n && !s.nomem; i++) {
        bent_t *e = br_gray(&s, b.off[i]);
        if (e) roots[nroots++] = (size_t)(e - s.e);
        br_mark_gray(&s);
    }
    uint64_t t_gray = shr__now_ns(CLOCK_MONOTONIC);
    (void)SHR_FAULT(GC_SUBTRACT); /* a crash point: gray marked, counts subtracted (private) */
    if (!s.nomem) br_scan(&s, roots, nroots);
    free(roots);
    uint64_t t_scanned = shr__now_ns(CLOCK_MONOTONIC);
    (void)SHR_FAULT(GC_MARK); /* a crash point: white found, nothing changed */
    if (s.nomem) {
        /* Nothing freed; the roots are dropped (bits cleared), the rescan
         * flag makes the next collection examine every container. */
        br_set_all(g);
        restart_world(h);
        if ((b.nd || b.nr) && shr__gate_enter(h) == 0) {
            br_free_dying(h, &b);
            shr__gate_exit(h);
        }
        brs_free(&s);
        broots_free(&b);
        return -ENOMEM;
    }
    r->candidates = s.n;
    r->untraversable = s.untraversable;
    r->edges = s.edges;
    r->phase_ns[SHR_GC_PHASE_WALK] = t_walked - t_stopped;
    r->phase_ns[SHR_GC_PHASE_SUBTRACT] = t_gray - t_walked;
    r->phase_ns[SHR_GC_PHASE_MARK] = t_scanned - t_gray;
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_WALK, r->phase_ns[SHR_GC_PHASE_WALK], b.n, b.entries, 0);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_SUBTRACT, r->phase_ns[SHR_GC_PHASE_SUBTRACT], r->edges, 0, 0);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_MARK, r->phase_ns[SHR_GC_PHASE_MARK], 0, 0, 0);
    /* Not generational: the counts are reset as a collection of gen
     * resets them, so that the thresholds work as they do; nothing is
     * promoted. */
    uint64_t survivors = 0, garbage = 0;
    for (size_t i = 0; i < s.n; i++) garbage += s.e[i].color == BR_WHITE;
    survivors = s.n - garbage;
    if (gen < 2) atomic_fetch_add_explicit(&g->gen[gen + 1].count, 1, memory_order_relaxed);
    for (int i = 0; i <= gen; i++) shr_store_relaxed(&g->gen[i].count, 0);
    uint64_t t_promoted = shr__now_ns(CLOCK_MONOTONIC);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_PROMOTE, t_promoted - t_scanned, survivors, 0, 0);
    restart_world(h);
    uint64_t t_restarted = shr__now_ns(CLOCK_MONOTONIC);
    r->pause_ns = t_restarted - t_stop;
    r->phase_ns[SHR_GC_PHASE_PROMOTE] = t_promoted - t_scanned;
    r->phase_ns[SHR_GC_PHASE_RESTART] = t_restarted - t_promoted;
    if (shr__gate_enter(h) == 0) {
        r->collected = br_free_white(h, &s, garbage, &r->bytes_freed);
        br_free_dying(h, &b);
        shr__gate_exit(h);
    }
    r->uncollectable = garbage - r->collected;
    r->phase_ns[SHR_GC_PHASE_FREE] = shr__now_ns(CLOCK_MONOTONIC) - t_restarted;
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_FREE, r->phase_ns[SHR_GC_PHASE_FREE], r->collected,
                r->bytes_freed, 0);
    r->total_ns = shr__now_ns(CLOCK_MONOTONIC) - r->total_ns; /* the caller stored its start there */
    record(g, gen, r);
    brs_free(&s);
    broots_free(&b);
    return 0;
}

static int64_t collect(shr_heap_t *h, int gen, int algo, shr_gc_result_t *res, bool automatic)
{
    shr_gc_result_t r;
    memset(&r, 0, sizeof r);
    r.size = sizeof r;
    r.generation = gen;
    r.algorithm = algo & SHR_GC_ALGORITHM_MASK;
    /* Inside a call (would wait for itself), or a callback's. */
    if (shr__gate_depth || collecting || in_callback) return -EDEADLK;
    shr_tctx_t *me = shr__tctx(h);
    if (!me) return -errno;
    uint64_t t_begin = shr__now_ns(CLOCK_MONOTONIC);
    int rc = gc_lock(h, automatic);
    if (rc == -EBUSY) return 0; /* another thread collects: that is enough */
    if (rc) return rc;
    collecting = true;
    unsigned debug = debug_of(h);
    gc_cb_t cbs[SHR_GC_CALLBACKS_MAX];
    size_t ncb = callbacks_copy(h, cbs);
    {
        shr_gc_info_t info = {.generation = gen};
        run_callbacks(h, cbs, ncb, "start", &info);
    }
    gc_global_t *g = shr__gc_global(h);
    uint64_t epoch = atomic_fetch_add_explicit(&g->epoch, 1, memory_order_relaxed) + 1;
    shr__gc_log(h, SHR_GC_EV_BEGIN, gen, 0, (uint64_t)(algo & SHR_GC_ALGORITHM_MASK), automatic, epoch, 0);
    reclaim_dead(h); /* their leases released before anything is examined */

    scratch_t s = {.h = h, .gen = gen};
    uint64_t t_stop = shr__now_ns(CLOCK_MONOTONIC);
    rc = stop_world(h, me, &r);
    uint64_t t_stopped = shr__now_ns(CLOCK_MONOTONIC);
    r.ttsp_ns = t_stopped - t_stop;
    r.phase_ns[SHR_GC_PHASE_STOP] = r.ttsp_ns;
    if (rc) goto out;
    (void)SHR_FAULT(GC_STOPPED); /* a crash point: the world stopped, nothing examined */
    flags_repair(h); /* a set a dead collector half flagged (C3), before any algorithm reads a flag */

    if (r.algorithm == SHR_GC_BACON_RAJAN) {
        r.total_ns = t_begin; /* bacon_rajan records the whole time */
        rc = bacon_rajan(h, gen, &r, t_stop, t_stopped);
        goto out;
    }
    /* Another algorithm empties the rings first (B1: no entry may outlive
     * its object, and this collection may free buffered ones); the roots
     * are dropped, the dying kept for the free (trial deletion's walk skips
     * them; the mark-sweep's trace frees them itself). */
    broots_t br = {.keep_dying = r.algorithm == SHR_GC_TRIAL_DELETION};
    if (br_any(h)) br_flush(h, &br);
    if (r.algorithm == SHR_GC_MARK_SWEEP) {
        r.total_ns = t_begin; /* mark_sweep records the whole time */
        rc = mark_sweep(h, algo, &r, t_stop, t_stopped);
        if (br.nr && shr__gate_enter(h) == 0) { /* the released slots' rings */
            br_free_dying(h, &br);
            shr__gate_exit(h);
        }
        broots_free(&br);
        goto out;
    }
    find_candidates(h, &s, (debug & SHR_GC_DEBUG_STATS) != 0);
    if (s.nomem || build_index(&s) != 0) {
        restart_world(h);
        if ((br.nd || br.nr) && shr__gate_enter(h) == 0) {
            br_free_dying(h, &br);
            shr__gate_exit(h);
        }
        broots_free(&br);
        rc = -ENOMEM; /* nothing changed */
        goto out;
    }
    r.candidates = s.n;
    r.untraversable = s.untraversable;
    uint64_t t_walked = shr__now_ns(CLOCK_MONOTONIC);
    (void)SHR_FAULT(GC_WALK); /* a crash point: candidates found, nothing changed */
    find_garbage(&s);
    (void)SHR_FAULT(GC_MARK); /* a crash point: marked (gc.subtract is inside find_garbage) */
    uint64_t t_marked = shr__now_ns(CLOCK_MONOTONIC);
    r.edges = s.edges;
    r.phase_ns[SHR_GC_PHASE_WALK] = t_walked - t_stopped;
    r.phase_ns[SHR_GC_PHASE_SUBTRACT] = s.t_subtracted - t_walked;
    r.phase_ns[SHR_GC_PHASE_MARK] = t_marked - s.t_subtracted;
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_WALK, r.phase_ns[SHR_GC_PHASE_WALK], r.candidates, 0, 0);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_SUBTRACT, r.phase_ns[SHR_GC_PHASE_SUBTRACT], r.edges, 0, 0);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_MARK, r.phase_ns[SHR_GC_PHASE_MARK], 0, 0, 0);

    /* Promote the survivors: one store each (C1). */
    uint32_t next = gen < 2 ? (uint32_t)gen + 1 : 2;
    uint64_t survivors = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!(s.c[i].state & C_REACHABLE)) continue;
        survivors++;
        if (s.c[i].gen != next) {
            obj_t *o = obj_at(h, s.c[i].off);
            shr_store_relaxed(&o->flags, (shr_load_relaxed(&o->flags) & OBJ_BUFFERED) | OBJ_TRACKED |
                                             next << OBJ_GEN_SHIFT);
            (void)SHR_FAULT(GC_PROMOTE); /* a crash point */
        }
    }
    if (gen < 2) atomic_fetch_add_explicit(&g->gen[gen + 1].count, 1, memory_order_relaxed);
    for (int i = 0; i <= gen; i++) shr_store_relaxed(&g->gen[i].count, 0);
    if (gen == 1) atomic_fetch_add_explicit(&g->long_lived_pending, survivors, memory_order_relaxed);
    if (gen == 2) {
        shr_store_relaxed(&g->long_lived_pending, 0);
        shr_store_relaxed(&g->long_lived_total, survivors);
    }
    young_clear(h, &s); /* after every promotion, before the restart (Y1) */
    uint64_t t_promoted = shr__now_ns(CLOCK_MONOTONIC);
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_PROMOTE, t_promoted - t_marked, survivors, 0, 0);
    restart_world(h);
    uint64_t t_restarted = shr__now_ns(CLOCK_MONOTONIC);
    r.pause_ns = t_restarted - t_stop;
    r.phase_ns[SHR_GC_PHASE_PROMOTE] = t_promoted - t_marked;
    r.phase_ns[SHR_GC_PHASE_RESTART] = t_restarted - t_promoted;

    if (debug & SHR_GC_DEBUG_STATS) {
        fprintf(stderr, "gc: collecting generation %d...\n", gen);
        fprintf(stderr, "gc: objects in each generation: %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s.gencount[0],
                s.gencount[1], s.gencount[2]);
        fprintf(stderr, "gc: objects in permanent generation: %" PRIu64 "\n", s.gencount[3]);
    }

    /* The garbage, with the world running, inside this thread's gate. */
    uint64_t t_free = shr__now_ns(CLOCK_MONOTONIC);
    if ((rc = shr__gate_enter(h)) == 0) {
        if (debug & SHR_GC_DEBUG_COLLECTABLE) debug_garbage(h, &s, "collectable");
        r.collected = (debug & SHR_GC_DEBUG_SAVEALL) ? save_garbage(h, &s) : free_garbage(h, &s, &r.bytes_freed);
        br_free_dying(h, &br);
        shr__gate_exit(h);
    } else {
        r.uncollectable = s.n - survivors; /* left for the next collection */
        if (debug & SHR_GC_DEBUG_UNCOLLECTABLE) debug_garbage(h, &s, "uncollectable");
        rc = 0;
    }
    broots_free(&br);
    uint64_t t_freed = shr__now_ns(CLOCK_MONOTONIC);
    r.phase_ns[SHR_GC_PHASE_FREE] = t_freed - t_free;
    shr__gc_log(h, SHR_GC_EV_PHASE, gen, SHR_GC_PHASE_FREE, r.phase_ns[SHR_GC_PHASE_FREE], r.collected,
                r.bytes_freed, 0);
    r.total_ns = t_freed - t_begin; /* the callbacks and the unlock below add a little */
    record(g, gen, &r);
    if (debug & SHR_GC_DEBUG_STATS)
        fprintf(stderr, "gc: done, %" PRIu64 " unreachable, %" PRIu64 " uncollectable, %.4fs elapsed\n",
                r.collected + r.uncollectable, r.uncollectable,
                (double)(shr__now_ns(CLOCK_MONOTONIC) - t_begin) / 1e9);
out:
    gc_unlock(h);
    scratch_free(&s);
    r.total_ns = shr__now_ns(CLOCK_MONOTONIC) - t_begin;
    if (rc == 0)
        shr__gc_log(h, SHR_GC_EV_END, gen, 0, r.collected, r.uncollectable, r.bytes_freed, r.total_ns);
    {
        shr_gc_info_t info = {.generation = gen, .collected = r.collected, .uncollectable = r.uncollectable};
        run_callbacks(h, cbs, ncb, "stop", &info);
    }
    collecting = false;
    shr__gc_pending = NULL;
    if (res) memcpy((char *)res + sizeof res->size, (char *)&r + sizeof r.size,
                    (res->size < sizeof r ? res->size : sizeof r) - sizeof r.size);
    return rc ? rc : (int64_t)(r.collected + r.uncollectable);
}

/* ---- the public calls ---------------------------------------------------------------------- */

int64_t shr_gc_collect(shr_heap_t *heap, int generation, shr_gc_result_t *res)
{
    if (!heap || generation < 0 || generation > 2) return -EINVAL;
    if (res && (res->size < offsetof(shr_gc_result_t, candidates) || res->size > (1u << 16))) return -EINVAL;
    shr__node_types_register();
    return collect(heap, generation, SHR_GC_TRIAL_DELETION, res, false);
}

int64_t shr_gc_collect_with(shr_heap_t *heap, int algorithm, int generation, shr_gc_result_t *res)
{
    int a = algorithm & SHR_GC_ALGORITHM_MASK;
    if (!heap || generation < 0 || generation > 2 || (algorithm & ~(SHR_GC_ALGORITHM_MASK | SHR_GC_REPAIR)))
        return -EINVAL;
    if (a != SHR_GC_TRIAL_DELETION && a != SHR_GC_BACON_RAJAN && a != SHR_GC_MARK_SWEEP) return -EINVAL;
    if (a != SHR_GC_MARK_SWEEP && (algorithm & SHR_GC_REPAIR)) return -EINVAL;
    if (a == SHR_GC_MARK_SWEEP && generation != 2) return -EINVAL; /* a trace is of the whole heap */
    if (res && (res->size < offsetof(shr_gc_result_t, candidates) || res->size > (1u << 16))) return -EINVAL;
    shr__node_types_register();
    return collect(heap, generation, algorithm, res, false);
}

int shr_gc_set_algorithm(shr_heap_t *heap, int algorithm)
{
    if (!heap || (algorithm != SHR_GC_TRIAL_DELETION && algorithm != SHR_GC_BACON_RAJAN &&
                  algorithm != SHR_GC_MARK_SWEEP))
        return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    uint32_t was = atomic_exchange_explicit(&g->algorithm, (uint32_t)algorithm, memory_order_seq_cst);
    /* What was decref'd before was not buffered: the first collection
     * examines every container. */
    if (algorithm == SHR_GC_BACON_RAJAN && was != SHR_GC_BACON_RAJAN) br_set_all(g);
    return 0;
}

int shr_gc_get_algorithm(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    uint32_t a = shr_load_relaxed(&shr__gc_global(heap)->algorithm);
    return a <= SHR_GC_MARK_SWEEP ? (int)a : SHR_GC_TRIAL_DELETION;
}

const char *shr_gc_algorithm_name(int algorithm)
{
    switch (algorithm) {
    case SHR_GC_TRIAL_DELETION: return "trial";
    case SHR_GC_BACON_RAJAN: return "bacon-rajan";
    case SHR_GC_MARK_SWEEP: return "marksweep";
    default: return NULL;
    }
}

/* ---- the verifier (trace.c; docs/design/gc.md §10) ------------------------------------------ */

int shr_gc_verify(shr_heap_t *heap, shr_gc_verify_result_t *out)
{
    if (!heap || !out || out->size < offsetof(shr_gc_verify_result_t, dangling) || out->size > (1u << 16))
        return -EINVAL;
    if (shr__gate_depth || collecting || in_callback) return -EDEADLK;
    shr__node_types_register();
    shr_tctx_t *me = shr__tctx(heap);
    if (!me) return -errno;
    int rc = gc_lock(heap, false);
    if (rc) return rc;
    collecting = true;
    shr__gc_log(heap, SHR_GC_EV_BEGIN, -1, 0, SHR_GC_EV_OP_VERIFY, 0,
                atomic_load_explicit(&shr__gc_global(heap)->epoch, memory_order_relaxed), 0);
    reclaim_dead(heap); /* their leases released first, as a collection does */
    shr_gc_verify_result_t v;
    memset(&v, 0, sizeof v);
    v.size = sizeof v;
    shr_gc_result_t r;
    memset(&r, 0, sizeof r);
    r.generation = -1;
    trace_t t;
    memset(&t, 0, sizeof t);
    uint64_t t0 = shr__now_ns(CLOCK_MONOTONIC);
    rc = stop_world(heap, me, &r);
    if (rc == 0) {
        rc = shr__trace_run(heap, &t);
        restart_world(heap);
    }
    v.pause_ns = shr__now_ns(CLOCK_MONOTONIC) - t0;
    collecting = false;
    shr__gc_pending = NULL;
    gc_unlock(heap);
    if (rc == 0) {
        for (size_t i = 0; i < t.n; i++) {
            const tent_t *e = &t.e[i];
            v.objects++;
            if (e->state & T_EXTERN) v.external++;
            if (e->state & T_MARKED) {
                v.live++;
            } else {
                v.unreachable++;
                v.unreachable_bytes += e->size;
            }
            if (e->count > e->known) {
                v.above++;
                v.excess += e->count - e->known;
                if (!v.first_above) v.first_above = e->off;
            } else if (e->count < e->known) {
                v.below++;
                if (!v.first_below) v.first_below = e->off;
            }
        }
        v.dangling = t.dangling;
        v.edges = t.edges;
        v.root_refs = t.root_refs;
        v.lease_refs = t.lease_refs;
        v.untraversable = t.untraversable;
        v.incomplete = t.lease_incomplete != 0;
    }
    shr__trace_free(&t);
    if (rc) return rc;
    memcpy((char *)out + sizeof out->size, (char *)&v + sizeof v.size,
           (out->size < sizeof v ? out->size : sizeof v) - sizeof v.size);
    return v.below || v.dangling ? SHR_ECORRUPT : 0;
}

int shr_gc_get_count(shr_heap_t *heap, int64_t count[3])
{
    if (!heap || !count) return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    for (int i = 0; i < 3; i++) count[i] = shr_load_relaxed(&g->gen[i].count);
    return 0;
}

int shr_gc_get_threshold(shr_heap_t *heap, uint32_t threshold[3])
{
    if (!heap || !threshold) return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    for (int i = 0; i < 3; i++) threshold[i] = shr_load_relaxed(&g->gen[i].threshold);
    return 0;
}

int shr_gc_set_threshold(shr_heap_t *heap, const uint32_t threshold[3])
{
    if (!heap || !threshold) return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    for (int i = 0; i < 3; i++) shr_store_relaxed(&g->gen[i].threshold, threshold[i]);
    return 0;
}

int shr_gc_get_stats(shr_heap_t *heap, shr_gc_stats_t *out)
{
    if (!heap || !out) return -EINVAL;
    gc_global_t *g = shr__gc_global(heap);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 3; i++) {
        gc_gen_t *G = &g->gen[i];
        shr_gc_gen_stats_t *o = &out->gen[i];
        o->collections = shr_load_relaxed(&G->collections);
        o->collected = shr_load_relaxed(&G->collected);
        o->uncollectable = shr_load_relaxed(&G->uncollectable);
        o->pause_ns_total = shr_load_relaxed(&G->pause_ns_total);
        o->pause_ns_max = shr_load_relaxed(&G->pause_ns_max);
        o->ttsp_ns_max = shr_load_relaxed(&G->ttsp_ns_max);
    }
    for (int i = 0; i < 3; i++) {
        gc_meas_t *M = &g->meas[i];
        shr_gc_gen_stats_t *o = &out->gen[i];
        for (int p = 0; p < SHR_GC_NPHASES; p++) o->phase_ns[p] = shr_load_relaxed(&M->phase_ns[p]);
        o->candidates = shr_load_relaxed(&M->candidates);
        o->edges = shr_load_relaxed(&M->edges);
        o->bytes_freed = shr_load_relaxed(&M->bytes_freed);
        o->total_ns = shr_load_relaxed(&M->total_ns);
        for (int b = 0; b < SHR_GC_HIST_BUCKETS; b++) o->pause_hist[b] = shr_load_relaxed(&M->hist[b]);
    }
    out->auto_failures = shr_load_relaxed(&g->auto_failures);
    out->long_lived_total = shr_load_relaxed(&g->long_lived_total);
    out->long_lived_pending = shr_load_relaxed(&g->long_lived_pending);
    out->window_start_ns = shr_load_relaxed(&g->window_start_ns);
    out->resets = shr_load_relaxed(&g->resets);
    return 0;
}

int shr_gc_stats_reset(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    if (shr__gate_depth || collecting || in_callback) return -EDEADLK;
    int rc = gc_lock(heap, false); /* no collection is between its pause and its record */
    if (rc) return rc;
    gc_global_t *g = shr__gc_global(heap);
    for (int i = 0; i < 3; i++) {
        gc_gen_t *G = &g->gen[i];
        shr_store_relaxed(&G->collections, 0);
        shr_store_relaxed(&G->collected, 0);
        shr_store_relaxed(&G->uncollectable, 0);
        shr_store_relaxed(&G->pause_ns_total, 0);
        shr_store_relaxed(&G->pause_ns_max, 0);
        shr_store_relaxed(&G->ttsp_ns_max, 0);
        gc_meas_t *M = &g->meas[i];
        for (int p = 0; p < SHR_GC_NPHASES; p++) shr_store_relaxed(&M->phase_ns[p], 0);
        shr_store_relaxed(&M->candidates, 0);
        shr_store_relaxed(&M->edges, 0);
        shr_store_relaxed(&M->bytes_freed, 0);
        shr_store_relaxed(&M->total_ns, 0);
        for (int b = 0; b < SHR_GC_HIST_BUCKETS; b++) shr_store_relaxed(&M->hist[b], 0);
    }
    shr_store_relaxed(&g->auto_failures, 0);
    shr_store_relaxed(&g->window_start_ns, shr__now_ns(CLOCK_REALTIME));
    atomic_fetch_add_explicit(&g->resets, 1, memory_order_relaxed);
    shr__gc_log(heap, SHR_GC_EV_RESET, -1, 0, 0, 0, 0, 0);
    gc_unlock(heap);
    return 0;
}

const char *shr_gc_phase_name(int phase)
{
    static const char *const names[SHR_GC_NPHASES] = {"stop", "walk", "subtract", "mark", "promote", "restart",
                                                      "free"};
    return phase >= 0 && phase < SHR_GC_NPHASES ? names[phase] : NULL;
}

/* ---- the rest of CPython's module ------------------------------------------------------------ */

int shr_gc_enable(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    gc_priv_t *p = priv_get(heap, false);
    if (p) atomic_store_explicit(&p->disabled, false, memory_order_relaxed);
    return 0;
}

int shr_gc_disable(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    gc_priv_t *p = priv_get(heap, true);
    if (!p) return -ENOMEM;
    atomic_store_explicit(&p->disabled, true, memory_order_relaxed);
    return 0;
}

int shr_gc_isenabled(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    gc_priv_t *p = priv_get(heap, false);
    return !(p && atomic_load_explicit(&p->disabled, memory_order_relaxed));
}

int shr_gc_set_debug(shr_heap_t *heap, unsigned flags)
{
    if (!heap || (flags & ~(SHR_GC_DEBUG_STATS | SHR_GC_DEBUG_LEAK))) return -EINVAL;
    gc_priv_t *p = priv_get(heap, flags != 0);
    if (!p) return flags ? -ENOMEM : 0;
    atomic_store_explicit(&p->debug, flags, memory_order_relaxed);
    return 0;
}

int shr_gc_get_debug(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    return (int)debug_of(heap);
}

int64_t shr_gc_garbage_take(shr_heap_t *heap, shr_ref_t *out, size_t cap)
{
    if (!heap || (!out && cap)) return -EINVAL;
    gc_priv_t *p = priv_get(heap, false);
    if (!p) return 0;
    pthread_mutex_lock(&p->mu);
    size_t n = p->ngarbage;
    if (cap) {
        if (n > cap) n = cap;
        for (size_t i = 0; i < n; i++) out[i].off = p->garbage[i];
        memmove(p->garbage, p->garbage + n, (p->ngarbage - n) * sizeof *p->garbage);
        p->ngarbage -= n;
    }
    pthread_mutex_unlock(&p->mu);
    return (int64_t)n;
}

int shr_gc_callback_add(shr_heap_t *heap, shr_gc_callback_fn fn, void *arg)
{
    if (!heap || !fn) return -EINVAL;
    gc_priv_t *p = priv_get(heap, true);
    if (!p) return -ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ncb; i++)
        if (p->cb[i].fn == fn && p->cb[i].arg == arg) rc = -EEXIST;
    if (rc == 0 && p->ncb == SHR_GC_CALLBACKS_MAX) rc = -ENOSPC;
    if (rc == 0) p->cb[p->ncb++] = (gc_cb_t){fn, arg};
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int shr_gc_callback_remove(shr_heap_t *heap, shr_gc_callback_fn fn, void *arg)
{
    if (!heap || !fn) return -EINVAL;
    gc_priv_t *p = priv_get(heap, false);
    if (!p) return -ENOENT;
    int rc = -ENOENT;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ncb; i++)
        if (p->cb[i].fn == fn && p->cb[i].arg == arg) {
            memmove(&p->cb[i], &p->cb[i + 1], (p->ncb - i - 1) * sizeof *p->cb);
            p->ncb--;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static obj_t *held_obj(shr_heap_t *h, shr_ref_t r)
{
    if (r.off == 0 || r.off >= h->capacity || (r.off & (SHR_ALIGNMENT - 1))) return NULL;
    return shr__lease_held(h, r.off) ? obj_at(h, r.off) : NULL;
}

int shr_gc_is_tracked(shr_heap_t *heap, shr_ref_t ref)
{
    if (!heap) return -EINVAL;
    obj_t *o = held_obj(heap, ref);
    if (!o) return -EINVAL;
    return (shr_load_relaxed(&o->flags) & OBJ_TRACKED) != 0;
}

/* ---- with the world stopped: freeze and the snapshots ----------------------------------------
 *
 * Each runs fn with the collector's mutex held and the world stopped, as a
 * collection does (dead processes reclaimed first). A snapshot increfs what
 * it found while the world is stopped (nothing can be freed then), and
 * turns the increfs into leases after the restart. */
typedef struct snap {
    uint64_t *off;
    size_t n, cap;
    bool nomem;
    int gen;          /* get_objects: -1 all, or 0..3 */
    uint64_t target;  /* get_referents: the object; get_referrers: the referent */
    bool hit;
    int64_t moved;    /* freeze, unfreeze, the freeze count */
    bool hold;        /* a snapshot: enter the gate before the restart (below) */
    bool gated;       /* ... and it was entered: snap_finish exits it */
} snap_t;

static int64_t stopped_op(shr_heap_t *h, void (*fn)(shr_heap_t *, snap_t *), snap_t *s)
{
    if (shr__gate_depth || collecting || in_callback) return -EDEADLK;
    shr__node_types_register();
    shr_tctx_t *me = shr__tctx(h);
    if (!me) return -errno;
    int rc = gc_lock(h, false);
    if (rc) return rc;
    collecting = true;
    shr__gc_log(h, SHR_GC_EV_BEGIN, -1, 0, SHR_GC_EV_OP_STOPPED, 0,
                atomic_load_explicit(&shr__gc_global(h)->epoch, memory_order_relaxed), 0);
    reclaim_dead(h);
    shr_gc_result_t r;
    memset(&r, 0, sizeof r);
    r.generation = -1;
    rc = stop_world(h, me, &r);
    if (rc == 0) {
        fn(h, s);
        /* A snapshot's increfs are references in flight until snap_finish
         * makes them leases: this thread enters its gate before the restart
         * (its own request lets it in), so that no other collection stops
         * the world between (a mark-sweep would read them as counts nobody
         * holds). */
        if (s->hold && shr__gate_enter(h) == 0) s->gated = true;
        restart_world(h);
    }
    collecting = false;
    shr__gc_pending = NULL;
    gc_unlock(h);
    return rc;
}

static void snap_push(shr_heap_t *h, snap_t *s, uint64_t off)
{
    if (s->nomem) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *p = realloc(s->off, cap * sizeof *p);
        if (!p) {
            s->nomem = true;
            return;
        }
        s->off = p;
        s->cap = cap;
    }
    shr__incref(obj_at(h, off));
    s->off[s->n++] = off;
}

/* Is the block at off a live tracked object, not garbage? Its flags. */
static bool walk_live(shr_heap_t *h, uint64_t off, uint32_t *flags)
{
    obj_t *o = obj_at(h, off);
    uint32_t f = shr_load_relaxed(&o->flags);
    *flags = f;
    uint64_t rc = shr_load_relaxed(&o->refcnt);
    return (f & OBJ_TRACKED) && !(f & OBJ_GARBAGE) && rc != 0 && rc != OBJ_DYING;
}

/* The increfs of a snapshot become leases: out[0..min(n, cap)) are handed
 * out, the rest released. The count, or -ENOMEM (nothing handed out). */
static int64_t snap_finish(shr_heap_t *h, int64_t rc, snap_t *s, shr_ref_t *out, size_t cap)
{
    if (rc == 0 && s->nomem) rc = -ENOMEM;
    if (s->n == 0) {
        if (s->gated) shr__gate_exit(h);
        free(s->off);
        return rc ? rc : 0;
    }
    int g = s->gated ? 0 : shr__gate_enter(h);
    if (g) { /* a collector of another process holds the world: the counts stay too high (a leak, never a free) */
        free(s->off);
        return g;
    }
    size_t give = rc == 0 ? (s->n < cap ? s->n : cap) : 0, i;
    for (i = 0; i < give; i++)
        if (shr__lease_add(h, s->off[i]) != 0) break;
    if (i < give) { /* take back what was handed out; every incref is dropped below */
        for (size_t j = 0; j < i; j++) shr__lease_remove(h, s->off[j]);
        give = 0;
        rc = -ENOMEM;
    }
    for (size_t j = give; j < s->n; j++) shr__decref(h, obj_at(h, s->off[j]));
    for (size_t j = 0; j < give; j++) out[j].off = s->off[j];
    shr__gate_exit(h);
    int64_t n = (int64_t)s->n;
    free(s->off);
    return rc ? rc : n;
}

static void visit_referent(shr_heap_t *h, shr_off_t child, void *arg)
{
    if (child) snap_push(h, arg, child);
}

static void referents_fn(shr_heap_t *h, snap_t *s)
{
    obj_t *o = obj_at(h, s->target);
    const gc_type_ops_t *ops = shr__type_ops_any(h, o->type);
    if (ops && ops->traverse) ops->traverse(h, o, visit_referent, s);
}

int64_t shr_gc_get_referents(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out, size_t cap)
{
    if (!heap || (!out && cap)) return -EINVAL;
    obj_t *o = held_obj(heap, ref);
    if (!o) return -EINVAL;
    snap_t s = {.target = ref.off, .hold = true};
    return snap_finish(heap, stopped_op(heap, referents_fn, &s), &s, out, cap);
}

static void objects_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    snap_t *s = arg;
    uint32_t f;
    if (walk_live(h, off, &f) && (s->gen < 0 || (int)obj_gen(f) == s->gen)) snap_push(h, s, off);
}

static void objects_fn(shr_heap_t *h, snap_t *s) { shr__obj_walk(h, objects_visit, s); }

int64_t shr_gc_get_objects(shr_heap_t *heap, int generation, shr_ref_t *out, size_t cap)
{
    if (!heap || generation < -1 || generation > 3 || (!out && cap)) return -EINVAL;
    snap_t s = {.gen = generation, .hold = true};
    return snap_finish(heap, stopped_op(heap, objects_fn, &s), &s, out, cap);
}

static void visit_refers(shr_heap_t *h, shr_off_t child, void *arg)
{
    (void)h;
    snap_t *s = arg;
    if (child == s->target) s->hit = true;
}

static void referrers_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    snap_t *s = arg;
    uint32_t f;
    if (!walk_live(h, off, &f)) return;
    obj_t *o = obj_at(h, off);
    const gc_type_ops_t *ops = shr__type_ops_any(h, o->type);
    if (!ops || !ops->traverse) return;
    s->hit = false;
    ops->traverse(h, o, visit_refers, s);
    if (s->hit) snap_push(h, s, off);
}

static void referrers_fn(shr_heap_t *h, snap_t *s) { shr__obj_walk(h, referrers_visit, s); }

int64_t shr_gc_get_referrers(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out, size_t cap)
{
    if (!heap || (!out && cap)) return -EINVAL;
    if (!held_obj(heap, ref)) return -EINVAL;
    snap_t s = {.target = ref.off, .hold = true};
    return snap_finish(heap, stopped_op(heap, referrers_fn, &s), &s, out, cap);
}

/* freeze: generations 0..2 to 3; unfreeze (s->gen == 2): 3 to 2; count
 * (s->gen == -1): the frozen. One store of the flags each (C1). */
static void freeze_visit(shr_heap_t *h, uint64_t off, uint32_t size, void *arg)
{
    (void)size;
    snap_t *s = arg;
    uint32_t f;
    if (!walk_live(h, off, &f)) return;
    uint32_t gen = obj_gen(f);
    if (s->gen == -1) {
        if (gen == 3) s->moved++;
    } else if (s->gen == 3 ? gen < 3 : gen == 3) {
        shr_store_relaxed(&obj_at(h, off)->flags, (f & OBJ_BUFFERED) | OBJ_TRACKED | (uint32_t)s->gen << OBJ_GEN_SHIFT);
        s->moved++;
    }
}

static void freeze_fn(shr_heap_t *h, snap_t *s)
{
    shr__obj_walk(h, freeze_visit, s);
    if (s->gen == 3) { /* as CPython: the generations' counts start again */
        gc_global_t *g = shr__gc_global(h);
        for (int i = 0; i < 3; i++) shr_store_relaxed(&g->gen[i].count, 0);
    }
}

static int64_t freeze_op(shr_heap_t *heap, int gen)
{
    if (!heap) return -EINVAL;
    snap_t s = {.gen = gen};
    int64_t rc = stopped_op(heap, freeze_fn, &s);
    if (rc == 0 && gen != -1)
        shr__gc_log(heap, gen == 3 ? SHR_GC_EV_FREEZE : SHR_GC_EV_UNFREEZE, -1, 0, (uint64_t)s.moved, 0, 0, 0);
    return rc ? rc : s.moved;
}

int64_t shr_gc_freeze(shr_heap_t *heap) { return freeze_op(heap, 3); }
int64_t shr_gc_unfreeze(shr_heap_t *heap) { return freeze_op(heap, 2); }
int64_t shr_gc_get_freeze_count(shr_heap_t *heap) { return freeze_op(heap, -1); }
