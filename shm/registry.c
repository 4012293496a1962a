/* Registry of attached processes and threads
 *
 * A fixed table of process entries and thread slots in the header.
 *
 *   process entry   FREE -> LIVE   claimed by shr__proc_register: an anchor
 *                                  thread of the process locks `life` and
 *                                  holds it until detach
 *                   LIVE -> FREE   shr__proc_unregister (clean detach), or a
 *                                  sweep that finds `life` owner-dead
 *   thread slot     FREE -> LIVE   a thread's first use of the heap
 *                   LIVE -> FREE   its TLS destructor, close, or the reclaim
 *                                  of its process
 *
 * Invariants (under the registry lock):
 *   R1  an entry is LIVE only while its anchor holds `life` or its process
 *       has died and no sweep has seen it yet
 *   R2  a LIVE thread slot names a LIVE process entry of the same gen, or is
 *       reclaimed by the next sweep
 *   R3  procs[i].nthreads == number of LIVE slots with proc == i
 *
 * Why an anchor thread: liveness must survive pid reuse, zombies and exec.
 * A robust mutex is released by the kernel when its owner thread ends for any
 * reason (exit, kill, exec), before the process becomes a zombie, and no pid
 * is compared later. The owner must live as long as the attachment, which no
 * user thread promises, hence one small thread per attached heap that does
 * nothing but hold the lock. Its stack is sized for the process's static
 * TLS (anchor_stack_size). See docs/design/shm.md.
 *
 * Fork: the child inherits the handle and this thread's context but not the
 * anchor. The atfork child handler bumps fork_epoch and clears the thread's
 * contexts; the child's first use of the heap registers a new entry.
 *
 * Reclaim hooks of the layers run under the registry lock and must not claim
 * a thread slot (they free memory as remote frees).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm.h"

_Thread_local shr_tctx_t *shr__tl_ctx __attribute__((tls_model("initial-exec")));
static _Thread_local shr_tctx_t *tl_ctx_list; /* every context of this thread */

static shr__layer_hooks_t layer_hooks[SHR_NLAYERS];
static pthread_mutex_t proc_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t fork_epoch = 1;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t tctx_key;
static _Thread_local int32_t tl_tid;

void shr__registry_set_hooks(int layer, const shr__layer_hooks_t *hooks)
{
    layer_hooks[layer] = *hooks;
}

/* ---- process-wide setup --------------------------------------------- */

static void atfork_prepare(void) { pthread_mutex_lock(&proc_mutex); }
static void atfork_parent(void) { pthread_mutex_unlock(&proc_mutex); }
static void atfork_child(void)
{
    /* Only the forking thread exists here. Its contexts name the parent's
     * slots: forget them (their memory is leaked in the child, once). */
    atomic_fetch_add(&fork_epoch, 1);
    shr__tl_ctx = NULL;
    tl_ctx_list = NULL;
    tl_tid = 0;
    pthread_mutex_init(&proc_mutex, NULL);
}

static void tctx_destructor(void *unused);
static int registry_repair(shr_heap_t *h);
int32_t shr__gettid(void)
{
    if (shr_unlikely(tl_tid == 0)) tl_tid = (int32_t)syscall(SYS_gettid);
    return tl_tid;
}

