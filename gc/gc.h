/* gc: objects, types, refcounts, leases, owners (and the cycle collector).
 *
 * An object is a block of the allocator that starts with obj_t:
 *
 *   bytes 0..7    refcnt   atomic; OBJ_DYING while a container's dealloc
 *                          runs, 0 once freed (the allocator never writes
 *                          these bytes of a free block, so it stays 0)
 *   bytes 8..11   type     id: str, bytes, list (this process's type table),
 *                          SHR_TYPE_NODE, or a declared user type
 *   bytes 12..15  flags    the collector's: OBJ_TRACKED | generation << 1,
 *                          written in one store, by the creator before the
 *                          refcount (the object's commit point) and by a
 *                          collector only while the world is stopped
 *
 * Containers (lists, nodes, user types) are allocated from object pools
 * (shr__obj_block_alloc), which hold nothing but objects: the collector finds
 * every container by walking those pools in address order with the world
 * stopped (gc/collect.c; docs/design/gc.md). str and bytes hold no
 * references; those a list call makes (inside the gate, up to 16 KiB) live
 * in object pools too, untracked, so that the backup mark-sweep (trace.c)
 * finds them if a dead process leaked them; others in ordinary blocks.
 *
 * Bytes 8..15 of a free block are the allocator's free-list link: a freed
 * object's type and flags are overwritten, its refcount is not. The
 * allocator asserts its side of that contract; obj_t's asserts are below.
 *
 * The shared refcount counts references from shared objects, from roots and
 * from leases, and nothing else. A reference held in a process's private
 * memory is a lease: an entry in that process's lease table, in the segment,
 * so that when the process dies its references are released for it.
 *
 * Orders that make a crash leak instead of free too early:
 *   - incref before publishing (a slot, a root, a lease entry);
 *   - unpublish before decref;
 *   - a dealloc detaches each child (exchange with 0) before decref'ing it;
 *   - a lease is recorded after the incref it stands for and forgotten
 *     before the decref, so replaying a dead process's table can only
 *     release references that exist.
 *
 * Invariants of the lease tables (asserted where a table changes, at
 * SHR_DEBUG >= 2; docs/design/objects.md §4):
 *   LE1  cap is a power of two >= LEASE_MIN, and used * 2 <= cap: a probe
 *        always ends at a free entry
 *   LE2  an entry with off > LEASE_TOMB has n >= 1; a free or tombstoned
 *        entry (off 0 or LEASE_TOMB) has n == 0 once its store is done
 *   LE3  used counts the entries that are not free (live + tombstones), and
 *        live those with off > LEASE_TOMB
 *   LE4  cap <= max(LEASE_MIN, 8 * live) after every remove (the table
 *        shrinks), unless the smaller table could not be allocated
 */
#ifndef SHR_GC_H
#define SHR_GC_H

#include <errno.h>
#include <pthread.h>

#include "alloc.h"
#include "fault.h"

/* Built-in type ids. 0 is never a type. (A freed block's bytes 8..15, where
 * the type and flags were, hold the allocator's free-list link; only the
 * refcount at bytes 0..7 is left alone, and reads 0.) Nodes and user types
 * have ids of the public range (SHR_TYPE_NODE, SHR_TYPE_USER_FIRST + i),
 * which the type table below does not index. */
enum { SHR_TYPE_STR = 1, SHR_TYPE_BYTES = 2, SHR_TYPE_LIST = 3, SHR_TYPE_MAX = 64 };

typedef struct obj {
    _Atomic uint64_t refcnt;
    uint32_t type;
    _Atomic uint32_t flags;   /* OBJ_TRACKED | gen << OBJ_GEN_SHIFT (containers), else 0 */
} obj_t;

/* obj_t.flags. A container is created TRACKED in generation 0; a survivor
 * of a collection of generation g moves to min(g + 1, 2) by one store of the
 * whole word, so a collector that dies between two stores leaves every
 * object in exactly one generation. */
#define OBJ_TRACKED 1u
#define OBJ_GEN_SHIFT 1
#define OBJ_GEN_MASK (3u << OBJ_GEN_SHIFT)
/* Set by a collector on each object it found to be garbage, before it
 * clears any: unreachable for good (no finalizers, no weak references), so
 * the next collector frees such an object whatever its count says. Only
 * once the whole set is flagged (gc_global_t.flagging reset, its commit
 * point): a half-flagged set is not closed (an unflagged member the next
 * collection does not examine may still name a flagged one), and its
 * flags are dropped (collect.c, C3). */
