/* The named crash points of <sharena/gc_points.h>: a process is killed at
 * each one in turn, in a heap with live objects, garbage cycles and a
 * shared list, and then the verifier finds no count below its true value
 * and no dangling reference, the heap checks clean, and the next
 * collections (trial deletion and the mark-sweep) run and leave it so. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_points, .fini = fini, .timeout = 240);

#define NAME_OF(p) p,
static const char *const points[] = {SHR_GC_POINTS(NAME_OF)};
#define NPOINTS (sizeof points / sizeof points[0])

/* The parent's heap: a published root over a live ring of 8 nodes, 20
 * garbage 2-cycles, and a named list holding ints, strs and refs to live
 * nodes. */
static void setup(shr_heap_t *h)
{
    const uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);
    shr_ref_t root, ring[8];
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 4, 16, &root), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &ring[i]), 0);
    for (int i = 0; i < 8; i++) cr_assert_eq(shr_obj_set(h, ring[i], 0, ring[(i + 1) % 8]), 0);
    cr_assert_eq(shr_obj_set(h, root, 0, ring[0]), 0);
    cr_assert_eq(shr_obj_publish(h, "root", root), 0);
    shr_value_t v[12];
    for (int i = 0; i < 4; i++) v[i] = shr_int(i);
    for (int i = 4; i < 8; i++) v[i] = shr_str("a string held by the list");
    for (int i = 8; i < 12; i++) v[i] = shr_refval(ring[i - 8]);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "L", v, 12, &l), 0);
    shr_list_close(l);
    for (int i = 0; i < 8; i++) shr_obj_release(h, ring[i]);
    shr_obj_release(h, root);
    make_cycles(h, 20);
}

/* A process that dies holding references: lease.drain's work. */
static int child_dies_holding(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    shr_ref_t r, n;
    if (shr_obj_lookup(h, "root", &r) != 0) return 11;
    for (int i = 0; i < 8; i++)
        if (shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &n) != 0 || shr_obj_set(h, n, 0, r) != 0) return 12;
    _exit(0); /* no close: the references are left for the next drain */
}

typedef struct {
    const char *name;
    const char *point;
} run_t;

/* Everything the points are on, in an order that reaches each: a
 * collection (the collector's points, with garbage to free), object calls,
 * list calls. Killed at the armed point; returns 0 when it was never
 * reached. */
static int child_workload(void *arg)
{
    run_t *a = arg;
    bool drain = strcmp(a->point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0;
    if (drain && shr_fault_arm(a->point, 1, SHR_FAULT_KILL) != 0) return 20; /* attach drains */
    shr_heap_t *h;
    if (shr_heap_attach(a->name, &h) != 0) return 10;
    if (!drain && shr_fault_arm(a->point, 1, SHR_FAULT_KILL) != 0) return 20;
    if (shr_gc_collect(h, 2, NULL) < 0) return 11;
    shr_ref_t root, dup, child, fresh;
    if (shr_obj_lookup(h, "root", &root) != 0) return 12;
    if (shr_obj_dup(h, root, &dup) != 0) return 13;
    if (shr_obj_get(h, root, 0, &child) != 0) return 14;
    if (shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &fresh) != 0) return 15;
    if (shr_obj_set(h, fresh, 0, child) != 0 || shr_obj_set(h, root, 1, fresh) != 0) return 16;
    if (shr_obj_publish(h, "fresh", fresh) != 0) return 17;
    if (shr_obj_set(h, root, 1, (shr_ref_t){0}) != 0) return 18;
    if (shr_obj_unpublish(h, "fresh") != 0) return 19;
    shr_obj_release(h, fresh); /* freed: its dealloc releases child */
    shr_obj_release(h, child);
    shr_obj_release(h, dup);
    shr_list_t *l;
    if (shr_list_attach(h, "L", &l) != 0) return 21;
    shr_value_t s = shr_str("replaced");
    if (shr_list_set(l, 5, &s) != 0) return 22;
    shr_value_t i = shr_int(7);
    if (shr_list_insert(l, 0, &i) != 0) return 23;
    for (int k = 0; k < 64; k++)
        if (shr_list_append(l, &i) != 0) return 24;
    shr_list_close(l);
    shr_obj_release(h, root);
    shr_heap_close(h);
    return 0;
}

