// Shared helpers of the benchmark harness: clocks, compiler barriers, the
// deterministic random generator, shm names that are cleaned up even when a
// run is interrupted, and the few constants every workload agrees on.
//
// Nothing here allocates through the process allocator on a measured path.
#ifndef SHB_COMMON_HPP
#define SHB_COMMON_HPP

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace shb {

// ---- constants -----------------------------------------------------------

// The small pair sizes of the main table.
constexpr size_t kPairSizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096};
// The pair size used by the multi-process and producer/consumer workloads.
constexpr size_t kSmallPair = 64;
// Boost.Interprocess segments: sparse in tmpfs, pages cost only when touched.
constexpr size_t kBoostSegmentBytes = size_t(256) << 20;

// ---- time and barriers ----------------------------------------------------

inline uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// CPU time of the calling thread: unlike the wall clock, it does not count
// the time other processes held the CPU.
inline uint64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// Make p escape: the compiler must assume it is read, so an alloc/free pair
// cannot be deleted (GCC removes unused malloc/free pairs).
inline void escape(void *p) { asm volatile("" : : "g"(p) : "memory"); }

inline void cpu_relax() { __builtin_ia32_pause(); }

// ---- deterministic randomness ---------------------------------------------

// xorshift64*: the same sequence on every machine and in every binary.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed ? seed : 0x9E3779B97F4A7C15ull) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    // Uniform in [lo, hi] (the modulo bias is irrelevant at these ranges).
    uint64_t range(uint64_t lo, uint64_t hi) { return lo + next() % (hi - lo + 1); }
    double unit() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
};

// ---- shm names --------------------------------------------------------------

// A fresh shm object name, unique in this run: $SHB_SHM_PREFIX (set by
// bench/run.sh, so that its trap can remove leftovers) or "shb_<pid>_", then
// the kind and a counter. No leading slash.
std::string unique_shm_name(const char *kind);

// Names registered here are removed (unlink of /dev/shm/NAME) at exit and on
// SIGINT, SIGTERM and SIGHUP, before the signal's default action runs.
void cleanup_register(const std::string &name);
void cleanup_unregister(const std::string &name);
void cleanup_install();

// Fatal error: print and exit(2) (the exit handler removes shm objects).
[[noreturn]] void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace shb

#endif
