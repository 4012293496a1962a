/* Checks of libsharena-malloc.so, one case per run: `preload_check CASE`.
 *
 * CTest runs each case with LD_PRELOAD set to the library (the "private_api"
 * case without it). A case exits 0 when every check holds and prints the
 * first failure otherwise. The program links libsharena.so for shr_off and
 * friends; under the preload those calls go to the preload's own copy.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sharena.h>
#include <sharena/malloc.h>

extern void *__libc_malloc(size_t);

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);    \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static shr_heap_t *heap(void)
{
    CHECK(shr_malloc_heap != NULL);
    shr_heap_t *h = shr_malloc_heap();
    CHECK(h != NULL);
    return h;
}

static int in_heap(const void *p) { return shr_off(heap(), p) != 0; }

/* ---- before main ------------------------------------------------------------ */

static char *early;
__attribute__((constructor(101))) static void before_main(void)
{
    early = malloc(100);
    if (early) strcpy(early, "made before main");
}

static int case_early(void)
{
    CHECK(early && strcmp(early, "made before main") == 0);
    CHECK(in_heap(early));
    free(early);
    char *s = strdup("strdup goes through malloc");
    CHECK(in_heap(s));
    free(s);
    return 0;
}

/* ---- basic calls --------------------------------------------------------------- */

static int case_basic(void)
{
    for (size_t n = 1; n <= (1u << 22); n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p && in_heap(p) && ((uintptr_t)p & 15) == 0);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n && u <= n + n / 4 + 4096);
        memset(p, 0xab, u); /* every usable byte is the caller's */
        unsigned char *q = realloc(p, n * 2);
        CHECK(q && q[0] == 0xab && q[n - 1] == 0xab);
        q = realloc(q, n / 2 + 1);
        CHECK(q && q[n / 2] == 0xab);
        free(q);
        unsigned char *z = calloc(n, 1);
        CHECK(z);
        for (size_t i = 0; i < n; i += 97) CHECK(z[i] == 0);
        CHECK(z[n - 1] == 0);
        free(z);
    }
    /* calloc of memory that was dirty */
    for (int r = 0; r < 100; r++) {
        char *d = malloc(256);
        memset(d, 0x5a, 256);
        free(d);
        char *c = calloc(16, 16);
        for (int i = 0; i < 256; i++) CHECK(c[i] == 0);
        free(c);
    }
    return 0;
}

/* Sizes through a volatile, so that the compiler neither warns about nor
 * folds the absurd requests. */
static volatile size_t vmax = SIZE_MAX;

static int case_sizes(void)
{
    const size_t max = vmax;
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    errno = 0;
    CHECK(malloc(max) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(max / 2 + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(max / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(max >> 24, (size_t)1 << 30) == NULL && errno == ENOMEM);
    char *p = malloc(10);
    strcpy(p, "intact");
    errno = 0;
    CHECK(realloc(p, max) == NULL && errno == ENOMEM && strcmp(p, "intact") == 0);
    errno = 0;
    CHECK(reallocarray(p, max / 2, 4) == NULL && errno == ENOMEM && strcmp(p, "intact") == 0);
    p = reallocarray(p, 10, 10);
    CHECK(p && strcmp(p, "intact") == 0);
    CHECK(realloc(p, 0) == NULL); /* frees, as glibc */
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    return 0;
}

/* ---- alignment ------------------------------------------------------------------ */

static int case_aligned(void)
{
    size_t sizes[] = {0, 1, 100, 5000, 70000, 300000};
    for (size_t a = sizeof(void *); a <= ((size_t)1 << 21); a <<= 1)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            CHECK(posix_memalign(&p, a, n) == 0 && p && ((uintptr_t)p % a) == 0);
            CHECK(malloc_usable_size(p) >= n);
            memset(p, 1, n);
            unsigned char *q = realloc(p, n + 10);
            CHECK(q && (n == 0 || q[n - 1] == 1));
            free(q);
            p = aligned_alloc(a, n);
            CHECK(p && ((uintptr_t)p % a) == 0);
            free(p);
            p = memalign(a, n);
            CHECK(p && ((uintptr_t)p % a) == 0);
            free(p);
        }
    void *p = memalign(24, 10); /* glibc rounds up to 32 */
    CHECK(p && ((uintptr_t)p % 32) == 0);
    free(p);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p && ((uintptr_t)p % page) == 0);
    free(p);
    p = pvalloc(10);
    CHECK(p && ((uintptr_t)p % page) == 0 && malloc_usable_size(p) >= page);
    free(p);
    CHECK(posix_memalign(&p, 24, 10) == EINVAL);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
    CHECK(posix_memalign(&p, 64, SIZE_MAX - 10) == ENOMEM);
    return 0;
}

/* ---- threads ----------------------------------------------------------------------- */

#define NT 8
#define PER 2000
static void *slots[NT][PER];
static pthread_barrier_t bar;

