/* shr_soak: processes x threads of mixed allocator and list work on one
 * heap, SIGKILLed at random and respawned; the heap is checked after every
 * kill. Run by scripts/soak.sh [MINUTES], and by the stress tier as a storm
 * of 1,000 kills (ctest -L stress).
 *
 *   shr_soak [--seconds N] [--kills N] [--procs P] [--threads T] [--seed S]
 *            [--progress SECONDS]
 *
 * Work, in every thread of every worker process:
 *   - blocks of every size class, filled with a pattern derived from an id
 *     written in their first 16 bytes, verified before every free and
 *     realloc (a changed byte is exit status 3);
 *   - the shared list "soak": strings that carry their own checksum, set,
 *     read and verified (a damaged string is exit status 4); blocks handed
 *     to other processes as ints (their offsets), popped and freed there:
 *     frees across processes;
 * until the parent's stop flag, then every block the thread holds is freed.
 *
 * The parent, until the time or the number of kills is reached: sleeps
 * 10..100 ms, SIGKILLs a random worker, reaps it (a worker that exited by
 * itself with a failure status fails the soak), reclaims the dead
 * (shr_heap_recover), runs shr_heap_check_report (any violation fails the
 * soak), verifies every item of the list, records the segment's committed
 * bytes (st_blocks) and the blocks the dead left, and starts a new worker.
 * It prints a progress line every few seconds and one summary line at the
 * end, "soak: PASS ..." or "soak: FAIL ...", with exit status 0 or 1.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_PROCS 32
#define MAX_THREADS 16
#define NBLOCKS 8
#define LIST_MIN 64
#define LIST_MAX 160

/* Shared by the parent and its workers (an anonymous shared mapping). */
typedef struct shared {
    atomic_int stop;
    atomic_ullong ops;
} shared_t;

static shared_t *sh;
static shr_heap_t *heap;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- blocks with a verifiable pattern ------------------------------------ */

static inline uint8_t pat(uint64_t id, size_t i) { return (uint8_t)(id * 167u + i * 13u + (i >> 10)); }

/* [id 8][size 8] then the pattern: at every byte up to 256, then every 256th
 * and the last 64 (large blocks stay cheap). */
static void block_fill(uint8_t *p, size_t n, uint64_t id)
{
    memcpy(p, &id, 8);
    memcpy(p + 8, &n, 8);
    for (size_t i = 16; i < n; i += i < 256 || i + 64 >= n ? 1 : 256) p[i] = pat(id, i);
}

static bool block_ok(const uint8_t *p)
{
    uint64_t id;
    size_t n;
    memcpy(&id, p, 8);
    memcpy(&n, p + 8, 8);
    if (n < 16 || n > ((size_t)8 << 20)) return false;
    for (size_t i = 16; i < n; i += i < 256 || i + 64 >= n ? 1 : 256)
        if (p[i] != pat(id, i)) return false;
    return true;
}

/* Sizes of the blocks a thread keeps: what a killed thread leaves behind,
 * so mostly small (a kill costs a few KiB, and a soak of hours stays inside
 * the heap). Larger ones are made and freed in one step (transient). */
static size_t pick_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 100;
    if (r < 80) return 16 + rnd(s) % 497;         /* small classes */
    return 513 + rnd(s) % 8000;                   /* medium pools */
}

static size_t pick_transient(uint64_t *s)
{
    uint64_t r = rnd(s) % 100;
    if (r < 70) return 8192 + rnd(s) % 60000;     /* medium pools */
    if (r < 98) return 65536 + rnd(s) % 190000;   /* page runs */
    return 262144 + rnd(s) % 800000;              /* chunk runs */
}

/* ---- strings that carry their checksum ------------------------------------ */

