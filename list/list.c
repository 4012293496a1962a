/* The shared list
 *
 * See list.h for the byte layout, the lock, the crash rules and the
 * invariants LI1-LI4. This file: the lock, value encoding, the C API, and
 * the list type's functions (traverse, clear, dealloc).
 *
 * Every public call that returns a reference to the caller (a handle, a get
 * of str/bytes/list) increfs under the list's or the roots' lock, then
 * records a lease: a crash in between leaks the reference, never releases
 * one twice. A call that fails changes nothing a caller can observe: every
 * allocation comes before the commit, and what was taken is given back.
 *
 * Handles: every call taking a shr_list_t * or a shr_heap_t * returns
 * -EINVAL for NULL (format and repr: NULL with errno EINVAL).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "list.h"

#define INITIAL_CAP 8
#define SPINS_BEFORE_CHECK 2048
/* 2^63 as a double: the doubles in [-2^63, 2^63) convert to int64. */
#define TWO_POW_63 9223372036854775808.0

/* Thread fences, as compiler barriers only under ThreadSanitizer (gcc
 * refuses thread fences there; on x86, where it runs, the processor keeps
 * these loads in order, and these stores, by itself). */
#if defined(__SANITIZE_THREAD__) || (defined(SHR_TSAN) && SHR_TSAN)
#define COPY_FENCE(mo) atomic_signal_fence(mo)
#else
#define COPY_FENCE(mo) atomic_thread_fence(mo)
#endif

/* ---- the sequence counter and the op record ------------------------------ */

/* Sequence counter: odd while items move in place (a seqlock). Lock held.
 *
 * No fences: every item store inside the odd window is a release store, and
 * the reader's loads of items are acquire loads. A reader that sees any
 * value stored in the window therefore also sees the odd count stored before
 * it, and its last load of the counter (after its acquire loads) cannot
 * return the count it started with. Free on x86, and it lets ThreadSanitizer,
 * which does not model fences, check it. */
static inline void seq_begin(listobj_t *l)
{
    SHR_ASSERT((shr_load_relaxed(&l->seq) & 1) == 0); /* LI1 */
    shr_store_relaxed(&l->seq, shr_load_relaxed(&l->seq) + 1);
}

static inline void seq_end(listobj_t *l)
{
    shr_store_release(&l->seq, shr_load_relaxed(&l->seq) + 1);
}

static inline void store_item(items_t *a, uint64_t i, uint64_t tag, uint64_t val)
{
    shr_store_release(&a->it[i].tag, tag);
    shr_store_release(&a->it[i].val, val);
}

/* Open an in-place change: the sequence goes odd, then the op record that a
 * repair needs (list.h) is written, op last. Lock held. */
static void op_begin(listobj_t *l, uint64_t op, uint64_t index, uint64_t len, uint64_t progress,
                     uint64_t tag, uint64_t val)
{
    SHR_ASSERT(shr_load_relaxed(&l->op) == LIST_OP_NONE); /* LI1 */
    seq_begin(l);
    l->op_index = index;
    l->op_len = len;
    l->undo_tag = tag;
    l->undo_val = val;
    shr_store_relaxed(&l->op_progress, progress);
    shr_store_release(&l->op, op);
}

static void op_end(listobj_t *l)
{
    shr_store_release(&l->op, LIST_OP_NONE);
    seq_end(l);
}

static inline void move_item(items_t *a, uint64_t to, uint64_t from)
{
    store_item(a, to, shr_load_relaxed(&a->it[from].tag), shr_load_relaxed(&a->it[from].val));
}

static inline void release(shr_heap_t *h, uint64_t tag, uint64_t val);
static void release_dropped(shr_heap_t *h, listobj_t *l, uint64_t tag, uint64_t val, bool may_flush);

/* Shift items up one place, from index op_progress down to op_index + 1
 * (insert), or down one place from op_progress up to op_len - 2 (delete).
 * Each step stores its progress after its move, so that a repair can go on
 * from where a dead writer stopped: repeating the last move is harmless
 * (LI3 holds after every step). */
static void shift_up(listobj_t *l, items_t *a)
{
    SHR_ASSERT(l->op_index < l->op_len && l->op_len < a->cap); /* LI3 */
    for (uint64_t k = shr_load_relaxed(&l->op_progress); k > l->op_index; k--) {
        move_item(a, k, k - 1);
        shr_store_relaxed(&l->op_progress, k - 1);
        (void)SHR_FAULT(LIST_SHIFT); /* a crash point */
    }
}

static void shift_down(listobj_t *l, items_t *a)
{
    SHR_ASSERT(l->op_index < l->op_len && l->op_len <= a->cap); /* LI3 */
    for (uint64_t k = shr_load_relaxed(&l->op_progress); k + 1 < l->op_len; k++) {
        move_item(a, k, k + 1);
        shr_store_relaxed(&l->op_progress, k + 1);
        (void)SHR_FAULT(LIST_SHIFT); /* a crash point */
    }
}

/* LI1-LI4 for the whole list (SHR_DEBUG >= 3, after each change, lock held):
 * aborts with the invariant's label. */
static void validate(shr_heap_t *h, listobj_t *l)
{
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len);
    if ((shr_load_relaxed(&l->seq) & 1) || shr_load_relaxed(&l->op) != LIST_OP_NONE)
        SHR_PANIC("LI1: list %llu: seq %llu op %llu outside a change", (unsigned long long)shr__off(h, l),
                  (unsigned long long)shr_load_relaxed(&l->seq), (unsigned long long)shr_load_relaxed(&l->op));
    if (len > a->cap) SHR_PANIC("LI2: list len %llu > cap %llu", (unsigned long long)len, (unsigned long long)a->cap);
    for (uint64_t i = 0; i < len; i++) {
        uint64_t tag = shr_load_relaxed(&a->it[i].tag), val = shr_load_relaxed(&a->it[i].val);
        if (tag < SHR_NONE || tag > SHR_REF) SHR_PANIC("LI2: item %llu: tag %llu", (unsigned long long)i, (unsigned long long)tag);
        if (is_ref(tag) && (val == 0 || val >= h->capacity || shr_load_relaxed(&obj_at(h, val)->refcnt) == 0))
            SHR_PANIC("LI2: item %llu: a reference to a dead or foreign object %llu", (unsigned long long)i,
                      (unsigned long long)val);
    }
    for (uint64_t r = l->retired; r; r = ((items_t *)shr__ptr(h, r))->retired)
        if (r == shr_load_relaxed(&l->items)) SHR_PANIC("LI4: the published array is on the retired chain");
}

/* Validators cost O(len) per change; past VALIDATE_MAX items they would make
 * a debug build quadratic, so long lists are validated when they change
 * length across a multiple of it. */
#define VALIDATE_MAX 4096

static void check_list(shr_heap_t *h, listobj_t *l)
{
    if (SHR_DEBUG >= 3 && (list_items(h, l)->len <= VALIDATE_MAX || list_items(h, l)->len % VALIDATE_MAX == 0))
        validate(h, l);
}

/* Finish or undo what a dead owner left half done (list.h). Lock held, or
 * the list is being deallocated (nobody else can reach it). Idempotent: a
 * repairer that dies is repaired by the next. */
static void repair(shr_heap_t *h, listobj_t *l, bool live);

void shr__list_repair(shr_heap_t *h, listobj_t *l) { repair(h, l, false); }

/* live: a stealer of the lock, with lock-free readers about (the removed
 * item's reference is deferred, release_dropped); false: the list is being
 * deallocated (nobody reads it) or settled with the world stopped (only
 * readers that take no gate: inline values and shr_list_read_copy, which
 * the fence before the release below serves). */
