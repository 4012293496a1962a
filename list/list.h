/* list: str and bytes objects, and the shared list.
 *
 * Byte layouts (all in the segment, all references are offsets):
 *
 *   str, bytes   [ obj_t 16 | len 8 | data len bytes | NUL ]
 *                immutable after creation, sized exactly by the allocator;
 *                the NUL is a convenience for C readers (data may hold NULs)
 *
 *   list         [ obj_t 16 | lock 8 | seq 8 | items 8 | retired 8 | op record 48 | walkers 8 ]
 *   item array   [ cap 8 | len 8 | retired link 8 | pad 8 | item 16 x cap ]
 *   item         [ tag 8 | val 8 ]  tag = shr_type_t; val = 0/1 for bool,
 *                the int64 or the double's bits, or the offset of a str,
 *                bytes, list or other object (SHR_REF: a node or user-type
 *                object), whose reference the item holds
 *
 * A list object is a container: allocated from an object pool
 * (shr__obj_new_container), tracked by the cycle collector, traversed by
 * list_traverse. Every public call runs inside the collector's gate.
 *
 * Concurrency. Writers take the list's lock, a 64-bit owner word (gc.h:
 * the holder's thread slot and its generation) taken by a test-and-test-
 * and-set spinlock: ~3 ns uncontended, against ~13 ns for a robust mutex.
 * A waiter that spins long asks gc whether the owner is gone; if so, it
 * steals the lock and repairs the list. A wait is bounded: past
 * SHARENA_LOCK_TIMEOUT_MS (gc.h) it ends in SHR_ELOCKTIMEOUT, so a holder
 * that is alive but stopped costs its waiters an error, not a hang.
 * Readers of an item that holds no reference (None, bool, int, float) and
 * of the length take no lock: they read under the list's sequence counter
 * (a seqlock: even when stable, odd while items move in place) and retry,
 * or fall back to the lock, when it moved. A get of a str, bytes or list
 * takes the lock, since it must take a reference to an object a concurrent
 * set may be freeing; a copy of a short str or bytes (shr_list_read_copy)
 * does not: it is kept only if the counter did not move (list.c, "lock-free
 * copies"). count and index take no lock either: they compare
 * items, strings included, a step at a time under the sequence counter,
 * announced in `walkers` (a count: incremented before the walk, decremented
 * after; a walker killed inside leaves it high, which costs only batching).
 * While `walkers` is nonzero, a writer that drops a str or bytes does not
 * release it: it becomes a deferred lease of the writer's process,
 * released after a grace period (list.c, "dropped strings"), so that a
 * string a walk may be comparing is never freed under it.
 *
 * Item arrays a reader may be inside are not freed until a grace period
 * has passed: lock-free readers run in read sections (their thread slot's
 * epoch odd: list.c, docs/design/objects.md §7.4). An array replaced by a
 * bigger one (growth) goes on the list's retired chain, freed after a grace
 * period by the next large growth or shrink, or with the list; a shrink in
 * place waits for one too. Insert and delete move items in place.
 *
 * Crash consistency (the owner may die anywhere in a critical section):
 *   set      op record (SET, index, old item), then the item (fault point
 *            list.set.commit), then op = NONE (the commit). Repair puts the
 *            old item back.
 *   insert   op record (INSERT, index, old len, new item, progress); items
 *            shift up one at a time, progress stored after each (list.shift);
 *            then the new item, then len. Repair finishes the shift (each
 *            step is idempotent) and the insert.
 *   delete   the same with DELETE, shifting down; repair finishes it and
 *            releases the list's reference to the removed item.
 *   pop      of a str, bytes or list: the caller's reference is taken and
 *            leased under the lock *before* the delete (so a failure to
 *            lease changes nothing, and a death releases each reference
 *            once: the list's by the repair or the item, the caller's by
 *            the lease); the list's reference is released after unlocking.
 *   append   the item past len, then len + 1 (the commit).
 *   growth   a new array with every item; the old one goes on the retired
 *            chain (list.grow.swap), then one store of `items` publishes
 *            the new one. A death between leaves the published array on the
 *            retired chain too: repair takes it off (LI4).
 *   A repair also makes an odd sequence even. References: the new value is
 *   incref'd before it is stored, the old one released after the lock is
 *   dropped. A death leaks at most these.
 *
 * Invariants (asserted where items change at SHR_DEBUG >= 2; the whole list
 * validated after each change at SHR_DEBUG >= 3):
 *   LI1  lock is 0 or an owner word (bit 63 marks a waiter); op == NONE and seq even whenever no
 *        live thread holds the lock and no repair is due (a dead holder's
 *        record is repaired before anyone else reads it under the lock)
 *   LI2  len <= cap; items [0, len) hold valid tags, and each with a
 *        reference tag holds exactly one reference to a live object; items
 *        at or past len hold none
 *   LI3  op == SET: undo holds item op_index as it was before the set.
 *        op == INSERT: op_index < op_len < cap, op_index <= op_progress <=
 *        op_len, and items (op_progress, op_len] hold the old items
 *        [op_progress, op_len). op == DELETE: op_index <= op_progress <
 *        op_len <= cap, and items [op_index, op_progress) hold the old items
 *        (op_index, op_progress]
 *   LI4  an item array is the list's `items` or on its retired chain, never
 *        both, and belongs to one list
 */
