/* shm at the limits a heap can be made for: a pool of a thousand worker
 * processes attached at once, and twenty thousand threads holding slots at
 * once, then a check. Long and heavy on the machine: the stress tier. */
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
    shr_test_gate_t go;
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
    return p ? NULL : (void *)1;
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
    if (!shr_test_gate_wait(&w->go, 600000)) return 3;
    pthread_barrier_wait(&bar);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    shr_heap_close(h);
    return bad ? 4 : 0;
}

static void run_pool(int procs, int threads_each, uint32_t max_procs, uint32_t max_threads)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.max_procs = max_procs;
    o.max_threads = max_threads;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    work_t w = {.name = shr_heap_name(h), .threads = threads_each};
    shr_test_gate_init(&w.go);
    pid_t *pids = calloc((size_t)procs, sizeof *pids);
    for (int i = 0; i < procs; i++) pids[i] = shr_test_fork(worker, &w);
    shr_heap_info_t info;
    uint32_t want_threads = (uint32_t)(procs * threads_each);
    for (int tries = 0; tries < 12000; tries++) {
        cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
        if (info.nprocs == (uint32_t)procs + 1 && info.nthreads == want_threads) break;
        shr_test_sleep_ms(50);
    }
    cr_assert_eq(info.nprocs, (uint32_t)procs + 1, "every worker attached at once");
    cr_assert_eq(info.nthreads, want_threads, "every thread holds a slot at once");
    cr_assert_eq(shr_heap_check(h), 0);
    for (int i = 0; i < procs; i++) shr_test_gate_open(&w.go);
    for (int i = 0; i < procs; i++) cr_assert_eq(shr_test_wait(pids[i]), 0, "worker %d", i);
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
