/* Out of memory, SQLite's way (src/test_malloc.c): for each list operation,
 * fail its 1st allocation, then its 2nd, ..., until it makes no more, and
 * check after every failure that the call returned -ENOMEM and changed
 * nothing a caller can observe: the lists' contents, every refcount, the
 * leases this process holds, the roots, the blocks in use. Objects are
 * counted by fault point obj.alloc, every other allocation (item arrays,
 * lease tables, handles, repr buffers) by list.alloc; each point is walked in
 * turn, each with this process's lease table empty and at the edge of
 * growing. Debug builds only (the points are compiled out of release). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "list.h"

static void fini(void)
{
    shr_fault_disarm(NULL);
    shr_test_cleanup();
}
TestSuite(list_oom, .fini = fini, .timeout = 300);

#define NAMED "oom_named"

/* The world an operation runs in, and what it hands back on success. */
typedef struct fix {
    shr_heap_t *h;
    shr_list_t *l;        /* [None, True, 7, 2.5, 'str', b'bytes', inner, 'tail']: full (cap 8) */
    shr_list_t *inner;    /* ['x'], named NAMED */
    shr_list_t *spare;    /* a second handle on inner, for close */
    shr_off_t pad[64];    /* strs leased to bring the lease table to its edge */
    int npad;
    /* results */
    shr_value_t got;
    shr_list_t *made;
    char *text;
} fix_t;

static void lease_to_the_edge(fix_t *f)
{
    /* Lease fresh strs until the next new entry makes the table grow (LE1). */
    lease_area_t *a = shr__seg_proc_area(f->h, SHR_LAYER_GC, f->h->proc);
    for (;;) {
        lease_table_t *t = shr__ptr(f->h, a->table);
        if ((t->used + 1) * 2 > t->cap) break;
        cr_assert_lt(f->npad, 64);
        strobj_t *s = shr__str_new(f->h, SHR_TYPE_STR, "pad", 3);
        cr_assert_not_null(s);
        f->pad[f->npad++] = shr__off(f->h, s);
        cr_assert_eq(shr__lease_add(f->h, shr__off(f->h, s)), 0);
    }
}

static void setup(fix_t *f, bool edge)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &f->h), 0);
    shr_value_t x = shr_str("x");
    cr_assert_eq(shr_list_create(f->h, NAMED, &x, 1, &f->inner), 0);
    cr_assert_eq(shr_list_attach(f->h, NAMED, &f->spare), 0);
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_int(7), shr_float(2.5), shr_str("str"),
                        shr_bytes("bytes", 5), shr_listval(f->inner), shr_str("tail")};
    cr_assert_eq(shr_list_create(f->h, NULL, in, 8, &f->l), 0);
    if (edge) lease_to_the_edge(f);
}

static void cleanup_results(fix_t *f)
{
    if (f->got.ref_) shr_value_release(f->h, &f->got);
    memset(&f->got, 0, sizeof f->got);
    if (f->made) shr_list_close(f->made);
    f->made = NULL;
    shr_list_unlink(f->h, "oom_new"); /* create named's name, if it made it */
    free(f->text);
    f->text = NULL;
}

static void teardown(fix_t *f)
{
    cleanup_results(f);
    for (int i = 0; i < f->npad; i++) {
        cr_assert_eq(shr__lease_remove(f->h, f->pad[i]), 0);
        shr__decref(f->h, obj_at(f->h, f->pad[i]));
    }
    if (f->spare) shr_list_close(f->spare);
    shr_list_close(f->l);
    shr_list_close(f->inner);
    shr_list_unlink(f->h, NAMED);
    cr_assert_leq(shr_test_blocks_in_use(f->h), 1, "everything freed but the lease table");
    cr_assert_eq(shr_heap_check_report(f->h, stderr), 0);
    shr_heap_close(f->h);
}

/* ---- what a caller can observe ---------------------------------------------- */

typedef struct seen {
    char repr[256], inner_repr[64];
    uint64_t offs[64], refs[64]; /* every object reachable, and its refcount */
    int nobj;
    uint64_t leases, blocks, lease_entries;
    int named, named_new; /* the roots: inner's name, and the name create makes */
} seen_t;

