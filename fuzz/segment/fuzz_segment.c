/* fuzz_segment: damaged segment files in /dev/shm, attached.
 *
 * A file in /dev/shm that a process is about to attach is not trusted
 * (docs/design/reliability.md): nothing in it may crash, hang or mislead the
 * attacher, shr_heap_check or the sharena tool. Segment files are large and
 * mostly holes, so the input is not the file. It is a patch list applied to
 * a copy of a template heap built once at start-up from fixed steps:
 *
 *   blocks of every kind (small, medium, page runs, a chunk run), some freed
 *   (free lists, empty pools, free page runs), remote frees left pending,
 *   roots, named lists of strings and nested lists, and a process that was
 *   SIGKILLed while attached (a dead registry entry and thread slot holding
 *   pools, and leases or not). Six templates: plain and SHR_HEAP_GUARDS,
 *   times three variants of the dead process.
 *
 * Each input writes the patched copy to a fresh name and runs, in order,
 * what the sharena tool's info, check and stats do and a few operations:
 *
 *   shr_heap_inspect                  (sharena info, ls)
 *   shr_heap_attach                   refused with a documented code, or
 *   shr_heap_recover, shr_heap_check_report, shr_heap_stats,
 *   shr_heap_stats_print, shr_heap_stat                   (check, stats)
 *   if check passed: malloc/free of every kind, roots, attach and read of
 *   every named list, a set and an append; then check again
 *   shr_heap_close
 *
 * A crash, an ASan report, a hang (libFuzzer's -timeout) or a check that
 * passed before the operations and fails after them is a finding.
 *
 * Input:  [flags] then up to 32 patches of [sel] [offset u32] [operand]
 *   flags  bit 0: the guarded template; bit 1: recompute the header
 *          checksum after patching (to reach what lies behind it); bits
 *          2-3: the dead process's variant (holds references, released
 *          them, never took any)
 *   sel    low 4 bits: the region (below); high 4 bits: the patch kind:
 *            0..7   write sel>>4 + 1 raw bytes
 *            8, 9   write a 32- or 64-bit value from a table of interesting
 *                   ones (0, ~0, capacity, offsets of real pools and blocks)
 *            10, 11 add a signed byte to a 32- or 64-bit field
 *            12     flip one bit
 *            13     zero 64 bytes
 *            14     copy 16 bytes from another offset of the region
 *            15     change the file's size (truncate or extend)
 *   offset taken modulo the region's length (32/64-bit kinds aligned)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fuzz_common.h"
#include "list.h"

#define TEMPLATE_CAPACITY ((size_t)8 << 20)
#define MAX_PATCHES 32
#define MAX_RANGES 256
#define MAX_POOLS 512

/* ---- regions of a segment ------------------------------------------------- */

enum {
    R_HEADER,      /* the checksummed fixed header */
    R_LOCKS,       /* the lock table */
    R_PROCS,       /* process entries */
    R_THREADS,     /* thread slots (the first few, where the template has them) */
    R_ALLOC_GLOBAL,/* arena classes, run lists, orphans, large lists, roots */
    R_ALLOC_SLOTS, /* the allocator's per-thread regions (first few slots) */
    R_LAYERS,      /* the object and list layers' regions */
    R_CHUNKS,      /* the chunk table */
    R_POOLS,       /* pool headers */
    R_LARGE,       /* page maps of page-run chunks */
    R_DATA,        /* committed data: blocks, free-list links, objects */
    R_ANY,         /* anywhere in the metadata */
    NREGIONS
};

typedef struct span {
    uint64_t off, len;
} span_t;

typedef struct region {
    span_t s[MAX_POOLS];   /* one or more spans, concatenated */
    int n;
    uint64_t total;
} region_t;

