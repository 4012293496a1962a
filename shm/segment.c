/* Segment
 *
 * One heap is one POSIX shm object, reserved whole and committed as used.
 *
 *   create   shm_open(O_EXCL) of a temporary name; ftruncate to capacity;
 *            fallocate the metadata; map MAP_SHARED|MAP_NORESERVE; write the
 *            header and let the layers initialise their regions; register the
 *            creating process; then rename the object to its real name with
 *            RENAME_NOREPLACE. Attachers therefore never see a half-built
 *            segment, and a creator that dies leaves only a temporary name
 *            (".shr_tmp_*", listed and removable with the sharena tool).
 *   attach   shm_open; fstat; pread the header (never touch the mapping of a
 *            segment not yet validated: a truncated object would SIGBUS);
 *            validate magic, version, size, checksum and layout; map; register.
 *   commit   before first use: fallocate() of the metadata at creation, then
 *            madvise(MADV_POPULATE_WRITE) on the mapping, so that a full
 *            /dev/shm is an ENOMEM from the caller and never a SIGBUS on
 *            first touch.
 *   release  madvise(MADV_REMOVE), a hole punched through the mapping: the
 *            object's st_blocks follow live data.
 *   fd       closed once the segment is mapped: commit and release go
 *            through the mapping, so an attached heap costs no descriptor.
 *
 * Errors on attach (header_validate), checked in this order:
 *   0. SHR_ENOTSHR   not a regular file (a directory, a symlink, a fifo)
 *   1. SHR_ENOTSHR   shorter than a magic number, or the magic is not ours
 *   2. SHR_ETRUNC    too short to hold the version field
 *   3. SHR_EVERSION  another layout version
 *   4. SHR_ETRUNC    shorter than the header
 *   5. SHR_ECORRUPT  checksum mismatch (before anything else in the header
 *                    is trusted)
 *   6. SHR_EVERSION  same version, other constants: another libc's mutex
 *                    size, another build's layer sizes
 *   7. SHR_ECORRUPT  impossible values (limits, capacity, sizes, offsets,
 *                    name)
 *   8. SHR_ETRUNC / SHR_ECORRUPT  object shorter / longer than its capacity
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm.h"

static const char shr_magic[8] = "SHARENA";

/* ---- names and messages ---------------------------------------------- */

int shr_name_check(const char *name, size_t len)
{
    if (name == NULL || len == 0) return SHR_ENAME;
    if (len > SHR_NAME_MAX) return -ENAMETOOLONG;
    if (memchr(name, '\0', len) != NULL) return SHR_ENAME;
    if (memchr(name, '/', len) != NULL) return SHR_ENAME;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return SHR_ENAME;
    return 0;
}

static int check_cname(const char *name)
{
    if (name == NULL) return SHR_ENAME;
    size_t len = strnlen(name, SHR_NAME_MAX + 1);
    return shr_name_check(name, len);
}

const char *shr_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define SHR__ERR_MSG(name, c, msg)                                                   \
    case (c):                                                                        \
        return msg;
        SHR_ERRNO_MAP(SHR__ERR_MSG)
#undef SHR__ERR_MSG
    default:
        break;
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

static int shm_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", SHR_SHM_DIR, name);
    return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

static void random_suffix(char *buf, size_t size)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)shr__now_ns(CLOCK_MONOTONIC) ^ (uint32_t)getpid() * 2654435761u;
    snprintf(buf, size, "%08x", r);
}

/* ---- header ---------------------------------------------------------- */

static uint64_t header_checksum(const seg_header_t *hdr)
{
    return shr__fnv1a(hdr, offsetof(seg_header_t, checksum));
}

/* Lay out the registry tables and the layers' regions after the fixed
 * header for a segment of `capacity` bytes with the limits recorded in hdr
 * (max_procs, max_threads); returns meta_size. A pure function of its
 * inputs: attach recomputes it to check the recorded layout. */
static uint64_t layout_regions(seg_header_t *hdr, const shr__seg_params_t *p, uint64_t capacity)
{
    uint64_t np = hdr->max_procs, nt = hdr->max_threads;
    uint64_t off = SHR_ALIGN_UP(sizeof(seg_header_t), SHR_CACHELINE);
    hdr->procs_off = off;
    off += np * sizeof(proc_entry_t);
    hdr->threads_off = off;
    off += nt * sizeof(thread_slot_t);
    for (int l = 0; l < SHR_NLAYERS; l++) {
        hdr->global_size[l] = SHR_ALIGN_UP(p->global_size[l] + hdr->log_records * p->global_per_record[l], SHR_CACHELINE);
        hdr->global_off[l] = off;
        off += hdr->global_size[l];
        hdr->proc_size[l] = SHR_ALIGN_UP(p->proc_size[l], SHR_CACHELINE);
        hdr->proc_off[l] = off;
        off += hdr->proc_size[l] * np;
        hdr->thread_size[l] = SHR_ALIGN_UP(p->thread_size[l], SHR_CACHELINE);
        hdr->thread_off[l] = off;
        off += hdr->thread_size[l] * nt;
    }
    off = SHR_ALIGN_UP(off, SHR_OS_PAGE);
    hdr->eager_size = off;
    for (int l = 0; l < SHR_NLAYERS; l++) {
        hdr->table_size[l] = p->table_size[l];
        hdr->table_off[l] = off;
        off = SHR_ALIGN_UP(off + p->table_size[l] * (capacity >> SHR_CHUNK_SHIFT), SHR_OS_PAGE);
    }
    return SHR_ALIGN_UP(off, SHR_CHUNK_SIZE);
}

