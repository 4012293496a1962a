/* The cycle collector across processes: cycles of nodes and of lists built
 * by one process and collected by another while a third mutates the heap;
 * a live process that does not stop (SIGSTOP); the collector killed at each
 * of its fault points; mutators killed holding references or inside a
 * call; and random kills of mutators and collectors. After each: no
 * reachable object freed, the heap checks clean, and the next collection
 * finishes the job. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static pid_t stopped_child;

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }

static void fini(void)
{
    if (stopped_child > 0) kill(stopped_child, SIGKILL);
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    unsetenv("SHARENA_GC_STOP_TIMEOUT_MS");
    shr_test_cleanup();
}
TestSuite(gc_multiproc, .init = init, .fini = fini, .timeout = 300);

#define NEED_FAULTS()                                                                  \
    do {                                                                               \
        if (!shr_fault_available()) cr_skip_test("fault points are compiled out");     \
    } while (0)

static int64_t collect_ok(shr_heap_t *h, int gen)
{
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t n = shr_gc_collect(h, gen, &r);
    cr_assert_geq(n, 0, "collect: %lld", (long long)n);
    return n;
}

static uint64_t baseline(shr_heap_t *h)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &r), 0);
    shr_obj_release(h, r);
    return shr_test_blocks_in_use(h);
}

/* ---- graphs both sides build and check ------------------------------------------ */

/* A ring of n nodes, node i's payload "ring<tag>:<i>", slot 0 the next. The
 * caller gets a reference to node 0; the others are held by the ring. */
static int make_ring(shr_heap_t *h, int tag, int n, shr_ref_t *head)
{
    shr_ref_t first = {0}, prev = {0};
    for (int i = 0; i < n; i++) {
        shr_ref_t x;
        if (shr_obj_new(h, SHR_TYPE_NODE, 2, 24, &x) != 0) return 1;
        snprintf(shr_obj_payload(h, x, NULL), 24, "ring%d:%d", tag, i);
        if (i == 0) first = x;
        else {
            if (shr_obj_set(h, prev, 0, x) != 0) return 2;
            if (prev.off != first.off) shr_obj_release(h, prev);
        }
        prev = x;
    }
    if (shr_obj_set(h, prev, 0, first) != 0) return 3;
    if (prev.off != first.off) shr_obj_release(h, prev);
    *head = first;
    return 0;
}

/* 0 if the ring from head is whole: n nodes with their payloads, back to head. */
static int check_ring(shr_heap_t *h, shr_ref_t head, int tag, int n)
{
    shr_ref_t cur;
    if (shr_obj_dup(h, head, &cur) != 0) return 1;
    for (int i = 0; i < n; i++) {
        char want[24];
        snprintf(want, sizeof want, "ring%d:%d", tag, i);
        const char *p = shr_obj_payload(h, cur, NULL);
        if (!p || strcmp(p, want) != 0) return 2;
        shr_ref_t next;
        if (shr_obj_get(h, cur, 0, &next) != 0 || next.off == 0) return 3;
        shr_obj_release(h, cur);
        cur = next;
    }
    int rc = cur.off == head.off ? 0 : 4;
    shr_obj_release(h, cur);
    return rc;
}

/* Two lists that hold each other, a string and a node; returns nothing. */
static int make_list_cycle(shr_heap_t *h)
{
    shr_list_t *a, *b;
    if (shr_list_create(h, NULL, NULL, 0, &a) != 0 || shr_list_create(h, NULL, NULL, 0, &b) != 0) return 1;
    shr_ref_t n;
    if (shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &n) != 0) return 2;
    shr_ref_t ar;
    if (shr_list_ref(a, &ar) != 0 || shr_obj_set(h, n, 0, ar) != 0) return 3; /* node -> a */
    shr_obj_release(h, ar);
    shr_value_t va = shr_listval(a), vb = shr_listval(b), vs = shr_str("cycle"), vn = shr_refval(n);
    if (shr_list_append(a, &vb) || shr_list_append(b, &va) || shr_list_append(a, &vs) || shr_list_append(b, &vn))
        return 4;
    shr_obj_release(h, n);
    shr_list_close(a);
    shr_list_close(b);
    return 0;
}

/* The reachable part every test keeps: a published ring "keep" (tag 7, 5
 * nodes) and a named list "klist" holding a ring (tag 8) and a list. */