typedef struct template {
    uint8_t *bytes;        /* the file, [0, size); holes read as zero */
    uint64_t size;         /* capacity */
    uint64_t meta;         /* meta_size: data chunks start here */
    span_t ranges[MAX_RANGES]; /* committed extents (SEEK_DATA) */
    int nranges;
    region_t reg[NREGIONS];
    struct { uint64_t base, stride, count; } mutexes[3]; /* every mutex in the segment */
    span_t gc_areas[2];    /* the object layer's global and per-process regions */
    span_t orphans;        /* the orphan lists' heads */
    span_t roots;          /* the first root entries */
    span_t alloc_geometry[3]; /* nchunks, first_data, hwm, table_committed; each
                                 arena class's npools and shift */
    uint64_t values[48];   /* interesting values for kinds 8 and 9 */
    int nvalues;
} template_t;

enum { DEAD_HOLDS, DEAD_RELEASED, DEAD_NO_REFS, NDEAD }; /* see dead_child() */
static template_t templ[2][NDEAD]; /* [guards][dead variant] */
static FILE *devnull;

static void region_add(region_t *r, uint64_t off, uint64_t len)
{
    if (len == 0 || r->n == MAX_POOLS) return;
    r->s[r->n++] = (span_t){off, len};
    r->total += len;
}

/* The file offset of byte `at` (mod total) of a region. */
static uint64_t region_offset(const region_t *r, uint64_t at)
{
    at %= r->total;
    for (int i = 0; i < r->n; i++) {
        if (at < r->s[i].len) return r->s[i].off + at;
        at -= r->s[i].len;
    }
    return r->s[0].off;
}

/* ---- the template --------------------------------------------------------- */

static const char *list_names[] = {"alpha", "beta", "gamma"};

/* The dead process: attaches, allocates, then, by variant,
 *   DEAD_HOLDS     takes a list handle and a string value and dies holding
 *                  them (its lease table has entries);
 *   DEAD_RELEASED  takes them and releases them (an empty lease table);
 *   DEAD_NO_REFS   never takes a reference (no lease table);
 * and dies with everything else held. */
static void dead_child(const char *name, int variant)
{
    shr_heap_t *h;
    if (shr_heap_attach(name, &h) != 0) _exit(2);
    for (int i = 0; i < 40; i++) shr_malloc(h, (size_t)(i * 37 % 700) + 1);
    void *big = shr_malloc(h, 100000);
    (void)big;
    if (variant != DEAD_NO_REFS) {
        shr_list_t *l;
        if (shr_list_attach(h, "alpha", &l) != 0) _exit(3);
        shr_value_t v;
        shr_list_get(l, 0, &v); /* a lease on a string */
        shr_value_t s = shr_str("written by the dead");
        shr_list_append(l, &s);
        if (variant == DEAD_RELEASED) {
            shr_value_release(h, &v);
            shr_list_close(l);
        }
    }
    raise(SIGKILL);
    _exit(4);
}

static void build_heap(shr_heap_t *h)
{
    /* Blocks of every kind; every third freed, so free lists and partly
     * used pools exist, and some freed by another thread (remote frees
     * that stay pending until the owner collects). */
    static void *keep[600];
    size_t sizes[] = {8, 16, 24, 48, 100, 256, 512, 600, 1500, 4000, 9000, 30000, 70000, 200000, 600000};
    int n = 0;
    for (int round = 0; round < 40; round++)
        for (size_t k = 0; k < SHR_ARRAY_LEN(sizes) && n < 600; k++) {
            if (sizes[k] > 60000 && round > 2) continue;
            keep[n] = shr_malloc(h, sizes[k]);
            if (keep[n]) memset(keep[n], (int)(n & 0xff), sizes[k]);
            n++;
        }
    for (int i = 0; i < n; i += 3) shr_free(h, keep[i]);
    /* The roots and the lists. */
    shr_root_set(h, "plain-root", shr_off(h, keep[1]));
    shr_list_t *lists[3];
    for (int i = 0; i < 3; i++) {
        shr_value_t vals[5] = {shr_int(i), shr_str("hello"), shr_float(2.5), shr_bytes("\0\1\2", 3), shr_none()};
        if (shr_list_create(h, list_names[i], vals, 5, &lists[i]) != 0) abort();
    }
    shr_value_t nested = shr_listval(lists[0]);
    shr_list_append(lists[1], &nested);
    char longer[400];
    memset(longer, 'x', sizeof longer);
    for (int i = 0; i < 12; i++) { /* growth: a retired items array */
        shr_value_t v = shr_strn(longer, (size_t)(i * 33));
        shr_list_append(lists[2], &v);
    }
    for (int i = 0; i < 3; i++) shr_list_close(lists[i]);
}

