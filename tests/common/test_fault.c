/* Fault points through the public API: arming, firing once, the actions, the
 * environment variable, and bad arguments. In a release build the points are
 * compiled out and every call says so. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void fini(void)
{
    shr_fault_disarm(NULL);
    shr_test_cleanup();
}
TestSuite(fault, .fini = fini, .timeout = 60);

static shr_heap_t *new_heap(void)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    return h;
}

static int new_list(shr_heap_t *h)
{
    shr_value_t v = shr_int(7);
    shr_list_t *l;
    int rc = shr_list_create(h, NULL, &v, 1, &l);
    if (rc == 0) shr_list_close(l);
    return rc;
}

Test(fault, release_builds_compile_points_out)
{
    if (shr_fault_available()) cr_skip_test("a debug build: points are compiled in");
    cr_assert_eq(shr_fault_arm("obj.alloc", 1, SHR_FAULT_FAIL), -ENOSYS);
    cr_assert_eq(shr_fault_disarm(NULL), -ENOSYS);
    cr_assert_eq(shr_fault_hits("obj.alloc"), -ENOSYS);
}

Test(fault, every_point_has_a_unique_name_and_a_description)
{
    for (int i = 0; i < SHR_FAULT_NPOINTS; i++) {
        cr_assert_not_null(shr_fault_point_name(i));
        cr_assert_not_null(shr_fault_point_doc(i));
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(shr_fault_point_name(i), shr_fault_point_name(j));
    }
    cr_assert_null(shr_fault_point_name(SHR_FAULT_NPOINTS));
    cr_assert_null(shr_fault_point_name(-1));
}

Test(fault, bad_arguments_are_refused)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    cr_assert_eq(shr_fault_arm("no.such.point", 1, SHR_FAULT_FAIL), -EINVAL);
    cr_assert_eq(shr_fault_arm(NULL, 1, SHR_FAULT_FAIL), -EINVAL);
    cr_assert_eq(shr_fault_arm("obj.alloc", 0, SHR_FAULT_FAIL), -EINVAL);
    cr_assert_eq(shr_fault_arm("obj.alloc", 1, (shr_fault_action_t)9), -EINVAL);
    cr_assert_eq(shr_fault_disarm("no.such.point"), -EINVAL);
    cr_assert_eq(shr_fault_hits("no.such.point"), -EINVAL);
}

Test(fault, fail_fires_on_the_nth_hit_once_and_changes_nothing)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    shr_heap_t *h = new_heap();
    cr_assert_eq(new_list(h), 0); /* this process's lease table now exists */
    uint64_t before = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_fault_arm("obj.alloc", 2, SHR_FAULT_FAIL), 0);
    cr_assert_eq(new_list(h), 0, "the first hit does not fire");
    int64_t hits = shr_fault_hits("obj.alloc");
    cr_assert_geq(hits, 1);
    /* Fire on the next hit from here, whatever creating a list costs. */
    cr_assert_eq(shr_fault_arm("obj.alloc", 1, SHR_FAULT_FAIL), 0);
    cr_assert_eq(new_list(h), -ENOMEM);
    cr_assert_eq(shr_fault_hits("obj.alloc"), 1, "a failed create stops at its first allocation");
    cr_assert_eq(new_list(h), 0, "a point fires once per arming");
    cr_assert_eq(shr_test_blocks_in_use(h), before, "the failed create left nothing behind");
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

Test(fault, disarm_stops_a_point)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    shr_heap_t *h = new_heap();
    cr_assert_eq(shr_fault_arm("obj.alloc", 1, SHR_FAULT_FAIL), 0);
    cr_assert_eq(shr_fault_disarm("obj.alloc"), 0);
    cr_assert_eq(new_list(h), 0);
    shr_heap_close(h);
}

static int child_kill(void *arg)
{
    shr_heap_t *h = arg;
    shr_fault_arm("obj.alloc", 1, SHR_FAULT_KILL);
    new_list(h);
    return 0; /* not reached when the point fires */
}

Test(fault, kill_ends_the_process_at_the_point_and_the_heap_stays_whole)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    shr_heap_t *h = new_heap();
    cr_assert_eq(shr_test_wait(shr_test_fork(child_kill, h)), 128 + SIGKILL);
    shr_heap_recover(h);
    cr_assert_eq(shr_heap_check(h), 0);
    cr_assert_eq(new_list(h), 0, "the point was armed in the child only");
    shr_heap_close(h);
}

static int child_stop(void *arg)
{
    shr_heap_t *h = arg;
    shr_fault_arm("obj.alloc", 1, SHR_FAULT_STOP);
    return new_list(h) == 0 ? 0 : 1; /* goes on after SIGCONT */
}

Test(fault, stop_suspends_the_process_until_sigcont)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    shr_heap_t *h = new_heap();
    pid_t pid = shr_test_fork(child_stop, h);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(st), "the child stopped itself at the point");
    kill(pid, SIGCONT);
    cr_assert_eq(shr_test_wait(pid), 0, "after SIGCONT the operation completes");
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

static int run_peer_with(const char *fault, const char *name)
{
    setenv("SHARENA_FAULT", fault, 1);
    int rc = shr_test_run_peer("newlist", name, (char *)NULL);
    unsetenv("SHARENA_FAULT");
    return rc;
}

Test(fault, the_environment_arms_points_in_a_new_process)
{
    if (!shr_fault_available()) cr_skip_test("points compiled out");
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    cr_assert_eq(run_peer_with("obj.alloc:1:fail", name), 2, "the create failed at the point");
    cr_assert_eq(run_peer_with("obj.alloc:1:kill", name), 128 + SIGKILL);
    cr_assert_eq(run_peer_with("obj.alloc:1:nonsense,no.such:1:kill", name), 0,
                 "malformed entries are ignored (and reported on stderr)");
    cr_assert_eq(run_peer_with("", name), 0);
    shr_heap_recover(h);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}
