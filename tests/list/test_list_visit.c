/* shr_list_get_with and shr_list_read_copy (reads without a reference, for
 * callers that copy) and
 * shr_wait_hooks_set (what a runtime with a global lock hears about waits),
 * through the public API. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(list_visit, .fini = fini, .timeout = 120);

typedef struct {
    shr_value_t seen;
    char copy[64];
    int calls;
} seen_t;

static int copy_visit(const shr_value_t *v, void *arg)
{
    seen_t *s = arg;
    s->calls++;
    s->seen = *v;
    if (v->type == SHR_STR || v->type == SHR_BYTES) {
        size_t n = v->u.s.len < sizeof s->copy ? v->u.s.len : sizeof s->copy;
        memcpy(s->copy, v->u.s.data, n);
    }
    return 7; /* returned as it is */
}

Test(list_visit, every_type_without_a_reference)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *inner, *l;
    shr_value_t one = shr_int(1);
    cr_assert_eq(shr_list_create(h, NULL, &one, 1, &inner), 0);
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_int(-5), shr_float(2.5), shr_strn("ab\0", 3),
                        shr_bytes("\xff\x00", 2), shr_listval(inner)};
    cr_assert_eq(shr_list_create(h, NULL, in, 7, &l), 0);
    shr_lease_stats_t before, after;
    cr_assert_eq(shr_lease_stats(h, &before), 0);
    for (int i = 0; i < 6; i++) {
        seen_t s = {0};
        cr_assert_eq(shr_list_get_with(l, i - 7, copy_visit, &s), 7);
        cr_assert_eq(s.calls, 1);
        cr_assert_eq(s.seen.type, in[i].type);
        cr_assert_eq(s.seen.ref_, 0, "item %d: no reference handed out", i);
    }
    cr_assert_eq(shr_lease_stats(h, &after), 0);
    cr_assert_eq(after.leases, before.leases, "reads of copies take no lease");
    seen_t s = {0};
    cr_assert_eq(shr_list_get_with(l, 4, copy_visit, &s), 7);
    cr_assert_eq(s.seen.u.s.len, 3);
    cr_assert_eq(memcmp(s.copy, "ab\0", 3), 0);
    cr_assert_eq(shr_list_get_with(l, 2, copy_visit, &s), 7);
    cr_assert_eq(s.seen.u.i, -5);
    /* a list item is a handle the visitor owns */
    cr_assert_eq(shr_list_get_with(l, 6, copy_visit, &s), 7);
    cr_assert_eq(shr_list_len(s.seen.u.list), 1);
    shr_value_release(h, &s.seen);
    /* bad calls change nothing and do not visit */
    s.calls = 0;
    cr_assert_eq(shr_list_get_with(l, 7, copy_visit, &s), SHR_EINDEX);
    cr_assert_eq(shr_list_get_with(l, -8, copy_visit, &s), SHR_EINDEX);
    cr_assert_eq(shr_list_get_with(l, 0, NULL, &s), -EINVAL);
    cr_assert_eq(shr_list_get_with(NULL, 0, copy_visit, &s), -EINVAL);
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(shr_lease_stats(h, &after), 0);
    cr_assert_eq(after.leases, before.leases);
    shr_list_close(l);
    shr_list_close(inner);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* One thread holds the list's lock (inside a visit of a str, which runs
 * under it) while another gets the same item: the second must wait, and
 * the hooks hear of it once before the wait and once after. */
static atomic_int in_visit, befores, afters;
static shr_list_t *shared;

static int slow_visit(const shr_value_t *v, void *arg)
{
    (void)v;
    (void)arg;
    atomic_store(&in_visit, 1);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return 0;
}

static void *holder(void *arg)
{
    (void)arg;
    cr_assert_eq(shr_list_get_with(shared, 0, slow_visit, NULL), 0);
    return NULL;
}

static void before_wait(void *arg)
{
    cr_assert_eq(arg, &befores);
    atomic_fetch_add(&befores, 1);
}

static void after_wait(void *arg)
{
    (void)arg;
    atomic_fetch_add(&afters, 1);
}