#define OBJ_GARBAGE (1u << 3)
/* Bacon and Rajan's buffered bit (collect.c, "Bacon and Rajan"): the
 * container is a possible root, named by an entry of some thread's ring
 * (gc_tslot_t.br_ring, or a released slot's on gc_global_t.br_orphans) or
 * waiting for the heap-wide rescan (gc_global_t.br_all).
 * Set by a mutator (fetch_or, inside the gate, before its decrement) on a
 * heap whose algorithm is SHR_GC_BACON_RAJAN; cleared only by a collector
 * with the world stopped, as it consumes every ring at once. The whole-word
 * stores of the generation keep it.
 *   B1  a buffered object's block is never freed by a mutator: its free
 *       (shr__obj_free) is deferred, the object left OBJ_DYING, and the
 *       collector that consumes its entry frees it; so an entry always
 *       names the object it was written for.
 *   B2  every buffered object has an entry in a ring, or br_all is set (a
 *       ring lost at a slot's release, a thread killed between the bit and
 *       its entry): the rescan walks every container and clears every bit. */
#define OBJ_BUFFERED (1u << 4)
static inline uint32_t obj_gen(uint32_t flags) { return (flags & OBJ_GEN_MASK) >> OBJ_GEN_SHIFT; }
/* The refcount of a container whose last reference is gone and whose
 * dealloc has begun (shr__decref stores it right after the decrement that
 * reached 0; shr__obj_free stores 0 before the block is freed). With the
 * world stopped, only a dead thread's unfinished dealloc leaves it: the
 * trial deletion skips such an object (its children look referenced: kept),
 * the backup mark-sweep finishes its dealloc (trace.c). str and bytes keep
 * 0: they hold nothing to finish. */
#define OBJ_DYING ((uint64_t)1 << 62)


/* The block contract with alloc/: bytes 0..7 are the refcount, never written
 * by the allocator; bytes 8..15 (type, flags) are its free-list link. */
_Static_assert(offsetof(obj_t, refcnt) == 0 && sizeof(((obj_t *)0)->refcnt) == 8,
               "obj_t: refcnt at bytes 0..7");
_Static_assert(offsetof(obj_t, type) == 8 && offsetof(obj_t, flags) == 12,
               "obj_t: type and flags at bytes 8..15, the free-list link of a free block");
_Static_assert(sizeof(obj_t) == 16, "obj_t is 16 bytes");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared");

/* A process's functions for one type. traverse visits each reference the
 * object holds (for the collector and for checks); dealloc detaches and
 * releases the children and frees the block. */
typedef void (*gc_visit_fn)(shr_heap_t *heap, shr_off_t child, void *arg);
typedef struct gc_type_ops {
    const char *name;
    void (*traverse)(shr_heap_t *heap, obj_t *o, gc_visit_fn visit, void *arg);
    void (*clear)(shr_heap_t *heap, obj_t *o);
    void (*dealloc)(shr_heap_t *heap, obj_t *o);
} gc_type_ops_t;

/* ---- leases: the layout (lease.c) ---------------------------------------- */

/* One entry of a lease table: a referenced object and how many references
 * this process holds to it. */
typedef struct lease_entry {
    _Atomic uint64_t off;   /* 0 free, LEASE_TOMB deleted, else an object */
    _Atomic uint64_t n;     /* references held (LE2) */
} lease_entry_t;

/* A process's lease table: an allocator block, open addressing with linear
 * probing. Replaced whole (never resized in place) when it grows. */
typedef struct lease_table {
    uint64_t cap;           /* entries, a power of two (LE1) */
    uint64_t used;          /* live + tombstones (LE3) */
    uint64_t next;          /* link on the dead queue (offset), 0 at the end */
    uint64_t live;          /* entries with off > LEASE_TOMB: sizes the table
                               (a hint after a thread died under the lock;
                               a rebuild counts it again) */
    lease_entry_t e[];
} lease_table_t;

