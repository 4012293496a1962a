/* sharena compact lists: a list in a segment of its own, in one page.
 *
 * A list made for a segment of its own (what Python's ShareableList is, and
 * what sharena.ShareableList makes when no heap is given) starts compact: the
 * whole list, its items and the bytes of its strs and bytes, in the first
 * 4 KiB page of the segment, with one robust lock, and nothing else of the
 * segment committed. That is the stdlib's footprint: one page in /dev/shm,
 * no descriptor kept, no thread.
 *
 * A compact list holds the stdlib's values (None, bool, int, float, str,
 * bytes) in a fixed number of items, as the stdlib's does; a set replaces a
 * value with another of any of these types while the page has room. The
 * first operation it cannot do (an item added or removed, a nested list, a
 * string the page has no room for) turns the segment into an ordinary heap
 * in place: shr_solo_promote writes a heap at a fixed offset of the same
 * object, copies the list into it under the root name SHR_SOLO_ROOT, and
 * publishes it with one word. From then on every process uses the heap (its
 * compact calls return SHR_EMOVED), and shr_heap_attach of the segment's
 * name attaches it like any heap's. docs/design/solo.md has the format, the
 * commit points and the repair.
 *
 * Threads: a handle may be used from any number of threads. Reads take no
 * lock (a sequence counter); sets take the page's lock, whose holder's death
 * is repaired by the next locker. Every wait is bounded by
 * SHARENA_LOCK_TIMEOUT_MS (default 10 s) and ends in SHR_ELOCKTIMEOUT.
 */
#ifndef SHARENA_SOLO_H
#define SHARENA_SOLO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../sharena.h" /* shr_heap_options_t; it includes this file last */
#include "list.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shr_solo shr_solo_t;

/* The root name of the list in a compact list's heap. */
#define SHR_SOLO_ROOT "ShareableList"

/* Create a compact list of n values (None, bool, int, float, str, bytes)
 * under a new segment name (the rules of shr_heap_create's names; mode 0
 * is 0600). Errors: SHR_ENAME, -ENAMETOOLONG, -EEXIST, -EINVAL (a NULL
 * value array with n > 0, a value of another type, a str that is not
 * valid UTF-8), SHR_ENOROOM (the
 * values do not fit one page: nothing is created; shr_solo_create_heap
 * makes such a list's segment), -ENOMEM (no room in /dev/shm). */
int shr_solo_create(const char *name, const shr_value_t *values, size_t n, unsigned mode,
                    shr_solo_t **out);
/* Create a segment of this kind that is a heap from the start, with no list
 * in it yet: the caller creates its list under SHR_SOLO_ROOT. For lists
 * that would not be compact. opts as shr_heap_create's (may be NULL). */
int shr_solo_create_heap(const char *name, const shr_heap_options_t *opts, shr_heap_t **out);
/* Open a compact list's segment by name, compact or not (shr_solo_is_heap
 * tells). Errors as shr_heap_attach's; SHR_ENOTSHR for a segment of
 * another kind (an ordinary heap: shr_heap_attach it). */
int shr_solo_open(const char *name, shr_solo_t **out);
/* Release the handle (the segment lives on until its name is unlinked,
 * with shr_heap_unlink, and the last process has closed it). */
int shr_solo_close(shr_solo_t *solo);
const char *shr_solo_name(const shr_solo_t *solo);

/* 1 when the list has become a heap, 0 while compact. */
int shr_solo_is_heap(const shr_solo_t *solo);
/* Make the list a heap if it is not one yet, and attach its heap: *out is a
 * new heap handle, whose root SHR_SOLO_ROOT is the list (shr_list_attach).
 * The heap has the default limits and the capacity the segment was made
 * with. Errors: those of shr_heap_create and shr_list_create (nothing is
 * changed then), SHR_ELOCKTIMEOUT. The solo handle stays good for
 * shr_solo_close only. */
int shr_solo_promote(shr_solo_t *solo, shr_heap_t **out);

/* Number of items; SHR_EMOVED once the list is a heap. Takes no lock. */
int64_t shr_solo_len(shr_solo_t *solo);
/* The item at index (negative: from the end), without a lock: None, bool,
 * int and float in *out; a str or bytes copied into buf (cap bytes), with
 * out->u.s.data = buf. Returns 0, SHR_EINDEX, SHR_EMOVED, 1 when the
 * string is longer than cap (out->u.s.len says how long; no string is
 * longer than SHR_SOLO_MAX_BYTES), SHR_ELOCKTIMEOUT. Nothing to release. */
int shr_solo_read(shr_solo_t *solo, int64_t index, shr_value_t *out, void *buf, size_t cap);
#define SHR_SOLO_MAX_BYTES 4096
/* Replace the item at index. Returns 0, SHR_EINDEX, -EINVAL (a value type a
 * compact list does not hold: promote, then set it in the heap; or a str
 * that is not valid UTF-8, which no list holds), SHR_ENOROOM
 * (no room in the page for the string: promote, then set), SHR_EMOVED,
 * SHR_ELOCKTIMEOUT. A failed call changes nothing. */
int shr_solo_set(shr_solo_t *solo, int64_t index, const shr_value_t *value);

/* What a compact list's page holds (sharena stats). */
typedef struct shr_solo_info {
    int is_heap;            /* the list has become a heap: the rest is as it was then */
    uint64_t items;
    uint64_t bytes_used;    /* of the page: header, items and string slots */
    uint64_t page_size;
    uint64_t sets;          /* sets since creation */
    uint64_t repairs;       /* dead lock holders repaired */
    uint64_t committed;     /* bytes of the segment in /dev/shm */
    uint64_t created_ns;
} shr_solo_info_t;
int shr_solo_info(shr_solo_t *solo, shr_solo_info_t *info);
/* Verify the page (items inside it, slots in bounds and apart, the counter
 * and the lock's repair state), printing each violation to out (may be
 * NULL). Takes the page's lock. Returns the number of violations, or a
 * negative code. A heap is checked with shr_heap_check instead. */
int shr_solo_check(shr_solo_t *solo, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* SHARENA_SOLO_H */
