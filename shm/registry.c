/* Registry of attached processes and threads
 *
 * Two tables after the header, sized by the heap's limits: max_procs process
 * entries and max_threads thread slots (docs/design/shm.md §6).
 *
 *   process entry   FREE -> LIVE   claimed by shr__proc_register: this
 *                                  process's anchor thread locks `life` and
 *                                  holds it until detach
 *                   LIVE -> FREE   shr__proc_unregister (clean detach), or a
 *                                  sweep that finds `life` owner-dead
 *   thread slot     FREE -> LIVE   a thread's first use of the heap
 *                   LIVE -> FREE   its TLS destructor, close, or the reclaim
 *                                  of its process
 *
 *                   LIVE -> RECLAIM -> FREE   a reclaim step finds it dead,
 *                                  releases it outside the registry lock
 *                                  ("Reclaim in steps" below)
 *
 * Invariants (under the registry lock):
 *   R1  an entry is LIVE only while its anchor holds `life` or its process
 *       has died and no sweep or reclaim step has taken it yet; RECLAIM only
 *       while its process is dead
 *   R2  a LIVE thread slot names a LIVE or RECLAIM process entry of the same
 *       gen, or is reclaimed by the next sweep
 *   R3  procs[i].nthreads == number of LIVE slots with proc == i
 *   R4  every state is FREE, LIVE or (entries) RECLAIM; entries at or above
 *       the tables' high water marks (procs_hwm, threads_hwm <= the limits)
 *       are FREE
 *   R5  a FREE entry's `life` is unlocked
 *   R6  the thread slots below threads_hwm, and their layers' thread
 *       regions, are committed (a new segment commits none; a slot's first
 *       claim commits it before raising the mark, so a crash between the
 *       two only makes the next claimant commit it again); so are the
 *       process entries below procs_hwm, each with its `life` initialised
 *       (robust, process-shared) at its first claim, before the mark is
 *       raised, and the layers' per-process regions with them (a layer
 *       initialises what it needs there in its proc_claim hook).
 *       Nothing reads an entry or a slot above its mark but the checkers,
 *       which skip a page that is not committed (shr__seg_resident)
 * shr__registry_check verifies them all; a sweep reclaims what breaks R2 and
 * entries of an unknown state (R4), so that damage is healed, not followed.
 *
 * Claims do not trust what a FREE entry holds: every field the registry
 * relies on is written afresh (gen is bumped whatever its value), and
 * `life` is re-initialised before the anchor takes it.
 *
 * Commit points (fault points in include/sharena/fault.h):
 *   registry.proc.claim   an entry's fields written, anchor holding `life`,
 *                         before `state = LIVE`: a crash leaves it FREE
 *   registry.slot.claim   a slot's fields written, before `state = LIVE`
 *   registry.reclaim      a dead entry's slots and layer state released,
 *                         before `state = FREE`: the next sweep or step
 *                         redoes it (a step runs it outside the lock, the
 *                         entry RECLAIM; "fail" gives the entry up)
 *   registry.unlink       the last close decided to unlink the name
 * Every step is re-runnable, so a holder of the registry lock that dies
 * anywhere is repaired by a recount (R3) and a sweep (registry_repair).
 *
 * Why an anchor thread: liveness must survive pid reuse, zombies and exec.
 * A robust mutex is released by the kernel when its owner thread ends for any
 * reason (exit, kill, exec), before the process becomes a zombie, and no pid
 * is compared later. The owner must live as long as the attachment, which no
 * user thread promises, hence a thread that does nothing but hold the locks.
 * One anchor serves every heap the process attaches (up to ANCHOR_MAX_HELD,
 * below the kernel's robust-list walk limit; then another anchor starts), so
 * a thousand attached heaps cost one thread. Its stack is sized for the
 * process's static TLS (anchor_stack_size). See docs/design/shm.md §6.1.
 *
 * Fork: the child inherits the handle and this thread's context but no
 * anchor. The atfork child handler bumps fork_epoch, forgets the anchors and
 * clears the thread's contexts; the child's first use of the heap registers
 * a new entry, held by an anchor of its own.
 *
 * Reclaim hooks of the layers run under the registry lock, or for the dead
 * outside it in a reclaim step, and must not claim a thread slot (they free
 * memory as remote frees).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault.h"
#include "shm.h"

_Thread_local shr_tctx_t *shr__tl_ctx __attribute__((tls_model("initial-exec")));
static _Thread_local shr_tctx_t *tl_ctx_list; /* every context of this thread */

/* Installed again by every attach (the same static tables, maybe from several
 * threads at once): atomic pointers, written only when they change. */
static _Atomic(const shr__layer_hooks_t *) layer_hooks[SHR_NLAYERS];
static const shr__layer_hooks_t no_hooks;

static inline const shr__layer_hooks_t *hooks_of(int layer)
{
    const shr__layer_hooks_t *k = shr_load_acquire(&layer_hooks[layer]);
    return k ? k : &no_hooks;
}
static pthread_mutex_t proc_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t fork_epoch = 1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t tctx_key;
static _Thread_local int32_t tl_tid;

void shr__registry_set_hooks(int layer, const shr__layer_hooks_t *hooks)
{
    if (shr_load_relaxed(&layer_hooks[layer]) != hooks) shr_store_release(&layer_hooks[layer], hooks);
}

/* ---- anchors: the threads that hold this process's `life` mutexes ------ */

/* The kernel walks at most 2048 entries of a dead thread's robust list
 * (ROBUST_LIST_LIMIT): an anchor holds at most half that many. */
#define ANCHOR_MAX_HELD 1024

enum anchor_state { ANCHOR_STARTING, ANCHOR_RUNNING, ANCHOR_FAILED };
enum anchor_op { ANCHOR_IDLE, ANCHOR_TAKE, ANCHOR_GIVE };

/* One anchor thread. Requests are made under proc_mutex, one at a time:
 * the requester writes op and target, waits for op to return to IDLE and
 * reads result. Everything but `nheld` and `next` is under `mu`. */
typedef struct shr__anchor {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;                  /* enum anchor_state */
    int op;                     /* enum anchor_op */
    pthread_mutex_t *target;
    int result;                 /* 0 or a pthread error */
    uint32_t nheld;             /* `life` mutexes held; under proc_mutex */
    struct shr__anchor *next;   /* under proc_mutex */
} shr__anchor_t;

static shr__anchor_t *anchors; /* this process's anchors; under proc_mutex */

/* ---- process-wide setup --------------------------------------------- */

