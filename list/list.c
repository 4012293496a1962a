/* The shared list
 *
 * See list.h for the byte layout, the lock and the crash rules. This file:
 * the lock, value encoding, the C API.
 *
 * Every public call that returns a reference to the caller (a handle, a get
 * of str/bytes/list) increfs under the list's or the roots' lock, then
 * records a lease after unlocking: a crash in between leaks the reference,
 * never releases one twice.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "list.h"

#define INITIAL_CAP 8
#define SPINS_BEFORE_CHECK 2048

static inline bool is_ref(uint64_t tag) { return tag == SHR_STR || tag == SHR_BYTES || tag == SHR_LIST; }
static inline items_t *ARR(shr_heap_t *h, listobj_t *l) { return shr__ptr(h, rd(&l->items)); }

/* ---- the lock ------------------------------------------------------------ */

/* Is the owner named by lock word w gone? Its slot was released or claimed
 * again (generation), or its process is dead. */
static bool owner_dead(shr_heap_t *h, uint64_t w)
{
    uint32_t slot = (uint32_t)(w & 0xffffffffu) - 1, gen = (uint32_t)(w >> 32);
    if (slot >= SHR_MAX_THREADS) return true;
    thread_slot_t *ts = &h->hdr->threads[slot];
    if (shr_load_acquire(&ts->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&ts->gen) != gen) return true;
    uint32_t p = ts->proc;
    if (p >= SHR_MAX_PROCS) return true;
    proc_entry_t *pe = &h->hdr->procs[p];
    if (shr_load_acquire(&pe->state) != SHR_ENTRY_LIVE || shr_load_relaxed(&pe->gen) != ts->proc_gen) return true;
    return !shr__proc_alive(h->hdr, p);
}

/* Sequence counter: odd while items move in place (a seqlock). Lock held.
 *
 * No fences: every item store inside the odd window is a release store, and
 * the reader's loads of items are acquire loads. A reader that sees any
 * value stored in the window therefore also sees the odd count stored before
 * it, and its last load of the counter (after its acquire loads) cannot
 * return the count it started with. Free on x86, and it lets ThreadSanitizer,
 * which does not model fences, check it. */
#define wrr(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define rda(p) atomic_load_explicit((p), memory_order_acquire)

static inline void seq_begin(listobj_t *l)
{
    wr(&l->seq, rd(&l->seq) + 1);
}

static inline void seq_end(listobj_t *l)
{
    atomic_store_explicit(&l->seq, rd(&l->seq) + 1, memory_order_release);
}

/* Open an in-place change: the sequence goes odd, then the op record that a
 * repair needs (list.h) is written, op last. Lock held. */
static void op_begin(listobj_t *l, uint64_t op, uint64_t index, uint64_t len, uint64_t progress,
                     uint64_t tag, uint64_t val)
{
    seq_begin(l);
    l->op_index = index;
    l->op_len = len;
    l->undo_tag = tag;
    l->undo_val = val;
    wr(&l->op_progress, progress);
    atomic_store_explicit(&l->op, op, memory_order_release);
}

static void op_end(listobj_t *l)
{
    atomic_store_explicit(&l->op, LIST_OP_NONE, memory_order_release);
    seq_end(l);
}

static inline void move_item(items_t *a, uint64_t to, uint64_t from)
{
    wrr(&a->it[to].tag, rd(&a->it[from].tag));
    wrr(&a->it[to].val, rd(&a->it[from].val));
}

static void release(shr_heap_t *h, uint64_t tag, uint64_t val);

/* Shift items up one place, from index op_progress down to op_index + 1
 * (insert), or down one place from op_progress up to op_len - 2 (delete).
 * Each step stores its progress after its move, so that a repair can go on
 * from where a dead writer stopped: repeating the last move is harmless. */
static void shift_up(listobj_t *l, items_t *a)
{
    for (uint64_t k = rd(&l->op_progress); k > l->op_index; k--) {
        move_item(a, k, k - 1);
        wr(&l->op_progress, k - 1);
    }
}

static void shift_down(listobj_t *l, items_t *a)
{
    for (uint64_t k = rd(&l->op_progress); k + 1 < l->op_len; k++) {
        move_item(a, k, k + 1);
        wr(&l->op_progress, k + 1);
    }
}

/* Finish or undo what a dead owner left half done (list.h). Lock held, or
 * the list is being deallocated (nobody else can reach it). */