#define LEASE_TOMB 1u
#define LEASE_MIN 64

/* The gc region of a process entry. The mutex is taken by this process's
 * threads only; the table is swapped by one store (its commit point). */
typedef struct lease_area {
    pthread_mutex_t mu;
    _Atomic uint64_t table; /* offset of this process's lease_table_t, or 0 */
} lease_area_t;

/* A declared user type (shr_obj_type_declare): committed by storing
 * `state` = 1 last, under the collector's mutex; never changed after. */
typedef struct gc_type_decl {
    _Atomic uint32_t state;      /* 0 free, 1 declared */
    uint32_t nslots;
    uint64_t payload;
    char name[SHR_TYPE_NAME_MAX + 1];
} gc_type_decl_t;

/* Statistics of one generation (under the collector's mutex). */
typedef struct gc_gen {
    _Atomic uint32_t threshold;
    uint32_t pad;
    _Atomic int64_t count;       /* gen 0: containers created - freed (folded
                                    in batches); gen 1, 2: collections of the
                                    generation below since this one's last */
    _Atomic uint64_t collections, collected, uncollectable;
    _Atomic uint64_t pause_ns_total, pause_ns_max, ttsp_ns_max;
} gc_gen_t;

/* The measurements of one generation (shr_gc_gen_stats_t's fields past
 * the first six), added by each collection after its pause, under the
 * collector's mutex; zeroed by shr_gc_stats_reset under it. Plain
 * counters: a collector that dies mid-record leaves some added and others
 * not (a measurement, never a structure anything relies on). */
typedef struct gc_meas {
    _Atomic uint64_t phase_ns[SHR_GC_NPHASES];
    _Atomic uint64_t candidates, edges, bytes_freed, total_ns;
    _Atomic uint64_t hist[SHR_GC_HIST_BUCKETS];
} gc_meas_t;

/* The gc layer's global region. */
typedef struct gc_global {
    _Atomic uint64_t dead;       /* tables of dead processes, a stack (offsets) */
    _Atomic uint64_t released;   /* references released for the dead, ever */
    /* The gate (collect.c): the owner word (owner.c) of the collector that
     * asks the world to stop, 0 when none does. */
    _Atomic uint64_t requested;
    _Atomic uint64_t auto_failures;
    _Atomic uint64_t long_lived_total, long_lived_pending;
    _Atomic uint64_t epoch;      /* collections begun, ever */
    /* Layout 13: the heap's algorithm (shr_gc_set_algorithm; automatic
     * collections use it; read by every decref, in the line of
     * `requested`), and Bacon and Rajan's rescan flag (B2): nonzero when
     * the next consumption of the rings must walk every container. */
    _Atomic uint32_t algorithm;
    _Atomic uint32_t br_all;
    gc_gen_t gen[3];
    gc_type_decl_t types[SHR_TYPE_USER_MAX];
    /* The collector's mutex: one collection at a time. Robust: a collector
     * that dies leaves nothing to repair (its scratch is private memory). */
    pthread_mutex_t mu __attribute__((aligned(64)));
    /* Layout 11: the measuring window and the measurements. */
    _Atomic uint64_t window_start_ns __attribute__((aligned(64))); /* CLOCK_REALTIME */
    _Atomic uint64_t resets;
    gc_meas_t meas[3];
    /* The event log (log.c): the next sequence number to begin (from 1),
     * and records dropped. The ring follows this struct in the region. */
    _Atomic uint64_t log_head __attribute__((aligned(64)));
    _Atomic uint64_t log_dropped;
    /* Layout 13: the rings of released thread slots (Bacon and Rajan, a
     * stack of offsets; pushed by a slot's release, taken whole by a
     * collector with the world stopped). */
    _Atomic uint64_t br_orphans;
    /* Layout 17: the commit word of a garbage set's flags (collect.c, C3):
     * the epoch of the collection that is flagging its garbage, 0 when
     * none is. Stored by that collector (its mutex held) before its first
     * OBJ_GARBAGE, reset after its last: the reset is the commit point
     * from which the flagged set is garbage for good. A word found nonzero
     * (the mutex held, the world stopped) names a collector that died with
     * its set half flagged: the collection drops every flag, then resets
     * it (flags_repair). In the log words' line: sizeof unchanged. */
    _Atomic uint64_t flagging;
} gc_global_t;

