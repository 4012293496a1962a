/* libsharena-malloc: the process's malloc, served from a sharena heap
 *
 * Preloaded (LD_PRELOAD=libsharena-malloc.so) or linked, this library
 * defines malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc and malloc_usable_size (new.c:
 * C++'s operator new and delete), on a heap of this library's own copy of
 * sharena. docs/malloc.md is the user's guide; docs/design/malloc.md the
 * reasons.
 *
 *   private  (default) a SHR_HEAP_PRIVATE heap: anonymous, copy-on-write,
 *            gone at exit; fork gives the child its own copy
 *   named    SHARENA_HEAP=NAME: the named heap, attached or created, shared
 *            with every process that names it
 *
 * A thread is in one of five modes (tl_mode):
 *
 *   FRESH    has not used the heap yet: its first call claims a thread slot
 *   ACTIVE   has a slot: the fast paths call shr_malloc/shr_free directly
 *   INLIB    is inside sharena's own setup code (heap creation, a slot
 *            claim, the statistics report): sharena's internal malloc calls
 *            must not recurse into the heap, so they go to glibc
 *   NOSLOT   the heap's thread limit is reached: its allocations come from
 *            glibc; its frees of heap blocks are deferred (below)
 *   EXITING  its slot is released (thread exit): as NOSLOT
 *
 * Invariants:
 *   M1  a pointer inside the heap's mapping was made by the heap; every
 *       other pointer was made by glibc (before the heap existed, inside
 *       sharena's own code, for a thread without a slot, when the heap was
 *       full) and goes back to glibc
 *   M2  shr_malloc and shr_free are called only by ACTIVE threads, whose
 *       slot exists: a call without a slot would claim one from inside the
 *       allocator, where a claim's own calloc would recurse
 *   M3  a block freed by a thread without a slot is pushed on `deferred`
 *       (its first 8 bytes are the link) and freed by the next ACTIVE
 *       thread that frees; large blocks, which need no slot, are freed at
 *       once
 *   M4  an interior pointer (an alignment above the heap's natural ones)
 *       carries a tag in the 16 bytes before it, and lies in a huge block:
 *       free reads the tag only where a block cannot start
 *
 * Thread exit: the key `exit_key` is created before sharena's own, so in
 * each round of TLS destructors ours runs first and turns the thread
 * EXITING before sharena releases the slot; later destructors (and glibc's
 * own freeres) then never claim a slot again, which would leak it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "sharena/malloc.h"
#include "sharena_malloc.h"

#define SHR_EXPORT __attribute__((visibility("default")))
#define TLS_IE __attribute__((tls_model("initial-exec")))

enum { T_FRESH = 0, T_ACTIVE, T_INLIB, T_NOSLOT, T_EXITING };
enum { G_NONE = 0, G_INIT, G_READY, G_FAILED };

/* glibc's allocator, for every pointer outside the heap (M1). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static __thread int tl_mode TLS_IE;

static shr_heap_t *g_heap;
static uintptr_t g_base, g_cap;   /* the mapping: [g_base, g_base + g_cap) */
static _Atomic int g_state;
static _Atomic bool g_tagged;     /* interior pointers may exist (M4) */
static uint64_t g_magic;          /* tag key */
static pthread_key_t exit_key;
static size_t (*libc_usable)(void *);
static _Atomic(void *) deferred;  /* M3 */

/* Where messages go: a copy of fd 2 taken at start when they are asked for
 * (programs such as coreutils close stderr before exit). */
static int g_errfd = 2;

static struct {
    bool verbose, show_stats, named;
    char name[SHR_NAME_MAX + 1];
    size_t capacity;
} opt;

/* Counters for the report (relaxed). */
static _Atomic uint64_t n_fallback, n_full, n_deferred, n_noslot_threads;

/* ---- messages ---------------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(g_errfd, buf, (size_t)n);
    (void)w;
}

#define VERBOSE(...)                                                                 \
    do {                                                                             \
        if (opt.verbose) say("sharena-malloc: " __VA_ARGS__);                        \
    } while (0)

static bool in_heap(const void *p) { return (uintptr_t)p - g_base < g_cap; }

/* ---- options and the heap ------------------------------------------------ */

/* A size with an optional K, M, G or T suffix (binary units); 0 if bad. */
static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end || v > (SHR_MAX_CAPACITY >> shift)) return 0;
    return (size_t)(v << shift);
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The machine's memory rounded up to a power of two, within [1 GiB, the
 * library's maximum], and within half of the address-space limit if one is
 * set: address space only, the heap costs what it holds. */
