// bench_growth: what each cost does as the heap grows (issue: scale). Public
// API only, through libsharena.so. Writes one JSON object (--out=FILE, or
// stdout) that bench/report.py turns into the "Growth" section and its plot;
// progress goes to stderr.
//
//   heap       live bytes 1 MiB .. SHB_GROWTH_MAX_MIB (default 2048), blocks
//              of the batch's sizes (8..512 B) allocated and kept: at each
//              step a 64-byte malloc+free pair, shr_heap_check, shr_heap_stats,
//              attach and close from a fresh process, shr_heap_stats and
//              shr_heap_check from a fresh process (they fault the heap's
//              metadata in); the longest lock hold inside stats and check,
//              warm and fresh, measured from inside (interposed mutex
//              calls: "lock holds, measured from inside"); and the same seen
//              from outside: the worst latency of another process's
//              allocator slow path (a 300 KiB malloc+free, which takes the
//              arena lock both ways), less its waits for a CPU, while this
//              process runs one of them, against the same worst in an idle
//              window as long (the smallest of SHB_GROWTH_REPS such worsts:
//              a lock hold recurs in every walk, the machine's hiccups do
//              not)
//   procs      attach and close from a fresh process with 1..100 processes
//              attached (each idle, holding a thread slot)
//   dead       attach from a fresh process after N = 0..32 peers died
//              (SIGKILL, each holding pools), on the largest heap and on a
//              16 MiB one (medians of at least 7 for N = 0 and 32, taken
//              in turn)
//   leases     a process holding N = 1..10^6 references to N distinct
//              objects (gets of the strings of a shared list of 10^6):
//              shr_lease_stats with N held; with 1 held after
//              the peak of N; close with 1 held after the peak; close with 1
//              held after taking and releasing N one at a time (the same
//              objects touched, no peak: the close's munmap costs what the
//              process mapped, peak or not); close with N held;
//              shr_heap_recover of a process that died holding N
//   list       a list of N = 10^3..10^6 strings of 16 bytes: count and index
//              (full scans), insert(0) and pop(0), repr; and at the largest
//              N the wait of a writer (shr_list_set of an int) while another
//              process runs count over the list for 400 ms, back to back and
//              with 0.2 ms between counts, against its wait alone
//
// Every figure is the median of SHB_GROWTH_REPS (default 3) measurements
// unless its name says max. The machine is shared and noisy: compare within
// one run. Knobs: SHB_GROWTH_MAX_MIB, SHB_GROWTH_REPS, SHB_GROWTH_MAX_LIST.
#include <sharena.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

// ---- helpers -------------------------------------------------------------------------

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}
double ms_since(uint64_t t0) { return double(now_ns() - t0) / 1e6; }

[[noreturn]] void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_growth: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

void check_rc(int rc, const char *what) {
    if (rc != 0) die("%s: %s", what, shr_strerror(rc));
}

