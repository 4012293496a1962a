// Google Benchmark functions for every workload, templated on the
// environment (see workloads.hpp), and the helpers that register them under
// the names the report reads:
//
//   pair/<alloc>/<size>   ns per malloc+free pair
//   batch/<alloc>         ns per op (20,000 ops per round); counters
//                         alloc_ns, free_ns: ns per op of each half
//   trace/<alloc>         ns per op (200,000 ops per replay)
//   pytrace/<alloc>       ns per op of the CPython trace (pytrace.hpp), when
//                         $SHB_PYTRACE names one
//   realloc/<alloc>       ns per 16 B -> 64 KiB doubling growth
//   prodcons/<alloc>      ns per block allocated by the producer and freed by
//                         the consumer (processes for shared heaps, threads
//                         for process allocators)
//   procs/<alloc>/<n>     ns per pair per worker, n workers on one heap
//
// Every benchmark sets the counter `ops` (operations per iteration); the
// report divides the iteration time by it: Google Benchmark's cpu_time (the
// benchmark thread's CPU time) for the single-thread workloads, real_time
// for prodcons/. procs/ reports `ns_per_op` (wall clock) and `cpu_ns_per_op`
// directly, because its iterations are fixed-length windows.
//
// The single-thread workloads also report what explains a slow figure:
// faults_per_kop (minor + major page faults of the thread per 1000 ops, by
// getrusage) and, for allocators that expose them, arenas_alloc_per_kop and
// arenas_release_per_kop (sharena's cumulative arena counters from
// shr_heap_stats, read before and after the timed loop).
#ifndef SHB_GB_HPP
#define SHB_GB_HPP

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "pytrace.hpp"
#include "workloads.hpp"