static void header_init(seg_header_t *hdr, const char *name, uint64_t capacity,
                        const shr_heap_options_t *o, const shr__seg_params_t *p)
{
    memcpy(hdr->magic, shr_magic, sizeof hdr->magic);
    hdr->layout_version = SHR_LAYOUT_VERSION;
    hdr->header_size = sizeof(seg_header_t);
    hdr->byte_order = 0x01020304u;
    hdr->chunk_size = (uint32_t)SHR_CHUNK_SIZE;
    hdr->max_procs = o->max_procs;
    hdr->max_threads = o->max_threads;
    hdr->log_records = o->gc_log_records;
    hdr->nlocks = SHR_NLOCKS;
    hdr->sizeof_mutex = sizeof(pthread_mutex_t);
    hdr->sizeof_proc = sizeof(proc_entry_t);
    hdr->sizeof_thread = sizeof(thread_slot_t);
    hdr->flags = o->flags;
    hdr->mode = o->mode;
    hdr->lock_timeout_ms = o->lock_timeout_ms;
    memcpy(hdr->consts, p->consts, sizeof hdr->consts);
    hdr->capacity = capacity;
    hdr->meta_size = layout_regions(hdr, p, capacity);
    hdr->created_ns = shr__now_ns(CLOCK_REALTIME);
    snprintf(hdr->name, sizeof hdr->name, "%s", name);
    hdr->checksum = header_checksum(hdr);
}

/* Compare the recorded layout with the one this build computes for the same
 * capacity: sizes differing is another build (SHR_EVERSION), offsets
 * differing with equal sizes is damage (SHR_ECORRUPT). The limits were
 * checked before. */
static int layout_matches(const seg_header_t *hdr, const shr__seg_params_t *p)
{
    seg_header_t *e = calloc(1, sizeof *e);
    int rc = 0;
    if (!e) return -ENOMEM;
    e->max_procs = hdr->max_procs;
    e->max_threads = hdr->max_threads;
    e->log_records = hdr->log_records; /* checked by header_validate */
    uint64_t meta = layout_regions(e, p, hdr->capacity);
    if (memcmp(hdr->consts, p->consts, sizeof hdr->consts) != 0 || meta != hdr->meta_size ||
        memcmp(e->global_size, hdr->global_size, sizeof e->global_size) != 0 ||
        memcmp(e->proc_size, hdr->proc_size, sizeof e->proc_size) != 0 ||
        memcmp(e->thread_size, hdr->thread_size, sizeof e->thread_size) != 0 ||
        memcmp(e->table_size, hdr->table_size, sizeof e->table_size) != 0)
        rc = SHR_EVERSION;
    else if (memcmp(e->global_off, hdr->global_off, sizeof e->global_off) != 0 ||
             memcmp(e->proc_off, hdr->proc_off, sizeof e->proc_off) != 0 ||
             memcmp(e->thread_off, hdr->thread_off, sizeof e->thread_off) != 0 ||
             memcmp(e->table_off, hdr->table_off, sizeof e->table_off) != 0 ||
             e->eager_size != hdr->eager_size || e->procs_off != hdr->procs_off ||
             e->threads_off != hdr->threads_off)
        rc = SHR_ECORRUPT;
    free(e);
    return rc;
}

/* Validate a header copy read from an object of `size` bytes. */
static int header_validate(const seg_header_t *hdr, uint64_t size, const shr__seg_params_t *p)
{
    if (size < sizeof hdr->magic || memcmp(hdr->magic, shr_magic, sizeof hdr->magic) != 0)
        return SHR_ENOTSHR;
    if (size < offsetof(seg_header_t, header_size) + sizeof hdr->header_size)
        return SHR_ETRUNC;
    if (hdr->layout_version != SHR_LAYOUT_VERSION) return SHR_EVERSION;
    if (size < sizeof(seg_header_t)) return SHR_ETRUNC;
    if (hdr->checksum != header_checksum(hdr)) return SHR_ECORRUPT;
    if (hdr->header_size != sizeof(seg_header_t) || hdr->byte_order != 0x01020304u ||
        hdr->sizeof_mutex != sizeof(pthread_mutex_t) || hdr->nlocks != SHR_NLOCKS ||
        hdr->sizeof_proc != sizeof(proc_entry_t) || hdr->sizeof_thread != sizeof(thread_slot_t) ||
        hdr->chunk_size != SHR_CHUNK_SIZE)
        return SHR_EVERSION;
    if (hdr->max_procs == 0 || hdr->max_procs > SHR__PROCS_LIMIT || hdr->max_threads == 0 ||
        hdr->max_threads > SHR__THREADS_LIMIT || hdr->log_records > SHR_GC_LOG_MAX ||
        (hdr->log_records & (hdr->log_records - 1)))
        return SHR_ECORRUPT;
    if (p) {
        int rc = layout_matches(hdr, p);
        if (rc) return rc;
    }
    if (hdr->capacity % SHR_CHUNK_SIZE || hdr->meta_size % SHR_CHUNK_SIZE ||
        hdr->eager_size > hdr->meta_size ||
        hdr->meta_size >= hdr->capacity || hdr->capacity > SHR_MAX_CAPACITY ||
        hdr->procs_off < sizeof(seg_header_t) ||
        hdr->threads_off != hdr->procs_off + (uint64_t)hdr->max_procs * sizeof(proc_entry_t) ||
        hdr->threads_off + (uint64_t)hdr->max_threads * sizeof(thread_slot_t) > hdr->eager_size ||
        memchr(hdr->name, 0, sizeof hdr->name) == NULL)
        return SHR_ECORRUPT;
    if (size < hdr->capacity) return SHR_ETRUNC;
    if (size > hdr->capacity) return SHR_ECORRUPT;
    return 0;
}

