/* A program with large static TLS can create and attach heaps.
 *
 * glibc places a new thread's static TLS at the top of its stack; the
 * registry's anchor thread once had a fixed 64 KiB stack, so any program with
 * more static TLS than that (an interpreter with its extension modules, a
 * preloaded allocator's host) failed every create and attach with -EINVAL.
 * This executable carries 256 KiB of __thread data of its own.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "harness.h"

static __thread unsigned char tls_blob[256 << 10];

static void fini(void) { shr_test_cleanup(); }
TestSuite(shm_tls, .fini = fini, .timeout = 60);

Test(shm_tls, create_and_attach_with_256kib_of_static_tls)
{
    memset(tls_blob, 0x5a, sizeof tls_blob); /* the TLS is real and in use */
    const char *name = shr_test_name();
    shr_heap_t *a, *b;
    int rc = shr_heap_create(name, NULL, &a);
    cr_assert_eq(rc, 0, "create: %s", shr_strerror(rc));
    rc = shr_heap_attach(name, &b);
    cr_assert_eq(rc, 0, "attach: %s", shr_strerror(rc));
    void *p = shr_malloc(b, 100);
    cr_assert_not_null(p);
    shr_free(b, p);
    cr_assert_eq(shr_heap_check(a), 0);
    cr_assert_eq(shr_heap_close(b), 0);
    cr_assert_eq(shr_heap_close(a), 0);
    cr_assert_eq(shr_heap_unlink(name), 0);
    cr_assert_eq(tls_blob[sizeof tls_blob - 1], 0x5a);
}

Test(shm_tls, the_error_for_a_thread_that_cannot_start_has_its_own_message)
{
    cr_assert_str_neq(shr_strerror(SHR_ESPAWN), shr_strerror(-EINVAL));
    cr_assert(strstr(shr_strerror(SHR_ESPAWN), "thread") != NULL);
}