/* One record of the event log: 64 bytes, every word atomic. ctl is the
 * commit word: 0 never written; LOG_BUSY | owner word (gc.h) while a
 * writer fills it; the record's sequence number once committed (the
 * writer's last store). */
typedef struct gc_logrec {
    _Atomic uint64_t ctl;
    _Atomic uint64_t time_ns;
    _Atomic uint64_t meta;    /* pid | type << 32 | (uint8_t)generation << 48 | phase << 56 */
    _Atomic uint64_t a[4];
    uint64_t pad;
} gc_logrec_t;
_Static_assert(sizeof(gc_logrec_t) == 64, "gc_logrec_t is 64 bytes");
#define LOG_BUSY ((uint64_t)1 << 63)

/* The gc region of a thread slot: its count of containers created minus
 * freed not yet folded into gen[0].count (folded every GC_FOLD, and when
 * the slot is released), and its ring of Bacon and Rajan's possible roots
 * (layout 13). Written by its thread only, inside the gate; read and
 * emptied by a collector with the world stopped.
 *   br_ring      0, or the offset of the thread's ring (gc_br_ring_t, an
 *                ordinary block), allocated at its first buffering on a
 *                heap that selects the algorithm (the store of the offset
 *                is its commit point: a thread killed before it leaks the
 *                block, never a ring half named)
 *   br_n         entries committed in the ring (B1, B2): the commit point,
 *                stored after the entry
 *   br_busy      1 from the set of a bit to the commit of its entry: a
 *                thread killed in between leaves a bit without an entry,
 *                which the collector (world stopped) or the slot's release
 *                turns into the rescan flag
 * At the slot's release the ring is handed to the heap's orphan list
 * (gc_global_t.br_orphans, linked through gc_br_ring_t.next, its count
 * copied into it) for the next collection to consume and free: the claim
 * that follows zeroes this region. Heaps that never select the algorithm
 * pay nothing but these 16 bytes. */
typedef struct gc_tslot {
    _Atomic int64_t delta;
    _Atomic uint32_t br_n;
    _Atomic uint32_t br_busy;
    _Atomic uint64_t br_ring;
    uint64_t reserved[5];
} gc_tslot_t;
#define GC_BR_RING 4094
typedef struct gc_br_ring {
    _Atomic uint64_t next;  /* on the orphan list: the next ring (offset), 0 at the end */
    _Atomic uint64_t n;     /* on the orphan list: its entries */
    _Atomic uint64_t off[GC_BR_RING];
} gc_br_ring_t;
#define GC_FOLD 64

_Static_assert(sizeof(lease_entry_t) == 16 && offsetof(lease_entry_t, n) == 8, "lease_entry_t");
_Static_assert(sizeof(lease_table_t) == 32 && offsetof(lease_table_t, used) == 8 &&
                   offsetof(lease_table_t, next) == 16 && offsetof(lease_table_t, live) == 24 &&
                   offsetof(lease_table_t, e) == 32,
               "lease_table_t: 32-byte header, then the entries");
/* lease_area_t's size depends on the platform's pthread_mutex_t; the table
 * word follows the mutex, 8-aligned. */
_Static_assert(offsetof(lease_area_t, table) == SHR_ALIGN_UP(sizeof(pthread_mutex_t), 8),
               "lease_area_t: table right after the mutex");
_Static_assert(offsetof(gc_global_t, released) == 8 && offsetof(gc_global_t, requested) == 16 &&
                   offsetof(gc_global_t, gen) == 64 && sizeof(gc_gen_t) == 64 &&
                   offsetof(gc_global_t, types) == 64 + 3 * 64 && sizeof(gc_type_decl_t) == 48 &&
                   offsetof(gc_global_t, mu) % 64 == 0,
               "gc_global_t");
_Static_assert(sizeof(gc_tslot_t) == 64 && offsetof(gc_tslot_t, br_ring) == 16, "gc_tslot_t");
_Static_assert(sizeof(gc_br_ring_t) == 32768, "gc_br_ring_t: 32 KiB");
_Static_assert(offsetof(gc_global_t, algorithm) == 56 && offsetof(gc_global_t, br_all) == 60,
               "gc_global_t: the algorithm in the line of the request word");

