// The CPython trace: every malloc, calloc, realloc and free of the machine's
// /usr/bin/python3 running bench/pytrace/workload.py, recorded by the
// preloaded bench/pytrace/tracer.c (format there) and turned here into a
// replay every allocator runs the same way.
//
// The trace file is named by $SHB_PYTRACE (bench/run.sh points it at the
// build tree's recording); without it no pytrace/ benchmark is registered.
// Conversion (once per process, before any timing): each block address is
// given a slot, reused once the block is freed, so the replayer needs only
// peak-live slots. What the replay cannot reproduce is dropped and counted:
// frees of blocks allocated before the tracer started (by the dynamic
// loader). calloc and the aligned calls replay as plain allocations (their
// zeroing or alignment is not replayed; counted in `calloc`, `aligned`);
// realloc(p, 0), which frees p in glibc, replays as a free; a realloc of an
// unknown block as an allocation. Blocks Python never freed are freed at the
// end of each replay, in slot order, so that replays repeat. Allocations of
// 0 bytes replay as 1 byte (the replay writes each block's first byte).
//
// All the conversion's memory is mmap'ed: loading the trace does not touch
// the allocator under test.
#ifndef SHB_PYTRACE_HPP
#define SHB_PYTRACE_HPP

#include <cstddef>
#include <cstdint>

namespace shb {

enum PyOpKind : uint32_t { kPyAlloc = 0, kPyFree = 1, kPyRealloc = 2 };

struct PyOp {
    uint32_t slot;
    uint32_t size;       // bytes asked (free: the block's size)
    uint32_t old_size;   // realloc: the block's size before
    uint32_t kind;       // PyOpKind
};

struct PyTrace {
    const PyOp *ops = nullptr;
    size_t nops = 0;            // operations of one replay, final frees included
    size_t peak_op = 0;         // index just after the op that reached peak live bytes
    uint32_t slots = 0;         // slot table size the replayer needs
    uint64_t peak_live_bytes = 0, peak_live_blocks = 0;
    // What the recording held, for the report.
    uint64_t records = 0, mallocs = 0, callocs = 0, reallocs = 0, frees = 0, aligned = 0;
    uint64_t dropped_frees = 0, unknown_reallocs = 0, final_frees = 0;
    bool ok = false;
    const char *path = nullptr;
};

// The trace of $SHB_PYTRACE, converted on first use; ok is false when there
// is none (or it cannot be read: a message on stderr).
const PyTrace &pytrace();
// Whether $SHB_PYTRACE names a file, without converting it.
bool pytrace_configured();

// Replay ops [from, to) of the trace. The first byte of every block handed
// out is written.
template <class B> inline void pytrace_replay_range(B &b, void **slots, size_t from, size_t to) {
    const PyTrace &t = pytrace();
    for (size_t i = from; i < to; i++) {
        const PyOp &op = t.ops[i];
        if (op.kind == kPyFree) {
            b.free(slots[op.slot], op.size);
        } else {
            auto *p = static_cast<unsigned char *>(
                op.kind == kPyAlloc ? b.alloc(op.size) : b.realloc(slots[op.slot], op.old_size, op.size));
            p[0] = 1;
            slots[op.slot] = p;
        }
    }
}
template <class B> inline void pytrace_replay(B &b, void **slots) {
    pytrace_replay_range(b, slots, 0, pytrace().nops);
    asm volatile("" : : "g"(slots) : "memory");
}

}  // namespace shb

#endif