static uint32_t fnv32(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static size_t make_checked(char *buf, uint64_t *s)
{
    size_t n = 1 + rnd(s) % 300;
    for (size_t i = 0; i < n; i++) buf[8 + i] = (char)('a' + rnd(s) % 26);
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", fnv32(buf + 8, n));
    memcpy(buf, hex, 8);
    return n + 8;
}

static bool checked_ok(const char *p, size_t n)
{
    if (n < 9) return false;
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", fnv32(p + 8, n - 8));
    return memcmp(hex, p, 8) == 0;
}

/* An item is a checked string, or an int naming a block handed over. */
static int item_ok(const shr_value_t *v)
{
    if (v->type == SHR_STR) return checked_ok(v->u.s.data, v->u.s.len);
    return v->type == SHR_INT && shr_ptr(heap, (shr_off_t)v->u.i) != NULL;
}

/* ---- a worker thread ----------------------------------------------------------- */

typedef struct worker_arg {
    uint64_t seed;
    int status;
} worker_arg_t;

static int take_handed(const shr_value_t *v)
{
    uint8_t *p = shr_ptr(heap, (shr_off_t)v->u.i);
    if (!p || !block_ok(p)) return 3;
    shr_free(heap, p);
    return 0;
}

static void *worker_thread(void *argp)
{
    worker_arg_t *a = argp;
    uint64_t s = a->seed | 1;
    uint8_t *blk[NBLOCKS] = {0};
    char buf[400];
    shr_list_t *l;
    a->status = 0;
    if (shr_list_attach(heap, "soak", &l) != 0) {
        a->status = 2;
        return NULL;
    }
    uint64_t id = a->seed << 20;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed) && a->status == 0) {
        uint64_t r = rnd(&s) % 16;
        int k = (int)(rnd(&s) % NBLOCKS);
        shr_value_t v;
        if (r == 15 && rnd(&s) % 4 == 0) {
            /* A large block, made, checked and freed at once. Rarer than
             * the rest: commit and release are system calls, so a thread
             * spends much of its time here, and a kill here leaks it. */
            size_t n = pick_transient(&s);
            uint8_t *p = shr_malloc(heap, n);
            if (p) {
                block_fill(p, n, ++id);
                if (!block_ok(p)) a->status = 3;
                shr_free(heap, p);
            }
        } else if (r < 5) { /* malloc */
            if (blk[k]) {
                if (!block_ok(blk[k])) a->status = 3;
                shr_free(heap, blk[k]);
            }
            size_t n = pick_size(&s);
            blk[k] = shr_malloc(heap, n);
            if (blk[k]) block_fill(blk[k], n, ++id);
        } else if (r < 8) { /* free */
            if (blk[k] && !block_ok(blk[k])) a->status = 3;
            shr_free(heap, blk[k]);
            blk[k] = NULL;
        } else if (r < 9) { /* realloc: the contents move with the block */
            if (!blk[k]) continue;
            if (!block_ok(blk[k])) a->status = 3;
            size_t n = pick_size(&s);
            uint8_t *q = shr_realloc(heap, blk[k], n);
            if (q) {
                blk[k] = q;
                block_fill(q, n, ++id);
            }
        } else if (r < 11) { /* set a checked string */
            v = shr_strn(buf, make_checked(buf, &s));
            /* Only the first LIST_MIN items: always strings (appends and
             * pops happen past them), never a handed block's only name. */
            shr_list_set(l, (int64_t)(rnd(&s) % LIST_MIN), &v);
        } else if (r < 13) { /* read and verify */
            int64_t len = shr_list_len(l);
            if (len > 0 && shr_list_get(l, (int64_t)(rnd(&s) % (uint64_t)len), &v) == 0) {
                if (!item_ok(&v)) a->status = 4;
                shr_value_release(heap, &v);
            }
        } else if (r < 14) { /* hand a block to whoever pops it */
            if (blk[k] && shr_list_len(l) < LIST_MAX) {
                v = shr_int((int64_t)shr_off(heap, blk[k]));
                if (shr_list_append(l, &v) == 0) blk[k] = NULL;
            }
        } else if (r < 15) { /* pop: a handed block is verified and freed here */
            if (shr_list_len(l) > LIST_MIN && shr_list_pop(l, -1, &v) == 0) {
                if (!item_ok(&v)) a->status = 4;
                else if (v.type == SHR_INT) a->status = take_handed(&v);
                shr_value_release(heap, &v);
            }
        }
        atomic_fetch_add_explicit(&sh->ops, 1, memory_order_relaxed);
    }
    for (int i = 0; i < NBLOCKS; i++) {
        if (blk[i] && !block_ok(blk[i])) a->status = 3;
        shr_free(heap, blk[i]);
    }
    shr_list_close(l);
    return NULL;
}

