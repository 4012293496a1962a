/* What the collector's benchmark programs (bench_gc, bench_gc_order,
 * bench_gc_recover) share: the clock, medians, the fatal error, a fresh
 * private heap with automatic collection off, the --list=N,N parser and the
 * algorithms' names. Header-only, each program includes it once; a program
 * sets gcb_prog (its name in messages) first thing in main. */
#ifndef SHB_GC_COMMON_H
#define SHB_GC_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sharena.h"

static const char *gcb_prog = "bench_gc"; /* set by main */

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (n >= 1), v left as it is. */
static inline uint64_t median(const uint64_t *v, int n)
{
    uint64_t small[64], *c = n <= 64 ? small : malloc((size_t)n * sizeof *c);
    if (!c) abort();
    memcpy(c, v, (size_t)n * sizeof *v);
    qsort(c, (size_t)n, sizeof *c, cmp_u64);
    uint64_t m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    if (c != small) free(c);
    return m;
}

static inline uint64_t min_u64(const uint64_t *v, int n)
{
    uint64_t m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static inline void die(const char *what, int64_t rc)
{
    fprintf(stderr, "%s: %s: %s (%lld)\n", gcb_prog, what, shr_strerror((int)rc), (long long)rc);
    exit(1);
}

/* A private heap of 8 GiB reserved, automatic collection off (threshold 0). */
static inline shr_heap_t *fresh_heap(void)
{
    shr_heap_options_t o;
    shr_heap_t *h;
    shr_heap_options_init(&o);
    o.flags |= SHR_HEAP_PRIVATE;
    o.capacity = (size_t)8 << 30;
    int rc = shr_heap_create(NULL, &o, &h);
    if (rc)
        die("shr_heap_create", rc);
    uint32_t off[3] = {0, 10, 10};
    if ((rc = shr_gc_set_threshold(h, off)) != 0)
        die("shr_gc_set_threshold", rc);
    return h;
}

/* "N,N,..." (each a number, 1e6 accepted) into out: how many, or -1. */
static inline int parse_list(const char *s, uint64_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return -1;
        out[n++] = (uint64_t)v;
        if (*end && *end != ',')
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* An algorithm's name in the programs' JSON. */
static inline const char *alg_name(int a)
{
    return a == SHR_GC_TRIAL_DELETION ? "trial_deletion" : a == SHR_GC_MARK_SWEEP ? "mark_sweep"
           : a == SHR_GC_BACON_RAJAN ? "bacon_rajan" : "?";
}

/* Whether the library accepts algorithm a (asked on an empty heap). */
static inline int supported(int a)
{
    shr_heap_t *h = fresh_heap();
    int64_t rc = shr_gc_collect_with(h, a, 2, NULL);
    shr_heap_close(h);
    if (rc == -EINVAL)
        return 0;
    if (rc < 0)
        die("shr_gc_collect_with (probe)", rc);
    return 1;
}

#endif