Test(list_visit, wait_hooks_hear_of_contended_locks_only)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_value_t v = shr_str("held");
    cr_assert_eq(shr_list_create(h, NULL, &v, 1, &shared), 0);
    shr_wait_hooks_set(before_wait, after_wait, &befores);
    for (int i = 0; i < 1000; i++) { /* uncontended: never a hook */
        shr_value_t g;
        cr_assert_eq(shr_list_get(shared, 0, &g), 0);
        shr_value_release(h, &g);
        cr_assert_eq(shr_list_set(shared, 0, &v), 0);
    }
    cr_assert_eq(atomic_load(&befores), 0);
    cr_assert_eq(atomic_load(&afters), 0);
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    while (!atomic_load(&in_visit)) sched_yield();
    shr_value_t g;
    cr_assert_eq(shr_list_get(shared, 0, &g), 0); /* waits for the holder */
    shr_value_release(h, &g);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&befores), 1);
    cr_assert_eq(atomic_load(&afters), 1);
    shr_wait_hooks_set(NULL, NULL, NULL);
    shr_list_close(shared);
    shr_heap_close(h);
}

/* A thread that finds a collection requested parks at the gate of its next
 * list call for the collection's pause: the hooks hear of that wait too (the
 * Python module releases the GIL there). One thread stays inside the gate
 * (a slow visit of a str) so that a collection, started by a second thread,
 * keeps its request up while it waits for it; a third thread's list call
 * meanwhile (on another list: not a lock wait) must call before() and
 * after() once each, and succeed once the collection is over. */
static _Thread_local int hook_thread;
static atomic_int gate_befores, gate_afters, go;
static shr_heap_t *gate_heap;

static void gate_before(void *arg)
{
    (void)arg;
    if (!hook_thread) return;
    atomic_fetch_add(&gate_befores, 1);
    atomic_store(&go, 1); /* the holder may leave: the collection goes on, and this thread after it */
}

static void gate_after(void *arg)
{
    (void)arg;
    if (hook_thread) atomic_fetch_add(&gate_afters, 1);
}

static atomic_int collected;

/* Stays inside the gate (and the list's lock) until go (set by the hook of
 * the thread parked at the gate), at most 800 ms: less than the collector's
 * stop timeout. */
static int gate_visit(const shr_value_t *v, void *arg)
{
    (void)v;
    (void)arg;
    atomic_store(&in_visit, 1);
    for (int i = 0; i < 800 && !atomic_load(&go); i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void *gate_holder(void *arg)
{
    (void)arg;
    cr_assert_eq(shr_list_get_with(shared, 0, gate_visit, NULL), 0);
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    atomic_store(&collected, (int)shr_gc_collect(gate_heap, 0, NULL) >= 0 ? 1 : -1);
    return NULL;
}

Test(list_visit, wait_hooks_hear_of_a_wait_at_the_collectors_gate)
{
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &gate_heap), 0);
    shr_value_t v = shr_str("held");
    shr_list_t *other;
    cr_assert_eq(shr_list_create(gate_heap, NULL, &v, 1, &shared), 0);
    cr_assert_eq(shr_list_create(gate_heap, NULL, &v, 1, &other), 0);
    shr_wait_hooks_set(gate_before, gate_after, NULL);
    hook_thread = 1;
    cr_assert_eq(shr_list_set(other, 0, &v), 0); /* no collection: no hook */
    cr_assert_eq(atomic_load(&gate_befores), 0);
    atomic_store(&in_visit, 0);
    pthread_t t, c;
    pthread_create(&t, NULL, gate_holder, NULL);
    while (!atomic_load(&in_visit)) sched_yield();
    pthread_create(&c, NULL, collector, NULL);
    /* Until the collector's request is up (it then waits for the holder),
     * a set goes through without a hook; once it is, the set parks. */
    while (atomic_load(&gate_befores) == 0 && atomic_load(&collected) == 0) {
        cr_assert_eq(shr_list_set(other, 0, &v), 0);
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&go, 1);
    cr_assert_eq(atomic_load(&gate_befores), 1, "before() heard of the wait at the gate");
    cr_assert_eq(atomic_load(&gate_afters), 1);
    pthread_join(t, NULL);
    pthread_join(c, NULL);
    cr_assert_eq(atomic_load(&collected), 1);
    hook_thread = 0;
    shr_wait_hooks_set(NULL, NULL, NULL);
    shr_list_close(other);
    shr_list_close(shared);
    shr_heap_close(gate_heap);
}

