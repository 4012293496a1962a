/* sharena objects and the cycle collector. Included by <sharena.h>.
 *
 * Objects are refcounted blocks of the heap that any process can reach:
 * nodes (a built-in type: reference slots plus payload bytes), objects of
 * user types (a layout declared in the heap, so that every process and the
 * `sharena` tool can traverse them), and the shared lists of
 * <sharena/list.h>. Objects may refer to each other in any shape, cycles
 * included; the cycle collector (CPython's generational trial deletion)
 * frees the cycles nothing refers to any more.
 *
 * References. A shr_ref_t is a reference this process holds: one lease in
 * its lease table and one count in the object's refcount. Every call that
 * hands out a shr_ref_t returns a new reference, which the caller releases
 * with shr_obj_release (or, if the process dies or closes the heap, which is
 * released for it). A ref is valid only in the process that got it; a ref
 * this process does not hold (never had, or already released) is refused
 * with -EINVAL and nothing changes. {0} is "no object".
 *
 * Errors, for every call that returns int: -EINVAL for a NULL heap or
 * out-parameter, a ref this process does not hold, a size out of range;
 * SHR_EINDEX for a slot past the object's last (shr_obj_set, shr_obj_get);
 * SHR_ETYPE for a type that is not a node or a declared user type, or an
 * object of another kind than the call needs (shr_obj_set on a list);
 * -ENOMEM; SHR_ELOCKTIMEOUT when a wait (a lock, or a collection in another
 * process that does not end) outlasts the heap's lock timeout. A call that
 * fails changes nothing.
 */
#ifndef SHARENA_GC_H
#define SHARENA_GC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shr_heap shr_heap_t;
typedef uint64_t shr_off_t;

/* A reference this process holds (a lease); {0} is none. */
typedef struct shr_ref { shr_off_t off; } shr_ref_t;

/* Object type ids. They live in their own range, above every value tag of
 * the list (shr_type_t, 1..8), so that one cannot be passed for the other
 * unnoticed: shr_obj_new(heap, SHR_INT, ...) is SHR_ETYPE. */
#define SHR_TYPE_NODE 0x100u          /* nslots reference slots + payload bytes */
#define SHR_TYPE_USER_FIRST 0x101u    /* the first id shr_obj_type_declare hands out */
#define SHR_TYPE_USER_MAX 64u         /* user types a heap can declare */
#define SHR_TYPE_NAME_MAX 31          /* bytes of a user type's name */
#define SHR_OBJ_LIST 0x1ffu           /* shr_obj_type() of a shared list */

/* A new object with refcount 1, returned as a new reference in *out.
 * type SHR_TYPE_NODE: nslots (0..2^24) empty slots and `payload` zeroed
 * bytes (at most 2^32 - 1). A user type: nslots and payload must be the
 * declared ones. Containers count towards the collector's generation 0 and
 * may start an automatic collection when the call returns (shr_gc_*). */
int shr_obj_new(shr_heap_t *heap, uint32_t type, uint32_t nslots, size_t payload, shr_ref_t *out);
/* Store child (a reference this process holds, or {0}) in obj's slot: the
 * slot takes a reference of its own, and the object it held before is
 * released. obj is a node or a user-type object. */
int shr_obj_set(shr_heap_t *heap, shr_ref_t obj, uint32_t slot, shr_ref_t child); /* child may be {0} */
/* A new reference to what obj's slot holds, or {0} for an empty slot. */
int shr_obj_get(shr_heap_t *heap, shr_ref_t obj, uint32_t slot, shr_ref_t *out);  /* a new reference or {0} */
/* Another reference to the same object. */
int shr_obj_dup(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out);
/* Release a reference (the object is freed with its last one). A ref this
 * process does not hold, and {0}, are ignored. */
void shr_obj_release(shr_heap_t *heap, shr_ref_t ref);
/* The payload bytes of a node or user-type object, valid while the ref is
 * held; *len (may be NULL) receives their number. NULL with errno EINVAL
 * for a ref this process does not hold or an object without payload (a list). */
void *shr_obj_payload(shr_heap_t *heap, shr_ref_t ref, size_t *len);  /* NULL only on error */
/* The type id of the object (SHR_TYPE_NODE, a user type's id, SHR_OBJ_LIST),
 * or 0 for a ref this process does not hold. */
uint32_t shr_obj_type(shr_heap_t *heap, shr_ref_t ref);
/* The object's reference count now (a snapshot, for tests and tools), or 0. */
uint64_t shr_obj_refcount(shr_heap_t *heap, shr_ref_t ref);

/* Names. Objects and named lists share one namespace of roots: a published
 * name holds a reference until it is unpublished. -EEXIST if taken,
 * -ENOSPC when the root directory is full, -EINVAL/-ENAMETOOLONG for a bad
 * name. Looking a node's name up as a list (shr_list_attach) is SHR_ETYPE;
 * looking a list's name up here gives a reference to the list. */
int shr_obj_publish(shr_heap_t *heap, const char *name, shr_ref_t ref); /* a root holding a reference; -EEXIST if taken */
int shr_obj_lookup(shr_heap_t *heap, const char *name, shr_ref_t *out);
/* Remove the name and release its reference. -ENOENT, SHR_ETYPE for a name
 * that holds no object (shr_root_set's). */