static void init_once(void)
{
    shr__lock_set_repair(SHR_LOCK_REGISTRY, registry_repair);
    pthread_key_create(&tctx_key, tctx_destructor);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static uint64_t read_start_time(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* The command name may hold spaces and ')': parse after the last ')'.
     * Field 3 (state) follows it; starttime is field 22. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* ---- liveness -------------------------------------------------------- */

/* Probe a LIVE entry's lifetime mutex. 1 live, 0 dead. Leaves the mutex as it
 * found it (unlocked and consistent when dead). */
static int probe_life(pthread_mutex_t *life)
{
    int rc = pthread_mutex_trylock(life);
    switch (rc) {
    case EBUSY:
        return 1;
    case EOWNERDEAD:
        pthread_mutex_consistent(life);
        pthread_mutex_unlock(life);
        return 0;
    case 0:
        /* LIVE but nobody holds it: the owner unlocked and died before it
         * could mark the entry FREE. */
        pthread_mutex_unlock(life);
        return 0;
    case ENOTRECOVERABLE:
        /* Only a buggy peer can do this; nobody waits on `life` but
         * trylocks, so re-initialising it is safe. */
        shr__robust_mutex_init(life);
        return 0;
    default:
        return 1; /* unknown: never declare a live process dead */
    }
}

int shr__proc_alive(seg_header_t *hdr, uint32_t proc)
{
    return probe_life(&hdr->procs[proc].life);
}

/* ---- anchor thread --------------------------------------------------- */

static void *anchor_main(void *arg)
{
    shr_heap_t *h = arg;
    pthread_mutex_t *life = &h->hdr->procs[h->proc].life;
    int rc = pthread_mutex_lock(life);
    if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(life);
    pthread_mutex_lock(&h->anchor_mu);
    h->anchor_state = rc == 0 ? 1 : -1;
    pthread_cond_broadcast(&h->anchor_cv);
    while (rc == 0 && h->anchor_state != 2) pthread_cond_wait(&h->anchor_cv, &h->anchor_mu);
    pthread_mutex_unlock(&h->anchor_mu);
    /* Unlock before the segment can be unmapped: the closer joins us first. */
    if (rc == 0) pthread_mutex_unlock(life);
    return NULL;
}

/* Sum of the PT_TLS segments of every loaded object: glibc carves the static
 * TLS of a new thread out of the top of its stack, so a stack sized for the
 * anchor's own needs alone fails to start (EINVAL) in a program with large
 * TLS, an interpreter with its extension modules for one. */
static int add_tls_size(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    size_t *total = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS) *total += ph->p_memsz + (ph->p_align ? ph->p_align : 1);
    }
    return 0;
}

/* The anchor's stack: what it uses itself (ANCHOR_STACK) plus the process's
 * static TLS and glibc's surplus for libraries dlopen'ed later
 * (ANCHOR_TLS_SLACK), rounded to pages. Only the touched pages are ever
 * committed, so the slack costs address space, not memory. */
#define ANCHOR_STACK ((size_t)64 << 10)
#define ANCHOR_TLS_SLACK ((size_t)64 << 10)

static size_t anchor_stack_size(void)
{
    size_t tls = 0;
    dl_iterate_phdr(add_tls_size, &tls);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (size_t)PTHREAD_STACK_MIN + ANCHOR_STACK + tls + ANCHOR_TLS_SLACK;
    return (n + page - 1) / page * page;
}

static int anchor_spawn(shr_heap_t *h, size_t stack)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc) return rc;
    if (stack) rc = pthread_attr_setstacksize(&attr, stack);
    if (rc == 0) {
        /* The anchor must never run signal handlers: block everything in it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&h->anchor, &attr, anchor_main, h);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    return rc;
}

static int anchor_start(shr_heap_t *h)
{
    h->anchor_state = 0;
    int rc = anchor_spawn(h, anchor_stack_size());
    /* A stack still too small for this libc's TLS layout: the default size. */
    if (rc == EINVAL) rc = anchor_spawn(h, 0);
    if (rc) {
        errno = rc;
        return SHR_ESPAWN;
    }
    pthread_mutex_lock(&h->anchor_mu);
    while (h->anchor_state == 0) pthread_cond_wait(&h->anchor_cv, &h->anchor_mu);
    int ok = h->anchor_state == 1;
    pthread_mutex_unlock(&h->anchor_mu);
    if (!ok) {
        pthread_join(h->anchor, NULL);
        return SHR_ELOCK;
    }
    return 0;
}

static void anchor_stop(shr_heap_t *h)
{
    pthread_mutex_lock(&h->anchor_mu);
    h->anchor_state = 2;
    pthread_cond_broadcast(&h->anchor_cv);
    pthread_mutex_unlock(&h->anchor_mu);
    pthread_join(h->anchor, NULL);
}

/* ---- reclaim --------------------------------------------------------- */

