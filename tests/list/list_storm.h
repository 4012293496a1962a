/* Shared by the list's multiproc (short) and stress (long) suites: writers
 * in several processes keep replacing strings that carry their own checksum,
 * readers in other processes verify every string they read; and a writer
 * SIGKILLed at random moments in the middle of sets, appends and pops. */
#ifndef SHR_TEST_LIST_STORM_H
#define SHR_TEST_LIST_STORM_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define STORM_ITEMS 64

static uint32_t fnv32(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

/* "cccccccc" + payload, where cccccccc is the hex FNV of the payload. */
static size_t make_checked(char *buf, unsigned *seed)
{
    size_t n = 1 + (size_t)(rand_r(seed) % 300);
    for (size_t i = 0; i < n; i++) buf[8 + i] = (char)('a' + rand_r(seed) % 26);
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", fnv32(buf + 8, n));
    memcpy(buf, hex, 8);
    return n + 8;
}

static bool checked_ok(const char *s, size_t n)
{
    if (n < 9) return false;
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", fnv32(s + 8, n - 8));
    return memcmp(hex, s, 8) == 0;
}

/* Verify every item of the list: ints, or checked strings. */
static int verify_list(shr_heap_t *h, shr_list_t *l)
{
    int bad = 0;
    int64_t n = shr_list_len(l);
    for (int64_t i = 0; i < n; i++) {
        shr_value_t v;
        int rc = shr_list_get(l, i, &v);
        if (rc == SHR_EINDEX) break; /* shrunk meanwhile */
        if (rc) return -1;
        if (v.type == SHR_STR) bad += !checked_ok(v.u.s.data, v.u.s.len);
        else bad += v.type != SHR_INT;
        shr_value_release(h, &v);
    }
    return bad;
}

typedef struct storm_cfg {
    shr_heap_t *h;
    const char *name;
    unsigned seed;
    unsigned ms;      /* 0: until killed */
    int structural;   /* also append and pop */
    shr_test_gate_t *attached; /* opened once the list is attached, or NULL */
} storm_cfg_t;

static int storm_writer(void *arg)
{
    storm_cfg_t *c = arg;
    shr_list_t *l;
    if (shr_list_attach(c->h, c->name, &l) != 0) return 10;
    if (c->attached) shr_test_gate_open(c->attached);
    char buf[400];
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);
    uint64_t end = c->ms ? (uint64_t)t0.tv_sec * 1000 + (uint64_t)t0.tv_nsec / 1000000 + c->ms : 0;
    unsigned seed = c->seed;
    for (uint64_t it = 0;; it++) {
        if (end && (it & 255) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 > end) break;
        }
        unsigned r = (unsigned)rand_r(&seed);
        shr_value_t v = shr_strn(buf, make_checked(buf, &seed));
        if (c->structural && r % 8 == 0) {
            if (shr_list_append(l, &v) != 0) return 11;
        } else if (c->structural && r % 8 == 1) {
            if (shr_list_len(l) > STORM_ITEMS) shr_list_pop(l, (int64_t)(r % STORM_ITEMS), NULL);
        } else {
            if (shr_list_set(l, (int64_t)(r % STORM_ITEMS), &v) != 0) return 12;
        }
    }
    shr_list_close(l);
    return 0;
}

/* Readers verify every string they read for c->ms: with a reference
 * (shr_list_get), or copied lock-free (shr_list_read_copy: every copy kept
 * must be a whole string some writer stored, never one torn by a move or
 * read from a block freed and reused meanwhile; a string longer than the
 * buffer is got with a reference instead). Returns 20 on a bad string, and
 * 21 for a copying reader that never copied one. */
static int storm_read(storm_cfg_t *c, bool copy)
{
    shr_list_t *l;
    if (shr_list_attach(c->h, c->name, &l) != 0) return 10;
    unsigned seed = c->seed;
    int bad = 0;
    uint64_t copied = 0;
    _Alignas(16) char buf[224];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 256; i++) {
            shr_value_t v;
            int64_t at = (int64_t)(rand_r(&seed) % STORM_ITEMS);
            int rc = copy ? shr_list_read_copy(l, at, &v, buf, sizeof buf) : 1;
            if (rc == 0) {
                copied++;
                if (v.type != SHR_STR || v.u.s.data != buf || !checked_ok(v.u.s.data, v.u.s.len)) bad++;
                continue;
            }
            if (rc != 1 || shr_list_get(l, at, &v) != 0) return 13;
            if (v.type != SHR_STR || !checked_ok(v.u.s.data, v.u.s.len)) bad++;
            shr_value_release(c->h, &v);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < (long)c->ms);
    shr_list_close(l);
    return bad ? 20 : copy && !copied ? 21 : 0;
}

