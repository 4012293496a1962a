// The shared-memory heaps: sharena and Boost.Interprocess. Compiled once,
// linked into every binary; see hooks.hpp.
#include <dlfcn.h>
#include <sharena.h>

#include "backend_boost.hpp"
#include "backend_sharena.hpp"
#include "count.hpp"
#include "gb.hpp"
#include "hooks.hpp"
#include "memory.hpp"

namespace shb {

// Which file serves shr_malloc: libsharena.so.N, or this binary (static).
std::string sharena_describe() {
    Dl_info info;
    std::string from = "?";
    if (dladdr(reinterpret_cast<void *>(&shr_malloc), &info) && info.dli_fname) {
        from = info.dli_fname;
        size_t slash = from.rfind('/');
        if (slash != std::string::npos) from = from.substr(slash + 1);
    }
    char buf[160];
    snprintf(buf, sizeof buf, "sharena %d.%d.%d (in-tree, as %s, from %s)", SHR_VERSION_MAJOR,
             SHR_VERSION_MINOR, SHR_VERSION_PATCH, SharenaEnv::kName, from.c_str());
    return buf;
}

void shared_register(SharedSet set) {
    if (set == SharedSet::kNone) return;
    if (set == SharedSet::kCheck) {
        register_all<SharenaEnv>(kSetCheck);
        return;
    }
    if (set == SharedSet::kSharena) {
        register_all<SharenaEnv>(kSetAll);
        return;
    }
    register_all<SharenaEnv>(kSetAll);
    register_all<Sharena16kEnv>(kSetAll);
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
    MemScenario sc[3];
    const bool py = pytrace_usable();
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
    if (py) {
        Env env;
        auto b = env.local();
        SharenaProbe p{env};
        mem_pytrace(b, p, &sc[2]);
    }
    mem_print_json<SharenaProbe>(out, Env::kName, sc, py ? 3 : 2, first);
}

template <class Env> void memory_boost(FILE *out, bool &first) {
    MemScenario sc[3];
    const bool py = Env::kRealloc && pytrace_usable();
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
    if (py) {
        Env env;
        auto b = env.local();
        BoostProbe p{env.segment()};
        mem_pytrace(b, p, &sc[2]);
    }
    mem_print_json<BoostProbe>(out, Env::kName, sc, py ? 3 : 2, first);
}

}  // namespace

void shared_memory(FILE *out, bool &first, SharedSet set) {
    memory_sharena<SharenaEnv>(out, first);
    if (set != SharedSet::kAll) return;
    memory_sharena<Sharena16kEnv>(out, first);
    memory_boost<BoostRbtreeEnv>(out, first);
    memory_boost<BoostNodeEnv>(out, first);
}

void shared_count(SharedSet set) {
    count_all<SharenaEnv>();
    if (set != SharedSet::kAll) return;
    count_all<Sharena16kEnv>();
    count_all<BoostRbtreeEnv, false>();
    count_all<BoostNodeEnv>();
}

}  // namespace shb
