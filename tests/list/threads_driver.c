/* The list's read sections from many threads, for ThreadSanitizer
 * (Criterion's runner does not start under TSan): two threads read items
 * and the length with no lock while the main thread grows the list to
 * 60,000 items and pops it back to 100, four times (each growth past 2048
 * items and each shrink frees arrays after a grace period), and a third
 * thread takes and writes what the heap gives back, so that a reader still
 * in a freed array would race with it. Item i always holds i.
 * Then the walks of count and index, which compare strings in read sections
 * with no lock: two threads count and look for "needle" in a list whose
 * first 10 items are "needle" and never change, while the main thread sets
 * the other items to fresh strings, pops them from the end and appends new
 * ones (each dropped string released after a grace period), and the reuser
 * writes over what the heap gives back: a walk that read a string freed
 * under it would race with the reuser, or miscount.
 * Last, the lock-free copies of short strings (shr_list_read_copy): two
 * threads copy random items, each a string that repeats one number twice,
 * while the main thread replaces them (each old string freed at once) and
 * the reuser writes over memory; a copy kept from a freed or half-moved
 * string would not repeat its number. The copy itself is not checked by
 * TSan (it may read a freed block, which the sequence counter then
 * discards); the loads that decide whether to keep it are. Exits 0 when
 * every check held.
 * Then a compact list (<sharena/solo.h>): two threads read its items with
 * no lock while two others set them (the page's lock between them), each
 * a string that repeats one number twice, of lengths that move some into
 * new slots and rewrite others in place. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sharena.h"

static shr_heap_t *heap;
static shr_list_t *list;
static atomic_int stop, bad;
static atomic_long reads;

#define FAIL(code)                                                                   \
    do {                                                                             \
        fprintf(stderr, "list threads: check %d failed (line %d)\n", code, __LINE__); \
        exit(code);                                                                  \
    } while (0)

static void *reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop)) {
        int64_t n = shr_list_len(list);
        if (n < 0) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        int64_t i = n ? (int64_t)(rand_r(&seed) % (unsigned)n) : 0;
        shr_value_t v;
        int rc = shr_list_get(list, i, &v);
        if (rc == SHR_EINDEX) continue;
        if (rc != 0 || v.type != SHR_INT || v.u.i != i) atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

#define NEEDLES 10

static void *walker(void *arg)
{
    (void)arg;
    shr_value_t needle = shr_str("needle");
    while (!atomic_load(&stop)) {
        size_t n = 0, at = 99;
        if (shr_list_count(list, &needle, &n) != 0 || n != NEEDLES) atomic_fetch_add(&bad, 1);
        if (shr_list_index(list, &needle, &at) != 0 || at != 0) atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

/* "n|n": the same number twice. */
static int twice_ok(const char *s, size_t n)
{
    char a[32];
    const char *bar = memchr(s, '|', n);
    if (!bar || (size_t)(bar - s) * 2 + 1 != n || (size_t)(bar - s) >= sizeof a) return 0;
    memcpy(a, s, (size_t)(bar - s));
    return memcmp(a, bar + 1, (size_t)(bar - s)) == 0;
}

