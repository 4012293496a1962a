/* The shared list through the public API: CPython's ShareableList semantics
 * where CPython is right, and beyond it where it is limited. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(list_api, .fini = fini, .timeout = 120);

static uint64_t blocks_in_use(shr_heap_t *h) { return shr_test_blocks_in_use(h); }

Test(list_api, values_keep_their_types)
{
    shr_heap_t *h = make_heap();
    static const char with_nuls[] = "ab\0\0"; /* trailing NULs survive */
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_bool(0), shr_int(-5), shr_int(INT64_MAX),
                        shr_float(2.5), shr_strn(with_nuls, 4), shr_str("h\xc3\xa9llo"),
                        shr_bytes("\x00\x01\xff", 3), shr_str("")};
    size_t n = sizeof in / sizeof in[0];
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, n, &l), 0);
    cr_assert_eq(shr_list_len(l), (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        shr_value_t v;
        cr_assert_eq(shr_list_get(l, (int64_t)i, &v), 0);
        cr_assert_eq(v.type, in[i].type, "item %zu: type %d, want %d", i, v.type, in[i].type);
        switch (v.type) {
        case SHR_BOOL: cr_assert_eq(v.u.b, in[i].u.b); break;
        case SHR_INT: cr_assert_eq(v.u.i, in[i].u.i); break;
        case SHR_FLOAT: cr_assert_eq(v.u.f, in[i].u.f); break;
        case SHR_STR:
        case SHR_BYTES:
            cr_assert_eq(v.u.s.len, in[i].u.s.len, "item %zu: %zu bytes, want %zu", i, v.u.s.len, in[i].u.s.len);
            cr_assert_eq(memcmp(v.u.s.data, in[i].u.s.data, v.u.s.len), 0);
            break;
        default: break;
        }
        shr_value_release(h, &v);
    }
    shr_value_t v;
    cr_assert_eq(shr_list_get(l, 7, &v), 0);
    cr_assert_eq(v.u.s.len, 6, "UTF-8 is sized in bytes");
    shr_value_release(h, &v);
    shr_list_close(l);
    done(h);
}

Test(list_api, indices_are_checked)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(10), shr_int(20), shr_int(30)};
    shr_list_t *l;
    shr_value_t v;
    cr_assert_eq(shr_list_create(h, NULL, in, 3, &l), 0);
    cr_assert_eq(shr_list_get(l, -1, &v), 0);
    cr_assert_eq(v.u.i, 30);
    cr_assert_eq(shr_list_get(l, -3, &v), 0);
    cr_assert_eq(v.u.i, 10);
    cr_assert_eq(shr_list_get(l, 3, &v), SHR_EINDEX, "len is out of range");
    cr_assert_eq(shr_list_get(l, -4, &v), SHR_EINDEX, "-(n+1) is out of range (CPython reads garbage)");
    cr_assert_eq(shr_list_get(l, INT64_MIN, &v), SHR_EINDEX);
    shr_value_t x = shr_int(99);
    cr_assert_eq(shr_list_set(l, 3, &x), SHR_EINDEX);
    cr_assert_eq(shr_list_set(l, -4, &x), SHR_EINDEX);
    cr_assert_eq(shr_list_pop(l, 5, NULL), SHR_EINDEX);
    cr_assert_eq(shr_list_len(l), 3, "failed calls change nothing");
    shr_list_close(l);
    done(h);
}

