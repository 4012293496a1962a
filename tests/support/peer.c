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
 *   peer newlist NAME              create an unnamed list of one int and release it;
 *                                  exit 0, or 2 with the error (fault-point tests)
 *
 *   peer consume NAME ROOT         the root names an array: [count, off...]; check
 *                                  each block's pattern (byte i == (off + i) & 0xff
 *                                  after the first 16), free it; exit 0 if all matched
 *   peer storm NAME SEED MS        random alloc/free storm with content checks on
 *                                  blocks of 1..2048 bytes for MS ms (0: until
 *                                  killed); frees all it holds and exits 0, or 3 on
 *                                  a content mismatch
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

static void fill(uint8_t *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(tag + i);
}

static int verify(const uint8_t *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(tag + i)) return 0;
    return 1;
}

static int consume(shr_heap_t *h, const char *root)
{
    shr_off_t off;
    if (shr_root_get(h, root, &off) != 0) return 2;
    uint64_t *arr = shr_ptr(h, off);
    int bad = 0;
    for (uint64_t i = 0; i < arr[0]; i++) {
        uint8_t *b = shr_ptr(h, arr[1 + i]);
        size_t n = shr_usable_size(h, b);
        if (!b || n < 16 || !verify(b + 16, n - 16, arr[1 + i])) bad++;
        shr_free(h, b);
    }
    return bad ? 1 : 0;
}

/* A storm: keep up to 512 live blocks, each filled with a pattern derived
 * from its size and a serial; check it before freeing. */
static int storm(shr_heap_t *h, unsigned seed, unsigned ms)
{
    enum { LIVE = 512 };
    static uint8_t *blk[LIVE];
    static size_t len[LIVE];
    static uint64_t tag[LIVE];
    uint64_t serial = seed, deadline = ms ? shr__now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000u : 0;
    for (uint64_t it = 0;; it++) {
        if (deadline && (it & 1023) == 0 && shr__now_ns(CLOCK_MONOTONIC) > deadline) break;
        unsigned i = (unsigned)(rand_r(&seed) % LIVE);
        if (blk[i]) {
            if (!verify(blk[i], len[i], tag[i])) return 3;
            shr_free(h, blk[i]);
            blk[i] = NULL;
        } else {
            size_t n = 1 + (size_t)(rand_r(&seed) % ((rand_r(&seed) % 8) ? 256 : 2048));
            blk[i] = shr_malloc(h, n);
            if (!blk[i]) return 4;
            len[i] = n;
            tag[i] = serial++;
            fill(blk[i], n, tag[i]);
        }
    }
    for (unsigned i = 0; i < LIVE; i++)
        if (blk[i]) {
            if (!verify(blk[i], len[i], tag[i])) return 3;
            shr_free(h, blk[i]);
        }
    return 0;
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
    } else if (strcmp(cmd, "consume") == 0 && argc == 4) {
        rc = consume(h, argv[3]);
    } else if (strcmp(cmd, "storm") == 0 && argc == 5) {
        rc = storm(h, (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
    } else if (strcmp(cmd, "lock") == 0 && argc == 4) {
        if ((rc = shr__lock(h, (shr_lock_id_t)atoi(argv[3]))) != 0) return fail("lock", rc);
        printf("locked\n");
        fflush(stdout);
        for (;;) pause();
    } else if (strcmp(cmd, "newlist") == 0) {
        shr_value_t v = shr_int(1);
        shr_list_t *l;
        if ((rc = shr_list_create(h, NULL, &v, 1, &l)) != 0) return fail("newlist", rc);
        shr_list_close(l);
    } else {
        fprintf(stderr, "peer: bad command\n");
        return 64;
    }
    shr_heap_close(h);
    return rc;
}
