/* Private segments
 *
 * A heap created with SHR_HEAP_PRIVATE belongs to one process, like ordinary
 * process memory: it has no name, is backed by an anonymous file
 * (memfd_create: never /dev/shm, whose size would cap it), and is mapped
 * MAP_PRIVATE, copy-on-write. The file itself is never written: it is only
 * a zero-filled backing of the capacity, and every page the process writes
 * becomes a private page of the process. Hence:
 *
 *   fork     the child gets its own copy of every block, by the kernel's
 *            copy-on-write, exactly as for malloc'ed memory; neither process
 *            sees the other's later writes. (MAP_SHARED would share the heap
 *            with the child; copying it at fork would be torn by the
 *            parent's other threads, whose fast paths take no lock.)
 *   commit   nothing: a page costs memory when first written, as for any
 *            anonymous memory (fallocate would only fill the unused file)
 *   release  madvise(MADV_DONTNEED) drops the private pages; the range reads
 *            zero again (the file's content). The descriptor is closed once
 *            the file is mapped (a program that counts its open files must
 *            find none of ours), so a file page that a read of a
 *            never-written page brought in stays until exit; the allocator
 *            writes a page before it reads it, so there are few such pages
 *   exit     the mapping and the file go with the process, whatever the exit
 *
 * Fork in detail (registry.c's atfork handlers call these, holding the
 * process-private proc_mutex, so the shared locks are taken after it, by
 * rank):
 *   prepare  take every lock of every private heap, in rank order, so that
 *            no critical section is in progress in the copy the child gets
 *   parent   release them
 *   child    the locks belong to threads that do not exist in the child:
 *            unlock (bookkeeping) and re-initialise them. The parent's
 *            process entry is LIVE but nobody holds its `life` mutex (no
 *            anchor, below), so the child's registration sweep finds it
 *            dead and orphans its
 *            pools, which the child's threads then adopt. Other threads of
 *            the parent stopped at an arbitrary instruction in the child's
 *            copy; that is the crash the allocator is built to survive
 *            (docs/design/alloc.md §6), so their pools are recovered as those
 *            of a killed process.
 *
 * Liveness: a private heap has one process, which never probes its own
 * entry, so it has no anchor thread (registry.c): its entry's `life` mutex
 * is never locked, and a fork child's sweep finds the parent's entry dead at
 * once. (An anchor would also keep alive a process whose last thread leaves
 * with pthread_exit: glibc ends the process when its thread count reaches
 * zero, and the anchor counts.)
 *
 * Base alignment: the mapping is placed at a SHR_CHUNK_SIZE-aligned address,
 * so that chunk-aligned offsets (huge blocks) are chunk-aligned addresses.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm.h"

#define PRIVATE_MAX 64

static pthread_mutex_t priv_mu = PTHREAD_MUTEX_INITIALIZER;
static shr_heap_t *priv_heaps[PRIVATE_MAX];
static uint32_t priv_taken[PRIVATE_MAX]; /* locks taken in prepare, by heap */

static int priv_add(shr_heap_t *h)
{
    int rc = -ENOMEM;
    pthread_mutex_lock(&priv_mu);
    for (int i = 0; i < PRIVATE_MAX; i++)
        if (!priv_heaps[i]) {
            priv_heaps[i] = h;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&priv_mu);
    return rc;
}

void shr__private_forget(shr_heap_t *h)
{
    pthread_mutex_lock(&priv_mu);
    for (int i = 0; i < PRIVATE_MAX; i++)
        if (priv_heaps[i] == h) priv_heaps[i] = NULL;
    pthread_mutex_unlock(&priv_mu);
}

/* ---- mapping ------------------------------------------------------------ */

/* Map fd's capacity copy-on-write at a chunk-aligned address. */
static uint8_t *map_aligned(int fd, uint64_t capacity)
{
    size_t span = (size_t)capacity + SHR_CHUNK_SIZE;
    uint8_t *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return MAP_FAILED;
    uint8_t *base = (uint8_t *)SHR_ALIGN_UP((uintptr_t)r, SHR_CHUNK_SIZE);
    if (base > r) munmap(r, (size_t)(base - r));
    uint8_t *end = base + capacity;
    if (end < r + span) munmap(end, (size_t)(r + span - end));
    uint8_t *m = mmap(base, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED,
                      fd, 0);
    if (m == MAP_FAILED) munmap(base, capacity);
    return m;
}