/* The gc layer's layout constants are the SHR_CONST_OBJ_SIZE and
 * SHR_CONST_LEASE_AREA slots of the header's consts[] (shm.h). */

/* ---- object.c ------------------------------------------------------------ */

/* Install this process's functions for a type id (idempotent). */
int shr__type_register(uint32_t id, const gc_type_ops_t *ops);
const gc_type_ops_t *shr__type_ops(uint32_t id);

/* A new object of `size` bytes (header included) with refcount 1, owned by
 * the caller, who must publish it or release it. NULL with errno. Fault
 * point obj.alloc. */
obj_t *shr__obj_new(shr_heap_t *h, uint32_t type, size_t size);
/* A new container: a block of an object pool, zeroed past the header,
 * then init_len bytes of init copied after the header,
 * TRACKED in generation 0, refcount 1 stored last (its commit point: a
 * walker skips it until then, and finds it consistent after). Counts
 * towards generation 0. Caller inside the gate. NULL with errno. */
obj_t *shr__obj_new_container(shr_heap_t *h, uint32_t type, size_t size, const void *init, size_t init_len);
/* A container's dealloc ends with this, once its children are released and
 * its parts freed: counts it off generation 0, stores refcount 0 (a
 * collector's dealloc of garbage comes with a count left) and frees the
 * block. */
void shr__obj_free(shr_heap_t *h, obj_t *o);
/* A clear's release of a child it detached: a decref, unless the child is
 * garbage a collector is freeing (OBJ_GARBAGE: its count no longer matters,
 * collect.c C3). */
void shr__gc_release_child(shr_heap_t *h, shr_off_t child);

static inline obj_t *obj_at(const shr_heap_t *h, shr_off_t off) { return (obj_t *)(h->base + off); }

static inline void shr__incref(obj_t *o)
{
    atomic_fetch_add_explicit(&o->refcnt, 1, memory_order_relaxed);
}

/* Drop a reference; the decrement that reaches zero deallocates. On a heap
 * whose algorithm is SHR_GC_BACON_RAJAN, a container whose count will stay
 * above zero is buffered first (shr__gc_br_root), while the reference is
 * still held; other heaps pay one predictable branch on a word in the line
 * the gate reads. */
void shr__decref(shr_heap_t *h, obj_t *o);
/* Buffer o as a possible root (B1, B2): the caller holds a reference to it. */
void shr__gc_br_root(shr_heap_t *h, obj_t *o);

/* Turn a borrowed offset read from *slot into a new reference, or return 0
 * when the slot is empty. The caller must guarantee that a block that held an
 * object is not reused for anything but objects while it may run (the list
 * takes its lock for that); the increment happens only if the count is not
 * zero, and the slot is read again afterwards (free-threaded CPython's
 * _Py_TryIncrefCompare). */
shr_off_t shr__try_incref(shr_heap_t *h, _Atomic uint64_t *slot);

/* ---- allocations (object.c) ------------------------------------------------
 *
 * Every allocation a list or lease operation makes goes through one of these
 * (objects through shr__obj_new), so that fault point list.alloc (obj.alloc
 * for objects) can fail the nth one: the out-of-memory tests walk n over
 * every allocation of each operation. Segment blocks and the process's own
 * memory alike; NULL with errno = ENOMEM on failure. */
void *shr__gc_alloc(shr_heap_t *h, size_t size);     /* a segment block */
void *shr__gc_zalloc(shr_heap_t *h, size_t size);    /* zeroed */
void *shr__gc_priv_alloc(size_t size);               /* process memory, zeroed */
void *shr__gc_priv_realloc(void *p, size_t size);
char *shr__gc_priv_strdup(const char *s);

/* head + n * each, or false when that overflows or exceeds what any heap can
 * hold (SHR_MAX_CAPACITY): every size computed from a count goes through it
 * before anything is allocated or written. */
static inline bool shr__gc_array_size(size_t head, size_t n, size_t each, size_t *out)
{
    size_t body;
    if (__builtin_mul_overflow(n, each, &body) || __builtin_add_overflow(body, head, out)) return false;
    return *out <= SHR_MAX_CAPACITY;
}

