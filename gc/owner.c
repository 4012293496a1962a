/* Owners and bounded waits
 *
 * Locks of the layers above the allocator that are not robust mutexes (the
 * list's spinlock) name their holder with an owner word (gc.h). A waiter asks
 * this file whether that owner is gone, so that the layers above never decode
 * the registry themselves (the segment layer answers, shr__slot_gone). Every
 * wait of gc/ and list/ ends in SHR_ELOCKTIMEOUT at the heap's lock deadline
 * (shr__lock_deadline): a holder that is alive but does not progress (a
 * stopped process, a debugger) costs a waiter an error, not a hang.
 */
#include <errno.h>
#include <stdlib.h>

#include "gc.h"

bool shr__owner_gone(shr_heap_t *h, uint64_t w)
{
    uint32_t slot = shr__owner_slot(w);
    if (slot >= h->max_threads) return true;
    /* The owner word keeps 31 bits of the slot's generation. */
    uint32_t gen = shr_load_relaxed(&shr__thread_slot(h, slot)->gen);
    if ((gen & 0x7fffffffu) != shr__owner_gen(w)) return true;
    return shr__slot_gone(h, slot, gen);
}
