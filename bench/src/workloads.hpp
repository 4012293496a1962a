// The workloads, written once against the backend interface:
//
//   void *alloc(size_t n);            void free(void *p, size_t n);
//   void *realloc(void *p, size_t old_n, size_t n);
//   template <size_t N> void *alloc_n();   template <size_t N> void free_n(void *p);
//   uint64_t off(void *p);            void *ptr(uint64_t off);   (0 <-> NULL)
//
// and against an environment (SharenaEnv, BoostRbtreeEnv, BoostNodeEnv,
// ProcEnv) that makes the heap and hands out backends: local() for the
// creating process, attach() for a worker. kShared says whether workers are
// forked processes (the shared heaps) or threads (process allocators).
//
// These functions are used by the Google Benchmark registrations (gb.hpp),
// the callgrind driver (count mode) and memory mode alike, so all three
// measure the same code.
#ifndef SHB_WORKLOADS_HPP
#define SHB_WORKLOADS_HPP

#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "common.hpp"
#include "patterns.hpp"

namespace shb {

// ---- the single-thread loops ----------------------------------------------------

// One malloc+free pair of N bytes, iters times. The first byte is written so
// that the block is really handed out.
template <size_t N, class B> inline void pair_loop(B &b, uint64_t iters) {
    for (uint64_t i = 0; i < iters; i++) {
        auto *p = static_cast<unsigned char *>(b.template alloc_n<N>());
        p[0] = static_cast<unsigned char>(i);
        escape(p);
        b.template free_n<N>(p);
    }
}

// One batch round: allocate the 10,000 pattern sizes (writing the first
// byte), then free them in the pattern's random order. 20,000 operations.
template <class B> inline void batch_alloc(B &b, void **ptrs) {
    const BatchPattern &pat = batch_pattern();
    for (size_t i = 0; i < kBatchCount; i++) {
        auto *p = static_cast<unsigned char *>(b.alloc(pat.size[i]));
        p[0] = 1;
        ptrs[i] = p;
    }
    escape(ptrs);
}
template <class B> inline void batch_free(B &b, void **ptrs) {
    const BatchPattern &pat = batch_pattern();
    for (size_t i = 0; i < kBatchCount; i++) {
        uint32_t j = pat.perm[i];
        b.free(ptrs[j], pat.size[j]);
    }
}
template <class B> inline void batch_round(B &b, void **ptrs) {
    batch_alloc(b, ptrs);
    batch_free(b, ptrs);
}

// Replay the CPython-shaped trace once: 200,000 operations.
template <class B> inline void trace_replay(B &b, void **slots) {
    const TracePattern &t = trace_pattern();
    for (const TraceOp &op : t.ops) {
        if (op.is_free) {
            b.free(slots[op.slot], op.size);
        } else {
            auto *p = static_cast<unsigned char *>(b.alloc(op.size));
            p[0] = 1;
            slots[op.slot] = p;
        }
    }
    escape(slots);
}

// Realloc growth by doubling, 16 B -> 64 KiB: one malloc, 12 reallocs, one
// free. The first and last byte are written at every size.
constexpr size_t kReallocFrom = 16, kReallocTo = 64 * 1024;
template <class B> inline void realloc_growth(B &b) {
    size_t n = kReallocFrom;
    auto *p = static_cast<unsigned char *>(b.alloc(n));
    p[0] = 1;
    while (n < kReallocTo) {
        size_t m = n * 2;
        p = static_cast<unsigned char *>(b.realloc(p, n, m));
        p[m - 1] = 1;
        n = m;
    }
    escape(p);
    b.free(p, n);
}

// ---- shared memory for harness state ---------------------------------------------------

// A T in anonymous MAP_SHARED memory: visible to forked workers and threads.
template <class T> T *shared_new() {
    void *m = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap of %zu bytes failed", sizeof(T));
    return new (m) T();
}
template <class T> void shared_delete(T *p) {
    p->~T();
    munmap(p, sizeof(T));
}

// Runs bodies as forked processes (shared heaps) or threads (process
// allocators) and waits for them. A forked body ends with _exit: no
// destructor of the parent's objects runs in the child, no stdio buffer is
// flushed twice.
class Workers {
public:
    explicit Workers(bool processes) : procs_(processes) {}
    ~Workers() { join(); }
    template <class F> void spawn(F &&body) {
        if (procs_) {
            fflush(nullptr);
            pid_t parent = getpid();
            pid_t pid = fork();
            if (pid < 0) die("fork failed");
            if (pid == 0) {
                // A worker never outlives the benchmark that spins it.
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent) _exit(1);
                body();
                _exit(0);
            }
            pids_.push_back(pid);
        } else {
            threads_.emplace_back(std::forward<F>(body));
        }
    }
    // Error path: end worker processes now; threads cannot be killed, so
    // they are left to themselves.
    void kill() {
        for (pid_t p : pids_) ::kill(p, SIGKILL);
        join_procs();
        for (auto &t : threads_) t.detach();
        threads_.clear();
    }
    // 0 when every worker ended normally.
    int join() {
        int bad = join_procs();
        for (auto &t : threads_) t.join();
        threads_.clear();
        return bad;
    }

private:
    int join_procs() {
        int bad = 0;
        for (pid_t p : pids_) {
            int st = 0;
            if (waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
        }
        pids_.clear();
        return bad;
    }

    bool procs_;
    std::vector<pid_t> pids_;
    std::vector<std::thread> threads_;
};

// Waits that depend on another worker give up after this long: a worker
// that died must fail the benchmark, not hang it.
constexpr uint64_t kWaitLimitNs = 10ull * 1000 * 1000 * 1000;

// Pin the calling thread to one CPU (counted from the last one, so that
// worker 0 shares the CPU of the pinned single-worker runs). A no-op on
// failure: pinning only reduces noise.
inline void pin_to_cpu_from_last(int k) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 1) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(int((n - 1 - k % n + n) % n), &set);
    sched_setaffinity(0, sizeof set, &set);
}