static void check_heap(shr_heap_t *h, const char *point, const char *when)
{
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    int rc = shr_gc_verify(h, &v);
    cr_assert_eq(rc, 0, "%s, %s: verify %d (%s)", point, when, rc, shr_strerror(rc));
    cr_assert_eq(v.below, 0, "%s, %s: %lu counts below their true value", point, when, (unsigned long)v.below);
    cr_assert_eq(v.dangling, 0, "%s, %s: dangling references", point, when);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "%s, %s: the heap check", point, when);
}

Test(gc_points, a_kill_at_each_named_point_never_leaves_a_count_below_its_true_value)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out of this build");
    cr_assert_eq(NPOINTS, 21);
    for (size_t p = 0; p < NPOINTS; p++) {
        shr_heap_t *h;
        char name[96];
        snprintf(name, sizeof name, "%s", shr_test_name());
        cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
        setup(h);
        if (strcmp(points[p], SHR_GC_POINT_MID_LEASE_RELEASE) == 0) {
            pid_t d = shr_test_fork(child_dies_holding, name);
            cr_assert_eq(shr_test_wait(d), 0);
        }
        run_t a = {name, points[p]};
        pid_t pid = shr_test_fork(child_workload, &a);
        int st = shr_test_wait(pid);
        cr_assert_eq(st, 128 + SIGKILL, "%s: the workload was killed there (status %d)", points[p], st);
        check_heap(h, points[p], "after the kill");
        shr_gc_result_t r = SHR_GC_RESULT_INIT;
        cr_assert_geq(shr_gc_collect(h, 2, &r), 0, "%s: a collection after the kill", points[p]);
        cr_assert_geq(shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, NULL), 0, "%s: the mark-sweep", points[p]);
        check_heap(h, points[p], "after the collections");
        /* The live part is intact: the root still reaches its ring. */
        shr_ref_t root, n;
        cr_assert_eq(shr_obj_lookup(h, "root", &root), 0);
        cr_assert_eq(shr_obj_get(h, root, 0, &n), 0);
        for (int i = 0; i < 8; i++) {
            shr_ref_t next;
            cr_assert_neq(n.off, 0, "%s: the ring is whole", points[p]);
            cr_assert_eq(shr_obj_get(h, n, 0, &next), 0);
            shr_obj_release(h, n);
            n = next;
        }
        shr_obj_release(h, n);
        shr_obj_release(h, root);
        shr_heap_close(h);
        shr_heap_unlink(name);
    }
}

/* "stop" inside the gate keeps the world from stopping: the collection
 * times out, changes nothing, and logs it; SIGCONT, and it runs. */
static int child_stops_in_the_gate(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    shr_ref_t root, dup;
    if (shr_obj_lookup(h, "root", &root) != 0) return 11;
    if (shr_fault_arm(SHR_GC_POINT_HOLDING_GATE, 1, SHR_FAULT_STOP) != 0) return 12;
    if (shr_obj_dup(h, root, &dup) != 0) return 13;
    shr_obj_release(h, dup);
    shr_obj_release(h, root);
    shr_heap_close(h);
    return 0;
}

Test(gc_points, a_process_stopped_holding_the_gate_times_the_collection_out)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out of this build");
    shr_heap_t *h = make_heap();
    setup(h);
    pid_t pid = shr_test_fork(child_stops_in_the_gate, (void *)shr_heap_name(h));
    /* Wait for it to stop. */
    for (int i = 0; i < 2000; i++) {
        char path[64], st[256] = "";
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(st, sizeof st, f)) st[0] = 0;
            fclose(f);
        }
        char *c = strrchr(st, ')');
        if (c && c[2] == 'T') break;
        shr_test_sleep_ms(5);
    }
    setenv("SHARENA_GC_STOP_TIMEOUT_MS", "100", 1);
    shr_gc_log_info_t li;
    cr_assert_eq(shr_gc_log_info(h, &li), 0);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), -ETIMEDOUT);
    unsetenv("SHARENA_GC_STOP_TIMEOUT_MS");
    shr_gc_event_t ev[32];
    int64_t n = shr_gc_log_read(h, li.next_seq, ev, 32, NULL);
    int timeouts = 0;
    for (int64_t i = 0; i < n; i++)
        if (ev[i].type == SHR_GC_EV_TIMEOUT) {
            timeouts++;
            cr_assert_geq(ev[i].a[0], 100u * 1000 * 1000, "waited the stop timeout");
        }
    cr_assert_eq(timeouts, 1);
    kill(pid, SIGCONT);
    cr_assert_eq(shr_test_wait(pid), 0);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 40, "the garbage, once the world can stop");
    check_heap(h, "obj.gate stop", "after SIGCONT");
    done(h);
}