static int worker_main(uint64_t seed, int threads)
{
    pthread_t t[MAX_THREADS];
    worker_arg_t a[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        a[i].seed = seed * 64 + (uint64_t)i;
        if (pthread_create(&t[i], NULL, worker_thread, &a[i]) != 0) return 5;
    }
    int status = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (a[i].status && !status) status = a[i].status;
    }
    return status;
}

static pid_t spawn(uint64_t seed, int threads)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(worker_main(seed, threads));
    return pid;
}

/* ---- the parent -------------------------------------------------------------- */

static int verify_list(shr_list_t *l)
{
    int bad = 0;
    int64_t n = shr_list_len(l);
    for (int64_t i = 0; i < n; i++) {
        shr_value_t v;
        int rc = shr_list_get(l, i, &v);
        if (rc == SHR_EINDEX) break; /* shrunk meanwhile */
        if (rc == -ENOMEM) continue; /* a full heap refuses the reader's lease */
        if (rc) {
            fprintf(stderr, "soak: get %lld of %lld: %s\n", (long long)i, (long long)n, shr_strerror(rc));
            return -1;
        }
        if (!item_ok(&v)) {
            bad++;
            fprintf(stderr, "soak: item %lld of %lld: type %d, %zu bytes: '%.*s'\n", (long long)i, (long long)n,
                    (int)v.type, v.type == SHR_STR ? v.u.s.len : 0, v.type == SHR_STR ? (int)v.u.s.len : 0,
                    v.type == SHR_STR ? v.u.s.data : "");
        }
        shr_value_release(heap, &v);
    }
    return bad;
}

static uint64_t blocks_in_use(void) { return shr_test_blocks_in_use(heap); }

