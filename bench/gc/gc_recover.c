/* bench_gc_recover: recovery after a kill at each named crash point.
 *
 * For each collector algorithm and each point of <sharena/gc_points.h>
 * (SHR_GC_POINTS), plus a baseline "end" (the victim killed after its whole
 * workload, outside any point): a fresh named heap; a victim process that
 * attaches, builds a seeded graph (shr_graph_build's mix, --n objects: live
 * cycles and 20% garbage rings), publishes its root, holds references to
 * --hold of its live objects (a breadth-first walk from the root), makes a
 * shared list, arms the point and runs a workload that passes every point:
 * a full collection with the algorithm, object calls (lookup, dup, get, new,
 * set, publish, unpublish, release) and list calls (set, insert, appends).
 * The victim is killed at the point's nth hit (--nth=mid: the middle hit,
 * counted by a dry run of the same workload on a heap of its own; first: the
 * first hit; or a number; one dry run counts every point's hits at once,
 * a second lease.drain's). For the point lease.drain, a process holding
 * --hold references of a graph of its own dies first, and the victim is
 * killed while releasing them (its workload's collection does, first
 * thing; the point is armed before the attach, so that any earlier release
 * counts too).
 *
 * Then, in this process (the survivor), in order and timed:
 *   recover   shr_heap_recover: the dead victim's entries reclaimed, its
 *             references released
 *   verify    shr_gc_verify: live and unreachable objects, counts above
 *             their true value (leaked references, safe) and below it (a
 *             bug: must be 0), dangling references (a bug: must be 0)
 *   next      the next collection, with the same algorithm
 *   backup    the backup mark-sweep with count repair
 *             (SHR_GC_MARK_SWEEP | SHR_GC_REPAIR): objects and bytes it
 *             reclaimed, counts repaired, stray blocks freed
 *   after     shr_gc_verify again, and shr_heap_check (must pass); the
 *             published graph still there; the event log's account (died,
 *             recovered, time-outs, leases released) since the heap's creation
 *   released  every name unpublished, the backup mark-sweep again and
 *             shr_heap_collect: the objects left (leaked for good; 0 when
 *             the mark-sweep reclaimed every one) and the committed memory
 *             beyond that of the empty heap before the victim
 *
 *   bench_gc_recover [--n=20000] [--hold=2000] [--seed=42] [--algorithms=0,1,2]
 *                    [--nth=mid|first|N] [--repeat=3] [--points=NAME,...]
 *
 * Each point is killed --repeat times (a fresh heap each time): the times
 * are medians, the counts the last kill's ("counts_vary" says whether the
 * kills disagreed: the workload is deterministic, so they should not).
 *
 * Fault points exist in debug builds only (SHR_DEBUG >= 1): build this
 * program with the bench-faults preset (Release, SHR_DEBUG=1; scripts/bench.sh
 * does). Linked against a release library it says so and exits 2.
 * Algorithm 1 (Bacon and Rajan's, SHR_GC_BACON_RAJAN) is asked for once; if
 * shr_gc_collect_with refuses it (-EINVAL) its rows are left out and listed
 * in "skipped". A point the algorithm's workload never reaches gives a row
 * with "reached": false. Exit 1, after the whole document, when any row
 * shows a bug (a count below its true value, a dangling reference, a failed
 * heap check, a victim that did not die where it should, a call of the
 * survivor that failed). One JSON document on stdout, progress on stderr.
 * Public API only. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gc_common.h"


#define NAME_OF(p) p,
static const char *const all_points[] = {SHR_GC_POINTS(NAME_OF) "end"};
#define NALL (sizeof all_points / sizeof all_points[0])
#define END_POINT "end" /* the baseline: killed after the workload */

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

typedef struct cfg {
    uint64_t n, hold, seed;
    char name[64];
} cfg_t;

static cfg_t C = {20000, 2000, 42, ""};

/* ---- the victim ------------------------------------------------------------------ */

/* References to up to `want` live objects reachable from root, breadth
 * first (each a lease of this process: what a dead process leaves to be
 * released). Returns how many it holds; they stay held. */
