/* Long crash experiment: hundreds of SIGKILLs during a random storm. Not in
 * the default run: ctest -L stress (or SHR_STRESS=1 scripts/test.sh). */
#include "crash_storm.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(alloc_stress, .fini = fini, .timeout = 3600);

Test(alloc_stress, kill_storm_300) { crash_storm(300, 3, 99); }
