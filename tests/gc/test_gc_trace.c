/* The verifier (shr_gc_verify) and the backup mark-sweep
 * (shr_gc_collect_with(SHR_GC_MARK_SWEEP)): a clean heap verifies clean; an
 * unreachable cycle shows as unreachable and the mark-sweep frees it; a
 * reference taken with no holder shows as a count above its true value and
 * the repair sets it back; a count lowered below its true value is
 * reported; objects a dead writer made and never stored are invisible to
 * trial deletion and reclaimed by the mark-sweep; processes killed at the
 * mutators' fault points and at random moments never leave a count below
 * its true value; the mark-sweep run while another process works frees
 * nothing it can still reach. White box (INTERNAL) only where a test must
 * make a count wrong on purpose. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"
#include "gc.h" /* shr__incref, shr__decref, obj_at: counts made wrong on purpose */

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_trace, .init = init, .fini = fini, .timeout = 300);

#define NEED_FAULTS()                                                              \
    do {                                                                           \
        if (!shr_fault_available()) cr_skip_test("fault points are compiled out"); \
    } while (0)

static shr_gc_verify_result_t verify(shr_heap_t *h, int want)
{
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    int rc = shr_gc_verify(h, &v);
    cr_assert_eq(rc, want, "verify: %d, want %d (below %llu, dangling %llu)", rc, want,
                 (unsigned long long)v.below, (unsigned long long)v.dangling);
    return v;
}

static shr_gc_result_t mark_sweep(shr_heap_t *h, int flags)
{
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect_with(h, SHR_GC_MARK_SWEEP | flags, 2, &r);
    cr_assert_geq(n, 0, "mark-sweep: %lld", (long long)n);
    cr_assert_eq(r.algorithm, SHR_GC_MARK_SWEEP);
    cr_assert_eq((uint64_t)n, r.collected + r.uncollectable);
    return r;
}

static shr_ref_t node(shr_heap_t *h, uint32_t nslots)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, nslots, 8, &r), 0);
    return r;
}

/* Blocks in use once this process's lease table exists. */
static uint64_t baseline(shr_heap_t *h)
{
    shr_obj_release(h, node(h, 1));
    return shr_test_blocks_in_use(h);
}

/* A little of everything, all reachable: a published ring of three nodes,
 * a named list of strings and of a node, a node held by a lease. */
static void build_live(shr_heap_t *h, shr_ref_t *held)
{
    shr_ref_t a = node(h, 1), b = node(h, 1), c = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, c), 0);
    cr_assert_eq(shr_obj_set(h, c, 0, a), 0);
    cr_assert_eq(shr_obj_publish(h, "ring", a), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    shr_obj_release(h, c);
    shr_list_t *l;
    shr_value_t in[3] = {shr_str("one"), shr_bytes("two", 3), shr_int(3)};
    cr_assert_eq(shr_list_create(h, "names", in, 3, &l), 0);
    *held = node(h, 2);
    shr_value_t v = shr_refval(*held);
    cr_assert_eq(shr_list_append(l, &v), 0);
    char big[20000];
    memset(big, 'x', sizeof big);
    v = shr_strn(big, sizeof big); /* over 16 KiB: outside the object pools */
    cr_assert_eq(shr_list_append(l, &v), 0);
    shr_list_close(l);
}