static void *copier(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[64];
    while (!atomic_load(&stop)) {
        shr_value_t v;
        int rc = shr_list_read_copy(list, (int64_t)(rand_r(&seed) % 100), &v, buf, sizeof buf);
        if (rc == 1) continue; /* kept colliding with the writer */
        if (rc != 0 || v.type != SHR_STR || !twice_ok(v.u.s.data, v.u.s.len)) atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static shr_solo_t *solo;

static void *solo_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[64];
    while (!atomic_load(&stop)) {
        shr_value_t v;
        int rc = shr_solo_read(solo, (int64_t)(rand_r(&seed) % 20), &v, buf, sizeof buf);
        if (rc != 0 || v.type != SHR_STR || !twice_ok(v.u.s.data, v.u.s.len)) atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static void *solo_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char buf[64];
    for (int k = 0; k < 30000; k++) {
        long x = (long)(rand_r(&seed) % (k % 3 ? 1000 : 100000000));
        snprintf(buf, sizeof buf, "%ld|%ld", x, x);
        shr_value_t v = shr_str(buf);
        if (shr_solo_set(solo, (int64_t)(rand_r(&seed) % 20), &v) != 0) atomic_fetch_add(&bad, 1);
    }
    return NULL;
}

static void *reuser(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {4000, 40000, 140000, 600000};
    for (unsigned k = 0; !atomic_load(&stop); k++) {
        unsigned char *p = shr_malloc(heap, sizes[k % 4]);
        if (!p) continue;
        memset(p, 0xA5, sizes[k % 4]);
        shr_free(heap, p);
    }
    return NULL;
}

int main(void)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags |= SHR_HEAP_PRIVATE;
    if (shr_heap_create(NULL, &o, &heap)) FAIL(1);
    if (shr_list_create(heap, NULL, NULL, 0, &list)) FAIL(2);
    pthread_t t[3];
    if (pthread_create(&t[0], NULL, reader, (void *)1) || pthread_create(&t[1], NULL, reader, (void *)2) ||
        pthread_create(&t[2], NULL, reuser, NULL))
        FAIL(3);
    for (int round = 0; round < 4; round++) {
        for (int64_t i = shr_list_len(list); i < 60000; i++) {
            shr_value_t v = shr_int(i);
            if (shr_list_append(list, &v)) FAIL(4);
        }
        while (shr_list_len(list) > 100)
            if (shr_list_pop(list, -1, NULL)) FAIL(5);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    if (atomic_load(&bad)) FAIL(6);
    if (atomic_load(&reads) == 0) FAIL(7);
    long item_reads = atomic_load(&reads);
    shr_list_close(list);
    if (shr_heap_check_report(heap, stderr)) FAIL(8);

    /* Walks over strings. */
    if (shr_list_create(heap, NULL, NULL, 0, &list)) FAIL(9);
    char buf[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(buf, sizeof buf, i < NEEDLES ? "needle" : "hay-%d", i);
        shr_value_t v = shr_str(buf);
        if (shr_list_append(list, &v)) FAIL(10);
    }
    shr_lease_stats_t ls;
    if (shr_lease_stats(heap, &ls)) FAIL(16);
    uint64_t leases_before = ls.leases;
    atomic_store(&stop, 0);
    atomic_store(&reads, 0);
    if (pthread_create(&t[0], NULL, walker, NULL) || pthread_create(&t[1], NULL, walker, NULL) ||
        pthread_create(&t[2], NULL, reuser, NULL))
        FAIL(11);
    for (int k = 0; k < 20000 || atomic_load(&reads) < 20; k++) {
        snprintf(buf, sizeof buf, "hay, set %d", k);
        shr_value_t v = shr_str(buf);
        if (shr_list_set(list, NEEDLES + k % 2990, &v)) FAIL(12);
        if (k % 7 == 0) {
            if (shr_list_pop(list, -1, NULL)) FAIL(13);
            snprintf(buf, sizeof buf, "hay, appended %d", k);
            v = shr_str(buf);
            if (shr_list_append(list, &v)) FAIL(14);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    if (atomic_load(&bad)) FAIL(15);
    if (shr_lease_stats(heap, &ls) || ls.leases != leases_before) FAIL(16); /* the deferred are not leases held */
    shr_list_close(list);
    if (shr_heap_check_report(heap, stderr)) FAIL(17);
    long walks = atomic_load(&reads);

    /* Lock-free copies of strings replaced under them. */
    if (shr_list_create(heap, NULL, NULL, 0, &list)) FAIL(18);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "%d|%d", i, i);
        shr_value_t v = shr_str(buf);
        if (shr_list_append(list, &v)) FAIL(19);
    }
    atomic_store(&stop, 0);
    atomic_store(&reads, 0);
    if (pthread_create(&t[0], NULL, copier, (void *)3) || pthread_create(&t[1], NULL, copier, (void *)4) ||
        pthread_create(&t[2], NULL, reuser, NULL))
        FAIL(20);
    for (int k = 0; k < 50000 || atomic_load(&reads) < 20; k++) {
        long x = (long)k * 7919 % 100000007;
        snprintf(buf, sizeof buf, "%ld|%ld", x, x);
        shr_value_t v = shr_str(buf);
        if (shr_list_set(list, k % 100, &v)) FAIL(21);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    if (atomic_load(&bad)) FAIL(22);
    shr_list_close(list);
    if (shr_heap_check_report(heap, stderr)) FAIL(23);
    shr_heap_close(heap);
    long copies = atomic_load(&reads);

    /* A compact list's lock-free reads against two writers. */
    char name[64];
    snprintf(name, sizeof name, "t_list_threads_%d", (int)getpid());
    shr_value_t init[20];
    for (int i = 0; i < 20; i++) init[i] = shr_str("0|0");
    if (shr_solo_create(name, init, 20, 0, &solo)) FAIL(24);
    atomic_store(&stop, 0);
    atomic_store(&reads, 0);
    pthread_t w[2];
    if (pthread_create(&t[0], NULL, solo_reader, (void *)5) || pthread_create(&t[1], NULL, solo_reader, (void *)6) ||
        pthread_create(&w[0], NULL, solo_writer, (void *)7) || pthread_create(&w[1], NULL, solo_writer, (void *)8))
        FAIL(25);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    if (atomic_load(&bad)) FAIL(26);
    if (shr_solo_check(solo, stderr) != 0) FAIL(27);
    shr_solo_close(solo);
    shr_heap_unlink(name);
    printf("list threads: %ld reads, all whole; %ld walks over strings, all right; %ld copies, all whole; "
           "%ld reads of a compact list, all whole\n",
           item_reads, walks, copies, (long)atomic_load(&reads));
    return 0;
}
