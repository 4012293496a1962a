/* Objects and lists, white box: try_incref under a racing writer; crashes
 * stopped at the list's real commit points (fault points, debug builds) and
 * what the survivors find; sizes that overflow; deep chains. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"
#include "list.h"

static pid_t dstopped, dwriter; /* children killed at the end even if the test failed */

static void fini(void)
{
    if (dstopped > 0) kill(dstopped, SIGKILL);
    if (dwriter > 0) kill(dwriter, SIGKILL);
    dstopped = dwriter = 0;
    shr_fault_disarm(NULL);
    unsetenv("SHARENA_LOCK_TIMEOUT_MS");
    shr_test_cleanup();
}
/* Bounded lock waits: a busy machine may make a contended wait take seconds;
 * these tests check behaviour, not time. */
static void init(void) { setenv("SHARENA_LOCK_TIMEOUT_MS", "60000", 1); }
TestSuite(list_unit, .init = init, .fini = fini, .timeout = 120);

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

/* ---- crashes at the list's commit points ---------------------------------- */

#define NEED_FAULTS()                                                                  \
    do {                                                                               \
        if (!shr_fault_available()) cr_skip_test("fault points are compiled out");     \
    } while (0)

/* A child arms `point` to kill it on its nth hit, then runs op on the list. */
typedef struct {
    shr_list_t *l;
    const char *point;
    uint64_t nth;
    int (*op)(shr_list_t *l);
} crash_t;

static int crash_child(void *arg)
{
    crash_t *c = arg;
    if (shr_fault_arm(c->point, c->nth, SHR_FAULT_KILL) != 0) return 2;
    c->op(c->l);
    return 1; /* not reached when the point fires */
}

static void crash_in(shr_list_t *l, const char *point, uint64_t nth, int (*op)(shr_list_t *))
{
    crash_t c = {l, point, nth, op};
    cr_assert_eq(shr_test_wait(shr_test_fork(crash_child, &c)), 128 + SIGKILL, "killed at %s", point);
}

static int set_1_to_str(shr_list_t *l)
{
    shr_value_t v = shr_str("new value");
    return shr_list_set(l, 1, &v);
}

static uint64_t refcnt_of_item(shr_list_t *l, uint64_t i)
{
    items_t *a = shr__ptr(shr_list_heap(l), l->obj->items);
    return obj_at(shr_list_heap(l), a->it[i].val)->refcnt;
}

Test(list_unit, lock_of_a_dead_owner_is_stolen_and_its_set_undone)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(1), shr_str("two"), shr_int(3)};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 3, &l), 0);
    uint64_t before = shr_test_blocks_in_use(h);
    crash_in(l, "list.set.commit", 1, set_1_to_str);
    cr_assert_neq(l->obj->lock, 0, "the dead child still owns the lock");
    cr_assert_eq(l->obj->op, LIST_OP_SET, "and its set is in flight");
    shr_value_t v;
    cr_assert_eq(shr_list_get(l, 1, &v), 0, "the lock was stolen");
    cr_assert_eq(v.type, SHR_STR);
    cr_assert_eq(v.u.s.len, 3);
    cr_assert_eq(memcmp(v.u.s.data, "two", 3), 0, "the half-done set was undone");
    shr_value_release(h, &v);
    cr_assert_eq(refcnt_of_item(l, 1), 1, "the old string holds the list's reference only");
    cr_assert_eq(l->obj->op, LIST_OP_NONE);
    cr_assert_eq(l->obj->seq % 2, 0, "the sequence is even again");
    cr_assert_eq(shr_test_blocks_in_use(h), before + 1, "the dead writer's new string leaks, nothing else");
    shr_list_close(l);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- dealloc after a dead writer; deep nesting ------------------------------ */

static int set_0_to_int(shr_list_t *l)
{
    shr_value_t v = shr_int(5);
    return shr_list_set(l, 0, &v);
}

Test(list_unit, dealloc_undoes_a_dead_writers_set)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t s = shr_str("shared by two lists");
    shr_list_t *a, *b;
    cr_assert_eq(shr_list_create(h, NULL, &s, 1, &a), 0);
    /* b holds the same string object as a. */
    shr_value_t got;
    cr_assert_eq(shr_list_get(a, 0, &got), 0);
    strobj_t *so = shr__ptr(h, got.ref_);
    cr_assert_eq(shr_list_create(h, NULL, NULL, 0, &b), 0);
    shr_value_t bv = {.type = SHR_LIST, .u.list = b};
    (void)bv;
    items_t *bi = shr__ptr(h, b->obj->items);
    shr__incref(&so->ob);
    bi->it[0].tag = SHR_STR;
    bi->it[0].val = shr__off(h, so);
    bi->len = 1;
    shr_value_release(h, &got);
    cr_assert_eq(so->ob.refcnt, 2);
    crash_in(a, "list.set.commit", 1, set_0_to_int);
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