int shr_obj_unpublish(shr_heap_t *heap, const char *name);

/* User types: a layout declared in the heap (name, reference slots, payload
 * bytes), so that every process, and the tool, can traverse, clear and free
 * their objects without code of its own. Declaring the same name with the
 * same layout again returns the same id; with another layout, -EEXIST.
 * -ENOSPC when SHR_TYPE_USER_MAX types are declared. */
int shr_obj_type_declare(shr_heap_t *heap, const char *name, uint32_t nslots, size_t payload, uint32_t *id);
/* A declared type's id by name (-ENOENT), and a type's layout (SHR_ETYPE for
 * an id that is not declared). name receives at least SHR_TYPE_NAME_MAX+1. */
int shr_obj_type_lookup(shr_heap_t *heap, const char *name, uint32_t *id);
int shr_obj_type_info(shr_heap_t *heap, uint32_t id, char *name, uint32_t *nslots, size_t *payload);

/* ---- the cycle collector -------------------------------------------------
 *
 * CPython's algorithm and surface: three generations; a container (node,
 * user-type object, list) starts in generation 0; a collection of
 * generation g examines generations 0..g and moves the survivors to g + 1
 * (2 stays 2). Automatic collections: when the containers created minus
 * those freed since the last collection exceed threshold[0], the thread
 * whose creation crossed it collects, on its way out of that call, the
 * oldest generation g whose count exceeds threshold[g] (count[1] and
 * count[2] count collections of the generation below), a full collection
 * only when the objects that reached generation 2 since the last full one
 * exceed a quarter of those that survived it (CPython's long-lived rule).
 * Defaults (2000, 10, 10) as CPython 3.13 (3.11 and 3.12 use 700 for
 * threshold[0]). Counts are kept per thread and folded into the heap's in
 * batches of 64, so count[0] may lag by up to 64 per thread.
 *
 * A collection stops the world: every thread of every process attached
 * finishes the object or list call it is in, and waits at the entry of its
 * next one until the collection's pause ends. Dead processes are skipped,
 * their references released first. If a live thread does not stop within
 * the stop timeout (1 s; SHARENA_GC_STOP_TIMEOUT_MS overrides it), the
 * collection fails with -ETIMEDOUT before it changed anything. Garbage is
 * freed after the world restarts. A collector that dies leaves garbage for
 * the next collection, never a freed reachable object.
 */

/* The phases of a collection, in the order they run (docs/gc.md, "The
 * phases"). The first six happen with the world stopped, back to back:
 * their times sum to the pause (pause_ns). FREE runs after the restart.
 *   STOP      the stop request until every live thread is out of the heap
 *             (the time to stop the world, ttsp_ns)
 *   WALK      the walk of the object pools that finds the candidates (and
 *             the repair of lists a dead thread left locked, and the
 *             candidate index). The mark-sweep: the whole trace (walk,
 *             roots, leases, marking from them). Bacon and Rajan: the rings
 *             emptied into the roots (a walk of every container when all
 *             are roots)
 *   SUBTRACT  trial deletion: each candidate's references to candidates
 *             subtracted from their copies of the counts (0 for the
 *             mark-sweep). Bacon and Rajan: MarkRoots (mark gray)
 *   MARK      trial deletion: the marking from candidates left above zero.
 *             The mark-sweep: the marking of what the frozen and unseen
 *             references hold, and the repair of counts. Bacon and Rajan:
 *             ScanRoots (black again or white) and CollectRoots
 *   PROMOTE   survivors moved to the next generation, the counts reset
 *             (the mark-sweep: and the walk for stray blocks; Bacon and
 *             Rajan: the counts reset, nothing promoted)
 *   RESTART   the request withdrawn: the world runs again
 *   FREE      the garbage flagged, cleared and freed, the world running */
enum {
    SHR_GC_PHASE_STOP = 0,
    SHR_GC_PHASE_WALK,
    SHR_GC_PHASE_SUBTRACT,
    SHR_GC_PHASE_MARK,
    SHR_GC_PHASE_PROMOTE,
    SHR_GC_PHASE_RESTART,
    SHR_GC_PHASE_FREE,
    SHR_GC_NPHASES
};
/* The phase's name ("stop", "walk", ...), NULL for another number. */
const char *shr_gc_phase_name(int phase);

/* The pause histograms: bucket b counts the collections whose pause (ns)
 * had its highest set bit at b, i.e. lay in [2^b, 2^(b+1)) (bucket 0 also
 * counts a pause of 0; the last one every pause of 2^39 ns, about 9 min,
 * or more). */
#define SHR_GC_HIST_BUCKETS 40

/* What one collection did. Set size = sizeof(shr_gc_result_t) before the
 * call (SHR_GC_RESULT_INIT); a library that knows more fields than the
 * caller fills only the caller's. */