static void repair(shr_heap_t *h, listobj_t *l, bool live)
{
    if (!shr_load_relaxed(&l->items)) { /* its creator died before it had items */
        shr_store_relaxed(&l->op, LIST_OP_NONE);
        if (shr_load_relaxed(&l->seq) & 1) seq_end(l);
        return;
    }
    items_t *a = list_items(h, l);
    /* LI4: growth died between retiring and publishing the new array. */
    if (l->retired && l->retired == shr_load_relaxed(&l->items)) l->retired = a->retired;
    switch (shr_load_acquire(&l->op)) { /* after the dead writer's odd count and op record */
    case LIST_OP_SET:
        if (l->op_index < a->cap) store_item(a, l->op_index, l->undo_tag, l->undo_val);
        break;
    case LIST_OP_INSERT:
        if (l->op_len < a->cap && l->op_index < l->op_len && shr_load_relaxed(&l->op_progress) <= l->op_len) {
            shift_up(l, a);
            store_item(a, l->op_index, l->undo_tag, l->undo_val);
            shr_store_release(&a->len, l->op_len + 1);
        }
        break;
    case LIST_OP_DELETE:
        if (l->op_len <= a->cap && l->op_index < l->op_len && shr_load_relaxed(&l->op_progress) < l->op_len) {
            shift_down(l, a);
            shr_store_release(&a->len, l->op_len - 1);
            /* the list's reference; the taker leased its own */
            if (live) {
                release_dropped(h, l, l->undo_tag, l->undo_val, false);
            } else {
                COPY_FENCE(memory_order_release); /* as in release_dropped */
                release(h, l->undo_tag, l->undo_val);
            }
        }
        break;
    default:
        break;
    }
    shr_store_relaxed(&l->op, LIST_OP_NONE);
    if (shr_load_relaxed(&a->len) > a->cap) shr_store_relaxed(&a->len, a->cap);
    if (shr_load_relaxed(&l->seq) & 1) seq_end(l);
}

/* ---- the lock ------------------------------------------------------------ */

/* A waiter that has spun WAITER_SPINS times marks the lock word with
 * LOCK_WAITER. The mark survives the unlock (the word goes to LOCK_WAITER,
 * "free, and someone has been waiting"), and a free marked word is taken
 * only by a thread that has itself waited WAITER_SPINS: so a holder that
 * unlocks and locks again at once (a writer in a loop, a walk between its
 * steps) lets a long waiter in first instead of starving it past its
 * deadline. The mark is a hint: an unlock
 * racing a waiter's mark may drop it, and the waiter marks again. */
#define WAITER_SPINS 64

/* Process-wide wait hooks (shr_wait_hooks_set): before() when a thread
 * begins a real wait for a list's lock (after a short spin), after() on
 * every way out of that wait, the lock taken or not. */
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

void shr__wait_hook_before(void) { wait_hook(&wait_before); }
void shr__wait_hook_after(void) { wait_hook(&wait_after); }

static int lock_wait_end(bool waited, int rc)
{
    if (waited) wait_hook(&wait_after);
    return rc;
}

static shr_noinline int lock_slow(shr_heap_t *h, listobj_t *l, uint64_t me)
{
    uint64_t deadline = 0;
    bool waited = false;
    for (uint64_t spins = 1;; spins++) {
        uint64_t w = shr_load_relaxed(&l->lock);
        if ((w & ~LOCK_WAITER) == 0) { /* free; if marked, for those who waited */
            if ((w == 0 || spins >= WAITER_SPINS) &&
                atomic_compare_exchange_weak_explicit(&l->lock, &w, me, memory_order_acquire,
                                                      memory_order_relaxed))
                return lock_wait_end(waited, 0);
            __builtin_ia32_pause();
            continue;
        }
        if ((w & ~LOCK_WAITER) == me) SHR_PANIC("list lock taken twice by one thread");
        if (spins >= WAITER_SPINS && !(w & LOCK_WAITER))
            atomic_compare_exchange_weak_explicit(&l->lock, &w, w | LOCK_WAITER, memory_order_relaxed,
                                                  memory_order_relaxed);
        if (spins % SPINS_BEFORE_CHECK == 0) {
            if (shr__owner_gone(h, w & ~LOCK_WAITER) &&
                atomic_compare_exchange_strong_explicit(&l->lock, &w, me, memory_order_acquire,
                                                        memory_order_relaxed)) {
                repair(h, l, true);
                return lock_wait_end(waited, 0);
            }
            if (!waited) { /* a real wait begins: tell the runtime (a GIL) */
                waited = true;
                wait_hook(&wait_before);
            }
            /* The clock is read only once a wait is long (~10 us). */
            if (deadline == 0) deadline = shr__lock_deadline(h);
            else if (shr__now_ns(CLOCK_MONOTONIC) > deadline) return lock_wait_end(waited, SHR_ELOCKTIMEOUT);
            sched_yield();
        } else {
            __builtin_ia32_pause();
        }
    }
}

int shr__list_lock(shr_heap_t *h, listobj_t *l)
{
    shr_tctx_t *ctx = shr__tctx(h);
    if (!ctx) return -errno;
    uint64_t me = shr__owner_word(ctx), zero = 0;
    if (shr_likely(atomic_compare_exchange_strong_explicit(&l->lock, &zero, me, memory_order_acquire,
                                                           memory_order_relaxed)))
        return 0;
    return lock_slow(h, l, me);
}

/* ---- values ------------------------------------------------------------------ */

/* Is s valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)? */
bool shr__utf8_valid(const unsigned char *s, size_t n)
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
 * hold (a new str/bytes object, or an incref of a list). Fails before it
 * takes anything. */
shr_inline int encode(shr_heap_t *h, const shr_value_t *v, uint64_t *tag, uint64_t *val)
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
        if (v->type == SHR_STR && !shr__utf8_valid((const unsigned char *)v->u.s.data, v->u.s.len)) return -EINVAL;
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
    case SHR_REF: {
        /* A ref this process holds (checked against its leases); a list's
         * is stored as the list. */
        uint64_t off = v->u.ref.off;
        if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1)) || !shr__lease_held(h, off))
            return -EINVAL;
        obj_t *o = obj_at(h, off);
        shr__incref(o);
        *val = off;
        *tag = o->type == SHR_TYPE_LIST ? SHR_LIST : SHR_REF;
        return 0;
    }
    default:
        return -EINVAL;
    }
    *tag = v->type;
    return 0;
}

/* Give back the reference an item held. A str or bytes holds no reference
 * of its own, so its last release frees the block here (what its dealloc in
 * str.c does), without the generic decref's trashcan and type lookup: the
 * common case of a set that replaces a string. */
static inline void release(shr_heap_t *h, uint64_t tag, uint64_t val)
{
    if (tag == SHR_STR || tag == SHR_BYTES) shr__str_release(h, obj_at(h, val));
    else if (is_ref(tag)) shr__decref(h, obj_at(h, val)); /* a list or another object */
}

/* ---- dropped strings: released after a grace period (objects.md §6.4) ----
 *
 * count and index compare str and bytes items in read sections, with no
 * lock and no reference taken (find_step). So the list's reference to a str
 * or bytes it drops (a set's old value, a pop, a delete, a dead writer's
 * delete finished by a repair) must outlive every section that may have
 * read it. When no walk is under way (listobj_t.walkers) it is released at
 * once; otherwise it becomes a deferred lease of the dropping process
 * (shr__lease_defer: what a death or close releases, after a grace period),
 * and is released once a grace period has passed. This thread keeps the
 * offsets it deferred; at DEFER_FLUSH of them (and at shr_list_close) one
 * grace period, then each is forgotten and released (forget, then release:
 * a death between leaks it). If a reader outlasts the wait, they are kept
 * for the next try. Kept per thread for one heap: a thread that turns to
 * another heap leaves the first heap's deferred leases to that heap's close
 * (or the next list call there that flushes a full set), and a deferral
 * with the set full and a reader stalled is left to the close the same
 * way. Other references (lists, other objects) are compared by identity,
 * never read through: released at once. */
#define DEFER_FLUSH 64

static _Thread_local struct {
    shr_heap_t *h;
    uint32_t n;
    uint64_t off[DEFER_FLUSH];
} deferred;

/* Release what this thread deferred on h, after a grace period (none
 * taken if it has nothing there). A list call, inside the gate. */
static void defer_flush(shr_heap_t *h)
{
    if (deferred.h != h || deferred.n == 0 || !shr__grace_wait(h)) return;
    uint32_t n = deferred.n;
    deferred.n = 0;
    for (uint32_t i = 0; i < n; i++)
        if (shr__lease_undefer(h, deferred.off[i]) == 0) shr__str_release(h, obj_at(h, deferred.off[i]));
}

/* Give back the reference an item that was published held: a str or bytes
 * deferred (above), anything else at once. may_flush: false under the list
 * lock (a repair), where the grace period is left to the next flush. */