static uint64_t hold_refs(shr_heap_t *h, shr_ref_t root, uint64_t want)
{
    if (!want)
        return 0;
    shr_ref_t *q = malloc(want * sizeof *q);
    if (!q)
        _exit(30);
    uint64_t head = 0, tail = 0;
    if (shr_obj_dup(h, root, &q[tail++]) != 0)
        _exit(31);
    while (head < tail && tail < want) {
        shr_ref_t o = q[head++];
        for (uint32_t s = 0; tail < want; s++) {
            shr_ref_t c;
            int rc = shr_obj_get(h, o, s, &c);
            if (rc == SHR_EINDEX || rc == -EINVAL)
                break; /* past the last slot (SHR_EINDEX; gc.h's summary says -EINVAL) */
            if (rc != 0)
                _exit(32);
            if (c.off)
                q[tail++] = c;
        }
    }
    free(q); /* the references stay held: only the array goes */
    return tail;
}

/* Build, publish, hold, make the list: the state the workload starts from. */
static shr_heap_t *victim_setup(const cfg_t *c)
{
    shr_heap_t *h;
    if (shr_heap_attach(c->name, &h) != 0)
        _exit(10);
    shr_ref_t root;
    shr_graph_info_t gi = {.size = sizeof gi};
    if (shr_graph_build(h, SHR_GRAPH_MIX, c->n, c->seed, &root, &gi) != 0)
        _exit(11);
    if (shr_obj_publish(h, "graph", root) != 0)
        _exit(12);
    hold_refs(h, root, c->hold);
    shr_value_t v[12];
    shr_ref_t kids[4] = {{0}, {0}, {0}, {0}};
    for (int i = 0; i < 4; i++) v[i] = shr_int(i);
    for (int i = 4; i < 8; i++) v[i] = shr_str("a string held by the list");
    shr_ref_t cur = root;
    for (int i = 0; i < 4; i++) { /* a path down from the root */
        if (shr_obj_get(h, cur, 0, &kids[i]) != 0 || !kids[i].off)
            kids[i] = root;
        cur = kids[i];
    }
    for (int i = 8; i < 12; i++) v[i] = shr_refval(kids[i - 8]);
    shr_list_t *l;
    if (shr_list_create(h, "L", v, 12, &l) != 0)
        _exit(13);
    shr_list_close(l);
    shr_obj_release(h, root);
    return h;
}

/* Everything the points are on, in an order that reaches each (as
 * tests/gc/test_gc_points.c's workload). 0, or the step that failed. */
static int workload(shr_heap_t *h, int alg)
{
    if (shr_gc_collect_with(h, alg, 2, NULL) < 0) return 40;
    shr_ref_t root, dup, child, fresh;
    if (shr_obj_lookup(h, "graph", &root) != 0) return 41;
    if (shr_obj_dup(h, root, &dup) != 0) return 42;
    if (shr_obj_get(h, root, 0, &child) != 0) return 43;
    if (shr_obj_new(h, SHR_TYPE_NODE, 2, 0, &fresh) != 0) return 44;
    if (shr_obj_set(h, fresh, 0, child) != 0 || shr_obj_set(h, fresh, 1, root) != 0) return 45;
    if (shr_obj_publish(h, "fresh", fresh) != 0) return 46;
    if (shr_obj_unpublish(h, "fresh") != 0) return 47;
    shr_obj_release(h, fresh); /* freed: its dealloc releases child and root */
    shr_obj_release(h, child);
    shr_obj_release(h, dup);
    shr_list_t *l;
    if (shr_list_attach(h, "L", &l) != 0) return 48;
    shr_value_t s = shr_str("replaced");
    if (shr_list_set(l, 5, &s) != 0) return 49;
    shr_value_t r = shr_refval(root);
    if (shr_list_set(l, 9, &r) != 0) return 50; /* a ref item replaced: its old object released */
    shr_value_t i = shr_int(7);
    if (shr_list_insert(l, 0, &i) != 0) return 51;
    for (int k = 0; k < 64; k++)
        if (shr_list_append(l, &i) != 0) return 52;
    shr_list_close(l);
    shr_obj_release(h, root);
    return 0;
}

#define NPTS (NALL - 1) /* the points of gc_points.h; all_points[NPTS] is "end" */
#define ALL_POINTS "*"  /* the dry run: every point but lease.drain counted at once */