typedef struct shr_gc_result {
    size_t size;              /* in: sizeof the caller's struct */
    int generation;           /* collected generation */
    int reserved0;
    uint64_t collected;       /* unreachable objects freed */
    uint64_t uncollectable;   /* unreachable objects left for the next collection (this thread
                                 could not enter the gate to free them) */
    uint64_t candidates;      /* objects examined */
    uint64_t untraversable;   /* objects of types this process cannot traverse (kept) */
    uint64_t ttsp_ns;         /* time to stop the world */
    uint64_t pause_ns;        /* world stopped: from the stop request to the restart */
    uint64_t total_ns;        /* the whole call, freeing included */
    uint32_t stopped_threads; /* threads that were inside a call and had to be waited for */
    uint32_t dead_skipped;    /* dead processes' threads skipped (their references released) */
    int algorithm;            /* SHR_GC_TRIAL_DELETION, SHR_GC_BACON_RAJAN or SHR_GC_MARK_SWEEP */
    uint32_t exact;           /* mark-sweep: 1 when every reference was seen (see shr_gc_collect_with) */
    uint64_t repaired;        /* mark-sweep with SHR_GC_REPAIR: counts set to their true value */
    uint64_t repaired_refs;   /* the references those counts had above it */
    uint64_t strays;          /* mark-sweep, exact: blocks a dead thread left allocated in object
                                 pools with no object in them, freed */
    uint64_t phase_ns[SHR_GC_NPHASES]; /* time of each phase (SHR_GC_PHASE_*); the first six sum
                                          to pause_ns, FREE is part of total_ns only */
    uint64_t edges;           /* references visited: trial deletion, those the candidates hold
                                 (each once, by SUBTRACT); the mark-sweep, those of every object
                                 it traced */
    uint64_t bytes_freed;     /* bytes of the blocks of the objects freed (a node's separate slot
                                 block and a list's item array are not counted) */
} shr_gc_result_t;
#define SHR_GC_RESULT_INIT                                                                          \
    {sizeof(shr_gc_result_t), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {0, 0, 0, 0, 0, 0, 0}, \
     0, 0}

/* Collect generation 0, 1 or 2. Returns collected + uncollectable, or
 * -EINVAL (bad generation or res->size), -ETIMEDOUT (a live thread did not
 * stop: nothing changed), SHR_ELOCKTIMEOUT (another collection holds the
 * collector's lock past the lock timeout), -EDEADLK (called from inside a
 * sharena call, e.g. a wait hook). res may be NULL. */
int64_t shr_gc_collect(shr_heap_t *heap, int generation, shr_gc_result_t *res);
int shr_gc_get_count(shr_heap_t *heap, int64_t count[3]);
int shr_gc_get_threshold(shr_heap_t *heap, uint32_t threshold[3]);
/* threshold[0] == 0 disables automatic collections, as in CPython; the
 * thresholds are the heap's, for every process. */
int shr_gc_set_threshold(shr_heap_t *heap, const uint32_t threshold[3]);

/* Per-generation totals of the measuring window: since the heap was
 * created, or since the last shr_gc_stats_reset (CPython's gc.get_stats(),
 * plus the times). They live in the segment: any process reads the same
 * (each field a snapshot; one collection's fields are added one after
 * another, so a read during a collection's record may see part of it). A
 * collection that fails (-ETIMEDOUT, -ENOMEM) adds nothing. */
typedef struct shr_gc_gen_stats {
    uint64_t collections, collected, uncollectable;
    uint64_t pause_ns_total, pause_ns_max, ttsp_ns_max;
    uint64_t phase_ns[SHR_GC_NPHASES]; /* each phase's total (shr_gc_result_t.phase_ns) */
    uint64_t candidates;      /* objects examined, summed */
    uint64_t edges;           /* references visited, summed */
    uint64_t bytes_freed;     /* bytes of the objects freed, summed */
    uint64_t total_ns;        /* whole collections, freeing included, summed */
    uint64_t pause_hist[SHR_GC_HIST_BUCKETS]; /* pauses, log2 buckets (SHR_GC_HIST_BUCKETS): the
                                                 buckets sum to `collections` */
} shr_gc_gen_stats_t;
typedef struct shr_gc_stats {
    shr_gc_gen_stats_t gen[3];
    uint64_t auto_failures;   /* automatic collections that could not stop the world */
    uint64_t long_lived_total, long_lived_pending;
    uint64_t window_start_ns; /* CLOCK_REALTIME of the last shr_gc_stats_reset, or of the heap's
                                 creation */
    uint64_t resets;          /* shr_gc_stats_reset calls, ever */
} shr_gc_stats_t;
int shr_gc_get_stats(shr_heap_t *heap, shr_gc_stats_t *out);
/* Open a measuring window (MMTk's harness_begin): every field of
 * shr_gc_stats_t above is set to 0 but long_lived_* (they steer the
 * collector, as do the thresholds and counts, which stay too),
 * window_start_ns is set to now and resets goes up by one. Waits for a
 * collection in progress to end first, so that none is half counted.
 * 0, -EINVAL (NULL heap), -EDEADLK (from a collection's callback or
 * inside a call), SHR_ELOCKTIMEOUT, SHR_ELOCK. */
int shr_gc_stats_reset(shr_heap_t *heap);

