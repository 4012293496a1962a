/* The rest of CPython's gc module through the public API: enable/disable,
 * debug flags and their output, SAVEALL's garbage, the permanent generation,
 * is_tracked, get_referents/get_objects/get_referrers, callbacks, and the
 * statistics; across processes where the heap's state is shared. Bad input
 * gets -EINVAL and changes nothing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "cr_heap.h"

static void fini(void) { shr_test_cleanup(); }
TestSuite(gc_module, .fini = fini, .timeout = 120);

static shr_ref_t node(shr_heap_t *h, uint32_t nslots)
{
    shr_ref_t r = {0};
    cr_assert_eq(shr_obj_new(h, SHR_TYPE_NODE, nslots, 0, &r), 0);
    return r;
}

/* Two nodes referring to each other, no reference left in this process. */
static void make_cycle(shr_heap_t *h)
{
    shr_ref_t a = node(h, 1), b = node(h, 1);
    cr_assert_eq(shr_obj_set(h, a, 0, b), 0);
    cr_assert_eq(shr_obj_set(h, b, 0, a), 0);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
}

static uint64_t baseline(shr_heap_t *h)
{
    shr_ref_t r = node(h, 1);
    shr_obj_release(h, r);
    return shr_test_blocks_in_use(h);
}

Test(gc_module, disable_stops_this_process_automatic_collections_only)
{
    shr_heap_t *h = make_heap();
    const uint32_t t[3] = {10, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, t), 0);
    cr_assert_eq(shr_gc_isenabled(h), 1);
    cr_assert_eq(shr_gc_disable(h), 0);
    cr_assert_eq(shr_gc_isenabled(h), 0);
    shr_gc_stats_t st;
    for (int i = 0; i < 300; i++) make_cycle(h);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_eq(st.gen[0].collections + st.gen[1].collections + st.gen[2].collections, 0,
                 "disabled: no automatic collection");
    int64_t count[3];
    cr_assert_eq(shr_gc_get_count(h, count), 0);
    cr_assert_gt(count[0], 10, "the count still grows");
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 600, "an explicit collection works while disabled");
    cr_assert_eq(shr_gc_enable(h), 0);
    cr_assert_eq(shr_gc_isenabled(h), 1);
    for (int i = 0; i < 300; i++) make_cycle(h);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_gt(st.gen[0].collections, 0, "enabled again: automatic collections run");
    /* Another handle (another process's view) is not disabled by this one. */
    cr_assert_eq(shr_gc_disable(h), 0);
    shr_heap_t *h2;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &h2), 0);
    cr_assert_eq(shr_gc_isenabled(h2), 1);
    cr_assert_eq(shr_gc_get_debug(h2), 0);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    uint64_t before = st.gen[0].collections;
    for (int i = 0; i < 300; i++) make_cycle(h2);
    cr_assert_eq(shr_gc_get_stats(h, &st), 0);
    cr_assert_gt(st.gen[0].collections, before, "the enabled handle still collects automatically");
    shr_heap_close(h2);
    cr_assert_eq(shr_gc_isenabled(NULL), -EINVAL);
    cr_assert_eq(shr_gc_enable(NULL), -EINVAL);
    cr_assert_eq(shr_gc_disable(NULL), -EINVAL);
    shr_gc_collect(h, 2, NULL);
    done(h);
}