void shr__list_repair(shr_heap_t *h, listobj_t *l)
{
    items_t *a = ARR(h, l);
    switch (rd(&l->op)) {
    case LIST_OP_SET:
        if (l->op_index < a->cap) {
            wrr(&a->it[l->op_index].tag, l->undo_tag);
            wrr(&a->it[l->op_index].val, l->undo_val);
        }
        break;
    case LIST_OP_INSERT:
        if (l->op_len < a->cap && l->op_index <= l->op_len && rd(&l->op_progress) <= l->op_len) {
            shift_up(l, a);
            wrr(&a->it[l->op_index].tag, l->undo_tag);
            wrr(&a->it[l->op_index].val, l->undo_val);
            wrr(&a->len, l->op_len + 1);
        }
        break;
    case LIST_OP_DELETE:
        if (l->op_len <= a->cap && l->op_index < l->op_len && rd(&l->op_progress) < l->op_len) {
            shift_down(l, a);
            wr(&a->len, l->op_len - 1);
            release(h, l->undo_tag, l->undo_val); /* its taker is dead */
        }
        break;
    default:
        break;
    }
    wr(&l->op, LIST_OP_NONE);
    if (rd(&a->len) > a->cap) wr(&a->len, a->cap);
    if (rd(&l->seq) & 1) seq_end(l);
}

/* Process-wide wait hooks (shr_wait_hooks_set). */
static _Atomic(shr_wait_fn) wait_before, wait_after;
static _Atomic(void *) wait_arg;

void shr_wait_hooks_set(shr_wait_fn before, shr_wait_fn after, void *arg)
{
    atomic_store_explicit(&wait_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&wait_after, after, memory_order_relaxed);
    atomic_store_explicit(&wait_before, before, memory_order_release);
}

static void wait_hook(_Atomic(shr_wait_fn) *which)
{
    shr_wait_fn fn = atomic_load_explicit(which, memory_order_acquire);
    if (fn) fn(atomic_load_explicit(&wait_arg, memory_order_relaxed));
}

int shr__list_lock(shr_heap_t *h, listobj_t *l)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx) return -errno;
    uint64_t me = ((uint64_t)ctx->gen << 32) | (ctx->slot + 1), zero = 0;
    if (shr_likely(atomic_compare_exchange_strong_explicit(&l->lock, &zero, me, memory_order_acquire,
                                                           memory_order_relaxed)))
        return 0;
    bool waited = false;
    for (uint64_t spins = 1;; spins++) {
        uint64_t w = rd(&l->lock);
        if (w == 0) {
            if (atomic_compare_exchange_weak_explicit(&l->lock, &w, me, memory_order_acquire,
                                                      memory_order_relaxed)) {
                if (waited) wait_hook(&wait_after);
                return 0;
            }
            continue;
        }
        if (w == me) SHR_PANIC("list lock taken twice by one thread");
        if (spins % SPINS_BEFORE_CHECK == 0) {
            if (owner_dead(h, w) &&
                atomic_compare_exchange_strong_explicit(&l->lock, &w, me, memory_order_acquire,
                                                        memory_order_relaxed)) {
                shr__list_repair(h, l);
                if (waited) wait_hook(&wait_after);
                return 0;
            }
            if (!waited) { /* a real wait begins: tell the runtime (the GIL) */
                waited = true;
                wait_hook(&wait_before);
            }
            sched_yield();
        } else {
            __builtin_ia32_pause();
        }
    }
}

void shr__list_unlock(listobj_t *l) { atomic_store_explicit(&l->lock, 0, memory_order_release); }

/* ---- values ------------------------------------------------------------------ */

