/* The collector from many threads at once, for ThreadSanitizer (Criterion's
 * runner does not start under TSan): three threads build rings of nodes and
 * cycles of lists, store them in a shared list and read them back, while a
 * fourth collects in a loop and the builders' own allocations trigger
 * automatic collections, and a fifth uses the rest of the module (callbacks
 * added and removed, disable/enable, snapshots, freeze/unfreeze); the
 * fourth also runs the backup mark-sweep and the verifier. Every ring read must be whole (nothing reachable
 * freed); at the end the garbage is gone and the heap checks clean. Exits 0
 * when every check held. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sharena.h"

enum { NBUILDERS = 3, ROUNDS = 400, RING = 3 };
static shr_heap_t *heap;
static shr_list_t *shared;
static int bacon_rajan; /* argv[1] "bacon-rajan": the heap selects it, the collector alternates */
static atomic_int builders_left = NBUILDERS;

#define FAIL(code)                                                          \
    do {                                                                    \
        fprintf(stderr, "gc threads: check %d failed (line %d)\n", code, __LINE__); \
        exit(code);                                                         \
    } while (0)

static shr_ref_t ring(long tag)
{
    shr_ref_t first, prev, x;
    if (shr_obj_new(heap, SHR_TYPE_NODE, 1, 16, &first)) FAIL(2);
    snprintf(shr_obj_payload(heap, first, NULL), 16, "r%ld", tag);
    prev = first;
    for (int i = 1; i < RING; i++) {
        if (shr_obj_new(heap, SHR_TYPE_NODE, 1, 16, &x)) FAIL(3);
        snprintf(shr_obj_payload(heap, x, NULL), 16, "r%ld", tag);
        if (shr_obj_set(heap, prev, 0, x)) FAIL(4);
        if (prev.off != first.off) shr_obj_release(heap, prev);
        prev = x;
    }
    if (shr_obj_set(heap, prev, 0, first)) FAIL(5);
    shr_obj_release(heap, prev);
    return first;
}

static void check_ring(shr_ref_t head)
{
    char want[16];
    snprintf(want, sizeof want, "%s", (const char *)shr_obj_payload(heap, head, NULL));
    shr_ref_t cur;
    if (shr_obj_dup(heap, head, &cur)) FAIL(6);
    for (int i = 0; i < RING; i++) {
        const char *p = shr_obj_payload(heap, cur, NULL);
        if (!p || strcmp(p, want) != 0) FAIL(7);
        shr_ref_t next;
        if (shr_obj_get(heap, cur, 0, &next) || !next.off) FAIL(8);
        shr_obj_release(heap, cur);
        cur = next;
    }
    if (cur.off != head.off) FAIL(9);
    shr_obj_release(heap, cur);
}

static void *builder(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        shr_ref_t r = ring(id * 100000 + i);
        shr_value_t v = shr_refval(r);
        if (shr_list_set(shared, (int64_t)((id * 7 + i) % 16), &v)) FAIL(10);
        shr_obj_release(heap, r);
        shr_list_t *a, *b;
        if (shr_list_create(heap, NULL, NULL, 0, &a) || shr_list_create(heap, NULL, NULL, 0, &b)) FAIL(11);
        shr_value_t va = shr_listval(a), vb = shr_listval(b);
        if (shr_list_append(a, &vb) || shr_list_append(b, &va)) FAIL(12);
        shr_list_close(a);
        shr_list_close(b);
        shr_value_t got;
        if (shr_list_get(shared, (int64_t)(i % 16), &got)) FAIL(13);
        if (got.type == SHR_REF) check_ring(got.u.ref);
        shr_value_release(heap, &got);
    }
    atomic_fetch_sub(&builders_left, 1);
    return NULL;
}

static atomic_long cb_start, cb_stop;

static void on_gc(shr_heap_t *h, const char *phase, const shr_gc_info_t *info, void *arg)
{
    (void)h;
    (void)arg;
    if (info->generation < 0 || info->generation > 2) FAIL(20);
    atomic_fetch_add(strcmp(phase, "start") == 0 ? &cb_start : &cb_stop, 1);
}

