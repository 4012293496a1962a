// The process allocator of this binary as a benchmark backend. Exactly one of
// SHB_PROC_GLIBC, SHB_PROC_JEMALLOC, SHB_PROC_TCMALLOC, SHB_PROC_MIMALLOC is
// defined (bench/CMakeLists.txt builds one binary per allocator):
//
//   glibc     malloc/free, nothing linked
//   jemalloc  malloc/free with -ljemalloc: Debian's jemalloc has no je_ prefix
//             and replaces malloc for the whole process
//   tcmalloc  malloc/free with -ltcmalloc_minimal: replaces malloc likewise
//   mimalloc  mi_malloc/mi_free (libmimalloc.so also exports malloc, so it is
//             the process allocator too)
//
// Only the per-binary translation units include this header.
#ifndef SHB_BACKEND_PROC_HPP
#define SHB_BACKEND_PROC_HPP

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#if defined(SHB_PROC_JEMALLOC)
#include <jemalloc/jemalloc.h>
#elif defined(SHB_PROC_TCMALLOC)
#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#elif defined(SHB_PROC_MIMALLOC)
#include <mimalloc.h>
#elif defined(SHB_PROC_GLIBC)
#include <malloc.h>
#else
#error "define one of SHB_PROC_GLIBC, SHB_PROC_JEMALLOC, SHB_PROC_TCMALLOC, SHB_PROC_MIMALLOC"
#endif

namespace shb {

struct ProcEnv {
#if defined(SHB_PROC_JEMALLOC)
    static constexpr const char *kName = "jemalloc";
#elif defined(SHB_PROC_TCMALLOC)
    static constexpr const char *kName = "tcmalloc";
#elif defined(SHB_PROC_MIMALLOC)
    static constexpr const char *kName = "mimalloc";
#else
    static constexpr const char *kName = "glibc";
#endif
    static constexpr bool kShared = false;   // workers are threads of this process
    static constexpr bool kRealloc = true;
    static constexpr bool kSlowReplay = false;  // pytrace/: as many replays as min_time asks

    struct Backend {
#if defined(SHB_PROC_MIMALLOC)
        void *alloc(size_t n) { return mi_malloc(n); }
        void free(void *p, size_t) { mi_free(p); }
        void *realloc(void *p, size_t, size_t n) { return mi_realloc(p, n); }
#else
        void *alloc(size_t n) { return ::malloc(n); }
        void free(void *p, size_t) { ::free(p); }
        void *realloc(void *p, size_t, size_t n) { return ::realloc(p, n); }
#endif
        template <size_t N> void *alloc_n() { return alloc(N); }
        template <size_t N> void free_n(void *p) { free(p, N); }
        uint64_t off(void *p) const { return uint64_t(uintptr_t(p)); }
        void *ptr(uint64_t o) const { return reinterpret_cast<void *>(uintptr_t(o)); }
    };

    Backend local() { return Backend{}; }
    Backend attach() { return Backend{}; }
};

}  // namespace shb

#endif
