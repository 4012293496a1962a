/* No leak from a crash, the stress tier: the storm of 400 kills
 * (leak_storm.h). Its figures go to stderr; docs/design/gc.md §10.4 keeps
 * them. */
#include "leak_storm.h"

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_leak_stress, .init = init, .fini = fini, .timeout = 3600);

Test(gc_leak_stress, four_hundred_kills_leave_no_more_committed_than_one_after_a_mark_sweep)
{
    leak_storm_compare(400, 4242);
}
