// sharena as a benchmark backend: a fresh heap in its own shm object per
// benchmark run, removed afterwards. Only the public header is used.
// Compiled twice (bench/CMakeLists.txt): against libsharena.so, named
// "sharena", and with SHB_SHARENA_STATIC against libsharena.a, named
// "sharena_static".
#ifndef SHB_BACKEND_SHARENA_HPP
#define SHB_BACKEND_SHARENA_HPP

#include <sharena.h>

#include <string>
#include <utility>

#include "common.hpp"

namespace shb {

struct SharenaEnv {
#ifdef SHB_SHARENA_STATIC
    static constexpr const char *kName = "sharena_static";
#else
    static constexpr const char *kName = "sharena";
#endif
    static constexpr bool kShared = true;    // workers are processes
    static constexpr bool kRealloc = true;
    static constexpr bool kSlowReplay = false;  // pytrace/: as many replays as min_time asks

    // One process's handle on the heap; the attaching kind closes it.
    class Backend {
    public:
        Backend(shr_heap_t *h, bool owned) : h_(h), owned_(owned) {}
        Backend(Backend &&o) noexcept : h_(std::exchange(o.h_, nullptr)), owned_(o.owned_) {}
        Backend(const Backend &) = delete;
        Backend &operator=(const Backend &) = delete;
        ~Backend() {
            if (owned_ && h_) shr_heap_close(h_);
        }
        void *alloc(size_t n) { return shr_malloc(h_, n); }
        void free(void *p, size_t) { shr_free(h_, p); }
        void *realloc(void *p, size_t, size_t n) { return shr_realloc(h_, p, n); }
        template <size_t N> void *alloc_n() { return shr_malloc(h_, N); }
        template <size_t N> void free_n(void *p) { shr_free(h_, p); }
        uint64_t off(void *p) const { return shr_off(h_, p); }
        void *ptr(uint64_t o) const { return shr_ptr(h_, o); }
        shr_heap_t *heap() const { return h_; }
        // Cumulative arenas taken and given back (the slow-path counters
        // shr_heap_stats exposes); read outside timed loops only.
        bool arena_counts(uint64_t *allocated, uint64_t *released) const {
            shr_alloc_stats_t s;
            if (shr_heap_stats(h_, &s) != 0) return false;
            *allocated = s.arenas_allocated;
            *released = s.arenas_released;
            return true;
        }

    private:
        shr_heap_t *h_;
        bool owned_;
    };

    // flags: SHR_HEAP_POOLS_16K for the 16 KiB-pool variant below.
    explicit SharenaEnv(unsigned flags = 0) : name_(unique_shm_name("sharena")) {
        shr_heap_options_t o;
        shr_heap_options_init(&o);
        o.flags |= flags;
        cleanup_register(name_);
        int rc = shr_heap_create(name_.c_str(), &o, &h_);
        if (rc != 0) die("shr_heap_create(%s): %s", name_.c_str(), shr_strerror(rc));
    }
    ~SharenaEnv() {
        shr_heap_close(h_);
        shr_heap_unlink(name_.c_str());
        cleanup_unregister(name_);
    }
    SharenaEnv(const SharenaEnv &) = delete;
    SharenaEnv &operator=(const SharenaEnv &) = delete;

    Backend local() { return Backend(h_, false); }
    // In a forked worker: attach by name, as an unrelated process would.
    Backend attach() {
        shr_heap_t *h = nullptr;
        int rc = shr_heap_attach(name_.c_str(), &h);
        if (rc != 0) die("shr_heap_attach(%s): %s", name_.c_str(), shr_strerror(rc));
        return Backend(h, true);
    }
    const std::string &name() const { return name_; }
    shr_heap_t *heap() const { return h_; }

private:
    std::string name_;
    shr_heap_t *h_ = nullptr;
};

// The same with 16 KiB small pools (SHR_HEAP_POOLS_16K): the heap option
// issue 10 asks to report beside the default.
struct Sharena16kEnv : SharenaEnv {
#ifdef SHB_SHARENA_STATIC
    static constexpr const char *kName = "sharena_static_16k";
#else
    static constexpr const char *kName = "sharena_16k";
#endif
    Sharena16kEnv() : SharenaEnv(SHR_HEAP_POOLS_16K) {}
};

}  // namespace shb

#endif