int env_int(const char *name, int def) {
    const char *e = getenv(name);
    int v = e ? atoi(e) : 0;
    return v > 0 ? v : def;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int g_reps = 3;
uint64_t g_t0;
void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_growth: [%5.1f s] ", double(now_ns() - g_t0) / 1e9);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

template <class F> double med_of(int reps, F &&f) {
    std::vector<double> v;
    for (int i = 0; i < reps; i++) v.push_back(f());
    return median(v);
}

// Anonymous shared memory, visible to forked children.
template <class T> T *shared_new(size_t n = 1) {
    void *m = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap failed");
    return new (m) T[n]();
}
template <class T> void shared_delete(T *p, size_t n = 1) { munmap(p, n * sizeof(T)); }

// Fork a child that runs fn() and _exits with its value; returns the pid.
template <class F> pid_t spawn(F &&fn) {
    fflush(nullptr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        _exit(fn());
    }
    return pid;
}
bool reap(pid_t pid) {
    int st = 0;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
// Run fn in a fresh child that writes up to 8 results; wait for it.
struct Results8 { double v[8]; };
template <class F> Results8 in_child(F &&fn) {
    Results8 *r = shared_new<Results8>();
    pid_t pid = spawn([&] { return fn(r->v); });
    if (!reap(pid)) die("a measuring child failed");
    Results8 out = *r;
    shared_delete(r);
    return out;
}

std::string g_name;

// ---- lock holds, measured from inside --------------------------------------------------
//
// This executable defines pthread_mutex_trylock, _timedlock, _lock and
// _unlock: libsharena.so's calls bind to them (the executable comes first in
// symbol lookup), and they forward to libc's. While g_hold.on, every hold of
// a mutex inside the heap's mapping [lo, hi) by this process's measuring
// thread is timed from the acquisition that returned 0 (or EOWNERDEAD) to
// its unlock: g_hold.max_ns is the longest hold of any of the heap's locks
// (the lock table, a list lock, a lease table's mutex) during the measured
// call. Wall clock, so a hold preempted by the scheduler counts in full (the
// others waited all the same). Off, the wrappers cost one load.
// Each hold also reads the thread's involuntary context switches and minor
// faults (getrusage) at both ends: max_clean_ns is the longest hold that was
// never preempted, max_faults the faults taken inside the longest.
struct HoldRec {
    std::atomic<bool> on{false};
    uintptr_t lo = 0, hi = 0;
    uint64_t max_ns = 0, max_clean_ns = 0, max_faults = 0, holds = 0, preempted = 0;
    const void *mu[8] = {};
    uint64_t t0[8] = {};
    long ivcsw0[8] = {}, flt0[8] = {};
} g_hold;

template <class F> F real_fn(const char *name) { return reinterpret_cast<F>(dlsym(RTLD_NEXT, name)); }
bool hold_watched(const void *m) {
    return g_hold.on.load(std::memory_order_relaxed) && uintptr_t(m) >= g_hold.lo && uintptr_t(m) < g_hold.hi;
}
void hold_begin(const void *m, int rc) {
    if ((rc != 0 && rc != EOWNERDEAD) || !hold_watched(m)) return;
    for (int i = 0; i < 8; i++)
        if (!g_hold.mu[i]) {
            rusage r;
            getrusage(RUSAGE_THREAD, &r);
            g_hold.mu[i] = m;
            g_hold.ivcsw0[i] = r.ru_nivcsw;
            g_hold.flt0[i] = r.ru_minflt;
            g_hold.t0[i] = now_ns();
            return;
        }
}
void hold_end(const void *m) {
    if (!g_hold.on.load(std::memory_order_relaxed)) return;
    for (int i = 0; i < 8; i++)
        if (g_hold.mu[i] == m) {
            uint64_t d = now_ns() - g_hold.t0[i];
            rusage r;
            getrusage(RUSAGE_THREAD, &r);
            g_hold.mu[i] = nullptr;
            if (d > g_hold.max_ns) {
                g_hold.max_ns = d;
                g_hold.max_faults = uint64_t(r.ru_minflt - g_hold.flt0[i]);
            }
            if (r.ru_nivcsw == g_hold.ivcsw0[i]) g_hold.max_clean_ns = std::max(g_hold.max_clean_ns, d);
            else g_hold.preempted++;
            g_hold.holds++;
            return;
        }
}
// Longest hold of the heap's locks during fn(), in ms (the heap h's
// mapping); *clean_ms, when given, the longest never preempted.
template <class F> double max_hold_ms(shr_heap_t *h, F &&fn, double *clean_ms = nullptr) {
    shr_heap_info_t info;
    check_rc(shr_heap_stat(h, &info, nullptr, 0, nullptr), "shr_heap_stat");
    g_hold.lo = uintptr_t(shr_ptr(h, 64)) - 64;
    g_hold.hi = g_hold.lo + info.capacity;
    g_hold.max_ns = g_hold.max_clean_ns = g_hold.max_faults = g_hold.holds = g_hold.preempted = 0;
    for (auto &m : g_hold.mu) m = nullptr;
    g_hold.on.store(true);
    fn();
    g_hold.on.store(false);
    if (clean_ms) *clean_ms = double(g_hold.max_clean_ns) / 1e6;
    return double(g_hold.max_ns) / 1e6;
}

// Bytes of the heap in blocks handed out (small, medium and large).
double in_use_mib(shr_heap_t *h) {
    shr_alloc_stats_t s;
    if (shr_heap_stats(h, &s) != 0) return -1;
    double b = double(s.large_bytes);
    for (const auto &c : s.classes) b += double(c.blocks_in_use) * c.block_size;
    return b / 1048576.0;
}

// Attach and close from a fresh process: v[0] attach ms, v[1] close ms.
Results8 attach_close() {
    return in_child([](double *v) {
        shr_heap_t *h = nullptr;
        uint64_t t0 = now_ns();
        int rc = shr_heap_attach(g_name.c_str(), &h);
        v[0] = ms_since(t0);
        if (rc != 0) return 3;
        t0 = now_ns();
        shr_heap_close(h);
        v[1] = ms_since(t0);
        return 0;
    });
}

// ---- JSON output -----------------------------------------------------------------------

std::string g_json;
void jraw(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_json += buf;
}

// ---- the heap sweep -------------------------------------------------------------------

// The batch's sizes, 8..512 B (xorshift64*, as bench/src/patterns.cpp).
struct Sizes {
    uint64_t s = 0x5EED0001;
    uint32_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return uint32_t(8 + (s * 0x2545F4914F6CDD1Dull) % 505);
    }
};

double pair_ns(shr_heap_t *h) {
    const int n = 200000;
    for (int i = 0; i < 20000; i++) {
        void *p = shr_malloc(h, 64);
        asm volatile("" : : "g"(p) : "memory");
        shr_free(h, p);
    }
    return med_of(5, [&] {
        uint64_t t0 = now_ns();
        for (int i = 0; i < n; i++) {
            auto *p = static_cast<unsigned char *>(shr_malloc(h, 64));
            p[0] = 1;
            asm volatile("" : : "g"(p) : "memory");
            shr_free(h, p);
        }
        return double(now_ns() - t0) / n;
    });
}

// The prober: another process running the allocator's slow path (a
// 300 KiB malloc+free, which takes the arena lock in both halves) nonstop,
// keeping the worst latency seen in each phase the driver announces.
constexpr int kMaxPhases = 64;
struct Probe {
    std::atomic<int> phase{0};      // 0 wait, 1.. measuring phase k, -1 quit
    std::atomic<int> ready{0};
    std::atomic<int> ack{0};        // last phase the prober saw
    double max_us[kMaxPhases];           // worst latency less its wait for a CPU
    uint64_t n[kMaxPhases];
    double preempted_max_us[kMaxPhases]; // worst latency as measured
    uint64_t preempted[kMaxPhases];      // samples that waited > 50 us for a CPU
};

// This thread's time spent runnable but not running, ns (schedstat's second
// field), read through fd (/proc/thread-self/schedstat); 0 if unreadable.
uint64_t runqueue_wait_ns(int fd) {
    char buf[96];
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *sp = strchr(buf, ' ');
    return sp ? strtoull(sp + 1, nullptr, 10) : 0;
}

pid_t probe_start(Probe *pr) {
    pid_t pid = spawn([pr] {
        shr_heap_t *h = nullptr;
        if (shr_heap_attach(g_name.c_str(), &h) != 0) return 3;
        int sfd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        pr->ready.store(1);
        for (;;) {
            int ph = pr->phase.load(std::memory_order_acquire);
            if (ph < 0) break;
            if (ph >= kMaxPhases) ph = 0;
            pr->ack.store(ph, std::memory_order_release);
            uint64_t q0 = runqueue_wait_ns(sfd);
            uint64_t t0 = now_ns();
            void *p = shr_malloc(h, 300 << 10);
            shr_free(h, p);
            uint64_t t1 = now_ns(), q1 = runqueue_wait_ns(sfd);
            // The time it waited for a CPU (runnable, not running: another
            // process had the core) is the machine's, not a lock's (a lock
            // wait sleeps): left out, and counted.
            uint64_t q = q1 > q0 ? q1 - q0 : 0, d = t1 - t0;
            double us = double(d > q ? d - q : 0) / 1e3;
            if (q > 50000) pr->preempted[ph]++;
            pr->preempted_max_us[ph] = std::max(pr->preempted_max_us[ph], double(d) / 1e3);
            if (us > pr->max_us[ph]) pr->max_us[ph] = us;
            pr->n[ph]++;
        }
        shr_heap_close(h);
        return 0;
    });
    while (!pr->ready.load()) usleep(100);
    return pid;
}
void probe_phase(Probe *pr, int ph) {
    pr->phase.store(ph, std::memory_order_release);
    while (pr->ack.load(std::memory_order_acquire) != ph) usleep(20);
}

void heap_step(shr_heap_t *h, double live_mib, bool last) {
    double pns = pair_ns(h);
    double check_ms = med_of(g_reps, [&] {
        uint64_t t0 = now_ns();
        check_rc(shr_heap_check(h), "shr_heap_check");
        return ms_since(t0);
    });
    shr_alloc_stats_t st;
    double stats_ms = med_of(g_reps, [&] {
        uint64_t t0 = now_ns();
        check_rc(shr_heap_stats(h, &st), "shr_heap_stats");
        return ms_since(t0);
    });
    // The longest lock hold inside one call, the worst of g_reps calls.
    // Per call: its longest hold. Reported: the worst call's (what a waiter
    // may meet), the smallest (what recurs in every call: the walk's own
    // longest step; a preemption inside a hold does not recur), and the
    // worst of the holds never preempted.
    double stats_hold = 0, check_hold = 0, stats_clean = 0, check_clean = 0, c1, c2;
    double stats_hold_min = 1e300, check_hold_min = 1e300;
    for (int i = 0; i < g_reps; i++) {
        double a = max_hold_ms(h, [&] { check_rc(shr_heap_stats(h, &st), "shr_heap_stats"); }, &c1);
        double b = max_hold_ms(h, [&] { check_rc(shr_heap_check(h), "shr_heap_check"); }, &c2);
        stats_hold = std::max(stats_hold, a);
        check_hold = std::max(check_hold, b);
        stats_hold_min = std::min(stats_hold_min, a);
        check_hold_min = std::min(check_hold_min, b);
        stats_clean = std::max(stats_clean, c1);
        check_clean = std::max(check_clean, c2);
    }
    std::vector<double> att, clo, fresh, fresh_close, fresh_check;
    double fresh_stats_hold = 0, fresh_check_hold = 0, fresh_stats_clean = 0, fresh_check_clean = 0;
    double fresh_stats_faults = 0, fresh_check_faults = 0, fresh_stats_hold_min = 1e300, fresh_check_hold_min = 1e300;
    for (int i = 0; i < g_reps; i++) {
        Results8 r = attach_close();
        att.push_back(r.v[0]);
        clo.push_back(r.v[1]);
        Results8 f = in_child([](double *v) {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            shr_alloc_stats_t s;
            int rc = 0;
            uint64_t t0 = now_ns();
            v[2] = max_hold_ms(hh, [&] { rc = shr_heap_stats(hh, &s); }, &v[3]);
            v[4] = double(g_hold.max_faults);
            v[0] = ms_since(t0);
            t0 = now_ns();
            shr_heap_close(hh);      // unmaps what the stats faulted in
            v[1] = ms_since(t0);
            return rc == 0 ? 0 : 3;
        });
        fresh.push_back(f.v[0]);
        fresh_close.push_back(f.v[1]);
        fresh_stats_hold = std::max(fresh_stats_hold, f.v[2]);
        fresh_stats_hold_min = std::min(fresh_stats_hold_min, f.v[2]);
        fresh_stats_clean = std::max(fresh_stats_clean, f.v[3]);
        fresh_stats_faults = std::max(fresh_stats_faults, f.v[4]);
        // check from a fresh process (the sharena tool's case): its holds
        Results8 c = in_child([](double *v) {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            int rc = 0;
            uint64_t t0 = now_ns();
            v[1] = max_hold_ms(hh, [&] { rc = shr_heap_check(hh); }, &v[2]);
            v[3] = double(g_hold.max_faults);
            v[0] = ms_since(t0);
            shr_heap_close(hh);
            return rc == 0 ? 0 : 3;
        });
        fresh_check.push_back(c.v[0]);
        fresh_check_hold = std::max(fresh_check_hold, c.v[1]);
        fresh_check_hold_min = std::min(fresh_check_hold_min, c.v[1]);
        fresh_check_clean = std::max(fresh_check_clean, c.v[2]);
        fresh_check_faults = std::max(fresh_check_faults, c.v[3]);
    }
    // Lock holds seen from outside: one probe phase per walk, and as many
    // idle phases of the same length. A lock held for T shows up as a wait of
    // nearly T in every walk's phase; the machine's own hiccups (this host
    // is shared) do not, so the figure is the smallest of the per-phase
    // worst latencies (g_reps phases each).
    Probe *pr = shared_new<Probe>();
    pid_t pp = probe_start(pr);
    double walk_ms = std::max(check_ms, stats_ms);
    int ph = 0;
    std::vector<int> idle_ph, stats_ph, check_ph;
    for (int i = 0; i < g_reps; i++) {
        probe_phase(pr, ++ph);
        idle_ph.push_back(ph);
        usleep(useconds_t(std::max(2000.0, walk_ms * 1000 + 1000)));
        probe_phase(pr, ++ph);
        stats_ph.push_back(ph);
        check_rc(shr_heap_stats(h, &st), "shr_heap_stats");
        usleep(1000);
        probe_phase(pr, ++ph);
        check_ph.push_back(ph);
        check_rc(shr_heap_check(h), "shr_heap_check");
        usleep(1000);
    }
    pr->phase.store(-1);
    if (!reap(pp)) die("the prober failed");
    auto min_of_max = [&](const std::vector<int> &phs) {
        double m = 1e300;
        for (int k : phs) m = std::min(m, pr->max_us[k] / 1e3);
        return m;
    };
    double idle_max = min_of_max(idle_ph), stats_max = min_of_max(stats_ph), check_max = min_of_max(check_ph);
    uint64_t probes = 0, preempted = 0;
    for (int k = 1; k <= ph; k++) {
        probes += pr->n[k];
        preempted += pr->preempted[k];
    }
    shared_delete(pr);
    shr_heap_info_t info;
    check_rc(shr_heap_stat(h, &info, nullptr, 0, nullptr), "shr_heap_stat");
    jraw("    {\"live_mib\": %.3f, \"committed_mib\": %.3f, \"arenas\": %llu, \"pair_ns\": %.3f, "
         "\"check_ms\": %.6f, \"stats_ms\": %.6f, \"attach_ms\": %.6f, \"close_ms\": %.6f, "
         "\"fresh_stats_ms\": %.6f, \"fresh_close_ms\": %.6f, \"slowpath_idle_max_ms\": %.6f, \"slowpath_during_stats_max_ms\": %.6f, "
         "\"slowpath_during_check_max_ms\": %.6f, \"slowpath_samples\": %llu, \"slowpath_preempted_samples\": %llu, "
         "\"stats_hold_ms\": %.6f, \"check_hold_ms\": %.6f, \"fresh_stats_hold_ms\": %.6f, "
         "\"fresh_check_ms\": %.6f, \"fresh_check_hold_ms\": %.6f, \"stats_hold_clean_ms\": %.6f, "
         "\"check_hold_clean_ms\": %.6f, \"fresh_stats_hold_clean_ms\": %.6f, \"fresh_check_hold_clean_ms\": %.6f, "
         "\"fresh_stats_hold_faults\": %.0f, \"fresh_check_hold_faults\": %.0f, \"stats_hold_recurring_ms\": %.6f, "
         "\"check_hold_recurring_ms\": %.6f, \"fresh_stats_hold_recurring_ms\": %.6f, "
         "\"fresh_check_hold_recurring_ms\": %.6f}%s\n",
         live_mib, double(info.committed) / 1048576.0, (unsigned long long)st.arenas, pns, check_ms,
         stats_ms, median(att), median(clo), median(fresh), median(fresh_close), idle_max, stats_max, check_max,
         (unsigned long long)probes, (unsigned long long)preempted, stats_hold, check_hold, fresh_stats_hold,
         median(fresh_check), fresh_check_hold, stats_clean, check_clean, fresh_stats_clean, fresh_check_clean,
         fresh_stats_faults, fresh_check_faults, stats_hold_min, check_hold_min, fresh_stats_hold_min,
         fresh_check_hold_min, last ? "" : ",");
    progress("heap %.0f MiB live: pair %.1f ns, check %.2f ms, stats %.2f ms, attach %.3f ms, "
             "fresh stats %.2f ms, fresh check %.2f ms; longest lock hold: stats %.3f ms, check %.3f ms, "
             "fresh stats %.3f ms, fresh check %.3f ms (recurring: %.3f / %.3f / %.3f / %.3f ms; "
             "never preempted: %.3f / %.3f / %.3f / %.3f ms; "
             "faults in the longest fresh holds %.0f / %.0f); slow path worst %.2f ms idle / %.2f during stats / "
             "%.2f during check, less their waits for a CPU (%llu of %llu samples waited > 50 us for one)",
             live_mib, pns, check_ms, stats_ms, median(att), median(fresh), median(fresh_check), stats_hold,
             check_hold, fresh_stats_hold, fresh_check_hold, stats_hold_min, check_hold_min, fresh_stats_hold_min,
             fresh_check_hold_min, stats_clean, check_clean, fresh_stats_clean,
             fresh_check_clean, fresh_stats_faults, fresh_check_faults, idle_max, stats_max, check_max,
             (unsigned long long)preempted, (unsigned long long)(probes + preempted));
}

// A peer that attaches, takes a thread slot and some pools (one block of each
// small class and a few medium ones), says so, and waits to be killed.
pid_t dying_peer(std::atomic<int> *ready) {
    return spawn([ready] {
        shr_heap_t *h = nullptr;
        if (shr_heap_attach(g_name.c_str(), &h) != 0) return 3;
        for (size_t n = 16; n <= 4096; n += 16) {
            void *p = shr_malloc(h, n);
            asm volatile("" : : "g"(p) : "memory");
        }
        ready->fetch_add(1);
        for (;;) pause();
    });
}

// Attach after n peers died; v: attach ms of a fresh process.
double attach_after_dead(int n) {
    std::atomic<int> *ready = shared_new<std::atomic<int>>();
    std::vector<pid_t> pids;
    for (int i = 0; i < n; i++) pids.push_back(dying_peer(ready));
    while (ready->load() < n) usleep(200);
    for (pid_t p : pids) kill(p, SIGKILL);
    for (pid_t p : pids) waitpid(p, nullptr, 0);
    shared_delete(ready);
    // Let the kernel's part of the deaths settle (freeing 32 address spaces
    // competes for the CPUs for a few ms): what is measured is an attach to
    // a heap with n dead entries, for every n after the same pause.
    usleep(50000);
    return attach_close().v[0];
}

void dead_section(double heap_mib, bool last) {
    static const int kDead[] = {0, 1, 2, 4, 8, 16, 32};
    // The target's two points (0 and 32 dead) get at least 7 measurements
    // each, taken in turn (0, 32, 0, 32, ...) so that both meet the same
    // load: an attach waits for its anchor thread to start, and on a loaded
    // machine that wait is now and then a scheduler tick (4 ms), with or
    // without dead.
    std::vector<double> m0, m32;
    for (int i = 0; i < std::max(g_reps, 7); i++) {
        m0.push_back(attach_after_dead(0));
        m32.push_back(attach_after_dead(32));
    }
    for (int n : kDead) {
        double ms = n == 0 ? median(m0) : n == 32 ? median(m32) : attach_after_dead(n);
        jraw("    {\"heap_mib\": %.0f, \"dead\": %d, \"attach_ms\": %.6f}%s\n", heap_mib, n, ms,
             last && n == 32 ? "" : ",");
        progress("heap %.0f MiB: attach after %d dead peers %.3f ms", heap_mib, n, ms);
    }
}

shr_heap_t *make_heap(const char *kind, size_t capacity) {
    char buf[96];
    snprintf(buf, sizeof buf, "%sgrowth_%d_%s", getenv("SHB_SHM_PREFIX") ? getenv("SHB_SHM_PREFIX") : "shb_",
             int(getpid()), kind);
    g_name = buf;
    shr_heap_unlink(g_name.c_str());
    shr_heap_options_t o;
    shr_heap_options_init(&o);
    o.capacity = capacity;
    shr_heap_t *h = nullptr;
    check_rc(shr_heap_create(g_name.c_str(), &o, &h), "shr_heap_create");
    return h;
}
void drop_heap(shr_heap_t *h) {
    shr_heap_close(h);
    shr_heap_unlink(g_name.c_str());
}

bool g_measure_heap = true;

void heap_sweep(int max_mib, bool dead) {
    size_t cap = (size_t(max_mib) << 20) * 2 + (size_t(256) << 20);
    shr_heap_t *h = make_heap("heap", cap);
    std::vector<double> steps;
    for (double m = 1; m < max_mib; m *= 4) steps.push_back(m);
    steps.push_back(max_mib);
    Sizes sz;
    uint64_t live = 0;
    jraw("  \"heap\": [\n");
    for (size_t i = 0; i < steps.size(); i++) {
        uint64_t target = uint64_t(steps[i] * 1048576.0);
        while (live < target) {
            uint32_t n = sz.next();
            auto *p = static_cast<unsigned char *>(shr_malloc(h, n));
            if (!p) die("heap full at %.1f MiB", double(live) / 1048576.0);
            p[0] = 1;
            live += n;
        }
        if (g_measure_heap) heap_step(h, double(live) / 1048576.0, i + 1 == steps.size());
    }
    jraw("  ],\n  \"dead\": [\n");
    if (!dead) {
        jraw("  ],\n");
        drop_heap(h);
        return;
    }
    dead_section(max_mib, false);
    drop_heap(h);
    h = make_heap("dead16", size_t(256) << 20);
    live = 0;
    while (live < (uint64_t(16) << 20)) {
        uint32_t n = sz.next();
        if (!shr_malloc(h, n)) die("heap full");
        live += n;
    }
    dead_section(16, true);
    drop_heap(h);
    jraw("  ],\n");
}

// ---- attached processes -------------------------------------------------------------------

void procs_section() {
    shr_heap_t *h = make_heap("procs", size_t(256) << 20);
    static const int kProcs[] = {1, 10, 25, 50, 100};
    int gate[2];
    if (pipe(gate) != 0) die("pipe");
    std::atomic<int> *ready = shared_new<std::atomic<int>>();
    std::vector<pid_t> pids;
    jraw("  \"procs\": [\n");
    for (size_t k = 0; k < sizeof kProcs / sizeof kProcs[0]; k++) {
        int n = kProcs[k];
        while (int(pids.size()) < n - 1) {      // this process counts as one
            pids.push_back(spawn([&] {
                close(gate[1]);
                shr_heap_t *hh = nullptr;
                if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
                void *p = shr_malloc(hh, 64);   // holds a thread slot
                ready->fetch_add(1);
                char c;
                while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
                }
                shr_free(hh, p);
                shr_heap_close(hh);
                return 0;
            }));
        }
        while (ready->load() < n - 1) usleep(500);
        std::vector<double> att, clo;
        for (int i = 0; i < g_reps; i++) {
            Results8 r = attach_close();
            att.push_back(r.v[0]);
            clo.push_back(r.v[1]);
        }
        double pns = pair_ns(h);
        jraw("    {\"procs\": %d, \"attach_ms\": %.6f, \"close_ms\": %.6f, \"pair_ns\": %.3f}%s\n", n,
             median(att), median(clo), pns, k + 1 < sizeof kProcs / sizeof kProcs[0] ? "," : "");
        progress("%d processes attached: attach %.3f ms, close %.3f ms, pair %.1f ns", n, median(att),
                 median(clo), pns);
    }
    close(gate[1]);
    close(gate[0]);
    for (pid_t p : pids) reap(p);
    shared_delete(ready);
    drop_heap(h);
    jraw("  ],\n");
}

