/* Test support: see harness.h. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES 1024

static char names[MAX_NAMES][64];
static int nnames;
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char last_name[64];

const char *shr_test_name(void)
{
    static unsigned counter;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)time(NULL);
    pthread_mutex_lock(&names_mu);
    snprintf(last_name, sizeof last_name, "t_%d_%u_%08x", (int)getpid(), counter++, r);
    if (nnames < MAX_NAMES) snprintf(names[nnames++], sizeof names[0], "%s", last_name);
    pthread_mutex_unlock(&names_mu);
    return last_name;
}

void shr_test_cleanup(void)
{
    pthread_mutex_lock(&names_mu);
    for (int i = 0; i < nnames; i++) shm_unlink(names[i]);
    nnames = 0;
    pthread_mutex_unlock(&names_mu);
}

void shr_test_sweep_stale(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = 0;
        if (sscanf(e->d_name, "t_%d_", &pid) == 1 || sscanf(e->d_name, ".shr_tmp_%d_", &pid) == 1) {
            if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) shm_unlink(e->d_name);
        }
    }
    closedir(d);
}

pid_t shr_test_fork(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(fn(arg));
    return pid;
}

int shr_test_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

const char *shr_test_peer_path(void)
{
    const char *p = getenv("SHR_TEST_PEER");
    return p ? p : SHR_TEST_PEER_PATH;
}

static pid_t exec_peer_v(const char *arg0, va_list ap)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = shr_test_peer_path();
    for (const char *a = arg0; a && n < 31; a = va_arg(ap, const char *)) argv[n++] = a;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t shr_test_exec_peer(const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    pid_t pid = exec_peer_v(arg0, ap);
    va_end(ap);
    return pid;
}

int shr_test_run_peer(const char *arg0, ...)
{
    va_list ap;
    va_start(ap, arg0);
    pid_t pid = exec_peer_v(arg0, ap);
    va_end(ap);
    return pid < 0 ? -1 : shr_test_wait(pid);
}

int64_t shr_test_shm_bytes(const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    if (stat(path, &st) != 0) return -1;
    return (int64_t)st.st_blocks * 512;
}

uint64_t shr_test_blocks_in_use(shr_heap_t *heap)
{
    shr_alloc_stats_t st;
    shr_heap_recover(heap);
    shr_heap_collect(heap);
    if (shr_heap_stats(heap, &st) != 0) return UINT64_MAX;
    uint64_t n = st.large_blocks;
    for (int c = 0; c < SHR_POOL_CLASSES; c++) n += st.classes[c].blocks_in_use;
    return n;
}

void shr_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void shr_test_gate_init(shr_test_gate_t *g)
{
    if (pipe(g->fd) != 0) abort();
}

void shr_test_gate_open(shr_test_gate_t *g)
{
    char c = 1;
    if (write(g->fd[1], &c, 1) != 1) abort();
}

bool shr_test_gate_wait(shr_test_gate_t *g, unsigned timeout_ms)
{
    struct pollfd p = {.fd = g->fd[0], .events = POLLIN};
    if (poll(&p, 1, (int)timeout_ms) != 1) return false;
    char c;
    return read(g->fd[0], &c, 1) == 1;
}