static void release_dropped(shr_heap_t *h, listobj_t *l, uint64_t tag, uint64_t val, bool may_flush)
{
    /* The counter's change that unpublished the item is ordered before
     * every store of the free and of a reuse of the block, for the readers
     * that copy strings under the counter (shr_list_read_copy). */
    COPY_FENCE(memory_order_release);
    /* No walk under way: nobody can be reading the string (the item was
     * unpublished before this read-modify-write, which a walker's own
     * increment, before its first load of an item, is ordered with: either
     * this sees the walker, or the walker sees the item gone). */
    if ((tag != SHR_STR && tag != SHR_BYTES) || atomic_fetch_add(&l->walkers, 0) == 0) {
        release(h, tag, val);
        return;
    }
    if (deferred.h != h) { /* see above: the other heap's stay leased */
        deferred.h = h;
        deferred.n = 0;
    }
    if (may_flush && deferred.n == DEFER_FLUSH) defer_flush(h);
    if (shr__lease_defer(h, val) != 0) {
        /* No lease could record it (no memory for the table, its lock timed
         * out): a grace period here, or, if a reader outlasts it, a leak of
         * this one object rather than a free under a reader. */
        if (shr__grace_wait(h)) shr__str_release(h, obj_at(h, val));
        return;
    }
    if (deferred.n < DEFER_FLUSH) deferred.off[deferred.n++] = val;
    if (may_flush && deferred.n == DEFER_FLUSH) defer_flush(h);
}

/* Fill *out from an item; for str, bytes and list, out->ref_ names the
 * reference the caller is handed (claim makes it the caller's). */
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
    case SHR_REF:
        out->ref_ = val;
        out->u.ref.off = val;
        break;
    default: break;
    }
}

/* fill_value, taking a new reference for the caller. List lock held. */
static void take_value(shr_heap_t *h, uint64_t tag, uint64_t val, shr_value_t *out)
{
    if (is_ref(tag)) shr__incref(obj_at(h, val));
    fill_value(h, tag, val, out);
}

/* Make the reference take_value took the caller's: a lease and, for a list,
 * a handle. On failure the reference is given back and *out cleared, so
 * that nothing changed. Called after unlocking (get), or under the lock
 * (pop, where the item still holds its own reference, so the give-back
 * cannot free). */
