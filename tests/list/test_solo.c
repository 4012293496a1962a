/* Compact lists (<sharena/solo.h>): a list in a segment of its own, in one
 * page, that becomes a heap in place when it must. Through the public API,
 * with processes killed at the format's commit points. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(solo, .fini = fini, .timeout = 120);

static shr_solo_t *make(const char *name, const shr_value_t *v, size_t n)
{
    shr_solo_t *s;
    cr_assert_eq(shr_solo_create(name, v, n, 0, &s), 0);
    return s;
}

static void expect_int(shr_solo_t *s, int64_t i, int64_t want)
{
    shr_value_t v;
    char buf[8];
    cr_assert_eq(shr_solo_read(s, i, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.type, SHR_INT);
    cr_assert_eq(v.u.i, want, "item %lld: %lld, not %lld", (long long)i, (long long)v.u.i, (long long)want);
}

static void expect_str(shr_solo_t *s, int64_t i, shr_type_t type, const char *want, size_t n)
{
    shr_value_t v;
    char buf[SHR_SOLO_MAX_BYTES];
    cr_assert_eq(shr_solo_read(s, i, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.type, type);
    cr_assert_eq(v.u.s.len, n);
    cr_assert(memcmp(v.u.s.data, want, n) == 0);
}

Test(solo, holds_the_stdlibs_values_in_one_page)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_int(-5), shr_float(2.5), shr_strn("ab\0", 3),
                        shr_bytes("\xff\x00", 2), shr_strn("", 0)};
    shr_solo_t *s = make(name, in, 7);
    cr_assert_eq(shr_test_shm_bytes(name), 4096, "a compact list is one page of /dev/shm");
    cr_assert_eq(shr_solo_len(s), 7);
    cr_assert_eq(shr_solo_is_heap(s), 0);
    shr_value_t v;
    char buf[16];
    cr_assert_eq(shr_solo_read(s, 0, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.type, SHR_NONE);
    cr_assert_eq(shr_solo_read(s, 1, &v, buf, sizeof buf), 0);
    cr_assert(v.type == SHR_BOOL && v.u.b == 1);
    expect_int(s, -5, -5);
    cr_assert_eq(shr_solo_read(s, 3, &v, buf, sizeof buf), 0);
    cr_assert(v.type == SHR_FLOAT && v.u.f == 2.5);
    expect_str(s, 4, SHR_STR, "ab\0", 3);
    expect_str(s, -2, SHR_BYTES, "\xff\x00", 2);
    expect_str(s, 6, SHR_STR, "", 0);
    cr_assert_eq(shr_solo_read(s, 7, &v, buf, sizeof buf), SHR_EINDEX);
    cr_assert_eq(shr_solo_read(s, -8, &v, buf, sizeof buf), SHR_EINDEX);
    cr_assert_eq(shr_solo_read(s, 4, &v, buf, 2), 1, "a buffer too short says so");
    cr_assert_eq(v.u.s.len, 3);
    cr_assert_eq(shr_solo_check(s, stderr), 0);
    cr_assert_eq(shr_solo_close(s), 0);
}

Test(solo, bad_arguments_change_nothing)
{
    const char *name = shr_test_name();
    shr_solo_t *s;
    shr_value_t one = shr_int(1);
    cr_assert_eq(shr_solo_create("", &one, 1, 0, &s), SHR_ENAME);
    cr_assert_eq(shr_solo_create("a/b", &one, 1, 0, &s), SHR_ENAME);
    cr_assert_eq(shr_solo_create(name, NULL, 1, 0, &s), -EINVAL);
    cr_assert_eq(shr_solo_create(name, &one, 1, 01000, &s), -EINVAL);
    shr_value_t lst = shr_listval(NULL);
    cr_assert_eq(shr_solo_create(name, &lst, 1, 0, &s), -EINVAL, "a nested list is not compact");
    shr_value_t bad = shr_strn("\xc0\x80", 2);
    cr_assert_eq(shr_solo_create(name, &bad, 1, 0, &s), -EINVAL, "an overlong NUL is not UTF-8");
    static char big[5000];
    shr_value_t huge = shr_bytes(big, sizeof big);
    cr_assert_eq(shr_solo_create(name, &huge, 1, 0, &s), SHR_ENOROOM);
    shr_value_t many[300];
    for (int i = 0; i < 300; i++) many[i] = shr_int(i);
    cr_assert_eq(shr_solo_create(name, many, 300, 0, &s), SHR_ENOROOM);
    cr_assert_eq(shr_test_shm_bytes(name), -1, "a refused creation leaves no name");
    s = make(name, many, 200);
    shr_solo_t *t;
    cr_assert_eq(shr_solo_create(name, &one, 1, 0, &t), -EEXIST);
    cr_assert_eq(shr_solo_set(s, 200, &one), SHR_EINDEX);
    cr_assert_eq(shr_solo_set(s, 0, &lst), -EINVAL);
    cr_assert_eq(shr_solo_set(s, 0, &bad), -EINVAL);
    cr_assert_eq(shr_solo_set(s, 0, &huge), SHR_ENOROOM);
    expect_int(s, 0, 0);
    /* Strings until the page is full: the one that does not fit changes nothing. */
    char str[200];
    memset(str, 'x', sizeof str);
    int i = 0, rc;
    while ((rc = shr_solo_set(s, i, &(shr_value_t){.type = SHR_STR, .u.s = {str, sizeof str}})) == 0) i++;
    cr_assert_eq(rc, SHR_ENOROOM);
    cr_assert(i > 0 && i < 200);
    expect_int(s, i, i);
    expect_str(s, i - 1, SHR_STR, str, sizeof str);
    cr_assert_eq(shr_solo_check(s, stderr), 0);
    shr_solo_close(s);
}

