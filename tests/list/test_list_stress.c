/* Long list crash experiment: hundreds of kills (ctest -L stress). */
#include "list_storm.h"

/* Bounded lock waits: a busy machine may make a contended wait take seconds;
 * this checks data, not time. */
static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
static void fini(void) { shr_test_cleanup(); }
TestSuite(list_stress, .init = init, .fini = fini, .timeout = 3600);

Test(list_stress, kill_storm_300) { list_kill_storm(300, 17); }