static void *cross_worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) {
        slots[me][i] = malloc((size_t)(16 + (i * 37) % 3000));
        CHECK(slots[me][i]);
        memset(slots[me][i], me, 16);
    }
    pthread_barrier_wait(&bar);
    /* free the neighbour's first half: frees from another thread */
    int other = (me + 1) % NT;
    for (int i = 0; i < PER / 2; i++) {
        CHECK(((unsigned char *)slots[other][i])[0] == other);
        free(slots[other][i]);
    }
    return NULL; /* exits with its second half still live */
}

static int case_threads(void)
{
    pthread_t t[NT];
    pthread_barrier_init(&bar, NULL, NT);
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < NT; i++) pthread_create(&t[i], NULL, cross_worker, (void *)(intptr_t)i);
        for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
        /* blocks of threads that have exited, freed by main */
        for (int i = 0; i < NT; i++)
            for (int j = PER / 2; j < PER; j++) {
                CHECK(((unsigned char *)slots[i][j])[0] == i);
                free(slots[i][j]);
            }
    }
    CHECK(shr_heap_check(heap()) == 0);
    return 0;
}

/* More threads at once than a heap has thread slots. */
#define MANY 700
static void *many_blocks[MANY];
static pthread_barrier_t many_bar;
static void *many_worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    char *p = malloc(64);
    CHECK(p);
    snprintf(p, 64, "thread %d", me);
    many_blocks[me] = p;
    for (int i = 0; i < 50; i++) free(malloc((size_t)(i * 13 + 1)));
    pthread_barrier_wait(&many_bar);
    /* free a neighbour's block, heap or glibc, from this thread */
    pthread_barrier_wait(&many_bar);
    free(many_blocks[(me + 1) % MANY]);
    return NULL;
}

static int case_many_threads(void)
{
    pthread_t t[MANY];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (int r = 0; r < 2; r++) {
        pthread_barrier_init(&many_bar, NULL, MANY + 1);
        for (int i = 0; i < MANY; i++)
            CHECK(pthread_create(&t[i], &attr, many_worker, (void *)(intptr_t)i) == 0);
        pthread_barrier_wait(&many_bar);
        int heap_blocks = 0;
        char want[64];
        for (int i = 0; i < MANY; i++) {
            snprintf(want, sizeof want, "thread %d", i);
            CHECK(strcmp(many_blocks[i], want) == 0);
            heap_blocks += in_heap(many_blocks[i]);
        }
        CHECK(heap_blocks > 0);
        pthread_barrier_wait(&many_bar);
        for (int i = 0; i < MANY; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&many_bar);
    }
    /* the slots came back: a new thread gets one */
    for (int i = 0; i < 200; i++) {
        CHECK(pthread_create(&t[0], &attr, many_worker, (void *)(intptr_t)0) == 0);
        pthread_detach(t[0]);
        break;
    }
    CHECK(shr_heap_check(heap()) == 0);
    return 0;
}

/* ---- fork ---------------------------------------------------------------------------- */

static _Atomic int churn_stop;
static void *churn(void *arg)
{
    (void)arg;
    void *keep[64] = {0};
    for (unsigned i = 0; !churn_stop; i++) {
        unsigned k = i % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (i * 7919) % 20000);
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    return NULL;
}

static int case_fork(void)
{
    char *shared_looking = malloc(64);
    strcpy(shared_looking, "parent");
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    for (int r = 0; r < 40; r++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* the child's own copy: same contents, its writes are its own */
            if (strcmp(shared_looking, "parent") != 0) _exit(2);
            strcpy(shared_looking, "child");
            void *v[1000];
            for (int i = 0; i < 1000; i++) v[i] = malloc((size_t)(i % 700) + 1);
            for (int i = 0; i < 1000; i++) free(v[i]);
            free(shared_looking);
            /* In a guarded heap the churning thread may have been between
             * taking a block and writing its guard bytes at the fork
             * instant: that block, leaked in the child as a killed
             * process's would be, fails the guard check. */
            if (getenv("SHARENA_GUARDS")) _exit(0);
            _exit(shr_heap_check_report(shr_malloc_heap(), stderr) == 0 ? 0 : 3);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "fork %d: child status %#x\n", r, (unsigned)st);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK(strcmp(shared_looking, "parent") == 0);
    }
    churn_stop = 1;
    pthread_join(t, NULL);
    free(shared_looking);
    CHECK(shr_heap_check(heap()) == 0);
    return 0;
}

/* The last thread leaving with pthread_exit ends the process. */
static void *last_thread(void *arg)
{
    (void)arg;
    usleep(10000);
    free(malloc(100));
    _exit(0);
}

static int case_pthread_exit(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        free(malloc(10));
        pthread_t t;
        pthread_create(&t, NULL, last_thread, NULL);
        pthread_exit(NULL);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pid = fork();
    if (pid == 0) {
        free(malloc(10));
        pthread_exit(NULL); /* the only thread: the process exits 0 */
    }
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

/* ---- dlopen, foreign pointers ------------------------------------------------------------- */

static int case_dlopen(const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW);
    CHECK(h);
    char *(*make)(const char *) = (char *(*)(const char *))dlsym(h, "plugin_make");
    void (*drop)(char *) = (void (*)(char *))dlsym(h, "plugin_drop");
    CHECK(make && drop);
    char *s = make("from the plugin");
    CHECK(s && strcmp(s, "from the plugin") == 0 && in_heap(s));
    free(s); /* made in the plugin, freed here */
    s = strdup("freed by the plugin");
    drop(s);
    CHECK(dlclose(h) == 0);
    return 0;
}