/* Run fn with stderr sent to a file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(shr_heap_t *), shr_heap_t *h)
{
    char path[] = "/tmp/shr_gc_stderr_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn(h);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    cr_assert(pread(fd, buf, (size_t)len, 0) == len);
    close(fd);
    unlink(path);
    return buf;
}

static void collect_a_cycle(shr_heap_t *h)
{
    make_cycle(h);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2);
}

static void collect_two(shr_heap_t *h) { cr_assert_eq(shr_gc_collect(h, 2, NULL), 2); }

Test(gc_module, debug_flags_print_in_cpythons_format)
{
    shr_heap_t *h = make_heap();
    cr_assert_eq(shr_gc_get_debug(h), 0);
    cr_assert_eq(shr_gc_set_debug(h, 8), -EINVAL, "not a flag");
    cr_assert_eq(shr_gc_set_debug(h, SHR_GC_DEBUG_STATS | 64), -EINVAL);
    cr_assert_eq(shr_gc_get_debug(h), 0, "a refused call changes nothing");
    cr_assert_eq(shr_gc_set_debug(NULL, 0), -EINVAL);
    cr_assert_eq(shr_gc_get_debug(NULL), -EINVAL);
    cr_assert_eq(shr_gc_set_debug(h, SHR_GC_DEBUG_STATS | SHR_GC_DEBUG_COLLECTABLE), 0);
    cr_assert_eq(shr_gc_get_debug(h), SHR_GC_DEBUG_STATS | SHR_GC_DEBUG_COLLECTABLE);
    shr_ref_t keep = node(h, 0); /* one survivor */
    char *out = capture_stderr(collect_a_cycle, h);
    cr_assert(strstr(out, "gc: collecting generation 2...\n"), "%s", out);
    cr_assert(strstr(out, "gc: objects in each generation: 3 0 0\n"), "%s", out);
    cr_assert(strstr(out, "gc: objects in permanent generation: 0\n"), "%s", out);
    cr_assert(strstr(out, "gc: collectable <node 0x"), "%s", out);
    cr_assert(strstr(out, "gc: done, 2 unreachable, 0 uncollectable, "), "%s", out);
    cr_assert(strstr(out, "s elapsed\n"), "%s", out);
    free(out);
    /* A user type prints its declared name. */
    uint32_t id;
    cr_assert_eq(shr_obj_type_declare(h, "Pair", 1, 0, &id), 0);
    shr_ref_t a, b;
    cr_assert_eq(shr_obj_new(h, id, 1, 0, &a), 0);
    cr_assert_eq(shr_obj_new(h, id, 1, 0, &b), 0);
    shr_obj_set(h, a, 0, b);
    shr_obj_set(h, b, 0, a);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(shr_gc_set_debug(h, SHR_GC_DEBUG_COLLECTABLE), 0);
    char *out2 = capture_stderr(collect_two, h);
    cr_assert(strstr(out2, "gc: collectable <Pair 0x"), "%s", out2);
    cr_assert(!strstr(out2, "gc: collecting"), "no STATS lines without the flag: %s", out2);
    free(out2);
    shr_heap_t *h2; /* the flags are this handle's: another's collections print nothing */
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &h2), 0);
    char *out3 = capture_stderr(collect_a_cycle, h2);
    cr_assert_str_eq(out3, "");
    free(out3);
    shr_heap_close(h2);
    shr_obj_release(h, keep);
    done(h);
}

Test(gc_module, saveall_keeps_the_garbage_for_the_caller)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 0), 0);
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 1), -EINVAL);
    cr_assert_eq(shr_gc_garbage_take(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(shr_gc_set_debug(h, SHR_GC_DEBUG_SAVEALL), 0);
    make_cycle(h);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2, "found unreachable");
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 0), 2, "kept, not freed");
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 0, "kept objects are reachable from this process");
    shr_ref_t g[4] = {{0}};
    cr_assert_eq(shr_gc_garbage_take(h, g, 1), 1);
    cr_assert_eq(shr_gc_garbage_take(h, g + 1, 4), 1);
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 0), 0, "taken");
    cr_assert_eq(shr_obj_type(h, g[0]), SHR_TYPE_NODE);
    cr_assert_eq(shr_obj_refcount(h, g[0]), 2, "its partner's slot and the caller's reference");
    shr_ref_t other;
    cr_assert_eq(shr_obj_get(h, g[0], 0, &other), 0);
    cr_assert_eq(other.off, g[1].off, "the cycle is whole");
    shr_obj_release(h, other);
    shr_obj_release(h, g[0]);
    shr_obj_release(h, g[1]);
    cr_assert_eq(shr_gc_set_debug(h, 0), 0);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2, "released: garbage again, and freed");
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

Test(gc_module, saveall_garbage_held_at_close_is_released)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_heap_t *h2;
    cr_assert_eq(shr_heap_attach(shr_heap_name(h), &h2), 0);
    cr_assert_eq(shr_gc_set_debug(h2, SHR_GC_DEBUG_LEAK), 0);
    make_cycle(h2);
    cr_assert_eq(shr_gc_collect(h2, 2, NULL), 2);
    shr_heap_close(h2);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2, "the closed handle's saved garbage is garbage again");
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