Test(gc_trace, a_clean_heap_verifies_clean)
{
    shr_heap_t *h = make_heap();
    verify(h, 0);
    shr_ref_t held;
    build_live(h, &held);
    shr_gc_verify_result_t v = verify(h, 0);
    /* 3 ring nodes, the list, "one", b"two", the held node, the big str */
    cr_assert_eq(v.objects, 8, "objects %llu", (unsigned long long)v.objects);
    cr_assert_eq(v.live, 8);
    cr_assert_eq(v.unreachable, 0);
    cr_assert_eq(v.above, 0);
    cr_assert_eq(v.below, 0);
    cr_assert_eq(v.dangling, 0);
    cr_assert_eq(v.external, 1, "the 20000-byte str is in an ordinary block");
    cr_assert_eq(v.root_refs, 2, "the ring's name and the list's");
    cr_assert_eq(v.lease_refs, 1, "this process holds one node");
    cr_assert_eq(v.edges, 3 + 4, "the ring's slots and the list's four references");
    cr_assert_eq(v.incomplete, 0);
    shr_gc_result_t r = mark_sweep(h, SHR_GC_REPAIR);
    cr_assert_eq(r.collected, 0, "a clean heap has no garbage");
    cr_assert_eq(r.repaired, 0);
    cr_assert(r.exact);
    cr_assert_eq(r.candidates, 7, "the walked objects");
    shr_obj_release(h, held);
    cr_assert_eq(shr_obj_unpublish(h, "ring"), 0);
    cr_assert_eq(shr_list_unlink(h, "names"), 0);
    v = verify(h, 0);
    cr_assert_eq(v.unreachable, 3, "the ring, unpublished, is a cycle");
    cr_assert_eq(v.live, 0);
    done(h);
}

Test(gc_trace, an_unreachable_cycle_shows_as_unreachable_and_the_mark_sweep_frees_it)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t a = node(h, 1), b = node(h, 1);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &l), 0);
    shr_value_t v = shr_refval(a);
    cr_assert_eq(shr_list_append(l, &v), 0);
    shr_ref_t lr;
    cr_assert_eq(shr_list_ref(l, &lr), 0);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, lr), 0); /* a -> b -> list -> a */
    shr_obj_release(h, lr);
    shr_list_close(l);
    shr_gc_verify_result_t r = verify(h, 0);
    cr_assert_eq(r.live, 3);
    cr_assert_eq(r.unreachable, 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    r = verify(h, 0);
    cr_assert_eq(r.unreachable, 3);
    cr_assert_eq(r.live, 0);
    cr_assert_eq(r.above, 0, "a cycle's counts are all explained by its own references");
    shr_gc_result_t m = mark_sweep(h, 0);
    cr_assert_eq(m.collected, 3);
    cr_assert_eq(m.generation, 2);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[2].collections, 1, "recorded as a full collection");
    cr_assert_eq(st.gen[2].collected, 3);
    r = verify(h, 0);
    cr_assert_eq(r.objects, 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "every block of the cycle freed");
    done(h);
}

Test(gc_trace, a_reference_with_no_holder_is_a_count_above_and_the_repair_sets_it_back)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t a = node(h, 1), b = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_publish(h, "a", a), 0);
    shr__incref(obj_at(h, b.off)); /* taken, never stored: a dead thread's in-flight reference */
    shr__incref(obj_at(h, b.off));
    shr_gc_verify_result_t v = verify(h, 0);
    cr_assert_eq(v.above, 1);
    cr_assert_eq(v.excess, 2);
    cr_assert_eq(v.first_above, b.off);
    cr_assert_eq(v.below, 0);
    cr_assert_eq(v.unreachable, 0);
    cr_assert_eq(shr_obj_refcount(h, b), 4, "the slot, the lease, two leaked");
    shr_gc_result_t r = mark_sweep(h, 0);
    cr_assert_eq(r.repaired, 0, "no repair unless asked");
    cr_assert_eq(shr_obj_refcount(h, b), 4);
    r = mark_sweep(h, SHR_GC_REPAIR);
    cr_assert(r.exact);
    cr_assert_eq(r.repaired, 1);
    cr_assert_eq(r.repaired_refs, 2);
    cr_assert_eq(shr_obj_refcount(h, b), 2, "set to its true value");
    v = verify(h, 0);
    cr_assert_eq(v.above, 0);
    /* With the count repaired, the last references free it. */
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(shr_obj_unpublish(h, "a"), 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "freed by their counts, nothing leaked");
    done(h);
}

