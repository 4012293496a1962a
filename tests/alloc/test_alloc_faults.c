/* The allocator stopped at its real commit points (include/sharena/fault.h):
 * a process killed at each point leaves a heap that checks whole once the
 * death is reclaimed, while the survivor's blocks stay intact and it goes on
 * allocating; "fail" at a commit is ENOMEM and changes nothing. Debug builds
 * only (release builds compile the points out). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "harness.h"

static void fini(void)
{
    shr_fault_disarm(NULL);
    shr_test_cleanup();
}
TestSuite(alloc_faults, .fini = fini, .timeout = 300);

static void need_points(void)
{
    if (!shr_fault_available()) cr_skip_test("a release build: fault points are compiled out");
}

/* ---- the survivor ------------------------------------------------------------ */

enum { NSURV = 300 };

typedef struct {
    shr_heap_t *h;
    uint8_t *p[NSURV];
    size_t n[NSURV];
} survivor_t;

static void survivor_fill(survivor_t *s)
{
    for (int i = 0; i < NSURV; i++) {
        s->n[i] = 8 + (size_t)(i * 37) % 900 + (i % 50 == 0 ? 40000 : 0);
        cr_assert_not_null(s->p[i] = shr_malloc(s->h, s->n[i]));
        for (size_t j = 0; j < s->n[i]; j++) s->p[i][j] = (uint8_t)(i + j);
    }
}

static void survivor_verify_and_go_on(survivor_t *s)
{
    for (int i = 0; i < NSURV; i++)
        for (size_t j = 0; j < s->n[i]; j++)
            cr_assert_eq(s->p[i][j], (uint8_t)(i + j), "survivor block %d byte %zu intact", i, j);
    /* Going on: new blocks of every kind, then everything freed. */
    for (int i = 0; i < NSURV; i += 2) {
        shr_free(s->h, s->p[i]);
        cr_assert_not_null(s->p[i] = shr_malloc(s->h, s->n[i] + 100));
        memset(s->p[i], 1, s->n[i] + 100);
    }
    void *huge = shr_malloc(s->h, 3u << 20);
    cr_assert_not_null(huge);
    memset(huge, 2, 3u << 20);
    shr_free(s->h, huge);
    for (int i = 0; i < NSURV; i++) shr_free(s->h, s->p[i]);
}

/* ---- the victim's workloads: each reaches its point ---------------------------- */

typedef struct {
    shr_heap_t *h;
    const char *point;
} victim_t;

static int carve_forever(shr_heap_t *h)
{
    for (int i = 0; i < 200000; i++)
        if (!shr_malloc(h, 16 + (size_t)(i % 64) * 16)) return 2;
    return 3; /* the point was never reached */
}

static void *alloc_and_exit(void *arg)
{
    shr_heap_t *h = arg;
    for (int i = 0; i < 100; i++) shr_malloc(h, 208); /* left in use: its pool is orphaned */
    return NULL;
}

static void *alloc_one_208(void *arg)
{
    return shr_malloc(arg, 208);
}

typedef struct {
    shr_heap_t *h;
    void **blocks;
    int n;
} frees_t;

static void *free_remotely(void *arg)
{
    frees_t *f = arg;
    for (int i = 0; i < f->n; i++) shr_free(f->h, f->blocks[i]);
    return NULL;
}

static int victim(void *arg)
{
    victim_t *v = arg;
    shr_heap_t *h = v->h;
    pthread_t t;
    if (!shr_malloc(h, 24)) return 2; /* registers this process and its thread */
    if (strcmp(v->point, "alloc.pool.adopt") == 0) {
        /* An exiting thread leaves an orphan of class 208; a new thread
         * (no cache of empty pools yet) takes it: that is the point. */
        if (pthread_create(&t, NULL, alloc_and_exit, h) || pthread_join(t, NULL)) return 4;
        if (shr_fault_arm(v->point, 1, SHR_FAULT_KILL)) return 5;
        if (pthread_create(&t, NULL, alloc_one_208, h) || pthread_join(t, NULL)) return 4;
        return 3;
    }
    if (strcmp(v->point, "alloc.pool.reclass") == 0) {
        /* Three pools of 208-byte blocks, emptied: all but the class's last
         * go to this thread's cache of empty pools, keeping their class. A
         * 48-byte block then takes the newest and re-classes it. */
        void *b[60];
        for (int i = 0; i < 60; i++)
            if (!(b[i] = shr_malloc(h, 208))) return 2;
        for (int i = 59; i >= 0; i--) shr_free(h, b[i]);
        if (shr_fault_arm(v->point, 1, SHR_FAULT_KILL)) return 5;
        shr_malloc(h, 48);
        return 3;
    }
    if (strcmp(v->point, "alloc.remote.splice") == 0) {
        /* A 64 KiB pool of 4 KiB blocks, all carved and in use; another
         * thread frees five of them onto its remote stack; the owner's next
         * allocation takes the stack and splices it. */
        void *b[15];
        for (int i = 0; i < 15; i++)
            if (!(b[i] = shr_malloc(h, 4096))) return 2;
        frees_t f = {h, b, 5};
        if (pthread_create(&t, NULL, free_remotely, &f) || pthread_join(t, NULL)) return 4;
        if (shr_fault_arm(v->point, 1, SHR_FAULT_KILL)) return 5;
        shr_malloc(h, 4096);
        return 3;
    }
    if (strcmp(v->point, "alloc.chunk.release") == 0) {
        /* Five medium arenas (4 pools of 15 blocks each), emptied and
         * given back: all but one are released. */
        static void *b[300];
        int n = 0;
        while (n < 300 && (b[n] = shr_malloc(h, 4096))) n++;
        if (shr_fault_arm(v->point, 1, SHR_FAULT_KILL)) return 5;
        for (int i = 0; i < n; i++) shr_free(h, b[i]);
        shr_heap_collect(h);
        return 3;
    }
    if (shr_fault_arm(v->point, 1, SHR_FAULT_KILL)) return 5;
    if (strncmp(v->point, "alloc.huge.", 11) == 0) {
        shr_malloc(h, 5u << 20);
        return 3;
    }
    return carve_forever(h); /* alloc.pool.carve, alloc.arena.commit */
}