static int child_collects(void *arg)
{
    shr_heap_t *h;
    if (shr_heap_attach(arg, &h) != 0) return 10;
    if (shr_gc_get_freeze_count(h) != 2) return 11;
    int64_t n = shr_gc_collect(h, 2, NULL);
    make_cycle(h);
    int64_t m = shr_gc_collect(h, 2, NULL);
    shr_heap_close(h);
    if (n != 0) return 12; /* the frozen cycle is not examined */
    if (m != 2) return 13;
    return 0;
}

Test(gc_module, freeze_in_one_process_is_seen_by_a_collection_in_another)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    cr_assert_eq(shr_gc_get_freeze_count(h), 0);
    make_cycle(h);
    cr_assert_eq(shr_gc_freeze(h), 2);
    cr_assert_eq(shr_gc_get_freeze_count(h), 2);
    int64_t count[3];
    cr_assert_eq(shr_gc_get_count(h, count), 0);
    cr_assert_eq(count[0], 0, "freeze starts the counts again");
    shr_gc_stats_t before, after;
    cr_assert_eq(shr_gc_get_stats(h, &before), 0);
    pid_t pid = shr_test_fork(child_collects, (void *)shr_heap_name(h));
    cr_assert_eq(shr_test_wait(pid), 0);
    cr_assert_eq(shr_gc_get_stats(h, &after), 0);
    cr_assert_eq(after.gen[2].collections, before.gen[2].collections + 2, "the other process's collections count");
    cr_assert_eq(after.gen[2].collected, before.gen[2].collected + 2);
    cr_assert_geq(after.gen[2].pause_ns_max, after.gen[2].ttsp_ns_max > 0 ? 1 : 0);
    cr_assert_geq(after.gen[2].pause_ns_total, after.gen[2].pause_ns_max);
    shr_ref_t objs[4];
    cr_assert_eq(shr_gc_get_objects(h, 3, objs, 4), 2, "get_objects(3): the permanent generation");
    shr_obj_release(h, objs[0]);
    shr_obj_release(h, objs[1]);
    cr_assert_eq(shr_gc_unfreeze(h), 2);
    cr_assert_eq(shr_gc_get_freeze_count(h), 0);
    cr_assert_eq(shr_gc_get_objects(h, 2, NULL, 0), 2, "unfrozen into generation 2");
    cr_assert_eq(shr_gc_collect(h, 1, NULL), 0, "a young collection does not see generation 2");
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    cr_assert_eq(shr_gc_freeze(NULL), -EINVAL);
    cr_assert_eq(shr_gc_unfreeze(NULL), -EINVAL);
    cr_assert_eq(shr_gc_get_freeze_count(NULL), -EINVAL);
    done(h);
}

Test(gc_module, a_frozen_object_is_still_freed_by_its_count)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t a = node(h, 1);
    cr_assert_eq(shr_gc_freeze(h), 1);
    shr_obj_release(h, a);
    cr_assert_eq(shr_gc_get_freeze_count(h), 0);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

Test(gc_module, is_tracked_and_bad_refs)
{
    shr_heap_t *h = make_heap();
    shr_ref_t a = node(h, 0);
    cr_assert_eq(shr_gc_is_tracked(h, a), 1);
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, "l", NULL, 0, &l), 0);
    shr_ref_t lr;
    cr_assert_eq(shr_obj_lookup(h, "l", &lr), 0);
    cr_assert_eq(shr_gc_is_tracked(h, lr), 1, "a list is a container");
    shr_obj_release(h, lr);
    shr_list_close(l);
    cr_assert_eq(shr_gc_is_tracked(h, (shr_ref_t){0}), -EINVAL);
    cr_assert_eq(shr_gc_is_tracked(h, (shr_ref_t){a.off + 8}), -EINVAL);
    cr_assert_eq(shr_gc_is_tracked(NULL, a), -EINVAL);
    shr_obj_release(h, a);
    cr_assert_eq(shr_gc_is_tracked(h, a), -EINVAL, "released: not held");
    done(h);
}

