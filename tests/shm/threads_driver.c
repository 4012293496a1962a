/* The registry from many threads at once, for ThreadSanitizer (Criterion's
 * runner does not start under TSan): six threads attach, allocate, stat,
 * check and close four heaps in turn, so that the anchor's requests, slot
 * claims and releases, sweeps and the layers' hook tables are all shared.
 * Exits 0 when every call succeeded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sharena.h"

enum { NHEAPS = 4, NTHREADS = 6, ROUNDS = 150 };
static char names[NHEAPS][64];

static void *work(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        shr_heap_t *h;
        int rc = shr_heap_attach(names[(id + i) % NHEAPS], &h);
        if (rc) {
            fprintf(stderr, "attach: %s\n", shr_strerror(rc));
            exit(1);
        }
        void *p = shr_malloc(h, 64);
        if (!p) exit(2);
        shr_free(h, p);
        shr_heap_info_t info;
        if (shr_heap_stat(h, &info, NULL, 0, NULL) != 0 || info.nprocs < 2) exit(3);
        if (i % 50 == 0 && shr_heap_check(h) != 0) exit(4);
        if (shr_heap_close(h) != 0) exit(5);
    }
    return NULL;
}

int main(void)
{
    shr_heap_t *creators[NHEAPS];
    for (int i = 0; i < NHEAPS; i++) {
        snprintf(names[i], sizeof names[i], "t_shm_threads_%d_%d", (int)getpid(), i);
        if (shr_heap_create(names[i], NULL, &creators[i]) != 0) return 10;
    }
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    int rc = 0;
    for (int i = 0; i < NHEAPS; i++) {
        if (shr_heap_check(creators[i]) != 0) rc = 11;
        shr_heap_close(creators[i]);
        shr_heap_unlink(names[i]);
    }
    return rc;
}
