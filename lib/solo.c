/* Compact lists: a list in a segment of its own, in the segment's first page
 * (<sharena/solo.h>; the format and its crash rules in docs/design/solo.md).
 *
 * The page (SHR_SOLO_PAGE bytes at offset 0 of the object):
 *
 *   0    seg_solo_head_t: magic, version, sizes, heap_off, file_size,
 *        checksum, then `state` (SHR_SOLO_COMPACT, PROMOTING, HEAP)
 *   64   seq      even while the items are stable, odd while a writer
 *                 changes one (a seqlock: readers take no lock)
 *   72   n        items; never changes while the list is compact
 *   76   top      end of the string slots
 *   80   redo     the set being applied: index + 1, or 0 (its commit point)
 *   84.. the redo record: the item's words after the set, the top after
 *        it, and the bytes to copy into the item's slot (from a scratch
 *        copy above top)
 *   128  mu       robust, process-shared: every writer holds it
 *   192  items[n] two words each: w0 = tag | slot << 8 | cap << 24,
 *                 w1 = the value (int, double's bits, bool) or, for a str
 *                 or bytes, its length in bytes
 *   ...  slots    a str's or bytes' bytes, cap bytes each (a multiple of 8,
 *                 at least 8), allocated upward from the items' end to top;
 *                 an item keeps its slot when it changes type, for later.
 *
 * Commit points and repair (the next locker of a dead holder's mutex):
 *   C1 a set writes everything it needs above top (a new slot's bytes, or
 *      the scratch copy of bytes going into the item's own slot) and its
 *      redo record, then stores `redo` (release): before that nothing
 *      visible changed; after it, repair applies the record again (apply
 *      is idempotent: it copies from the scratch and stores words).
 *   C2 promotion stores state PROMOTING before it writes the heap, and
 *      HEAP (release, inside an odd window of seq) once the heap holds the
 *      list: repair of a PROMOTING page releases whatever pages of the heap
 *      were written and sets COMPACT again; the items were not changed.
 *   C3 seq is odd only inside apply and the promotion's final store:
 *      repair makes it even.
 *
 * Readers copy an item and its bytes between two loads of seq and keep the
 * copy only when seq did not move; the page is never released while the
 * list is compact, and every offset is checked against the page before it
 * is followed, so a torn read reads only this page's bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "heap_internal.h"
#include "list.h"

#if defined(__SANITIZE_THREAD__) || (defined(SHR_TSAN) && SHR_TSAN)
#define SOLO_FENCE(mo) atomic_signal_fence(mo)
#else
#define SOLO_FENCE(mo) atomic_thread_fence(mo)
#endif

#define ITEMS_OFF 192u
#define SPINS_BEFORE_LOCK 4096u

typedef struct solo_item {
    _Atomic uint64_t w0; /* tag | slot << 8 | cap << 24 */
    _Atomic uint64_t w1; /* value, or the string's length */
} solo_item_t;

typedef struct solo_page {
    seg_solo_head_t head;    /*   0 */
    _Atomic uint64_t seq;    /*  64 */
    uint32_t n;              /*  72 */
    uint32_t top;            /*  76 */
    _Atomic uint32_t redo;   /*  80 index + 1 of the set being applied, 0 none */
    uint32_t redo_top;       /*  84 */
    uint32_t redo_src;       /*  88 scratch bytes to copy into the slot */
    uint32_t redo_len;       /*  92 (0: nothing to copy) */
    uint64_t redo_w0;        /*  96 */
    uint64_t redo_w1;        /* 104 */
    _Atomic uint64_t nsets;  /* 112 statistics */
    _Atomic uint64_t nrepairs; /* 120 */
    pthread_mutex_t mu __attribute__((aligned(64))); /* 128 */
} solo_page_t;
_Static_assert(offsetof(solo_page_t, seq) == 64 && offsetof(solo_page_t, redo) == 80 &&
                   offsetof(solo_page_t, redo_w0) == 96 && offsetof(solo_page_t, mu) == 128 &&
                   sizeof(solo_page_t) <= ITEMS_OFF,
               "layout: the compact list's page");

#define MAX_ITEMS ((SHR_SOLO_PAGE - ITEMS_OFF) / sizeof(solo_item_t))

/* Small: a process may hold thousands (one per ShareableList). */
struct shr_solo {
    solo_page_t *page;       /* a mapping of the page alone */
    uint64_t file_size;      /* validated copy of the head's */
    dev_t dev;               /* the object's identity, for the heap's handle */
    ino_t ino;
    char name[];             /* the segment's name */
};