/* ---- commit and release ---------------------------------------------- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static _Atomic uint64_t fail_commit_countdown;

void shr__seg_fail_commit_after(uint64_t n) { shr_store_relaxed(&fail_commit_countdown, n); }

static bool commit_should_fail(void)
{
    uint64_t n = shr_load_relaxed(&fail_commit_countdown);
    return shr_unlikely(n != 0) && atomic_fetch_sub(&fail_commit_countdown, 1) == 1;
}

/* Commit through the fd: creation, before the segment is mapped. */
static int fd_commit(int fd, uint64_t off, uint64_t len)
{
    if (commit_should_fail()) return -ENOMEM;
    int rc;
    do rc = fallocate(fd, 0, (off_t)off, (off_t)len);
    while (rc != 0 && errno == EINTR);
    if (rc == 0) return 0;
    return errno == ENOSPC || errno == EFBIG ? -ENOMEM : -errno;
}

/* What a new segment commits at creation: everything before eager_size but
 * the registry's process entries and the layers' per-process regions
 * (committed entry by entry at an entry's first claim, shr__seg_commit_proc,
 * registry.c R6), the per-thread arrays (the registry's thread slots
 * and each layer's thread regions), which are zero until a thread slot is
 * first claimed and are committed then, slot by slot
 * (shr__seg_commit_thread), and the lazy
 * end of each layer's global region (shr__seg_params_t.global_lazy and the
 * per-record part), which its layer commits as it first writes there. A
 * heap used by one thread thus commits one slot's pages, not max_threads
 * slots', and an event log or a root directory only the pages it has used. */
static int commit_eager(int fd, const seg_header_t *lay, const shr__seg_params_t *p)
{
    int rc = fd_commit(fd, 0, lay->procs_off); /* the header: entries at their first claim (R6) */
    for (int l = 0; rc == 0 && l < SHR_NLAYERS; l++) {
        uint64_t eager = p->global_size[l] - p->global_lazy[l];
        if (eager) rc = fd_commit(fd, lay->global_off[l], eager);
    }
    return rc;
}

int shr__seg_commit_proc(shr_heap_t *h, uint32_t proc)
{
    SHR_ASSERT(proc < h->max_procs);
    const seg_header_t *hdr = h->hdr;
    int rc = shr__seg_commit(h, hdr->procs_off + (uint64_t)proc * sizeof(proc_entry_t), sizeof(proc_entry_t));
    for (int l = 0; rc == 0 && l < SHR_NLAYERS; l++)
        if (hdr->proc_size[l])
            rc = shr__seg_commit(h, hdr->proc_off[l] + (uint64_t)proc * hdr->proc_size[l], hdr->proc_size[l]);
    return rc;
}

int shr__seg_commit_thread(shr_heap_t *h, uint32_t slot)
{
    SHR_ASSERT(slot < h->max_threads);
    const seg_header_t *hdr = h->hdr;
    int rc = shr__seg_commit(h, hdr->threads_off + (uint64_t)slot * sizeof(thread_slot_t), sizeof(thread_slot_t));
    for (int l = 0; rc == 0 && l < SHR_NLAYERS; l++)
        if (hdr->thread_size[l])
            rc = shr__seg_commit(h, hdr->thread_off[l] + (uint64_t)slot * hdr->thread_size[l], hdr->thread_size[l]);
    return rc;
}

bool shr__seg_resident(const shr_heap_t *h, const void *p)
{
    if (h->flags & SHR_HEAP_PRIVATE) return true;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(SHR_OS_PAGE - 1);
    unsigned char in = 0;
    /* Unknown (mincore failed): say committed, and let the reader read. */
    return mincore((void *)page, SHR_OS_PAGE, &in) != 0 || (in & 1);
}

/* Give back the pages of [p, p + len) that `was` (mincore, one byte per page)
 * shows were not committed before a failed commit. */
static void undo_commit(uint8_t *p, uint64_t len, const unsigned char *was)
{
    uint64_t npages = len / SHR_OS_PAGE;
    for (uint64_t i = 0; i < npages;) {
        if (was[i] & 1) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < npages && !(was[j] & 1)) j++;
        madvise(p + i * SHR_OS_PAGE, (j - i) * SHR_OS_PAGE, MADV_REMOVE);
        i = j;
    }
}

/* Populate the pages writable in the shared mapping: tmpfs allocates them
 * now, and a full mount fails the call (EFAULT, "would SIGBUS") instead of a
 * later touch. On failure the pages this call allocated are given back, as a
 * failed fallocate does, so the caller's range is as it was. */