Test(solo, sets_reuse_an_items_slot)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("sixteen bytes..."), shr_int(2)};
    shr_solo_t *s = make(name, in, 2);
    shr_solo_info_t a, b;
    cr_assert_eq(shr_solo_info(s, &a), 0);
    for (int k = 0; k < 10000; k++) {
        char x[17];
        snprintf(x, sizeof x, "%016d", k);
        shr_value_t v = shr_strn(x, 16);
        cr_assert_eq(shr_solo_set(s, 0, &v), 0);
        v = shr_int(k);
        cr_assert_eq(shr_solo_set(s, 0, &v), 0, "an int over a str keeps the slot");
        v = shr_strn(x, k % 17);
        cr_assert_eq(shr_solo_set(s, 0, &v), 0);
    }
    cr_assert_eq(shr_solo_info(s, &b), 0);
    cr_assert_eq(b.bytes_used, a.bytes_used, "a value that fits its slot takes no more of the page");
    cr_assert_eq(b.sets, 30000);
    expect_str(s, 0, SHR_STR, "0000000000009999", 9999 % 17);
    shr_value_t v = shr_str("a string longer than the slot it had");
    cr_assert_eq(shr_solo_set(s, 1, &v), 0);
    expect_str(s, 1, SHR_STR, v.u.s.data, v.u.s.len);
    cr_assert_eq(shr_solo_check(s, stderr), 0);
    shr_solo_close(s);
}

static int child_sets(void *arg)
{
    shr_solo_t *s;
    if (shr_solo_open(arg, &s) != 0) return 1;
    for (int k = 0; k < 1000; k++) {
        shr_value_t v = shr_int(k);
        if (shr_solo_set(s, 1, &v) != 0) return 2;
    }
    shr_value_t v = shr_str("from the child");
    if (shr_solo_set(s, 0, &v) != 0) return 3;
    return shr_solo_close(s) == 0 ? 0 : 4;
}

Test(solo, another_process_sees_every_set)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("x"), shr_int(0)};
    shr_solo_t *s = make(name, in, 2);
    cr_assert_eq(shr_test_wait(shr_test_fork(child_sets, (void *)name)), 0);
    expect_int(s, 1, 999);
    expect_str(s, 0, SHR_STR, "from the child", 14);
    shr_solo_close(s);
}

