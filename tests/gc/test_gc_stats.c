/* The collector's measurements through the public API: the time of each
 * phase, candidates, edges, bytes freed (shr_gc_result_t and the
 * per-generation statistics), the pause histograms, and the measuring
 * window of shr_gc_stats_reset, in this process and in another. No timing
 * is asserted beyond order (the machine is noisy): phases sum to the pause,
 * the histogram counts every collection. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_stats, .fini = fini, .timeout = 120);

static shr_ref_t node(shr_heap_t *h, uint32_t nslots)
{
    shr_ref_t r = {0};
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, nslots, 0, &r), 0);
    return r;
}

/* n garbage 2-cycles of one-slot nodes. */
static shr_heap_t *quiet_heap(void)
{
    shr_heap_t *h = make_heap();
    const uint32_t off[3] = {0, 10, 10}; /* no automatic collection */
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);
    return h;
}

static unsigned bucket_of(uint64_t ns)
{
    unsigned b = 0;
    while (ns > 1) {
        ns >>= 1;
        b++;
    }
    return b < SHR_GC_HIST_BUCKETS ? b : SHR_GC_HIST_BUCKETS - 1;
}

static void check_phases(const shr_gc_result_t *r)
{
    uint64_t stopped = 0;
    for (int p = SHR_GC_PHASE_STOP; p <= SHR_GC_PHASE_RESTART; p++) stopped += r->phase_ns[p];
    cr_assert_leq(stopped, r->pause_ns, "the phases of the pause sum to no more than it: %lu > %lu",
                  (unsigned long)stopped, (unsigned long)r->pause_ns);
    cr_assert_eq(r->phase_ns[SHR_GC_PHASE_STOP], r->ttsp_ns, "STOP is the time to stop the world");
    cr_assert_leq(r->pause_ns + r->phase_ns[SHR_GC_PHASE_FREE], r->total_ns, "FREE comes after the pause");
    cr_assert_gt(r->pause_ns, 0);
}

Test(gc_stats, trial_deletion_reports_phases_candidates_edges_and_bytes)
{
    shr_heap_t *h = quiet_heap();
    make_cycles(h, 500);
    shr_ref_t keep = node(h, 3); /* a live candidate with no edges */
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(r.size, sizeof r);
    cr_assert_eq(shr_gc_collect(h, 0, &r), 1000);
    check_phases(&r);
    cr_assert_eq(r.candidates, 1001);
    cr_assert_eq(r.edges, 1000, "each garbage node holds one reference, the live one none");
    cr_assert_gt(r.phase_ns[SHR_GC_PHASE_WALK], 0);
    cr_assert_gt(r.phase_ns[SHR_GC_PHASE_SUBTRACT], 0);
    cr_assert_gt(r.phase_ns[SHR_GC_PHASE_FREE], 0);
    /* A one-slot node is 56 bytes: its block holds at least that. */
    cr_assert_geq(r.bytes_freed, 1000u * 56, "bytes freed %lu", (unsigned long)r.bytes_freed);
    cr_assert_leq(r.bytes_freed, 1000u * 128);

    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[0].collections, 1);
    cr_assert_eq(st.gen[0].candidates, 1001);
    cr_assert_eq(st.gen[0].edges, 1000);
    cr_assert_eq(st.gen[0].bytes_freed, r.bytes_freed);
    for (int p = 0; p < SHR_GC_NPHASES; p++) cr_assert_eq(st.gen[0].phase_ns[p], r.phase_ns[p], "phase %d", p);
    cr_assert_leq(st.gen[0].total_ns, r.total_ns);
    cr_assert_eq(st.gen[0].pause_hist[bucket_of(r.pause_ns)], 1, "the pause is in its log2 bucket");
    shr_obj_release(h, keep);
    done(h);
}

Test(gc_stats, mark_sweep_reports_the_same_measurements)
{
    shr_heap_t *h = quiet_heap();
    make_cycles(h, 200);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, &r), 400);
    check_phases(&r);
    cr_assert_eq(r.phase_ns[SHR_GC_PHASE_SUBTRACT], 0, "the mark-sweep subtracts nothing");
    cr_assert_geq(r.candidates, 400);
    cr_assert_geq(r.edges, 400);
    cr_assert_geq(r.bytes_freed, 400u * 56);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[2].collections, 1);
    cr_assert_eq(st.gen[2].bytes_freed, r.bytes_freed);
    cr_assert_eq(st.gen[2].edges, r.edges);
    done(h);
}

Test(gc_stats, a_caller_with_the_old_struct_gets_only_its_fields)
{
    shr_heap_t *h = quiet_heap();
    make_cycles(h, 10);
    struct {
        shr_gc_result_t r;
        char guard[64];
    } w;
    memset(&w, 0x5a, sizeof w);
    w.r.size = offsetof(shr_gc_result_t, phase_ns); /* a caller built before the measurements */
    cr_assert_eq(shr_gc_collect(h, 2, &w.r), 20);
    cr_assert_eq(w.r.collected, 20);
    const unsigned char *p = (const unsigned char *)&w.r + offsetof(shr_gc_result_t, phase_ns);
    for (size_t i = 0; i < sizeof w.r - offsetof(shr_gc_result_t, phase_ns); i++)
        cr_assert_eq(p[i], 0x5a, "byte %zu past the caller's size was written", i);
    done(h);
}