static void atfork_prepare(void)
{
    pthread_mutex_lock(&proc_mutex);
    shr__private_fork_prepare(); /* private.c: after proc_mutex, by rank */
}
static void atfork_parent(void)
{
    shr__private_fork_parent();
    pthread_mutex_unlock(&proc_mutex);
}
static void atfork_child(void)
{
    shr__private_fork_child();
    /* Only the forking thread exists here. Its contexts name the parent's
     * slots, and the anchors are the parent's threads: forget them (their
     * memory is leaked in the child, once). */
    atomic_fetch_add(&fork_epoch, 1);
    shr__tl_ctx = NULL;
    tl_ctx_list = NULL;
    tl_tid = 0;
    anchors = NULL;
    pthread_mutex_init(&proc_mutex, NULL);
}

static void tctx_destructor(void *unused);
static int registry_repair(shr_heap_t *h);
int32_t shr__gettid(void)
{
    if (shr_unlikely(tl_tid == 0)) tl_tid = (int32_t)syscall(SYS_gettid);
    return tl_tid;
}

static void init_once(void)
{
    shr__lock_set_repair(SHR_LOCK_REGISTRY, registry_repair);
    pthread_key_create(&tctx_key, tctx_destructor);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static uint64_t read_start_time(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* The command name may hold spaces and ')': parse after the last ')'.
     * Field 3 (state) follows it; starttime is field 22. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* An invariant of the list above, checked where an entry changes
 * (SHR_DEBUG >= 2); the message names it. */
#define REG_ASSERT(inv, c)                                                           \
    do {                                                                             \
        if (SHR_DEBUG >= 2 && shr_unlikely(!(c))) SHR_PANIC("registry %s: %s", inv, #c); \
    } while (0)

static inline uint32_t procs_hwm(const shr_heap_t *h) { return shr__procs_hwm(h); }

static inline uint32_t threads_hwm(const shr_heap_t *h)
{
    uint32_t n = shr_load_acquire(&h->hdr->threads_hwm);
    return n < h->max_threads ? n : h->max_threads;
}

/* ---- liveness -------------------------------------------------------- */

static bool is_own_entry(const shr_heap_t *h, uint32_t proc);

/* Probe a LIVE entry's lifetime mutex. 1 live, 0 dead. Leaves the mutex as it
 * found it (unlocked and consistent when dead). */
static int probe_life(pthread_mutex_t *life)
{
    if (!shr__mutex_sane(life)) return 1; /* damaged: never declare a process dead on it */
    int rc = pthread_mutex_trylock(life);
    switch (rc) {
    case EBUSY:
        return 1;
    case EOWNERDEAD:
        pthread_mutex_consistent(life);
        pthread_mutex_unlock(life);
        return 0;
    case 0:
        /* LIVE but nobody holds it: the owner unlocked and died before it
         * could mark the entry FREE. */
        pthread_mutex_unlock(life);
        return 0;
    case ENOTRECOVERABLE:
        /* Only a buggy peer can do this; nobody waits on `life` but
         * trylocks, so re-initialising it is safe. */
        shr__robust_mutex_init(life);
        return 0;
    default:
        return 1; /* unknown: never declare a live process dead */
    }
}

int shr__proc_alive(const shr_heap_t *h, uint32_t proc)
{
    if (proc >= procs_hwm(h)) return 0; /* never claimed (its page may be a hole: R6) */
    /* A private heap's `life` mutexes are never locked (private.c): its own
     * entry is alive without a probe, which would declare it dead; any other
     * (a fork parent's, seen from the child) is dead, as the probe says. */
    if ((h->flags & SHR_HEAP_PRIVATE) && is_own_entry(h, proc)) return 1;
    return probe_life(&h->procs[proc].life);
}

bool shr__slot_gone(const shr_heap_t *h, uint32_t slot, uint32_t gen)
{
    if (slot >= h->max_threads) return true;
    thread_slot_t *ts = &h->threads[slot];
    if (shr_load_acquire(&ts->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&ts->gen) != gen)
        return true;
    uint32_t p = ts->proc;
    if (p >= procs_hwm(h)) return true;
    proc_entry_t *pe = &h->procs[p];
    if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&pe->gen) != ts->proc_gen)
        return true;
    if ((h->flags & SHR_HEAP_PRIVATE) && is_own_entry(h, p)) return false; /* as shr__proc_alive */
    return !probe_life(&pe->life);
}

/* ---- anchor threads -------------------------------------------------- */

/* Take `life` for good. Only the claimer (under the registry lock) asks, for
 * a FREE entry, so nobody should hold it; a prober's trylock holds it for a
 * moment at most, hence a few tries. */
static int anchor_take(pthread_mutex_t *life)
{
    for (int i = 0; i < 100; i++) {
        int rc = pthread_mutex_trylock(life);
        if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(life);
        if (rc != EBUSY) return rc;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return EBUSY;
}

static void *anchor_main(void *arg)
{
    shr__anchor_t *a = arg;
    pthread_mutex_lock(&a->mu);
    a->state = ANCHOR_RUNNING;
    pthread_cond_broadcast(&a->cv);
    for (;;) {
        while (a->op == ANCHOR_IDLE) pthread_cond_wait(&a->cv, &a->mu);
        if (a->op == ANCHOR_TAKE) a->result = anchor_take(a->target);
        else a->result = pthread_mutex_unlock(a->target);
        a->op = ANCHOR_IDLE;
        pthread_cond_broadcast(&a->cv);
    }
    return NULL; /* not reached: an anchor lives as long as its process */
}

/* Sum of the PT_TLS segments of every loaded object: glibc carves the static
 * TLS of a new thread out of the top of its stack, so a stack sized for the
 * anchor's own needs alone fails to start (EINVAL) in a program with large
 * TLS, an interpreter with its extension modules for one. */
static int add_tls_size(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    size_t *total = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS) *total += ph->p_memsz + (ph->p_align ? ph->p_align : 1);
    }
    return 0;
}

/* The anchor's stack: what it uses itself (ANCHOR_STACK) plus the process's
 * static TLS and glibc's surplus for libraries dlopen'ed later
 * (ANCHOR_TLS_SLACK), rounded to pages. Only the touched pages are ever
 * committed, so the slack costs address space, not memory. */
#define ANCHOR_STACK ((size_t)64 << 10)
#define ANCHOR_TLS_SLACK ((size_t)64 << 10)