/* Is s valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)? */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (i + 8 <= n) { /* ASCII eight bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, sizeof w);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Encode a caller's value as an item, taking the reference the item will
 * hold (a new str/bytes object, or an incref of a list). */
static int encode(shr_heap_t *h, const shr_value_t *v, uint64_t *tag, uint64_t *val)
{
    if (!v) return -EINVAL;
    switch (v->type) {
    case SHR_NONE: *val = 0; break;
    case SHR_BOOL: *val = v->u.b != 0; break;
    case SHR_INT: *val = (uint64_t)v->u.i; break;
    case SHR_FLOAT: memcpy(val, &v->u.f, sizeof *val); break;
    case SHR_STR:
    case SHR_BYTES: {
        if (!v->u.s.data && v->u.s.len) return -EINVAL;
        if (v->type == SHR_STR && !utf8_valid((const unsigned char *)v->u.s.data, v->u.s.len)) return -EINVAL;
        strobj_t *s = shr__str_new(h, v->type == SHR_STR ? SHR_TYPE_STR : SHR_TYPE_BYTES, v->u.s.data, v->u.s.len);
        if (!s) return -ENOMEM;
        *val = shr__off(h, s);
        break;
    }
    case SHR_LIST:
        if (!v->u.list || v->u.list->heap != h) return -EINVAL;
        shr__incref(&v->u.list->obj->ob);
        *val = v->u.list->off;
        break;
    default:
        return -EINVAL;
    }
    *tag = v->type;
    return 0;
}

static void release(shr_heap_t *h, uint64_t tag, uint64_t val)
{
    if (is_ref(tag)) shr__decref(h, OBJ(h, val));
}

/* Fill *out from an item; for str, bytes and list, out->ref_ names the
 * reference the caller hands over (finish_decode makes it the caller's). */
static void fill_value(shr_heap_t *h, uint64_t tag, uint64_t val, shr_value_t *out)
{
    memset(out, 0, sizeof *out);
    out->type = (shr_type_t)tag;
    switch (tag) {
    case SHR_BOOL: out->u.b = val != 0; break;
    case SHR_INT: out->u.i = (int64_t)val; break;
    case SHR_FLOAT: memcpy(&out->u.f, &val, sizeof val); break;
    case SHR_STR:
    case SHR_BYTES: {
        strobj_t *s = shr__ptr(h, val);
        out->u.s.data = s->data;
        out->u.s.len = s->len;
        out->ref_ = val;
        break;
    }
    case SHR_LIST: out->ref_ = val; break;
    default: break;
    }
}

/* fill_value under the lock, taking a new reference for the caller. */
static void decode_locked(shr_heap_t *h, uint64_t tag, uint64_t val, shr_value_t *out)
{
    if (is_ref(tag)) shr__incref(OBJ(h, val));
    fill_value(h, tag, val, out);
}

/* After unlocking: make the reference a get took the caller's (a lease, or
 * a list handle). */
static int finish_decode(shr_heap_t *h, shr_value_t *out)
{
    if (!out->ref_) return 0;
    if (out->type == SHR_LIST) {
        shr_list_t *l = calloc(1, sizeof *l);
        int rc = l ? shr__lease_add(h, out->ref_) : -ENOMEM;
        if (rc) {
            free(l);
            shr__decref(h, OBJ(h, out->ref_));
            memset(out, 0, sizeof *out);
            return rc;
        }
        l->heap = h;
        l->off = out->ref_;
        l->obj = shr__ptr(h, out->ref_);
        out->u.list = l;
        return 0;
    }
    int rc = shr__lease_add(h, out->ref_);
    if (rc) {
        shr__decref(h, OBJ(h, out->ref_));
        memset(out, 0, sizeof *out);
    }
    return rc;
}

void shr_value_release(shr_heap_t *heap, shr_value_t *v)
{
    if (!v || !v->ref_) return;
    if (v->type == SHR_LIST) {
        shr_list_close(v->u.list);
    } else if (shr__lease_remove(heap, v->ref_) == 0) {
        shr__decref(heap, OBJ(heap, v->ref_));
    }
    memset(v, 0, sizeof *v);
}

/* Python equality of an item with a caller's value. Lock held. */
static bool equal(shr_heap_t *h, uint64_t tag, uint64_t val, const shr_value_t *v)
{
    bool num_a = tag == SHR_BOOL || tag == SHR_INT || tag == SHR_FLOAT;
    bool num_b = v->type == SHR_BOOL || v->type == SHR_INT || v->type == SHR_FLOAT;
    if (num_a && num_b) {
        if (tag == SHR_FLOAT || v->type == SHR_FLOAT) {
            double a, b;
            if (tag == SHR_FLOAT) memcpy(&a, &val, sizeof a);
            else a = (double)(int64_t)val;
            b = v->type == SHR_FLOAT ? v->u.f : v->type == SHR_INT ? (double)v->u.i : (double)v->u.b;
            /* exact: an int equals a float only if the float is that integer */
            if (a != b) return false;
            if (tag != SHR_FLOAT && (a >= 9.2233720368547758e18 || a < -9.2233720368547758e18 ||
                                     (int64_t)a != (int64_t)val))
                return false;
            if (v->type == SHR_INT && (b >= 9.2233720368547758e18 || b < -9.2233720368547758e18 || (int64_t)b != v->u.i))
                return false;
            return true;
        }
        int64_t a = (int64_t)val, b = v->type == SHR_INT ? v->u.i : v->u.b;
        return a == b;
    }
    if (tag != (uint64_t)v->type) return false;
    if (tag == SHR_NONE) return true;
    if (tag == SHR_STR || tag == SHR_BYTES) {
        strobj_t *s = shr__ptr(h, val);
        return s->len == v->u.s.len && (s->len == 0 || memcmp(s->data, v->u.s.data, s->len) == 0);
    }
    return tag == SHR_LIST && v->u.list && v->u.list->off == val;
}

/* ---- handles ---------------------------------------------------------------- */

static int new_handle(shr_heap_t *h, shr_off_t off, const char *name, shr_list_t **out)
{
    shr_list_t *l = calloc(1, sizeof *l);
    if (!l || (name && !(l->name = strdup(name)))) {
        free(l);
        return -ENOMEM;
    }
    int rc = shr__lease_add(h, off); /* the reference this handle stands for */
    if (rc) {
        free(l->name);
        free(l);
        return rc;
    }
    l->heap = h;
    l->off = off;
    l->obj = shr__ptr(h, off);
    *out = l;
    return 0;
}

int shr__list_open(shr_heap_t *h, shr_off_t off, const char *name, shr_list_t **out)
{
    shr__incref(OBJ(h, off));
    int rc = new_handle(h, off, name, out);
    if (rc) shr__decref(h, OBJ(h, off));
    return rc;
}

static items_t *items_new(shr_heap_t *h, uint64_t cap)
{
    items_t *a = shr_malloc(h, sizeof(items_t) + cap * sizeof(item_t));
    if (!a) return NULL;
    a->cap = cap;
    a->retired = 0;
    wr(&a->len, 0);
    return a;
}

static inline void move_item_between(items_t *b, uint64_t to, items_t *a, uint64_t from)
{
    wr(&b->it[to].tag, rd(&a->it[from].tag));
    wr(&b->it[to].val, rd(&a->it[from].val));
}

int shr_list_create(shr_heap_t *heap, const char *name, const shr_value_t *values, size_t n,
                    shr_list_t **out)
{
    size_t namelen;
    int rc;
    if (!heap || !out || (n && !values)) return -EINVAL;
    if (name && (rc = shr__root_name_check(name, &namelen)) != 0) return rc;
    shr__list_types_register();
    shr__gc_drain_dead(heap);
    listobj_t *l = (listobj_t *)shr__obj_new(heap, SHR_TYPE_LIST, sizeof(listobj_t));
    items_t *a = items_new(heap, n > INITIAL_CAP ? n : INITIAL_CAP);
    if (!l || !a) {
        shr_free(heap, l);
        shr_free(heap, a);
        return -ENOMEM;
    }
    wr(&l->lock, 0);
    wr(&l->seq, 0);
    wr(&l->op, LIST_OP_NONE);
    l->retired = 0;
    size_t i;
    for (i = 0, rc = 0; i < n && rc == 0; i++) {
        uint64_t tag, val;
        if ((rc = encode(heap, &values[i], &tag, &val)) == 0) {
            wr(&a->it[i].tag, tag);
            wr(&a->it[i].val, val);
            wr(&a->len, i + 1);
        }
    }
    wr(&l->items, shr__off(heap, a));
    shr_off_t off = shr__off(heap, l);
    if (rc) {
        shr__decref(heap, &l->ob); /* releases what was encoded */
        return rc;
    }
    if (name) {
        if ((rc = shr__root_lock(heap)) != 0) goto fail;
        if (shr__root_find(heap, name)) rc = -EEXIST;
        else {
            shr__incref(&l->ob); /* the root's reference, before it is published */
            if (!shr__root_new(heap, name, off, ROOT_REF)) {
                shr__decref(heap, &l->ob);
                rc = -ENOSPC;
            }
        }
        shr__root_unlock(heap);
        if (rc) goto fail;
    }
    /* The creator's reference becomes the handle's. */
    if ((rc = new_handle(heap, off, name, out)) != 0) {
        if (name) shr_list_unlink(heap, name);
        goto fail;
    }
    return 0;
fail:
    shr__decref(heap, &l->ob);
    return rc;
}

/* The root `name` if it holds a list: -ENOENT, or SHR_ETYPE when it holds
 * something else. Roots lock held. */
static int find_named_list(shr_heap_t *heap, const char *name, root_entry_t **ep, shr_off_t *offp)
{
    root_entry_t *e = shr__root_find(heap, name);
    if (!e) return -ENOENT;
    shr_off_t off = rd(&e->off);
    if (!(e->flags & ROOT_REF) || off >= heap->capacity || OBJ(heap, off)->type != SHR_TYPE_LIST)
        return SHR_ETYPE;
    *ep = e;
    *offp = off;
    return 0;
}

int shr_list_attach(shr_heap_t *heap, const char *name, shr_list_t **out)
{
    size_t len;
    int rc;
    if (!heap || !out) return -EINVAL;
    if ((rc = shr__root_name_check(name, &len)) != 0) return rc;
    shr__list_types_register();
    shr__gc_drain_dead(heap);
    if ((rc = shr__root_lock(heap)) != 0) return rc;
    root_entry_t *e;
    shr_off_t off = 0;
    if ((rc = find_named_list(heap, name, &e, &off)) == 0)
        shr__incref(OBJ(heap, off)); /* under the roots lock: the root keeps it alive */
    shr__root_unlock(heap);
    if (rc) return rc;
    if ((rc = new_handle(heap, off, name, out)) != 0) shr__decref(heap, OBJ(heap, off));
    return rc;
}

int shr_list_close(shr_list_t *list)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    int rc = shr__lease_remove(h, list->off); /* forget, then release */
    if (rc == 0) shr__decref(h, &list->obj->ob);
    free(list->name);
    free(list);
    return rc == -ENOENT ? 0 : rc;
}