Test(gc_stats, the_histogram_counts_every_collection)
{
    shr_heap_t *h = quiet_heap();
    uint64_t want[3] = {0, 0, 0};
    for (int i = 0; i < 30; i++) {
        int gen = i % 3;
        make_cycles(h, i);
        shr_gc_result_t r = SHR_GC_RESULT_INIT;
        cr_assert_geq(shr_gc_collect(h, gen, &r), 0);
        check_phases(&r);
        want[gen]++;
    }
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_geq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, &r), 0);
    want[2]++;
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    for (int g = 0; g < 3; g++) {
        uint64_t sum = 0, phases = 0;
        for (int b = 0; b < SHR_GC_HIST_BUCKETS; b++) sum += st.gen[g].pause_hist[b];
        for (int p = SHR_GC_PHASE_STOP; p <= SHR_GC_PHASE_RESTART; p++) phases += st.gen[g].phase_ns[p];
        cr_assert_eq(st.gen[g].collections, want[g]);
        cr_assert_eq(sum, want[g], "generation %d: the histogram holds every collection", g);
        cr_assert_leq(phases, st.gen[g].pause_ns_total, "generation %d: phases within the pauses", g);
        cr_assert_leq(st.gen[g].pause_ns_total, st.gen[g].total_ns);
    }
    done(h);
}

Test(gc_stats, reset_opens_a_window)
{
    shr_heap_t *h = quiet_heap();
    make_cycles(h, 50);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 100);
    cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.resets, 0);
    uint64_t created = st.window_start_ns;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    cr_assert_leq(created, now);
    cr_assert_gt(created, 0);
    uint64_t llt = st.long_lived_total;
    cr_assert_eq(shr_gc_stats_reset(h), 0);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.resets, 1);
    cr_assert_geq(st.window_start_ns, now);
    cr_assert_eq(st.long_lived_total, llt, "the long-lived counts steer the collector: kept");
    for (int g = 0; g < 3; g++) {
        const shr_gc_gen_stats_t *s = &st.gen[g];
        cr_assert_eq(s->collections + s->collected + s->uncollectable + s->pause_ns_total + s->pause_ns_max +
                         s->ttsp_ns_max + s->candidates + s->edges + s->bytes_freed + s->total_ns,
                     0, "generation %d zeroed", g);
        for (int b = 0; b < SHR_GC_HIST_BUCKETS; b++) cr_assert_eq(s->pause_hist[b], 0);
        for (int p = 0; p < SHR_GC_NPHASES; p++) cr_assert_eq(s->phase_ns[p], 0);
    }
    uint32_t t[3];
    cr_assert_eq(shr_gc_get_threshold(h, t), 0);
    cr_assert_eq(t[0], 0, "thresholds kept");
    /* The window counts what follows, alone. */
    make_cycles(h, 7);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 2, &r), 14);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[2].collections, 1);
    cr_assert_eq(st.gen[2].collected, 14);
    cr_assert_eq(st.gen[2].pause_ns_total, r.pause_ns);
    cr_assert_eq(st.gen[0].collections, 0);
    cr_assert_eq(shr_gc_stats_reset(NULL), -EINVAL);
    done(h);
}

static void reset_in_callback(shr_heap_t *h, const char *phase, const shr_gc_info_t *info, void *arg)
{
    (void)phase;
    (void)info;
    int *rc = arg;
    *rc = shr_gc_stats_reset(h);
}

Test(gc_stats, reset_from_a_callback_is_refused)
{
    shr_heap_t *h = quiet_heap();
    int rc = 1;
    cr_assert_eq(shr_gc_callback_add(h, reset_in_callback, &rc), 0);
    cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    cr_assert_eq(rc, -EDEADLK);
    cr_assert_eq(shr_gc_callback_remove(h, reset_in_callback, &rc), 0);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[0].collections, 1, "the refused reset changed nothing");
    done(h);
}

Test(gc_stats, phase_names)
{
    const char *want[SHR_GC_NPHASES] = {"stop", "walk", "subtract", "mark", "promote", "restart", "free"};
    for (int p = 0; p < SHR_GC_NPHASES; p++) cr_assert_str_eq(shr_gc_phase_name(p), want[p]);
    cr_assert_null(shr_gc_phase_name(-1));
    cr_assert_null(shr_gc_phase_name(SHR_GC_NPHASES));
}

/* Another process collects and resets; this one reads the segment's numbers. */
static int child_collects_then_resets(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    for (int i = 0; i < 5; i++) {
        for (int k = 0; k < 20; k++) {
            shr_ref_t a, b;
            if (shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &a) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &b)) return 11;
            if (shr_obj_set(h, a, 0, b) || shr_obj_set(h, b, 0, a)) return 12;
            shr_obj_release(h, a);
            shr_obj_release(h, b);
        }
        if (shr_gc_collect(h, 1, NULL) != 40) return 13;
    }
    shr_heap_close(h);
    return 0;
}

static int child_resets(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    int rc = shr_gc_stats_reset(h);
    shr_heap_close(h);
    return rc == 0 ? 0 : 11;
}

Test(gc_stats, another_process_reads_and_resets_the_same_numbers)
{
    shr_heap_t *h = quiet_heap();
    pid_t pid = shr_test_fork(child_collects_then_resets, (void *)shr_heap_name(h));
    cr_assert_eq(shr_test_wait(pid), 0);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[1].collections, 5);
    cr_assert_eq(st.gen[1].collected, 200);
    cr_assert_eq(st.gen[1].edges, 200);
    uint64_t sum = 0;
    for (int b = 0; b < SHR_GC_HIST_BUCKETS; b++) sum += st.gen[1].pause_hist[b];
    cr_assert_eq(sum, 5);
    pid = shr_test_fork(child_resets, (void *)shr_heap_name(h));
    cr_assert_eq(shr_test_wait(pid), 0);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.resets, 1);
    cr_assert_eq(st.gen[1].collections, 0);
    cr_assert_eq(st.gen[1].pause_hist[bucket_of(1)], 0);
    done(h);
}
