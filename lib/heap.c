/* The heap: the public lifecycle calls, which tie the layers together.
 *
 * shm/ knows nothing of the layers above it; this file tells it what regions
 * they need in a new segment (their sizes and layout constants, checked again
 * on attach), how to open and close their process-private state, and installs
 * their hooks.
 */
#include <errno.h>
#include <string.h>

#include "heap_internal.h"

static int heap_open(shr_heap_t *h)
{
    shr__list_types_register();
    shr__gate_init();
    return shr__alloc_open(h);
}

static int heap_init(shr_heap_t *h)
{
    int rc = shr__alloc_init_segment(h);
    return rc ? rc : shr__gc_init_segment(h);
}

static void heap_close(shr_heap_t *h) { shr__alloc_close(h); }

static void heap_params(shr__seg_params_t *p)
{
    memset(p, 0, sizeof *p);
    shr__alloc_params(p);
    shr__gc_params(p);
    p->open = heap_open;
    p->init = heap_init;
    p->close = heap_close;
}

int shr_heap_create(const char *name, const shr_heap_options_t *opts, shr_heap_t **out)
{
    shr__seg_params_t p;
    if (!out) return -EINVAL;
    heap_params(&p);
    return shr__seg_create(name, opts, &p, out);
}

int shr_heap_attach(const char *name, shr_heap_t **out)
{
    shr__seg_params_t p;
    if (!out) return -EINVAL;
    heap_params(&p);
    int rc = shr__seg_attach(name, &p, out);
    /* The registration reclaimed a dead process or so: release the
     * references it held. */
    if (rc == 0) shr__gc_drain_dead(*out);
    return rc;
}

int shr__heap_create_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                        const char *name, const shr_heap_options_t *opts, shr_heap_t **out)
{
    shr__seg_params_t p;
    heap_params(&p);
    return shr__seg_create_in(map, heap_off, capacity, st, name, opts, &p, out);
}

int shr__heap_attach_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                        const char *name, shr_heap_t **out)
{
    shr__seg_params_t p;
    heap_params(&p);
    int rc = shr__seg_attach_in(map, heap_off, capacity, st, name, &p, out);
    if (rc == 0) shr__gc_drain_dead(*out);
    return rc;
}

int shr_heap_close(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    shr__gc_close(heap); /* references this process still holds */
    return shr__seg_close(heap);
}

int shr_heap_stat(shr_heap_t *heap, shr_heap_info_t *info, shr_proc_info_t *procs, size_t max,
                  size_t *nprocs)
{
    if (!heap) return -EINVAL;
    return shr__seg_stat(heap, info, procs, max, nprocs);
}

int shr_heap_recover(shr_heap_t *heap)
{
    if (!heap) return -EINVAL;
    /* The dead in steps, each outside the registry lock; then one sweep for
     * what no step takes (slots left by a claim or a reclaim that died). */
    int n = shr__registry_reclaim(heap, UINT32_MAX);
    if (n < 0) return n;
    int rc = shr__lock(heap, SHR_LOCK_REGISTRY);
    if (rc) return rc;
    rc = shr__registry_sweep_locked(heap);
    shr__unlock(heap, SHR_LOCK_REGISTRY);
    shr__gc_drain_dead(heap);
    return n + rc;
}