/* ---- the event log ------------------------------------------------------------
 *
 * A ring of fixed-size records in the segment (the heap option
 * gc_log_records: 4096 by default, SHR_GC_LOG_NONE for none), written by
 * every process's collections and read by any process while the heap is in
 * use (`sharena gc log NAME --follow`). Each record has a sequence number,
 * 1, 2, 3, ... in the order records were begun; once the ring is full the
 * oldest is overwritten. A record is committed by its sequence number,
 * written last: a writer killed mid-record leaves a record no reader ever
 * returns (docs/design/gc.md §12). Times are CLOCK_REALTIME ns; pid is the
 * writer's process. The numbers a[] of each event:
 *   BEGIN          a collection (or freeze, snapshot) began, the collector's
 *                  mutex taken: a0 algorithm (SHR_GC_TRIAL_DELETION, ...,
 *                  SHR_GC_EV_OP_* for the stopped operations), a1 1 when
 *                  automatic, a2 the heap's collections begun ever
 *   STOP           the stop request is stored (world stopping): a0 the
 *                  thread slots to look at
 *   STOPPED        every live thread is out (the STOP phase's end): a0 ttsp
 *                  ns, a1 threads waited for, a2 dead threads skipped
 *   PHASE          a phase from WALK to FREE but RESTART ended (phase =
 *                  SHR_GC_PHASE_*): a0 its ns, a1 the
 *                  phase's count (WALK candidates, SUBTRACT edges, PROMOTE
 *                  survivors, FREE objects freed), a2 WALK of the
 *                  mark-sweep: edges; FREE: bytes freed
 *   RESTARTED      the world runs again (the RESTART phase's end): a0 the
 *                  pause, ns
 *   END            the collection is over: a0 collected, a1 uncollectable,
 *                  a2 bytes freed, a3 total ns
 *   TIMEOUT        a live thread did not stop in time (the request is
 *                  withdrawn, nothing changed): a0 ns waited, a1 its thread
 *                  slot, a2 its thread id
 *   DIED           a collector died holding the collector's mutex (found by
 *                  the next one): a0 the dead collector's request word (0 if
 *                  it had none up)
 *   RECOVERED      a dead collector's stop request withdrawn: a0 its word,
 *                  a1 1 when withdrawn by a thread waiting at the gate, 0 by
 *                  the next collector
 *   LEASES         a dead process's references released: a0 how many
 *   THRESHOLD      an automatic collection is due: generation its
 *                  generation, a0 the count, a1 the threshold
 *   FREEZE         a0 objects moved to the permanent generation
 *   UNFREEZE       a0 objects moved back to generation 2
 *   RESET          shr_gc_stats_reset opened a window */
enum {
    SHR_GC_EV_BEGIN = 1,
    SHR_GC_EV_STOP,
    SHR_GC_EV_STOPPED,
    SHR_GC_EV_PHASE,
    SHR_GC_EV_RESTARTED,
    SHR_GC_EV_END,
    SHR_GC_EV_TIMEOUT,
    SHR_GC_EV_DIED,
    SHR_GC_EV_RECOVERED,
    SHR_GC_EV_LEASES,
    SHR_GC_EV_THRESHOLD,
    SHR_GC_EV_FREEZE,
    SHR_GC_EV_UNFREEZE,
    SHR_GC_EV_RESET,
    SHR_GC_EV_MAX = SHR_GC_EV_RESET
};
/* BEGIN's a0 for the operations that stop the world without collecting. */
#define SHR_GC_EV_OP_VERIFY 0x101
#define SHR_GC_EV_OP_STOPPED 0x102  /* freeze, unfreeze, a snapshot (get_objects, ...) */

typedef struct shr_gc_event {
    uint64_t seq;             /* 1, 2, ...: the order records were begun */
    uint64_t time_ns;         /* CLOCK_REALTIME */
    uint32_t pid;             /* the writing process */
    uint16_t type;            /* SHR_GC_EV_* */
    int8_t generation;        /* the collection's generation, -1 if none */
    uint8_t phase;            /* SHR_GC_EV_PHASE: SHR_GC_PHASE_* */
    uint64_t a[4];            /* the event's numbers (above) */
} shr_gc_event_t;

/* Copy the committed records with sequence numbers from from_seq on, in
 * order, up to max, to out; *next_seq (may be NULL) receives the sequence
 * to pass next time. from_seq 0 (or one already overwritten) starts at the
 * oldest record the ring holds; a record begun but not yet committed ends
 * the copy (next_seq is then its number, to be read again), unless its
 * writer is dead (then it is skipped: a torn record is never returned).
 * Returns how many were copied (0 when there is nothing new, or no log), or
 * -EINVAL (NULL heap, out NULL with max > 0). */
int64_t shr_gc_log_read(shr_heap_t *heap, uint64_t from_seq, shr_gc_event_t *out, size_t max, uint64_t *next_seq);
/* The log's state: records it holds at most (0: no log), the next
 * sequence number to be begun, and records lost because their writer could
 * not take a slot (one a live writer still held a whole ring later). */