Test(list_api, any_item_takes_any_value)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("short"), shr_int(1)};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 2, &l), 0);
    uint64_t base = blocks_in_use(h);
    char *big = malloc(100000);
    memset(big, 'z', 100000);
    shr_value_t v = shr_strn(big, 100000);
    cr_assert_eq(shr_list_set(l, 0, &v), 0, "a much longer string fits");
    v = shr_float(3.25);
    cr_assert_eq(shr_list_set(l, 1, &v), 0, "an int item takes a float");
    shr_value_t g;
    cr_assert_eq(shr_list_get(l, 0, &g), 0);
    cr_assert_eq(g.u.s.len, 100000);
    cr_assert_eq(g.u.s.data[99999], 'z');
    /* The string stays valid however the list changes. */
    v = shr_int(0);
    cr_assert_eq(shr_list_set(l, 0, &v), 0);
    cr_assert_eq(g.u.s.data[5000], 'z');
    shr_value_release(h, &g);
    v = shr_str("short");
    cr_assert_eq(shr_list_set(l, 0, &v), 0);
    cr_assert_eq(blocks_in_use(h), base - 0, "replaced values were released");
    free(big);
    shr_list_close(l);
    done(h);
}

Test(list_api, bad_values_change_nothing)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("keep")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    uint64_t base = blocks_in_use(h);
    shr_value_t bad = shr_strn("\xff\xfe", 2);
    cr_assert_eq(shr_list_set(l, 0, &bad), -EINVAL, "invalid UTF-8");
    bad = shr_strn("\xc0\x80", 2);
    cr_assert_eq(shr_list_set(l, 0, &bad), -EINVAL, "overlong NUL");
    bad = shr_strn("\xed\xa0\x80", 3);
    cr_assert_eq(shr_list_set(l, 0, &bad), -EINVAL, "a surrogate");
    bad.type = (shr_type_t)42;
    cr_assert_eq(shr_list_set(l, 0, &bad), -EINVAL);
    cr_assert_eq(shr_list_append(l, &bad), -EINVAL);
    cr_assert_eq(shr_list_set(l, 0, NULL), -EINVAL);
    shr_value_t g;
    cr_assert_eq(shr_list_get(l, 0, &g), 0);
    cr_assert_eq(g.u.s.len, 4);
    cr_assert_eq(memcmp(g.u.s.data, "keep", 4), 0);
    shr_value_release(h, &g);
    cr_assert_eq(shr_list_len(l), 1);
    cr_assert_eq(blocks_in_use(h), base);
    shr_list_close(l);
    done(h);
}

