// Boost.Interprocess as benchmark backends, both in a fresh 256 MiB
// managed_shared_memory segment per benchmark run:
//
//   boost_rbtree  segment.allocate(n) / deallocate(p): the default
//                 rbtree_best_fit<mutex_family> behind its process-shared mutex.
//                 realloc is allocation_command(expand_fwd | allocate_new), then
//                 a copy when the block moved (what Boost.Container does).
//   boost_node    node_allocator<Block<N>>::allocate_one() / deallocate_one():
//                 Boost's shared segregated pools (one mutex per pool), one pool
//                 per size class: 16-byte steps up to 512 (pymalloc's classes),
//                 then 1024, 2048, 4096. Larger requests go to the segment.
//                 Variable sizes pick the pool through a table (one indirect
//                 call); fixed sizes (the pair) call the typed pool directly.
//                 No realloc: a pool has one size.
#ifndef SHB_BACKEND_BOOST_HPP
#define SHB_BACKEND_BOOST_HPP

#include <boost/interprocess/allocators/node_allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "common.hpp"

namespace shb {

namespace bip = boost::interprocess;
using BoostSeg = bip::managed_shared_memory;
using BoostSegMgr = BoostSeg::segment_manager;

// A fresh segment, removed when the owner goes away.
class BoostSegment {
public:
    BoostSegment() : name_(unique_shm_name("boost")) {
        cleanup_register(name_);
        bip::shared_memory_object::remove(name_.c_str());
        seg_.reset(new BoostSeg(bip::create_only, name_.c_str(), kBoostSegmentBytes));
    }
    ~BoostSegment() {
        seg_.reset();
        bip::shared_memory_object::remove(name_.c_str());
        cleanup_unregister(name_);
    }
    BoostSegment(const BoostSegment &) = delete;
    BoostSegment &operator=(const BoostSegment &) = delete;
    BoostSeg *seg() const { return seg_.get(); }
    const std::string &name() const { return name_; }
    // In a forked worker: map the segment again by name.
    std::unique_ptr<BoostSeg> open() const {
        return std::unique_ptr<BoostSeg>(new BoostSeg(bip::open_only, name_.c_str()));
    }

private:
    std::string name_;
    std::unique_ptr<BoostSeg> seg_;
};

// ---- rbtree_best_fit -------------------------------------------------------------

struct BoostRbtreeEnv {
    static constexpr const char *kName = "boost_rbtree";
    static constexpr bool kShared = true;
    static constexpr bool kRealloc = true;
    static constexpr bool kSlowReplay = true;   // pytrace/: one replay per repetition

    class Backend {
    public:
        Backend(BoostSeg *s, std::unique_ptr<BoostSeg> owned) : seg_(s), owned_(std::move(owned)) {}
        void *alloc(size_t n) { return seg_->allocate(n, std::nothrow); }
        void free(void *p, size_t) { seg_->deallocate(p); }
        void *realloc(void *p, size_t old_n, size_t n) {
            BoostSeg::size_type got = n;
            char *reuse = static_cast<char *>(p);
            char *r = seg_->allocation_command<char>(
                bip::expand_fwd | bip::allocate_new | bip::nothrow_allocation, n, got, reuse);
            if (r && r != p) {
                memcpy(r, p, old_n < n ? old_n : n);
                seg_->deallocate(p);
            }
            return r;
        }
        template <size_t N> void *alloc_n() { return seg_->allocate(N, std::nothrow); }
        template <size_t N> void free_n(void *p) { seg_->deallocate(p); }
        uint64_t off(void *p) const { return uint64_t(seg_->get_handle_from_address(p)); }
        void *ptr(uint64_t o) const { return seg_->get_address_from_handle(BoostSeg::handle_t(o)); }
        BoostSeg *seg() const { return seg_; }

    private:
        BoostSeg *seg_;
        std::unique_ptr<BoostSeg> owned_;
    };

