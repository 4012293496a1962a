/* shm at the limits a heap can be made for: a pool of a thousand worker
 * processes attached at once, and twenty thousand threads holding slots at
 * once (their first allocations queue on the same locks), then a check.
 * Heavy on the machine: the stress tier. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(shm_stress, .fini = fini, .timeout = 1800);

typedef struct {
    const char *name;
    shr_test_gate_t go;    /* one byte per worker: let go */
    shr_test_gate_t ready; /* one byte from each worker: every thread allocated */
    int threads;
} work_t;

static void *hold(void *arg)
{
    shr_heap_t *h = ((void **)arg)[0];
    pthread_barrier_t *bar = ((void **)arg)[1];
    void *p = shr_malloc(h, 24);
    pthread_barrier_wait(bar); /* every thread holds its slot */
    pthread_barrier_wait(bar); /* until the process lets go */
    if (p) shr_free(h, p);
    return p ? NULL : (void *)(intptr_t)errno;
}

/* A worker: attach, start `threads` threads that each take a slot, report
 * on the gate's pipe, wait for the go byte, then let go and close. */
static int worker(void *arg)
{
    work_t *w = arg;
    shr_heap_t *h;
    if (shr_heap_attach(w->name, &h) != 0) return 1;
    int n = w->threads;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64u << 10);
    pthread_t *t = calloc((size_t)n + 1, sizeof *t);
    void *args[2] = {h, &bar};
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], &attr, hold, args) != 0) return 2;
    pthread_barrier_wait(&bar);
    shr_test_gate_open(&w->ready);
    if (!shr_test_gate_wait(&w->go, 600000)) return 3;
    pthread_barrier_wait(&bar);
    int err = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) err = (int)(intptr_t)r;
    }
    shr_heap_close(h);
    return err ? 100 + err : 0; /* 100 + the errno of a failed allocation */
}

static void run_pool(int procs, int threads_each, uint32_t max_procs, uint32_t max_threads)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    /* Each thread's first allocation takes pools for its cache: room for
     * twenty thousand of them. */
    o.capacity = (size_t)16 << 30;
    /* Twenty thousand first allocations queue on the arena lock of a small
     * machine: this test is about room, not about waiting. */
    o.lock_timeout_ms = 120000;
    o.max_procs = max_procs;
    o.max_threads = max_threads;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    work_t w = {.name = shr_heap_name(h), .threads = threads_each};
    shr_test_gate_init(&w.go);
    shr_test_gate_init(&w.ready);
    pid_t *pids = calloc((size_t)procs, sizeof *pids);
    for (int i = 0; i < procs; i++) pids[i] = shr_test_fork(worker, &w);
    for (int i = 0; i < procs; i++) cr_assert(shr_test_gate_wait(&w.ready, 600000), "worker %d", i);
    shr_heap_info_t info;
    uint32_t want_threads = (uint32_t)(procs * threads_each);
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nprocs, (uint32_t)procs + 1, "every worker attached at once");
    cr_assert_eq(info.nthreads, want_threads, "every thread holds a slot at once");
    cr_assert_eq(shr_heap_check(h), 0);
    for (int i = 0; i < procs; i++) shr_test_gate_open(&w.go);
    for (int i = 0; i < procs; i++) {
        int st = shr_test_wait(pids[i]);
        cr_assert_eq(st, 0, "worker %d exited with %d", i, st);
    }
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nprocs, 1);
    cr_assert_eq(info.nthreads, 0);
    cr_assert_eq(shr_heap_check(h), 0);
    free(pids);
    shr_heap_close(h);
}

Test(shm_stress, a_pool_of_a_thousand_workers)
{
    run_pool(1000, 1, 1001, 2048);
}

Test(shm_stress, twenty_thousand_threads)
{
    run_pool(20, 1000, 32, 20000);
}
