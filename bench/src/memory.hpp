// Memory mode: bytes committed against bytes live, for the batch, for a
// fragmenting workload and for the CPython trace (at its peak of live bytes),
// and what comes back once everything is freed (by itself, then after the
// allocator's explicit release call).
//
// A probe tells, for one allocator:
//   uint64_t committed();   memory the allocator holds (its own figure)
//   uint64_t alt();         a second, independent figure (RSS, st_blocks...)
//   void release();         the allocator's "give memory back" call
//   static const char *kCommitted, *kAlt, *kRelease;   what they are
// Every figure is reported as a delta from the probe's value just before the
// scenario starts. Bookkeeping arrays are mmap'ed, never taken from the
// allocator under test.
#ifndef SHB_MEMORY_HPP
#define SHB_MEMORY_HPP

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "pytrace.hpp"
#include "workloads.hpp"

namespace shb {

struct MemPoint {
    char label[32];
    uint64_t live;          // bytes requested and not freed
    int64_t committed;      // delta from the baseline
    int64_t alt;            // delta from the baseline
};

struct MemScenario {
    char name[16];
    int64_t base_committed, base_alt;
    int npoints;
    MemPoint pts[8];
};

// Anonymous mmap, touched, so that RSS baselines already include it.
template <class T> T *scratch_array(size_t n) {
    void *m = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap of scratch failed");
    memset(m, 0, n * sizeof(T));
    return static_cast<T *>(m);
}
template <class T> void scratch_free(T *p, size_t n) { munmap(p, n * sizeof(T)); }

// Resident anonymous memory of this process (RssAnon), read without stdio
// (fopen would allocate from the allocator under test).
inline uint64_t rss_anon_bytes() {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *p = strstr(buf, "RssAnon:");
    return p ? uint64_t(strtoull(p + 8, nullptr, 10)) * 1024 : 0;
}

// Bytes really used by a file in /dev/shm (tmpfs allocates on touch and
// frees punched holes).
inline uint64_t shm_file_bytes(const std::string &name) {
    struct stat sb;
    std::string path = "/dev/shm/" + name;
    return stat(path.c_str(), &sb) == 0 ? uint64_t(sb.st_blocks) * 512 : 0;
}

template <class P> struct MemRecorder {
    P &probe;
    MemScenario *s;
    MemRecorder(P &p, MemScenario *sc, const char *name) : probe(p), s(sc) {
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
        s->base_committed = int64_t(probe.committed());
        s->base_alt = int64_t(probe.alt());
    }
    void point(const char *label, uint64_t live) {
        MemPoint &m = s->pts[s->npoints++];
        snprintf(m.label, sizeof m.label, "%s", label);
        m.live = live;
        m.committed = int64_t(probe.committed()) - s->base_committed;
        m.alt = int64_t(probe.alt()) - s->base_alt;
    }
};

template <class B, class P> void mem_batch(B &b, P &probe, MemScenario *s) {
    void **ptrs = scratch_array<void *>(kBatchCount);
    MemRecorder<P> rec(probe, s, "batch");
    batch_alloc(b, ptrs);
    rec.point("allocated", batch_pattern().total_bytes);
    batch_free(b, ptrs);
    rec.point("freed", 0);
    probe.release();
    rec.point("released", 0);
    scratch_free(ptrs, kBatchCount);
}

template <class B, class P> void mem_fragment(B &b, P &probe, MemScenario *s) {
    void **pa = scratch_array<void *>(kFragA);
    uint32_t *sa = scratch_array<uint32_t>(kFragA);
    void **pb = scratch_array<void *>(kFragB);
    uint32_t *sb = scratch_array<uint32_t>(kFragB);
    Rng r(kFragSeed);
    for (size_t i = 0; i < kFragA; i++) sa[i] = uint32_t(r.range(kFragAMin, kFragAMax));
    for (size_t i = 0; i < kFragB; i++) sb[i] = uint32_t(r.range(kFragBMin, kFragBMax));

    MemRecorder<P> rec(probe, s, "fragment");
    uint64_t live = 0;
    for (size_t i = 0; i < kFragA; i++) {
        pa[i] = b.alloc(sa[i]);
        static_cast<unsigned char *>(pa[i])[0] = 1;
        live += sa[i];
    }
    rec.point("small allocated", live);
    for (size_t i = 1; i < kFragA; i += 2) {
        b.free(pa[i], sa[i]);
        live -= sa[i];
    }
    rec.point("every other freed", live);
    for (size_t i = 0; i < kFragB; i++) {
        pb[i] = b.alloc(sb[i]);
        static_cast<unsigned char *>(pb[i])[0] = 1;
        live += sb[i];
    }
    rec.point("larger allocated", live);
    for (size_t i = 0; i < kFragA; i += 2) b.free(pa[i], sa[i]);
    for (size_t i = 0; i < kFragB; i++) b.free(pb[i], sb[i]);
    rec.point("all freed", 0);
    probe.release();
    rec.point("released", 0);
    scratch_free(pa, kFragA);
    scratch_free(sa, kFragA);
    scratch_free(pb, kFragB);
    scratch_free(sb, kFragB);
}

// The CPython trace replayed up to its peak of live bytes, then to its end
// (every block freed). Needs an allocator with realloc.
template <class B, class P> void mem_pytrace(B &b, P &probe, MemScenario *s) {
    const PyTrace &t = pytrace();       // converted (and resident) before the baseline
    void **slots = scratch_array<void *>(t.slots);
    MemRecorder<P> rec(probe, s, "pytrace");
    pytrace_replay_range(b, slots, 0, t.peak_op);
    rec.point("at peak live", t.peak_live_bytes);
    pytrace_replay_range(b, slots, t.peak_op, t.nops);
    rec.point("all freed", 0);
    probe.release();
    rec.point("released", 0);
    scratch_free(slots, t.slots);
}

inline bool pytrace_usable() { return pytrace_configured() && pytrace().ok; }

// One allocator's memory results as a JSON object.
template <class P>
void mem_print_json(FILE *out, const char *alloc, const MemScenario *sc, int n, bool &first) {
    fprintf(out, "%s  {\"allocator\": \"%s\", \"committed_source\": \"%s\", \"alt_source\": \"%s\",\n",
            first ? "" : ",\n", alloc, P::kCommitted, P::kAlt);
    first = false;
    fprintf(out, "   \"release_call\": \"%s\", \"scenarios\": [\n", P::kRelease);
    for (int i = 0; i < n; i++) {
        const MemScenario &s = sc[i];
        fprintf(out, "    {\"name\": \"%s\", \"base_committed\": %lld, \"base_alt\": %lld, \"points\": [\n",
                s.name, (long long)s.base_committed, (long long)s.base_alt);
        for (int j = 0; j < s.npoints; j++)
            fprintf(out, "      {\"label\": \"%s\", \"live\": %llu, \"committed\": %lld, \"alt\": %lld}%s\n",
                    s.pts[j].label, (unsigned long long)s.pts[j].live, (long long)s.pts[j].committed,
                    (long long)s.pts[j].alt, j + 1 < s.npoints ? "," : "");
        fprintf(out, "    ]}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(out, "  ]}");
}

}  // namespace shb

#endif
