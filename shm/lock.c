/* Robust locks, and the bounded wait every layer uses
 *
 * The lock table lives in the segment header and is never freed or reused for
 * other data (a robust mutex in memory that is unmapped or reused while its
 * owner is inside unlock can be corrupted by the kernel's owner-died write:
 * glibc bug 14485).
 *
 *   lock      trylock; when busy, pthread_mutex_timedlock in slices of at
 *             most 50 ms against a CLOCK_MONOTONIC deadline (the heap's lock
 *             timeout), so that a change of the wall clock neither cuts a
 *             wait short nor makes it endless. EOWNERDEAD runs the lock's
 *             repair hook, then pthread_mutex_consistent. The repair hook
 *             must be idempotent: if the repairer dies too, the next locker
 *             repairs again.
 *   timeout   a holder that is alive and never lets go (stopped with
 *             SIGSTOP, hung, or bytes of the mutex damaged so that it reads
 *             as held) makes the wait end in SHR_ELOCKTIMEOUT. The lock's
 *             timeout record (ntimeouts, when, who waited, who held it)
 *             is written for `sharena info`. Nothing was changed: the caller
 *             fails as it would before touching anything.
 *   rank      the lock id. A thread takes locks in increasing id order;
 *             SHR_DEBUG >= 2 keeps a per-thread mask of held ids and aborts on
 *             an out-of-order acquisition.
 *
 * Unlocking without pthread_mutex_consistent would make the mutex
 * ENOTRECOVERABLE for everyone, so every EOWNERDEAD path ends in consistent.
 * A repair hook that fails still marks the lock consistent: the hook reports
 * what it could not fix through shr_heap_check, and the heap stays usable.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"

/* Installed again by every attach (same values, maybe from several threads
 * at once): atomic, and written only when it changes. */
static _Atomic(shr__repair_fn) repair_hooks[SHR_NLOCKS];

/* Lock ids this thread holds (SHR_DEBUG >= 2). */
static _Thread_local uint32_t held_mask;

void shr__lock_set_repair(shr_lock_id_t id, shr__repair_fn fn)
{
    SHR_ASSERT((unsigned)id < SHR_NLOCKS);
    if (shr_load_relaxed(&repair_hooks[id]) != fn) shr_store_release(&repair_hooks[id], fn);
}

int shr__robust_mutex_init(pthread_mutex_t *mu)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (rc) return -rc;
    rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!rc) rc = pthread_mutex_init(mu, &a);
    pthread_mutexattr_destroy(&a);
    return -rc;
}

/* The kind word of a robust, process-shared mutex as this libc lays it out
 * (glibc: __data.__kind), taken once from a mutex initialised here. A mutex
 * in the segment keeps its kind from initialisation on; any other kind is
 * damage, and pthread_mutex_trylock on it may take another algorithm's path
 * (lock elision, priority inheritance) and fault instead of failing. */
static int robust_kind = -1;
static pthread_once_t robust_kind_once = PTHREAD_ONCE_INIT;

static void robust_kind_init(void)
{
    pthread_mutex_t mu;
    if (shr__robust_mutex_init(&mu) == 0) {
        robust_kind = mu.__data.__kind;
        pthread_mutex_destroy(&mu);
    }
}

bool shr__mutex_sane(const pthread_mutex_t *mu)
{
    pthread_once(&robust_kind_once, robust_kind_init);
    return robust_kind != -1 && shr_load_relaxed((const _Atomic int *)(const void *)&mu->__data.__kind) == robust_kind;
}

int shr__lock_init_all(seg_header_t *hdr)
{
    for (int i = 0; i < SHR_NLOCKS; i++) {
        memset(&hdr->locks[i], 0, sizeof hdr->locks[i]);
        int rc = shr__robust_mutex_init(&hdr->locks[i].mu);
        if (rc) return rc;
    }
    return 0;
}

/* ---- deadlines and waiting ------------------------------------------- */

