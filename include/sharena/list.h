/* The shared list: what Python's multiprocessing.shared_memory.ShareableList
 * is, without its limits. Included by <sharena.h>.
 *
 * A list lives in a heap; any number of processes and threads read and write
 * it at once. Items are values of any type and any size: None, bool, int64,
 * double, str (UTF-8, sized in bytes, NULs allowed), bytes, another list,
 * or any other object (<sharena/gc.h>: a node, a user-type object).
 * Indices may be negative (counted from the end) and every index is checked.
 *
 * References: a shr_list_t handle holds a reference to its list, released by
 * shr_list_close. A get of a str, bytes or list returns a value that holds a
 * reference too (the string is not copied, and stays valid however the list
 * changes), released by shr_value_release. If the process dies, its
 * references are released for it.
 *
 * Errors, for every call below that returns int: -EINVAL for a NULL heap,
 * list or out-parameter (the call does nothing); SHR_ELOCKTIMEOUT when the
 * list's lock (or this process's lease lock) stays held by a live process
 * longer than the heap's lock timeout (SHARENA_LOCK_TIMEOUT_MS overrides it;
 * default 5000 ms); a
 * lock held by a dead process is taken over and its change repaired. A call
 * that fails changes nothing.
 */
#ifndef SHARENA_LIST_H
#define SHARENA_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "gc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shr_list shr_list_t;

typedef enum shr_type {
    SHR_NONE = 1,
    SHR_BOOL = 2,
    SHR_INT = 3,
    SHR_FLOAT = 4,
    SHR_STR = 5,
    SHR_BYTES = 6,
    SHR_LIST = 7,
    SHR_REF = 8     /* an object of <sharena/gc.h> that is not a list */
} shr_type_t;

typedef struct shr_value {
    shr_type_t type;
    union {
        int b;                                  /* SHR_BOOL: 0 or 1 */
        int64_t i;                              /* SHR_INT */
        double f;                               /* SHR_FLOAT */
        struct { const char *data; size_t len; } s; /* SHR_STR, SHR_BYTES */
        shr_list_t *list;                       /* SHR_LIST */
        shr_ref_t ref;                          /* SHR_REF */
    } u;
    uint64_t ref_;                              /* private: reference held by a get */
} shr_value_t;

/* Value constructors (the data of str and bytes is copied by the list). */
static inline shr_value_t shr_none(void) { shr_value_t v; v.type = SHR_NONE; v.u.i = 0; v.ref_ = 0; return v; }
static inline shr_value_t shr_bool(int b) { shr_value_t v; v.type = SHR_BOOL; v.u.b = b != 0; v.ref_ = 0; return v; }
static inline shr_value_t shr_int(int64_t i) { shr_value_t v; v.type = SHR_INT; v.u.i = i; v.ref_ = 0; return v; }
static inline shr_value_t shr_float(double f) { shr_value_t v; v.type = SHR_FLOAT; v.u.f = f; v.ref_ = 0; return v; }
static inline shr_value_t shr_strn(const char *s, size_t len)
{
    shr_value_t v; v.type = SHR_STR; v.u.s.data = s; v.u.s.len = len; v.ref_ = 0; return v;
}
static inline shr_value_t shr_str(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return shr_strn(s, n);
}
static inline shr_value_t shr_bytes(const void *p, size_t len)
{
    shr_value_t v; v.type = SHR_BYTES; v.u.s.data = (const char *)p; v.u.s.len = len; v.ref_ = 0; return v;
}
static inline shr_value_t shr_listval(shr_list_t *l) { shr_value_t v; v.type = SHR_LIST; v.u.list = l; v.ref_ = 0; return v; }
/* An object reference (a ref this process holds; the list takes a reference
 * of its own). A ref to a list is stored as that list (SHR_LIST). A get of
 * an SHR_REF item returns a new reference in u.ref, released with
 * shr_value_release (or shr_obj_release of u.ref). */
static inline shr_value_t shr_refval(shr_ref_t r) { shr_value_t v; v.type = SHR_REF; v.u.ref = r; v.ref_ = 0; return v; }

/* Create a list of n values (values may be NULL when n is 0). name may be
 * NULL for an unnamed list, found only through other lists; a named list is
 * held by its name (a root) until shr_list_unlink. Errors: -EINVAL (bad
 * value), -EEXIST (name taken), -ENAMETOOLONG, -ENOMEM (also for an n no
 * heap can hold, refused before anything is allocated). */
int shr_list_create(shr_heap_t *heap, const char *name, const shr_value_t *values, size_t n,
                    shr_list_t **out);
/* Attach a named list. -ENOENT when no such name, SHR_ETYPE when the name
 * holds something else. */
int shr_list_attach(shr_heap_t *heap, const char *name, shr_list_t **out);
/* Release the handle (the list lives on while referenced). */
int shr_list_close(shr_list_t *list);
/* Remove a named list's name; it is freed when its last reference goes. */
int shr_list_unlink(shr_heap_t *heap, const char *name);

/* The name the list was created with, or NULL. */
const char *shr_list_name(const shr_list_t *list);
/* Conversions between a list handle and an object reference: each returns
 * a new reference (a handle or a ref) and leaves the other as it was.
 * shr_list_from_ref: SHR_ETYPE when ref is not a list, -EINVAL when this
 * process does not hold it. */
int shr_list_ref(shr_list_t *list, shr_ref_t *out);
int shr_list_from_ref(shr_heap_t *heap, shr_ref_t ref, shr_list_t **out);
shr_heap_t *shr_list_heap(const shr_list_t *list);