static size_t default_capacity(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (uint64_t)1 << 30;
    uint64_t cap = (uint64_t)1 << 30;
    while (cap < phys && cap < SHR_MAX_CAPACITY) cap <<= 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        while (cap > ((uint64_t)64 << 20) && cap > rl.rlim_cur / 2) cap >>= 1;
    return (size_t)cap;
}

static void read_options(void)
{
    opt.verbose = env_flag("SHARENA_VERBOSE");
    opt.show_stats = env_flag("SHARENA_SHOW_STATS");
    const char *name = getenv("SHARENA_HEAP");
    if (name && *name) {
        opt.named = true;
        snprintf(opt.name, sizeof opt.name, "%s", name);
    }
    if (opt.verbose || opt.show_stats) {
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
        if (fd >= 0) g_errfd = fd;
    }
    const char *cap = getenv("SHARENA_CAPACITY");
    opt.capacity = 0;
    if (cap && *cap && (opt.capacity = parse_size(cap)) == 0)
        say("sharena-malloc: SHARENA_CAPACITY=%s is not a size (e.g. 4G); using the default", cap);
}

static int open_named(shr_heap_t **out)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = opt.capacity ? opt.capacity : SHR_DEFAULT_CAPACITY;
    if (env_flag("SHARENA_GUARDS")) o.flags |= SHR_HEAP_GUARDS;
    for (int tries = 0; tries < 8; tries++) {
        int rc = shr_heap_attach(opt.name, out);
        if (rc != -ENOENT) return rc;
        rc = shr_heap_create(opt.name, &o, out);
        if (rc != -EEXIST) return rc;
    }
    return -EEXIST;
}

static int open_private(shr_heap_t **out)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_PRIVATE | (env_flag("SHARENA_GUARDS") ? SHR_HEAP_GUARDS : 0);
    /* A process may run thousands of threads: as many slots as a heap can
     * have (threads beyond still fall back to glibc). */
    o.max_threads = SHR_LIMIT_MAX_THREADS;
    size_t cap = opt.capacity ? opt.capacity : default_capacity();
    int rc;
    /* A machine that refuses the reservation (strict overcommit, a small
     * RLIMIT_AS) gets a smaller heap. */
    do {
        o.capacity = cap;
        rc = shr_heap_create(NULL, &o, out);
        if (rc == -EINVAL && o.max_threads != 0) {
            o.max_threads = 0; /* a small capacity: the default table */
            rc = shr_heap_create(NULL, &o, out);
        }
        cap /= 2;
    } while (rc == -ENOMEM && !opt.capacity && cap >= ((size_t)64 << 20));
    return rc;
}

static void thread_exit(void *unused);
static void fork_child(void) { if (tl_mode != T_INLIB) tl_mode = T_FRESH; }

/* Create or attach the heap; on failure everything goes to glibc. Called by
 * the first thread that allocates, in mode INLIB. */
static void heap_init(void)
{
    int expect = G_NONE;
    if (!atomic_compare_exchange_strong(&g_state, &expect, G_INIT)) return;
    read_options();
    /* Before sharena's first heap, so that our key and our fork handler
     * come before sharena's (see the file comment). */
    if (pthread_key_create(&exit_key, thread_exit) != 0 || pthread_atfork(NULL, NULL, fork_child) != 0) {
        say("sharena-malloc: cannot set up thread-exit handling; using glibc's malloc");
        atomic_store(&g_state, G_FAILED);
        return;
    }
    libc_usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    shr_heap_t *h = NULL;
    int rc = opt.named ? open_named(&h) : open_private(&h);
    if (rc) {
        say("sharena-malloc: cannot %s heap%s%s: %s; using glibc's malloc",
            opt.named ? "open the" : "create a private", opt.named ? " " : "", opt.named ? opt.name : "",
            shr_strerror(rc));
        atomic_store(&g_state, G_FAILED);
        return;
    }
    /* The tag key: the same in every process of a named heap. */
    g_magic = (h->hdr->created_ns ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    g_heap = h;
    g_base = (uintptr_t)h->base;
    g_cap = h->capacity;
    /* Another process may hand us an interior pointer it made (M4). */
    atomic_store_explicit(&g_tagged, opt.named, memory_order_relaxed);
    VERBOSE("%s heap%s%s, capacity %zu MiB, at %p", opt.named ? "named" : "private",
            opt.named ? " " : "", opt.named ? opt.name : "", (size_t)(g_cap >> 20), (void *)g_base);
    atomic_store(&g_state, G_READY);
}

/* Make a FRESH thread ACTIVE if it can be, or find again the context of an
 * ACTIVE one whose cached context sharena dropped; returns its mode. */
static shr_noinline int thread_attach(void)
{
    int mode = tl_mode;
    if (mode != T_FRESH && mode != T_ACTIVE) return mode;
    tl_mode = T_INLIB;
    if (atomic_load_explicit(&g_state, memory_order_acquire) != G_READY) heap_init();
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st != G_READY) {
        /* Another thread is creating the heap: glibc, and try again later.
         * No heap at all: glibc for good. */
        tl_mode = st == G_FAILED ? T_NOSLOT : T_FRESH;
        return T_NOSLOT;
    }
    if (shr__tctx(g_heap)) {
        pthread_setspecific(exit_key, (void *)1);
        tl_mode = T_ACTIVE;
    } else {
        if (atomic_fetch_add_explicit(&n_noslot_threads, 1, memory_order_relaxed) == 0)
            VERBOSE("no thread slot left in the heap (%s): threads beyond the limit use glibc's malloc",
                    shr_strerror(SHR_ETHREADS));
        tl_mode = T_NOSLOT;
    }
    return tl_mode;
}