static int claim(shr_heap_t *h, shr_value_t *out)
{
    if (!out->ref_) return 0;
    shr_list_t *l = NULL;
    int rc = 0;
    if (out->type == SHR_LIST && !(l = shr__gc_priv_alloc(sizeof *l))) rc = -ENOMEM;
    if (rc == 0) rc = shr__lease_add(h, out->ref_);
    if (rc) {
        free(l);
        shr__decref(h, obj_at(h, out->ref_));
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (l) {
        l->heap = h;
        l->off = out->ref_;
        l->obj = shr__ptr(h, out->ref_);
        out->u.list = l;
    }
    return 0;
}

static void value_release_(shr_heap_t *heap, shr_value_t *v)
{
    if (!v || !v->ref_) return;
    if (v->type == SHR_LIST) {
        shr_list_close(v->u.list);
    } else if (!heap) {
        return; /* nothing to release it from: the value is left as it was */
    } else if (shr__lease_remove(heap, v->ref_) == 0) {
        release(heap, v->type, v->ref_);
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
            if (tag != SHR_FLOAT && (a >= TWO_POW_63 || a < -TWO_POW_63 ||
                                     (int64_t)a != (int64_t)val))
                return false;
            if (v->type == SHR_INT && (b >= TWO_POW_63 || b < -TWO_POW_63 || (int64_t)b != v->u.i))
                return false;
            return true;
        }
        int64_t a = (int64_t)val, b = v->type == SHR_INT ? v->u.i : v->u.b;
        return a == b;
    }
    if (tag == SHR_LIST || tag == SHR_REF) { /* objects: identity */
        if (v->type == SHR_REF) return v->u.ref.off == val;
        return tag == SHR_LIST && v->type == SHR_LIST && v->u.list && v->u.list->off == val;
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

/* A handle on list object off, standing for a reference the caller already
 * took (stolen on success; left to the caller on failure). */
static int new_handle(shr_heap_t *h, shr_off_t off, const char *name, shr_list_t **out)
{
    shr_list_t *l = shr__gc_priv_alloc(sizeof *l);
    if (!l || (name && !(l->name = shr__gc_priv_strdup(name)))) {
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

/* An empty item array of cap items (fault point list.alloc); NULL when cap
 * items do not fit any heap. */
static items_t *items_new(shr_heap_t *h, uint64_t cap)
{
    size_t size;
    if (!shr__gc_array_size(sizeof(items_t), cap, sizeof(item_t), &size)) {
        errno = ENOMEM;
        return NULL;
    }
    items_t *a = shr__gc_alloc(h, size);
    if (!a) return NULL;
    a->cap = cap;
    a->retired = 0;
    a->pad = 0;
    shr_store_relaxed(&a->len, 0);
    return a;
}

static int list_create_(shr_heap_t *heap, const char *name, const shr_value_t *values, size_t n,
                    shr_list_t **out)
{
    size_t namelen, size;
    int rc;
    if (!heap || !out || (n && !values)) return -EINVAL;
    if (name && (rc = shr__root_name_check(name, &namelen)) != 0) return rc;
    uint64_t cap = n > INITIAL_CAP ? n : INITIAL_CAP;
    /* Before anything is allocated or written: n items must fit a heap. */
    if (!shr__gc_array_size(sizeof(items_t), cap, sizeof(item_t), &size)) return -ENOMEM;
    shr__list_types_register();
    shr__gc_drain_dead(heap);
    /* Zeroed (unlocked, op NONE, no items: a walk that finds it now sees an
     * empty list) before its refcount commits it. The list first, then its
     * array, published at once (empty) and filled in place: a creator that
     * dies part way leaves a list object that holds everything it made (the
     * backup mark-sweep frees it all), never an array nothing names. */
    listobj_t *l = (listobj_t *)shr__obj_new_container(heap, SHR_TYPE_LIST, sizeof(listobj_t), NULL, 0);
    if (!l) return -ENOMEM;
    items_t *a = items_new(heap, cap);
    if (!a) {
        shr__decref(heap, &l->ob); /* empty: frees it */
        return -ENOMEM;
    }
    shr_store_release(&l->items, shr__off(heap, a));
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t tag, val;
        if ((rc = encode(heap, &values[i], &tag, &val)) == 0) {
            SHR_ASSERT(i < a->cap); /* LI2 */
            store_item(a, i, tag, val);
            shr_store_relaxed(&a->len, i + 1);
        }
    }
    shr_off_t off = shr__off(heap, l);
    if (rc) {
        shr__decref(heap, &l->ob); /* releases what was encoded */
        return rc;
    }
    check_list(heap, l);
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
/* ---- objects from a segment nobody has checked ---------------------------- */

/* What is wrong with the object at off, expected of type `type` (0: any of
 * str, bytes, list), NULL when nothing: an allocated block
 * (shr__alloc_block_checked) with references, of that type, a str's or
 * bytes' length within its block, a list's items array an allocated block
 * that holds cap items, len <= cap. The slow paths' check of objects read
 * from the data (attach by name, shr_heap_check); the hot paths trust an
 * object once its handle exists (docs/design/reliability.md). */
const char *shr__list_obj_problem(shr_heap_t *h, uint64_t off, uint32_t type)
{
    if (off == 0 || off >= h->capacity || (off & (SHR_ALIGNMENT - 1))) return "offset not a block";
    size_t n = shr__alloc_block_checked(h, off);
    if (n < sizeof(obj_t)) return "not an allocated block";
    obj_t *o = obj_at(h, off);
    if (shr_load_relaxed(&o->refcnt) == 0) return "no references";
    uint32_t t = o->type;
    if (type ? t != type : (t != SHR_TYPE_STR && t != SHR_TYPE_BYTES && t != SHR_TYPE_LIST)) return "wrong type";
    if (t == SHR_TYPE_STR || t == SHR_TYPE_BYTES) {
        strobj_t *so = (strobj_t *)o;
        if (n < sizeof(strobj_t) || so->len > n - sizeof(strobj_t)) return "length past its block";
        return NULL;
    }
    if (n < sizeof(listobj_t)) return "list header past its block";
    listobj_t *l = (listobj_t *)o;
    uint64_t io = shr_load_relaxed(&l->items);
    if (io == 0 || io >= h->capacity || (io & (SHR_ALIGNMENT - 1))) return "items offset not a block";
    size_t in = shr__alloc_block_checked(h, io);
    if (in < sizeof(items_t)) return "items not an allocated block";
    items_t *a = shr__ptr(h, io);
    if (a->cap > (in - sizeof(items_t)) / sizeof(item_t)) return "items cap past its block";
    if (shr_load_relaxed(&a->len) > a->cap) return "items len above cap";
    return NULL;
}

/* RT2 for a named list: the list, and each object its items name; for a
 * named node, the node (its slots name objects any process may be changing:
 * each is checked as a block with references). */
static const char *root_check(shr_heap_t *h, uint64_t off)
{
    if (off && off < h->capacity && !(off & (SHR_ALIGNMENT - 1)) && shr__alloc_block_checked(h, off) >= sizeof(obj_t) &&
        shr__is_node_type(obj_at(h, off)->type))
        return shr__node_problem(h, off);
    const char *why = shr__list_obj_problem(h, off, SHR_TYPE_LIST);
    if (why) return why;
    listobj_t *l = (listobj_t *)obj_at(h, off);
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len);
    for (uint64_t i = 0; i < len; i++) {
        uint64_t tag = shr_load_relaxed(&a->it[i].tag);
        if (!is_ref(tag)) continue;
        uint32_t want = tag == SHR_STR ? SHR_TYPE_STR : tag == SHR_BYTES ? SHR_TYPE_BYTES : SHR_TYPE_LIST;
        uint64_t val = shr_load_relaxed(&a->it[i].val);
        const char *bad = tag == SHR_REF ? shr__node_problem(h, val) : shr__list_obj_problem(h, val, want);
        /* An item set meanwhile may have released the object read: only a
         * problem the item still names is damage. */
        if (bad && shr_load_acquire(&a->it[i].tag) == tag &&
            shr_load_acquire(&a->it[i].val) == val)
            return "an item names a damaged object";
    }
    return NULL;
}

static int find_named_list(shr_heap_t *heap, const char *name, root_entry_t **ep, shr_off_t *offp)
{
    root_entry_t *e = shr__root_find(heap, name);
    if (!e) return -ENOENT;
    shr_off_t off = shr_load_relaxed(&e->off);
    if (!(e->flags & ROOT_REF)) return SHR_ETYPE;
    /* A node's name (objects and lists share the namespace). */
    if (off && off < heap->capacity && !(off & (SHR_ALIGNMENT - 1)) &&
        shr__alloc_block_checked(heap, off) >= sizeof(obj_t) && shr__is_node_type(obj_at(heap, off)->type))
        return SHR_ETYPE;
    /* The root's object is read from the data: verified before a handle
     * trusts it (root-object-unchecked). */
    if (shr__list_obj_problem(heap, off, 0)) return SHR_ECORRUPT;
    if (obj_at(heap, off)->type != SHR_TYPE_LIST) return SHR_ETYPE;
    *ep = e;
    *offp = off;
    return 0;
}

static int list_attach_(shr_heap_t *heap, const char *name, shr_list_t **out)
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
        shr__incref(obj_at(heap, off)); /* under the roots lock: the root keeps it alive */
    shr__root_unlock(heap);
    if (rc) return rc;
    if ((rc = new_handle(heap, off, name, out)) != 0) shr__decref(heap, obj_at(heap, off));
    return rc;
}

static int list_close_(shr_list_t *list)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    defer_flush(h); /* what this thread dropped from lists of h, if a grace period passes */
    int rc = shr__lease_remove(h, list->off); /* forget, then release */
    if (rc == 0) shr__decref(h, &list->obj->ob);
    free(list->name);
    free(list);
    return rc == -ENOENT ? 0 : rc;
}

static int list_unlink_(shr_heap_t *heap, const char *name)
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
    if (rc == 0) shr__decref(heap, obj_at(heap, off));
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

/* ---- read sections and grace periods (docs/design/objects.md §7.4) ------
 *
 * A lock-free reader of an item array (read_inline, shr_list_len, the steps
 * of count and index) runs in a read section: its thread slot's `epoch` is
 * odd from before its first load of `items` until after its last load from
 * the array or from a str or bytes it names. Only that thread writes it, so
 * a section is two stores to a line the thread owns. A writer that wants to
 * free or shrink an array readers may still be in (a retired one, or the
 * tail of a shrinking one), or to release a str or bytes it dropped from an
 * item (deferred: below), first waits for a grace period (shr__grace_wait,
 * gc/lease.c, which states the memory ordering): every live slot whose
 * epoch was odd when it looked has since changed it (the section ended) or
 * died. A section that begins after the writer looked loads the current
 * `items` and `len`, stored before the look.
 *
 * A section is wait-free (a bounded number of loads, no lock: a reader that
 * falls back to the lock leaves its section first), so a writer that waits
 * for one under the list lock cannot deadlock. */
typedef struct rsect {
    _Atomic uint64_t *ep;
    uint64_t e;
} rsect_t;

/* false when this thread has no slot (errno set): then read under the lock. */
shr_inline bool rsect_enter(shr_heap_t *h, listobj_t *l, rsect_t *s, uint64_t *seq)
{
    shr_tctx_t *c = shr__tctx(h);
    if (shr_unlikely(!c)) return false;
    s->ep = &c->ts->epoch;
    s->e = shr_load_relaxed(s->ep) | 1; /* even outside a section: odd inside */
#if !defined(__SANITIZE_THREAD__)
    if (shr_likely(atomic_load_explicit(&shr__gate_asym, memory_order_relaxed))) {
        shr_store_relaxed(s->ep, s->e);
        atomic_signal_fence(memory_order_seq_cst); /* the writer's membarrier does the rest */
        *seq = shr_load_acquire(&l->seq);
        return true;
    }
#endif
    atomic_store_explicit(s->ep, s->e, memory_order_seq_cst);
    *seq = atomic_load_explicit(&l->seq, memory_order_seq_cst);
    return true;
}

shr_inline void rsect_exit(rsect_t *s) { shr_store_release(s->ep, s->e + 1); }

/* Free the arrays on the retired chain, after a grace period (no reader can
 * be in them). Each comes off the chain (the commit: LI4) before it is
 * freed, so a death in between leaks that array and frees nothing twice.
 * Lock held. */
static void free_retired(shr_heap_t *h, listobj_t *l)
{
    while (l->retired) {
        items_t *r = shr__ptr(h, l->retired);
        l->retired = r->retired;
        shr_free(h, r);
    }
}


int64_t shr_list_len(shr_list_t *list)
{
    if (!list) return -EINVAL;
    /* One load of the array, one of its len, in a read section: growth and
     * append publish each with a single store, and an array is not freed
     * while a section that may have loaded it lasts. */
    rsect_t rs;
    uint64_t seq;
    if (shr_unlikely(!rsect_enter(list->heap, list->obj, &rs, &seq))) return -errno; /* no thread slot */
    (void)seq;
    items_t *a = shr__ptr(list->heap, shr_load_acquire(&list->obj->items));
    int64_t n = (int64_t)shr_load_acquire(&a->len);
    rsect_exit(&rs);
    return n;
}

static inline bool inline_tag(uint64_t tag) { return tag >= SHR_NONE && tag <= SHR_FLOAT; }

/* The lock-free read of an inline value (None, bool, int, float): read
 * under the sequence counter, kept if it did not move. Returns 0 with *out
 * filled, a negative error (a bad index), or 1 when the item holds a
 * reference (or the readers kept colliding with writers): take the lock. */
static shr_noinline int read_inline_retry(shr_heap_t *h, listobj_t *l, int64_t index, shr_value_t *out);

/* Decode an inline item into *out. */
shr_inline void inline_value(uint64_t tag, uint64_t val, shr_value_t *out)
{
    out->type = (shr_type_t)tag;
    out->ref_ = 0;
    if (tag == SHR_FLOAT) memcpy(&out->u.f, &val, sizeof val);
    else if (tag == SHR_BOOL) out->u.b = val != 0;
    else out->u.i = (int64_t)val;
}

shr_inline int read_inline(shr_heap_t *h, listobj_t *l, int64_t index, shr_value_t *out)
{
    uint64_t i, s1;
    rsect_t rs;
    if (shr_unlikely(!rsect_enter(h, l, &rs, &s1))) return 1; /* no slot: the locked path says why */
    if (shr_likely(!(s1 & 1))) { /* the first try, in the caller's frame */
        items_t *a = shr__ptr(h, shr_load_acquire(&l->items));
        uint64_t len = shr_load_acquire(&a->len);
        if (shr_likely(norm_index(index, len, &i) == 0)) {
            uint64_t tag = shr_load_acquire(&a->it[i].tag), val = shr_load_acquire(&a->it[i].val);
            if (shr_likely(shr_load_relaxed(&l->seq) == s1 && inline_tag(tag))) {
                rsect_exit(&rs);
                inline_value(tag, val, out);
                return 0;
            }
        }
    }
    rsect_exit(&rs);
    return read_inline_retry(h, l, index, out);
}

/* The tries after the first: a writer was moving items, the index was bad,
 * or the item holds a reference. */
static shr_noinline int read_inline_retry(shr_heap_t *h, listobj_t *l, int64_t index, shr_value_t *out)
{
    uint64_t i, s1;
    rsect_t rs;
    if (!rsect_enter(h, l, &rs, &s1)) return 1;
    for (int tries = 0; tries < OPTIMISTIC_TRIES; tries++, s1 = shr_load_acquire(&l->seq)) {
        if (s1 & 1) continue;
        items_t *a = shr__ptr(h, shr_load_acquire(&l->items));
        uint64_t len = shr_load_acquire(&a->len);
        int rc = norm_index(index, len, &i);
        uint64_t tag = 0, val = 0;
        if (rc == 0) {
            tag = shr_load_acquire(&a->it[i].tag);
            val = shr_load_acquire(&a->it[i].val);
        }
        if (shr_load_relaxed(&l->seq) != s1) continue;
        rsect_exit(&rs);
        if (rc) return rc;
        if (!inline_tag(tag)) return 1; /* a reference: take it under the lock */
        inline_value(tag, val, out);
        return 0;
    }
    rsect_exit(&rs);
    return 1;
}

/* Could val be a str or bytes offset (aligned, its header inside the heap)?
 * The lock-free readers (the copy below, count and index) check it before
 * they read through an item; the length is then checked against the rest
 * of the heap. */
shr_inline bool str_off_ok(const shr_heap_t *h, uint64_t val)
{
    return val >= sizeof(strobj_t) && !(val & (SHR_ALIGNMENT - 1)) && val <= h->capacity - sizeof(strobj_t);
}

/* ---- lock-free copies of short strings (shr_list_read_copy) ----------------
 *
 * A str or bytes item is copied out under the sequence counter, like an
 * inline value, with no lock, no reference and no walker count: the copy is
 * kept only if the counter did not move. That is enough because an item's
 * string is alive while the item holds it (its count includes the item's
 * reference), and every path that drops it from an item (set, delete, pop,
 * a repair) changes the counter first and frees after (release_dropped's
 * fence). So a reader whose last load of the counter returns its first
 * value read the string while it was alive; a reader that raced a free may
 * have read a block being reused, and throws that copy away. The bytes it
 * read are still inside the heap: the offset and length are bounded by the
 * capacity, and a segment is never shortened. One race remains: a string
 * freed, and its pages released to the system (a whole pool run or chunk
 * given back), between the reader's check of the pair and its copy: the
 * copy then faults a released page in again (a page of tmpfs until the
 * next release; SIGBUS if /dev/shm is full at that instant). It needs the
 * reader stalled inside a window of a few loads while a writer frees the
 * string and the allocator gives its chunk back.
 *
 * Reading a block that may have been freed is a race that the memory
 * checkers see and that is harmless here (the result is discarded), so the
 * copy is one function they do not check, with word loads (no memcpy, which
 * ASan intercepts). */

__attribute__((no_sanitize("address", "thread"), noinline)) static uint64_t
copy_unvouched(const shr_heap_t *h, uint64_t val, char *dst, size_t cap)
{
    SHR__VG_QUIET_BEGIN();
    const strobj_t *s = shr__ptr(h, val);
    uint64_t n = *(const volatile uint64_t *)&s->len;
    if (n <= cap && n <= h->capacity - val - sizeof(strobj_t)) {
        /* Whole words: the block holds the string rounded up to its 16-byte
         * alignment, so the last word read stays inside it. */
        SHR__COPY_WORDS(dst, s->data, (size_t)n);
    }
    SHR__VG_QUIET_END();
    return n;
}

/* One try: 0 with *out filled, 1 when the counter moved (or was odd), 2
 * when the item is not for this path (a reference, a longer string), or
 * a negative error (a bad index, seen with the counter steady). */
shr_inline int read_copy_try(shr_heap_t *h, listobj_t *l, uint64_t s1, int64_t index, shr_value_t *out, void *buf,
                             size_t cap)
{
    uint64_t i;
    if (s1 & 1) return 1;
    items_t *a = shr__ptr(h, shr_load_acquire(&l->items));
    uint64_t len = shr_load_acquire(&a->len);
    int rc = norm_index(index, len, &i);
    uint64_t tag = 0, val = 0, n = 0;
    if (rc == 0) {
        tag = shr_load_acquire(&a->it[i].tag);
        val = shr_load_acquire(&a->it[i].val);
        if (tag == SHR_STR || tag == SHR_BYTES) {
            /* Never read through a torn pair (a str tag stored by a set
             * inside its odd window, with the int it replaces still in
             * val): the acquire loads above make such a pair show as a
             * moved counter here. A read through it would stay inside the
             * heap but could fault in a page the allocator never committed
             * (a tmpfs page allocated, or a SIGBUS on a full /dev/shm). */
            if (shr_load_relaxed(&l->seq) != s1) return 1;
            if (!str_off_ok(h, val)) {
                n = UINT64_MAX; /* not a string's offset: not copied (the locked path reads it) */
            } else {
                n = copy_unvouched(h, val, buf, cap);
                COPY_FENCE(memory_order_acquire); /* the copy before the counter's second load */
            }
        }
    }
    if (shr_load_relaxed(&l->seq) != s1) return 1;
    if (rc) return rc;
    if (inline_tag(tag)) {
        inline_value(tag, val, out);
        return 0;
    }
    if ((tag != SHR_STR && tag != SHR_BYTES) || n > cap) return 2;
    out->type = (shr_type_t)tag;
    out->ref_ = 0;
    out->u.s.data = buf;
    out->u.s.len = n;
    return 0;
}

static shr_noinline int read_copy_retry(shr_heap_t *h, listobj_t *l, int64_t index, shr_value_t *out, void *buf,
                                        size_t cap)
{
    uint64_t s1;
    rsect_t rs;
    if (!rsect_enter(h, l, &rs, &s1)) return 1;
    int rc = 1;
    for (int tries = 0; tries < OPTIMISTIC_TRIES && rc == 1; tries++, s1 = shr_load_acquire(&l->seq))
        rc = read_copy_try(h, l, s1, index, out, buf, cap);
    rsect_exit(&rs);
    return rc == 2 ? 1 : rc;
}

int shr_list_read_copy(shr_list_t *list, int64_t index, shr_value_t *out, void *buf, size_t cap)
{
    if (shr_unlikely(!list || !out || (!buf && cap))) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t s1;
    rsect_t rs;
    if (shr_unlikely(!rsect_enter(h, l, &rs, &s1))) return 1; /* no slot: the caller's locked path says why */
    int rc = read_copy_try(h, l, s1, index, out, buf, cap);
    rsect_exit(&rs);
    if (shr_likely(rc <= 0)) return rc;
    if (rc == 2) return 1;
    return read_copy_retry(h, l, index, out, buf, cap);
}

static int list_get_(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list || !out) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t i;
    int rc = shr__list_lock(h, l); /* read_inline found a reference (shr_list_get) */
    if (rc) return rc;
    items_t *a = list_items(h, l);
    if ((rc = norm_index(index, shr_load_relaxed(&a->len), &i)) == 0)
        take_value(h, shr_load_relaxed(&a->it[i].tag), shr_load_relaxed(&a->it[i].val), out);
    shr__list_unlock(l);
    return rc ? rc : claim(h, out);
}

