/* The collector's event log
 *
 * A ring of seg_header_t.log_records records of 64 bytes (gc_logrec_t),
 * right after gc_global_t in the gc layer's global region, sized when the
 * heap is created (the option gc_log_records). Sequence numbers 1, 2, ...
 * are handed out by gc_global.log_head; record s lives in slot
 * s & (records - 1), so the newest `records` are kept and the oldest
 * overwritten.
 *
 * Writing record s (any thread, holding any lock):
 *   1. read head = s and the slot's ctl word c. If c is a committed number
 *      at or above s, head was stale: read again. If c is LOG_BUSY | w (a
 *      writer w fills it): take it over when w is gone (dead), else read
 *      again (w is about to move head on), and give up after a bounded
 *      number of tries (log_dropped + 1: the log never makes a collector
 *      wait).
 *   2. CAS ctl from c to LOG_BUSY | my owner word: the slot is mine. Only
 *      the holder of slot s & mask with head == s moves head, so
 *   3. head = s + 1.
 *   4. the fields, each a relaxed store (after the CAS, which orders them).
 *   5. CAS ctl from LOG_BUSY | me to s, release: the commit point.
 *
 * Reading record s (a seqlock reader): ctl (acquire) must be s; copy the
 * fields; an acquire fence; ctl again must still be s. Anything else is not
 * record s: a number above s, overwritten (skipped); LOG_BUSY of a dead
 * writer, torn (skipped, never returned); LOG_BUSY of a live writer, in
 * progress (the read stops there, to be asked again).
 *
 * Commit: the ring's pages are committed by the first lap's writers, page
 * by page (step 1 commits the page of a record that starts one), not at
 * creation: a heap that logs nothing costs no ring.
 *
 * Crash consistency: a writer killed before step 2 leaves nothing; between
 * 2 and 5 a slot marked LOG_BUSY by a dead owner, which readers skip and the
 * next writer to reach it takes over (and, if head had not moved, moves it).
 * Nothing repairs the log beyond that; a committed record is never changed
 * but by the writer of a later lap. Sequence numbers stay below 2^63.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gc.h"

#define LOG_TRIES 256

/* This process's pid, cached (getpid is a system call); a fork child
 * reads it again. */
static _Atomic pid_t log_pid;
static void log_pid_reset(void) { atomic_store_explicit(&log_pid, 0, memory_order_relaxed); }
static pthread_once_t log_pid_once = PTHREAD_ONCE_INIT;
static void log_pid_setup(void) { pthread_atfork(NULL, NULL, log_pid_reset); }

static uint32_t my_pid(void)
{
    pid_t p = atomic_load_explicit(&log_pid, memory_order_relaxed);
    if (p == 0) {
        pthread_once(&log_pid_once, log_pid_setup);
        p = getpid();
        atomic_store_explicit(&log_pid, p, memory_order_relaxed);
    }
    return (uint32_t)p;
}

static gc_logrec_t *log_ring(shr_heap_t *h, uint64_t *cap)
{
    *cap = h->hdr->log_records; /* validated at attach: 0 or a power of two <= SHR_GC_LOG_MAX */
    return (gc_logrec_t *)((char *)shr__gc_global(h) + SHR_ALIGN_UP(sizeof(gc_global_t), SHR_CACHELINE));
}

void shr__gc_log_init(shr_heap_t *h) { shr_store_relaxed(&shr__gc_global(h)->log_head, 1); }