Test(solo, becomes_a_heap_in_place)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_int(7), shr_str("seven"), shr_none()};
    shr_solo_t *s = make(name, in, 3), *other;
    cr_assert_eq(shr_solo_open(name, &other), 0);
    shr_heap_t *h;
    cr_assert_eq(shr_heap_attach(name, &h), SHR_ECOMPACT, "a compact list is not attached as a heap");
    cr_assert_eq(shr_solo_promote(s, &h), 0);
    cr_assert_eq(shr_solo_is_heap(s), 1);
    cr_assert_eq(shr_solo_is_heap(other), 1, "every handle sees the change");
    cr_assert_eq(shr_solo_len(other), SHR_EMOVED);
    shr_value_t v;
    char buf[8];
    cr_assert_eq(shr_solo_read(other, 0, &v, buf, sizeof buf), SHR_EMOVED);
    v = shr_int(1);
    cr_assert_eq(shr_solo_set(other, 0, &v), SHR_EMOVED);
    shr_list_t *l;
    cr_assert_eq(shr_list_attach(h, SHR_SOLO_ROOT, &l), 0);
    cr_assert_eq(shr_list_len(l), 3);
    cr_assert_eq(shr_list_get(l, 0, &v), 0);
    cr_assert_eq(v.u.i, 7);
    cr_assert_eq(shr_list_get(l, 1, &v), 0);
    cr_assert(v.type == SHR_STR && v.u.s.len == 5 && memcmp(v.u.s.data, "seven", 5) == 0);
    shr_value_release(h, &v);
    v = shr_int(8);
    cr_assert_eq(shr_list_append(l, &v), 0);
    /* Attached by name, by a second promote, and from another handle. */
    shr_heap_t *h2, *h3;
    cr_assert_eq(shr_heap_attach(name, &h2), 0);
    cr_assert_eq(shr_solo_promote(other, &h3), 0);
    shr_list_t *l2;
    cr_assert_eq(shr_list_attach(h3, SHR_SOLO_ROOT, &l2), 0);
    cr_assert_eq(shr_list_len(l2), 4);
    cr_assert_eq(shr_heap_check(h2), 0);
    shr_list_close(l2);
    shr_list_close(l);
    shr_heap_close(h3);
    shr_heap_close(h2);
    shr_heap_close(h);
    shr_solo_close(other);
    shr_solo_close(s);
    cr_assert_eq(shr_heap_unlink(name), 0);
}

Test(solo, a_heap_from_the_start)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_solo_create_heap(name, NULL, &h), 0);
    shr_solo_t *s;
    cr_assert_eq(shr_solo_open(name, &s), 0);
    cr_assert_eq(shr_solo_is_heap(s), 1);
    shr_heap_t *h2;
    cr_assert_eq(shr_heap_attach(name, &h2), 0);
    cr_assert_eq(shr_heap_check(h2), 0);
    shr_heap_close(h2);
    shr_heap_close(h);
    shr_solo_close(s);
    cr_assert_eq(shr_solo_create_heap(name, NULL, &h), -EEXIST);
}

static int kill_in(const char *name, const char *point, int what)
{
    shr_solo_t *s;
    if (shr_solo_open(name, &s) != 0) return 1;
    if (shr_fault_arm(point, 1, SHR_FAULT_KILL) != 0) return 2;
    if (what == 0) {
        shr_value_t v = shr_str("the new value, longer than the slot");
        shr_solo_set(s, 0, &v);
    } else {
        shr_heap_t *h;
        shr_solo_promote(s, &h);
    }
    return 3; /* not killed */
}
static int kill_set(void *arg) { return kill_in(arg, "solo.set.commit", 0); }
static int kill_promote(void *arg) { return kill_in(arg, "solo.promote", 1); }

Test(solo, a_writer_killed_after_its_commit_is_finished_by_the_next)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out");
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("old"), shr_int(1)};
    shr_solo_t *s = make(name, in, 2);
    cr_assert_eq(shr_test_wait(shr_test_fork(kill_set, (void *)name)), 128 + SIGKILL);
    /* Killed after its commit, before the item changed: readers see the old
     * value until the next locker finishes the set. */
    expect_str(s, 0, SHR_STR, "old", 3);
    cr_assert_eq(shr_solo_check(s, stderr), 0, "the check's lock repairs first");
    expect_str(s, 0, SHR_STR, "the new value, longer than the slot", 35);
    shr_solo_info_t info;
    cr_assert_eq(shr_solo_info(s, &info), 0);
    cr_assert_eq(info.repairs, 1);
    expect_int(s, 1, 1);
    shr_solo_close(s);
}