inline void spin_wait_step(unsigned &spins) {
    if (++spins < 1000) cpu_relax();
    else { spins = 0; sched_yield(); }
}

// ---- N workers on one heap, each running the pair loop -----------------------------------

constexpr int kMaxWorkers = 8;

struct WindowControl {
    alignas(64) std::atomic<int> ready{0};
    alignas(64) std::atomic<int> phase{0};   // window number, set by the driver to open it
    alignas(64) std::atomic<int> stop{0};    // set to the window number to close it
    alignas(64) std::atomic<int> done{0};
    std::atomic<int> quit{0};
    alignas(64) double ns_per_pair[kMaxWorkers];       // wall clock
    double cpu_ns_per_pair[kMaxWorkers];                  // the worker's CPU time
};

// The worker side: pairs of kSmallPair bytes in chunks of 256 until the
// window closes, then report ns per pair for that window, by the wall clock
// and by the worker's own CPU time (the two differ by the time other
// processes of this shared machine took the worker's CPU).
template <class B> void window_worker(B &b, WindowControl *c, int w) {
    pin_to_cpu_from_last(w);
    pair_loop<kSmallPair>(b, 20000);               // warm: own pools, caches
    c->ready.fetch_add(1);
    int seen = 0;
    for (;;) {
        unsigned spins = 0;
        int ph;
        while ((ph = c->phase.load(std::memory_order_acquire)) == seen) {
            if (c->quit.load(std::memory_order_relaxed)) return;
            spin_wait_step(spins);
        }
        seen = ph;
        uint64_t n = 0, t0 = now_ns(), c0 = thread_cpu_ns();
        do {
            pair_loop<kSmallPair>(b, 256);
            n += 256;
        } while (c->stop.load(std::memory_order_relaxed) != ph);
        c->cpu_ns_per_pair[w] = double(thread_cpu_ns() - c0) / double(n);
        c->ns_per_pair[w] = double(now_ns() - t0) / double(n);
        c->done.fetch_add(1, std::memory_order_release);
    }
}

// ---- producer and consumer ------------------------------------------------------------------

// A single-producer single-consumer ring of offsets in shared memory. Head
// and tail are published every kPublish entries (and whenever a side would
// wait), so the ring's own cache traffic stays small next to the allocator's.
struct Ring {
    static constexpr uint64_t kSize = 1024, kPublish = 16;
    struct Entry {
        uint64_t off;       // 0 = end of stream
        uint32_t size;
        uint32_t seq;       // also written into the block: checked by the consumer
    };
    alignas(64) std::atomic<uint64_t> head{0};
    alignas(64) std::atomic<uint64_t> tail{0};
    alignas(64) std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> consumed{0};
    alignas(64) Entry e[kSize];
};

class RingProducer {
public:
    explicit RingProducer(Ring *r) : r_(r) {}
    // false when the consumer stopped taking entries for kWaitLimitNs.
    bool push(const Ring::Entry &x) {
        if (h_ - tail_ == Ring::kSize) {
            r_->head.store(h_, std::memory_order_release);
            unsigned spins = 0;
            uint64_t t0 = 0;
            while (h_ - (tail_ = r_->tail.load(std::memory_order_acquire)) == Ring::kSize) {
                spin_wait_step(spins);
                if (spins == 0) {
                    uint64_t t = now_ns();
                    if (!t0) t0 = t;
                    else if (t - t0 > kWaitLimitNs) return false;
                }
            }
        }
        r_->e[h_ % Ring::kSize] = x;
        if (++h_ % Ring::kPublish == 0) r_->head.store(h_, std::memory_order_release);
        return true;
    }
    void flush() { r_->head.store(h_, std::memory_order_release); }

private:
    Ring *r_;
    uint64_t h_ = 0, tail_ = 0;
};

// The consumer: take entries, check the block's sequence word, free it.
template <class B> void ring_consumer(B &b, Ring *r) {
    pin_to_cpu_from_last(1);                       // the producer runs on the last CPU
    uint64_t t = 0, head = 0, errors = 0;
    for (;;) {
        if (t == head) {
            r->tail.store(t, std::memory_order_release);
            unsigned spins = 0;
            while ((head = r->head.load(std::memory_order_acquire)) == t) spin_wait_step(spins);
        }
        Ring::Entry x = r->e[t % Ring::kSize];
        t++;
        if (x.off == 0) break;
        void *q = b.ptr(x.off);
        if (!q || *static_cast<uint32_t *>(q) != x.seq) errors++;
        else b.free(q, x.size);
        if (t % Ring::kPublish == 0) r->tail.store(t, std::memory_order_release);
    }
    r->errors.store(errors);
    r->consumed.store(t - 1);
    r->tail.store(t, std::memory_order_release);
}

}  // namespace shb

#endif
