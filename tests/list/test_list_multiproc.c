/* The shared list across processes: concurrent readers and writers,
 * concurrent appends, processes killed holding leases or in the middle of a
 * set, an append or a pop, and a live holder that stops. */
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>

#include "list_storm.h"

/* A child stopped with SIGSTOP, killed at the end even if the test failed. */
static pid_t stopped_child;

/* Lock waits are bounded (SHARENA_LOCK_TIMEOUT_MS); on a machine this busy
 * a contended wait may take seconds, and these tests check data, not time:
 * give them a minute. */
#define PATIENT_MS "60000"

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", PATIENT_MS, 1); }

static void fini(void)
{
    if (stopped_child > 0) kill(stopped_child, SIGKILL);
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    shr_test_cleanup();
}
TestSuite(list_multiproc, .init = init, .fini = fini, .timeout = 300);

Test(list_multiproc, readers_never_see_torn_or_freed_strings)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *l = storm_list(h, "rw");
    uint64_t base = storm_blocks(h);
    storm_cfg_t w1 = {h, "rw", 11, 1500, 0, NULL}, w2 = {h, "rw", 12, 1500, 0, NULL};
    storm_cfg_t r1 = {h, "rw", 21, 1500, 0, NULL}, r2 = {h, "rw", 22, 1500, 0, NULL};
    pid_t p[4] = {shr_test_fork(storm_writer, &w1), shr_test_fork(storm_writer, &w2),
                  shr_test_fork(storm_reader, &r1), shr_test_fork(storm_reader, &r2)};
    for (int i = 0; i < 4; i++) cr_assert_eq(shr_test_wait(p[i]), 0, "process %d failed (20: a bad string)", i);
    cr_assert_eq(verify_list(h, l), 0);
    cr_assert_eq(storm_blocks(h), base, "every replaced string was released");
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "rw"), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* The lock-free copy of short strings against writers in two processes
 * that keep replacing strings (the old block freed at once, and soon reused
 * for the next string of its size), one of them also appending and popping
 * (one only: it pops only above STORM_ITEMS items, which two could not
 * keep to, and the sets index below it). */
Test(list_multiproc, copying_readers_never_see_torn_or_freed_strings)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *l = storm_list(h, "cp");
    storm_cfg_t w1 = {h, "cp", 31, 1500, 1, NULL}, w2 = {h, "cp", 32, 1500, 0, NULL};
    storm_cfg_t r1 = {h, "cp", 41, 1500, 0, NULL}, r2 = {h, "cp", 42, 1500, 0, NULL};
    pid_t p[4] = {shr_test_fork(storm_writer, &w1), shr_test_fork(storm_writer, &w2),
                  shr_test_fork(storm_copy_reader, &r1), shr_test_fork(storm_copy_reader, &r2)};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shr_test_wait(p[i]), 0, "process %d failed (20: a bad string, 21: nothing copied)", i);
    cr_assert_eq(verify_list(h, l), 0);
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "cp"), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- concurrent appends ------------------------------------------------------ */

typedef struct { shr_heap_t *h; int tag; } app_arg_t;

static void *append_thread(void *arg)
{
    app_arg_t *a = arg;
    shr_list_t *l;
    if (shr_list_attach(a->h, "app", &l) != 0) return (void *)1;
    for (int i = 0; i < 3000; i++) {
        shr_value_t v = shr_int((int64_t)a->tag * 100000 + i);
        if (shr_list_append(l, &v) != 0) return (void *)2;
    }
    shr_list_close(l);
    return NULL;
}