int shr_list_unlink(shr_heap_t *heap, const char *name)
{
    size_t len;
    int rc;
    if (!heap) return -EINVAL;
    if ((rc = shr__root_name_check(name, &len)) != 0) return rc;
    shr__list_types_register();
    if ((rc = shr__root_lock(heap)) != 0) return rc;
    root_entry_t *e;
    shr_off_t off = 0;
    if ((rc = find_named_list(heap, name, &e, &off)) == 0) e->name[0] = 0; /* unpublish, then release */
    shr__root_unlock(heap);
    if (rc == 0) shr__decref(heap, OBJ(heap, off));
    return rc;
}

const char *shr_list_name(const shr_list_t *list) { return list ? list->name : NULL; }
shr_heap_t *shr_list_heap(const shr_list_t *list) { return list ? list->heap : NULL; }

/* ---- reads ------------------------------------------------------------------ */

static int norm_index(int64_t index, uint64_t len, uint64_t *out)
{
    if (index < 0) index += (int64_t)len;
    if (index < 0 || (uint64_t)index >= len) return SHR_EINDEX;
    *out = (uint64_t)index;
    return 0;
}

/* Attempts at a lock-free read before falling back to the lock. */
#define OPTIMISTIC_TRIES 16

int64_t shr_list_len(shr_list_t *list)
{
    if (!list) return -EINVAL;
    /* One load of the array, one of its len: growth and append publish each
     * with a single store, and arrays a reader may be in are not freed. */
    items_t *a = shr__ptr(list->heap, atomic_load_explicit(&list->obj->items, memory_order_acquire));
    return (int64_t)atomic_load_explicit(&a->len, memory_order_acquire);
}