static size_t anchor_stack_size(void)
{
    size_t tls = 0;
    dl_iterate_phdr(add_tls_size, &tls);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (size_t)PTHREAD_STACK_MIN + ANCHOR_STACK + tls + ANCHOR_TLS_SLACK;
    return (n + page - 1) / page * page;
}

static int anchor_spawn(shr__anchor_t *a, size_t stack)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc) return rc;
    if (stack) rc = pthread_attr_setstacksize(&attr, stack);
    if (rc == 0) rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0) {
        /* The anchor must never run signal handlers: block everything in it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&a->thread, &attr, anchor_main, a);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return rc;
}

/* An anchor with room for one more `life`, started if need be. proc_mutex
 * held. NULL with *rc set when no thread can be started. */
static shr__anchor_t *anchor_get(int *rc)
{
    for (shr__anchor_t *a = anchors; a; a = a->next)
        if (a->nheld < ANCHOR_MAX_HELD) return a;
    shr__anchor_t *a = calloc(1, sizeof *a);
    if (!a) {
        *rc = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->state = ANCHOR_STARTING;
    int err = anchor_spawn(a, anchor_stack_size());
    /* A stack still too small for this libc's TLS layout: the default size. */
    if (err == EINVAL) err = anchor_spawn(a, 0);
    if (err) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        errno = err;
        *rc = SHR_ESPAWN;
        return NULL;
    }
    pthread_mutex_lock(&a->mu);
    while (a->state == ANCHOR_STARTING) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    a->next = anchors;
    anchors = a;
    return a;
}

/* Ask anchor a to take or give back mu; returns its pthread result. The
 * anchor never blocks on mu, so neither does this. proc_mutex held. */
static int anchor_request(shr__anchor_t *a, int op, pthread_mutex_t *mu)
{
    pthread_mutex_lock(&a->mu);
    SHR_ASSERT(a->op == ANCHOR_IDLE);
    a->target = mu;
    a->op = op;
    pthread_cond_broadcast(&a->cv);
    while (a->op != ANCHOR_IDLE) pthread_cond_wait(&a->cv, &a->mu);
    int rc = a->result;
    pthread_mutex_unlock(&a->mu);
    if (rc == 0) {
        if (op == ANCHOR_TAKE) a->nheld++;
        else a->nheld--;
    }
    return rc;
}

/* Make h's entry `life` held by an anchor. The entry is FREE (R5 says
 * `life` is unlocked): re-initialise it first, whatever a dead claimer or
 * damage left in it. Registry lock and proc_mutex held. */
static int anchor_hold(shr_heap_t *h, proc_entry_t *pe)
{
    int rc = 0;
    shr__anchor_t *a = anchor_get(&rc);
    if (!a) return rc;
    bool died;
    if (shr__mutex_holder(&pe->life, &died) == 0 && !died &&
        (rc = shr__robust_mutex_init(&pe->life)) != 0)
        return rc;
    int err = anchor_request(a, ANCHOR_TAKE, &pe->life);
    if (err != 0) {
        /* Held for longer than any probe holds it, or unusable: nobody can
         * legitimately own a FREE entry's `life` (R5). */
        if ((rc = shr__robust_mutex_init(&pe->life)) != 0) return rc;
        err = anchor_request(a, ANCHOR_TAKE, &pe->life);
    }
    if (err != 0) return SHR_ELOCK;
    h->anchor = a;
    return 0;
}

static int anchor_release(shr_heap_t *h)
{
    if (!h->anchor) return 0;
    int rc = anchor_request(h->anchor, ANCHOR_GIVE, &h->procs[h->proc].life);
    h->anchor = NULL;
    return rc;
}

/* ---- reclaim --------------------------------------------------------- */

/* The registry's part of a slot's release, after the layers' hooks ran:
 * the free hint, the process's count (R3) and state = FREE. Registry lock
 * held. */
static void release_slot(shr_heap_t *h, uint32_t slot)
{
    thread_slot_t *ts = &h->threads[slot];
    REG_ASSERT("R4", slot < threads_hwm(h));
    if (slot < shr_load_relaxed(&h->hdr->threads_free_hint)) shr_store_relaxed(&h->hdr->threads_free_hint, slot);
    /* R3: only a LIVE slot of that very attachment was counted. */
    proc_entry_t *pe = ts->proc < h->max_procs ? &h->procs[ts->proc] : NULL;
    if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE && pe && pe->nthreads > 0 &&
        shr_load_relaxed(&pe->gen) == ts->proc_gen)
        pe->nthreads--;
    shr_store_relaxed(&ts->in_heap, 0);
    shr_store_release(&ts->state, SHR_ENTRY_FREE);
}

static void slot_hooks(shr_heap_t *h, uint32_t slot, bool dead)
{
    for (int l = SHR_NLAYERS - 1; l >= 0; l--)
        if (hooks_of(l)->thread_release) hooks_of(l)->thread_release(h, slot, dead);
}

static void proc_hooks(shr_heap_t *h, uint32_t proc, bool dead)
{
    for (int l = SHR_NLAYERS - 1; l >= 0; l--)
        if (hooks_of(l)->proc_release) hooks_of(l)->proc_release(h, proc, dead);
}

static void release_thread(shr_heap_t *h, uint32_t slot, bool dead)
{
    slot_hooks(h, slot, dead);
    release_slot(h, slot);
}

/* Whether slot s is a LIVE slot of the attachment (proc, gen). */
static bool slot_of(const shr_heap_t *h, uint32_t s, uint32_t proc, uint32_t gen)
{
    const thread_slot_t *ts = &h->threads[s];
    return shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE && ts->proc == proc && ts->proc_gen == gen;
}

/* Release every thread slot of process entry `proc`, then the layers'
 * per-process state. The entry itself is marked FREE by the caller. Returns
 * the number of thread slots released. Registry lock held. */
static int release_proc(shr_heap_t *h, uint32_t proc, bool dead)
{
    uint32_t gen = shr_load_relaxed(&h->procs[proc].gen);
    uint32_t hwm = threads_hwm(h);
    int n = 0;
    for (uint32_t s = 0; s < hwm; s++)
        if (slot_of(h, s, proc, gen)) {
            release_thread(h, s, dead);
            n++;
        }
    proc_hooks(h, proc, dead);
    h->procs[proc].nthreads = 0; /* R3: none of its slots is LIVE any more */
    return n;
}

static bool is_own_entry(const shr_heap_t *h, uint32_t proc)
{
    return h->registered && h->fork_epoch == shr_load_relaxed(&fork_epoch) && h->proc == proc;
}