static int case_foreign(void)
{
    char *g = __libc_malloc(100);
    CHECK(g && !in_heap(g));
    strcpy(g, "glibc's");
    CHECK(malloc_usable_size(g) >= 100);
    char *m = realloc(g, 5000);
    CHECK(m && strcmp(m, "glibc's") == 0);
    free(m);
    free(__libc_malloc(10));
    return 0;
}

/* ---- named heaps ---------------------------------------------------------------------------- */

static int case_named(const char *self)
{
    char name[64];
    snprintf(name, sizeof name, "shr_malloc_test_%d", (int)getpid());
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* a fresh process on the named heap, as preloaded programs start */
        setenv("SHARENA_HEAP", name, 1);
        dup2(fd[1], 1);
        execl(self, self, "named_writer", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char buf[64] = {0};
    CHECK(read(fd[0], buf, sizeof buf - 1) > 0);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unsigned long long off = strtoull(buf, NULL, 10);
    shr_heap_t *h;
    CHECK(shr_heap_attach(name, &h) == 0);
    const char *s = shr_ptr(h, off);
    CHECK(s && strcmp(s, "written by another process") == 0);
    shr_free(h, (void *)s); /* a block another process malloc'ed */
    CHECK(shr_heap_check(h) == 0);
    shr_heap_close(h);
    CHECK(shr_heap_unlink(name) == 0);
    return 0;
}

static int case_named_writer(void)
{
    shr_heap_t *h = heap();
    const char *want = getenv("SHARENA_HEAP");
    CHECK(want && strcmp(shr_heap_name(h), want) == 0);
    char *p = malloc(64);
    strcpy(p, "written by another process");
    printf("%llu\n", (unsigned long long)shr_off(h, p));
    return 0;
}

/* ---- the private heap through the public API (no preload) ----------------------------------- */

static int case_private_api(void)
{
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.flags = SHR_HEAP_PRIVATE;
    shr_heap_t *h;
    CHECK(shr_heap_create("named", &o, &h) == -EINVAL);
    CHECK(shr_heap_create(NULL, &o, &h) == 0);
    char *p = shr_malloc(h, 64);
    strcpy(p, "parent");
    pid_t pid = fork();
    if (pid == 0) {
        int ok = strcmp(p, "parent") == 0;
        strcpy(p, "child");
        char *q = shr_malloc(h, 1000);
        ok = ok && q && shr_heap_check(h) == 0;
        _exit(ok ? 0 : 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strcmp(p, "parent") == 0);
    /* committed follows what is written and given back */
    shr_heap_info_t info;
    CHECK(shr_heap_stat(h, &info, NULL, 0, NULL) == 0);
    uint64_t before = info.committed;
    char *big = shr_malloc(h, 64 << 20);
    memset(big, 1, 64 << 20);
    CHECK(shr_heap_stat(h, &info, NULL, 0, NULL) == 0 && info.committed >= before + (60 << 20));
    shr_free(h, big);
    CHECK(shr_heap_stat(h, &info, NULL, 0, NULL) == 0 && info.committed < before + (8 << 20));
    shr_free(h, p);
    CHECK(shr_heap_check(h) == 0);
    CHECK(shr_heap_close(h) == 0);
    return 0;
}

/* Nothing of a private heap outlives the process, and it is not in /dev/shm. */
static int case_maps(void)
{
    free(malloc(10));
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) found += strstr(line, "memfd:sharena-private") != NULL;
    fclose(f);
    CHECK(found == 1);
    CHECK(strcmp(shr_heap_name(heap()), "") == 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 64;
    const char *c = argv[1];
    if (!strcmp(c, "early")) return case_early();
    if (!strcmp(c, "basic")) return case_basic();
    if (!strcmp(c, "sizes")) return case_sizes();
    if (!strcmp(c, "aligned")) return case_aligned();
    if (!strcmp(c, "threads")) return case_threads();
    if (!strcmp(c, "many_threads")) return case_many_threads();
    if (!strcmp(c, "fork")) return case_fork();
    if (!strcmp(c, "pthread_exit")) return case_pthread_exit();
    if (!strcmp(c, "dlopen") && argc > 2) return case_dlopen(argv[2]);
    if (!strcmp(c, "foreign")) return case_foreign();
    if (!strcmp(c, "named")) return case_named(argv[0]);
    if (!strcmp(c, "named_writer")) return case_named_writer();
    if (!strcmp(c, "private_api")) return case_private_api();
    if (!strcmp(c, "maps")) return case_maps();
    fprintf(stderr, "unknown case %s\n", c);
    return 64;
}
