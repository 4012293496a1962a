/* A user's mistakes with sharena blocks, one per run, for the memory checkers
 * (tests/alloc/memcheck.cmake runs it under AddressSanitizer or valgrind):
 *
 *   memcheck_demo clean       correct use, many sizes, a second thread: no report
 *   memcheck_demo uaf         write into a block after freeing it
 *   memcheck_demo double      free a block twice
 *   memcheck_demo overflow    write past a block into its free neighbour
 *   memcheck_demo fork        a child frees and a parent reuses: no false report
 *
 * Each mistake is made in this process, so this process's checker reports it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sharena.h"

static shr_heap_t *heap;

static void *worker(void *arg)
{
    (void)arg;
    void *p[200];
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 200; i++) {
            p[i] = shr_malloc(heap, 8 + (size_t)(i * 13) % 3000);
            memset(p[i], i, 8);
        }
        for (int i = 0; i < 200; i++) shr_free(heap, p[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    char name[64];
    snprintf(name, sizeof name, "memcheck_demo_%d", (int)getpid());
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = 64u << 20;
    if (shr_heap_create(name, &o, &heap) != 0) return 2;
    shr_heap_unlink(name);
    int rc = 0;
    if (strcmp(mode, "clean") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        worker(NULL);
        pthread_join(t, NULL);
        char *a = shr_malloc(heap, 100);
        memset(a, 1, 100);
        a = shr_realloc(heap, a, 5000);
        shr_free(heap, a);
    } else if (strcmp(mode, "uaf") == 0) {
        char *p = shr_malloc(heap, 64);
        shr_free(heap, p);
        ((volatile char *)p)[20] = 1; /* use after free */
    } else if (strcmp(mode, "double") == 0) {
        char *p = shr_malloc(heap, 64);
        char *keep = shr_malloc(heap, 64);
        shr_free(heap, p);
        shr_free(heap, p); /* double free */
        shr_free(heap, keep);
    } else if (strcmp(mode, "overflow") == 0) {
        char *a = shr_malloc(heap, 64); /* its neighbour is carved and free */
        memset(a, 0, 64 + 16);          /* overflow into the neighbour */
        shr_free(heap, a);
    } else if (strcmp(mode, "fork") == 0) {
        /* Blocks freed in the parent before a fork (free in its shadow
         * state, which the child inherits), handed out again by the parent
         * and read by the child; then freed by the child (remote frees) and
         * reused by the parent. */
        shr_off_t *offs = shr_malloc(heap, 100 * sizeof *offs);
        void *p[100];
        for (int i = 0; i < 100; i++) p[i] = shr_malloc(heap, 48);
        for (int i = 0; i < 100; i++) shr_free(heap, p[i]);
        int gate[2];
        if (pipe(gate) != 0) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            if (read(gate[0], &c, 1) != 1) _exit(5);
            for (int i = 0; i < 100; i++) {
                unsigned char *q = shr_ptr(heap, offs[i]);
                for (int j = 0; j < 48; j++)
                    if (q[j] != (unsigned char)i) _exit(6);
                shr_free(heap, q);
            }
            _exit(0);
        }
        for (int i = 0; i < 100; i++) {
            unsigned char *q = shr_malloc(heap, 48);
            memset(q, i, 48);
            offs[i] = shr_off(heap, q);
        }
        if (write(gate[1], "x", 1) != 1) return 2;
        int st;
        waitpid(pid, &st, 0);
        shr_heap_recover(heap);
        shr_heap_collect(heap);
        for (int r = 0; r < 3; r++) {
            for (int i = 0; i < 100; i++) memset(p[i] = shr_malloc(heap, 48), 4, 48);
            for (int i = 0; i < 100; i++) shr_free(heap, p[i]);
        }
        shr_free(heap, offs);
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 3;
    } else {
        fprintf(stderr, "usage: memcheck_demo clean|uaf|double|overflow|fork\n");
        rc = 64;
    }
    if (rc == 0 && shr_heap_check_report(heap, stderr) != 0) rc = 4;
    shr_heap_close(heap);
    return rc;
}