static void usage(void)
{
    fprintf(stderr, "usage: shr_soak [--seconds N] [--kills N] [--procs P] [--threads T] [--seed S] "
                    "[--progress SECONDS]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    double seconds = 0, progress = 5;
    long kills_max = 0;
    int procs = 4, threads = 2;
    uint64_t seed = 1;
    static const struct option opts[] = {
        {"seconds", 1, NULL, 's'}, {"kills", 1, NULL, 'k'}, {"procs", 1, NULL, 'p'},
        {"threads", 1, NULL, 't'}, {"seed", 1, NULL, 'r'}, {"progress", 1, NULL, 'g'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 's': seconds = atof(optarg); break;
        case 'k': kills_max = atol(optarg); break;
        case 'p': procs = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'r': seed = strtoull(optarg, NULL, 0); break;
        case 'g': progress = atof(optarg); break;
        default: usage();
        }
    }
    if ((seconds <= 0 && kills_max <= 0) || procs < 1 || procs > MAX_PROCS || threads < 1 ||
        threads > MAX_THREADS)
        usage();
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 1;

    shr_test_sweep_stale();
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = (size_t)2 << 30; /* reserved, sparse: committed follows use */
    const char *name = shr_test_name();
    int rc = shr_heap_create(name, &o, &heap);
    if (rc) {
        fprintf(stderr, "soak: FAIL cannot create a heap: %s\n", shr_strerror(rc));
        return 1;
    }
    uint64_t base = blocks_in_use();
    char buf[400];
    uint64_t s = seed | 1;
    shr_value_t init[LIST_MIN];
    char *keep[LIST_MIN];
    for (int i = 0; i < LIST_MIN; i++) {
        size_t n = make_checked(buf, &s);
        keep[i] = malloc(n);
        memcpy(keep[i], buf, n);
        init[i] = shr_strn(keep[i], n);
    }
    shr_list_t *list;
    if ((rc = shr_list_create(heap, "soak", init, LIST_MIN, &list)) != 0) {
        fprintf(stderr, "soak: FAIL cannot create the list: %s\n", shr_strerror(rc));
        return 1;
    }
    for (int i = 0; i < LIST_MIN; i++) free(keep[i]);

    pid_t pid[MAX_PROCS];
    uint64_t spawned = 0;
    for (int w = 0; w < procs; w++) pid[w] = spawn(seed * 1000 + spawned++, threads);

    const char *fail = NULL;
    long kills = 0, checks = 0, early = 0;
    int64_t committed = 0, committed_max = 0;
    double t0 = now_s(), next_progress = t0 + progress;
    while (!fail) {
        double t = now_s();
        if ((seconds > 0 && t - t0 >= seconds) || (kills_max > 0 && kills >= kills_max)) break;
        shr_test_sleep_ms(10 + (unsigned)(rnd(&s) % 91));
        int w = (int)(rnd(&s) % (uint64_t)procs);
        kill(pid[w], SIGKILL);
        int st = shr_test_wait(pid[w]);
        if (st == 128 + SIGKILL) kills++;
        else if (st == 0) early++;
        else {
            fail = st == 3 ? "a worker saw a block's contents change" :
                   st == 4 ? "a worker read a damaged list item" : "a worker failed";
            fprintf(stderr, "soak: worker exited with status %d\n", st);
            break;
        }
        if ((rc = shr_heap_recover(heap)) < 0) {
            fail = "recover failed";
            break;
        }
        if (shr_heap_check_report(heap, stderr) != 0) {
            fail = "heap check failed after a kill";
            break;
        }
        checks++;
        if (verify_list(list) != 0) {
            fail = "a list item is damaged after a kill";
            break;
        }
        committed = shr_test_shm_bytes(name);
        if (committed > committed_max) committed_max = committed;
        pid[w] = spawn(seed * 1000 + spawned++, threads);
        if (progress > 0 && now_s() >= next_progress) {
            shr_alloc_stats_t st2;
            shr_heap_stats(heap, &st2);
            printf("soak: %6.0fs  kills %ld  checks ok %ld  committed %.1f MiB  left by the dead %llu blocks"
                   " (%.2f/kill)  ops %llu\n",
                   now_s() - t0, kills, checks, (double)committed / 1048576.0,
                   (unsigned long long)st2.dead_outstanding_blocks,
                   kills ? (double)st2.dead_outstanding_blocks / (double)kills : 0.0,
                   (unsigned long long)atomic_load(&sh->ops));
            fflush(stdout);
            next_progress += progress;
        }
    }

    /* Stop: the survivors free all they hold and exit 0. */
    atomic_store(&sh->stop, 1);
    for (int w = 0; w < procs; w++) {
        int st = shr_test_wait(pid[w]);
        if (st != 0 && !fail) fail = "a worker failed while stopping";
    }
    shr_heap_recover(heap);
    /* Blocks still handed over in the list: verify and free them. */
    shr_value_t v;
    int64_t n = shr_list_len(list);
    for (int64_t i = n - 1; i >= 0 && !fail; i--)
        if (shr_list_get(list, i, &v) == 0) {
            if (v.type == SHR_INT) {
                uint8_t *p = shr_ptr(heap, (shr_off_t)v.u.i);
                if (!p || !block_ok(p)) fail = "a handed-over block changed";
                else if (shr_list_delete(list, i) == 0) shr_free(heap, p);
            }
            shr_value_release(heap, &v);
        }
    if (!fail && verify_list(list) != 0) fail = "a list item is damaged at the end";
    if (!fail && shr_heap_check_report(heap, stderr) != 0) fail = "heap check failed at the end";
    shr_alloc_stats_t st;
    shr_heap_stats(heap, &st);
    if (getenv("SOAK_STATS")) shr_heap_stats_print(heap, stderr);
    shr_list_close(list);
    shr_list_unlink(heap, "soak");
    uint64_t left = blocks_in_use();
    uint64_t leaked = left > base ? left - base : 0;
    committed = shr_test_shm_bytes(name);
    if (!fail && shr_heap_check_report(heap, stderr) != 0) fail = "heap check failed after the list was freed";
    printf("soak: %s %.0fs, %d procs x %d threads, %ld kills (%ld exited first), %ld checks ok, "
           "committed %.1f MiB now (max %.1f MiB), %llu blocks leaked (%.2f/kill; the allocator counts "
           "%llu left by the dead), %llu ops%s%s\n",
           fail ? "FAIL" : "PASS", now_s() - t0, procs, threads, kills, early, checks,
           (double)committed / 1048576.0, (double)committed_max / 1048576.0, (unsigned long long)leaked,
           kills ? (double)leaked / (double)kills : 0.0, (unsigned long long)st.dead_outstanding_blocks,
           (unsigned long long)atomic_load(&sh->ops), fail ? ": " : "", fail ? fail : "");
    shr_heap_close(heap);
    shr_test_cleanup();
    return fail ? 1 : 0;
}
