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
 * first hit; or a number). For the point lease.drain, a process holding
 * --hold references of a graph of its own dies first, and the victim is
 * killed while releasing them (attach drains them).
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
 *   after     shr_gc_verify again, and shr_heap_check (must pass)
 *   released  every name unpublished, the backup mark-sweep again and
 *             shr_heap_collect: the objects left (leaked for good; 0 when
 *             the mark-sweep reclaimed every one) and the committed memory
 *             beyond that of the empty heap before the victim
 *
 *   bench_gc_recover [--n=50000] [--hold=5000] [--seed=42] [--algorithms=0,1,2]
 *                    [--nth=mid|first|N] [--points=NAME,...]
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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sharena.h"

#ifndef SHR_GC_BACON_RAJAN
#define SHR_GC_BACON_RAJAN 1 /* the value include/sharena/gc.h reserves for it */
#endif

static const char *alg_name(int a)
{
    return a == SHR_GC_TRIAL_DELETION ? "trial_deletion" : a == SHR_GC_MARK_SWEEP ? "mark_sweep"
           : a == SHR_GC_BACON_RAJAN ? "bacon_rajan" : "?";
}

#define NAME_OF(p) p,
static const char *const all_points[] = {SHR_GC_POINTS(NAME_OF) "end"};
#define NALL (sizeof all_points / sizeof all_points[0])
#define END_POINT "end" /* the baseline: killed after the workload */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

typedef struct cfg {
    uint64_t n, hold, seed;
    char name[64];
} cfg_t;

static cfg_t C = {50000, 5000, 42, ""};

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

/* mode: 0 the kill run (armed at nth), 1 the dry run (count the hits,
 * report them on fd). Exit codes: 0 done without dying, 10+ a failed step. */