bool shr__proc_registered_here(const shr_heap_t *h) { return is_own_entry(h, h->proc); }

/* ---- Reclaim in steps ---------------------------------------------------
 *
 * Releasing a dead process costs what it held (its pools, its leases), and
 * in a process that has not touched those pages yet, the page faults of
 * reading them. Done under the registry lock, by whoever attached next, it
 * made that attach pay for every death since the last one, and stalled
 * every other attach and slot claim meanwhile (docs/design/shm.md §6.6). So:
 *
 *   - a claim does not reclaim first: an attach takes a FREE entry, a
 *     thread a FREE slot, and only when none is left does it reclaim the
 *     dead under the lock, one process at a time until one is FREE
 *     (reclaim_one_locked); an allocation that finds the heap full reclaims
 *     them all at once (shr__registry_sweep_locked);
 *   - everywhere else the dead are reclaimed in steps, one dead process per
 *     step: SHR__RECLAIM_STEPS at each thread's first use of a heap (a slot
 *     claim: the allocator's slowest path) and at each close, all of them in
 *     shr_heap_recover, shr_heap_stat, shr_heap_check and shr_heap_collect;
 *     an attach takes none (a tool that attaches to read statistics pays
 *     nothing for the dead; in a fresh process one dead thread's reclaim,
 *     which faults in the pool headers of the arenas it touched, costs
 *     about what an attach costs);
 *   - a step holds the registry lock twice, briefly: to pick a dead process
 *     and mark its entry RECLAIM with itself as the reclaimer (the commit
 *     point of the claim), and to mark its slots and entry FREE at the end
 *     (the commit point of the reclaim). The layers' hooks run in between,
 *     outside the lock, with dead = true.
 *
 * Who may touch a RECLAIM entry's slots: its reclaimer only. Sweeps skip
 * them (R2 counts a slot naming a RECLAIM entry of its gen as sound) while
 * the reclaimer is alive; claims only take FREE slots. A reclaimer that dies
 * (or gives up, clearing `reclaimer`) leaves the entry RECLAIM: the next
 * step or sweep that sees its reclaimer gone takes it over and runs every
 * hook again from the start. The hooks are re-runnable (shm.h), so a crash
 * at any point of a step leaks nothing and releases nothing twice. */

static uint64_t reclaimer_word(const shr_heap_t *h) { return (uint64_t)(h->proc + 1) << 32 | h->proc_gen; }

/* Whether the reclaimer named by word w is gone: nobody (0), an entry out of
 * range, not LIVE at that gen, or dead. This process's own entry is alive. */
static bool reclaimer_gone(const shr_heap_t *h, uint64_t w)
{
    if (w == 0) return true;
    uint32_t r = (uint32_t)(w >> 32) - 1, g = (uint32_t)w;
    if (r >= h->max_procs) return true;
    if (is_own_entry(h, r)) return h->proc_gen != g;
    proc_entry_t *pe = &h->procs[r];
    if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&pe->gen) != g) return true;
    return !probe_life(&pe->life);
}

/* Whether entry p is a dead process for a reclaimer to take: LIVE (or an
 * unknown state, R4) and dead, or RECLAIM with its reclaimer gone. Never
 * this process's own entry. Registry lock held. */
static bool reclaimable(const shr_heap_t *h, uint32_t p)
{
    proc_entry_t *pe = &h->procs[p];
    uint32_t st = shr_load_acquire(&pe->state);
    if (st == SHR_ENTRY_FREE || is_own_entry(h, p)) return false;
    if (st == SHR_ENTRY_RECLAIM) return reclaimer_gone(h, shr_load_relaxed(&pe->reclaimer));
    return !probe_life(&pe->life);
}

int shr__registry_sweep_locked(shr_heap_t *h)
{
    int n = 0;
    uint32_t phwm = procs_hwm(h), thwm = threads_hwm(h);
    for (uint32_t p = 0; p < phwm; p++) {
        proc_entry_t *pe = &h->procs[p];
        uint32_t st = shr_load_acquire(&pe->state);
        if (st == SHR_ENTRY_FREE) {
            /* A claimer that died between taking `life` and the commit
             * point leaves it owner-dead: make it clean again (R5). */
            bool died;
            if (shr__mutex_holder(&pe->life, &died) == 0 && died) probe_life(&pe->life);
            continue;
        }
        /* LIVE, or an unknown state (R4 broken): reclaim once dead; RECLAIM
         * once its reclaimer is gone. */
        if (!reclaimable(h, p)) continue;
        n += 1 + release_proc(h, p, true);
        if (SHR_FAULT(REG_RECLAIM)) continue; /* "fail": left for the next sweep */
        shr_store_relaxed(&pe->reclaimer, 0);
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
    }
    /* R2: slots whose process entry is gone or was claimed again; R4:
     * slots of an unknown state. A slot of a RECLAIM entry is its
     * reclaimer's (the loop above took over those whose reclaimer is gone). */
    for (uint32_t s = 0; s < thwm; s++) {
        thread_slot_t *ts = &h->threads[s];
        uint32_t st = shr_load_relaxed(&ts->state);
        if (st == SHR_ENTRY_FREE) continue;
        proc_entry_t *pe = ts->proc < h->max_procs ? &h->procs[ts->proc] : NULL;
        uint32_t pst = pe ? shr_load_relaxed(&pe->state) : SHR_ENTRY_FREE;
        if (st == SHR_ENTRY_LIVE && (pst == SHR_ENTRY_LIVE || pst == SHR_ENTRY_RECLAIM) &&
            shr_load_relaxed(&pe->gen) == ts->proc_gen)
            continue;
        release_thread(h, s, true);
        n++;
    }
    return n;
}

/* One dead process released under the registry lock, for a claim that
 * found its table full: it waits for one dead process's reclaim, not for
 * every one's. Returns the entries and slots reclaimed (0: nobody dead).
 * Registry lock held. */
static int reclaim_one_locked(shr_heap_t *h)
{
    uint32_t phwm = procs_hwm(h);
    for (uint32_t p = 0; p < phwm; p++) {
        if (!reclaimable(h, p)) continue;
        proc_entry_t *pe = &h->procs[p];
        int n = 1 + release_proc(h, p, true);
        if (SHR_FAULT(REG_RECLAIM)) return 0; /* "fail": left for the next sweep */
        shr_store_relaxed(&pe->reclaimer, 0);
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
        return n;
    }
    return 0;
}

/* One step: pick a dead process, release it outside the registry lock.
 * Returns the entries and slots reclaimed (0: nobody is dead), or a
 * negative code. The caller is registered here (it names itself as the
 * reclaimer) and holds no shared lock. */