void shr__gc_log(shr_heap_t *h, int type, int gen, int phase, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
    uint64_t cap;
    gc_logrec_t *ring = log_ring(h, &cap);
    if (cap == 0) return;
    gc_global_t *g = shr__gc_global(h);
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx) {
        atomic_fetch_add_explicit(&g->log_dropped, 1, memory_order_relaxed);
        return;
    }
    uint64_t me = LOG_BUSY | (shr__owner_word(ctx) & ~SHR__OWNER_FLAG);
    for (unsigned tries = 0; tries < LOG_TRIES; tries++) {
        uint64_t s = atomic_load_explicit(&g->log_head, memory_order_acquire);
        if (s == 0 || s >= LOG_BUSY) return; /* damaged: the log stays silent rather than wrong */
        gc_logrec_t *r = &ring[s & (cap - 1)];
        /* The ring is committed as its first lap reaches each page, not at
         * creation (shm.h, global_lazy): the writer of a record that starts
         * a page commits it before it reads the slot, and so before head
         * passes it (readers read below head only). The page holding the
         * ring's start was committed with gc_global_t. */
        if (s <= cap && (shr__off(h, r) & (SHR_OS_PAGE - 1)) == 0 && shr__seg_commit(h, shr__off(h, r), sizeof *r) != 0)
            break; /* no memory: the record is dropped */
        uint64_t c = atomic_load_explicit(&r->ctl, memory_order_acquire);
        if (c & LOG_BUSY) {
            if (c == me || !shr__owner_gone(h, c & ~LOG_BUSY)) { /* a live writer: it moves head on */
                if (tries % 16 == 15) sched_yield();
                continue;
            }
        } else if (c >= s) {
            continue; /* head was stale */
        }
        if (!atomic_compare_exchange_strong_explicit(&r->ctl, &c, me, memory_order_acq_rel, memory_order_relaxed))
            continue;
        atomic_store_explicit(&g->log_head, s + 1, memory_order_release);
        shr_store_relaxed(&r->time_ns, shr__now_ns(CLOCK_REALTIME));
        shr_store_relaxed(&r->meta, (uint64_t)my_pid() | (uint64_t)(uint16_t)type << 32 |
                                        (uint64_t)(uint8_t)(int8_t)gen << 48 | (uint64_t)(uint8_t)phase << 56);
        shr_store_relaxed(&r->a[0], a0);
        (void)SHR_FAULT(GC_LOG_WRITE); /* a crash point: half written, not committed */
        shr_store_relaxed(&r->a[1], a1);
        shr_store_relaxed(&r->a[2], a2);
        shr_store_relaxed(&r->a[3], a3);
        uint64_t want = me;
        atomic_compare_exchange_strong_explicit(&r->ctl, &want, s, memory_order_release, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&g->log_dropped, 1, memory_order_relaxed);
}

int64_t shr_gc_log_read(shr_heap_t *heap, uint64_t from_seq, shr_gc_event_t *out, size_t max, uint64_t *next_seq)
{
    if (!heap || (!out && max)) return -EINVAL;
    uint64_t cap;
    gc_logrec_t *ring = log_ring(heap, &cap);
    gc_global_t *g = shr__gc_global(heap);
    uint64_t head = atomic_load_explicit(&g->log_head, memory_order_acquire);
    if (cap == 0 || head == 0 || head >= LOG_BUSY) {
        if (next_seq) *next_seq = from_seq;
        return 0;
    }
    uint64_t s = from_seq ? from_seq : 1;
    if (head > cap && s < head - cap) s = head - cap; /* older ones are overwritten */
    size_t n = 0;
    for (; s < head && n < max; s++) {
        gc_logrec_t *r = &ring[s & (cap - 1)];
        uint64_t c1 = atomic_load_explicit(&r->ctl, memory_order_acquire);
        if (c1 == s) {
            shr_gc_event_t e;
            e.seq = s;
            e.time_ns = shr_load_relaxed(&r->time_ns);
            uint64_t m = shr_load_relaxed(&r->meta);
            for (int i = 0; i < 4; i++) e.a[i] = shr_load_relaxed(&r->a[i]);
            atomic_thread_fence(memory_order_acquire);
            if (shr_load_relaxed(&r->ctl) != s) continue; /* overwritten while copied */
            e.pid = (uint32_t)m;
            e.type = (uint16_t)(m >> 32);
            e.generation = (int8_t)(uint8_t)(m >> 48);
            e.phase = (uint8_t)(m >> 56);
            out[n++] = e;
            continue;
        }
        if (c1 & LOG_BUSY) {
            if (shr__owner_gone(heap, c1 & ~LOG_BUSY)) continue; /* torn by a dead writer: never returned */
            break; /* in progress (or a later lap's writer: then s is gone, skipped next time) */
        }
        if (c1 > s) continue; /* overwritten */
        break;                /* not yet written */
    }
    if (next_seq) *next_seq = s;
    return (int64_t)n;
}

int shr_gc_log_info(shr_heap_t *heap, shr_gc_log_info_t *out)
{
    if (!heap || !out) return -EINVAL;
    uint64_t cap;
    (void)log_ring(heap, &cap);
    gc_global_t *g = shr__gc_global(heap);
    out->records = cap;
    out->next_seq = shr_load_relaxed(&g->log_head);
    out->dropped = shr_load_relaxed(&g->log_dropped);
    return 0;
}

const char *shr_gc_event_name(int type)
{
    static const char *const names[SHR_GC_EV_MAX + 1] = {
        NULL,        "begin",     "stop",   "stopped", "phase",    "restarted", "end",  "timeout",
        "died",      "recovered", "leases", "threshold", "freeze", "unfreeze",  "reset"};
    return type > 0 && type <= SHR_GC_EV_MAX ? names[type] : NULL;
}
