/* shm through the public API: lifecycle, names, bad segments, offsets. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(shm_api, .fini = fini, .timeout = 60);

static bool shm_exists(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

Test(shm_api, create_attach_close_unlink)
{
    const char *name = shr_test_name();
    shr_heap_t *a, *b;
    cr_assert_eq(shr_heap_create(name, NULL, &a), 0);
    cr_assert_str_eq(shr_heap_name(a), name);
    cr_assert(shm_exists(name));
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    cr_assert_str_eq(shr_heap_name(b), name);
    cr_assert_eq(shr_heap_close(b), 0);
    cr_assert_eq(shr_heap_close(a), 0);
    cr_assert(shm_exists(name), "a heap without the unlink flag outlives its processes");
    cr_assert_eq(shr_heap_unlink(name), 0);
    cr_assert_not(shm_exists(name));
    cr_assert_eq(shr_heap_unlink(name), -ENOENT);
}

Test(shm_api, generated_name)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(NULL, NULL, &h), 0);
    const char *name = shr_heap_name(h);
    int pid = 0;
    cr_assert_eq(sscanf(name, "shr_%d_", &pid), 1, "generated name %s", name);
    cr_assert_eq(pid, getpid());
    cr_assert_lt(strlen(name), 31u, "short enough for every platform");
    cr_assert_null(strchr(name, '/'));
    cr_assert(shm_exists(name));
    char copy[64];
    snprintf(copy, sizeof copy, "%s", name);
    cr_assert_eq(shr_heap_close(h), 0);
    cr_assert_eq(shr_heap_unlink(copy), 0);
}

Test(shm_api, name_rules)
{
    shr_heap_t *h = NULL;
    char longname[SHR_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert_eq(shr_heap_create("", NULL, &h), SHR_ENAME);
    cr_assert_eq(shr_heap_create("a/b", NULL, &h), SHR_ENAME);
    cr_assert_eq(shr_heap_create("/leading", NULL, &h), SHR_ENAME);
    cr_assert_eq(shr_heap_create("..", NULL, &h), SHR_ENAME);
    cr_assert_eq(shr_heap_create(longname, NULL, &h), -ENAMETOOLONG);
    cr_assert_eq(shr_heap_attach("", &h), SHR_ENAME);
    cr_assert_eq(shr_heap_attach("x/y", &h), SHR_ENAME);
    cr_assert_eq(shr_heap_unlink("x/y"), SHR_ENAME);
    cr_assert_null(h, "out-parameter untouched on error");
    cr_assert_eq(shr_name_check("ab\0cd", 5), SHR_ENAME);
    cr_assert_eq(shr_name_check("abcd", 4), 0);
    cr_assert_eq(shr_name_check(longname, SHR_NAME_MAX), 0);
    cr_assert_eq(shr_name_check(longname, SHR_NAME_MAX + 1), -ENAMETOOLONG);
    cr_assert_not(shm_exists("a"));
}

Test(shm_api, taken_and_missing_names)
{
    const char *name = shr_test_name();
    shr_heap_t *a, *b = NULL;
    cr_assert_eq(shr_heap_attach(name, &b), -ENOENT);
    cr_assert_eq(shr_heap_create(name, NULL, &a), 0);
    cr_assert_eq(shr_heap_create(name, NULL, &b), -EEXIST);
    cr_assert_null(b);
    /* The failed create left the existing heap intact. */
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    shr_heap_close(b);
    shr_heap_close(a);
}

Test(shm_api, bad_options)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags = 0x80;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL);
    shr_heap_options_init(&o);
    o.capacity = 4096;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL, "capacity below the metadata");
    o.capacity = SHR_MAX_CAPACITY + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL);
    shr_heap_options_init(&o);
    o.mode = 01777;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL);
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, NULL), -EINVAL);
    shr_heap_options_init(&o);
    o.max_procs = SHR_LIMIT_MAX_PROCS + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL, "max_procs above the limit");
    shr_heap_options_init(&o);
    o.max_threads = SHR_LIMIT_MAX_THREADS + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL, "max_threads above the limit");
    shr_heap_options_init(&o);
    o.reserved[3] = 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL, "reserved words must be zero");
    shr_heap_options_init(&o);
    o.max_procs = SHR_LIMIT_MAX_PROCS;
    o.max_threads = SHR_LIMIT_MAX_THREADS;
    o.capacity = 4u << 20;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), -EINVAL,
                 "capacity below the metadata of those limits");
}