static int delete_2(shr_list_t *l) { return shr_list_delete(l, 2); }

Test(list_unit, a_dead_writers_delete_is_finished)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[10];
    for (int i = 0; i < 10; i++) in[i] = i == 2 ? shr_str("removed") : shr_int(i * 10);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 10, &l), 0);
    /* Deleting item 2 of 10: killed after three of its seven moves. */
    crash_in(l, "list.shift", 3, delete_2);
    cr_assert_eq(l->obj->op, LIST_OP_DELETE);
    cr_assert_eq(l->obj->op_progress, 5, "three moves done");
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

static int insert_str_at_1(shr_list_t *l)
{
    shr_value_t v = shr_str("inserted");
    return shr_list_insert(l, 1, &v);
}

Test(list_unit, a_dead_writers_insert_is_finished)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[6];
    for (int i = 0; i < 6; i++) in[i] = shr_int(i);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 6, &l), 0);
    crash_in(l, "list.shift", 2, insert_str_at_1); /* two of five moves */
    cr_assert_eq(l->obj->op, LIST_OP_INSERT);
    cr_assert_eq(shr_list_len(l), 6);
    shr_value_t g;
    cr_assert_eq(shr_list_get(l, 1, &g), 0, "the lock is stolen and the insert finished");
    cr_assert_eq(g.type, SHR_STR);
    cr_assert_eq(g.u.s.len, 8);
    shr_value_release(h, &g);
    cr_assert_eq(refcnt_of_item(l, 1), 1, "the inserted string holds the list's reference only");
    cr_assert_eq(shr_list_len(l), 7);
    int64_t want[] = {0, -1, 1, 2, 3, 4, 5};
    for (int i = 0; i < 7; i++) {
        if (i == 1) continue;
        cr_assert_eq(shr_list_get(l, i, &g), 0);
        cr_assert_eq(g.u.i, want[i], "item %d", i);
    }
    shr_list_close(l);
    cr_assert_leq(shr_test_blocks_in_use(h), 1, "nothing leaked but the lease table");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- growth, dealloc ------------------------------------------------------------ */

static int append_int(shr_list_t *l)
{
    shr_value_t v = shr_int(99);
    return shr_list_append(l, &v);
}

Test(list_unit, a_growth_that_died_before_publishing_is_mended)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[8];
    for (int i = 0; i < 8; i++) in[i] = shr_int(i);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 8, &l), 0); /* full: cap 8 */
    uint64_t before = shr_test_blocks_in_use(h);
    crash_in(l, "list.grow.swap", 1, append_int);
    cr_assert_eq(l->obj->retired, l->obj->items, "the published array is on the retired chain too");
    cr_assert_eq(append_int(l), 0, "the lock is stolen, the chain mended, and the append grows");
    cr_assert_eq(shr_list_len(l), 9);
    shr_value_t g;
    cr_assert_eq(shr_list_get(l, 8, &g), 0);
    cr_assert_eq(g.u.i, 99);
    /* The dead child's new array leaks; the old one is retired once. */
    cr_assert_eq(shr_test_blocks_in_use(h), before + 2, "the new array, and the dead child's one");
    shr_list_close(l); /* dealloc frees the array and each retired one once */
    cr_assert_eq(shr_test_blocks_in_use(h), before - 1,
                 "the list and both its arrays freed once; only the dead child's array leaks");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

static int unlink_named(shr_list_t *l)
{
    return shr_list_unlink(shr_list_heap(l), "dealloc_victim");
}

Test(list_unit, a_death_in_the_middle_of_a_dealloc_frees_nothing_twice)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_str("a"), shr_str("b"), shr_str("c")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "dealloc_victim", in, 3, &l), 0);
    shr_list_t copy = *l; /* for the child: names the heap, holds nothing */
    cr_assert_eq(shr_list_close(l), 0); /* only the name holds the list now */
    uint64_t before = shr_test_blocks_in_use(h);
    /* The child drops the last reference; its dealloc dies after releasing
     * "a" and detaching "b". */
    crash_in(&copy, "obj.dealloc", 2, unlink_named);
    cr_assert_eq(shr_list_attach(h, "dealloc_victim", &l), -ENOENT, "the name went first");
    cr_assert_eq(shr_test_blocks_in_use(h), before - 1, "\"a\" freed; the rest leaks, nothing freed twice");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- sizes computed from counts ---------------------------------------------- */