static void thread_exit(void *unused)
{
    (void)unused;
    if (tl_mode == T_ACTIVE) tl_mode = T_EXITING;
}

/* May the fast paths run: an ACTIVE thread whose cached context is the one
 * of our heap (a program that uses other heaps moves the cache; sharena's
 * fast path would then claim from inside the allocator, M2). */
shr_inline bool fast_ok(void)
{
    shr_tctx_t *c = shr__tl_ctx;
    return tl_mode == T_ACTIVE && c != NULL && atomic_load_explicit(&c->heap, memory_order_relaxed) == g_heap;
}

/* The mode for a call: ACTIVE when the fast paths may run (M2). */
static inline int mode_now(void)
{
    if (shr_likely(fast_ok())) return T_ACTIVE;
    int m = tl_mode;
    if (m == T_FRESH || m == T_ACTIVE) m = thread_attach();
    return m;
}

/* ---- deferred frees (M3) -------------------------------------------------- */

static void defer_free(void *p)
{
    void *old = atomic_load_explicit(&deferred, memory_order_relaxed);
    do *(void **)p = old;
    while (!atomic_compare_exchange_weak_explicit(&deferred, &old, p, memory_order_release,
                                                  memory_order_relaxed));
    atomic_fetch_add_explicit(&n_deferred, 1, memory_order_relaxed);
}

static shr_noinline void drain_deferred(void)
{
    void *p = atomic_exchange_explicit(&deferred, NULL, memory_order_acquire);
    while (p) {
        void *next = *(void **)p;
        shr_free(g_heap, p);
        p = next;
    }
}

/* ---- interior pointers (M4) ------------------------------------------------ */

typedef struct tag {
    uint64_t check; /* g_magic ^ the interior address */
    uint64_t delta; /* interior address - block start */
} tag_t;

/* The block start for p if p is a tagged interior pointer, else NULL. Only
 * where no block starts: inside a huge block's chunks (the tag is then in
 * the block, committed), never before a block start. */
static void *untag(void *p)
{
    uint64_t off = (uintptr_t)p - g_base;
    uint32_t kind = shr_load_relaxed(&chunk_table(g_heap)[off >> SHR_CHUNK_SHIFT].kind);
    if (!(kind == CHUNK_HUGE_TAIL || (kind == CHUNK_HUGE && (off & (SHR_CHUNK_SIZE - 1)))))
        return NULL;
    if (off < sizeof(tag_t)) return NULL;
    tag_t *t = (tag_t *)((uint8_t *)p - sizeof(tag_t));
    if (t->check != (g_magic ^ (uintptr_t)p) || t->delta < sizeof(tag_t) || t->delta > off ||
        (t->delta & (SHR_ALIGNMENT - 1)))
        return (void *)-1; /* not a pointer the heap gave out */
    return (uint8_t *)p - t->delta;
}

/* ---- slow paths -------------------------------------------------------------- */

