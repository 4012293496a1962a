/* No leak from a crash, the normal tier: tens of kills of a list and node
 * writer (leak_storm.h), then everything freed, a mark-sweep and
 * shr_heap_collect: committed memory within one arena of a single kill's,
 * and no count below its true value after any kill. */
#include "leak_storm.h"

static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_leak, .init = init, .fini = fini, .timeout = 600);

Test(gc_leak, thirty_kills_leave_no_more_committed_than_one_after_a_mark_sweep) { leak_storm_compare(30, 42); }