static shr_solo_t *solo_new(const char *name)
{
    size_t n = strlen(name);
    shr_solo_t *s = calloc(1, sizeof *s + n + 1);
    if (s) memcpy(s->name, name, n + 1);
    return s;
}

static void solo_identity(const shr_solo_t *s, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = s->dev;
    st->st_ino = s->ino;
}

static inline solo_item_t *items(solo_page_t *p) { return (solo_item_t *)((uint8_t *)p + ITEMS_OFF); }
static inline uint64_t w0_of(unsigned tag, uint32_t slot, uint32_t cap)
{
    return (uint64_t)tag | (uint64_t)slot << 8 | (uint64_t)cap << 24;
}
static inline unsigned tag_of(uint64_t w0) { return (unsigned)(w0 & 0xff); }
static inline uint32_t slot_of(uint64_t w0) { return (uint32_t)(w0 >> 8) & 0xffff; }
static inline uint32_t cap_of(uint64_t w0) { return (uint32_t)(w0 >> 24) & 0xffff; }
static inline uint32_t slot_cap(size_t len) { return len <= 8 ? 8 : (uint32_t)SHR_ALIGN_UP(len, 8); }
static inline bool inline_type(unsigned t) { return t == SHR_NONE || t == SHR_BOOL || t == SHR_INT || t == SHR_FLOAT; }
static inline bool string_type(unsigned t) { return t == SHR_STR || t == SHR_BYTES; }

static uint64_t inline_bits(const shr_value_t *v)
{
    uint64_t b = 0;
    switch (v->type) {
    case SHR_BOOL: b = v->u.b != 0; break;
    case SHR_INT: memcpy(&b, &v->u.i, 8); break;
    case SHR_FLOAT: memcpy(&b, &v->u.f, 8); break;
    default: break;
    }
    return b;
}

static void inline_value(unsigned tag, uint64_t bits, shr_value_t *out)
{
    out->type = (shr_type_t)tag;
    out->ref_ = 0;
    out->u.i = 0;
    switch (tag) {
    case SHR_BOOL: out->u.b = bits != 0; break;
    case SHR_INT: memcpy(&out->u.i, &bits, 8); break;
    case SHR_FLOAT: memcpy(&out->u.f, &bits, 8); break;
    default: break;
    }
}

static int norm_index(int64_t index, uint64_t n, uint64_t *out)
{
    if (index < 0) index += (int64_t)n;
    if (index < 0 || (uint64_t)index >= n) return SHR_EINDEX;
    *out = (uint64_t)index;
    return 0;
}

/* ---- the writer's side ------------------------------------------------------ */

/* Apply the committed redo record (C1): lock held, or repair. Idempotent. */
static void apply(solo_page_t *p)
{
    uint32_t r = shr_load_acquire(&p->redo);
    if (r == 0) return;
    if (r > p->n) { /* damage: no set of this page wrote it */
        shr_store_release(&p->redo, 0);
        return;
    }
    uint64_t s = shr_load_relaxed(&p->seq);
    if (!(s & 1)) {
        shr_store_relaxed(&p->seq, s + 1);
        SOLO_FENCE(memory_order_release);
    }
    solo_item_t *it = &items(p)[r - 1];
    uint32_t slot = slot_of(p->redo_w0);
    if (p->redo_len && slot + (uint64_t)p->redo_len <= SHR_SOLO_PAGE &&
        p->redo_src + (uint64_t)p->redo_len <= SHR_SOLO_PAGE)
        memmove((uint8_t *)p + slot, (uint8_t *)p + p->redo_src, p->redo_len);
    shr_store_release(&it->w0, p->redo_w0);
    shr_store_release(&it->w1, p->redo_w1);
    p->top = p->redo_top;
    shr_store_release(&p->seq, (s | 1) + 1);
    shr_store_release(&p->redo, 0);
}

static uint64_t heap_capacity(const shr_solo_t *s) { return s->file_size - SHR_SOLO_HEAP_OFF; }

/* A second mapping of the whole object, from the page's (no descriptor is
 * kept): the heap's handle owns it. Where mremap cannot duplicate a mapping
 * (valgrind), through the name, if it still names this object. NULL with
 * errno set. */