static void make_keep(shr_heap_t *h)
{
    shr_ref_t r, r8;
    cr_assert_eq(make_ring(h, 7, 5, &r), 0);
    cr_assert_eq(shr_obj_publish(h, "keep", r), 0);
    shr_obj_release(h, r);
    shr_list_t *l, *inner;
    cr_assert_eq(shr_list_create(h, "klist", NULL, 0, &l), 0);
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &inner), 0);
    cr_assert_eq(make_ring(h, 8, 4, &r8), 0);
    shr_value_t v = shr_refval(r8), vi = shr_listval(inner), vl = shr_listval(l);
    cr_assert_eq(shr_list_append(l, &v), 0);
    cr_assert_eq(shr_list_append(l, &vi), 0);
    cr_assert_eq(shr_list_append(inner, &vl), 0, "a reachable list cycle");
    shr_obj_release(h, r8);
    shr_list_close(inner);
    shr_list_close(l);
}

static void check_keep(shr_heap_t *h)
{
    shr_ref_t r;
    cr_assert_eq(shr_obj_lookup(h, "keep", &r), 0);
    cr_assert_eq(check_ring(h, r, 7, 5), 0, "the published ring is whole");
    shr_obj_release(h, r);
    shr_list_t *l;
    cr_assert_eq(shr_list_attach(h, "klist", &l), 0);
    shr_value_t v;
    cr_assert_eq(shr_list_get(l, 0, &v), 0);
    cr_assert_eq(v.type, SHR_REF);
    cr_assert_eq(check_ring(h, v.u.ref, 8, 4), 0, "the ring the list holds is whole");
    shr_value_release(h, &v);
    cr_assert_eq(shr_list_get(l, 1, &v), 0);
    cr_assert_eq(v.type, SHR_LIST);
    shr_value_t back;
    cr_assert_eq(shr_list_get(v.u.list, 0, &back), 0);
    cr_assert_eq(back.type, SHR_LIST);
    cr_assert_eq(shr_list_len(back.u.list), 2);
    shr_value_release(h, &back);
    shr_value_release(h, &v);
    shr_list_close(l);
}

static void drop_keep(shr_heap_t *h)
{
    cr_assert_eq(shr_obj_unpublish(h, "keep"), 0);
    cr_assert_eq(shr_list_unlink(h, "klist"), 0);
}

/* ---- cycles across processes, collected while another process mutates ---------- */

typedef struct { shr_heap_t *h; int rings, lists; } build_arg_t;

static int builder(void *p)
{
    build_arg_t *a = p;
    for (int i = 0; i < a->rings; i++) {
        shr_ref_t r;
        if (make_ring(a->h, 100 + i, 3, &r)) return 10;
        shr_obj_release(a->h, r);
    }
    for (int i = 0; i < a->lists; i++)
        if (make_list_cycle(a->h)) return 11;
    return 0; /* exit releases nothing more: everything built is garbage */
}

typedef struct { shr_heap_t *h; shr_test_gate_t stop; } mut_arg_t;

/* Sets, gets and builds on "work" until told to stop; every value it reads
 * must be one it or its peer wrote. */
static int mutator(void *p)
{
    mut_arg_t *a = p;
    shr_heap_t *h = a->h;
    shr_list_t *l;
    if (shr_list_attach(h, "work", &l) != 0) return 20;
    for (uint64_t i = 0;; i++) {
        if (i % 64 == 0 && shr_test_gate_wait(&a->stop, 0)) break;
        shr_ref_t n;
        if (shr_obj_new(h, SHR_TYPE_NODE, 1, 8, &n) != 0) return 21;
        memcpy(shr_obj_payload(h, n, NULL), "mutator", 8);
        if (shr_obj_set(h, n, 0, n) != 0) return 22; /* a self-cycle once replaced */
        shr_value_t v = i % 3 ? shr_refval(n) : shr_str("a string from the mutator");
        if (shr_list_set(l, (int64_t)(i % 8), &v) != 0) return 23;
        shr_obj_release(h, n);
        shr_value_t got;
        if (shr_list_get(l, (int64_t)((i + 3) % 8), &got) != 0) return 24;
        if (got.type == SHR_REF) {
            const char *pl = shr_obj_payload(h, got.u.ref, NULL);
            if (!pl || strcmp(pl, "mutator") != 0) return 25; /* freed under us */
        } else if (got.type == SHR_STR) {
            if (got.u.s.len != 25 || memcmp(got.u.s.data, "a string from the mutator", 25) != 0) return 26;
        } else if (got.type != SHR_NONE) {
            return 27;
        }
        shr_value_release(h, &got);
    }
    shr_list_close(l);
    return 0;
}

