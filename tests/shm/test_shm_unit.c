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
    /* The rest of docs/design/shm.md §2 (glibc x86_64: a 40-byte mutex). */
    if (sizeof(pthread_mutex_t) == 40) {
        cr_assert_eq(sizeof(seg_header_t), 1728);
        cr_assert_eq(offsetof(seg_header_t, locks), 704);
        cr_assert_eq(sizeof(shm_lock_t), 128);
        cr_assert_eq(sizeof(proc_entry_t), 128);
    }
    shr_heap_t *h = make_heap(0);
    cr_assert_eq(h->hdr->layout_version, 18);
    cr_assert_eq(h->hdr->procs_off, SHR_ALIGN_UP(sizeof(seg_header_t), SHR_CACHELINE));
    cr_assert_eq(h->hdr->threads_off, h->hdr->procs_off + SHR_DEFAULT_MAX_PROCS * sizeof(proc_entry_t));
    cr_assert_eq(h->hdr->global_off[SHR_LAYER_ALLOC],
                 h->hdr->threads_off + SHR_DEFAULT_MAX_THREADS * sizeof(thread_slot_t));
    shr_heap_close(h);
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

Test(shm_unit, committed_is_counted_after_the_name_is_gone)
{
    shr_heap_t *h = make_heap(0);
    uint64_t meta = h->hdr->meta_size, named = shr__seg_committed(h);
    cr_assert_eq(shr_heap_unlink(shr_heap_name(h)), 0);
    /* Now from the mapping's resident pages (the metadata's pages that were
     * committed at creation but never written are not counted). */
    uint64_t before = shr__seg_committed(h);
    cr_assert_gt(before, 0);
    cr_assert_leq(before, named);
    cr_assert_eq(shr__seg_commit(h, meta, 4 * SHR_CHUNK_SIZE), 0);
    cr_assert_eq(shr__seg_committed(h), before + 4 * SHR_CHUNK_SIZE);
    cr_assert_eq(shr__seg_release(h, meta, 4 * SHR_CHUNK_SIZE), 0);
    cr_assert_eq(shr__seg_committed(h), before);
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
    /* A committed page inside the range that will fail: kept, with its data. */
    if (shr__seg_commit(h, meta + SHR_CHUNK_SIZE, 4096) != 0) return 5;
    *(volatile uint8_t *)shr__ptr(h, meta + SHR_CHUNK_SIZE) = 0x5a;
    uint64_t before = shr__seg_committed(h);
    if (shr__seg_commit(h, meta, (uint64_t)64 << 20) != -ENOMEM) return 2;
    /* The failed commit gave back what it took, and only that. */
    if (shr__seg_committed(h) != before) return 6;
    if (*(volatile uint8_t *)shr__ptr(h, meta + SHR_CHUNK_SIZE) != 0x5a) return 7;
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

/* Thread slots are committed at their first claim (R6): a new heap commits
 * none of the slots above the one its creator uses, a thread's first use
 * commits its own, and a check reads none that were never claimed. */
static pthread_barrier_t slot_barrier;
static void *first_use(void *arg);

static void *hold_slot(void *arg)
{
    shr_tctx_t *c = shr__tctx(arg);
    pthread_barrier_wait(&slot_barrier); /* all hold a slot at once */
    pthread_barrier_wait(&slot_barrier);
    return c ? (void *)(uintptr_t)(c->slot + 1) : NULL;
}

Test(shm_unit, thread_slots_are_committed_at_first_claim)
{
    shr_heap_t *h = make_heap(0);
    cr_assert_not_null(shr__tctx(h));
    uint64_t tsz = h->hdr->thread_size[SHR_LAYER_ALLOC];
    uint64_t created = shr__seg_committed(h);
    cr_assert_lt(created + (h->max_threads - 2) * tsz, h->hdr->eager_size,
                 "the allocator's thread regions are not committed at creation (%llu of %llu)",
                 (unsigned long long)created, (unsigned long long)h->hdr->eager_size);
    uint32_t last = h->max_threads / 2; /* a page no other region shares */
    cr_assert(!shr__seg_resident(h, &h->threads[last]));
    cr_assert(!shr__seg_resident(h, shr__seg_thread_area(h, SHR_LAYER_ALLOC, last)));

    enum { N = 8 };
    pthread_t t[N];
    void *slot[N];
    pthread_barrier_init(&slot_barrier, NULL, N + 1);
    for (int i = 0; i < N; i++) pthread_create(&t[i], NULL, hold_slot, h);
    pthread_barrier_wait(&slot_barrier);
    cr_assert_geq(h->hdr->threads_hwm, N + 1);
    for (uint32_t s = 0; s < h->hdr->threads_hwm; s++) {
        cr_assert(shr__seg_resident(h, &h->threads[s]), "slot %u", s);
        char *a = shr__seg_thread_area(h, SHR_LAYER_ALLOC, s);
        cr_assert(shr__seg_resident(h, a) && shr__seg_resident(h, a + tsz - 1), "slot %u's region", s);
    }
    pthread_barrier_wait(&slot_barrier);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], &slot[i]);
        cr_assert_not_null(slot[i]);
    }
    pthread_barrier_destroy(&slot_barrier);
    uint64_t used = shr__seg_committed(h);
    cr_assert_gt(used, created);
    cr_assert_eq(shr_heap_check(h), 0);
    cr_assert_eq(shr__seg_committed(h), used, "a check commits nothing");
    cr_assert(!shr__seg_resident(h, shr__seg_thread_area(h, SHR_LAYER_ALLOC, last)));
    shr_heap_close(h);
}