Test(gc_trace, a_leaked_object_is_invisible_to_trial_deletion_and_freed_by_the_mark_sweep)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t a = node(h, 1), b = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    shr__incref(obj_at(h, a.off)); /* a reference nobody holds */
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    shr_gc_verify_result_t v = verify(h, 0);
    cr_assert_eq(v.unreachable, 2);
    cr_assert_eq(v.above, 1);
    cr_assert_eq(v.first_above, a.off);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 2, &r), 0, "trial deletion reads the leaked count as an outside reference");
    cr_assert_eq(shr_test_blocks_in_use(h), base + 2);
    r = mark_sweep(h, 0);
    cr_assert_eq(r.collected, 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    cr_assert_eq(verify(h, 0).objects, 0);
    done(h);
}

Test(gc_trace, a_count_below_its_true_value_is_reported_as_a_bug)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 1), b = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    obj_t *o = obj_at(h, b.off);
    atomic_fetch_sub(&o->refcnt, 1); /* one reference too few: the slot and the lease, count 1 */
    shr_gc_verify_result_t v = verify(h, SHR_ECORRUPT);
    cr_assert_eq(v.below, 1);
    cr_assert_eq(v.first_below, b.off);
    /* The mark-sweep keeps everything reachable and repairs nothing when a
     * count is below: the trace is not exact. */
    shr_gc_result_t r = mark_sweep(h, SHR_GC_REPAIR);
    cr_assert(!r.exact);
    cr_assert_eq(r.repaired, 0);
    cr_assert_eq(r.collected, 0);
    shr__incref(o); /* put it right */
    verify(h, 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    done(h);
}

Test(gc_trace, bad_arguments_are_refused_and_change_nothing)
{
    shr_heap_t *h = make_heap();
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    cr_assert_eq(shr_gc_verify(NULL, &v), -EINVAL);
    cr_assert_eq(shr_gc_verify(h, NULL), -EINVAL);
    v.size = 8;
    cr_assert_eq(shr_gc_verify(h, &v), -EINVAL);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect_with(NULL, SHR_GC_MARK_SWEEP, 2, &r), -EINVAL);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_BACON_RAJAN | SHR_GC_REPAIR, 2, &r), -EINVAL, "repair is the mark-sweep's");
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_BACON_RAJAN, 3, &r), -EINVAL);
    cr_assert_eq(shr_gc_collect_with(h, 7, 2, &r), -EINVAL);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 0, &r), -EINVAL, "a trace is of the whole heap");
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 3, &r), -EINVAL);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_TRIAL_DELETION | SHR_GC_REPAIR, 2, &r), -EINVAL);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP | 0x200, 2, &r), -EINVAL);
    shr_gc_stats_t st;
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[2].collections, 0, "nothing ran");
    /* The default algorithm through the new call. */
    shr_ref_t a = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, a), 0);
    shr_obj_release(h, a);
    cr_assert_eq(shr_gc_collect_with(h, SHR_GC_TRIAL_DELETION, 0, &r), 1);
    cr_assert_eq(r.algorithm, SHR_GC_TRIAL_DELETION);
    done(h);
}

Test(gc_trace, a_frozen_cycle_is_kept_by_the_mark_sweep)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 1), b = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(shr_gc_freeze(h), 2);
    cr_assert_eq(mark_sweep(h, 0).collected, 0, "the permanent generation is never collected");
    cr_assert_eq(verify(h, 0).unreachable, 2, "though nothing reaches it");
    cr_assert_eq(shr_gc_unfreeze(h), 2);
    cr_assert_eq(mark_sweep(h, 0).collected, 2);
    done(h);
}

/* ---- crashes --------------------------------------------------------------------- */

typedef struct work {
    shr_heap_t *h;
    const char *point; /* armed to kill at its nth passage, or NULL */
    int nth;
    unsigned seed;
    shr_test_gate_t *started;
} work_t;

/* Mutator work of every kind: sets and gets of nodes, strings into the
 * named list (set, append, pop), lists in slots, dup and release,
 * publish and unpublish. Runs until killed (or 20000 rounds). */