static void arm_or_die(const char *point, uint64_t nth)
{
    if (shr_fault_arm(point, nth, SHR_FAULT_KILL) != 0)
        _exit(20);
}

/* The kill run (dry 0): point armed at its nth hit. The dry run (dry 1):
 * point (lease.drain) or ALL_POINTS (every other one) armed never to fire,
 * and the hits of every point written to fd. Exit codes: 0 done without
 * dying, 10+ a failed step. */
static void victim(const char *point, int alg, uint64_t nth, int dry, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int drain = strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0;
    int end = strcmp(point, END_POINT) == 0;
    int all = strcmp(point, ALL_POINTS) == 0;
    uint64_t at = dry ? UINT64_MAX : nth;
    if (drain) /* armed before the attach: every release of the holder's references counts */
        arm_or_die(point, at);
    shr_heap_t *h = victim_setup(&C);
    if (all) {
        for (size_t k = 0; k < NPTS; k++)
            if (strcmp(all_points[k], SHR_GC_POINT_MID_LEASE_RELEASE) != 0)
                arm_or_die(all_points[k], at);
    } else if (!drain && !end) {
        arm_or_die(point, at);
    }
    int rc = workload(h, alg);
    if (rc)
        _exit(rc);
    if (end && !dry)
        raise(SIGKILL); /* the baseline: a kill outside every point */
    shr_heap_close(h);  /* the close passes some points too */
    if (dry) {
        int64_t hits[NALL] = {0};
        for (size_t k = 0; k < NPTS; k++)
            hits[k] = shr_fault_hits(all_points[k]);
        if (write(fd, hits, sizeof hits) != (ssize_t)sizeof hits)
            _exit(21);
    }
    _exit(0);
}

/* A process that dies holding references: lease.drain's work (the
 * arguments are spawn's, unused). */
static void holder(const char *point, int alg, uint64_t nth, int dry, int fd)
{
    (void)point, (void)alg, (void)nth, (void)dry, (void)fd;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shr_heap_t *h;
    if (shr_heap_attach(C.name, &h) != 0)
        _exit(10);
    shr_ref_t root;
    if (shr_graph_build(h, SHR_GRAPH_MIX, C.n, C.seed + 1, &root, NULL) != 0)
        _exit(11);
    hold_refs(h, root, C.hold);
    _exit(0); /* no close: the references are left for the next drain */
}

/* Wait for p, at most 60 s: its raw status, or -1 (killed here). */
static int wait_for(pid_t p)
{
    for (int i = 0; i < 60000; i++) {
        int st;
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p)
            return st;
        if (r < 0)
            return -1;
        sleep_ms(1);
    }
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    return -1;
}

static pid_t spawn(void (*fn)(const char *, int, uint64_t, int, int), const char *point, int alg, uint64_t nth,
                   int dry, int fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p < 0) {
        perror("bench_gc_recover: fork");
        exit(1);
    }
    if (p == 0)
        fn(point, alg, nth, dry, fd);
    return p;
}

static void status_text(int st, char *buf, size_t len)
{
    if (st == -1)
        snprintf(buf, len, "timed out (60 s)");
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else
        snprintf(buf, len, "status 0x%x", st);
}

/* ---- the survivor ---------------------------------------------------------------- */

static shr_heap_t *make_heap(void)
{
    shr_heap_unlink(C.name);
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)2 << 30;
    shr_heap_t *h;
    int rc = shr_heap_create(C.name, &o, &h);
    if (rc) {
        fprintf(stderr, "bench_gc_recover: shr_heap_create: %s\n", shr_strerror(rc));
        exit(1);
    }
    uint32_t off[3] = {0, 10, 10}; /* no automatic collection: the workload decides */
    if ((rc = shr_gc_set_threshold(h, off)) != 0) {
        fprintf(stderr, "bench_gc_recover: shr_gc_set_threshold: %s\n", shr_strerror(rc));
        exit(1);
    }
    return h;
}

static uint64_t committed(shr_heap_t *h)
{
    shr_alloc_stats_t st;
    return shr_heap_stats(h, &st) == 0 ? st.committed : 0;
}

/* One dry run on a heap of its own: hits[] of every point (lease.drain's
 * only when point is lease.drain). 0, or -1 after saying why. */