    Backend local() { return Backend(s_.seg(), nullptr); }
    Backend attach() { auto o = s_.open(); BoostSeg *s = o.get(); return Backend(s, std::move(o)); }
    const BoostSegment &segment() const { return s_; }

private:
    BoostSegment s_;
};

// ---- node_allocator pools ----------------------------------------------------------

constexpr int kNodeClasses = 35;   // 32 small classes, then 1024, 2048, 4096

constexpr int node_class(size_t n) {
    return n == 0 ? 0 : n <= 512 ? int((n - 1) >> 4) : n <= 1024 ? 32 : n <= 2048 ? 33 : n <= 4096 ? 34 : -1;
}
constexpr size_t node_class_size(int c) {
    return c < 32 ? size_t(c + 1) * 16 : size_t(1024) << (c - 32);
}

template <size_t N> struct alignas(16) NodeBlock { unsigned char b[N]; };

struct NodePoolBase {
    virtual ~NodePoolBase() = default;
    virtual void *get() = 0;
    virtual void put(void *p) = 0;
};

template <size_t N> struct NodePool final : NodePoolBase {
    using Alloc = bip::node_allocator<NodeBlock<N>, BoostSegMgr>;
    Alloc a;
    explicit NodePool(BoostSegMgr *sm) : a(sm) {}
    void *get() override { return &*a.allocate_one(); }
    void put(void *p) override { a.deallocate_one(typename Alloc::pointer(static_cast<NodeBlock<N> *>(p))); }
};

// The pools of one process (each attaches to the segment's shared pool of its
// size, created by the first user).
class NodePools {
public:
    explicit NodePools(BoostSegMgr *sm) { make(sm, std::make_index_sequence<kNodeClasses>()); }
    NodePoolBase *at(int c) const { return pools_[c].get(); }
    template <size_t N> NodePool<N> *typed() const {
        static_assert(node_class(N) >= 0 && node_class_size(node_class(N)) == N, "not a class size");
        return static_cast<NodePool<N> *>(pools_[node_class(N)].get());
    }

private:
    template <size_t... I> void make(BoostSegMgr *sm, std::index_sequence<I...>) {
        ((pools_[I].reset(new NodePool<node_class_size(int(I))>(sm))), ...);
    }
    std::unique_ptr<NodePoolBase> pools_[kNodeClasses];
};

struct BoostNodeEnv {
    static constexpr const char *kName = "boost_node";
    static constexpr bool kShared = true;
    static constexpr bool kRealloc = false;
    static constexpr bool kSlowReplay = true;   // pytrace/: one replay per repetition

    class Backend {
    public:
        Backend(BoostSeg *s, std::unique_ptr<BoostSeg> owned)
            : seg_(s), owned_(std::move(owned)), pools_(new NodePools(s->get_segment_manager())) {}
        void *alloc(size_t n) {
            int c = node_class(n);
            return c >= 0 ? pools_->at(c)->get() : seg_->allocate(n, std::nothrow);
        }
        void free(void *p, size_t n) {
            int c = node_class(n);
            if (c >= 0) pools_->at(c)->put(p);
            else seg_->deallocate(p);
        }
        void *realloc(void *, size_t, size_t) { return nullptr; }
        template <size_t N> void *alloc_n() { return pools_->typed<N>()->get(); }
        template <size_t N> void free_n(void *p) { pools_->typed<N>()->put(p); }
        uint64_t off(void *p) const { return uint64_t(seg_->get_handle_from_address(p)); }
        void *ptr(uint64_t o) const { return seg_->get_address_from_handle(BoostSeg::handle_t(o)); }
        BoostSeg *seg() const { return seg_; }

    private:
        BoostSeg *seg_;
        std::unique_ptr<BoostSeg> owned_;
        std::unique_ptr<NodePools> pools_;
    };

    Backend local() { return Backend(s_.seg(), nullptr); }
    Backend attach() { auto o = s_.open(); BoostSeg *s = o.get(); return Backend(s, std::move(o)); }
    const BoostSegment &segment() const { return s_; }

private:
    BoostSegment s_;
};

}  // namespace shb

#endif