static void *holder_of_4(void *arg)
{
    (void)arg;
    cr_assert_eq(shr_list_get_with(shared, 4, slow_visit, NULL), 0); /* a str: visited under the lock */
    return NULL;
}

/* shr_list_read: inline values read into *out without a lock (and so
 * without a wait: it succeeds while another thread holds the list's lock)
 * and without a visit; the others visited as shr_list_get_with does, with no
 * reference left behind; bad calls refused and nothing visited. */
Test(list_visit, read_reads_inline_values_and_visits_the_others)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *inner;
    shr_value_t one = shr_int(1);
    cr_assert_eq(shr_list_create(h, NULL, &one, 1, &inner), 0);
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_int(-5), shr_float(2.5), shr_str("held"),
                        shr_bytes("\xff", 1), shr_listval(inner)};
    cr_assert_eq(shr_list_create(h, NULL, in, 7, &shared), 0);
    shr_lease_stats_t before, after;
    cr_assert_eq(shr_lease_stats(h, &before), 0);
    shr_value_t v;
    seen_t s = {0};
    for (int i = 0; i < 4; i++) {
        memset(&v, 0xab, sizeof v);
        cr_assert_eq(shr_list_read(shared, i, &v, copy_visit, &s), 0, "item %d", i);
        cr_assert_eq(v.type, in[i].type);
        cr_assert_eq(v.ref_, 0);
    }
    cr_assert_eq(s.calls, 0, "inline values are not visited");
    cr_assert_eq(shr_list_read(shared, 2, &v, copy_visit, &s), 0);
    cr_assert_eq(v.u.i, -5);
    cr_assert_eq(shr_list_read(shared, -4, &v, copy_visit, &s), 0);
    cr_assert_eq(v.u.f, 2.5);
    cr_assert_eq(shr_list_read(shared, 1, &v, copy_visit, &s), 0);
    cr_assert(v.u.b);
    for (int i = 4; i < 7; i++) {
        memset(&v, 0, sizeof v);
        s.calls = 0;
        cr_assert_eq(shr_list_read(shared, i, &v, copy_visit, &s), 7, "item %d is visited", i);
        cr_assert_eq(s.calls, 1);
        cr_assert_eq(s.seen.type, in[i].type);
        cr_assert_eq(v.type, 0, "*out untouched");
    }
    cr_assert_eq(memcmp(s.copy, "", 0), 0);
    shr_value_release(h, &s.seen); /* the list item: a handle the visitor owns */
    s.calls = 0;
    cr_assert_eq(shr_list_read(shared, 4, &v, copy_visit, &s), 7);
    cr_assert_eq(memcmp(s.copy, "held", 4), 0);
    s.calls = 0;
    cr_assert_eq(shr_list_read(shared, 7, &v, copy_visit, &s), SHR_EINDEX);
    cr_assert_eq(shr_list_read(shared, -8, &v, copy_visit, &s), SHR_EINDEX);
    /* the halves alone: lock-free only (1: not read), visit only */
    for (int i = 0; i < 7; i++) {
        memset(&v, 0, sizeof v);
        cr_assert_eq(shr_list_read(shared, i, &v, NULL, NULL), i < 4 ? 0 : 1, "item %d", i);
        cr_assert_eq(v.type, i < 4 ? in[i].type : 0);
        s.calls = 0;
        cr_assert_eq(shr_list_read(shared, i, NULL, copy_visit, &s), 7, "item %d", i);
        cr_assert_eq(s.calls, 1);
        cr_assert_eq(s.seen.type, in[i].type);
        if (i == 6) shr_value_release(h, &s.seen);
    }
    cr_assert_eq(shr_list_read(shared, 2, NULL, copy_visit, &s), 7);
    cr_assert_eq(s.seen.u.i, -5);
    s.calls = 0;
    cr_assert_eq(shr_list_read(shared, 7, &v, NULL, NULL), SHR_EINDEX);
    cr_assert_eq(shr_list_read(shared, 7, NULL, copy_visit, &s), SHR_EINDEX);
    cr_assert_eq(shr_list_read(shared, 4, NULL, NULL, &s), -EINVAL);
    cr_assert_eq(shr_list_read(NULL, 0, &v, copy_visit, &s), -EINVAL);
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(shr_lease_stats(h, &after), 0);
    cr_assert_eq(after.leases, before.leases, "no reference left");
    /* while another thread holds the lock (a slow visit of the str) */
    atomic_store(&in_visit, 0);
    pthread_t t;
    pthread_create(&t, NULL, holder_of_4, NULL);
    while (!atomic_load(&in_visit)) sched_yield();
    cr_assert_eq(shr_list_read(shared, 2, &v, copy_visit, &s), 0);
    cr_assert_eq(v.u.i, -5);
    pthread_join(t, NULL);
    shr_list_close(shared);
    shr_list_close(inner);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