typedef struct shr_gc_log_info {
    uint64_t records;
    uint64_t next_seq;
    uint64_t dropped;
} shr_gc_log_info_t;
int shr_gc_log_info(shr_heap_t *heap, shr_gc_log_info_t *out);
/* "begin", "stop", ... for an SHR_GC_EV_* value; NULL for another. */
const char *shr_gc_event_name(int type);

/* ---- the backup mark-sweep and the verifier --------------------------------
 *
 * Both trace the heap from its roots: the named roots that hold a reference
 * and the leases of every process (a process's private references are its
 * leases; those of a dead process not yet released count too, since they
 * will be). Each stops the world as a collection does (and fails as it
 * does: -ETIMEDOUT, SHR_ELOCKTIMEOUT, -EDEADLK), and uses private memory
 * proportional to the objects (about 60 bytes each). docs/design/gc.md §10.
 *
 * The true count of an object is the number of references to it from every
 * object (reachable or not), from roots and from leases. A crash can leave a
 * count above it (a reference a dead thread had taken but not stored, or
 * unstored but not yet released): a leak, never a free. A count below it
 * would free an object still referenced: a bug.
 */

/* The algorithms of shr_gc_collect_with and shr_gc_set_algorithm. */
#define SHR_GC_TRIAL_DELETION 0   /* CPython's generational trial deletion: shr_gc_collect */
#define SHR_GC_BACON_RAJAN 1      /* Bacon and Rajan's synchronous cycle collection (buffered roots) */
#define SHR_GC_MARK_SWEEP 2       /* backup mark-sweep from the roots and the leases */
#define SHR_GC_ALGORITHM_MASK 0xff
#define SHR_GC_REPAIR 0x100       /* with SHR_GC_MARK_SWEEP: also repair counts left too high */

/* One collection with the chosen algorithm; shr_gc_collect is
 * shr_gc_collect_with(heap, SHR_GC_TRIAL_DELETION, generation, res), and
 * both report the same statistics (and add to the same shr_gc_stats_t).
 *
 * SHR_GC_MARK_SWEEP (generation must be 2: it traces the whole heap, and
 * counts as a full collection; survivors move to generation 2) marks what
 * the roots and the leases reach, with the world stopped, and after the
 * restart frees every object it did not reach, whatever its count: cycles,
 * and objects whose only references a dead process left in its counts (a
 * str it made but never stored, a value it replaced but never released).
 * Frozen objects are kept, and what they reach. When the trace is exact it
 * also frees the blocks of unowned object pools that a dead thread left
 * allocated with no object in them (res->strays: taken and never
 * committed, or given back and never freed). res->exact says whether
 * every reference in the heap was seen: no object this process cannot
 * traverse, every lease table read (none moved by a concurrent reclaim), no
 * reference to a block that holds no object, no count below its true value.
 * When not exact, an object whose count exceeds the references found is
 * kept, with everything it reaches (the trial deletion's rule), so an
 * unseen reference never leads to a free.
 *
 * SHR_GC_BACON_RAJAN (Bacon and Rajan, "Concurrent Cycle Collection in
 * Reference Counted Systems", ECOOP 2001, its synchronous algorithm; any
 * generation: it is not generational, and records under the one given)
 * examines the possible roots its heap buffered: on a heap whose algorithm
 * is SHR_GC_BACON_RAJAN (shr_gc_set_algorithm), each container whose count
 * a decref lowered to a value above zero is buffered once, in the thread's
 * ring in the segment. With the world stopped it empties every thread's
 * ring, then MarkRoots (mark gray from each root, subtracting the
 * references among the gray, in private counts), ScanRoots (a gray object
 * with a count left, and what it reaches, black again; the rest white) and
 * CollectRoots (the white are garbage), and after the restart frees the
 * garbage as trial deletion does (flag, clear, free) and the buffered
 * objects whose count reached zero meanwhile (their frees wait for it).
 * The rings of threads that ended or died are consumed too. When a ring
 * overflowed, a thread was killed between buffering a root and recording
 * it, or the heap has just selected the algorithm, every container is a
 * root (res->candidates says so). Frozen
 * objects, and types this process cannot traverse, are never gray.
 * Survivors keep their generation. On a heap that selects another
 * algorithm nothing is buffered, and a call takes every container for a
 * root (the same garbage as trial deletion's full collection). A
 * collection by another algorithm empties the rings too (the roots it
 * drops are found by the next full one).
 *
 * SHR_GC_MARK_SWEEP | SHR_GC_REPAIR also sets, with the world stopped, the
 * count of every reached object whose count exceeds its true value to that
 * value, when the trace is exact and the object has at least one reference
 * found (res->repaired, res->repaired_refs): every reference that can still
 * be released is then one the trace saw.
 *
 * Returns collected + uncollectable, or -EINVAL (an unknown algorithm or
 * flag, SHR_GC_REPAIR without the mark-sweep, the mark-sweep with a
 * generation other than 2, bad res->size), -ENOMEM (nothing freed), and
 * shr_gc_collect's errors. */
int64_t shr_gc_collect_with(shr_heap_t *heap, int algorithm, int generation, shr_gc_result_t *res);