static uint8_t *map_whole(shr_solo_t *s)
{
    void *m = mremap(s->page, 0, s->file_size, MREMAP_MAYMOVE);
    if (m != MAP_FAILED) return m;
    int err = errno;
    int fd = shm_open(s->name, O_RDWR | O_CLOEXEC, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino &&
        (uint64_t)st.st_size == s->file_size)
        m = mmap(NULL, s->file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (fd >= 0) close(fd);
    if (m == MAP_FAILED) {
        errno = err;
        return NULL;
    }
    return m;
}

/* Give back every page of the heap's part of the object (C2's repair, and a
 * promotion that failed). */
static void discard_heap(shr_solo_t *s)
{
    uint8_t *m = map_whole(s);
    if (!m) return;
    madvise(m + SHR_SOLO_HEAP_OFF, heap_capacity(s), MADV_REMOVE);
    munmap(m, s->file_size);
}

/* The next locker of a dead holder's mutex: C1-C3. */
static void repair(shr_solo_t *s)
{
    solo_page_t *p = s->page;
    if (shr_load_acquire(&p->head.state) == SHR_SOLO_PROMOTING) {
        discard_heap(s);
        shr_store_release(&p->head.state, SHR_SOLO_COMPACT);
    }
    apply(p);
    uint64_t q = shr_load_relaxed(&p->seq);
    if (q & 1) shr_store_release(&p->seq, q + 1);
    atomic_fetch_add_explicit(&p->nrepairs, 1, memory_order_relaxed);
}

static int solo_lock(shr_solo_t *s)
{
    int rc = pthread_mutex_trylock(&s->page->mu);
    if (rc == EBUSY) {
        /* A real wait: a runtime with a global lock lets it go meanwhile. */
        uint64_t t = shr__lock_timeout_ns(0);
        uint64_t dl = t == 0 ? UINT64_MAX : shr__now_ns(CLOCK_MONOTONIC) + t;
        shr__wait_hook_before();
        rc = shr__mutex_lock_until(&s->page->mu, dl);
        shr__wait_hook_after();
    }
    if (rc == EOWNERDEAD) {
        repair(s);
        pthread_mutex_consistent(&s->page->mu);
        rc = 0;
    }
    if (rc == ETIMEDOUT) return SHR_ELOCKTIMEOUT;
    return rc == 0 ? 0 : SHR_ELOCK;
}

static void solo_unlock(shr_solo_t *s) { pthread_mutex_unlock(&s->page->mu); }

/* ---- create and open ------------------------------------------------------- */

/* The slots' bytes n values need, or SIZE_MAX for a value of another type. */
static size_t slots_needed(const shr_value_t *values, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned t = values[i].type;
        if (string_type(t)) {
            if (values[i].u.s.len > SHR_SOLO_PAGE) return SHR_SOLO_PAGE; /* no room, whatever it is */
            if (values[i].u.s.len && !values[i].u.s.data) return SIZE_MAX;
            if (t == SHR_STR && !shr__utf8_valid((const unsigned char *)values[i].u.s.data, values[i].u.s.len))
                return SIZE_MAX;
            total += slot_cap(values[i].u.s.len);
        } else if (!inline_type(t)) {
            return SIZE_MAX;
        }
    }
    return total;
}

static void page_fill(solo_page_t *p, const shr_value_t *values, size_t n, unsigned mode, uint64_t file_size)
{
    memcpy(p->head.magic, SHR_SOLO_MAGIC, sizeof p->head.magic);
    p->head.layout_version = SHR_LAYOUT_VERSION;
    p->head.page_size = SHR_SOLO_PAGE;
    p->head.sizeof_mutex = sizeof(pthread_mutex_t);
    p->head.mode = mode;
    p->head.heap_off = SHR_SOLO_HEAP_OFF;
    p->head.file_size = file_size;
    p->head.created_ns = shr__now_ns(CLOCK_REALTIME);
    p->head.checksum = shr__solo_head_checksum(&p->head);
    shr_store_relaxed(&p->head.state, SHR_SOLO_COMPACT);
    p->n = (uint32_t)n;
    uint32_t top = ITEMS_OFF + (uint32_t)(n * sizeof(solo_item_t));
    for (size_t i = 0; i < n; i++) {
        const shr_value_t *v = &values[i];
        solo_item_t *it = &items(p)[i];
        if (string_type(v->type)) {
            uint32_t cap = slot_cap(v->u.s.len);
            if (v->u.s.len) memcpy((uint8_t *)p + top, v->u.s.data, v->u.s.len);
            shr_store_relaxed(&it->w0, w0_of(v->type, top, cap));
            shr_store_relaxed(&it->w1, v->u.s.len);
            top += cap;
        } else {
            shr_store_relaxed(&it->w0, w0_of(v->type, 0, 0));
            shr_store_relaxed(&it->w1, inline_bits(v));
        }
    }
    p->top = top;
}