static void *libc_fallback(size_t n)
{
    atomic_fetch_add_explicit(&n_fallback, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

/* The heap could not serve n bytes: absurd sizes fail as glibc's would;
 * otherwise (the heap is full) glibc serves it. */
static shr_noinline void *heap_full(size_t n)
{
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (atomic_fetch_add_explicit(&n_full, 1, memory_order_relaxed) == 0)
        VERBOSE("the heap cannot serve %zu bytes (full?): glibc serves what it cannot", n);
    return __libc_malloc(n);
}

static shr_noinline void *malloc_slow(size_t n)
{
    if (mode_now() == T_ACTIVE) {
        void *p = shr_malloc(g_heap, n);
        return p ? p : heap_full(n);
    }
    if (tl_mode == T_INLIB) return __libc_malloc(n);
    return libc_fallback(n);
}

static shr_noinline void free_slow(void *p)
{
    if (atomic_load_explicit(&g_tagged, memory_order_relaxed)) {
        void *b = untag(p);
        if (b == (void *)-1) {
            VERBOSE("free(%p): not a block of the heap; ignored", p);
            return;
        }
        if (b) {
            memset((uint8_t *)p - sizeof(tag_t), 0, sizeof(tag_t));
            p = b;
        }
    }
    if (mode_now() == T_ACTIVE) {
        shr_free(g_heap, p);
        if (shr_unlikely(atomic_load_explicit(&deferred, memory_order_relaxed) != NULL))
            drain_deferred();
        return;
    }
    /* No slot (M3). A large or huge block needs none. */
    if (shr_usable_size(g_heap, p) > SHR_MEDIUM_REQUEST_THRESHOLD) shr_free(g_heap, p);
    else defer_free(p);
}

static size_t usable(void *p)
{
    if (!p) return 0;
    if (!in_heap(p)) return libc_usable ? libc_usable(p) : 0;
    if (atomic_load_explicit(&g_tagged, memory_order_relaxed)) {
        void *b = untag(p);
        if (b == (void *)-1) return 0;
        if (b) return shr_usable_size(g_heap, b) - (size_t)((uint8_t *)p - (uint8_t *)b);
    }
    return shr_usable_size(g_heap, p);
}

/* ---- the entry points ---------------------------------------------------------- */

SHR_EXPORT void *malloc(size_t n)
{
    if (shr_likely(fast_ok())) {
        void *p = shr_malloc(g_heap, n);
        if (shr_likely(p != NULL)) return p;
        return heap_full(n);
    }
    return malloc_slow(n);
}

SHR_EXPORT void free(void *p)
{
    if (shr_likely(in_heap(p))) {
        if (shr_likely(fast_ok() && !atomic_load_explicit(&g_tagged, memory_order_relaxed) &&
                       atomic_load_explicit(&deferred, memory_order_relaxed) == NULL)) {
            shr_free(g_heap, p);
            return;
        }
        free_slow(p);
        return;
    }
    if (p) __libc_free(p);
}

SHR_EXPORT void *calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (shr_likely(mode_now() == T_ACTIVE)) {
        void *p = shr_calloc(g_heap, n, 1);
        if (shr_likely(p != NULL)) return p;
        p = heap_full(n);
        if (p) memset(p, 0, n);
        return p;
    }
    if (tl_mode != T_INLIB) atomic_fetch_add_explicit(&n_fallback, 1, memory_order_relaxed);
    return __libc_calloc(count, size);
}

SHR_EXPORT void *realloc(void *p, size_t n)
{
    if (!p) return malloc(n);
    if (n == 0) { /* as glibc: frees and returns NULL */
        free(p);
        return NULL;
    }
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (!in_heap(p)) {
        if (mode_now() != T_ACTIVE) return __libc_realloc(p, n);
        /* Move a glibc block into the heap. */
        size_t old = libc_usable ? libc_usable(p) : 0;
        if (old == 0) return __libc_realloc(p, n);
        void *q = malloc(n);
        if (!q) return NULL;
        memcpy(q, p, old < n ? old : n);
        __libc_free(p);
        return q;
    }
    /* A guarded heap's malloc(0) has usable size 0, which shr_realloc takes
     * for a foreign pointer: move guarded blocks here. */
    if (!atomic_load_explicit(&g_tagged, memory_order_relaxed) && mode_now() == T_ACTIVE &&
        !(g_heap->flags & SHR_HEAP_GUARDS)) {
        void *q = shr_realloc(g_heap, p, n);
        if (q) return q;
    }
    /* Tagged, guarded, no slot, or the heap is full: move it. */
    size_t old = usable(p);
    void *q = malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    free(p);
    return q;
}

SHR_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

SHR_EXPORT size_t malloc_usable_size(void *p) { return usable(p); }

/* Aligned allocation. The heap's blocks are 16-byte aligned; pool blocks of
 * a class that is a multiple of 64 are 64-byte aligned (pools are 4 KiB or
 * 64 KiB aligned with a 64-byte header); large runs are page aligned; huge
 * blocks are chunk-aligned offsets (addresses, in a private heap). So:
 *   align <= 16       any block
 *   align <= 64       the size rounded up to a multiple of align
 *   align <= page     at least a large run
 *   beyond            a huge block of size + align, tagged when the aligned
 *                     address is not its start (M4) */
void *shr__malloc_aligned(size_t align, size_t n)
{
    if (align <= SHR_ALIGNMENT) return malloc(n);
    if (n > PTRDIFF_MAX - align - SHR_LARGE_REQUEST_THRESHOLD) {
        errno = ENOMEM;
        return NULL;
    }
    if (mode_now() != T_ACTIVE || (g_heap->flags & SHR_HEAP_GUARDS)) {
        /* No slot, or guard bytes before each block: glibc aligns it. */
        if (tl_mode != T_INLIB) atomic_fetch_add_explicit(&n_fallback, 1, memory_order_relaxed);
        return __libc_memalign(align, n);
    }
    size_t want;
    if (align <= 64) want = n ? SHR_ALIGN_UP(n, align) : align;
    else if (align <= SHR_PAGE_SIZE) want = n > SHR_MEDIUM_REQUEST_THRESHOLD ? n : SHR_MEDIUM_REQUEST_THRESHOLD + 1;
    else want = n + align > SHR_LARGE_REQUEST_THRESHOLD ? n + align : SHR_LARGE_REQUEST_THRESHOLD + 1;
    uint8_t *b = shr_malloc(g_heap, want);
    if (!b) {
        b = heap_full(want);
        if (!b) return NULL;
        __libc_free(b);
        return __libc_memalign(align, n);
    }
    uint8_t *p = (uint8_t *)SHR_ALIGN_UP((uintptr_t)b, align);
    if (p == b) return b;
    if (align <= SHR_PAGE_SIZE) { /* cannot happen: the layout above is the allocator's */
        shr_free(g_heap, b);
        return __libc_memalign(align, n);
    }
    tag_t *t = (tag_t *)(p - sizeof(tag_t));
    t->check = g_magic ^ (uintptr_t)p;
    t->delta = (uint64_t)(p - b);
    atomic_store_explicit(&g_tagged, true, memory_order_relaxed);
    return p;
}

static bool align_ok(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

SHR_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (!align_ok(align) || align % sizeof(void *)) return EINVAL;
    int saved = errno;
    void *p = shr__malloc_aligned(align, n);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

SHR_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!align_ok(align)) {
        errno = EINVAL;
        return NULL;
    }
    return shr__malloc_aligned(align, n);
}