/* The heap's algorithm, stored in the segment (every process sees it):
 * what automatic collections run (SHR_GC_MARK_SWEEP runs as a collection
 * of generation 2 whichever threshold fired), and, for SHR_GC_BACON_RAJAN,
 * whether decrefs buffer possible roots. SHR_GC_TRIAL_DELETION is the
 * default. Selecting SHR_GC_BACON_RAJAN makes its first collection examine
 * every container (what was decref'd before was not buffered). 0, or
 * -EINVAL (NULL heap, an unknown algorithm, a flag). shr_gc_get_algorithm
 * returns the algorithm, or -EINVAL. */
int shr_gc_set_algorithm(shr_heap_t *heap, int algorithm);
int shr_gc_get_algorithm(shr_heap_t *heap);
/* "trial", "bacon-rajan", "marksweep" for an algorithm; NULL for another. */
const char *shr_gc_algorithm_name(int algorithm);

/* What the verifier found. Set size = sizeof before the call
 * (SHR_GC_VERIFY_INIT). */
typedef struct shr_gc_verify_result {
    size_t size;                /* in: sizeof the caller's struct */
    uint64_t objects;           /* objects examined (below) */
    uint64_t live;              /* reachable from the roots and the leases */
    uint64_t unreachable;       /* the rest: garbage cycles, leaked objects, garbage a dead
                                   collector left flagged */
    uint64_t unreachable_bytes; /* their blocks */
    uint64_t above;             /* objects whose count exceeds its true value: leaked references */
    uint64_t excess;            /* the sum of those excesses */
    uint64_t below;             /* objects whose count is below its true value: a bug, must be 0 */
    uint64_t dangling;          /* references to blocks that hold no object: a bug, must be 0 */
    uint64_t edges;             /* references from objects */
    uint64_t root_refs;         /* references from named roots */
    uint64_t lease_refs;        /* references from leases */
    uint64_t untraversable;     /* objects this process cannot traverse: what they hold looks above */
    uint64_t external;          /* objects outside the object pools that a reference names
                                   (a str or bytes over 16 KiB) */
    uint64_t first_below;       /* the offset of one object below, 0 if none */
    uint64_t first_above;       /* the offset of one object above, 0 if none */
    uint64_t pause_ns;          /* the world stopped */
    uint32_t incomplete;        /* 1 when a lease table may have been missed (a reclaim of a dead
                                   process ran meanwhile): `above` may overstate, never `below` */
    uint32_t reserved;
} shr_gc_verify_result_t;
#define SHR_GC_VERIFY_INIT {sizeof(shr_gc_verify_result_t), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

/* Mark from the roots and the leases and compare every object's count with
 * its true value. Objects: the containers and the str and bytes objects in
 * the object pools (every container; every str or bytes up to 16 KiB made
 * by a list call), and those outside them that a reference names. Safe
 * while other processes work: it stops the world as a collection does, and
 * changes nothing but what a collection changes first (dead processes'
 * references released, a list a dead writer left half changed repaired).
 * Returns 0, SHR_ECORRUPT when below or dangling is nonzero (out filled),
 * -EINVAL (NULL, bad size), -ENOMEM, or shr_gc_collect's errors. */
int shr_gc_verify(shr_heap_t *heap, shr_gc_verify_result_t *out);

/* ---- seeded graphs (gc/graph.c) ------------------------------------------
 *
 * The graphs of the collector's benchmark against CPython, built in the
 * heap with nodes from a splitmix64 stream (U(k) = next() % k) whose draws
 * are those of bench/gc/cpython_gc.py in the same order, so that sharena
 * and CPython build the same graph for the same (kind, n, seed). n counts
 * the graph's containers (CPython's lists), the root not included:
 *   live_flat   root = [l_0 .. l_{n-1}], each l_i an empty node. No garbage.
 *   live_graph  for i in 1..n-1: l_{U(i)} gets l_i (a random recursive
 *               tree); then for each i, if U(2) == 0, l_i gets l_{U(n)};
 *               root = [l_0]. No garbage, many live cycles.
 *   ring2       n/2 garbage rings a = [b], b = [a].
 *   ring100     n/100 garbage rings l_k = [l_{(k+1) % 100}].
 *   mix         live_graph over 0.8n nodes, each with 8 payload bytes
 *               (int64 1000 + i, CPython's int item); then garbage until
 *               0.2n: rings of min(2 + U(99), left) nodes, each member, while
 *               garbage is left, getting a new empty node when U(5) == 0.
 *   tree        GCBench's shape: a complete binary tree in breadth-first
 *               order, l_i holding l_{2i+1} and l_{2i+2} (those below n);
 *               root = [l_0]. No draws, no garbage, no cycles.
 *   churn       a live table and a stream of n new objects, of which a given
 *               share becomes cyclic garbage: shr_graph_build_churn below
 *               (shr_graph_build uses SHR_GRAPH_CHURN_INIT's parameters).
 * *root receives a new reference to the root node, or {0} for a graph with
 * no live part; release it and every other object is garbage. The garbage
 * is unreachable when the call returns (for the next collection).
 * info (may be NULL; set info->size = sizeof *info) receives the counts and
 * a digest of the edges in CPython's append order (the same fold on both
 * sides: digest = (digest ^ (src * 0x9E3779B97F4A7C15 + dst)) * 0x100000001B3
 * mod 2^64, indices in CPython's creation order, the root as 2^64 - 1).
 * Errors: -EINVAL (NULL heap or root, bad info->size, n = 0 or above
 * SHR_GRAPH_MAX_N, n below a ring's length, or below 10 for mix), -ENOENT
 * (unknown kind), or the object calls' errors; on failure every reference
 * the call took is released (what it linked into cycles is garbage for the
 * next collection) and *root is {0}. */