static void random_suffix(char *buf, size_t size)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)shr__now_ns(CLOCK_MONOTONIC);
    snprintf(buf, size, "%08x", r);
}

/* A new object under a temporary name with its page written (compact, n
 * values); *fdp open, *pagep mapped. The caller publishes it. */
static int make_object(const char *name, const shr_value_t *values, size_t n, unsigned mode, char *tmp_name,
                       size_t tmp_size, int *fdp, solo_page_t **pagep, shr_solo_t **out)
{
    int rc = shr_name_check(name, name ? strlen(name) : 0);
    if (rc) return rc;
    if (mode == 0) mode = 0600;
    if (mode & ~0777u) return -EINVAL;
    char rnd[16];
    random_suffix(rnd, sizeof rnd);
    snprintf(tmp_name, tmp_size, ".shr_tmp_%d_%s", (int)getpid(), rnd);
    int fd = shm_open(tmp_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return -errno;
    uint64_t file_size = SHR_SOLO_HEAP_OFF + SHR_ALIGN_UP((uint64_t)SHR_DEFAULT_CAPACITY, SHR_CHUNK_SIZE);
    shr_solo_t *s = solo_new(name);
    solo_page_t *p = MAP_FAILED;
    struct stat st;
    if (!s) rc = -ENOMEM;
    else if (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)file_size) != 0) rc = errno == EFBIG ? -ENOMEM : -errno;
    else if (fallocate(fd, 0, 0, SHR_SOLO_PAGE) != 0) rc = errno == ENOSPC ? -ENOMEM : -errno;
    else if (fstat(fd, &st) != 0) rc = -errno;
    else if ((p = mmap(NULL, SHR_SOLO_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) rc = -errno;
    if (rc == 0) {
        page_fill(p, values, n, mode, file_size);
        rc = shr__robust_mutex_init(&p->mu);
    }
    if (rc) {
        if (p != MAP_FAILED) munmap(p, SHR_SOLO_PAGE);
        free(s);
        close(fd);
        shm_unlink(tmp_name);
        return rc;
    }
    s->page = p;
    s->file_size = file_size;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    *fdp = fd;
    *pagep = p;
    *out = s;
    return 0;
}

/* Give the temporary object its name; nothing of it is left on failure. */
static int publish(const char *tmp_name, const char *name)
{
    char from[96], to[SHR_NAME_MAX + 32];
    snprintf(from, sizeof from, "%s/%s", SHR_SHM_DIR, tmp_name);
    snprintf(to, sizeof to, "%s/%s", SHR_SHM_DIR, name);
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    int rc = -errno;
    shm_unlink(tmp_name);
    return rc;
}

int shr_solo_create(const char *name, const shr_value_t *values, size_t n, unsigned mode, shr_solo_t **out)
{
    if (!out || (n > 0 && !values)) return -EINVAL;
    size_t bytes = slots_needed(values, n);
    if (bytes == SIZE_MAX) return -EINVAL;
    if (n > MAX_ITEMS || ITEMS_OFF + n * sizeof(solo_item_t) + bytes > SHR_SOLO_PAGE) return SHR_ENOROOM;
    char tmp[64];
    int fd;
    solo_page_t *p;
    shr_solo_t *s;
    int rc = make_object(name, values, n, mode, tmp, sizeof tmp, &fd, &p, &s);
    if (rc) return rc;
    close(fd);
    if ((rc = publish(tmp, name)) != 0) {
        shr_solo_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int shr_solo_create_heap(const char *name, const shr_heap_options_t *opts, shr_heap_t **out)
{
    if (!out) return -EINVAL;
    shr_heap_options_t o;
    if (opts) o = *opts;
    else shr_heap_options_init(&o);
    if (o.capacity != 0 && SHR_ALIGN_UP((uint64_t)o.capacity, SHR_CHUNK_SIZE) != SHR_ALIGN_UP((uint64_t)SHR_DEFAULT_CAPACITY, SHR_CHUNK_SIZE))
        return -EINVAL; /* the segment's size is the default's (make_object) */
    char tmp[64];
    int fd;
    solo_page_t *p;
    shr_solo_t *s;
    int rc = make_object(name, NULL, 0, o.mode, tmp, sizeof tmp, &fd, &p, &s);
    if (rc) return rc;
    shr_heap_t *h = NULL;
    uint8_t *m = mmap(NULL, s->file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    int map_err = errno;
    if (m == MAP_FAILED) m = NULL;
    close(fd);
    errno = map_err;
    struct stat st;
    solo_identity(s, &st);
    o.capacity = (size_t)heap_capacity(s);
    rc = m ? shr__heap_create_in(m, SHR_SOLO_HEAP_OFF, heap_capacity(s), &st, name, &o, &h) : -errno;
    if (rc == 0) shr_store_release(&p->head.state, SHR_SOLO_HEAP); /* unpublished: no reader yet */
    if (rc == 0 && (rc = publish(tmp, name)) != 0) shr_heap_close(h);
    if (rc && rc != -EEXIST) shm_unlink(tmp);
    shr_solo_close(s);
    if (rc) return rc;
    *out = h;
    return 0;
}

int shr_solo_open(const char *name, shr_solo_t **out)
{
    if (!out) return -EINVAL;
    int rc = shr_name_check(name, name ? strlen(name) : 0);
    if (rc) return rc;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    shr_solo_t *s = solo_new(name);
    seg_solo_head_t head;
    memset(&head, 0, sizeof head);
    ssize_t got = 0;
    struct stat st;
    if (!s) rc = -ENOMEM;
    else if (fstat(fd, &st) != 0) rc = -errno;
    else if (!S_ISREG(st.st_mode)) rc = SHR_ENOTSHR;
    else if ((got = pread(fd, &head, sizeof head, 0)) < 0) rc = -errno;
    else if ((size_t)got < sizeof head.magic) rc = SHR_ENOTSHR;
    else rc = shr__solo_head_validate(&head, (uint64_t)st.st_size);
    solo_page_t *p = MAP_FAILED;
    if (rc == 0 && (p = mmap(NULL, SHR_SOLO_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        rc = -errno;
    close(fd);
    /* The mapped head is writable by others: the validated copy decides. */
    if (rc == 0 && (memcmp(p, &head, offsetof(seg_solo_head_t, state)) != 0 || !shr__mutex_sane(&p->mu)))
        rc = SHR_ECORRUPT;
    if (rc) {
        if (p != MAP_FAILED) munmap(p, SHR_SOLO_PAGE);
        free(s);
        return rc;
    }
    s->page = p;
    s->file_size = head.file_size;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    *out = s;
    return 0;
}

int shr_solo_close(shr_solo_t *s)
{
    if (!s) return -EINVAL;
    munmap(s->page, SHR_SOLO_PAGE);
    free(s);
    return 0;
}

const char *shr_solo_name(const shr_solo_t *s) { return s ? s->name : NULL; }

int shr_solo_is_heap(const shr_solo_t *s)
{
    return s && shr_load_acquire(&s->page->head.state) == SHR_SOLO_HEAP;
}

/* ---- promotion --------------------------------------------------------------- */

static int attach_heap(shr_solo_t *s, shr_heap_t **out)
{
    uint8_t *m = map_whole(s);
    if (!m) return -errno;
    struct stat st;
    solo_identity(s, &st);
    return shr__heap_attach_in(m, SHR_SOLO_HEAP_OFF, heap_capacity(s), &st, s->name, out);
}

/* The list's values, read under the lock (strings point into the page). */
static int values_of(solo_page_t *p, shr_value_t **out)
{
    uint32_t n = p->n;
    shr_value_t *v = calloc(n ? n : 1, sizeof *v);
    if (!v) return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t w0 = shr_load_relaxed(&items(p)[i].w0), w1 = shr_load_relaxed(&items(p)[i].w1);
        unsigned t = tag_of(w0);
        if (string_type(t)) {
            uint32_t slot = slot_of(w0);
            if (slot < ITEMS_OFF || slot + w1 > SHR_SOLO_PAGE) {
                free(v);
                return SHR_ECORRUPT;
            }
            v[i].type = (shr_type_t)t;
            v[i].u.s.data = (const char *)p + slot;
            v[i].u.s.len = (size_t)w1;
        } else if (inline_type(t)) {
            inline_value(t, w1, &v[i]);
        } else {
            free(v);
            return SHR_ECORRUPT;
        }
    }
    *out = v;
    return 0;
}

int shr_solo_promote(shr_solo_t *s, shr_heap_t **out)
{
    if (!s || !out) return -EINVAL;
    solo_page_t *p = s->page;
    if (shr_load_acquire(&p->head.state) == SHR_SOLO_HEAP) return attach_heap(s, out);
    int rc = solo_lock(s);
    if (rc) return rc;
    if (shr_load_acquire(&p->head.state) == SHR_SOLO_HEAP) {
        solo_unlock(s);
        return attach_heap(s, out);
    }
    shr_value_t *vals = NULL;
    if ((rc = values_of(p, &vals)) != 0) {
        solo_unlock(s);
        return rc;
    }
    shr_store_release(&p->head.state, SHR_SOLO_PROMOTING); /* C2 */
    shr_heap_t *h = NULL;
    uint8_t *m = map_whole(s);
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)heap_capacity(s);
    o.mode = p->head.mode;
    struct stat st;
    solo_identity(s, &st);
    rc = m ? shr__heap_create_in(m, SHR_SOLO_HEAP_OFF, heap_capacity(s), &st, s->name, &o, &h) : -errno;
    if (rc == 0) {
        shr_list_t *l;
        rc = shr_list_create(h, SHR_SOLO_ROOT, vals, p->n, &l);
        if (rc == 0) shr_list_close(l);
        else shr_heap_close(h);
    }
    free(vals);
    if (rc) {
        discard_heap(s);
        shr_store_release(&p->head.state, SHR_SOLO_COMPACT);
        solo_unlock(s);
        return rc;
    }
    (void)SHR_FAULT(SOLO_PROMOTE); /* a crash point */
    uint64_t q = shr_load_relaxed(&p->seq);
    shr_store_relaxed(&p->seq, q + 1);
    shr_store_release(&p->head.state, SHR_SOLO_HEAP); /* C2: the heap is the list now */
    shr_store_release(&p->seq, q + 2);
    solo_unlock(s);
    *out = h;
    return 0;
}

/* ---- reads --------------------------------------------------------------------- */

int64_t shr_solo_len(shr_solo_t *s)
{
    if (!s) return -EINVAL;
    if (shr_load_acquire(&s->page->head.state) == SHR_SOLO_HEAP) return SHR_EMOVED;
    uint32_t n = s->page->n;
    return n <= MAX_ITEMS ? (int64_t)n : SHR_ECORRUPT;
}

/* The bytes of a slot that a writer may be rewriting: word loads that the
 * checkers do not see (the copy is kept only if seq did not move). A slot
 * is 8-aligned and a multiple of 8 long, so the last word read stays in it
 * (the caller checked that the slot holds n bytes). */
__attribute__((no_sanitize("address", "thread"), noinline)) static void
copy_bytes(const uint8_t *src, char *dst, size_t n)
{
    SHR__VG_QUIET_BEGIN();
    SHR__COPY_WORDS(dst, src, n);
    SHR__VG_QUIET_END();
}

/* One try: 0 done, 1 seq moved (or odd), else a result to return. */
static int read_try(solo_page_t *p, int64_t index, shr_value_t *out, void *buf, size_t cap, int *result)
{
    uint64_t s1 = shr_load_acquire(&p->seq);
    if (s1 & 1) return 1;
    if (shr_load_acquire(&p->head.state) == SHR_SOLO_HEAP) {
        *result = SHR_EMOVED;
        return 0;
    }
    uint32_t n = p->n;
    uint64_t i;
    if (n > MAX_ITEMS) {
        *result = SHR_ECORRUPT;
        return 0;
    }
    int rc = norm_index(index, n, &i);
    uint64_t w0 = 0, w1 = 0;
    if (rc == 0) {
        w0 = shr_load_acquire(&items(p)[i].w0);
        w1 = shr_load_acquire(&items(p)[i].w1);
    }
    unsigned t = tag_of(w0);
    if (rc == 0 && string_type(t)) {
        uint32_t slot = slot_of(w0);
        if (slot < ITEMS_OFF || slot % 8 || w1 > cap_of(w0) || slot + (uint64_t)cap_of(w0) > SHR_SOLO_PAGE) {
            if (shr_load_relaxed(&p->seq) != s1) return 1;
            *result = SHR_ECORRUPT;
            return 0;
        }
        if (w1 <= cap) copy_bytes((const uint8_t *)p + slot, buf, (size_t)w1);
        SOLO_FENCE(memory_order_acquire);
    }
    if (shr_load_relaxed(&p->seq) != s1) return 1;
    if (rc) {
        *result = rc;
        return 0;
    }
    if (inline_type(t)) {
        inline_value(t, w1, out);
        *result = 0;
    } else if (string_type(t)) {
        out->type = (shr_type_t)t;
        out->ref_ = 0;
        out->u.s.data = buf;
        out->u.s.len = (size_t)w1;
        *result = w1 <= cap ? 0 : 1;
    } else {
        *result = SHR_ECORRUPT;
    }
    return 0;
}

int shr_solo_read(shr_solo_t *s, int64_t index, shr_value_t *out, void *buf, size_t cap)
{
    if (!s || !out || (cap && !buf)) return -EINVAL;
    int result = 0;
    for (unsigned n = 0; n < SPINS_BEFORE_LOCK; n++) {
        if (read_try(s->page, index, out, buf, cap, &result) == 0) return result;
        if (n > 64) sched_yield();
    }
    /* A writer that does not finish (stopped, or dead with seq odd): the
     * lock waits for it, or repairs its page. */
    int rc = solo_lock(s);
    if (rc) return rc;
    int got = read_try(s->page, index, out, buf, cap, &result);
    solo_unlock(s);
    return got == 0 ? result : SHR_ECORRUPT;
}

/* ---- sets ------------------------------------------------------------------------ */

int shr_solo_set(shr_solo_t *s, int64_t index, const shr_value_t *v)
{
    if (!s || !v) return -EINVAL;
    unsigned t = v->type;
    if (!inline_type(t) && !string_type(t)) return -EINVAL;
    if (string_type(t) && v->u.s.len && !v->u.s.data) return -EINVAL;
    if (string_type(t) && v->u.s.len > SHR_SOLO_PAGE) return SHR_ENOROOM;
    if (t == SHR_STR && !shr__utf8_valid((const unsigned char *)v->u.s.data, v->u.s.len)) return -EINVAL;
    solo_page_t *p = s->page;
    int rc = solo_lock(s);
    if (rc) return rc;
    uint64_t i;
    if (shr_load_acquire(&p->head.state) != SHR_SOLO_COMPACT) rc = SHR_EMOVED;
    else if (p->n > MAX_ITEMS || p->top > SHR_SOLO_PAGE || p->top < ITEMS_OFF + p->n * sizeof(solo_item_t) ||
             p->top % 8)
        rc = SHR_ECORRUPT;
    else rc = norm_index(index, p->n, &i);
    if (rc) {
        solo_unlock(s);
        return rc;
    }
    uint64_t old = shr_load_relaxed(&items(p)[i].w0);
    uint32_t slot = slot_of(old), cap = cap_of(old), top = p->top;
    if (cap && (slot < ITEMS_OFF + p->n * sizeof(solo_item_t) || slot + cap > top)) slot = cap = 0; /* damaged: not reused */
    p->redo_len = 0;
    p->redo_src = 0;
    p->redo_top = top;
    if (inline_type(t)) {
        p->redo_w0 = w0_of(t, slot, cap);
        p->redo_w1 = inline_bits(v);
    } else {
        size_t len = v->u.s.len;
        if (cap != 0 && len <= cap) {
            /* Into the item's own slot, through a scratch copy above top. */
            if (top + len > SHR_SOLO_PAGE) rc = SHR_ENOROOM;
            else {
                if (len) memcpy((uint8_t *)p + top, v->u.s.data, len);
                p->redo_src = top;
                p->redo_len = (uint32_t)len;
                p->redo_w0 = w0_of(t, slot, cap);
            }
        } else {
            /* A new slot at top; the old one is left to the page. */
            uint32_t ncap = slot_cap(len);
            if (top + (uint64_t)ncap > SHR_SOLO_PAGE) rc = SHR_ENOROOM;
            else {
                memcpy((uint8_t *)p + top, v->u.s.data, len);
                p->redo_w0 = w0_of(t, top, ncap);
                p->redo_top = top + ncap;
            }
        }
        p->redo_w1 = len;
    }
    if (rc == 0) {
        shr_store_release(&p->redo, (uint32_t)i + 1); /* C1 */
        (void)SHR_FAULT(SOLO_SET);                    /* a crash point */
        apply(p);
        /* Under the lock: no read-modify-write needed (readers of statistics tolerate a stale count). */
        shr_store_relaxed(&p->nsets, shr_load_relaxed(&p->nsets) + 1);
    }
    solo_unlock(s);
    return rc;
}

/* ---- info and check ------------------------------------------------------------ */

int shr_solo_info(shr_solo_t *s, shr_solo_info_t *info)
{
    if (!s || !info) return -EINVAL;
    solo_page_t *p = s->page;
    memset(info, 0, sizeof *info);
    info->is_heap = shr_load_acquire(&p->head.state) == SHR_SOLO_HEAP;
    info->items = p->n;
    info->bytes_used = p->top;
    info->page_size = SHR_SOLO_PAGE;
    info->sets = shr_load_relaxed(&p->nsets);
    info->repairs = shr_load_relaxed(&p->nrepairs);
    info->created_ns = p->head.created_ns;
    char path[SHR_NAME_MAX + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", SHR_SHM_DIR, s->name);
    if (stat(path, &st) == 0 && st.st_ino == s->ino && st.st_dev == s->dev)
        info->committed = (uint64_t)st.st_blocks * 512u;
    return 0;
}

#define BAD(...)                                           \
    do {                                                   \
        bad++;                                             \
        if (out) fprintf(out, "solo: " __VA_ARGS__);       \
    } while (0)

int shr_solo_check(shr_solo_t *s, FILE *out)
{
    if (!s) return -EINVAL;
    solo_page_t *p = s->page;
    int rc = solo_lock(s);
    if (rc) return rc;
    int bad = 0;
    uint32_t state = shr_load_acquire(&p->head.state);
    uint32_t n = p->n, top = p->top;
    if (p->head.checksum != shr__solo_head_checksum(&p->head)) BAD("S1: the head's checksum does not match\n");
    if (state != SHR_SOLO_COMPACT && state != SHR_SOLO_HEAP) BAD("S2: state %u with the lock free\n", state);
    if (shr_load_relaxed(&p->seq) & 1) BAD("S3: the sequence counter is odd with the lock free\n");
    if (shr_load_relaxed(&p->redo) != 0) BAD("S3: a redo record is pending with the lock free\n");
    if (n > MAX_ITEMS || top > SHR_SOLO_PAGE || top < ITEMS_OFF + n * sizeof(solo_item_t) || top % 8) {
        BAD("S4: %u items and slots ending at %u do not fit the page (or top is not 8-aligned)\n", n, top);
        solo_unlock(s);
        return bad;
    }
    /* Slots: inside [items' end, top), apart from each other. */
    uint32_t lo = ITEMS_OFF + n * (uint32_t)sizeof(solo_item_t);
    uint8_t used[SHR_SOLO_PAGE / 8];
    memset(used, 0, sizeof used);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t w0 = shr_load_relaxed(&items(p)[i].w0), w1 = shr_load_relaxed(&items(p)[i].w1);
        unsigned t = tag_of(w0);
        uint32_t slot = slot_of(w0), cap = cap_of(w0);
        if (!inline_type(t) && !string_type(t)) BAD("S5: item %u has type %u\n", i, t);
        if (t == SHR_BOOL && w1 > 1) BAD("S5: item %u, a bool, holds %llu\n", i, (unsigned long long)w1);
        if (string_type(t) && w1 > cap) BAD("S6: item %u holds %llu bytes in a slot of %u\n", i, (unsigned long long)w1, cap);
        else if (t == SHR_STR && slot >= lo && slot + cap <= top &&
                 !shr__utf8_valid((const unsigned char *)p + slot, (size_t)w1))
            BAD("S8: item %u, a str, is not valid UTF-8\n", i);
        if (cap == 0) continue;
        if (slot < lo || slot + cap > top || slot % 8 || cap % 8) {
            BAD("S6: item %u's slot [%u, %u) is outside [%u, %u)\n", i, slot, slot + cap, lo, top);
            continue;
        }
        for (uint32_t b = slot / 8; b < (slot + cap) / 8; b++) {
            if (used[b]) {
                BAD("S7: item %u's slot overlaps another's at byte %u\n", i, b * 8);
                break;
            }
            used[b] = 1;
        }
    }
    solo_unlock(s);
    return bad;
}