static int reclaim_step(shr_heap_t *h)
{
    int rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) return rc;
    uint32_t phwm = procs_hwm(h), thwm = threads_hwm(h), p;
    for (p = 0; p < phwm; p++)
        if (reclaimable(h, p)) break;
    if (p == phwm) {
        shr__unlock(h, SHR_LOCK_REGISTRY);
        return 0;
    }
    proc_entry_t *pe = &h->procs[p];
    uint32_t gen = shr_load_relaxed(&pe->gen), n = 0;
    for (uint32_t s = 0; s < thwm; s++) n += slot_of(h, s, p, gen);
    uint32_t *slots = n ? malloc(n * sizeof *slots) : NULL;
    if (n && !slots) {
        /* No memory for the list: this one under the lock, as a sweep does. */
        int k = 1 + release_proc(h, p, true);
        shr_store_relaxed(&pe->reclaimer, 0);
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
        shr__unlock(h, SHR_LOCK_REGISTRY);
        return k;
    }
    n = 0;
    for (uint32_t s = 0; s < thwm; s++)
        if (slot_of(h, s, p, gen)) slots[n++] = s;
    uint64_t me = reclaimer_word(h);
    shr_store_relaxed(&pe->reclaimer, me);
    /* The commit point of the claim: the entry and its slots are this
     * reclaimer's until it marks them FREE, gives up or dies. */
    shr_store_release(&pe->state, SHR_ENTRY_RECLAIM);
    shr__unlock(h, SHR_LOCK_REGISTRY);

    for (uint32_t i = 0; i < n; i++) slot_hooks(h, slots[i], true);
    proc_hooks(h, p, true);
    bool give_up = SHR_FAULT(REG_RECLAIM); /* "fail": left for the next step */
    if (give_up || (rc = shr__lock(h, SHR_LOCK_REGISTRY)) != 0) {
        /* Taken over by the next step or sweep, which runs the hooks again. */
        uint64_t expect = me;
        atomic_compare_exchange_strong(&pe->reclaimer, &expect, 0);
        free(slots);
        return rc;
    }
    int k = 0;
    if (shr_load_relaxed(&pe->state) == SHR_ENTRY_RECLAIM && shr_load_relaxed(&pe->reclaimer) == me &&
        shr_load_relaxed(&pe->gen) == gen) {
        for (uint32_t i = 0; i < n; i++)
            if (slot_of(h, slots[i], p, gen)) {
                release_slot(h, slots[i]);
                k++;
            }
        pe->nthreads = 0; /* R3: none of its slots is LIVE any more */
        shr_store_relaxed(&pe->reclaimer, 0);
        /* The commit point of the reclaim. */
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
        k++;
    }
    shr__unlock(h, SHR_LOCK_REGISTRY);
    free(slots);
    return k;
}

int shr__registry_reclaim(shr_heap_t *h, uint32_t max)
{
    if (!h) return -EINVAL;
    if (!shr__proc_registered_here(h)) {
        /* Not attached from this process (a fork child that has not used
         * the heap): it cannot name itself as a reclaimer. */
        int rc = shr__lock(h, SHR_LOCK_REGISTRY);
        if (rc) return rc;
        rc = shr__registry_sweep_locked(h);
        shr__unlock(h, SHR_LOCK_REGISTRY);
        return rc;
    }
    int total = 0;
    for (uint32_t i = 0; i < max; i++) {
        int k = reclaim_step(h);
        if (k < 0) return total ? total : k;
        if (k == 0) break;
        total += k;
    }
    return total;
}

/* Repair for the registry lock: a process died while holding it, perhaps in
 * the middle of a claim or a reclaim. Every step above is re-runnable, so
 * repair is a recount (R3) followed by a sweep. */
static int registry_repair(shr_heap_t *h)
{
    uint32_t phwm = procs_hwm(h), thwm = threads_hwm(h);
    shr_store_relaxed(&h->hdr->threads_free_hint, 0);
    for (uint32_t p = 0; p < phwm; p++) h->procs[p].nthreads = 0;
    for (uint32_t s = 0; s < thwm; s++) {
        thread_slot_t *ts = &h->threads[s];
        if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE && ts->proc < h->max_procs &&
            shr_load_relaxed(&h->procs[ts->proc].gen) == ts->proc_gen)
            h->procs[ts->proc].nthreads++;
    }
    shr__registry_sweep_locked(h);
    return 0;
}

int shr__registry_init(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    /* The process entries and thread slots of a new segment are zero
     * (uncommitted pages read as zero) and are committed, and an entry's
     * life mutex initialised, at their first claim (R6): not touched here. */
    shr_store_relaxed(&hdr->procs_hwm, 0);
    shr_store_relaxed(&hdr->threads_hwm, 0);
    shr_store_relaxed(&hdr->threads_free_hint, 0);
    return 0;
}

/* ---- checking --------------------------------------------------------- */

typedef struct {
    FILE *out;
    int errors;
} reg_checker_t;

__attribute__((format(printf, 2, 3))) static void reg_fail(reg_checker_t *k, const char *fmt, ...)
{
    k->errors++;
    if (!k->out) return;
    va_list ap;
    fprintf(k->out, "registry: ");
    va_start(ap, fmt);
    vfprintf(k->out, fmt, ap);
    va_end(ap);
    fputc('\n', k->out);
}

/* Which OS pages of a registry table (the thread slots, the process
 * entries) are committed: one mincore call for the whole table (vec, one
 * byte per page, bit 0), instead of one per entry. Read under the registry
 * lock: entries are committed by claims, which take it. A private heap, or
 * a failed call, says every page is (the reader then reads, as
 * shr__seg_resident would let it). */
typedef struct page_map {
    uintptr_t base;          /* the page holding the table's first byte */
    unsigned char *vec;
    size_t npages;
} page_map_t;

static int page_map_alloc(page_map_t *m, const void *start, const void *end)
{
    m->base = (uintptr_t)start & ~(uintptr_t)(SHR_OS_PAGE - 1);
    m->npages = ((uintptr_t)end - m->base + SHR_OS_PAGE - 1) / SHR_OS_PAGE;
    m->vec = malloc(m->npages ? m->npages : 1);
    return m->vec ? 0 : -ENOMEM;
}

static void page_map_read(shr_heap_t *h, page_map_t *m)
{
    if ((h->flags & SHR_HEAP_PRIVATE) || mincore((void *)m->base, m->npages * SHR_OS_PAGE, m->vec) != 0)
        memset(m->vec, 1, m->npages);
}

