/* What the libFuzzer targets share: a reader that decodes the input
 * into small numbers, heap names unique to the fuzzing process, and a
 * failure macro that reports the step that went wrong and aborts (libFuzzer
 * saves the input as a crash).
 *
 * Every target is deterministic for a given input: no clock, no random
 * source, no state carried from one input to the next except the template
 * heap of fuzz_segment, which is built once from fixed steps.
 */
#ifndef SHR_FUZZ_COMMON_H
#define SHR_FUZZ_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sharena.h"

/* ---- the input as a stream of numbers ---------------------------------- */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in_t;

static inline bool fz_more(const fz_in_t *in) { return in->n > 0; }

/* The next byte, or 0 once the input is used up. */
static inline uint8_t fz_u8(fz_in_t *in)
{
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static inline uint16_t fz_u16(fz_in_t *in)
{
    uint16_t a = fz_u8(in);
    return (uint16_t)(a | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(fz_in_t *in)
{
    uint32_t a = fz_u16(in);
    return a | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(fz_in_t *in)
{
    uint64_t a = fz_u32(in);
    return a | (uint64_t)fz_u32(in) << 32;
}

/* Up to n bytes of the input, in place; *len receives how many. */
static inline const uint8_t *fz_bytes(fz_in_t *in, size_t n, size_t *len)
{
    if (n > in->n) n = in->n;
    const uint8_t *p = in->p;
    in->p += n;
    in->n -= n;
    *len = n;
    return p;
}

/* ---- names -------------------------------------------------------------- */

/* A heap name unique to this process and run: "fz_<tag>_<pid>_<n>". Heaps
 * are removed by the targets themselves; fuzz/run.sh removes what a crashed
 * run left ("fz_*" of dead pids). */
static inline const char *fz_name(const char *tag)
{
    static char buf[64];
    static unsigned counter;
    snprintf(buf, sizeof buf, "fz_%s_%d_%u", tag, (int)getpid(), counter++);
    return buf;
}

/* ---- failures ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4), noreturn)) static inline void fz_fail(const char *file, int line,
                                                                          const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: fuzz check failed: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* Abort (a crash that libFuzzer records) when c does not hold. */
#define FZ_CHECK(c, ...)                                                           \
    do {                                                                           \
        if (!(c)) fz_fail(__FILE__, __LINE__, "(" #c ") " __VA_ARGS__);            \
    } while (0)

/* ---- known open defects ------------------------------------------------------
 *
 * A defect the fuzzers found and that is not fixed yet would end every long
 * run within seconds, hiding whatever else there is to find. Each has an id
 * (listed in fuzz/README.md with its reproducer in <target>/regressions/);
 * when SHARENA_FUZZ_KNOWN (comma separated) names it, the target steers
 * around the step that triggers it. Once a fix merges, its id is dropped
 * from the list scripts/test.sh passes, and the regression input must pass. */
static inline bool fz_known(const char *id)
{
    const char *k = getenv("SHARENA_FUZZ_KNOWN");
    size_t n = strlen(id);
    while (k && *k) {
        const char *e = strchr(k, ',');
        size_t m = e ? (size_t)(e - k) : strlen(k);
        if (m == n && memcmp(k, id, n) == 0) return true;
        k = e ? e + 1 : NULL;
    }
    return false;
}

/* Lock waits end in an error instead of a hang once lock timeouts exist:
 * short ones here, so that a damaged lock is a quick, reported error and not
 * a libFuzzer timeout. Harmless where the variable is not read. */
static inline void fz_env_init(void)
{
    setenv("SHARENA_LOCK_TIMEOUT_MS", "200", 0);
}

#endif /* SHR_FUZZ_COMMON_H */