static int append_process(void *arg)
{
    app_arg_t *base = arg;
    app_arg_t a[2] = {{base->h, base->tag * 2}, {base->h, base->tag * 2 + 1}};
    pthread_t t[2];
    void *r0, *r1;
    pthread_create(&t[0], NULL, append_thread, &a[0]);
    pthread_create(&t[1], NULL, append_thread, &a[1]);
    pthread_join(t[0], &r0);
    pthread_join(t[1], &r1);
    return r0 || r1 ? 1 : 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

Test(list_multiproc, concurrent_appends_lose_nothing)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "app", NULL, 0, &l), 0);
    app_arg_t a1 = {h, 1}, a2 = {h, 2};
    pid_t p1 = shr_test_fork(append_process, &a1), p2 = shr_test_fork(append_process, &a2);
    cr_assert_eq(shr_test_wait(p1), 0);
    cr_assert_eq(shr_test_wait(p2), 0);
    int64_t n = shr_list_len(l);
    cr_assert_eq(n, 4 * 3000, "appends lost: %lld items", (long long)n);
    int64_t *all = malloc((size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++) {
        shr_value_t v;
        cr_assert_eq(shr_list_get(l, i, &v), 0);
        all[i] = v.u.i;
    }
    qsort(all, (size_t)n, sizeof *all, cmp_i64);
    int64_t k = 0;
    for (int tag = 2; tag <= 5; tag++)
        for (int i = 0; i < 3000; i++) cr_assert_eq(all[k++], (int64_t)tag * 100000 + i, "missing or duplicated value");
    free(all);
    shr_list_close(l);
    shr_list_unlink(h, "app");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- crashes ----------------------------------------------------------------- */

static shr_test_gate_t gate;

static int hold_leases_and_wait(void *arg)
{
    shr_heap_t *h = arg;
    shr_list_t *l;
    if (shr_list_attach(h, "held", &l) != 0) return 1;
    static shr_value_t got[100];
    for (int i = 0; i < 100; i++)
        if (shr_list_get(l, i % 10, &got[i]) != 0) return 2;
    shr_test_gate_open(&gate);
    for (;;) pause();
}

Test(list_multiproc, killed_process_releases_its_leases)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint64_t base = storm_blocks(h);
    shr_value_t in[10];
    for (int i = 0; i < 10; i++) in[i] = shr_str("a string held by a dying process");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "held", in, 10, &l), 0);
    uint64_t with_list = storm_blocks(h);
    shr_test_gate_init(&gate);
    pid_t pid = shr_test_fork(hold_leases_and_wait, h);
    cr_assert(shr_test_gate_wait(&gate, 10000), "child did not get its strings");
    /* Replace every string: the dead process's leases keep the old ones. */
    for (int i = 0; i < 10; i++) {
        shr_value_t v = shr_int(i);
        cr_assert_eq(shr_list_set(l, i, &v), 0);
    }
    cr_assert_gt(storm_blocks(h), with_list - 10, "the strings it holds are alive");
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    cr_assert_geq(shr_heap_recover(h), 1);
    shr_lease_stats_t gs;
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.released_for_dead, 101, "100 gets and one handle");
    cr_assert_eq(storm_blocks(h), with_list - 10, "its strings were freed");
    shr_list_close(l);
    shr_list_unlink(h, "held");
    shr_heap_collect(h);
    cr_assert_leq(storm_blocks(h), base + 1);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(list_multiproc, killed_in_the_middle_of_sets_appends_and_pops) { list_kill_storm(15, 3); }

/* ---- lock-free int reads during in-place shifts ------------------------------ */

/* Ints that check themselves: the low 16 bits are a hash of the rest. */
static int64_t checked_int(uint32_t x) { return ((int64_t)x << 16) | ((x * 2654435761u) >> 16); }
static bool int_ok(int64_t v) { return (v & 0xffff) == (((uint32_t)(v >> 16) * 2654435761u) >> 16); }

static int shifter(void *arg)
{
    shr_heap_t *h = arg;
    shr_list_t *l;
    if (shr_list_attach(h, "ints", &l) != 0) return 1;
    unsigned seed = (unsigned)getpid();
    for (int it = 0; it < 150000; it++) {
        unsigned r = (unsigned)rand_r(&seed);
        shr_value_t v = shr_int(checked_int(r));
        int64_t n = shr_list_len(l);
        if (r % 3 == 0 || n < 50) shr_list_insert(l, (int64_t)(r % 64), &v);
        else if (r % 3 == 1) shr_list_pop(l, (int64_t)(r % (uint64_t)n), NULL);
        else shr_list_set(l, (int64_t)(r % (uint64_t)n), &v);
    }
    shr_list_close(l);
    return 0;
}

static int int_reader(void *arg)
{
    shr_heap_t *h = arg;
    shr_list_t *l;
    if (shr_list_attach(h, "ints", &l) != 0) return 1;
    int bad = 0;
    unsigned seed = (unsigned)getpid();
    for (int it = 0; it < 3000000; it++) {
        shr_value_t v;
        int rc = shr_list_get(l, (int64_t)(rand_r(&seed) % 100), &v);
        if (rc == SHR_EINDEX) continue;
        if (rc != 0 || v.type != SHR_INT || !int_ok(v.u.i)) {
            if (bad++ < 3) fprintf(stderr, "reader: rc %d type %d value %llx\n", rc, v.type, (unsigned long long)v.u.i);
        }
    }
    shr_list_close(l);
    return bad ? 20 : 0;
}

Test(list_multiproc, lock_free_reads_during_inserts_and_deletes)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_value_t in[100];
    for (uint32_t i = 0; i < 100; i++) in[i] = shr_int(checked_int(i));
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "ints", in, 100, &l), 0);
    pid_t p[4] = {shr_test_fork(shifter, h), shr_test_fork(shifter, h), shr_test_fork(int_reader, h),
                  shr_test_fork(int_reader, h)};
    for (int i = 0; i < 4; i++) cr_assert_eq(shr_test_wait(p[i]), 0, "process %d failed (20: a torn int)", i);
    int64_t n = shr_list_len(l);
    for (int64_t i = 0; i < n; i++) {
        shr_value_t v;
        cr_assert_eq(shr_list_get(l, i, &v), 0);
        cr_assert(int_ok(v.u.i));
    }
    shr_list_close(l);
    shr_list_unlink(h, "ints");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- a live holder that stops -------------------------------------------------- */

