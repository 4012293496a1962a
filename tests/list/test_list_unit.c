/* Objects and lists, white box: try_incref under a racing writer, a list
 * lock stolen from a dead owner with its half-done set undone, leases. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "list.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(list_unit, .fini = fini, .timeout = 120);

static shr_heap_t *make_heap(void)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    return h;
}

/* ---- try_incref ------------------------------------------------------------ */

typedef struct {
    shr_heap_t *h;
    _Atomic uint64_t *slot;
    atomic_int stop, errors;
    atomic_long reads;
} race_t;

static void *replacer(void *arg)
{
    race_t *r = arg;
    char buf[32];
    for (unsigned i = 0; !atomic_load(&r->stop); i++) {
        /* Every str carries its length and a checksum-like pattern. */
        int n = snprintf(buf, sizeof buf, "s%08u-%08u", i, i ^ 0x5a5a5a5au);
        strobj_t *s = shr__str_new(r->h, SHR_TYPE_STR, buf, (size_t)n);
        if (!s) continue;
        uint64_t old = atomic_exchange(r->slot, shr__off(r->h, s)); /* publish, then release */
        if (old) shr__decref(r->h, obj_at(r->h, old));
    }
    return NULL;
}

static void *taker(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->stop)) {
        shr_off_t off = shr__try_incref(r->h, r->slot);
        if (!off) continue;
        strobj_t *s = shr__ptr(r->h, off);
        unsigned a, b;
        if (s->ob.type != SHR_TYPE_STR || s->len != strlen(s->data) || s->len < 18 || sscanf(s->data, "s%8u-%u", &a, &b) != 2 ||
            b != (a ^ 0x5a5a5a5au)) {
            if (atomic_fetch_add(&r->errors, 1) < 3)
                fprintf(stderr, "bad object: type %u len %llu refcnt %llu data %.18s\n", s->ob.type,
                        (unsigned long long)s->len, (unsigned long long)s->ob.refcnt, s->data);
        }
        shr__decref(r->h, &s->ob);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

Test(list_unit, try_incref_never_takes_a_dead_object)
{
    shr_heap_t *h = make_heap();
    shr__list_types_register();
    race_t r = {.h = h};
    r.slot = shr_calloc(h, 1, sizeof *r.slot);
    pthread_t w, t[2];
    pthread_create(&w, NULL, replacer, &r);
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, taker, &r);
    shr_test_sleep_ms(700);
    atomic_store(&r.stop, 1);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    cr_assert_gt(atomic_load(&r.reads), 1000);
    cr_assert_eq(atomic_load(&r.errors), 0, "a reader held a dead or reused object");
    uint64_t last = atomic_load(r.slot);
    cr_assert_eq(obj_at(h, last)->refcnt, 1, "every taken reference was given back");
    shr__decref(h, obj_at(h, last));
    shr_free(h, (void *)r.slot);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- a dead owner's lock ----------------------------------------------------- */

/* A child takes the list's lock and dies half way through a set of item
 * `index` to (tag, val): sequence odd, undo record written, item overwritten. */
typedef struct { shr_list_t *l; uint64_t index, tag, val; } half_set_t;

static int die_mid_set(void *arg)
{
    half_set_t *hs = arg;
    shr_heap_t *h = shr_list_heap(hs->l);
    listobj_t *lo = hs->l->obj;
    if (shr__list_lock(h, lo) != 0) return 1;
    items_t *a = shr__ptr(h, lo->items);
    lo->seq++;
    lo->op_index = hs->index;
    lo->undo_tag = a->it[hs->index].tag;
    lo->undo_val = a->it[hs->index].val;
    atomic_store(&lo->op, LIST_OP_SET);
    a->it[hs->index].tag = hs->tag;
    a->it[hs->index].val = hs->val;
    _exit(0);
}

Test(list_unit, lock_of_a_dead_owner_is_stolen_and_its_set_undone)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(1), shr_str("two"), shr_int(3)};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 3, &l), 0);
    half_set_t hs = {l, 1, SHR_STR, 8}; /* garbage: 8 is not an object */
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_set, &hs)), 0);
    cr_assert_neq(l->obj->lock, 0, "the dead child still owns the lock");
    shr_value_t v;
    cr_assert_eq(shr_list_get(l, 1, &v), 0, "the lock was stolen");
    cr_assert_eq(v.type, SHR_STR);
    cr_assert_eq(v.u.s.len, 3);
    cr_assert_eq(memcmp(v.u.s.data, "two", 3), 0, "the half-done set was undone");
    shr_value_release(h, &v);
    cr_assert_eq(l->obj->op, LIST_OP_NONE);
    cr_assert_eq(l->obj->seq % 2, 0, "the sequence is even again");
    shr_list_close(l);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- leases ----------------------------------------------------------------- */

