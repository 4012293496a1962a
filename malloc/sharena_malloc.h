/* Inside libsharena-malloc: what new.c needs from malloc.c. */
#ifndef SHR_MALLOC_INTERNAL_H
#define SHR_MALLOC_INTERNAL_H

#include <stddef.h>

/* align a power of two; NULL with errno = ENOMEM on failure. */
void *shr__malloc_aligned(size_t align, size_t n);

#endif