Test(gc_multiproc, cycles_built_elsewhere_are_collected_while_another_process_mutates)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0, "only our collections, to count them");
    uint64_t base = baseline(h);
    make_keep(h);
    shr_list_t *work;
    shr_value_t none = shr_none();
    shr_value_t vals[8] = {none, none, none, none, none, none, none, none};
    cr_assert_eq(shr_list_create(h, "work", vals, 8, &work), 0);
    mut_arg_t m = {h, {{0, 0}}};
    shr_test_gate_init(&m.stop);
    pid_t mp = shr_test_fork(mutator, &m);
    build_arg_t b = {h, 200, 50};
    pid_t bp = shr_test_fork(builder, &b);
    cr_assert_eq(shr_test_wait(bp), 0, "the builder");
    int64_t total = 0;
    for (int i = 0; i < 5; i++) {
        total += collect_ok(h, 2);
        check_keep(h);
    }
    cr_assert_geq(total, 200 * 3 + 50 * 3, "every ring and list cycle built elsewhere: %lld", (long long)total);
    shr_test_gate_open(&m.stop);
    cr_assert_eq(shr_test_wait(mp), 0, "the mutator saw only what was written");
    check_keep(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_list_close(work);
    cr_assert_eq(shr_list_unlink(h, "work"), 0);
    drop_keep(h);
    collect_ok(h, 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "everything returned");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- a live process that does not stop -------------------------------------------- */

static int stop_in_set(void *p)
{
    shr_heap_t *h = p;
    shr_ref_t a, b;
    if (shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &a) || shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &b)) return 30;
    shr_fault_arm("obj.set", 1, SHR_FAULT_STOP); /* stops inside the call, in the gate */
    if (shr_obj_set(h, a, 0, b) != 0) return 31;
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    return 0;
}

Test(gc_multiproc, a_stopped_process_fails_the_collection_before_anything_changes)
{
    NEED_FAULTS();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_ref_t ring;
    cr_assert_eq(make_ring(h, 1, 4, &ring), 0);
    shr_obj_release(h, ring); /* garbage */
    shr_ref_t young;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &young), 0);
    pid_t pid = shr_test_fork(stop_in_set, h);
    stopped_child = pid;
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st));
    setenv("SHARENA_GC_STOP_TIMEOUT_MS", "200", 1);
    uint64_t blocks = shr_test_blocks_in_use(h);
    shr_gc_stats_t before, after;
    cr_assert_eq(shr_gc_get_stats(h, &before), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    cr_assert_eq(shr_gc_collect(h, 0, &r), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(shr_test_blocks_in_use(h), blocks, "nothing freed");
    cr_assert_eq(shr_gc_get_stats(h, &after), 0);
    cr_assert_eq(after.gen[0].collections, before.gen[0].collections, "not counted as a collection");
    /* Our own calls go on: the request was withdrawn. */
    shr_ref_t x;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &x), 0);
    shr_obj_release(h, x);
    kill(pid, SIGCONT);
    cr_assert_eq(shr_test_wait(pid), 0);
    stopped_child = 0;
    unsetenv("SHARENA_GC_STOP_TIMEOUT_MS");
    /* The generation bits did not move: the young node is still young. */
    cr_assert_eq(shr_gc_collect(h, 0, &r), 4, "the ring, now");
    cr_assert_geq(r.candidates, 5, "young was still in generation 0");
    shr_obj_release(h, young);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- the collector killed at each of its points ---------------------------------- */

typedef struct { shr_heap_t *h; const char *point; int nth; } kill_arg_t;

static int collector_that_dies(void *p)
{
    kill_arg_t *a = p;
    shr_heap_t *h;
    if (shr_heap_attach(shr_heap_name(a->h), &h) != 0) return 40;
    shr_fault_arm(a->point, (uint64_t)a->nth, SHR_FAULT_KILL);
    shr_gc_collect(h, 2, NULL);
    return 41; /* not reached */
}