static int dry_run(const char *point, int alg, int64_t hits[NALL])
{
    shr_heap_t *h = make_heap();
    int drain = strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0;
    int st = 0;
    if (drain && (st = wait_for(spawn(holder, point, alg, 0, 0, -1))) != 0) {
        shr_heap_close(h);
        shr_heap_unlink(C.name);
        fprintf(stderr, "bench_gc_recover: the holder of the dry run failed (status %d)\n", st);
        return -1;
    }
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t p = spawn(victim, point, alg, 0, 1, fd[1]);
    close(fd[1]);
    int ok = read(fd[0], hits, NALL * sizeof *hits) == (ssize_t)(NALL * sizeof *hits);
    close(fd[0]);
    st = wait_for(p);
    shr_heap_close(h);
    shr_heap_unlink(C.name);
    if (st != 0 || !ok) {
        char b[64];
        status_text(st, b, sizeof b);
        fprintf(stderr, "bench_gc_recover: the dry run for %s (%s): %s\n", point, alg_name(alg), b);
        return -1;
    }
    return 0;
}

/* The hits of every point in the algorithm's workload: two dry runs (every
 * point but lease.drain at once; lease.drain with its holder). -1 each when
 * its dry run failed. */
static void count_hits(int alg, int64_t hits[NALL])
{
    int64_t h1[NALL], h2[NALL];
    int r1 = dry_run(ALL_POINTS, alg, h1), r2 = dry_run(SHR_GC_POINT_MID_LEASE_RELEASE, alg, h2);
    for (size_t k = 0; k < NPTS; k++)
        hits[k] = strcmp(all_points[k], SHR_GC_POINT_MID_LEASE_RELEASE) == 0 ? (r2 ? -1 : h2[k]) : (r1 ? -1 : h1[k]);
    hits[NPTS] = 1; /* "end": the one kill after the workload */
}

/* What the survivor measured after one kill. */
typedef struct kill_result {
    char victim[64];
    const char *bug;
    int reclaimed, vrc, arc, crc;
    uint64_t recover_ns, verify_ns, check_ns;
    shr_gc_verify_result_t v, a;
    int64_t next, backup;
    shr_gc_result_t nr, br;
    uint64_t left_objects, left_unreachable, committed_empty, committed_left;
    uint64_t ev_died, ev_recovered, ev_leases, leases_released, ev_timeout; /* the event log's account */
} kill_result_t;

static void note(kill_result_t *k, const char *bug)
{
    if (!k->bug) k->bug = bug;
}