Test(list_unit, a_count_whose_size_overflows_is_refused_before_anything_is_written)
{
    shr_heap_t *h = make_heap();
    shr_value_t in[] = {shr_int(1), shr_int(2), shr_int(3), {.type = (shr_type_t)99}};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 1, &l), 0); /* this thread's lease table */
    shr_list_close(l);
    /* Neighbours in the size class the wrapped size falls in (48 bytes). */
    enum { N = 64 };
    unsigned char *nb[N];
    for (int i = 0; i < N; i++) {
        nb[i] = shr_malloc(h, 48);
        memset(nb[i], 0xab, 48);
    }
    shr_free(h, nb[N / 2]); /* the next 48-byte block handed out */
    nb[N / 2] = NULL;
    uint64_t before = shr_test_blocks_in_use(h);
    cr_assert_eq(shr_list_create(h, NULL, in, SIZE_MAX / 16 + 2, &l), -ENOMEM);
    cr_assert_eq(shr_list_create(h, NULL, in, SIZE_MAX / 16, &l), -ENOMEM);
    cr_assert_eq(shr_list_create(h, NULL, in, SIZE_MAX, &l), -ENOMEM);
    for (int i = 0; i < N; i++)
        for (int j = 0; nb[i] && j < 48; j++) cr_assert_eq(nb[i][j], 0xab, "block %d byte %d overwritten", i, j);
    cr_assert_eq(shr_test_blocks_in_use(h), before, "nothing allocated, nothing leaked");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    for (int i = 0; i < N; i++) shr_free(h, nb[i]);
    shr_heap_close(h);
}

/* ---- whole-list walks take no lock ------------------------------------------------ */

typedef struct {
    shr_list_t *l;
    atomic_uint_fast64_t gen; /* odd while a count runs */
    atomic_int stop, ready;
    int counts;
} counter_t;

static void *count_loop(void *arg)
{
    counter_t *c = arg;
    shr_value_t v = shr_str("needle");
    size_t first;
    if (shr_list_count(c->l, &v, &first) != 0) abort(); /* this thread's slot, before gen counts */
    atomic_store(&c->ready, 1);
    while (!atomic_load(&c->stop)) {
        size_t n;
        atomic_fetch_add(&c->gen, 1);
        int rc = shr_list_count(c->l, &v, &n);
        atomic_fetch_add(&c->gen, 1);
        if (rc != 0 || n != 1) abort();
        c->counts++;
    }
    return NULL;
}

Test(list_unit, writers_make_progress_while_a_count_walks_a_long_list)
{
    shr_heap_t *h = make_heap();
    enum { N = 100000 };
    shr_value_t *in = malloc(N * sizeof *in);
    for (int i = 0; i < N; i++) in[i] = shr_str(i == N - 1 ? "needle" : "hay, and more hay");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, N, &l), 0);
    free(in);
    counter_t c = {.l = l};
    pthread_t t;
    pthread_create(&t, NULL, count_loop, &c);
    while (!atomic_load(&c.ready)) sched_yield();
    /* Sets (of ints, and of strings, whose old strings a walk may be
     * comparing) that start after a count began and end before that same
     * count call returns: with the lock held for the whole walk there are
     * none; with the walk in read sections, many, and the count never holds
     * the lock (the sets meet few walks' steps: none falls back to it here,
     * or rarely). */
    int inside = 0, tries = 0, locked_seen = 0;
    for (int k = 0; tries < 2000 && inside < 20; k++) {
        uint64_t g = atomic_load(&c.gen);
        if (!(g & 1)) {
            if (k % 1024 == 0) sched_yield();
            continue; /* wait until a count runs */
        }
        tries++;
        locked_seen += atomic_load(&l->obj->lock) != 0;
        shr_value_t v = k % 2 ? shr_int(k) : shr_str("hay, set while a count walks");
        cr_assert_eq(shr_list_set(l, k % 1000, &v), 0);
        if (atomic_load(&c.gen) == g) inside++;
    }
    atomic_store(&c.stop, 1);
    pthread_join(t, NULL);
    cr_assert_geq(inside, 20, "only %d of %d sets ran inside a count (%d counts)", inside, tries, c.counts);
    cr_assert_leq(locked_seen, tries / 2, "the count held the lock at %d of %d looks", locked_seen, tries);
    shr_list_close(l);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- repr's references are leases ------------------------------------------------ */

