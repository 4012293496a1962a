/* shm through the public API: lifecycle, names, bad segments, offsets. */
#include <criterion/criterion.h>
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