namespace shb {

// ---- what explains a slow figure ----------------------------------------------------

inline uint64_t thread_faults() {
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return 0;
    return uint64_t(ru.ru_minflt) + uint64_t(ru.ru_majflt);
}

// Backends with arena counters (sharena) define
// bool arena_counts(uint64_t *allocated, uint64_t *released).
template <class B>
auto arena_counts(B &b, uint64_t *a, uint64_t *r, int) -> decltype(b.arena_counts(a, r)) {
    return b.arena_counts(a, r);
}
template <class B> bool arena_counts(B &, uint64_t *, uint64_t *, long) { return false; }

template <class B> class SlowCounts {
public:
    explicit SlowCounts(B &b) : b_(b) {
        has_arenas_ = arena_counts(b_, &a0_, &r0_, 0);
        f0_ = thread_faults();
    }
    // Call after the timed loop; ops_per_iter as the "ops" counter.
    void report(benchmark::State &st, double ops_per_iter) {
        uint64_t f1 = thread_faults();
        double kops = double(st.iterations()) * ops_per_iter / 1000.0;
        if (kops <= 0) return;
        st.counters["faults_per_kop"] = double(f1 - f0_) / kops;
        uint64_t a1, r1;
        if (has_arenas_ && arena_counts(b_, &a1, &r1, 0)) {
            st.counters["arenas_alloc_per_kop"] = double(a1 - a0_) / kops;
            st.counters["arenas_release_per_kop"] = double(r1 - r0_) / kops;
        }
    }

private:
    B &b_;
    bool has_arenas_;
    uint64_t a0_ = 0, r0_ = 0, f0_ = 0;
};

constexpr benchmark::IterationCount kPairBatch = 256;

inline int window_ms() {
    const char *e = getenv("SHB_WINDOW_MS");
    int v = e ? atoi(e) : 0;
    return v > 0 ? v : 20;
}

template <class Env, size_t N> void bm_pair(benchmark::State &st) {
    Env env;
    auto b = env.local();
    pair_loop<N>(b, 10000);
    SlowCounts<decltype(b)> sc(b);
    while (st.KeepRunningBatch(kPairBatch)) pair_loop<N>(b, uint64_t(kPairBatch));
    sc.report(st, 1);
    st.counters["ops"] = 1;
}

template <class Env> void bm_batch(benchmark::State &st) {
    Env env;
    auto b = env.local();
    std::vector<void *> ptrs(kBatchCount);
    batch_round(b, ptrs.data());
    uint64_t alloc_ns = 0, free_ns = 0;
    SlowCounts<decltype(b)> sc(b);
    for (auto _ : st) {
        uint64_t t0 = now_ns();
        batch_alloc(b, ptrs.data());
        uint64_t t1 = now_ns();
        batch_free(b, ptrs.data());
        free_ns += now_ns() - t1;
        alloc_ns += t1 - t0;
    }
    sc.report(st, 2 * kBatchCount);
    st.counters["ops"] = 2 * kBatchCount;
    st.counters["alloc_ns"] = benchmark::Counter(double(alloc_ns) / kBatchCount,
                                                 benchmark::Counter::kAvgIterations);
    st.counters["free_ns"] = benchmark::Counter(double(free_ns) / kBatchCount,
                                                benchmark::Counter::kAvgIterations);
}

template <class Env> void bm_trace(benchmark::State &st) {
    Env env;
    auto b = env.local();
    const TracePattern &t = trace_pattern();
    std::vector<void *> slots(t.slots);
    trace_replay(b, slots.data());
    SlowCounts<decltype(b)> sc(b);
    for (auto _ : st) trace_replay(b, slots.data());
    sc.report(st, double(t.ops.size()));
    st.counters["ops"] = double(t.ops.size());
}

// The CPython trace: one untimed replay, then replays.
template <class Env> void bm_pytrace(benchmark::State &st) {
    const PyTrace &t = pytrace();
    if (!t.ok) {
        st.SkipWithError("no CPython trace");
        return;
    }
    Env env;
    auto b = env.local();
    std::vector<void *> slots(t.slots);
    pytrace_replay(b, slots.data());
    SlowCounts<decltype(b)> sc(b);
    for (auto _ : st) pytrace_replay(b, slots.data());
    sc.report(st, double(t.nops));
    st.counters["ops"] = double(t.nops);
}

template <class Env> void bm_realloc(benchmark::State &st) {
    Env env;
    auto b = env.local();
    realloc_growth(b);
    SlowCounts<decltype(b)> sc(b);
    for (auto _ : st) realloc_growth(b);
    sc.report(st, 1);
    st.counters["ops"] = 1;
}

// The producer is the benchmark thread; the consumer a forked process that
// attaches the heap by name (shared heaps) or a thread (process allocators).
// Sizes cycle through the batch pattern (8..512 bytes). Producer and
// consumer are pinned to different CPUs.
// Pins the calling thread for the scope, then restores its affinity.
class PinScope {
public:
    explicit PinScope(int k) {
        ok_ = sched_getaffinity(0, sizeof old_, &old_) == 0;
        pin_to_cpu_from_last(k);
    }
    ~PinScope() {
        if (ok_) sched_setaffinity(0, sizeof old_, &old_);
    }

private:
    cpu_set_t old_;
    bool ok_;
};

template <class Env> void bm_prodcons(benchmark::State &st) {
    PinScope pin(0);
    Env env;
    auto b = env.local();
    Ring *r = shared_new<Ring>();
    Workers ws(Env::kShared);
    ws.spawn([&env, r] {
        auto cb = env.attach();
        ring_consumer(cb, r);
    });
    RingProducer prod(r);
    const BatchPattern &pat = batch_pattern();
    uint32_t seq = 0;
    size_t i = 0;
    bool stuck = false;
    for (auto _ : st) {
        uint32_t n = pat.size[i];
        if (++i == kBatchCount) i = 0;
        void *p = b.alloc(n);
        if (!p) {
            st.SkipWithError("allocation failed");
            break;
        }
        *static_cast<uint32_t *>(p) = ++seq;
        if (!prod.push({b.off(p), n, seq})) {
            stuck = true;
            break;
        }
    }
    if (!stuck) stuck = !prod.push({0, 0, 0});
    prod.flush();
    if (stuck) {
        ws.kill();
        st.SkipWithError("the consumer stopped");
        return;             // r stays mapped: a stuck consumer thread may still read it
    }
    if (ws.join() != 0) st.SkipWithError("consumer failed");
    else if (r->errors.load() != 0) st.SkipWithError("consumer saw a wrong block");
    else if (r->consumed.load() != seq) st.SkipWithError("consumer lost blocks");
    shared_delete(r);
    st.counters["ops"] = 1;
}

// n workers (processes on a shared heap, threads for a process allocator),
// each pinned to its own CPU, each running 64-byte pairs. One iteration is
// one window of window_ms() in which all run; ns_per_op is the mean over
// workers of ns per pair by the wall clock, cpu_ns_per_op the same by each
// worker's CPU time.
template <class Env> void bm_procs(benchmark::State &st) {
    const int n = int(st.range(0));
    Env env;
    WindowControl *c = shared_new<WindowControl>();
    Workers ws(Env::kShared);
    for (int w = 0; w < n; w++)
        ws.spawn([&env, c, w] {
            auto b = env.attach();
            window_worker(b, c, w);
        });
    // Wait for a count with a deadline; false if the workers never got there.
    auto await = [&](std::atomic<int> &v) {
        uint64_t t0 = now_ns();
        while (v.load(std::memory_order_acquire) < n) {
            if (now_ns() - t0 > kWaitLimitNs) return false;
            usleep(50);
        }
        return true;
    };
    bool ok = await(c->ready);
    const useconds_t window = useconds_t(window_ms()) * 1000;
    double sum = 0, sum_cpu = 0;
    int k = 0;
    for (auto _ : st) {
        if (!ok) break;
        c->done.store(0);
        c->phase.store(++k, std::memory_order_release);
        usleep(window);
        c->stop.store(k, std::memory_order_relaxed);
        if (!(ok = await(c->done))) break;
        double m = 0, mc = 0;
        for (int w = 0; w < n; w++) {
            m += c->ns_per_pair[w];
            mc += c->cpu_ns_per_pair[w];
        }
        sum += m / n;
        sum_cpu += mc / n;
    }
    c->quit.store(1);
    if (!ok) {
        ws.kill();
        st.SkipWithError("a worker did not answer");
        return;             // c stays mapped for worker threads that may still read it
    }
    if (ws.join() != 0) st.SkipWithError("a worker failed");
    shared_delete(c);
    st.counters["ns_per_op"] = benchmark::Counter(sum, benchmark::Counter::kAvgIterations);
    st.counters["cpu_ns_per_op"] = benchmark::Counter(sum_cpu, benchmark::Counter::kAvgIterations);
    st.counters["ops"] = 1;
}

// The procs/ harness with no allocator at all: each worker only writes a
// byte of its own static buffer per "pair". Its 2-worker/1-worker ratio is
// what this machine gives two busy processes, the floor for any allocator.
struct NoAllocEnv {
    static constexpr const char *kName = "none";
    static constexpr bool kSlowReplay = false;
    static constexpr bool kShared = true;
    static constexpr bool kRealloc = false;
    struct Backend {
        alignas(64) unsigned char buf[64];
        template <size_t N> void *alloc_n() { return buf; }
        template <size_t N> void free_n(void *) {}
    };
    Backend local() { return Backend{}; }
    Backend attach() { return Backend{}; }
};

inline void register_procs_control() {
    benchmark::RegisterBenchmark("procs/none", bm_procs<NoAllocEnv>)
        ->Arg(1)
        ->Arg(2)
        ->Iterations(12)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

// ---- registration -------------------------------------------------------------------

template <class Env, size_t N> void register_pair_size(const char *alloc) {
    benchmark::RegisterBenchmark(("pair/" + std::string(alloc) + "/" + std::to_string(N)).c_str(),
                                 bm_pair<Env, N>)
        ->Unit(benchmark::kNanosecond);
}
template <class Env, size_t... I> void register_pairs(const char *alloc, std::index_sequence<I...>) {
    (register_pair_size<Env, kPairSizes[I]>(alloc), ...);
}

enum WorkloadSet { kSetAll, kSetCheck };

// kSetCheck: only pair/<alloc>/64 and batch/<alloc>, to show that sharena's
// figures do not depend on the process allocator linked next to it.
template <class Env> void register_all(WorkloadSet set) {
    const std::string a = Env::kName;
    if (set == kSetCheck) {
        register_pair_size<Env, kSmallPair>(Env::kName);
        benchmark::RegisterBenchmark(("batch/" + a).c_str(), bm_batch<Env>)->Unit(benchmark::kMicrosecond);
        return;
    }
    register_pairs<Env>(Env::kName, std::make_index_sequence<std::size(kPairSizes)>());
    benchmark::RegisterBenchmark(("batch/" + a).c_str(), bm_batch<Env>)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("trace/" + a).c_str(), bm_trace<Env>)->Unit(benchmark::kMicrosecond);
    if constexpr (Env::kRealloc) {
        benchmark::RegisterBenchmark(("realloc/" + a).c_str(), bm_realloc<Env>)->Unit(benchmark::kNanosecond);
        if (pytrace_configured()) {
            auto *bm = benchmark::RegisterBenchmark(("pytrace/" + a).c_str(), bm_pytrace<Env>)
                           ->Unit(benchmark::kMillisecond);
            // A replay is 3.2 M operations: one per repetition is plenty for
            // the slow heaps (Boost's rbtree takes ~0.7 s per replay).
            if (Env::kSlowReplay) bm->Iterations(1);
        }
    }
    benchmark::RegisterBenchmark(("prodcons/" + a).c_str(), bm_prodcons<Env>)
        ->Unit(benchmark::kNanosecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("procs/" + a).c_str(), bm_procs<Env>)
        ->Arg(1)
        ->Arg(2)
        ->Iterations(12)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

}  // namespace shb

#endif
