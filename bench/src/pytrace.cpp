// Loading and converting the CPython trace; see pytrace.hpp.
#include "pytrace.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shb {

namespace {

enum { K_MALLOC = 1, K_CALLOC = 2, K_REALLOC = 3, K_FREE = 4, K_ALIGNED = 5 };

void *map_anon(size_t bytes) {
    void *m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return m == MAP_FAILED ? nullptr : m;
}

// Address -> slot, open addressing with linear probing and backward-shift
// deletion (no tombstones), in mmap'ed memory.
class AddrMap {
public:
    explicit AddrMap(size_t cap_pow2) : mask_(cap_pow2 - 1) {
        e_ = static_cast<Entry *>(map_anon(cap_pow2 * sizeof(Entry)));
    }
    ~AddrMap() {
        if (e_) munmap(e_, (mask_ + 1) * sizeof(Entry));
    }
    bool ok() const { return e_ != nullptr; }
    // Slot of addr, or -1.
    int64_t find(uint64_t addr) const {
        for (size_t i = hash(addr);; i = (i + 1) & mask_) {
            if (e_[i].addr == 0) return -1;
            if (e_[i].addr == addr) return e_[i].slot;
        }
    }
    void put(uint64_t addr, uint32_t slot) {
        size_t i = hash(addr);
        while (e_[i].addr != 0 && e_[i].addr != addr) i = (i + 1) & mask_;
        e_[i].addr = addr;
        e_[i].slot = slot;
    }
    void erase(uint64_t addr) {
        size_t i = hash(addr);
        while (e_[i].addr != addr) {
            if (e_[i].addr == 0) return;
            i = (i + 1) & mask_;
        }
        // Shift later entries of the run back into the hole.
        for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
            if (e_[j].addr == 0) break;
            size_t h = hash(e_[j].addr);
            // Entry j may move to i if its home h is not in (i, j].
            bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
            if (movable) {
                e_[i] = e_[j];
                i = j;
            }
        }
        e_[i].addr = 0;
    }

private:
    struct Entry {
        uint64_t addr;
        uint32_t slot;
    };
    size_t hash(uint64_t a) const { return size_t((a >> 4) * 0x9E3779B97F4A7C15ull >> 20) & mask_; }
    Entry *e_ = nullptr;
    size_t mask_;
};