Test(shm_api, mode_and_sparse_capacity)
{
    const char *name = shr_test_name();
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_info_t info;
    shr_heap_options_init(&o);
    o.mode = 0640;
    o.capacity = (size_t)64 << 30; /* 64 GiB reserved */
    cr_assert_eq(shr_heap_create(name, &o, &h), 0);
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    cr_assert_eq((uint64_t)st.st_size, (uint64_t)64 << 30);
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.capacity, (uint64_t)64 << 30);
    cr_assert_gt(info.committed, 0, "the header is committed");
    cr_assert_gt(info.meta_size, 0);
    cr_assert_lt(info.committed, (uint64_t)64 << 20, "capacity is reserved, not committed");
    cr_assert_eq(info.nprocs, 1);
    shr_heap_close(h);
}

Test(shm_api, offsets_and_pointers)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    char *p = shr_ptr(h, 4096);
    cr_assert_not_null(p);
    cr_assert_eq(shr_off(h, p), 4096);
    cr_assert_null(shr_ptr(h, 0), "offset 0 is null");
    cr_assert_null(shr_ptr(h, SHR_DEFAULT_CAPACITY), "past the end");
    cr_assert_eq(shr_off(h, NULL), 0);
    int local;
    cr_assert_eq(shr_off(h, &local), 0, "a pointer outside the segment");
    shr_heap_close(h);
}

Test(shm_api, strerror_names_every_code)
{
    int codes[] = {SHR_ENOTSHR, SHR_EVERSION, SHR_ETRUNC, SHR_ECORRUPT, SHR_EPROCS,
                   SHR_ETHREADS, SHR_ELOCK, SHR_ETYPE, SHR_EINDEX, SHR_ENOTFOUND,
                   SHR_EOVERFLOW, SHR_ENAME};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = shr_strerror(codes[i]);
        cr_assert_not_null(m);
        cr_assert_str_neq(m, "unknown error");
        for (size_t j = 0; j < i; j++) cr_assert_str_neq(m, shr_strerror(codes[j]));
    }
    cr_assert_str_eq(shr_strerror(-ENOENT), strerror(ENOENT));
    cr_assert_str_eq(shr_strerror(0), "success");
    cr_assert_str_eq(shr_strerror(-999999), "unknown error");
}

/* ---- segments that are not ours ----------------------------------------- */

static void write_object(const char *name, const void *data, size_t len, off_t size)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    if (size) cr_assert_eq(ftruncate(fd, size), 0);
    if (len) cr_assert_eq(pwrite(fd, data, len, 0), (ssize_t)len);
    close(fd);
}

static void patch_object(const char *name, off_t off, const void *data, size_t len)
{
    int fd = shm_open(name, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, len, off), (ssize_t)len);
    close(fd);
}

Test(shm_api, garbage_object_is_not_ours)
{
    const char *name = shr_test_name();
    unsigned char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
    write_object(name, junk, sizeof junk, sizeof junk);
    shr_heap_t *h = NULL;
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ENOTSHR);
    cr_assert_null(h);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), SHR_ENOTSHR);
}

Test(shm_api, empty_object_is_not_ours)
{
    const char *name = shr_test_name();
    write_object(name, NULL, 0, 0);
    shr_heap_t *h;
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ENOTSHR);
}

Test(shm_api, truncated_object)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    shr_heap_close(h);
    int fd = shm_open(name, O_RDWR, 0);
    cr_assert_eq(ftruncate(fd, SHR_DEFAULT_CAPACITY / 2), 0);
    close(fd);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ETRUNC);
    /* Shorter than the header itself, magic intact. */
    fd = shm_open(name, O_RDWR, 0);
    cr_assert_eq(ftruncate(fd, 64), 0);
    close(fd);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ETRUNC);
}

Test(shm_api, other_layout_version)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    shr_heap_close(h);
    uint32_t v = 999; /* layout_version: bytes 8..11 (docs/design/shm.md) */
    patch_object(name, 8, &v, sizeof v);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_EVERSION);
    v = 2; /* the layout before per-heap limits */
    patch_object(name, 8, &v, sizeof v);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_EVERSION);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), SHR_EVERSION);
}

Test(shm_api, corrupted_header)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    shr_heap_close(h);
    unsigned char b = 0x5a; /* a byte inside the checksummed header */
    patch_object(name, 40, &b, 1);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ECORRUPT);
}

Test(shm_api, unlink_on_last_close)
{
    const char *name = shr_test_name();
    shr_heap_options_t o;
    shr_heap_t *a, *b;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_UNLINK_ON_LAST_CLOSE;
    cr_assert_eq(shr_heap_create(name, &o, &a), 0);
    cr_assert_eq(shr_heap_attach(name, &b), 0);
    cr_assert_eq(shr_heap_close(a), 0);
    cr_assert(shm_exists(name), "another handle is still attached");
    cr_assert_eq(shr_heap_close(b), 0);
    cr_assert_not(shm_exists(name), "the last close unlinks");
}

