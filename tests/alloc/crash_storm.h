/* The crash experiment shared by the multiproc (short) and stress (long)
 * suites: storm peers allocate and free at random on one heap, checking the
 * contents of every block they free; the test SIGKILLs them at random moments
 * and, after each kill, reclaims the dead and checks the heap while the
 * survivors go on. */
#ifndef SHR_TEST_CRASH_STORM_H
#define SHR_TEST_CRASH_STORM_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "harness.h"

static void crash_storm(int kills, int workers, unsigned seed)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    const char *name = shr_heap_name(h);
    pid_t pid[16];
    char sseed[16];
    int killed = 0, finished = 0;
    for (int w = 0; w < workers; w++) {
        snprintf(sseed, sizeof sseed, "%u", seed + (unsigned)w);
        pid[w] = shr_test_exec_peer("storm", name, sseed, "1500", NULL);
    }
    for (int k = 0; k < kills; k++) {
        shr_test_sleep_ms(20 + (unsigned)(rand_r(&seed) % 60));
        int w = (int)(rand_r(&seed) % (unsigned)workers);
        kill(pid[w], SIGKILL);
        int st = shr_test_wait(pid[w]);
        if (st == 128 + SIGKILL) killed++;
        else {
            cr_assert_eq(st, 0, "a storm peer failed (%d): contents changed or ENOMEM", st);
            finished++;
        }
        cr_assert_geq(shr_heap_recover(h), 0);
        cr_assert_eq(shr_heap_check_report(h, stderr), 0, "heap check after kill %d", k);
        snprintf(sseed, sizeof sseed, "%u", seed + 100u + (unsigned)k);
        pid[w] = shr_test_exec_peer("storm", name, sseed, "1500", NULL);
    }
    for (int w = 0; w < workers; w++) {
        int st = shr_test_wait(pid[w]);
        cr_assert_eq(st, 0, "a surviving storm peer failed (%d)", st);
    }
    shr_heap_recover(h);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0, "heap check at the end");
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(h, &st), 0);
    uint64_t in_use = 0;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) in_use += st.classes[c].blocks_in_use;
    /* Every survivor freed all it held: what is left was held by the dead,
     * and the statistics count it (within one block in flight per kill). */
    uint64_t leaked = st.dead_outstanding_blocks;
    cr_assert_gt(killed, 0);
    /* A peer killed before its first malloc had no thread slot yet. */
    cr_assert_gt(st.dead_threads, 0);
    cr_assert_leq(st.dead_threads, (uint64_t)killed);
    cr_assert_leq(in_use, leaked + (uint64_t)killed, "in use %llu, dead outstanding %llu",
                  (unsigned long long)in_use, (unsigned long long)leaked);
    cr_assert_geq(in_use + (uint64_t)killed, leaked, "in use %llu, dead outstanding %llu",
                  (unsigned long long)in_use, (unsigned long long)leaked);
    /* The heap still serves everyone. */
    void *p = shr_malloc(h, 100);
    cr_assert_not_null(p);
    shr_free(h, p);
    cr_log_info("crash storm: %d kills, %d finished early, %llu blocks leaked by the dead",
                killed, finished, (unsigned long long)in_use);
    shr_heap_close(h);
}

#endif