/* Whether the bytes [p, p + len) lie in committed pages. */
static bool page_map_resident(const page_map_t *m, const void *p, size_t len)
{
    size_t first = ((uintptr_t)p - m->base) / SHR_OS_PAGE, last = ((uintptr_t)p + len - 1 - m->base) / SHR_OS_PAGE;
    for (size_t i = first; i <= last && i < m->npages; i++)
        if (!(m->vec[i] & 1)) return false;
    return true;
}

int shr__registry_check(shr_heap_t *h, FILE *out)
{
    if (!h) return -EINVAL;
    reg_checker_t k = {.out = out};
    /* The dead in steps first: the sweep below then has (almost) nothing
     * left to do under the lock. */
    int rc = shr__registry_reclaim(h, UINT32_MAX);
    if (rc < 0) return rc;
    /* Allocated before the lock; read under it. The walks below read only
     * memory and these maps (no system call per entry: with one mincore per
     * slot above the high-water mark, the default 512 slots held the lock
     * 1.3-1.7 ms, and 65536 would have held it for a quarter of a second). */
    page_map_t sp = {0}, pp = {0};
    uint32_t *count = calloc(h->max_procs, sizeof *count);
    if (!count || page_map_alloc(&sp, &h->threads[0], &h->threads[h->max_threads]) != 0 ||
        page_map_alloc(&pp, &h->procs[0], &h->procs[h->max_procs]) != 0) {
        free(count);
        free(sp.vec);
        free(pp.vec);
        return -ENOMEM;
    }
    rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) {
        free(count);
        free(sp.vec);
        free(pp.vec);
        return rc;
    }
    page_map_read(h, &sp);
    page_map_read(h, &pp);
    /* R4 first: a sweep reclaims entries of an unknown state, but such a
     * state is damage, not the leftover of a dead process. */
    uint32_t thwm0 = threads_hwm(h);
    for (uint32_t s = 0; s < h->max_threads; s++) {
        /* Above the mark an uncommitted slot is zero, FREE (R6): not read. */
        if (s >= thwm0 && !page_map_resident(&sp, &h->threads[s], 1)) continue;
        uint32_t st = shr_load_relaxed(&h->threads[s].state);
        if (st != SHR_ENTRY_FREE && st != SHR_ENTRY_LIVE)
            reg_fail(&k, "R4: thread slot %u: state %u", s, st);
    }
    uint32_t phwm0 = procs_hwm(h);
    for (uint32_t p = 0; p < h->max_procs; p++) {
        if (p >= phwm0 && !page_map_resident(&pp, &h->procs[p], 1)) continue; /* zero, FREE (R6); state only */
        uint32_t st = shr_load_relaxed(&h->procs[p].state);
        if (st != SHR_ENTRY_FREE && st != SHR_ENTRY_LIVE && st != SHR_ENTRY_RECLAIM)
            reg_fail(&k, "R4: process entry %u: state %u", p, st);
    }
    shr__registry_sweep_locked(h); /* what a sweep reclaims from the dead is not damage */
    uint32_t rph = shr_load_relaxed(&h->hdr->procs_hwm), rth = shr_load_relaxed(&h->hdr->threads_hwm);
    if (rph > h->max_procs) reg_fail(&k, "R4: procs_hwm %u above max_procs %u", rph, h->max_procs);
    if (rth > h->max_threads)
        reg_fail(&k, "R4: threads_hwm %u above max_threads %u", rth, h->max_threads);
    uint32_t phwm = procs_hwm(h), thwm = threads_hwm(h);
    /* The sweep claims nothing: the maps read above still hold. */
    for (uint32_t s = 0; s < h->max_threads; s++) {
        thread_slot_t *ts = &h->threads[s];
        if (s >= thwm && !page_map_resident(&sp, ts, 1)) continue; /* zero, FREE (R6) */
        uint32_t st = shr_load_relaxed(&ts->state);
        if (s >= thwm && st != SHR_ENTRY_FREE)
            reg_fail(&k, "R4: thread slot %u above the high water mark %u is not FREE", s, thwm);
        if (st != SHR_ENTRY_LIVE) continue;
        if (ts->proc >= h->max_procs) {
            reg_fail(&k, "R2: thread slot %u: process entry %u out of range", s, ts->proc);
            continue;
        }
        proc_entry_t *pe = &h->procs[ts->proc];
        uint32_t pst = shr_load_relaxed(&pe->state);
        if ((pst != SHR_ENTRY_LIVE && pst != SHR_ENTRY_RECLAIM) || shr_load_relaxed(&pe->gen) != ts->proc_gen)
            reg_fail(&k, "R2: thread slot %u names entry %u gen %u, which is not LIVE (or RECLAIM) at that gen", s,
                     ts->proc, ts->proc_gen);
        count[ts->proc]++;
    }
    for (uint32_t p = 0; p < h->max_procs; p++) {
        proc_entry_t *pe = &h->procs[p];
        /* Zero, FREE (R6): an entry may straddle two pages. */
        if (p >= phwm && count[p] == 0 && !page_map_resident(&pp, pe, sizeof *pe)) continue;
        uint32_t st = shr_load_relaxed(&pe->state);
        if (p >= phwm && st != SHR_ENTRY_FREE)
            reg_fail(&k, "R4: process entry %u above the high water mark %u is not FREE", p, phwm);
        if (pe->nthreads != count[p])
            reg_fail(&k, "R3: process entry %u: nthreads %u but %u live slots", p, pe->nthreads, count[p]);
        bool died;
        int32_t holder = shr__mutex_holder(&pe->life, &died);
        if (st == SHR_ENTRY_FREE && (holder != 0 || died))
            reg_fail(&k, "R5: process entry %u is FREE but its life mutex reads as held (tid %d)", p,
                     (int)holder);
        /* Other LIVE entries passed the sweep's probe; ours is held by our
         * anchor, which the sweep does not probe. */
        if (st == SHR_ENTRY_LIVE && is_own_entry(h, p) && !(h->flags & SHR_HEAP_PRIVATE) &&
            (holder == 0 || died))
            reg_fail(&k, "R1: process entry %u (this process) is LIVE but its life mutex is not held", p);
    }
    shr__unlock(h, SHR_LOCK_REGISTRY);
    free(count);
    free(sp.vec);
    free(pp.vec);
    return k.errors;
}

/* ---- process registration -------------------------------------------- */

