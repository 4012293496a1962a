/* list: str and bytes objects, and the shared list.
 *
 * Byte layouts (all in the segment, all references are offsets):
 *
 *   str, bytes   [ obj_t 16 | len 8 | data len bytes | NUL ]
 *                immutable after creation, sized exactly by the allocator;
 *                the NUL is a convenience for C readers (data may hold NULs)
 *
 *   list         [ obj_t 16 | lock 8 | seq 8 | items 8 | retired 8 | op record 48 ]
 *   item array   [ cap 8 | len 8 | retired link 8 | pad 8 | item 16 x cap ]
 *   item         [ tag 8 | val 8 ]  tag = shr_type_t; val = 0/1 for bool,
 *                the int64 or the double's bits, or the offset of a str,
 *                bytes or list object, whose reference the item holds
 *
 * Concurrency. Writers take the list's lock, a 64-bit word holding the
 * owner's thread slot and its generation (a test-and-test-and-set spinlock:
 * ~3 ns uncontended, against ~13 ns for a robust mutex). A waiter that spins
 * long checks whether the owner's slot is still claimed by the same
 * generation and its process alive; if not, it steals the lock and repairs
 * the list. Readers of an item that holds no reference (None, bool, int,
 * float) and of the length take no lock: they read under the list's
 * sequence counter (a seqlock: even when stable, odd while items move in
 * place) and retry, or fall back to the lock, when it moved. A get of a str,
 * bytes or list takes the lock, since it must take a reference to an object a
 * concurrent set may be freeing.
 *
 * Item arrays a reader may be inside are never freed while the list lives:
 * an array replaced by a bigger one (growth) goes on the list's retired
 * chain and is freed with the list. Arrays only grow (by doubling), so the
 * retired ones add up to less than the current capacity. Insert and delete
 * move items in place instead.
 *
 * Crash consistency (the owner may die anywhere in a critical section):
 *   set      op record (SET, index, old item), then the item. Repair puts
 *            the old item back.
 *   insert   op record (INSERT, index, old len, new item, progress); items
 *            shift up one at a time, progress stored after each; then the
 *            new item, then len. Repair finishes the shift (each step is
 *            idempotent) and the insert.
 *   delete   the same with DELETE, shifting down; repair finishes it and
 *            releases the removed item.
 *   append   the item past len, then len + 1 (the commit).
 *   growth   a new array with every item, published by one store of
 *            `items`; the old one goes on the retired chain.
 *   A repair also makes an odd sequence even. References: the new value is
 *   incref'd before it is stored, the old one released after the lock is
 *   dropped. A death leaks at most these.
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
    _Atomic uint64_t lock;      /* 0, or (slot gen << 32) | (slot + 1) */
    _Atomic uint64_t seq;       /* odd while items move in place */
    _Atomic uint64_t items;     /* offset of items_t */
    uint64_t retired;           /* arrays replaced by growth; freed with the list */
    _Atomic uint64_t op;        /* LIST_OP_* in flight */
    uint64_t op_index;
    uint64_t op_len;            /* INSERT, DELETE: len before */
    _Atomic uint64_t op_progress; /* INSERT, DELETE: the next item to move */
    uint64_t undo_tag;          /* SET: the old item; INSERT: the new one; */
    uint64_t undo_val;          /*   DELETE: the removed one */
} listobj_t;

struct shr_list {
    shr_heap_t *heap;
    shr_off_t off;              /* the list object; this handle holds a lease */
    listobj_t *obj;
    char *name;                 /* NULL for an unnamed list */
};

/* str.c */
strobj_t *shr__str_new(shr_heap_t *h, uint32_t type, const char *data, size_t len);
void shr__list_types_register(void);

/* list.c */
int shr__list_lock(shr_heap_t *h, listobj_t *l);
void shr__list_repair(shr_heap_t *h, listobj_t *l);
void shr__list_unlock(listobj_t *l);
/* Open a handle on list object off, taking a new reference (lease). */
int shr__list_open(shr_heap_t *h, shr_off_t off, const char *name, shr_list_t **out);

/* repr.c */
/* Python's repr of a double (shortest round trip, ".0" added, exponent
 * outside [1e-4, 1e16)). buf holds at least 32 bytes. */
void shr__float_repr(double x, char *buf, size_t size);

#endif /* SHR_LIST_H */