enum { SHR_GRAPH_LIVE_FLAT = 1, SHR_GRAPH_LIVE_GRAPH, SHR_GRAPH_RING2, SHR_GRAPH_RING100, SHR_GRAPH_MIX,
       SHR_GRAPH_TREE, SHR_GRAPH_CHURN };
#define SHR_GRAPH_MAX_N (1u << 24)   /* live_flat's root has one slot per object */
typedef struct shr_graph_info {
    size_t size;              /* in: sizeof the caller's struct */
    uint64_t objects;         /* containers created, the root included */
    uint64_t live;            /* reachable from the root (root included) */
    uint64_t garbage;         /* unreachable on return */
    uint64_t edges;           /* references stored */
    uint64_t digest;          /* of the edges, as above */
} shr_graph_info_t;
int shr_graph_build(shr_heap_t *heap, int kind, uint64_t n, uint64_t seed, shr_ref_t *root,
                    shr_graph_info_t *info);
/* Churn: the collector under a steady load, automatic collections as the
 * heap's thresholds say. First a live table: root = [x_0 .. x_{S-1}], each
 * x_j = [root] (a back reference: every live object is on a cycle through
 * the root, as objects that know their container). Then a stream of n new
 * objects, index S + i, each one draw r = U(100):
 *   r <  garbage_pct  a new empty node that joins the pending ring; when
 *                     the ring has `cycle` members they are linked
 *                     m_k = [m_{(k+1) % cycle}] (cycle 1: a node holding
 *                     itself) and dropped: cyclic garbage, the collector's.
 *   otherwise         x = [root] stored in the table's slot U(S), replacing
 *                     the object there, which its count frees at once.
 * A ring still pending at the end is closed as it is (fewer members).
 * Live at every moment: the root and its S objects; memory beyond that is
 * garbage the collector has not freed yet. info: objects = 1 + S + n,
 * live = 1 + S, garbage = the stream objects that became cyclic garbage
 * (automatic collections during the build may have freed some already);
 * the rest (objects - live - garbage) were freed by counts. The digest folds
 * the edges in store order, each ring's when it closes; a store into the
 * table's slot j has the source 2^64 - 1 - j (slot 0: the root's index of
 * the other kinds). bench/gc/cpython_gc.py builds the same stream from lists.
 * progress (may be NULL) is called after every `every` stream objects (0:
 * never) with how many were made, outside any sharena call: it may use the
 * heap (the benchmark samples memory and objects there).
 * n may be up to 2^32 (the stream holds nothing but the pending ring).
 * Errors as shr_graph_build's, and -EINVAL for a NULL churn, a bad size,
 * live above SHR_GRAPH_MAX_N, garbage_pct above 100, or cycle 0 or above
 * SHR_GRAPH_CYCLE_MAX. */
#define SHR_GRAPH_CYCLE_MAX 65536u
typedef struct shr_graph_churn {
    size_t size;              /* in: sizeof the caller's struct */
    uint64_t live;            /* S, the table's slots; 0: n / 10, at least 1 */
    uint32_t garbage_pct;     /* share of the stream made cyclic garbage, 0..100 */
    uint32_t cycle;           /* members of each garbage ring, 1..SHR_GRAPH_CYCLE_MAX */
    uint64_t every;           /* progress after every `every` stream objects; 0: never */
    void (*progress)(shr_heap_t *heap, uint64_t done, void *arg);
    void *arg;
} shr_graph_churn_t;
#define SHR_GRAPH_CHURN_INIT {sizeof(shr_graph_churn_t), 0, 50, 10, 0, NULL, NULL}
int shr_graph_build_churn(shr_heap_t *heap, uint64_t n, uint64_t seed, const shr_graph_churn_t *churn,
                          shr_ref_t *root, shr_graph_info_t *info);
/* A graph kind by name ("live_flat", ...), -ENOENT for an unknown name,
 * -EINVAL for NULL; and the name of a kind, NULL for an unknown one. */
int shr_graph_kind(const char *name);
const char *shr_graph_name(int kind);
/* One step of splitmix64 (Vigna): the stream the graphs draw from. */
uint64_t shr_graph_splitmix64(uint64_t *state);

/* ---- the rest of CPython's gc module ---------------------------------------
 *
 * Whose is what. The thresholds, the counts, the statistics and the
 * generations (frozen included) are the heap's: every process sees one
 * collector. enable/disable, the debug flags, the callbacks and the saved
 * garbage are this process's, per heap handle (what a CPython user expects
 * of one interpreter): shr_gc_disable stops this process's automatic
 * collections only; another process's still run, and shr_gc_collect always
 * works. A new handle starts enabled, debug 0, no callbacks.
 */