/* A thread that frees into the main thread's pools: remote stacks. */
static void *remote_freer(void *arg)
{
    void **a = arg;
    shr_heap_t *h = a[0];
    for (int i = 1; a[i]; i++) shr_free(h, a[i]);
    return NULL;
}

static void build_template(template_t *t, unsigned flags, int variant)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = TEMPLATE_CAPACITY;
    o.flags = flags;
    char name[64];
    snprintf(name, sizeof name, "fz_tmpl_%d_%u_%d", (int)getpid(), flags, variant);
    shr_heap_t *h;
    if (shr_heap_create(name, &o, &h) != 0) abort();
    build_heap(h);
    void *rem[20] = {h};
    for (int i = 1; i < 19; i++) rem[i] = shr_malloc(h, (size_t)(16 * i));
    pthread_t th;
    if (pthread_create(&th, NULL, remote_freer, rem) != 0 || pthread_join(th, NULL) != 0) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) dead_child(name, variant);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st)) abort();

    /* Regions, from the live handle's view of its own layout. */
    seg_header_t *hdr = h->hdr;
    alloc_global_t *g = alloc_global(h);
    chunk_t *ct = chunk_table(h);
    region_add(&t->reg[R_HEADER], 0, offsetof(seg_header_t, checksum) + 8);
    region_add(&t->reg[R_LOCKS], offsetof(seg_header_t, locks), sizeof hdr->locks);
    region_add(&t->reg[R_PROCS], hdr->procs_off, 4 * sizeof(proc_entry_t));
    region_add(&t->reg[R_THREADS], hdr->threads_off, 8 * sizeof(thread_slot_t));
    region_add(&t->reg[R_ALLOC_GLOBAL], hdr->global_off[SHR_LAYER_ALLOC], offsetof(alloc_global_t, roots) +
               8 * sizeof(root_entry_t));
    region_add(&t->reg[R_ALLOC_SLOTS], hdr->thread_off[SHR_LAYER_ALLOC], 8 * hdr->thread_size[SHR_LAYER_ALLOC]);
    for (int l = SHR_LAYER_GC; l < SHR_NLAYERS; l++) {
        region_add(&t->reg[R_LAYERS], hdr->global_off[l], hdr->global_size[l]);
        region_add(&t->reg[R_LAYERS], hdr->proc_off[l], 4 * hdr->proc_size[l]);
        region_add(&t->reg[R_LAYERS], hdr->thread_off[l], 8 * hdr->thread_size[l]);
    }
    region_add(&t->reg[R_CHUNKS], hdr->table_off[SHR_LAYER_ALLOC], g->nchunks * sizeof(chunk_t));
    region_add(&t->reg[R_ANY], 0, hdr->meta_size);
    t->mutexes[0].base = offsetof(seg_header_t, locks) + offsetof(shm_lock_t, mu);
    t->mutexes[0].stride = sizeof(shm_lock_t);
    t->mutexes[0].count = SHR_NLOCKS;
    t->mutexes[1].base = hdr->procs_off + offsetof(proc_entry_t, life);
    t->mutexes[1].stride = sizeof(proc_entry_t);
    t->mutexes[1].count = hdr->max_procs;
    t->mutexes[2].base = hdr->proc_off[SHR_LAYER_GC]; /* lease_area_t starts with its mutex */
    t->mutexes[2].stride = hdr->proc_size[SHR_LAYER_GC];
    t->mutexes[2].count = hdr->max_procs;
    t->roots = (span_t){hdr->global_off[SHR_LAYER_ALLOC] + offsetof(alloc_global_t, roots), 8 * sizeof(root_entry_t)};
    t->orphans = (span_t){hdr->global_off[SHR_LAYER_ALLOC] + offsetof(alloc_global_t, orphans), sizeof g->orphans};
    t->alloc_geometry[0] = (span_t){hdr->global_off[SHR_LAYER_ALLOC], offsetof(alloc_global_t, runs)};
    for (int i = 0; i < NB_ARENA_CLASSES; i++)
        t->alloc_geometry[1 + i] = (span_t){hdr->global_off[SHR_LAYER_ALLOC] + offsetof(alloc_global_t, ac) +
                                                i * sizeof(arena_class_t) + offsetof(arena_class_t, npools), 8};
    t->gc_areas[0] = (span_t){hdr->global_off[SHR_LAYER_GC], hdr->global_size[SHR_LAYER_GC]};
    t->gc_areas[1] = (span_t){hdr->proc_off[SHR_LAYER_GC], hdr->max_procs * hdr->proc_size[SHR_LAYER_GC]};
    t->values[t->nvalues++] = 0;
    t->values[t->nvalues++] = 1;
    t->values[t->nvalues++] = 2;
    t->values[t->nvalues++] = 0xffffffffu;
    t->values[t->nvalues++] = 0x80000000u;
    t->values[t->nvalues++] = UINT64_MAX;
    t->values[t->nvalues++] = (uint64_t)1 << 63;
    t->values[t->nvalues++] = h->capacity;
    t->values[t->nvalues++] = h->capacity - 16;
    t->values[t->nvalues++] = hdr->meta_size;
    t->values[t->nvalues++] = g->nchunks;
    t->values[t->nvalues++] = g->nchunks + 1;
    t->values[t->nvalues++] = 64;
    t->values[t->nvalues++] = 65;
    t->values[t->nvalues++] = hdr->max_threads;
    t->values[t->nvalues++] = hdr->max_procs;
    for (uint64_t c = g->first_data; c < shr_load_relaxed(&g->hwm); c++) {
        uint32_t kind = shr_load_relaxed(&ct[c].kind);
        uint64_t base = chunk_off(c);
        if (kind == CHUNK_SMALL || kind == CHUNK_MEDIUM) {
            unsigned shift = kind == CHUNK_SMALL ? SHR_SMALL_POOL_SHIFT : SHR_MEDIUM_POOL_SHIFT; /* the default heap */
            uint64_t psize = (uint64_t)1 << shift;
            /* Headers are dense in page 0; the pools' memory follows. */
            for (uint64_t p = arena_pools_start(base, shift); p < ct[c].pool_address && p < base + SHR_ARENA_SIZE;
                 p += psize) {
                region_add(&t->reg[R_POOLS], pool_hdr_of(p, shift), sizeof(pool_header_t));
                if (t->nvalues < 40 && (p & 0x3000) == 0) {
                    t->values[t->nvalues++] = p;
                    t->values[t->nvalues++] = p + 8;
                }
            }
        } else if (kind == CHUNK_LARGE) {
            region_add(&t->reg[R_LARGE], base, sizeof(large_header_t));
        }
    }
    t->values[t->nvalues++] = chunk_off(g->first_data) + 4096;
    t->values[t->nvalues++] = chunk_off(g->first_data) - 1;
    t->meta = hdr->meta_size;
    shr_heap_close(h);

    /* The file as the next attacher sees it. */
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0) abort();
    t->size = TEMPLATE_CAPACITY;
    t->bytes = calloc(1, t->size);
    if (!t->bytes) abort();
    for (off_t at = 0; t->nranges < MAX_RANGES;) {
        off_t d = lseek(fd, at, SEEK_DATA);
        if (d < 0) break;
        off_t e = lseek(fd, d, SEEK_HOLE);
        if (e <= d) break;
        t->ranges[t->nranges++] = (span_t){(uint64_t)d, (uint64_t)(e - d)};
        if (pread(fd, t->bytes + d, (size_t)(e - d), d) != e - d) abort();
        if ((uint64_t)d >= t->meta) region_add(&t->reg[R_DATA], (uint64_t)d, (uint64_t)(e - d));
        at = e;
    }
    close(fd);
    shm_unlink(name);
    for (int r = 0; r < NREGIONS; r++)
        if (t->reg[r].total == 0) region_add(&t->reg[r], 0, 4096); /* never empty */
}

