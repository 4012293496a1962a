/* peer: a separate program the tests exec, so that a second process maps the
 * heap at its own address (a fork child would inherit the parent's mapping).
 *
 *   peer attach NAME               attach and detach; exit 0, or 2 with the error
 *   peer write NAME OFF VALUE      store a uint64 at OFF
 *   peer read NAME OFF VALUE       exit 0 if the uint64 at OFF equals VALUE, else 1
 *   peer base NAME                 print the mapping's base address
 *   peer hold NAME MS              attach, touch the heap from a thread that exits and
 *                                  from the main thread, print "held", sleep MS, exit
 *                                  without closing (MS=0: forever)
 *   peer lock NAME LOCKID          attach, take a lock of the table, print "locked",
 *                                  then sleep until killed
 *
 * Every command prints "ready" on stdout once attached, for tests that wait
 * on it before killing the peer.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"

static int fail(const char *what, int rc)
{
    fprintf(stderr, "peer: %s: %s\n", what, shr_strerror(rc));
    return 2;
}

static void *touch(void *arg)
{
    return shr__tctx(arg);
}

int main(int argc, char **argv)
{
    shr_heap_t *h;
    int rc;
    if (argc < 3) {
        fprintf(stderr, "usage: peer CMD NAME ...\n");
        return 64;
    }
    const char *cmd = argv[1], *name = argv[2];
    if ((rc = shr_heap_attach(name, &h)) != 0) return fail("attach", rc);
    printf("ready\n");
    fflush(stdout);

    if (strcmp(cmd, "attach") == 0) {
        rc = 0;
    } else if (strcmp(cmd, "write") == 0 && argc == 5) {
        _Atomic uint64_t *p = shr_ptr(h, strtoull(argv[3], NULL, 0));
        if (!p) return fail("offset", -EINVAL);
        atomic_store(p, strtoull(argv[4], NULL, 0));
    } else if (strcmp(cmd, "read") == 0 && argc == 5) {
        _Atomic uint64_t *p = shr_ptr(h, strtoull(argv[3], NULL, 0));
        if (!p) return fail("offset", -EINVAL);
        rc = atomic_load(p) == strtoull(argv[4], NULL, 0) ? 0 : 1;
    } else if (strcmp(cmd, "base") == 0) {
        printf("%p\n", (void *)shr_ptr(h, 1));
    } else if (strcmp(cmd, "hold") == 0 && argc == 4) {
        pthread_t t;
        pthread_create(&t, NULL, touch, h);
        pthread_join(t, NULL);
        shr__tctx(h);
        printf("held\n");
        fflush(stdout);
        unsigned ms = (unsigned)atoi(argv[3]);
        if (ms == 0)
            for (;;) pause();
        usleep(ms * 1000u);
        _exit(0); /* no close: the heap must notice */
    } else if (strcmp(cmd, "lock") == 0 && argc == 4) {
        if ((rc = shr__lock(h, (shr_lock_id_t)atoi(argv[3]))) != 0) return fail("lock", rc);
        printf("locked\n");
        fflush(stdout);
        for (;;) pause();
    } else {
        fprintf(stderr, "peer: bad command\n");
        return 64;
    }
    shr_heap_close(h);
    return rc;
}
