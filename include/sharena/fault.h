/* sharena fault points: crash and failure injection at the real code.
 *
 * A fault point is a named place in the library, at a commit point or an
 * allocation, where a test (or an experimenter) can make the calling process
 * stop, die or fail on the nth time it gets there. Crash tests use them to
 * stop the real code at a chosen instruction instead of writing crash states
 * by hand; out-of-memory tests fail the nth allocation of an operation and
 * check that the failed call changed nothing (SQLite's way).
 *
 * Points are compiled into debug builds (SHR_DEBUG >= 1, the dev preset) and
 * are absent from release builds, where every call below returns -ENOSYS and
 * a point costs nothing. In a debug build an unarmed point costs one relaxed
 * load of a process-wide flag.
 *
 * Arming, per process (a fork child inherits its parent's state):
 *   - shr_fault_arm("list.set.commit", 3, SHR_FAULT_KILL) from a test;
 *   - SHARENA_FAULT=point:nth:action[,point:nth:action...] in the
 *     environment, read once when the library is loaded; action is one of
 *     kill, stop, fail.
 * nth counts from 1: the nth hit of the point after arming fires, once; the
 * point is then disarmed. Hits are counted per process, from every thread.
 *
 *   kill  the process SIGKILLs itself (a crash at that instruction);
 *   stop  the process SIGSTOPs itself; after SIGCONT it goes on as if
 *         nothing happened (a live process that does not make progress);
 *   fail  the point reports failure to its site, which fails the way it
 *         would on real exhaustion (an allocation returns NULL, a commit
 *         -ENOMEM): every point's description says what "fail" means there.
 *
 * The list of points is SHR_FAULT_POINTS below: one X-macro line per point,
 * (identifier, name, what happens there, what "fail" does). Add a point by
 * adding a line and one SHR_FAULT(ID) at the site.
 */
#ifndef SHARENA_FAULT_H
#define SHARENA_FAULT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shr_fault_action {
    SHR_FAULT_KILL = 1,
    SHR_FAULT_STOP = 2,
    SHR_FAULT_FAIL = 3
} shr_fault_action_t;