// ---- outstanding references --------------------------------------------------------------------

// References to distinct objects (a lease table keeps one entry per object
// with a count): a list of max_refs strings, reference i taken on item i.
int g_lease_items = 1;

void leases_section(int max_refs) {
    shr_heap_t *h = make_heap("leases", size_t(2) << 30);
    g_lease_items = max_refs;
    shr_list_t *l = nullptr;
    check_rc(shr_list_create(h, "leases", nullptr, 0, &l), "shr_list_create");
    char buf[32];
    for (int i = 0; i < max_refs; i++) {
        snprintf(buf, sizeof buf, "lease-item-%07d", i);   // 18 bytes
        shr_value_t v = shr_strn(buf, strlen(buf));
        check_rc(shr_list_append(l, &v), "shr_list_append");
    }
    jraw("  \"leases\": [\n");
    bool first = true;
    for (int n = 1; n <= max_refs; n *= 10) {
        // v[0] stats with n held, v[1] stats with 1 held after the peak,
        // v[2] close with 1 held after the peak, v[3] leases reported at peak
        Results8 a = in_child([n](double *v) {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            shr_list_t *ll = nullptr;
            if (shr_list_attach(hh, "leases", &ll) != 0) return 3;
            auto *held = static_cast<shr_value_t *>(
                mmap(nullptr, size_t(n) * sizeof(shr_value_t), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
            double before = in_use_mib(hh);
            for (int i = 0; i < n; i++)
                if (shr_list_get(ll, i % g_lease_items, &held[i]) != 0) return 4;
            v[4] = in_use_mib(hh) - before;   // the lease table at its peak
            shr_lease_stats_t gs;
            v[0] = med_of(g_reps, [&] {
                uint64_t t0 = now_ns();
                shr_lease_stats(hh, &gs);
                return ms_since(t0);
            });
            v[3] = double(gs.leases);
            v[6] = double(gs.table_entries);
            for (int i = 1; i < n; i++) shr_value_release(hh, &held[i]);
            v[5] = in_use_mib(hh) - before;   // what it keeps with 1 held
            v[1] = med_of(g_reps, [&] {
                uint64_t t0 = now_ns();
                shr_lease_stats(hh, &gs);
                return ms_since(t0);
            });
            v[7] = double(gs.table_entries);
            uint64_t t0 = now_ns();
            shr_list_close(ll);
            shr_heap_close(hh);   // releases the one still held
            v[2] = ms_since(t0);
            return 0;
        });
        // v[0] close with 1 held after taking and releasing the n
        // references one at a time: the same objects touched (their pages
        // mapped in this process, which the close's munmap tears down), the
        // lease table never above one entry. What a close after the peak is
        // compared with: the difference is the peak's.
        Results8 t = in_child([n](double *v) {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            shr_list_t *ll = nullptr;
            if (shr_list_attach(hh, "leases", &ll) != 0) return 3;
            shr_value_t x;
            for (int i = 1; i < n; i++) {
                if (shr_list_get(ll, i % g_lease_items, &x) != 0) return 4;
                shr_value_release(hh, &x);
            }
            if (shr_list_get(ll, 0, &x) != 0) return 4;
            uint64_t t0 = now_ns();
            shr_list_close(ll);
            shr_heap_close(hh);   // releases the one still held
            v[0] = ms_since(t0);
            return 0;
        });
        // v[0] close with n held
        Results8 b = in_child([n](double *v) {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            shr_list_t *ll = nullptr;
            if (shr_list_attach(hh, "leases", &ll) != 0) return 3;
            shr_value_t x;
            for (int i = 0; i < n; i++)
                if (shr_list_get(ll, i % g_lease_items, &x) != 0) return 4;
            uint64_t t0 = now_ns();
            shr_list_close(ll);
            shr_heap_close(hh);
            v[0] = ms_since(t0);
            return 0;
        });
        // A process that dies holding n: its references released by recover.
        std::atomic<int> *ready = shared_new<std::atomic<int>>();
        pid_t victim = spawn([n, ready] {
            shr_heap_t *hh = nullptr;
            if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
            shr_list_t *ll = nullptr;
            if (shr_list_attach(hh, "leases", &ll) != 0) return 3;
            shr_value_t x;
            for (int i = 0; i < n; i++)
                if (shr_list_get(ll, i % g_lease_items, &x) != 0) return 4;
            ready->store(1);
            for (;;) pause();
        });
        while (!ready->load()) usleep(200);
        kill(victim, SIGKILL);
        waitpid(victim, nullptr, 0);
        shared_delete(ready);
        uint64_t t0 = now_ns();
        int rec = shr_heap_recover(h);
        double recover_ms = ms_since(t0);
        if (rec < 0) die("shr_heap_recover: %s", shr_strerror(rec));
        jraw("%s    {\"refs\": %d, \"leases_seen\": %.0f, \"stats_held_ms\": %.6f, \"stats_after_peak_ms\": %.6f, "
             "\"close_after_peak_ms\": %.6f, \"close_touched_ms\": %.6f, \"close_held_ms\": %.6f, "
             "\"recover_dead_ms\": %.6f, "
             "\"table_mib_held\": %.6f, \"table_mib_after_peak\": %.6f, \"table_entries_held\": %.0f, "
             "\"table_entries_after_peak\": %.0f}",
             first ? "" : ",\n", n, a.v[3], a.v[0], a.v[1], a.v[2], t.v[0], b.v[0], recover_ms, a.v[4], a.v[5],
             a.v[6], a.v[7]);
        first = false;
        progress("%d references: lease stats %.3f ms held, %.3f ms after the peak; close %.3f ms after "
                 "the peak, %.3f ms after touching as many one at a time, %.3f ms held; recover after death %.3f ms",
                 n, a.v[0], a.v[1], a.v[2], t.v[0], b.v[0], recover_ms);
    }
    jraw("\n  ],\n");
    shr_list_close(l);
    drop_heap(h);
}

// ---- the list ---------------------------------------------------------------------------------

void list_section(int max_len) {
    shr_heap_t *h = make_heap("list", size_t(4) << 30);
    jraw("  \"list\": [\n");
    bool first = true;
    char buf[32];
    for (int n = 1000; n <= max_len; n *= 10) {
        char lname[32];
        snprintf(lname, sizeof lname, "list%d", n);
        double base_mib = in_use_mib(h);
        shr_list_t *l = nullptr;
        check_rc(shr_list_create(h, lname, nullptr, 0, &l), "shr_list_create");
        for (int i = 0; i < n; i++) {
            snprintf(buf, sizeof buf, "item-%011d", i);   // 16 bytes
            shr_value_t v = shr_strn(buf, 16);
            check_rc(shr_list_append(l, &v), "shr_list_append");
        }
        shr_value_t absent = shr_strn("not-in-the-list!", 16);
        snprintf(buf, sizeof buf, "item-%011d", n - 1);
        shr_value_t lastv = shr_strn(buf, 16);
        size_t out = 0;
        double count_ms = med_of(g_reps, [&] {
            uint64_t t0 = now_ns();
            check_rc(shr_list_count(l, &absent, &out), "shr_list_count");
            return ms_since(t0);
        });
        double index_ms = med_of(g_reps, [&] {
            uint64_t t0 = now_ns();
            check_rc(shr_list_index(l, &lastv, &out), "shr_list_index");
            return ms_since(t0);
        });
        shr_value_t x = shr_strn("inserted-at-zero", 16);
        std::vector<double> ins, pop;
        for (int i = 0; i < 5 * g_reps; i++) {
            uint64_t t0 = now_ns();
            check_rc(shr_list_insert(l, 0, &x), "shr_list_insert");
            ins.push_back(double(now_ns() - t0) / 1e3);
            t0 = now_ns();
            check_rc(shr_list_pop(l, 0, nullptr), "shr_list_pop");
            pop.push_back(double(now_ns() - t0) / 1e3);
        }
        double repr_ms = med_of(g_reps, [&] {
            uint64_t t0 = now_ns();
            char *r = shr_list_repr(l);
            double ms = ms_since(t0);
            if (!r) die("shr_list_repr failed");
            free(r);
            return ms;
        });
        // The writer's wait while another process counts (largest list).
        double w_alone = 0, w_busy = 0, w_busy_med = 0, w_gap = 0, w_gap_med = 0;
        int counts_run = 0, counts_gap = 0;
        if (n * 10 > max_len) {
            auto writer = [&](std::atomic<int> *stop) {
                std::vector<double> w;
                shr_value_t iv = shr_int(7);
                uint64_t t_end = now_ns() + 300000000ull;
                while (stop ? !stop->load() : now_ns() < t_end) {
                    uint64_t t0 = now_ns();
                    check_rc(shr_list_set(l, n / 2, &iv), "shr_list_set");
                    w.push_back(double(now_ns() - t0) / 1e6);
                    usleep(100);
                }
                return w;
            };
            std::vector<double> alone = writer(nullptr);
            w_alone = *std::max_element(alone.begin(), alone.end());
            // Another process counts for 400 ms, back to back (gap 0) or with
            // a pause of 0.2 ms between counts; the writer sets meanwhile.
            struct Ctl { std::atomic<int> ready{0}, go{0}, done{0}, runs{0}; };
            for (int gap_us : {0, 200}) {
                Ctl *c = shared_new<Ctl>();
                pid_t counter = spawn([c, lname, absent, gap_us] {
                    shr_heap_t *hh = nullptr;
                    if (shr_heap_attach(g_name.c_str(), &hh) != 0) return 3;
                    shr_list_t *ll = nullptr;
                    if (shr_list_attach(hh, lname, &ll) != 0) return 3;
                    c->ready.store(1);
                    while (!c->go.load()) usleep(50);
                    size_t k;
                    uint64_t end = now_ns() + 400000000ull;
                    while (now_ns() < end) {
                        shr_list_count(ll, &absent, &k);
                        c->runs.fetch_add(1);
                        if (gap_us) usleep(useconds_t(gap_us));
                    }
                    c->done.store(1);
                    shr_list_close(ll);
                    shr_heap_close(hh);
                    return 0;
                });
                while (!c->ready.load()) usleep(100);
                c->go.store(1);
                std::vector<double> busy = writer(&c->done);
                reap(counter);
                if (gap_us == 0) {
                    counts_run = c->runs.load();
                    w_busy = busy.empty() ? 0 : *std::max_element(busy.begin(), busy.end());
                    w_busy_med = median(busy);
                } else {
                    counts_gap = c->runs.load();
                    w_gap = busy.empty() ? 0 : *std::max_element(busy.begin(), busy.end());
                    w_gap_med = median(busy);
                }
                shared_delete(c);
            }
        }
        // Memory the list keeps once emptied (largest list only): in-use
        // bytes of the heap with the list full, then after popping every item.
        double full_mib = -1, empty_mib = -1;
        if (n * 10 > max_len) {
            full_mib = in_use_mib(h) - base_mib;
            for (int i = 0; i < n; i++) check_rc(shr_list_pop(l, -1, nullptr), "shr_list_pop");
            empty_mib = in_use_mib(h) - base_mib;
        }
        jraw("%s    {\"len\": %d, \"count_ms\": %.6f, \"index_ms\": %.6f, \"insert0_us\": %.3f, "
             "\"pop0_us\": %.3f, \"repr_ms\": %.6f",
             first ? "" : ",\n", n, count_ms, index_ms, median(ins), median(pop), repr_ms);
        if (counts_run)
            jraw(", \"in_use_mib_full\": %.6f, \"in_use_mib_after_pop_all\": %.6f", full_mib, empty_mib);
        if (counts_run)
            jraw(", \"writer_alone_max_ms\": %.6f, \"writer_during_count_max_ms\": %.6f, "
                 "\"writer_during_count_median_ms\": %.6f, \"counts_during\": %d, "
                 "\"writer_during_spaced_count_max_ms\": %.6f, \"writer_during_spaced_count_median_ms\": %.6f, "
                 "\"spaced_counts_during\": %d",
                 w_alone, w_busy, w_busy_med, counts_run, w_gap, w_gap_med, counts_gap);
        jraw("}");
        first = false;
        progress("list of %d strings: count %.2f ms, index %.2f ms, insert(0) %.2f us, pop(0) %.2f us, "
                 "repr %.2f ms%s",
                 n, count_ms, index_ms, median(ins), median(pop), repr_ms,
                 counts_run ? "; writer's worst wait during count measured" : "");
        if (counts_run)
            progress("  writer's worst wait: %.3f ms alone, %.3f ms while another process counts back to back "
                     "(%d counts), %.3f ms with 0.2 ms between counts (%d counts)",
                     w_alone, w_busy, counts_run, w_gap, counts_gap);
        shr_list_close(l);
        shr_list_unlink(h, lname);
    }
    jraw("\n  ]\n");
    drop_heap(h);
}

void cleanup_on_signal(int sig) {
    if (!g_name.empty()) shr_heap_unlink(g_name.c_str());
    signal(sig, SIG_DFL);
    raise(sig);
}

}  // namespace

// The interposed mutex calls (see "lock holds, measured from inside").
extern "C" {
int pthread_mutex_trylock(pthread_mutex_t *m) {
    static auto f = real_fn<int (*)(pthread_mutex_t *)>("pthread_mutex_trylock");
    int rc = f(m);
    hold_begin(m, rc);
    return rc;
}
int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *ts) {
    static auto f = real_fn<int (*)(pthread_mutex_t *, const struct timespec *)>("pthread_mutex_timedlock");
    int rc = f(m, ts);
    hold_begin(m, rc);
    return rc;
}
int pthread_mutex_lock(pthread_mutex_t *m) {
    static auto f = real_fn<int (*)(pthread_mutex_t *)>("pthread_mutex_lock");
    int rc = f(m);
    hold_begin(m, rc);
    return rc;
}
int pthread_mutex_unlock(pthread_mutex_t *m) {
    static auto f = real_fn<int (*)(pthread_mutex_t *)>("pthread_mutex_unlock");
    hold_end(m);
    return f(m);
}
}