static int repr_it(shr_list_t *l)
{
    free(shr_list_repr(l));
    return 0;
}

Test(list_unit, a_process_killed_inside_repr_leaks_nothing)
{
    NEED_FAULTS();
    shr_heap_t *h = make_heap();
    shr_value_t in[100];
    for (int i = 0; i < 100; i++) in[i] = shr_str("printed");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, 100, &l), 0);
    uint64_t before = shr_test_blocks_in_use(h);
    shr_lease_stats_t st;
    cr_assert_eq(shr_lease_stats(h, &st), 0);
    uint64_t released = st.released_for_dead;
    crash_in(l, "lease.record", 40, repr_it); /* 40 strings leased, in its second step */
    cr_assert_geq(shr_heap_recover(h), 1);
    cr_assert_eq(shr_lease_stats(h, &st), 0);
    cr_assert_eq(st.released_for_dead - released, 8, "the step in flight: 8 of its 32 references");
    for (int i = 0; i < 100; i++) cr_assert_eq(refcnt_of_item(l, (uint64_t)i), 1, "item %d", i);
    cr_assert_eq(shr_test_blocks_in_use(h), before, "nothing leaked");
    shr_list_close(l);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- memory given back ------------------------------------------------------------ */

/* Fill a list with n ints, pop all but 100, and return the array's usable
 * size before and after and the committed bytes before and after. */
static void fill_and_drain(shr_heap_t *h, int n, size_t *full, size_t *after, shr_alloc_stats_t *s_full,
                           shr_alloc_stats_t *s_after)
{
    shr_value_t *in = malloc((size_t)n * sizeof *in);
    for (int i = 0; i < n; i++) in[i] = shr_int(i);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, NULL, in, (size_t)n, &l), 0);
    free(in);
    items_t *a = shr__ptr(h, l->obj->items);
    *full = shr_usable_size(h, a);
    cr_assert_eq(shr_heap_stats(h, s_full), 0);
    while (shr_list_len(l) > 100) cr_assert_eq(shr_list_pop(l, -1, NULL), 0);
    cr_assert_eq(l->obj->items, shr__off(h, a), "shrunk in place: the array did not move");
    *after = shr_usable_size(h, a);
    cr_assert_geq(*after, sizeof(items_t) + a->cap * sizeof(item_t), "cap fits the block");
    cr_assert_eq(shr_heap_stats(h, s_after), 0);
    for (int64_t i = 0; i < 100; i++) {
        shr_value_t g;
        cr_assert_eq(shr_list_get(l, i, &g), 0);
        cr_assert_eq(g.u.i, i);
    }
    for (int i = 0; i < 3000; i++) {
        shr_value_t v = shr_int(i);
        cr_assert_eq(shr_list_append(l, &v), 0, "and it grows again");
    }
    cr_assert_eq(shr_list_len(l), 3100);
    shr_list_close(l);
}