uint64_t shr__lock_timeout_ns(uint32_t timeout_ms)
{
    const char *env = getenv("SHARENA_LOCK_TIMEOUT_MS");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && env[0] >= '0' && env[0] <= '9' && v <= UINT32_MAX)
            return v * 1000000u;
    }
    if (timeout_ms == 0) timeout_ms = SHR_DEFAULT_LOCK_TIMEOUT_MS;
    return (uint64_t)timeout_ms * 1000000u;
}

uint64_t shr__lock_deadline(const shr_heap_t *h)
{
    /* Read when a wait begins, not at attach: SHARENA_LOCK_TIMEOUT_MS set
     * later (by a test, a tool) applies to the next wait. Waits are rare, so
     * the getenv costs nothing that matters. */
    uint64_t t = shr__lock_timeout_ns(h->hdr->lock_timeout_ms);
    if (t == 0) return UINT64_MAX;
    return shr__now_ns(CLOCK_MONOTONIC) + t;
}

/* Longest single timedlock: 1 s. Shorter slices make a crowd of waiters
 * wake for nothing (twenty thousand waiters on 50 ms slices kept two cores
 * busy in the kernel); the slice only bounds what a wall-clock step can do. */
#define WAIT_SLICE_NS 1000000000u

int shr__mutex_lock_until(pthread_mutex_t *mu, uint64_t deadline_ns)
{
    int rc = pthread_mutex_trylock(mu);
    while (rc == EBUSY) {
        uint64_t now = shr__now_ns(CLOCK_MONOTONIC);
        if (now >= deadline_ns) return ETIMEDOUT;
        uint64_t slice = deadline_ns - now;
        if (slice > WAIT_SLICE_NS) slice = WAIT_SLICE_NS;
        /* timedlock takes a CLOCK_REALTIME time: a slice from now. A jump
         * of the wall clock distorts at most one slice. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + slice;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        rc = pthread_mutex_timedlock(mu, &ts);
        /* A waiter woken by an unlock just as its slice ends may return
         * ETIMEDOUT with the wakeup spent and the lock free: try again
         * before anything else, so that no wakeup is lost. */
        if (rc == ETIMEDOUT) rc = pthread_mutex_trylock(mu);
    }
    return rc;
}

bool shr__backoff(unsigned *round, uint64_t deadline_ns)
{
    unsigned r = (*round)++;
    if (r < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if ((r & 15) != 15) return false;
    } else if (r < 128) {
        sched_yield();
    } else {
        unsigned us = r < 138 ? 1u << (r - 128) : 1000u; /* 1 us .. 1 ms */
        struct timespec ts = {0, (long)us * 1000};
        nanosleep(&ts, NULL);
    }
    return deadline_ns != UINT64_MAX && shr__now_ns(CLOCK_MONOTONIC) >= deadline_ns;
}

int32_t shr__mutex_holder(const pthread_mutex_t *mu, bool *owner_died)
{
    /* glibc: __data.__lock is the futex word, TID | FUTEX_WAITERS |
     * FUTEX_OWNER_DIED for a robust mutex. Read it as the kernel does. */
    const _Atomic uint32_t *word = (const _Atomic uint32_t *)(const void *)mu;
    uint32_t w = shr_load_relaxed(word);
    if (owner_died) *owner_died = (w & 0x40000000u) != 0;
    return (int32_t)(w & 0x3fffffffu);
}

int shr__errno_of(int rc)
{
    switch (rc) {
    case SHR_ELOCKTIMEOUT:
        return ETIMEDOUT;
    case SHR_ELOCK:
        return ENOTRECOVERABLE;
    case SHR_EPROCS:
    case SHR_ETHREADS:
    case SHR_ESPAWN:
        return EAGAIN;
    default:
        return rc < 0 && rc > -4096 ? -rc : EIO;
    }
}

/* ---- the lock table --------------------------------------------------- */

static void record_timeout(shr_heap_t *h, shm_lock_t *l)
{
    atomic_fetch_add_explicit(&l->ntimeouts, 1, memory_order_relaxed);
    shr_store_relaxed(&l->timeout_ns, shr__now_ns(CLOCK_REALTIME));
    shr_store_relaxed(&l->timeout_pid, (int32_t)getpid());
    shr_store_relaxed(&l->timeout_holder_tid, shr__mutex_holder(&l->mu, NULL));
    shr_store_relaxed(&l->timeout_holder_proc, shr_load_relaxed(&l->owner_proc));
    (void)h;
}

