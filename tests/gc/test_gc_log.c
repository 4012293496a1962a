/* The collector's event log through the public API: the events of a
 * collection in order, with their numbers; the ring wraps and keeps the
 * newest; its size is the heap's option; a record a writer was killed in
 * the middle of is never returned and does not stop readers or writers;
 * another process follows the log while collections run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_log, .fini = fini, .timeout = 120);

static shr_heap_t *log_heap(uint32_t records)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.gc_log_records = records;
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    const uint32_t off[3] = {0, 10, 10}; /* no automatic collection */
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);
    return h;
}


/* What one trial-deletion collection writes, in order: type and phase. */
static const struct {
    int type, phase;
} trial_events[] = {
    {SHR_GC_EV_BEGIN, 0},
    {SHR_GC_EV_STOP, 0},
    {SHR_GC_EV_STOPPED, 0},
    {SHR_GC_EV_PHASE, SHR_GC_PHASE_WALK},
    {SHR_GC_EV_PHASE, SHR_GC_PHASE_SUBTRACT},
    {SHR_GC_EV_PHASE, SHR_GC_PHASE_MARK},
    {SHR_GC_EV_PHASE, SHR_GC_PHASE_PROMOTE},
    {SHR_GC_EV_RESTARTED, 0},
    {SHR_GC_EV_PHASE, SHR_GC_PHASE_FREE},
    {SHR_GC_EV_END, 0},
};
#define NTRIAL (sizeof trial_events / sizeof trial_events[0])

/* Does ev[0..] hold one trial deletion's events in order? Returns 0, or the
 * index of the first one that differs + 1. */
static size_t trial_mismatch(const shr_gc_event_t *ev, size_t n)
{
    if (n < NTRIAL) return n + 1;
    for (size_t i = 0; i < NTRIAL; i++) {
        if (ev[i].type != trial_events[i].type) return i + 1;
        if (ev[i].type == SHR_GC_EV_PHASE && ev[i].phase != trial_events[i].phase) return i + 1;
        if (i && ev[i].seq != ev[i - 1].seq + 1) return i + 1;
        if (i && ev[i].time_ns < ev[i - 1].time_ns) return i + 1;
    }
    return 0;
}

Test(gc_log, a_collection_writes_its_events_in_order_with_their_numbers)
{
    shr_heap_t *h = log_heap(0);
    shr_gc_log_info_t li;
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_geq(li.records, 64, "a default log");
    uint64_t from = li.next_seq;
    make_cycles(h, 100);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 1, &r), 200);
    shr_gc_event_t ev[64];
    uint64_t next = 0;
    int64_t n = shr_gc_log_read(h, from, ev, 64, &next);
    cr_assert_eq(n, (int64_t)NTRIAL, "%ld events", (long)n);
    cr_assert_eq(trial_mismatch(ev, (size_t)n), 0, "event %zu out of order", trial_mismatch(ev, (size_t)n));
    cr_assert_eq(next, ev[n - 1].seq + 1);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(ev[i].pid, (uint32_t)getpid());
        cr_assert_eq(ev[i].generation, 1);
    }
    cr_assert_eq(ev[0].a[0], SHR_GC_TRIAL_DELETION);
    cr_assert_eq(ev[0].a[1], 0, "explicit, not automatic");
    cr_assert_gt(ev[2].a[0], 0, "STOPPED: the time to stop");
    cr_assert_leq(ev[2].a[0], r.ttsp_ns);
    cr_assert_eq(ev[3].a[0], r.phase_ns[SHR_GC_PHASE_WALK]);
    cr_assert_eq(ev[3].a[1], 200, "WALK: the candidates");
    cr_assert_eq(ev[4].a[1], 200, "SUBTRACT: the edges");
    cr_assert_gt(ev[7].a[0], 0, "RESTARTED: the pause");
    cr_assert_leq(ev[7].a[0], r.pause_ns);
    cr_assert_eq(ev[8].a[1], 200, "FREE: objects freed");
    cr_assert_eq(ev[8].a[2], r.bytes_freed);
    cr_assert_eq(ev[9].a[0], 200, "END: collected");
    cr_assert_eq(ev[9].a[1], 0);
    cr_assert_eq(ev[9].a[2], r.bytes_freed);
    /* Nothing new: 0, and the same next. */
    uint64_t again = 0;
    cr_assert_eq(shr_gc_log_read(h, next, ev, 64, &again), 0);
    cr_assert_eq(again, next);
    /* Freeze, reset, a mark-sweep: their events too. */
    cr_assert_eq(shr_gc_freeze(h), 0);
    cr_assert_eq(shr_gc_stats_reset(h), 0);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, NULL), 0);
    n = shr_gc_log_read(h, next, ev, 64, &next);
    cr_assert_gt(n, 0);
    int freeze = 0, reset = 0, ms_begin = 0, ms_end = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ev[i].type == SHR_GC_EV_FREEZE) freeze++;
        if (ev[i].type == SHR_GC_EV_RESET) reset++;
        if (ev[i].type == SHR_GC_EV_BEGIN && ev[i].a[0] == SHR_GC_MARK_SWEEP) ms_begin++;
        if (ev[i].type == SHR_GC_EV_END && ev[i].generation == 2) ms_end++;
        cr_assert_not_null(shr_gc_event_name(ev[i].type));
    }
    cr_assert_eq(freeze + reset + ms_begin + ms_end, 4);
    cr_assert_eq(shr_gc_log_read(NULL, 0, ev, 1, NULL), -EINVAL);
    cr_assert_eq(shr_gc_log_read(h, 0, NULL, 1, NULL), -EINVAL);
    cr_assert_eq(shr_gc_log_info(h, NULL), -EINVAL);
    cr_assert_null(shr_gc_event_name(0));
    cr_assert_null(shr_gc_event_name(SHR_GC_EV_MAX + 1));
    cr_assert_str_eq(shr_gc_event_name(SHR_GC_EV_BEGIN), "begin");
    done(h);
}