Test(shm_api, inspect_without_attaching)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    shr_heap_info_t info;
    shr_proc_info_t procs[4];
    size_t n = 0;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    cr_assert_eq(shr_heap_inspect(name, &info, procs, 4, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(info.nprocs, 1);
    cr_assert_eq(procs[0].pid, getpid());
    cr_assert_eq(procs[0].alive, 1);
    cr_assert_gt(procs[0].start_time, 0);
    cr_assert_str_eq(info.name, name);
    cr_assert_eq(shr_heap_inspect("t_no_such_heap_here", &info, NULL, 0, NULL), -ENOENT);
    shr_heap_close(h);
    cr_assert_eq(shr_heap_inspect(name, &info, procs, 4, &n), 0);
    cr_assert_eq(n, 0, "a clean close frees the entry");
}

/* ---- per-heap limits --------------------------------------------------- */

static shr_heap_t *create_limited(const char *name, uint32_t procs, uint32_t threads)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.max_procs = procs;
    o.max_threads = threads;
    o.capacity = 2u << 20;
    cr_assert_eq(shr_heap_create(name, &o, &h), 0);
    return h;
}

Test(shm_api, defaults_are_the_old_limits)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    cr_assert_eq(o.max_procs, 128);
    cr_assert_eq(o.max_threads, 512);
    cr_assert_eq(o.lock_timeout_ms, SHR_DEFAULT_LOCK_TIMEOUT_MS);
    shr_heap_options_t zero;
    memset(&zero, 0, sizeof zero);
    shr_heap_t *h;
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_create(shr_test_name(), &zero, &h), 0, "zero means default");
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.max_procs, SHR_DEFAULT_MAX_PROCS);
    cr_assert_eq(info.max_threads, SHR_DEFAULT_MAX_THREADS);
    cr_assert_eq(info.lock_timeout_ms, SHR_DEFAULT_LOCK_TIMEOUT_MS);
    cr_assert_eq(info.layout_version, 18);
    shr_heap_close(h);
}

Test(shm_api, process_limit_is_the_heaps)
{
    const char *name = shr_test_name();
    shr_heap_t *h = create_limited(name, 3, 8), *b[3] = {0};
    cr_assert_eq(shr_heap_attach(name, &b[0]), 0);
    cr_assert_eq(shr_heap_attach(name, &b[1]), 0);
    cr_assert_eq(shr_heap_attach(name, &b[2]), SHR_EPROCS, "3 entries: the creator and two more");
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.max_procs, 3);
    cr_assert_eq(info.max_threads, 8);
    cr_assert_eq(info.nprocs, 3);
    shr_heap_close(b[1]);
    cr_assert_eq(shr_heap_attach(name, &b[2]), 0, "a freed entry is claimed again");
    shr_heap_close(b[2]);
    shr_heap_close(b[0]);
    shr_heap_close(h);
}

static void *alloc_one(void *arg)
{
    void *p = shr_malloc(arg, 16);
    if (!p) return (void *)(intptr_t)errno;
    shr_free(arg, p);
    return NULL;
}

typedef struct {
    shr_heap_t *h;
    pthread_barrier_t *bar;
    int err;
} holder_t;

static void *hold_slot(void *arg)
{
    holder_t *t = arg;
    void *p = shr_malloc(t->h, 16);
    t->err = p ? 0 : errno;
    pthread_barrier_wait(t->bar);
    pthread_barrier_wait(t->bar);
    if (p) shr_free(t->h, p);
    return NULL;
}

Test(shm_api, thread_limit_is_the_heaps)
{
    enum { N = 5 };
    shr_heap_t *h = create_limited(shr_test_name(), 2, N);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N + 1);
    pthread_t t[N];
    holder_t ht[N];
    for (int i = 0; i < N; i++) {
        ht[i] = (holder_t){h, &bar, -1};
        pthread_create(&t[i], NULL, hold_slot, &ht[i]);
    }
    pthread_barrier_wait(&bar);
    for (int i = 0; i < N; i++) cr_assert_eq(ht[i].err, 0);
    /* Every slot is held: one more thread gets none. */
    pthread_t extra;
    void *err;
    pthread_create(&extra, NULL, alloc_one, h);
    pthread_join(extra, &err);
    cr_assert_eq((intptr_t)err, EAGAIN, "no slot: EAGAIN (got %d)", (int)(intptr_t)err);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    pthread_create(&extra, NULL, alloc_one, h);
    pthread_join(extra, &err);
    cr_assert_null(err, "slots come back when their threads exit");
    pthread_barrier_destroy(&bar);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_heap_close(h);
}