#define SHR_FAULT_POINTS(X)                                                          \
    X(OBJ_ALLOC, "obj.alloc",                                                        \
      "the block of a new object (str, bytes, list or node) made by an operation",  \
      "the allocation returns NULL (the operation fails with -ENOMEM)")          \
    X(ALLOC_ARENA_COMMIT, "alloc.arena.commit",                                      \
      "committing an arena's header page, small pools, or a medium pool's carved pages", \
      "the commit fails: the allocation returns NULL with errno ENOMEM")             \
    X(ALLOC_POOL_CARVE, "alloc.pool.carve",                                          \
      "a new pool's header written, the arena's pool_address not yet advanced",      \
      "nothing (this step cannot fail)")                                             \
    X(ALLOC_POOL_RECLASS, "alloc.pool.reclass",                                      \
      "a pool given a size class (new, or empty and re-classed): its block size "   \
      "written, its other geometry and its class not yet",                           \
      "nothing (this step cannot fail)")                                             \
    X(ALLOC_POOL_ADOPT, "alloc.pool.adopt",                                          \
      "an orphan pool taken off its list and owned, its state not yet USED",         \
      "nothing (this step cannot fail)")                                             \
    X(ALLOC_REMOTE_SPLICE, "alloc.remote.splice",                                    \
      "a pool's remote-free stack taken, not yet spliced into its local list",       \
      "nothing (this step cannot fail)")                                             \
    X(ALLOC_HUGE_COMMIT, "alloc.huge.commit",                                        \
      "committing the pages of a huge block, its chunks taken but not tagged",       \
      "the commit fails: the allocation returns NULL with errno ENOMEM")             \
    X(ALLOC_HUGE_TAG, "alloc.huge.tag",                                              \
      "a huge block's tail chunks tagged, its head (the commit point) not yet",      \
      "nothing (this step cannot fail)")                                             \
    X(ALLOC_CHUNK_RELEASE, "alloc.chunk.release",                                    \
      "freed chunks marked free, their pages not yet released to the system",        \
      "the release fails: the pages stay committed (counted, reused when taken)")   \
    X(REG_PROC_CLAIM, "registry.proc.claim",                                         \
      "attach: a process entry's fields written and its life mutex held, "           \
      "before the entry is marked LIVE (the registry lock held)",                    \
      "the claim is undone and attach fails with SHR_EPROCS")                        \
    X(REG_SLOT_CLAIM, "registry.slot.claim",                                         \
      "a thread's first use of a heap: its slot's fields written, before the "      \
      "slot is marked LIVE (the registry lock held)",                                \
      "no slot: the call fails as when every slot is taken (EAGAIN)")                \
    X(REG_RECLAIM, "registry.reclaim",                                               \
      "a sweep: a dead process's thread slots and layer state released, before "    \
      "its entry is marked FREE (the registry lock held)",                           \
      "the entry is left for the next sweep")                                        \
    X(REG_UNLINK, "registry.unlink",                                                 \
      "the last close of an unlink-on-last-close heap decided to remove the name "   \
      "(the registry lock held)",                                                    \
      "the name is kept, as if another process were still attached")              \
    X(LIST_ALLOC, "list.alloc",                                                      \
      "any other allocation of a list or lease operation: item arrays, lease "      \
      "tables, and the process memory of handles, values, repr and format",        \
      "the allocation returns NULL (the operation fails with -ENOMEM)")          \
    X(LEASE_RECORD, "lease.record",                                                  \
      "a lease was just recorded (its entry's count stored), the lease lock held",   \
      "ignored: a crash point")                                                      \
    X(LEASE_FORGET, "lease.forget",                                                  \
      "a lease was just forgotten, before the decref it stands for",                 \
      "ignored: a crash point")                                                      \
    X(LEASE_DRAIN, "lease.drain",                                                    \
      "releasing a dead process's leases: an entry's count lowered, before its "    \
      "decref",                                                                      \
      "ignored: a crash point")                                                      \
    X(LIST_SET, "list.set.commit",                                                   \
      "a set: the new item stored under the op record, before the record is "      \
      "cleared (the list lock held)",                                                \
      "ignored: a crash point")                                                      \
    X(LIST_SHIFT, "list.shift",                                                      \
      "an insert or delete: one item moved in place and its progress stored",        \
      "ignored: a crash point")                                                      \
    X(SOLO_SET, "solo.set.commit",                                                   \
      "a compact list's set: its redo record committed, the item not yet "          \
      "rewritten (the page's lock held)",                                            \
      "ignored: a crash point")                                                      \
    X(SOLO_PROMOTE, "solo.promote",                                                  \
      "a compact list becoming a heap: the heap and its list written, the "         \
      "page's state not yet SHR_SOLO_HEAP (the page's lock held)",                  \
      "ignored: a crash point")                                                      \
    X(LIST_GROW, "list.grow.swap",                                                   \
      "growth: the new array filled and the old one retired, before the new one "   \
      "is published",                                                                \
      "ignored: a crash point")                                                      \
    X(OBJ_DEALLOC, "obj.dealloc",                                                    \
      "a list's or node's dealloc or clear: one child detached, before its decref",  \
      "ignored: a crash point")                                                      \
    X(OBJ_SET, "obj.set",                                                            \
      "shr_obj_set: the child's count raised, before the slot holds it "            \
      "(the node's lock held, inside the gate)",                                     \
      "ignored: a crash point")                                                      \
    X(GC_STOPPED, "gc.stopped",                                                      \
      "a collection: the world stopped, nothing examined yet",                       \
      "ignored: a crash point")                                                      \
    X(GC_PROMOTE, "gc.promote",                                                      \
      "a collection: one survivor moved to the next generation (world stopped)",     \
      "ignored: a crash point")                                                      \
    X(GC_FLAG, "gc.flag",                                                            \
      "a collection: one garbage object flagged, the others not all yet (the "      \
      "flags' commit, gc_global_t.flagging, not yet reset)",                         \
      "ignored: a crash point")                                                      \
    X(GC_FLAGGED, "gc.flagged",                                                      \
      "a collection: the world restarted, every garbage object flagged, none "      \
      "cleared yet",                                                                 \
      "ignored: a crash point")                                                      \
    X(GC_CLEAR, "gc.clear",                                                          \
      "a collection: one garbage object cleared (its children released)",            \
      "ignored: a crash point")                                                      \
    X(GC_FREE, "gc.free",                                                            \
      "a collection: one garbage object freed (all of them cleared before)",         \
      "ignored: a crash point")                                                      \
    X(GC_WALK, "gc.walk",                                                            \
      "a collection: the walk done, the candidates found (the mark-sweep: the "     \
      "trace done), nothing changed yet (world stopped)",                            \
      "ignored: a crash point")                                                      \
    X(GC_SUBTRACT, "gc.subtract",                                                    \
      "a trial deletion: the references among candidates subtracted, nothing "      \
      "marked yet (world stopped)",                                                  \
      "ignored: a crash point")                                                      \
    X(GC_MARK, "gc.mark",                                                            \
      "a collection: the reachable marked, no survivor promoted yet (world "        \
      "stopped)",                                                                    \
      "ignored: a crash point")                                                      \
    X(OBJ_INCREF, "obj.incref",                                                      \
      "shr_obj_dup: the object's count raised, before the lease that stands for "   \
      "it is recorded (inside the gate)",                                            \
      "ignored: a crash point")                                                      \
    X(OBJ_PUBLISH, "obj.publish",                                                    \
      "shr_obj_publish: the root stored, holding its reference (the roots lock "    \
      "held, inside the gate)",                                                      \
      "ignored: a crash point")                                                      \
    X(OBJ_GATE, "obj.gate",                                                          \
      "shr_obj_dup: just inside the gate, no lock held (a collector must wait for " \
      "this thread: stop here to keep the world from stopping)",                    \
      "ignored: a crash point")                                                      \
    X(GC_LOG_WRITE, "gc.log.write",                                                  \
      "an event log record: its slot taken and half its fields written, its "       \
      "sequence number (the commit point) not yet",                                  \
      "ignored: a crash point")                                                      \
    X(GC_BR_BUFFER, "gc.br.buffer",                                                  \
      "Bacon and Rajan: a possible root's buffered bit set, its entry in the "      \
      "thread's ring not yet committed (inside the gate)",                           \
      "ignored: a crash point")

