/* Owners and bounded waits
 *
 * Locks of the layers above the allocator that are not robust mutexes (the
 * list's spinlock) name their holder with an owner word (gc.h). A waiter asks
 * this file whether that owner is gone, so that the layers above never decode
 * the registry themselves, and how long it may wait: every wait of gc/ and
 * list/ ends, in SHR__GC_ETIMEOUT, after SHARENA_LOCK_TIMEOUT_MS (default
 * SHR__GC_LOCK_TIMEOUT_MS). A holder that is alive but does not progress (a
 * stopped process, a debugger) then costs a waiter an error, not a hang.
 */
#include <errno.h>
#include <stdlib.h>

#include "gc.h"

bool shr__owner_gone(shr_heap_t *h, uint64_t w)
{
    uint32_t slot = shr__owner_slot(w), gen = shr__owner_gen(w);
    if (slot >= SHR_MAX_THREADS) return true;
    thread_slot_t *ts = &h->hdr->threads[slot];
    if (shr_load_acquire(&ts->state) != SHR_ENTRY_LIVE || (shr_load_relaxed(&ts->gen) & 0x7fffffffu) != gen)
        return true;
    uint32_t p = ts->proc;
    if (p >= SHR_MAX_PROCS) return true;
    proc_entry_t *pe = &h->hdr->procs[p];
    if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&pe->gen) != ts->proc_gen)
        return true;
    return !shr__proc_alive(h->hdr, p);
}

/* SHARENA_LOCK_TIMEOUT_MS, or the default when unset or not a positive
 * number of milliseconds. Read at every wait (waits are rare and long), so
 * that a test or a tool may change it at run time. */
static uint64_t timeout_ms(void)
{
    const char *s = getenv("SHARENA_LOCK_TIMEOUT_MS");
    if (!s || !*s) return SHR__GC_LOCK_TIMEOUT_MS;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end == 0 && v > 0 && v < (1ull << 40) ? v : SHR__GC_LOCK_TIMEOUT_MS;
}

uint64_t shr__gc_wait_deadline(void)
{
    return shr__now_ns(CLOCK_MONOTONIC) + timeout_ms() * 1000000u;
}

struct timespec shr__gc_wait_deadline_realtime(void)
{
    uint64_t t = shr__now_ns(CLOCK_REALTIME) + timeout_ms() * 1000000u;
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u)};
    return ts;
}