static void collector_killed_at(const char *point, int nth)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0);
    uint64_t base = baseline(h);
    make_keep(h);
    uint64_t with_keep = shr_test_blocks_in_use(h);
    build_arg_t b = {h, 20, 10};
    cr_assert_eq(builder(&b), 0);
    kill_arg_t k = {h, point, nth};
    pid_t pid = shr_test_fork(collector_that_dies, &k);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL, "killed at %s", point);
    /* A mutator never waits for the dead collector. */
    shr_ref_t x;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &x), 0);
    shr_obj_release(h, x);
    check_keep(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "after a death at %s", point);
    /* The next collection finishes the job. */
    collect_ok(h, 2);
    check_keep(h);
    cr_assert_eq(shr_test_blocks_in_use(h), with_keep, "the garbage is gone after a death at %s", point);
    cr_assert_eq(collect_ok(h, 2), 0);
    drop_keep(h);
    collect_ok(h, 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(gc_multiproc, collector_killed_after_stopping_the_world) { NEED_FAULTS(); collector_killed_at("gc.stopped", 1); }
Test(gc_multiproc, collector_killed_while_promoting) { NEED_FAULTS(); collector_killed_at("gc.promote", 3); }
Test(gc_multiproc, collector_killed_with_the_garbage_flagged) { NEED_FAULTS(); collector_killed_at("gc.flagged", 1); }
Test(gc_multiproc, collector_killed_while_clearing) { NEED_FAULTS(); collector_killed_at("gc.clear", 17); }
Test(gc_multiproc, collector_killed_while_freeing) { NEED_FAULTS(); collector_killed_at("gc.free", 23); }
Test(gc_multiproc, collector_killed_while_clearing_a_child) { NEED_FAULTS(); collector_killed_at("obj.dealloc", 9); }

/* A collector killed while flagging its garbage: one object of the set
 * flagged (the first the collector reaches), the others not. x is young,
 * y and z are in generation 1 and hold each other, and y and x hold each
 * other: a young collection examines x (and what is flagged) but not y
 * and z unflagged. Were the half-flagged set trusted, that collection
 * would free a flagged member while an unflagged one still names it, and
 * the next full collection's clear would decrement the freed block's
 * refcount word (O2, what random_kills once met). The flags of an
 * uncommitted set are dropped instead (collect.c, C3): nothing is freed
 * until a collection finds it garbage again. */
typedef struct { shr_heap_t *h; int algorithm; } flag_kill_arg_t;

static int collector_dies_flagging(void *p)
{
    flag_kill_arg_t *a = p;
    shr_heap_t *h;
    if (shr_heap_attach(shr_heap_name(a->h), &h) != 0) return 40;
    shr_fault_arm("gc.flag", 1, SHR_FAULT_KILL);
    shr_gc_collect_with(h, a->algorithm, 2, NULL);
    return 41; /* not reached */
}

static void collector_killed_while_flagging(int algorithm)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint32_t off[3] = {0, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, off), 0, "only our collections");
    uint64_t base = baseline(h);
    shr_ref_t d, x, y, z;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &d), 0);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &y), 0);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &z), 0);
    cr_assert_eq(collect_ok(h, 0), 0, "d, y and z held: promoted to generation 1");
    uint64_t dead_off = d.off;
    shr_obj_release(h, d); /* freed: x takes its block, before y and z */
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &x), 0);
    cr_assert_eq(x.off, dead_off, "x reuses d's block");
    cr_assert(x.off < y.off && x.off < z.off, "x first in address order");
    cr_assert_eq(shr_obj_set(h, x, 0, y), 0);
    cr_assert_eq(shr_obj_set(h, y, 0, x), 0);
    cr_assert_eq(shr_obj_set(h, y, 1, z), 0);
    cr_assert_eq(shr_obj_set(h, z, 0, y), 0);
    shr_obj_release(h, x);
    shr_obj_release(h, y);
    shr_obj_release(h, z); /* garbage: x (gen 0) <-> y (gen 1) <-> z (gen 1) */
    flag_kill_arg_t k = {h, algorithm};
    pid_t pid = shr_test_fork(collector_dies_flagging, &k);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL, "killed with one of the three flagged");
    collect_ok(h, 0);
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    int vrc = shr_gc_verify(h, &v);
    cr_assert_eq(v.dangling, 0, "no reference to a freed block after the young collection");
    cr_assert_eq(v.below, 0);
    cr_assert_eq(vrc, 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(collect_ok(h, 2), 3, "the three, found garbage again");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base, "every block returned");
    cr_assert_eq(shr_gc_verify(h, &v), 0);
    cr_assert_eq(v.dangling, 0);
    shr_heap_close(h);
}