static void release_thread(shr_heap_t *h, uint32_t slot, bool dead)
{
    thread_slot_t *ts = &h->hdr->threads[slot];
    for (int l = SHR_NLAYERS - 1; l >= 0; l--)
        if (layer_hooks[l].thread_release) layer_hooks[l].thread_release(h, slot, dead);
    if (ts->proc < SHR_MAX_PROCS && h->hdr->procs[ts->proc].nthreads > 0)
        h->hdr->procs[ts->proc].nthreads--;
    shr_store_relaxed(&ts->in_heap, 0);
    shr_store_release(&ts->state, SHR_ENTRY_FREE);
}

/* Release every thread slot of process entry `proc`, then the layers'
 * per-process state. The entry itself is marked FREE by the caller. Returns
 * the number of thread slots released. */
static int release_proc(shr_heap_t *h, uint32_t proc, bool dead)
{
    seg_header_t *hdr = h->hdr;
    uint32_t gen = shr_load_relaxed(&hdr->procs[proc].gen);
    int n = 0;
    for (uint32_t s = 0; s < SHR_MAX_THREADS; s++) {
        thread_slot_t *ts = &hdr->threads[s];
        if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE && ts->proc == proc &&
            ts->proc_gen == gen) {
            release_thread(h, s, dead);
            n++;
        }
    }
    for (int l = SHR_NLAYERS - 1; l >= 0; l--)
        if (layer_hooks[l].proc_release) layer_hooks[l].proc_release(h, proc, dead);
    hdr->procs[proc].nthreads = 0;
    return n;
}

static bool is_own_entry(const shr_heap_t *h, uint32_t proc)
{
    return h->registered && h->fork_epoch == shr_load_relaxed(&fork_epoch) && h->proc == proc;
}

bool shr__proc_registered_here(const shr_heap_t *h) { return is_own_entry(h, h->proc); }

int shr__registry_sweep_locked(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    int n = 0;
    for (uint32_t p = 0; p < SHR_MAX_PROCS; p++) {
        proc_entry_t *pe = &hdr->procs[p];
        if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE || is_own_entry(h, p)) continue;
        if (probe_life(&pe->life)) continue;
        n += 1 + release_proc(h, p, true);
        shr_store_release(&pe->state, SHR_ENTRY_FREE);
    }
    /* R2: slots whose process entry is gone or was claimed again. */
    for (uint32_t s = 0; s < SHR_MAX_THREADS; s++) {
        thread_slot_t *ts = &hdr->threads[s];
        if (shr_load_relaxed(&ts->state) != SHR_ENTRY_LIVE) continue;
        proc_entry_t *pe = ts->proc < SHR_MAX_PROCS ? &hdr->procs[ts->proc] : NULL;
        if (pe && shr_load_relaxed(&pe->state) == SHR_ENTRY_LIVE &&
            shr_load_relaxed(&pe->gen) == ts->proc_gen)
            continue;
        release_thread(h, s, true);
        n++;
    }
    return n;
}

/* Repair for the registry lock: a process died while holding it, perhaps in
 * the middle of a claim or a reclaim. Every step above is re-runnable, so
 * repair is a recount (R3) followed by a sweep. */
static int registry_repair(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    for (uint32_t p = 0; p < SHR_MAX_PROCS; p++) hdr->procs[p].nthreads = 0;
    for (uint32_t s = 0; s < SHR_MAX_THREADS; s++) {
        thread_slot_t *ts = &hdr->threads[s];
        if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE && ts->proc < SHR_MAX_PROCS)
            hdr->procs[ts->proc].nthreads++;
    }
    shr__registry_sweep_locked(h);
    return 0;
}

int shr__registry_init(seg_header_t *hdr)
{
    for (uint32_t p = 0; p < SHR_MAX_PROCS; p++) {
        memset(&hdr->procs[p], 0, sizeof hdr->procs[p]);
        int rc = shr__robust_mutex_init(&hdr->procs[p].life);
        if (rc) return rc;
    }
    memset(hdr->threads, 0, sizeof hdr->threads);
    return 0;
}

/* ---- process registration -------------------------------------------- */