static inline bool inline_tag(uint64_t tag) { return tag >= SHR_NONE && tag <= SHR_FLOAT; }

int shr_list_get(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list || !out) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t i;
    int rc;
    /* Lock-free for values that hold no reference: read under the sequence
     * counter, keep the result if it did not move. */
    for (int tries = 0; tries < OPTIMISTIC_TRIES; tries++) {
        uint64_t s1 = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (s1 & 1) continue;
        items_t *a = shr__ptr(h, atomic_load_explicit(&l->items, memory_order_acquire));
        uint64_t len = atomic_load_explicit(&a->len, memory_order_acquire);
        rc = norm_index(index, len, &i);
        uint64_t tag = 0, val = 0;
        if (rc == 0) {
            tag = rda(&a->it[i].tag);
            val = rda(&a->it[i].val);
        }
        if (rd(&l->seq) != s1) continue;
        if (rc) return rc;
        if (!inline_tag(tag)) break; /* a reference: take it under the lock */
        out->type = (shr_type_t)tag;
        out->ref_ = 0;
        if (tag == SHR_FLOAT) memcpy(&out->u.f, &val, sizeof val);
        else if (tag == SHR_BOOL) out->u.b = val != 0;
        else out->u.i = (int64_t)val;
        return 0;
    }
    if ((rc = shr__list_lock(h, l)) != 0) return rc;
    items_t *a = ARR(h, l);
    if ((rc = norm_index(index, rd(&a->len), &i)) == 0)
        decode_locked(h, rd(&a->it[i].tag), rd(&a->it[i].val), out);
    shr__list_unlock(l);
    return rc ? rc : finish_decode(h, out);
}

