// Generation of the batch and trace patterns; see patterns.hpp.
#include "patterns.hpp"

#include <algorithm>
#include <queue>

#include "common.hpp"

namespace shb {

const BatchPattern &batch_pattern() {
    // Static storage: no heap allocation, so memory mode can use it freely.
    static BatchPattern p;
    static bool made = false;
    if (!made) {
        Rng r(kBatchSeed);
        p.total_bytes = 0;
        for (size_t i = 0; i < kBatchCount; i++) {
            p.size[i] = uint32_t(r.range(kBatchMin, kBatchMax));
            p.total_bytes += p.size[i];
            p.perm[i] = uint32_t(i);
        }
        for (size_t i = kBatchCount - 1; i > 0; i--)
            std::swap(p.perm[i], p.perm[r.next() % (i + 1)]);
        made = true;
    }
    return p;
}

// Approximate allocation mix of a CPython 3.11 program (64-bit). Sizes are
// the bytes CPython asks its object allocator for, which is what
// sys.getsizeof() reports for these objects (GC header included for tuples,
// lists, dicts, methods...); checked with sys.getsizeof on the installed
// CPython 3.11.7. Containers appear twice: the object and its separately
// allocated item array or key table. The weights are an assumption, not a
// measurement: short-lived ints, floats, tuples, strings and bound methods
// dominate, as in typical interpreter workloads. See bench/README.md.
const TraceClass kTraceClasses[] = {
    {"int, 1 digit (28)", 28, 28, 170},
    {"int, 2 digits (32)", 32, 32, 50},
    {"float (24)", 24, 24, 90},
    {"complex (32)", 32, 32, 5},
    {"tuple of 1 (40+8n)", 48, 48, 50},
    {"tuple of 2", 56, 56, 80},
    {"tuple of 3", 64, 64, 40},
    {"tuple of 4..6", 72, 88, 20},
    {"str, ASCII, 1..16 chars (49+n)", 50, 65, 100},
    {"str, ASCII, 17..64 chars", 66, 113, 50},
    {"str, ASCII, 65..400 chars", 114, 449, 10},
    {"bytes, 1..64 (33+n)", 34, 97, 20},
    {"bound method (48)", 48, 48, 60},
    {"iterator (48)", 48, 48, 40},
    {"list object (56)", 56, 56, 30},
    {"list item array (8 x 4..32)", 32, 256, 30},
    {"dict object (64)", 64, 64, 25},
    {"dict keys, small table (120)", 120, 120, 25},
    {"instance of a class (56)", 56, 56, 20},
    {"slice (56)", 56, 56, 10},
    {"function (152)", 152, 152, 5},
    {"generator (200)", 200, 200, 10},
    {"other objects, 200..512", 200, 512, 10},
    {"set (216)", 216, 216, 5},
};
const size_t kTraceClassCount = sizeof kTraceClasses / sizeof kTraceClasses[0];

namespace {

uint32_t trace_size(Rng &r) {
    uint32_t total = 0;
    for (auto &c : kTraceClasses) total += c.weight;
    uint32_t x = uint32_t(r.next() % total);
    for (auto &c : kTraceClasses) {
        if (x < c.weight) {
            uint32_t n = uint32_t(r.range(c.lo, c.hi));
            // Item arrays come in powers of two times 8 bytes.
            if (c.lo == 32 && c.hi == 256) n = 32u << (r.next() % 4);
            return n;
        }
        x -= c.weight;
    }
    return 32;
}

// Lifetime in allocations: 75% die within a few (temporaries), 20% live
// a few hundred, 5% until the end (module-level data).
uint64_t trace_lifetime(Rng &r) {
    double u = r.unit();
    if (u < 0.75) return 1 + r.next() % 8;
    if (u < 0.95) return 1 + r.next() % 400;
    return UINT64_MAX;
}

}  // namespace

const TracePattern &trace_pattern() {
    static TracePattern t;
    if (!t.ops.empty()) return t;
    Rng r(kTraceSeed);
    struct Death {
        uint64_t when;
        uint32_t slot, size;
        bool operator>(const Death &o) const { return when > o.when; }
    };
    std::priority_queue<Death, std::vector<Death>, std::greater<Death>> dying;
    std::vector<Death> forever;
    std::vector<uint32_t> free_slots;
    uint32_t nslots = 0, live = 0, peak = 0;
    t.ops.reserve(2 * kTraceAllocs);
    auto kill = [&](const Death &d) {
        t.ops.push_back({d.slot, d.size, 1});
        free_slots.push_back(d.slot);
        live--;
    };
    for (uint64_t now = 0; now < kTraceAllocs; now++) {
        while (!dying.empty() && dying.top().when <= now) {
            kill(dying.top());
            dying.pop();
        }
        uint32_t slot;
        if (free_slots.empty()) slot = nslots++;
        else { slot = free_slots.back(); free_slots.pop_back(); }
        uint32_t size = trace_size(r);
        t.ops.push_back({slot, size, 0});
        peak = std::max(peak, ++live);
        uint64_t life = trace_lifetime(r);
        if (life == UINT64_MAX) forever.push_back({0, slot, size});
        else dying.push({now + life, slot, size});
    }
    while (!dying.empty()) { kill(dying.top()); dying.pop(); }
    for (auto &d : forever) kill(d);            // teardown, in allocation order
    t.slots = nslots;
    t.peak_live = peak;
    return t;
}

}  // namespace shb