static int mutator(void *arg)
{
    work_t *w = arg;
    shr_heap_t *h = w->h;
    shr_ref_t ring;
    shr_list_t *l;
    if (shr_obj_lookup(h, "ring", &ring) != 0) return 10;
    if (shr_list_attach(h, "names", &l) != 0) return 11;
    if (w->started) shr_test_gate_open(w->started);
    if (w->point && shr_fault_arm(w->point, (uint64_t)w->nth, SHR_FAULT_KILL) != 0) return 12;
    unsigned seed = w->seed;
    char buf[64];
    for (int it = 0; it < 20000; it++) {
        unsigned r = (unsigned)rand_r(&seed);
        snprintf(buf, sizeof buf, "item %u", r);
        shr_value_t v = shr_str(buf);
        switch (r % 8) {
        case 0: shr_list_append(l, &v); break;
        case 1:
            if (shr_list_len(l) > 8) shr_list_pop(l, (int64_t)(r % 8), NULL);
            break;
        case 2: {
            shr_ref_t x = node(h, 2), y;
            shr_obj_set(h, x, 0, ring);
            shr_obj_set(h, ring, 1, x);
            if (shr_obj_dup(h, x, &y) == 0) shr_obj_release(h, y);
            shr_obj_release(h, x);
            break;
        }
        case 3: {
            shr_ref_t x;
            if (shr_obj_get(h, ring, 1, &x) == 0 && x.off) {
                shr_obj_set(h, x, 1, x); /* a cycle through itself */
                shr_obj_release(h, x);
            }
            break;
        }
        case 4: {
            shr_ref_t lr;
            if (shr_list_ref(l, &lr) == 0) {
                shr_ref_t x = node(h, 1);
                shr_obj_set(h, x, 0, lr);
                shr_obj_release(h, lr);
                if (shr_obj_publish(h, "tmp", x) == 0) shr_obj_unpublish(h, "tmp");
                shr_obj_release(h, x);
            }
            break;
        }
        case 5: shr_gc_collect(h, (int)(r % 3), NULL); break;
        default: shr_list_set(l, (int64_t)(r % 8), &v); break;
        }
    }
    return 0;
}

static shr_heap_t *crash_heap(void)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 2);
    cr_assert_eq(shr_obj_set(h, a, 0, a), 0);
    cr_assert_eq(shr_obj_publish(h, "ring", a), 0);
    shr_obj_release(h, a);
    shr_value_t in[8];
    for (int i = 0; i < 8; i++) in[i] = shr_str("initial");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "names", in, 8, &l), 0);
    shr_list_close(l);
    return h;
}

static void after_kill(shr_heap_t *h, const char *what)
{
    cr_assert_geq(shr_heap_recover(h), 0);
    shr_gc_verify_result_t v = verify(h, 0);
    cr_assert_eq(v.below, 0, "%s: a count below its true value", what);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "%s: heap check", what);
}

Test(gc_trace, kills_at_the_mutators_fault_points_never_leave_a_count_below)
{
    NEED_FAULTS();
    static const char *points[] = {"obj.set",   "obj.alloc",   "lease.record", "lease.forget", "list.set.commit",
                                   "list.shift", "list.grow.swap", "obj.dealloc", "list.alloc", "gc.stopped",
                                   "gc.flagged", "gc.clear",    "gc.free",      "gc.promote"};
    shr_heap_t *h = crash_heap();
    int kills = 0;
    for (size_t p = 0; p < sizeof points / sizeof *points; p++)
        for (int nth = 1; nth <= 7; nth += 3) {
            work_t w = {.h = h, .point = points[p], .nth = nth, .seed = (unsigned)(p * 31 + (size_t)nth)};
            pid_t pid = shr_test_fork(mutator, &w);
            int st = shr_test_wait(pid);
            cr_assert(st == 128 + SIGKILL || st == 0, "%s:%d: the mutator ended with %d", points[p], nth, st);
            kills += st == 128 + SIGKILL;
            char what[64];
            snprintf(what, sizeof what, "killed at %s:%d", points[p], nth);
            after_kill(h, what);
        }
    cr_assert_gt(kills, 20, "most points were reached (%d kills)", kills);
    /* What the dead left: the mark-sweep frees it and the verifier agrees. */
    shr_gc_result_t r = mark_sweep(h, SHR_GC_REPAIR);
    cr_assert(r.exact);
    shr_gc_verify_result_t v = verify(h, 0);
    cr_assert_eq(v.unreachable, 0);
    cr_assert_eq(v.above, 0, "every leaked count repaired");
    done(h);
}

