/* sharena crash points for GC experiments. Included by <sharena.h>.
 *
 * The named places in the collector and in the mutators (object and list
 * calls) where an experiment makes a chosen process die, stop or fail, to
 * see what a crash or a stalled process there costs the heap: every one is
 * a fault point of <sharena/fault.h>, armed in the process that is to
 * crash, on its nth hit, by
 *
 *     shr_fault_arm(SHR_GC_POINT_MID_FREE, 3, SHR_FAULT_KILL);
 *
 * or by SHARENA_FAULT=gc.free:3:kill in that process's environment (debug
 * builds; release builds compile the points out and shr_fault_arm returns
 * -ENOSYS). After a kill at any of them, shr_gc_verify finds no count below
 * its true value and no dangling reference, and shr_heap_check passes: a
 * crash leaks (counts too high, garbage left for the next collection or for
 * the mark-sweep), never frees what is referenced
 * (tests/gc/test_gc_points.c kills a process at each one and checks that).
 *
 * "stop" at a point inside the gate (SHR_GC_POINT_HOLDING_GATE, and every
 * mutator point) keeps the world from stopping: the next collection fails
 * with -ETIMEDOUT after the stop timeout, and a TIMEOUT event is logged.
 * "stop" at a collector point with the world stopped keeps every other
 * thread waiting at the gate (up to its lock timeout). "fail" is ignored at
 * all of these (they are crash points, not allocations).
 */
#ifndef SHARENA_GC_POINTS_H
#define SHARENA_GC_POINTS_H

/* The collector, in the order a collection reaches them. */
#define SHR_GC_POINT_AFTER_STOP "gc.stopped"     /* the world stopped, nothing examined */
#define SHR_GC_POINT_WALK "gc.walk"              /* candidates found (the mark-sweep: traced) */
#define SHR_GC_POINT_SUBTRACT "gc.subtract"      /* trial deletion: references among candidates subtracted */
#define SHR_GC_POINT_MARK "gc.mark"              /* the reachable marked (the mark-sweep: counts repaired) */
#define SHR_GC_POINT_PROMOTE "gc.promote"        /* one survivor moved to the next generation */
#define SHR_GC_POINT_MID_FLAG "gc.flag"           /* restarted; one garbage object flagged, not all yet */
#define SHR_GC_POINT_FLAGGED "gc.flagged"        /* restarted; all garbage flagged, none cleared */
#define SHR_GC_POINT_MID_CLEAR "gc.clear"        /* one garbage object cleared */
#define SHR_GC_POINT_MID_FREE "gc.free"          /* one garbage object freed, the others cleared */
#define SHR_GC_POINT_LOG_WRITE "gc.log.write"    /* an event log record half written */

/* The mutators. */
#define SHR_GC_POINT_HOLDING_GATE "obj.gate"     /* inside the gate, no lock (shr_obj_dup) */
#define SHR_GC_POINT_AFTER_INCREF "obj.incref"   /* a count raised, its lease not yet recorded (shr_obj_dup) */
#define SHR_GC_POINT_AFTER_SET_INCREF "obj.set"  /* a child's count raised, the slot not yet holding it */
#define SHR_GC_POINT_AFTER_PUBLISH "obj.publish" /* a root published, the roots lock held */
#define SHR_GC_POINT_MID_DEALLOC "obj.dealloc"   /* a dealloc or clear: one child detached, not released */
#define SHR_GC_POINT_LEASE_RECORDED "lease.record" /* a lease recorded after its incref */
#define SHR_GC_POINT_LEASE_FORGOTTEN "lease.forget" /* a lease forgotten before its decref */
#define SHR_GC_POINT_MID_LEASE_RELEASE "lease.drain" /* releasing a dead process's leases: one lowered */
#define SHR_GC_POINT_LIST_SET "list.set.commit"  /* a list set: the new item stored, the old not released */
#define SHR_GC_POINT_LIST_SHIFT "list.shift"     /* a list insert or delete: one item moved */
#define SHR_GC_POINT_LIST_GROW "list.grow.swap"  /* a list's new item array filled, not yet published */

/* Every point above, in that order, for programs that walk them all:
 * X(name) once each. */
#define SHR_GC_POINTS(X)                                                                          \
    X(SHR_GC_POINT_AFTER_STOP) X(SHR_GC_POINT_WALK) X(SHR_GC_POINT_SUBTRACT) X(SHR_GC_POINT_MARK) \
    X(SHR_GC_POINT_PROMOTE) X(SHR_GC_POINT_MID_FLAG) X(SHR_GC_POINT_FLAGGED)                       \
    X(SHR_GC_POINT_MID_CLEAR)                                                                     \
    X(SHR_GC_POINT_MID_FREE) X(SHR_GC_POINT_LOG_WRITE) X(SHR_GC_POINT_HOLDING_GATE)                \
    X(SHR_GC_POINT_AFTER_INCREF) X(SHR_GC_POINT_AFTER_SET_INCREF) X(SHR_GC_POINT_AFTER_PUBLISH)    \
    X(SHR_GC_POINT_MID_DEALLOC) X(SHR_GC_POINT_LEASE_RECORDED) X(SHR_GC_POINT_LEASE_FORGOTTEN)     \
    X(SHR_GC_POINT_MID_LEASE_RELEASE) X(SHR_GC_POINT_LIST_SET) X(SHR_GC_POINT_LIST_SHIFT)          \
    X(SHR_GC_POINT_LIST_GROW)

/* Bacon and Rajan's buffering (a mutator, inside the gate): a possible
 * root's buffered bit set, its entry in the thread's ring not committed.
 * Reached only on a heap whose algorithm is SHR_GC_BACON_RAJAN, so it is
 * not among SHR_GC_POINTS (whose programs run on default heaps);
 * tests/gc/test_gc_bacon.c kills a thread there. */
#define SHR_GC_POINT_BR_BUFFER "gc.br.buffer"

#endif /* SHARENA_GC_POINTS_H */