/* Caller holds proc_mutex (or is creating the heap and alone with it). */
static int proc_register_locked(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    int rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) return rc;
    shr__registry_sweep_locked(h);
    uint32_t p;
    for (p = 0; p < SHR_MAX_PROCS; p++)
        if (shr_load_relaxed(&hdr->procs[p].state) == SHR_ENTRY_FREE) break;
    if (p == SHR_MAX_PROCS) {
        rc = SHR_EPROCS;
        goto out;
    }
    h->proc = p;
    /* Fresh each time: a fork child's copies hold the parent's waiters. */
    pthread_mutex_init(&h->anchor_mu, NULL);
    pthread_cond_init(&h->anchor_cv, NULL);
    rc = anchor_start(h);
    if (rc) goto out;
    proc_entry_t *pe = &hdr->procs[p];
    pe->pid = getpid();
    pe->start_time = read_start_time();
    pe->attach_ns = shr__now_ns(CLOCK_REALTIME);
    pe->nthreads = 0;
    h->proc_gen = atomic_fetch_add(&pe->gen, 1) + 1;
    h->fork_epoch = shr_load_relaxed(&fork_epoch);
    h->registered = true;
    h->ctxs = NULL;
    shr_store_release(&pe->state, SHR_ENTRY_LIVE);
    atomic_fetch_add_explicit(&hdr->nattach, 1, memory_order_relaxed);
out:
    shr__unlock(h, SHR_LOCK_REGISTRY);
    return rc;
}

int shr__proc_register(shr_heap_t *h)
{
    pthread_once(&once, init_once);
    pthread_mutex_lock(&proc_mutex);
    int rc = proc_register_locked(h);
    pthread_mutex_unlock(&proc_mutex);
    return rc;
}

void shr__proc_unregister(shr_heap_t *h)
{
    seg_header_t *hdr = h->hdr;
    pthread_mutex_lock(&proc_mutex);
    /* Contexts of this process's threads become stale: their owners free
     * them on their next slow path or at thread exit. */
    for (shr_tctx_t *c = h->ctxs; c; c = c->next_in_heap)
        atomic_store_explicit(&c->heap, NULL, memory_order_relaxed);
    h->ctxs = NULL;
    if (!h->registered || h->fork_epoch != shr_load_relaxed(&fork_epoch)) {
        /* Never registered, or a fork child that never used the heap: the
         * entry (if any) is the parent's. */
        h->registered = false;
        pthread_mutex_unlock(&proc_mutex);
        return;
    }
    if (shr__lock(h, SHR_LOCK_REGISTRY) == 0) {
        release_proc(h, h->proc, false);
        anchor_stop(h);
        shr_store_release(&hdr->procs[h->proc].state, SHR_ENTRY_FREE);
        h->registered = false;
        shr__registry_sweep_locked(h);
        uint32_t live = 0;
        for (uint32_t p = 0; p < SHR_MAX_PROCS; p++)
            live += shr_load_relaxed(&hdr->procs[p].state) == SHR_ENTRY_LIVE;
        if (live == 0 && (hdr->flags & SHR_HEAP_UNLINK_ON_LAST_CLOSE)) shr__seg_unlink_if_ours(h);
        shr__unlock(h, SHR_LOCK_REGISTRY);
    } else {
        /* The registry is unrecoverable; still release our liveness so that
         * nobody waits for us. */
        anchor_stop(h);
        h->registered = false;
    }
    pthread_mutex_unlock(&proc_mutex);
}

/* ---- thread contexts ------------------------------------------------- */

static void prune_stale_contexts(void)
{
    shr_tctx_t **pp = &tl_ctx_list;
    while (*pp) {
        shr_tctx_t *c = *pp;
        if (atomic_load_explicit(&c->heap, memory_order_relaxed) == NULL) {
            *pp = c->next_in_thread;
            if (shr__tl_ctx == c) shr__tl_ctx = NULL;
            free(c);
        } else {
            pp = &c->next_in_thread;
        }
    }
}