Test(gc_log, an_automatic_collection_says_which_threshold)
{
    shr_heap_t *h = log_heap(4096);
    const uint32_t t[3] = {100, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, t), 0);
    make_cycles(h, 200);
    shr_gc_event_t ev[256];
    int64_t n = shr_gc_log_read(h, 0, ev, 256, NULL);
    cr_assert_gt(n, 0);
    int64_t i = 0;
    while (i < n && ev[i].type != SHR_GC_EV_THRESHOLD) i++;
    cr_assert_lt(i, n, "a threshold event");
    cr_assert_eq(ev[i].generation, 0);
    cr_assert_gt(ev[i].a[0], 100);
    cr_assert_eq(ev[i].a[1], 100);
    cr_assert_eq(ev[i + 1].type, SHR_GC_EV_BEGIN);
    cr_assert_eq(ev[i + 1].a[1], 1, "automatic");
    done(h);
}

Test(gc_log, the_ring_wraps_and_keeps_the_newest)
{
    shr_heap_t *h = log_heap(16);
    shr_gc_log_info_t li;
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_eq(li.records, 16);
    for (int i = 0; i < 20; i++) cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_eq(li.next_seq, 1 + 20 * NTRIAL, "every event had a number");
    cr_assert_eq(li.dropped, 0);
    shr_gc_event_t ev[64];
    uint64_t next;
    int64_t n = shr_gc_log_read(h, 0, ev, 64, &next);
    cr_assert_eq(n, 16, "a full ring");
    cr_assert_eq(ev[0].seq, li.next_seq - 16, "the newest 16");
    for (int i = 1; i < 16; i++) cr_assert_eq(ev[i].seq, ev[i - 1].seq + 1);
    cr_assert_eq(ev[15].type, SHR_GC_EV_END);
    cr_assert_eq(next, li.next_seq);
    /* A reader that fell behind starts at the oldest kept. */
    cr_assert_eq(shr_gc_log_read(h, 3, ev, 64, NULL), 16);
    cr_assert_eq(ev[0].seq, li.next_seq - 16);
    /* max bounds the copy; next says where to go on. */
    cr_assert_eq(shr_gc_log_read(h, 0, ev, 5, &next), 5);
    cr_assert_eq(next, ev[4].seq + 1);
    done(h);
}

Test(gc_log, the_size_is_the_heaps_option)
{
    shr_heap_t *h = log_heap(100);
    shr_gc_log_info_t li;
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_eq(li.records, 128, "rounded up to a power of two");
    /* Another process sees the same log. */
    shr_heap_t *h2;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &h2), 0);
    cr_assert_eq(shr_gc_log_info(h2, &li), 0);
    cr_assert_eq(li.records, 128);
    shr_heap_close(h2);
    done(h);

    h = log_heap(SHR_GC_LOG_NONE);
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_eq(li.records, 0);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 0);
    shr_gc_event_t ev[4];
    uint64_t next = 77;
    cr_assert_eq(shr_gc_log_read(h, 5, ev, 4, &next), 0, "no log: nothing");
    cr_assert_eq(next, 5);
    done(h);

    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.gc_log_records = SHR_GC_LOG_MAX + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL);
}

/* A collector in another process, killed at its nth log write (after the
 * first field, before the commit). */
typedef struct {
    const char *name;
    int nth;
} killed_t;