__attribute__((unused)) static int storm_reader(void *arg) { return storm_read(arg, false); }
__attribute__((unused)) static int storm_copy_reader(void *arg) { return storm_read(arg, true); }

static shr_list_t *storm_list(shr_heap_t *h, const char *name)
{
    char buf[400];
    unsigned seed = 1;
    shr_value_t in[STORM_ITEMS];
    char *keep[STORM_ITEMS];
    for (int i = 0; i < STORM_ITEMS; i++) {
        size_t n = make_checked(buf, &seed);
        keep[i] = malloc(n);
        memcpy(keep[i], buf, n);
        in[i] = shr_strn(keep[i], n);
    }
    shr_list_t *l;
    cr_assert_eq(shr_list_create(h, name, in, STORM_ITEMS, &l), 0);
    for (int i = 0; i < STORM_ITEMS; i++) free(keep[i]);
    return l;
}

static uint64_t storm_blocks(shr_heap_t *h) { return shr_test_blocks_in_use(h); }

/* Kill a writer doing sets, appends and pops `kills` times; after each kill
 * the list must be whole and the heap sound, and at the end only what the
 * dead had in flight may leak. */
static void list_kill_storm(int kills, unsigned seed)
{
    shr_heap_t *h;
    cr_assert_eq(shr_heap_create(shr_test_name(), NULL, &h), 0);
    uint64_t base = storm_blocks(h);
    shr_list_t *l = storm_list(h, "storm");
    shr_test_gate_t gate;
    shr_test_gate_init(&gate);
    storm_cfg_t cfg = {.h = h, .name = "storm", .structural = 1, .attached = &gate};
    int killed = 0;
    for (int k = 0; k < kills; k++) {
        cfg.seed = seed + (unsigned)k;
        pid_t pid = shr_test_fork(storm_writer, &cfg);
        cr_assert(shr_test_gate_wait(&gate, 10000), "writer did not attach");
        shr_test_sleep_ms(5 + (unsigned)(rand_r(&seed) % 40));
        kill(pid, SIGKILL);
        int st = shr_test_wait(pid);
        cr_assert(st == 128 + SIGKILL, "writer ended with %d", st);
        killed++;
        cr_assert_geq(shr_heap_recover(h), 0);
        /* The list is whole: every item an int or an intact string, and the
         * lock (perhaps held by the dead) can be taken. */
        cr_assert_eq(verify_list(h, l), 0, "damaged item after kill %d", k);
        shr_value_t v = shr_int(k);
        cr_assert_eq(shr_list_set(l, 0, &v), 0);
        cr_assert_eq(shr_heap_check_report(h, stderr), 0, "heap check after kill %d", k);
    }
    shr_lease_stats_t gs;
    cr_assert_eq(shr_lease_stats(h, &gs), 0);
    cr_assert_geq(gs.released_for_dead, (uint64_t)killed, "the dead's handles were released");
    shr_list_close(l);
    cr_assert_eq(shr_list_unlink(h, "storm"), 0);
    shr_heap_collect(h);
    uint64_t left = storm_blocks(h);
    /* Each kill may leak what it had in flight: a new string made but not
     * yet stored, a replaced one not yet released, a copy-on-write array. */
    cr_assert_leq(left, base + 1 + 3 * (uint64_t)killed, "left %llu blocks after %d kills (base %llu)",
                  (unsigned long long)left, killed, (unsigned long long)base);
    cr_log_info("list kill storm: %d kills, %llu blocks leaked", killed,
                (unsigned long long)(left > base + 1 ? left - base - 1 : 0));
    cr_assert_eq(shr_heap_check_report(h, stderr), 0);
    shr_heap_close(h);
}

#endif
