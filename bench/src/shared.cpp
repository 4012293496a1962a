// The shared-memory heaps: sharena and Boost.Interprocess. Compiled once,
// linked into every binary; see hooks.hpp.
#include <sharena.h>

#include "backend_boost.hpp"
#include "backend_sharena.hpp"
#include "count.hpp"
#include "gb.hpp"
#include "hooks.hpp"
#include "memory.hpp"

namespace shb {

std::string sharena_describe() {
    char buf[64];
    snprintf(buf, sizeof buf, "sharena %d.%d.%d (in-tree, static)", SHR_VERSION_MAJOR,
             SHR_VERSION_MINOR, SHR_VERSION_PATCH);
    return buf;
}

void shared_register(SharedSet set) {
    if (set == SharedSet::kNone) return;
    if (set == SharedSet::kCheck) {
        register_all<SharenaEnv>(kSetCheck);
        return;
    }
    register_all<SharenaEnv>(kSetAll);
    register_all<BoostRbtreeEnv>(kSetAll);
    register_all<BoostNodeEnv>(kSetAll);
    register_procs_control();
}

// ---- memory -------------------------------------------------------------------------

namespace {

struct BoostProbe {
    static constexpr const char *kCommitted = "st_blocks of /dev/shm/NAME";
    static constexpr const char *kAlt = "segment size - get_free_memory()";
    static constexpr const char *kRelease = "none (Boost has no call that returns pages)";
    const BoostSegment &seg;
    uint64_t committed() { return shm_file_bytes(seg.name()); }
    uint64_t alt() { return seg.seg()->get_size() - seg.seg()->get_free_memory(); }
    void release() {}
};

struct SharenaProbe {
    static constexpr const char *kCommitted = "shr_heap_stats().committed";
    static constexpr const char *kAlt = "st_blocks of /dev/shm/NAME";
    static constexpr const char *kRelease = "shr_heap_collect()";
    SharenaEnv &env;
    uint64_t committed() {
        shr_alloc_stats_t s;
        return shr_heap_stats(env.heap(), &s) == 0 ? s.committed : 0;
    }
    uint64_t alt() { return shm_file_bytes(env.name()); }
    void release() { shr_heap_collect(env.heap()); }
};

template <class Env> void memory_sharena(FILE *out, bool &first) {
    MemScenario sc[2];
    {
        Env env;
        auto b = env.local();
        SharenaProbe p{env};
        mem_batch(b, p, &sc[0]);
    }
    {
        Env env;
        auto b = env.local();
        SharenaProbe p{env};
        mem_fragment(b, p, &sc[1]);
    }
    mem_print_json<SharenaProbe>(out, Env::kName, sc, 2, first);
}

template <class Env> void memory_boost(FILE *out, bool &first) {
    MemScenario sc[2];
    {
        Env env;
        auto b = env.local();
        BoostProbe p{env.segment()};
        mem_batch(b, p, &sc[0]);
    }
    {
        Env env;
        auto b = env.local();
        BoostProbe p{env.segment()};
        mem_fragment(b, p, &sc[1]);
    }
    mem_print_json<BoostProbe>(out, Env::kName, sc, 2, first);
}

}  // namespace

void shared_memory(FILE *out, bool &first) {
    memory_sharena<SharenaEnv>(out, first);
    memory_boost<BoostRbtreeEnv>(out, first);
    memory_boost<BoostNodeEnv>(out, first);
}

void shared_count() {
    count_all<SharenaEnv>();
    count_all<BoostRbtreeEnv>();
    count_all<BoostNodeEnv>();
}

}  // namespace shb