/* Caller holds proc_mutex (or is creating the heap and alone with it). */
static int proc_register_locked(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    int rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) return rc;
    /* A FREE entry without reclaiming the dead first (they are reclaimed in
     * steps elsewhere); when none is FREE, the dead one at a time under the
     * lock until one is, then a sweep for what no step takes. */
    uint32_t hwm, p;
    for (bool swept = false;;) {
        hwm = procs_hwm(h);
        for (p = 0; p < hwm; p++)
            if (shr_load_relaxed(&h->procs[p].state) == SHR_ENTRY_FREE) break;
        if (p < h->max_procs || reclaim_one_locked(h) > 0) {
            if (p < h->max_procs) break;
            continue;
        }
        if (swept || shr__registry_sweep_locked(h) == 0) break;
        swept = true;
    }
    if (p == h->max_procs) {
        rc = SHR_EPROCS;
        goto out;
    }
    proc_entry_t *pe = &h->procs[p];
    if (p == hwm) {
        /* R6: an entry never claimed is committed (with its layers'
         * regions), and its life mutex initialised, before the mark passes it. Nobody has locked that
         * mutex (entries above the mark are never probed), so a crash
         * before the raise leaves it to be initialised again. */
        if ((rc = shr__seg_commit_proc(h, p)) != 0 ||
            (rc = shr__robust_mutex_init(&pe->life)) != 0)
            goto out;
    }
    REG_ASSERT("R4", shr_load_relaxed(&pe->state) == SHR_ENTRY_FREE);
    if (p == hwm) shr_store_release(&hdr->procs_hwm, hwm + 1); /* R4: still FREE */
    h->proc = p;
    /* A private heap has no other process to tell it is alive, and an
     * anchor would keep a process whose last thread calls pthread_exit
     * alive for ever (private.c): its `life` is never locked. */
    rc = (h->flags & SHR_HEAP_PRIVATE) ? 0 : anchor_hold(h, pe);
    if (rc) goto out;
    pe->pid = getpid();
    pe->start_time = read_start_time();
    pe->attach_ns = shr__now_ns(CLOCK_REALTIME);
    pe->nthreads = 0; /* R3: no slot names the new gen yet */
    h->proc_gen = atomic_fetch_add(&pe->gen, 1) + 1;
    if (SHR_FAULT(REG_PROC_CLAIM)) {
        anchor_release(h);
        rc = SHR_EPROCS;
        goto out;
    }
    for (int l = 0; l < SHR_NLAYERS; l++)
        if (hooks_of(l)->proc_claim) hooks_of(l)->proc_claim(h, p);
    h->fork_epoch = shr_load_relaxed(&fork_epoch);
    h->registered = true;
    h->ctxs = NULL;
    /* The commit point: LIVE while the anchor holds `life` (R1; a private
     * heap has no anchor, private.c). */
    REG_ASSERT("R1", (h->flags & SHR_HEAP_PRIVATE) || shr__mutex_holder(&pe->life, NULL) != 0);
    shr_store_release(&pe->state, SHR_ENTRY_LIVE);
    atomic_fetch_add_explicit(&hdr->nattach, 1, memory_order_relaxed);
out:
    shr__unlock(h, SHR_LOCK_REGISTRY);
    return rc;
}

int shr__proc_register(shr_heap_t *h)
{
    pthread_once(&once, init_once);
    pthread_mutex_lock(&proc_mutex);
    int rc = proc_register_locked(h);
    pthread_mutex_unlock(&proc_mutex);
    /* No reclaim here: an attach costs what an attach costs, whoever died
     * (the first slot claim and the close take the steps). */
    return rc;
}

void shr__proc_unregister(shr_heap_t *h)
{
    /* A bounded share of the dead's reclaim, while this process can still
     * name itself as the reclaimer. */
    if (shr__proc_registered_here(h)) (void)shr__registry_reclaim(h, SHR__RECLAIM_STEPS);
    pthread_mutex_lock(&proc_mutex);
    /* Contexts of this process's threads become stale: their owners free
     * them on their next slow path or at thread exit. */
    for (shr_tctx_t *c = h->ctxs; c; c = c->next_in_heap) shr_store_relaxed(&c->heap, SHR__CTX_CLOSED);
    h->ctxs = NULL;
    if (!h->registered || h->fork_epoch != shr_load_relaxed(&fork_epoch)) {
        /* Never registered, or a fork child that never used the heap: the
         * entry (if any) is the parent's. */
        h->registered = false;
        h->anchor = NULL;
        pthread_mutex_unlock(&proc_mutex);
        return;
    }
    proc_entry_t *pe = &h->procs[h->proc];
    if (shr__lock(h, SHR_LOCK_REGISTRY) == 0) {
        release_proc(h, h->proc, false);
        /* R1 and R5: `life` is released before the entry reads FREE. */
        int given = anchor_release(h);
        REG_ASSERT("R5", given == 0); /* `life` unlocked by the anchor that held it */
        REG_ASSERT("R3", pe->nthreads == 0);
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
        h->registered = false;
        /* Live processes, found by their probe: the dead ones not reclaimed
         * yet do not keep the name. */
        uint32_t live = 0, hwm = procs_hwm(h);
        for (uint32_t p = 0; p < hwm && live == 0; p++)
            live += shr_load_relaxed(&h->procs[p].state) == SHR_ENTRY_LIVE && probe_life(&h->procs[p].life);
        if (live == 0 && (h->flags & SHR_HEAP_UNLINK_ON_LAST_CLOSE) && !SHR_FAULT(REG_UNLINK))
            shr__seg_unlink_if_ours(h);
        shr__unlock(h, SHR_LOCK_REGISTRY);
    } else {
        /* The registry lock is unrecoverable or held by someone who does not
         * let go; still release our liveness so that nobody waits for us.
         * The entry stays LIVE until a sweep finds it dead (R1). */
        anchor_release(h);
        h->registered = false;
    }
    pthread_mutex_unlock(&proc_mutex);
}

/* ---- thread contexts ------------------------------------------------- */

static void prune_stale_contexts(void)
{
    shr_tctx_t **pp = &tl_ctx_list;
    while (*pp) {
        shr_tctx_t *c = *pp;
        if (shr_load_relaxed(&c->heap) == SHR__CTX_CLOSED) {
            *pp = c->next_in_thread;
            if (shr__tl_ctx == c) shr__tl_ctx = NULL;
            free(c);
        } else {
            pp = &c->next_in_thread;
        }
    }
}