Test(shm_api, a_thousand_threads_beyond_the_old_limit)
{
    enum { N = 1000 };
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.max_threads = N + 1;
    cr_assert_eq(shr_heap_create(shr_test_name(), &o, &h), 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128u << 10);
    pthread_t *t = calloc(N, sizeof *t);
    holder_t *ht = calloc(N, sizeof *ht);
    for (int i = 0; i < N; i++) {
        ht[i] = (holder_t){h, &bar, -1};
        cr_assert_eq(pthread_create(&t[i], &attr, hold_slot, &ht[i]), 0);
    }
    pthread_barrier_wait(&bar);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nthreads, N, "every thread holds a slot at once");
    for (int i = 0; i < N; i++) cr_assert_eq(ht[i].err, 0);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    cr_assert_eq(shr_heap_check(h), 0);
    free(t);
    free(ht);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&bar);
    shr_heap_close(h);
}

/* ---- what a heap costs a process ------------------------------------------ */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    cr_assert_not_null(d);
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

Test(shm_api, a_thousand_heaps_cost_no_thread_or_descriptor_each, .timeout = 240)
{
    enum { N = 1000 };
    shr_heap_t **hs = calloc(N, sizeof *hs);
    char (*names)[64] = calloc(N, sizeof *names);
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.max_procs = 2;
    o.max_threads = 2;
    o.capacity = 1u << 20;
    /* The first heap may start this process's anchor thread. */
    snprintf(names[0], sizeof names[0], "%s", shr_test_name());
    cr_assert_eq(shr_heap_create(names[0], &o, &hs[0]), 0);
    int threads = count_dir("/proc/self/task"), fds = count_dir("/proc/self/fd");
    for (int i = 1; i < N; i++) {
        snprintf(names[i], sizeof names[i], "%s", shr_test_name());
        int rc = shr_heap_create(names[i], &o, &hs[i]);
        cr_assert_eq(rc, 0, "heap %d: %s", i, shr_strerror(rc));
    }
    cr_assert_eq(count_dir("/proc/self/task"), threads, "one anchor thread for every heap");
    cr_assert_eq(count_dir("/proc/self/fd"), fds, "no descriptor kept per heap");
    /* Attaching each a second time: the same. */
    shr_heap_t *again[16];
    for (int i = 0; i < 16; i++) cr_assert_eq(shr_heap_attach(names[i * 50], &again[i]), 0);
    cr_assert_eq(count_dir("/proc/self/task"), threads);
    cr_assert_eq(count_dir("/proc/self/fd"), fds);
    /* Every heap is alive and usable; a small heap has small metadata. */
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_inspect(names[N - 1], &info, NULL, 0, NULL), 0);
    cr_assert_eq(info.nprocs, 1);
    cr_assert_leq(info.committed, 160u << 10, "committed %lu", (unsigned long)info.committed);
    void *p = shr_malloc(hs[N / 2], 100);
    cr_assert_not_null(p);
    shr_free(hs[N / 2], p);
    for (int i = 0; i < 16; i++) cr_assert_eq(shr_heap_close(again[i]), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(shr_heap_close(hs[i]), 0);
        cr_assert_eq(shr_heap_unlink(names[i]), 0);
    }
    cr_assert_eq(count_dir("/proc/self/fd"), fds);
    free(hs);
    free(names);
}

/* ---- NULL handles and things that are not heaps ---------------------------- */

Test(shm_api, null_handles_are_einval)
{
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_close(NULL), -EINVAL);
    cr_assert_eq(shr_heap_stat(NULL, &info, NULL, 0, NULL), -EINVAL);
    cr_assert_eq(shr_heap_recover(NULL), -EINVAL);
    cr_assert_eq(shr_heap_check(NULL), -EINVAL);
    cr_assert_eq(shr_heap_check_report(NULL, stderr), -EINVAL);
    cr_assert_eq(shr_heap_attach(shr_test_name(), NULL), -EINVAL);
    cr_assert_null(shr_heap_name(NULL));
    cr_assert_null(shr_ptr(NULL, 64));
    cr_assert_eq(shr_off(NULL, &info), 0);
    shr_heap_options_init(NULL); /* no crash */
}

Test(shm_api, directory_is_not_a_heap)
{
    char name[64];
    snprintf(name, sizeof name, "%s", shr_test_name());
    char path[600];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(mkdir(path, 0700), 0);
    shr_heap_t *h = NULL;
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ENOTSHR);
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), SHR_ENOTSHR);
    cr_assert_eq(shr_heap_create(name, NULL, &h), -EEXIST);
    rmdir(path);
    /* A symlink (even to a real heap) and a fifo are not heaps either. */
    shr_heap_t *real;
    const char *target = shr_test_name();
    char tpath[600];
    snprintf(tpath, sizeof tpath, "/dev/shm/%s", target);
    cr_assert_eq(shr_heap_create(target, NULL, &real), 0);
    cr_assert_eq(symlink(tpath, path), 0);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ENOTSHR);
    cr_assert_eq(shr_heap_inspect(name, &info, NULL, 0, NULL), SHR_ENOTSHR);
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0);
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ENOTSHR);
    unlink(path);
    shr_heap_close(real);
}