Test(list_visit, read_copy_copies_inline_values_and_short_strings)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    shr_list_t *inner, *l;
    shr_value_t one = shr_int(1);
    cr_assert_eq(shr_list_create(h, NULL, &one, 1, &inner), 0);
    char longer[300];
    memset(longer, 'x', sizeof longer);
    shr_value_t in[] = {shr_none(), shr_bool(1), shr_int(-5), shr_float(2.5), shr_strn("ab\0c", 4),
                        shr_bytes("\xff\x00", 2), shr_str(""), shr_strn(longer, sizeof longer), shr_listval(inner)};
    cr_assert_eq(shr_list_create(h, NULL, in, 9, &l), 0);
    shr_lease_stats_t before, after;
    cr_assert_eq(shr_lease_stats(h, &before), 0);
    _Alignas(16) char buf[256];
    shr_value_t v;
    for (int i = 0; i < 7; i++) {
        memset(&v, 0xab, sizeof v);
        cr_assert_eq(shr_list_read_copy(l, i - 9, &v, buf, sizeof buf), 0, "item %d", i);
        cr_assert_eq(v.type, in[i].type, "item %d", i);
        cr_assert_eq(v.ref_, 0, "item %d: no reference", i);
    }
    cr_assert_eq(shr_list_read_copy(l, 2, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.u.i, -5);
    cr_assert_eq(shr_list_read_copy(l, 3, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.u.f, 2.5);
    cr_assert_eq(shr_list_read_copy(l, 4, &v, buf, sizeof buf), 0);
    cr_assert(v.u.s.data == buf && v.u.s.len == 4 && memcmp(buf, "ab\0c", 4) == 0, "a str with a NUL, copied");
    cr_assert_eq(shr_list_read_copy(l, 5, &v, buf, sizeof buf), 0);
    cr_assert(v.type == SHR_BYTES && v.u.s.len == 2 && memcmp(buf, "\xff\x00", 2) == 0);
    cr_assert_eq(shr_list_read_copy(l, 6, &v, buf, sizeof buf), 0);
    cr_assert_eq(v.u.s.len, 0);
    /* longer than the buffer, and a list: 1, not read (the caller reads
     * them another way); the exact size fits */
    cr_assert_eq(shr_list_read_copy(l, 7, &v, buf, sizeof buf), 1);
    cr_assert_eq(shr_list_read_copy(l, 8, &v, buf, sizeof buf), 1);
    cr_assert_eq(shr_list_read_copy(l, 4, &v, buf, 3), 1);
    cr_assert_eq(shr_list_read_copy(l, 4, &v, buf, 4), 0);
    cr_assert_eq(memcmp(buf, "ab\0c", 4), 0);
    /* no buffer: inline values only */
    cr_assert_eq(shr_list_read_copy(l, 2, &v, NULL, 0), 0);
    cr_assert_eq(v.u.i, -5);
    cr_assert_eq(shr_list_read_copy(l, 6, &v, NULL, 0), 0, "an empty str needs no room");
    cr_assert_eq(shr_list_read_copy(l, 4, &v, NULL, 0), 1);
    /* bad arguments and indices */
    cr_assert_eq(shr_list_read_copy(l, 9, &v, buf, sizeof buf), SHR_EINDEX);
    cr_assert_eq(shr_list_read_copy(l, -10, &v, buf, sizeof buf), SHR_EINDEX);
    cr_assert_eq(shr_list_read_copy(NULL, 0, &v, buf, sizeof buf), -EINVAL);
    cr_assert_eq(shr_list_read_copy(l, 0, NULL, buf, sizeof buf), -EINVAL);
    cr_assert_eq(shr_list_read_copy(l, 0, &v, NULL, 8), -EINVAL);
    /* a set is seen by the next copy */
    shr_value_t nv = shr_str("after");
    cr_assert_eq(shr_list_set(l, 4, &nv), 0);
    cr_assert_eq(shr_list_read_copy(l, 4, &v, buf, sizeof buf), 0);
    cr_assert(v.u.s.len == 5 && memcmp(buf, "after", 5) == 0);
    cr_assert_eq(shr_lease_stats(h, &after), 0);
    cr_assert_eq(after.leases, before.leases, "copies take no lease");
    shr_list_close(l);
    shr_list_close(inner);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

/* An item that a writer keeps turning from an int into a str and back,
 * with ints that look like offsets into the never-used part of the heap: a
 * copying reader that read through a torn pair (the str's tag with the
 * int's value) would fault in pages there, which the segment's file shows. */
static shr_list_t *torn_list;
static atomic_int torn_stop;

static void *torn_writer(void *arg)
{
    uint64_t base = *(uint64_t *)arg;
    shr_value_t s = shr_str("abc");
    for (uint64_t k = 0; !atomic_load(&torn_stop); k++) {
        shr_value_t v = shr_int((int64_t)(base + (k % 2000) * 4096 + 16));
        if (shr_list_set(torn_list, 0, &v) || shr_list_set(torn_list, 0, &s)) return (void *)1;
    }
    return NULL;
}

static uint64_t shm_blocks(const char *name)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (uint64_t)st.st_blocks;
}

Test(list_visit, read_copy_never_reads_through_a_torn_item)
{
    const char *name = shr_test_name();
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(name, NULL, &h), 0);
    shr_heap_info_t info;
    cr_assert_eq(shr_heap_stat(h, &info, NULL, 0, NULL), 0);
    uint64_t base = info.capacity / 2; /* far above anything this test allocates */
    shr_value_t zero = shr_int(0);
    cr_assert_eq(shr_list_create(h, NULL, &zero, 1, &torn_list), 0);
    uint64_t before = shm_blocks(name);
    atomic_store(&torn_stop, 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, torn_writer, &base), 0);
    _Alignas(16) char buf[224];
    uint64_t strs = 0, ints = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int k = 0; k < 4096; k++) {
            shr_value_t v;
            int rc = shr_list_read_copy(torn_list, 0, &v, buf, sizeof buf);
            cr_assert(rc == 0 || rc == 1, "rc %d", rc);
            if (rc) continue;
            if (v.type == SHR_STR) {
                cr_assert(v.u.s.len == 3 && memcmp(buf, "abc", 3) == 0);
                strs++;
            } else {
                cr_assert_eq(v.type, SHR_INT);
                ints++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1500);
    atomic_store(&torn_stop, 1);
    void *wr;
    pthread_join(t, &wr);
    cr_assert_null(wr);
    cr_assert(strs > 0 && ints > 0, "both kinds read (%llu strs, %llu ints)", (unsigned long long)strs,
              (unsigned long long)ints);
    uint64_t after = shm_blocks(name);
    /* A few pages for the strings' pool and the collector's counters, never
     * the 2000 pages the ints point at. */
    cr_assert_leq(after, before + 64 * 8, "%llu 512-byte blocks before, %llu after",
                  (unsigned long long)before, (unsigned long long)after);
    shr_list_close(torn_list);
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}
