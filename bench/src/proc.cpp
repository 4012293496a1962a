// The process allocator of this binary (SHB_PROC_<ALLOCATOR>): its
// benchmarks, its memory probe and its instruction counts. Compiled once per
// binary; see hooks.hpp and backend_proc.hpp.
#include <dlfcn.h>
#include <gnu/libc-version.h>

#include "backend_proc.hpp"
#include "count.hpp"
#include "gb.hpp"
#include "hooks.hpp"
#include "memory.hpp"

namespace shb {

const char *proc_name() { return ProcEnv::kName; }

namespace {

// The shared object that serves malloc in this process.
std::string malloc_provider() {
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (!f || !dladdr(f, &info) || !info.dli_fname) return "?";
    std::string s = info.dli_fname;
    size_t slash = s.rfind('/');
    return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string version() {
    char buf[128];
#if defined(SHB_PROC_JEMALLOC)
    const char *v = nullptr;
    size_t len = sizeof v;
    if (mallctl("version", &v, &len, nullptr, 0) != 0) die("jemalloc is not active (mallctl failed)");
    snprintf(buf, sizeof buf, "jemalloc %s", v);
#elif defined(SHB_PROC_TCMALLOC)
    snprintf(buf, sizeof buf, "tcmalloc (%s)", tc_version(nullptr, nullptr, nullptr));
#elif defined(SHB_PROC_MIMALLOC)
    int v = mi_version();
    snprintf(buf, sizeof buf, "mimalloc %d.%d.%d", v / 100, (v / 10) % 10, v % 10);
#else
    snprintf(buf, sizeof buf, "glibc %s", gnu_get_libc_version());
#endif
    return buf;
}

// ---- memory probe ----------------------------------------------------------------------

struct ProcProbe {
#if defined(SHB_PROC_JEMALLOC)
    static constexpr const char *kCommitted = "mallctl stats.resident";
    static constexpr const char *kAlt = "RssAnon of the process";
    static constexpr const char *kRelease = "thread.tcache.flush + arena.<all>.purge";
    uint64_t committed() {
        uint64_t epoch = 1;
        size_t sz = sizeof epoch;
        mallctl("epoch", &epoch, &sz, &epoch, sz);
        size_t v = 0;
        sz = sizeof v;
        mallctl("stats.resident", &v, &sz, nullptr, 0);
        return v;
    }
    uint64_t alt() { return rss_anon_bytes(); }
    void release() {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "arena.%u.purge", unsigned(MALLCTL_ARENAS_ALL));
        mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
        mallctl(cmd, nullptr, nullptr, nullptr, 0);
    }
#elif defined(SHB_PROC_TCMALLOC)
    static constexpr const char *kCommitted = "generic.heap_size - tcmalloc.pageheap_unmapped_bytes";
    static constexpr const char *kAlt = "RssAnon of the process";
    static constexpr const char *kRelease = "MallocExtension_ReleaseFreeMemory()";
    uint64_t committed() {
        size_t heap = 0, unmapped = 0;
        MallocExtension_GetNumericProperty("generic.heap_size", &heap);
        MallocExtension_GetNumericProperty("tcmalloc.pageheap_unmapped_bytes", &unmapped);
        return heap - unmapped;
    }
    uint64_t alt() { return rss_anon_bytes(); }
    void release() { MallocExtension_ReleaseFreeMemory(); }
#elif defined(SHB_PROC_MIMALLOC)
    // mi_process_info()'s current_commit does not move in Debian's release
    // build (its statistics are compiled out), so RSS is the only figure.
    static constexpr const char *kCommitted = "RssAnon of the process";
    static constexpr const char *kAlt = "none (mimalloc's statistics are compiled out of this build)";
    static constexpr const char *kRelease = "mi_collect(true)";
    uint64_t committed() { return rss_anon_bytes(); }
    uint64_t alt() { return 0; }
    void release() { mi_collect(true); }
#else
    static constexpr const char *kCommitted = "RssAnon of the process";
    static constexpr const char *kAlt = "mallinfo2() arena + hblkhd";
    static constexpr const char *kRelease = "malloc_trim(0)";
    uint64_t committed() { return rss_anon_bytes(); }
    uint64_t alt() {
        struct mallinfo2 mi = mallinfo2();
        return mi.arena + mi.hblkhd;
    }
    void release() { malloc_trim(0); }
#endif
};

// Each scenario runs in a forked child, so both start from the same, nearly
// untouched allocator state.
template <class F> void in_child(F &&fn) {
    Workers ws(true);
    ws.spawn(std::forward<F>(fn));
    if (ws.join() != 0) die("memory scenario failed");
}

}  // namespace

std::string proc_describe() { return version() + ", malloc from " + malloc_provider(); }

void proc_register() { register_all<ProcEnv>(kSetAll); }

void proc_memory(FILE *out, bool &first) {
    struct Results { MemScenario sc[3]; };
    const bool py = pytrace_usable();
    Results *r = shared_new<Results>();
    in_child([r] {
        ProcEnv env;
        auto b = env.local();
        ProcProbe p;
        mem_batch(b, p, &r->sc[0]);
    });
    in_child([r] {
        ProcEnv env;
        auto b = env.local();
        ProcProbe p;
        mem_fragment(b, p, &r->sc[1]);
    });
    if (py)
        in_child([r] {
            ProcEnv env;
            auto b = env.local();
            ProcProbe p;
            mem_pytrace(b, p, &r->sc[2]);
        });
    mem_print_json<ProcProbe>(out, ProcEnv::kName, r->sc, py ? 3 : 2, first);
    shared_delete(r);
}

void proc_count() { count_all<ProcEnv>(); }

}  // namespace shb