int main(int argc, char **argv) {
    const char *out_path = nullptr;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--out=", 6) == 0) out_path = argv[i] + 6;
        else {
            fprintf(stderr, "usage: bench_growth [--out=FILE]   (knobs: SHB_GROWTH_MAX_MIB, "
                            "SHB_GROWTH_REPS, SHB_GROWTH_MAX_LIST)\n");
            return 64;
        }
    }
    g_t0 = now_ns();
    g_reps = std::min(env_int("SHB_GROWTH_REPS", 3), (kMaxPhases - 1) / 3);
    int max_mib = env_int("SHB_GROWTH_MAX_MIB", 2048);
    int max_list = env_int("SHB_GROWTH_MAX_LIST", 1000000);
    int max_refs = env_int("SHB_GROWTH_MAX_REFS", 1000000);
    signal(SIGINT, cleanup_on_signal);
    signal(SIGTERM, cleanup_on_signal);
    signal(SIGHUP, cleanup_on_signal);
    jraw("{\n  \"reps\": %d, \"max_mib\": %d, \"max_list\": %d, \"max_refs\": %d,\n", g_reps, max_mib,
         max_list, max_refs);
    // SHB_GROWTH_SECTIONS: a comma list of heap, dead, procs, leases, list
    // (default all; the heap is filled for dead whether heap is measured or
    // not). The report expects all of them.
    const char *sec = getenv("SHB_GROWTH_SECTIONS");
    auto want = [sec](const char *name) { return !sec || !*sec || strstr(sec, name) != nullptr; };
    g_measure_heap = want("heap");
    if (want("heap") || want("dead")) heap_sweep(max_mib, want("dead"));
    else jraw("  \"heap\": [],\n  \"dead\": [],\n");
    if (want("procs")) procs_section();
    else jraw("  \"procs\": [],\n");
    if (want("leases")) leases_section(max_refs);
    else jraw("  \"leases\": [],\n");
    if (want("list")) list_section(max_list);
    else jraw("  \"list\": []\n");
    jraw("  , \"elapsed_s\": %.1f\n}\n", double(now_ns() - g_t0) / 1e9);
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) die("cannot write %s", out_path);
    fputs(g_json.c_str(), f);
    if (f != stdout) fclose(f);
    return 0;
}