#ifndef SHR_LIST_H
#define SHR_LIST_H

#include "gc.h"

typedef struct strobj {
    obj_t ob;
    uint64_t len;
    char data[];
} strobj_t;

typedef struct item {
    _Atomic uint64_t tag;
    _Atomic uint64_t val;
} item_t;

typedef struct items {
    uint64_t cap;
    _Atomic uint64_t len;
    uint64_t retired;           /* next array on the list's retired chain */
    uint64_t pad;
    item_t it[];
} items_t;

enum { LIST_OP_NONE = 0, LIST_OP_SET = 1, LIST_OP_INSERT = 2, LIST_OP_DELETE = 3 };

typedef struct listobj {
    obj_t ob;
    _Atomic uint64_t lock;      /* 0, or the holder's owner word (gc.h) */
    _Atomic uint64_t seq;       /* odd while items move in place */
    _Atomic uint64_t items;     /* offset of items_t */
    uint64_t retired;           /* arrays replaced by growth, until a grace period */
    _Atomic uint64_t op;        /* LIST_OP_* in flight */
    uint64_t op_index;
    uint64_t op_len;            /* INSERT, DELETE: len before */
    _Atomic uint64_t op_progress; /* INSERT, DELETE: the next item to move */
    uint64_t undo_tag;          /* SET: the old item; INSERT: the new one; */
    uint64_t undo_val;          /*   DELETE: the removed one */
    _Atomic uint64_t walkers;   /* lock-free walks (count, index) under way */
} listobj_t;

/* The layouts drawn above, which every process relies on. */
_Static_assert(sizeof(strobj_t) == 24 && offsetof(strobj_t, len) == 16 && offsetof(strobj_t, data) == 24,
               "strobj_t: header, len, data");
_Static_assert(sizeof(item_t) == 16 && offsetof(item_t, val) == 8, "item_t: tag, val");
_Static_assert(sizeof(items_t) == 32 && offsetof(items_t, len) == 8 && offsetof(items_t, retired) == 16 &&
                   offsetof(items_t, it) == 32,
               "items_t: a 32-byte header, then the items");
_Static_assert(sizeof(listobj_t) == 104 && offsetof(listobj_t, lock) == 16 && offsetof(listobj_t, seq) == 24 &&
                   offsetof(listobj_t, items) == 32 && offsetof(listobj_t, retired) == 40 &&
                   offsetof(listobj_t, op) == 48 && offsetof(listobj_t, op_index) == 56 &&
                   offsetof(listobj_t, op_len) == 64 && offsetof(listobj_t, op_progress) == 72 &&
                   offsetof(listobj_t, undo_tag) == 80 && offsetof(listobj_t, undo_val) == 88 &&
                   offsetof(listobj_t, walkers) == 96,
               "listobj_t: 104 bytes as drawn");