Test(list_api, null_handles_are_refused_with_einval)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("keep")}, v = shr_int(1), g;
    shr_list_t *l;
    size_t n;
    cr_assert_eq(shr_list_create(NULL, NULL, in, 1, &l), -EINVAL);
    cr_assert_eq(shr_list_create(h, NULL, in, 1, NULL), -EINVAL);
    cr_assert_eq(shr_list_create(h, NULL, NULL, 1, &l), -EINVAL, "values NULL with n > 0");
    cr_assert_eq(shr_list_attach(NULL, "x", &l), -EINVAL);
    cr_assert_eq(shr_list_attach(h, NULL, &l), -EINVAL);
    cr_assert_eq(shr_list_unlink(NULL, "x"), -EINVAL);
    cr_assert_eq(shr_list_close(NULL), -EINVAL);
    cr_assert_eq(shr_list_len(NULL), -EINVAL);
    cr_assert_eq(shr_list_get(NULL, 0, &g), -EINVAL);
    cr_assert_eq(shr_list_set(NULL, 0, &v), -EINVAL);
    cr_assert_eq(shr_list_append(NULL, &v), -EINVAL);
    cr_assert_eq(shr_list_insert(NULL, 0, &v), -EINVAL);
    cr_assert_eq(shr_list_pop(NULL, 0, &g), -EINVAL);
    cr_assert_eq(shr_list_delete(NULL, 0), -EINVAL);
    cr_assert_eq(shr_list_count(NULL, &v, &n), -EINVAL);
    cr_assert_eq(shr_list_index(NULL, &v, &n), -EINVAL);
    cr_assert_eq(shr_lease_stats(NULL, NULL), -EINVAL);
    errno = 0;
    cr_assert_null(shr_list_repr(NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(shr_list_format(NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(shr_list_name(NULL));
    cr_assert_null(shr_list_heap(NULL));
    shr_value_release(h, NULL); /* nothing to do */
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    cr_assert_eq(shr_list_get(l, 0, NULL), -EINVAL);
    cr_assert_eq(shr_list_count(l, NULL, &n), -EINVAL);
    cr_assert_eq(shr_list_count(l, &v, NULL), -EINVAL);
    cr_assert_eq(shr_list_index(l, &v, NULL), -EINVAL);
    cr_assert_eq(shr_list_get(l, 0, &g), 0);
    shr_value_release(NULL, &g); /* no heap to release it from: left as it was */
    cr_assert_eq(g.type, SHR_STR);
    shr_value_release(h, &g);
    cr_assert_eq(shr_list_len(l), 1);
    shr_list_close(l);
    done(h);
}

Test(list_api, count_and_index_use_python_equality)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(1), shr_bool(1), shr_float(1.0), shr_str("1"), shr_bytes("1", 1),
                        shr_none(), shr_int(2), shr_float(0.5)};
    shr_list_t *l;
    size_t n, at;
    cr_assert_eq(shr_list_create(h, NULL, in, 8, &l), 0);
    shr_value_t one = shr_int(1);
    cr_assert_eq(shr_list_count(l, &one, &n), 0);
    cr_assert_eq(n, 3, "1 == True == 1.0");
    shr_value_t s = shr_str("1");
    cr_assert_eq(shr_list_count(l, &s, &n), 0);
    cr_assert_eq(n, 1, "str is not bytes");
    cr_assert_eq(shr_list_index(l, &s, &at), 0);
    cr_assert_eq(at, 3);
    shr_value_t none = shr_none();
    cr_assert_eq(shr_list_index(l, &none, &at), 0);
    cr_assert_eq(at, 5);
    shr_value_t half = shr_float(0.5);
    cr_assert_eq(shr_list_index(l, &half, &at), 0);
    cr_assert_eq(at, 7);
    shr_value_t missing = shr_str("nope");
    cr_assert_eq(shr_list_index(l, &missing, &at), SHR_ENOTFOUND);
    shr_value_t big = shr_int(INT64_MAX);
    cr_assert_eq(shr_list_count(l, &big, &n), 0);
    cr_assert_eq(n, 0);
    shr_list_close(l);
    done(h);
}

Test(list_api, grow_and_shrink)
{
    shr_heap_t *h = make_heap();
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "grow", NULL, 0, &l), 0);
    uint64_t base = blocks_in_use(h);
    for (int i = 0; i < 20000; i++) {
        shr_value_t v = i % 3 ? shr_int(i) : shr_str("s");
        cr_assert_eq(shr_list_append(l, &v), 0);
    }
    cr_assert_eq(shr_list_len(l), 20000);
    shr_value_t v = shr_str("first");
    cr_assert_eq(shr_list_insert(l, 0, &v), 0);
    v = shr_str("clamped");
    cr_assert_eq(shr_list_insert(l, 1000000, &v), 0, "insert clamps like Python");
    v = shr_int(-1);
    cr_assert_eq(shr_list_insert(l, -1, &v), 0, "before the last item");
    shr_value_t g;
    cr_assert_eq(shr_list_get(l, 0, &g), 0);
    cr_assert_eq(g.type, SHR_STR);
    shr_value_release(h, &g);
    cr_assert_eq(shr_list_get(l, -2, &g), 0);
    cr_assert_eq(g.u.i, -1);
    cr_assert_eq(shr_list_pop(l, -1, &g), 0);
    cr_assert_eq(g.type, SHR_STR);
    cr_assert_eq(g.u.s.len, 7);
    shr_value_release(h, &g);
    cr_assert_eq(shr_list_delete(l, 0), 0);
    while (shr_list_len(l) > 0) cr_assert_eq(shr_list_pop(l, shr_list_len(l) % 2 ? 0 : -1, NULL), 0);
    cr_assert_eq(shr_list_pop(l, -1, NULL), SHR_EINDEX, "pop from an empty list");
    /* Every string was released; the arrays (the current one and those
     * growth replaced, which lock-free readers may still be in) remain until
     * the list is freed: fewer than 20 for 20,000 items. */
    cr_assert_lt(blocks_in_use(h), base + 20);
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "grow"), 0);
    shr_heap_collect(h);
    cr_assert_leq(blocks_in_use(h), base, "the list and all its arrays were freed");
    done(h);
}