Test(list_unit, a_list_that_shrinks_gives_its_array_memory_back)
{
    shr_heap_t *h = make_heap();
    size_t full, after;
    shr_alloc_stats_t a, b;
    /* A page run (12000 items, 188 KiB): shrinks in place to a few pages,
     * which go back to the heap's free pages (purged to the OS lazily). */
    fill_and_drain(h, 12000, &full, &after, &a, &b);
    cr_assert_lt(after, full / 4, "page run: %zu bytes of %zu kept", after, full);
    cr_assert_geq(b.large_free_pages * 4096, a.large_free_pages * 4096 + (full - after) / 2,
                  "its pages are free for others (%llu -> %llu free pages)", (unsigned long long)a.large_free_pages,
                  (unsigned long long)b.large_free_pages);
    /* A chunk run (200000 items, 3.1 MiB): shrinks in place a fifth at a
     * time until a fifth less would be a page run (the allocator gives the
     * chunks past each new size back), and its pages are released. It used
     * to shrink once by a fifth and then stop (a chunk run shrank in place
     * only by less than a quarter of its chunks). */
    fill_and_drain(h, 200000, &full, &after, &a, &b);
    cr_assert_leq(after, 2 * SHR_CHUNK_SIZE, "chunk run: %zu bytes of %zu kept", after, full);
    cr_assert_lt(b.committed + full / 2, a.committed, "its pages were released (%llu -> %llu)",
                 (unsigned long long)a.committed, (unsigned long long)b.committed);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* ---- read sections: retired and shrunk arrays given back ------------------- */

/* Items of the retired chain, in items. */
static uint64_t retired_items(shr_heap_t *h, listobj_t *l)
{
    uint64_t n = 0;
    for (uint64_t r = l->retired; r; r = ((items_t *)shr__ptr(h, r))->retired) n += ((items_t *)shr__ptr(h, r))->cap;
    return n;
}

typedef struct {
    shr_heap_t *h;
    shr_list_t *l;
    atomic_int stop, bad;
    atomic_long reads;
} grace_race_t;

/* Item i always holds i (the list only appends and pops at the end). */
static void *grace_reader(void *arg)
{
    grace_race_t *g = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&g->stop)) {
        int64_t n = shr_list_len(g->l);
        if (n < 0) {
            atomic_fetch_add(&g->bad, 1);
            continue;
        }
        int64_t i = n ? (int64_t)(rand_r(&seed) % (unsigned)n) : 0;
        shr_value_t v;
        int rc = shr_list_get(g->l, i, &v);
        if (rc == SHR_EINDEX) continue;
        if (rc != 0 || v.type != SHR_INT || v.u.i != i) atomic_fetch_add(&g->bad, 1);
        atomic_fetch_add(&g->reads, 1);
    }
    return NULL;
}

/* Takes and writes what the list gives back, so that a reader still in a
 * freed array would read someone else's bytes (and ThreadSanitizer would see
 * the race). */
static void *grace_reuser(void *arg)
{
    grace_race_t *g = arg;
    size_t sizes[] = {4000, 40000, 140000, 600000};
    for (unsigned k = 0; !atomic_load(&g->stop); k++) {
        size_t n = sizes[k % 4];
        unsigned char *p = shr_malloc(g->h, n);
        if (!p) continue;
        memset(p, 0xA5, n);
        shr_free(g->h, p);
    }
    return NULL;
}

Test(list_unit, retired_and_shrunk_arrays_are_given_back_while_threads_read)
{
    grace_race_t g = {.h = make_heap()};
    cr_assert_eq(shr_list_create(g.h, NULL, NULL, 0, &g.l), 0);
    pthread_t t[3];
    cr_assert_eq(pthread_create(&t[0], NULL, grace_reader, &g), 0);
    cr_assert_eq(pthread_create(&t[1], NULL, grace_reader, &g), 0);
    cr_assert_eq(pthread_create(&t[2], NULL, grace_reuser, &g), 0);
    uint64_t large0 = 0;
    for (int round = 0; round < 4; round++) {
        for (int64_t i = shr_list_len(g.l); i < 60000; i++) { /* item i holds i */
            shr_value_t v = shr_int(i);
            cr_assert_eq(shr_list_append(g.l, &v), 0);
        }
        while (shr_list_len(g.l) > 100) cr_assert_eq(shr_list_pop(g.l, -1, NULL), 0);
        if (round == 0) { /* the figure to hold to */
            shr_alloc_stats_t st;
            cr_assert_eq(shr_heap_stats(g.h, &st), 0);
            large0 = st.large_bytes;
        }
    }
    atomic_store(&g.stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&g.bad), 0, "a reader saw a wrong item or an error");
    cr_assert_gt(atomic_load(&g.reads), 0);
    /* With the readers gone, the next shrink finds its grace period at once. */
    for (int i = 0; i < 3000; i++) {
        shr_value_t v = shr_int(100 + i);
        cr_assert_eq(shr_list_append(g.l, &v), 0);
    }
    while (shr_list_len(g.l) > 100) cr_assert_eq(shr_list_pop(g.l, -1, NULL), 0);
    /* Only arrays under SHRINK_MIN items (8 .. 1024, 32 KiB in all) wait for
     * the list's end; the 2048 .. 65536-item ones were freed. */
    uint64_t kept = retired_items(g.h, g.l->obj);
    cr_assert_lt(kept, 2048, "%llu items of retired arrays kept", (unsigned long long)kept);
    items_t *a = list_items(g.h, g.l->obj);
    cr_assert_leq(sizeof(items_t) + a->cap * sizeof(item_t), 2 * SHR_CHUNK_SIZE, "the live array shrank (cap %llu)",
                  (unsigned long long)a->cap);
    shr_alloc_stats_t st;
    cr_assert_eq(shr_heap_stats(g.h, &st), 0);
    cr_assert_leq(st.large_bytes, large0 + 64 * 1024, "large blocks in use after 4 rounds: %llu (after 1: %llu)",
                  (unsigned long long)st.large_bytes, (unsigned long long)large0);
    shr_list_close(g.l);
    done(g.h);
}

