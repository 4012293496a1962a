// Count mode: fixed iteration counts for callgrind, one measured region per
// workload. Each region zeroes callgrind's counters, turns collection on,
// runs, turns it off and dumps with a label "<benchmark name> ops=<count>",
// which bench/report.py divides by. Outside valgrind the client requests are
// no-ops and the mode just runs.
#ifndef SHB_COUNT_HPP
#define SHB_COUNT_HPP

#include <valgrind/callgrind.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "pytrace.hpp"
#include "workloads.hpp"

namespace shb {

constexpr uint64_t kCountPairs = 20000;     // pairs per size
constexpr int kCountBatchRounds = 3;        // 60,000 ops
constexpr int kCountTraceReplays = 1;       // 200,000 ops

template <class F> void count_region(const std::string &name, uint64_t ops, F &&fn) {
    char label[160];
    snprintf(label, sizeof label, "%s ops=%llu", name.c_str(), (unsigned long long)ops);
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    fn();
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(label);
}

template <class B, size_t N> void count_pair(B &b, const std::string &alloc) {
    pair_loop<N>(b, 2000);
    count_region("pair/" + alloc + "/" + std::to_string(N), kCountPairs,
                 [&] { pair_loop<N>(b, kCountPairs); });
}
template <class B, size_t... I> void count_pairs(B &b, const std::string &alloc, std::index_sequence<I...>) {
    (count_pair<B, kPairSizes[I]>(b, alloc), ...);
}

// kPytrace: also count one replay of the CPython trace (left out for Boost's
// rbtree heap, whose replay alone would take minutes under callgrind).
template <class Env, bool kPytrace = Env::kRealloc> void count_all() {
    Env env;
    auto b = env.local();
    const std::string a = Env::kName;
    count_pairs(b, a, std::make_index_sequence<std::size(kPairSizes)>());

    std::vector<void *> ptrs(kBatchCount);
    batch_round(b, ptrs.data());
    count_region("batch/" + a, uint64_t(kCountBatchRounds) * 2 * kBatchCount, [&] {
        for (int r = 0; r < kCountBatchRounds; r++) batch_round(b, ptrs.data());
    });

    const TracePattern &t = trace_pattern();
    std::vector<void *> slots(t.slots);
    trace_replay(b, slots.data());
    count_region("trace/" + a, uint64_t(kCountTraceReplays) * t.ops.size(), [&] {
        for (int r = 0; r < kCountTraceReplays; r++) trace_replay(b, slots.data());
    });

    // The CPython trace: one replay, counted, after the other workloads have
    // warmed the heap (a warm-up replay would double the time under
    // callgrind for a difference in the first-touch paths only).
    if constexpr (kPytrace) {
        if (pytrace_configured() && pytrace().ok) {
            const PyTrace &pt = pytrace();
            std::vector<void *> ps(pt.slots);
            count_region("pytrace/" + a, pt.nops, [&] { pytrace_replay(b, ps.data()); });
        }
    }
}

}  // namespace shb

#endif