Test(list_api, named_lists_and_leases)
{
    shr_heap_t *h = make_heap();
    uint64_t base = blocks_in_use(h);
    shr_list_t *a, *b;
    shr_value_t in[] = {shr_str("x")};
    cr_assert_eq(shr_list_create(h, "named", in, 1, &a), 0);
    cr_assert_eq(shr_list_create(h, "named", NULL, 0, &b), -EEXIST);
    cr_assert_eq(shr_list_attach(h, "named", &b), 0);
    cr_assert_str_eq(shr_list_name(b), "named");
    shr_value_t v = shr_int(7);
    cr_assert_eq(shr_list_append(a, &v), 0);
    cr_assert_eq(shr_list_len(b), 2, "both handles see one list");
    shr_lease_stats_t gs;
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.leases, 2, "one lease per handle");
    shr_value_t g;
    cr_assert_eq(shr_list_get(b, 0, &g), 0);
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.leases, 3, "a str returned by get holds a lease");
    shr_value_release(h, &g);
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.leases, 2);
    /* The raw root API refuses to touch a name that holds a reference. */
    cr_assert_eq(shr_root_set(h, "named", 4096), SHR_ETYPE);
    cr_assert_eq(shr_root_delete(h, "named"), SHR_ETYPE);
    void *raw = shr_malloc(h, 16);
    cr_assert_eq(shr_root_set(h, "raw", shr_off(h, raw)), 0);
    shr_list_t *c;
    cr_assert_eq(shr_list_attach(h, "raw", &c), SHR_ETYPE);
    cr_assert_eq(shr_list_attach(h, "nothing", &c), -ENOENT);
    cr_assert_eq(shr_list_unlink(h, "raw"), SHR_ETYPE);
    cr_assert_eq(shr_root_delete(h, "raw"), 0);
    shr_free(h, raw);
    cr_assert_eq(shr_list_unlink(h, "named"), 0);
    cr_assert_eq(shr_list_attach(h, "named", &c), -ENOENT);
    cr_assert_eq(shr_list_len(a), 2, "handles keep an unlinked list alive");
    shr_list_close(a);
    shr_list_close(b);
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.leases, 0);
    /* Nothing left but this process's lease table. */
    cr_assert_leq(blocks_in_use(h), base + 1);
    done(h);
}

Test(list_api, nested_lists_and_cycles)
{
    shr_heap_t *h = make_heap();
    shr_list_t *outer, *inner;
    cr_assert_eq(shr_list_create(h, "outer", NULL, 0, &outer), 0);
    shr_value_t in[] = {shr_int(1), shr_str("two")};
    cr_assert_eq(shr_list_create(h, NULL, in, 2, &inner), 0);
    shr_value_t lv = shr_listval(inner);
    cr_assert_eq(shr_list_append(outer, &lv), 0);
    cr_assert_eq(shr_list_append(outer, &lv), 0);
    char *r = shr_list_repr(outer);
    cr_assert_str_eq(r, "ShareableList([[1, 'two'], [1, 'two']], name='outer')");
    free(r);
    r = shr_list_format(outer);
    cr_assert_str_eq(r, "QQ");
    free(r);
    shr_value_t g;
    cr_assert_eq(shr_list_get(outer, 1, &g), 0);
    cr_assert_eq(g.type, SHR_LIST);
    cr_assert_eq(shr_list_len(g.u.list), 2);
    shr_value_t x = shr_int(3);
    cr_assert_eq(shr_list_append(g.u.list, &x), 0);
    cr_assert_eq(shr_list_len(inner), 3, "a nested list is shared, not copied");
    size_t at;
    cr_assert_eq(shr_list_index(outer, &lv, &at), 0);
    cr_assert_eq(at, 0);
    shr_value_release(h, &g);
    /* A cycle prints as Python prints it. */
    shr_value_t ov = shr_listval(outer);
    cr_assert_eq(shr_list_append(inner, &ov), 0);
    r = shr_list_repr(inner);
    cr_assert_str_eq(r, "ShareableList([1, 'two', 3, [[...], [...]]], name=None)");
    free(r);
    cr_assert_eq(shr_list_pop(inner, -1, NULL), 0); /* break the cycle */
    shr_list_close(inner);
    shr_list_close(outer);
    cr_assert_eq(shr_list_unlink(h, "outer"), 0);
    done(h);
}