int shr_gc_enable(shr_heap_t *heap);
int shr_gc_disable(shr_heap_t *heap);
/* 1 enabled, 0 disabled, -EINVAL for a NULL heap. */
int shr_gc_isenabled(shr_heap_t *heap);

/* Debug flags, CPython's values. Output goes to stderr in CPython's format:
 *   STATS          "gc: collecting generation G...", the objects in each
 *                  generation and the permanent one, then
 *                  "gc: done, N unreachable, M uncollectable, S.SSSSs elapsed"
 *   COLLECTABLE    "gc: collectable <TYPE 0xOFFSET>" for each garbage object
 *                  (TYPE: node, list, or the user type's name; the offset in
 *                  the segment stands for the address)
 *   UNCOLLECTABLE  "gc: uncollectable <TYPE 0xOFFSET>" for garbage left for
 *                  the next collection
 *   SAVEALL        garbage is not freed: this process keeps a reference to
 *                  each, to be taken with shr_gc_garbage_take
 * Printing happens with the world running. */
#define SHR_GC_DEBUG_STATS 1u
#define SHR_GC_DEBUG_COLLECTABLE 2u
#define SHR_GC_DEBUG_UNCOLLECTABLE 4u
#define SHR_GC_DEBUG_SAVEALL 32u
#define SHR_GC_DEBUG_LEAK (SHR_GC_DEBUG_COLLECTABLE | SHR_GC_DEBUG_UNCOLLECTABLE | SHR_GC_DEBUG_SAVEALL)
/* -EINVAL for a NULL heap or a flag not above (nothing changes). */
int shr_gc_set_debug(shr_heap_t *heap, unsigned flags);
/* The flags (>= 0), or -EINVAL. */
int shr_gc_get_debug(shr_heap_t *heap);
/* Move up to cap of the references SAVEALL kept to out[] (the caller
 * releases them); returns how many moved. out NULL with cap 0: how many are
 * kept. -EINVAL for a NULL heap, or out NULL with cap > 0. */
int64_t shr_gc_garbage_take(shr_heap_t *heap, shr_ref_t *out, size_t cap);

/* The permanent generation (CPython's freeze). shr_gc_freeze moves every
 * tracked object of generations 0..2 to the permanent generation, which no
 * collection examines (its cycles are never freed; objects in it are still
 * freed when their count reaches 0); shr_gc_unfreeze moves them all to
 * generation 2. Both stop the world, and act for every process. They return
 * how many objects moved; shr_gc_get_freeze_count how many are frozen.
 * Errors as shr_gc_collect's (-ETIMEDOUT, SHR_ELOCKTIMEOUT, -EDEADLK). */
int64_t shr_gc_freeze(shr_heap_t *heap);
int64_t shr_gc_unfreeze(shr_heap_t *heap);
int64_t shr_gc_get_freeze_count(shr_heap_t *heap);

/* 1 if the collector tracks the object (nodes, user types, lists), 0 if not
 * (strings and bytes), -EINVAL for a NULL heap or a ref this process does
 * not hold. */
int shr_gc_is_tracked(shr_heap_t *heap, shr_ref_t ref);
/* The objects ref refers to (its slots' or items' objects), as new
 * references in out[0..min(n, cap)), n returned (call again with a larger
 * array when n > cap). -EINVAL (NULL heap, a ref not held, out NULL with
 * cap > 0), -ENOMEM (nothing handed out). Stops the world for the snapshot. */
int64_t shr_gc_get_referents(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out, size_t cap);
/* The tracked objects of a generation (0, 1, 2, 3 for the permanent one, or
 * -1 for all), as shr_gc_get_referents. -EINVAL for another generation. */
int64_t shr_gc_get_objects(shr_heap_t *heap, int generation, shr_ref_t *out, size_t cap);
/* The tracked objects that refer to ref, as shr_gc_get_referents. */
int64_t shr_gc_get_referrers(shr_heap_t *heap, shr_ref_t ref, shr_ref_t *out, size_t cap);

/* Callbacks (CPython's gc.callbacks): called by every collection this
 * process runs (explicit or automatic), in the collecting thread, with the
 * world running: phase "start" before the world is stopped, "stop" after
 * the garbage is freed. They may use the heap; a collection, freeze or
 * snapshot they start fails with -EDEADLK. Collections of other processes
 * call their own process's callbacks. */
typedef struct shr_gc_info {
    int generation;
    uint64_t collected;       /* 0 at "start" */
    uint64_t uncollectable;   /* 0 at "start" */
} shr_gc_info_t;
typedef void (*shr_gc_callback_fn)(shr_heap_t *heap, const char *phase, const shr_gc_info_t *info, void *arg);
#define SHR_GC_CALLBACKS_MAX 16
/* -EINVAL (NULL heap or fn), -EEXIST (the same fn and arg), -ENOSPC. */
int shr_gc_callback_add(shr_heap_t *heap, shr_gc_callback_fn fn, void *arg);
/* -EINVAL, -ENOENT (not added). */
int shr_gc_callback_remove(shr_heap_t *heap, shr_gc_callback_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_GC_H */