int shr__private_map(uint64_t capacity, int *fdp, uint8_t **basep)
{
    int fd = memfd_create("sharena-private", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)capacity) != 0) {
        int rc = errno == EFBIG || errno == EINVAL ? -ENOMEM : -errno;
        close(fd);
        return rc;
    }
    uint8_t *base = map_aligned(fd, capacity);
    int rc = base == MAP_FAILED ? -errno : 0;
    /* The mapping keeps the file; the descriptor would only be one more
     * open file in a program that counts its own (and nothing needs it). */
    close(fd);
    if (rc) return rc;
    *fdp = -1;
    *basep = base;
    return 0;
}

int shr__private_register(shr_heap_t *h) { return priv_add(h); }

int shr__private_release(shr_heap_t *h, uint64_t off, uint64_t len)
{
    return madvise(h->base + off, len, MADV_DONTNEED) == 0 ? 0 : -errno;
}

/* Resident bytes of the mapping: the "Rss:" of its entry in
 * /proc/self/smaps (private pages and file pages alike). Read with read()
 * into a stack buffer: this may run inside malloc, under a heap lock. */
uint64_t shr__private_committed(const shr_heap_t *h)
{
    char head[32], buf[4096], line[256];
    int hl = snprintf(head, sizeof head, "%lx-", (unsigned long)(uintptr_t)h->base);
    int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t ll = 0;
    bool inside = false;
    uint64_t kb = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (ll < sizeof line - 1) line[ll++] = buf[i];
                continue;
            }
            line[ll] = 0;
            ll = 0;
            if (strncmp(line, head, (size_t)hl) == 0) inside = true;
            else if (inside && strncmp(line, "Rss:", 4) == 0) {
                kb = strtoull(line + 4, NULL, 10);
                goto done;
            }
        }
    }
done:
    close(fd);
    return kb << 10;
}

/* ---- fork ----------------------------------------------------------------- */

void shr__private_fork_prepare(void)
{
    pthread_mutex_lock(&priv_mu);
    for (int i = 0; i < PRIVATE_MAX; i++) {
        priv_taken[i] = 0;
        if (!priv_heaps[i]) continue;
        for (int id = 0; id < SHR_NLOCKS; id++)
            if (shr__lock(priv_heaps[i], (shr_lock_id_t)id) == 0) priv_taken[i] |= 1u << id;
    }
}

void shr__private_fork_parent(void)
{
    for (int i = PRIVATE_MAX - 1; i >= 0; i--)
        for (int id = SHR_NLOCKS - 1; id >= 0; id--)
            if (priv_taken[i] & (1u << id)) shr__unlock(priv_heaps[i], (shr_lock_id_t)id);
    pthread_mutex_unlock(&priv_mu);
}

void shr__private_fork_child(void)
{
    for (int i = PRIVATE_MAX - 1; i >= 0; i--) {
        shr_heap_t *h = priv_heaps[i];
        if (!h) continue;
        /* The unlock fails (the owner is the parent's thread id) but keeps
         * the lock-rank bookkeeping of debug builds right; then a fresh,
         * unlocked mutex. */
        for (int id = SHR_NLOCKS - 1; id >= 0; id--) {
            if (priv_taken[i] & (1u << id)) shr__unlock(h, (shr_lock_id_t)id);
            shr__robust_mutex_init(&h->hdr->locks[id].mu);
        }
        /* Unlocked already (no anchor); re-initialised in case a mutex was
         * caught in a probe's trylock. */
        for (uint32_t p = 0; p < shr__procs_hwm(h); p++)
            if (shr_load_relaxed(&shr__proc_entry(h, p)->state) == SHR_ENTRY_LIVE)
                shr__robust_mutex_init(&shr__proc_entry(h, p)->life);
    }
    pthread_mutex_init(&priv_mu, NULL);
}