int shr_list_get_with(shr_list_t *list, int64_t index, shr_item_fn visit, void *arg)
{
    if (!list || !visit) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    shr_value_t v;
    uint64_t i;
    int rc;
    for (int tries = 0; tries < OPTIMISTIC_TRIES; tries++) {
        uint64_t s1 = atomic_load_explicit(&l->seq, memory_order_acquire);
        if (s1 & 1) continue;
        items_t *a = shr__ptr(h, atomic_load_explicit(&l->items, memory_order_acquire));
        uint64_t len = atomic_load_explicit(&a->len, memory_order_acquire);
        rc = norm_index(index, len, &i);
        uint64_t tag = 0, val = 0;
        if (rc == 0) {
            tag = rda(&a->it[i].tag);
            val = rda(&a->it[i].val);
        }
        if (rd(&l->seq) != s1) continue;
        if (rc) return rc;
        if (!inline_tag(tag)) break;
        fill_value(h, tag, val, &v);
        return visit(&v, arg);
    }
    if ((rc = shr__list_lock(h, l)) != 0) return rc;
    items_t *a = ARR(h, l);
    if ((rc = norm_index(index, rd(&a->len), &i)) != 0) {
        shr__list_unlock(l);
        return rc;
    }
    uint64_t tag = rd(&a->it[i].tag), val = rd(&a->it[i].val);
    if (tag != SHR_LIST) { /* copied under the lock: no reference taken */
        fill_value(h, tag, val, &v);
        v.ref_ = 0;
        rc = visit(&v, arg);
        shr__list_unlock(l);
        return rc;
    }
    decode_locked(h, tag, val, &v);
    shr__list_unlock(l);
    if ((rc = finish_decode(h, &v)) != 0) return rc;
    return visit(&v, arg);
}

static int find_value(shr_list_t *list, const shr_value_t *v, size_t *count, size_t *first)
{
    if (!list || !v) return -EINVAL;
    if (v->type < SHR_NONE || v->type > SHR_LIST) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    size_t n = 0, at = SIZE_MAX;
    int rc = shr__list_lock(h, l);
    if (rc) return rc;
    items_t *a = ARR(h, l);
    for (uint64_t i = 0; i < rd(&a->len); i++)
        if (equal(h, rd(&a->it[i].tag), rd(&a->it[i].val), v)) {
            if (at == SIZE_MAX) at = i;
            n++;
            if (!count) break;
        }
    shr__list_unlock(l);
    if (count) *count = n;
    if (first) {
        if (at == SIZE_MAX) return SHR_ENOTFOUND;
        *first = at;
    }
    return 0;
}

int shr_list_count(shr_list_t *list, const shr_value_t *value, size_t *count)
{
    size_t n;
    if (!count) return -EINVAL;
    int rc = find_value(list, value, &n, NULL);
    if (rc == 0) *count = n;
    return rc;
}

int shr_list_index(shr_list_t *list, const shr_value_t *value, size_t *index)
{
    size_t at;
    if (!index) return -EINVAL;
    int rc = find_value(list, value, NULL, &at);
    if (rc == 0) *index = at;
    return rc;
}

/* ---- writes ------------------------------------------------------------------ */