static int list_get_with_(shr_list_t *list, int64_t index, shr_item_fn visit, void *arg)
{
    if (!list || !visit) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    shr_value_t v;
    uint64_t i;
    int rc = shr__list_lock(h, l); /* read_inline found a reference (shr_list_get_with) */
    if (rc) return rc;
    items_t *a = list_items(h, l);
    if ((rc = norm_index(index, shr_load_relaxed(&a->len), &i)) != 0) {
        shr__list_unlock(l);
        return rc;
    }
    uint64_t tag = shr_load_relaxed(&a->it[i].tag), val = shr_load_relaxed(&a->it[i].val);
    if (tag != SHR_LIST && tag != SHR_REF) { /* visited under the lock: no reference taken */
        fill_value(h, tag, val, &v);
        v.ref_ = 0;
        rc = visit(&v, arg);
        shr__list_unlock(l);
        return rc;
    }
    take_value(h, tag, val, &v);
    shr__list_unlock(l);
    if ((rc = claim(h, &v)) != 0) return rc;
    return visit(&v, arg);
}

/* count and index walk the list in steps of at most FIND_STEP items or
 * FIND_BYTES bytes of strings compared. A step runs in a read section with
 * no lock (find_step): it loads the sequence counter, compares its items
 * (a str or bytes read in place: immutable, and alive for the section, as
 * a list releases what it drops only after a grace period), and is kept
 * only if the counter did not move; a writer therefore never waits for a
 * walk, however long the list or however the walker is scheduled. A step
 * that keeps meeting writers (FIND_TRIES) is taken under the lock instead,
 * and the lock let go after it. Each item is compared as it is when its
 * step reaches it; an insert or delete between steps may make the walk see
 * an item twice or miss one (as iterating a Python list that another
 * thread changes would). */