Test(gc_multiproc, collector_killed_while_flagging_leaves_no_dangling_reference)
{
    NEED_FAULTS();
    collector_killed_while_flagging(SHR_GC_TRIAL_DELETION);
}
Test(gc_multiproc, mark_sweep_killed_while_flagging_leaves_no_dangling_reference)
{
    NEED_FAULTS();
    collector_killed_while_flagging(SHR_GC_MARK_SWEEP);
}
Test(gc_multiproc, bacon_rajan_killed_while_flagging_leaves_no_dangling_reference)
{
    NEED_FAULTS();
    collector_killed_while_flagging(SHR_GC_BACON_RAJAN);
}

/* ---- mutators killed -------------------------------------------------------------- */

typedef struct { shr_heap_t *h; shr_test_gate_t ready; } hold_arg_t;

static int holder(void *p)
{
    hold_arg_t *a = p;
    shr_heap_t *h;
    if (shr_heap_attach(shr_heap_name(a->h), &h) != 0) return 50;
    for (int i = 0; i < 30; i++) {
        shr_ref_t r, extra;
        if (make_ring(h, 200 + i, 3, &r)) return 51;
        if (shr_obj_get(h, r, 0, &extra) != 0) return 52; /* and another node of it */
    }
    shr_list_t *l;
    if (shr_list_create(h, NULL, NULL, 0, &l) != 0) return 53;
    shr_value_t v = shr_listval(l);
    if (shr_list_append(l, &v) != 0) return 54; /* a list holding itself, held by a handle */
    shr_test_gate_open(&a->ready);
    for (;;) pause();
}

Test(gc_multiproc, a_mutator_killed_holding_references_returns_everything)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint64_t base = baseline(h);
    hold_arg_t a = {h, {{0, 0}}};
    shr_test_gate_init(&a.ready);
    pid_t pid = shr_test_fork(holder, &a);
    cr_assert(shr_test_gate_wait(&a.ready, 60000));
    cr_assert_eq(collect_ok(h, 2), 0, "all held");
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    cr_assert_eq(collect_ok(h, 2), 91, "its leases released, every cycle it held collected");
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

static int die_in_set(void *p)
{
    shr_heap_t *h = p;
    shr_ref_t a;
    if (shr_obj_lookup(h, "victim", &a) != 0) return 60;
    shr_fault_arm("obj.set", 1, SHR_FAULT_KILL); /* dies in the gate, the node's lock held */
    shr_obj_set(h, a, 0, a);
    return 61;
}

Test(gc_multiproc, a_mutator_killed_inside_a_call_is_skipped)
{
    NEED_FAULTS();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_ref_t v, other;
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &v), 0);
    cr_assert_eq(shr_obj_publish(h, "victim", v), 0);
    pid_t pid = shr_test_fork(die_in_set, h);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    setenv("SHARENA_GC_STOP_TIMEOUT_MS", "60000", 1);
    collect_ok(h, 2); /* does not wait for the dead */
    unsetenv("SHARENA_GC_STOP_TIMEOUT_MS");
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 0, &other), 0);
    cr_assert_eq(shr_obj_set(h, v, 0, other), 0, "the dead holder's node lock is taken over");
    cr_assert_geq(shr_obj_refcount(h, v), 2, "its count raised in flight: too high, never too low");
    shr_obj_release(h, other);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_obj_release(h, v);
    cr_assert_eq(shr_obj_unpublish(h, "victim"), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- random kills, the collector among them --------------------------------------- */

typedef struct { shr_heap_t *h; unsigned seed; } rnd_arg_t;

static int random_worker(void *p)
{
    rnd_arg_t *a = p;
    shr_heap_t *h = a->h;
    unsigned s = a->seed;
    shr_list_t *l;
    if (shr_list_attach(h, "work", &l) != 0) return 70;
    for (;;) {
        s = s * 1103515245u + 12345u;
        unsigned op = (s >> 16) % 10;
        if (op == 0) {
            shr_gc_collect(h, (int)((s >> 8) % 3), NULL);
        } else if (op < 4) {
            shr_ref_t r;
            if (make_ring(h, 300, 3, &r)) return 71;
            shr_value_t v = shr_refval(r);
            if (shr_list_set(l, (int64_t)(s % 8), &v) != 0) return 72;
            shr_obj_release(h, r);
        } else if (op < 6) {
            if (make_list_cycle(h)) return 73;
        } else {
            shr_value_t got;
            if (shr_list_get(l, (int64_t)(s % 8), &got) != 0) return 74;
            if (got.type == SHR_REF && check_ring(h, got.u.ref, 300, 3) != 0) return 75;
            shr_value_release(h, &got);
        }
    }
}

Test(gc_multiproc, random_kills_of_mutators_and_collectors)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint32_t t[3] = {300, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, t), 0, "automatic collections in the workers too");
    make_keep(h);
    shr_list_t *work;
    shr_value_t none = shr_none();
    shr_value_t vals[8] = {none, none, none, none, none, none, none, none};
    cr_assert_eq(shr_list_create(h, "work", vals, 8, &work), 0);
    /* SHR_TEST_SEED replays a run (the seed it printed). */
    const char *seed_env = getenv("SHR_TEST_SEED");
    unsigned seed = seed_env && *seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "random_kills: seed %u\n", seed);
    for (int round = 0; round < 12; round++) {
        rnd_arg_t a[3];
        pid_t p[3];
        for (int i = 0; i < 3; i++) {
            a[i] = (rnd_arg_t){h, seed + (unsigned)(round * 3 + i)};
            p[i] = shr_test_fork(random_worker, &a[i]);
        }
        shr_test_sleep_ms(30 + (unsigned)((seed + (unsigned)round * 7919u) % 120));
        int victim = (int)((seed + (unsigned)round) % 3);
        kill(p[victim], SIGKILL);
        shr_test_sleep_ms(20);
        for (int i = 0; i < 3; i++) {
            kill(p[i], SIGKILL);
            int rc = shr_test_wait(p[i]);
            cr_assert_eq(rc, 128 + SIGKILL, "round %d worker %d failed with %d", round, i, rc);
        }
        shr_heap_recover(h);
        check_keep(h);
        cr_assert_eq(shr_heap_check_report(h, stderr), 0, "round %d", round);
        collect_ok(h, 2);
        check_keep(h);
        /* What the list holds is whole. */
        for (int i = 0; i < 8; i++) {
            shr_value_t got;
            cr_assert_eq(shr_list_get(work, i, &got), 0);
            if (got.type == SHR_REF) cr_assert_eq(check_ring(h, got.u.ref, 300, 3), 0, "round %d item %d", round, i);
            shr_value_release(h, &got);
        }
    }
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_list_close(work);
    shr_heap_close(h);
}