static void add_obj(seen_t *s, shr_heap_t *h, shr_off_t off)
{
    cr_assert_lt(s->nobj, 64);
    s->offs[s->nobj] = off;
    s->refs[s->nobj++] = obj_at(h, off)->refcnt;
}

static void add_items(seen_t *s, shr_heap_t *h, shr_list_t *l)
{
    add_obj(s, h, l->off);
    items_t *a = shr__ptr(h, l->obj->items);
    for (uint64_t i = 0; i < a->len; i++)
        if (is_ref(a->it[i].tag)) add_obj(s, h, a->it[i].val);
}

/* The list's items as text, read directly: an observer that takes no lease
 * (shr_list_repr would, and change the lease table it observes). */
static void describe(shr_heap_t *h, shr_list_t *l, char *out, size_t size)
{
    items_t *a = shr__ptr(h, l->obj->items);
    size_t o = (size_t)snprintf(out, size, "len %llu:", (unsigned long long)a->len);
    for (uint64_t i = 0; i < a->len && o < size; i++) {
        uint64_t tag = a->it[i].tag, val = a->it[i].val;
        if (tag == SHR_STR || tag == SHR_BYTES) {
            strobj_t *so = shr__ptr(h, val);
            o += (size_t)snprintf(out + o, size - o, " %llu'%.*s'", (unsigned long long)tag, (int)so->len, so->data);
        } else {
            o += (size_t)snprintf(out + o, size - o, " %llu:%llx", (unsigned long long)tag, (unsigned long long)val);
        }
    }
    cr_assert_lt(o, size);
}

static void observe(fix_t *f, seen_t *s)
{
    memset(s, 0, sizeof *s);
    shr_fault_disarm(NULL);
    describe(f->h, f->l, s->repr, sizeof s->repr);
    describe(f->h, f->inner, s->inner_repr, sizeof s->inner_repr);
    add_items(s, f->h, f->l);
    add_items(s, f->h, f->inner);
    for (int i = 0; i < f->npad; i++) add_obj(s, f->h, f->pad[i]);
    shr_lease_stats_t st;
    cr_assert_eq(shr_lease_stats(f->h, &st), 0);
    s->leases = st.leases;
    s->lease_entries = st.table_entries;
    s->blocks = shr_test_blocks_in_use(f->h);
    shr_off_t off;
    s->named = shr_root_get(f->h, NAMED, &off) == 0;
    s->named_new = shr_root_get(f->h, "oom_new", &off) == 0;
}

static void same(const seen_t *a, const seen_t *b, const char *what, const char *point, uint64_t n)
{
#define WHERE "%s, allocation %llu of %s failed: "
#define ARGS what, (unsigned long long)n, point
    cr_assert_str_eq(a->repr, b->repr, WHERE "the list changed", ARGS);
    cr_assert_str_eq(a->inner_repr, b->inner_repr, WHERE "the inner list changed", ARGS);
    cr_assert_eq(a->nobj, b->nobj, WHERE "objects changed", ARGS);
    for (int i = 0; i < a->nobj; i++) {
        cr_assert_eq(a->offs[i], b->offs[i], WHERE "object %d replaced", ARGS, i);
        cr_assert_eq(a->refs[i], b->refs[i], WHERE "object %d: refcount %llu, was %llu", ARGS, i,
                     (unsigned long long)b->refs[i], (unsigned long long)a->refs[i]);
    }
    cr_assert_eq(a->leases, b->leases, WHERE "leases %llu, were %llu", ARGS, (unsigned long long)b->leases,
                 (unsigned long long)a->leases);
    cr_assert_eq(a->blocks, b->blocks, WHERE "blocks in use %llu, were %llu", ARGS,
                 (unsigned long long)b->blocks, (unsigned long long)a->blocks);
    cr_assert_eq(a->named, b->named, WHERE "the roots changed", ARGS);
    cr_assert_eq(a->named_new, b->named_new, WHERE "a name was left behind", ARGS);
#undef WHERE
#undef ARGS
}

/* ---- the walk ------------------------------------------------------------------ */