#define FIND_STEP 256
#define FIND_BYTES 65536
#define FIND_TRIES 4

typedef struct find {
    const shr_value_t *v;
    bool want_count;     /* count: every match; index: the first */
    uint64_t i;          /* the next item */
    size_t n, at;        /* matches, the first match (SIZE_MAX: none) */
    bool done;
} find_t;

/* A str or bytes item against the caller's value of the same type, read
 * with no lock. The offset came from a pair the sequence counter vouched
 * for; the bounds are a defence: an offset that does not hold a whole
 * string inside the heap compares unequal. */
static bool str_equal_unlocked(shr_heap_t *h, uint64_t val, const shr_value_t *v)
{
    if (!str_off_ok(h, val)) return false;
    const strobj_t *s = shr__ptr(h, val);
    uint64_t len = s->len;
    if (len != v->u.s.len || len > h->capacity - val - sizeof(strobj_t)) return false;
    return len == 0 || memcmp(s->data, v->u.s.data, len) == 0;
}

/* One step in a read section. 1: taken (f advanced), 0: a writer moved
 * items meanwhile (nothing kept), -1: no read section (no thread slot). */
static int find_step(shr_heap_t *h, listobj_t *l, find_t *f)
{
    rsect_t rs;
    uint64_t s1;
    if (!rsect_enter(h, l, &rs, &s1)) return -1;
    bool ok = !(s1 & 1);
    uint64_t k = f->i, len = 0, stop = k + FIND_STEP, bytes = 0, first = SIZE_MAX;
    size_t n = 0;
    bool fin = false;
    if (ok) {
        const shr_value_t *v = f->v;
        items_t *a = shr__ptr(h, shr_load_acquire(&l->items));
        len = shr_load_acquire(&a->len);
        for (; k < len && k < stop && bytes < FIND_BYTES && !fin; k++) {
            uint64_t tag = shr_load_acquire(&a->it[k].tag), val = shr_load_acquire(&a->it[k].val);
            bool eq;
            if (tag == SHR_STR || tag == SHR_BYTES) {
                if (tag != (uint64_t)v->type) continue;
                /* Never read through a torn pair: the loads above were
                 * acquires, so a pair from inside a writer's window shows
                 * here as a moved counter. */
                if (shr_load_relaxed(&l->seq) != s1) {
                    ok = false;
                    break;
                }
                bytes += v->u.s.len + 16;
                eq = str_equal_unlocked(h, val, v);
            } else {
                eq = equal(h, tag, val, v); /* inline values, and objects by identity: nothing read through */
            }
            if (eq) {
                if (first == SIZE_MAX) first = k;
                n++;
                fin = !f->want_count; /* index: the first is enough */
            }
        }
        ok = ok && shr_load_relaxed(&l->seq) == s1;
    }
    rsect_exit(&rs);
    if (!ok) return 0;
    if (first != SIZE_MAX && f->at == SIZE_MAX) f->at = first;
    f->n += n;
    f->i = k;
    f->done = fin || k >= len;
    return 1;
}

/* The same step under the lock (a walk that kept meeting writers). */
static int find_step_locked(shr_heap_t *h, listobj_t *l, find_t *f)
{
    int rc = shr__list_lock(h, l);
    if (rc) return rc;
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len), stop = f->i + FIND_STEP, bytes = 0;
    bool fin = false;
    uint64_t i = f->i;
    for (; i < len && i < stop && bytes < FIND_BYTES && !fin; i++) {
        uint64_t tag = shr_load_relaxed(&a->it[i].tag), val = shr_load_relaxed(&a->it[i].val);
        if (tag == SHR_STR || tag == SHR_BYTES) bytes += ((strobj_t *)shr__ptr(h, val))->len + 16;
        if (equal(h, tag, val, f->v)) {
            if (f->at == SIZE_MAX) f->at = i;
            f->n++;
            fin = !f->want_count;
        }
    }
    shr__list_unlock(l);
    f->i = i;
    f->done = fin || i >= len;
    return 0;
}

static int find_value(shr_list_t *list, const shr_value_t *v, size_t *count, size_t *first)
{
    if (!list || !v) return -EINVAL;
    if (v->type < SHR_NONE || v->type > SHR_REF) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    find_t f = {.v = v, .want_count = count != NULL, .at = SIZE_MAX};
    /* Announced before the first load of an item (a read-modify-write:
     * see release_dropped), withdrawn after the last. */
    atomic_fetch_add(&l->walkers, 1);
    int rc = 0;
    while (!f.done && rc == 0) {
        int r = 0;
        for (int tries = 0; tries < FIND_TRIES && r == 0; tries++) r = find_step(h, l, &f);
        if (r != 1) rc = find_step_locked(h, l, &f);
    }
    atomic_fetch_sub(&l->walkers, 1);
    if (rc) return rc;
    if (count) *count = f.n;
    if (first) {
        if (f.at == SIZE_MAX) return SHR_ENOTFOUND;
        *first = f.at;
    }
    return 0;
}

static int list_count_(shr_list_t *list, const shr_value_t *value, size_t *count)
{
    size_t n;
    if (!count) return -EINVAL;
    int rc = find_value(list, value, &n, NULL);
    if (rc == 0) *count = n;
    return rc;
}

static int list_index_(shr_list_t *list, const shr_value_t *value, size_t *index)
{
    size_t at;
    if (!index) return -EINVAL;
    int rc = find_value(list, value, NULL, &at);
    if (rc == 0) *index = at;
    return rc;
}

/* ---- writes ------------------------------------------------------------------ */

/* Encode value (outside the lock: it may allocate), then take the lock; on
 * failure nothing is held. */
shr_inline int encode_and_lock(shr_heap_t *h, listobj_t *l, const shr_value_t *value, uint64_t *tag, uint64_t *val)
{
    int rc = encode(h, value, tag, val);
    if (rc) return rc;
    if ((rc = shr__list_lock(h, l)) != 0) release(h, *tag, *val);
    return rc;
}

static int list_set_(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t tag, val, i;
    int rc = encode_and_lock(h, l, value, &tag, &val);
    if (rc) return rc;
    items_t *a = list_items(h, l);
    if ((rc = norm_index(index, shr_load_relaxed(&a->len), &i)) != 0) {
        shr__list_unlock(l);
        release(h, tag, val); /* a bad index changes nothing */
        return rc;
    }
    uint64_t old_tag = shr_load_relaxed(&a->it[i].tag), old_val = shr_load_relaxed(&a->it[i].val);
    op_begin(l, LIST_OP_SET, i, 0, 0, old_tag, old_val);
    store_item(a, i, tag, val);
    (void)SHR_FAULT(LIST_SET); /* a crash point */
    op_end(l); /* commit */
    check_list(h, l);
    shr__list_unlock(l);
    release_dropped(h, l, old_tag, old_val, true); /* unpublished: now release it (a str after a grace period) */
    return 0;
}

