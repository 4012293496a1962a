/* Long list crash experiment: hundreds of kills (ctest -L stress). */
#include "list_storm.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(list_stress, .fini = fini, .timeout = 3600);

Test(list_stress, kill_storm_300) { list_kill_storm(300, 17); }