bool convert(PyTrace &t, const uint64_t *rec, size_t nrec) {
    t.records = nrec;
    size_t cap = 1;
    while (cap < 2 * nrec + 16) cap <<= 1;
    AddrMap map(cap);
    // Ops: at most one per record, plus the final frees (at most one per
    // record too).
    PyOp *ops = static_cast<PyOp *>(map_anon((2 * nrec + 1) * sizeof(PyOp)));
    uint32_t *free_slots = static_cast<uint32_t *>(map_anon((nrec + 1) * sizeof(uint32_t)));
    uint32_t *slot_size = static_cast<uint32_t *>(map_anon((nrec + 1) * sizeof(uint32_t)));
    uint8_t *slot_live = static_cast<uint8_t *>(map_anon(nrec + 1));
    if (!map.ok() || !ops || !free_slots || !slot_size || !slot_live) return false;
    size_t n = 0, nfree = 0;
    uint32_t slots = 0;
    uint64_t live = 0, live_blocks = 0;
    auto new_slot = [&]() -> uint32_t { return nfree ? free_slots[--nfree] : slots++; };
    auto drop_slot = [&](uint32_t s) {
        live -= slot_size[s];
        live_blocks--;
        slot_live[s] = 0;
        free_slots[nfree++] = s;
    };
    auto note_peak = [&] {
        if (live > t.peak_live_bytes) {
            t.peak_live_bytes = live;
            t.peak_live_blocks = live_blocks;
            t.peak_op = n;
        }
    };
    auto clamp = [](uint64_t sz) { return uint32_t(sz == 0 ? 1 : sz > 0xFFFFFFFFu ? 0xFFFFFFFFu : sz); };
    auto alloc_into = [&](uint64_t addr, uint64_t size) {
        int64_t old = map.find(addr);
        if (old >= 0) {   // a free we never saw: free the old block first
            ops[n++] = {uint32_t(old), slot_size[old], 0, kPyFree};
            drop_slot(uint32_t(old));
            t.dropped_frees++;
        }
        uint32_t s = new_slot();
        uint32_t sz = clamp(size);
        ops[n++] = {s, sz, 0, kPyAlloc};
        slot_size[s] = sz;
        slot_live[s] = 1;
        live += sz;
        live_blocks++;
        map.put(addr, s);
        note_peak();
    };
    for (size_t i = 0; i < nrec; i++) {
        const uint64_t *r = rec + 3 * i;
        unsigned kind = unsigned(r[0] >> 56);
        uint64_t size = r[0] & ((1ull << 56) - 1), ret = r[1], in = r[2];
        switch (kind) {
        case K_MALLOC: t.mallocs++; alloc_into(ret, size); break;
        case K_CALLOC: t.callocs++; alloc_into(ret, size); break;
        case K_ALIGNED: t.aligned++; alloc_into(ret, size); break;
        case K_FREE: {
            t.frees++;
            int64_t s = map.find(ret);
            if (s < 0) { t.dropped_frees++; break; }
            ops[n++] = {uint32_t(s), slot_size[s], 0, kPyFree};
            map.erase(ret);
            drop_slot(uint32_t(s));
            break;
        }
        case K_REALLOC: {
            t.reallocs++;
            int64_t s = in ? map.find(in) : -1;
            if (ret == 0) {                 // realloc(p, 0): p freed
                if (s >= 0) {
                    ops[n++] = {uint32_t(s), slot_size[s], 0, kPyFree};
                    map.erase(in);
                    drop_slot(uint32_t(s));
                }
                break;
            }
            if (s < 0) {                    // realloc(NULL, n) or of a block we never saw
                if (in) t.unknown_reallocs++;
                alloc_into(ret, size);
                break;
            }
            uint32_t sz = clamp(size);
            ops[n++] = {uint32_t(s), sz, slot_size[s], kPyRealloc};
            live += sz;
            live -= slot_size[s];
            slot_size[s] = sz;
            map.erase(in);
            int64_t other = map.find(ret);
            if (other >= 0) {               // the new address was live: a missed free
                ops[n++] = {uint32_t(other), slot_size[other], 0, kPyFree};
                map.erase(ret);
                drop_slot(uint32_t(other));
                t.dropped_frees++;
            }
            map.put(ret, uint32_t(s));
            note_peak();
            break;
        }
        default:
            fprintf(stderr, "sharena-bench: %s: bad record %zu (kind %u)\n", t.path, i, kind);
            return false;
        }
    }
    // Blocks Python never freed: freed at the end of every replay.
    for (uint32_t s = 0; s < slots; s++)
        if (slot_live[s]) {
            ops[n++] = {s, slot_size[s], 0, kPyFree};
            t.final_frees++;
        }
    munmap(free_slots, (nrec + 1) * sizeof(uint32_t));
    munmap(slot_size, (nrec + 1) * sizeof(uint32_t));
    munmap(slot_live, nrec + 1);
    t.ops = ops;
    t.nops = n;
    t.slots = slots;
    return true;
}

PyTrace load() {
    PyTrace t;
    t.path = getenv("SHB_PYTRACE");
    if (!t.path || !*t.path) return t;
    int fd = open(t.path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fprintf(stderr, "sharena-bench: cannot read the CPython trace %s\n", t.path);
        if (fd >= 0) close(fd);
        return t;
    }
    size_t bytes = size_t(sb.st_size);
    void *m = bytes >= 16 ? mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) {
        fprintf(stderr, "sharena-bench: cannot map the CPython trace %s\n", t.path);
        return t;
    }
    const uint64_t *w = static_cast<const uint64_t *>(m);
    if (memcmp(w, "SHBTRACE", 8) != 0 || w[1] != 24 || (bytes - 16) % 24 != 0) {
        fprintf(stderr, "sharena-bench: %s is not a trace of bench/pytrace/tracer.c\n", t.path);
    } else {
        t.ok = convert(t, w + 2, (bytes - 16) / 24);
        if (!t.ok) fprintf(stderr, "sharena-bench: conversion of %s failed\n", t.path);
    }
    munmap(m, bytes);
    return t;
}

}  // namespace

bool pytrace_configured() {
    const char *p = getenv("SHB_PYTRACE");
    return p && *p && access(p, R_OK) == 0;
}

const PyTrace &pytrace() {
    static const PyTrace t = load();
    return t;
}

}  // namespace shb