Test(gc_module, get_referents_hands_out_new_references)
{
    shr_heap_t *h = make_heap();
    uint64_t base = baseline(h);
    shr_ref_t p = node(h, 4), a = node(h, 0), b = node(h, 0);
    cr_assert_eq(shr_obj_set(h, p, 0, a), 0);
    cr_assert_eq(shr_obj_set(h, p, 2, b), 0);
    cr_assert_eq(shr_obj_set(h, p, 3, a), 0);
    shr_ref_t out[8] = {{0}};
    cr_assert_eq(shr_gc_get_referents(h, p, out, 8), 3, "a twice, b once; empty slots are not objects");
    int na = 0, nb = 0;
    for (int i = 0; i < 3; i++) {
        na += out[i].off == a.off;
        nb += out[i].off == b.off;
    }
    cr_assert_eq(na, 2);
    cr_assert_eq(nb, 1);
    cr_assert_eq(shr_obj_refcount(h, a), 5, "its own, two slots, two handed out");
    for (int i = 0; i < 3; i++) shr_obj_release(h, out[i]);
    cr_assert_eq(shr_obj_refcount(h, a), 3);
    shr_ref_t one[1] = {{0}};
    cr_assert_eq(shr_gc_get_referents(h, p, one, 1), 3, "the count, though only one fits");
    cr_assert_neq(one[0].off, 0);
    shr_obj_release(h, one[0]);
    cr_assert_eq(shr_obj_refcount(h, a), 3, "what did not fit was not kept");
    cr_assert_eq(shr_obj_refcount(h, b), 2);
    cr_assert_eq(shr_gc_get_referents(h, a, NULL, 0), 0);
    cr_assert_eq(shr_gc_get_referents(h, p, NULL, 1), -EINVAL);
    cr_assert_eq(shr_gc_get_referents(h, (shr_ref_t){0}, out, 8), -EINVAL);
    cr_assert_eq(shr_gc_get_referents(NULL, p, out, 8), -EINVAL);
    /* get_referrers: who refers to a. */
    shr_ref_t q = node(h, 1);
    cr_assert_eq(shr_obj_set(h, q, 0, a), 0);
    cr_assert_eq(shr_gc_get_referrers(h, a, out, 8), 2, "p (once, though in two slots) and q");
    cr_assert((out[0].off == p.off && out[1].off == q.off) || (out[0].off == q.off && out[1].off == p.off));
    shr_obj_release(h, out[0]);
    shr_obj_release(h, out[1]);
    cr_assert_eq(shr_gc_get_referrers(h, p, NULL, 0), 0);
    cr_assert_eq(shr_gc_get_referrers(h, (shr_ref_t){0}, NULL, 0), -EINVAL);
    /* get_objects by generation. */
    cr_assert_eq(shr_gc_get_objects(h, 0, NULL, 0), 4);
    cr_assert_eq(shr_gc_collect(h, 0, NULL), 0);
    cr_assert_eq(shr_gc_get_objects(h, 0, NULL, 0), 0);
    cr_assert_eq(shr_gc_get_objects(h, 1, NULL, 0), 4, "the survivors moved to generation 1");
    cr_assert_eq(shr_gc_get_objects(h, -1, NULL, 0), 4);
    cr_assert_eq(shr_gc_get_objects(h, -2, NULL, 0), -EINVAL);
    cr_assert_eq(shr_gc_get_objects(h, 4, NULL, 0), -EINVAL);
    cr_assert_eq(shr_gc_get_objects(h, 0, NULL, 3), -EINVAL);
    shr_obj_release(h, p);
    shr_obj_release(h, q);
    shr_obj_release(h, a);
    shr_obj_release(h, b);
    cr_assert_eq(shr_test_blocks_in_use(h), base);
    done(h);
}

typedef struct cb_log {
    int calls;
    char phase[8][8];
    shr_gc_info_t info[8];
    int64_t nested;
    int made;
} cb_log_t;