typedef enum shr_fault_point {
#define SHR__FAULT_ENUM(id, name, where, fail) SHR_FP_##id,
    SHR_FAULT_POINTS(SHR__FAULT_ENUM)
#undef SHR__FAULT_ENUM
    SHR_FAULT_NPOINTS
} shr_fault_point_t;

/* Arm point `point` (its name, e.g. "obj.alloc") to fire `action` on its nth
 * hit from now (nth >= 1). Re-arming a point replaces its setting and resets
 * its hit count. Returns 0, -EINVAL (unknown point, nth 0, bad action) or
 * -ENOSYS (a release build: points are compiled out). */
int shr_fault_arm(const char *point, uint64_t nth, shr_fault_action_t action);

/* Disarm `point`, or every point when point is NULL. Hit counts are kept.
 * Returns 0, -EINVAL or -ENOSYS. */
int shr_fault_disarm(const char *point);

/* Times `point` was reached since it was last armed (fired or not), or
 * -EINVAL / -ENOSYS. */
int64_t shr_fault_hits(const char *point);

/* Whether fault points are compiled into this library (debug builds). */
int shr_fault_available(void);

/* The name, and the description, of point id (0 <= id < SHR_FAULT_NPOINTS),
 * or NULL. */
const char *shr_fault_point_name(int id);
const char *shr_fault_point_doc(int id);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_FAULT_H */