SHR_EXPORT void *memalign(size_t align, size_t n)
{
    /* glibc: an alignment that is not a power of two is rounded up to one. */
    if (align > (SIZE_MAX >> 1) + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < align) a <<= 1;
    return shr__malloc_aligned(a, n);
}

SHR_EXPORT void *valloc(size_t n) { return shr__malloc_aligned((size_t)sysconf(_SC_PAGESIZE), n); }

SHR_EXPORT void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return shr__malloc_aligned(page, n ? SHR_ALIGN_UP(n, page) : page);
}

/* ---- the handle and the report ------------------------------------------------- */

SHR_EXPORT shr_heap_t *shr_malloc_heap(void)
{
    if (atomic_load(&g_state) == G_NONE) free(malloc(1));
    return atomic_load(&g_state) == G_READY ? g_heap : NULL;
}

__attribute__((destructor)) static void report(void)
{
    if (atomic_load(&g_state) != G_READY || !opt.show_stats) return;
    int saved = tl_mode;
    tl_mode = T_INLIB;
    FILE *out = fdopen(dup(g_errfd), "w");
    if (!out) {
        tl_mode = saved;
        return;
    }
    fprintf(out, "sharena-malloc: %s heap%s%s, capacity %zu MiB\n", opt.named ? "named" : "private",
            opt.named ? " " : "", opt.named ? opt.name : "", (size_t)(g_cap >> 20));
    shr_heap_stats_print(g_heap, out);
    fprintf(out,
            "sharena-malloc: %llu allocations served by glibc (threads without a slot: %llu), "
            "%llu because the heap was full, %llu frees deferred\n",
            (unsigned long long)atomic_load(&n_fallback), (unsigned long long)atomic_load(&n_noslot_threads),
            (unsigned long long)atomic_load(&n_full), (unsigned long long)atomic_load(&n_deferred));
    fclose(out);
    tl_mode = saved;
}