struct shr_list {
    shr_heap_t *heap;
    shr_off_t off;              /* the list object; this handle holds a lease */
    listobj_t *obj;
    char *name;                 /* NULL for an unnamed list */
};

/* Does an item with this tag hold a reference (str, bytes, list, object)? */
static inline bool is_ref(uint64_t tag) { return tag >= SHR_STR && tag <= SHR_REF; }

static inline items_t *list_items(const shr_heap_t *h, listobj_t *l)
{
    return shr__ptr(h, shr_load_relaxed(&l->items));
}

/* str.c */
/* A new str or bytes object holding a copy of data (fault point obj.alloc);
 * NULL with errno. */
strobj_t *shr__str_new(shr_heap_t *h, uint32_t type, const char *data, size_t len);
void shr__str_types_register(void);
/* Drop a reference to a str or bytes object, freeing it with the last one
 * (a str holds no reference, so nothing else is released). */
shr_inline void shr__str_release(shr_heap_t *h, obj_t *o)
{
    if (atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel) == 1) shr_free(h, o);
}

/* list.c */
/* The list types' functions (traverse, clear, dealloc) for this process. */
void shr__list_types_register(void);
/* What is wrong with the object at off (of `type`, 0 any), NULL if nothing
 * (list.c): for objects read from data nobody has checked. */
const char *shr__list_obj_problem(shr_heap_t *h, uint64_t off, uint32_t type);
/* Take the list's lock: 0, SHR_ELOCKTIMEOUT when a live holder keeps it past
 * the deadline (gc.h), or -errno when this thread cannot get a slot. A lock
 * stolen from a dead owner is repaired before this returns. */
int shr__list_lock(shr_heap_t *h, listobj_t *l);
void shr__list_repair(shr_heap_t *h, listobj_t *l);
/* Bit 63 of the lock word: a thread has been waiting (list.c, lock_slow). */
#define LOCK_WAITER SHR__OWNER_FLAG
static inline void shr__list_unlock(listobj_t *l)
{
    /* Keep a waiter's mark (no read-modify-write: a mark set in between is
     * lost, and set again by its waiter). */
    shr_store_release(&l->lock, shr_load_relaxed(&l->lock) & LOCK_WAITER);
}

/* repr.c */
/* Python's repr of a double (shortest round trip, ".0" added, exponent
 * outside [1e-4, 1e16)). buf holds at least 32 bytes. */
void shr__float_repr(double x, char *buf, size_t size);
/* The process's wait hooks (shr_wait_hooks_set), for the other locks that
 * a runtime's thread may wait on (a compact list's, lib/solo.c): before()
 * as a real wait begins, after() on every way out of it. */
void shr__wait_hook_before(void);
/* The copy loop of the lock-free string readers (list.c's copy_unvouched,
 * lib/solo.c's copy_bytes): n bytes from src to dst in whole 8-byte words,
 * loaded volatile, inside a function the memory checkers do not check (the
 * bytes may be changing, or freed, under it: its caller discards such a
 * copy). src's block must hold n rounded up to 8 bytes. */
#define SHR__COPY_WORDS(dst, src, n)                                                   \
    do {                                                                               \
        const volatile uint64_t *w_ = (const volatile uint64_t *)(const void *)(src);  \
        char *d_ = (dst);                                                              \
        size_t n_ = (n), k_ = 0;                                                       \
        for (; k_ + 8 <= n_; k_ += 8) {                                                \
            uint64_t x_ = w_[k_ / 8];                                                  \
            memcpy(d_ + k_, &x_, 8);                                                   \
        }                                                                              \
        if (k_ < n_) {                                                                 \
            uint64_t x_ = w_[k_ / 8];                                                  \
            memcpy(d_ + k_, &x_, n_ - k_);                                             \
        }                                                                              \
    } while (0)

/* Is s valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)?
 * What every str a list stores must be. */
bool shr__utf8_valid(const unsigned char *s, size_t n);
void shr__wait_hook_after(void);

#endif /* SHR_LIST_H */