static int stop_in_a_set(void *arg)
{
    shr_list_t *l = arg;
    if (shr_fault_arm("list.set.commit", 1, SHR_FAULT_STOP) != 0) return 2;
    shr_value_t v = shr_int(2);
    return shr_list_set(l, 0, &v) == 0 ? 0 : 1; /* finishes after SIGCONT */
}

Test(list_multiproc, a_stopped_lock_holder_makes_others_time_out_instead_of_hanging)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out");
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_value_t in[] = {shr_int(1), shr_str("x")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 2, &l), 0);
    pid_t pid = stopped_child = shr_test_fork(stop_in_a_set, l);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st), "the child stopped inside its set, holding the list's lock");
    setenv("SHARENA_LOCK_TIMEOUT_MS", "300", 1);
    shr_value_t v = shr_int(3);
    cr_assert_eq(shr_list_set(l, 1, &v), SHR_ELOCKTIMEOUT, "a writer gives up");
    cr_assert_eq(shr_list_append(l, &v), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_list_pop(l, -1, NULL), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_list_get(l, 1, &v), SHR_ELOCKTIMEOUT, "a reader of a str needs the lock too");
    cr_assert_eq(shr_list_get(l, 0, &v), SHR_ELOCKTIMEOUT, "the seqlock is odd mid-set: the reader falls back");
    cr_assert_eq(shr_list_len(l), 2, "len reads without the lock");
    char *r = shr_list_repr(l);
    cr_assert_null(r);
    cr_assert_eq(errno, ETIMEDOUT);
    setenv("SHARENA_LOCK_TIMEOUT_MS", PATIENT_MS, 1);
    kill(pid, SIGCONT);
    cr_assert_eq(shr_test_wait(pid), 0, "after SIGCONT the child's set completes");
    stopped_child = 0;
    cr_assert_eq(shr_list_get(l, 0, &v), 0);
    cr_assert_eq(v.u.i, 2);
    cr_assert_eq(shr_list_get(l, 1, &v), 0);
    cr_assert_eq(v.type, SHR_STR, "the timed-out set changed nothing");
    shr_value_release(h, &v);
    shr_list_close(l);
    cr_assert_leq(shr_test_blocks_in_use(h), 1, "the timed-out calls leaked nothing");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- walks that never block a writer ---------------------------------------------- */

static int count_forever(void *arg)
{
    shr_list_t *l = arg;
    shr_value_t absent = shr_str("not in the list");
    size_t n;
    if (shr_list_count(l, &absent, &n) != 0 || n != 0) return 1;
    shr_test_gate_open(&gate);
    for (;;)
        if (shr_list_count(l, &absent, &n) != 0 || n != 0) return 2;
}

/* count and index compare strings in read sections, with no lock: a walker
 * stopped anywhere in its walk (here by SIGSTOP, as a preemption or a
 * debugger would) holds nothing a writer needs. With the walk under the
 * lock, a step at a time, a walker counting back to back holds the lock
 * nearly all the time, and these sets timed out. */
Test(list_multiproc, a_stopped_counter_never_blocks_a_writer)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    enum { N = 20000 };
    shr_value_t *in = malloc(N * sizeof *in);
    for (int i = 0; i < N; i++) in[i] = shr_str("a string to compare, many times");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, N, &l), 0);
    free(in);
    shr_test_gate_init(&gate);
    pid_t pid = stopped_child = shr_test_fork(count_forever, l);
    cr_assert(shr_test_gate_wait(&gate, 30000), "the counter did not start");
    setenv("SHARENA_LOCK_TIMEOUT_MS", "300", 1);
    int blocked = 0;
    for (int k = 0; k < 5; k++) {
        usleep(3000);
        kill(pid, SIGSTOP);
        int st;
        cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
        cr_assert(WIFSTOPPED(st));
        shr_value_t v = shr_int(k);
        int rc = shr_list_set(l, 100 + k, &v);
        if (rc == SHR_ELOCKTIMEOUT) blocked++;
        else cr_assert_eq(rc, 0);
        v = shr_str("replaced while a walker is stopped");
        rc = shr_list_set(l, 200 + k, &v);
        if (rc == SHR_ELOCKTIMEOUT) blocked++;
        else cr_assert_eq(rc, 0);
        kill(pid, SIGCONT);
    }
    setenv("SHARENA_LOCK_TIMEOUT_MS", PATIENT_MS, 1);
    cr_assert_eq(blocked, 0, "%d of 10 sets timed out behind a stopped counter", blocked);
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    stopped_child = 0;
    shr_heap_recover(h);
    size_t n = 0;
    shr_value_t v = shr_str("replaced while a walker is stopped");
    cr_assert_eq(shr_list_count(l, &v, &n), 0);
    cr_assert_eq(n, 5);
    shr_list_close(l);
    cr_assert_leq(shr_test_blocks_in_use(h), 1, "the dropped strings were released");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