/* ---- a list whose writer died in the middle of a delete ------------------------ */

static int die_in_pop(void *p)
{
    shr_heap_t *h = p;
    shr_list_t *l;
    if (shr_list_attach(h, "half", &l) != 0) return 80;
    shr_fault_arm("list.shift", 1, SHR_FAULT_KILL); /* the delete's first move done */
    shr_list_delete(l, 0);
    return 81;
}

Test(gc_multiproc, a_list_left_half_changed_is_repaired_before_it_is_traversed)
{
    NEED_FAULTS();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint64_t base = baseline(h);
    shr_ref_t x, y; /* 104 bytes, as a list, and made before it: the walk meets them first */
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 48, &x), 0);
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, 1, 48, &y), 0);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "half", NULL, 0, &l), 0);
    shr_ref_t lr;
    cr_assert_eq(shr_list_ref(l, &lr), 0);
    cr_assert_gt(lr.off, x.off, "the list after x in address order");
    shr_obj_release(h, lr);
    cr_assert_eq(shr_obj_set(h, x, 0, y), 0);
    shr_value_t vx = shr_refval(x), vy = shr_refval(y), one = shr_int(1), two = shr_int(2);
    cr_assert_eq(shr_list_append(l, &vx), 0);
    cr_assert_eq(shr_list_append(l, &vy), 0);
    cr_assert_eq(shr_list_append(l, &one), 0);
    cr_assert_eq(shr_list_append(l, &two), 0);
    shr_obj_release(h, x); /* x: held by item 0 only; y: by x, item 1 and our lease */
    pid_t pid = shr_test_fork(die_in_pop, h);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    /* item 1 (y) is now at 0 and 1 both: a traverse would count y twice. */
    cr_assert_eq(collect_ok(h, 2), 0, "nothing is garbage: the repair freed x");
    cr_assert_eq(shr_obj_refcount(h, y), 2, "y: item 0 and our lease, exactly");
    cr_assert_eq(shr_list_len(l), 3, "the delete was finished");
    shr_value_t got;
    cr_assert_eq(shr_list_get(l, 0, &got), 0);
    cr_assert_eq(got.type, SHR_REF);
    cr_assert_eq(got.u.ref.off, y.off);
    shr_value_release(h, &got);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_obj_release(h, y);
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "half"), 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    shr_heap_close(h);
}