static void *module_user(void *arg)
{
    (void)arg;
    if (shr_gc_callback_add(heap, on_gc, NULL)) FAIL(21);
    for (int i = 0; atomic_load(&builders_left) > 0; i++) {
        if (i % 2) shr_gc_disable(heap);
        else shr_gc_enable(heap);
        if (shr_gc_get_objects(heap, -1, NULL, 0) < 0) FAIL(22);
        shr_value_t got;
        if (shr_list_get(shared, (int64_t)(i % 16), &got)) FAIL(23);
        if (got.type == SHR_REF) {
            shr_ref_t out[2];
            int64_t n = shr_gc_get_referents(heap, got.u.ref, out, 2);
            if (n != 1) FAIL(24); /* a ring node refers to the next */
            shr_obj_release(heap, out[0]);
        }
        shr_value_release(heap, &got);
        if (i % 8 == 0) {
            if (shr_gc_freeze(heap) < 0) FAIL(25);
            if (shr_gc_unfreeze(heap) < 0) FAIL(26);
        }
        shr_gc_callback_remove(heap, on_gc, (void *)1);
        shr_gc_callback_add(heap, on_gc, (void *)1);
        usleep(500);
    }
    shr_gc_enable(heap);
    shr_gc_callback_remove(heap, on_gc, (void *)1);
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    for (unsigned round = 0; atomic_load(&builders_left) > 0; round++) {
        /* Every third round the backup mark-sweep (repairing counts), and
         * the verifier, which must never find a count below its true value. */
        int64_t n = round % 3 == 2 ? shr_gc_collect_with(heap, SHR_GC_MARK_SWEEP | SHR_GC_REPAIR, 2, NULL)
                    : bacon_rajan && round % 3 == 1 ? shr_gc_collect_with(heap, SHR_GC_BACON_RAJAN, 0, NULL)
                                                    : shr_gc_collect(heap, 2, NULL);
        if (n < 0) {
            fprintf(stderr, "collect: %s\n", shr_strerror((int)n));
            FAIL(14);
        }
        if (round % 3 == 1) {
            shr_gc_verify_result_t v = SHR_GC_VERIFY_INIT;
            int rc = shr_gc_verify(heap, &v);
            if (rc != 0 || v.below != 0 || v.dangling != 0) {
                fprintf(stderr, "verify: %d, below %llu, dangling %llu\n", rc, (unsigned long long)v.below,
                        (unsigned long long)v.dangling);
                FAIL(29);
            }
        }
        usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char name[64];
    snprintf(name, sizeof name, "t_gc_threads_%d", (int)getpid());
    if (shr_heap_create(name, NULL, &heap)) FAIL(1);
    uint32_t t[3] = {200, 10, 10};
    shr_gc_set_threshold(heap, t);
    /* Bacon and Rajan's: the builders' decrefs buffer roots in their rings,
     * automatic collections and every third of the collector's run it. */
    bacon_rajan = argc > 1 && strcmp(argv[1], "bacon-rajan") == 0;
    if (bacon_rajan && shr_gc_set_algorithm(heap, SHR_GC_BACON_RAJAN) != 0) FAIL(30);
    shr_value_t none = shr_none();
    shr_value_t vals[16];
    for (int i = 0; i < 16; i++) vals[i] = none;
    if (shr_list_create(heap, NULL, vals, 16, &shared)) FAIL(15);
    pthread_t th[NBUILDERS + 2];
    for (long i = 0; i < NBUILDERS; i++) pthread_create(&th[i], NULL, builder, (void *)i);
    pthread_create(&th[NBUILDERS], NULL, collector, NULL);
    pthread_create(&th[NBUILDERS + 1], NULL, module_user, NULL);
    for (int i = 0; i <= NBUILDERS + 1; i++) pthread_join(th[i], NULL);
    shr_list_close(shared);
    if (shr_gc_collect(heap, 2, NULL) < 0) FAIL(16);
    if (bacon_rajan && shr_gc_collect_with(heap, SHR_GC_BACON_RAJAN, 2, NULL) < 0) FAIL(31);
    shr_gc_stats_t st;
    shr_gc_get_stats(heap, &st);
    uint64_t collected = st.gen[0].collected + st.gen[1].collected + st.gen[2].collected;
    if (collected < (uint64_t)NBUILDERS * ROUNDS * 2) FAIL(17); /* at least the list cycles */
    if (shr_heap_check(heap) != 0) FAIL(18);
    if (atomic_load(&cb_start) == 0 || atomic_load(&cb_start) != atomic_load(&cb_stop)) FAIL(27);
    if (shr_gc_get_freeze_count(heap) != 0) FAIL(28);
    shr_heap_close(heap);
    shr_heap_unlink(name);
    printf("gc threads%s: ok, %llu collected\n", bacon_rajan ? " (bacon-rajan)" : "", (unsigned long long)collected);
    return 0;
}