int shr__seg_commit(shr_heap_t *h, uint64_t off, uint64_t len)
{
    SHR_ASSERT(off + len <= h->capacity);
    if (commit_should_fail()) return -ENOMEM;
    if (h->flags & SHR_HEAP_PRIVATE) return 0; /* pages come when written (private.c) */
    uint64_t start = SHR_ALIGN_DOWN(off, SHR_OS_PAGE);
    len = SHR_ALIGN_UP(off + len, SHR_OS_PAGE) - start;
    if (len == 0) return 0;
    uint8_t *p = h->base + start;
    /* Not malloc: this runs under the allocator's locks, and the process's
     * malloc may be this very heap (libsharena-malloc.so). */
    size_t wlen = (size_t)(len / SHR_OS_PAGE);
    unsigned char *was = mmap(NULL, wlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (was == MAP_FAILED) was = NULL;
    if (was && mincore(p, len, was) != 0) {
        munmap(was, wlen);
        was = NULL;
    }
    int rc;
    do rc = madvise(p, len, MADV_POPULATE_WRITE);
    while (rc != 0 && errno == EINTR);
    if (rc == 0) {
        if (was) munmap(was, wlen);
        return 0;
    }
    int err = errno;
    if (was) undo_commit(p, len, was);
    if (was) munmap(was, wlen);
    return err == EFAULT || err == ENOMEM || err == ENOSPC ? -ENOMEM : -err;
}

int shr__seg_release(shr_heap_t *h, uint64_t off, uint64_t len)
{
    SHR_ASSERT(off + len <= h->capacity);
    SHR_ASSERT(off % SHR_OS_PAGE == 0 && len % SHR_OS_PAGE == 0);
    if (len == 0) return 0;
    if (h->flags & SHR_HEAP_PRIVATE) return shr__private_release(h, off, len);
    return madvise(h->base + off, len, MADV_REMOVE) == 0 ? 0 : -errno;
}

/* st_blocks of the object, found by its name while the name is still ours;
 * else the pages of the mapping that are in memory (mincore, by windows). */
uint64_t shr__seg_committed(const shr_heap_t *h)
{
    char path[SHR_NAME_MAX + 32];
    struct stat st;
    if (h->flags & SHR_HEAP_PRIVATE) return shr__private_committed(h);
    if (shm_path(path, sizeof path, h->name) == 0 && stat(path, &st) == 0 &&
        st.st_ino == h->ino && st.st_dev == h->dev)
        return (uint64_t)st.st_blocks * 512u;
    unsigned char vec[4096];
    uint64_t window = sizeof vec * (uint64_t)SHR_OS_PAGE, n = 0;
    for (uint64_t off = 0; off < h->capacity; off += window) {
        uint64_t len = h->capacity - off < window ? h->capacity - off : window;
        if (mincore(h->base + off, len, vec) != 0) return 0;
        for (uint64_t i = 0; i < len / SHR_OS_PAGE; i++) n += vec[i] & 1;
    }
    return n * SHR_OS_PAGE;
}

/* ---- create, attach, close ------------------------------------------- */

void shr_heap_options_init(shr_heap_options_t *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->capacity = SHR_DEFAULT_CAPACITY;
    opts->mode = 0600;
    opts->max_procs = SHR_DEFAULT_MAX_PROCS;
    opts->max_threads = SHR_DEFAULT_MAX_THREADS;
    opts->lock_timeout_ms = SHR_DEFAULT_LOCK_TIMEOUT_MS;
    opts->gc_log_records = 0; /* the default for the capacity (below) */
}

/* A handle on a mapped, validated segment. fstat'ed fd gives the object's
 * identity; the fd itself is not kept. */
static shr_heap_t *handle_new(const char *name, const struct stat *st, uint8_t *base,
                              uint64_t capacity)
{
    shr_heap_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->base = base;
    h->map = base;
    h->map_len = capacity;
    h->hdr = (seg_header_t *)base;
    h->capacity = capacity;
    h->max_procs = h->hdr->max_procs;
    h->max_threads = h->hdr->max_threads;
    h->procs = (proc_entry_t *)(base + h->hdr->procs_off);
    h->threads = (thread_slot_t *)(base + h->hdr->threads_off);
    h->fd = -1;
    h->dev = st->st_dev;
    h->ino = st->st_ino;
    h->flags = h->hdr->flags;
    snprintf(h->name, sizeof h->name, "%s", name);
    return h;
}

static void handle_free(shr_heap_t *h)
{
    if (h->flags & SHR_HEAP_PRIVATE) shr__private_forget(h);
    if (h->layer_close) h->layer_close(h);
    if (h->map) munmap(h->map, h->map_len);
    if (h->fd >= 0) close(h->fd);
    free(h);
}

static int normalise_options(const shr_heap_options_t *opts, shr_heap_options_t *o)
{
    if (opts) *o = *opts;
    else shr_heap_options_init(o);
    if (o->capacity == 0) o->capacity = SHR_DEFAULT_CAPACITY;
    if (o->mode == 0) o->mode = 0600;
    if (o->max_procs == 0) o->max_procs = SHR_DEFAULT_MAX_PROCS;
    if (o->max_threads == 0) o->max_threads = SHR_DEFAULT_MAX_THREADS;
    if (o->lock_timeout_ms == 0) o->lock_timeout_ms = SHR_DEFAULT_LOCK_TIMEOUT_MS;
    if (o->gc_log_records == 0) {
        /* One record per 16 KiB of capacity, 64 to 4096: a small heap keeps
         * small metadata. */
        uint64_t n = (uint64_t)o->capacity >> 14;
        o->gc_log_records = n < 64 ? 64 : n > SHR_DEFAULT_GC_LOG_RECORDS ? SHR_DEFAULT_GC_LOG_RECORDS : (uint32_t)n;
    }
    if (o->gc_log_records == SHR_GC_LOG_NONE) o->gc_log_records = 0;
    else if (o->gc_log_records > SHR_GC_LOG_MAX) return -EINVAL;
    else
        while (o->gc_log_records & (o->gc_log_records - 1)) o->gc_log_records += o->gc_log_records & -o->gc_log_records;
    if (o->flags & ~(unsigned)(SHR_HEAP_UNLINK_ON_LAST_CLOSE | SHR_HEAP_GUARDS | SHR_HEAP_PRIVATE | SHR_HEAP_POOLS_16K))
        return -EINVAL;
    if ((o->flags & SHR_HEAP_PRIVATE) && (o->flags & SHR_HEAP_UNLINK_ON_LAST_CLOSE)) return -EINVAL;
    if (o->mode & ~0777u) return -EINVAL;
    if (o->capacity > SHR_MAX_CAPACITY) return -EINVAL;
    if (o->max_procs > SHR__PROCS_LIMIT || o->max_threads > SHR__THREADS_LIMIT) return -EINVAL;
    for (size_t i = 0; i < SHR_ARRAY_LEN(o->reserved); i++)
        if (o->reserved[i] != 0) return -EINVAL;
    return 0;
}

/* A private heap (private.c): no name, an anonymous file mapped
 * copy-on-write, nothing to publish. */
static int create_private(const shr_heap_options_t *o, const shr__seg_params_t *params,
                          shr_heap_t **out)
{
    uint64_t capacity = SHR_ALIGN_UP((uint64_t)o->capacity, SHR_CHUNK_SIZE);
    if (capacity > SHR_MAX_CAPACITY) return -EINVAL;
    seg_header_t probe;
    memset(&probe, 0, sizeof probe);
    probe.max_procs = o->max_procs;
    probe.max_threads = o->max_threads;
    probe.log_records = o->gc_log_records;
    if (capacity <= layout_regions(&probe, params, capacity)) return -EINVAL;
    struct stat st;
    memset(&st, 0, sizeof st);
    int fd, rc;
    uint8_t *base;
    if ((rc = shr__private_map(capacity, &fd, &base)) != 0) return rc;
    seg_header_t *hdr = (seg_header_t *)base;
    header_init(hdr, "", capacity, o, params);
    shr_heap_t *h = handle_new("", &st, base, capacity);
    if (!h) {
        munmap(base, capacity);
        return -ENOMEM;
    }
    if ((rc = shr__lock_init_all(hdr)) != 0 || (rc = shr__registry_init(h)) != 0) goto fail;
    h->layer_close = params->close;
    if ((params->open && (rc = params->open(h)) != 0) ||
        (params->init && (rc = params->init(h)) != 0) || (rc = shr__proc_register(h)) != 0)
        goto fail;
    if ((rc = shr__private_register(h)) != 0) {
        shr__proc_unregister(h);
        goto fail;
    }
    *out = h;
    return 0;
fail:
    handle_free(h);
    return rc;
}

int shr__seg_create(const char *name, const shr_heap_options_t *opts,
                    const shr__seg_params_t *params, shr_heap_t **out)
{
    shr_heap_options_t o;
    char gen_name[64], tmp_name[64], tmp_path[96], path[SHR_NAME_MAX + 32], rnd[16];
    shr_heap_t *h = NULL;
    uint8_t *base = MAP_FAILED;
    struct stat st;
    int fd = -1, rc;

    if ((rc = normalise_options(opts, &o)) != 0) return rc;
    if (o.flags & SHR_HEAP_PRIVATE) return name ? -EINVAL : create_private(&o, params, out);
    if (name == NULL) {
        random_suffix(rnd, sizeof rnd);
        snprintf(gen_name, sizeof gen_name, "shr_%d_%s", (int)getpid(), rnd);
        name = gen_name;
    }
    rc = check_cname(name);
    if (rc) return rc;
    if ((rc = shm_path(path, sizeof path, name)) != 0) return rc;

    uint64_t capacity = SHR_ALIGN_UP((uint64_t)o.capacity, SHR_CHUNK_SIZE);
    if (capacity > SHR_MAX_CAPACITY) return -EINVAL;
    seg_header_t probe;
    memset(&probe, 0, sizeof probe);
    probe.max_procs = o.max_procs;
    probe.max_threads = o.max_threads;
    probe.log_records = o.gc_log_records;
    uint64_t meta = layout_regions(&probe, params, capacity);
    if (capacity <= meta) return -EINVAL;

    random_suffix(rnd, sizeof rnd);
    snprintf(tmp_name, sizeof tmp_name, ".shr_tmp_%d_%s", (int)getpid(), rnd);
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", SHR_SHM_DIR, tmp_name);
    fd = shm_open(tmp_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o.mode);
    if (fd < 0) return -errno;
    if (fchmod(fd, o.mode) != 0 || ftruncate(fd, (off_t)capacity) != 0) {
        rc = errno == EFBIG ? -ENOMEM : -errno;
        goto fail;
    }
    if ((rc = commit_eager(fd, &probe, params)) != 0) goto fail;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    base = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    close(fd); /* the mapping keeps the object; nothing below needs the fd */
    fd = -1;
    seg_header_t *hdr = (seg_header_t *)base;
    header_init(hdr, name, capacity, &o, params);
    h = handle_new(name, &st, base, capacity);
    if (!h) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = shr__lock_init_all(hdr)) != 0 || (rc = shr__registry_init(h)) != 0) goto fail_handle;
    h->layer_close = params->close;
    if (params->open && (rc = params->open(h)) != 0) goto fail_handle;
    if (params->init && (rc = params->init(h)) != 0) goto fail_handle;
    if ((rc = shr__proc_register(h)) != 0) goto fail_handle;
    /* Publish: the name appears only now, complete. */
    if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
        rc = -errno;
        shr__proc_unregister(h);
        goto fail_handle;
    }
    *out = h;
    return 0;