typedef int (*op_fn)(fix_t *f);

/* Fail allocation n = 1, 2, ... of `point` in op until op succeeds; return
 * how many allocations of that kind it made. */
static uint64_t walk(const char *what, op_fn op, const char *point, bool edge)
{
    fix_t f;
    setup(&f, edge);
    uint64_t n;
    for (n = 1;; n++) {
        cr_assert_lt(n, 64, "%s: no end to its allocations", what);
        seen_t before, after;
        observe(&f, &before);
        cr_assert_eq(shr_fault_arm(point, n, SHR_FAULT_FAIL), 0);
        int rc = op(&f);
        int64_t hits = shr_fault_hits(point);
        shr_fault_disarm(NULL);
        if (rc == 0) {
            cr_assert_lt(hits, (int64_t)n, "%s succeeded although allocation %llu of %s failed", what,
                         (unsigned long long)n, point);
            cleanup_results(&f);
            break;
        }
        cr_assert_eq(rc, -ENOMEM, "%s, allocation %llu of %s failed: rc %d", what, (unsigned long long)n, point, rc);
        cr_assert_eq(hits, (int64_t)n, "%s stopped at its first failed allocation", what);
        cr_assert_eq(f.got.ref_, 0, "%s: a failed call hands out no reference", what);
        cr_assert_null(f.made);
        cr_assert_null(f.text);
        observe(&f, &after);
        same(&before, &after, what, point, n);
    }
    teardown(&f);
    return n - 1;
}

/* ---- the operations -------------------------------------------------------------- */

static int errno_rc(void *p) { return p ? 0 : -errno; }

static int op_create(fix_t *f)
{
    shr_value_t in[] = {shr_none(), shr_bool(0), shr_int(1), shr_float(0.5), shr_str("a"),
                        shr_bytes("b", 1), shr_listval(f->inner)};
    return shr_list_create(f->h, NULL, in, 7, &f->made);
}
static int op_create_big(fix_t *f)
{
    shr_value_t in[20];
    for (int i = 0; i < 20; i++) in[i] = i % 2 ? shr_str("s") : shr_int(i);
    return shr_list_create(f->h, NULL, in, 20, &f->made);
}
static int op_create_named(fix_t *f)
{
    shr_value_t in[] = {shr_str("a")};
    return shr_list_create(f->h, "oom_new", in, 1, &f->made);
}
static int set_to(fix_t *f, shr_value_t v) { return shr_list_set(f->l, 4, &v); }
static int op_set_none(fix_t *f) { return set_to(f, shr_none()); }
static int op_set_bool(fix_t *f) { return set_to(f, shr_bool(1)); }
static int op_set_int(fix_t *f) { return set_to(f, shr_int(-3)); }
static int op_set_float(fix_t *f) { return set_to(f, shr_float(1e300)); }
static int op_set_str(fix_t *f) { return set_to(f, shr_str("a longer string than before")); }
static int op_set_bytes(fix_t *f) { return set_to(f, shr_bytes("\0\1\2", 3)); }
static int op_set_list(fix_t *f) { return set_to(f, shr_listval(f->inner)); }
static int op_append_str(fix_t *f)
{
    shr_value_t v = shr_str("appended");
    return shr_list_append(f->l, &v); /* the list is full: it grows */
}
static int op_append_int(fix_t *f)
{
    shr_value_t v = shr_int(8);
    return shr_list_append(f->l, &v);
}
static int op_insert_str(fix_t *f)
{
    shr_value_t v = shr_str("inserted");
    return shr_list_insert(f->l, 0, &v); /* grows, then shifts */
}
static int op_pop_str(fix_t *f) { return shr_list_pop(f->l, 4, &f->got); }
static int op_pop_last(fix_t *f) { return shr_list_pop(f->l, -1, &f->got); }
static int op_pop_list(fix_t *f)
{
    int rc = shr_list_pop(f->l, 6, &f->got);
    if (rc == 0) f->made = f->got.u.list, f->got.ref_ = 0;
    return rc;
}
static int op_pop_int(fix_t *f) { return shr_list_pop(f->l, 2, &f->got); }
static int op_delete(fix_t *f) { return shr_list_delete(f->l, 4); }
static int op_get_str(fix_t *f) { return shr_list_get(f->l, 4, &f->got); }
static int op_get_bytes(fix_t *f) { return shr_list_get(f->l, 5, &f->got); }
static int op_get_list(fix_t *f)
{
    int rc = shr_list_get(f->l, 6, &f->got);
    if (rc == 0) f->made = f->got.u.list, f->got.ref_ = 0;
    return rc;
}
static int op_get_int(fix_t *f) { return shr_list_get(f->l, 2, &f->got); }
static int op_repr(fix_t *f) { return errno_rc(f->text = shr_list_repr(f->l)); }
static int op_format(fix_t *f) { return errno_rc(f->text = shr_list_format(f->l)); }
static int op_count(fix_t *f)
{
    size_t n;
    shr_value_t v = shr_str("str");
    return shr_list_count(f->l, &v, &n);
}
static int op_index(fix_t *f)
{
    size_t n;
    shr_value_t v = shr_float(7.0);
    return shr_list_index(f->l, &v, &n);
}
static int op_attach(fix_t *f) { return shr_list_attach(f->h, NAMED, &f->made); }
static int op_close(fix_t *f)
{
    int rc = shr_list_close(f->spare);
    f->spare = NULL;
    return rc;
}