/* ---- owners and bounded waits (owner.c) ------------------------------------
 *
 * An owner word names the thread that holds something (the list's lock): its
 * thread slot + 1 in the low 32 bits and the low 31 bits of the slot's
 * generation in bits 32..62, so that 0 is "nobody" and a slot claimed again
 * by another thread does not look like the old owner. Bit 63 is the lock's
 * own (SHR__OWNER_FLAG: the list marks a waiter there) and is ignored. */
#define SHR__OWNER_FLAG ((uint64_t)1 << 63)
static inline uint64_t shr__owner_word(const shr_tctx_t *ctx)
{
    return ((uint64_t)(ctx->gen & 0x7fffffffu) << 32) | ((uint64_t)ctx->slot + 1);
}
static inline uint32_t shr__owner_slot(uint64_t w) { return (uint32_t)(w & 0xffffffffu) - 1; }
static inline uint32_t shr__owner_gen(uint64_t w) { return (uint32_t)(w >> 32) & 0x7fffffffu; }

/* Is the owner named by w gone: its slot released or claimed again (another
 * generation), or its process dead? Reads the registry without its lock; a
 * stale answer is safe because a live owner never looks gone (its slot stays
 * LIVE with its generation while it runs, and its process's lifetime mutex
 * stays held). */
bool shr__owner_gone(shr_heap_t *h, uint64_t w);

/* Bounded waits: every wait of gc/ and list/ takes its deadline from the
 * segment layer (shr__lock_deadline: the heap's lock timeout, or
 * SHARENA_LOCK_TIMEOUT_MS) and ends in SHR_ELOCKTIMEOUT, as the heap's own
 * locks do. */

/* ---- lease.c ------------------------------------------------------------- */

/* Record that this process holds one more reference to off (after the
 * incref), or one less (before the decref). Fault points lease.record and
 * lease.forget; list.alloc when the table grows. Errors: -ENOMEM (the table
 * could not grow: nothing changed), -ENOENT (remove of what is not held),
 * SHR_ELOCKTIMEOUT, SHR_ELOCK. */
int shr__lease_add(shr_heap_t *h, shr_off_t off);
int shr__lease_remove(shr_heap_t *h, shr_off_t off);
/* Release the references of processes found dead (queued by the registry's
 * reclaim hook, which cannot free under the registry lock). Returns how many
 * references were released. Takes no lock on entry. Fault point lease.drain. */
int shr__gc_drain_dead(shr_heap_t *h);
/* Leases this process holds (for tests and statistics). */
uint64_t shr__lease_count(shr_heap_t *h);
/* References released for dead processes, ever. */
uint64_t shr__lease_released(shr_heap_t *h);
/* At close: release what this process still holds. */
void shr__gc_close(shr_heap_t *h);

/* Every lease of every process and of the dead queue, each table once, with
 * the world stopped (for the tracing collector and the verifier): 0 when
 * every table was read, 1 when one may have been missed, or a negative
 * code. */
int shr__lease_scan(shr_heap_t *h, void (*fn)(shr_heap_t *h, uint64_t off, uint64_t n, void *arg), void *arg);

/* Does this process hold a lease on off? (Validates a caller's shr_ref_t.) */
bool shr__lease_held(shr_heap_t *h, shr_off_t off);

/* Deferred references (docs/design/objects.md §6.4): a reference a list
 * dropped from an item (a str or bytes that lock-free readers may still be
 * reading) is kept, as a lease of the dropping process, until a grace
 * period has passed. Its entry is keyed off | LEASE_DEFERRED (offsets are
 * below the segment's size), apart from the process's own references to the object, and
 * not counted as a lease by shr__lease_count. A death or close releases it
 * with the rest of the table, after a grace period (the drain waits for
 * one). Errors as shr__lease_add / shr__lease_remove. */
#define LEASE_DEFERRED ((uint64_t)1 << 63)
int shr__lease_defer(shr_heap_t *h, shr_off_t off);
int shr__lease_undefer(shr_heap_t *h, shr_off_t off);

/* A grace period: true once every read section (shm.h thread_slot_t.epoch)
 * that may have begun before this call has ended; false when one outlasted
 * 1 ms (or is the one this thread gave up on last time, still open). The
 * caller's stores that readers must see come before. Inside the gate.
 * No lock needed, none taken (a section is wait-free). */