Test(solo, a_promoter_killed_leaves_a_compact_list)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out");
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("kept"), shr_int(41)};
    shr_solo_t *s = make(name, in, 2);
    cr_assert_eq(shr_test_wait(shr_test_fork(kill_promote, (void *)name)), 128 + SIGKILL);
    cr_assert_eq(shr_solo_is_heap(s), 0);
    expect_int(s, 1, 41);
    shr_value_t v = shr_int(42);
    cr_assert_eq(shr_solo_set(s, 1, &v), 0, "the set repairs the dead promoter's page");
    cr_assert_eq(shr_test_shm_bytes(name), 4096, "the half-made heap was given back");
    cr_assert_eq(shr_solo_check(s, stderr), 0);
    shr_heap_t *h;
    cr_assert_eq(shr_solo_promote(s, &h), 0);
    shr_list_t *l;
    cr_assert_eq(shr_list_attach(h, SHR_SOLO_ROOT, &l), 0);
    cr_assert_eq(shr_list_get(l, 1, &v), 0);
    cr_assert_eq(v.u.i, 42);
    cr_assert_eq(shr_heap_check(h), 0);
    shr_list_close(l);
    shr_heap_close(h);
    shr_solo_close(s);
}

/* Readers in other processes copy self-describing strings (a length byte
 * and that many copies of it) while a writer rewrites them in place and
 * in new slots: no read is torn. */
static int reader(void *arg)
{
    shr_solo_t *s;
    if (shr_solo_open(arg, &s) != 0) return 1;
    for (int k = 0; k < 200000; k++) {
        shr_value_t v;
        char buf[64];
        int rc = shr_solo_read(s, k % 4, &v, buf, sizeof buf);
        if (rc == SHR_EMOVED) break;
        if (rc != 0 || v.type != SHR_STR || v.u.s.len == 0) return 2;
        unsigned char n = (unsigned char)buf[0];
        if (v.u.s.len != n) return 3;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] != n) return 4;
    }
    return shr_solo_close(s) == 0 ? 0 : 5;
}

Test(solo, readers_never_see_a_torn_string, .timeout = 300)
{
    const char *name = shr_test_name();
    char init[4][2] = {{1, 0}, {1, 0}, {1, 0}, {1, 0}};
    shr_value_t in[4];
    for (int i = 0; i < 4; i++) in[i] = shr_strn(init[i], 1);
    shr_solo_t *s = make(name, in, 4);
    pid_t r[2];
    for (int i = 0; i < 2; i++) r[i] = shr_test_fork(reader, (void *)name);
    char buf[64];
    for (int k = 0; k < 100000; k++) {
        unsigned char n = (unsigned char)(1 + k % 40);
        memset(buf, n, n);
        shr_value_t v = shr_strn(buf, n);
        int rc = shr_solo_set(s, k % 4, &v);
        cr_assert(rc == 0 || rc == SHR_ENOROOM, "set: %d", rc);
        if (rc == SHR_ENOROOM) break;
    }
    /* The readers stop when the list moves. */
    shr_heap_t *h;
    cr_assert_eq(shr_solo_promote(s, &h), 0);
    for (int i = 0; i < 2; i++) cr_assert_eq(shr_test_wait(r[i]), 0);
    shr_heap_close(h);
    shr_solo_close(s);
}

Test(solo, a_damaged_segment_is_refused)
{
    const char *name = shr_test_name();
    shr_value_t one = shr_int(1);
    shr_solo_t *s = make(name, &one, 1), *t;
    shr_solo_close(s);
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint32_t v = 99;
    cr_assert_eq(pwrite(fd, &v, 4, 8), 4); /* the version */
    cr_assert_eq(shr_solo_open(name, &t), SHR_EVERSION);
    v = 18;
    cr_assert_eq(pwrite(fd, &v, 4, 8), 4);
    cr_assert_eq(shr_solo_open(name, &t), 0, "the version restored");
    shr_solo_close(t);
    uint64_t w = 12345;
    cr_assert_eq(pwrite(fd, &w, 8, 24), 8); /* heap_off, under the checksum */
    cr_assert_eq(shr_solo_open(name, &t), SHR_ECORRUPT);
    cr_assert_eq(shr_heap_attach(name, &(shr_heap_t *){NULL}), SHR_ECORRUPT);
    cr_assert_eq(ftruncate(fd, 100), 0);
    cr_assert_eq(shr_solo_open(name, &t), SHR_ETRUNC);
    cr_assert_eq(pwrite(fd, "NOTOURS", 8, 0), 8);
    cr_assert_eq(shr_solo_open(name, &t), SHR_ENOTSHR);
    close(fd);
    /* An ordinary heap is not a compact list. */
    const char *other = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(other, NULL, &h), 0);
    cr_assert_eq(shr_solo_open(other, &t), SHR_ENOTSHR);
    shr_heap_close(h);
}