int shr_list_set(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t tag, val, i;
    int rc = encode(h, value, &tag, &val); /* outside the lock: may allocate */
    if (rc) return rc;
    if ((rc = shr__list_lock(h, l)) != 0) {
        release(h, tag, val);
        return rc;
    }
    items_t *a = ARR(h, l);
    if ((rc = norm_index(index, rd(&a->len), &i)) != 0) {
        shr__list_unlock(l);
        release(h, tag, val); /* a bad index changes nothing */
        return rc;
    }
    uint64_t old_tag = rd(&a->it[i].tag), old_val = rd(&a->it[i].val);
    op_begin(l, LIST_OP_SET, i, 0, 0, old_tag, old_val);
    wrr(&a->it[i].tag, tag);
    wrr(&a->it[i].val, val);
    op_end(l);
    shr__list_unlock(l);
    release(h, old_tag, old_val); /* unpublished: now release it */
    return 0;
}

/* Growth: a new array of twice the capacity with every item, published by
 * one store; the old array goes on the retired chain (a lock-free reader may
 * still be in it) and is freed with the list. Lock held. */
static items_t *grow(shr_heap_t *h, listobj_t *l, items_t *a)
{
    uint64_t len = rd(&a->len);
    items_t *b = items_new(h, a->cap * 2);
    if (!b) return NULL;
    for (uint64_t i = 0; i < len; i++) move_item_between(b, i, a, i);
    wr(&b->len, len);
    a->retired = l->retired;
    l->retired = shr__off(h, a); /* retire, then publish: a crash leaks b at worst */
    atomic_store_explicit(&l->items, shr__off(h, b), memory_order_release);
    return b;
}

static int insert_at(shr_list_t *list, int64_t index, const shr_value_t *value, bool append)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t tag, val;
    int rc = encode(h, value, &tag, &val);
    if (rc) return rc;
    if ((rc = shr__list_lock(h, l)) != 0) {
        release(h, tag, val);
        return rc;
    }
    items_t *a = ARR(h, l);
    uint64_t len = rd(&a->len), at = len;
    if (!append) { /* Python's insert clamps */
        if (index < 0) index += (int64_t)len;
        at = index < 0 ? 0 : (uint64_t)index > len ? len : (uint64_t)index;
    }
    if (len == a->cap && !(a = grow(h, l, a))) {
        shr__list_unlock(l);
        release(h, tag, val);
        return -ENOMEM;
    }
    if (at == len) {
        /* Append: write past len, then publish with len + 1. */
        wr(&a->it[len].tag, tag);
        wr(&a->it[len].val, val);
        atomic_store_explicit(&a->len, len + 1, memory_order_release);
    } else {
        op_begin(l, LIST_OP_INSERT, at, len, len, tag, val);
        shift_up(l, a);
        wrr(&a->it[at].tag, tag);
        wrr(&a->it[at].val, val);
        wrr(&a->len, len + 1);
        op_end(l);
    }
    shr__list_unlock(l);
    return 0;
}

int shr_list_append(shr_list_t *list, const shr_value_t *value) { return insert_at(list, 0, value, true); }

int shr_list_insert(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    return insert_at(list, index, value, false);
}

int shr_list_pop(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t i;
    int rc = shr__list_lock(h, l);
    if (rc) return rc;
    items_t *a = ARR(h, l);
    uint64_t len = rd(&a->len);
    if ((rc = norm_index(index, len, &i)) != 0) {
        shr__list_unlock(l);
        return rc;
    }
    uint64_t tag = rd(&a->it[i].tag), val = rd(&a->it[i].val);
    if (i == len - 1) {
        atomic_store_explicit(&a->len, len - 1, memory_order_release); /* commit */
    } else {
        op_begin(l, LIST_OP_DELETE, i, len, i, tag, val);
        shift_down(l, a);
        wrr(&a->len, len - 1);
        op_end(l);
    }
    shr__list_unlock(l);
    /* The item's reference moves to the caller (a lease) or is released. */
    if (!out) {
        release(h, tag, val);
        return 0;
    }
    fill_value(h, tag, val, out); /* the item's reference becomes the caller's */
    return finish_decode(h, out);
}

int shr_list_delete(shr_list_t *list, int64_t index) { return shr_list_pop(list, index, NULL); }

/* ---- statistics ---------------------------------------------------------------- */

int shr_gc_stats(shr_heap_t *heap, shr_gc_stats_t *out)
{
    if (!heap || !out) return -EINVAL;
    memset(out, 0, sizeof *out);
    out->leases = shr__lease_count(heap);
    out->released_for_dead = shr__gc_released(heap);
    return 0;
}