/* A thread in another process marks its slot as inside a read section and
 * stays there: a writer must not free or shrink what that reader may be
 * reading. Once the section ends, or its process dies, the next pop gives
 * the memory back. */
typedef struct {
    shr_heap_t *h;
    int go[2], back[2];
} staller_t;

static int stall_in_a_section(void *arg)
{
    staller_t *s = arg;
    shr_list_t *l;
    if (shr_list_attach(s->h, "stall", &l) != 0) return 1;
    if (shr_list_len(l) < 0) return 2; /* claims this thread's slot */
    _Atomic uint64_t *ep = &shr__tctx(s->h)->ts->epoch;
    atomic_store(ep, atomic_load(ep) | 1); /* inside, as a preempted reader would be */
    char c = 's';
    if (write(s->back[1], &c, 1) != 1) return 3;
    if (read(s->go[0], &c, 1) != 1) return 4; /* or killed here */
    atomic_store(ep, atomic_load(ep) + 1); /* and out */
    if (write(s->back[1], &c, 1) != 1) return 5;
    if (read(s->go[0], &c, 1) != 1) return 6;
    shr_list_close(l);
    return 0;
}

static pid_t start_staller(staller_t *s)
{
    cr_assert_eq(pipe(s->go), 0);
    cr_assert_eq(pipe(s->back), 0);
    pid_t p = shr_test_fork(stall_in_a_section, s);
    char c;
    cr_assert_eq(read(s->back[0], &c, 1), 1, "the staller is inside its section");
    return p;
}

/* Fill to 6000 items (an 8192-item array, a page run; the 8 .. 4096-item
 * arrays retired). */
static void fill(shr_list_t *l)
{
    for (int64_t i = 0; i < 6000; i++) {
        shr_value_t v = shr_int(i);
        cr_assert_eq(shr_list_append(l, &v), 0);
    }
}

static void pop_to(shr_list_t *l, int64_t n)
{
    while (shr_list_len(l) > n) cr_assert_eq(shr_list_pop(l, -1, NULL), 0);
}

Test(list_unit, a_reader_stalled_in_its_section_keeps_arrays_until_it_leaves_or_dies)
{
    shr_heap_t *h = make_heap();
    for (int how = 0; how < 2; how++) { /* 0: the section ends; 1: its process is killed */
        staller_t s = {.h = h};
        shr_list_t *l;
        cr_assert_eq(shr_list_create(h, "stall", NULL, 0, &l), 0);
        pid_t p = start_staller(&s);
        fill(l); /* the growths cannot free what they retire */
        items_t *a = list_items(h, l->obj);
        uint64_t cap = a->cap, retired = retired_items(h, l->obj);
        cr_assert_eq(cap, 8192);
        cr_assert_eq(retired, 8192 - 8, "every array growth replaced is kept (%llu items)",
                     (unsigned long long)retired);
        pop_to(l, 1000); /* under a quarter of 8192: the shrink's grace period cannot pass */
        cr_assert_eq(a->cap, cap, "no shrink while a reader may be in the tail");
        cr_assert_eq(retired_items(h, l->obj), retired, "no retired array freed");
        if (how == 0) {
            char c = 'g';
            cr_assert_eq(write(s.go[1], &c, 1), 1);
            cr_assert_eq(read(s.back[0], &c, 1), 1, "the staller left its section");
        } else {
            kill(p, SIGKILL);
            waitpid(p, NULL, 0);
        }
        cr_assert_eq(shr_list_pop(l, -1, NULL), 0);
        cr_assert_lt(a->cap, cap, "the next pop shrinks (%s)", how ? "killed" : "left");
        cr_assert_lt(retired_items(h, l->obj), 2048, "and frees the retired arrays of 2048 items and more");
        for (int64_t i = 0; i < shr_list_len(l); i++) {
            shr_value_t v;
            cr_assert_eq(shr_list_get(l, i, &v), 0);
            cr_assert_eq(v.u.i, i);
        }
        if (how == 0) {
            char c = 'g';
            cr_assert_eq(write(s.go[1], &c, 1), 1);
            cr_assert_eq(shr_test_wait(p), 0);
        }
        close(s.go[0]), close(s.go[1]), close(s.back[0]), close(s.back[1]);
        shr_list_close(l);
        cr_assert_eq(shr_list_unlink(h, "stall"), 0);
    }
    done(h);
}

