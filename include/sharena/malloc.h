/* libsharena-malloc: the heap behind the process's malloc.
 *
 * When libsharena-malloc.so is preloaded or linked, malloc, free and C++'s
 * new and delete are served from a sharena heap: a private one (the
 * default) or, with SHARENA_HEAP=NAME, a named heap that other processes
 * attach. shr_malloc_heap() returns that heap, so that a program can hand a
 * malloc'ed block to another process of a named heap as an offset:
 *
 *     shr_heap_t *h = shr_malloc_heap ? shr_malloc_heap() : NULL;
 *     shr_off_t off = h ? shr_off(h, p) : 0;
 *
 * The declaration is weak: without the library, shr_malloc_heap is NULL.
 * docs/malloc.md lists the options.
 */
#ifndef SHARENA_MALLOC_H
#define SHARENA_MALLOC_H

#include "../sharena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The heap serving malloc, or NULL when it could not be made (malloc then
 * is glibc's). Never close it. */
shr_heap_t *shr_malloc_heap(void) __attribute__((weak));

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_MALLOC_H */