static const struct {
    const char *name;
    op_fn op;
} ops[] = {
    {"create", op_create},       {"create of 20", op_create_big}, {"create named", op_create_named},
    {"set None", op_set_none},   {"set bool", op_set_bool},       {"set int", op_set_int},
    {"set float", op_set_float}, {"set str", op_set_str},         {"set bytes", op_set_bytes},
    {"set list", op_set_list},   {"append str", op_append_str},   {"append int", op_append_int},
    {"insert str", op_insert_str}, {"pop str", op_pop_str},       {"pop last", op_pop_last},
    {"pop list", op_pop_list},   {"pop int", op_pop_int},         {"delete", op_delete},
    {"get str", op_get_str},     {"get bytes", op_get_bytes},     {"get list", op_get_list},
    {"get int", op_get_int},     {"repr", op_repr},               {"format", op_format},
    {"count", op_count},         {"index", op_index},             {"attach", op_attach},
    {"close", op_close},
};

Test(list_oom, every_failed_allocation_of_every_operation_changes_nothing)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out");
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        for (int edge = 0; edge < 2; edge++) {
            uint64_t o = walk(ops[i].name, ops[i].op, "obj.alloc", edge);
            uint64_t a = walk(ops[i].name, ops[i].op, "list.alloc", edge);
            total += o + a;
            if (getenv("SHR_TEST_VERBOSE"))
                fprintf(stderr, "%-14s lease table %s: %llu object and %llu other allocations\n", ops[i].name,
                        edge ? "at its edge" : "roomy", (unsigned long long)o, (unsigned long long)a);
        }
    }
    cr_assert_gt(total, 60, "the walk failed %llu allocations", (unsigned long long)total);
}

/* The walk sees what it should: allocations the operations are known to make. */
Test(list_oom, the_walk_counts_each_operations_allocations)
{
    if (!shr_fault_available()) cr_skip_test("fault points are compiled out");
    cr_assert_eq(walk("create", op_create, "obj.alloc", false), 3, "the list, 'a' and b'b'");
    cr_assert_eq(walk("create", op_create, "list.alloc", false), 2, "its items and its handle");
    cr_assert_eq(walk("create", op_create, "list.alloc", true), 3, "and the lease table's growth");
    cr_assert_eq(walk("append str", op_append_str, "list.alloc", false), 1, "the grown array");
    cr_assert_eq(walk("pop str", op_pop_str, "list.alloc", true), 1, "the lease table, before the pop commits");
    cr_assert_eq(walk("get list", op_get_list, "list.alloc", false), 1, "the handle");
    cr_assert_eq(walk("count", op_count, "list.alloc", false), 0);
    cr_assert_eq(walk("delete", op_delete, "obj.alloc", false), 0);
}
