/* Common helpers shared by every module: compiler hints, debug levels and
 * asserts, alignment arithmetic, atomics shorthands, time. Header-only and
 * internal: nothing here is part of the public API.
 *
 * Debug levels (SHR_DEBUG, set by the build; 0 in release):
 *   0  no checks beyond the cheap ones that guard against data written by
 *      another process (those are never compiled out: they return errors);
 *   1  misuse is caught and aborts with a message (double free, foreign
 *      pointer, offset out of range);
 *   2  internal asserts (SHR_ASSERT), lock-rank checks;
 *   3  validators run after the allocator's slow-path changes (arena lists
 *      after each arena change, a pool after each slow-path allocation).
 */
#ifndef SHR_COMMON_H
#define SHR_COMMON_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sharena.h"

#ifndef SHR_DEBUG
#define SHR_DEBUG 0
#endif

#define shr_likely(x) __builtin_expect(!!(x), 1)
#define shr_unlikely(x) __builtin_expect(!!(x), 0)
#define shr_noinline __attribute__((noinline))
#define shr_inline static inline __attribute__((always_inline))
#define shr_unused __attribute__((unused))

#define SHR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SHR_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uint64_t)(a)-1))
#define SHR_ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define SHR_IS_POW2(x) ((x) != 0 && ((x) & ((x)-1)) == 0)

/* Report and abort. Used for our own bugs (asserts) and, at debug level 1 and
 * above, for caller misuse that cannot be reported as an error. */
__attribute__((noreturn, cold, format(printf, 3, 4), unused)) static void
shr__panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sharena: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

#define SHR_PANIC(...) shr__panic(__FILE__, __LINE__, __VA_ARGS__)

/* Written as if (SHR_DEBUG >= n), not #if: every build compiles the check
 * (and type-checks it), and a release build drops it as dead code. */
#define SHR_ASSERT(c)                                                                \
    do {                                                                             \
        if (SHR_DEBUG >= 2 && shr_unlikely(!(c))) SHR_PANIC("assertion failed: %s", #c); \
    } while (0)

/* Assert that invariant `label` holds after a change (level >= 2). The label
 * is one of the numbered invariants in the header of the file or module that
 * keeps it (P1, A2, C1...), one meaning per label across the library. */
#define SHR_ASSERT_INV(label, c)                                                     \
    do {                                                                             \
        if (SHR_DEBUG >= 2 && shr_unlikely(!(c)))                                    \
            SHR_PANIC("invariant %s broken: %s", label, #c);                         \
    } while (0)

/* Misuse check (level >= 1): aborts with a message naming the misuse. */
#if SHR_DEBUG >= 1
#define SHR_MISUSE(c, ...)                                                           \
    do {                                                                             \
        if (shr_unlikely(c)) SHR_PANIC(__VA_ARGS__);                                 \
    } while (0)
#else
#define SHR_MISUSE(c, ...) ((void)0)
#endif

/* Defensive branches, SQLite style: ALWAYS(x) is expected true, NEVER(x)
 * expected false; debug builds assert it, release builds take the branch. */
#if SHR_DEBUG >= 2
#define SHR_ALWAYS(x) ((x) ? 1 : (SHR_PANIC("ALWAYS(%s) failed", #x), 0))
#define SHR_NEVER(x) ((x) ? (SHR_PANIC("NEVER(%s) failed", #x), 1) : 0)
#else
#define SHR_ALWAYS(x) shr_likely(x)
#define SHR_NEVER(x) shr_unlikely(x)
#endif

/* Atomics shorthands: explicit orders, spelled short. */
#define shr_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define shr_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define shr_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define shr_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

static inline uint64_t shr__now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* FNV-1a, 64 bit: the header checksum. */
static inline uint64_t shr__fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

#endif /* SHR_COMMON_H */