bool shr__grace_wait(shr_heap_t *h);

/* ---- node.c: nodes and user types ------------------------------------------
 *
 *   node   [ obj_t 16 | nslots 4 | pad 4 | payload 8 | ext 8 | lock 8 | slots 8 x nslots | payload ]
 *
 * ext == 0: the slots and the payload follow the header in the block, which
 * is at most SHR_MEDIUM_REQUEST_THRESHOLD. Else they are in an ordinary
 * block at offset ext (slots first), so that the header stays in an object
 * pool however big the node is. nslots, payload and ext are written before
 * the refcount (the commit point) and never change; a slot holds 0 or the
 * offset of an object it holds a reference to, and changes by one exchange
 * under the node's lock (an owner word, gc.h; a dead owner's lock is taken
 * over, as a slot is never half changed). A get takes its reference under
 * the lock, so that a set cannot free the child in between (a child's
 * block may be reused for anything once freed: no try_incref here).
 * User-type objects have the same layout, with their declared sizes. */
typedef struct nodeobj {
    obj_t ob;
    uint32_t nslots;
    uint32_t pad;
    uint64_t payload;
    uint64_t ext;
    _Atomic uint64_t lock;
    _Atomic uint64_t slot[];
} nodeobj_t;
_Static_assert(sizeof(nodeobj_t) == 48 && offsetof(nodeobj_t, ext) == 32 && offsetof(nodeobj_t, lock) == 40,
               "nodeobj_t");
#define NODE_MAX_SLOTS (1u << 24)

static inline bool shr__is_node_type(uint32_t t)
{
    return t == SHR_TYPE_NODE || (t >= SHR_TYPE_USER_FIRST && t < SHR_TYPE_USER_FIRST + SHR_TYPE_USER_MAX);
}
static inline _Atomic uint64_t *node_slots(const shr_heap_t *h, nodeobj_t *n)
{
    return n->ext ? (_Atomic uint64_t *)shr__ptr(h, n->ext) : n->slot;
}
/* What is wrong with the node at off (a root's, or an item's, read from data
 * nobody has checked), or NULL. */
const char *shr__node_problem(shr_heap_t *h, uint64_t off);
/* Register the node types' functions (idempotent). */
void shr__node_types_register(void);
/* The functions for any type id, nodes and user types included (NULL for a
 * type this process cannot traverse). */
const gc_type_ops_t *shr__type_ops_any(shr_heap_t *h, uint32_t id);
/* This process's functions for lists (set by list/, which sits above). */
extern const gc_type_ops_t *shr__list_ops;
/* For the collector, with the world stopped: does this list's lock belong
 * to a dead thread (its change half done: an item may be there twice)? And
 * settle: repair the list as its next writer would, and unlock it. A repair
 * may release a reference (a dead delete's item) and so free objects: the
 * collector settles between walks, never during one (set by list/). */
extern bool (*shr__list_unsettled)(shr_heap_t *h, obj_t *o);
extern void (*shr__list_settle)(shr_heap_t *h, obj_t *o);

/* ---- collect.c: the gate and the collector ---------------------------------
 *
 * Every object or list operation runs between shr__gate_enter and
 * shr__gate_exit: the thread's slot says in_heap = 1 while it runs, and a
 * thread entering while a collector asks the world to stop waits at the
 * gate. The store of in_heap and the load of `requested` that follows it
 * are a Dekker pair with the collector's store of `requested` and its loads
 * of in_heap. Two ways to order them:
 *   asymmetric  (shr__gate_asym: this process is registered with
 *               membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) a
 *               relaxed store, a compiler barrier, a relaxed load; the
 *               collector issues membarrier(GLOBAL_EXPEDITED) after its
 *               store, which runs a full barrier on every running thread
 *               of every registered process (a thread not running passed
 *               one when it was switched out);
 *   symmetric   a seq_cst store and a seq_cst load (an xchg on x86): when
 *               the kernel has no such membarrier, before this process has
 *               registered, and under ThreadSanitizer (which checks this
 *               protocol and does not model membarrier).
 * Calls nest: only the outermost enters and exits. */
