/* Roots
 *
 * A directory in the segment that maps names to offsets, so that processes
 * find each other's data by name (Boost.Interprocess's named objects). A
 * fixed table of SHR_ROOTS_MAX entries under the roots lock; a lookup scans it
 * (roots are looked up when processes meet, not on hot paths).
 *
 * Invariants: every used entry's name is NUL-terminated, non-empty and
 * unique; its offset lies inside the heap (RT1). Every used entry lies below
 * roots_hwm, and the pages of the entries below it are committed (RT3).
 * Crash: an entry is written offset first and name last; the lock's repair
 * clears entries whose name is not terminated.
 *
 * Commit: the directory is not committed at creation (80 KiB of mostly
 * zero pages, where a heap holding one list uses one entry). A new entry
 * takes the first free one below roots_hwm; when there is none, the pages of
 * entry roots_hwm are committed, then roots_hwm raised (release): the
 * commit point of the page, before the entry's own commit point (its name).
 * A crash between the two leaves committed pages above the mark; the next
 * new entry commits them again (a commit is idempotent).
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"

int shr__root_name_check(const char *name, size_t *lenp)
{
    if (!name || !*name) return -EINVAL;
    size_t len = strnlen(name, SHR_ROOT_NAME_MAX + 1);
    if (len > SHR_ROOT_NAME_MAX) return -ENAMETOOLONG;
    *lenp = len;
    return 0;
}

uint32_t shr__roots_hwm(shr_heap_t *h)
{
    uint32_t n = shr_load_acquire(&alloc_global(h)->roots_hwm);
    return n > SHR_ROOTS_MAX ? SHR_ROOTS_MAX : n;
}

static root_entry_t *find(shr_heap_t *h, const char *name, size_t len)
{
    alloc_global_t *g = alloc_global(h);
    uint32_t n = shr__roots_hwm(h);
    for (uint32_t i = 0; i < n; i++)
        if (g->roots[i].name[0] && strncmp(g->roots[i].name, name, len + 1) == 0)
            return &g->roots[i];
    return NULL;
}

static int roots_repair(shr_heap_t *h)
{
    alloc_global_t *g = alloc_global(h);
    /* A damaged mark (beyond the table): the whole directory is taken as
     * used, committed first (a failed commit leaves its pages to be
     * committed by the reads, as before layout version 15: no name is lost). */
    uint32_t n = shr__roots_hwm(h);
    if (shr_load_relaxed(&g->roots_hwm) != n) {
        (void)shr__seg_commit(h, shr__off(h, g->roots), sizeof g->roots);
        shr_store_release(&g->roots_hwm, n);
    }
    for (uint32_t i = 0; i < n; i++)
        if (!memchr(g->roots[i].name, 0, sizeof g->roots[i].name)) g->roots[i].name[0] = 0;
    return 0;
}

static int lock_roots(shr_heap_t *h)
{
    shr__lock_set_repair(SHR_LOCK_ROOTS, roots_repair);
    return shr__lock(h, SHR_LOCK_ROOTS);
}

int shr__root_lock(shr_heap_t *h) { return lock_roots(h); }
void shr__root_unlock(shr_heap_t *h) { shr__unlock(h, SHR_LOCK_ROOTS); }

root_entry_t *shr__root_find(shr_heap_t *h, const char *name)
{
    return find(h, name, strlen(name));
}

root_entry_t *shr__root_new(shr_heap_t *h, const char *name, uint64_t off, uint64_t flags)
{
    alloc_global_t *g = alloc_global(h);
    size_t len = strlen(name);
    uint32_t n = shr__roots_hwm(h);
    for (uint32_t i = 0; i <= n && i < SHR_ROOTS_MAX; i++) {
        root_entry_t *e = &g->roots[i];
        if (i < n && e->name[0]) continue;
        if (i == n) { /* RT3: the entry's pages, then the mark */
            if (shr__seg_commit(h, shr__off(h, e), sizeof *e) != 0) return NULL;
            shr_store_release(&g->roots_hwm, n + 1);
        }
        shr_store_relaxed(&e->off, off);
        e->flags = flags;
        memcpy(e->name + 1, name + 1, len); /* the first byte commits the entry */
        e->name[0] = name[0];
        return e;
    }
    return NULL;
}

int shr_root_set(shr_heap_t *heap, const char *name, shr_off_t off)
{
    if (!heap) return -EINVAL;
    size_t len;
    int rc = shr__root_name_check(name, &len);
    if (rc) return rc;
    if (off == 0 || off >= heap->capacity) return -EINVAL;
    if ((rc = lock_roots(heap)) != 0) return rc;
    root_entry_t *e = find(heap, name, len);
    if (e && (e->flags & ROOT_REF)) rc = SHR_ETYPE; /* a named object: shr_list_unlink */
    else if (e) shr_store_relaxed(&e->off, off);
    else if (!shr__root_new(heap, name, off, 0)) rc = shr__roots_hwm(heap) < SHR_ROOTS_MAX ? -ENOMEM : -ENOSPC;
    shr__unlock(heap, SHR_LOCK_ROOTS);
    return rc;
}

int shr_root_get(shr_heap_t *heap, const char *name, shr_off_t *off)
{
    if (!heap) return -EINVAL;
    size_t len;
    int rc = shr__root_name_check(name, &len);
    if (rc) return rc;
    if ((rc = lock_roots(heap)) != 0) return rc;
    root_entry_t *e = find(heap, name, len);
    uint64_t v = e ? shr_load_relaxed(&e->off) : 0;
    shr__unlock(heap, SHR_LOCK_ROOTS);
    if (!e) return -ENOENT;
    if (v == 0 || v >= heap->capacity) return SHR_ECORRUPT;
    if (off) *off = v;
    return 0;
}

int shr_root_delete(shr_heap_t *heap, const char *name)
{
    if (!heap) return -EINVAL;
    size_t len;
    int rc = shr__root_name_check(name, &len);
    if (rc) return rc;
    if ((rc = lock_roots(heap)) != 0) return rc;
    root_entry_t *e = find(heap, name, len);
    if (e && (e->flags & ROOT_REF)) rc = SHR_ETYPE; /* releasing it is the object layer's job */
    else if (e) e->name[0] = 0;
    else rc = -ENOENT;
    shr__unlock(heap, SHR_LOCK_ROOTS);
    return rc;
}

int shr_root_list(shr_heap_t *heap, shr_root_fn fn, void *arg)
{
    /* Copy under the lock, call back without it: fn may use the heap. */
    struct { char name[SHR_ROOT_NAME_MAX + 1]; uint64_t off; } *copy;
    int n = 0, rc;
    if (!heap || !fn) return -EINVAL;
    copy = malloc(sizeof *copy * SHR_ROOTS_MAX);
    if (!copy) return -ENOMEM;
    alloc_global_t *g = alloc_global(heap);
    if ((rc = lock_roots(heap)) != 0) {
        free(copy);
        return rc;
    }
    uint32_t hwm = shr__roots_hwm(heap);
    for (uint32_t i = 0; i < hwm; i++)
        if (g->roots[i].name[0]) {
            memcpy(copy[n].name, g->roots[i].name, sizeof copy[n].name);
            copy[n].off = shr_load_relaxed(&g->roots[i].off);
            n++;
        }
    shr__unlock(heap, SHR_LOCK_ROOTS);
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = fn(copy[i].name, copy[i].off, arg);
    free(copy);
    return rc;
}
