/* Robust locks
 *
 * The lock table lives in the segment header and is never freed or reused for
 * other data (a robust mutex in memory that is unmapped or reused while its
 * owner is inside unlock can be corrupted by the kernel's owner-died write:
 * glibc bug 14485).
 *
 *   lock      pthread_mutex_lock; EOWNERDEAD runs the lock's repair hook,
 *             then pthread_mutex_consistent. The repair hook must be
 *             idempotent: if the repairer dies too, the next locker repairs
 *             again.
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
#include <string.h>

#include "shm.h"

static shr__repair_fn repair_hooks[SHR_NLOCKS];

#if SHR_DEBUG >= 2
static _Thread_local uint32_t held_mask;
#endif

void shr__lock_set_repair(shr_lock_id_t id, shr__repair_fn fn)
{
    SHR_ASSERT((unsigned)id < SHR_NLOCKS);
    repair_hooks[id] = fn;
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

int shr__lock_init_all(seg_header_t *hdr)
{
    for (int i = 0; i < SHR_NLOCKS; i++) {
        memset(&hdr->locks[i], 0, sizeof hdr->locks[i]);
        int rc = shr__robust_mutex_init(&hdr->locks[i].mu);
        if (rc) return rc;
    }
    return 0;
}

int shr__lock(shr_heap_t *heap, shr_lock_id_t id)
{
    shm_lock_t *l = &heap->hdr->locks[id];
#if SHR_DEBUG >= 2
    if (held_mask >> id)
        SHR_PANIC("lock rank violation: taking lock %d while holding mask 0x%x", id, held_mask);
#endif
    int rc = pthread_mutex_lock(&l->mu);
    if (shr_unlikely(rc == EOWNERDEAD)) {
        /* The holder died inside the critical section. Repair what the lock
         * guards, then make the lock usable again. */
        if (repair_hooks[id]) repair_hooks[id](heap);
        atomic_fetch_add_explicit(&l->nrepaired, 1, memory_order_relaxed);
        rc = pthread_mutex_consistent(&l->mu);
        if (rc != 0) pthread_mutex_unlock(&l->mu); /* do not keep what we cannot use */
    }
    if (shr_unlikely(rc != 0)) return SHR_ELOCK;
#if SHR_DEBUG >= 2
    held_mask |= 1u << id;
#endif
    shr_store_relaxed(&l->owner_tid, shr__gettid());
    shr_store_relaxed(&l->owner_proc, heap->registered ? heap->proc + 1 : 0);
    atomic_fetch_add_explicit(&l->nacquired, 1, memory_order_relaxed);
    return 0;
}

void shr__unlock(shr_heap_t *heap, shr_lock_id_t id)
{
    shm_lock_t *l = &heap->hdr->locks[id];
#if SHR_DEBUG >= 2
    if (!(held_mask & (1u << id))) SHR_PANIC("unlocking lock %d that is not held", id);
    held_mask &= ~(1u << id);
#endif
    shr_store_relaxed(&l->owner_tid, 0);
    shr_store_relaxed(&l->owner_proc, 0);
    pthread_mutex_unlock(&l->mu);
}
