// shm names and their cleanup; see common.hpp.
#include "common.hpp"

#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace shb {

namespace {

// Fixed storage, so that the signal handler touches no allocator and no lock.
constexpr int kMaxNames = 64;
constexpr int kPathMax = 128;
char g_paths[kMaxNames][kPathMax];    // "/dev/shm/NAME", or "" when the slot is free
pid_t g_owner;                         // only this process removes them

void remove_all() {
    if (getpid() != g_owner) return;   // a forked worker leaves them to its parent
    for (auto &p : g_paths)
        if (p[0]) { unlink(p); p[0] = 0; }
}

void on_signal(int sig) {
    remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

}  // namespace

std::string unique_shm_name(const char *kind) {
    static unsigned counter;
    const char *prefix = getenv("SHB_SHM_PREFIX");
    char buf[96];
    if (prefix && *prefix)
        snprintf(buf, sizeof buf, "%s%d_%s%u", prefix, int(getpid()), kind, counter++);
    else
        snprintf(buf, sizeof buf, "shb_%d_%s%u", int(getpid()), kind, counter++);
    return buf;
}

void cleanup_register(const std::string &name) {
    for (auto &p : g_paths)
        if (!p[0]) {
            snprintf(p, kPathMax, "/dev/shm/%s", name.c_str());
            return;
        }
    die("too many live shm objects (%d)", kMaxNames);
}

void cleanup_unregister(const std::string &name) {
    char path[kPathMax];
    snprintf(path, sizeof path, "/dev/shm/%s", name.c_str());
    for (auto &p : g_paths)
        if (p[0] && strcmp(p, path) == 0) p[0] = 0;
}

void cleanup_install() {
    g_owner = getpid();
    atexit(remove_all);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, on_signal);
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sharena-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

}  // namespace shb