/* The first FREE slot from the hint on, else a slot never used (at the high
 * water mark), else a FREE slot below the hint (a damaged hint), else
 * max_threads. Registry lock held. */
static uint32_t find_free_slot(const shr_heap_t *h)
{
    uint32_t hwm = threads_hwm(h), hint = shr_load_relaxed(&h->hdr->threads_free_hint);
    if (hint > hwm) hint = 0; /* a hint from the segment: checked, never trusted */
    for (uint32_t s = hint; s < hwm; s++)
        if (shr_load_relaxed(&h->threads[s].state) == SHR_ENTRY_FREE) return s;
    if (hwm < h->max_threads) return hwm;
    for (uint32_t s = 0; s < hint; s++)
        if (shr_load_relaxed(&h->threads[s].state) == SHR_ENTRY_FREE) return s;
    return h->max_threads;
}

static int claim_slot_locked(shr_heap_t *h, uint32_t *out)
{
    seg_header_t *hdr = h->hdr;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t hwm = threads_hwm(h), s = find_free_slot(h);
        if (s < h->max_threads) {
            thread_slot_t *ts = &h->threads[s];
            REG_ASSERT("R4", shr_load_relaxed(&ts->state) == SHR_ENTRY_FREE);
            REG_ASSERT("R2", shr_load_relaxed(&h->procs[h->proc].state) == SHR_ENTRY_LIVE &&
                                 shr_load_relaxed(&h->procs[h->proc].gen) == h->proc_gen);
            if (s == hwm) {
                /* A slot's first claim commits its pages (R6). */
                int rc = shr__seg_commit_thread(h, s);
                if (rc) return rc;
                shr_store_release(&hdr->threads_hwm, hwm + 1); /* R4: still FREE */
            }
            /* Everything the registry relies on, written afresh. The
             * layers' areas of a FREE slot are reset by their
             * thread_release hooks (zero in a new segment). */
            ts->proc = h->proc;
            ts->proc_gen = h->proc_gen;
            ts->tid = shr__gettid();
            shr_store_relaxed(&ts->in_heap, 0);
            shr_store_relaxed(&ts->epoch, 0);
            atomic_fetch_add(&ts->gen, 1);
            /* The layers' areas of a FREE slot are reset by their
             * thread_release hooks (zero in a new segment), but a claim
             * trusts no leftover: they start from zero. */
            for (int l = 0; l < SHR_NLAYERS; l++)
                if (hdr->thread_size[l]) memset(shr__seg_thread_area(h, l, s), 0, hdr->thread_size[l]);
            if (SHR_FAULT(REG_SLOT_CLAIM)) return SHR_ETHREADS;
            h->procs[h->proc].nthreads++; /* R3, with the store below */
            /* The commit point: LIVE names a LIVE entry of this gen (R2). */
            shr_store_release(&ts->state, SHR_ENTRY_LIVE);
            shr_store_relaxed(&hdr->threads_free_hint, s + 1); /* none FREE below s + 1 */
            *out = s;
            return 0;
        }
        /* None FREE: the dead one at a time, until one of theirs is. */
        if (reclaim_one_locked(h) > 0) {
            pass--;
            continue;
        }
        if (pass == 0 && shr__registry_sweep_locked(h) == 0) break;
    }
    return SHR_ETHREADS;
}

shr_tctx_t *shr__tctx_slow(shr_heap_t *h)
{
    shr_tctx_t *c = NULL;
    int rc = 0;

    pthread_once(&once, init_once);
    pthread_mutex_lock(&proc_mutex);
    prune_stale_contexts();
    if (!h->registered || h->fork_epoch != shr_load_relaxed(&fork_epoch)) {
        /* First use in a fork child (or after a failed registration). */
        h->registered = false;
        h->anchor = NULL;
        h->ctxs = NULL;
        rc = proc_register_locked(h);
        if (rc) goto fail;
    }
    for (c = tl_ctx_list; c; c = c->next_in_thread)
        if (shr_load_relaxed(&c->heap) == h) goto found;

    c = calloc(1, sizeof *c);
    if (!c) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) goto fail_free;
    rc = claim_slot_locked(h, &c->slot);
    shr__unlock(h, SHR_LOCK_REGISTRY);
    if (rc) goto fail_free;

    c->ts = &h->threads[c->slot];
    c->gen = shr_load_relaxed(&c->ts->gen);
    for (int l = 0; l < SHR_NLAYERS; l++)
        c->layer[l] = h->hdr->thread_size[l] ? shr__seg_thread_area(h, l, c->slot) : NULL;
    shr_store_relaxed(&c->heap, h);
    c->next_in_thread = tl_ctx_list;
    tl_ctx_list = c;
    c->next_in_heap = h->ctxs;
    h->ctxs = c;
    pthread_setspecific(tctx_key, (void *)1);
    shr__tl_ctx = c;
    pthread_mutex_unlock(&proc_mutex);
    /* A new slot: a bounded share of the dead's reclaim, as at attach. */
    (void)shr__registry_reclaim(h, SHR__RECLAIM_STEPS);
    return c;
found:
    shr__tl_ctx = c;
    pthread_mutex_unlock(&proc_mutex);
    return c;

fail_free:
    free(c);
fail:
    pthread_mutex_unlock(&proc_mutex);
    errno = shr__errno_of(rc);
    return NULL;
}

/* Thread exit: give back every slot this thread holds. */
static void tctx_destructor(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&proc_mutex);
    for (shr_tctx_t *c = tl_ctx_list, *next; c; c = next) {
        next = c->next_in_thread;
        shr_heap_t *h = shr_load_relaxed(&c->heap);
        if (h != SHR__CTX_CLOSED && h->registered && h->fork_epoch == shr_load_relaxed(&fork_epoch)) {
            /* On a timeout the slot stays LIVE until close or the
             * reclaim of this process. */
            if (shr__lock(h, SHR_LOCK_REGISTRY) == 0) {
                thread_slot_t *ts = &h->threads[c->slot];
                if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE &&
                    shr_load_relaxed(&ts->gen) == c->gen)
                    release_thread(h, c->slot, false);
                shr__unlock(h, SHR_LOCK_REGISTRY);
            }
            for (shr_tctx_t **pp = &h->ctxs; *pp; pp = &(*pp)->next_in_heap)
                if (*pp == c) {
                    *pp = c->next_in_heap;
                    break;
                }
        }
        free(c);
    }
    tl_ctx_list = NULL;
    shr__tl_ctx = NULL;
    pthread_mutex_unlock(&proc_mutex);
}
