/* shm, white box: commit and release, fault injection, thread slots, locks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shm.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(shm_unit, .fini = fini, .timeout = 60);

static shr_heap_t *make_heap(size_t capacity)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    if (capacity) o.capacity = capacity;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    return h;
}

Test(shm_unit, header_layout_is_documented)
{
    /* docs/design/shm.md draws these offsets; tests patch them. */
    cr_assert_eq(offsetof(seg_header_t, magic), 0);
    cr_assert_eq(offsetof(seg_header_t, layout_version), 8);
    cr_assert_eq(offsetof(seg_header_t, header_size), 12);
    cr_assert_eq(offsetof(seg_header_t, sizeof_proc), 40);
    cr_assert_eq(sizeof(shm_lock_t) % SHR_CACHELINE, 0);
}

Test(shm_unit, commit_and_release_follow_st_blocks)
{
    shr_heap_t *h = make_heap(0);
    uint64_t meta = h->hdr->meta_size;
    uint64_t before = shr__seg_committed(h);
    cr_assert_eq(shr__seg_commit(h, meta, 4 * SHR_CHUNK_SIZE), 0);
    uint64_t after = shr__seg_committed(h);
    cr_assert_geq(after - before, 4 * SHR_CHUNK_SIZE);
    memset(shr__ptr(h, meta), 0xab, 4 * SHR_CHUNK_SIZE);
    cr_assert_eq(shr__seg_release(h, meta, 4 * SHR_CHUNK_SIZE), 0);
    cr_assert_eq(shr__seg_committed(h), before);
    cr_assert_eq(*(uint8_t *)shr__ptr(h, meta), 0, "a released page reads as zero");
    shr_heap_close(h);
}

Test(shm_unit, commit_fault_injection)
{
    shr_heap_t *h = make_heap(0);
    uint64_t meta = h->hdr->meta_size;
    shr__seg_fail_commit_after(2);
    cr_assert_eq(shr__seg_commit(h, meta, SHR_CHUNK_SIZE), 0);
    cr_assert_eq(shr__seg_commit(h, meta + SHR_CHUNK_SIZE, SHR_CHUNK_SIZE), -ENOMEM);
    cr_assert_eq(shr__seg_commit(h, meta + SHR_CHUNK_SIZE, SHR_CHUNK_SIZE), 0, "only the nth fails");
    shr_heap_close(h);
}

/* A heap bigger than /dev/shm's free space: commit fails with ENOMEM instead
 * of a SIGBUS on first touch. Runs in a child with its own mount namespace and
 * a 16 MiB tmpfs on /dev/shm (needs root; skipped otherwise). */
static int small_tmpfs_child(void *arg)
{
    (void)arg;
    if (unshare(CLONE_NEWNS) != 0) return 77;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 77;
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=16m") != 0) return 77;
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.capacity = (size_t)256 << 20;
    if (shr_heap_create("t_small_tmpfs", &o, &h) != 0) return 1;
    uint64_t meta = h->hdr->meta_size;
    if (shr__seg_commit(h, meta, (uint64_t)64 << 20) != -ENOMEM) return 2;
    /* The heap stays usable: a smaller commit works and can be touched. */
    if (shr__seg_commit(h, meta, SHR_CHUNK_SIZE) != 0) return 3;
    memset(shr__ptr(h, meta), 1, SHR_CHUNK_SIZE);
    /* Creating a heap whose metadata does not fit fails cleanly too. */
    shr_heap_t *h2 = NULL;
    o.capacity = (size_t)1 << 40;
    int rc = shr_heap_create("t_small_tmpfs2", &o, &h2);
    if (rc != -ENOMEM && rc != 0) return 4;
    if (rc == 0) shr_heap_close(h2);
    shr_heap_close(h);
    return 0;
}

Test(shm_unit, full_dev_shm_is_enomem_not_sigbus)
{
    pid_t pid = shr_test_fork(small_tmpfs_child, NULL);
    int st = shr_test_wait(pid);
    if (st == 77) cr_skip_test("needs root for a private tmpfs on /dev/shm");
    cr_assert_eq(st, 0, "child failed at step %d", st);
}

static void *use_heap(void *arg)
{
    shr_tctx_t *c = shr__tctx(arg);
    return c ? (void *)(uintptr_t)(c->slot + 1) : NULL;
}