Test(list_unit, lease_table_grows_and_counts)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("x")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0);
    static shr_value_t got[1000];
    for (int i = 0; i < 1000; i++) cr_assert_eq(shr_list_get(l, 0, &got[i]), 0);
    cr_assert_eq(shr__lease_count(h), 1001, "one entry, counted 1000 times, and the handle");
    strobj_t *s = shr__ptr(h, got[0].ref_);
    cr_assert_eq(s->ob.refcnt, 1001, "the list's reference and 1000 gets");
    for (int i = 0; i < 1000; i++) shr_value_release(h, &got[i]);
    cr_assert_eq(s->ob.refcnt, 1);
    cr_assert_eq(shr__lease_remove(h, 4096), -ENOENT, "removing what is not held is refused");
    shr_list_close(l);
    cr_assert_eq(shr__lease_count(h), 0);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- dealloc after a dead writer; deep nesting ------------------------------ */

Test(list_unit, dealloc_undoes_a_dead_writers_set)
{
    shr_heap_t *h = make_heap();
    shr_value_t s = shr_str("shared by two lists");
    shr_list_t *a, *b;
    cr_assert_eq(shr_list_create(h, NULL, &s, 1, &a), 0);
    /* b holds the same string object as a. */
    shr_value_t got;
    cr_assert_eq(shr_list_get(a, 0, &got), 0);
    strobj_t *so = shr__ptr(h, got.ref_);
    shr_value_release(h, &got);
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &b), 0);
    items_t *bi = shr__ptr(h, b->obj->items);
    shr__incref(&so->ob);
    bi->it[0].tag = SHR_STR;
    bi->it[0].val = shr__off(h, so);
    bi->len = 1;
    cr_assert_eq(so->ob.refcnt, 2);
    half_set_t hs = {a, 0, SHR_INT, 5}; /* the new value, already stored */
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_set, &hs)), 0);
    shr_list_close(a); /* the last reference: dealloc with a SET in flight */
    cr_assert_eq(so->ob.refcnt, 1, "the string b still holds keeps its reference");
    shr_value_t v;
    cr_assert_eq(shr_list_get(b, 0, &v), 0);
    cr_assert_eq(v.u.s.len, 19);
    shr_value_release(h, &v);
    shr_list_close(b);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(list_unit, a_deep_chain_of_lists_is_freed_without_deep_recursion)
{
    shr_heap_t *h = make_heap();
    shr_list_t *head;
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &head), 0);
    /* 200,000 lists, each holding the previous one: a recursive dealloc
     * would need a stack frame per level. */
    for (int i = 0; i < 200000; i++) {
        shr_list_t *outer;
        shr_value_t v = shr_listval(head);
        cr_assert_eq(shr_list_create(h, NULL, &v, 1, &outer), 0);
        shr_list_close(head);
        head = outer;
    }
    shr_list_close(head);
    uint64_t n = shr_test_blocks_in_use(h);
    cr_assert_leq(n, 1, "all freed but the lease table (%llu blocks)", (unsigned long long)n);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- a dead writer in the middle of an in-place shift ---------------------- */

static int die_mid_delete(void *arg)
{
    shr_list_t *l = arg;
    shr_heap_t *h = shr_list_heap(l);
    listobj_t *lo = l->obj;
    if (shr__list_lock(h, lo) != 0) return 1;
    items_t *a = shr__ptr(h, lo->items);
    /* Deleting item 2 of 10: the record, then three of the seven moves. */
    lo->seq++;
    lo->op_index = 2;
    lo->op_len = 10;
    lo->undo_tag = a->it[2].tag;
    lo->undo_val = a->it[2].val;
    lo->op_progress = 2;
    lo->op = LIST_OP_DELETE;
    for (uint64_t k = 2; k < 5; k++) {
        a->it[k].tag = a->it[k + 1].tag;
        a->it[k].val = a->it[k + 1].val;
        lo->op_progress = k + 1;
    }
    a->it[5].tag = a->it[6].tag; /* and one more move, its progress not stored */
    a->it[5].val = a->it[6].val;
    _exit(0);
}

Test(list_unit, a_dead_writers_delete_is_finished)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[10];
    for (int i = 0; i < 10; i++) in[i] = i == 2 ? shr_str("removed") : shr_int(i * 10);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 10, &l), 0);
    cr_assert_eq(shr_test_wait(shr_test_fork(die_mid_delete, l)), 0);
    cr_assert_eq(shr_list_len(l), 10, "len changes only when the shift is done");
    shr_value_t v = shr_int(-1);
    cr_assert_eq(shr_list_append(l, &v), 0, "the lock is stolen and the delete finished");
    cr_assert_eq(shr_list_len(l), 10, "nine items left and one appended");
    int64_t want[] = {0, 10, 30, 40, 50, 60, 70, 80, 90, -1};
    for (int i = 0; i < 10; i++) {
        shr_value_t g;
        cr_assert_eq(shr_list_get(l, i, &g), 0);
        cr_assert_eq(g.type, SHR_INT);
        cr_assert_eq(g.u.i, want[i], "item %d: %lld, want %lld", i, (long long)g.u.i, (long long)want[i]);
    }
    shr_list_close(l);
    uint64_t n = shr_test_blocks_in_use(h);
    cr_assert_leq(n, 1, "the removed string was released by the repair (%llu blocks)", (unsigned long long)n);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