/* A slot's first claim that cannot commit its pages fails with ENOMEM and
 * leaves the registry as it was; the next claim succeeds. */
Test(shm_unit, first_claim_commit_failure_is_enomem)
{
    shr_heap_t *h = make_heap(0);
    cr_assert_not_null(shr__tctx(h));
    uint32_t hwm = h->hdr->threads_hwm;
    shr__seg_fail_commit_after(1);
    pthread_t t;
    void *err;
    pthread_create(&t, NULL, first_use, h);
    pthread_join(t, &err);
    shr__seg_fail_commit_after(0);
    cr_assert_eq((intptr_t)err, ENOMEM, "got %d", (int)(intptr_t)err);
    cr_assert_eq(h->hdr->threads_hwm, hwm, "the mark is not raised");
    cr_assert_eq(shr_heap_check(h), 0);
    pthread_create(&t, NULL, first_use, h);
    pthread_join(t, &err);
    cr_assert_eq((intptr_t)err, 0);
    cr_assert_eq(h->hdr->threads_hwm, hwm + 1);
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

/* ---- bounded lock waits (issue: a lock never released blocked forever) ---- */

static shr_heap_t *make_heap_timeout(uint32_t timeout_ms)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.lock_timeout_ms = timeout_ms;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    return h;
}

/* Damage as a stray write would: the futex word of a mutex reads as held by
 * a thread that does not exist (no owner-died bit, so no robust cleanup). */
static void poison_mutex(pthread_mutex_t *mu)
{
    *(volatile uint32_t *)(void *)mu = 0x3ffffff0u;
}

Test(shm_unit, damaged_registry_lock_times_out)
{
    shr_heap_t *h = make_heap_timeout(200);
    const char *name = shr_heap_name(h);
    poison_mutex(&h->hdr->locks[SHR_LOCK_REGISTRY].mu);
    shr_heap_t *b = NULL;
    uint64_t t0 = shr__now_ns(CLOCK_MONOTONIC);
    cr_assert_eq(shr_heap_attach(name, &b), SHR_ELOCKTIMEOUT);
    uint64_t waited = shr__now_ns(CLOCK_MONOTONIC) - t0;
    cr_assert_null(b);
    cr_assert_geq(waited, 200000000u, "the wait lasts the heap's timeout");
    cr_assert_str_eq(shr_strerror(SHR_ELOCKTIMEOUT), "a heap lock was not released in time");
    /* The lock that timed out, and who held it, are recorded for info. */
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
    shr_lock_info_t *li = &info.locks[SHR_LOCK_REGISTRY];
    cr_assert_str_eq(li->name, "registry");
    cr_assert(li->held);
    cr_assert_eq(li->holder_tid, 0x3ffffff0);
    cr_assert_eq(li->ntimeouts, 1);
    cr_assert_eq(li->last_timeout_pid, getpid());
    cr_assert_eq(li->last_timeout_holder_tid, 0x3ffffff0);
    cr_assert_gt(li->last_timeout_ns, 0);
    cr_assert_not(info.locks[SHR_LOCK_ARENA].held);
    /* Check and the registry's other calls end too. */
    cr_assert_eq(shr_heap_check(h), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_heap_recover(h), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr__robust_mutex_init(&h->hdr->locks[SHR_LOCK_REGISTRY].mu), 0);
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    shr_heap_close(b);
    shr_heap_close(h);
}

static void *first_use(void *arg)
{
    errno = 0;
    void *p = shr_malloc(arg, 32);
    return p ? NULL : (void *)(intptr_t)errno;
}