/* ---- one input ---------------------------------------------------------------- */

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    return pwrite(fd, p, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

/* Does [off, off + n) overlap a robust mutex of the segment? */
static bool touches_mutex(const template_t *t, uint64_t off, uint64_t n)
{
    for (int i = 0; i < 3; i++) {
        uint64_t b = t->mutexes[i].base, st = t->mutexes[i].stride;
        if (off + n <= b || st == 0) continue;
        uint64_t k = (off - (off < b ? off : b)) / st;
        for (uint64_t j = k ? k - 1 : 0; j <= k + 1 && j < t->mutexes[i].count; j++) {
            uint64_t m = b + j * st;
            if (off < m + sizeof(pthread_mutex_t) && m < off + n) return true;
        }
    }
    return false;
}

/* Write the template, then the patches, to a new object; returns its fd. */
static int write_copy(const char *name, const template_t *t, fz_in_t *in, bool resum)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) abort();
    if (ftruncate(fd, (off_t)t->size) != 0) abort();
    for (int i = 0; i < t->nranges; i++)
        if (pwrite_all(fd, t->bytes + t->ranges[i].off, t->ranges[i].len, t->ranges[i].off)) abort();
    bool resized = false;
    for (int k = 0; k < MAX_PATCHES && fz_more(in); k++) {
        uint8_t sel = fz_u8(in);
        unsigned ri = (sel & 15) % NREGIONS;
        /* Known open defect: check follows chunk-table indices unchecked. */
        if (ri == R_CHUNKS && fz_known("check-index")) ri = R_DATA;
        /* Known open defect: check passes damage in a free slot's allocator
         * region, and the next thread to claim the slot trusts it. */
        if (ri == R_ALLOC_SLOTS && fz_known("slot-leftovers")) ri = R_DATA;
        /* Known open defect: check walks the page runs' free lists by
         * `next` only, and unlinking a run trusts `prev`. */
        if (ri == R_LARGE && fz_known("large-links-unchecked")) ri = R_DATA;
        const region_t *r = &t->reg[ri];
        unsigned kind = sel >> 4;
        uint32_t at = fz_u32(in);
        uint64_t off = region_offset(r, at);
        uint8_t buf[64];
        size_t n;
        if (kind == 15) {
            /* The size: shorter (truncated mid-header, mid-metadata, mid-data)
             * or longer than the capacity the header records. */
            if (resized) continue;
            resized = true;
            uint32_t v = fz_u32(in);
            uint64_t size = v & 1 ? (uint64_t)(v >> 1) % (t->size + 1) : t->size + ((uint64_t)(v >> 1) % 64) * 4096;
            if (ftruncate(fd, (off_t)size) != 0) abort();
            continue;
        }
        if (kind >= 8 && kind <= 11) off &= ~(uint64_t)((kind & 1) ? 7 : 3);
        if (off + 64 > t->size) off = t->size - 64;
        if (pread(fd, buf, 64, (off_t)off) != 64) memset(buf, 0, sizeof buf);
        switch (kind) {
        case 8: case 9: {
            uint8_t i = fz_u8(in);
            uint64_t v = t->values[i % t->nvalues];
            if (i >= 128) v += (uint64_t)(int8_t)fz_u8(in);
            memcpy(buf, &v, kind == 8 ? 4 : 8);
            n = kind == 8 ? 4 : 8;
            break;
        }
        case 10: {
            uint32_t v;
            memcpy(&v, buf, 4);
            v += (uint32_t)(int8_t)fz_u8(in);
            memcpy(buf, &v, 4);
            n = 4;
            break;
        }
        case 11: {
            uint64_t v;
            memcpy(&v, buf, 8);
            v += (uint64_t)(int8_t)fz_u8(in);
            memcpy(buf, &v, 8);
            n = 8;
            break;
        }
        case 12: {
            uint8_t b = fz_u8(in);
            buf[(b >> 3) & 7] ^= (uint8_t)(1u << (b & 7));
            n = 8;
            break;
        }
        case 13: memset(buf, 0, 64); n = 64; break;
        case 14: {
            uint64_t from = region_offset(r, fz_u32(in));
            if (from + 16 > t->size) from = t->size - 16;
            if (pread(fd, buf, 16, (off_t)from) != 16) memset(buf, 0, 16);
            n = 16;
            break;
        }
        default: {
            size_t got;
            const uint8_t *p = fz_bytes(in, kind + 1, &got);
            memcpy(buf, p, got);
            n = got;
            break;
        }
        }
        /* Known open defect: a damaged mutex is waited for without end. */
        if (n && fz_known("lock-wait") && touches_mutex(t, off, n)) continue;
        /* Known open defect: lease tables are followed without checks. */
        if (n && fz_known("lease-unchecked"))
            for (int i = 0; i < 2; i++)
                if (off < t->gc_areas[i].off + t->gc_areas[i].len && t->gc_areas[i].off < off + n) n = 0;
        /* Known open defect: a root's offset is taken for an object. */
        if (n && fz_known("root-object-unchecked") && off < t->roots.off + t->roots.len && t->roots.off < off + n) n = 0;
        /* Known open defect: check walks orphan lists without aligning. */
        if (n && fz_known("check-index") && off < t->orphans.off + t->orphans.len && t->orphans.off < off + n) n = 0;
        /* Known open defect: check passes a pool owned by a free slot; the
         * slot's next claimer then owns a pool it never listed. */
        if (n && fz_known("slot-leftovers") && off >= t->meta && (off & 4095) < 44 && (off & 4095) + n > 40) n = 0;
        /* ... follows pools' list links, and shifts by a pool header's
         * `shift`, before checking them. */
        if (n && fz_known("check-index") && off >= t->meta && (off & 4095) < 32 &&
            ((off & 4095) + n > 16 || ((off & 4095) < 8 && (off & 4095) + n > 6)))
            n = 0;
        /* Known open defect: attach trusts the allocator's geometry. */
        if (n && fz_known("alloc-global-unchecked"))
            for (int i = 0; i < 3; i++)
                if (off < t->alloc_geometry[i].off + t->alloc_geometry[i].len && t->alloc_geometry[i].off < off + n)
                    n = 0;
        if (n && pwrite_all(fd, buf, n, off)) abort();
    }
    if (resum) {
        seg_header_t hdr;
        if (pread(fd, &hdr, offsetof(seg_header_t, checksum) + 8, 0) == (ssize_t)(offsetof(seg_header_t, checksum) + 8)) {
            hdr.checksum = shr__fnv1a(&hdr, offsetof(seg_header_t, checksum));
            pwrite_all(fd, &hdr.checksum, 8, offsetof(seg_header_t, checksum));
        }
    }
    return fd;
}