extern _Atomic bool shr__gate_asym;
/* Register this process for the asymmetric gate (once, and again in a fork
 * child); called when a heap is opened. */
void shr__gate_init(void);
/* A full barrier on every running thread of every registered process
 * (membarrier GLOBAL_EXPEDITED), for the other asymmetric pairs built on
 * the same registration (list/list.c's read sections). 0, or -errno; 0 and
 * nothing done when the kernel has no such membarrier (then no process
 * registered, and every reader uses its symmetric order). */
int shr__gate_barrier(void);
/* initial-exec, as shr__tl_ctx: general-dynamic TLS cost a __tls_get_addr
 * call (~66 instructions) on every gated operation. */
extern _Thread_local uint32_t shr__gate_depth __attribute__((tls_model("initial-exec")));
extern _Thread_local thread_slot_t *shr__gate_ts __attribute__((tls_model("initial-exec")));
extern _Thread_local shr_heap_t *shr__gc_pending __attribute__((tls_model("initial-exec"))); /* the heap whose collection is due */
int shr__gate_slow(shr_heap_t *h);
void shr__gate_exit_slow(shr_heap_t *h);

static inline gc_global_t *shr__gc_global(const shr_heap_t *h)
{
    return (gc_global_t *)shr__seg_global(h, SHR_LAYER_GC);
}

/* 0, or a negative code (no thread slot; SHR_ELOCKTIMEOUT when a live
 * collector keeps the world stopped past the lock timeout), and then the
 * gate was not entered. */
shr_inline int shr__gate_enter(shr_heap_t *h)
{
    if (shr__gate_depth) {
        shr__gate_depth++;
        return 0;
    }
    shr_tctx_t *c = shr__tctx(h);
    if (shr_unlikely(!c)) return -errno;
    shr__gate_depth = 1;
    shr__gate_ts = c->ts;
    _Atomic uint64_t *req = &shr__gc_global(h)->requested;
#if !defined(__SANITIZE_THREAD__)
    if (shr_likely(atomic_load_explicit(&shr__gate_asym, memory_order_relaxed))) {
        atomic_store_explicit(&c->ts->in_heap, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst); /* the collector's membarrier does the rest */
        if (shr_unlikely(atomic_load_explicit(req, memory_order_relaxed) != 0)) return shr__gate_slow(h);
        return 0;
    }
#endif
    atomic_store_explicit(&c->ts->in_heap, 1, memory_order_seq_cst);
    if (shr_unlikely(atomic_load_explicit(req, memory_order_seq_cst) != 0)) return shr__gate_slow(h);
    return 0;
}

shr_inline void shr__gate_exit(shr_heap_t *h)
{
    if (--shr__gate_depth) return;
    atomic_store_explicit(&shr__gate_ts->in_heap, 0, memory_order_release);
    if (shr_unlikely(shr__gc_pending != NULL)) shr__gate_exit_slow(h);
}

/* Count one container created (+1) or freed (-1) in this thread's slot;
 * folds every GC_FOLD and then decides whether an automatic collection is
 * due (shr__gc_pending: run at the gate's exit). */
void shr__gc_count(shr_heap_t *h, int d);
/* Fold a released slot's residue (the registry's thread_release hook). */
void shr__gc_thread_release(shr_heap_t *h, uint32_t slot, bool dead);
/* Free this process's collector state of the handle (enable, debug,
 * callbacks, saved garbage: collect.c), at close. */
void shr__gc_priv_free(shr_heap_t *h);
/* Initialise the collector's part of a new segment. */
int shr__gc_collect_init(shr_heap_t *h);

/* ---- log.c: the event log ------------------------------------------------- */

/* Append one event (SHR_GC_EV_*) to the heap's log; nothing when it has
 * none. Any thread, any lock held; never waits for a live writer (a slot a
 * live writer still holds is dropped, counted). Fault point gc.log.write. */
void shr__gc_log(shr_heap_t *h, int type, int gen, int phase, uint64_t a0, uint64_t a1, uint64_t a2,
                 uint64_t a3);
void shr__gc_log_init(shr_heap_t *h);

/* ---- the layer ------------------------------------------------------------ */

void shr__gc_params(shr__seg_params_t *p);
int shr__gc_init_segment(shr_heap_t *h);

#endif /* SHR_GC_H */