/* Arrays of at least this many items (a page or chunk run, 32 KiB and
 * more) are given back early: a retired one after the growth that replaced
 * it, and a pop that leaves one under a quarter full shrinks it. */
#define SHRINK_MIN 2048

/* Growth: a new array of twice the capacity with every item, published by
 * one store; the old array goes on the retired chain (a lock-free reader may
 * still be in it). The chain is freed once a grace period has passed: here
 * when the old array was SHRINK_MIN items or more (a smaller one waits for a
 * shrink or the list's end: a grace period costs a membarrier, more than
 * copying a small array), at a shrink, and with the list. Lock held. NULL
 * (nothing changed) when the new array cannot be had. */
static items_t *grow(shr_heap_t *h, listobj_t *l, items_t *a)
{
    uint64_t len = shr_load_relaxed(&a->len);
    items_t *b = a->cap <= UINT64_MAX / 2 ? items_new(h, a->cap * 2) : NULL;
    if (!b) return NULL;
    SHR_ASSERT(len <= a->cap && b->cap > len); /* LI2 */
    for (uint64_t i = 0; i < len; i++) { /* b is not published yet: plain stores */
        shr_store_relaxed(&b->it[i].tag, shr_load_relaxed(&a->it[i].tag));
        shr_store_relaxed(&b->it[i].val, shr_load_relaxed(&a->it[i].val));
    }
    shr_store_relaxed(&b->len, len);
    a->retired = l->retired;
    l->retired = shr__off(h, a); /* retire, then publish: repair mends a death between (LI4) */
    (void)SHR_FAULT(LIST_GROW); /* a crash point */
    shr_store_release(&l->items, shr__off(h, b));
    if (a->cap >= SHRINK_MIN && shr__grace_wait(h)) free_retired(h, l);
    return b;
}

static int insert_at(shr_list_t *list, int64_t index, const shr_value_t *value, bool append)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t tag, val;
    int rc = encode_and_lock(h, l, value, &tag, &val);
    if (rc) return rc;
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len), at = len;
    if (!append) { /* Python's insert clamps */
        if (index < 0) index += (int64_t)len;
        at = index < 0 ? 0 : (uint64_t)index > len ? len : (uint64_t)index;
    }
    if (len == a->cap && !(a = grow(h, l, a))) {
        shr__list_unlock(l);
        release(h, tag, val);
        return -ENOMEM;
    }
    SHR_ASSERT(len < a->cap); /* LI2: room for one more */
    if (at == len) {
        /* Append: write past len, then publish with len + 1. */
        store_item(a, len, tag, val);
        shr_store_release(&a->len, len + 1); /* commit */
    } else {
        op_begin(l, LIST_OP_INSERT, at, len, len, tag, val);
        shift_up(l, a);
        store_item(a, at, tag, val);
        shr_store_release(&a->len, len + 1);
        op_end(l); /* commit */
    }
    check_list(h, l);
    shr__list_unlock(l);
    return 0;
}


static int list_insert_(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    return insert_at(list, index, value, false);
}

/* Giving memory back: when a pop leaves an array of at least SHRINK_MIN
 * items less than a quarter full, it shrinks in place by a fifth at a time
 * until it is a quarter full again or the allocator will not shrink it in
 * place (a chunk run shrinks in place to any size that is still a chunk
 * run, a page run to any page run: it stops where a fifth less would change
 * the kind), and the retired arrays are freed. The allocator releases the
 * tail pages. A quarter full, the next growth is as far away as the next
 * shrink.
 * Both wait for a grace period first: a lock-free reader may still be
 * reading an item of the tail (it loaded len before the >= 1536 pops that
 * led here, and stalled) or a retired array. If one outlasts the wait, the
 * shrink is left to a later pop. cap is stored before the block shrinks, so
 * a death in between leaves cap below the block's size, never above it.
 * Lock held. */
static void shrink(shr_heap_t *h, listobj_t *l, items_t *a)
{
    uint64_t cap = a->cap, len = shr_load_relaxed(&a->len);
    if (cap < SHRINK_MIN || len >= cap / 4 || (h->flags & SHR_HEAP_GUARDS)) return;
    if (!shr__grace_wait(h)) return;
    free_retired(h, l);
    seq_begin(l);
    while (cap >= SHRINK_MIN && len < cap / 4) {
        uint64_t want = cap - cap / 5;
        a->cap = want; /* commit: nothing past want is used any more (LI2) */
        if (!shr__large_resize(h, shr__off(h, a), sizeof(items_t) + want * sizeof(item_t))) {
            a->cap = cap; /* kept as it was */
            break;
        }
        cap = want;
    }
    seq_end(l);
}

static int list_pop_(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    listobj_t *l = list->obj;
    uint64_t i;
    int rc = shr__list_lock(h, l);
    if (rc) return rc;
    items_t *a = list_items(h, l);
    uint64_t len = shr_load_relaxed(&a->len);
    if ((rc = norm_index(index, len, &i)) != 0) {
        shr__list_unlock(l);
        return rc;
    }
    uint64_t tag = shr_load_relaxed(&a->it[i].tag), val = shr_load_relaxed(&a->it[i].val);
    if (out) {
        /* The caller's reference, leased before the item goes: a failure
         * here leaves the list as it was. */
        take_value(h, tag, val, out);
        if ((rc = claim(h, out)) != 0) {
            shr__list_unlock(l);
            return rc;
        }
    }
    if (i == len - 1) {
        /* seq moves here too: a lock-free walk that loaded the old len must
         * not pair the item an append then writes in its place with what it
         * read before (find_step). */
        seq_begin(l);
        shr_store_release(&a->len, len - 1); /* commit */
        seq_end(l);
    } else {
        op_begin(l, LIST_OP_DELETE, i, len, i, tag, val);
        shift_down(l, a);
        shr_store_release(&a->len, len - 1);
        op_end(l); /* commit */
    }
    shrink(h, l, a);
    check_list(h, l);
    shr__list_unlock(l);
    release_dropped(h, l, tag, val, true); /* the list's reference to the removed item */
    return 0;
}


/* ---- the list type ------------------------------------------------------------ */

static void list_traverse(shr_heap_t *h, obj_t *o, gc_visit_fn visit, void *arg)
{
    listobj_t *l = (listobj_t *)o;
    if (!shr_load_relaxed(&l->items)) return;
    items_t *a = list_items(h, l);
    for (uint64_t i = 0; i < shr_load_relaxed(&a->len); i++) {
        uint64_t tag = shr_load_relaxed(&a->it[i].tag);
        if (is_ref(tag)) visit(h, shr_load_relaxed(&a->it[i].val), arg);
    }
}

/* Detach each child (exchange its tag with None), then release it: a death
 * in the middle leaks the rest instead of leaving the list pointing at
 * freed children. */
static void list_clear(shr_heap_t *h, obj_t *o)
{
    listobj_t *l = (listobj_t *)o;
    if (!shr_load_relaxed(&l->items)) return;
    items_t *a = list_items(h, l);
    for (uint64_t i = 0; i < shr_load_relaxed(&a->len); i++) {
        uint64_t tag = atomic_exchange(&a->it[i].tag, SHR_NONE);
        uint64_t val = shr_load_relaxed(&a->it[i].val);
        if (!is_ref(tag)) continue;
        (void)SHR_FAULT(OBJ_DEALLOC); /* a crash point */
        shr__gc_release_child(h, val);
    }
}

static void list_dealloc(shr_heap_t *h, obj_t *o)
{
    listobj_t *l = (listobj_t *)o;
    /* Its last writer may have died in the middle of a change: finish or undo
     * it first, or the clear would release what the items no longer hold. */
    if (shr_load_relaxed(&l->items)) shr__list_repair(h, l);
    list_clear(h, o);
    uint64_t ao = atomic_exchange(&l->items, 0);
    if (ao) shr_free(h, shr__ptr(h, ao));
    /* The chain is detached before it is freed: a collector that dies in
     * here and deallocs the list again (collect.c C3) frees nothing twice. */
    uint64_t r = l->retired, next;
    l->retired = 0;
    for (; r; r = next) { /* arrays growth replaced */
        next = ((items_t *)shr__ptr(h, r))->retired;
        shr_free(h, shr__ptr(h, r));
    }
    shr__obj_free(h, o);
}