static int child_killed_in_a_record(void *arg)
{
    killed_t *k = arg;
    shr_heap_t *h;
    if (shr_heap_attach(k->name, &h) != 0) return 10;
    if (shr_fault_arm("gc.log.write", (uint64_t)k->nth, SHR_FAULT_KILL) != 0) return 11;
    shr_gc_collect(h, 2, NULL);
    return 12; /* not reached */
}

Test(gc_log, a_record_torn_by_a_kill_is_never_returned)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out of this build");
    for (int nth = 1; nth <= 3; nth++) {
        shr_heap_t *h = log_heap(16);
        shr_gc_log_info_t li;
        cr_assert_eq(shr_gc_log_info(h, &li), 0);
        uint64_t first = li.next_seq;
        killed_t k = {shr_heap_name(h), nth};
        pid_t pid = shr_test_fork(child_killed_in_a_record, &k);
        int st = shr_test_wait(pid);
        cr_assert_eq(st, 128 + SIGKILL, "killed at the point (status %d)", st);
        /* Records first .. first+nth-2 are whole; first+nth-1 is torn. */
        shr_gc_event_t ev[64];
        uint64_t next;
        int64_t n = shr_gc_log_read(h, first, ev, 64, &next);
        cr_assert_eq(n, nth - 1, "nth %d: the whole records only (%ld)", nth, (long)n);
        for (int64_t i = 0; i < n; i++) {
            cr_assert_eq(ev[i].seq, first + (uint64_t)i);
            cr_assert_eq(ev[i].pid, (uint32_t)pid);
        }
        cr_assert_eq(next, first + (uint64_t)nth, "the torn record is skipped, not waited for");
        /* The heap goes on: the next collection finds the dead collector
         * and logs it; its records come after the torn one. */
        cr_assert_eq(shr_gc_collect(h, 2, NULL), 0);
        n = shr_gc_log_read(h, first, ev, 64, &next);
        cr_assert_geq(n, (int64_t)(nth - 1 + NTRIAL));
        int died = 0, recovered = 0;
        for (int64_t i = 0; i < n; i++) {
            cr_assert_neq(ev[i].seq, first + (uint64_t)nth - 1, "the torn record is never returned");
            if (ev[i].type == SHR_GC_EV_DIED) died++;
            if (ev[i].type == SHR_GC_EV_RECOVERED) recovered++;
        }
        cr_assert_eq(died, 1, "nth %d: the dead collector found", nth);
        /* nth 3 died in STOPPED: its request was up, and withdrawn. */
        cr_assert_eq(recovered, nth == 3 ? 1 : 0, "nth %d", nth);
        /* Wrap past the torn slot: the next writer there takes it over. */
        for (int i = 0; i < 4; i++) cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
        cr_assert_eq(shr_gc_log_info(h, &li), 0);
        cr_assert_eq(li.dropped, 0);
        n = shr_gc_log_read(h, 0, ev, 64, &next);
        cr_assert_eq(n, 16, "a full ring of whole records again");
        cr_assert_eq(ev[15].type, SHR_GC_EV_END);
        done(h);
    }
}

/* A reader in another process follows the log while this one collects. */
static int child_follows(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    shr_gc_event_t *ev = calloc(4096, sizeof *ev);
    size_t have = 0;
    uint64_t next = 0;
    int ends = 0;
    for (int spins = 0; ends < 50 && spins < 200000; spins++) {
        int64_t n = shr_gc_log_read(h, next, ev + have, 4096 - have, &next);
        if (n < 0) return 11;
        for (int64_t i = 0; i < n; i++)
            if (ev[have + (size_t)i].type == SHR_GC_EV_END) ends++;
        have += (size_t)n;
        if (n == 0) usleep(100);
    }
    if (ends != 50) return 12;
    if (have != 50 * NTRIAL) return 13;
    for (size_t c = 0; c < 50; c++)
        if (trial_mismatch(ev + c * NTRIAL, NTRIAL)) return 14;
    for (size_t i = 1; i < have; i++)
        if (ev[i].seq != ev[i - 1].seq + 1) return 15;
    free(ev);
    shr_heap_close(h);
    return 0;
}

Test(gc_log, a_reader_in_another_process_sees_each_collection_in_order)
{
    shr_heap_t *h = log_heap(4096);
    pid_t pid = shr_test_fork(child_follows, (void *)shr_heap_name(h));
    for (int i = 0; i < 50; i++) {
        make_cycles(h, 10);
        cr_assert_eq(shr_gc_collect(h, i % 3, NULL), 20);
        if (i % 10 == 0) shr_test_sleep_ms(1);
    }
    cr_assert_eq(shr_test_wait(pid), 0);
    done(h);
}