/* Number of items (-EINVAL for NULL). Takes no lock. */
int64_t shr_list_len(shr_list_t *list);

/* Item at index (negative: from the end). SHR_EINDEX outside [-len, len).
 * str/bytes/list values hold a reference: shr_value_release them. */
int shr_list_get(shr_list_t *list, int64_t index, shr_value_t *out);
/* Release the reference a value holds (a no-op for the others, and for a
 * NULL value; with a NULL heap, only a list value can be released). */
void shr_value_release(shr_heap_t *heap, shr_value_t *value);

/* Read item index without taking a reference, for callers that copy it:
 * visit(value, arg) is called while the item cannot change, and its return
 * value is returned. A str or bytes value points into the heap and is valid
 * only during the call, which runs under the list's lock: it must be short
 * and must not call sharena. A list or object item (SHR_LIST, SHR_REF) is
 * passed after the lock is released, as shr_list_get returns it (a handle
 * or a ref the visitor owns and must release). SHR_EINDEX outside [-len, len), and visit is not called. */
typedef int (*shr_item_fn)(const shr_value_t *value, void *arg);
int shr_list_get_with(shr_list_t *list, int64_t index, shr_item_fn visit, void *arg);
/* The two halves of shr_list_get_with, for callers with a fast path of
 * their own (the Python module's sl[i]), each alone or both in one call:
 *   out: an item holding None, bool, int or float is read into *out
 *        without a lock, the collector's gate or any wait (never a wait
 *        hook), and 0 is returned;
 *   visit: any other item (and with out NULL, every item) is visited as
 *        shr_list_get_with visits it, and visit's value is returned.
 * With out but no visit, an item holding a reference (str, bytes, list,
 * object), or one that readers kept colliding with a writer on, is not read
 * and 1 is returned: the caller then visits it (out NULL), without trying
 * the lock-free read again. SHR_EINDEX outside [-len, len), -EINVAL when
 * list, or both out and visit, are NULL; then nothing is read. */
int shr_list_read(shr_list_t *list, int64_t index, shr_value_t *out, shr_item_fn visit, void *arg);
/* Read item index without a lock, the collector's gate or any wait, for
 * callers that copy what they read: None, bool, int and float into *out as
 * shr_list_read reads them; a str or bytes of at most cap bytes is copied
 * into buf, and out->u.s.data points there (it holds no reference: nothing
 * to release). Returns 0 when *out is filled; 1 when the item holds a list
 * or an object, a str or bytes longer than cap, or readers kept colliding
 * with a writer: then nothing is read, and the caller reads it another way
 * (shr_list_get, shr_list_read with a visitor). SHR_EINDEX outside
 * [-len, len); -EINVAL when list or out is NULL, or buf is NULL with cap
 * above 0. buf may be written to even when 1 is returned. */
int shr_list_read_copy(shr_list_t *list, int64_t index, shr_value_t *out, void *buf, size_t cap);

/* Replace the item at index; the old value is released. Any value fits. */
int shr_list_set(shr_list_t *list, int64_t index, const shr_value_t *value);

/* Python semantics: == across bool/int/float (True == 1 == 1.0), str with
 * str, bytes with bytes, None with None, a list with the same list. count
 * and index walk the list a step at a time, letting writers in between
 * steps: each item is compared as it is when the walk reaches it. */
int shr_list_count(shr_list_t *list, const shr_value_t *value, size_t *count);
/* Index of the first item equal to value, SHR_ENOTFOUND if none. */
int shr_list_index(shr_list_t *list, const shr_value_t *value, size_t *index);

int shr_list_append(shr_list_t *list, const shr_value_t *value);
/* Insert before index (Python: clamped to [0, len], negative from the end). */
int shr_list_insert(shr_list_t *list, int64_t index, const shr_value_t *value);
/* Remove the item at index into *out (may be NULL: released). */
int shr_list_pop(shr_list_t *list, int64_t index, shr_value_t *out);
int shr_list_delete(shr_list_t *list, int64_t index);

/* The struct format the stdlib's ShareableList reports for the same values
 * ("q" int, "d" float, "xxxxxxx?" bool, "xxxxxx?x" None, "Ns" str and bytes
 * with N the length rounded up past a multiple of 8; sizes in UTF-8 bytes);
 * nested lists and objects, which the stdlib cannot hold, are "Q". A malloc'ed string
 * for free(), or NULL with errno. */
char *shr_list_format(shr_list_t *list);
/* "ShareableList([1, 'a', b'x', None, True, 2.5], name='...')" with Python's
 * reprs of the values (name=None for an unnamed list; a node or user-type
 * object as <sharena.node at 0x...>, with its type's name and offset).
 * malloc'ed, or NULL.
 * format and repr read the list a few items at a time, as count does. */
char *shr_list_repr(shr_list_t *list);

/* Waiting for a contended list lock. before(arg) is called by a thread that
 * is about to wait for a list lock another thread holds (after a short spin,
 * never on the uncontended path), and after(arg) when that wait ends, with
 * the lock taken or not (SHR_ELOCKTIMEOUT). A compact list's lock
 * (<sharena/solo.h>) calls them too.
 * Either may be NULL; the hooks are process-wide and replace earlier ones.
 * They must not call sharena. Meant for runtimes with a global lock: the
 * Python module releases the GIL in before(). */
typedef void (*shr_wait_fn)(void *arg);
void shr_wait_hooks_set(shr_wait_fn before, shr_wait_fn after, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_LIST_H */