static int claim_slot_locked(shr_heap_t *h, uint32_t *out)
{
    seg_header_t *hdr = h->hdr;
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t s = 0; s < SHR_MAX_THREADS; s++) {
            thread_slot_t *ts = &hdr->threads[s];
            if (shr_load_relaxed(&ts->state) != SHR_ENTRY_FREE) continue;
            ts->proc = h->proc;
            ts->proc_gen = h->proc_gen;
            ts->tid = shr__gettid();
            shr_store_relaxed(&ts->in_heap, 0);
            shr_store_relaxed(&ts->epoch, 0);
            atomic_fetch_add(&ts->gen, 1);
            /* The layers' areas of a FREE slot are reset by their
             * thread_release hooks (zero in a new segment), but a claim
             * trusts no leftover: they start from zero. */
            for (int l = 0; l < SHR_NLAYERS; l++)
                if (hdr->thread_size[l]) memset(shr__seg_thread_area(h, l, s), 0, hdr->thread_size[l]);
            hdr->procs[h->proc].nthreads++;
            shr_store_release(&ts->state, SHR_ENTRY_LIVE);
            *out = s;
            return 0;
        }
        if (pass == 0 && shr__registry_sweep_locked(h) == 0) break;
    }
    return SHR_ETHREADS;
}

shr_tctx_t *shr__tctx_slow(shr_heap_t *h)
{
    shr_tctx_t *c = NULL;
    int rc = 0;

    pthread_once(&once, init_once);
    pthread_mutex_lock(&proc_mutex);
    prune_stale_contexts();
    if (!h->registered || h->fork_epoch != shr_load_relaxed(&fork_epoch)) {
        /* First use in a fork child (or after a failed registration). */
        h->registered = false;
        h->ctxs = NULL;
        rc = proc_register_locked(h);
        if (rc) goto fail;
    }
    for (c = tl_ctx_list; c; c = c->next_in_thread)
        if (atomic_load_explicit(&c->heap, memory_order_relaxed) == h) goto found;

    c = calloc(1, sizeof *c);
    if (!c) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = shr__lock(h, SHR_LOCK_REGISTRY);
    if (rc) goto fail_free;
    rc = claim_slot_locked(h, &c->slot);
    shr__unlock(h, SHR_LOCK_REGISTRY);
    if (rc) goto fail_free;

    c->ts = &h->hdr->threads[c->slot];
    c->gen = shr_load_relaxed(&c->ts->gen);
    for (int l = 0; l < SHR_NLAYERS; l++)
        c->layer[l] = h->hdr->thread_size[l] ? shr__seg_thread_area(h, l, c->slot) : NULL;
    atomic_store_explicit(&c->heap, h, memory_order_relaxed);
    c->next_in_thread = tl_ctx_list;
    tl_ctx_list = c;
    c->next_in_heap = h->ctxs;
    h->ctxs = c;
    pthread_setspecific(tctx_key, (void *)1);
found:
    shr__tl_ctx = c;
    pthread_mutex_unlock(&proc_mutex);
    return c;

fail_free:
    free(c);
fail:
    pthread_mutex_unlock(&proc_mutex);
    errno = rc == SHR_ETHREADS || rc == SHR_EPROCS ? EAGAIN : (rc < 0 && rc > -4096 ? -rc : ENOMEM);
    return NULL;
}

/* Thread exit: give back every slot this thread holds. */
static void tctx_destructor(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&proc_mutex);
    for (shr_tctx_t *c = tl_ctx_list, *next; c; c = next) {
        next = c->next_in_thread;
        shr_heap_t *h = atomic_load_explicit(&c->heap, memory_order_relaxed);
        if (h && h->registered && h->fork_epoch == shr_load_relaxed(&fork_epoch)) {
            if (shr__lock(h, SHR_LOCK_REGISTRY) == 0) {
                thread_slot_t *ts = &h->hdr->threads[c->slot];
                if (shr_load_relaxed(&ts->state) == SHR_ENTRY_LIVE &&
                    shr_load_relaxed(&ts->gen) == c->gen)
                    release_thread(h, c->slot, false);
                shr__unlock(h, SHR_LOCK_REGISTRY);
            }
            for (shr_tctx_t **pp = &h->ctxs; *pp; pp = &(*pp)->next_in_heap)
                if (*pp == c) {
                    *pp = c->next_in_heap;
                    break;
                }
        }
        free(c);
    }
    tl_ctx_list = NULL;
    shr__tl_ctx = NULL;
    pthread_mutex_unlock(&proc_mutex);
}