Test(list_api, float_repr_is_pythons)
{
    struct { double x; const char *want; } cases[] = {
        {2.5, "2.5"}, {1.0, "1.0"}, {0.1, "0.1"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
        {1.5e-5, "1.5e-05"}, {0.0001, "0.0001"}, {-0.0, "-0.0"}, {123456789.125, "123456789.125"},
        {1.0 / 3, "0.3333333333333333"}, {1e300 * 1e10, "inf"}, {-2.5e-300, "-2.5e-300"}};
    shr_heap_t *h = make_heap();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        shr_value_t v = shr_float(cases[i].x);
        shr_list_t *l;
        cr_assert_eq(shr_list_create(h, NULL, &v, 1, &l), 0);
        char *r = shr_list_repr(l), want[128];
        snprintf(want, sizeof want, "ShareableList([%s], name=None)", cases[i].want);
        cr_assert_str_eq(r, want);
        free(r);
        shr_list_close(l);
    }
    done(h);
}

/* format and repr against the real stdlib, when python3 is here. */
Test(list_api, format_and_repr_match_the_stdlib)
{
    FILE *p = popen("python3 -c \""
                    "from multiprocessing.shared_memory import ShareableList\n"
                    "sl = ShareableList([1, 'a', b'x\\\\x00y', None, True, 2.5, \\\"it's\\\", 1e16, 0.1, -7, "
                    "'abcdefgh', b'', '', 'tab\\\\there', 'q\\\"uote'])\n"
                    "print(sl.format); print(repr(sl).replace(repr(sl.shm.name), 'NAME'))\n"
                    "sl.shm.close(); sl.shm.unlink()\" 2>/dev/null",
                    "r");
    char fmt[256] = "", repr[1024] = "";
    if (!p || !fgets(fmt, sizeof fmt, p) || !fgets(repr, sizeof repr, p)) {
        if (p) pclose(p);
        cr_skip_test("python3 with multiprocessing.shared_memory not available");
    }
    pclose(p);
    fmt[strcspn(fmt, "\n")] = 0;
    repr[strcspn(repr, "\n")] = 0;
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(1), shr_str("a"), shr_bytes("x\0y", 3), shr_none(), shr_bool(1),
                        shr_float(2.5), shr_str("it's"), shr_float(1e16), shr_float(0.1), shr_int(-7),
                        shr_str("abcdefgh"), shr_bytes("", 0), shr_str(""), shr_str("tab\there"),
                        shr_str("q\"uote")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "NAME", in, sizeof in / sizeof in[0], &l), 0);
    char *f = shr_list_format(l), *r = shr_list_repr(l);
    cr_assert_str_eq(f, fmt, "format differs from the stdlib's");
    /* Our name is quoted as Python quotes it: 'NAME'. */
    char want[1100];
    char *at = strstr(repr, "name=NAME");
    cr_assert_not_null(at, "stdlib repr: %s", repr);
    snprintf(want, sizeof want, "%.*sname='NAME'%s", (int)(at - repr), repr, at + 9);
    cr_assert_str_eq(r, want);
    free(f);
    free(r);
    shr_list_close(l);
    shr_list_unlink(h, "NAME");
    done(h);
}