/* Codes an attach of a damaged file may give: each names what is wrong. */
static bool attach_code_ok(int rc)
{
    switch (rc) {
    case SHR_ENOTSHR: case SHR_EVERSION: case SHR_ETRUNC: case SHR_ECORRUPT:
    case SHR_EPROCS: case SHR_ETHREADS: case SHR_ELOCK: case -ENOMEM:
        return true;
    default:
        /* a lock-timeout code is added with bounded lock waits */
        return rc <= -1000 && rc > SHR__ERR_LAST;
    }
}

/* The operations a program does right after attaching; every one may fail
 * cleanly on a damaged heap, none may crash or hang. Returns how many
 * failed. */
static int operations(shr_heap_t *h)
{
    int failed = 0;
    static const size_t sizes[] = {1, 16, 100, 512, 513, 3000, 20000, 70000, 250000, 600000};
    void *p[SHR_ARRAY_LEN(sizes)];
    for (size_t i = 0; i < SHR_ARRAY_LEN(sizes); i++) {
        p[i] = shr_malloc(h, sizes[i]);
        if (p[i]) memset(p[i], 0xa5, sizes[i]);
        else failed++;
    }
    for (size_t i = 0; i < SHR_ARRAY_LEN(sizes); i += 2) {
        void *q = p[i] ? shr_realloc(h, p[i], sizes[i] * 2 + 1) : NULL;
        if (q) p[i] = q;
    }
    for (size_t i = 0; i < SHR_ARRAY_LEN(sizes); i++) shr_free(h, p[i]);
    shr_off_t off;
    failed += shr_root_get(h, "plain-root", &off) != 0;
    failed += shr_root_set(h, "fuzz-root", 0) != 0;
    for (size_t i = 0; i < SHR_ARRAY_LEN(list_names); i++) {
        shr_list_t *l;
        if (shr_list_attach(h, list_names[i], &l) != 0) {
            failed++;
            continue;
        }
        /* Known open defect: objects (a string's length, a list's items)
         * are read as they are, and check does not look at them. */
        if (fz_known("object-unchecked")) {
            shr_list_close(l);
            continue;
        }
        int64_t n = shr_list_len(l);
        for (int64_t j = 0; j < n && j < 64; j++) {
            shr_value_t v;
            if (shr_list_get(l, j, &v) == 0) shr_value_release(h, &v);
            else failed++;
        }
        shr_value_t v = shr_str("fuzz");
        failed += shr_list_set(l, 0, &v) != 0;
        failed += shr_list_append(l, &v) != 0;
        char *s = shr_list_repr(l);
        free(s);
        shr_list_close(l);
    }
    shr_heap_collect(h);
    return failed;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_env_init();
    devnull = fopen("/dev/null", "w");
    if (!devnull) abort();
    for (int v = 0; v < NDEAD; v++) {
        build_template(&templ[0][v], 0, v);
        build_template(&templ[1][v], SHR_HEAP_GUARDS, v);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size};
    uint8_t flags = fz_u8(&in);
    /* The dead process's variant. Known open defects: the attacher frees
     * the dead's lease table through pool metadata nobody checked
     * (attach-free-unchecked: no table), and follows the table's entries
     * unchecked (lease-unchecked: no entries). */
    int variant = (flags >> 2) & 3;
    if (variant >= NDEAD) variant = DEAD_NO_REFS;
    if (fz_known("attach-free-unchecked")) variant = DEAD_NO_REFS;
    if (fz_known("lease-unchecked") && variant == DEAD_HOLDS) variant = DEAD_RELEASED;
    const template_t *t = &templ[flags & 1][variant];
    const char *name = fz_name("seg");
    int fd = write_copy(name, t, &in, (flags & 2) != 0);
    close(fd);
    if (getenv("SHARENA_FUZZ_KEEP")) {
        /* Leave the damaged copy for the sharena tool, gdb, a hex dump. */
        fprintf(stderr, "fuzz_segment: wrote %s/%s, not attached\n", SHR_SHM_DIR, name);
        return 0;
    }

    /* sharena info / ls */
    shr_heap_info_t info;
    shr_proc_info_t procs[8];
    size_t np = 0;
    int rc = shr_heap_inspect(name, &info, procs, 8, &np);
    FZ_CHECK(rc == 0 || attach_code_ok(rc), "inspect: %d %s", rc, shr_strerror(rc));

    shr_heap_t *h;
    rc = shr_heap_attach(name, &h);
    if (rc != 0) {
        FZ_CHECK(attach_code_ok(rc), "attach refused with %d (%s)", rc, shr_strerror(rc));
        shm_unlink(name);
        return 0;
    }
    /* sharena check, stats */
    shr_heap_recover(h);
    int checked = shr_heap_check_report(h, devnull);
    FZ_CHECK(checked == 0 || checked == SHR_ECORRUPT || attach_code_ok(checked), "check: %d %s", checked,
             shr_strerror(checked));
    shr_alloc_stats_t st;
    shr_heap_stats(h, &st);
    shr_heap_stats_print(h, devnull);
    shr_heap_stat(h, &info, procs, 8, &np);
    if (checked == 0) {
        operations(h);
        /* What check passed, the operations must not have broken. */
        rc = shr_heap_check_report(h, stderr);
        FZ_CHECK(rc == 0, "check passed, then failed after the operations: %s",
                 shr_strerror(rc));
    }
    shr_heap_close(h);
    shm_unlink(name);
    return 0;
}