int shr__lock(shr_heap_t *heap, shr_lock_id_t id)
{
    shm_lock_t *l = &heap->hdr->locks[id];
    if (SHR_DEBUG >= 2 && (held_mask >> id))
        SHR_PANIC("K1 lock rank: taking lock %d while holding mask 0x%x", id, held_mask);
    int rc = pthread_mutex_trylock(&l->mu);
    if (rc == EBUSY) rc = shr__mutex_lock_until(&l->mu, shr__lock_deadline(heap));
    if (shr_unlikely(rc == EOWNERDEAD)) {
        /* The holder died inside the critical section. Repair what the lock
         * guards, then make the lock usable again. */
        shr__repair_fn fn = shr_load_acquire(&repair_hooks[id]);
        if (fn) fn(heap);
        atomic_fetch_add_explicit(&l->nrepaired, 1, memory_order_relaxed);
        rc = pthread_mutex_consistent(&l->mu);
        if (rc != 0) pthread_mutex_unlock(&l->mu); /* do not keep what we cannot use */
    }
    if (shr_unlikely(rc != 0)) {
        if (rc == ETIMEDOUT) {
            record_timeout(heap, l);
            return SHR_ELOCKTIMEOUT;
        }
        return SHR_ELOCK;
    }
    if (SHR_DEBUG >= 2) held_mask |= 1u << id;
    shr_store_relaxed(&l->owner_tid, shr__gettid());
    shr_store_relaxed(&l->owner_proc, heap->registered ? heap->proc + 1 : 0);
    atomic_fetch_add_explicit(&l->nacquired, 1, memory_order_relaxed);
    return 0;
}

void shr__unlock(shr_heap_t *heap, shr_lock_id_t id)
{
    shm_lock_t *l = &heap->hdr->locks[id];
    if (SHR_DEBUG >= 2) {
        if (!(held_mask & (1u << id))) SHR_PANIC("K1 lock rank: unlocking lock %d that is not held", id);
        held_mask &= ~(1u << id);
    }
    shr_store_relaxed(&l->owner_tid, 0);
    shr_store_relaxed(&l->owner_proc, 0);
    pthread_mutex_unlock(&l->mu);
}

/* A walker's unlock between two steps. glibc's mutexes are not fair: a
 * thread that unlocks and locks again at once gets the lock back before the
 * waiter it woke has run, so a walk made of short holds would still make a
 * waiter wait for the whole walk. When someone waits (FUTEX_WAITERS in the
 * futex word), give it the lock: wait until another acquisition is counted,
 * for WALK_HANDOFF_NS at most (a waiter that has given up or was not
 * scheduled does not hold the walk up for longer). */
#define WALK_HANDOFF_NS 200000u

/* Not done: giving the CPU up between steps every so often, so that the
 * scheduler would not take it in the middle of a hold. Measured on a loaded
 * 2-CPU machine it made no hold visibly shorter and the walks twice as long
 * (check at 1 GiB: 61 ms against 32 ms). */
void shr__unlock_step(shr_heap_t *heap, shr_lock_id_t id)
{
    shm_lock_t *l = &heap->hdr->locks[id];
    const _Atomic uint32_t *word = (const _Atomic uint32_t *)(const void *)&l->mu;
    bool waiters = (shr_load_relaxed(word) & 0x80000000u) != 0;
    uint64_t n = atomic_load_explicit(&l->nacquired, memory_order_relaxed);
    shr__unlock(heap, id);
    if (!waiters) return;
    uint64_t until = shr__now_ns(CLOCK_MONOTONIC) + WALK_HANDOFF_NS;
    for (unsigned r = 0; atomic_load_explicit(&l->nacquired, memory_order_relaxed) == n; r++) {
        if (r < 64) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        sched_yield();
        if (shr__now_ns(CLOCK_MONOTONIC) >= until) break;
    }
}