Test(shm_unit, allocation_in_a_new_thread_times_out_with_etimedout)
{
    shr_heap_t *h = make_heap_timeout(100);
    poison_mutex(&h->hdr->locks[SHR_LOCK_REGISTRY].mu);
    pthread_t t;
    void *err;
    pthread_create(&t, NULL, first_use, h);
    pthread_join(t, &err);
    cr_assert_eq((intptr_t)err, ETIMEDOUT, "NULL with ETIMEDOUT, not ENOMEM (got %d)", (int)(intptr_t)err);
    cr_assert_eq(shr__robust_mutex_init(&h->hdr->locks[SHR_LOCK_REGISTRY].mu), 0);
    shr_heap_close(h);
}

Test(shm_unit, damaged_roots_lock_times_out)
{
    shr_heap_t *h = make_heap_timeout(100);
    poison_mutex(&h->hdr->locks[SHR_LOCK_ROOTS].mu);
    shr_off_t off;
    cr_assert_eq(shr_root_get(h, "x", &off), SHR_ELOCKTIMEOUT);
    cr_assert_eq(shr__robust_mutex_init(&h->hdr->locks[SHR_LOCK_ROOTS].mu), 0);
    cr_assert_eq(shr_root_get(h, "x", &off), -ENOENT);
    shr_heap_close(h);
}

static int set_env_and_attach(void *arg)
{
    setenv("SHARENA_LOCK_TIMEOUT_MS", "50", 1);
    shr_heap_t *b = NULL;
    uint64_t t0 = shr__now_ns(CLOCK_MONOTONIC);
    int rc = shr_heap_attach(arg, &b);
    uint64_t ms = (shr__now_ns(CLOCK_MONOTONIC) - t0) / 1000000u;
    if (rc != SHR_ELOCKTIMEOUT) return 1;
    return ms < 30000 ? 0 : 2; /* far below the heap's own 60 s */
}

Test(shm_unit, environment_overrides_the_heap_timeout)
{
    shr_heap_t *h = make_heap_timeout(60000);
    cr_assert_eq(h->hdr->lock_timeout_ms, 60000, "stored in the header");
    poison_mutex(&h->hdr->locks[SHR_LOCK_REGISTRY].mu);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    cr_assert_eq(shr_test_wait(shr_test_fork(set_env_and_attach, name)), 0);
    cr_assert_eq(shr__robust_mutex_init(&h->hdr->locks[SHR_LOCK_REGISTRY].mu), 0);
    shr_heap_close(h);
}

Test(shm_unit, deadlines_and_backoff)
{
    pthread_mutex_t mu;
    cr_assert_eq(shr__robust_mutex_init(&mu), 0);
    cr_assert_eq(shr__mutex_lock_until(&mu, 0), 0, "a free mutex is taken past the deadline too");
    bool died = true;
    cr_assert_eq(shr__mutex_holder(&mu, &died), shr__gettid());
    cr_assert_not(died);
    pthread_mutex_unlock(&mu);
    cr_assert_eq(shr__mutex_holder(&mu, NULL), 0);
    unsigned round = 0;
    cr_assert_not(shr__backoff(&round, UINT64_MAX), "UINT64_MAX never passes");
    uint64_t dl = shr__now_ns(CLOCK_MONOTONIC) + 20000000u;
    unsigned n = 0;
    round = 0;
    while (!shr__backoff(&round, dl)) n++;
    cr_assert_geq(shr__now_ns(CLOCK_MONOTONIC), dl);
    cr_assert_gt(n, 0);
    cr_assert_eq(shr__errno_of(SHR_ELOCKTIMEOUT), ETIMEDOUT);
    cr_assert_eq(shr__errno_of(-ENOMEM), ENOMEM);
    cr_assert_eq(shr__errno_of(SHR_ELOCK), ENOTRECOVERABLE);
}

/* ---- claims do not trust leftovers; check sees the registry's fields ---- */