Test(solo, check_finds_a_damaged_slot)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("abc"), shr_str("def")};
    shr_solo_t *s = make(name, in, 2);
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint64_t w0;
    cr_assert_eq(pread(fd, &w0, 8, 192), 8);
    /* Item 1's slot made item 0's. */
    cr_assert_eq(pwrite(fd, &w0, 8, 192 + 16), 8);
    close(fd);
    cr_assert_eq(shr_solo_check(s, NULL), 1);
    shr_solo_close(s);
}

/* "n|n": the same number twice. */
static int twice_ok(const char *s, size_t n)
{
    const char *bar = memchr(s, '|', n);
    if (!bar || (size_t)(bar - s) * 2 + 1 != n) return 0;
    return memcmp(s, bar + 1, (size_t)(bar - s)) == 0;
}

static int storm_writer(void *arg)
{
    shr_solo_t *s;
    if (shr_solo_open(arg, &s) != 0) return 1;
    unsigned seed = (unsigned)getpid();
    char buf[64];
    for (;;) {
        unsigned r = (unsigned)rand_r(&seed);
        shr_value_t v;
        if (r % 5 == 0) {
            v = shr_int((int64_t)r);
        } else {
            long x = (long)(r % (r % 2 ? 1000u : 1000000000u));
            snprintf(buf, sizeof buf, "%ld|%ld", x, x);
            v = shr_str(buf);
        }
        int rc = shr_solo_set(s, (int64_t)(r >> 8) % 16, &v);
        if (rc != 0 && rc != SHR_ENOROOM) return 2;
    }
}

Test(solo, random_kills_of_writers_leave_a_whole_page, .timeout = 300)
{
    const char *name = shr_test_name();
    shr_value_t in[16];
    for (int i = 0; i < 16; i++) in[i] = shr_str("0|0");
    shr_solo_t *s = make(name, in, 16);
    pid_t w[3];
    for (int i = 0; i < 3; i++) w[i] = shr_test_fork(storm_writer, (void *)name);
    unsigned seed = 42;
    for (int k = 0; k < 60; k++) {
        shr_test_sleep_ms(5 + (unsigned)rand_r(&seed) % 20);
        int i = rand_r(&seed) % 3;
        kill(w[i], SIGKILL);
        cr_assert_eq(shr_test_wait(w[i]), 128 + SIGKILL, "a writer failed on its own");
        w[i] = shr_test_fork(storm_writer, (void *)name);
    }
    for (int i = 0; i < 3; i++) {
        kill(w[i], SIGKILL);
        shr_test_wait(w[i]);
    }
    cr_assert_eq(shr_solo_check(s, stderr), 0);
    char buf[SHR_SOLO_MAX_BYTES];
    for (int i = 0; i < 16; i++) {
        shr_value_t v;
        cr_assert_eq(shr_solo_read(s, i, &v, buf, sizeof buf), 0);
        cr_assert(v.type == SHR_INT || (v.type == SHR_STR && twice_ok(v.u.s.data, v.u.s.len)),
                  "item %d is whole", i);
    }
    shr_solo_info_t info;
    cr_assert_eq(shr_solo_info(s, &info), 0);
    cr_assert(info.sets > 1000, "the writers made progress (%llu sets)", (unsigned long long)info.sets);
    shr_solo_close(s);
}

Test(solo, check_finds_a_str_that_is_not_utf8_and_promotion_refuses_it)
{
    const char *name = shr_test_name();
    shr_value_t in[] = {shr_str("abc"), shr_int(1)};
    shr_solo_t *s = make(name, in, 2);
    cr_assert_eq(shr_solo_check(s, NULL), 0);
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint64_t w0;
    cr_assert_eq(pread(fd, &w0, 8, 192), 8);
    uint32_t slot = (uint32_t)(w0 >> 8) & 0xffff;
    cr_assert_eq(pwrite(fd, "\xc0\x80", 2, slot), 2); /* an overlong NUL */
    close(fd);
    cr_assert_eq(shr_solo_check(s, NULL), 1, "S8");
    shr_heap_t *h;
    cr_assert_eq(shr_solo_promote(s, &h), -EINVAL, "a heap's list holds no such str");
    cr_assert_eq(shr_solo_is_heap(s), 0, "the failed promotion left it compact");
    cr_assert_eq(shr_test_shm_bytes(name), 4096, "and gave back the heap's pages");
    shr_solo_close(s);
}