/* One kill at point's nth hit, and the survivor's measurements. */
static void one_kill(const char *point, int alg, uint64_t nth, kill_result_t *k)
{
    memset(k, 0, sizeof *k);
    shr_heap_t *h = make_heap();
    k->committed_empty = committed(h);
    if (strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0 && wait_for(spawn(holder, point, alg, 0, 0, -1)) != 0)
        note(k, "the holder failed");
    int st = wait_for(spawn(victim, point, alg, nth, 0, -1));
    status_text(st, k->victim, sizeof k->victim);
    if (!(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
        note(k, "the victim did not die at the point");

    uint64_t t0 = now_ns();
    k->reclaimed = shr_heap_recover(h);
    k->recover_ns = now_ns() - t0;
    if (k->reclaimed < 0) note(k, "shr_heap_recover failed");

    k->v = (shr_gc_verify_result_t)SHR_GC_VERIFY_INIT;
    t0 = now_ns();
    k->vrc = shr_gc_verify(h, &k->v);
    k->verify_ns = now_ns() - t0;
    if (k->vrc != 0 && k->vrc != SHR_ECORRUPT) note(k, "shr_gc_verify failed");
    if (k->vrc || k->v.below || k->v.dangling) note(k, "a count below its true value, or a dangling reference");

    k->nr = (shr_gc_result_t)SHR_GC_RESULT_INIT;
    k->next = shr_gc_collect_with(h, alg, 2, &k->nr);
    if (k->next < 0) note(k, "the next collection failed");

    k->br = (shr_gc_result_t)SHR_GC_RESULT_INIT;
    k->backup = shr_gc_collect_with(h, SHR_GC_MARK_SWEEP | SHR_GC_REPAIR, 2, &k->br);
    if (k->backup < 0) note(k, "the backup mark-sweep failed");

    k->a = (shr_gc_verify_result_t)SHR_GC_VERIFY_INIT;
    k->arc = shr_gc_verify(h, &k->a);
    if (k->arc || k->a.below || k->a.dangling) note(k, "after the backup: a count below its true value");
    t0 = now_ns();
    k->crc = shr_heap_check_report(h, stderr);
    k->check_ns = now_ns() - t0;
    if (k->crc != 0) note(k, "shr_heap_check failed");
    shr_ref_t g;
    if (shr_obj_lookup(h, "graph", &g) != 0) /* published before the point was armed */
        note(k, "the published graph is gone");
    else
        shr_obj_release(h, g);

    /* What the event log says happened, from the heap's creation on. */
    shr_gc_event_t ev[256];
    uint64_t seq = 0;
    for (int64_t n; (n = shr_gc_log_read(h, seq, ev, 256, &seq)) > 0;)
        for (int64_t i = 0; i < n; i++) {
            k->ev_died += ev[i].type == SHR_GC_EV_DIED;
            k->ev_recovered += ev[i].type == SHR_GC_EV_RECOVERED;
            k->ev_timeout += ev[i].type == SHR_GC_EV_TIMEOUT;
            if (ev[i].type == SHR_GC_EV_LEASES) {
                k->ev_leases++;
                k->leases_released += ev[i].a[0];
            }
        }

    /* Everything released: what is left is leaked for good. */
    shr_obj_unpublish(h, "graph");
    shr_obj_unpublish(h, "L");
    shr_obj_unpublish(h, "fresh"); /* published if the victim died between publish and unpublish */
    if (shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, NULL) < 0) note(k, "the final mark-sweep failed");
    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    int vrc = shr_gc_verify(h, &v);
    if (vrc || v.below || v.dangling) note(k, "released: a count below its true value");
    shr_heap_collect(h);
    k->left_objects = v.objects;
    k->left_unreachable = v.unreachable;
    k->committed_left = committed(h);
    shr_heap_close(h);
    shr_heap_unlink(C.name);
}

static int bugs;   /* rows that showed a bug */
static int first_row = 1;

#define U(x) ((unsigned long long)(x))

#define MAXR 16
static uint64_t med(const kill_result_t *k, int n, size_t field)
{
    uint64_t v[MAXR];
    for (int i = 0; i < n; i++) memcpy(&v[i], (const char *)&k[i] + field, sizeof v[i]);
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
#define MED(f) U(med(k, reps, offsetof(kill_result_t, f)))

static void print_verify(const char *pre, int rc, const shr_gc_verify_result_t *v)
{
    printf(", \"%s_rc\": %d, \"%s_objects\": %llu, \"%s_live\": %llu, \"%s_unreachable\": %llu, "
           "\"%s_unreachable_bytes\": %llu, \"%s_above\": %llu, \"%s_excess\": %llu, \"%s_below\": %llu, "
           "\"%s_dangling\": %llu, \"%s_incomplete\": %u",
           pre, rc, pre, U(v->objects), pre, U(v->live), pre, U(v->unreachable), pre, U(v->unreachable_bytes), pre,
           U(v->above), pre, U(v->excess), pre, U(v->below), pre, U(v->dangling), pre, v->incomplete);
}

/* One row: reps kills at point's nth hit; times are medians, counts the
 * last kill's (counts_vary says whether the kills disagreed). */
static void run_point(size_t pk, int alg, int64_t hits, const char *nth_mode, uint64_t nth_fixed, int reps)
{
    const char *point = all_points[pk];
    printf("%s\n  {\"algorithm\": %d, \"algorithm_name\": \"%s\", \"point\": \"%s\", \"hits\": %lld",
           first_row ? "" : ",", alg, alg_name(alg), point, (long long)hits);
    first_row = 0;
    if (hits < 0) {
        printf(", \"reached\": false, \"bug\": \"the dry run failed\"}");
        bugs++;
        return;
    }
    if (hits == 0) {
        printf(", \"reached\": false, \"bug\": null}");
        fprintf(stderr, "bench_gc_recover: %s: %s is not reached by the workload\n", alg_name(alg), point);
        return;
    }
    uint64_t nth = strcmp(nth_mode, "first") == 0 ? 1 : strcmp(nth_mode, "mid") == 0 ? ((uint64_t)hits + 1) / 2
                                                                                       : nth_fixed;
    if (nth > (uint64_t)hits) nth = (uint64_t)hits;
    static kill_result_t k[MAXR];
    const char *bug = NULL;
    int vary = 0;
    for (int i = 0; i < reps; i++) {
        one_kill(point, alg, nth, &k[i]);
        if (k[i].bug && !bug) bug = k[i].bug;
        const kill_result_t *x = &k[i], *y = &k[0];
        vary |= x->v.above != y->v.above || x->v.unreachable != y->v.unreachable || x->next != y->next ||
                x->backup != y->backup || x->a.above != y->a.above || x->left_objects != y->left_objects;
    }
    const kill_result_t *l = &k[reps - 1];
    printf(", \"reached\": true, \"nth\": %llu, \"repeats\": %d, \"victim\": \"%s\", \"recover_ns\": %llu, "
           "\"recovered_entries\": %d, \"verify_ns\": %llu",
           U(nth), reps, l->victim, MED(recover_ns), l->reclaimed, MED(verify_ns));
    print_verify("verify", l->vrc, &l->v);
    printf(", \"verify_pause_ns\": %llu", MED(v.pause_ns));
    printf(", \"next_rc\": %lld, \"next_ns\": %llu, \"next_pause_ns\": %llu, \"next_collected\": %llu, "
           "\"next_bytes\": %llu", (long long)(l->next < 0 ? l->next : 0), MED(nr.total_ns), MED(nr.pause_ns),
           U(l->next < 0 ? 0 : l->next), U(l->nr.bytes_freed));
    printf(", \"backup_rc\": %lld, \"backup_ns\": %llu, \"backup_collected\": %llu, \"backup_bytes\": %llu, "
           "\"backup_strays\": %llu, \"backup_repaired\": %llu, \"backup_repaired_refs\": %llu, \"backup_exact\": %u",
           (long long)(l->backup < 0 ? l->backup : 0), MED(br.total_ns), U(l->backup < 0 ? 0 : l->backup),
           U(l->br.bytes_freed), U(l->br.strays), U(l->br.repaired), U(l->br.repaired_refs), l->br.exact);
    print_verify("after", l->arc, &l->a);
    printf(", \"check\": \"%s\", \"check_ns\": %llu", l->crc == 0 ? "ok" : "failed", MED(check_ns));
    printf(", \"left_objects\": %llu, \"left_unreachable\": %llu, \"committed_empty\": %llu, "
           "\"committed_left\": %llu, \"counts_vary\": %s",
           U(l->left_objects), U(l->left_unreachable), U(l->committed_empty), U(l->committed_left),
           vary ? "true" : "false");
    printf(", \"log_died\": %llu, \"log_recovered\": %llu, \"log_timeout\": %llu, \"log_leases\": %llu, "
           "\"log_leases_released\": %llu", U(l->ev_died), U(l->ev_recovered), U(l->ev_timeout), U(l->ev_leases),
           U(l->leases_released));
    if (bug) {
        printf(", \"bug\": \"%s\"}", bug);
        bugs++;
        fprintf(stderr, "bench_gc_recover: BUG at %s (%s): %s\n", point, alg_name(alg), bug);
    } else {
        printf(", \"bug\": null}");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    gcb_prog = "bench_gc_recover";
    uint64_t algs_in[8] = {0, 1, 2};
    int nalgs_in = 3;
    const char *nth_mode = "mid";
    uint64_t nth_fixed = 1;
    const char *only = NULL;
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--n=", 4) == 0)
            C.n = (uint64_t)strtod(a + 4, NULL);
        else if (strncmp(a, "--hold=", 7) == 0)
            C.hold = (uint64_t)strtod(a + 7, NULL);
        else if (strncmp(a, "--seed=", 7) == 0)
            C.seed = strtoull(a + 7, NULL, 0);
        else if (strncmp(a, "--algorithms=", 13) == 0)
            nalgs_in = parse_list(a + 13, algs_in, 8);
        else if (strncmp(a, "--nth=", 6) == 0) {
            nth_mode = a + 6;
            if (strcmp(nth_mode, "mid") != 0 && strcmp(nth_mode, "first") != 0) {
                char *e;
                nth_fixed = strtoull(nth_mode, &e, 10);
                if (*e || nth_fixed == 0) {
                    fprintf(stderr, "bench_gc_recover: --nth=mid|first|N (N >= 1)\n");
                    return 64;
                }
            }
        } else if (strncmp(a, "--repeat=", 9) == 0)
            reps = atoi(a + 9);
        else if (strncmp(a, "--points=", 9) == 0)
            only = a + 9;
        else {
            fprintf(stderr, "usage: %s [--n=N] [--hold=K] [--seed=S] [--algorithms=0,1,2] [--nth=mid|first|N]\n"
                            "          [--repeat=R] [--points=NAME,...]\n", argv[0]);
            return 64;
        }
    }
    if (C.n < 10 || C.n > SHR_GRAPH_MAX_N || nalgs_in < 1 || reps < 1 || reps > MAXR) {
        fprintf(stderr, "bench_gc_recover: bad --n (10..%u), --algorithms or --repeat (1..%d)\n", SHR_GRAPH_MAX_N,
                MAXR);
        return 64;
    }
    if (!shr_fault_available()) {
        fprintf(stderr, "bench_gc_recover: fault points are compiled out of this library (a release build); "
                        "build with the bench-faults preset (docs/gc-experiments.md)\n");
        return 2;
    }
    if (only) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", only);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
            size_t k = 0;
            while (k < NALL && strcmp(t, all_points[k]) != 0) k++;
            if (k == NALL) {
                fprintf(stderr, "bench_gc_recover: %s is not a point of <sharena/gc_points.h> (nor \"end\")\n", t);
                return 64;
            }
        }
    }
    snprintf(C.name, sizeof C.name, "%sgcrec_%d", getenv("SHB_SHM_PREFIX") ? getenv("SHB_SHM_PREFIX") : "shb_",
             (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    printf("{\"n\": %llu, \"hold\": %llu, \"seed\": %llu, \"nth\": \"%s\", \"repeats\": %d, \"graph\": \"mix\", "
           "\"skipped\": [", U(C.n), U(C.hold), U(C.seed), nth_mode, reps);
    int algs[8], nalgs = 0, sk = 0;
    for (int i = 0; i < nalgs_in; i++) {
        int a = (int)algs_in[i];
        if (a != SHR_GC_TRIAL_DELETION && a != SHR_GC_MARK_SWEEP && a != SHR_GC_BACON_RAJAN) {
            fprintf(stderr, "bench_gc_recover: unknown algorithm %d (0, 1, 2)\n", a);
            return 64;
        }
        if (supported(a)) {
            algs[nalgs++] = a;
        } else {
            fprintf(stderr, "bench_gc_recover: this library refuses algorithm %d (%s): its rows are left out\n", a,
                    alg_name(a));
            printf("%s{\"algorithm\": %d, \"algorithm_name\": \"%s\", \"reason\": \"-EINVAL\"}", sk++ ? ", " : "", a,
                   alg_name(a));
        }
    }
    printf("],\n \"rows\": [");
    uint64_t t0 = now_ns();
    for (int a = 0; a < nalgs; a++) {
        int64_t hits[NALL];
        fprintf(stderr, "bench_gc_recover: [%.1f s] %s: the dry runs (hits of every point)\n",
                (double)(now_ns() - t0) / 1e9, alg_name(algs[a]));
        count_hits(algs[a], hits);
        for (size_t k = 0; k < NALL; k++) {
            if (only) {
                char buf[1024];
                int want = 0;
                snprintf(buf, sizeof buf, "%s", only);
                for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) want |= strcmp(t, all_points[k]) == 0;
                if (!want)
                    continue;
            }
            fprintf(stderr, "bench_gc_recover: [%.1f s] %s, kill at %s\n", (double)(now_ns() - t0) / 1e9,
                    alg_name(algs[a]), all_points[k]);
            run_point(k, algs[a], hits[k], nth_mode, nth_fixed, reps);
        }
    }
    printf("],\n \"bugs\": %d}\n", bugs);
    if (bugs)
        fprintf(stderr, "bench_gc_recover: %d row(s) show a bug (see \"bug\" in the JSON)\n", bugs);
    return bugs ? 1 : 0;
}