fail_handle:
    handle_free(h);
    shm_unlink(tmp_name);
    return rc;
fail:
    if (base != MAP_FAILED) munmap(base, capacity);
    if (fd >= 0) close(fd);
    shm_unlink(tmp_name);
    return rc;
}

/* Open and validate; on success *fdp, *st and *hdr_copy describe the
 * segment, whose heap starts at *offp in the object (0, or a compact list's
 * heap_off). */
static int open_validated(const char *name, int oflag, const shr__seg_params_t *params,
                          int *fdp, uint64_t *offp, struct stat *st, seg_header_t *hdr_copy)
{
    int rc = check_cname(name);
    if (rc) return rc;
    int fd = shm_open(name, oflag | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        /* glibc reports a directory as EINVAL, a symlink (opened with
         * O_NOFOLLOW) as ELOOP, a socket as ENXIO: whatever the errno,
         * something that is not a regular file is not ours. */
        char path[SHR_NAME_MAX + 32];
        struct stat ls;
        if (rc != -ENOENT && shm_path(path, sizeof path, name) == 0 && lstat(path, &ls) == 0 &&
            !S_ISREG(ls.st_mode))
            rc = SHR_ENOTSHR;
        return rc;
    }
    if (fstat(fd, st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st->st_mode)) {
        rc = SHR_ENOTSHR;
        goto fail;
    }
    uint64_t off = 0, size = (uint64_t)st->st_size;
    seg_solo_head_t head;
    memset(&head, 0, sizeof head);
    ssize_t n = pread(fd, &head, sizeof head, 0);
    if (n < 0) {
        rc = -errno;
        goto fail;
    }
    if ((size_t)n >= sizeof head.magic && memcmp(head.magic, SHR_SOLO_MAGIC, sizeof head.magic) == 0) {
        /* A compact list's segment: its heap, if it has become one. */
        if ((rc = shr__solo_head_validate(&head, size)) != 0) goto fail;
        if (atomic_load_explicit(&head.state, memory_order_relaxed) != SHR_SOLO_HEAP) {
            rc = SHR_ECOMPACT;
            goto fail;
        }
        off = head.heap_off;
        size -= off;
    }
    memset(hdr_copy, 0, sizeof *hdr_copy);
    n = pread(fd, hdr_copy, sizeof *hdr_copy, (off_t)off);
    if (n < 0) {
        rc = -errno;
        goto fail;
    }
    rc = header_validate(hdr_copy, size, params);
    if (rc) goto fail;
    *fdp = fd;
    *offp = off;
    return 0;
fail:
    close(fd);
    return rc;
}

