// The request patterns every allocator replays: generated once per process
// from fixed seeds, so every allocator and every binary sees the same sizes in
// the same order. Generated with mmap-backed storage in memory mode (see
// memory.cpp), otherwise with std::vector before any timing starts.
#ifndef SHB_PATTERNS_HPP
#define SHB_PATTERNS_HPP

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shb {

// ---- batch ------------------------------------------------------------------
// 10,000 sizes uniform in 8..512 and a random permutation for the frees
// (Fisher-Yates), both from seed kBatchSeed.
constexpr size_t kBatchCount = 10000;
constexpr size_t kBatchMin = 8, kBatchMax = 512;
constexpr uint64_t kBatchSeed = 0x5EED0001;

struct BatchPattern {
    uint32_t size[kBatchCount];
    uint32_t perm[kBatchCount];
    uint64_t total_bytes;       // sum of size[]
};
const BatchPattern &batch_pattern();

// ---- CPython-shaped trace ------------------------------------------------------
// 100,000 allocations with sizes drawn from an approximation of CPython 3.11's
// object sizes (table in patterns.cpp and bench/README.md) and lifetimes that
// are mostly very short; every block is freed by the end, so the trace has
// 200,000 operations.
constexpr size_t kTraceAllocs = 100000;
constexpr uint64_t kTraceSeed = 0x5EED0002;

struct TraceOp {
    uint32_t slot;              // index into the replayer's block table
    uint32_t size;              // bytes requested (also passed to free)
    uint32_t is_free;           // 0 = allocate into slot, 1 = free slot
};

struct TracePattern {
    std::vector<TraceOp> ops;
    uint32_t slots;             // block table size the replayer needs
    uint32_t peak_live;         // most blocks live at once
};
const TracePattern &trace_pattern();

// One row of the size table, for the README and the report.
struct TraceClass {
    const char *what;
    uint32_t lo, hi;            // size range in bytes (uniform inside)
    uint32_t weight;            // per mille of allocations
};
extern const TraceClass kTraceClasses[];
extern const size_t kTraceClassCount;

// ---- fragmenting workload (memory mode) ------------------------------------------
// Phase A: 200,000 blocks of 16..96 bytes. Then every other block is freed.
// Phase B: 20,000 blocks of 128..1024 bytes, which cannot reuse A's holes in
// a size-class allocator and fit none of them in a best-fit one.
constexpr size_t kFragA = 200000, kFragAMin = 16, kFragAMax = 96;
constexpr size_t kFragB = 20000, kFragBMin = 128, kFragBMax = 1024;
constexpr uint64_t kFragSeed = 0x5EED0003;

}  // namespace shb

#endif