static void cb(shr_heap_t *h, const char *phase, const shr_gc_info_t *info, void *arg)
{
    cb_log_t *l = arg;
    if (l->calls < 8) {
        snprintf(l->phase[l->calls], sizeof l->phase[0], "%s", phase);
        l->info[l->calls] = *info;
    }
    l->calls++;
    l->nested = shr_gc_collect(h, 0, NULL);
    shr_ref_t r; /* the heap may be used */
    if (shr_obj_new(h, SHR_TYPE_NODE, 0, 0, &r) == 0) {
        l->made++;
        shr_obj_release(h, r);
    }
}

Test(gc_module, callbacks_at_start_and_stop)
{
    shr_heap_t *h = make_heap();
    cb_log_t log = {0};
    cr_assert_eq(shr_gc_callback_add(h, cb, &log), 0);
    cr_assert_eq(shr_gc_callback_add(h, cb, &log), -EEXIST);
    cr_assert_eq(shr_gc_callback_add(h, NULL, &log), -EINVAL);
    cr_assert_eq(shr_gc_callback_add(NULL, cb, &log), -EINVAL);
    make_cycle(h);
    cr_assert_eq(shr_gc_collect(h, 1, NULL), 2);
    cr_assert_eq(log.calls, 2);
    cr_assert_str_eq(log.phase[0], "start");
    cr_assert_eq(log.info[0].generation, 1);
    cr_assert_eq(log.info[0].collected, 0);
    cr_assert_str_eq(log.phase[1], "stop");
    cr_assert_eq(log.info[1].generation, 1);
    cr_assert_eq(log.info[1].collected, 2);
    cr_assert_eq(log.info[1].uncollectable, 0);
    cr_assert_eq(log.nested, -EDEADLK, "a collection from a callback is refused");
    cr_assert_eq(log.made, 2, "a callback may use the heap");
    /* Automatic collections call them too. */
    const uint32_t t[3] = {10, 10, 10};
    cr_assert_eq(shr_gc_set_threshold(h, t), 0);
    for (int i = 0; i < 100; i++) make_cycle(h);
    cr_assert_gt(log.calls, 2);
    cr_assert_eq(log.calls % 2, 0, "each start has its stop");
    cr_assert_eq(shr_gc_callback_remove(h, cb, &log), 0);
    cr_assert_eq(shr_gc_callback_remove(h, cb, &log), -ENOENT);
    cr_assert_eq(shr_gc_callback_remove(h, NULL, NULL), -EINVAL);
    int calls = log.calls;
    shr_gc_collect(h, 2, NULL);
    cr_assert_eq(log.calls, calls, "removed");
    for (int i = 0; i < SHR_GC_CALLBACKS_MAX; i++) cr_assert_eq(shr_gc_callback_add(h, cb, (char *)&log + i), 0);
    cr_assert_eq(shr_gc_callback_add(h, cb, (char *)&log + 100), -ENOSPC);
    for (int i = 0; i < SHR_GC_CALLBACKS_MAX; i++) cr_assert_eq(shr_gc_callback_remove(h, cb, (char *)&log + i), 0);
    done(h);
}

static int child_of_saveall(void *arg)
{
    shr_heap_t *h = arg; /* the parent's handle, inherited */
    if (shr_gc_garbage_take(h, NULL, 0) != 0) return 30; /* the parent's leases are not this process's */
    if (shr_gc_get_debug(h) != (int)SHR_GC_DEBUG_SAVEALL) return 31; /* the flags carry over */
    return 0;
}

Test(gc_module, a_fork_child_does_not_inherit_the_saved_garbage)
{
    shr_heap_t *h = make_heap();
    cr_assert_eq(shr_gc_set_debug(h, SHR_GC_DEBUG_SAVEALL), 0);
    make_cycle(h);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2);
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 0), 2);
    pid_t pid = shr_test_fork(child_of_saveall, h);
    cr_assert_eq(shr_test_wait(pid), 0);
    cr_assert_eq(shr_gc_garbage_take(h, NULL, 0), 2, "the parent's are still its own");
    shr_ref_t g[2];
    cr_assert_eq(shr_gc_garbage_take(h, g, 2), 2);
    shr_obj_release(h, g[0]);
    shr_obj_release(h, g[1]);
    cr_assert_eq(shr_gc_set_debug(h, 0), 0);
    cr_assert_eq(shr_gc_collect(h, 2, NULL), 2);
    done(h);
}