static const gc_type_ops_t list_ops = {
    .name = "list", .traverse = list_traverse, .clear = list_clear, .dealloc = list_dealloc};

static pthread_once_t types_once = PTHREAD_ONCE_INIT;

/* With the world stopped (collect.c), a list's lock can only be held by a
 * dead thread: its change is repaired and the lock released before the
 * list is traversed, so that no item is seen twice (C4). */
static bool list_unsettled(shr_heap_t *h, obj_t *o)
{
    uint64_t owner = shr_load_relaxed(&((listobj_t *)o)->lock) & ~LOCK_WAITER;
    return owner != 0 && shr__owner_gone(h, owner);
}

static void list_settle(shr_heap_t *h, obj_t *o)
{
    listobj_t *l = (listobj_t *)o;
    uint64_t w = shr_load_relaxed(&l->lock), owner = w & ~LOCK_WAITER;
    if (owner == 0 || !shr__owner_gone(h, owner)) return;
    if (!atomic_compare_exchange_strong(&l->lock, &w, 0)) return;
    shr__list_repair(h, l);
}

static void register_types(void)
{
    shr__str_types_register();
    shr__type_register(SHR_TYPE_LIST, &list_ops);
    shr__list_ops = &list_ops;
    shr__list_unsettled = list_unsettled;
    shr__list_settle = list_settle;
    shr__alloc_set_root_check(root_check);
}

void shr__list_types_register(void) { pthread_once(&types_once, register_types); }

/* ---- the public calls: each inside the collector's gate (gc.h) ------------------- */

/* The gate, with the wait hooks around a wait there: a thread that finds a
 * collection of another thread requested parks at the gate for the
 * collection's pause, and a runtime with a global lock hears of it as of a
 * wait for a list lock (the Python module releases the GIL). The check is a
 * relaxed load of the word the gate reads next: a request that comes just
 * after it is waited for without the hooks (a stall of the runtime, never a
 * deadlock: the collector needs nothing of a parked thread). */
static shr_noinline int gate_enter_waiting(shr_heap_t *h)
{
    wait_hook(&wait_before);
    int rc = shr__gate_enter(h);
    wait_hook(&wait_after);
    return rc;
}

shr_inline int list_gate_enter(shr_heap_t *h)
{
    if (shr_unlikely(shr__gate_depth == 0 &&
                     atomic_load_explicit(&shr__gc_global(h)->requested, memory_order_relaxed) != 0))
        return gate_enter_waiting(h);
    return shr__gate_enter(h);
}

#define GATED(heap, call)                    \
    do {                                     \
        int rc_ = list_gate_enter(heap);     \
        if (rc_) return rc_;                 \
        rc_ = (call);                        \
        shr__gate_exit(heap);                \
        return rc_;                          \
    } while (0)

void shr_value_release(shr_heap_t *heap, shr_value_t *v)
{
    if (!v || !v->ref_) return;
    shr_heap_t *h = v->type == SHR_LIST && v->u.list ? v->u.list->heap : heap;
    if (!h || shr__gate_enter(h) != 0) return;
    value_release_(heap, v);
    shr__gate_exit(h);
}

int shr_list_create(shr_heap_t *heap, const char *name, const shr_value_t *values, size_t n, shr_list_t **out)
{
    if (!heap) return -EINVAL;
    GATED(heap, list_create_(heap, name, values, n, out));
}

int shr_list_attach(shr_heap_t *heap, const char *name, shr_list_t **out)
{
    if (!heap) return -EINVAL;
    GATED(heap, list_attach_(heap, name, out));
}

int shr_list_close(shr_list_t *list)
{
    if (!list) return -EINVAL;
    shr_heap_t *h = list->heap;
    GATED(h, list_close_(list));
}

int shr_list_unlink(shr_heap_t *heap, const char *name)
{
    if (!heap) return -EINVAL;
    GATED(heap, list_unlink_(heap, name));
}

/* A get of None, bool, int or float reads under the list's sequence counter
 * and changes nothing in the heap: it needs no gate (a collection only
 * repairs lists whose writer died, under the same counter). */
static shr_noinline int get_locked(shr_list_t *list, int64_t index, shr_value_t *out)
{
    GATED(list->heap, list_get_(list, index, out));
}

int shr_list_get(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list || !out) return -EINVAL;
    int rc = read_inline(list->heap, list->obj, index, out);
    if (shr_likely(rc <= 0)) return rc;
    return get_locked(list, index, out); /* out of the fast path's frame */
}

int shr_list_read(shr_list_t *list, int64_t index, shr_value_t *out, shr_item_fn visit, void *arg)
{
    if (!list || (!out && !visit)) return -EINVAL;
    if (out) {
        int rc = read_inline(list->heap, list->obj, index, out);
        if (rc <= 0 || !visit) return rc;
    }
    GATED(list->heap, list_get_with_(list, index, visit, arg));
}

int shr_list_get_with(shr_list_t *list, int64_t index, shr_item_fn visit, void *arg)
{
    if (!list || !visit) return -EINVAL;
    shr_value_t v;
    int rc = read_inline(list->heap, list->obj, index, &v);
    if (rc < 0) return rc;
    if (rc == 0) return visit(&v, arg);
    GATED(list->heap, list_get_with_(list, index, visit, arg));
}

int shr_list_count(shr_list_t *list, const shr_value_t *value, size_t *count)
{
    if (!list) return -EINVAL;
    GATED(list->heap, list_count_(list, value, count));
}

int shr_list_index(shr_list_t *list, const shr_value_t *value, size_t *index)
{
    if (!list) return -EINVAL;
    GATED(list->heap, list_index_(list, value, index));
}

int shr_list_set(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    if (!list) return -EINVAL;
    GATED(list->heap, list_set_(list, index, value));
}

int shr_list_append(shr_list_t *list, const shr_value_t *value)
{
    if (!list) return -EINVAL;
    GATED(list->heap, insert_at(list, 0, value, true));
}

int shr_list_insert(shr_list_t *list, int64_t index, const shr_value_t *value)
{
    if (!list) return -EINVAL;
    GATED(list->heap, list_insert_(list, index, value));
}

int shr_list_pop(shr_list_t *list, int64_t index, shr_value_t *out)
{
    if (!list) return -EINVAL;
    GATED(list->heap, list_pop_(list, index, out));
}

int shr_list_delete(shr_list_t *list, int64_t index) { return shr_list_pop(list, index, NULL); }

/* ---- lists as objects ---------------------------------------------------------------- */

static int list_ref_(shr_list_t *list, shr_ref_t *out)
{
    shr_heap_t *h = list->heap;
    shr__incref(&list->obj->ob); /* the handle's lease keeps it alive meanwhile */
    int rc = shr__lease_add(h, list->off);
    if (rc) {
        shr__decref(h, &list->obj->ob);
        return rc;
    }
    out->off = list->off;
    return 0;
}

int shr_list_ref(shr_list_t *list, shr_ref_t *out)
{
    if (!list || !out) return -EINVAL;
    GATED(list->heap, list_ref_(list, out));
}

static int list_from_ref_(shr_heap_t *heap, shr_ref_t ref, shr_list_t **out)
{
    uint64_t off = ref.off;
    if (off == 0 || off >= heap->capacity || (off & (SHR_ALIGNMENT - 1)) || !shr__lease_held(heap, off))
        return -EINVAL;
    if (obj_at(heap, off)->type != SHR_TYPE_LIST) return SHR_ETYPE;
    shr__incref(obj_at(heap, off)); /* the caller's lease keeps it alive meanwhile */
    int rc = new_handle(heap, off, NULL, out);
    if (rc) shr__decref(heap, obj_at(heap, off));
    return rc;
}

int shr_list_from_ref(shr_heap_t *heap, shr_ref_t ref, shr_list_t **out)
{
    if (!heap || !out) return -EINVAL;
    shr__list_types_register();
    GATED(heap, list_from_ref_(heap, ref, out));
}