static void kill_at(const char *point)
{
    need_points();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    survivor_t s = {.h = h};
    survivor_fill(&s);
    victim_t v = {h, point};
    int rc = shr_test_wait(shr_test_fork(victim, &v));
    cr_assert_eq(rc, 128 + SIGKILL, "%s: the victim died at the point (exit %d)", point, rc);
    int nrec = shr_heap_recover(h);
    cr_assert_geq(nrec, 1, "%s: the dead process is reclaimed (%d)", point, nrec);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "%s: the heap is whole after the death", point);
    survivor_verify_and_go_on(&s);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "%s: and after the survivor went on", point);
    shr_heap_close(h);
}

Test(alloc_faults, killed_while_carving_a_pool) { kill_at("alloc.pool.carve"); }
Test(alloc_faults, killed_while_re_classing_an_empty_pool) { kill_at("alloc.pool.reclass"); }
Test(alloc_faults, killed_while_adopting_an_orphan) { kill_at("alloc.pool.adopt"); }
Test(alloc_faults, killed_between_taking_and_splicing_remote_frees) { kill_at("alloc.remote.splice"); }
Test(alloc_faults, killed_while_committing_an_arena) { kill_at("alloc.arena.commit"); }
Test(alloc_faults, killed_while_committing_a_huge_block) { kill_at("alloc.huge.commit"); }
Test(alloc_faults, killed_between_a_huge_blocks_tails_and_its_head) { kill_at("alloc.huge.tag"); }
Test(alloc_faults, killed_between_freeing_chunks_and_releasing_their_pages) { kill_at("alloc.chunk.release"); }

/* ---- fail: the commit fails as it would on a full /dev/shm ---------------------- */

Test(alloc_faults, failed_commits_are_enomem_and_change_nothing)
{
    need_points();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_alloc_stats_t before, after;
    void *keep = shr_malloc(h, 64);
    cr_assert_eq(shr_heap_stats(h, &before), 0);
    /* A huge block whose commit fails. */
    cr_assert_eq(shr_fault_arm("alloc.huge.commit", 1, SHR_FAULT_FAIL), 0);
    errno = 0;
    cr_assert_null(shr_malloc(h, 5u << 20));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(shr_heap_stats(h, &after), 0);
    cr_assert_eq(after.large_blocks, before.large_blocks, "no huge block counted");
    cr_assert_eq(after.chunks_used, before.chunks_used, "its chunks went back");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    /* An arena whose commit fails: allocation fails once, then goes on. */
    static void *b[2 * 64 * 64];
    int n = 0;
    /* Armed before each call: pools taken in a batch with the one whose
     * arena failed may serve a few more calls first. */
    errno = 0;
    for (; n < 2 * 64 * 64; n++) {
        cr_assert_eq(shr_fault_arm("alloc.arena.commit", 1, SHR_FAULT_FAIL), 0);
        if ((b[n] = shr_malloc(h, 64)) == NULL) break;
    }
    (void)shr_fault_disarm("alloc.arena.commit");
    cr_assert_lt(n, 2 * 64 * 64, "a small allocation failed when its arena could not be committed");
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_not_null(b[n] = shr_malloc(h, 64), "only that commit failed");
    n++;
    /* Arenas are committed as their pools are carved, so the failure may
     * have come in the first arena: fill a second one, which the frees
     * below empty and release. */
    for (; n < 2 * 64 * 64; n++) cr_assert_not_null(b[n] = shr_malloc(h, 64));
    /* A release that fails leaves pages committed, the heap whole. */
    cr_assert_eq(shr_fault_arm("alloc.chunk.release", 1, SHR_FAULT_FAIL), 0);
    for (int i = 0; i < n; i++) shr_free(h, b[i]);
    shr_heap_collect(h);
    cr_assert_eq(shr_fault_hits("alloc.chunk.release"), 1, "an arena was released");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    void *huge = shr_malloc(h, 5u << 20);
    cr_assert_not_null(huge);
    shr_free(h, huge);
    shr_free(h, keep);
    cr_assert_eq(shr_test_blocks_in_use(h), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
