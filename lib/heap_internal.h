/* lib/: what heap.c gives the other files of the library's top layer
 * (solo.c): an ordinary heap made or attached inside a compact list's
 * segment, with the layers' parameters that shr_heap_create uses. */
#ifndef SHR_HEAP_INTERNAL_H
#define SHR_HEAP_INTERNAL_H

#include "list.h"

/* shr__seg_create_in and shr__seg_attach_in (shm/shm.h) with the layers'
 * parameters; attach also drains what dead processes left, as
 * shr_heap_attach does. Both take over map (a mapping of [0, heap_off +
 * capacity)): the handle's on success, unmapped on failure. */
int shr__heap_create_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                        const char *name, const shr_heap_options_t *opts, shr_heap_t **out);
int shr__heap_attach_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                        const char *name, shr_heap_t **out);

#endif /* SHR_HEAP_INTERNAL_H */