Test(gc_trace, kills_at_random_moments_never_leave_a_count_below)
{
    shr_heap_t *h = crash_heap();
    shr_test_gate_t gate;
    shr_test_gate_init(&gate);
    unsigned seed = 7;
    for (int k = 0; k < 25; k++) {
        work_t w = {.h = h, .seed = seed + (unsigned)k, .started = &gate};
        pid_t pid = shr_test_fork(mutator, &w);
        cr_assert(shr_test_gate_wait(&gate, 10000));
        shr_test_sleep_ms(1 + (unsigned)(rand_r(&seed) % 25));
        kill(pid, SIGKILL);
        shr_test_wait(pid);
        after_kill(h, "a random kill");
        if (k % 5 == 4) mark_sweep(h, SHR_GC_REPAIR);
    }
    done(h);
}

/* The verifier and the mark-sweep while another process works: every
 * verify is clean, and what the worker can reach survives every sweep. */
static int ring_keeper(void *arg)
{
    work_t *w = arg;
    shr_heap_t *h = w->h;
    shr_ref_t ring;
    shr_list_t *l;
    if (shr_obj_lookup(h, "ring", &ring) != 0) return 10;
    if (shr_list_attach(h, "names", &l) != 0) return 11;
    shr_test_gate_open(w->started);
    for (int it = 0; it < 3000; it++) {
        /* A private chain of two nodes, held only through leases, and a
         * string read back from the list. */
        shr_ref_t x = node(h, 1), y = node(h, 1), z;
        snprintf(shr_obj_payload(h, y, NULL), 8, "%d", it % 1000000);
        if (shr_obj_set(h, x, 0, y) != 0) return 12;
        shr_obj_release(h, y);
        char buf[32];
        snprintf(buf, sizeof buf, "keep %d", it);
        shr_value_t v = shr_str(buf);
        if (shr_list_set(l, it % 8, &v) != 0) return 13;
        shr_value_t got;
        if (shr_list_get(l, it % 8, &got) != 0) return 14;
        if (got.type != SHR_STR || strcmp(got.u.s.data, buf) != 0) return 15;
        shr_value_release(h, &got);
        if (shr_obj_get(h, x, 0, &z) != 0 || z.off == 0) return 16;
        char want[8];
        snprintf(want, sizeof want, "%d", it % 1000000);
        if (strcmp(shr_obj_payload(h, z, NULL), want) != 0) return 17; /* freed under us */
        shr_obj_release(h, z);
        shr_obj_release(h, x);
    }
    shr_list_close(l);
    shr_obj_release(h, ring);
    return 0;
}

Test(gc_trace, verify_and_mark_sweep_run_safely_while_another_process_works)
{
    shr_heap_t *h = crash_heap();
    shr_test_gate_t gate;
    shr_test_gate_init(&gate);
    work_t w = {.h = h, .started = &gate};
    pid_t pid = shr_test_fork(ring_keeper, &w);
    cr_assert(shr_test_gate_wait(&gate, 10000));
    int rounds = 0;
    for (; rounds < 400; rounds++) {
        if (rounds % 2) {
            verify(h, 0);
        } else {
            shr_gc_result_t r = mark_sweep(h, SHR_GC_REPAIR);
            cr_assert(r.exact, "no reference unseen while a live process works");
            cr_assert_eq(r.repaired, 0, "a live process's counts are all explained");
        }
        if (kill(pid, 0) != 0) break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the worker failed: %d", st);
            pid = 0;
            break;
        }
    }
    if (pid) cr_assert_eq(shr_test_wait(pid), 0, "the worker found an object freed under it");
    cr_assert_gt(rounds, 3);
    shr_gc_verify_result_t v = verify(h, 0);
    cr_assert_eq(v.above, 0);
    done(h);
}