static int attach_mapped(uint8_t *map, uint64_t off, const seg_header_t *copy, const struct stat *st,
                         const char *name, const shr__seg_params_t *params, shr_heap_t **out);

int shr__seg_attach(const char *name, const shr__seg_params_t *params, shr_heap_t **out)
{
    seg_header_t copy;
    struct stat st;
    uint64_t off;
    int fd, rc;
    rc = open_validated(name, O_RDWR, params, &fd, &off, &st, &copy);
    if (rc) return rc;
    uint64_t capacity = copy.capacity;
    uint8_t *map =
        mmap(NULL, off + capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    rc = map == MAP_FAILED ? -errno : 0;
    close(fd); /* the mapping keeps the object */
    if (rc) return rc;
    return attach_mapped(map, off, &copy, &st, name, params, out);
}

/* Finish an attach on a mapping of [0, off + copy->capacity) whose header,
 * at off, was validated as `copy`; the handle takes over the mapping (it is
 * unmapped here on failure). */
static int attach_mapped(uint8_t *map, uint64_t off, const seg_header_t *copy, const struct stat *st,
                         const char *name, const shr__seg_params_t *params, shr_heap_t **out)
{
    uint64_t capacity = copy->capacity;
    uint8_t *base = map + off;
    int rc;
    /* The mapped header is shared and writable by others: take the fields
     * that sized the checks from the validated copy. */
    if (memcmp(base, copy, offsetof(seg_header_t, checksum) + sizeof copy->checksum) != 0) {
        munmap(map, off + capacity);
        return SHR_ECORRUPT;
    }
    /* The lock table is outside the checksum (its mutexes change): a lock
     * whose kind was damaged would fault in pthread_mutex_trylock. */
    for (int i = 0; i < SHR_NLOCKS; i++) {
        if (!shr__mutex_sane(&((seg_header_t *)(void *)base)->locks[i].mu)) {
            munmap(map, off + capacity);
            return SHR_ECORRUPT;
        }
    }
    shr_heap_t *h = handle_new(name, st, base, capacity);
    if (!h) {
        munmap(map, off + capacity);
        return -ENOMEM;
    }
    h->map = map;
    h->map_len = off + capacity;
    h->layer_close = params->close;
    if ((params->open && (rc = params->open(h)) != 0) || (rc = shr__proc_register(h)) != 0) {
        handle_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* Unlink our name only if it still names our object: another heap may have
 * been created under the same name after ours was removed. */
void shr__seg_unlink_if_ours(shr_heap_t *h)
{
    char path[SHR_NAME_MAX + 32];
    struct stat theirs;
    if (shm_path(path, sizeof path, h->name) != 0 || stat(path, &theirs) != 0) return;
    if (theirs.st_ino == h->ino && theirs.st_dev == h->dev) shm_unlink(h->name);
}

int shr__seg_close(shr_heap_t *h)
{
    shr__proc_unregister(h);
    handle_free(h);
    return 0;
}

/* ---- the heap of a compact list's segment ------------------------------ */

uint64_t shr__solo_head_checksum(const seg_solo_head_t *head)
{
    return shr__fnv1a(head, offsetof(seg_solo_head_t, checksum));
}

int shr__solo_head_validate(const seg_solo_head_t *head, uint64_t size)
{
    if (memcmp(head->magic, SHR_SOLO_MAGIC, sizeof head->magic) != 0) return SHR_ENOTSHR;
    if (size < offsetof(seg_solo_head_t, page_size)) return SHR_ETRUNC;
    if (head->layout_version != SHR_LAYOUT_VERSION) return SHR_EVERSION;
    if (size < SHR_SOLO_PAGE) return SHR_ETRUNC;
    if (head->checksum != shr__solo_head_checksum(head)) return SHR_ECORRUPT;
    if (head->sizeof_mutex != sizeof(pthread_mutex_t)) return SHR_EVERSION;
    if (head->page_size != SHR_SOLO_PAGE || head->heap_off != SHR_SOLO_HEAP_OFF ||
        head->file_size <= head->heap_off || (head->file_size - head->heap_off) % SHR_CHUNK_SIZE ||
        head->file_size - head->heap_off > SHR_MAX_CAPACITY)
        return SHR_ECORRUPT;
    if (size < head->file_size) return SHR_ETRUNC;
    if (size > head->file_size) return SHR_ECORRUPT;
    uint32_t state = atomic_load_explicit(&head->state, memory_order_relaxed);
    if (state < SHR_SOLO_COMPACT || state > SHR_SOLO_HEAP) return SHR_ECORRUPT;
    return 0;
}

/* Commit [off, off + len) of a mapping no handle owns yet (the creation of
 * a compact list's heap), as shr__seg_commit does for a handle's. */
static int map_commit(uint8_t *map, uint64_t off, uint64_t len)
{
    shr_heap_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.base = map;
    tmp.capacity = off + len;
    return shr__seg_commit(&tmp, off, len);
}

int shr__seg_create_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                       const char *name, const shr_heap_options_t *opts,
                       const shr__seg_params_t *params, shr_heap_t **out)
{
    shr_heap_options_t o;
    int rc;
    if ((rc = normalise_options(opts, &o)) != 0 ||
        ((o.flags & (SHR_HEAP_PRIVATE | SHR_HEAP_UNLINK_ON_LAST_CLOSE)) && (rc = -EINVAL)) ||
        ((heap_off % SHR_OS_PAGE || capacity % SHR_CHUNK_SIZE || capacity > SHR_MAX_CAPACITY) &&
         (rc = -EINVAL))) {
        munmap(map, heap_off + capacity);
        return rc;
    }
    o.capacity = capacity;
    seg_header_t probe;
    memset(&probe, 0, sizeof probe);
    probe.max_procs = o.max_procs;
    probe.max_threads = o.max_threads;
    probe.log_records = o.gc_log_records;
    uint8_t *base = map + heap_off;
    rc = capacity <= layout_regions(&probe, params, capacity) ? -EINVAL : 0;
    /* What commit_eager commits through a new object's fd. */
    if (rc == 0) rc = map_commit(map, heap_off, probe.procs_off);
    for (int l = 0; rc == 0 && l < SHR_NLAYERS; l++) {
        uint64_t eager = params->global_size[l] - params->global_lazy[l];
        if (eager) rc = map_commit(map, heap_off + probe.global_off[l], eager);
    }
    seg_header_t *hdr = (seg_header_t *)base;
    shr_heap_t *h = NULL;
    if (rc == 0) {
        header_init(hdr, name, capacity, &o, params);
        if (!(h = handle_new(name, st, base, capacity))) rc = -ENOMEM;
    }
    if (rc) {
        munmap(map, heap_off + capacity);
        return rc;
    }
    h->map = map;
    h->map_len = heap_off + capacity;
    if ((rc = shr__lock_init_all(hdr)) != 0 || (rc = shr__registry_init(h)) != 0) goto fail;
    h->layer_close = params->close;
    if (params->open && (rc = params->open(h)) != 0) goto fail;
    if (params->init && (rc = params->init(h)) != 0) goto fail;
    if ((rc = shr__proc_register(h)) != 0) goto fail;
    *out = h;
    return 0;
fail:
    handle_free(h); /* and the mapping */
    return rc;
}

int shr__seg_attach_in(uint8_t *map, uint64_t heap_off, uint64_t capacity, const struct stat *st,
                       const char *name, const shr__seg_params_t *params, shr_heap_t **out)
{
    seg_header_t copy;
    memcpy(&copy, map + heap_off, sizeof copy);
    int rc = header_validate(&copy, capacity, params);
    if (rc) {
        munmap(map, heap_off + capacity);
        return rc;
    }
    return attach_mapped(map, heap_off, &copy, st, name, params, out);
}

int shr_heap_unlink(const char *name)
{
    int rc = check_cname(name);
    if (rc) return rc;
    return shm_unlink(name) == 0 ? 0 : -errno;
}

const char *shr_heap_name(const shr_heap_t *h) { return h ? h->name : NULL; }

shr_off_t shr_off(const shr_heap_t *h, const void *ptr)
{
    const uint8_t *p = ptr;
    if (!h || !p || p < h->base || p >= h->base + h->capacity) return 0;
    return (shr_off_t)(p - h->base);
}

void *shr_ptr(const shr_heap_t *h, shr_off_t off)
{
    if (!h || off == 0 || off >= h->capacity) return NULL;
    return h->base + off;
}

/* ---- inspection ------------------------------------------------------ */

static const char *const lock_names[SHR_NLOCKS] = {
    [SHR_LOCK_GC] = "gc",           [SHR_LOCK_ROOTS] = "roots", [SHR_LOCK_REGISTRY] = "registry",
    [SHR_LOCK_LARGE] = "large",     [SHR_LOCK_ARENA] = "arena",
};
_Static_assert(SHR_NLOCKS <= SHR_INFO_LOCKS, "shr_heap_info_t has room for every lock");

/* A view of a mapped segment for collect(): the header and the registry. */
typedef struct {
    seg_header_t *hdr;
    proc_entry_t *procs;
    uint32_t max_procs;
} seg_view_t;

static int view_alive(const seg_view_t *v, uint32_t p)
{
    shr_heap_t tmp = {.hdr = v->hdr, .procs = v->procs, .max_procs = v->max_procs};
    return shr__proc_alive(&tmp, p);
}

static void fill_locks(const seg_view_t *v, shr_heap_info_t *info)
{
    info->nlocks = SHR_NLOCKS;
    for (int i = 0; i < SHR_NLOCKS; i++) {
        shm_lock_t *l = &v->hdr->locks[i];
        shr_lock_info_t *li = &info->locks[i];
        bool died;
        snprintf(li->name, sizeof li->name, "%s", lock_names[i] ? lock_names[i] : "");
        li->holder_tid = shr__mutex_holder(&l->mu, &died);
        /* A dead holder's tid is cleared by the kernel, the owner-died bit
         * stays until the next locker repairs. */
        li->held = li->holder_tid != 0 || died;
        li->holder_dead = died;
        li->holder_alive = -1;
        uint32_t owner = shr_load_relaxed(&l->owner_proc);
        uint32_t hwm = shr_load_acquire(&v->hdr->procs_hwm);
        if (li->held && owner != 0 && owner <= v->max_procs && owner <= hwm) {
            li->holder_index = owner;
            li->holder_pid = v->procs[owner - 1].pid;
            li->holder_alive = li->holder_dead ? 0 : view_alive(v, owner - 1);
        }
        li->nacquired = shr_load_relaxed(&l->nacquired);
        li->nrepaired = shr_load_relaxed(&l->nrepaired);
        li->ntimeouts = shr_load_relaxed(&l->ntimeouts);
        li->last_timeout_ns = shr_load_relaxed(&l->timeout_ns);
        li->last_timeout_pid = shr_load_relaxed(&l->timeout_pid);
        li->last_timeout_holder_tid = shr_load_relaxed(&l->timeout_holder_tid);
        owner = shr_load_relaxed(&l->timeout_holder_proc);
        li->last_timeout_holder_index = owner <= v->max_procs ? owner : 0;
    }
}

static void fill_info(const seg_view_t *v, uint64_t committed, shr_heap_info_t *info)
{
    const seg_header_t *hdr = v->hdr;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", hdr->name);
    info->layout_version = hdr->layout_version;
    info->flags = hdr->flags;
    info->capacity = hdr->capacity;
    info->committed = committed;
    info->meta_size = hdr->meta_size;
    info->created_ns = hdr->created_ns;
    info->max_procs = hdr->max_procs;
    info->max_threads = hdr->max_threads;
    info->lock_timeout_ms = hdr->lock_timeout_ms;
    fill_locks(v, info);
}

/* Fill info and procs from a mapped segment; probes liveness, reclaims
 * nothing. */
static void collect(const seg_view_t *v, uint64_t committed, shr_heap_info_t *info,
                    shr_proc_info_t *procs, size_t max, size_t *nprocs)
{
    size_t n = 0;
    if (info) fill_info(v, committed, info);
    uint32_t hwm = shr_load_acquire(&v->hdr->procs_hwm);
    if (hwm > v->max_procs) hwm = v->max_procs;
    for (uint32_t p = 0; p < hwm; p++) {
        proc_entry_t *pe = &v->procs[p];
        if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE) continue;
        int alive = view_alive(v, p);
        if (info && alive) {
            info->nprocs++;
            info->nthreads += pe->nthreads;
        }
        if (procs && n < max) {
            shr_proc_info_t *pi = &procs[n];
            pi->index = p;
            pi->generation = shr_load_relaxed(&pe->gen);
            pi->pid = pe->pid;
            pi->alive = alive;
            pi->start_time = pe->start_time;
            pi->attach_ns = pe->attach_ns;
            pi->nthreads = pe->nthreads;
        }
        n++;
    }
    if (nprocs) *nprocs = n;
}

int shr_heap_inspect(const char *name, shr_heap_info_t *info, shr_proc_info_t *procs,
                     size_t max, size_t *nprocs)
{
    seg_header_t copy;
    struct stat st;
    uint64_t off;
    int fd, rc;
    /* Probing liveness needs trylock, a write: map read-write. */
    rc = open_validated(name, O_RDWR, NULL, &fd, &off, &st, &copy);
    if (rc) return rc;
    /* The header and the registry tables, which end before eager_size
     * (validated); off is a multiple of the page. */
    size_t len = (size_t)(copy.threads_off + (uint64_t)copy.max_threads * sizeof(thread_slot_t));
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
    rc = base == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc) return rc;
    seg_view_t v = {.hdr = base, .procs = (proc_entry_t *)((uint8_t *)base + copy.procs_off),
                    .max_procs = copy.max_procs};
    collect(&v, (uint64_t)st.st_blocks * 512u, info, procs, max, nprocs);
    munmap(base, len);
    return 0;
}

int shr__seg_stat(shr_heap_t *h, shr_heap_info_t *info, shr_proc_info_t *procs, size_t max,
                  size_t *nprocs)
{
    int rc = shr__registry_reclaim(h, UINT32_MAX); /* the dead, in steps */
    if (rc < 0) return rc;
    rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) return rc;
    shr__registry_sweep_locked(h);
    seg_view_t v = {.hdr = h->hdr, .procs = h->procs, .max_procs = h->max_procs};
    collect(&v, shr__seg_committed(h), info, procs, max, nprocs);
    shr__unlock(h, SHR_LOCK_REGISTRY);
    if (info) snprintf(info->name, sizeof info->name, "%s", h->name);
    return 0;
}