/* ---- objects read from a segment nobody has checked -------------------------- */

/* A named list "l" of one str, its root entry, its object and its items. */
typedef struct {
    shr_heap_t *h;
    root_entry_t *root;
    listobj_t *obj;
    items_t *items;
    strobj_t *s;
} named_t;

static named_t make_named(void)
{
    named_t n = {.h = make_heap()};
    shr_value_t in[] = {shr_str("hello")};
    shr_list_t *l;
    cr_assert_eq(shr_list_create(n.h, "l", in, 1, &l), 0);
    n.obj = l->obj;
    n.items = list_items(n.h, l->obj);
    n.s = shr__ptr(n.h, n.items->it[0].val);
    cr_assert_eq(shr_list_close(l), 0);
    alloc_global_t *g = alloc_global(n.h);
    for (int i = 0; i < SHR_ROOTS_MAX && !n.root; i++)
        if (strcmp(g->roots[i].name, "l") == 0) n.root = &g->roots[i];
    cr_assert_not_null(n.root);
    cr_assert_eq(shr_heap_check(n.h), 0);
    return n;
}

/* A damaged field: check reports it, attach by name refuses the list (no
 * handle trusts it); put back, both pass. */
#define EXPECT_REFUSED(n, field, bad)                                                        \
    do {                                                                                     \
        __typeof__(field) saved_ = (field);                                                  \
        shr_list_t *l_ = NULL;                                                               \
        (field) = (bad);                                                                     \
        cr_assert_eq(shr_heap_check((n).h), SHR_ECORRUPT, "%s = %s is reported", #field, #bad); \
        int rc_ = shr_list_attach((n).h, "l", &l_);                                         \
        if (rc_ == 0) shr_list_close(l_);                                                    \
        cr_assert(rc_ != 0, "%s = %s: attach refuses the list", #field, #bad);               \
        (field) = saved_;                                                                    \
        cr_assert_eq(shr_heap_check((n).h), 0);                                              \
        cr_assert_eq(shr_list_attach((n).h, "l", &l_), 0);                                   \
        cr_assert_eq(shr_list_close(l_), 0);                                                 \
    } while (0)

Test(list_unit, a_root_that_does_not_name_a_list_object_is_reported_and_refused)
{
    named_t n = make_named();
    uint64_t off = n.root->off;
    EXPECT_REFUSED(n, n.root->off, off + 8);                /* misaligned, inside the object */
    EXPECT_REFUSED(n, n.root->off, off + 16);               /* aligned, not a block */
    EXPECT_REFUSED(n, n.root->off, n.h->capacity - 16);     /* the last bytes of the mapping */
    EXPECT_REFUSED(n, n.obj->ob.refcnt, (uint64_t)0);       /* dead */
    EXPECT_REFUSED(n, n.obj->items, n.root->off);           /* items inside the list object */
    EXPECT_REFUSED(n, n.obj->items, (uint64_t)n.h->capacity - 8);
    shr_heap_close(n.h);
}

Test(list_unit, objects_in_the_data_that_break_their_blocks_are_reported_and_refused)
{
    named_t n = make_named();
    uint64_t len = n.s->len;
    n.s->len = (uint64_t)1 << 40; /* a str's length past its block: check reports it */
    cr_assert_eq(shr_heap_check(n.h), SHR_ECORRUPT);
    n.s->len = len;
    cr_assert_eq(shr_heap_check(n.h), 0);
    EXPECT_REFUSED(n, n.items->cap, (uint64_t)1 << 30);      /* items past their block */
    EXPECT_REFUSED(n, n.items->len, n.items->cap + 1);       /* len above cap */
    uint64_t val = n.items->it[0].val;
    n.items->it[0].val = val + 8; /* an item not an object: check reports it */
    cr_assert_eq(shr_heap_check(n.h), SHR_ECORRUPT);
    n.items->it[0].val = val;
    cr_assert_eq(shr_heap_check(n.h), 0);
    shr_heap_close(n.h);
}

Test(list_unit, a_named_list_of_a_huge_str_checks_clean_and_attaches)
{
    shr_heap_t *h = make_heap();
    size_t len = (size_t)64 << 20;
    char *big = malloc(len);
    cr_assert_not_null(big);
    memset(big, 'x', len);
    shr_value_t in[] = {{.type = SHR_STR, .u.s = {big, len}}, shr_str("small")};
    shr_list_t *l, *l2;
    cr_assert_eq(shr_list_create(h, "big", in, 2, &l), 0);
    free(big);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    cr_assert_eq(shr_list_attach(h, "big", &l2), 0);
    shr_list_close(l2);
    shr_list_close(l);
    shr_heap_close(h);
}

/* ---- dropped strings: deferred while a walk is under way ------------------------ */

static shr_test_gate_t dgate;

static int count_forever_u(void *arg)
{
    shr_list_t *l = arg;
    shr_value_t absent = shr_str("not in the list");
    size_t n;
    if (shr_list_count(l, &absent, &n) != 0 || n != 0) return 1;
    shr_test_gate_open(&dgate);
    for (;;)
        if (shr_list_count(l, &absent, &n) != 0 || n != 0) return 2;
}

static int replace_strings_and_wait(void *arg)
{
    shr_heap_t *h = arg;
    shr_list_t *l;
    if (shr_list_attach(h, "dropped", &l) != 0) return 1;
    for (int i = 0; i < 10; i++) {
        shr_value_t v = shr_str("a replacement");
        if (shr_list_set(l, i, &v) != 0) return 2;
    }
    shr_test_gate_open(&dgate);
    for (;;) pause();
}

/* The strings a list drops while a walk is under way are released after a
 * grace period (the walk may still be reading them): until then they are
 * deferred leases of the dropping process, so a process killed before its
 * grace period came leaks none of them: the drain releases them (after a
 * grace period). The walk here is a counter stopped inside its count. */
Test(list_unit, a_killed_writers_dropped_strings_are_released)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    enum { N = 2000 };
    shr_value_t *in = malloc(N * sizeof *in);
    for (int i = 0; i < N; i++) in[i] = shr_str("dropped by a dying process");
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "dropped", in, N, &l), 0);
    free(in);
    uint64_t with_list = shr_test_blocks_in_use(h);
    shr_lease_stats_t gs;
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    uint64_t released = gs.released_for_dead;
    shr_test_gate_init(&dgate);
    pid_t counter = dstopped = shr_test_fork(count_forever_u, l);
    cr_assert(shr_test_gate_wait(&dgate, 30000), "the counter did not start");
    for (int tries = 0;; tries++) { /* stopped inside a count */
        kill(counter, SIGSTOP);
        int st;
        cr_assert_eq(waitpid(counter, &st, WUNTRACED), counter);
        if (atomic_load(&l->obj->walkers) != 0) break;
        cr_assert_lt(tries, 1000, "the counter was never caught inside a count");
        kill(counter, SIGCONT);
        usleep(100);
    }
    shr_test_gate_init(&dgate);
    pid_t pid = dwriter = shr_test_fork(replace_strings_and_wait, h);
    cr_assert(shr_test_gate_wait(&dgate, 10000), "the child did not replace its strings");
    uint64_t now_in_use = shr_test_blocks_in_use(h);
    /* The 10 new strings replace the 10 old, which are kept; and the
     * child's lease table. */
    cr_assert_eq(now_in_use, with_list + 11, "the old strings wait for a grace period (%llu, with the list %llu)",
                 (unsigned long long)now_in_use, (unsigned long long)with_list);
    /* The walker dies too (its announcement stays: drops are deferred for
     * good, which is safe), then the writer. */
    kill(counter, SIGKILL);
    cr_assert_eq(shr_test_wait(counter), 128 + SIGKILL);
    dstopped = 0;
    kill(pid, SIGKILL);
    cr_assert_eq(shr_test_wait(pid), 128 + SIGKILL);
    dwriter = 0;
    cr_assert_geq(shr_heap_recover(h), 1);
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_eq(gs.released_for_dead - released, 11, "10 dropped strings and one handle");
    cr_assert_eq(shr_test_blocks_in_use(h), with_list, "the dropped strings were freed");
    size_t n = 0;
    shr_value_t v = shr_str("a replacement");
    cr_assert_eq(shr_list_count(l, &v, &n), 0);
    cr_assert_eq(n, 10);
    shr_list_close(l);
    shr_list_unlink(h, "dropped");
    cr_assert_leq(shr_test_blocks_in_use(h), 1, "nothing leaked");
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
