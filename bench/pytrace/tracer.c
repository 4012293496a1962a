/* shb_tracer: an LD_PRELOAD library that records every malloc, calloc,
 * realloc, free (and the aligned variants) of the process it is loaded into,
 * in call order, to the file named by SHB_TRACE_OUT. bench/pytrace records
 * /usr/bin/python3 with it (PYTHONMALLOC=malloc, so that every object
 * allocation reaches malloc) and the benchmarks replay the result.
 *
 * The real allocator is glibc's, reached through its exported __libc_*
 * entry points, so no dlsym bootstrap is needed and nothing here allocates.
 *
 * Record: three little-endian uint64 words,
 *   word 0: kind << 56 | size     (size in bytes; calloc: count * size)
 *   word 1: the block returned    (free: the block freed)
 *   word 2: the block passed in   (realloc only; 0 otherwise)
 * after a 16-byte header "SHBTRACE" + uint64 record size (24).
 *
 * Order: one spinlock covers the real call and the record, so the records
 * are in an order in which the calls really happened (a block is recorded
 * freed before another thread can be handed the same address).
 * Only the process that loaded the library records: a forked child stops
 * (pthread_atfork), an exec'ed one has no SHB_TRACE_OUT unless it inherits it,
 * in which case it appends nothing because the file is opened O_EXCL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

enum { K_MALLOC = 1, K_CALLOC = 2, K_REALLOC = 3, K_FREE = 4, K_ALIGNED = 5 };

#define BUF_RECORDS 43690 /* ~1 MiB */

static uint64_t g_buf[BUF_RECORDS * 3];
static size_t g_n;                  /* records in g_buf */
static int g_fd = -1;               /* -1: not recording */
static atomic_flag g_lock = ATOMIC_FLAG_INIT;

static void lock(void) {
    while (atomic_flag_test_and_set_explicit(&g_lock, memory_order_acquire)) {
    }
}
static void unlock(void) { atomic_flag_clear_explicit(&g_lock, memory_order_release); }

static void write_all(const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(g_fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { /* disk full or closed: stop recording, keep running */
            close(g_fd);
            g_fd = -1;
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void) {
    if (g_fd >= 0 && g_n) write_all(g_buf, g_n * 3 * sizeof(uint64_t));
    g_n = 0;
}

static void record(unsigned kind, size_t size, void *ret, void *in) {
    if (g_fd < 0) return;
    uint64_t *r = g_buf + 3 * g_n;
    r[0] = (uint64_t)kind << 56 | ((uint64_t)size & ((1ull << 56) - 1));
    r[1] = (uint64_t)(uintptr_t)ret;
    r[2] = (uint64_t)(uintptr_t)in;
    if (++g_n == BUF_RECORDS) flush_locked();
}

static void in_child(void) {
    /* The child holds no lock here (fork is called outside our calls), but
     * its copy of the buffer belongs to the parent: drop it. */
    g_n = 0;
    if (g_fd >= 0) close(g_fd);
    g_fd = -1;
}

__attribute__((constructor)) static void tracer_init(void) {
    const char *path = getenv("SHB_TRACE_OUT");
    if (!path || !*path) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return;
    g_fd = fd;
    uint64_t hdr[2];
    memcpy(&hdr[0], "SHBTRACE", 8);
    hdr[1] = 24;
    write_all(hdr, sizeof hdr);
    pthread_atfork(NULL, NULL, in_child);
}

__attribute__((destructor)) static void tracer_fini(void) {
    lock();
    flush_locked();
    if (g_fd >= 0) close(g_fd);
    g_fd = -1;
    unlock();
}

void *malloc(size_t n) {
    lock();
    void *p = __libc_malloc(n);
    if (p) record(K_MALLOC, n, p, NULL);
    unlock();
    return p;
}

void *calloc(size_t c, size_t n) {
    lock();
    void *p = __libc_calloc(c, n);
    if (p) record(K_CALLOC, c * n, p, NULL);
    unlock();
    return p;
}

void *realloc(void *q, size_t n) {
    lock();
    void *p = __libc_realloc(q, n);
    /* p == NULL with n > 0: failed, q untouched, nothing happened. With
     * n == 0 glibc frees q and returns NULL: recorded as a realloc to NULL. */
    if (p || n == 0) record(K_REALLOC, n, p, q);
    unlock();
    return p;
}

void *reallocarray(void *q, size_t c, size_t n) {
    size_t t;
    if (__builtin_mul_overflow(c, n, &t)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(q, t);
}

void free(void *p) {
    if (!p) return;
    lock();
    record(K_FREE, 0, p, NULL);
    __libc_free(p);
    unlock();
}

static void *aligned(size_t al, size_t n) {
    lock();
    void *p = __libc_memalign(al, n);
    if (p) record(K_ALIGNED, n, p, NULL);
    unlock();
    return p;
}

void *memalign(size_t al, size_t n) { return aligned(al, n); }
void *aligned_alloc(size_t al, size_t n) { return aligned(al, n); }
void *valloc(size_t n) { return aligned((size_t)sysconf(_SC_PAGESIZE), n); }
void *pvalloc(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return aligned(pg, (n + pg - 1) & ~(pg - 1));
}
int posix_memalign(void **out, size_t al, size_t n) {
    if (al < sizeof(void *) || (al & (al - 1))) return EINVAL;
    void *p = aligned(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