Test(shm_unit, thread_slots_claimed_and_released)
{
    shr_heap_t *h = make_heap(0);
    shr_heap_info_t info;
    shr_tctx_t *mine = shr__tctx(h);
    cr_assert_not_null(mine);
    cr_assert_eq(shr__tctx(h), mine, "the fast path returns the same context");
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nthreads, 1);

    pthread_t t[4];
    void *slot[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, use_heap, h);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &slot[i]);
        cr_assert_not_null(slot[i]);
        cr_assert_neq((uintptr_t)slot[i] - 1, mine->slot);
    }
    /* Threads that exited gave their slots back (TLS destructor). */
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nthreads, 1);
    for (uint32_t s = 0; s < h->max_threads; s++)
        if (s != mine->slot) cr_assert_eq(h->threads[s].state, SHR_ENTRY_FREE);
    shr_heap_close(h);
}

Test(shm_unit, two_heaps_in_one_thread)
{
    shr_heap_t *a = make_heap(0), *b = make_heap(0);
    shr_tctx_t *ca = shr__tctx(a), *cb = shr__tctx(b);
    cr_assert_not_null(ca);
    cr_assert_not_null(cb);
    cr_assert_neq(ca, cb);
    cr_assert_eq(shr__tctx(a), ca);
    cr_assert_eq(shr__tctx(b), cb);
    shr_heap_close(a);
    cr_assert_eq(shr__tctx(b), cb, "closing one heap leaves the other's context");
    shr_heap_close(b);
}

static int repairs;
static int count_repair(shr_heap_t *h)
{
    (void)h;
    repairs++;
    return 0;
}

static int die_holding_lock(void *arg)
{
    shr_heap_t *h = arg;
    if (shr__lock(h, SHR_LOCK_LARGE) != 0) return 1;
    _exit(0); /* exits with the lock held */
}

Test(shm_unit, eownerdead_runs_the_repair_hook)
{
    shr_heap_t *h = make_heap(0);
    shr__lock_set_repair(SHR_LOCK_LARGE, count_repair);
    repairs = 0;
    cr_assert_eq(shr_test_wait(shr_test_fork(die_holding_lock, h)), 0);
    cr_assert_eq(shr__lock(h, SHR_LOCK_LARGE), 0);
    cr_assert_eq(repairs, 1);
    cr_assert_eq(h->hdr->locks[SHR_LOCK_LARGE].nrepaired, 1);
    shr__unlock(h, SHR_LOCK_LARGE);
    cr_assert_eq(shr__lock(h, SHR_LOCK_LARGE), 0, "the lock is consistent again");
    cr_assert_eq(repairs, 1);
    shr__unlock(h, SHR_LOCK_LARGE);
    shr__lock_set_repair(SHR_LOCK_LARGE, NULL);
    shr_heap_close(h);
}

#if SHR_DEBUG >= 2
Test(shm_unit, lock_rank_violation_aborts, .signal = SIGABRT)
{
    shr_heap_t *h = make_heap(0);
    shr_heap_unlink(shr_heap_name(h)); /* the abort skips the suite's cleanup */
    cr_assert_eq(shr__lock(h, SHR_LOCK_ARENA), 0);
    shr__lock(h, SHR_LOCK_REGISTRY); /* lower rank while holding a higher one */
}
#endif

Test(shm_unit, registry_full_gives_eprocs)
{
    shr_heap_t *h = make_heap(0);
    /* Fill every other entry by hand with a "live" entry whose life mutex is
     * held by this process's thread: trylock says EBUSY, so none is reclaimed. */
    int taken = 0;
    for (uint32_t p = 0; p < h->max_procs; p++) {
        if (h->procs[p].state == SHR_ENTRY_LIVE) continue;
        cr_assert_eq(pthread_mutex_lock(&h->procs[p].life), 0);
        h->procs[p].state = SHR_ENTRY_LIVE;
        taken++;
    }
    h->hdr->procs_hwm = h->max_procs;
    cr_assert_eq(taken, SHR_DEFAULT_MAX_PROCS - 1);
    shr_heap_t *b = NULL;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &b), SHR_EPROCS);
    cr_assert_null(b);
    for (uint32_t p = 0; p < h->max_procs; p++) {
        if (p == h->proc) continue;
        h->procs[p].state = SHR_ENTRY_FREE;
        pthread_mutex_unlock(&h->procs[p].life);
    }
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &b), 0);
    shr_heap_close(b);
    shr_heap_close(h);
}