Test(shm_unit, damaged_free_entry_life_does_not_block_attach)
{
    shr_heap_t *h = make_heap(0);
    char name[SHR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", shr_heap_name(h));
    shr_heap_t *b;
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    uint32_t freed = b->proc;
    shr_heap_close(b);
    cr_assert_eq(h->procs[freed].state, SHR_ENTRY_FREE);
    poison_mutex(&h->procs[freed].life);
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "R5: a FREE entry's life reads as held");
    /* The next attacher claims that entry: it re-initialises `life`
     * instead of waiting on it. */
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    cr_assert_eq(b->proc, freed);
    cr_assert_eq(shr__proc_alive(h, freed), 1);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(b);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

Test(shm_unit, check_reports_damaged_registry_fields)
{
    shr_heap_t *h = make_heap(0);
    cr_assert_not_null(shr__tctx(h));
    cr_assert_eq(shr_heap_check(h), 0);
    uint32_t me = h->proc;
    h->procs[me].nthreads += 5;
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "R3");
    h->procs[me].nthreads -= 5;
    cr_assert_eq(shr_heap_check(h), 0);
    /* A slot with a state no code writes: reported, and the sweep gives the
     * slot back instead of losing it for good. */
    uint32_t spare = shr__tctx(h)->slot + 1;
    h->hdr->threads_hwm = spare + 1;
    h->threads[spare].state = 7;
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "R4");
    cr_assert_eq(h->threads[spare].state, SHR_ENTRY_FREE, "healed by the sweep");
    cr_assert_eq(shr_heap_check(h), 0);
    h->hdr->procs_hwm = h->max_procs + 3;
    cr_assert_eq(shr_heap_check(h), SHR_ECORRUPT, "R4: high water mark beyond the table");
    h->hdr->procs_hwm = me + 1;
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

static void *claim_and_report(void *arg)
{
    shr_tctx_t *c = shr__tctx(arg);
    return c ? (void *)(uintptr_t)(c->slot + 1) : NULL;
}

Test(shm_unit, slot_claim_rewrites_leftovers)
{
    shr_heap_t *h = make_heap(0);
    cr_assert_not_null(shr__tctx(h));
    /* A FREE slot below the high water mark full of garbage, as a dead
     * claimer or damage leaves it. */
    uint32_t s = shr__tctx(h)->slot + 1;
    h->hdr->threads_hwm = s + 1;
    thread_slot_t *ts = &h->threads[s];
    ts->proc = 0xdeadbeef;
    ts->proc_gen = 77;
    ts->tid = -5;
    ts->in_heap = 9;
    ts->epoch = 12345;
    pthread_t t;
    void *got;
    pthread_create(&t, NULL, claim_and_report, h);
    pthread_join(t, &got);
    cr_assert_eq((uintptr_t)got, s + 1, "the damaged slot was claimed");
    cr_assert_eq(ts->state, SHR_ENTRY_FREE, "and released at thread exit");
    cr_assert_eq(ts->proc, h->proc);
    cr_assert_eq(ts->proc_gen, h->proc_gen);
    cr_assert_eq(ts->in_heap, 0);
    cr_assert_eq(ts->epoch, 0);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

/* ---- per-heap limits ----------------------------------------------------- */

Test(shm_unit, tables_are_sized_by_the_limits)
{
    shr_heap_options_t o;
    shr_heap_t *small, *big;
    shr_heap_options_init(&o);
    o.max_procs = 2;
    o.max_threads = 4;
    o.capacity = 4u << 20;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &small), 0);
    cr_assert_eq(small->max_procs, 2);
    cr_assert_eq(small->hdr->threads_off - small->hdr->procs_off, 2 * sizeof(proc_entry_t));
    cr_assert_eq(small->hdr->global_off[0] - small->hdr->threads_off, 4 * sizeof(thread_slot_t));
    o.max_procs = 1000;
    o.max_threads = 30000;
    o.capacity = 0;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &big), 0);
    cr_assert_eq(big->hdr->threads_off - big->hdr->procs_off, 1000 * sizeof(proc_entry_t));
    cr_assert_gt(big->hdr->eager_size, small->hdr->eager_size * 50);
    cr_assert_eq(shr_heap_check(big), 0);
    shr_heap_close(big);
    shr_heap_close(small);
}

/* The lock table is outside the header's checksum: a damaged mutex kind
 * (here the GC lock's, found by fuzz_segment) made pthread_mutex_trylock
 * fault inside shr_heap_close. Attach now refuses it, and a damaged life
 * mutex of a process entry is never probed. */
Test(shm_unit, damaged_lock_kind_is_refused_at_attach)
{
    shr_heap_t *h = make_heap(0), *b;
    pthread_mutex_t *mu = &h->hdr->locks[SHR_LOCK_GC].mu;
    cr_assert(shr__mutex_sane(mu));
    int kind = mu->__data.__kind;
    mu->__data.__kind = kind ^ 0x100; /* PTHREAD_MUTEX_ELISION_NP in glibc's kind */
    cr_assert_not(shr__mutex_sane(mu));
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &b), SHR_ECORRUPT);
    mu->__data.__kind = kind;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &b), 0);
    cr_assert_eq(shr_heap_close(b), 0);
    cr_assert_eq(shr_heap_close(h), 0);
}