static void victim(const char *point, int alg, uint64_t nth, int dry, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int drain = strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0;
    int end = strcmp(point, END_POINT) == 0;
    uint64_t at = dry ? UINT64_MAX : nth;
    if (drain && shr_fault_arm(point, at, SHR_FAULT_KILL) != 0) /* the attach drains */
        _exit(20);
    shr_heap_t *h = victim_setup(&C);
    if (!drain && !end && shr_fault_arm(point, at, SHR_FAULT_KILL) != 0)
        _exit(20);
    int rc = workload(h, alg);
    if (rc)
        _exit(rc);
    if (end && !dry)
        raise(SIGKILL); /* the baseline: a kill outside every point */
    int64_t hits = end ? 1 : shr_fault_hits(point);
    shr_heap_close(h);
    if (!end) /* the close passes some points too */
        hits = shr_fault_hits(point);
    if (dry && write(fd, &hits, sizeof hits) != (ssize_t)sizeof hits)
        _exit(21);
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

/* The hits of point in one dry run on a heap of its own, or -1. */
static int64_t count_hits(const char *point, int alg)
{
    shr_heap_t *h = make_heap();
    if (strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0) {
        pid_t d = spawn(holder, point, alg, 0, 0, -1);
        if (wait_for(d) != 0)
            return -1;
    }
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t p = spawn(victim, point, alg, 0, 1, fd[1]);
    close(fd[1]);
    int64_t hits = -1;
    if (read(fd[0], &hits, sizeof hits) != (ssize_t)sizeof hits)
        hits = -1;
    close(fd[0]);
    int st = wait_for(p);
    shr_heap_close(h);
    shr_heap_unlink(C.name);
    if (st != 0) {
        char b[64];
        status_text(st, b, sizeof b);
        fprintf(stderr, "bench_gc_recover: the dry run for %s (%s): %s\n", point, alg_name(alg), b);
        return -1;
    }
    return hits;
}

static int bugs;   /* rows that showed a bug */
static int first_row = 1;

typedef struct outrow {
    char buf[4096];
    size_t len;
} outrow_t;

static void put(outrow_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(outrow_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

#define U(x) ((unsigned long long)(x))

static void put_verify(outrow_t *o, const char *pre, int rc, const shr_gc_verify_result_t *v)
{
    put(o, ", \"%s_rc\": %d, \"%s_objects\": %llu, \"%s_live\": %llu, \"%s_unreachable\": %llu, "
           "\"%s_unreachable_bytes\": %llu, \"%s_above\": %llu, \"%s_excess\": %llu, \"%s_below\": %llu, "
           "\"%s_dangling\": %llu, \"%s_incomplete\": %u, \"%s_pause_ns\": %llu",
        pre, rc, pre, U(v->objects), pre, U(v->live), pre, U(v->unreachable), pre, U(v->unreachable_bytes), pre,
        U(v->above), pre, U(v->excess), pre, U(v->below), pre, U(v->dangling), pre, v->incomplete, pre,
        U(v->pause_ns));
}

/* One row: the kill at point's nth hit, and the survivor's measurements. */
static void run_point(const char *point, int alg, const char *nth_mode, uint64_t nth_fixed)
{
    int end = strcmp(point, END_POINT) == 0;
    int64_t hits = end ? 1 : count_hits(point, alg);
    outrow_t o = {.len = 0};
    put(&o, "%s\n  {\"algorithm\": %d, \"algorithm_name\": \"%s\", \"point\": \"%s\", \"hits\": %lld", first_row ? "" : ",",
        alg, alg_name(alg), point, (long long)hits);
    first_row = 0;
    if (hits < 0) {
        put(&o, ", \"reached\": false, \"bug\": \"the dry run failed\"}");
        bugs++;
        fputs(o.buf, stdout);
        return;
    }
    if (hits == 0) {
        put(&o, ", \"reached\": false, \"bug\": null}");
        fputs(o.buf, stdout);
        fprintf(stderr, "bench_gc_recover: %s: %s is not reached by the workload\n", alg_name(alg), point);
        return;
    }
    uint64_t nth = strcmp(nth_mode, "first") == 0 ? 1 : strcmp(nth_mode, "mid") == 0 ? ((uint64_t)hits + 1) / 2
                                                                                       : nth_fixed;
    if (nth > (uint64_t)hits) nth = (uint64_t)hits;
    shr_heap_t *h = make_heap();
    uint64_t committed_empty = committed(h);
    if (strcmp(point, SHR_GC_POINT_MID_LEASE_RELEASE) == 0) {
        pid_t d = spawn(holder, point, alg, 0, 0, -1);
        if (wait_for(d) != 0) {
            put(&o, ", \"reached\": true, \"bug\": \"the holder failed\"}");
            fputs(o.buf, stdout);
            bugs++;
            shr_heap_close(h);
            return;
        }
    }
    pid_t p = spawn(victim, point, alg, nth, 0, -1);
    int st = wait_for(p);
    char sbuf[64];
    status_text(st, sbuf, sizeof sbuf);
    int killed = st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    put(&o, ", \"reached\": true, \"nth\": %llu, \"victim\": \"%s\"", U(nth), sbuf);
    const char *bug = killed ? NULL : "the victim did not die at the point";

    uint64_t t0 = now_ns();
    int reclaimed = shr_heap_recover(h);
    uint64_t recover_ns = now_ns() - t0;
    put(&o, ", \"recover_ns\": %llu, \"recovered_entries\": %d", U(recover_ns), reclaimed);
    if (reclaimed < 0 && !bug) bug = "shr_heap_recover failed";

    shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
    t0 = now_ns();
    int vrc = shr_gc_verify(h, &v);
    put(&o, ", \"verify_ns\": %llu", U(now_ns() - t0));
    put_verify(&o, "verify", vrc, &v);
    if ((vrc != 0 || v.below || v.dangling) && !bug) bug = vrc && vrc != SHR_ECORRUPT ? "shr_gc_verify failed"
                                                           : "a count below its true value, or a dangling reference";

    shr_gc_result_t r = SHR_GC_RESULT_INIT;
    int64_t got = shr_gc_collect_with(h, alg, 2, &r);
    put(&o, ", \"next_rc\": %lld, \"next_ns\": %llu, \"next_pause_ns\": %llu, \"next_collected\": %llu, "
            "\"next_bytes\": %llu", (long long)(got < 0 ? got : 0), U(r.total_ns), U(r.pause_ns),
        U(got < 0 ? 0 : got), U(r.bytes_freed));
    if (got < 0 && !bug) bug = "the next collection failed";

    r = (shr_gc_result_t)SHR_GC_RESULT_INIT;
    got = shr_gc_collect_with(h, SHR_GC_MARK_SWEEP | SHR_GC_REPAIR, 2, &r);
    put(&o, ", \"backup_rc\": %lld, \"backup_ns\": %llu, \"backup_collected\": %llu, \"backup_bytes\": %llu, "
            "\"backup_strays\": %llu, \"backup_repaired\": %llu, \"backup_repaired_refs\": %llu, \"backup_exact\": %u",
        (long long)(got < 0 ? got : 0), U(r.total_ns), U(got < 0 ? 0 : got), U(r.bytes_freed), U(r.strays),
        U(r.repaired), U(r.repaired_refs), r.exact);
    if (got < 0 && !bug) bug = "the backup mark-sweep failed";

    v = (shr_gc_verify_result_t)SHR_GC_VERIFY_INIT;
    vrc = shr_gc_verify(h, &v);
    put_verify(&o, "after", vrc, &v);
    if ((vrc != 0 || v.below || v.dangling) && !bug) bug = "after the backup: a count below its true value";
    t0 = now_ns();
    int crc = shr_heap_check_report(h, stderr);
    put(&o, ", \"check\": \"%s\", \"check_ns\": %llu", crc == 0 ? "ok" : "failed", U(now_ns() - t0));
    if (crc != 0 && !bug) bug = "shr_heap_check failed";

    /* Everything released: what is left is leaked for good. */
    shr_obj_unpublish(h, "graph");
    shr_obj_unpublish(h, "L");
    shr_obj_unpublish(h, "fresh"); /* published if the victim died between publish and unpublish */
    got = shr_gc_collect_with(h, SHR_GC_MARK_SWEEP, 2, NULL);
    if (got < 0 && !bug) bug = "the final mark-sweep failed";
    v = (shr_gc_verify_result_t)SHR_GC_VERIFY_INIT;
    vrc = shr_gc_verify(h, &v);
    if ((vrc != 0 || v.below || v.dangling) && !bug) bug = "released: a count below its true value";
    shr_heap_collect(h);
    uint64_t cm = committed(h);
    put(&o, ", \"left_objects\": %llu, \"left_unreachable\": %llu, \"committed_empty\": %llu, "
            "\"committed_left\": %llu", U(v.objects), U(v.unreachable), U(committed_empty), U(cm));
    if (bug) {
        put(&o, ", \"bug\": \"%s\"}", bug);
        bugs++;
        fprintf(stderr, "bench_gc_recover: BUG at %s (%s): %s (victim: %s)\n", point, alg_name(alg), bug, sbuf);
    } else {
        put(&o, ", \"bug\": null}");
    }
    fputs(o.buf, stdout);
    fflush(stdout);
    shr_heap_close(h);
    shr_heap_unlink(C.name);
}

static int supported(int a)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags |= SHR_HEAP_PRIVATE;
    if (shr_heap_create(NULL, &o, &h) != 0)
        return 0;
    int64_t rc = shr_gc_collect_with(h, a, 2, NULL);
    shr_heap_close(h);
    return rc != -EINVAL;
}

static int parse_list(const char *s, uint64_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return -1;
        out[n++] = (uint64_t)v;
        if (*end && *end != ',')
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    uint64_t algs_in[8] = {0, 1, 2};
    int nalgs_in = 3;
    const char *nth_mode = "mid";
    uint64_t nth_fixed = 1;
    const char *only = NULL;
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
        } else if (strncmp(a, "--points=", 9) == 0)
            only = a + 9;
        else {
            fprintf(stderr, "usage: %s [--n=N] [--hold=K] [--seed=S] [--algorithms=0,1,2] [--nth=mid|first|N]\n"
                            "          [--points=NAME,...]\n", argv[0]);
            return 64;
        }
    }
    if (C.n < 10 || C.n > SHR_GRAPH_MAX_N || nalgs_in < 1) {
        fprintf(stderr, "bench_gc_recover: bad --n (10..%u) or --algorithms\n", SHR_GRAPH_MAX_N);
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
    printf("{\"n\": %llu, \"hold\": %llu, \"seed\": %llu, \"nth\": \"%s\", \"graph\": \"mix\", \"skipped\": [",
           U(C.n), U(C.hold), U(C.seed), nth_mode);
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
    for (int a = 0; a < nalgs; a++)
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
            run_point(all_points[k], algs[a], nth_mode, nth_fixed);
        }
    printf("],\n \"bugs\": %d}\n", bugs);
    if (bugs)
        fprintf(stderr, "bench_gc_recover: %d row(s) show a bug (see \"bug\" in the JSON)\n", bugs);
    return bugs ? 1 : 0;
}
